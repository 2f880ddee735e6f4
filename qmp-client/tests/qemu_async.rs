//! The async client against real QEMU processes this test starts.
#![cfg(feature = "async")]

mod common;

use common::{Qemu, MACHINE_NONE, MACHINE_PC};
use qmp_client::{Client, ConnectOptions, Error, EventFilter, Exec};
use qmp_proto::ErrorClass;
use serde_json::json;
use std::time::{Duration, Instant};

/// Connect, retrying while QEMU has bound its socket but not listened on it yet.
use common::connect;

#[tokio::test]
async fn negotiates_and_answers() {
    let q = Qemu::spawn(MACHINE_NONE);
    let c = connect(&q).await;
    assert!(c.greeting().version.qemu.major >= 7);
    assert!(c.greeting().offers_oob());
    let v = c.execute("query-version", None).await.unwrap();
    assert_eq!(v["qemu"]["major"], c.greeting().version.qemu.major);
}

#[tokio::test]
async fn oob_is_negotiated_on_request() {
    let q = Qemu::spawn(MACHINE_NONE);
    let mut o = ConnectOptions::default();
    o.session.want_oob = true;
    let _ = connect(&q).await; // waits until QEMU listens; dropped at once
    let c = Client::connect_unix(&q.qmp, o).await.unwrap();
    assert!(c.oob_enabled());
    // An in-band-only command is refused as exec-oob; `migrate-pause` allows oob and runs (and
    // refuses, as no postcopy migration is going on).
    let r = c
        .execute_with(
            "query-status",
            None,
            Exec {
                oob: true,
                ..Exec::default()
            },
        )
        .await;
    let e = r.unwrap_err();
    assert!(e.to_string().contains("OOB"), "{e}");
    let r = c
        .execute_with(
            "migrate-pause",
            None,
            Exec {
                oob: true,
                ..Exec::default()
            },
        )
        .await;
    let e = r.unwrap_err();
    assert!(e.to_string().contains("postcopy"), "{e}");
}

/// 50 commands from 50 tasks at once: each reply is the one for its own command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_pipelined_commands_matched_by_id() {
    let q = Qemu::spawn(MACHINE_NONE);
    let c = connect(&q).await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..50 {
        let c = c.clone();
        set.spawn(async move {
            if i % 2 == 0 {
                let path = format!("/no-such-object-{i}");
                let e = c
                    .execute("qom-list", Some(json!({"path": path})))
                    .await
                    .unwrap_err();
                let Error::Qmp { error, .. } = e else {
                    panic!("{e:?}")
                };
                assert!(error.desc.contains(&path), "{i}: {}", error.desc);
            } else {
                let v = c
                    .execute(
                        "qom-get",
                        Some(json!({"path": "/machine", "property": "type"})),
                    )
                    .await;
                assert_eq!(v.unwrap(), json!("none-machine"), "{i}");
            }
            i
        });
    }
    let mut done = 0;
    while let Some(r) = set.join_next().await {
        r.unwrap();
        done += 1;
    }
    assert_eq!(done, 50);
    // The commands really overlapped: the whole in-flight window of 8 was used.
    assert_eq!(c.max_in_flight_seen(), 8);
}

#[tokio::test]
async fn schema_in_one_reply() {
    let q = Qemu::spawn(MACHINE_NONE);
    let c = connect(&q).await;
    let schema = c.execute("query-qmp-schema", None).await.unwrap();
    let entries = schema.as_array().unwrap();
    assert!(entries.len() > 1000, "{}", entries.len());
    assert!(serde_json::to_vec(&schema).unwrap().len() > 150_000);
    let commands = entries
        .iter()
        .filter(|e| e["meta-type"] == "command")
        .count();
    assert!(commands > 200, "{commands}");
}

#[tokio::test]
async fn error_classes() {
    let q = Qemu::spawn(MACHINE_PC);
    let c = connect(&q).await;
    let class = |r: Result<serde_json::Value, Error>| r.unwrap_err().qmp_class().cloned();
    assert_eq!(
        class(c.execute("no-such-command", None).await),
        Some(ErrorClass::CommandNotFound)
    );
    assert_eq!(
        class(c.execute("device_del", Some(json!({"id": "nope"}))).await),
        Some(ErrorClass::DeviceNotFound)
    );
    assert_eq!(
        class(
            c.execute(
                "blockdev-add",
                Some(json!({"driver": "nope", "node-name": "x"}))
            )
            .await
        ),
        Some(ErrorClass::GenericError)
    );
    // The connection stays usable after errors.
    let s = c.execute("query-status", None).await.unwrap();
    assert_eq!(s["status"], "prelaunch");
}

/// Commands cancelled while QEMU holds them (the process is stopped) are abandoned; when QEMU
/// resumes, their late replies are dropped and later commands still get their own replies.
#[tokio::test]
async fn cancellation_mid_flight_keeps_stream_in_step() {
    let q = Qemu::spawn(MACHINE_NONE);
    let c = connect(&q).await;
    q.signal("-STOP");
    let mut handles = Vec::new();
    for i in 0..12 {
        let c = c.clone();
        handles.push(tokio::spawn(async move {
            let path = format!("/gone-{i}");
            c.execute_with(
                "qom-list",
                Some(json!({"path": path})),
                Exec::timeout(Duration::from_millis(300)),
            )
            .await
        }));
    }
    for h in handles {
        assert!(matches!(h.await.unwrap(), Err(Error::Timeout { .. })));
    }
    q.signal("-CONT");
    for i in 0..20 {
        let path = format!("/after-{i}");
        let e = c
            .execute("qom-list", Some(json!({"path": path})))
            .await
            .unwrap_err();
        let Error::Qmp { error, .. } = e else {
            panic!("{e:?}")
        };
        assert!(
            error.desc.contains(&path),
            "reply for another command: {}",
            error.desc
        );
    }
}

