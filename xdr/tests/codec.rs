//! Byte-exact encodings (RFC 4506 examples computed by hand), the contract's attribute forms, and
//! decode errors with their paths.

use serde::{Deserialize, Serialize};
use xdr::{from_bytes, from_bytes_prefix, to_bytes, to_writer_vec, Error, Opaque};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn primitives_are_big_endian_four_or_eight_bytes() {
    assert_eq!(to_bytes(&true).unwrap(), hex("00000001"));
    assert_eq!(to_bytes(&false).unwrap(), hex("00000000"));
    assert_eq!(to_bytes(&-2i32).unwrap(), hex("fffffffe"));
    assert_eq!(to_bytes(&-2i8).unwrap(), hex("fffffffe"));
    assert_eq!(to_bytes(&-2i16).unwrap(), hex("fffffffe"));
    assert_eq!(to_bytes(&0xfeu8).unwrap(), hex("000000fe"));
    assert_eq!(to_bytes(&0xfedcu16).unwrap(), hex("0000fedc"));
    assert_eq!(to_bytes(&0x01020304u32).unwrap(), hex("01020304"));
    assert_eq!(to_bytes(&-3i64).unwrap(), hex("ffffffff fffffffd"));
    assert_eq!(
        to_bytes(&0x0102030405060708u64).unwrap(),
        hex("01020304 05060708")
    );
    // IEEE 754 single and double, big-endian.
    assert_eq!(to_bytes(&1.5f32).unwrap(), hex("3fc00000"));
    assert_eq!(to_bytes(&-2.25f64).unwrap(), hex("c0020000 00000000"));
    assert_eq!(to_bytes(&()).unwrap(), Vec::<u8>::new());
    assert_eq!(to_bytes(&'A').unwrap(), hex("00000041"));

    assert!(from_bytes::<bool>(&hex("00000001")).unwrap());
    assert_eq!(from_bytes::<i8>(&hex("ffffff80")).unwrap(), -128);
    assert_eq!(from_bytes::<i16>(&hex("00007fff")).unwrap(), 32767);
    assert_eq!(from_bytes::<u8>(&hex("000000ff")).unwrap(), 255);
    assert_eq!(from_bytes::<u16>(&hex("0000ffff")).unwrap(), 65535);
    assert_eq!(from_bytes::<i32>(&hex("80000000")).unwrap(), i32::MIN);
    assert_eq!(
        from_bytes::<u64>(&hex("ffffffff ffffffff")).unwrap(),
        u64::MAX
    );
    assert_eq!(from_bytes::<f32>(&hex("3fc00000")).unwrap(), 1.5);
    assert_eq!(from_bytes::<f64>(&hex("c0020000 00000000")).unwrap(), -2.25);
    assert_eq!(from_bytes::<char>(&hex("00000041")).unwrap(), 'A');
}

#[test]
fn strings_and_opaques_are_length_bytes_padding() {
    // RFC 4506 4.11: string "sillyprog" -> length 9, 9 bytes, 3 bytes of zero padding.
    assert_eq!(
        to_bytes("sillyprog").unwrap(),
        hex("00000009 73696c6c 7970726f 67000000")
    );
    assert_eq!(to_bytes("").unwrap(), hex("00000000"));
    assert_eq!(to_bytes("abcd").unwrap(), hex("00000004 61626364"));
    assert_eq!(
        to_bytes(&Opaque::from(&[1u8, 2, 3, 4, 5][..])).unwrap(),
        hex("00000005 01020304 05000000")
    );
    assert_eq!(
        to_bytes(serde_bytes::Bytes::new(&[9, 8])).unwrap(),
        hex("00000002 09080000")
    );
    let b = hex("00000009 73696c6c 7970726f 67000000");
    assert_eq!(from_bytes::<&str>(&b).unwrap(), "sillyprog");
    assert_eq!(from_bytes::<String>(&b).unwrap(), "sillyprog");
    let b = hex("00000005 01020304 05000000");
    assert_eq!(
        from_bytes::<&[u8]>(&hex("00000002 09080000")).unwrap(),
        &[9, 8]
    );
    assert_eq!(&*from_bytes::<Opaque>(&b).unwrap(), &[1, 2, 3, 4, 5]);
    assert_eq!(
        from_bytes::<serde_bytes::ByteBuf>(&b).unwrap().into_vec(),
        vec![1, 2, 3, 4, 5]
    );
}

