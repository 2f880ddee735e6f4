//! Negative tests: one (or more) for every error class, with the path each error names, and
//! hostile lengths/depths that must fail cleanly before allocating or recursing.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use xdr::{from_bytes, to_bytes, Error, Opaque};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Dom {
    name: String,
    #[serde(with = "xdr::opaque_fixed")]
    uuid: [u8; 4],
    id: i32,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[allow(non_camel_case_types)]
struct list_ret {
    doms: Vec<Dom>,
    ret: u32,
}

fn sample() -> Vec<u8> {
    to_bytes(&list_ret {
        doms: vec![
            Dom {
                name: "a".into(),
                uuid: [1; 4],
                id: 1,
            },
            Dom {
                name: "bb".into(),
                uuid: [2; 4],
                id: 2,
            },
        ],
        ret: 2,
    })
    .unwrap()
}

#[test]
fn unexpected_eof_names_the_field() {
    let b = sample();
    // Every strict prefix fails with a typed error, never a panic.
    for n in 0..b.len() {
        assert!(from_bytes::<list_ret>(&b[..n]).is_err(), "prefix {n}");
    }
    assert_eq!(
        from_bytes::<list_ret>(&b[..b.len() - 2]),
        Err(Error::UnexpectedEof {
            needed: 4,
            remaining: 2,
            path: "list_ret.ret".into()
        })
    );
    // Cut inside the second domain's id.
    assert_eq!(
        from_bytes::<list_ret>(&b[..b.len() - 5]),
        Err(Error::UnexpectedEof {
            needed: 4,
            remaining: 3,
            path: "list_ret.doms[1].id".into()
        })
    );
    let e = from_bytes::<list_ret>(&b[..b.len() - 5]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unexpected end of input at `list_ret.doms[1].id`: needed 4 more bytes, 3 remaining"
    );
}

#[test]
fn trailing_bytes() {
    let mut b = sample();
    b.extend([0, 0, 0, 0]);
    assert_eq!(
        from_bytes::<list_ret>(&b),
        Err(Error::TrailingBytes { count: 4 })
    );
}

#[test]
fn length_over_input_is_checked_before_allocating() {
    // A count of 2^32-1 domains with 8 bytes behind it: rejected at once (if the decoder trusted
    // it, Vec::with_capacity would abort the test process).
    let b = hex("ffffffff 00000000 00000000");
    assert_eq!(
        from_bytes::<list_ret>(&b),
        Err(Error::LengthOverInput {
            len: u64::from(u32::MAX),
            remaining: 8,
            path: "list_ret.doms".into()
        })
    );
    // The same for big elements: Vec<[u64; 512]> would need 4 KiB per claimed element.
    #[derive(Deserialize, Debug)]
    struct Big {
        #[serde(with = "xdr::array_fixed")]
        _x: [u64; 512],
    }
    assert!(matches!(
        from_bytes::<Vec<Big>>(&hex("00100000 00000000")),
        Err(Error::LengthOverInput { len: 0x100000, .. })
    ));
    // Strings and opaques: length past the end (also near usize overflow).
    assert_eq!(
        from_bytes::<String>(&hex("00000005 61626364")),
        Err(Error::LengthOverInput {
            len: 5,
            remaining: 4,
            path: String::new()
        })
    );
    assert!(matches!(
        from_bytes::<Opaque>(&hex("fffffffe 00")),
        Err(Error::LengthOverInput {
            len: 0xfffffffe,
            ..
        })
    ));
    assert!(matches!(
        from_bytes::<&[u8]>(&hex("ffffffff")),
        Err(Error::LengthOverInput { .. })
    ));
    // Missing padding counts as needing more input.
    assert!(matches!(
        from_bytes::<String>(&hex("00000001 61")),
        Err(Error::LengthOverInput {
            len: 1,
            remaining: 1,
            ..
        })
    ));
}

#[test]
fn length_over_limit() {
    #[derive(Serialize, Deserialize, Debug)]
    struct R {
        #[serde(
            serialize_with = "xdr::limit::serialize::<1, _, _>",
            deserialize_with = "xdr::limit::deserialize::<1, _, _>"
        )]
        doms: Vec<Dom>,
    }
    let b = hex("00000002");
    assert_eq!(
        from_bytes::<R>(&b).unwrap_err(),
        Error::LengthOverLimit {
            len: 2,
            max: 1,
            path: "R.doms".into()
        }
    );
}

