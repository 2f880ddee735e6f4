//! Splitting a byte stream into JSON objects.
//!
//! QMP sends one JSON object per line, but a peer may also put several objects on one line, split
//! an object over many reads, or end lines with CRLF. The [`Framer`] scans bytes incrementally
//! (each byte is looked at once, however the input is split) and yields one complete object at a
//! time, without ever buffering more than [`FramerConfig::max_frame_len`] bytes of one object.
//!
//! An object that outgrows the limit is dropped as it streams past: the framer keeps scanning
//! to the end of its line without storing it, and reports [`Error::FrameTooLong`] with the
//! object's first key classified as a [`FrameStart`] (`{"return"` or `{"error"` is a reply,
//! `{"timestamp"` or `{"event"` an event), so the session can tell which command lost its
//! answer.

use crate::Error;

/// Default limit for one message: 16 MiB (QEMU 7.2's `query-qmp-schema` reply is 207 KB).
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 << 20;

/// What an oversize object looked like, judged by its first key (the only part the framer
/// looks at once the object is too long to keep).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameStart {
    /// `{"return"` or `{"error"`: a command's reply (QEMU puts the id after the value).
    Reply,
    /// `{"timestamp"` or `{"event"`: an asynchronous event.
    Event,
    /// `{"QMP"`: a greeting.
    Greeting,
    /// Anything else, or a first key the framer could not see before the line ended.
    Unknown,
}

/// Longest first key worth remembering (`timestamp`); longer ones are [`FrameStart::Unknown`].
const KEY_MAX: usize = 9;

/// Reads the first key of an object, a byte at a time, without buffering the object.
#[derive(Debug, Clone, Copy, Default)]
enum KeyScan {
    /// Between `{` and the opening quote of the first key.
    #[default]
    BeforeKey,
    /// Inside the first key.
    InKey { key: [u8; KEY_MAX], len: usize },
    /// Known.
    Done(FrameStart),
}

impl KeyScan {
    /// Feed the next byte after the object's `{`.
    fn feed(&mut self, b: u8) {
        *self = match *self {
            Self::BeforeKey => match b {
                b' ' | b'\t' | b'\r' | b'\n' => Self::BeforeKey,
                b'"' => Self::InKey {
                    key: [0; KEY_MAX],
                    len: 0,
                },
                _ => Self::Done(FrameStart::Unknown),
            },
            Self::InKey { mut key, len } => {
                if b == b'"' {
                    Self::Done(match &key[..len] {
                        b"return" | b"error" => FrameStart::Reply,
                        b"timestamp" | b"event" => FrameStart::Event,
                        b"QMP" => FrameStart::Greeting,
                        _ => FrameStart::Unknown,
                    })
                } else if len == KEY_MAX || b == b'\\' {
                    // Too long (or escaped) to be one of the keys that matter.
                    Self::Done(FrameStart::Unknown)
                } else {
                    key[len] = b;
                    Self::InKey { key, len: len + 1 }
                }
            }
            done @ Self::Done(_) => done,
        };
    }

    fn result(self) -> Option<FrameStart> {
        match self {
            Self::Done(start) => Some(start),
            _ => None,
        }
    }
}

