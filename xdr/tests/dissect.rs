//! The libvirt stream dissector (`xdr::dynamic::dissect`) on a stream built by hand from our
//! fixture protocol: every message type, error replies, fds, stream data and holes, unknown
//! procedures, bodies that do not decode, and framing errors.
#![cfg(feature = "schema")]

use serde_json::{json, Value as Json};
use xdr::dynamic::dissect::Dissector;
use xdr::schema::{parse, Schema};
use xdr::Error;

const FIXTURE: &str = include_str!("fixtures/dissect.x");
const PROG: u32 = 0x4445_4d4f;

fn dissector() -> Dissector {
    Dissector::new(Schema::new(vec![parse("dissect.x", FIXTURE).unwrap()]).unwrap()).unwrap()
}

fn packet(proc_: u32, kind: u32, serial: u32, status: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for w in [
        (28 + body.len()) as u32,
        PROG,
        1,
        proc_,
        kind,
        serial,
        status,
    ] {
        out.extend_from_slice(&w.to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

fn words(ws: &[u32]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_be_bytes()).collect()
}

fn text(s: &str) -> Vec<u8> {
    let mut b = words(&[s.len() as u32]);
    b.extend_from_slice(s.as_bytes());
    b.resize(b.len().div_ceil(4) * 4, 0);
    b
}

fn lines(d: &Dissector, stream: &[u8]) -> Vec<Result<Json, Error>> {
    d.packets(stream)
        .map(|p| p.map(|p| serde_json::to_value(&p).unwrap()))
        .collect()
}

#[test]
fn every_message_kind() {
    let d = dissector();
    let mut s = Vec::new();
    let mut args = text("color");
    args.extend(words(&[0]));
    s.extend(packet(2, 0, 1, 0, &args)); // call
    let mut ret = words(&[2]);
    ret.extend(text("red"));
    ret.extend(text("blue"));
    ret.extend([1, 2, 3, 4]);
    s.extend(packet(2, 1, 1, 0, &ret)); // reply
    let mut err = words(&[42, 7, 1]);
    err.extend(text("no such key"));
    err.extend(words(&[2]));
    s.extend(packet(2, 1, 2, 1, &err)); // error reply
    s.extend(packet(1, 0, 3, 0, &[])); // void call
    let mut ev = text("k");
    ev.extend(5u64.to_be_bytes());
    s.extend(packet(3, 2, 0, 0, &ev)); // event
    let mut with_fds = words(&[2]);
    with_fds.extend(words(&[9]));
    s.extend(packet(4, 4, 4, 0, &with_fds)); // call with 2 fds
    s.extend([0, 0]); // one carrier byte per fd (libvirt's virNetSocketSendFD), no packet's
    s.extend(packet(4, 3, 4, 2, &[0xaa; 10])); // stream data
    let mut hole = 1u64.to_be_bytes().to_vec();
    hole.extend(words(&[0]));
    s.extend(packet(4, 6, 4, 2, &hole)); // stream hole
    s.extend(packet(4, 3, 4, 0, &[])); // end of stream
    s.extend(packet(99, 0, 5, 0, &[1, 2, 3, 4])); // unknown procedure
    s.extend(packet(2, 0, 6, 0, &words(&[1000]))); // body that does not decode
    s.extend(packet(4, 3, 4, 1, &[])); // a client's stream abort: status ERROR, no body

    let got: Vec<Json> = lines(&d, &s).into_iter().map(Result::unwrap).collect();
    assert_eq!(got.len(), 12);
    assert_eq!(
        got[0],
        json!({"offset": 0, "length": 44, "program": "demo", "version": 1,
               "procedure": "DEMO_PROC_GET", "type": "VIR_NET_CALL", "serial": 1,
               "status": "VIR_NET_OK", "body_type": "demo_get_args",
               "body": {"key": "color", "flags": 0}})
    );
    assert_eq!(
        got[1]["body"],
        json!({"values": ["red", "blue"], "cookie": "01020304"})
    );
    assert_eq!(got[1]["type"], "VIR_NET_REPLY");
    assert_eq!(
        got[2]["error"],
        json!({"code": 42, "domain": 7, "message": "no such key", "level": 2})
    );
    assert!(got[2].get("body").is_none());
    assert_eq!(got[3]["procedure"], "DEMO_PROC_PING");
    assert_eq!(got[3]["body_type"], "void");
    assert_eq!(got[4]["type"], "VIR_NET_MESSAGE");
    assert_eq!(got[4]["body"], json!({"key": "k", "generation": 5}));
    assert_eq!(got[5]["fds"], 2);
    assert_eq!(got[5]["body"], json!({"flags": 9}));
    assert_eq!(got[6]["data_len"], 10);
    assert_eq!(got[6]["status"], "VIR_NET_CONTINUE");
    assert_eq!(got[7]["hole"], json!({"length": 1, "flags": 0}));
    assert_eq!(got[8]["data_len"], 0);
    assert_eq!(got[9]["procedure"], 99);
    assert!(got[9]["decode_error"]
        .as_str()
        .unwrap()
        .contains("unknown procedure"));
    assert!(got[10]["decode_error"]
        .as_str()
        .unwrap()
        .contains("demo_get_args.key"));
    assert_eq!(got[11]["status"], "VIR_NET_ERROR");
    assert_eq!(got[11]["data_len"], 0);
    assert!(got[11].get("decode_error").is_none(), "{}", got[11]);
    assert!(got[11].get("error").is_none(), "{}", got[11]);
    // offsets account for the carrier bytes
    let end5 = got[5]["offset"].as_u64().unwrap() + got[5]["length"].as_u64().unwrap();
    assert_eq!(got[6]["offset"].as_u64().unwrap(), end5 + 2);
}

#[test]
fn fd_carrier_bytes_must_be_there() {
    let d = dissector();
    let mut with_fds = words(&[3]);
    with_fds.extend(words(&[9]));
    let mut s = packet(4, 4, 4, 0, &with_fds);
    s.extend([0]); // one of three
    let got = lines(&d, &s);
    assert_eq!(got.len(), 1);
    assert!(
        matches!(&got[0], Err(Error::UnexpectedEof { needed: 3, remaining: 1, path }) if path.contains("fd carrier")),
        "{got:?}"
    );
}

#[test]
fn fd_count_over_libvirts_limit_ends_the_stream() {
    // VIR_NET_MESSAGE_NUM_FDS_MAX is 32 (the default when the schema lacks it).
    let d = dissector();
    let mut ok = words(&[32]);
    ok.extend(words(&[9]));
    let mut s = packet(4, 4, 4, 0, &ok);
    s.extend([0; 32]);
    let mut over = words(&[33]);
    over.extend(words(&[9]));
    s.extend(packet(4, 4, 5, 0, &over));
    s.extend([0; 33]);
    let got = lines(&d, &s);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].as_ref().unwrap()["fds"], 32);
    assert!(
        matches!(&got[1], Err(Error::LengthOverLimit { len: 33, max: 32, path }) if path.contains("fd count")),
        "{got:?}"
    );
}

