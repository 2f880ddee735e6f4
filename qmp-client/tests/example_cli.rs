//! The example CLI (`cargo run -q -p qmp-client --example qmp -- SOCKET 'JSON'...`) against a
//! real QEMU: one response line per command, in order, events with `--events`, and clear errors
//! (no panic) for bad arguments.
#![cfg(feature = "async")]

mod common;

use common::{Qemu, MACHINE_NONE};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The example's binary, built (or found fresh) by cargo once per test process: `cargo test`
/// builds examples under hashed names only, so ask cargo for `target/<profile>/examples/qmp`.
fn example() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            let profile_dir = exe.parent().unwrap().parent().unwrap().to_owned();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            build.args(["build", "-q", "-p", "qmp-client", "--example", "qmp"]);
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                build.arg("--release");
            }
            let out = build.output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            profile_dir.join("examples").join("qmp")
        })
        .clone()
}

fn run(args: &[&str]) -> Output {
    Command::new(example()).args(args).output().unwrap()
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn prints_each_response_then_events() {
    let q = Qemu::spawn(MACHINE_NONE);
    let sock = q.qmp.display().to_string();
    let out = run(&[
        &sock,
        r#"{"execute": "query-status"}"#,
        "query-version",
        r#"{"execute": "qom-list", "arguments": {"path": "/no/such"}}"#,
        r#"{"execute": "qom-get", "arguments": {"path": "/machine", "property": "type"}}"#,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A QMP error among the commands: exit status 1, every line still printed.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let l = lines(&out);
    assert_eq!(l.len(), 4, "{l:?}");
    assert!(l[0]["return"]["status"].is_string(), "{}", l[0]);
    assert_eq!(l[1]["return"]["qemu"]["major"], 7, "{}", l[1]);
    assert_eq!(l[2]["error"]["class"], "DeviceNotFound", "{}", l[2]);
    assert_eq!(l[3]["return"], "none-machine", "{}", l[3]);

    // --events: the STOP that `stop` causes, after stop's own response.
    let out = run(&[&sock, "stop", "--events", "0.5"]);
    assert_eq!(out.status.code(), Some(0));
    let l = lines(&out);
    assert_eq!(l.len(), 2, "{l:?}");
    assert_eq!(l[0]["return"], serde_json::json!({}));
    assert_eq!(l[1]["event"], "STOP", "{}", l[1]);
}

#[test]
fn bad_event_seconds_are_clear_errors() {
    for bad in ["-1", "NaN", "inf", "1e300", "soon"] {
        let out = run(&["/nonexistent.sock", "query-status", "--events", bad]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("--events wants"), "{bad}: {stderr}");
        assert!(!stderr.contains("panicked"), "{bad}: {stderr}");
    }
    let out = run(&["/nonexistent.sock", "query-status", "--events"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
}
