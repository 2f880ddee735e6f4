//! What the connection hands to the application: call results, server messages (events),
//! stream notifications and the close notice.

use std::os::fd::OwnedFd;

use bytes::Bytes;

use crate::header::Header;
use crate::{CallId, CloseReason, Error};

/// The successful result of a call: the reply body (the procedure's `*_ret`, XDR) and any file
/// descriptors passed with it.
#[derive(Debug)]
pub struct Reply {
    /// The reply's header.
    pub header: Header,
    /// The XDR-encoded return value (empty for procedures returning nothing).
    pub body: Bytes,
    /// Descriptors received with a `REPLY_WITH_FDS`, in order.
    pub fds: Vec<OwnedFd>,
}

impl Reply {
    /// Decode the body as `T` (normally the procedure's generated `*_ret` type; `()` for none).
    /// Strings and opaques are zero-copy slices of the body where `T` uses `xdr::Opaque`.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        self.decode_with(xdr::DecodeOptions::new())
    }

    /// [`Reply::decode`] with [`xdr::DecodeOptions`] (e.g. [`xdr::Utf8::Lossy`]).
    pub fn decode_with<T: serde::de::DeserializeOwned>(
        &self,
        options: xdr::DecodeOptions,
    ) -> Result<T, Error> {
        xdr::from_shared_with(&self.body, options)
            .map_err(|e| Error::decode(format!("reply of procedure {}", self.header.procedure), e))
    }
}

/// An asynchronous server message (`VIR_NET_MESSAGE`): an event of any program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerMessage {
    /// Program number.
    pub program: u32,
    /// Program version.
    pub version: u32,
    /// Procedure number (names the event kind, e.g. 318 = domain lifecycle with callback id).
    pub procedure: i32,
    /// For callback-id events (see [`callback_event_family`]), the `callbackID` that starts the
    /// body; `None` for other events or a body too short to hold it.
    pub callback_id: Option<i32>,
    /// The token registered with `Connection::route_callback` for this family and callback id,
    /// if any.
    pub route: Option<u64>,
    /// The XDR-encoded event payload (the procedure's `*_msg`, `callbackID` included).
    pub body: Bytes,
}

impl ServerMessage {
    /// Decode the body as `T` (the event's generated `*_msg` type).
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        self.decode_with(xdr::DecodeOptions::new())
    }

    /// [`ServerMessage::decode`] with [`xdr::DecodeOptions`] (e.g. [`xdr::Utf8::Lossy`]).
    pub fn decode_with<T: serde::de::DeserializeOwned>(
        &self,
        options: xdr::DecodeOptions,
    ) -> Result<T, Error> {
        xdr::from_shared_with(&self.body, options)
            .map_err(|e| Error::decode(format!("event of procedure {}", self.procedure), e))
    }
}

/// One thing the application must know about; drain with `Connection::poll_event`.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A call finished: its reply, its remote error ([`Error::Remote`]), a timeout, or the
    /// connection's end ([`Error::Closed`]). Exactly one per started call that was not abandoned.
    Reply {
        /// The call.
        id: CallId,
        /// Its outcome.
        result: Result<Reply, Error>,
    },
    /// A server message (event).
    Message(ServerMessage),
    /// Server messages were dropped because the queue was full (`Config::message_queue_limit`);
    /// emitted once, in order, before the next message that fits.
    MessagesDropped {
        /// How many were dropped since the last notice.
        count: u64,
    },
    /// The stream has new items (data, hole, EOF) to read with `Connection::stream_recv`; sent
    /// when its queue goes from empty to non-empty.
    StreamReadable {
        /// The stream (the serial of the call that opened it).
        id: CallId,
    },
    /// The server confirmed our `stream_finish`: the stream ended cleanly.
    StreamFinished {
        /// The stream.
        id: CallId,
    },
    /// The stream failed: server error, failed opening call, or the connection closed. Items
    /// queued before the failure can still be read, then `stream_recv` returns this error.
    StreamFailed {
        /// The stream.
        id: CallId,
        /// Why.
        error: Error,
    },
    /// The connection is closed; nothing more will happen. Always the last event.
    Closed(CloseReason),
}

