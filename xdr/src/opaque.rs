//! `Opaque`: XDR variable-length opaque data, zero-copy when decoded with [`crate::from_shared`].

use bytes::Bytes;
use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::{Serialize, Serializer};
use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;

/// XDR variable-length opaque data (`opaque x<N>` / `opaque x<>`).
///
/// Serializes as `serialize_bytes` (length, bytes, zero padding). Decoding with
/// [`crate::from_shared`] makes it a slice of the input [`Bytes`] (no copy); any other decode
/// copies. Wrap it with [`crate::limit`] to enforce a declared maximum.
#[derive(Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Opaque(pub Bytes);

impl Opaque {
    /// The underlying shared buffer.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl fmt::Debug for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Opaque(")?;
        for b in self.0.iter() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl Deref for Opaque {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Opaque {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Opaque {
    fn from(v: Vec<u8>) -> Self {
        Opaque(Bytes::from(v))
    }
}

impl From<&[u8]> for Opaque {
    fn from(v: &[u8]) -> Self {
        Opaque(Bytes::copy_from_slice(v))
    }
}

impl From<Bytes> for Opaque {
    fn from(v: Bytes) -> Self {
        Opaque(v)
    }
}

impl From<Opaque> for Bytes {
    fn from(v: Opaque) -> Self {
        v.0
    }
}

impl Serialize for Opaque {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

thread_local! {
    /// The buffer `from_shared` is decoding on this thread; `Opaque` slices it instead of copying.
    static SHARED: RefCell<Option<Bytes>> = const { RefCell::new(None) };
}

/// While alive, `Opaque` values decoded on this thread from slices of `buf` share `buf`.
pub(crate) struct SharedGuard {
    prev: Option<Bytes>,
}

impl SharedGuard {
    pub(crate) fn new(buf: &Bytes) -> Self {
        let prev = SHARED.with(|s| s.replace(Some(buf.clone())));
        SharedGuard { prev }
    }
}

impl Drop for SharedGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        SHARED.with(|s| *s.borrow_mut() = prev);
    }
}

/// `slice` as a zero-copy `Bytes` if it lies inside the buffer `from_shared` is decoding.
fn shared_slice(slice: &[u8]) -> Option<Bytes> {
    SHARED.with(|s| {
        let s = s.borrow();
        let root = s.as_ref()?;
        let start = root.as_ptr() as usize;
        let p = slice.as_ptr() as usize;
        if p >= start && p + slice.len() <= start + root.len() {
            Some(root.slice_ref(slice))
        } else {
            None
        }
    })
}

struct OpaqueVisitor;

impl<'de> Visitor<'de> for OpaqueVisitor {
    type Value = Opaque;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("opaque bytes")
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Opaque, E> {
        Ok(Opaque(
            shared_slice(v).unwrap_or_else(|| Bytes::copy_from_slice(v)),
        ))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Opaque, E> {
        Ok(Opaque(Bytes::copy_from_slice(v)))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Opaque, E> {
        Ok(Opaque(Bytes::from(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Opaque, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(b) = seq.next_element::<u8>()? {
            v.push(b);
        }
        Ok(Opaque(Bytes::from(v)))
    }
}

impl<'de> Deserialize<'de> for Opaque {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_bytes(OpaqueVisitor)
    }
}
