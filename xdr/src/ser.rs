//! The XDR serializer: serde data model in, RFC 4506 bytes appended to a `Vec<u8>`.

use crate::error::Error;
use crate::magic::{self, Magic};
use serde::ser::{self, Serialize};

/// Serializes values as XDR, appending to a `Vec<u8>`.
///
/// Usually used through [`crate::to_bytes`] or [`crate::to_writer_vec`]; public so callers can
/// serialize several values into one buffer without intermediate allocations:
///
/// ```
/// use serde::Serialize;
/// let mut out = Vec::new();
/// let mut ser = xdr::Serializer::new(&mut out);
/// 7u32.serialize(&mut ser)?;
/// "hi".serialize(&mut ser)?;
/// assert_eq!(out, [0, 0, 0, 7, 0, 0, 0, 2, b'h', b'i', 0, 0]);
/// # Ok::<(), xdr::Error>(())
/// ```
#[derive(Debug)]
pub struct Serializer<'a> {
    out: &'a mut Vec<u8>,
    /// Maximum for the next length prefix (from `limit`).
    pending_limit: Option<u64>,
    /// Maximum for the first length prefix of each item of the next sequence (from
    /// `limit::serialize_items`).
    pending_item_limit: Option<u64>,
    /// The next `serialize_bytes` is a fixed opaque (from `opaque_fixed`).
    fixed_opaque: Option<u64>,
    depth: u32,
}

impl<'a> Serializer<'a> {
    /// A serializer appending to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Serializer {
            out,
            pending_limit: None,
            pending_item_limit: None,
            fixed_opaque: None,
            depth: 0,
        }
    }

    #[inline]
    fn put_u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    #[inline]
    fn put_len(&mut self, len: usize) -> Result<(), Error> {
        let max = self.pending_limit.take().unwrap_or(u64::from(u32::MAX));
        if len as u64 > max {
            return Err(Error::LengthOverLimit {
                len: len as u64,
                max,
                path: String::new(),
            });
        }
        self.put_u32(len as u32);
        Ok(())
    }

    /// `bytes` then zero padding to a multiple of 4. The padding is written as a fixed 3-byte
    /// store and the excess cut off again, which is cheaper than a variable-length copy (a
    /// `memset` call per string).
    #[inline]
    fn put_padded(&mut self, bytes: &[u8]) {
        let pad = (4 - bytes.len() % 4) % 4;
        self.out.reserve(bytes.len() + 3);
        self.out.extend_from_slice(bytes);
        self.out.extend_from_slice(&[0u8; 3]);
        self.out.truncate(self.out.len() - (3 - pad));
    }
}

/// Compound serializer for seqs, tuples and structs; adds the element/field to an error's path.
#[derive(Debug)]
pub struct Compound<'s, 'a> {
    ser: &'s mut Serializer<'a>,
    index: usize,
    /// The struct's name when it is the root value (becomes the start of an error path).
    root: Option<&'static str>,
    /// Maximum for the first length prefix inside each element (sequences under
    /// `limit::serialize_items`).
    item_limit: Option<u64>,
}

impl<'s, 'a> Compound<'s, 'a> {
    #[inline]
    fn new(ser: &'s mut Serializer<'a>, name: Option<&'static str>) -> Self {
        let root = if ser.depth == 0 { name } else { None };
        ser.depth += 1;
        Compound {
            ser,
            index: 0,
            root,
            item_limit: None,
        }
    }

    #[inline]
    fn finish(self) -> Result<(), Error> {
        self.ser.depth -= 1;
        Ok(())
    }

    #[cold]
    fn root_err(&self, e: Error) -> Error {
        match self.root {
            Some(name) => e.in_field(name),
            None => e,
        }
    }
}

