//! Splitting a byte stream into JSON objects.
//!
//! QMP sends one JSON object per line, but a peer may also put several objects on one line, split
//! an object over many reads, or end lines with CRLF. The [`Framer`] scans bytes incrementally
//! (each byte is looked at once, however the input is split) and yields one complete object at a
//! time, without ever buffering more than [`FramerConfig::max_frame_len`] bytes of one object.

use crate::Error;

/// Default limit for one message: 16 MiB (QEMU 7.2's `query-qmp-schema` reply is 207 KB).
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 << 20;

/// How a [`Framer`] treats its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramerConfig {
    /// Longest accepted object, in bytes. Longer objects are skipped up to the next newline and
    /// reported as [`Error::FrameTooLong`].
    pub max_frame_len: usize,
    /// Treat a 0xFF byte as a resynchronisation marker that discards any partial object (the
    /// guest agent's `guest-sync-delimited` convention). When false, 0xFF is garbage.
    pub sync_byte: bool,
}

impl Default for FramerConfig {
    fn default() -> Self {
        Self {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            sync_byte: false,
        }
    }
}

/// Incremental JSON object splitter. Feed bytes with [`push`](Self::push); take objects with
/// [`next_frame`](Self::next_frame).
///
/// ```
/// use qmp_proto::Framer;
/// let mut f = Framer::default();
/// f.push(b"{\"a\": \"}\"}{\"b\":");
/// assert_eq!(f.next_frame().unwrap().unwrap(), b"{\"a\": \"}\"}");
/// assert!(f.next_frame().is_none()); // the second object is incomplete
/// f.push(b" 1}\r\n");
/// assert_eq!(f.next_frame().unwrap().unwrap(), b"{\"b\": 1}");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Framer {
    config: FramerConfig,
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already handed out or discarded.
    consumed: usize,
    /// Scan position in `buf`.
    pos: usize,
    /// Start of the current object in `buf`, when inside one.
    start: Option<usize>,
    depth: usize,
    in_string: bool,
    escape: bool,
    /// Discarding input up to the next newline after an error.
    skipping: bool,
    /// Stream offset of `buf[0]`.
    base_offset: u64,
}

