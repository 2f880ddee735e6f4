//! Small typed values shared by the domain parts: open string enums, memory sizes, yes/no.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::XmlError;
use super::tree::Element;

/// Declares an open enum over the strings libvirt uses for an attribute or element text: the
/// values we model get a variant, anything else is kept verbatim in `Other`.
macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($var:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        ///
        /// Values this crate does not model are kept verbatim in `Other`, so reading and writing
        /// them loses nothing. Build values with `From<&str>` (or `parse`) so that known strings
        /// always map to their variant.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $(#[doc = concat!("`", $s, "`")] $var,)+
            /// Any other value, verbatim.
            Other(String),
        }

        impl $name {
            /// The string libvirt uses for this value.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$var => $s,)+
                    $name::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $($s => $name::$var,)+
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name::from(s.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok($name::from(s))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($name::from(<String as serde::Deserialize>::deserialize(d)?))
            }
        }
    };
}
pub(crate) use string_enum;

string_enum! {
    /// What the hypervisor does on `on_poweroff`, `on_reboot` and `on_crash`.
    LifecycleAction {
        Destroy => "destroy",
        Restart => "restart",
        Preserve => "preserve",
        RenameRestart => "rename-restart",
        CoredumpDestroy => "coredump-destroy",
        CoredumpRestart => "coredump-restart",
    }
}

string_enum! {
    /// The domain's `type` attribute: the hypervisor driver.
    DomainType {
        Qemu => "qemu",
        Kvm => "kvm",
        Test => "test",
        Xen => "xen",
        Lxc => "lxc",
        Hvf => "hvf",
    }
}

/// A unit for memory sizes, as libvirt accepts them in `unit='...'`.
///
/// Parsing follows libvirt: the first letter is case-insensitive, a bare letter or `<letter>iB`
/// is a power of 1024, `<letter>B` a power of 1000; `b`/`bytes` are bytes. Values are written
/// back as libvirt prints them (`KiB`, `MB`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MemoryUnit {
    /// Bytes.
    B,
    /// 1000 bytes.
    KB,
    /// 1024 bytes (libvirt's default for memory).
    KiB,
    /// 1000² bytes.
    MB,
    /// 1024² bytes.
    MiB,
    /// 1000³ bytes.
    GB,
    /// 1024³ bytes.
    GiB,
    /// 1000⁴ bytes.
    TB,
    /// 1024⁴ bytes.
    TiB,
    /// 1000⁵ bytes.
    PB,
    /// 1024⁵ bytes.
    PiB,
    /// 1000⁶ bytes.
    EB,
    /// 1024⁶ bytes.
    EiB,
}

impl MemoryUnit {
    /// How many bytes one unit is.
    pub fn bytes(self) -> u64 {
        use MemoryUnit::*;
        match self {
            B => 1,
            KB => 1000,
            KiB => 1 << 10,
            MB => 1000u64.pow(2),
            MiB => 1 << 20,
            GB => 1000u64.pow(3),
            GiB => 1 << 30,
            TB => 1000u64.pow(4),
            TiB => 1 << 40,
            PB => 1000u64.pow(5),
            PiB => 1 << 50,
            EB => 1000u64.pow(6),
            EiB => 1 << 60,
        }
    }

    /// The spelling libvirt prints.
    pub fn as_str(self) -> &'static str {
        use MemoryUnit::*;
        match self {
            B => "bytes",
            KB => "KB",
            KiB => "KiB",
            MB => "MB",
            MiB => "MiB",
            GB => "GB",
            GiB => "GiB",
            TB => "TB",
            TiB => "TiB",
            PB => "PB",
            PiB => "PiB",
            EB => "EB",
            EiB => "EiB",
        }
    }
}

impl fmt::Display for MemoryUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MemoryUnit {
    type Err = XmlError;

    fn from_str(s: &str) -> Result<Self, XmlError> {
        use MemoryUnit::*;
        let bad = || XmlError::InvalidValue {
            path: "unit".into(),
            value: s.to_string(),
            reason: "expected a unit such as bytes, KiB, KB, k, MiB, M, GiB, G, TiB, PiB, EiB"
                .into(),
        };
        if s.eq_ignore_ascii_case("b") || s.eq_ignore_ascii_case("bytes") {
            return Ok(B);
        }
        let mut chars = s.chars();
        let first = chars.next().ok_or_else(bad)?.to_ascii_lowercase();
        let rest = chars.as_str();
        let binary = if rest.is_empty() || rest.eq_ignore_ascii_case("iB") {
            true
        } else if rest.eq_ignore_ascii_case("B") {
            false
        } else {
            return Err(bad());
        };
        Ok(match (first, binary) {
            ('k', true) => KiB,
            ('k', false) => KB,
            ('m', true) => MiB,
            ('m', false) => MB,
            ('g', true) => GiB,
            ('g', false) => GB,
            ('t', true) => TiB,
            ('t', false) => TB,
            ('p', true) => PiB,
            ('p', false) => PB,
            ('e', true) => EiB,
            ('e', false) => EB,
            _ => return Err(bad()),
        })
    }
}

/// A memory size: a value with its unit, as in `<memory unit='MiB'>64</memory>`.
///
/// ```
/// use libvirt_client::xml::{Memory, MemoryUnit};
///
/// let m = Memory::mib(64);
/// assert_eq!(m.to_kib(), Some(65536));
/// assert_eq!(Memory::new(1, MemoryUnit::KB).to_kib(), Some(1)); // rounded up, like libvirt
/// assert_eq!(m.to_bytes(), Some(64 << 20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Memory {
    /// The number as written.
    pub value: u64,
    /// Its unit (`KiB` when the attribute is absent).
    pub unit: MemoryUnit,
}