/// How a [`Framer`] treats its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramerConfig {
    /// Longest accepted object, in bytes. Longer objects are skipped up to the next newline
    /// (without being stored) and reported once as [`Error::FrameTooLong`].
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
    /// The first key of the current object (also followed while an oversize one is skipped).
    key: KeyScan,
    /// Skipping an oversize object whose first key was not seen yet: its error is reported
    /// once the key is known or the line ends.
    oversize_pending: bool,
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
        self.key = KeyScan::BeforeKey;
        self.depth = 0;
        self.in_string = false;
        self.escape = false;
    }

    /// The error of an oversize object being skipped, once (its start as far as it was seen).
    fn take_pending_oversize(&mut self) -> Option<Error> {
        if !std::mem::take(&mut self.oversize_pending) {
            return None;
        }
        let start = self.key.result().unwrap_or(FrameStart::Unknown);
        self.key = KeyScan::BeforeKey;
        Some(Error::FrameTooLong {
            max: self.config.max_frame_len,
            start,
        })
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
                let pending = self.take_pending_oversize();
                self.reset_object();
                self.skipping = false;
                self.consumed = self.pos;
                if let Some(e) = pending {
                    return Some(Err(e));
                }
                continue;
            }
            if self.skipping {
                self.consumed = self.pos;
                if b == b'\n' {
                    self.skipping = false;
                    if let Some(e) = self.take_pending_oversize() {
                        return Some(Err(e));
                    }
                } else if self.oversize_pending {
                    self.key.feed(b);
                    if self.key.result().is_some() {
                        return self.take_pending_oversize().map(Err);
                    }
                }
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
            if self.key.result().is_none() {
                self.key.feed(b);
            }
            if self.pos - start > self.config.max_frame_len {
                // Drop what is buffered of the object and the rest of its line as it streams
                // past; report it now if its first key is known, else once it is.
                self.start = None;
                self.depth = 0;
                self.in_string = false;
                self.escape = false;
                self.skipping = b != b'\n';
                self.consumed = self.pos;
                self.oversize_pending = true;
                if !self.skipping || self.key.result().is_some() {
                    return self.take_pending_oversize().map(Err);
                }
                continue;
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
                Err(Error::FrameTooLong {
                    max: 8,
                    start: FrameStart::Unknown
                }),
                Ok(b"{\"b\":1}".to_vec())
            ]
        );
    }

    fn small(max: usize) -> Framer {
        Framer::new(FramerConfig {
            max_frame_len: max,
            sync_byte: false,
        })
    }

    fn too_long(max: usize, start: FrameStart) -> Result<Vec<u8>, Error> {
        Err(Error::FrameTooLong { max, start })
    }

    #[test]
    fn oversize_classified_by_first_key() {
        let mut f = small(16);
        f.push(b"{\"return\": [1, 2, 3, 4, 5, 6], \"id\": 1}\n");
        f.push(b"{ \r\n\t \"error\": {\"class\": \"GenericError\", \"desc\": \"x\"}}\n");
        f.push(b"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}\n");
        f.push(b"{\"event\": \"STOP\", \"data\": {\"a\": 1234567}}\n");
        f.push(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n");
        f.push(b"{\"id\": 1, \"return\": {\"a\": \"bbbbbb\"}}\n");
        f.push(b"{\"returned\": 1, \"x\": 23456789}\n");
        f.push(b"{\"ret\\\"urn\": 1, \"x\": 23456789}\n");
        f.push(b"{\"ok\": 1}\n");
        assert_eq!(
            all(&mut f),
            vec![
                too_long(16, FrameStart::Reply),
                too_long(16, FrameStart::Reply),
                too_long(16, FrameStart::Event),
                too_long(16, FrameStart::Event),
                too_long(16, FrameStart::Greeting),
                too_long(16, FrameStart::Unknown),
                too_long(16, FrameStart::Unknown),
                too_long(16, FrameStart::Unknown),
                Ok(b"{\"ok\": 1}".to_vec()),
            ]
        );
    }

    /// A limit shorter than the first key: the error waits until the key has streamed past (or
    /// the line ends), still without storing the object, and comes once.
    #[test]
    fn oversize_key_seen_after_the_limit() {
        let mut f = small(3);
        f.push(b"{  \"ret");
        assert_eq!(all(&mut f), vec![]);
        f.push(b"urn\": 1}\n{\"a\":1}\n{\"error\"");
        assert_eq!(
            all(&mut f),
            vec![
                too_long(3, FrameStart::Reply),
                too_long(3, FrameStart::Unknown),
                too_long(3, FrameStart::Reply),
            ]
        );
        f.push(b": {}}\n{}\n{\"unfinished\n{}");
        assert_eq!(
            all(&mut f),
            vec![
                Ok(b"{}".to_vec()),
                too_long(3, FrameStart::Unknown),
                Ok(b"{}".to_vec())
            ]
        );
    }

    /// However long the line, the framer holds at most the limit plus one read.
    #[test]
    fn oversize_is_not_buffered() {
        let mut f = small(1000);
        f.push(b"{\"return\": \"");
        let chunk = vec![b'x'; 4096];
        let mut errors = Vec::new();
        for _ in 0..1000 {
            f.push(&chunk);
            while let Some(r) = f.next_frame() {
                errors.push(r.map(<[u8]>::to_vec));
            }
            assert!(f.buffered() <= 1000 + chunk.len(), "{}", f.buffered());
        }
        f.push(b"\"}\n{\"return\": {}, \"id\": 2}\n");
        while let Some(r) = f.next_frame() {
            errors.push(r.map(<[u8]>::to_vec));
        }
        assert_eq!(
            errors,
            vec![
                too_long(1000, FrameStart::Reply),
                Ok(b"{\"return\": {}, \"id\": 2}".to_vec())
            ]
        );
        assert_eq!(f.buffered(), 0);
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

    /// The issue's floor: QEMU's replies can be several MiB (the schema alone is 207 KB).
    #[test]
    fn default_limit_is_at_least_10_mib() {
        // Checked when compiling: lowering the constant below 10 MiB breaks the build.
        const { assert!(DEFAULT_MAX_FRAME_LEN >= 10 << 20) };
        assert_eq!(FramerConfig::default().max_frame_len, DEFAULT_MAX_FRAME_LEN);
    }

    /// A reply over 10 MiB passes the default framer and session whole, read in pieces.
    #[test]
    fn reply_over_10_mib_accepted_by_default() {
        let payload = "y".repeat(10 << 20);
        let line = format!("{{\"return\": \"{payload}\", \"id\": 1}}\r\n");
        assert!(line.len() - 2 > 10 << 20);
        let mut f = Framer::default();
        for chunk in line.as_bytes().chunks(1 << 20) {
            assert!(f.next_frame().is_none());
            f.push(chunk);
        }
        let frame = f.next_frame().unwrap().unwrap();
        assert_eq!(frame.len(), line.len() - 2);
        match crate::Message::decode(frame).unwrap() {
            crate::Message::Return { value, .. } => {
                assert_eq!(value.as_str().unwrap().len(), 10 << 20)
            }
            other => panic!("{other:?}"),
        }
        assert!(f.next_frame().is_none());
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
            prop_assert!(f.buffered() <= data.len());
        }

        /// An oversize reply split anywhere is reported exactly once, as a reply, and the
        /// object after it comes out whole.
        #[test]
        fn oversize_split_anywhere(
            pad in 0usize..300,
            ws in prop::sample::select(vec!["", " ", "\r\n\t "]),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let stream = format!("{{{ws}\"return\": \"{}\", \"id\": 7}}\r\n{{\"return\": 1}}\n", "y".repeat(pad + 20));
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            points.push(0);
            points.push(stream.len());
            points.sort_unstable();
            let mut f = Framer::new(FramerConfig { max_frame_len: 20, sync_byte: false });
            let mut got = Vec::new();
            for w in points.windows(2) {
                f.push(&stream.as_bytes()[w[0]..w[1]]);
                while let Some(r) = f.next_frame() {
                    got.push(r.map(<[u8]>::to_vec));
                }
            }
            prop_assert_eq!(got, vec![
                Err(Error::FrameTooLong { max: 20, start: FrameStart::Reply }),
                Ok(b"{\"return\": 1}".to_vec()),
            ]);
        }
    }
}