#[test]
fn arrays_options_structs() {
    // Variable array: count then elements; u8 elements are 4 bytes each (libvirt quirk).
    assert_eq!(
        to_bytes(&vec![1u8, 2]).unwrap(),
        hex("00000002 00000001 00000002")
    );
    assert_eq!(
        from_bytes::<Vec<u8>>(&hex("00000002 00000001 00000002")).unwrap(),
        vec![1, 2]
    );
    // Optional-data.
    assert_eq!(to_bytes(&None::<u32>).unwrap(), hex("00000000"));
    assert_eq!(to_bytes(&Some(7u32)).unwrap(), hex("00000001 00000007"));
    assert_eq!(from_bytes::<Option<u32>>(&hex("00000000")).unwrap(), None);
    assert_eq!(
        from_bytes::<Option<u32>>(&hex("00000001 00000007")).unwrap(),
        Some(7)
    );
    // Tuples and fixed arrays: elements only.
    assert_eq!(to_bytes(&(1u32, -1i32)).unwrap(), hex("00000001 ffffffff"));
    assert_eq!(to_bytes(&[5u32; 2]).unwrap(), hex("00000005 00000005"));

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Inner {
        a: u32,
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Newtype(u32);
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Unit;
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Outer {
        x: i32,
        inner: Inner,
        n: Newtype,
        u: Unit,
        t: (u8, bool),
        s: String,
    }
    let v = Outer {
        x: -1,
        inner: Inner { a: 2 },
        n: Newtype(3),
        u: Unit,
        t: (4, true),
        s: "ab".into(),
    };
    let b = hex("ffffffff 00000002 00000003 00000004 00000001 00000002 61620000");
    assert_eq!(to_bytes(&v).unwrap(), b);
    assert_eq!(from_bytes::<Outer>(&b).unwrap(), v);
}

#[test]
fn fixed_opaque_and_fixed_array() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct S {
        #[serde(with = "xdr::opaque_fixed")]
        uuid: [u8; 5],
        #[serde(with = "xdr::array_fixed")]
        model: [i8; 33],
        #[serde(with = "xdr::opaque_fixed")]
        empty: [u8; 0],
    }
    let mut model = [0i8; 33];
    model[0] = -1;
    model[32] = 0x41;
    let v = S {
        uuid: [1, 2, 3, 4, 5],
        model,
        empty: [],
    };
    let b = to_bytes(&v).unwrap();
    let mut want = hex("01020304 05000000 ffffffff");
    want.extend(std::iter::repeat_n(0u8, 31 * 4));
    want.extend(hex("00000041"));
    assert_eq!(b, want);
    assert_eq!(from_bytes::<S>(&b).unwrap(), v);
    // Truncated fixed opaque and fixed array are errors, not panics.
    assert!(matches!(
        from_bytes::<S>(&b[..6]),
        Err(Error::LengthOverInput { .. })
    ));
    assert!(matches!(
        from_bytes::<S>(&b[..20]),
        Err(Error::UnexpectedEof { .. })
    ));
    // Non-zero padding after a fixed opaque.
    let mut bad = b.clone();
    bad[6] = 1;
    assert_eq!(
        from_bytes::<S>(&bad),
        Err(Error::NonZeroPadding {
            path: "S.uuid".into()
        })
    );
    // Wrong length given to the fixed-opaque serializer path through serde_json stays plain bytes.
    let json = serde_json::to_string(&v).unwrap();
    assert!(json.starts_with(r#"{"uuid":[1,2,3,4,5],"model":[-1,"#));
    assert_eq!(serde_json::from_str::<S>(&json).unwrap(), v);
}

/// The exact attribute form the codegen emits, with a turbofish const N.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Limited {
    #[serde(
        serialize_with = "xdr::limit::serialize::<4, _, _>",
        deserialize_with = "xdr::limit::deserialize::<4, _, _>"
    )]
    name: String,
    #[serde(
        serialize_with = "xdr::limit::serialize::<2, _, _>",
        deserialize_with = "xdr::limit::deserialize::<2, _, _>"
    )]
    list: Vec<u32>,
    #[serde(
        serialize_with = "xdr::limit::serialize::<3, _, _>",
        deserialize_with = "xdr::limit::deserialize::<3, _, _>"
    )]
    data: Option<Opaque>,
    /// Not limited: proves a limit never leaks to the next field.
    free: String,
}

