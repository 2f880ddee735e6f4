//! Typed commands: what the generated code and hand-written helpers implement.

use crate::Error;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A QMP command with typed arguments and return value.
///
/// Every command can also be sent untyped with a name and a `serde_json::Value`; this trait only
/// adds types on top.
///
/// A generated command whose arguments are one named type (QAPI `'boxed': true`, such as
/// `object-add` taking `ObjectOptions`) has that type as a required `arguments` field, and no
/// `Default`: a default would send the command without its required members.
///
/// ```compile_fail
/// let _ = qmp_proto::generated::commands::ObjectAdd::default();
/// ```
///
/// ```
/// use qmp_proto::generated::{commands::ObjectAdd, types::{ObjectOptions, ObjectType}};
/// use qmp_proto::Command;
/// let mut props = serde_json::Map::new();
/// props.insert("size".into(), 1048576.into());
/// let add = ObjectAdd {
///     arguments: ObjectOptions { id: "m0".into(), qom_type: ObjectType::MemoryBackendRam, branch: props },
/// };
/// assert_eq!(
///     add.arguments().unwrap(),
///     Some(serde_json::json!({"id": "m0", "qom-type": "memory-backend-ram", "size": 1048576}))
/// );
/// ```
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

#[cfg(test)]
mod drift_tests {
    //! The generated types against replies from QEMU versions other than the schema's.
    use crate::generated::{commands, events, types, TypedEvent};
    use crate::{Command, Error, Event};
    use serde_json::json;

    #[test]
    fn unknown_enum_value_is_kept_and_round_trips() {
        let s: types::StatusInfo = commands::QueryStatus::decode_return(
            json!({"running": false, "status": "hibernating"}),
        )
        .unwrap();
        assert_eq!(s.status, types::RunState::Unknown("hibernating".into()));
        assert_eq!(s.status.as_str(), "hibernating");
        assert_eq!(serde_json::to_value(&s).unwrap()["status"], "hibernating");
        // Known values still map to their variant.
        assert_eq!(
            types::RunState::from_wire("prelaunch"),
            types::RunState::Prelaunch
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        // QEMU 7.2's query-status also sends `singlestep`, which 10.0 dropped.
        let s = commands::QueryStatus::decode_return(
            json!({"running": true, "singlestep": false, "status": "running", "new-thing": [1]}),
        )
        .unwrap();
        assert!(s.running);
        assert_eq!(s.status, types::RunState::Running);
    }

    #[test]
    fn member_newer_than_its_type_may_be_missing() {
        // `acpi` came in 8.0; a 7.2 query-machines entry lacks it.
        let m = commands::QueryMachines::decode_return(json!([{
            "name": "pc-q35-7.2", "cpu-max": 288, "hotpluggable-cpus": true,
            "numa-mem-supported": false, "deprecated": false, "default-ram-id": "pc.ram"
        }]))
        .unwrap();
        assert_eq!(m[0].acpi, None);
        assert_eq!(m[0].name, "pc-q35-7.2");
        // SHUTDOWN's `guest` (2.10) and `reason` (4.0) are newer than the event.
        let e = Event {
            event: "SHUTDOWN".into(),
            data: json!({}),
            timestamp: crate::Timestamp {
                seconds: 1,
                microseconds: 0,
            },
        };
        match TypedEvent::from_event(&e).unwrap() {
            TypedEvent::Shutdown(d) => assert_eq!((d.guest, d.reason), (None, None)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_optional_field_is_none_and_missing_required_field_is_an_error() {
        let v = commands::QueryName::decode_return(json!({})).unwrap();
        assert_eq!(v.name, None);
        // `running` has been in query-status since the start: its absence is an error.
        let err = commands::QueryStatus::decode_return(json!({"status": "running"})).unwrap_err();
        assert!(
            matches!(&err, Error::BadReturn { command, reason }
                if command == "query-status" && reason.contains("running")),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_event_kept_raw_and_bad_data_is_typed() {
        let e = Event {
            event: "FROM_THE_FUTURE".into(),
            data: json!({"x": 1}),
            timestamp: crate::Timestamp {
                seconds: 5,
                microseconds: 6,
            },
        };
        assert!(!events::ALL.contains(&"FROM_THE_FUTURE"));
        assert_eq!(
            TypedEvent::from_event(&e).unwrap(),
            TypedEvent::Unknown(e.clone())
        );
        let bad = Event {
            event: "DEVICE_DELETED".into(),
            data: json!({"device": 7}),
            ..e
        };
        let err = TypedEvent::from_event(&bad).unwrap_err();
        assert!(
            matches!(&err, Error::BadEvent { event, .. } if event == "DEVICE_DELETED"),
            "{err:?}"
        );
    }

    #[test]
    fn commands_serialize_their_arguments() {
        assert_eq!(commands::QueryStatus {}.arguments().unwrap(), None);
        let del = commands::DeviceDel { id: "d1".into() };
        assert_eq!(del.arguments().unwrap(), Some(json!({"id": "d1"})));
        let mut props = serde_json::Map::new();
        props.insert("drive".into(), json!("disk0"));
        let add = commands::DeviceAdd {
            driver: "virtio-blk-pci".into(),
            id: Some("vblk0".into()),
            bus: None,
            properties: props,
        };
        assert_eq!(
            add.arguments().unwrap(),
            Some(json!({"driver": "virtio-blk-pci", "id": "vblk0", "drive": "disk0"}))
        );
    }
}
