//! JSON form of [`Value`]: `Serialize` (field order kept) and type-directed [`from_json`].
//!
//! Mapping: integers and floats as numbers; bool as `true`/`false`; an enum as its member name
//! (a value the enum does not list as a number); strings as strings; opaque as lowercase hex;
//! arrays as arrays; optional-data as `null` or the value; a struct as an object keyed by field
//! name; a union as an object with the discriminant under its declared name (symbolic if it is an
//! enum) plus the active arm under its name (nothing more for a `void` arm).
//!
//! JSON has no NaN or infinities, so a non-finite `float`/`double` is a string: `"NaN"` (the
//! canonical quiet NaN), `"Infinity"`, `"-Infinity"`, or `"NaN:0x…"` with the exact bits of any
//! other NaN. A `float` is written as the `double` it widens to (exact), so every value comes
//! back bit for bit.
//!
//! A `quadruple` (binary128) that a `double` holds exactly (see [`Quadruple::to_f64`]) is written
//! as that `double`, in the `double`'s form above (a number, or one of its strings); any other
//! quadruple is the string `"0x"` followed by the 32 lowercase hex digits of its bits
//! (big-endian: sign, exponent, fraction), e.g. `"0x3fff0000000000000000000000000001"`. When
//! encoding, a quadruple accepts a number (an integer in `hyper`/`unsigned hyper` range exactly,
//! any other number as the double the JSON parser reads, widened exactly), the `double`'s
//! strings, and `"0x"` with 32 hex digits (any bits, either case).