/// QEMU dies with 8 commands in flight and more queued: all fail promptly with `Closed`.
#[tokio::test]
async fn qemu_killed_mid_command() {
    let mut q = Qemu::spawn(MACHINE_NONE);
    let c = connect(&q).await;
    let mut sub = c.subscribe(EventFilter::all());
    q.signal("-STOP");
    let mut handles = Vec::new();
    for _ in 0..20 {
        let c = c.clone();
        handles.push(tokio::spawn(async move {
            c.execute("query-status", None).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    q.kill();
    for h in handles {
        let r = tokio::time::timeout(Duration::from_secs(5), h)
            .await
            .expect("no hang")
            .unwrap();
        assert!(
            matches!(r, Err(Error::Closed { command: Some(_) })),
            "{r:?}"
        );
    }
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(sub.recv().await, Err(qmp_client::RecvError::Closed));
    assert!(c.is_closed());
    assert!(matches!(
        c.execute("query-status", None).await,
        Err(Error::Closed { .. })
    ));
}

/// `quit` sends SHUTDOWN before its own return: the wait must still see it.
#[tokio::test]
async fn event_before_return() {
    let mut q = Qemu::spawn(MACHINE_NONE);
    let c = connect(&q).await;
    let (ret, ev) = c
        .execute_then_wait_event(
            "quit",
            None,
            EventFilter::name("SHUTDOWN"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(ret, json!({}));
    assert_eq!(ev.data["guest"], false);
    assert!(ev.timestamp.to_system_time().is_some());
    assert!(q.wait_exit(Duration::from_secs(5)));
}

/// Subscribers each get their own filtered copy; a tiny queue reports its overflow.
#[tokio::test]
async fn events_fan_out_with_overflow_signal() {
    let q = Qemu::spawn(MACHINE_PC);
    let c = connect(&q).await;
    let mut all = c.subscribe(EventFilter::all());
    let mut stops = c.subscribe(EventFilter::name("STOP"));
    let mut tiny = c.subscribe_with_capacity(EventFilter::names(["STOP", "RESUME"]), 2);
    for _ in 0..3 {
        c.execute("cont", None).await.unwrap();
        c.execute("stop", None).await.unwrap();
    }
    let mut names = Vec::new();
    for _ in 0..6 {
        names.push(
            all.recv_timeout(Duration::from_secs(5))
                .await
                .unwrap()
                .event,
        );
    }
    assert_eq!(
        names,
        ["RESUME", "STOP", "RESUME", "STOP", "RESUME", "STOP"]
    );
    for _ in 0..3 {
        assert_eq!(
            stops
                .recv_timeout(Duration::from_secs(5))
                .await
                .unwrap()
                .event,
            "STOP"
        );
    }
    // The tiny subscriber kept the first two events, then lost 4: the loss is reported in
    // order, not hidden.
    macro_rules! next {
        () => {
            tokio::time::timeout(Duration::from_secs(5), tiny.recv())
                .await
                .expect("no hang")
        };
    }
    assert_eq!(next!().unwrap().event, "RESUME");
    assert_eq!(next!().unwrap().event, "STOP");
    // Reported at once: no newer event is needed to reveal the loss.
    let lagged = tokio::time::timeout(Duration::from_millis(100), tiny.recv()).await;
    assert_eq!(lagged, Ok(Err(qmp_client::RecvError::Lagged(4))));
    // Once only; then events flow again.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), tiny.recv())
            .await
            .is_err(),
        "nothing more until a new event"
    );
    c.execute("cont", None).await.unwrap();
    assert_eq!(next!().unwrap().event, "RESUME");
}

/// The connect and greeting timeouts fire against a socket that accepts and says nothing.
#[tokio::test]
async fn greeting_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mute.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let _keep = tokio::spawn(async move {
        let (_s, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    let o = ConnectOptions {
        greeting_timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let r = Client::connect_unix(&path, o).await;
    assert!(matches!(r, Err(Error::GreetingTimeout { .. })), "{r:?}");
    let r = Client::connect_unix(dir.path().join("absent.sock"), ConnectOptions::default()).await;
    assert!(matches!(r, Err(Error::Connect { .. })), "{r:?}");
}

/// A reply over the framing limit fails its own command at once (not at its timeout), is
/// skipped without being stored, and the connection goes on.
#[tokio::test]
async fn oversize_reply_fails_its_command_at_once() {
    let q = Qemu::spawn(MACHINE_NONE);
    let _ = connect(&q).await; // waits until QEMU listens
    let mut o = ConnectOptions::default();
    o.session.framer.max_frame_len = 64 * 1024;
    o.command_timeout = Some(Duration::from_secs(30));
    let c = Client::connect_unix(&q.qmp, o).await.unwrap();
    let before = c.execute("query-status", None);
    let schema = c.execute("query-qmp-schema", None);
    let after = c.execute("query-version", None);
    let t = Instant::now();
    let (before, schema, after) = tokio::join!(before, schema, after);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(before.unwrap()["status"], "running");
    match schema {
        Err(Error::ResponseTooLarge { command, limit }) => {
            assert_eq!(command, "query-qmp-schema");
            assert_eq!(limit, 64 * 1024);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        after.unwrap()["qemu"]["major"],
        c.greeting().version.qemu.major
    );
    // Alone, and again: still in step.
    let r = c.execute("query-qmp-schema", None).await;
    assert!(matches!(r, Err(Error::ResponseTooLarge { .. })), "{r:?}");
    let v = c
        .execute(
            "qom-get",
            Some(json!({"path": "/machine", "property": "type"})),
        )
        .await
        .unwrap();
    assert_eq!(v, "none-machine");
    assert!(!c.is_closed());
}
