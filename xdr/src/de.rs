//! The XDR deserializer: RFC 4506 bytes in, serde data model out, borrowing from the input.

use crate::error::Error;
use crate::magic::{self, Magic};
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

/// Default nesting limit of [`Deserializer`] (structs, arrays, unions and optional-data each count
/// one level). libvirt's deepest message nests well under 20 levels.
pub const DEFAULT_MAX_DEPTH: u32 = 128;

/// Smallest wire size of any XDR array element: every XDR type but `void` takes at least 4 bytes,
/// and `void` cannot be an array element. A count prefix larger than `remaining / 4` is rejected
/// before anything is allocated.
const MIN_ELEMENT_SIZE: usize = 4;

/// What the decoder does with the 1 to 3 padding bytes after a string or opaque (RFC 4506 says
/// they are zero).
///
/// The default, [`Padding::Strict`], rejects non-zero padding with [`Error::NonZeroPadding`]
/// naming the field, so that everything decoded re-encodes to the same bytes. libvirt's own C
/// decoder (`xdr_opaque` in glibc / libtirpc) skips the padding without looking at it;
/// [`Padding::Lenient`] does the same, to read what such a peer accepts. A value decoded
/// leniently re-encodes with zero padding, so `encode(decode(bytes))` may then differ from
/// `bytes` in the padding bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Padding {
    /// Padding bytes must be zero ([`Error::NonZeroPadding`] otherwise). The default.
    #[default]
    Strict,
    /// Padding bytes are skipped unchecked (they must still be there).
    Lenient,
}

/// What the decoder does with a string whose bytes are not UTF-8 (Rust strings must be).
///
/// The default, [`Utf8::Strict`], fails with [`Error::InvalidUtf8`] naming the field. libvirt's
/// C decoder takes any bytes, and a daemon can send such strings: a directory pool names its
/// volumes after the files in it, whatever their bytes. [`Utf8::Lossy`] decodes them into
/// owned `String`s with each invalid sequence replaced by U+FFFD (as
/// [`String::from_utf8_lossy`] does), so the rest of the message is not lost; the original
/// bytes are. A borrowed `&str` field (`deserialize_str`) still fails with
/// [`Error::InvalidUtf8`]: it cannot hold the replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Utf8 {
    /// Strings must be UTF-8 ([`Error::InvalidUtf8`] otherwise). The default.
    #[default]
    Strict,
    /// Invalid sequences in owned strings become U+FFFD.
    Lossy,
}

/// Options of a decode: the nesting limit, the [`Padding`] policy and the [`Utf8`] policy. Taken by
/// [`crate::from_bytes_with`] and friends, [`Deserializer::with_options`], and (feature `schema`)
/// `xdr::dynamic::decode_with` and the dissector.
///
/// ```
/// use xdr::{DecodeOptions, Padding};
/// let bytes = [0, 0, 0, 2, b'h', b'i', 0xff, 0]; // non-zero padding after "hi"
/// assert!(matches!(xdr::from_bytes::<String>(&bytes), Err(xdr::Error::NonZeroPadding { .. })));
/// let lenient = DecodeOptions::new().with_padding(Padding::Lenient);
/// assert_eq!(xdr::from_bytes_with::<String>(&bytes, lenient)?, "hi");
/// # Ok::<(), xdr::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct DecodeOptions {
    /// Nesting limit (default [`DEFAULT_MAX_DEPTH`]); each decoder counts its own levels (see
    /// [`Deserializer::with_max_depth`]).
    pub max_depth: u32,
    /// Padding policy (default [`Padding::Strict`]).
    pub padding: Padding,
    /// What to do with strings that are not UTF-8 (default [`Utf8::Strict`]).
    pub utf8: Utf8,
}