use super::{
    discriminant_number, enum_name, lookup, select_arm, size, small_int_range, Named, UnionValue,
    Value,
};
use crate::schema::{self, Declaration, EnumDef, Schema, Shape, TypeSpec, UnionDef};
use crate::{Error, Quadruple};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value as Json;

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Int(n) => s.serialize_i32(*n),
            Value::UInt(n) => s.serialize_u32(*n),
            Value::Hyper(n) => s.serialize_i64(*n),
            Value::UHyper(n) => s.serialize_u64(*n),
            Value::Float(f) => match non_finite_f32(*f) {
                Some(text) => s.serialize_str(&text),
                None => s.serialize_f64(f64::from(*f)),
            },
            Value::Double(f) => match non_finite_f64(*f) {
                Some(text) => s.serialize_str(&text),
                None => s.serialize_f64(*f),
            },
            Value::Quadruple(q) => match q.to_f64() {
                Some(f) => Value::Double(f).serialize(s),
                None => s.serialize_str(&format!("{:#034x}", q.to_bits())),
            },
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Enum { name: Some(n), .. } => s.serialize_str(n),
            Value::Enum { value, name: None } => s.serialize_i32(*value),
            Value::String(t) => s.serialize_str(t),
            Value::Opaque(data) => s.serialize_str(&hex::encode(data)),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Value::Optional(None) => s.serialize_none(),
            Value::Optional(Some(v)) => s.serialize_some(v.as_ref()),
            Value::Struct(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Value::Union(u) => {
                let mut map = s.serialize_map(Some(1 + usize::from(u.arm.is_some())))?;
                map.serialize_entry(&u.discriminant_name, &u.discriminant)?;
                if let Some((k, v)) = &u.arm {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl Value {
    /// This value as a `serde_json::Value` (object keys sorted by `serde_json`'s map; serialize
    /// the `Value` itself to keep declaration order).
    pub fn to_json(&self) -> Json {
        // Serializing to serde_json::Value cannot fail: every key is a string.
        serde_json::to_value(self).unwrap_or(Json::Null)
    }
}

fn non_finite_f64(f: f64) -> Option<String> {
    if f.is_finite() {
        None
    } else if f == f64::INFINITY {
        Some("Infinity".into())
    } else if f == f64::NEG_INFINITY {
        Some("-Infinity".into())
    } else if f.to_bits() == f64::NAN.to_bits() {
        Some("NaN".into())
    } else {
        Some(format!("NaN:{:#018x}", f.to_bits()))
    }
}

fn non_finite_f32(f: f32) -> Option<String> {
    if f.is_finite() {
        None
    } else if f == f32::INFINITY {
        Some("Infinity".into())
    } else if f == f32::NEG_INFINITY {
        Some("-Infinity".into())
    } else if f.to_bits() == f32::NAN.to_bits() {
        Some("NaN".into())
    } else {
        Some(format!("NaN:{:#010x}", f.to_bits()))
    }
}

/// Build the [`Value`] of the named type from its JSON form (the inverse of serializing a
/// decoded value). Errors name the field path; unknown, missing or extra object keys are errors.
pub fn from_json(schema: &Schema, type_name: &str, json: &Json) -> Result<Value, Error> {
    let mut c = FromJson { schema, depth: 0 };
    c.named(type_name, json).map_err(|e| e.in_field(type_name))
}

struct FromJson<'s> {
    schema: &'s Schema,
    depth: u32,
}

fn describe(j: &Json) -> String {
    let s = j.to_string();
    if s.len() > 40 {
        let mut cut = 40;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &s[..cut])
    } else {
        s
    }
}

fn expected(j: &Json, what: impl Into<String>) -> Error {
    Error::InvalidValue {
        value: describe(j),
        expected: what.into(),
        path: String::new(),
    }
}

impl FromJson<'_> {
    fn enter(&mut self) -> Result<(), Error> {
        if self.depth >= super::DEFAULT_MAX_DEPTH {
            return Err(super::depth_error(super::DEFAULT_MAX_DEPTH));
        }
        self.depth += 1;
        Ok(())
    }

    fn named(&mut self, name: &str, j: &Json) -> Result<Value, Error> {
        self.enter()?;
        let r = match lookup(self.schema, name)? {
            Named::Typedef(ty, shape) => self.decl(ty, shape, j),
            Named::Enum(e) => self.enumeration(e, j),
            Named::Struct(s) => self.structure(s, j),
            Named::Union(u) => self.union(u, j),
        };
        self.depth -= 1;
        r
    }

    fn decl(&mut self, ty: &TypeSpec, shape: &Shape, j: &Json) -> Result<Value, Error> {
        match shape {
            Shape::Scalar => self.ty(ty, j),
            Shape::Optional => {
                if j.is_null() {
                    Ok(Value::Optional(None))
                } else {
                    self.enter()?;
                    let v = self.ty(ty, j);
                    self.depth -= 1;
                    Ok(Value::Optional(Some(Box::new(v?))))
                }
            }
            Shape::Fixed(n) => {
                let n = size(self.schema, Some(n))?.unwrap_or(0);
                match ty {
                    TypeSpec::Opaque => {
                        let data = hex_value(j)?;
                        if data.len() as u64 != n {
                            return Err(expected(j, format!("{n} bytes of hex (fixed opaque)")));
                        }
                        Ok(Value::Opaque(data))
                    }
                    _ => {
                        let items = j
                            .as_array()
                            .ok_or_else(|| expected(j, format!("an array of {n} elements")))?;
                        if items.len() as u64 != n {
                            return Err(expected(
                                j,
                                format!("exactly {n} elements (fixed array), not {}", items.len()),
                            ));
                        }
                        self.elements(ty, items)
                    }
                }
            }
            Shape::Variable(max) => {
                let max = size(self.schema, max.as_ref())?;
                let check = |len: usize| -> Result<(), Error> {
                    match max {
                        Some(max) if len as u64 > max => Err(Error::LengthOverLimit {
                            len: len as u64,
                            max,
                            path: String::new(),
                        }),
                        _ => Ok(()),
                    }
                };
                match ty {
                    TypeSpec::Opaque => {
                        let data = hex_value(j)?;
                        check(data.len())?;
                        Ok(Value::Opaque(data))
                    }
                    TypeSpec::String => {
                        let s = j.as_str().ok_or_else(|| expected(j, "a string"))?;
                        check(s.len())?;
                        Ok(Value::String(s.to_string()))
                    }
                    _ => {
                        let items = j.as_array().ok_or_else(|| expected(j, "an array"))?;
                        check(items.len())?;
                        self.elements(ty, items)
                    }
                }
            }
        }
    }

    fn elements(&mut self, ty: &TypeSpec, items: &[Json]) -> Result<Value, Error> {
        self.enter()?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match self.ty(ty, item) {
                Ok(v) => out.push(v),
                Err(e) => {
                    self.depth -= 1;
                    return Err(e.in_index(i));
                }
            }
        }
        self.depth -= 1;
        Ok(Value::Array(out))
    }

    fn ty(&mut self, ty: &TypeSpec, j: &Json) -> Result<Value, Error> {
        let int_in = |lo: i64, hi: i64, what: &str| -> Result<i64, Error> {
            j.as_i64()
                .filter(|n| (lo..=hi).contains(n))
                .ok_or_else(|| expected(j, format!("an integer in {lo}..={hi} ({what})")))
        };
        Ok(match ty {
            TypeSpec::Int => Value::Int(int_in(i32::MIN.into(), i32::MAX.into(), "int")? as i32),
            TypeSpec::UInt => Value::UInt(int_in(0, u32::MAX.into(), "unsigned int")? as u32),
            TypeSpec::Char | TypeSpec::Short => {
                let (lo, hi, what) = small_int_range(ty).unwrap_or((0, 0, "int"));
                Value::Int(int_in(lo, hi, what)? as i32)
            }
            TypeSpec::UChar | TypeSpec::UShort => {
                let (lo, hi, what) = small_int_range(ty).unwrap_or((0, 0, "int"));
                Value::UInt(int_in(lo, hi, what)? as u32)
            }
            TypeSpec::Hyper => Value::Hyper(
                j.as_i64()
                    .ok_or_else(|| expected(j, "an integer (hyper)"))?,
            ),
            TypeSpec::UHyper => Value::UHyper(
                j.as_u64()
                    .ok_or_else(|| expected(j, "a non-negative integer (unsigned hyper)"))?,
            ),
            TypeSpec::Float => Value::Float(match j {
                Json::String(s) => special_f64(s)
                    .map(|f| f as f32)
                    .or_else(|| nan_bits(s, 8).map(|b| f32::from_bits(b as u32)))
                    .ok_or_else(|| expected(j, "a number (float)"))?,
                _ => {
                    let f = j.as_f64().ok_or_else(|| expected(j, "a number (float)"))?;
                    let narrow = f as f32;
                    if f64::from(narrow) != f {
                        return Err(expected(j, "a number a float holds exactly"));
                    }
                    narrow
                }
            }),
            TypeSpec::Double => Value::Double(match j {
                Json::String(s) => {
                    double_string(s).ok_or_else(|| expected(j, "a number (double)"))?
                }
                _ => j.as_f64().ok_or_else(|| expected(j, "a number (double)"))?,
            }),
            TypeSpec::Bool => Value::Bool(j.as_bool().ok_or_else(|| expected(j, "true or false"))?),
            TypeSpec::Quadruple => Value::Quadruple(quadruple(j)?),
            TypeSpec::String | TypeSpec::Opaque => return self.decl(ty, &Shape::Variable(None), j),
            TypeSpec::Named(n) => self.named(n, j)?,
            TypeSpec::Enum(e) => self.enumeration(e, j)?,
            TypeSpec::Struct(s) => {
                self.enter()?;
                let v = self.structure(s, j);
                self.depth -= 1;
                v?
            }
            TypeSpec::Union(u) => {
                self.enter()?;
                let v = self.union(u, j);
                self.depth -= 1;
                v?
            }
        })
    }

    fn enumeration(&mut self, e: &EnumDef, j: &Json) -> Result<Value, Error> {
        let value = match j {
            Json::String(s) => {
                let m = e.members.iter().find(|m| &m.name == s).ok_or_else(|| {
                    expected(
                        j,
                        format!(
                            "a member of enum `{}` or a number",
                            if e.name.is_empty() {
                                "(anonymous)"
                            } else {
                                &e.name
                            }
                        ),
                    )
                })?;
                let v = self.schema.constant(&m.name).unwrap_or_default();
                i32::try_from(v).map_err(|_| expected(j, "an enum value that fits an int"))?
            }
            _ => j
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| expected(j, "an enum member name or an int"))?,
        };
        Ok(Value::Enum {
            value,
            name: enum_name(self.schema, e, value),
        })
    }

    fn structure(&mut self, s: &schema::StructDef, j: &Json) -> Result<Value, Error> {
        let obj = j
            .as_object()
            .ok_or_else(|| expected(j, "an object (struct)"))?;
        let mut fields = Vec::with_capacity(s.fields.len());
        for f in &s.fields {
            if let Declaration::Named { name, ty, shape } = &f.decl {
                let fj = obj.get(name).ok_or_else(|| Error::Custom {
                    msg: "missing field".into(),
                    path: name.clone(),
                })?;
                let v = self.decl(ty, shape, fj).map_err(|e| e.in_field(name))?;
                fields.push((name.clone(), v));
            }
        }
        if let Some(extra) = obj.keys().find(|k| !fields.iter().any(|(n, _)| n == *k)) {
            return Err(Error::Custom {
                msg: "unknown field".into(),
                path: extra.clone(),
            });
        }
        Ok(Value::Struct(fields))
    }

    fn union(&mut self, u: &UnionDef, j: &Json) -> Result<Value, Error> {
        let obj = j
            .as_object()
            .ok_or_else(|| expected(j, "an object (union)"))?;
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
        let dj = obj.get(dname).ok_or_else(|| Error::Custom {
            msg: "missing union discriminant".into(),
            path: dname.clone(),
        })?;
        let disc = self.ty(dty, dj).map_err(|e| e.in_field(dname))?;
        let n = discriminant_number(&disc).ok_or_else(|| Error::Custom {
            msg: "union discriminant is not int, unsigned, enum or bool".into(),
            path: dname.clone(),
        })?;
        let arm = match select_arm(self.schema, u, n)? {
            Declaration::Void => None,
            Declaration::Named { name, ty, shape } => {
                let aj = obj.get(name).ok_or_else(|| Error::Custom {
                    msg: format!("missing union arm for discriminant {n}"),
                    path: name.clone(),
                })?;
                Some((
                    name.clone(),
                    self.decl(ty, shape, aj).map_err(|e| e.in_field(name))?,
                ))
            }
        };
        if let Some(extra) = obj
            .keys()
            .find(|k| *k != dname && arm.as_ref().is_none_or(|(a, _)| a != *k))
        {
            return Err(Error::Custom {
                msg: format!("not the active arm for discriminant {n}"),
                path: extra.clone(),
            });
        }
        Ok(Value::Union(Box::new(UnionValue {
            discriminant_name: dname.clone(),
            discriminant: disc,
            arm,
        })))
    }
}

