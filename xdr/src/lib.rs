//! Sans-IO XDR (RFC 4506) codec with serde support.
//!
//! This is the bottom of the stack: `libvirt-proto` encodes every libvirt RPC message with it
//! (its generated bindings are plain serde types), and `xtask`'s dissector decodes captures with
//! it. It does no IO: it turns Rust values into XDR bytes and borrowed input bytes back into
//! values, enforcing declared maxima and never allocating more than the input can hold.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Domain<'a> {
//!     name: &'a str, // borrowed from the input on decode
//!     #[serde(with = "xdr::opaque_fixed")]
//!     uuid: [u8; 16],
//!     id: i32,
//! }
//!
//! let dom = Domain { name: "vm1", uuid: [0xab; 16], id: -1 };
//! let bytes = xdr::to_bytes(&dom)?;
//! assert_eq!(bytes.len(), 4 + 4 + 16 + 4); // length, "vm1" + 1 byte of padding, uuid, id
//! assert_eq!(&bytes[..8], &[0, 0, 0, 3, b'v', b'm', b'1', 0]);
//! let back: Domain<'_> = xdr::from_bytes(&bytes)?;
//! assert_eq!(back, dom);
//! # Ok::<(), xdr::Error>(())
//! ```
//!
//! # Mapping (serde data model → XDR)
//!
//! | Rust / serde | XDR |
//! | --- | --- |
//! | `bool` | `bool` (4 bytes, 0 or 1; anything else is [`Error::InvalidBool`]) |
//! | `i8`, `i16`, `i32` | `int` (4 bytes; `i8`/`i16` range-checked on decode) |
//! | `u8`, `u16`, `u32` | `unsigned int` (4 bytes; libvirt's `char`/`short` quirk) |
//! | `i64`, `u64` | `hyper`, `unsigned hyper` |
//! | `f32`, `f64` | `float`, `double` |
//! | [`Quadruple`] | `quadruple` (binary128 bits, 16 bytes big-endian, no length) |
//! | `char` | `unsigned int` holding the scalar value |
//! | `str`, `String`, `&'de str` | `string<>`: length, UTF-8 bytes, zero padding to 4 |
//! | `serialize_bytes`, `&'de [u8]`, [`Opaque`] | `opaque<>`: length, bytes, zero padding |
//! | `[u8; N]` + [`opaque_fixed`] | `opaque[N]`: N bytes, zero padding, no length |
//! | `Vec<T>`, `&[T]` (seq) | `T<>`: count then elements |
//! | `[T; N]` + [`array_fixed`], tuples | `T[N]`: elements only |
//! | `Option<T>` | optional-data `*T`: bool then the value if 1 |
//! | struct, tuple struct | fields in order |
//! | newtype struct | its inner value |
//! | `()`, unit struct | `void` (nothing) |
//! | Rust enum | variant index as `unsigned int`, then the variant's fields |
//! | map, `i128`, `u128` | unsupported ([`Error::Unsupported`]; a 128-bit float is [`Quadruple`]) |
//!
//! XDR enums and discriminated unions are written by hand (or generated) as an `i32`, and unions
//! as a 2-tuple `(discriminant, arm)`: [`Deserializer`]'s tuples let the visitor stop after the
//! discriminant for `void` arms.
//!
//! # Limits and hostile input
//!
//! - Declared maxima (`string<N>`, `opaque<N>`, `T x<N>`) via [`limit`], on encode and decode
//!   ([`Error::LengthOverLimit`]): the first length prefix inside the wrapped value, and with
//!   [`limit::serialize_items`] also each item's own (`string names<N>` of `string<M>`s).
//! - A length or count prefix is checked against the bytes left *before* anything is allocated
//!   ([`Error::LengthOverInput`]); arrays count at least 4 bytes per element.
//! - Nesting depth is bounded ([`Deserializer::with_max_depth`], default
//!   [`de::DEFAULT_MAX_DEPTH`]): a hostile optional-data linked list gets
//!   [`Error::DepthLimitExceeded`], not a stack overflow.
//! - Padding must be zero ([`Error::NonZeroPadding`], with the field path), strings valid UTF-8,
//!   bools 0/1. [`Padding::Lenient`] (through [`Deserializer::with_padding`] or
//!   [`DecodeOptions`] and [`from_bytes_with`], [`from_bytes_prefix_with`],
//!   [`from_shared_with`]) skips the padding bytes unchecked instead, as libvirt's C decoder
//!   (`xdr_opaque`) does; they must still be present. A leniently decoded value re-encodes with
//!   zero padding, so the input bytes do not come back exactly.
//! - [`Utf8::Lossy`] decodes strings that are not UTF-8 (libvirt's C decoder takes any bytes)
//!   into owned strings with U+FFFD replacements, instead of failing with
//!   [`Error::InvalidUtf8`].
//! - No input makes the decoder panic (fuzzed by `fuzz/fuzz_targets/xdr_decode.rs`).
//!
//! Errors carry the field path (`remote_domain_get_info_ret.maxMem`, `ret.names[3]`), built only
//! when an error occurs.

