//! One QEMU option (`-device`, `-blockdev`, ...) as structured data, and the one place where
//! values are escaped (text syntax) or serialized (JSON syntax) and read back.
//!
//! QEMU reads option arguments with two parsers, QemuOpts (`util/qemu-option.c`: `-device`,
//! `-netdev`, `-chardev`, `-fsdev`, ...) and keyval (`util/keyval.c`: `-blockdev`, `-object`,
//! `-machine`). Both end a value at a single `,` and read `,,` as a literal comma; both end a key
//! at `=`. Neither lets the *implied* first element (`-device virtio-blk-pci,...`) carry an
//! escaped comma (keyval ends it at the first `,` whatever follows), and an `=` in it turns it into
//! a key. So: values are escaped by doubling commas, and implied values and keys containing `,`
//! or `=` are refused with [`Error::Unrepresentable`].

use crate::error::{Error, Result};
use crate::version::Syntax;
use std::collections::BTreeMap;
use std::fmt;

/// A property value. Text syntax writes every kind as text; JSON syntax keeps the type (QEMU's
/// JSON input is typed: `"read-only": true`, `"size": 67108864`).
///
/// A value read from text syntax is a [`Prop::Text`]: the text does not say whether `32` is a
/// number or a string, so an option holding one is written in text syntax even where JSON is
/// asked for (QEMU then types it from the property's declaration, as for any hand-typed command
/// line). Giving it JSON's string type instead would make QEMU refuse `"poll-max-ns": "32"`.
#[derive(Clone, Debug)]
pub enum Prop {
    /// A string, escaped on output.
    Str(String),
    /// A value read from text syntax, type unknown; escaped on output like a string, and keeps
    /// its option in text syntax (see the type's documentation).
    Text(String),
    /// A boolean, `on`/`off` in text syntax.
    Bool(bool),
    /// An unsigned number.
    Num(u64),
}

impl Prop {
    /// The value as QEMU's text syntax reads it, before escaping.
    pub fn text(&self) -> String {
        match self {
            Prop::Str(s) | Prop::Text(s) => s.clone(),
            Prop::Bool(true) => "on".into(),
            Prop::Bool(false) => "off".into(),
            Prop::Num(n) => n.to_string(),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Prop::Str(s) | Prop::Text(s) => serde_json::Value::String(s.clone()),
            Prop::Bool(b) => serde_json::Value::Bool(*b),
            Prop::Num(n) => serde_json::Value::from(*n),
        }
    }

    /// Whether the value's type is unknown (read from text syntax).
    pub fn is_untyped(&self) -> bool {
        matches!(self, Prop::Text(_))
    }

    /// The value as a string (any kind, in its text form).
    pub fn as_string(&self) -> String {
        self.text()
    }

    /// The value as a boolean: `Bool`, or the text `on`/`off`/`true`/`false`/`yes`/`no`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Prop::Bool(b) => Some(*b),
            Prop::Str(s) | Prop::Text(s) => match s.as_str() {
                "on" | "true" | "yes" => Some(true),
                "off" | "false" | "no" => Some(false),
                _ => None,
            },
            Prop::Num(_) => None,
        }
    }

    /// The value as an unsigned number: `Num`, or decimal text without sign or leading zeros.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Prop::Num(n) => Some(*n),
            Prop::Str(s) | Prop::Text(s) => {
                let n: u64 = s.parse().ok()?;
                (n.to_string() == *s).then_some(n)
            }
            Prop::Bool(_) => None,
        }
    }
}

/// Two props are equal when QEMU's text syntax cannot tell them apart (`Bool(true)` equals
/// `Str("on")`): that is what parsing a text command line can give back.
impl PartialEq for Prop {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text()
    }
}
impl Eq for Prop {}

impl From<&str> for Prop {
    fn from(s: &str) -> Self {
        Prop::Str(s.to_owned())
    }
}
impl From<String> for Prop {
    fn from(s: String) -> Self {
        Prop::Str(s)
    }
}
impl From<bool> for Prop {
    fn from(b: bool) -> Self {
        Prop::Bool(b)
    }
}
impl From<u64> for Prop {
    fn from(n: u64) -> Self {
        Prop::Num(n)
    }
}
impl From<u32> for Prop {
    fn from(n: u32) -> Self {
        Prop::Num(n.into())
    }
}

