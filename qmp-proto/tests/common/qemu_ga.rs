//! A real QEMU guest agent for tests (shared by qmp-proto's `tests/qga_agent.rs` and, through
//! `#[path]`, qmp-client's `tests/qga_client.rs`).
//!
//! Each test runs its own `qemu-ga -m unix-listen` on a socket in a temp dir (killed on drop),
//! with a private state dir, pid file and log, no config file, and every RPC blocked except a few
//! harmless read-only ones, so the agent never touches the host. The binary comes from the peers'
//! endpoints file (`VMWIRE_PEERS`, key `qemu.ga`, written by `cargo xtask peers start`), else
//! `PATH` and the sbin folders; a missing agent is a failure naming the package, never a skip.

#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The only RPCs the agent serves; all others are blocked with `-b`.
pub const ALLOWED: &[&str] = &[
    "guest-sync-delimited",
    "guest-sync",
    "guest-ping",
    "guest-info",
    "guest-get-time",
    "guest-get-osinfo",
    "guest-get-host-name",
];

const MISSING: &str = "qemu-ga not found (Debian package qemu-guest-agent); \
     run `cargo xtask peers install` (as root) and `cargo xtask peers start`";

fn endpoints_path() -> String {
    std::env::var("VMWIRE_PEERS")
        .unwrap_or_else(|_| "/var/tmp/vmwire-peers/endpoints.json".to_owned())
}

/// The qemu-ga binary: the endpoints file's `qemu.ga`, else the first `qemu-ga` on `PATH` or in
/// the sbin folders.
fn agent_binary() -> PathBuf {
    let path = endpoints_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read peers endpoints {path}: {e}; run `cargo xtask peers start`")
    });
    let endpoints: Value = serde_json::from_str(&text).expect("endpoints file is JSON");
    if let Some(p) = endpoints["qemu"]["ga"].as_str() {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "{MISSING} ({} is gone)", p.display());
        return p;
    }
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join("qemu-ga"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{MISSING}"))
}

/// A real qemu-ga this test started; killed on drop.
pub struct Agent {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub binary: PathBuf,
}

impl Agent {
    pub fn spawn() -> Self {
        let binary = agent_binary();
        // Block everything the agent knows except ALLOWED (7.2 has no allow list).
        let all = Command::new(&binary)
            .args(["-b", "help"])
            .output()
            .unwrap_or_else(|e| panic!("running {} -b help: {e}", binary.display()));
        let known = String::from_utf8(all.stdout).expect("RPC names are UTF-8");
        let known: Vec<&str> = known.split_whitespace().collect();
        for rpc in ALLOWED {
            assert!(known.contains(rpc), "qemu-ga lacks {rpc}: {known:?}");
        }
        let blocked: Vec<&str> = known
            .iter()
            .copied()
            .filter(|r| !ALLOWED.contains(r))
            .collect();
        assert!(
            blocked.contains(&"guest-shutdown") && blocked.contains(&"guest-exec"),
            "unexpected RPC list from qemu-ga -b help: {known:?}"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("qga.sock");
        let child = Command::new(&binary)
            .args(["-m", "unix-listen", "-p"])
            .arg(&socket)
            .arg("-t")
            .arg(dir.path())
            .arg("-f")
            .arg(dir.path().join("qga.pid"))
            .arg("-l")
            .arg(dir.path().join("qga.log"))
            .arg("-b")
            .arg(blocked.join(","))
            // No /etc/qemu/qemu-ga.conf: a file that does not exist.
            .env("QGA_CONF", dir.path().join("no-such-qemu-ga.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", binary.display()));
        let mut agent = Agent {
            child,
            dir,
            socket,
            binary,
        };
        let start = Instant::now();
        while !agent.socket.exists() {
            if let Some(status) = agent.child.try_wait().unwrap() {
                panic!(
                    "qemu-ga exited ({status}) before listening: {}",
                    agent.log()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "qemu-ga made no socket within 10 s: {}",
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        agent
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("qga.log")).unwrap_or_default()
    }

    /// The version `qemu-ga --version` prints ("7.2.22").
    pub fn version(&self) -> String {
        let out = Command::new(&self.binary)
            .arg("--version")
            .output()
            .expect("qemu-ga --version");
        let text = String::from_utf8(out.stdout).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("QEMU Guest Agent "))
            .unwrap_or_else(|| panic!("odd qemu-ga --version output: {text}"))
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
