//! Fixed-length opaque data `opaque x[N]` as `[u8; N]`: exactly `N` bytes plus zero padding to a
//! multiple of 4, no length prefix. Use with `#[serde(with = "xdr::opaque_fixed")]`.
//!
//! ```
//! #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! struct Uuid {
//!     #[serde(with = "xdr::opaque_fixed")]
//!     uuid: [u8; 6],
//! }
//! let v = Uuid { uuid: [1, 2, 3, 4, 5, 6] };
//! let bytes = xdr::to_bytes(&v)?;
//! assert_eq!(bytes, [1, 2, 3, 4, 5, 6, 0, 0]);
//! assert_eq!(xdr::from_bytes::<Uuid>(&bytes)?, v);
//! # Ok::<(), xdr::Error>(())
//! ```
//!
//! (Without the attribute `[u8; N]` would be a fixed array of N four-byte unsigned ints.) With
//! other formats the value is plain bytes.

use crate::magic::FixedOpaqueName;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, Serializer};
use std::fmt;

struct AsBytes<'a>(&'a [u8]);

impl Serialize for AsBytes<'_> {
    #[inline]
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// Serialize `[u8; N]` as XDR fixed opaque.
#[inline]
pub fn serialize<S: Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_newtype_struct(FixedOpaqueName::<N>::NAME, &AsBytes(v))
}

struct Outer<const N: usize>;

impl<'de, const N: usize> Visitor<'de> for Outer<N> {
    type Value = [u8; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{N} bytes of fixed opaque")
    }

    #[inline(always)]
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<[u8; N], D::Error> {
        d.deserialize_bytes(Inner::<N>)
    }
}

struct Inner<const N: usize>;

impl<'de, const N: usize> Visitor<'de> for Inner<N> {
    type Value = [u8; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{N} bytes of fixed opaque")
    }

    #[inline(always)]
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<[u8; N], E> {
        v.try_into().map_err(|_| E::invalid_length(v.len(), &self))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
        let mut out = [0u8; N];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = seq
                .next_element()?
                .ok_or_else(|| de::Error::invalid_length(i, &self))?;
        }
        if seq.next_element::<u8>()?.is_some() {
            return Err(de::Error::invalid_length(N + 1, &self));
        }
        Ok(out)
    }
}

/// Deserialize XDR fixed opaque into `[u8; N]`.
#[inline]
pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<[u8; N], D::Error> {
    d.deserialize_newtype_struct(FixedOpaqueName::<N>::NAME, Outer::<N>)
}