impl<'s, 'a> ser::Serializer for &'s mut Serializer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'s, 'a>;
    type SerializeTuple = Compound<'s, 'a>;
    type SerializeTupleStruct = Compound<'s, 'a>;
    type SerializeTupleVariant = Compound<'s, 'a>;
    type SerializeMap = ser::Impossible<(), Error>;
    type SerializeStruct = Compound<'s, 'a>;
    type SerializeStructVariant = Compound<'s, 'a>;

    fn is_human_readable(&self) -> bool {
        false
    }

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.put_u32(u32::from(v));
        Ok(())
    }
    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.serialize_i32(i32::from(v))
    }
    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.serialize_i32(i32::from(v))
    }
    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.serialize_u32(u32::from(v))
    }
    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.serialize_u32(u32::from(v))
    }
    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.put_u32(v);
        Ok(())
    }
    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.serialize_u32(u32::from(v))
    }
    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.put_len(v.len())?;
        self.put_padded(v.as_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        if let Some(n) = self.fixed_opaque.take() {
            if v.len() as u64 != n {
                return Err(Error::Custom {
                    msg: format!("fixed opaque of {n} bytes given {} bytes", v.len()),
                    path: String::new(),
                });
            }
        } else {
            self.put_len(v.len())?;
        }
        self.put_padded(v);
        Ok(())
    }
    #[inline]
    fn serialize_none(self) -> Result<(), Error> {
        self.put_u32(0);
        Ok(())
    }
    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        self.put_u32(1);
        value.serialize(self)
    }
    #[inline]
    fn serialize_unit(self) -> Result<(), Error> {
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        Ok(())
    }
    #[inline]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
    ) -> Result<(), Error> {
        self.put_u32(variant_index);
        Ok(())
    }
    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        match magic::parse(name) {
            Magic::None => value.serialize(self),
            Magic::Limit(n) => {
                let prev = self.pending_limit;
                self.pending_limit = Some(prev.map_or(n, |p| p.min(n)));
                let r = value.serialize(&mut *self);
                // Not consumed (no length prefix inside): an outer limit still waits for its own.
                if self.pending_limit.is_some() {
                    self.pending_limit = prev;
                }
                r
            }
            Magic::ItemLimit(n) => {
                let prev = self.pending_item_limit.replace(n);
                let r = value.serialize(&mut *self);
                self.pending_item_limit = prev;
                r
            }
            Magic::FixedOpaque(n) => {
                self.fixed_opaque = Some(n);
                let r = value.serialize(&mut *self);
                self.fixed_opaque = None;
                r
            }
        }
    }
    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.put_u32(variant_index);
        value.serialize(self)
    }
    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'s, 'a>, Error> {
        let len = len.ok_or(Error::Unsupported {
            what: "sequence of unknown length",
        })?;
        let item_limit = self.pending_item_limit.take();
        self.put_len(len)?;
        let mut c = Compound::new(self, None);
        c.item_limit = item_limit;
        Ok(c)
    }
    #[inline]
    fn serialize_tuple(self, _len: usize) -> Result<Compound<'s, 'a>, Error> {
        Ok(Compound::new(self, None))
    }
    #[inline]
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        _len: usize,
    ) -> Result<Compound<'s, 'a>, Error> {
        Ok(Compound::new(self, Some(name)))
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'s, 'a>, Error> {
        self.put_u32(variant_index);
        Ok(Compound::new(self, Some(name)))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(Error::Unsupported { what: "map" })
    }
    #[inline]
    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Compound<'s, 'a>, Error> {
        Ok(Compound::new(self, Some(name)))
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'s, 'a>, Error> {
        self.put_u32(variant_index);
        Ok(Compound::new(self, Some(name)))
    }
    fn serialize_i128(self, _v: i128) -> Result<(), Error> {
        Err(Error::Unsupported { what: "i128" })
    }
    fn serialize_u128(self, _v: u128) -> Result<(), Error> {
        Err(Error::Unsupported { what: "u128" })
    }
    fn collect_map<K, V, I>(self, _iter: I) -> Result<(), Error>
    where
        K: Serialize,
        V: Serialize,
        I: IntoIterator<Item = (K, V)>,
    {
        Err(Error::Unsupported { what: "map" })
    }
}

impl Compound<'_, '_> {
    #[inline]
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let i = self.index;
        self.index += 1;
        let r = match self.item_limit {
            None => value.serialize(&mut *self.ser),
            Some(max) => {
                self.ser.pending_limit = Some(max);
                let r = value.serialize(&mut *self.ser);
                // An element without a length prefix (`None`) leaves the item limit unconsumed.
                self.ser.pending_limit = None;
                r
            }
        };
        r.map_err(|e| self.root_err(e.in_index(i)))
    }

    #[inline]
    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        value
            .serialize(&mut *self.ser)
            .map_err(|e| self.root_err(e.in_field(key)))
    }

    #[inline]
    fn tuple_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value
            .serialize(&mut *self.ser)
            .map_err(|e| self.root_err(e))
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    #[inline]
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.tuple_field(value)
    }
    #[inline]
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.tuple_field(value)
    }
    #[inline]
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeTupleVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.tuple_field(value)
    }
    #[inline]
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }
    #[inline]
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }
    #[inline]
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}