impl DecodeOptions {
    /// The defaults: depth limit [`DEFAULT_MAX_DEPTH`], [`Padding::Strict`], [`Utf8::Strict`].
    pub const fn new() -> Self {
        DecodeOptions {
            max_depth: DEFAULT_MAX_DEPTH,
            padding: Padding::Strict,
            utf8: Utf8::Strict,
        }
    }

    /// Set the nesting limit.
    pub const fn with_max_depth(mut self, max_depth: u32) -> Self {
        self.max_depth = max_depth;
        self
    }

    /// Set the padding policy.
    pub const fn with_padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }

    /// Set the policy for strings that are not UTF-8.
    ///
    /// ```
    /// use xdr::{DecodeOptions, Utf8};
    /// let bytes = [0, 0, 0, 3, b'c', 0xe9, b'!', 0]; // "c\xe9!": Latin-1, not UTF-8
    /// assert!(matches!(xdr::from_bytes::<String>(&bytes), Err(xdr::Error::InvalidUtf8 { .. })));
    /// let lossy = DecodeOptions::new().with_utf8(Utf8::Lossy);
    /// assert_eq!(xdr::from_bytes_with::<String>(&bytes, lossy)?, "c\u{fffd}!");
    /// # Ok::<(), xdr::Error>(())
    /// ```
    pub const fn with_utf8(mut self, utf8: Utf8) -> Self {
        self.utf8 = utf8;
        self
    }
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions::new()
    }
}

/// Decodes XDR from a byte slice. Strings and opaques can borrow from the input (`&'de str`,
/// `&'de [u8]`).
///
/// Usually used through [`crate::from_bytes`] and friends; public so callers can decode several
/// values from one buffer in sequence or change the depth limit or [`Padding`] policy:
///
/// ```
/// use serde::Deserialize;
/// let bytes = [0, 0, 0, 7, 0, 0, 0, 2, b'h', b'i', 0, 0];
/// let mut de = xdr::Deserializer::from_bytes(&bytes).with_max_depth(16);
/// let n = u32::deserialize(&mut de)?;
/// let s = <&str>::deserialize(&mut de)?;
/// de.end()?;
/// assert_eq!((n, s), (7, "hi"));
/// # Ok::<(), xdr::Error>(())
/// ```
#[derive(Debug)]
pub struct Deserializer<'de> {
    input: &'de [u8],
    start_len: usize,
    /// Maximum for the next length prefix (from `limit`).
    pending_limit: Option<u64>,
    /// Maximum for the first length prefix of each item of the next sequence (from
    /// `limit::deserialize_items`).
    pending_item_limit: Option<u64>,
    /// The next `bytes` is a fixed opaque of this length (from `opaque_fixed`).
    fixed_opaque: Option<u64>,
    depth: u32,
    /// Depth limit and padding policy.
    options: DecodeOptions,
}

impl<'de> Deserializer<'de> {
    /// A deserializer reading `input` from its start.
    pub fn from_bytes(input: &'de [u8]) -> Self {
        Deserializer {
            input,
            start_len: input.len(),
            pending_limit: None,
            pending_item_limit: None,
            fixed_opaque: None,
            depth: 0,
            options: DecodeOptions::new(),
        }
    }

    /// Set the nesting limit (default [`DEFAULT_MAX_DEPTH`]); deeper input fails with
    /// [`Error::DepthLimitExceeded`] instead of exhausting the stack.
    pub fn with_max_depth(mut self, max_depth: u32) -> Self {
        self.options.max_depth = max_depth;
        self
    }

    /// Set the padding policy (default [`Padding::Strict`]): whether the padding after strings,
    /// opaques and fixed opaques must be zero.
    pub fn with_padding(mut self, padding: Padding) -> Self {
        self.options.padding = padding;
        self
    }

    /// Set the policy for strings that are not UTF-8 (default [`Utf8::Strict`]).
    pub fn with_utf8(mut self, utf8: Utf8) -> Self {
        self.options.utf8 = utf8;
        self
    }

