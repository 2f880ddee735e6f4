//! proptest: decode(encode(x)) == x over many generated shapes, the encoding checked against an
//! independent reference model of RFC 4506, and arbitrary/truncated input never panics.

use proptest::collection::vec;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use xdr::{from_bytes, from_bytes_prefix, from_shared, to_bytes, Error, Opaque};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Prims {
    b: bool,
    i8: i8,
    i16: i16,
    i32: i32,
    i64: i64,
    u8: u8,
    u16: u16,
    u32: u32,
    u64: u64,
    c: char,
    unit: (),
}

fn prims() -> impl Strategy<Value = Prims> {
    (
        any::<bool>(),
        any::<i8>(),
        any::<i16>(),
        any::<i32>(),
        any::<i64>(),
        any::<u8>(),
        any::<u16>(),
        any::<u32>(),
        any::<u64>(),
        any::<char>(),
    )
        .prop_map(|(b, i8, i16, i32, i64, u8, u16, u32, u64, c)| Prims {
            b,
            i8,
            i16,
            i32,
            i64,
            u8,
            u16,
            u32,
            u64,
            c,
            unit: (),
        })
}

/// Floats compared by bit pattern (NaN payloads included).
#[derive(Serialize, Deserialize, Debug, Clone)]
struct Floats {
    f: f32,
    d: f64,
    v: Vec<f64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Dom {
    name: String,
    #[serde(with = "xdr::opaque_fixed")]
    uuid: [u8; 16],
    id: i32,
}

fn dom() -> impl Strategy<Value = Dom> {
    (".{0,20}", any::<[u8; 16]>(), any::<i32>()).prop_map(|(name, uuid, id)| Dom { name, uuid, id })
}

/// A union as the codegen writes it: `(i32 discriminant, arm)`, arms 0 and 8 void.
#[derive(Debug, Clone, PartialEq)]
enum Param {
    Int(i32),
    UInt(u32),
    LLong(i64),
    ULLong(u64),
    Double(u64), // bits, so NaN compares equal
    Boolean(i32),
    Str(String),
    Void,
    Void8,
}

impl Serialize for Param {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(2)?;
        match self {
            Param::Int(v) => {
                t.serialize_element(&1i32)?;
                t.serialize_element(v)?
            }
            Param::UInt(v) => {
                t.serialize_element(&2i32)?;
                t.serialize_element(v)?
            }
            Param::LLong(v) => {
                t.serialize_element(&3i32)?;
                t.serialize_element(v)?
            }
            Param::ULLong(v) => {
                t.serialize_element(&4i32)?;
                t.serialize_element(v)?
            }
            Param::Double(v) => {
                t.serialize_element(&5i32)?;
                t.serialize_element(&f64::from_bits(*v))?
            }
            Param::Boolean(v) => {
                t.serialize_element(&6i32)?;
                t.serialize_element(v)?
            }
            Param::Str(v) => {
                t.serialize_element(&7i32)?;
                t.serialize_element(v)?
            }
            Param::Void => t.serialize_element(&0i32)?,
            Param::Void8 => t.serialize_element(&8i32)?,
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for Param {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Param;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("typed param union")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Param, A::Error> {
                use serde::de::Error as _;
                fn arm<'de, A: serde::de::SeqAccess<'de>, T: Deserialize<'de>>(
                    seq: &mut A,
                ) -> Result<T, A::Error> {
                    seq.next_element()?
                        .ok_or_else(|| A::Error::invalid_length(1, &"union arm"))
                }
                let d: i32 = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(0, &self))?;
                Ok(match d {
                    0 => Param::Void,
                    1 => Param::Int(arm(&mut seq)?),
                    2 => Param::UInt(arm(&mut seq)?),
                    3 => Param::LLong(arm(&mut seq)?),
                    4 => Param::ULLong(arm(&mut seq)?),
                    5 => Param::Double(arm::<A, f64>(&mut seq)?.to_bits()),
                    6 => Param::Boolean(arm(&mut seq)?),
                    7 => Param::Str(arm(&mut seq)?),
                    8 => Param::Void8,
                    other => {
                        return Err(A::Error::invalid_value(
                            serde::de::Unexpected::Signed(other.into()),
                            &"param type",
                        ))
                    }
                })
            }
        }
        d.deserialize_tuple(2, V)
    }
}

