//! Target QEMU version and the argument syntax it reads.

use std::fmt;

/// A QEMU version (`major.minor`), used to decide which options may be written in JSON syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QemuVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl QemuVersion {
    /// A version.
    pub const fn new(major: u32, minor: u32) -> Self {
        QemuVersion { major, minor }
    }
}

impl fmt::Display for QemuVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// How option arguments are written.
///
/// Text syntax (`key=value,...`, commas doubled) works everywhere. JSON syntax is used for the
/// options the target version reads as JSON; the others stay text (always correct, since text
/// values are escaped):
///
/// | option      | JSON since | checked here |
/// |-------------|-----------|--------------|
/// | `-blockdev` | 2.9       | 7.2          |
/// | `-object`   | 6.0       | 7.2          |
/// | `-device`   | 6.2       | 7.2          |
/// | `-netdev`   | 7.2 (7.1 read JSON only for some backends; we require 7.2) | 7.2 |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Syntax {
    /// Prefer JSON where the target allows it.
    pub json: bool,
    /// The QEMU version the argv is for.
    pub target: QemuVersion,
}

impl Syntax {
    /// Text syntax for every option.
    pub const TEXT: Syntax = Syntax {
        json: false,
        target: QemuVersion::new(7, 2),
    };

    /// JSON syntax wherever `target` reads it.
    pub const fn json(target: QemuVersion) -> Self {
        Syntax { json: true, target }
    }

    /// Whether `flag` is written as JSON under this syntax.
    pub fn json_for(&self, flag: &str) -> bool {
        if !self.json {
            return false;
        }
        let since = match flag {
            "-blockdev" => QemuVersion::new(2, 9),
            "-object" => QemuVersion::new(6, 0),
            "-device" => QemuVersion::new(6, 2),
            "-netdev" => QemuVersion::new(7, 2),
            _ => return false,
        };
        self.target >= since
    }
}

impl Default for Syntax {
    fn default() -> Self {
        Syntax::TEXT
    }
}
