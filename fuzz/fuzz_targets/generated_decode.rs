//! Typed decode of every generated libvirt body type through one dispatching entry point,
//! `libvirt_proto::generated::decode_body`. The input picks a program, a procedure, a body kind
//! (args, ret or message) and the body bytes. Must never panic; the dispatcher must know exactly
//! the procedures the program tables list; whatever decodes must be printable with `Debug`, and
//! must encode back (`DecodedBody::encode`) to exactly the body bytes it was decoded from: XDR
//! encodings are canonical, and the default decode options refuse non-zero padding, so no two
//! byte strings decode to the same value.
//!
//! Input layout: `[program selector, procedure hi, procedure lo, body kind, body...]`.
//! - program selector: an index into `generated::PROGRAMS`, or (one value past the end) a
//!   program number nobody defines;
//! - procedure: with the top bit clear, an index into the program's procedure table (so nearly
//!   every input reaches a real type); with it set, the low 15 bits as a raw procedure number
//!   (unknown numbers included);
//! - body kind: `Args`, `Ret` or `Message` (modulo 3).
#![no_main]

use libfuzzer_sys::fuzz_target;
use libvirt_proto::generated::{decode_body, procedure, PROGRAMS};
use libvirt_proto::program::Body;

/// A program number none of libvirt's programs uses.
const UNKNOWN_PROGRAM: u32 = 0x2000_dead;

fuzz_target!(|data: &[u8]| {
    let Some((head, bytes)) = data.split_first_chunk::<4>() else {
        return;
    };
    let [sel, hi, lo, kind] = *head;

    let sel = usize::from(sel) % (PROGRAMS.len() + 1);
    let program = PROGRAMS.get(sel).map_or(UNKNOWN_PROGRAM, |p| p.number);

    let raw = u16::from_be_bytes([hi, lo]);
    let number = match PROGRAMS.get(sel) {
        Some(p) if raw & 0x8000 == 0 && !p.procedures.is_empty() => {
            p.procedures[usize::from(raw) % p.procedures.len()].number
        }
        _ => u32::from(raw & 0x7fff),
    };

    let body = match kind % 3 {
        0 => Body::Args,
        1 => Body::Ret,
        _ => Body::Message,
    };

    let known = procedure(program, number).is_some();
    match decode_body(program, number, body, bytes) {
        None => assert!(
            !known,
            "decode_body does not know {program:#x}/{number}, which the tables list"
        ),
        Some(result) => {
            assert!(
                known,
                "decode_body decodes {program:#x}/{number}, which no table lists"
            );
            match result {
                Ok(value) => {
                    // Walk the whole decoded value.
                    drop(format!("{value:?}"));
                    let again = value.encode().expect("a decoded body encodes");
                    assert!(
                        again == bytes,
                        "{program:#x}/{number} {body:?}: re-encoding differs\n\
                         input:   {bytes:02x?}\nencoded: {again:02x?}\nvalue: {value:?}"
                    );
                }
                Err(e) => drop(e.to_string()),
            }
        }
    }
});
