//! Schema-driven XDR: decode and encode any type of a loaded [`Schema`] without generated code
//! (feature `schema`).
//!
//! [`decode`] turns bytes into a [`Value`] tree by following a type's definition in the `.x`
//! files; [`encode`] does the reverse, checking the value against the definition. [`Value`]
//! converts to and from JSON ([`Value::to_json`], its `Serialize` impl, and [`from_json`]) with
//! the mapping `cargo xtask xdr` documents; [`dissect`] splits a captured libvirt byte stream into
//! packets and decodes each body by its procedure's types.
//!
//! Decoding is strict, so that `encode(decode(bytes)) == bytes` for every input `decode` accepts:
//! padding must be zero, bools and optional-data flags 0 or 1, strings valid UTF-8, libvirt's
//! 4-byte `char`/`short` within their C range, every declared maximum respected (at every level,
//! not only the outermost). Enum values outside the enum are kept as numbers (a newer peer may
//! send them); a union discriminant that selects no arm is an error. Length and count prefixes
//! are checked against the remaining input before anything is allocated, and nesting is bounded
//! ([`DEFAULT_MAX_DEPTH`]), so hostile input gets a typed [`Error`] naming the field path.
//!
//! [`decode_with`] and [`decode_prefix_with`] take [`DecodeOptions`]: with
//! [`Padding::Lenient`] non-zero padding is skipped like libvirt's C
//! decoder does, and the decoded value then re-encodes with zero padding (not byte for byte);
//! under [`crate::Utf8::Lossy`] strings that are not UTF-8 decode with U+FFFD replacements.
//!
//! `quadruple` (binary128) decodes to [`Value::Quadruple`] holding a [`Quadruple`]'s bits, so
//! every value, NaN payloads included, comes back exactly.
//!
//! ```
//! use xdr::dynamic::{decode, encode, from_json};
//! use xdr::schema::{parse, Schema};
//!
//! let spec = parse("ex.x", "
//!     enum color { RED = 1, GREEN = 2 };
//!     struct pixel { color c; opaque tag<4>; unsigned hyper n; };
//! ")?;
//! let schema = Schema::new(vec![spec])?;
//! let bytes = [0, 0, 0, 2, 0, 0, 0, 1, 0xab, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
//! let value = decode(&schema, "pixel", &bytes)?;
//! let json = serde_json::to_string(&value).unwrap();
//! assert_eq!(json, r#"{"c":"GREEN","tag":"ab","n":9}"#);
//! let back = from_json(&schema, "pixel", &serde_json::from_str(&json).unwrap())?;
//! assert_eq!(encode(&schema, "pixel", &back)?, bytes);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod dissect;
mod json;

pub use json::from_json;

use crate::schema::{self, Declaration, Definition, EnumDef, Schema, Shape, TypeSpec, UnionDef};
use crate::{DecodeOptions, Error, Padding, Quadruple, Utf8};

/// Default nesting limit of [`decode`] and [`encode`]: structs, unions, arrays, optional-data and
/// typedef hops each count one level. The same number as [`crate::de::DEFAULT_MAX_DEPTH`], so
/// [`DecodeOptions::new`] gives it.
pub const DEFAULT_MAX_DEPTH: u32 = crate::de::DEFAULT_MAX_DEPTH;

/// A decoded XDR value, shaped like its type in the schema.
///
/// libvirt's `char`/`short` (4 bytes on the wire) are [`Value::Int`], their unsigned forms
/// [`Value::UInt`]. Fixed and variable arrays are both [`Value::Array`], fixed and variable
/// opaque both [`Value::Opaque`]: the type says which.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `int`, `char`, `short`.
    Int(i32),
    /// `unsigned int`, `unsigned char`, `unsigned short`.
    UInt(u32),
    /// `hyper`.
    Hyper(i64),
    /// `unsigned hyper`.
    UHyper(u64),
    /// `float`.
    Float(f32),
    /// `double`.
    Double(f64),
    /// `quadruple` (IEEE 754 binary128), as its bits.
    Quadruple(Quadruple),
    /// `bool`.
    Bool(bool),
    /// An enum value, with its member name when the enum has one for it.
    Enum {
        /// The value on the wire.
        value: i32,
        /// The member's name; `None` for a value the enum does not list.
        name: Option<String>,
    },
    /// `string<N>`.
    String(String),
    /// `opaque[N]` or `opaque<N>`.
    Opaque(Vec<u8>),
    /// `T x[N]` or `T x<N>`.
    Array(Vec<Value>),
    /// Optional-data `T *x`.
    Optional(Option<Box<Value>>),
    /// A struct's fields in declaration order.
    Struct(Vec<(String, Value)>),
    /// A discriminated union.
    Union(Box<UnionValue>),
}

