//! The fixed packet header and the protocol's size limits.
//!
//! Every libvirt RPC packet is a 4-byte big-endian length word (counting itself), a 24-byte
//! header of six 32-bit words, an fd-count word for the two `*_WITH_FDS` types, then the payload.
//! Source: `src/rpc/virnetprotocol.x` (`struct virNetMessageHeader`, the `virNetMessageType` and
//! `virNetMessageStatus` enums and the `VIR_NET_MESSAGE_*` constants) and `docs/rpc.rst` of
//! libvirt 11.3.0.

use crate::Error;

/// Largest serialised message (header + fd count + payload), not counting the length word.
/// `VIR_NET_MESSAGE_MAX` in `virnetprotocol.x` (32 MiB); libvirt's `virNetMessageDecodeLength`
/// rejects any length word whose value minus 4 exceeds it.
pub const MESSAGE_MAX: u32 = 33_554_432;

/// Initial message buffer size libvirt allocates (`VIR_NET_MESSAGE_INITIAL`, 64 KiB); its
/// encoder doubles the buffer from here until [`MESSAGE_MAX`]. Informational: we size
/// buffers from the length word instead.
pub const MESSAGE_INITIAL: u32 = 65_536;

/// The payload limit of libvirt before 0.9.x (`VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX`, 262 120
/// bytes). libvirtd still sends stream data in chunks of at most this size, and so do we by
/// default (see [`crate::Config::stream_chunk_size`]) for compatibility with old peers.
pub const LEGACY_PAYLOAD_MAX: u32 = 262_120;

/// Size of the serialised header, six 32-bit words (`VIR_NET_MESSAGE_HEADER_MAX`).
pub const HEADER_LEN: u32 = 24;

/// Largest payload after the header (`VIR_NET_MESSAGE_PAYLOAD_MAX` = [`MESSAGE_MAX`] -
/// [`HEADER_LEN`]).
pub const PAYLOAD_MAX: u32 = 33_554_408;

/// Size of the length word (`VIR_NET_MESSAGE_LEN_MAX`); not counted in [`MESSAGE_MAX`].
pub const LEN_WORD: u32 = 4;

/// Largest packet on the wire including its length word: [`MESSAGE_MAX`] + [`LEN_WORD`].
pub const PACKET_MAX: u32 = MESSAGE_MAX + LEN_WORD;

/// Smallest valid packet: the length word plus the header, no payload.
pub const PACKET_MIN: u32 = LEN_WORD + HEADER_LEN;

/// Longest "long string" (`VIR_NET_MESSAGE_STRING_MAX`, 4 MiB), the bound of
/// `virNetMessageNonnullString` and so of every string inside a remote error.
pub const STRING_MAX: u32 = 4_194_304;

/// Most file descriptors one message may carry (`VIR_NET_MESSAGE_NUM_FDS_MAX`); libvirt's
/// `virNetMessageDecodeNumFDs` / `EncodeNumFDs` reject more.
pub const NUM_FDS_MAX: u32 = 32;

/// The keepalive program number (`KEEPALIVE_PROGRAM` in `virkeepaliveprotocol.x`, "keep").
pub const KEEPALIVE_PROGRAM: u32 = crate::generated::keepalive::PROGRAM;
/// The keepalive program version (`KEEPALIVE_PROTOCOL_VERSION`).
pub const KEEPALIVE_VERSION: u32 = crate::generated::keepalive::VERSION;
/// `KEEPALIVE_PROC_PING`: a keepalive request; the receiver answers with a PONG.
pub const KEEPALIVE_PROC_PING: i32 = crate::generated::keepalive::Procedure::Ping as i32;
/// `KEEPALIVE_PROC_PONG`: a keepalive response.
pub const KEEPALIVE_PROC_PONG: i32 = crate::generated::keepalive::Procedure::Pong as i32;

/// `virNetMessageType`: what a packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum MessageType {
    /// `VIR_NET_CALL` (0): client to server, the arguments of a method call.
    Call = 0,
    /// `VIR_NET_REPLY` (1): server to client, the result or error of a method call.
    Reply = 1,
    /// `VIR_NET_MESSAGE` (2): either direction, an asynchronous notification (event, keepalive).
    Message = 2,
    /// `VIR_NET_STREAM` (3): either direction, stream data or stream control.
    Stream = 3,
    /// `VIR_NET_CALL_WITH_FDS` (4): a call that passes file descriptors.
    CallWithFds = 4,
    /// `VIR_NET_REPLY_WITH_FDS` (5): a reply that passes file descriptors.
    ReplyWithFds = 5,
    /// `VIR_NET_STREAM_HOLE` (6): either direction, a hole (sparse region) in a stream.
    StreamHole = 6,
}