/// `string names<N>` of `string<M>`s: every item's own maximum holds, on both sides, and the
/// item limit applies to nothing else (not to a following field, not to an inner array's items).
#[test]
fn item_limits_bound_each_item() {
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct R {
        #[serde(
            serialize_with = "xdr::limit::serialize_items::<3, 2, _, _>",
            deserialize_with = "xdr::limit::deserialize_items::<3, 2, _, _>"
        )]
        names: Vec<Option<String>>,
        #[serde(
            serialize_with = "xdr::limit::serialize_items::<2, 1, _, _>",
            deserialize_with = "xdr::limit::deserialize_items::<2, 1, _, _>"
        )]
        lists: Vec<Vec<String>>,
        tail: String,
    }
    let ok = R {
        names: vec![Some("ab".into()), None, Some("c".into())],
        // each inner list has at most 1 item; the strings inside are not limited
        lists: vec![vec!["long string".into()], vec![]],
        tail: "a string longer than two".into(),
    };
    let bytes = to_bytes(&ok).expect("encode");
    assert_eq!(from_bytes::<R>(&bytes).expect("decode"), ok);

    // encode: the third name is one byte too long
    let mut long = ok.clone();
    long.names[2] = Some("cde".into());
    let err = to_bytes(&long).unwrap_err();
    assert_eq!(
        err,
        Error::LengthOverLimit {
            len: 3,
            max: 2,
            path: "R.names[2]".into()
        }
    );
    // decode: the same bytes as libvirt would reject them
    long.names[2] = Some("cd".into());
    let mut bytes = to_bytes(&long).expect("encode");
    // names: count 3 | 1 len 2 "ab\0\0" | 0 | 1 len 2 "cd\0\0": patch the last length to 3
    let at = 4 + 4 + 4 + 4 + 4 + 4;
    assert_eq!(&bytes[at..at + 4], &2u32.to_be_bytes());
    bytes[at..at + 4].copy_from_slice(&3u32.to_be_bytes());
    assert_eq!(
        from_bytes::<R>(&bytes).unwrap_err(),
        Error::LengthOverLimit {
            len: 3,
            max: 2,
            path: "R.names[2]".into()
        }
    );
    // the count is still bounded
    let mut many = ok.clone();
    many.names.push(None);
    assert!(matches!(
        to_bytes(&many),
        Err(Error::LengthOverLimit { len: 4, max: 3, .. })
    ));
    // an inner list over its item limit
    let mut inner = ok.clone();
    inner.lists[1] = vec!["a".into(), "b".into()];
    let err = to_bytes(&inner).unwrap_err();
    assert!(
        matches!(&err, Error::LengthOverLimit { len: 2, max: 1, path } if path == "R.lists[1]"),
        "{err:?}"
    );
}

#[test]
fn invalid_bool_and_optional_flag() {
    assert_eq!(
        from_bytes::<bool>(&hex("00000002")),
        Err(Error::InvalidBool {
            value: 2,
            path: String::new()
        })
    );
    #[derive(Deserialize, Debug)]
    struct O {
        _a: Option<u32>,
    }
    assert_eq!(
        from_bytes::<O>(&hex("00000100")).unwrap_err(),
        Error::InvalidBool {
            value: 256,
            path: "O._a".into()
        }
    );
}

#[test]
fn invalid_utf8() {
    let mut b = sample();
    b[8] = 0xff; // first domain's name "a"
    assert_eq!(
        from_bytes::<list_ret>(&b),
        Err(Error::InvalidUtf8 {
            path: "list_ret.doms[0].name".into()
        })
    );
    assert!(from_bytes::<&str>(&hex("00000002 c3280000")).is_err());
}

#[test]
fn non_zero_padding() {
    let mut b = sample();
    b[9] = 1; // padding after "a"
    assert_eq!(
        from_bytes::<list_ret>(&b),
        Err(Error::NonZeroPadding {
            path: "list_ret.doms[0].name".into()
        })
    );
    assert_eq!(
        from_bytes::<&[u8]>(&hex("00000003 01020301")),
        Err(Error::NonZeroPadding {
            path: String::new()
        })
    );
}

#[test]
fn integer_out_of_range() {
    assert!(matches!(
        from_bytes::<i8>(&hex("00000080")),
        Err(Error::IntegerOutOfRange {
            value: 128,
            target: "i8",
            ..
        })
    ));
    assert!(matches!(
        from_bytes::<i8>(&hex("ffffff7f")),
        Err(Error::IntegerOutOfRange { value: -129, .. })
    ));
    assert!(matches!(
        from_bytes::<i16>(&hex("00008000")),
        Err(Error::IntegerOutOfRange { target: "i16", .. })
    ));
    assert!(matches!(
        from_bytes::<u8>(&hex("00000100")),
        Err(Error::IntegerOutOfRange {
            value: 256,
            target: "u8",
            ..
        })
    ));
    assert!(matches!(
        from_bytes::<u16>(&hex("00010000")),
        Err(Error::IntegerOutOfRange { target: "u16", .. })
    ));
    assert!(matches!(
        from_bytes::<char>(&hex("0000d800")),
        Err(Error::IntegerOutOfRange { target: "char", .. })
    ));
    #[derive(Deserialize, Debug)]
    struct Model {
        #[serde(with = "xdr::array_fixed")]
        _model: [i8; 3],
    }
    assert_eq!(
        from_bytes::<Model>(&hex("00000041 00000042 000000ff")).unwrap_err(),
        Error::IntegerOutOfRange {
            value: 255,
            target: "i8",
            path: "Model._model".into()
        }
    );
}

