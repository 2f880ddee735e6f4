//! Declared maxima (`string<N>`, `opaque<N>`, `T x<N>`), for serde's `serialize_with` /
//! `deserialize_with`.
//!
//! ```
//! #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! struct Names {
//!     #[serde(
//!         serialize_with = "xdr::limit::serialize::<2, _, _>",
//!         deserialize_with = "xdr::limit::deserialize::<2, _, _>"
//!     )]
//!     names: Vec<String>,
//! }
//! let ok = Names { names: vec!["a".into(), "b".into()] };
//! assert_eq!(xdr::from_bytes::<Names>(&xdr::to_bytes(&ok)?)?, ok);
//! let too_many = Names { names: vec!["a".into(), "b".into(), "c".into()] };
//! assert!(matches!(
//!     xdr::to_bytes(&too_many),
//!     Err(xdr::Error::LengthOverLimit { len: 3, max: 2, .. })
//! ));
//! # Ok::<(), xdr::Error>(())
//! ```
//!
//! The maximum applies to the *first* length or count prefix encoded inside the value (for
//! `Option<T>`, the one inside `Some`). Exceeding it fails with
//! [`Error::LengthOverLimit`](crate::Error::LengthOverLimit) on encode and decode. Limits of
//! nested items (each string of a `string names<MAX>` array of `string<>`s with their own
//! maximum) are not expressible with one attribute; they are checked only against the input
//! size. With other formats (serde_json, ...) the wrapper is transparent: no limit, value
//! unchanged.

use crate::magic::LimitName;
use serde::de::{Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};
use std::fmt;
use std::marker::PhantomData;

struct Limited<'a, T: ?Sized>(&'a T);

impl<T: Serialize + ?Sized> Serialize for Limited<'_, T> {
    #[inline]
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// Serialize `v`, failing if its first length/count prefix exceeds `N`.
#[inline]
pub fn serialize<const N: u32, T: Serialize + ?Sized, S: Serializer>(
    v: &T,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_newtype_struct(LimitName::<N>::NAME, &Limited(v))
}

struct LimitVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for LimitVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value with a declared maximum length")
    }

    #[inline]
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        T::deserialize(d)
    }
}

/// Deserialize a `T`, failing if its first length/count prefix exceeds `N`.
#[inline]
pub fn deserialize<'de, const N: u32, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<T, D::Error> {
    d.deserialize_newtype_struct(LimitName::<N>::NAME, LimitVisitor(PhantomData))
}
