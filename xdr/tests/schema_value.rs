//! The schema-driven codec (`xdr::dynamic`): random values of every type of libvirt's programs
//! and of our fixture round-trip through encode, decode and JSON text byte for byte; every error
//! class is produced by the input that should produce it, with the field path.
//!
//! The libvirt `.x` files are read from `$VMWIRE_LIBVIRT_PROTOCOL`, else
//! `../shared/libvirt-protocol/11.3.0` next to the workspace (never copied into the repo).
#![cfg(feature = "schema")]

use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::OnceLock;
use xdr::dynamic::{
    decode, decode_prefix, decode_prefix_with, decode_with, encode, from_json, UnionValue, Value,
};
use xdr::schema::{Declaration, Definition, EnumDef, Schema, Shape, StructDef, TypeSpec, UnionDef};
use xdr::{DecodeOptions, Error, Padding, Quadruple};

const FIXTURE: &str = include_str!("fixtures/dynamic.x");

fn fixture() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(|| {
        Schema::new(vec![
            xdr::schema::parse("dynamic.x", FIXTURE).expect("fixture parses")
        ])
        .expect("fixture resolves")
    })
}

fn protocol_dir() -> PathBuf {
    std::env::var_os("VMWIRE_LIBVIRT_PROTOCOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/libvirt-protocol/11.3.0")
        })
}

fn libvirt() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(|| {
        let dir = protocol_dir();
        let files = xdr::dynamic::dissect::Dissector::spec_files(&dir).unwrap_or_else(|e| {
            panic!("libvirt protocol files not found ({e}); set VMWIRE_LIBVIRT_PROTOCOL")
        });
        Schema::load(&files).expect("libvirt's .x files load together")
    })
}

/// Every named type (typedef, enum, struct, union) of a schema.
fn type_names(schema: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    for spec in schema.specs() {
        for item in &spec.items {
            match &item.def {
                Definition::Const(_) | Definition::PassThrough(_) => {}
                def => out.extend(def.name().map(str::to_string)),
            }
        }
    }
    out
}

/// A small deterministic generator of random values for a type, driven by the schema.
struct Gen<'s> {
    schema: &'s Schema,
    state: u64,
    depth: u32,
}