impl MessageType {
    /// The wire value.
    pub fn to_i32(self) -> i32 {
        self as i32
    }

    /// Decode a wire value; an unknown value is [`Error::UnknownMessageType`].
    pub fn from_i32(value: i32) -> Result<Self, Error> {
        Ok(match value {
            0 => Self::Call,
            1 => Self::Reply,
            2 => Self::Message,
            3 => Self::Stream,
            4 => Self::CallWithFds,
            5 => Self::ReplyWithFds,
            6 => Self::StreamHole,
            other => return Err(Error::UnknownMessageType { value: other }),
        })
    }

    /// Whether an fd-count word follows the header (`CALL_WITH_FDS`, `REPLY_WITH_FDS`).
    pub fn has_fds(self) -> bool {
        matches!(self, Self::CallWithFds | Self::ReplyWithFds)
    }
}

/// `virNetMessageStatus`: how a packet ends its exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum MessageStatus {
    /// `VIR_NET_OK` (0): calls and events always; a successful reply; a stream's end.
    Ok = 0,
    /// `VIR_NET_ERROR` (1): a failed reply or an aborted stream; a remote error follows when the
    /// server sends it.
    Error = 1,
    /// `VIR_NET_CONTINUE` (2): stream data, more follows.
    Continue = 2,
}

impl MessageStatus {
    /// The wire value.
    pub fn to_i32(self) -> i32 {
        self as i32
    }

    /// Decode a wire value; an unknown value is [`Error::UnknownMessageStatus`].
    pub fn from_i32(value: i32) -> Result<Self, Error> {
        Ok(match value {
            0 => Self::Ok,
            1 => Self::Error,
            2 => Self::Continue,
            other => return Err(Error::UnknownMessageStatus { value: other }),
        })
    }
}

/// `virNetMessageHeader`: the six words after the length word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Program number (e.g. `REMOTE_PROGRAM` 0x20008086).
    pub program: u32,
    /// Program version (1 for every libvirt program).
    pub version: u32,
    /// Procedure number within the program.
    pub procedure: i32,
    /// Packet type.
    pub kind: MessageType,
    /// Serial of the call this packet belongs to (0 for events).
    pub serial: u32,
    /// Packet status.
    pub status: MessageStatus,
}

impl Header {
    /// Append the 24 header bytes to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
    }

    /// The 24 header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN as usize] {
        let mut b = [0u8; HEADER_LEN as usize];
        b[0..4].copy_from_slice(&self.program.to_be_bytes());
        b[4..8].copy_from_slice(&self.version.to_be_bytes());
        b[8..12].copy_from_slice(&self.procedure.to_be_bytes());
        b[12..16].copy_from_slice(&self.kind.to_i32().to_be_bytes());
        b[16..20].copy_from_slice(&self.serial.to_be_bytes());
        b[20..24].copy_from_slice(&self.status.to_i32().to_be_bytes());
        b
    }

    /// Decode the header from the first 24 bytes of `input` (the bytes after the length word).
    /// Unknown type or status values are typed errors; too few bytes is
    /// [`Error::PacketTooShort`].
    pub fn decode(input: &[u8]) -> Result<Self, Error> {
        if input.len() < HEADER_LEN as usize {
            return Err(Error::PacketTooShort {
                len: (input.len() as u64 + u64::from(LEN_WORD)).min(u64::from(u32::MAX)) as u32,
            });
        }
        let word = |i: usize| [input[i], input[i + 1], input[i + 2], input[i + 3]];
        Ok(Self {
            program: u32::from_be_bytes(word(0)),
            version: u32::from_be_bytes(word(4)),
            procedure: i32::from_be_bytes(word(8)),
            kind: MessageType::from_i32(i32::from_be_bytes(word(12)))?,
            serial: u32::from_be_bytes(word(16)),
            status: MessageStatus::from_i32(i32::from_be_bytes(word(20)))?,
        })
    }
}