/// The event families whose messages start with `int callbackID` and are registered with
/// their own `*_CALLBACK_REGISTER_ANY` procedure (callback ids are allocated per family by the
/// server, so routing keys are family + id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EventFamily {
    /// `REMOTE_PROC_DOMAIN_EVENT_CALLBACK_*` and the newer domain events.
    Domain,
    /// `REMOTE_PROC_NETWORK_EVENT_*`.
    Network,
    /// `REMOTE_PROC_STORAGE_POOL_EVENT_*`.
    StoragePool,
    /// `REMOTE_PROC_NODE_DEVICE_EVENT_*`.
    NodeDevice,
    /// `REMOTE_PROC_SECRET_EVENT_*`.
    Secret,
    /// `QEMU_PROC_DOMAIN_MONITOR_EVENT` of the QEMU program.
    QemuMonitor,
}

/// `REMOTE_PROGRAM` (0x20008086).
pub const REMOTE_PROGRAM: u32 = crate::generated::remote::PROGRAM;
/// `QEMU_PROGRAM` (0x20008087).
pub const QEMU_PROGRAM: u32 = crate::generated::qemu::PROGRAM;

/// Which family a server message belongs to when its payload starts with `int callbackID`.
///
/// Source: libvirt 11.3.0 `remote_protocol.x` / `qemu_protocol.x`: every `*_msg` struct whose
/// first member is `int callbackID`, mapped to its procedure number (listed by the unit test
/// `callback_table_matches_protocol_files`, which re-derives it from the `.x` files when they
/// are available).
pub fn callback_event_family(program: u32, procedure: i32) -> Option<EventFamily> {
    use EventFamily::*;
    match program {
        REMOTE_PROGRAM => Some(match procedure {
            318..=333 | 339 | 346 | 348 | 354 | 359 | 363 | 367 | 379 | 385 | 423 | 438 | 453 => {
                Domain
            }
            315 | 446 => Network,
            370 | 373 => StoragePool,
            376 | 377 => NodeDevice,
            382 | 383 => Secret,
            _ => return None,
        }),
        QEMU_PROGRAM if procedure == 6 => Some(QemuMonitor),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Re-derive the callback-id procedures from the `.x` files (../shared by default, or
    /// `LIBVIRT_PROTOCOL_DIR`) and compare with the table.
    #[test]
    fn callback_table_matches_protocol_files() {
        let dir = std::env::var("LIBVIRT_PROTOCOL_DIR").unwrap_or_else(|_| {
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/libvirt-protocol/11.3.0"
            )
            .into()
        });
        let mut checked = 0;
        for (file, program, prefix) in [
            ("remote_protocol.x", REMOTE_PROGRAM, "REMOTE_PROC_"),
            ("qemu_protocol.x", QEMU_PROGRAM, "QEMU_PROC_"),
        ] {
            let text = std::fs::read_to_string(format!("{dir}/{file}")).unwrap_or_else(|e| {
                panic!("{dir}/{file}: {e} (set LIBVIRT_PROTOCOL_DIR to libvirt's .x files)")
            });
            let lines: Vec<&str> = text.lines().collect();
            let mut with_cb = std::collections::HashSet::new();
            for (i, l) in lines.iter().enumerate() {
                let l = l.trim();
                if let Some(rest) = l.strip_prefix("struct ") {
                    let name = rest.trim_end_matches('{').trim();
                    if name.ends_with("_msg")
                        && lines
                            .get(i + 1)
                            .is_some_and(|n| n.trim() == "int callbackID;")
                    {
                        let base = name
                            .trim_end_matches("_msg")
                            .trim_start_matches("remote_")
                            .trim_start_matches("qemu_")
                            .to_uppercase();
                        with_cb.insert(format!("{prefix}{base}"));
                    }
                }
            }
            for l in &lines {
                let l = l.trim();
                if let Some((name, num)) = l.split_once(" = ") {
                    if !name.starts_with(prefix) {
                        continue;
                    }
                    let Ok(num) = num.trim_end_matches(',').trim().parse::<i32>() else {
                        continue;
                    };
                    let expected = with_cb.contains(name);
                    assert_eq!(
                        callback_event_family(program, num).is_some(),
                        expected,
                        "{name} = {num}"
                    );
                    checked += usize::from(expected);
                }
            }
        }
        assert_eq!(checked, 37);
    }
}
