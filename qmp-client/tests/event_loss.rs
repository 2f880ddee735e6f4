//! Events lost to a full subscriber queue during a wait, against a scripted peer (QEMU cannot be
//! made to flood events on cue): the strict wait (`next_within`, what the helpers' waits use)
//! fails at once with `Error::EventsLost`; the public `recv`/`recv_timeout` report the loss as
//! before. The peer answers `flood` (`{"n": N}`) with N DEVICE_DELETED events for `vd0` and
//! then the return, and `device_del` likewise (N from `flood`'s last call, 3 by default).
#![cfg(unix)]

use serde_json::{json, Value};
use std::time::{Duration, Instant};

const GREETING: &str = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"\"}, \"capabilities\": []}}\n";

/// How long a wait may take to fail on a loss: far below its timeout.
const PROMPT: Duration = Duration::from_secs(2);
const LONG: Duration = Duration::from_secs(30);

/// What the peer writes for one command line.
fn answer(line: &str) -> String {
    let cmd: Value = serde_json::from_str(line).unwrap();
    let n = match cmd["execute"].as_str().unwrap() {
        "flood" => cmd["arguments"]["n"].as_u64().unwrap(),
        "device_del" => 3,
        _ => 0,
    };
    let mut out = String::new();
    for i in 0..n {
        let ev = json!({"event": "DEVICE_DELETED",
            "data": {"device": "vd0", "path": "/machine/peripheral/vd0"},
            "timestamp": {"seconds": 1, "microseconds": i}});
        out += &format!("{ev}\n");
    }
    out += &format!("{}\n", json!({"return": {}, "id": cmd["id"]}));
    out
}

fn assert_lost(e: qmp_client::Error, n: u64, started: Instant) {
    assert!(
        matches!(&e, qmp_client::Error::EventsLost { lost, what } if *lost == n && what.contains("DEVICE_DELETED")),
        "{e:?}"
    );
    assert!(e.to_string().contains("dropped"), "{e}");
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());
}

#[cfg(feature = "async")]
mod asynchronous {
    use super::*;
    use qmp_client::{Client, ConnectOptions, EventFilter, RecvError};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    async fn peer(options: ConnectOptions) -> Client {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            let (r, mut w) = tokio::io::split(theirs);
            w.write_all(GREETING.as_bytes()).await.unwrap();
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if w.write_all(answer(&line).as_bytes()).await.is_err() {
                    break;
                }
            }
        });
        Client::connect_stream(ours, options).await.unwrap()
    }

    #[tokio::test]
    async fn a_wait_fails_at_once_on_lost_events() {
        let c = peer(ConnectOptions::default()).await;
        let filter = EventFilter::name("DEVICE_DELETED").data_eq("/device", "vd0");
        let mut strict = c.subscribe_with_capacity(filter.clone(), 1);
        let mut lenient = c.subscribe_with_capacity(filter.clone(), 1);
        let mut plain = c.subscribe_with_capacity(filter.clone(), 1);
        // Three events for a queue of one: the first is queued, two are dropped.
        c.execute("flood", Some(json!({"n": 3}))).await.unwrap();

        let first = strict.next_within(LONG).await.unwrap();
        assert_eq!(first.timestamp.microseconds, 0);
        let t0 = Instant::now();
        assert_lost(strict.next_within(LONG).await.unwrap_err(), 2, t0);
        // Reported once: the next wait is an ordinary one.
        let e = strict
            .next_within(Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(e, qmp_client::Error::EventTimeout { .. }), "{e:?}");

        // The public subscription API reports overflow as before.
        assert!(plain.recv().await.is_ok());
        assert_eq!(plain.recv().await.unwrap_err(), RecvError::Lagged(2));
        assert!(lenient.recv_timeout(LONG).await.is_ok());
        let e = lenient
            .recv_timeout(Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(e, qmp_client::Error::EventTimeout { .. }), "{e:?}");

        // A loss queued as a marker ahead of newer events (room for the marker, none for the
        // event after it) is reported in its place, at once.
        let mut sub = c.subscribe_with_capacity(filter.clone(), 2);
        c.execute("flood", Some(json!({"n": 3}))).await.unwrap();
        assert!(sub.next_within(LONG).await.is_ok());
        c.execute("flood", Some(json!({"n": 1}))).await.unwrap();
        assert!(sub.next_within(LONG).await.is_ok());
        let t0 = Instant::now();
        assert_lost(sub.next_within(LONG).await.unwrap_err(), 1, t0);
        let t0 = Instant::now();
        assert_lost(sub.next_within(LONG).await.unwrap_err(), 1, t0);
    }

    /// The helpers' waits take the first matching event, which always finds room in their fresh
    /// queue: a flood behind it does not fail them, even with a queue of one.
    #[tokio::test]
    async fn the_awaited_event_comes_before_any_loss() {
        let c = peer(ConnectOptions {
            event_queue: 1,
            ..ConnectOptions::default()
        })
        .await;
        let t0 = Instant::now();
        c.device_del_and_wait("vd0", LONG).await.unwrap();
        assert!(t0.elapsed() < PROMPT);
        let (_, e) = c
            .execute_then_wait_event(
                "flood",
                Some(json!({"n": 5})),
                EventFilter::name("DEVICE_DELETED"),
                LONG,
            )
            .await
            .unwrap();
        assert_eq!(e.timestamp.microseconds, 0);
    }
}

