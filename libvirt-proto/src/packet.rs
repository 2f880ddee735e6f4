//! Whole packets: encoding (length word + header + fd count + body) and the decoded form.

use bytes::Bytes;

use crate::header::{Header, HEADER_LEN, LEN_WORD, NUM_FDS_MAX, PACKET_MAX};
use crate::Error;

/// One decoded packet. The body is a zero-copy slice of the receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The header.
    pub header: Header,
    /// For `CALL_WITH_FDS` / `REPLY_WITH_FDS`: the number of file descriptors announced after
    /// the header (each travels out of band with one carrier byte after the packet). Always 0 for
    /// the other types.
    pub num_fds: u32,
    /// The payload after the header (and after the fd count): XDR for calls, replies, errors and
    /// events; raw bytes for stream data.
    pub body: Bytes,
}

impl Packet {
    /// A packet of any type without file descriptors.
    pub fn new(header: Header, body: impl Into<Bytes>) -> Self {
        Self {
            header,
            num_fds: 0,
            body: body.into(),
        }
    }

    /// Append this packet's wire form to `out` (see [`encode_packet`]).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        encode_packet(&self.header, self.num_fds, &self.body, out)
    }

    /// This packet's wire form.
    pub fn to_vec(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(self.wire_len());
        self.encode(&mut out)?;
        Ok(out)
    }

    /// Length of the wire form (length word, header, fd count if any, body), not counting the
    /// fd carrier bytes.
    pub fn wire_len(&self) -> usize {
        let fds = if self.header.kind.has_fds() { 4 } else { 0 };
        (LEN_WORD + HEADER_LEN) as usize + fds + self.body.len()
    }
}

/// Append one packet to `out`: a placeholder length word, the header, the fd count word when the
/// type is `*_WITH_FDS`, then whatever `body` appends, then the length word is patched. On any
/// error `out` is left as it was.
///
/// Errors: [`Error::TooManyFds`] when `num_fds` exceeds [`NUM_FDS_MAX`] (libvirt's
/// `virNetMessageEncodeNumFDs` check), [`Error::FdsWithoutFdType`] when `num_fds > 0` on a type that
/// cannot carry them, [`Error::PacketTooLarge`] when the result exceeds [`PACKET_MAX`] (libvirt's
/// encoder limit `VIR_NET_MESSAGE_MAX` + length word), and whatever `body` returns.
pub fn encode_packet_with(
    header: &Header,
    num_fds: u32,
    out: &mut Vec<u8>,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), Error>,
) -> Result<(), Error> {
    if num_fds > NUM_FDS_MAX {
        return Err(Error::TooManyFds {
            count: num_fds,
            max: NUM_FDS_MAX,
        });
    }
    if num_fds > 0 && !header.kind.has_fds() {
        return Err(Error::FdsWithoutFdType { kind: header.kind });
    }
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    header.write_to(out);
    if header.kind.has_fds() {
        out.extend_from_slice(&num_fds.to_be_bytes());
    }
    if let Err(e) = body(out) {
        out.truncate(start);
        return Err(e);
    }
    let len = out.len() - start;
    if len > PACKET_MAX as usize {
        out.truncate(start);
        return Err(Error::PacketTooLarge {
            len: len as u64,
            max: PACKET_MAX,
        });
    }
    out[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Append one packet with an already-encoded body to `out` (see [`encode_packet_with`]).
pub fn encode_packet(
    header: &Header,
    num_fds: u32,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    if body.len() > PACKET_MAX as usize {
        // Refuse before copying anything.
        return Err(Error::PacketTooLarge {
            len: body.len() as u64 + u64::from(LEN_WORD + HEADER_LEN),
            max: PACKET_MAX,
        });
    }
    encode_packet_with(header, num_fds, out, |out| {
        out.extend_from_slice(body);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{MessageStatus, MessageType};

    fn hdr(kind: MessageType) -> Header {
        Header {
            program: 8,
            version: 1,
            procedure: 3,
            kind,
            serial: 1,
            status: MessageStatus::Ok,
        }
    }

    #[test]
    fn rpc_rst_method_call_is_38_bytes() {
        let mut out = Vec::new();
        encode_packet(&hdr(MessageType::Call), 0, &[1; 10], &mut out).unwrap();
        assert_eq!(out.len(), 38);
        assert_eq!(&out[..4], &38u32.to_be_bytes());
    }

    #[test]
    fn fd_call_has_count_word() {
        // rpc.rst "Method call with passed FD": 2 fds, 10 bytes of args. The fd carrier bytes
        // are not part of the packet (libvirt sends them with sendmsg after the buffer).
        let mut out = Vec::new();
        encode_packet(&hdr(MessageType::CallWithFds), 2, &[1; 10], &mut out).unwrap();
        assert_eq!(out.len(), 42);
        assert_eq!(&out[28..32], &2u32.to_be_bytes());
    }

    #[test]
    fn fd_limits() {
        let mut out = vec![9];
        assert_eq!(
            encode_packet(&hdr(MessageType::CallWithFds), 33, &[], &mut out),
            Err(Error::TooManyFds { count: 33, max: 32 })
        );
        assert_eq!(
            encode_packet(&hdr(MessageType::Call), 1, &[], &mut out),
            Err(Error::FdsWithoutFdType {
                kind: MessageType::Call
            })
        );
        assert_eq!(out, vec![9]);
    }

    #[test]
    fn too_large_is_refused_and_rolled_back() {
        let mut out = vec![7];
        let err = encode_packet_with(&hdr(MessageType::Call), 0, &mut out, |o| {
            o.resize(o.len() + PACKET_MAX as usize, 0);
            Ok(())
        })
        .unwrap_err();
        assert!(matches!(err, Error::PacketTooLarge { .. }));
        assert_eq!(out, vec![7]);
        // The largest allowed packet is exactly PACKET_MAX.
        let mut out = Vec::new();
        encode_packet_with(&hdr(MessageType::Call), 0, &mut out, |o| {
            o.resize(PACKET_MAX as usize, 0);
            Ok(())
        })
        .unwrap();
        assert_eq!(out.len(), PACKET_MAX as usize);
    }
}