/// The value of a discriminated union.
#[derive(Debug, Clone, PartialEq)]
pub struct UnionValue {
    /// The discriminant's declared name.
    pub discriminant_name: String,
    /// The discriminant ([`Value::Int`], [`Value::UInt`], [`Value::Enum`] or [`Value::Bool`]).
    pub discriminant: Value,
    /// The active arm's declared name and value; `None` for a `void` arm.
    pub arm: Option<(String, Value)>,
}

impl Value {
    /// A short name of the variant, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::UInt(_) => "unsigned int",
            Value::Hyper(_) => "hyper",
            Value::UHyper(_) => "unsigned hyper",
            Value::Float(_) => "float",
            Value::Double(_) => "double",
            Value::Quadruple(_) => "quadruple",
            Value::Bool(_) => "bool",
            Value::Enum { .. } => "enum",
            Value::String(_) => "string",
            Value::Opaque(_) => "opaque",
            Value::Array(_) => "array",
            Value::Optional(_) => "optional",
            Value::Struct(_) => "struct",
            Value::Union(_) => "union",
        }
    }

    /// The field `name` of a struct value.
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Decode a value of the named type (a typedef, enum, struct or union of `schema`) that must span
/// all of `input` ([`Error::TrailingBytes`] otherwise).
pub fn decode(schema: &Schema, type_name: &str, input: &[u8]) -> Result<Value, Error> {
    decode_with(schema, type_name, input, DecodeOptions::new())
}

/// [`decode`] with [`DecodeOptions`]: the nesting limit (default [`DEFAULT_MAX_DEPTH`]) and the
/// [`Padding`] policy.
pub fn decode_with(
    schema: &Schema,
    type_name: &str,
    input: &[u8],
    options: DecodeOptions,
) -> Result<Value, Error> {
    let (v, used) = decode_prefix_with(schema, type_name, input, options)?;
    if used != input.len() {
        return Err(Error::TrailingBytes {
            count: input.len() - used,
        });
    }
    Ok(v)
}

/// Decode a value of the named type from the start of `input`; returns it and the number of
/// bytes it took.
pub fn decode_prefix(
    schema: &Schema,
    type_name: &str,
    input: &[u8],
) -> Result<(Value, usize), Error> {
    decode_prefix_with(schema, type_name, input, DecodeOptions::new())
}

/// [`decode_prefix`] with [`DecodeOptions`] (nesting limit, [`Padding`] policy).
pub fn decode_prefix_with(
    schema: &Schema,
    type_name: &str,
    input: &[u8],
    options: DecodeOptions,
) -> Result<(Value, usize), Error> {
    let mut d = Decoder {
        schema,
        input,
        pos: 0,
        depth: 0,
        options,
    };
    let v = d.named(type_name).map_err(|e| e.in_field(type_name))?;
    Ok((v, d.pos))
}

/// Encode `value` as the named type of `schema`.
pub fn encode(schema: &Schema, type_name: &str, value: &Value) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    encode_into(schema, type_name, value, &mut out)?;
    Ok(out)
}

/// Encode `value` as the named type of `schema`, appending to `out`.
pub fn encode_into(
    schema: &Schema,
    type_name: &str,
    value: &Value,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let mut e = Encoder {
        schema,
        out,
        depth: 0,
        max_depth: DEFAULT_MAX_DEPTH,
    };
    e.named(type_name, value)
        .map_err(|err| err.in_field(type_name))
}

// ---------------------------------------------------------------------------------------------
// Type resolution shared by the decoder, encoder and JSON conversion.

