//! The blocking (std-only) client against real QEMU processes this test starts.
#![cfg(feature = "blocking")]

mod common;

use common::{Qemu, MACHINE_NONE};
use qmp_client::blocking::Client;
use qmp_client::{ConnectOptions, Error, EventFilter, Exec};
use serde_json::json;
use std::time::{Duration, Instant};

fn connect(q: &Qemu) -> Client {
    let start = Instant::now();
    loop {
        match Client::connect_unix(&q.qmp, ConnectOptions::default()) {
            Err(Error::Connect { .. }) if start.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            r => return r.expect("connect"),
        }
    }
}

#[test]
fn negotiates_pipelines_and_matches() {
    let q = Qemu::spawn(MACHINE_NONE);
    let c = connect(&q);
    assert!(c.greeting().version.qemu.major >= 7);
    let pending: Vec<_> = (0..50)
        .map(|i| {
            c.submit(
                "qom-list",
                Some(json!({"path": format!("/none-{i}")})),
                Exec::default(),
            )
            .unwrap()
        })
        .collect();
    for (i, p) in pending.into_iter().enumerate() {
        let e = p.wait().unwrap_err();
        assert!(e.to_string().contains(&format!("/none-{i}")), "{e}");
    }
    let schema = c.execute("query-qmp-schema", None).unwrap();
    assert!(schema.as_array().unwrap().len() > 1000);
}

#[test]
fn timeout_cancels_and_stream_stays_in_step() {
    let q = Qemu::spawn(MACHINE_NONE);
    let c = connect(&q);
    q.signal("-STOP");
    let r = c.execute_with(
        "query-status",
        None,
        Exec::timeout(Duration::from_millis(200)),
    );
    assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
    q.signal("-CONT");
    let v = c
        .execute(
            "qom-get",
            Some(json!({"path": "/machine", "property": "type"})),
        )
        .unwrap();
    assert_eq!(v, "none-machine");
}

#[test]
fn killed_qemu_fails_pending_promptly() {
    let mut q = Qemu::spawn(MACHINE_NONE);
    let c = connect(&q);
    q.signal("-STOP");
    let pending: Vec<_> = (0..20)
        .map(|_| c.submit("query-status", None, Exec::default()).unwrap())
        .collect();
    let t = Instant::now();
    q.kill();
    for p in pending {
        assert!(matches!(p.wait(), Err(Error::Closed { .. })));
    }
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn event_before_return() {
    let mut q = Qemu::spawn(MACHINE_NONE);
    let c = connect(&q);
    let (_, ev) = c
        .execute_then_wait_event(
            "quit",
            None,
            EventFilter::name("SHUTDOWN"),
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(ev.event, "SHUTDOWN");
    assert!(q.wait_exit(Duration::from_secs(5)));
}

/// A reply over the framing limit fails its own command at once and the connection goes on.
#[test]
fn oversize_reply_fails_its_command_at_once() {
    let q = Qemu::spawn(MACHINE_NONE);
    let _ = connect(&q);
    let mut o = ConnectOptions::default();
    o.session.framer.max_frame_len = 64 * 1024;
    o.command_timeout = Some(Duration::from_secs(30));
    let c = Client::connect_unix(&q.qmp, o).unwrap();
    let t = Instant::now();
    let schema = c.submit("query-qmp-schema", None, Exec::default()).unwrap();
    let after = c.submit("query-version", None, Exec::default()).unwrap();
    match schema.wait() {
        Err(Error::ResponseTooLarge { command, limit }) => {
            assert_eq!(command, "query-qmp-schema");
            assert_eq!(limit, 64 * 1024);
        }
        other => panic!("{other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(
        after.wait().unwrap()["qemu"]["major"],
        c.greeting().version.qemu.major
    );
    assert_eq!(
        c.execute("query-status", None).unwrap()["status"],
        "running"
    );
}