impl Memory {
    /// `value` in `unit`.
    pub fn new(value: u64, unit: MemoryUnit) -> Self {
        Memory { value, unit }
    }

    /// `value` KiB.
    pub fn kib(value: u64) -> Self {
        Memory::new(value, MemoryUnit::KiB)
    }

    /// `value` MiB.
    pub fn mib(value: u64) -> Self {
        Memory::new(value, MemoryUnit::MiB)
    }

    /// `value` GiB.
    pub fn gib(value: u64) -> Self {
        Memory::new(value, MemoryUnit::GiB)
    }

    /// The size in bytes, or `None` if it does not fit in 64 bits.
    pub fn to_bytes(self) -> Option<u64> {
        self.value.checked_mul(self.unit.bytes())
    }

    /// The size in KiB, rounded up as libvirt does, or `None` on overflow.
    pub fn to_kib(self) -> Option<u64> {
        match self.unit {
            MemoryUnit::B | MemoryUnit::KB => {
                let bytes = self.to_bytes()?;
                Some(bytes.div_ceil(1024))
            }
            u => self.value.checked_mul(u.bytes() / 1024),
        }
    }

    pub(crate) fn from_element(e: &Element) -> Result<Self, XmlError> {
        let unit = match e.attr("unit") {
            None => MemoryUnit::KiB,
            Some(u) => u
                .parse()
                .map_err(|_| invalid(&format!("{}@unit", e.name), u, "unknown memory unit"))?,
        };
        let text = e.text();
        let value = text
            .trim()
            .parse()
            .map_err(|_| invalid(&e.name, &text, "expected an unsigned integer"))?;
        Ok(Memory { value, unit })
    }

    pub(crate) fn to_element(self, name: &str) -> Element {
        Element::new(name)
            .with_attr("unit", self.unit.as_str())
            .with_text(self.value.to_string())
    }
}

pub(crate) fn invalid(path: &str, value: &str, reason: &str) -> XmlError {
    XmlError::InvalidValue {
        path: path.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Reads attribute `name` of `e` as a number.
pub(crate) fn attr_num<T: FromStr>(e: &Element, name: &str) -> Result<Option<T>, XmlError> {
    match e.attr(name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| invalid(&format!("{}@{name}", e.name), v, "expected a number")),
    }
}

/// Reads attribute `name` of `e` as libvirt's `yes`/`no` (also `on`/`off`).
pub(crate) fn attr_bool(e: &Element, name: &str) -> Result<Option<bool>, XmlError> {
    match e.attr(name) {
        None => Ok(None),
        Some("yes" | "on") => Ok(Some(true)),
        Some("no" | "off") => Ok(Some(false)),
        Some(v) => Err(invalid(
            &format!("{}@{name}", e.name),
            v,
            "expected yes or no",
        )),
    }
}

/// Writes a bool as libvirt's `yes`/`no`.
pub(crate) fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// Reads attribute `name` as an owned string.
pub(crate) fn attr_string(e: &Element, name: &str) -> Option<String> {
    e.attr(name).map(str::to_string)
}

/// Reads attribute `name` as an open enum.
pub(crate) fn attr_enum<T: From<String>>(e: &Element, name: &str) -> Option<T> {
    e.attr(name).map(|s| T::from(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse_like_libvirt() {
        for (s, u) in [
            ("b", MemoryUnit::B),
            ("bytes", MemoryUnit::B),
            ("k", MemoryUnit::KiB),
            ("K", MemoryUnit::KiB),
            ("KiB", MemoryUnit::KiB),
            ("KB", MemoryUnit::KB),
            ("M", MemoryUnit::MiB),
            ("MB", MemoryUnit::MB),
            ("GiB", MemoryUnit::GiB),
            ("T", MemoryUnit::TiB),
            ("PB", MemoryUnit::PB),
            ("EiB", MemoryUnit::EiB),
        ] {
            assert_eq!(s.parse::<MemoryUnit>().unwrap(), u, "{s}");
            assert_eq!(u.as_str().parse::<MemoryUnit>().unwrap(), u);
        }
        for bad in ["", "x", "KiBB", "Ki", "zB"] {
            assert!(bad.parse::<MemoryUnit>().is_err(), "{bad}");
        }
    }

    #[test]
    fn memory_conversions() {
        assert_eq!(Memory::gib(8).to_kib(), Some(8 * 1024 * 1024));
        assert_eq!(Memory::new(1500, MemoryUnit::B).to_kib(), Some(2));
        assert_eq!(Memory::new(u64::MAX, MemoryUnit::EiB).to_bytes(), None);
        assert_eq!(Memory::new(u64::MAX, MemoryUnit::MiB).to_kib(), None);
        let e = Element::parse("<memory>65536</memory>").unwrap();
        assert_eq!(Memory::from_element(&e).unwrap(), Memory::kib(65536));
        let e = Element::parse("<memory unit='parsec'>1</memory>").unwrap();
        assert!(Memory::from_element(&e).is_err());
        let e = Element::parse("<memory unit='KiB'>-1</memory>").unwrap();
        assert!(Memory::from_element(&e).is_err());
    }

    #[test]
    fn open_enums_keep_unknown() {
        assert_eq!(LifecycleAction::from("destroy"), LifecycleAction::Destroy);
        let odd = LifecycleAction::from("explode");
        assert_eq!(odd, LifecycleAction::Other("explode".into()));
        assert_eq!(odd.as_str(), "explode");
    }
}
