//! Shared helpers for the real-peer integration tests.
#![allow(dead_code)]

pub mod daemon;

/// A folder in /var/tmp the daemon's user can use (mode 0777); removed on drop.
pub struct PeerDir(pub std::path::PathBuf);

impl PeerDir {
    pub fn new(tag: &str) -> PeerDir {
        use std::os::unix::fs::PermissionsExt;
        let p = std::path::PathBuf::from(format!("/var/tmp/{}", unique_name(tag)));
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
        PeerDir(p)
    }

    /// `chown -R` `path` to the daemon's user (`libvirt.user` of the endpoints file).
    pub fn chown(&self, path: &std::path::Path) {
        let user = endpoints()["libvirt"]["user"]
            .as_str()
            .unwrap_or("vmwire-peer")
            .to_owned();
        let st = std::process::Command::new("chown")
            .args(["-R", &format!("{user}:")])
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for PeerDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A connection's close reason says keepalive declared the daemon dead after the 2 unanswered
/// PINGs the fault tests configure (`KeepaliveConfig { count: 2, .. }`).
pub fn assert_keepalive_timeout(reason: Option<libvirt_client::libvirt_proto::CloseReason>) {
    assert!(
        matches!(
            reason,
            Some(libvirt_client::libvirt_proto::CloseReason::KeepaliveTimeout { count: 2, .. })
        ),
        "{reason:?}"
    );
}

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

/// Run virsh against `uri`; returns stdout (panics with stderr on failure).
pub fn virsh(uri: &str, args: &[&str]) -> String {
    let bin = endpoints()["virsh"].as_str().unwrap_or("virsh").to_owned();
    let out = std::process::Command::new(bin)
        .arg("-c")
        .arg(uri)
        .args(args)
        .output()
        .expect("run virsh");
    assert!(
        out.status.success(),
        "virsh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A name unique to this process and call.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "vmwire-{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(feature = "async")]
pub mod fault_proxy;
