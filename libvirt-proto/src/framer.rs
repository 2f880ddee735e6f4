//! The incremental packet decoder: push any split of bytes, take whole packets out.

use bytes::{Buf, BytesMut};

use crate::header::{check_length, Header, HEADER_LEN, LEN_WORD, NUM_FDS_MAX, PACKET_MAX};
use crate::packet::Packet;
use crate::Error;

/// Splits a byte stream into [`Packet`]s.
///
/// Feed it with [`push`](Self::push) (copies) or [`push_bytes`](Self::push_bytes) (takes a
/// buffer, zero-copy when nothing is pending), then call [`next_packet`](Self::next_packet) until
/// it returns `Ok(None)`. Bodies are zero-copy slices of the receive buffer.
///
/// The length word is validated (like libvirt's `virNetMessageDecodeLength`: at least the header,
/// at most `VIR_NET_MESSAGE_MAX` + 4) before any capacity is reserved for the packet; the header
/// is validated as soon as the packet is complete. After a `*_WITH_FDS` packet announcing `n`
/// descriptors, the `n` carrier bytes that follow on the stream (one per descriptor, sent with
/// `SCM_RIGHTS`) are consumed and the packet is released only once they are buffered too.
///
/// Any error is final: the stream has lost sync, so every later call returns the same error.
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    max_packet: u32,
    failed: Option<Error>,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framer {
    /// A framer accepting packets up to libvirt's limit ([`PACKET_MAX`]).
    pub fn new() -> Self {
        Self::with_max_packet(PACKET_MAX)
    }

    /// A framer accepting packets up to `max_packet` bytes (length word included), never more
    /// than [`PACKET_MAX`].
    pub fn with_max_packet(max_packet: u32) -> Self {
        Self {
            buf: BytesMut::new(),
            max_packet: max_packet.min(PACKET_MAX),
            failed: None,
        }
    }

    /// Append received bytes.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// Append a received buffer; when nothing is pending the buffer is adopted without a copy.
    pub fn push_bytes(&mut self, data: BytesMut) {
        if self.failed.is_some() {
            return;
        }
        if self.buf.is_empty() {
            self.buf = data;
        } else {
            self.buf.unsplit(data);
        }
    }

    /// Number of bytes buffered and not yet returned as packets.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether a framing error happened (the framer is then unusable).
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// The next whole packet, `Ok(None)` if more bytes are needed, or a typed error (final).
    pub fn next_packet(&mut self) -> Result<Option<Packet>, Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match decode_one(&mut self.buf, self.max_packet) {
            Ok(p) => Ok(p),
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = BytesMut::new();
                Err(e)
            }
        }
    }
}