impl Framer {
    /// A framer with the given limits.
    pub fn new(config: FramerConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> FramerConfig {
        self.config
    }

    /// Append bytes read from the peer.
    pub fn push(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered but not yet returned (a partial object, or input not scanned yet).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.consumed
    }

    fn compact(&mut self) {
        if self.consumed == 0 {
            return;
        }
        self.buf.drain(..self.consumed);
        self.base_offset += self.consumed as u64;
        self.pos -= self.consumed;
        if let Some(s) = self.start.as_mut() {
            *s -= self.consumed;
        }
        self.consumed = 0;
    }

    fn reset_object(&mut self) {
        self.start = None;
        self.depth = 0;
        self.in_string = false;
        self.escape = false;
    }

    /// The next complete object, an error for bad input (after which framing goes on at the next
    /// line), or `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Result<&[u8], Error>> {
        self.compact();
        while self.pos < self.buf.len() {
            let i = self.pos;
            let b = self.buf[i];
            self.pos += 1;
            if self.config.sync_byte && b == 0xFF {
                self.reset_object();
                self.skipping = false;
                self.consumed = self.pos;
                continue;
            }
            if self.skipping {
                if b == b'\n' {
                    self.skipping = false;
                }
                self.consumed = self.pos;
                continue;
            }
            let Some(start) = self.start else {
                match b {
                    b' ' | b'\t' | b'\r' | b'\n' => self.consumed = self.pos,
                    b'{' => {
                        self.start = Some(i);
                        self.depth = 1;
                    }
                    _ => {
                        self.skipping = b != b'\n';
                        self.consumed = self.pos;
                        let offset = self.base_offset + i as u64;
                        return Some(Err(Error::Garbage { byte: b, offset }));
                    }
                }
                continue;
            };
            if self.pos - start > self.config.max_frame_len {
                self.reset_object();
                self.skipping = b != b'\n';
                self.consumed = self.pos;
                return Some(Err(Error::FrameTooLong {
                    max: self.config.max_frame_len,
                }));
            }
            if self.in_string {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        self.reset_object();
                        self.consumed = self.pos;
                        return Some(Ok(&self.buf[start..self.pos]));
                    }
                }
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(f: &mut Framer) -> Vec<Result<Vec<u8>, Error>> {
        let mut out = Vec::new();
        while let Some(r) = f.next_frame() {
            out.push(r.map(<[u8]>::to_vec));
        }
        out
    }

    #[test]
    fn crlf_and_concatenated() {
        let mut f = Framer::default();
        f.push(b"{\"a\":1}{\"b\":[{}]}\r\n  {\"c\":\"\\\"}\"}\r\n");
        let frames = all(&mut f);
        assert_eq!(
            frames,
            vec![
                Ok(b"{\"a\":1}".to_vec()),
                Ok(b"{\"b\":[{}]}".to_vec()),
                Ok(b"{\"c\":\"\\\"}\"}".to_vec())
            ]
        );
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn too_long_skips_to_next_line() {
        let mut f = Framer::new(FramerConfig {
            max_frame_len: 8,
            sync_byte: false,
        });
        f.push(b"{\"aaaaaaaaaaaa\":1}\n{\"b\":1}\n");
        let frames = all(&mut f);
        assert_eq!(
            frames,
            vec![
                Err(Error::FrameTooLong { max: 8 }),
                Ok(b"{\"b\":1}".to_vec())
            ]
        );
    }

    #[test]
    fn garbage_reported_with_offset_then_resync() {
        let mut f = Framer::default();
        f.push(b"{}\nxyz {\"not\":1}\n{\"ok\":1}");
        let frames = all(&mut f);
        assert_eq!(
            frames,
            vec![
                Ok(b"{}".to_vec()),
                Err(Error::Garbage {
                    byte: b'x',
                    offset: 3
                }),
                Ok(b"{\"ok\":1}".to_vec())
            ]
        );
    }

    #[test]
    fn sync_byte_discards_partial() {
        let mut f = Framer::new(FramerConfig {
            sync_byte: true,
            ..FramerConfig::default()
        });
        f.push(b"{\"stale\": \xff{\"return\": 5}\n");
        assert_eq!(all(&mut f), vec![Ok(b"{\"return\": 5}".to_vec())]);
        let mut g = Framer::default();
        g.push(b"\xff{}");
        assert!(matches!(
            g.next_frame(),
            Some(Err(Error::Garbage { byte: 0xff, .. }))
        ));
    }

    #[test]
    fn big_line_in_many_pieces() {
        let big = format!("{{\"return\":\"{}\"}}\n", "x".repeat(300_000));
        let mut f = Framer::default();
        for chunk in big.as_bytes().chunks(4096) {
            assert!(f.next_frame().is_none());
            f.push(chunk);
        }
        assert_eq!(f.next_frame().unwrap().unwrap().len(), big.len() - 1);
    }

    proptest! {
        /// However a stream of objects is split into reads, the same objects come out.
        #[test]
        fn split_anywhere(
            values in proptest::collection::vec(any::<(String, i64, bool)>(), 1..8),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
            sep in prop::sample::select(vec!["", "\n", "\r\n", " \n\t"]),
        ) {
            let objects: Vec<String> = values
                .iter()
                .map(|(s, n, b)| serde_json::json!({"s": s, "n": n, "l": [b, {"x": s}]}).to_string())
                .collect();
            let stream = objects.join(sep);
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            points.push(0);
            points.push(stream.len());
            points.sort_unstable();
            let mut f = Framer::default();
            let mut got = Vec::new();
            for w in points.windows(2) {
                f.push(&stream.as_bytes()[w[0]..w[1]]);
                while let Some(r) = f.next_frame() {
                    got.push(String::from_utf8(r.unwrap().to_vec()).unwrap());
                }
            }
            prop_assert_eq!(got, objects);
        }

        /// Arbitrary bytes never panic, and every frame returned is within the limit.
        #[test]
        fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..512), max in 1usize..64) {
            let mut f = Framer::new(FramerConfig { max_frame_len: max, sync_byte: data.first() == Some(&0) });
            f.push(&data);
            while let Some(r) = f.next_frame() {
                if let Ok(frame) = r {
                    prop_assert!(frame.len() <= max);
                }
            }
        }
    }
}