impl Gen<'_> {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn len(&mut self, max: Option<u64>, cap: u64) -> usize {
        let cap = if self.depth > 6 { 0 } else { cap };
        let hi = max.unwrap_or(u64::MAX).min(cap);
        self.below(hi + 1) as usize
    }

    fn named(&mut self, name: &str) -> Value {
        let (_, item) = self.schema.definition(name).expect("known type");
        match &item.def {
            Definition::Typedef(Declaration::Named { ty, shape, .. }) => {
                let (ty, shape) = (ty.clone(), shape.clone());
                self.decl(&ty, &shape)
            }
            Definition::Enum(e) => self.enumeration(&e.clone()),
            Definition::Struct(s) => self.structure(&s.clone()),
            Definition::Union(u) => self.union(&u.clone()),
            _ => unreachable!("not a type"),
        }
    }

    fn size(&self, v: &xdr::schema::Value) -> u64 {
        self.schema.value(v).expect("resolved") as u64
    }

    fn decl(&mut self, ty: &TypeSpec, shape: &Shape) -> Value {
        self.depth += 1;
        let v = match shape {
            Shape::Scalar => self.ty(ty),
            Shape::Optional => {
                if self.depth > 6 || self.below(2) == 0 {
                    Value::Optional(None)
                } else {
                    Value::Optional(Some(Box::new(self.ty(ty))))
                }
            }
            Shape::Fixed(n) => {
                let n = self.size(n);
                match ty {
                    TypeSpec::Opaque => Value::Opaque((0..n).map(|_| self.next() as u8).collect()),
                    _ => Value::Array((0..n).map(|_| self.ty(ty)).collect()),
                }
            }
            Shape::Variable(max) => {
                let max = max.as_ref().map(|m| self.size(m));
                match ty {
                    TypeSpec::Opaque => {
                        let n = self.len(max, 9);
                        Value::Opaque((0..n).map(|_| self.next() as u8).collect())
                    }
                    TypeSpec::String => {
                        let alphabet = ['a', 'Z', '0', ' ', '\0', 'é', '€', '😀', '"', '\\'];
                        let mut s = String::new();
                        while s.len() < 12 {
                            let c = alphabet[self.below(alphabet.len() as u64) as usize];
                            if (s.len() + c.len_utf8()) as u64 > max.unwrap_or(u64::MAX) {
                                break;
                            }
                            if self.below(4) == 0 {
                                break;
                            }
                            s.push(c);
                        }
                        Value::String(s)
                    }
                    _ => {
                        let n = self.len(max, 3);
                        Value::Array((0..n).map(|_| self.ty(ty)).collect())
                    }
                }
            }
        };
        self.depth -= 1;
        v
    }

    fn ty(&mut self, ty: &TypeSpec) -> Value {
        match ty {
            TypeSpec::Int => Value::Int(self.next() as i32),
            TypeSpec::UInt => Value::UInt(self.next() as u32),
            TypeSpec::Char => Value::Int(self.next() as i8 as i32),
            TypeSpec::Short => Value::Int(self.next() as i16 as i32),
            TypeSpec::UChar => Value::UInt(self.next() as u8 as u32),
            TypeSpec::UShort => Value::UInt(self.next() as u16 as u32),
            TypeSpec::Hyper => Value::Hyper(self.next() as i64),
            TypeSpec::UHyper => Value::UHyper(self.next()),
            // Any bits: NaNs with payloads, infinities, subnormals, -0.0.
            TypeSpec::Float => Value::Float(f32::from_bits(self.next() as u32)),
            TypeSpec::Double => Value::Double(match self.below(4) {
                0 => f64::from_bits(self.next()),
                1 => (self.next() as i32) as f64 / 8.0,
                2 => [f64::NAN, f64::INFINITY, -0.0, 0.1][self.below(4) as usize],
                _ => f64::from_bits(self.next() & 0x7ff0_0000_0000_0000 | 0x0008_0000_0000_0001),
            }),
            TypeSpec::Bool => Value::Bool(self.below(2) == 1),
            TypeSpec::String | TypeSpec::Opaque => self.decl(ty, &Shape::Variable(None)),
            TypeSpec::Named(n) => self.named(n),
            TypeSpec::Enum(e) => self.enumeration(e),
            TypeSpec::Struct(s) => self.structure(s),
            TypeSpec::Union(u) => self.union(u),
            // Any bits (NaN payloads, binary128 subnormals), doubles (JSON numbers) and the
            // double strings.
            TypeSpec::Quadruple => Value::Quadruple(match self.below(4) {
                0 => Quadruple::from_bits(u128::from(self.next()) << 64 | u128::from(self.next())),
                1 => Quadruple::from((self.next() as i32) as f64 / 8.0),
                2 => Quadruple::from(f64::from_bits(self.next())),
                _ => [
                    Quadruple::NAN,
                    Quadruple::INFINITY,
                    Quadruple::from(-0.0),
                    Quadruple::from_bits(1),
                    Quadruple::from(u64::MAX),
                ][self.below(5) as usize],
            }),
        }
    }

    fn enumeration(&mut self, e: &EnumDef) -> Value {
        let values = self.schema.enum_values(e);
        if self.below(8) == 0 {
            // A value the enum does not list: kept as a number.
            let v = self.next() as i32;
            if !values.iter().any(|(_, x)| *x == i64::from(v)) {
                return Value::Enum {
                    value: v,
                    name: None,
                };
            }
        }
        let (name, value) = values[self.below(values.len() as u64) as usize].clone();
        Value::Enum {
            value: value as i32,
            name: Some(name),
        }
    }

    fn structure(&mut self, s: &StructDef) -> Value {
        Value::Struct(
            s.fields
                .iter()
                .filter_map(|f| match &f.decl {
                    Declaration::Named { name, ty, shape } => {
                        Some((name.clone(), self.decl(ty, shape)))
                    }
                    Declaration::Void => None,
                })
                .collect(),
        )
    }

    fn union(&mut self, u: &UnionDef) -> Value {
        let Declaration::Named {
            name: dname,
            ty: dty,
            ..
        } = &u.discriminant.decl
        else {
            unreachable!()
        };
        let labels: Vec<i64> = u
            .arms
            .iter()
            .flat_map(|a| {
                a.labels
                    .iter()
                    .map(|l| self.schema.value(l).expect("label"))
            })
            .collect();
        // Pick a case label, or (with a default arm) a value no label has.
        let mut disc_no = labels[self.below(labels.len() as u64) as usize];
        if u.default.is_some() && self.below(3) == 0 {
            disc_no = (0..).find(|v| !labels.contains(v)).expect("a free value");
        }
        let disc = self.discriminant(dty, disc_no);
        let arm_decl = u
            .arms
            .iter()
            .find(|a| {
                a.labels
                    .iter()
                    .any(|l| self.schema.value(l) == Some(disc_no))
            })
            .map(|a| a.field.decl.clone())
            .or_else(|| u.default.as_ref().map(|d| d.decl.clone()))
            .expect("an arm");
        let arm = match arm_decl {
            Declaration::Void => None,
            Declaration::Named { name, ty, shape } => Some((name, self.decl(&ty, &shape))),
        };
        Value::Union(Box::new(UnionValue {
            discriminant_name: dname.clone(),
            discriminant: disc,
            arm,
        }))
    }

    fn discriminant(&mut self, ty: &TypeSpec, n: i64) -> Value {
        match ty {
            TypeSpec::Int => Value::Int(n as i32),
            TypeSpec::UInt => Value::UInt(n as u32),
            TypeSpec::Bool => Value::Bool(n == 1),
            TypeSpec::Named(name) => match self.schema.definition(name).map(|(_, i)| &i.def) {
                Some(Definition::Enum(e)) => Value::Enum {
                    value: n as i32,
                    name: self
                        .schema
                        .enum_values(e)
                        .into_iter()
                        .find(|(_, v)| *v == n)
                        .map(|(m, _)| m),
                },
                Some(Definition::Typedef(Declaration::Named { ty, .. })) => {
                    let ty = ty.clone();
                    self.discriminant(&ty, n)
                }
                _ => panic!("discriminant type {name}"),
            },
            TypeSpec::Enum(e) => Value::Enum {
                value: n as i32,
                name: self
                    .schema
                    .enum_values(e)
                    .into_iter()
                    .find(|(_, v)| *v == n)
                    .map(|(m, _)| m),
            },
            other => panic!("discriminant type {other:?}"),
        }
    }
}

