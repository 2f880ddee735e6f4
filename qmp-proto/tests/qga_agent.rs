//! `qmp_proto::qga::QgaSession` against the real QEMU guest agent (Debian's `qemu-guest-agent`,
//! qemu-ga 7.2), driven only through the session's public API over a std `UnixStream`.
//!
//! Each test runs its own `qemu-ga -m unix-listen` on a socket in a temp dir (killed on drop),
//! with a private state dir, pid file and log, no config file, and every RPC blocked except a
//! few harmless read-only ones, so the agent never touches the host. The binary is found the way
//! the other real-peer tests find QEMU: through the peers' endpoints file (`VMWIRE_PEERS`, key
//! `qemu.ga`, written by `cargo xtask peers start`); peers started before that key existed fall
//! back to `PATH` and `/usr/sbin`. A missing agent is a failure naming the package, never a skip.

use qmp_proto::qga::{QgaOutput, QgaSession};
use qmp_proto::{ErrorClass, QmpError};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long one read may wait for the agent.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

mod common;
use common::qemu_ga::{Agent, ALLOWED};

impl Agent {
    fn connect(&self) -> Conn {
        let stream = UnixStream::connect(&self.socket).expect("connect to qemu-ga");
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        Conn {
            stream,
            session: QgaSession::default(),
            chunk: 4096,
        }
    }
}

/// One connection to the agent and the session driving it.
struct Conn {
    stream: UnixStream,
    session: QgaSession,
    /// Read size: small values feed the session a few bytes at a time.
    chunk: usize,
}

impl Conn {
    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to qemu-ga");
    }

    /// The session's next output, reading from the agent as needed.
    fn next(&mut self) -> QgaOutput {
        let mut buf = vec![0; self.chunk];
        loop {
            if let Some(out) = self.session.poll_output() {
                return out;
            }
            let n = self
                .stream
                .read(&mut buf)
                .unwrap_or_else(|e| panic!("reading from qemu-ga: {e}"));
            assert!(n > 0, "qemu-ga closed the connection");
            self.session.handle_input(&buf[..n]);
        }
    }

    /// Sync with `token`; returns what was discarded on the way. Checks the 0xFF that leads the
    /// request.
    fn sync(&mut self, token: u64) -> Vec<Value> {
        let bytes = self.session.sync(token);
        assert_eq!(bytes[0], 0xFF, "the sync starts with the parser-reset byte");
        assert!(self.session.is_syncing());
        self.send(&bytes);
        let mut discarded = Vec::new();
        loop {
            match self.next() {
                QgaOutput::Synced => break,
                QgaOutput::Discarded(v) => discarded.push(v),
                other => panic!("while syncing: {other:?}"),
            }
        }
        assert!(!self.session.is_syncing());
        discarded
    }

    fn reply(&mut self) -> Result<Value, QmpError> {
        match self.next() {
            QgaOutput::Reply(r) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    fn call(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let bytes = self.session.execute(command, arguments).unwrap();
        self.send(&bytes);
        self.reply()
    }
}

/// qemu-ga 7.2's parser answers the 0xFF byte itself, before the sync's reply, with a
/// GenericError "JSON parse error, stray '...'" (the stray bytes, then U+FFFD for 0xFF).
fn is_stray_byte_error(v: &Value) -> bool {
    v["error"]["class"] == "GenericError"
        && v["error"]["desc"]
            .as_str()
            .is_some_and(|d| d.starts_with("JSON parse error, stray '") && d.contains('\u{FFFD}'))
}

#[test]
fn sync_with_token_then_ping() {
    let agent = Agent::spawn();
    let mut c = agent.connect();
    // The high bit is set: the session sends only the low 63 bits (the agent's id is an int64;
    // it refuses larger ids with a GenericError and never syncs).
    let discarded = c.sync(0xDEAD_BEEF_0123_4567_u64 | 1 << 63);
    assert_eq!(discarded.len(), 1, "{discarded:?}");
    assert!(is_stray_byte_error(&discarded[0]), "{discarded:?}");
    assert_eq!(
        discarded[0]["error"]["desc"],
        "JSON parse error, stray '\u{FFFD}'"
    );
    assert_eq!(c.call("guest-ping", None), Ok(json!({})));
    // A second sync on the same connection works too.
    let discarded = c.sync(7);
    assert!(discarded.iter().all(is_stray_byte_error), "{discarded:?}");
    assert_eq!(c.call("guest-ping", None), Ok(json!({})));
    // guest-sync (without the delimiter) is an ordinary command: it echoes its id.
    assert_eq!(
        c.call("guest-sync", Some(json!({"id": 12345}))),
        Ok(json!(12345))
    );
}

#[test]
fn guest_info_version_and_commands() {
    let agent = Agent::spawn();
    let mut c = agent.connect();
    c.sync(1);
    // Feed the session 7 bytes at a time: the 4 KB guest-info reply arrives in hundreds of pieces.
    c.chunk = 7;
    let info = c.call("guest-info", None).unwrap();
    assert_eq!(info["version"], json!(agent.version()), "{info}");
    let commands = info["supported_commands"].as_array().expect("command list");
    let enabled = |name: &str| {
        commands
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from supported_commands: {info}"))["enabled"]
            .as_bool()
            .unwrap()
    };
    for name in ALLOWED {
        assert!(enabled(name), "{name} should be enabled");
    }
    assert!(!enabled("guest-shutdown"), "guest-shutdown is blocked");
    assert!(!enabled("guest-exec"), "guest-exec is blocked");
    c.chunk = 4096;
    assert_eq!(c.call("guest-ping", None), Ok(json!({})));
}

#[test]
fn unknown_and_blocked_commands_keep_their_error_class() {
    let agent = Agent::spawn();
    let mut c = agent.connect();
    c.sync(2);
    assert_eq!(
        c.call("guest-no-such-command", None),
        Err(QmpError {
            class: ErrorClass::CommandNotFound,
            desc: "The command guest-no-such-command has not been found".into(),
        })
    );
    // A blocked command is CommandNotFound too (qemu-ga 7.2), with its own description.
    assert_eq!(
        c.call("guest-shutdown", None),
        Err(QmpError {
            class: ErrorClass::CommandNotFound,
            desc: "Command guest-shutdown has been disabled".into(),
        })
    );
    // Bad arguments are GenericError.
    let e = c
        .call("guest-get-time", Some(json!({"bogus": 1})))
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::GenericError, "{e:?}");
    assert_eq!(e.desc, "Parameter 'bogus' is unexpected");
    // The session is still in step after the errors.
    assert_eq!(c.call("guest-ping", None), Ok(json!({})));
}