/// A named type's definition, after nothing: the caller follows typedefs one hop at a time.
pub(crate) enum Named<'s> {
    Typedef(&'s TypeSpec, &'s Shape),
    Enum(&'s EnumDef),
    Struct(&'s schema::StructDef),
    Union(&'s UnionDef),
}

pub(crate) fn lookup<'s>(schema: &'s Schema, name: &str) -> Result<Named<'s>, Error> {
    match schema.definition(name).map(|(_, item)| &item.def) {
        Some(Definition::Typedef(Declaration::Named { ty, shape, .. })) => {
            Ok(Named::Typedef(ty, shape))
        }
        Some(Definition::Enum(e)) => Ok(Named::Enum(e)),
        Some(Definition::Struct(s)) => Ok(Named::Struct(s)),
        Some(Definition::Union(u)) => Ok(Named::Union(u)),
        _ => Err(Error::Custom {
            msg: format!(
                "unknown type `{name}` (not a typedef, enum, struct or union of the schema)"
            ),
            path: String::new(),
        }),
    }
}

/// The number a constant expression (array size, maximum, case label) stands for.
pub(crate) fn constant(schema: &Schema, v: &schema::Value) -> Result<i64, Error> {
    schema.value(v).ok_or_else(|| Error::Custom {
        msg: format!("unknown constant `{v}`"),
        path: String::new(),
    })
}

/// A declared size (`[N]` or `<N>`) as a count; `None` for `<>`.
pub(crate) fn size(schema: &Schema, v: Option<&schema::Value>) -> Result<Option<u64>, Error> {
    match v {
        None => Ok(None),
        Some(v) => {
            let n = constant(schema, v)?;
            u64::try_from(n).map(Some).map_err(|_| Error::Custom {
                msg: format!("negative size {n} in the schema"),
                path: String::new(),
            })
        }
    }
}

/// The member name of an enum value.
pub(crate) fn enum_name(schema: &Schema, e: &EnumDef, value: i32) -> Option<String> {
    e.members
        .iter()
        .find(|m| schema.constant(&m.name) == Some(i64::from(value)))
        .map(|m| m.name.clone())
}

/// The arm a discriminant selects: `Ok(None)` for a void arm.
pub(crate) fn select_arm<'s>(
    schema: &Schema,
    u: &'s UnionDef,
    disc: i64,
) -> Result<&'s Declaration, Error> {
    for arm in &u.arms {
        for l in &arm.labels {
            if constant(schema, l)? == disc {
                return Ok(&arm.field.decl);
            }
        }
    }
    match &u.default {
        Some(d) => Ok(&d.decl),
        None => Err(Error::InvalidValue {
            value: disc.to_string(),
            expected: format!(
                "a case label of union `{}`",
                if u.name.is_empty() {
                    "(anonymous)"
                } else {
                    &u.name
                }
            ),
            path: u.discriminant.decl.name().unwrap_or_default().to_string(),
        }),
    }
}

