//! proptest round trips (decode(encode(x)) == x) of EVERY struct, enum and union generated from
//! libvirt's `.x` files, one program module at a time (needs the `arbitrary` feature, which
//! `cargo test --all-features` and `cargo xtask ci` enable).
//!
//! Each module's `roundtrip_all` reports how many types it checked; the tests compare that with
//! the number of top-level `struct`/`enum`/`union` definitions in the `.x` file itself (read from
//! `$VMWIRE_LIBVIRT_PROTOCOL`, default `../shared/libvirt-protocol/11.3.0` beside the workspace),
//! so a type the generator forgot to cover fails the test.

use libvirt_proto::generated::{admin, keepalive, lxc, qemu, remote, virnet};
use std::path::PathBuf;

/// Cases per type: enough to reach every union arm and enum member many times over while keeping
/// the ~700 remote types quick.
const CASES: u32 = 32;

fn definitions_in(file: &str) -> usize {
    let dir = match std::env::var_os("VMWIRE_LIBVIRT_PROTOCOL") {
        Some(d) => PathBuf::from(d),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/libvirt-protocol/11.3.0")
        }
    };
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; set VMWIRE_LIBVIRT_PROTOCOL to libvirt's protocol directory",
            path.display()
        )
    });
    text.lines()
        .filter(|l| l.starts_with("struct ") || l.starts_with("enum ") || l.starts_with("union "))
        .count()
}

fn check(result: Result<usize, String>, file: &str) {
    let n = result.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, definitions_in(file), "types of {file} checked");
}

#[test]
fn remote_types_round_trip() {
    check(remote::roundtrip_all(CASES), "remote_protocol.x");
}

#[test]
fn qemu_types_round_trip() {
    check(qemu::roundtrip_all(CASES), "qemu_protocol.x");
}

#[test]
fn lxc_types_round_trip() {
    check(lxc::roundtrip_all(CASES), "lxc_protocol.x");
}

#[test]
fn admin_types_round_trip() {
    check(admin::roundtrip_all(CASES), "admin_protocol.x");
}

#[test]
fn keepalive_types_round_trip() {
    check(keepalive::roundtrip_all(CASES), "virkeepaliveprotocol.x");
}

#[test]
fn virnet_types_round_trip() {
    check(virnet::roundtrip_all(CASES), "virnetprotocol.x");
}
