//! Shared helpers for the real-peer integration tests.
#![allow(dead_code)]

/// The endpoints file written by `cargo xtask peers start`.
pub fn endpoints() -> serde_json::Value {
    let path = std::env::var("VMWIRE_PEERS")
        .unwrap_or_else(|_| "/var/tmp/vmwire-peers/endpoints.json".to_owned());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read peers endpoints {path}: {e}; run `cargo xtask peers start`")
    });
    serde_json::from_str(&text).expect("endpoints file is JSON")
}

/// `libvirt.uris.<key>` (test_unix, test_tcp, qemu_unix, qemu_tcp).
pub fn uri(key: &str) -> String {
    endpoints()["libvirt"]["uris"][key]
        .as_str()
        .unwrap_or_else(|| panic!("endpoints file lacks libvirt.uris.{key}"))
        .to_owned()
}
