//! Stream state per serial: the incoming queue and the local end's state.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::generated::virnet::VirNetStreamHole;
use crate::{Error, ProcedureId};

/// One item read from a stream with `Connection::stream_recv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    /// Raw data (`VIR_NET_STREAM` + `VIR_NET_CONTINUE`), zero-copy from the receive buffer.
    Data(Bytes),
    /// A hole (`VIR_NET_STREAM_HOLE`, `virNetStreamHole`): `length` bytes of zeros the sender
    /// skipped, for sparse streams.
    Hole {
        /// Hole length in bytes.
        length: i64,
        /// `virNetStreamHole.flags` (0 today).
        flags: u32,
    },
    /// The sender's end of data (an empty `VIR_NET_CONTINUE` packet, as libvirtd sends at EOF).
    /// The application then calls `stream_finish` (or `stream_abort`).
    Eof,
}

/// Encode a `virNetStreamHole`.
pub(crate) fn encode_hole(length: i64, flags: u32, out: &mut Vec<u8>) -> Result<(), Error> {
    xdr::to_writer_vec(&VirNetStreamHole { length, flags }, out)
        .map_err(|e| Error::encode("virNetStreamHole", e))
}

/// Decode a `virNetStreamHole`.
pub(crate) fn decode_hole(body: &[u8]) -> Result<(i64, u32), Error> {
    let h: VirNetStreamHole =
        xdr::from_bytes(body).map_err(|e| Error::decode("virNetStreamHole", e))?;
    Ok((h.length, h.flags))
}

/// Our side of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LocalState {
    /// We may still send data.
    Open,
    /// We sent `VIR_NET_OK` and wait for the server's confirmation.
    FinishSent,
}

#[derive(Debug)]
pub(crate) struct StreamState {
    pub(crate) target: ProcedureId,
    pub(crate) rx: VecDeque<StreamItem>,
    pub(crate) rx_bytes: usize,
    pub(crate) local: LocalState,
    /// Set when the stream ended (cleanly: `None` inside `Some`; failed: the error).
    pub(crate) end: Option<Option<Error>>,
}

impl StreamState {
    pub(crate) fn new(target: ProcedureId) -> Self {
        Self {
            target,
            rx: VecDeque::new(),
            rx_bytes: 0,
            local: LocalState::Open,
            end: None,
        }
    }

    /// Queue an item; returns whether the queue was empty before.
    pub(crate) fn push(&mut self, item: StreamItem) -> bool {
        let was_empty = self.rx.is_empty();
        if let StreamItem::Data(d) = &item {
            self.rx_bytes += d.len();
        }
        self.rx.push_back(item);
        was_empty
    }

    pub(crate) fn pop(&mut self) -> Option<StreamItem> {
        let item = self.rx.pop_front()?;
        if let StreamItem::Data(d) = &item {
            self.rx_bytes -= d.len();
        }
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hole_round_trip_and_malformed() {
        let mut b = Vec::new();
        encode_hole(-5, 7, &mut b).unwrap();
        assert_eq!(decode_hole(&b).unwrap(), (-5, 7));
        assert!(decode_hole(&b[..11]).is_err());
    }
}
