//! Fixed-length arrays `T x[N]` as `[T; N]` for any `N` (serde's own impls stop at 32): `N`
//! elements, no count prefix. Use with `#[serde(with = "xdr::array_fixed")]`.
//!
//! libvirt's `char model[32]` is 32 four-byte ints on the wire, generated as `[i8; 32]`:
//!
//! ```
//! #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! struct NodeInfo {
//!     #[serde(with = "xdr::array_fixed")]
//!     model: [i8; 40],
//! }
//! let v = NodeInfo { model: [7; 40] };
//! let bytes = xdr::to_bytes(&v)?;
//! assert_eq!(bytes.len(), 160);
//! assert_eq!(xdr::from_bytes::<NodeInfo>(&bytes)?, v);
//! # Ok::<(), xdr::Error>(())
//! ```

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeTuple, Serializer};
use std::fmt;
use std::marker::PhantomData;

/// Serialize `[T; N]` as an XDR fixed array (a tuple of `N` elements).
pub fn serialize<T: Serialize, S: Serializer, const N: usize>(
    v: &[T; N],
    s: S,
) -> Result<S::Ok, S::Error> {
    let mut t = s.serialize_tuple(N)?;
    for item in v {
        t.serialize_element(item)?;
    }
    t.end()
}

struct ArrayVisitor<T, const N: usize>(PhantomData<T>);

impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for ArrayVisitor<T, N> {
    type Value = [T; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an array of {N} elements")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[T; N], A::Error> {
        // Preallocate no more than the input can hold and at most 1 MiB.
        let cap = seq
            .size_hint()
            .unwrap_or(0)
            .min(N)
            .min((1 << 20) / std::mem::size_of::<T>().max(1));
        let mut v = Vec::with_capacity(cap);
        for i in 0..N {
            match seq.next_element()? {
                Some(x) => v.push(x),
                None => return Err(de::Error::invalid_length(i, &self)),
            }
        }
        v.try_into()
            .map_err(|v: Vec<T>| de::Error::invalid_length(v.len(), &self))
    }
}

/// Deserialize an XDR fixed array into `[T; N]`.
pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>, const N: usize>(
    d: D,
) -> Result<[T; N], D::Error> {
    d.deserialize_tuple(N, ArrayVisitor::<T, N>(PhantomData))
}