fn json_text(v: &Value) -> String {
    serde_json::to_string(v).expect("serializes")
}

/// encode -> decode -> same value; decode -> encode -> same bytes; JSON text -> same value.
fn check_round_trip(schema: &Schema, ty: &str, value: &Value) {
    let bytes = encode(schema, ty, value).unwrap_or_else(|e| panic!("{ty}: encode: {e}"));
    let back = decode(schema, ty, &bytes).unwrap_or_else(|e| panic!("{ty}: decode: {e}"));
    // JSON text is exact (non-finite floats carry their bits), so it compares NaNs too.
    let text = json_text(value);
    assert_eq!(json_text(&back), text, "{ty}: decode(encode(v)) != v");
    assert_eq!(encode(schema, ty, &back).unwrap(), bytes, "{ty}: bytes");
    let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let from = from_json(schema, ty, &parsed).unwrap_or_else(|e| panic!("{ty}: from_json: {e}"));
    assert_eq!(json_text(&from), text, "{ty}: JSON round trip");
    assert_eq!(
        encode(schema, ty, &from).unwrap(),
        bytes,
        "{ty}: JSON -> bytes"
    );
}

#[test]
fn every_libvirt_type_round_trips() {
    let schema = libvirt();
    let names = type_names(schema);
    assert!(names.len() > 700, "only {} types loaded", names.len());
    for (i, name) in names.iter().enumerate() {
        for round in 0..6u64 {
            let mut g = Gen {
                schema,
                state: 0x9e37_79b9_7f4a_7c15 ^ ((i as u64) << 8 | round),
                depth: 0,
            };
            let v = g.named(name);
            check_round_trip(schema, name, &v);
        }
    }
}

