//! Typed commands: what the generated code and hand-written helpers implement.

use crate::Error;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A QMP command with typed arguments and return value.
///
/// Every command can also be sent untyped with a name and a `serde_json::Value`; this trait only
/// adds types on top.
pub trait Command: Serialize {
    /// The command's wire name, e.g. `query-status`.
    const NAME: &'static str;
    /// What a successful call returns.
    type Returns: DeserializeOwned;

    /// The `arguments` member: `None` for commands without arguments.
    fn arguments(&self) -> Result<Option<Value>, Error> {
        match serde_json::to_value(self) {
            Ok(Value::Null) => Ok(None),
            Ok(Value::Object(m)) if m.is_empty() => Ok(None),
            Ok(v @ Value::Object(_)) => Ok(Some(v)),
            Ok(_) => Err(Error::ArgumentsNotObject {
                command: Self::NAME.to_owned(),
                got: "not an object",
            }),
            Err(e) => Err(Error::BadReturn {
                command: Self::NAME.to_owned(),
                reason: e.to_string(),
            }),
        }
    }

    /// Decode a successful reply's value.
    fn decode_return(value: Value) -> Result<Self::Returns, Error> {
        serde_json::from_value(value).map_err(|e| Error::BadReturn {
            command: Self::NAME.to_owned(),
            reason: e.to_string(),
        })
    }
}

/// The return value of commands that return nothing (QEMU sends `{}`); accepts any value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Empty;

impl<'de> Deserialize<'de> for Empty {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Empty)
    }
}

/// Serde for generated QAPI enums: a string on the wire; values the schema lacks become
/// `Unknown` instead of failing.
#[doc(hidden)]
#[macro_export]
macro_rules! qapi_enum_serde {
    ($t:ident) => {
        impl ::serde::Serialize for $t {
            fn serialize<S: ::serde::Serializer>(
                &self,
                s: S,
            ) -> ::std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> ::serde::Deserialize<'de> for $t {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                d: D,
            ) -> ::std::result::Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(d)?;
                Ok(Self::from_wire(&s))
            }
        }
    };
}