#[test]
fn pipelined_commands_answer_in_order() {
    let agent = Agent::spawn();
    let mut c = agent.connect();
    c.sync(3);
    let mut batch = Vec::new();
    for (cmd, args) in [
        ("guest-ping", None),
        ("guest-get-time", None),
        ("guest-no-such-command", None),
        ("guest-sync", Some(json!({"id": 77}))),
        ("guest-get-host-name", None),
        ("guest-get-osinfo", None),
        ("guest-ping", None),
    ] {
        batch.extend(c.session.execute(cmd, args).unwrap());
    }
    // One write for all seven.
    c.send(&batch);
    assert_eq!(c.reply(), Ok(json!({})));
    let ns = c
        .reply()
        .unwrap()
        .as_i64()
        .expect("guest-get-time is nanoseconds");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let skew = (now.as_nanos() as i128 - ns as i128).abs();
    assert!(skew < 60_000_000_000, "agent time {ns} vs {now:?}");
    assert_eq!(c.reply().unwrap_err().class, ErrorClass::CommandNotFound);
    assert_eq!(c.reply(), Ok(json!(77)));
    let host = c.reply().unwrap();
    let expected = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(host, json!({"host-name": expected.trim()}));
    let os = c.reply().unwrap();
    assert!(os["kernel-release"].is_string(), "{os}");
    assert_eq!(c.reply(), Ok(json!({})));
    assert_eq!(c.session.poll_output(), None);
}

