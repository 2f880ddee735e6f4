//! What the server sends: greeting, command results and events.

use crate::error::snippet;
use crate::Error;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::time::{Duration, SystemTime};

/// One decoded server message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// `{"QMP": {...}}`: the first thing a server sends.
    Greeting(Greeting),
    /// `{"return": ..., "id": ...}`: a command succeeded.
    Return {
        /// The command's id, as echoed (absent when the command had none).
        id: Option<Value>,
        /// The command's result.
        value: Value,
    },
    /// `{"error": {...}, "id": ...}`: a command failed.
    Error {
        /// The command's id, absent when the server could not read it.
        id: Option<Value>,
        /// What went wrong.
        error: QmpError,
    },
    /// `{"event": ..., "data": ..., "timestamp": ...}`: an asynchronous event.
    Event(Event),
}

/// The server's greeting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Greeting {
    /// Server version.
    pub version: Version,
    /// Capabilities the server offers (e.g. `oob`); unknown ones are kept as strings.
    pub capabilities: Vec<String>,
}

impl Greeting {
    /// Whether the server offers out-of-band execution.
    pub fn offers_oob(&self) -> bool {
        self.capabilities.iter().any(|c| c == "oob")
    }
}

/// QEMU version from the greeting or `query-version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    /// `major`, `minor`, `micro`.
    pub qemu: VersionTriple,
    /// Distribution package string (often empty).
    #[serde(default)]
    pub package: String,
}

/// A `major.minor.micro` version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VersionTriple {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Micro version.
    pub micro: u32,
}

impl fmt::Display for VersionTriple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// Error class of a failed command; classes this crate does not know are kept as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// Most errors.
    GenericError,
    /// The command does not exist (or the session is not negotiated yet).
    CommandNotFound,
    /// A device exists but has no medium or is not active.
    DeviceNotActive,
    /// The named device does not exist.
    DeviceNotFound,
    /// KVM lacks a capability the command needs.
    KVMMissingCap,
    /// A class this crate does not know (newer QEMU).
    Other(String),
}