/// The options this crate writes with a key=value argument, and the key QEMU implies for a
/// first element without `=`.
pub(crate) fn implied_key(flag: &str) -> Option<&'static str> {
    match flag {
        "-device" => Some("driver"),
        "-object" => Some("qom-type"),
        "-netdev" => Some("type"),
        "-chardev" => Some("backend"),
        "-fsdev" => Some("fsdriver"),
        "-machine" => Some("type"),
        _ => None,
    }
}

/// One option: a flag such as `-device`, its implied first element (if the flag has one) and
/// its properties in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opt {
    /// The flag, with its dash: `-device`, `-blockdev`, `-object`, `-netdev`, `-chardev`, ...
    pub flag: String,
    /// The implied first element (the driver of `-device`, the type of `-netdev`, ...).
    pub implied: Option<String>,
    /// The properties, in order.
    pub props: Vec<(String, Prop)>,
}

impl Opt {
    /// A new option with an implied first element.
    pub fn new(flag: &str, implied: impl Into<String>) -> Self {
        Opt {
            flag: flag.to_owned(),
            implied: Some(implied.into()),
            props: Vec::new(),
        }
    }

    /// A new option without an implied element (e.g. `-blockdev`, `-add-fd`).
    pub fn bare(flag: &str) -> Self {
        Opt {
            flag: flag.to_owned(),
            implied: None,
            props: Vec::new(),
        }
    }

    /// Append a property.
    pub fn prop(mut self, key: &str, value: impl Into<Prop>) -> Self {
        self.props.push((key.to_owned(), value.into()));
        self
    }

    /// Append a property when `value` is `Some`.
    pub fn prop_opt<V: Into<Prop>>(self, key: &str, value: Option<V>) -> Self {
        match value {
            Some(v) => self.prop(key, v),
            None => self,
        }
    }

    /// Append a boolean property only when it is true.
    pub fn flag_on(self, key: &str, on: bool) -> Self {
        if on {
            self.prop(key, true)
        } else {
            self
        }
    }

