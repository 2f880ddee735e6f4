//! Decode arbitrary bytes into representative XDR shapes (borrowed and owned, unions with void
//! arms, optional-data lists, fixed forms, limits). Must never panic; whatever decodes must
//! re-encode to exactly the bytes it was decoded from (XDR encodings are canonical).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug)]
struct DomRef<'a> {
    name: &'a str,
    #[serde(with = "xdr::opaque_fixed")]
    uuid: [u8; 16],
    id: i32,
}

#[derive(Serialize, Deserialize, Debug)]
struct ListRet<'a> {
    #[serde(
        borrow,
        serialize_with = "xdr::limit::serialize::<16384, _, _>",
        deserialize_with = "xdr::limit::deserialize::<16384, _, _>"
    )]
    domains: Vec<DomRef<'a>>,
    ret: u32,
}

/// `(i32 discriminant, arm)` as generated code writes unions; 0 is a void arm.
#[derive(Debug)]
enum Value {
    Void,
    Int(i32),
    Hyper(i64),
    Double(f64),
    Str(String),
    Data(xdr::Opaque),
}

impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(2)?;
        match self {
            Value::Void => t.serialize_element(&0i32)?,
            Value::Int(v) => {
                t.serialize_element(&1i32)?;
                t.serialize_element(v)?
            }
            Value::Hyper(v) => {
                t.serialize_element(&3i32)?;
                t.serialize_element(v)?
            }
            Value::Double(v) => {
                t.serialize_element(&5i32)?;
                t.serialize_element(v)?
            }
            Value::Str(v) => {
                t.serialize_element(&7i32)?;
                t.serialize_element(v)?
            }
            Value::Data(v) => {
                t.serialize_element(&8i32)?;
                t.serialize_element(v)?
            }
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
                f.write_str("value union")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Value, A::Error> {
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
                    0 => Value::Void,
                    1 => Value::Int(arm(&mut seq)?),
                    3 => Value::Hyper(arm(&mut seq)?),
                    5 => Value::Double(arm(&mut seq)?),
                    7 => Value::Str(arm(&mut seq)?),
                    8 => Value::Data(arm(&mut seq)?),
                    other => {
                        return Err(A::Error::invalid_value(
                            serde::de::Unexpected::Signed(other.into()),
                            &"value type",
                        ))
                    }
                })
            }
        }
        d.deserialize_tuple(2, V)
    }
}

#[derive(Serialize, Deserialize, Debug)]
struct Params {
    params: Vec<(String, Value)>,
    flags: u32,
}

#[derive(Serialize, Deserialize, Debug)]
struct Node {
    v: i8,
    flag: bool,
    next: Option<Box<Node>>,
}

#[derive(Serialize, Deserialize, Debug)]
struct Misc<'a> {
    #[serde(with = "serde_bytes_like")]
    raw: &'a [u8],
    #[serde(with = "xdr::array_fixed")]
    model: [i8; 32],
    shorts: Vec<(u16, i16, u8, char)>,
    maybe: Option<(u64, f32)>,
    list: Option<Box<Node>>,
}

/// `&[u8]` as XDR opaque without pulling in serde_bytes.
mod serde_bytes_like {
    pub fn serialize<S: serde::Serializer>(v: &&[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'de [u8], D::Error> {
        <&[u8]>::deserialize(d)
    }
    use serde::Deserialize;
}

/// Decode as `T`; when it decodes, encoding it again must give back the consumed bytes.
fn check<'a, T: Deserialize<'a> + Serialize>(data: &'a [u8]) {
    if let Ok((v, used)) = xdr::from_bytes_prefix::<T>(data) {
        let again = xdr::to_bytes(&v).expect("a decoded value encodes");
        assert_eq!(again, &data[..used], "re-encoding differs");
    }
}

fuzz_target!(|data: &[u8]| {
    check::<ListRet<'_>>(data);
    check::<Params>(data);
    check::<Misc<'_>>(data);
    check::<Vec<Option<String>>>(data);
    let shared = bytes::Bytes::copy_from_slice(data);
    let _ = xdr::from_shared::<Params>(&shared);
});