#[test]
fn invalid_value_from_an_enum_decoder() {
    // An XDR enum as the codegen writes it: i32 checked against the known values.
    #[derive(Debug)]
    struct State;
    impl<'de> Deserialize<'de> for State {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let v = i32::deserialize(d)?;
            if v == 1 {
                Ok(State)
            } else {
                Err(serde::de::Error::invalid_value(
                    serde::de::Unexpected::Signed(v as i64),
                    &"remote_procedure",
                ))
            }
        }
    }
    #[derive(Deserialize, Debug)]
    #[allow(non_camel_case_types)]
    struct hdr {
        _proc: State,
    }
    let e = from_bytes::<hdr>(&hex("00000063")).unwrap_err();
    assert_eq!(
        e,
        Error::InvalidValue {
            value: "integer `99`".into(),
            expected: "remote_procedure".into(),
            path: "hdr._proc".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "invalid value integer `99` at `hdr._proc`, expected remote_procedure"
    );
}

#[test]
fn custom_errors_get_the_path_too() {
    #[derive(Debug)]
    struct Even;
    impl<'de> Deserialize<'de> for Even {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            match u32::deserialize(d)? {
                v if v % 2 == 0 => Ok(Even),
                v => Err(serde::de::Error::custom(format_args!("{v} is odd"))),
            }
        }
    }
    #[derive(Deserialize, Debug)]
    struct S {
        _v: Vec<Even>,
    }
    assert_eq!(
        from_bytes::<S>(&hex("00000002 00000002 00000003")).unwrap_err(),
        Error::Custom {
            msg: "3 is odd".into(),
            path: "S._v[1]".into()
        }
    );
    // On encode: a Serialize impl's error.
    struct Fails;
    impl Serialize for Fails {
        fn serialize<S: serde::Serializer>(&self, _s: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("nope"))
        }
    }
    #[derive(Serialize)]
    struct W {
        f: Vec<Fails>,
    }
    assert_eq!(
        to_bytes(&W { f: vec![Fails] }),
        Err(Error::Custom {
            msg: "nope".into(),
            path: "W.f[0]".into()
        })
    );
}

/// A hostile optional-data linked list: every node says "another one follows".
#[derive(Deserialize, Serialize, Debug)]
struct Node {
    v: u32,
    next: Option<Box<Node>>,
}

#[test]
fn deep_linked_list_hits_the_depth_limit_not_the_stack() {
    let nodes = 200_000;
    let mut b = Vec::with_capacity(nodes * 8);
    for _ in 0..nodes {
        b.extend([0, 0, 0, 1, 0, 0, 0, 1]);
    }
    match from_bytes::<Node>(&b) {
        Err(Error::DepthLimitExceeded { max, path }) => {
            assert_eq!(max, xdr::de::DEFAULT_MAX_DEPTH);
            assert!(path.starts_with("Node.next.next.next"), "{path}");
        }
        other => panic!("{other:?}"),
    }
    // A list within the limit decodes (2 levels per node: struct + optional-data).
    let mut list = None;
    for i in 0..50 {
        list = Some(Box::new(Node { v: i, next: list }));
    }
    let enc = to_bytes(&list).unwrap();
    let back: Option<Box<Node>> = from_bytes(&enc).unwrap();
    assert_eq!(back.unwrap().v, 49);
    // A smaller limit rejects it.
    let mut de = xdr::Deserializer::from_bytes(&enc).with_max_depth(10);
    assert!(matches!(
        <Option<Box<Node>>>::deserialize(&mut de),
        Err(Error::DepthLimitExceeded { max: 10, .. })
    ));
    // Nested arrays count too.
    let mut nested = hex("00000001").repeat(1000);
    nested.extend(hex("00000000"));
    type V5 = Vec<Vec<Vec<Vec<Vec<u32>>>>>;
    let mut de = xdr::Deserializer::from_bytes(&nested).with_max_depth(3);
    assert!(matches!(
        V5::deserialize(&mut de),
        Err(Error::DepthLimitExceeded { max: 3, .. })
    ));
}

#[test]
fn unsupported() {
    let mut m = BTreeMap::new();
    m.insert(1u32, 2u32);
    assert_eq!(to_bytes(&m), Err(Error::Unsupported { what: "map" }));
    assert_eq!(
        from_bytes::<BTreeMap<u32, u32>>(&hex("00000000")),
        Err(Error::Unsupported { what: "map" })
    );
    // Self-describing values cannot come from XDR.
    assert!(matches!(
        from_bytes::<serde_json::Value>(&hex("00000000")),
        Err(Error::Unsupported { .. })
    ));
    // An iterator of unknown length.
    struct Unknown;
    impl Serialize for Unknown {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq((0..3u32).filter(|_| true))
        }
    }
    assert!(matches!(to_bytes(&Unknown), Err(Error::Unsupported { .. })));
    assert_eq!(to_bytes(&1u128), Err(Error::Unsupported { what: "u128" }));
}