    /// The value of a property, if present.
    pub fn get(&self, key: &str) -> Option<&Prop> {
        self.props.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Render this option's argument (without the flag) in text or JSON syntax: JSON where
    /// `syntax` asks for it on this flag and every value has a known type (an option holding a
    /// [`Prop::Text`], read from text syntax, stays in text syntax, which QEMU types itself).
    pub fn render(&self, syntax: &Syntax) -> Result<String> {
        if syntax.json_for(&self.flag) && !self.props.iter().any(|(_, v)| v.is_untyped()) {
            return self.render_json();
        }
        self.render_text()
    }

    /// Render in QEMU's text syntax: `implied,key=value,...` with commas in values doubled.
    pub fn render_text(&self) -> Result<String> {
        let mut out = String::new();
        if let Some(imp) = &self.implied {
            let key = implied_key(&self.flag).unwrap_or("first element");
            check_implied(&format!("implied `{key}` of {}", self.flag), imp)?;
            out.push_str(imp);
        } else if self.props.is_empty() {
            return Err(Error::Unrepresentable {
                what: format!("{} argument", self.flag),
                value: String::new(),
                reason: "is empty",
            });
        }
        for (k, v) in &self.props {
            check_key(&self.flag, k)?;
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(&escape_value(&format!("{k} of {}", self.flag), &v.text())?);
        }
        Ok(out)
    }

    /// Render in JSON syntax (only meaningful for flags QEMU reads as JSON). A [`Prop::Text`]
    /// becomes a JSON string here; [`render`](Self::render) avoids that.
    pub fn render_json(&self) -> Result<String> {
        let mut map = serde_json::Map::new();
        if let Some(imp) = &self.implied {
            let key = implied_key(&self.flag).ok_or_else(|| Error::Unrepresentable {
                what: format!("{} in JSON syntax", self.flag),
                value: imp.clone(),
                reason: "this option has no implied key",
            })?;
            map.insert(key.to_owned(), serde_json::Value::String(imp.clone()));
        }
        for (k, v) in &self.props {
            check_nul(&format!("{k} of {}", self.flag), &v.text())?;
            if map.insert(k.clone(), v.json()).is_some() {
                return Err(Error::Unrepresentable {
                    what: format!("key of {}", self.flag),
                    value: k.clone(),
                    reason: "appears twice (JSON objects cannot repeat a key)",
                });
            }
        }
        Ok(serde_json::Value::Object(map).to_string())
    }

    /// Read an option's argument back (text or JSON syntax, as QEMU would). Values read from
    /// text are [`Prop::Text`]; from JSON they keep JSON's type.
    pub fn parse(flag: &str, arg: &str) -> std::result::Result<Opt, String> {
        if arg.starts_with('{') {
            Self::parse_json(flag, arg)
        } else {
            Self::parse_text(flag, arg)
        }
    }

    fn parse_json(flag: &str, arg: &str) -> std::result::Result<Opt, String> {
        let v: serde_json::Value =
            serde_json::from_str(arg).map_err(|e| format!("bad JSON: {e}"))?;
        let serde_json::Value::Object(map) = v else {
            return Err("JSON argument is not an object".into());
        };
        let ik = implied_key(flag);
        let mut opt = Opt {
            flag: flag.to_owned(),
            implied: None,
            props: Vec::new(),
        };
        for (k, v) in map {
            let p = match v {
                serde_json::Value::String(s) => Prop::Str(s),
                serde_json::Value::Bool(b) => Prop::Bool(b),
                serde_json::Value::Number(n) => Prop::Num(
                    n.as_u64()
                        .ok_or_else(|| format!("{k}: number {n} is not unsigned"))?,
                ),
                other => return Err(format!("{k}: nested JSON value {other} is not supported")),
            };
            if Some(k.as_str()) == ik {
                match p {
                    Prop::Str(s) => opt.implied = Some(s),
                    _ => return Err(format!("{k} must be a string")),
                }
            } else {
                opt.props.push((k, p));
            }
        }
        if ik.is_some() && opt.implied.is_none() {
            return Err(format!("JSON object lacks {:?}", ik.unwrap_or_default()));
        }
        Ok(opt)
    }

    fn parse_text(flag: &str, arg: &str) -> std::result::Result<Opt, String> {
        let mut opt = Opt {
            flag: flag.to_owned(),
            implied: None,
            props: Vec::new(),
        };
        let bytes = arg.as_bytes();
        let mut i = 0;
        if implied_key(flag).is_some() {
            let end = arg.find([',', '=']).unwrap_or(arg.len());
            if end < arg.len() && bytes[end] == b'=' {
                return Err(format!(
                    "expected the implied {} first",
                    implied_key(flag).unwrap_or("")
                ));
            }
            if end == 0 {
                return Err("empty implied first element".into());
            }
            opt.implied = Some(arg[..end].to_owned());
            if end == arg.len() {
                return Ok(opt);
            }
            i = end + 1;
        }
        loop {
            let rest = &arg[i..];
            let eq = rest
                .find([',', '='])
                .ok_or_else(|| format!("`{rest}` has no `=`"))?;
            if rest.as_bytes()[eq] != b'=' {
                return Err(format!(
                    "`{}` has no `=` (bare flags are not written by this crate)",
                    &rest[..eq]
                ));
            }
            let key = &rest[..eq];
            if key.is_empty() {
                return Err("empty key".into());
            }
            i += eq + 1;
            // value: up to a single comma; ",," is a literal comma
            let mut val = String::new();
            let mut done = true;
            let mut chars = arg[i..].char_indices().peekable();
            let start = i;
            while let Some((off, c)) = chars.next() {
                if c == ',' {
                    if matches!(chars.peek(), Some((_, ','))) {
                        chars.next();
                        val.push(',');
                        continue;
                    }
                    i = start + off + 1;
                    done = false;
                    break;
                }
                val.push(c);
            }
            opt.props.push((key.to_owned(), Prop::Text(val)));
            if done {
                break;
            }
            if i >= arg.len() {
                return Err("trailing comma".into());
            }
        }
        Ok(opt)
    }
}

impl fmt::Display for Opt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.render_text() {
            Ok(s) => write!(f, "{} {}", self.flag, s),
            Err(_) => write!(f, "{} <unrepresentable>", self.flag),
        }
    }
}

fn check_nul(what: &str, v: &str) -> Result<()> {
    if v.contains('\0') {
        return Err(Error::Unrepresentable {
            what: what.to_owned(),
            value: v.to_owned(),
            reason: "contains a NUL byte (argv strings cannot)",
        });
    }
    Ok(())
}

/// Escape a value for QEMU's text syntax: every `,` becomes `,,`. The one escaping routine of
/// this crate; `what` names the value in the error for NUL bytes, which no argv can carry.
pub fn escape_value(what: &str, v: &str) -> Result<String> {
    check_nul(what, v)?;
    Ok(v.replace(',', ",,"))
}

