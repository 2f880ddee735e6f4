//! The crate's one error type.

use std::time::Duration;

use crate::header::{Header, MessageType};
use crate::remote_error::RemoteError;

/// Everything that can go wrong in framing, decoding or the connection state machine.
///
/// Framing errors ([`PacketTooShort`](Self::PacketTooShort) ... ) are fatal for a connection: the
/// byte stream has lost sync. [`Remote`](Self::Remote) is a normal failed call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A length word below the 28-byte minimum (length word + header), or a `*_WITH_FDS` packet
    /// too short to hold its fd count. The peer does not speak libvirt RPC (or the stream is
    /// out of sync).
    #[error("packet length {len} is too small: a libvirt packet has at least 28 bytes (length word + header)")]
    PacketTooShort {
        /// The length (length word included).
        len: u32,
    },
    /// A packet longer than the limit (libvirt's `VIR_NET_MESSAGE_MAX` + 4 unless lowered).
    #[error("packet length {len} exceeds the maximum of {max} bytes (VIR_NET_MESSAGE_MAX + length word)")]
    PacketTooLarge {
        /// The length (length word included).
        len: u64,
        /// The limit that was exceeded.
        max: u32,
    },
    /// The header's type word is not a `virNetMessageType`.
    #[error("unknown message type {value} in packet header (expected 0..=6)")]
    UnknownMessageType {
        /// The wire value.
        value: i32,
    },
    /// The header's status word is not a `virNetMessageStatus`.
    #[error("unknown message status {value} in packet header (expected 0..=2)")]
    UnknownMessageStatus {
        /// The wire value.
        value: i32,
    },
    /// More file descriptors than `VIR_NET_MESSAGE_NUM_FDS_MAX`.
    #[error("{count} file descriptors in one message; libvirt allows at most {max}")]
    TooManyFds {
        /// Descriptors announced or requested.
        count: u32,
        /// The limit.
        max: u32,
    },
    /// File descriptors given for a packet type that cannot carry them.
    #[error("a {kind:?} packet cannot carry file descriptors (use CallWithFds / ReplyWithFds)")]
    FdsWithoutFdType {
        /// The packet type.
        kind: MessageType,
    },
    /// A packet announced file descriptors that the driver did not deliver with its carrier
    /// bytes (see `Connection::handle_fds`).
    #[error("packet serial {serial} announced {expected} file descriptors but only {available} were received")]
    MissingFds {
        /// Serial of the packet.
        serial: u32,
        /// Descriptors announced.
        expected: u32,
        /// Descriptors available.
        available: usize,
    },
    /// A structurally valid packet that makes no sense here (e.g. a reply for a serial never
    /// sent, a CALL from the server, a reply with status CONTINUE). Fatal, as in libvirt's client.
    #[error("unexpected packet (program {:#x}, procedure {}, type {:?}, serial {}, status {:?}): {reason}",
            .header.program, .header.procedure, .header.kind, .header.serial, .header.status)]
    UnexpectedPacket {
        /// The offending header.
        header: Header,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// An XDR payload (call arguments, reply, remote error, event, stream hole) failed to
    /// encode or decode.
    #[error("cannot {op} {what}: {source}")]
    Xdr {
        /// "decode" or "encode".
        op: &'static str,
        /// Which payload (a type name).
        what: String,
        /// The codec's error, with the field path.
        #[source]
        source: xdr::Error,
    },
    /// The call failed on the server; the remote error says why.
    #[error("{0}")]
    Remote(Box<RemoteError>),
    /// The connection is closed (or was closed while this call or stream was pending).
    #[error("connection closed: {0}")]
    Closed(CloseReason),
    /// The call's deadline passed before its reply arrived; the late reply will be discarded.
    #[error("call serial {serial} timed out")]
    TimedOut {
        /// Serial of the call.
        serial: u32,
    },
    /// A stream operation on a serial that has no open stream (never opened, or already
    /// finished, aborted or failed).
    #[error("no open stream with serial {serial}")]
    NoSuchStream {
        /// The stream's serial.
        serial: u32,
    },
    /// A stream operation that the stream's state forbids (e.g. sending after finish).
    #[error("stream serial {serial}: {reason}")]
    StreamState {
        /// The stream's serial.
        serial: u32,
        /// What is not allowed.
        reason: &'static str,
    },
    /// Every serial number is in use by a pending call (2^32 - 1 of them).
    #[error("no free call serial: too many pending calls")]
    SerialsExhausted,
}

/// Why a connection closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed the byte stream.
    #[error("end of file from the server")]
    Eof,
    /// The driver reported an IO error.
    #[error("I/O error: {0}")]
    Io(String),
    /// Keepalive: the peer stayed silent through `count` PINGs sent `interval` apart.
    #[error("keepalive timeout: no data from the server through {count} pings at {interval:?} intervals")]
    KeepaliveTimeout {
        /// Unanswered PINGs.
        count: u32,
        /// Interval between PINGs.
        interval: Duration,
    },
    /// The peer violated the protocol (the message says how).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The application closed the connection.
    #[error("closed locally")]
    Local,
}

impl Error {
    /// An XDR decode error of payload `what`.
    pub fn decode(what: impl Into<String>, source: xdr::Error) -> Self {
        Self::Xdr {
            op: "decode",
            what: what.into(),
            source,
        }
    }

    /// An XDR encode error of payload `what`.
    pub fn encode(what: impl Into<String>, source: xdr::Error) -> Self {
        Self::Xdr {
            op: "encode",
            what: what.into(),
            source,
        }
    }

    /// The remote error, when this is one.
    pub fn remote(&self) -> Option<&RemoteError> {
        match self {
            Self::Remote(r) => Some(r),
            _ => None,
        }
    }
}
