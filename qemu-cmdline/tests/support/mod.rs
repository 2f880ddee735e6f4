//! Test support: where the real QEMU is, and a tiny blocking QMP exchange (this crate does not
//! depend on qmp-client).

#![allow(dead_code)]

pub mod vhost_user;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// `qemu.binary` and `qemu.img` from the peers' endpoints file.
pub fn qemu() -> (String, String) {
    let path = std::env::var("VMWIRE_PEERS")
        .unwrap_or_else(|_| "/var/tmp/vmwire-peers/endpoints.json".into());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read the peers' endpoints file {path}: {e}; run `cargo xtask peers start`")
    });
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{path} is not JSON ({e}); run `cargo xtask peers start`"));
    let s = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{path} lacks {p}; run `cargo xtask peers start`"))
            .to_owned()
    };
    (s("/qemu/binary"), s("/qemu/img"))
}

/// A negotiated QMP connection.
pub struct Qmp {
    w: UnixStream,
    r: BufReader<UnixStream>,
}

impl Qmp {
    /// Connect, read the greeting, negotiate capabilities.
    pub fn connect(path: &Path) -> Qmp {
        let s = UnixStream::connect(path).expect("connect to QMP");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut q = Qmp {
            w: s.try_clone().expect("clone"),
            r: BufReader::new(s),
        };
        let greeting = q.line();
        assert!(
            greeting.get("QMP").is_some(),
            "not a QMP greeting: {greeting}"
        );
        q.execute("qmp_capabilities", json!({}))
            .expect("qmp_capabilities");
        q
    }

    fn line(&mut self) -> Value {
        let mut l = String::new();
        let n = self.r.read_line(&mut l).expect("read from QMP");
        assert!(n > 0, "QMP closed");
        serde_json::from_str(&l).expect("QMP sent JSON")
    }

    /// Run a command; `Ok(return)` or `Err(error)`; events are skipped.
    pub fn execute(&mut self, cmd: &str, args: Value) -> Result<Value, Value> {
        // one write: QEMU runs a command as soon as its JSON object is complete, so after a
        // `quit` split over several writes (writeln! writes the newline apart) the rest would
        // meet a closed socket (EPIPE)
        let line = format!(
            "{}\n",
            json!({"execute": cmd, "arguments": args, "id": cmd})
        );
        self.w.write_all(line.as_bytes()).expect("write to QMP");
        loop {
            let v = self.line();
            if v.get("id") != Some(&json!(cmd)) {
                continue; // an event
            }
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                return Err(e.clone());
            }
        }
    }

    /// Run a command that must succeed.
    pub fn ok(&mut self, cmd: &str, args: Value) -> Value {
        self.execute(cmd, args.clone())
            .unwrap_or_else(|e| panic!("{cmd} {args}: {e}"))
    }

    /// `qom-get` that must succeed.
    pub fn qom(&mut self, path: &str, prop: &str) -> Value {
        self.ok("qom-get", json!({"path": path, "property": prop}))
    }
}

/// A helper process (a vhost-user backend, ...) killed and reaped when dropped.
pub struct Helper {
    child: std::process::Child,
    what: String,
}

impl Helper {
    /// Spawn `cmd` (stdout and stderr to `log`) and wait until `socket` exists.
    pub fn spawn(mut cmd: std::process::Command, log: &Path, socket: &Path) -> Helper {
        let what = format!("{cmd:?}");
        let out = std::fs::File::create(log).expect("helper log");
        let err = out.try_clone().expect("clone log");
        let child = cmd
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let mut h = Helper { child, what };
        let start = std::time::Instant::now();
        while !socket.exists() {
            if let Ok(Some(status)) = h.child.try_wait() {
                panic!(
                    "{} exited ({status}) before creating {socket:?}: {}",
                    h.what,
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{} did not create {socket:?} in 10 s",
                h.what
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        h
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