/// Check an implied first element: not empty, no `,`, `=` or NUL, not a help request.
pub fn check_implied(what: &str, v: &str) -> Result<()> {
    let reason = if v.is_empty() {
        "is empty"
    } else if v.contains(',') {
        "contains ',' (QEMU ends an implied value at the first comma, escaped or not)"
    } else if v.contains('=') {
        "contains '=' (QEMU would read it as a key)"
    } else if v.contains('\0') {
        "contains a NUL byte"
    } else if v.starts_with('{') {
        "starts with '{' (QEMU would read the whole argument as JSON)"
    } else if v == "help" || v == "?" {
        "is a help request"
    } else {
        return Ok(());
    };
    Err(Error::Unrepresentable {
        what: what.to_owned(),
        value: v.to_owned(),
        reason,
    })
}

/// Check a key: letters, digits, `-`, `_`, `.` only (what QEMU's properties use).
pub fn check_key(flag: &str, k: &str) -> Result<()> {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Ok(());
    }
    Err(Error::Unrepresentable {
        what: format!("key of {flag}"),
        value: k.to_owned(),
        reason: "keys may hold only letters, digits, '-', '_' and '.'",
    })
}

/// Check an id the way QEMU's `id_wellformed` does: a letter, then letters, digits, `-`, `.`,
/// `_`.
pub fn check_id(what: &'static str, id: &str) -> Result<()> {
    let mut b = id.bytes();
    let reason = match b.next() {
        None => "is empty",
        Some(c) if !c.is_ascii_alphabetic() => "must start with a letter",
        _ if !b.all(|c| c.is_ascii_alphanumeric() || b"-._".contains(&c)) => {
            "may hold only letters, digits, '-', '.' and '_'"
        }
        _ => return Ok(()),
    };
    Err(Error::InvalidId {
        what,
        id: id.to_owned(),
        reason,
    })
}

/// Check a block node name: a well-formed id of at most 31 bytes.
pub fn check_node_name(id: &str) -> Result<()> {
    check_id("node-name", id)?;
    if id.len() > 31 {
        return Err(Error::InvalidId {
            what: "node-name",
            id: id.to_owned(),
            reason: "longer than 31 bytes",
        });
    }
    Ok(())
}

/// Reads the properties of a parsed [`Opt`] into typed fields, insisting that every property is
/// consumed (so nothing is silently dropped when parsing).
pub struct PropReader<'a> {
    opt: &'a Opt,
    used: Vec<bool>,
}

impl<'a> PropReader<'a> {
    /// Start reading `opt`.
    pub fn new(opt: &'a Opt) -> Self {
        PropReader {
            opt,
            used: vec![false; opt.props.len()],
        }
    }

    fn take(&mut self, key: &str) -> Option<&'a Prop> {
        let i = self.opt.props.iter().position(|(k, _)| k == key)?;
        if self.used[i] {
            return None;
        }
        self.used[i] = true;
        Some(&self.opt.props[i].1)
    }

    /// An optional string.
    pub fn str(&mut self, key: &str) -> Option<String> {
        self.take(key).map(Prop::as_string)
    }

    /// An optional boolean; `Err` if present but not a boolean.
    pub fn bool(&mut self, key: &str) -> std::result::Result<Option<bool>, WrongKind> {
        match self.take(key) {
            None => Ok(None),
            Some(p) => p
                .as_bool()
                .map(Some)
                .ok_or_else(|| WrongKind(key.to_owned())),
        }
    }

    /// An optional number; `Err` if present but not a number.
    pub fn num(&mut self, key: &str) -> std::result::Result<Option<u64>, WrongKind> {
        match self.take(key) {
            None => Ok(None),
            Some(p) => p
                .as_u64()
                .map(Some)
                .ok_or_else(|| WrongKind(key.to_owned())),
        }
    }

    /// The properties not read yet, in order.
    pub fn rest(&mut self) -> Vec<(String, Prop)> {
        let mut out = Vec::new();
        for (i, (k, v)) in self.opt.props.iter().enumerate() {
            if !self.used[i] {
                self.used[i] = true;
                out.push((k.clone(), v.clone()));
            }
        }
        out
    }

    /// True when every property was read.
    pub fn done(&self) -> bool {
        self.used.iter().all(|u| *u)
    }
}

/// A property was present but not of the kind asked for; holds its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrongKind(pub String);

