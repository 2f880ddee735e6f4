//! The blocking (std-only) client against real QEMU processes this test starts.
#![cfg(feature = "blocking")]

mod common;

use common::{Qemu, MACHINE_NONE, MACHINE_PC};
use qmp_client::blocking::Client;
use qmp_client::{ConnectOptions, Error, EventFilter, Exec};
use serde_json::json;
use std::time::{Duration, Instant};

use common::connect_blocking as connect;

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
    // The commands really overlapped: the whole in-flight window of 8 was used.
    assert_eq!(c.max_in_flight_seen(), 8);
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

/// The premise of the event-before-return tests, read off the wire with the bare sans-IO
/// session: QEMU sends `quit`'s SHUTDOWN before `quit`'s return.
#[test]
fn qemu_sends_quits_shutdown_before_its_return() {
    use qmp_client::qmp_proto::{Output, Session};
    use std::io::{Read, Write};
    let mut q = Qemu::spawn(MACHINE_NONE);
    let start = Instant::now();
    let mut sock = loop {
        match std::os::unix::net::UnixStream::connect(&q.qmp) {
            Ok(s) => break s,
            Err(e) if start.elapsed() > Duration::from_secs(5) => panic!("{e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut s = Session::default();
    let quit = s.execute("quit", None).unwrap();
    let mut order = Vec::new();
    let mut buf = [0u8; 4096];
    while !order.iter().any(|o: &String| o == "return") {
        while let Some(t) = s.poll_transmit() {
            sock.write_all(&t.bytes).unwrap();
        }
        let n = sock.read(&mut buf).unwrap();
        assert!(n > 0, "QEMU closed first: {order:?}");
        s.handle_input(&buf[..n]);
        while let Some(o) = s.poll_output() {
            match o {
                Output::Event(e) => order.push(e.event),
                Output::Reply { id, result } if id == quit => {
                    result.unwrap();
                    order.push("return".into());
                }
                _ => {}
            }
        }
    }
    assert_eq!(order, ["SHUTDOWN", "return"]);
    assert!(q.wait_exit(Duration::from_secs(5)));
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

/// A subscriber whose queue overflowed hears of the loss at its next receive, after the events
/// queued before it, without waiting for a newer event.
#[test]
fn lagged_subscriber_told_at_next_receive() {
    let q = Qemu::spawn(MACHINE_PC);
    let c = connect(&q);
    let tiny = c.subscribe_with_capacity(EventFilter::names(["STOP", "RESUME"]), 3);
    let all = c.subscribe(EventFilter::all());
    for _ in 0..4 {
        c.execute("cont", None).unwrap();
        c.execute("stop", None).unwrap();
    }
    // Every event has been dispatched once the last one reached the unbounded subscriber.
    for _ in 0..8 {
        all.recv_timeout(Duration::from_secs(5)).unwrap();
    }
    let names: Vec<String> = (0..3).map(|_| tiny.recv().unwrap().event).collect();
    assert_eq!(names, ["RESUME", "STOP", "RESUME"]);
    // Should recv wait for a newer event instead, one comes after 3 s so the test fails
    // rather than hangs.
    let (done, watchdog) = std::sync::mpsc::channel::<()>();
    let c2 = c.clone();
    let unstick = std::thread::spawn(move || {
        if watchdog.recv_timeout(Duration::from_secs(3)).is_err() {
            c2.execute("cont", None).unwrap();
        }
    });
    let t = Instant::now();
    let lagged = tiny.recv();
    let took = t.elapsed();
    done.send(()).unwrap();
    unstick.join().unwrap();
    assert_eq!(lagged, Err(qmp_client::RecvError::Lagged(5)));
    assert!(took < Duration::from_secs(1), "{took:?}");
    c.execute("cont", None).unwrap();
    assert_eq!(tiny.recv().unwrap().event, "RESUME");
}
