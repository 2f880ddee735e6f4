//! Proves the test harness reaches the real QEMU started by `cargo xtask peers start`: its QMP
//! socket greets with a version, and capability negotiation then `query-version` succeed.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

fn endpoints() -> serde_json::Value {
    let path = std::env::var("VMWIRE_PEERS")
        .unwrap_or_else(|_| "/var/tmp/vmwire-peers/endpoints.json".to_owned());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read peers endpoints {path}: {e}; run `cargo xtask peers start`")
    });
    serde_json::from_str(&text).expect("endpoints file is JSON")
}

/// Read lines until one is not an event.
fn next_reply(r: &mut impl BufRead) -> serde_json::Value {
    loop {
        let mut line = String::new();
        assert!(
            r.read_line(&mut line).unwrap() > 0,
            "QEMU closed the socket"
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v.get("event").is_none() {
            return v;
        }
    }
}

#[test]
fn qemu_greets_and_negotiates() {
    let ep = endpoints();
    let path = ep["qemu"]["qmp_socket"].as_str().expect("qemu.qmp_socket");
    let s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);

    let greeting = next_reply(&mut r);
    let major = &greeting["QMP"]["version"]["qemu"]["major"];
    assert!(
        major.as_u64().is_some_and(|m| m >= 7),
        "greeting: {greeting}"
    );

    w.write_all(b"{\"execute\":\"qmp_capabilities\",\"id\":1}\n")
        .unwrap();
    assert_eq!(
        next_reply(&mut r),
        serde_json::json!({"return": {}, "id": 1})
    );

    w.write_all(b"{\"execute\":\"query-version\",\"id\":\"v\"}\n")
        .unwrap();
    let reply = next_reply(&mut r);
    assert_eq!(reply["id"], "v");
    assert_eq!(reply["return"]["qemu"]["major"], *major);
}
