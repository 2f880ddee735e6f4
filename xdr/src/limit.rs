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
//! [`Error::LengthOverLimit`](crate::Error::LengthOverLimit) on encode and decode. With other
//! formats (serde_json, ...) the wrapper is transparent: no limit, value unchanged.
//!
//! Arrays whose items carry their own maximum (libvirt's `remote_nonnull_string names<MAX>`,
//! each a `string<REMOTE_STRING_MAX>`) use [`serialize_items`] / [`deserialize_items`]: `N`
//! bounds the count, `M` the first length prefix inside each item; the error path names the
//! item:
//!
//! ```
//! #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! struct Names {
//!     #[serde(
//!         serialize_with = "xdr::limit::serialize_items::<4, 3, _, _>",
//!         deserialize_with = "xdr::limit::deserialize_items::<4, 3, _, _>"
//!     )]
//!     names: Vec<String>,
//! }
//! let ok = Names { names: vec!["abc".into(), "de".into()] };
//! assert_eq!(xdr::from_bytes::<Names>(&xdr::to_bytes(&ok)?)?, ok);
//! let long = Names { names: vec!["abc".into(), "defg".into()] };
//! let err = xdr::to_bytes(&long).unwrap_err();
//! assert!(matches!(err, xdr::Error::LengthOverLimit { len: 4, max: 3, .. }));
//! assert!(err.to_string().contains("names[1]"), "{err}");
//! # Ok::<(), xdr::Error>(())
//! ```

use crate::magic::{ItemLimitName, LimitName};
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

struct Items<'a, const M: u32, T: ?Sized>(&'a T);

impl<const M: u32, T: Serialize + ?Sized> Serialize for Items<'_, M, T> {
    #[inline]
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(ItemLimitName::<M>::NAME, &Limited(self.0))
    }
}

/// Serialize a sequence `v`, failing if its count exceeds `N` or the first length prefix inside
/// any item exceeds `M`.
#[inline]
pub fn serialize_items<const N: u32, const M: u32, T: Serialize + ?Sized, S: Serializer>(
    v: &T,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_newtype_struct(LimitName::<N>::NAME, &Items::<M, T>(v))
}

struct ItemsVisitor<const M: u32, T>(PhantomData<T>);

impl<'de, const M: u32, T: Deserialize<'de>> Visitor<'de> for ItemsVisitor<M, T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence with declared maximum lengths")
    }

    #[inline]
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_newtype_struct(ItemLimitName::<M>::NAME, LimitVisitor(PhantomData))
    }
}

/// Deserialize a sequence `T`, failing if its count exceeds `N` or the first length prefix
/// inside any item exceeds `M`.
#[inline]
pub fn deserialize_items<
    'de,
    const N: u32,
    const M: u32,
    T: Deserialize<'de>,
    D: Deserializer<'de>,
>(
    d: D,
) -> Result<T, D::Error> {
    d.deserialize_newtype_struct(LimitName::<N>::NAME, ItemsVisitor::<M, T>(PhantomData))
}