pub mod array_fixed;
pub mod de;
mod error;
pub mod limit;
mod magic;
mod opaque;
pub mod opaque_fixed;
mod quadruple;
mod ser;

#[cfg(feature = "schema")]
pub mod dynamic;
#[cfg(feature = "schema")]
pub mod schema;

pub use de::{DecodeOptions, Deserializer, Padding, Utf8};
pub use error::Error;
pub use opaque::Opaque;
pub use quadruple::Quadruple;
pub use ser::{Compound, Serializer};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Encode `value` as XDR into a new `Vec<u8>`.
pub fn to_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    to_writer_vec(value, &mut out)?;
    Ok(out)
}

/// Encode `value` as XDR, appending to `out`. On error `out` may hold a partial encoding after
/// its original contents.
pub fn to_writer_vec<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), Error> {
    value.serialize(&mut Serializer::new(out))
}

/// Decode a `T` that must span all of `input` ([`Error::TrailingBytes`] otherwise). Borrowed
/// fields (`&'de str`, `&'de [u8]`) point into `input`.
pub fn from_bytes<'de, T: Deserialize<'de>>(input: &'de [u8]) -> Result<T, Error> {
    from_bytes_with(input, DecodeOptions::new())
}

/// [`from_bytes`] with [`DecodeOptions`] (depth limit, [`Padding`] and [`Utf8`] policies).
pub fn from_bytes_with<'de, T: Deserialize<'de>>(
    input: &'de [u8],
    options: DecodeOptions,
) -> Result<T, Error> {
    let mut de = Deserializer::from_bytes(input).with_options(options);
    let v = T::deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// Decode a `T` from the start of `input`; returns it and the number of bytes it took.
pub fn from_bytes_prefix<'de, T: Deserialize<'de>>(input: &'de [u8]) -> Result<(T, usize), Error> {
    from_bytes_prefix_with(input, DecodeOptions::new())
}

/// [`from_bytes_prefix`] with [`DecodeOptions`] (depth limit, [`Padding`] and [`Utf8`] policies).
pub fn from_bytes_prefix_with<'de, T: Deserialize<'de>>(
    input: &'de [u8],
    options: DecodeOptions,
) -> Result<(T, usize), Error> {
    let mut de = Deserializer::from_bytes(input).with_options(options);
    let v = T::deserialize(&mut de)?;
    Ok((v, de.position()))
}

/// Decode a `T` spanning all of `input`, with every [`Opaque`] in it a zero-copy slice of
/// `input` (sharing its reference count) instead of a copy.
///
/// Only [`Opaque`] fields share the input: a plain `bytes::Bytes` (or `Vec<u8>`) field is
/// decoded through serde's byte-buffer path and copied. Declare opaque fields as [`Opaque`]
/// (as the generated libvirt types do) to get the zero-copy slice.
pub fn from_shared<T: DeserializeOwned>(input: &bytes::Bytes) -> Result<T, Error> {
    from_shared_with(input, DecodeOptions::new())
}

/// [`from_shared`] with [`DecodeOptions`] (depth limit, [`Padding`] and [`Utf8`] policies).
pub fn from_shared_with<T: DeserializeOwned>(
    input: &bytes::Bytes,
    options: DecodeOptions,
) -> Result<T, Error> {
    let _guard = opaque::SharedGuard::new(input);
    from_bytes_with(input, options)
}