#[test]
fn limit_attribute_form_compiles_and_enforces() {
    let ok = Limited {
        name: "abcd".into(),
        list: vec![1, 2],
        data: Some(Opaque::from(vec![1, 2, 3])),
        free: "longer than four".into(),
    };
    let b = to_bytes(&ok).unwrap();
    assert_eq!(from_bytes::<Limited>(&b).unwrap(), ok);

    let long_name = Limited {
        name: "abcde".into(),
        ..clone_limited(&ok)
    };
    assert_eq!(
        to_bytes(&long_name),
        Err(Error::LengthOverLimit {
            len: 5,
            max: 4,
            path: "Limited.name".into()
        })
    );
    let long_list = Limited {
        list: vec![1, 2, 3],
        ..clone_limited(&ok)
    };
    assert_eq!(
        to_bytes(&long_list),
        Err(Error::LengthOverLimit {
            len: 3,
            max: 2,
            path: "Limited.list".into()
        })
    );
    let long_data = Limited {
        data: Some(Opaque::from(vec![0; 4])),
        ..clone_limited(&ok)
    };
    assert!(matches!(
        to_bytes(&long_data),
        Err(Error::LengthOverLimit { len: 4, max: 3, .. })
    ));
    let none = Limited {
        data: None,
        ..clone_limited(&ok)
    };
    assert_eq!(
        from_bytes::<Limited>(&to_bytes(&none).unwrap()).unwrap(),
        none
    );

    // Decode side: hand-encode an over-long name (5 > 4).
    let mut b = hex("00000005 61626364 65000000");
    b.extend(hex("00000000 00000000 00000000"));
    assert_eq!(
        from_bytes::<Limited>(&b),
        Err(Error::LengthOverLimit {
            len: 5,
            max: 4,
            path: "Limited.name".into()
        })
    );
    // Over-long optional opaque inside Some.
    let mut b = hex("00000000 00000000 00000001 00000004 00000000 00000000");
    assert_eq!(
        from_bytes::<Limited>(&b),
        Err(Error::LengthOverLimit {
            len: 4,
            max: 3,
            path: "Limited.data".into()
        })
    );
    b[15] = 3;
    b.truncate(20);
    b.extend(hex("00000000"));
    assert!(from_bytes::<Limited>(&b).is_ok());

    // Transparent for serde_json.
    let json = serde_json::to_string(&long_list).unwrap();
    assert_eq!(serde_json::from_str::<Limited>(&json).unwrap(), long_list);
}

fn clone_limited(l: &Limited) -> Limited {
    Limited {
        name: l.name.clone(),
        list: l.list.clone(),
        data: l.data.clone(),
        free: l.free.clone(),
    }
}

#[test]
fn prefix_and_writer() {
    let mut out = vec![0xaa];
    to_writer_vec(&7u32, &mut out).unwrap();
    assert_eq!(out, hex("aa 00000007"));
    let (v, n) = from_bytes_prefix::<u32>(&hex("00000007 ffff")).unwrap();
    assert_eq!((v, n), (7, 4));
    assert_eq!(
        from_bytes::<u32>(&hex("00000007 ffff")),
        Err(Error::TrailingBytes { count: 2 })
    );
}

/// A discriminated union as the codegen writes it: `(i32 discriminant, arm)` with a void arm.
#[derive(Debug, PartialEq, Clone)]
enum Value {
    Int(i32),
    Str(String),
    Void,
}

impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(2)?;
        match self {
            Value::Int(v) => {
                t.serialize_element(&1i32)?;
                t.serialize_element(v)?;
            }
            Value::Str(v) => {
                t.serialize_element(&7i32)?;
                t.serialize_element(v)?;
            }
            Value::Void => t.serialize_element(&0i32)?,
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("union value")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Value, A::Error> {
                use serde::de::Error as _;
                let d: i32 = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(0, &self))?;
                Ok(match d {
                    0 => Value::Void,
                    1 => Value::Int(arm(&mut seq, &self)?),
                    7 => Value::Str(arm(&mut seq, &self)?),
                    other => {
                        return Err(A::Error::invalid_value(
                            serde::de::Unexpected::Signed(other as i64),
                            &"value_type",
                        ))
                    }
                })
            }
        }
        d.deserialize_tuple(2, V)
    }
}