#[cfg(feature = "blocking")]
mod blocking {
    use super::*;
    use qmp_client::blocking::Client;
    use qmp_client::{ConnectOptions, EventFilter, RecvError};
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;

    fn peer(options: ConnectOptions) -> Client {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        std::thread::spawn(move || {
            theirs.write_all(GREETING.as_bytes()).unwrap();
            let r = BufReader::new(theirs.try_clone().unwrap());
            for line in r.lines() {
                let Ok(line) = line else { break };
                if theirs.write_all(answer(&line).as_bytes()).is_err() {
                    break;
                }
            }
        });
        Client::connect_io(ours.try_clone().unwrap(), ours, options).unwrap()
    }

    #[test]
    fn a_wait_fails_at_once_on_lost_events() {
        let c = peer(ConnectOptions::default());
        let filter = EventFilter::name("DEVICE_DELETED").data_eq("/device", "vd0");
        let strict = c.subscribe_with_capacity(filter.clone(), 1);
        let lenient = c.subscribe_with_capacity(filter.clone(), 1);
        let plain = c.subscribe_with_capacity(filter.clone(), 1);
        c.execute("flood", Some(json!({"n": 3}))).unwrap();

        assert_eq!(strict.next_within(LONG).unwrap().timestamp.microseconds, 0);
        let t0 = Instant::now();
        assert_lost(strict.next_within(LONG).unwrap_err(), 2, t0);
        let e = strict.next_within(Duration::from_millis(100)).unwrap_err();
        assert!(matches!(e, qmp_client::Error::EventTimeout { .. }), "{e:?}");

        assert!(plain.recv().is_ok());
        assert_eq!(plain.recv().unwrap_err(), RecvError::Lagged(2));
        assert!(lenient.recv_timeout(LONG).is_ok());
        let e = lenient
            .recv_timeout(Duration::from_millis(100))
            .unwrap_err();
        assert!(matches!(e, qmp_client::Error::EventTimeout { .. }), "{e:?}");

        let sub = c.subscribe_with_capacity(filter, 2);
        c.execute("flood", Some(json!({"n": 3}))).unwrap();
        assert!(sub.next_within(LONG).is_ok());
        c.execute("flood", Some(json!({"n": 1}))).unwrap();
        assert!(sub.next_within(LONG).is_ok());
        let t0 = Instant::now();
        assert_lost(sub.next_within(LONG).unwrap_err(), 1, t0);
        let t0 = Instant::now();
        assert_lost(sub.next_within(LONG).unwrap_err(), 1, t0);
    }

    #[test]
    fn the_awaited_event_comes_before_any_loss() {
        let c = peer(ConnectOptions {
            event_queue: 1,
            ..ConnectOptions::default()
        });
        let t0 = Instant::now();
        c.device_del_and_wait("vd0", LONG).unwrap();
        assert!(t0.elapsed() < PROMPT);
        let (_, e) = c
            .execute_then_wait_event(
                "flood",
                Some(json!({"n": 5})),
                EventFilter::name("DEVICE_DELETED"),
                LONG,
            )
            .unwrap();
        assert_eq!(e.timestamp.microseconds, 0);
    }
}