/// Decode one packet from the front of `src` (tokio-util `Decoder` style): `Ok(None)` until a
/// whole packet (and its fd carrier bytes) is buffered, reserving the packet's capacity only
/// after its length word passed the checks. On success the packet's bytes are split off `src`.
pub fn decode_one(src: &mut BytesMut, max_packet: u32) -> Result<Option<Packet>, Error> {
    if src.len() < LEN_WORD as usize {
        return Ok(None);
    }
    let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]);
    check_length(len, max_packet)?;
    let len = len as usize;
    if src.len() < len {
        // Validate the header early when we have it: a bad type/status fails fast.
        if src.len() >= (LEN_WORD + HEADER_LEN) as usize {
            Header::decode(&src[LEN_WORD as usize..])?;
        }
        src.reserve(len - src.len());
        return Ok(None);
    }
    let header = Header::decode(&src[LEN_WORD as usize..len])?;
    let mut carriers = 0usize;
    let mut num_fds = 0u32;
    let mut body_start = (LEN_WORD + HEADER_LEN) as usize;
    if header.kind.has_fds() {
        if len < body_start + 4 {
            return Err(Error::PacketTooShort { len: len as u32 });
        }
        num_fds = u32::from_be_bytes([
            src[body_start],
            src[body_start + 1],
            src[body_start + 2],
            src[body_start + 3],
        ]);
        if num_fds > NUM_FDS_MAX {
            return Err(Error::TooManyFds {
                count: num_fds,
                max: NUM_FDS_MAX,
            });
        }
        body_start += 4;
        carriers = num_fds as usize;
        if src.len() < len + carriers {
            return Ok(None);
        }
    }
    let mut packet = src.split_to(len).freeze();
    src.advance(carriers);
    packet.advance(body_start);
    Ok(Some(Packet {
        header,
        num_fds,
        body: packet,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{MessageStatus, MessageType};
    use crate::packet::encode_packet;
    use proptest::prelude::*;

    fn hdr(kind: MessageType, status: MessageStatus, serial: u32) -> Header {
        Header {
            program: 0x2000_8086,
            version: 1,
            procedure: 4,
            kind,
            serial,
            status,
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        let mut wire = Vec::new();
        encode_packet(
            &hdr(MessageType::Reply, MessageStatus::Ok, 1),
            0,
            b"abcdefgh",
            &mut wire,
        )
        .unwrap();
        encode_packet(
            &hdr(MessageType::Message, MessageStatus::Ok, 0),
            0,
            b"",
            &mut wire,
        )
        .unwrap();
        let mut f = Framer::new();
        let mut got = Vec::new();
        for b in &wire {
            f.push(&[*b]);
            while let Some(p) = f.next_packet().unwrap() {
                got.push(p);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(&got[0].body[..], b"abcdefgh");
        assert_eq!(got[1].header.kind, MessageType::Message);
        assert!(got[1].body.is_empty());
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn fd_carrier_bytes_are_consumed() {
        let mut wire = Vec::new();
        encode_packet(
            &hdr(MessageType::ReplyWithFds, MessageStatus::Ok, 1),
            2,
            b"xyzw",
            &mut wire,
        )
        .unwrap();
        wire.extend_from_slice(&[0, 0]); // carriers
        encode_packet(
            &hdr(MessageType::Reply, MessageStatus::Ok, 2),
            0,
            b"",
            &mut wire,
        )
        .unwrap();
        let mut f = Framer::new();
        f.push(&wire[..wire.len() - 29]);
        assert_eq!(f.next_packet().unwrap(), None, "waits for the carriers");
        f.push(&wire[wire.len() - 29..]);
        let p = f.next_packet().unwrap().unwrap();
        assert_eq!(p.num_fds, 2);
        assert_eq!(&p.body[..], b"xyzw");
        let p = f.next_packet().unwrap().unwrap();
        assert_eq!(p.header.serial, 2);
        assert_eq!(f.next_packet().unwrap(), None);
    }

    #[test]
    fn oversized_length_rejected_before_reserving() {
        let mut f = Framer::new();
        f.push(&(PACKET_MAX + 1).to_be_bytes());
        let e = f.next_packet().unwrap_err();
        assert!(matches!(e, Error::PacketTooLarge { .. }));
        assert!(f.buf.capacity() < 1024);
        // Sticky.
        f.push(&[0; 100]);
        assert_eq!(f.next_packet().unwrap_err(), e);
        assert!(f.is_failed());
    }

    #[test]
    fn lower_max_and_small_length() {
        let mut f = Framer::with_max_packet(100);
        f.push(&101u32.to_be_bytes());
        assert_eq!(
            f.next_packet().unwrap_err(),
            Error::PacketTooLarge { len: 101, max: 100 }
        );
        let mut f = Framer::new();
        f.push(&4u32.to_be_bytes());
        assert_eq!(
            f.next_packet().unwrap_err(),
            Error::PacketTooShort { len: 4 }
        );
    }

    #[test]
    fn bad_type_fails_before_body_arrives() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&1000u32.to_be_bytes());
        let mut h = hdr(MessageType::Reply, MessageStatus::Ok, 1).to_bytes();
        h[15] = 9;
        wire.extend_from_slice(&h);
        let mut f = Framer::new();
        f.push(&wire);
        assert_eq!(
            f.next_packet().unwrap_err(),
            Error::UnknownMessageType { value: 9 }
        );
    }

    #[test]
    fn fd_packet_without_count_or_too_many_fds() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&28u32.to_be_bytes());
        wire.extend_from_slice(&hdr(MessageType::ReplyWithFds, MessageStatus::Ok, 1).to_bytes());
        let mut f = Framer::new();
        f.push(&wire);
        assert_eq!(
            f.next_packet().unwrap_err(),
            Error::PacketTooShort { len: 28 }
        );
        let mut wire = Vec::new();
        wire.extend_from_slice(&32u32.to_be_bytes());
        wire.extend_from_slice(&hdr(MessageType::ReplyWithFds, MessageStatus::Ok, 1).to_bytes());
        wire.extend_from_slice(&33u32.to_be_bytes());
        let mut f = Framer::new();
        f.push(&wire);
        assert_eq!(
            f.next_packet().unwrap_err(),
            Error::TooManyFds { count: 33, max: 32 }
        );
    }

    #[test]
    fn push_bytes_adopts_buffer() {
        let mut wire = Vec::new();
        encode_packet(
            &hdr(MessageType::Reply, MessageStatus::Ok, 1),
            0,
            b"1234",
            &mut wire,
        )
        .unwrap();
        let mut f = Framer::new();
        f.push_bytes(BytesMut::from(&wire[..10]));
        f.push_bytes(BytesMut::from(&wire[10..]));
        assert_eq!(&f.next_packet().unwrap().unwrap().body[..], b"1234");
    }

    fn arb_type() -> impl Strategy<Value = MessageType> {
        (0i32..7).prop_map(|v| MessageType::from_i32(v).unwrap())
    }

    fn arb_status() -> impl Strategy<Value = MessageStatus> {
        (0i32..3).prop_map(|v| MessageStatus::from_i32(v).unwrap())
    }

    prop_compose! {
        fn arb_packet()(program in any::<u32>(), version in any::<u32>(), procedure in any::<i32>(),
                        kind in arb_type(), serial in any::<u32>(), status in arb_status(),
                        fds in 0u32..=32, body in proptest::collection::vec(any::<u8>(), 0..300))
                        -> Packet {
            let header = Header { program, version, procedure, kind, serial, status };
            Packet { header, num_fds: if kind.has_fds() { fds } else { 0 }, body: body.into() }
        }
    }

    proptest! {
        #[test]
        fn any_split_yields_same_packets(
            packets in proptest::collection::vec(arb_packet(), 0..8),
            cuts in proptest::collection::vec(any::<usize>(), 0..20),
        ) {
            let mut wire = Vec::new();
            for p in &packets {
                p.encode(&mut wire).unwrap();
                wire.extend(std::iter::repeat_n(0u8, p.num_fds as usize));
            }
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (wire.len() + 1)).collect();
            cuts.push(0);
            cuts.push(wire.len());
            cuts.sort_unstable();
            let mut f = Framer::new();
            let mut got = Vec::new();
            for w in cuts.windows(2) {
                if w[0] % 2 == 0 {
                    f.push(&wire[w[0]..w[1]]);
                } else {
                    f.push_bytes(BytesMut::from(&wire[w[0]..w[1]]));
                }
                while let Some(p) = f.next_packet().unwrap() {
                    got.push(p);
                }
            }
            prop_assert_eq!(got, packets);
            prop_assert_eq!(f.buffered(), 0);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2000),
                                    split in any::<usize>()) {
            let mut f = Framer::new();
            let split = split % (data.len() + 1);
            f.push(&data[..split]);
            let mut n = 0;
            while let Ok(Some(_)) = f.next_packet() { n += 1; }
            f.push(&data[split..]);
            while let Ok(Some(_)) = f.next_packet() { n += 1; }
            prop_assert!(n <= data.len() / 28);
        }
    }
}