#[test]
fn framing_errors_end_the_stream_with_a_typed_error() {
    let d = dissector();
    let mut s = packet(1, 0, 1, 0, &[]);
    s.extend(words(&[20]));
    let got = lines(&d, &s);
    assert!(got[0].is_ok());
    let e = got[1].as_ref().unwrap_err();
    assert!(
        matches!(e, Error::InvalidValue { path, .. } if path == "packet[1].length"),
        "{e:?}"
    );
    assert_eq!(got.len(), 2);

    // the length word counts itself: up to VIR_NET_MESSAGE_MAX (4096 in the fixture) + 4 is a
    // length (here a truncated packet), one more is not
    let got = lines(&d, &words(&[4100]));
    assert!(
        matches!(got[0], Err(Error::UnexpectedEof { needed: 4100, .. })),
        "{got:?}"
    );
    let got = lines(&d, &words(&[4101]));
    assert!(
        matches!(&got[0], Err(Error::InvalidValue { value, .. }) if value == "4101"),
        "{got:?}"
    );

    // truncated: length word, then a partial packet
    let got = lines(&d, &[0, 0]);
    assert!(
        matches!(got[0], Err(Error::UnexpectedEof { .. })),
        "{got:?}"
    );
    let mut s = packet(1, 0, 1, 0, &[]);
    s.truncate(20);
    let got = lines(&d, &s);
    assert!(
        matches!(
            &got[0],
            Err(Error::UnexpectedEof {
                needed: 28,
                remaining: 20,
                ..
            })
        ),
        "{got:?}"
    );
}

#[test]
fn schema_without_header_is_refused() {
    let schema = Schema::new(vec![parse("x.x", "const A = 1;").unwrap()]).unwrap();
    assert!(Dissector::new(schema).is_err());
}

#[test]
fn padding_policy_reaches_the_bodies() {
    // demo_get_args with "color" padded by non-zero bytes.
    let mut args = text("color");
    args[9..12].copy_from_slice(&[1, 2, 3]);
    args.extend(words(&[0]));
    let s = packet(2, 0, 1, 0, &args);
    let strict = lines(&dissector(), &s);
    let p = strict[0].as_ref().unwrap();
    assert!(p.get("body").is_none(), "{p}");
    let why = p["decode_error"].as_str().unwrap();
    assert!(
        why.contains("non-zero padding") && why.contains("demo_get_args.key"),
        "{why}"
    );
    let lenient =
        dissector().with_options(xdr::DecodeOptions::new().with_padding(xdr::Padding::Lenient));
    let p = lines(&lenient, &s).remove(0).unwrap();
    assert_eq!(p["body"], json!({"key": "color", "flags": 0}), "{p}");
    assert!(p.get("decode_error").is_none(), "{p}");
}
