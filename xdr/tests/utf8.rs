//! The UTF-8 policy of the decoders: `Utf8::Strict` (the default) rejects a string that is not
//! UTF-8 with the field path; `Utf8::Lossy` decodes it into an owned string with U+FFFD in place
//! of each invalid sequence, so that the rest of the message is still read.

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use xdr::{from_bytes, from_bytes_with, from_shared_with, to_bytes, DecodeOptions, Error, Utf8};

fn lossy() -> DecodeOptions {
    DecodeOptions::new().with_utf8(Utf8::Lossy)
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Vol {
    pool: String,
    name: String,
    key: Option<String>,
    capacity: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct List {
    vols: Vec<Vol>,
    ret: u32,
}

/// An XDR string of raw bytes (length, bytes, zero padding).
fn xdr_string(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out.resize(out.len() + (4 - bytes.len() % 4) % 4, 0);
    out
}

/// A `List` of two volumes whose second name is Latin-1 `café.img` (0xe9 alone is not UTF-8).
fn latin1_list() -> Vec<u8> {
    let mut b = 2u32.to_be_bytes().to_vec();
    for name in [&b"disk.qcow2"[..], &b"caf\xe9.img"[..]] {
        b.extend(xdr_string(b"default"));
        b.extend(xdr_string(name));
        b.extend(1u32.to_be_bytes()); // key present
        b.extend(xdr_string(name));
        b.extend(1_048_576u64.to_be_bytes());
    }
    b.extend(2u32.to_be_bytes());
    b
}

#[test]
fn strict_is_the_default_and_names_the_field() {
    let bytes = latin1_list();
    let e = from_bytes::<List>(&bytes).unwrap_err();
    assert!(matches!(e, Error::InvalidUtf8 { .. }), "{e:?}");
    assert_eq!(e.path(), Some("List.vols[1].name"));
    let e = from_bytes_with::<List>(&bytes, DecodeOptions::default()).unwrap_err();
    assert!(matches!(e, Error::InvalidUtf8 { .. }), "{e:?}");
}

#[test]
fn lossy_reads_the_whole_message_with_replacement_characters() {
    let bytes = latin1_list();
    let list: List = from_bytes_with(&bytes, lossy()).unwrap();
    assert_eq!(list.ret, 2);
    assert_eq!(list.vols.len(), 2);
    assert_eq!(list.vols[0].name, "disk.qcow2");
    assert_eq!(list.vols[1].name, "caf\u{fffd}.img");
    assert_eq!(list.vols[1].key.as_deref(), Some("caf\u{fffd}.img"));
    assert_eq!(list.vols[1].capacity, 1_048_576);
    // The same through the shared-buffer entry point the libvirt client uses.
    let shared = bytes::Bytes::from(bytes);
    assert_eq!(from_shared_with::<List>(&shared, lossy()).unwrap(), list);
}

#[test]
fn lossy_cannot_borrow_a_replacement() {
    #[derive(Deserialize, Debug)]
    struct Borrowed<'a> {
        #[serde(borrow)]
        name: &'a str,
    }
    let bytes = xdr_string(b"caf\xe9");
    let e = from_bytes_with::<Borrowed<'_>>(&bytes, lossy()).unwrap_err();
    assert!(matches!(e, Error::InvalidUtf8 { .. }), "{e:?}");
    assert_eq!(e.path(), Some("Borrowed.name"), "{e}");
    // A valid string still borrows under either policy.
    let bytes = xdr_string("café".as_bytes());
    let b: Borrowed<'_> = from_bytes_with(&bytes, lossy()).unwrap();
    assert_eq!(b.name, "café");
}

#[test]
fn lossy_leaves_other_errors_alone() {
    // Truncated: still an error, whatever the UTF-8 policy.
    let bytes = latin1_list();
    let e = from_bytes_with::<List>(&bytes[..bytes.len() - 1], lossy()).unwrap_err();
    assert!(matches!(e, Error::UnexpectedEof { .. }), "{e:?}");
    // Non-zero padding after a non-UTF-8 string: the padding error comes first.
    let mut bad = xdr_string(b"\xff");
    bad[7] = 1;
    let e = from_bytes_with::<String>(&bad, lossy()).unwrap_err();
    assert!(matches!(e, Error::NonZeroPadding { .. }), "{e:?}");
}

proptest! {
    /// Valid strings decode the same under both policies; any bytes decode under `Lossy` to
    /// what `String::from_utf8_lossy` makes of them, and to an `InvalidUtf8` under `Strict`
    /// exactly when they are not UTF-8.
    #[test]
    fn lossy_matches_from_utf8_lossy(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
        let bytes = xdr_string(&raw);
        let lossy_s: String = from_bytes_with(&bytes, lossy()).unwrap();
        prop_assert_eq!(&lossy_s, &String::from_utf8_lossy(&raw));
        match std::str::from_utf8(&raw) {
            Ok(s) => {
                prop_assert_eq!(from_bytes::<String>(&bytes).unwrap(), s);
                prop_assert_eq!(to_bytes(&lossy_s).unwrap(), bytes);
            }
            Err(_) => {
                let strict = from_bytes::<String>(&bytes);
                prop_assert!(matches!(strict, Err(Error::InvalidUtf8 { .. })), "{:?}", strict);
            }
        }
    }
}

#[cfg(feature = "schema")]
#[test]
fn schema_decoder_follows_the_policy() {
    let spec = xdr::schema::parse(
        "utf8.x",
        "struct vol { string name<>; unsigned hyper capacity; };",
    )
    .unwrap();
    let schema = xdr::schema::Schema::new(vec![spec]).unwrap();
    let mut bytes = xdr_string(b"caf\xe9.img");
    bytes.extend(7u64.to_be_bytes());
    let e = xdr::dynamic::decode(&schema, "vol", &bytes).unwrap_err();
    assert!(matches!(e, Error::InvalidUtf8 { .. }), "{e:?}");
    assert_eq!(e.path(), Some("vol.name"));
    let v = xdr::dynamic::decode_with(&schema, "vol", &bytes, lossy()).unwrap();
    assert_eq!(
        v.to_json(),
        serde_json::json!({"name": "caf\u{fffd}.img", "capacity": 7})
    );
}