fn special_f64(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// `NaN:0x…` with exactly `digits` hex digits that are a NaN's bits.
fn nan_bits(s: &str, digits: usize) -> Option<u64> {
    let h = s.strip_prefix("NaN:0x")?;
    if h.len() != digits {
        return None;
    }
    let bits = u64::from_str_radix(h, 16).ok()?;
    let is_nan = if digits == 8 {
        f32::from_bits(bits as u32).is_nan()
    } else {
        f64::from_bits(bits).is_nan()
    };
    is_nan.then_some(bits)
}

/// A `double` written as a string: `"NaN"`, `"Infinity"`, `"-Infinity"` or `"NaN:0x"` with the
/// 16 hex digits of its bits.
fn double_string(s: &str) -> Option<f64> {
    special_f64(s).or_else(|| nan_bits(s, 16).map(f64::from_bits))
}

/// A quadruple from its JSON form (see the module docs).
fn quadruple(j: &Json) -> Result<Quadruple, Error> {
    const WHAT: &str = "a number, \"NaN\", \"Infinity\", \"-Infinity\", \"NaN:0x\" with 16 hex \
                        digits or \"0x\" with 32 hex digits (quadruple)";
    match j {
        Json::String(s) => {
            if let Some(h) = s.strip_prefix("0x") {
                if h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    if let Ok(bits) = u128::from_str_radix(h, 16) {
                        return Ok(Quadruple::from_bits(bits));
                    }
                }
                return Err(expected(j, WHAT));
            }
            double_string(s)
                .map(Quadruple::from)
                .ok_or_else(|| expected(j, WHAT))
        }
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                Ok(Quadruple::from(u))
            } else if let Some(i) = n.as_i64() {
                Ok(Quadruple::from(i))
            } else {
                n.as_f64()
                    .map(Quadruple::from)
                    .ok_or_else(|| expected(j, WHAT))
            }
        }
        _ => Err(expected(j, WHAT)),
    }
}

fn hex_value(j: &Json) -> Result<Vec<u8>, Error> {
    let s = j
        .as_str()
        .ok_or_else(|| expected(j, "a hex string (opaque)"))?;
    hex::decode(s).map_err(|_| expected(j, "an even number of hex digits (opaque)"))
}