/// Validate a packet length word the way libvirt's `virNetMessageDecodeLength` does, plus the
/// header-size floor its `virNetMessageDecodeHeader` implies: `len` counts the length word, must
/// be at least [`PACKET_MIN`] and at most `max` (normally [`PACKET_MAX`]).
pub fn check_length(len: u32, max: u32) -> Result<(), Error> {
    if len < PACKET_MIN {
        return Err(Error::PacketTooShort { len });
    }
    if len > max {
        return Err(Error::PacketTooLarge {
            len: u64::from(len),
            max,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_virnetprotocol() {
        assert_eq!(PAYLOAD_MAX, MESSAGE_MAX - HEADER_LEN);
        assert_eq!(PACKET_MAX, 33_554_436);
        assert_eq!(PACKET_MIN, 28);
        assert_eq!(KEEPALIVE_PROGRAM, 0x6b65_6570);
        assert_eq!((KEEPALIVE_PROC_PING, KEEPALIVE_PROC_PONG), (1, 2));
        // The generated virnetprotocol.x constants agree with ours.
        use crate::generated::virnet as v;
        assert_eq!(
            (MESSAGE_MAX, MESSAGE_INITIAL, LEGACY_PAYLOAD_MAX, HEADER_LEN),
            (
                v::VIR_NET_MESSAGE_MAX,
                v::VIR_NET_MESSAGE_INITIAL,
                v::VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX,
                v::VIR_NET_MESSAGE_HEADER_MAX
            )
        );
        assert_eq!(
            (PAYLOAD_MAX, LEN_WORD, STRING_MAX, NUM_FDS_MAX),
            (
                v::VIR_NET_MESSAGE_PAYLOAD_MAX,
                v::VIR_NET_MESSAGE_LEN_MAX,
                v::VIR_NET_MESSAGE_STRING_MAX,
                v::VIR_NET_MESSAGE_NUM_FDS_MAX
            )
        );
    }

    #[test]
    fn header_round_trip_and_rpc_rst_example() {
        // rpc.rst "Method call": program=8, version=1, procedure=3, call, serial 1, ok.
        let h = Header {
            program: 8,
            version: 1,
            procedure: 3,
            kind: MessageType::Call,
            serial: 1,
            status: MessageStatus::Ok,
        };
        let b = h.to_bytes();
        assert_eq!(
            b,
            [0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]
        );
        assert_eq!(Header::decode(&b).unwrap(), h);
    }

    #[test]
    fn unknown_type_and_status_are_typed() {
        let mut b = [0u8; 24];
        b[15] = 7;
        assert_eq!(
            Header::decode(&b),
            Err(Error::UnknownMessageType { value: 7 })
        );
        b[15] = 0;
        b[20] = 0xff;
        b[21] = 0xff;
        b[22] = 0xff;
        b[23] = 0xff;
        assert_eq!(
            Header::decode(&b),
            Err(Error::UnknownMessageStatus { value: -1 })
        );
        assert!(matches!(
            Header::decode(&b[..23]),
            Err(Error::PacketTooShort { .. })
        ));
    }

    #[test]
    fn all_types_and_statuses_round_trip() {
        for v in 0..7 {
            assert_eq!(MessageType::from_i32(v).unwrap().to_i32(), v);
        }
        for v in 0..3 {
            assert_eq!(MessageStatus::from_i32(v).unwrap().to_i32(), v);
        }
        assert!(MessageType::CallWithFds.has_fds());
        assert!(MessageType::ReplyWithFds.has_fds());
        assert!(!MessageType::StreamHole.has_fds());
    }

    #[test]
    fn length_checks_like_libvirt() {
        assert!(check_length(28, PACKET_MAX).is_ok());
        assert!(check_length(PACKET_MAX, PACKET_MAX).is_ok());
        assert_eq!(
            check_length(PACKET_MAX + 1, PACKET_MAX),
            Err(Error::PacketTooLarge {
                len: u64::from(PACKET_MAX) + 1,
                max: PACKET_MAX
            })
        );
        assert_eq!(
            check_length(3, PACKET_MAX),
            Err(Error::PacketTooShort { len: 3 })
        );
        assert_eq!(
            check_length(27, PACKET_MAX),
            Err(Error::PacketTooShort { len: 27 })
        );
    }
}