fn arm<'de, A: serde::de::SeqAccess<'de>, T: Deserialize<'de>>(
    seq: &mut A,
    exp: &dyn serde::de::Expected,
) -> Result<T, A::Error> {
    use serde::de::Error as _;
    seq.next_element()?
        .ok_or_else(|| A::Error::invalid_length(1, exp))
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Param {
    field: String,
    value: Value,
}

#[test]
fn manual_union_with_void_arm() {
    assert_eq!(to_bytes(&Value::Void).unwrap(), hex("00000000"));
    assert_eq!(to_bytes(&Value::Int(-1)).unwrap(), hex("00000001 ffffffff"));
    let ps = vec![
        Param {
            field: "a".into(),
            value: Value::Void,
        },
        Param {
            field: "b".into(),
            value: Value::Str("x".into()),
        },
    ];
    let b = to_bytes(&ps).unwrap();
    assert_eq!(
        b,
        hex("00000002 00000001 61000000 00000000 00000001 62000000 00000007 00000001 78000000")
    );
    assert_eq!(from_bytes::<Vec<Param>>(&b).unwrap(), ps);
    // Unknown discriminant: InvalidValue with the path.
    let mut bad = b.clone();
    bad[27] = 9;
    assert_eq!(
        from_bytes::<Vec<Param>>(&bad),
        Err(Error::InvalidValue {
            value: "integer `9`".into(),
            expected: "value_type".into(),
            path: "[1].value".into()
        })
    );
}

#[test]
fn rust_enums_use_the_variant_index() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum E {
        A,
        B(u32),
        C { x: bool },
    }
    assert_eq!(to_bytes(&E::A).unwrap(), hex("00000000"));
    assert_eq!(to_bytes(&E::B(5)).unwrap(), hex("00000001 00000005"));
    assert_eq!(
        to_bytes(&E::C { x: true }).unwrap(),
        hex("00000002 00000001")
    );
    for e in [E::A, E::B(5), E::C { x: true }] {
        assert_eq!(from_bytes::<E>(&to_bytes(&e).unwrap()).unwrap(), e);
    }
    assert!(matches!(
        from_bytes::<E>(&hex("00000003")),
        Err(Error::InvalidValue { .. })
    ));
}

/// Typedefs as the codegen may emit them: newtype structs wrapping fixed forms and limits, used
/// inside optional-data and arrays, and limits applied through a typedef.
#[test]
fn typedef_newtypes_compose_with_fixed_forms_and_limits() {
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Uuid(#[serde(with = "xdr::opaque_fixed")] [u8; 4]);
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct NonnullString(
        #[serde(
            serialize_with = "xdr::limit::serialize::<3, _, _>",
            deserialize_with = "xdr::limit::deserialize::<3, _, _>"
        )]
        String,
    );
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Names(Vec<NonnullString>);
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct S {
        uuid: Option<Uuid>,
        #[serde(
            serialize_with = "xdr::limit::serialize::<2, _, _>",
            deserialize_with = "xdr::limit::deserialize::<2, _, _>"
        )]
        names: Names,
    }
    let v = S {
        uuid: Some(Uuid([1, 2, 3, 4])),
        names: Names(vec![
            NonnullString("ab".into()),
            NonnullString("cde".into()),
        ]),
    };
    let b = to_bytes(&v).unwrap();
    assert_eq!(
        b,
        hex("00000001 01020304 00000002 00000002 61620000 00000003 63646500")
    );
    assert_eq!(from_bytes::<S>(&b).unwrap(), v);
    // The typedef's own limit applies to each element; the field's limit to the count.
    let mut long = v.clone();
    long.names.0[1] = NonnullString("cdef".into());
    assert!(matches!(
        to_bytes(&long),
        Err(Error::LengthOverLimit { len: 4, max: 3, .. })
    ));
    let mut many = v.clone();
    many.names.0.push(NonnullString("x".into()));
    assert_eq!(
        to_bytes(&many),
        Err(Error::LengthOverLimit {
            len: 3,
            max: 2,
            path: "S.names".into()
        })
    );
}