impl ErrorClass {
    /// Parse a class name; never fails.
    pub fn from_name(name: &str) -> Self {
        match name {
            "GenericError" => Self::GenericError,
            "CommandNotFound" => Self::CommandNotFound,
            "DeviceNotActive" => Self::DeviceNotActive,
            "DeviceNotFound" => Self::DeviceNotFound,
            "KVMMissingCap" => Self::KVMMissingCap,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::GenericError => "GenericError",
            Self::CommandNotFound => "CommandNotFound",
            Self::DeviceNotActive => "DeviceNotActive",
            Self::DeviceNotFound => "DeviceNotFound",
            Self::KVMMissingCap => "KVMMissingCap",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A command's failure as QEMU reported it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{class}: {desc}")]
pub struct QmpError {
    /// Machine-readable class.
    pub class: ErrorClass,
    /// Human-readable description.
    pub desc: String,
}

/// When an event happened, as the server stamped it. `seconds == -1` (and `microseconds == -1`)
/// means the server could not read its clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    /// Seconds since the Unix epoch, or -1.
    pub seconds: i64,
    /// Microseconds within the second (not nanoseconds), or -1.
    pub microseconds: i64,
}

impl Timestamp {
    /// The time as a `SystemTime`, or `None` when unknown (-1) or out of range.
    pub fn to_system_time(self) -> Option<SystemTime> {
        if self.seconds < 0 || !(0..1_000_000).contains(&self.microseconds) {
            return None;
        }
        let d = Duration::from_secs(self.seconds as u64)
            + Duration::from_micros(self.microseconds as u64);
        SystemTime::UNIX_EPOCH.checked_add(d)
    }
}

/// An asynchronous event, untyped. [`crate::generated::TypedEvent`] gives the schema's view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Event name, e.g. `SHUTDOWN`.
    pub event: String,
    /// Event data (an empty object when the event has none).
    #[serde(default = "empty_object")]
    pub data: Value,
    /// When it happened.
    pub timestamp: Timestamp,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

impl Message {
    /// Decode one frame (a complete JSON object) into a message.
    pub fn decode(frame: &[u8]) -> Result<Self, Error> {
        let value: Value = serde_json::from_slice(frame).map_err(|e| Error::InvalidJson {
            reason: e.to_string(),
        })?;
        Self::from_value(value)
    }

    /// Classify an already parsed JSON value.
    pub fn from_value(value: Value) -> Result<Self, Error> {
        let bad = |reason: &'static str, v: &Value| Error::Unrecognized {
            reason,
            snippet: snippet(&v.to_string()),
        };
        let Value::Object(mut obj) = value else {
            return Err(bad("not a JSON object", &value));
        };
        if let Some(g) = obj.remove("QMP") {
            let greeting =
                serde_json::from_value(g.clone()).map_err(|_| bad("malformed greeting", &g))?;
            return Ok(Self::Greeting(greeting));
        }
        let id = obj.remove("id");
        if let Some(value) = obj.remove("return") {
            return Ok(Self::Return { id, value });
        }
        if let Some(e) = obj.remove("error") {
            let class = e.get("class").and_then(Value::as_str);
            let desc = e.get("desc").and_then(Value::as_str);
            let (Some(class), Some(desc)) = (class, desc) else {
                return Err(bad("error without string class and desc", &e));
            };
            let error = QmpError {
                class: ErrorClass::from_name(class),
                desc: desc.to_owned(),
            };
            return Ok(Self::Error { id, error });
        }
        if obj.contains_key("event") {
            let v = Value::Object(obj);
            let event =
                serde_json::from_value(v.clone()).map_err(|_| bad("malformed event", &v))?;
            return Ok(Self::Event(event));
        }
        Err(bad(
            "no QMP, return, error or event member",
            &Value::Object(obj),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classifies() {
        let g = Message::decode(br#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "Debian 1:7.2"}, "capabilities": ["oob"]}}"#).unwrap();
        let Message::Greeting(g) = g else {
            panic!("{g:?}")
        };
        assert!(g.offers_oob());
        assert_eq!(g.version.qemu.to_string(), "7.2.0");

        assert_eq!(
            Message::decode(br#"{"return": {}, "id": 7}"#).unwrap(),
            Message::Return {
                id: Some(json!(7)),
                value: json!({})
            }
        );
        let e =
            Message::decode(br#"{"id": "a", "error": {"class": "CommandNotFound", "desc": "x"}}"#)
                .unwrap();
        assert_eq!(
            e,
            Message::Error {
                id: Some(json!("a")),
                error: QmpError {
                    class: ErrorClass::CommandNotFound,
                    desc: "x".into()
                }
            }
        );
        let e = Message::decode(br#"{"error": {"class": "NewClass", "desc": "y"}}"#).unwrap();
        let Message::Error { id: None, error } = e else {
            panic!()
        };
        assert_eq!(error.class, ErrorClass::Other("NewClass".into()));
        assert_eq!(error.to_string(), "NewClass: y");
    }

    #[test]
    fn event_timestamps() {
        let m = Message::decode(
            br#"{"timestamp": {"seconds": 1700000000, "microseconds": 250000}, "event": "STOP"}"#,
        )
        .unwrap();
        let Message::Event(e) = m else { panic!() };
        assert_eq!(e.data, json!({}));
        let t = e.timestamp.to_system_time().unwrap();
        let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(since, Duration::from_millis(1_700_000_000_250));
        let m = Message::decode(br#"{"timestamp": {"seconds": -1, "microseconds": -1}, "event": "X", "data": {"a": 1}}"#).unwrap();
        let Message::Event(e) = m else { panic!() };
        assert_eq!(
            e.timestamp,
            Timestamp {
                seconds: -1,
                microseconds: -1
            }
        );
        assert_eq!(e.timestamp.to_system_time(), None);
    }

    #[test]
    fn rejects_bad_messages() {
        for bad in [
            &br#"[1]"#[..],
            br#"{"foo": 1}"#,
            br#"{"error": {"class": 3}}"#,
            br#"{"event": 5, "timestamp": {"seconds": 1, "microseconds": 1}}"#,
            br#"{"event": "X"}"#,
            br#"{"QMP": {}}"#,
            br#"{"return": "#,
        ] {
            assert!(
                Message::decode(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