/// The number a decoded discriminant stands for.
pub(crate) fn discriminant_number(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(i64::from(*n)),
        Value::UInt(n) => Some(i64::from(*n)),
        Value::Enum { value, .. } => Some(i64::from(*value)),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// The C range of libvirt's 4-byte small integers.
pub(crate) fn small_int_range(ty: &TypeSpec) -> Option<(i64, i64, &'static str)> {
    match ty {
        TypeSpec::Char => Some((i8::MIN.into(), i8::MAX.into(), "char")),
        TypeSpec::UChar => Some((0, u8::MAX.into(), "unsigned char")),
        TypeSpec::Short => Some((i16::MIN.into(), i16::MAX.into(), "short")),
        TypeSpec::UShort => Some((0, u16::MAX.into(), "unsigned short")),
        _ => None,
    }
}

fn depth_error(max: u32) -> Error {
    Error::DepthLimitExceeded {
        max,
        path: String::new(),
    }
}

fn pad_len(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// A lower bound of a type's wire size (used to bound counts by the input left). Gives up (0)
/// past a small recursion budget, which keeps it a lower bound.
fn min_size(schema: &Schema, ty: &TypeSpec, shape: &Shape, budget: u32) -> u64 {
    if budget == 0 {
        return 0;
    }
    match shape {
        Shape::Optional | Shape::Variable(_) => 4,
        Shape::Fixed(n) => {
            let n = schema
                .value(n)
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0);
            match ty {
                TypeSpec::Opaque => n.saturating_add(3) / 4 * 4,
                _ => n.saturating_mul(min_size(schema, ty, &Shape::Scalar, budget - 1)),
            }
        }
        Shape::Scalar => match ty {
            TypeSpec::Hyper | TypeSpec::UHyper | TypeSpec::Double => 8,
            TypeSpec::Quadruple => 16,
            TypeSpec::String | TypeSpec::Opaque => 4,
            TypeSpec::Struct(s) => struct_min(schema, s, budget),
            TypeSpec::Union(_) => 4,
            TypeSpec::Named(n) => match lookup(schema, n) {
                Ok(Named::Typedef(t, s)) => min_size(schema, t, s, budget - 1),
                Ok(Named::Struct(s)) => struct_min(schema, s, budget),
                Ok(_) => 4,
                Err(_) => 0,
            },
            _ => 4,
        },
    }
}

fn struct_min(schema: &Schema, s: &schema::StructDef, budget: u32) -> u64 {
    s.fields
        .iter()
        .map(|f| match &f.decl {
            Declaration::Named { ty, shape, .. } => min_size(schema, ty, shape, budget - 1),
            Declaration::Void => 0,
        })
        .fold(0u64, u64::saturating_add)
}

// ---------------------------------------------------------------------------------------------
// Decoder

struct Decoder<'s, 'i> {
    schema: &'s Schema,
    input: &'i [u8],
    pos: usize,
    depth: u32,
    /// Depth limit, padding and UTF-8 policies.
    options: DecodeOptions,
}

impl Decoder<'_, '_> {
    fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&[u8], Error> {
        if self.remaining() < n {
            return Err(Error::UnexpectedEof {
                needed: n,
                remaining: self.remaining(),
                path: String::new(),
            });
        }
        let s = &self.input[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, Error> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn bool(&mut self) -> Result<bool, Error> {
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(Error::InvalidBool {
                value,
                path: String::new(),
            }),
        }
    }

    fn enter(&mut self) -> Result<(), Error> {
        if self.depth >= self.options.max_depth {
            return Err(depth_error(self.options.max_depth));
        }
        self.depth += 1;
        Ok(())
    }

    /// A length prefix checked against the declared maximum and the input left (`unit` bytes
    /// per counted item at least).
    fn len(&mut self, max: Option<u64>, unit: u64) -> Result<usize, Error> {
        let len = u64::from(self.u32()?);
        if let Some(max) = max {
            if len > max {
                return Err(Error::LengthOverLimit {
                    len,
                    max,
                    path: String::new(),
                });
            }
        }
        if len.saturating_mul(unit.max(1)) > self.remaining() as u64 {
            return Err(Error::LengthOverInput {
                len,
                remaining: self.remaining(),
                path: String::new(),
            });
        }
        Ok(len as usize)
    }

    fn padded(&mut self, len: usize) -> Result<Vec<u8>, Error> {
        let total = len.saturating_add(pad_len(len));
        if self.remaining() < total {
            return Err(Error::UnexpectedEof {
                needed: total,
                remaining: self.remaining(),
                path: String::new(),
            });
        }
        let data = self.take(len)?.to_vec();
        let strict = self.options.padding == Padding::Strict;
        let padding = self.take(total - len)?;
        if strict && padding.iter().any(|b| *b != 0) {
            return Err(Error::NonZeroPadding {
                path: String::new(),
            });
        }
        Ok(data)
    }

    fn named(&mut self, name: &str) -> Result<Value, Error> {
        self.enter()?;
        let v = match lookup(self.schema, name)? {
            Named::Typedef(ty, shape) => self.decl(ty, shape),
            Named::Enum(e) => self.enumeration(e),
            Named::Struct(s) => self.structure(s),
            Named::Union(u) => self.union(u),
        };
        self.depth -= 1;
        v
    }

    fn decl(&mut self, ty: &TypeSpec, shape: &Shape) -> Result<Value, Error> {
        let schema = self.schema;
        match shape {
            Shape::Scalar => self.ty(ty),
            Shape::Optional => {
                if self.bool()? {
                    self.enter()?;
                    let v = self.ty(ty);
                    self.depth -= 1;
                    Ok(Value::Optional(Some(Box::new(v?))))
                } else {
                    Ok(Value::Optional(None))
                }
            }
            Shape::Fixed(n) => {
                let n = size(schema, Some(n))?.unwrap_or(0);
                match ty {
                    TypeSpec::Opaque => {
                        let n = usize::try_from(n).map_err(|_| Error::UnexpectedEof {
                            needed: usize::MAX,
                            remaining: self.remaining(),
                            path: String::new(),
                        })?;
                        Ok(Value::Opaque(self.padded(n)?))
                    }
                    TypeSpec::String => Err(Error::Custom {
                        msg: "a string cannot be a fixed array".into(),
                        path: String::new(),
                    }),
                    _ => {
                        let unit = min_size(schema, ty, &Shape::Scalar, 8);
                        if n.saturating_mul(unit.max(1)) > self.remaining() as u64 {
                            return Err(Error::LengthOverInput {
                                len: n,
                                remaining: self.remaining(),
                                path: String::new(),
                            });
                        }
                        self.elements(ty, n as usize)
                    }
                }
            }
            Shape::Variable(max) => {
                let max = size(schema, max.as_ref())?;
                match ty {
                    TypeSpec::Opaque => {
                        let len = self.len(max, 1)?;
                        Ok(Value::Opaque(self.padded(len)?))
                    }
                    TypeSpec::String => {
                        let len = self.len(max, 1)?;
                        let data = self.padded(len)?;
                        match (String::from_utf8(data), self.options.utf8) {
                            (Ok(s), _) => Ok(Value::String(s)),
                            (Err(e), Utf8::Lossy) => Ok(Value::String(
                                String::from_utf8_lossy(e.as_bytes()).into_owned(),
                            )),
                            (Err(_), Utf8::Strict) => Err(Error::InvalidUtf8 {
                                path: String::new(),
                            }),
                        }
                    }
                    _ => {
                        let unit = min_size(schema, ty, &Shape::Scalar, 8);
                        let n = self.len(max, unit)?;
                        self.elements(ty, n)
                    }
                }
            }
        }
    }

    fn elements(&mut self, ty: &TypeSpec, n: usize) -> Result<Value, Error> {
        self.enter()?;
        let mut items = Vec::with_capacity(n.min(self.remaining()));
        for i in 0..n {
            match self.ty(ty) {
                Ok(v) => items.push(v),
                Err(e) => {
                    self.depth -= 1;
                    return Err(e.in_index(i));
                }
            }
        }
        self.depth -= 1;
        Ok(Value::Array(items))
    }

    fn ty(&mut self, ty: &TypeSpec) -> Result<Value, Error> {
        Ok(match ty {
            TypeSpec::Int => Value::Int(self.u32()? as i32),
            TypeSpec::UInt => Value::UInt(self.u32()?),
            TypeSpec::Char | TypeSpec::Short => {
                let v = self.u32()? as i32;
                let (lo, hi, target) = small_int_range(ty).unwrap_or((0, 0, "int"));
                if !(lo..=hi).contains(&i64::from(v)) {
                    return Err(Error::IntegerOutOfRange {
                        value: v.into(),
                        target,
                        path: String::new(),
                    });
                }
                Value::Int(v)
            }
            TypeSpec::UChar | TypeSpec::UShort => {
                let v = self.u32()?;
                let (lo, hi, target) = small_int_range(ty).unwrap_or((0, 0, "int"));
                if !(lo..=hi).contains(&i64::from(v)) {
                    return Err(Error::IntegerOutOfRange {
                        value: v.into(),
                        target,
                        path: String::new(),
                    });
                }
                Value::UInt(v)
            }
            TypeSpec::Hyper => Value::Hyper(self.u64()? as i64),
            TypeSpec::UHyper => Value::UHyper(self.u64()?),
            TypeSpec::Float => Value::Float(f32::from_bits(self.u32()?)),
            TypeSpec::Double => Value::Double(f64::from_bits(self.u64()?)),
            TypeSpec::Bool => Value::Bool(self.bool()?),
            TypeSpec::Quadruple => {
                let b = self.take(16)?;
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                Value::Quadruple(Quadruple::from_be_bytes(a))
            }
            TypeSpec::String | TypeSpec::Opaque => {
                // `string x` / `opaque x` without a shape is not valid XDR; treat like `<>`.
                return self.decl(ty, &Shape::Variable(None));
            }
            TypeSpec::Named(n) => self.named(n)?,
            TypeSpec::Enum(e) => self.enumeration(e)?,
            TypeSpec::Struct(s) => {
                self.enter()?;
                let v = self.structure(s);
                self.depth -= 1;
                v?
            }
            TypeSpec::Union(u) => {
                self.enter()?;
                let v = self.union(u);
                self.depth -= 1;
                v?
            }
        })
    }

    fn enumeration(&mut self, e: &EnumDef) -> Result<Value, Error> {
        let value = self.u32()? as i32;
        Ok(Value::Enum {
            value,
            name: enum_name(self.schema, e, value),
        })
    }

    fn structure(&mut self, s: &schema::StructDef) -> Result<Value, Error> {
        let mut fields = Vec::with_capacity(s.fields.len());
        for f in &s.fields {
            if let Declaration::Named { name, ty, shape } = &f.decl {
                let v = self.decl(ty, shape).map_err(|e| e.in_field(name))?;
                fields.push((name.clone(), v));
            }
        }
        Ok(Value::Struct(fields))
    }

    fn union(&mut self, u: &UnionDef) -> Result<Value, Error> {
        let (dname, dty) = match &u.discriminant.decl {
            Declaration::Named { name, ty, .. } => (name.as_str(), ty),
            Declaration::Void => {
                return Err(Error::Custom {
                    msg: "void union discriminant".into(),
                    path: String::new(),
                })
            }
        };
        let disc = self.ty(dty).map_err(|e| e.in_field(dname))?;
        let n = discriminant_number(&disc).ok_or_else(|| Error::Custom {
            msg: format!(
                "union discriminant of type {} is not int, unsigned, enum or bool",
                disc.kind()
            ),
            path: dname.to_string(),
        })?;
        let arm = match select_arm(self.schema, u, n)? {
            Declaration::Void => None,
            Declaration::Named { name, ty, shape } => {
                let v = self.decl(ty, shape).map_err(|e| e.in_field(name))?;
                Some((name.clone(), v))
            }
        };
        Ok(Value::Union(Box::new(UnionValue {
            discriminant_name: dname.to_string(),
            discriminant: disc,
            arm,
        })))
    }
}

// ---------------------------------------------------------------------------------------------
// Encoder

struct Encoder<'s, 'o> {
    schema: &'s Schema,
    out: &'o mut Vec<u8>,
    depth: u32,
    max_depth: u32,
}

fn mismatch(v: &Value, expected: impl Into<String>) -> Error {
    Error::InvalidValue {
        value: format!("a value of kind {}", v.kind()),
        expected: expected.into(),
        path: String::new(),
    }
}

impl Encoder<'_, '_> {
    fn enter(&mut self) -> Result<(), Error> {
        if self.depth >= self.max_depth {
            return Err(depth_error(self.max_depth));
        }
        self.depth += 1;
        Ok(())
    }

    fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    fn len(&mut self, len: usize, max: Option<u64>) -> Result<(), Error> {
        let limit = max.unwrap_or(u64::from(u32::MAX)).min(u64::from(u32::MAX));
        if len as u64 > limit {
            return Err(Error::LengthOverLimit {
                len: len as u64,
                max: limit,
                path: String::new(),
            });
        }
        self.u32(len as u32);
        Ok(())
    }

    fn padded(&mut self, data: &[u8]) {
        self.out.extend_from_slice(data);
        self.out
            .extend(std::iter::repeat_n(0u8, pad_len(data.len())));
    }

    fn named(&mut self, name: &str, v: &Value) -> Result<(), Error> {
        self.enter()?;
        let r = match lookup(self.schema, name)? {
            Named::Typedef(ty, shape) => self.decl(ty, shape, v),
            Named::Enum(e) => self.enumeration(e, v),
            Named::Struct(s) => self.structure(s, v),
            Named::Union(u) => self.union(u, v),
        };
        self.depth -= 1;
        r
    }

    fn decl(&mut self, ty: &TypeSpec, shape: &Shape, v: &Value) -> Result<(), Error> {
        let schema = self.schema;
        match shape {
            Shape::Scalar => self.ty(ty, v),
            Shape::Optional => match v {
                Value::Optional(None) => {
                    self.u32(0);
                    Ok(())
                }
                Value::Optional(Some(inner)) => {
                    self.u32(1);
                    self.enter()?;
                    let r = self.ty(ty, inner);
                    self.depth -= 1;
                    r
                }
                _ => Err(mismatch(v, "optional-data (null or a value)")),
            },
            Shape::Fixed(n) => {
                let n = size(schema, Some(n))?.unwrap_or(0);
                match (ty, v) {
                    (TypeSpec::Opaque, Value::Opaque(data)) => {
                        if data.len() as u64 != n {
                            return Err(Error::InvalidValue {
                                value: format!("{} bytes", data.len()),
                                expected: format!("exactly {n} bytes of fixed opaque"),
                                path: String::new(),
                            });
                        }
                        self.padded(data);
                        Ok(())
                    }
                    (TypeSpec::Opaque, _) => Err(mismatch(v, "opaque (hex string)")),
                    (_, Value::Array(items)) => {
                        if items.len() as u64 != n {
                            return Err(Error::InvalidValue {
                                value: format!("{} elements", items.len()),
                                expected: format!("exactly {n} elements of a fixed array"),
                                path: String::new(),
                            });
                        }
                        self.elements(ty, items)
                    }
                    _ => Err(mismatch(v, format!("a fixed array of {n} elements"))),
                }
            }
            Shape::Variable(max) => {
                let max = size(schema, max.as_ref())?;
                match (ty, v) {
                    (TypeSpec::Opaque, Value::Opaque(data)) => {
                        self.len(data.len(), max)?;
                        self.padded(data);
                        Ok(())
                    }
                    (TypeSpec::String, Value::String(s)) => {
                        self.len(s.len(), max)?;
                        self.padded(s.as_bytes());
                        Ok(())
                    }
                    (TypeSpec::Opaque, _) => Err(mismatch(v, "opaque (hex string)")),
                    (TypeSpec::String, _) => Err(mismatch(v, "string")),
                    (_, Value::Array(items)) => {
                        self.len(items.len(), max)?;
                        self.elements(ty, items)
                    }
                    _ => Err(mismatch(v, "a variable-length array")),
                }
            }
        }
    }

    fn elements(&mut self, ty: &TypeSpec, items: &[Value]) -> Result<(), Error> {
        self.enter()?;
        for (i, item) in items.iter().enumerate() {
            if let Err(e) = self.ty(ty, item) {
                self.depth -= 1;
                return Err(e.in_index(i));
            }
        }
        self.depth -= 1;
        Ok(())
    }

    fn ty(&mut self, ty: &TypeSpec, v: &Value) -> Result<(), Error> {
        match (ty, v) {
            (TypeSpec::Int, Value::Int(n)) => self.u32(*n as u32),
            (TypeSpec::UInt, Value::UInt(n)) => self.u32(*n),
            (TypeSpec::Char | TypeSpec::Short, Value::Int(n))
            | (TypeSpec::UChar | TypeSpec::UShort, Value::Int(n)) => {
                let (lo, hi, target) = small_int_range(ty).unwrap_or((0, 0, "int"));
                if !(lo..=hi).contains(&i64::from(*n)) {
                    return Err(Error::IntegerOutOfRange {
                        value: (*n).into(),
                        target,
                        path: String::new(),
                    });
                }
                self.u32(*n as u32)
            }
            (
                TypeSpec::UChar | TypeSpec::UShort | TypeSpec::Char | TypeSpec::Short,
                Value::UInt(n),
            ) => {
                let (lo, hi, target) = small_int_range(ty).unwrap_or((0, 0, "int"));
                if !(lo..=hi).contains(&i64::from(*n)) {
                    return Err(Error::IntegerOutOfRange {
                        value: (*n).into(),
                        target,
                        path: String::new(),
                    });
                }
                self.u32(*n)
            }
            (TypeSpec::Hyper, Value::Hyper(n)) => self.out.extend_from_slice(&n.to_be_bytes()),
            (TypeSpec::UHyper, Value::UHyper(n)) => self.out.extend_from_slice(&n.to_be_bytes()),
            (TypeSpec::Float, Value::Float(f)) => self.u32(f.to_bits()),
            (TypeSpec::Double, Value::Double(f)) => {
                self.out.extend_from_slice(&f.to_bits().to_be_bytes())
            }
            (TypeSpec::Bool, Value::Bool(b)) => self.u32(u32::from(*b)),
            (TypeSpec::Quadruple, Value::Quadruple(q)) => {
                self.out.extend_from_slice(&q.to_be_bytes())
            }
            (TypeSpec::String | TypeSpec::Opaque, _) => {
                return self.decl(ty, &Shape::Variable(None), v)
            }
            (TypeSpec::Named(n), _) => return self.named(n, v),
            (TypeSpec::Enum(e), _) => return self.enumeration(e, v),
            (TypeSpec::Struct(s), _) => {
                self.enter()?;
                let r = self.structure(s, v);
                self.depth -= 1;
                return r;
            }
            (TypeSpec::Union(u), _) => {
                self.enter()?;
                let r = self.union(u, v);
                self.depth -= 1;
                return r;
            }
            _ => return Err(mismatch(v, type_description(ty))),
        }
        Ok(())
    }

    fn enumeration(&mut self, _e: &EnumDef, v: &Value) -> Result<(), Error> {
        match v {
            Value::Enum { value, .. } => {
                self.u32(*value as u32);
                Ok(())
            }
            _ => Err(mismatch(v, "an enum value")),
        }
    }

    fn structure(&mut self, s: &schema::StructDef, v: &Value) -> Result<(), Error> {
        let Value::Struct(fields) = v else {
            return Err(mismatch(v, "a struct"));
        };
        let declared: Vec<_> = s
            .fields
            .iter()
            .filter_map(|f| match &f.decl {
                Declaration::Named { name, ty, shape } => Some((name, ty, shape)),
                Declaration::Void => None,
            })
            .collect();
        if fields.len() != declared.len()
            || fields
                .iter()
                .zip(&declared)
                .any(|((a, _), (b, _, _))| a != *b)
        {
            return Err(Error::InvalidValue {
                value: format!(
                    "fields [{}]",
                    fields
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                expected: format!(
                    "fields [{}]",
                    declared
                        .iter()
                        .map(|(n, _, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                path: String::new(),
            });
        }
        for ((name, fv), (_, ty, shape)) in fields.iter().zip(&declared) {
            self.decl(ty, shape, fv).map_err(|e| e.in_field(name))?;
        }
        Ok(())
    }

    fn union(&mut self, u: &UnionDef, v: &Value) -> Result<(), Error> {
        let Value::Union(uv) = v else {
            return Err(mismatch(v, "a union"));
        };
        let Declaration::Named {
            name: dname,
            ty: dty,
            ..
        } = &u.discriminant.decl
        else {
            return Err(Error::Custom {
                msg: "void union discriminant".into(),
                path: String::new(),
            });
        };
        if &uv.discriminant_name != dname {
            return Err(Error::InvalidValue {
                value: format!("discriminant `{}`", uv.discriminant_name),
                expected: format!("discriminant `{dname}`"),
                path: String::new(),
            });
        }
        self.ty(dty, &uv.discriminant)
            .map_err(|e| e.in_field(dname))?;
        let disc = discriminant_number(&uv.discriminant)
            .ok_or_else(|| mismatch(&uv.discriminant, "int, unsigned, enum or bool"))?;
        match (select_arm(self.schema, u, disc)?, &uv.arm) {
            (Declaration::Void, None) => Ok(()),
            (Declaration::Named { name, ty, shape }, Some((aname, av))) if name == aname => {
                self.decl(ty, shape, av).map_err(|e| e.in_field(name))
            }
            (decl, arm) => Err(Error::InvalidValue {
                value: match arm {
                    Some((n, _)) => format!("arm `{n}`"),
                    None => "no arm".into(),
                },
                expected: match decl.name() {
                    Some(n) => format!("arm `{n}` for discriminant {disc}"),
                    None => format!("no arm (void) for discriminant {disc}"),
                },
                path: String::new(),
            }),
        }
    }
}

/// A short description of a type spec, for error messages.
pub(crate) fn type_description(ty: &TypeSpec) -> String {
    match ty {
        TypeSpec::Int => "int".into(),
        TypeSpec::UInt => "unsigned int".into(),
        TypeSpec::Hyper => "hyper".into(),
        TypeSpec::UHyper => "unsigned hyper".into(),
        TypeSpec::Char => "char".into(),
        TypeSpec::UChar => "unsigned char".into(),
        TypeSpec::Short => "short".into(),
        TypeSpec::UShort => "unsigned short".into(),
        TypeSpec::Float => "float".into(),
        TypeSpec::Double => "double".into(),
        TypeSpec::Quadruple => "quadruple".into(),
        TypeSpec::Bool => "bool".into(),
        TypeSpec::String => "string".into(),
        TypeSpec::Opaque => "opaque".into(),
        TypeSpec::Named(n) => format!("`{n}`"),
        TypeSpec::Enum(_) => "enum".into(),
        TypeSpec::Struct(_) => "struct".into(),
        TypeSpec::Union(_) => "union".into(),
    }
}