#[test]
fn resync_discards_stale_replies() {
    let agent = Agent::spawn();
    let mut c = agent.connect();
    c.sync(4);
    // Two commands whose replies nobody reads...
    let mut stale = c.session.execute("guest-ping", None).unwrap();
    stale.extend(c.session.execute("guest-info", None).unwrap());
    c.send(&stale);
    // ...wait until the agent has surely answered both, then resync.
    std::thread::sleep(Duration::from_millis(200));
    let discarded = c.sync(5);
    assert_eq!(discarded.len(), 3, "{discarded:?}");
    assert_eq!(discarded[0], json!({"return": {}}));
    assert_eq!(discarded[1]["return"]["version"], json!(agent.version()));
    assert!(is_stray_byte_error(&discarded[2]), "{discarded:?}");
    // The session works after the resync: the next reply is the new command's.
    assert_eq!(c.call("guest-sync", Some(json!({"id": 99}))), Ok(json!(99)));
    assert_eq!(c.call("guest-ping", None), Ok(json!({})));

    // The same without waiting: stale command and sync in one write.
    let mut bytes = c.session.execute("guest-ping", None).unwrap();
    bytes.extend(c.session.sync(6));
    c.send(&bytes);
    let mut discarded = Vec::new();
    loop {
        match c.next() {
            QgaOutput::Synced => break,
            QgaOutput::Discarded(v) => discarded.push(v),
            other => panic!("while syncing: {other:?}"),
        }
    }
    assert_eq!(discarded.len(), 2, "{discarded:?}");
    assert_eq!(discarded[0], json!({"return": {}}));
    assert!(is_stray_byte_error(&discarded[1]), "{discarded:?}");
    assert_eq!(c.call("guest-ping", None), Ok(json!({})));
}

#[test]
fn half_written_garbage_before_sync() {
    let agent = Agent::spawn();
    for (garbage, stray) in [
        // Cut inside a string: the agent's lexer is mid-token when the 0xFF arrives.
        (&b"{\"execute\": \"guest-pi"[..], "\"guest-pi\u{FFFD}"),
        // Cut between members: the lexer is between tokens, the parser mid-object.
        (&b"{\"execute\": \"guest-info\", "[..], "\u{FFFD}"),
        // Nested and unbalanced.
        (
            &b"{\"execute\": \"guest-sync\", \"arguments\": {\"id\": [1, {"[..],
            "\u{FFFD}",
        ),
    ] {
        let mut c = agent.connect();
        c.send(garbage);
        // Give the agent time to swallow the fragment before the 0xFF arrives.
        std::thread::sleep(Duration::from_millis(50));
        let discarded = c.sync(10);
        assert_eq!(discarded.len(), 1, "{discarded:?}");
        assert_eq!(
            discarded[0],
            json!({"error": {
                "class": "GenericError",
                "desc": format!("JSON parse error, stray '{stray}'"),
            }}),
            "after {:?}",
            String::from_utf8_lossy(garbage)
        );
        // The fragment did not swallow the sync, nor does it swallow what follows.
        assert_eq!(c.call("guest-ping", None), Ok(json!({})));
        assert_eq!(c.call("guest-sync", Some(json!({"id": 11}))), Ok(json!(11)));
    }
}

/// qemu-ga does not reset its parser when a client goes away: a fragment one client leaves is
/// the start of what the next client sends, until the 0xFF resets it.
///
/// (The first client leaves no reply unread: qemu-ga 7.2 quits with "error reading channel" when
/// a client that still had replies coming closes and the agent's read fails with ECONNRESET.)
#[test]
fn previous_client_leftovers() {
    let agent = Agent::spawn();
    {
        let mut first = agent.connect();
        first.send(b"{\"execute\": \"guest-pi");
    }
    let mut c = agent.connect();
    let discarded = c.sync(20);
    assert_eq!(
        discarded,
        [json!({"error": {
            "class": "GenericError",
            "desc": "JSON parse error, stray '\"guest-pi\u{FFFD}'",
        }})]
    );
    assert_eq!(c.call("guest-ping", None), Ok(json!({})));
    let info = c.call("guest-info", None).unwrap();
    assert_eq!(info["version"], json!(agent.version()));
}

/// The agent keeps its state in the private temp dir (`-t`), not in /var/run.
#[test]
fn agent_state_stays_in_its_temp_dir() {
    let agent = Agent::spawn();
    let dir: &Path = agent.dir.path();
    assert!(agent.socket.starts_with(dir));
    let mut c = agent.connect();
    c.sync(30);
    assert_eq!(c.call("guest-ping", None), Ok(json!({})));
    assert!(
        dir.join("qga.state").is_file(),
        "no qga.state in {}",
        dir.display()
    );
}