#[test]
fn every_fixture_type_round_trips() {
    let schema = fixture();
    for name in type_names(schema) {
        for seed in 1..200u64 {
            let mut g = Gen {
                schema,
                state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                depth: 0,
            };
            let v = g.named(&name);
            check_round_trip(schema, &name, &v);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_libvirt_values_round_trip(index in any::<prop::sample::Index>(), seed in 1u64..) {
        let schema = libvirt();
        let names = type_names(schema);
        let name = &names[index.index(names.len())];
        let v = Gen { schema, state: seed, depth: 0 }.named(name);
        check_round_trip(schema, name, &v);
    }

    /// A valid encoding followed by any bytes: decoding the prefix takes exactly the encoding,
    /// and re-encoding gives exactly those bytes back.
    #[test]
    fn decode_then_encode_is_byte_exact(
        ty in prop::sample::select(vec!["everything", "shape", "node", "typed_param", "small_ints", "numbers", "wide"]),
        seed in 1u64..,
        tail in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let schema = fixture();
        let v = Gen { schema, state: seed, depth: 0 }.named(ty);
        let mut bytes = encode(schema, ty, &v).unwrap();
        let len = bytes.len();
        bytes.extend_from_slice(&tail);
        let (v2, used) = decode_prefix(schema, ty, &bytes).unwrap();
        prop_assert_eq!(used, len);
        prop_assert_eq!(&encode(schema, ty, &v2).unwrap()[..], &bytes[..len]);
    }

    /// Mutating one byte of a valid encoding: either a typed error or a value that re-encodes
    /// to the mutated bytes.
    #[test]
    fn mutated_encodings_are_exact_or_rejected(seed in 1u64.., pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let schema = fixture();
        let v = Gen { schema, state: seed, depth: 0 }.named("everything");
        let mut bytes = encode(schema, "everything", &v).unwrap();
        let p = pos.index(bytes.len());
        bytes[p] = byte;
        if let Ok(v2) = decode(schema, "everything", &bytes) {
            prop_assert_eq!(encode(schema, "everything", &v2).unwrap(), bytes);
        }
    }
}

// ----- known encodings ---------------------------------------------------------------------

fn words(ws: &[u32]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_be_bytes()).collect()
}

#[test]
fn json_mapping_is_as_documented() {
    let s = fixture();
    // union with enum discriminant, int arm
    let b = words(&[1, 7]);
    let v = decode(s, "shape", &b).unwrap();
    assert_eq!(json_text(&v), r#"{"kind":"RED","radius":7}"#);
    // void arm: only the discriminant
    let v = decode(s, "shape", &words(&[0x10])).unwrap();
    assert_eq!(json_text(&v), r#"{"kind":"BLUE"}"#);
    // default arm with an unknown enum value: the number, then the default arm
    let v = decode(s, "shape", &words(&[99, 2, 0xabcd_0000])).unwrap();
    assert_eq!(json_text(&v), r#"{"kind":99,"raw":"abcd"}"#);
    // negative enum member
    let v = decode(s, "color", &words(&[-3i32 as u32])).unwrap();
    assert_eq!(json_text(&v), r#""BLACK""#);
    // int discriminant is a number
    let mut b = words(&[7, 2]);
    b.extend_from_slice(b"hi\0\0");
    assert_eq!(
        json_text(&decode(s, "typed_param", &b).unwrap()),
        r#"{"type":7,"s":"hi"}"#
    );
    // bool discriminant
    assert_eq!(
        json_text(&decode(s, "flag_union", &words(&[0])).unwrap()),
        r#"{"present":false}"#
    );
    // optional-data through typedefs, fixed opaque as hex, libvirt's 4-byte chars
    let v = decode(s, "maybe_name", &words(&[0])).unwrap();
    assert_eq!(json_text(&v), "null");
    let v = decode(s, "tag", &[1, 2, 3, 0xfe, 5, 6, 0, 0]).unwrap();
    assert_eq!(json_text(&v), r#""010203fe0506""#);
    let v = decode(
        s,
        "small_ints",
        &words(&[
            -1i32 as u32,
            255,
            -32768i32 as u32,
            65535,
            1,
            2,
            3,
            -128i32 as u32,
        ]),
    )
    .unwrap();
    assert_eq!(
        json_text(&v),
        r#"{"c":-1,"uc":255,"s":-32768,"us":65535,"model":[1,2,3,-128]}"#
    );
    // floats: numbers, non-finite as strings with exact bits
    let mut b = words(&[0, 0, 0, 0, 0, 0]);
    b.extend_from_slice(&0x7fc0_0001u32.to_be_bytes());
    b.extend_from_slice(&f64::NEG_INFINITY.to_bits().to_be_bytes());
    b.extend_from_slice(&words(&[1]));
    let v = decode(s, "numbers", &b).unwrap();
    assert_eq!(
        json_text(&v),
        r#"{"i":0,"u":0,"h":0,"uh":0,"f":"NaN:0x7fc00001","d":"-Infinity","b":true}"#
    );
}

#[test]
fn hyper_extremes_are_json_numbers() {
    let s = fixture();
    let mut b = words(&[0x8000_0000, 0xffff_ffff]);
    b.extend_from_slice(&i64::MIN.to_be_bytes());
    b.extend_from_slice(&u64::MAX.to_be_bytes());
    b.extend_from_slice(&words(&[0]));
    b.extend_from_slice(&0.1f64.to_bits().to_be_bytes());
    b.extend_from_slice(&words(&[0]));
    let v = decode(s, "numbers", &b).unwrap();
    let text = json_text(&v);
    assert_eq!(
        text,
        r#"{"i":-2147483648,"u":4294967295,"h":-9223372036854775808,"uh":18446744073709551615,"f":0.0,"d":0.1,"b":false}"#
    );
    let back = from_json(s, "numbers", &serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(encode(s, "numbers", &back).unwrap(), b);
}

#[test]
fn libvirt_connect_open_args_known_bytes() {
    let s = libvirt();
    let mut b = words(&[1, 15]);
    b.extend_from_slice(b"test:///default\0");
    b.extend_from_slice(&words(&[0]));
    let v = decode(s, "remote_connect_open_args", &b).unwrap();
    assert_eq!(json_text(&v), r#"{"name":"test:///default","flags":0}"#);
    assert_eq!(encode(s, "remote_connect_open_args", &v).unwrap(), b);
}

// ----- one negative test per error class, with the field path -----------------------------

fn err(schema: &Schema, ty: &str, bytes: &[u8]) -> Error {
    decode(schema, ty, bytes).expect_err("must fail")
}

#[test]
fn truncated_input_is_unexpected_eof_with_path() {
    let e = err(fixture(), "numbers", &words(&[1, 2, 0]));
    assert!(
        matches!(&e, Error::UnexpectedEof { path, .. } if path == "numbers.h"),
        "{e:?}"
    );
}

#[test]
fn trailing_bytes_are_rejected() {
    let e = err(fixture(), "color", &words(&[1, 0]));
    assert_eq!(e, Error::TrailingBytes { count: 4 });
}

#[test]
fn declared_maximum_is_enforced_on_decode_and_encode() {
    let s = fixture();
    let mut b = words(&[17]);
    b.extend_from_slice(&[b'a'; 20]);
    let e = err(s, "short_name", &b);
    assert!(
        matches!(&e, Error::LengthOverLimit { len: 17, max: 16, path } if path == "short_name"),
        "{e:?}"
    );
    let e = encode(s, "name_alias", &Value::String("x".repeat(17))).unwrap_err();
    assert!(
        matches!(
            e,
            Error::LengthOverLimit {
                len: 17,
                max: 16,
                ..
            }
        ),
        "{e:?}"
    );
    // nested: the string inside a union arm inside an array (every level is checked)
    let json = serde_json::json!([{"type": 7, "s": "x".repeat(17)}]);
    let mut g = Gen {
        schema: s,
        state: 3,
        depth: 0,
    };
    let mut v = g.named("everything");
    if let Value::Struct(fields) = &mut v {
        let p = fields.iter_mut().find(|(n, _)| n == "params").unwrap();
        p.1 = Value::Array(vec![Value::Union(Box::new(UnionValue {
            discriminant_name: "type".into(),
            discriminant: Value::Int(7),
            arm: Some(("s".into(), Value::String("x".repeat(17)))),
        }))]);
    }
    let e = encode(s, "everything", &v).unwrap_err();
    assert_eq!(e.path(), Some("everything.params[0].s"), "{e:?}");
    let _ = json;
}

#[test]
fn hostile_count_is_bounded_by_input() {
    // `blob data` claims 4 GiB with 8 bytes left: refused before allocating.
    let e = err(fixture(), "blob", &words(&[0xffff_fff0, 0, 0]));
    assert!(
        matches!(
            e,
            Error::LengthOverInput {
                len: 0xffff_fff0,
                remaining: 8,
                ..
            }
        ),
        "{e:?}"
    );
    // an unbounded array of structs in libvirt's schema
    let e = err(
        libvirt(),
        "remote_connect_list_all_domains_ret",
        &words(&[16_000, 1]),
    );
    assert!(
        matches!(&e, Error::LengthOverInput { path, .. } if path == "remote_connect_list_all_domains_ret.domains"),
        "{e:?}"
    );
}

#[test]
fn bad_bool_utf8_padding_and_small_ints_are_typed_errors() {
    let s = fixture();
    let e = err(s, "flag_union", &words(&[2]));
    assert!(
        matches!(&e, Error::InvalidBool { value: 2, path } if path == "flag_union.present"),
        "{e:?}"
    );
    let e = err(s, "maybe_name", &words(&[7]));
    assert!(matches!(e, Error::InvalidBool { value: 7, .. }), "{e:?}");
    let mut b = words(&[2]);
    b.extend_from_slice(&[0xff, 0xfe, 0, 0]);
    let e = err(s, "short_name", &b);
    assert!(matches!(e, Error::InvalidUtf8 { .. }), "{e:?}");
    let mut b = words(&[2]);
    b.extend_from_slice(b"ok\0\x01");
    let e = err(s, "short_name", &b);
    assert!(matches!(e, Error::NonZeroPadding { .. }), "{e:?}");
    let e = err(s, "tag", &[1, 2, 3, 4, 5, 6, 0, 9]);
    assert!(matches!(e, Error::NonZeroPadding { .. }), "{e:?}");
    let e = err(s, "small_ints", &words(&[128, 0, 0, 0, 0, 0, 0, 0]));
    assert!(
        matches!(&e, Error::IntegerOutOfRange { value: 128, target: "char", path } if path == "small_ints.c"),
        "{e:?}"
    );
    let e = err(s, "small_ints", &words(&[0, 0, 0, 0x1_0000, 0, 0, 0, 0]));
    assert!(
        matches!(
            &e,
            Error::IntegerOutOfRange {
                target: "unsigned short",
                ..
            }
        ),
        "{e:?}"
    );
    let e = err(s, "small_ints", &words(&[0, 0, 0, 0, 0, 0, 200, 0]));
    assert_eq!(e.path(), Some("small_ints.model[2]"), "{e:?}");
}

#[test]
fn union_discriminant_without_arm_is_invalid_value() {
    let e = err(fixture(), "typed_param", &words(&[3, 0]));
    assert!(
        matches!(&e, Error::InvalidValue { value, path, .. } if value == "3" && path == "typed_param.type"),
        "{e:?}"
    );
}

#[test]
fn deep_nesting_is_bounded() {
    // A linked list 10 000 nodes long: depth limit, not a stack overflow.
    let mut b = Vec::new();
    for _ in 0..10_000 {
        b.extend_from_slice(&words(&[5, 1]));
    }
    b.extend_from_slice(&words(&[5, 0]));
    let e = err(fixture(), "node", &b);
    assert!(matches!(e, Error::DepthLimitExceeded { .. }), "{e:?}");
    // a short list is fine
    let v = decode(fixture(), "node", &words(&[1, 1, 2, 0])).unwrap();
    assert_eq!(
        json_text(&v),
        r#"{"value":1,"next":{"value":2,"next":null}}"#
    );
}

#[test]
fn unknown_type_is_an_error() {
    let e = err(fixture(), "no_such_type", &[]);
    assert!(
        matches!(&e, Error::Custom { msg, .. } if msg.contains("unknown type")),
        "{e:?}"
    );
}

#[test]
fn bad_json_is_a_typed_error_with_path() {
    let s = fixture();
    let j = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap();
    let e = from_json(s, "numbers", &j(r#"{"i":1}"#)).unwrap_err();
    assert_eq!(e.path(), Some("numbers.u"), "{e:?}");
    let e = from_json(s, "node", &j(r#"{"value":1,"next":null,"extra":2}"#)).unwrap_err();
    assert_eq!(e.path(), Some("node.extra"), "{e:?}");
    let e = from_json(
        s,
        "small_ints",
        &j(r#"{"c":300,"uc":0,"s":0,"us":0,"model":[0,0,0,0]}"#),
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidValue { path, .. } if path == "small_ints.c"),
        "{e:?}"
    );
    let e = from_json(s, "shape", &j(r#"{"kind":"PURPLE"}"#)).unwrap_err();
    assert_eq!(e.path(), Some("shape.kind"), "{e:?}");
    let e = from_json(s, "shape", &j(r#"{"kind":"BLUE","radius":3}"#)).unwrap_err();
    assert_eq!(e.path(), Some("shape.radius"), "{e:?}");
    let e = from_json(s, "shape", &j(r#"{"kind":"RED"}"#)).unwrap_err();
    assert_eq!(e.path(), Some("shape.radius"), "{e:?}");
    let e = from_json(s, "tag", &j(r#""0102""#)).unwrap_err();
    assert!(matches!(e, Error::InvalidValue { .. }), "{e:?}");
    let e = from_json(s, "blob", &j(r#""xyz""#)).unwrap_err();
    assert!(matches!(e, Error::InvalidValue { .. }), "{e:?}");
    let e = from_json(
        s,
        "numbers",
        &j(r#"{"i":1,"u":-1,"h":0,"uh":0,"f":0,"d":0,"b":true}"#),
    )
    .unwrap_err();
    assert_eq!(e.path(), Some("numbers.u"), "{e:?}");
}

#[test]
fn encode_checks_the_value_against_the_type() {
    let s = fixture();
    let e = encode(s, "numbers", &Value::Int(1)).unwrap_err();
    assert!(matches!(e, Error::InvalidValue { .. }), "{e:?}");
    let e = encode(s, "tag", &Value::Opaque(vec![1, 2])).unwrap_err();
    assert!(matches!(e, Error::InvalidValue { .. }), "{e:?}");
    let e = encode(
        s,
        "small_ints",
        &Value::Struct(vec![("c".into(), Value::Int(1))]),
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidValue { .. }), "{e:?}");
}

#[test]
fn huge_declared_sizes_fail_cleanly() {
    let spec = xdr::schema::parse(
        "huge.x",
        "const BIG = 0x7fffffffffffffff;\n\
         typedef opaque huge_opaque[BIG];\n\
         typedef int huge_array[BIG];\n\
         typedef a_loop b_loop;\n\
         typedef b_loop a_loop;\n",
    )
    .unwrap();
    let s = Schema::new(vec![spec]).unwrap();
    let e = err(&s, "huge_opaque", &[0; 8]);
    assert!(matches!(e, Error::UnexpectedEof { .. }), "{e:?}");
    let e = err(&s, "huge_array", &[0; 8]);
    assert!(matches!(e, Error::LengthOverInput { .. }), "{e:?}");
    // a typedef cycle is bounded by the depth limit, not a stack overflow
    let e = err(&s, "a_loop", &[0; 8]);
    assert!(matches!(e, Error::DepthLimitExceeded { .. }), "{e:?}");
    let e = encode(&s, "a_loop", &Value::Int(0)).unwrap_err();
    assert!(matches!(e, Error::DepthLimitExceeded { .. }), "{e:?}");
}

// ----- quadruple ---------------------------------------------------------------------------

fn quads(qs: &[u128]) -> Vec<u8> {
    qs.iter().flat_map(|q| q.to_be_bytes()).collect()
}

/// `wide { quadruple q; quadruple qs<2>; quadruple *maybe; }` with `q`, two `qs` and `maybe`.
fn wide_bytes(q: u128, qs: [u128; 2], maybe: u128) -> Vec<u8> {
    let mut b = quads(&[q]);
    b.extend_from_slice(&words(&[2]));
    b.extend_from_slice(&quads(&qs));
    b.extend_from_slice(&words(&[1]));
    b.extend_from_slice(&quads(&[maybe]));
    b
}

#[test]
fn quadruple_json_mapping_is_as_documented() {
    let s = fixture();
    // Doubles (numbers), a value finer than a double (hex bits), infinity, canonical NaN.
    let b = wide_bytes(
        0x3fff_0000_0000_0000_0000_0000_0000_0000,
        [
            0xc000_0000_0000_0000_0000_0000_0000_0000,
            0x3fff_0000_0000_0000_0000_0000_0000_0001,
        ],
        0x7fff_0000_0000_0000_0000_0000_0000_0000,
    );
    let v = decode(s, "wide", &b).unwrap();
    assert_eq!(
        json_text(&v),
        r#"{"q":1.0,"qs":[-2.0,"0x3fff0000000000000000000000000001"],"maybe":"Infinity"}"#
    );
    assert_eq!(
        v.field("q"),
        Some(&Value::Quadruple(Quadruple::from(1.0f64)))
    );
    assert_eq!(encode(s, "wide", &v).unwrap(), b);
    // NaNs: the canonical one, a payload a double holds, a payload it does not; -0; the
    // smallest binary128 subnormal; the smallest double subnormal.
    let b = wide_bytes(
        0x7fff_8000_0000_0000_0000_0000_0000_0000,
        [
            0xffff_0000_0000_0000_1000_0000_0000_0000,
            0x7fff_0000_0000_0000_0000_0000_0000_0001,
        ],
        0x8000_0000_0000_0000_0000_0000_0000_0000,
    );
    let v = decode(s, "wide", &b).unwrap();
    let text = json_text(&v);
    assert_eq!(
        text,
        r#"{"q":"NaN","qs":["NaN:0xfff0000000000001","0x7fff0000000000000000000000000001"],"maybe":-0.0}"#
    );
    let back = from_json(s, "wide", &serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(encode(s, "wide", &back).unwrap(), b);
    let b = wide_bytes(1, [0x3bcd_0000_0000_0000_0000_0000_0000_0000, 0], 0);
    let text = json_text(&decode(s, "wide", &b).unwrap());
    assert_eq!(
        text,
        r#"{"q":"0x00000000000000000000000000000001","qs":[5e-324,0.0],"maybe":0.0}"#
    );
    let back = from_json(s, "wide", &serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(encode(s, "wide", &back).unwrap(), b);
}

#[test]
fn quadruple_json_input_forms() {
    let s = fixture();
    let j = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap();
    let q = |t: &str| -> Result<u128, Error> {
        let json = j(&format!(r#"{{"q":{t},"qs":[],"maybe":null}}"#));
        let v = from_json(s, "wide", &json)?;
        match v.field("q") {
            Some(Value::Quadruple(q)) => Ok(q.to_bits()),
            other => panic!("{other:?}"),
        }
    };
    let one = 0x3fff_0000_0000_0000_0000_0000_0000_0000;
    assert_eq!(q("1").unwrap(), one);
    assert_eq!(q("1.0").unwrap(), one);
    assert_eq!(q(r#""0x3FFF0000000000000000000000000000""#).unwrap(), one);
    // Integers are exact beyond a double's 53 bits.
    assert_eq!(
        q("18446744073709551615").unwrap(),
        Quadruple::from(u64::MAX).to_bits()
    );
    assert_eq!(
        q("-9223372036854775807").unwrap(),
        Quadruple::from(-i64::MAX).to_bits()
    );
    assert_eq!(q(r#""-Infinity""#).unwrap(), 0xffff << 112);
    assert_eq!(q(r#""NaN""#).unwrap(), Quadruple::NAN.to_bits());
    for bad in [
        r#""0x3fff""#,
        r#""0x+fff0000000000000000000000000000""#,
        r#""0x3fff00000000000000000000000000000""#,
        r#""NaN:0x0000000000000001""#,
        r#""1.0""#,
        "true",
        "null",
        "[1]",
    ] {
        let e = q(bad).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidValue { path, .. } if path == "wide.q"),
            "{bad}: {e:?}"
        );
    }
    let e = encode(
        s,
        "wide",
        &Value::Struct(vec![("q".into(), Value::Double(1.0))]),
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidValue { .. }), "{e:?}");
}

#[test]
fn quadruple_truncated_is_unexpected_eof_with_path() {
    let mut b = wide_bytes(0, [0, 0], 0);
    b.truncate(16 + 4 + 32 + 4 + 8);
    let e = err(fixture(), "wide", &b);
    assert!(
        matches!(&e, Error::UnexpectedEof { needed: 16, remaining: 8, path } if path == "wide.maybe"),
        "{e:?}"
    );
    // A count of quadruples is bounded by 16 bytes each, before anything is read.
    let mut b = wide_bytes(0, [0, 0], 0);
    b.truncate(16 + 4 + 24);
    let e = err(fixture(), "wide", &b);
    assert!(
        matches!(&e, Error::LengthOverInput { len: 2, remaining: 24, path } if path == "wide.qs"),
        "{e:?}"
    );
}

// ----- padding policy ----------------------------------------------------------------------

fn lenient() -> DecodeOptions {
    DecodeOptions::new().with_padding(Padding::Lenient)
}

#[test]
fn padding_policy_strict_rejects_with_path_lenient_accepts() {
    let s = fixture();
    // string<NAME_MAX>: "ok" + 2 padding bytes.
    let mut b = words(&[2]);
    b.extend_from_slice(b"ok\0\x01");
    let e = err(s, "short_name", &b);
    assert_eq!(
        e,
        Error::NonZeroPadding {
            path: "short_name".into()
        }
    );
    assert_eq!(
        decode_with(s, "short_name", &b, lenient()).unwrap(),
        Value::String("ok".into())
    );
    // opaque[6] (fixed) and opaque<> (variable).
    let b = [1, 2, 3, 4, 5, 6, 0, 9];
    assert_eq!(
        err(s, "tag", &b),
        Error::NonZeroPadding { path: "tag".into() }
    );
    assert_eq!(
        decode_with(s, "tag", &b, lenient()).unwrap(),
        Value::Opaque(vec![1, 2, 3, 4, 5, 6])
    );
    let b = [0, 0, 0, 1, 0xab, 1, 2, 3];
    assert_eq!(
        err(s, "blob", &b),
        Error::NonZeroPadding {
            path: "blob".into()
        }
    );
    assert_eq!(
        decode_with(s, "blob", &b, lenient()).unwrap(),
        Value::Opaque(vec![0xab])
    );
    // The strict default through decode_with and decode_prefix_with.
    assert_eq!(
        decode_with(s, "blob", &b, DecodeOptions::default()).unwrap_err(),
        Error::NonZeroPadding {
            path: "blob".into()
        }
    );
    let (v, used) = decode_prefix_with(s, "blob", &[&b[..], &[7; 4]].concat(), lenient()).unwrap();
    assert_eq!((v, used), (Value::Opaque(vec![0xab]), 8));
    // Lenient decode + encode writes zero padding: not the input bytes.
    let v = decode_with(s, "blob", &b, lenient()).unwrap();
    assert_eq!(encode(s, "blob", &v).unwrap(), [0, 0, 0, 1, 0xab, 0, 0, 0]);
}

/// Offsets of the padding of `everything`'s first fields (name "abc", nick "hello", tag), with
/// their paths.
#[test]
fn padding_policy_nested_paths() {
    let s = fixture();
    let mut g = Gen {
        schema: s,
        state: 11,
        depth: 0,
    };
    let mut v = g.named("everything");
    if let Value::Struct(fields) = &mut v {
        fields[0].1 = Value::String("abc".into());
        fields[1].1 = Value::Optional(Some(Box::new(Value::String("hello".into()))));
        fields[2].1 = Value::Opaque(vec![1, 2, 3, 4, 5, 6]);
    }
    let good = encode(s, "everything", &v).unwrap();
    // name: 4 + 3 (+1); nick: 4 + 4 + 5 (+3); t: 6 (+2).
    for (at, path) in [
        (7, "everything.name"),
        (8 + 8 + 5 + 2, "everything.nick"),
        (24 + 6, "everything.t"),
    ] {
        assert_eq!(good[at], 0, "{path}: {at} is not padding");
        let mut bad = good.clone();
        bad[at] = 0x80;
        assert_eq!(
            err(s, "everything", &bad),
            Error::NonZeroPadding { path: path.into() }
        );
        let l = decode_with(s, "everything", &bad, lenient()).unwrap();
        assert_eq!(json_text(&l), json_text(&v), "{path}");
        assert_eq!(encode(s, "everything", &l).unwrap(), good);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// On valid input (zero padding) lenient decoding gives exactly what strict decoding gives.
    #[test]
    fn lenient_equals_strict_on_valid_input(
        ty in prop::sample::select(vec!["everything", "shape", "typed_param", "wide", "tag"]),
        seed in 1u64..,
    ) {
        let schema = fixture();
        let v = Gen { schema, state: seed, depth: 0 }.named(ty);
        let bytes = encode(schema, ty, &v).unwrap();
        let strict = decode(schema, ty, &bytes).unwrap();
        let lenient = decode_with(schema, ty, &bytes, lenient()).unwrap();
        prop_assert_eq!(json_text(&strict), json_text(&v));
        prop_assert_eq!(json_text(&lenient), json_text(&strict));
    }

    /// One byte changed: where strict decodes, lenient gives the same value; any strict error
    /// but non-zero padding is lenient's error too; where strict rejects only the padding,
    /// lenient's value re-encodes to the input with that padding zeroed.
    #[test]
    fn lenient_differs_from_strict_only_on_padding(
        seed in 1u64..,
        pos in any::<prop::sample::Index>(),
        byte in 1u8..,
    ) {
        let schema = fixture();
        let v = Gen { schema, state: seed, depth: 0 }.named("everything");
        let mut bytes = encode(schema, "everything", &v).unwrap();
        let p = pos.index(bytes.len());
        let was = bytes[p];
        bytes[p] ^= byte;
        let s = decode(schema, "everything", &bytes);
        let l = decode_with(schema, "everything", &bytes, lenient());
        match s {
            Err(Error::NonZeroPadding { .. }) => {
                if was == 0 {
                    if let Ok(l) = &l {
                        // Either the changed byte was padding (the original comes back) or a
                        // changed length moved the framing; both re-encode zero-padded.
                        let re = encode(schema, "everything", l).unwrap();
                        prop_assert_eq!(re.len(), bytes.len());
                    }
                }
            }
            s => prop_assert_eq!(
                l.map(|v| json_text(&v)).map_err(|e| e.to_string()),
                s.map(|v| json_text(&v)).map_err(|e| e.to_string())
            ),
        }
    }
}