/// Properties keyed by name, for generic options (sorted, so output is canonical).
pub type PropMap = BTreeMap<String, Prop>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_are_doubled_and_read_back() {
        let o = Opt::bare("-blockdev")
            .prop("driver", "file")
            .prop("filename", "/tmp/a,read-only=on");
        let t = o.render_text().unwrap();
        assert_eq!(t, "driver=file,filename=/tmp/a,,read-only=on");
        assert_eq!(Opt::parse("-blockdev", &t).unwrap(), o);
    }

    #[test]
    fn implied_values_with_comma_or_equals_are_refused() {
        for bad in ["a,b", "a=b", "", "help", "?"] {
            let e = Opt::new("-device", bad).render_text().unwrap_err();
            assert!(matches!(e, Error::Unrepresentable { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn json_round_trip() {
        let o = Opt::new("-device", "virtio-net-pci")
            .prop("id", "n,=0")
            .prop("mq", true)
            .prop("vectors", 6u64);
        let j = o.render_json().unwrap();
        let back = Opt::parse("-device", &j).unwrap();
        assert_eq!(back.implied.as_deref(), Some("virtio-net-pci"));
        assert_eq!(back.get("id"), Some(&Prop::Str("n,=0".into())));
        assert_eq!(back.get("mq").and_then(Prop::as_bool), Some(true));
    }

    use proptest::prelude::*;

    fn prop_value() -> impl Strategy<Value = Prop> {
        prop_oneof![
            any::<String>().prop_map(|s| Prop::Str(s.replace('\0', ""))),
            "[,=\"' {}a-z]{0,12}".prop_map(Prop::Str),
            any::<bool>().prop_map(Prop::Bool),
            any::<u64>().prop_map(Prop::Num),
        ]
    }

    fn any_opt() -> impl Strategy<Value = Opt> {
        let flag = prop_oneof![
            Just("-device"),
            Just("-blockdev"),
            Just("-object"),
            Just("-netdev"),
            Just("-chardev")
        ];
        let props = proptest::collection::vec(("[a-z][a-z0-9._-]{0,8}", prop_value()), 1..6);
        (flag, "[a-z][a-z0-9-]{0,12}", props).prop_map(|(flag, implied, props)| {
            let mut seen = std::collections::BTreeSet::new();
            let props = props
                .into_iter()
                .filter(|(k, _)| seen.insert(k.clone()))
                .collect();
            Opt {
                flag: flag.into(),
                implied: implied_key(flag).map(|_| implied),
                props,
            }
        })
    }

    proptest! {
        #[test]
        fn text_and_json_read_back(o in any_opt()) {
            let t = o.render_text().unwrap();
            prop_assert_eq!(&Opt::parse(&o.flag, &t).unwrap(), &o);
            let j = o.render_json().unwrap();
            let back = Opt::parse(&o.flag, &j).unwrap();
            prop_assert_eq!(&back.implied, &o.implied);
            for (k, v) in &o.props {
                prop_assert_eq!(back.get(k), Some(v));
            }
            prop_assert_eq!(back.props.len(), o.props.len());
        }

        #[test]
        fn text_parse_never_panics(flag in "-device|-blockdev", arg in any::<String>()) {
            let _ = Opt::parse(&flag, &arg);
        }
    }

    #[test]
    fn options_read_from_text_stay_text_where_json_is_asked() {
        let json = Syntax::json(crate::QemuVersion::new(7, 2));
        let text = Opt::parse("-object", "iothread,id=io0,poll-max-ns=32").unwrap();
        assert_eq!(text.get("poll-max-ns"), Some(&Prop::Text("32".into())));
        assert_eq!(
            text.render(&json).unwrap(),
            "iothread,id=io0,poll-max-ns=32"
        );
        // typed values (built, or read from JSON) are written as JSON, with their types
        let typed = Opt::new("-object", "iothread")
            .prop("id", "io0")
            .prop("poll-max-ns", 32u64);
        let j = typed.render(&json).unwrap();
        assert_eq!(j, r#"{"id":"io0","poll-max-ns":32,"qom-type":"iothread"}"#);
        let back = Opt::parse("-object", &j).unwrap();
        assert_eq!(back.render(&json).unwrap(), j);
        // all three are the same option as text syntax sees it
        assert_eq!(text, typed);
        assert_eq!(back, typed);
    }

    #[test]
    fn ids_follow_qemu() {
        assert!(check_id("id", "a-b.c_9").is_ok());
        for bad in ["", "9a", "a,b", "a=b", "é"] {
            assert!(check_id("id", bad).is_err(), "{bad}");
        }
        assert!(check_node_name(&"a".repeat(32)).is_err());
    }
}