    /// Apply `options` (depth limit, padding and UTF-8 policies).
    pub fn with_options(mut self, options: DecodeOptions) -> Self {
        self.options = options;
        self
    }

    /// Bytes not consumed yet.
    pub fn remaining(&self) -> &'de [u8] {
        self.input
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.start_len - self.input.len()
    }

    /// Check that the whole input was consumed ([`Error::TrailingBytes`] otherwise).
    pub fn end(&self) -> Result<(), Error> {
        if self.input.is_empty() {
            Ok(())
        } else {
            Err(Error::TrailingBytes {
                count: self.input.len(),
            })
        }
    }

    #[cold]
    fn eof(&self, needed: usize) -> Error {
        Error::UnexpectedEof {
            needed,
            remaining: self.input.len(),
            path: String::new(),
        }
    }

    #[inline]
    fn take<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        match self.input.split_first_chunk::<N>() {
            Some((head, rest)) => {
                self.input = rest;
                Ok(*head)
            }
            None => Err(self.eof(N)),
        }
    }

    #[inline]
    fn read_u32(&mut self) -> Result<u32, Error> {
        self.take::<4>().map(u32::from_be_bytes)
    }

    #[inline]
    fn read_i32(&mut self) -> Result<i32, Error> {
        self.take::<4>().map(i32::from_be_bytes)
    }

    /// A length prefix, checked against a pending `limit`.
    #[inline]
    fn read_len(&mut self) -> Result<usize, Error> {
        let len = self.read_u32()?;
        if let Some(max) = self.pending_limit.take() {
            if u64::from(len) > max {
                return Err(Error::LengthOverLimit {
                    len: u64::from(len),
                    max,
                    path: String::new(),
                });
            }
        }
        Ok(len as usize)
    }

    /// `len` bytes plus padding to a multiple of 4 (zero unless [`Padding::Lenient`]), borrowed
    /// from the input.
    #[inline(always)]
    fn read_padded(&mut self, len: usize) -> Result<&'de [u8], Error> {
        let pad = (4 - len % 4) % 4;
        if len > self.input.len() || pad > self.input.len() - len {
            return Err(Error::LengthOverInput {
                len: len as u64,
                remaining: self.input.len(),
                path: String::new(),
            });
        }
        let (data, rest) = self.input.split_at(len + pad);
        self.input = rest;
        let (data, padding) = data.split_at(len);
        if self.options.padding == Padding::Strict && padding.iter().any(|&b| b != 0) {
            return Err(Error::NonZeroPadding {
                path: String::new(),
            });
        }
        Ok(data)
    }

    /// Variable-length opaque / string body, or a fixed opaque when `opaque_fixed` asked for one.
    #[inline(always)]
    fn read_opaque(&mut self) -> Result<&'de [u8], Error> {
        let len = match self.fixed_opaque.take() {
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None => self.read_len()?,
        };
        self.read_padded(len)
    }

    #[inline(always)]
    fn read_str(&mut self) -> Result<&'de str, Error> {
        let len = self.read_len()?;
        let bytes = self.read_padded(len)?;
        std::str::from_utf8(bytes).map_err(|_| Error::InvalidUtf8 {
            path: String::new(),
        })
    }

    /// An owned string under [`Utf8::Lossy`]: given to `visitor` borrowed when it is UTF-8,
    /// else as a `String` with U+FFFD replacements. Out of line, so that the strict path stays
    /// as small as it was.
    #[cold]
    #[inline(never)]
    fn visit_str_lossy<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Error> {
        let len = self.read_len()?;
        let bytes = self.read_padded(len)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => visitor.visit_borrowed_str(s),
            Err(_) => visitor.visit_string(String::from_utf8_lossy(bytes).into_owned()),
        }
    }

    #[inline]
    fn enter(&mut self) -> Result<(), Error> {
        if self.depth >= self.options.max_depth {
            return Err(Error::DepthLimitExceeded {
                max: self.options.max_depth,
                path: String::new(),
            });
        }
        self.depth += 1;
        Ok(())
    }

    #[inline]
    fn leave(&mut self) {
        self.depth -= 1;
    }
}

