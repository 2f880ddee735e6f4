//! The schema-driven decoder (`xdr::dynamic`) and the libvirt stream dissector on arbitrary
//! bytes. Must never panic. Whatever decodes must re-encode to exactly the bytes it came from,
//! and its JSON text must come back to the same bytes. The schemas are this project's fixtures
//! (every XDR form; a small protocol in libvirt's conventions), embedded at build time. Lenient
//! padding decodes whatever strict decodes, to the same value, and what it decodes re-encodes
//! to as many bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use xdr::dynamic::{decode_prefix, decode_prefix_with, dissect::Dissector, encode, from_json};
use xdr::schema::{parse, Schema};

const FORMS: &str = include_str!("../../xdr/tests/fixtures/dynamic.x");
const PROTOCOL: &str = include_str!("../../xdr/tests/fixtures/dissect.x");

/// Types of the forms fixture to decode as (picked by the first input byte).
const TYPES: &[&str] = &[
    "everything",
    "shape",
    "typed_param",
    "flag_union",
    "node",
    "inline_forms",
    "small_ints",
    "numbers",
    "maybe_name",
    "tag",
    "wide",
];

fn forms() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(|| Schema::new(vec![parse("dynamic.x", FORMS).unwrap()]).unwrap())
}

fn dissector() -> &'static Dissector {
    static D: OnceLock<Dissector> = OnceLock::new();
    D.get_or_init(|| {
        Dissector::new(Schema::new(vec![parse("dissect.x", PROTOCOL).unwrap()]).unwrap()).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, input)) = data.split_first() else {
        return;
    };
    let schema = forms();
    let ty = TYPES[pick as usize % TYPES.len()];
    let lenient = xdr::DecodeOptions::new().with_padding(xdr::Padding::Lenient);
    let strict = decode_prefix(schema, ty, input);
    match (&strict, decode_prefix_with(schema, ty, input, lenient)) {
        (Ok(s), Ok(l)) => assert_eq!(
            serde_json::to_string(&s.0).unwrap(),
            serde_json::to_string(&l.0).unwrap(),
            "lenient != strict"
        ),
        (Ok(_), Err(e)) => panic!("strict decodes, lenient fails: {e}"),
        (Err(_), Ok((value, used))) => {
            let bytes = encode(schema, ty, &value).expect("a leniently decoded value encodes");
            assert_eq!(bytes.len(), used, "lenient decode -> encode changes the length");
        }
        (Err(_), Err(_)) => {}
    }
    if let Ok((value, used)) = strict {
        let bytes = encode(schema, ty, &value).expect("a decoded value encodes");
        assert_eq!(bytes, &input[..used], "decode -> encode is not byte-exact");
        let text = serde_json::to_string(&value).expect("JSON");
        let json: serde_json::Value = serde_json::from_str(&text).expect("our JSON parses");
        let back = from_json(schema, ty, &json).expect("our JSON converts back");
        assert_eq!(encode(schema, ty, &back).unwrap(), bytes, "JSON round trip");
    }
    for packet in dissector().packets(input) {
        match packet {
            Ok(p) => {
                serde_json::to_string(&p).expect("a packet renders");
            }
            Err(_) => break,
        }
    }
});