fn param() -> impl Strategy<Value = Param> {
    prop_oneof![
        any::<i32>().prop_map(Param::Int),
        any::<u32>().prop_map(Param::UInt),
        any::<i64>().prop_map(Param::LLong),
        any::<u64>().prop_map(Param::ULLong),
        any::<u64>().prop_map(Param::Double),
        any::<i32>().prop_map(Param::Boolean),
        ".{0,12}".prop_map(Param::Str),
        Just(Param::Void),
        Just(Param::Void8),
    ]
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Linked {
    v: u32,
    next: Option<Box<Linked>>,
}

fn linked() -> impl Strategy<Value = Option<Box<Linked>>> {
    vec(any::<u32>(), 0..20).prop_map(|vs| {
        vs.into_iter()
            .fold(None, |next, v| Some(Box::new(Linked { v, next })))
    })
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Everything {
    prims: Prims,
    doms: Vec<Dom>,
    params: Vec<(String, Param)>,
    maybe_dom: Option<Dom>,
    list: Option<Box<Linked>>,
    data: Opaque,
    #[serde(
        serialize_with = "xdr::limit::serialize::<64, _, _>",
        deserialize_with = "xdr::limit::deserialize::<64, _, _>"
    )]
    limited: Option<Vec<u16>>,
    #[serde(with = "xdr::array_fixed")]
    model: [i8; 33],
    #[serde(with = "xdr::opaque_fixed")]
    odd: [u8; 7],
    nested: Vec<Vec<Option<String>>>,
    tuple: (u8, String, bool),
}

fn everything() -> impl Strategy<Value = Everything> {
    (
        prims(),
        vec(dom(), 0..8),
        vec((".{0,8}", param()), 0..10),
        proptest::option::of(dom()),
        linked(),
        vec(any::<u8>(), 0..40).prop_map(Opaque::from),
        proptest::option::of(vec(any::<u16>(), 0..64)),
        vec(any::<i8>(), 33).prop_map(|v| <[i8; 33]>::try_from(v).unwrap()),
        any::<[u8; 7]>(),
        vec(vec(proptest::option::of(".{0,5}"), 0..4), 0..4),
        (any::<u8>(), ".{0,9}", any::<bool>()),
    )
        .prop_map(
            |(prims, doms, params, maybe_dom, list, data, limited, model, odd, nested, tuple)| {
                Everything {
                    prims,
                    doms,
                    params,
                    maybe_dom,
                    list,
                    data,
                    limited,
                    model,
                    odd,
                    nested,
                    tuple,
                }
            },
        )
}

/// The same wire shape as `Dom`, borrowing.
#[derive(Deserialize, Debug, PartialEq)]
struct DomRef<'a> {
    name: &'a str,
    #[serde(with = "xdr::opaque_fixed")]
    uuid: [u8; 16],
    id: i32,
}