#[cold]
fn out_of_range(value: i64, target: &'static str) -> Error {
    Error::IntegerOutOfRange {
        value,
        target,
        path: String::new(),
    }
}

macro_rules! narrow {
    ($method:ident, $visit:ident, $read:ident, $ty:ty) => {
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let v = self.$read()?;
            let n = <$ty>::try_from(v).map_err(|_| out_of_range(i64::from(v), stringify!($ty)))?;
            visitor.$visit(n)
        }
    };
}

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de> {
    type Error = Error;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        Err(Error::Unsupported {
            what: "deserialize_any (XDR is not self-describing)",
        })
    }

    #[inline]
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.read_u32()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            value => Err(Error::InvalidBool {
                value,
                path: String::new(),
            }),
        }
    }

    narrow!(deserialize_i8, visit_i8, read_i32, i8);
    narrow!(deserialize_i16, visit_i16, read_i32, i16);
    narrow!(deserialize_u8, visit_u8, read_u32, u8);
    narrow!(deserialize_u16, visit_u16, read_u32, u16);

    #[inline]
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i32(self.read_i32()?)
    }
    #[inline]
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i64(i64::from_be_bytes(self.take()?))
    }
    #[inline]
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u32(self.read_u32()?)
    }
    #[inline]
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u64(u64::from_be_bytes(self.take()?))
    }
    #[inline]
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f32(f32::from_be_bytes(self.take()?))
    }
    #[inline]
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f64(f64::from_be_bytes(self.take()?))
    }
    fn deserialize_i128<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        Err(Error::Unsupported { what: "i128" })
    }
    fn deserialize_u128<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        Err(Error::Unsupported { what: "u128" })
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let v = self.read_u32()?;
        let c = char::from_u32(v).ok_or_else(|| out_of_range(i64::from(v), "char"))?;
        visitor.visit_char(c)
    }

    #[inline(always)]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // No `Utf8::Lossy` here: a borrowed `&str` could not hold a replacement anyway, and
        // the branch would cost the borrowed decode a third of its speed (code size).
        visitor.visit_borrowed_str(self.read_str()?)
    }
    #[inline(always)]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.options.utf8 == Utf8::Lossy {
            return self.visit_str_lossy(visitor);
        }
        visitor.visit_borrowed_str(self.read_str()?)
    }
    #[inline(always)]
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_bytes(self.read_opaque()?)
    }
    #[inline]
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_byte_buf(self.read_opaque()?.to_vec())
    }

    #[inline]
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.read_u32()? {
            0 => visitor.visit_none(),
            1 => {
                self.enter()?;
                let r = visitor.visit_some(&mut *self);
                self.leave();
                r
            }
            value => Err(Error::InvalidBool {
                value,
                path: String::new(),
            }),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        match magic::parse(name) {
            Magic::None => visitor.visit_newtype_struct(self),
            Magic::Limit(n) => {
                let prev = self.pending_limit;
                self.pending_limit = Some(prev.map_or(n, |p| p.min(n)));
                let r = visitor.visit_newtype_struct(&mut *self);
                // Not consumed (no length prefix inside): an outer limit still waits for its own.
                if self.pending_limit.is_some() {
                    self.pending_limit = prev;
                }
                r
            }
            Magic::ItemLimit(n) => {
                let prev = self.pending_item_limit.replace(n);
                let r = visitor.visit_newtype_struct(&mut *self);
                self.pending_item_limit = prev;
                r
            }
            Magic::FixedOpaque(n) => {
                self.fixed_opaque = Some(n);
                let r = visitor.visit_newtype_struct(&mut *self);
                self.fixed_opaque = None;
                r
            }
        }
    }

    #[inline]
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let item_limit = self.pending_item_limit.take();
        let count = self.read_len()?;
        if count > self.input.len() / MIN_ELEMENT_SIZE {
            return Err(Error::LengthOverInput {
                len: count as u64,
                remaining: self.input.len(),
                path: String::new(),
            });
        }
        self.enter()?;
        let r = visitor.visit_seq(SeqAccess {
            de: &mut *self,
            index: 0,
            count,
            item_limit,
        });
        self.leave();
        r
    }

    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.enter()?;
        let r = visitor.visit_seq(TupleAccess {
            de: &mut *self,
            left: len,
        });
        self.leave();
        r
    }

    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let root = self.depth == 0;
        self.deserialize_tuple(len, visitor)
            .map_err(|e| if root { e.in_field(name) } else { e })
    }

    fn deserialize_map<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        Err(Error::Unsupported { what: "map" })
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let root = self.depth == 0;
        self.enter().map_err(|e| e.in_field(name))?;
        let r = visitor.visit_seq(StructAccess {
            de: &mut *self,
            fields,
            index: 0,
        });
        self.leave();
        r.map_err(|e| if root { e.in_field(name) } else { e })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let root = self.depth == 0;
        self.enter()?;
        let r = visitor.visit_enum(EnumAccess { de: &mut *self });
        self.leave();
        r.map_err(|e| if root { e.in_field(name) } else { e })
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        Err(Error::Unsupported {
            what: "identifier (XDR has no field names on the wire)",
        })
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        Err(Error::Unsupported {
            what: "ignored_any (XDR is not self-describing)",
        })
    }
}