// Reference model of RFC 4506 for a few shapes, written independently of the serializer.
fn ref_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&[(v >> 24) as u8, (v >> 16) as u8, (v >> 8) as u8, v as u8]);
}
fn ref_opaque(out: &mut Vec<u8>, b: &[u8]) {
    ref_u32(out, b.len() as u32);
    out.extend_from_slice(b);
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn everything_round_trips(v in everything()) {
        let bytes = to_bytes(&v).unwrap();
        prop_assert_eq!(bytes.len() % 4, 0);
        prop_assert_eq!(&from_bytes::<Everything>(&bytes).unwrap(), &v);
        // Also through from_shared (Opaque as slices) and as a prefix of a longer buffer.
        let shared = bytes::Bytes::from(bytes.clone());
        prop_assert_eq!(&from_shared::<Everything>(&shared).unwrap(), &v);
        let mut longer = bytes.clone();
        longer.extend([1, 2, 3, 4]);
        let (back, used) = from_bytes_prefix::<Everything>(&longer).unwrap();
        prop_assert_eq!(&back, &v);
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(from_bytes::<Everything>(&longer), Err(Error::TrailingBytes { count: 4 }));
        // Every strict prefix is an error, never a panic.
        for cut in (0..bytes.len()).step_by(3) {
            prop_assert!(from_bytes::<Everything>(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn floats_round_trip_bit_exact(f in any::<f32>(), d in any::<f64>(), v in vec(any::<f64>(), 0..8)) {
        let x = Floats { f, d, v };
        let bytes = to_bytes(&x).unwrap();
        prop_assert_eq!(&bytes[..4], &f.to_bits().to_be_bytes()[..]);
        prop_assert_eq!(&bytes[4..12], &d.to_bits().to_be_bytes()[..]);
        let back: Floats = from_bytes(&bytes).unwrap();
        prop_assert_eq!(back.f.to_bits(), x.f.to_bits());
        prop_assert_eq!(back.d.to_bits(), x.d.to_bits());
        prop_assert_eq!(
            back.v.iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
            x.v.iter().map(|f| f.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn borrowed_decode_matches_owned(doms in vec(dom(), 0..20)) {
        let bytes = to_bytes(&doms).unwrap();
        let borrowed: Vec<DomRef<'_>> = from_bytes(&bytes).unwrap();
        prop_assert_eq!(borrowed.len(), doms.len());
        for (b, o) in borrowed.iter().zip(&doms) {
            prop_assert_eq!(b.name, o.name.as_str());
            prop_assert_eq!(b.uuid, o.uuid);
            prop_assert_eq!(b.id, o.id);
        }
    }

    #[test]
    fn encoding_matches_the_reference_model(
        s in ".{0,40}",
        o in vec(any::<u8>(), 0..40),
        ns in vec(any::<u32>(), 0..10),
        h in any::<i64>(),
        opt in proptest::option::of(any::<i32>()),
    ) {
        let v = (s.clone(), Opaque::from(o.clone()), ns.clone(), h, opt);
        let mut want = Vec::new();
        ref_opaque(&mut want, s.as_bytes());
        ref_opaque(&mut want, &o);
        ref_u32(&mut want, ns.len() as u32);
        for n in &ns {
            ref_u32(&mut want, *n);
        }
        ref_u32(&mut want, (h as u64 >> 32) as u32);
        ref_u32(&mut want, h as u64 as u32);
        match opt {
            None => ref_u32(&mut want, 0),
            Some(x) => {
                ref_u32(&mut want, 1);
                ref_u32(&mut want, x as u32);
            }
        }
        prop_assert_eq!(to_bytes(&v).unwrap(), want);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in vec(any::<u8>(), 0..256)) {
        let _ = from_bytes::<Everything>(&b);
        let _ = from_bytes::<Vec<DomRef<'_>>>(&b);
        let _ = from_bytes::<Vec<(String, Param)>>(&b);
        let _ = from_bytes::<Option<Box<Linked>>>(&b);
    }

    #[test]
    fn limit_is_enforced_exactly(n in 0usize..100) {
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct L {
            #[serde(
                serialize_with = "xdr::limit::serialize::<50, _, _>",
                deserialize_with = "xdr::limit::deserialize::<50, _, _>"
            )]
            s: String,
        }
        let v = L { s: "x".repeat(n) };
        let r = to_bytes(&v);
        if n <= 50 {
            prop_assert_eq!(from_bytes::<L>(&r.unwrap()).unwrap(), v);
        } else {
            prop_assert_eq!(
                r,
                Err(Error::LengthOverLimit { len: n as u64, max: 50, path: "L.s".into() })
            );
            // The decoder rejects the same bytes made without the limit.
            let raw = to_bytes(&v.s).unwrap();
            let over = matches!(from_bytes::<L>(&raw), Err(Error::LengthOverLimit { .. }));
            prop_assert!(over);
        }
    }
}