/// Elements of a variable-length array; adds `[i]` to an error's path.
struct SeqAccess<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    index: usize,
    count: usize,
    /// Maximum for the first length prefix inside each element (`limit::deserialize_items`).
    item_limit: Option<u64>,
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'_, 'de> {
    type Error = Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.index == self.count {
            return Ok(None);
        }
        let i = self.index;
        self.index += 1;
        let r = match self.item_limit {
            None => seed.deserialize(&mut *self.de),
            Some(max) => {
                self.de.pending_limit = Some(max);
                let r = seed.deserialize(&mut *self.de);
                // An element without a length prefix (`None`) leaves the item limit unconsumed.
                self.de.pending_limit = None;
                r
            }
        };
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) => Err(e.in_index(i)),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        // Already bounded by the input size (count <= remaining / 4) when the prefix was read.
        Some(self.count - self.index)
    }
}

/// Elements of a tuple (fixed array, union); the visitor may stop early (void union arms).
struct TupleAccess<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for TupleAccess<'_, 'de> {
    type Error = Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        // The length comes from the type, not the input; never promise more than could be there.
        Some(self.left.min(self.de.input.len() / MIN_ELEMENT_SIZE))
    }
}

/// Fields of a struct, in order; adds `.field` to an error's path.
struct StructAccess<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    fields: &'static [&'static str],
    index: usize,
}

impl<'de> de::SeqAccess<'de> for StructAccess<'_, 'de> {
    type Error = Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some(&field) = self.fields.get(self.index) else {
            return Ok(None);
        };
        self.index += 1;
        match seed.deserialize(&mut *self.de) {
            Ok(v) => Ok(Some(v)),
            Err(e) => Err(e.in_field(field)),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.fields.len() - self.index)
    }
}

/// A Rust enum: the discriminant is the variant index as an XDR unsigned int.
struct EnumAccess<'a, 'de> {
    de: &'a mut Deserializer<'de>,
}

impl<'a, 'de> de::EnumAccess<'de> for EnumAccess<'a, 'de> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let index = self.de.read_u32()?;
        let v = seed.deserialize(IntoDeserializer::<Error>::into_deserializer(index))?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for EnumAccess<'_, 'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(&mut *self.de)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(TupleAccess {
            de: self.de,
            left: len,
        })
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_seq(StructAccess {
            de: self.de,
            fields,
            index: 0,
        })
    }
}
