//! Faults (unix and tcp): a daemon killed mid-call, a daemon that stops answering (keepalive), per-call
//! timeouts, 10 000 concurrent calls on one connection, an event subscriber that never reads.
//! The kill/stop tests run their own private libvirtd (tests/common/daemon.rs).
#![cfg(all(feature = "async", feature = "blocking"))]

mod common;

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use libvirt_client::events::{EventItem, Subscription};
use libvirt_client::libvirt_proto::KeepaliveConfig;
use libvirt_client::{Client, ClientOptions};

use common::daemon::PrivateDaemon;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_killed_mid_call_fails_every_pending_call_within_1s() {
    let d = PrivateDaemon::start();
    // One client per transport, both with calls pending and a subscription when it dies.
    let mut clients = Vec::new();
    for uri in [d.test_unix(), d.test_tcp()] {
        let c = Client::connect_with(&uri, ClientOptions::default().keepalive(None))
            .await
            .unwrap();
        assert_eq!(c.version().await.unwrap().to_string(), "0.0.2");
        let ev = c.subscribe(Subscription::domain(None)).await.unwrap();
        clients.push((uri, c, ev));
    }
    // Freeze the daemon so calls are surely pending, then kill it.
    d.signal("STOP");
    let mut calls = Vec::new();
    for (_, c, _) in &clients {
        calls.extend((0..100).map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.version().await })
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    for (uri, c, _) in &clients {
        assert_eq!(c.pending_calls(), 100, "{uri}");
    }
    let t0 = Instant::now();
    d.signal("KILL");
    for r in join_all(calls).await {
        let e = r.unwrap().unwrap_err();
        assert!(e.is_closed(), "{e}");
    }
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    for (uri, c, mut ev) in clients {
        // The subscriber sees the end too.
        match tokio::time::timeout(Duration::from_secs(1), ev.next())
            .await
            .unwrap()
        {
            Some(Ok(EventItem::Closed(_))) => {}
            other => panic!("{uri}: {other:?}"),
        }
        assert!(ev.next().await.is_none(), "{uri}");
        // New calls fail at once.
        assert!(c.version().await.unwrap_err().is_closed(), "{uri}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_daemon_keepalive_declares_it_dead_and_calls_time_out() {
    let d = PrivateDaemon::start();
    let interval = Duration::from_millis(200);
    let opts = ClientOptions::default().keepalive(Some(KeepaliveConfig { interval, count: 2 }));
    let unix = Client::connect_with(&d.test_unix(), opts.clone())
        .await
        .unwrap();
    let tcp = Client::connect_with(&d.test_tcp(), opts).await.unwrap();
    assert!(unix.features().keepalive);
    // Idle through several intervals while the daemon answers PINGs: stays open.
    tokio::time::sleep(interval * 5).await;
    assert!(unix.is_open() && tcp.is_open());
    assert!(unix.stats().pings_sent >= 2, "{:?}", unix.stats());

    d.signal("STOP");
    // A per-call timeout fires while the daemon is silent.
    let e = unix
        .call_with_timeout::<libvirt_client::libvirt_proto::generated::remote::procs::ConnectGetVersion>(
            &(),
            Some(Duration::from_millis(100)),
        )
        .await
        .unwrap_err();
    assert!(e.is_timeout(), "{e}");
    let pending = tokio::spawn({
        let tcp = tcp.clone();
        async move { tcp.version().await }
    });
    let t0 = Instant::now();
    while unix.is_open() || tcp.is_open() {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "keepalive did not fire"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for c in [&unix, &tcp] {
        common::assert_keepalive_timeout(c.close_reason());
    }
    assert!(pending.await.unwrap().unwrap_err().is_closed());
    d.signal("CONT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_calls_nothing_lost() {
    for transport in ["test_unix", "test_tcp"] {
        let c = Client::connect(&common::uri(transport)).await.unwrap();
        let t0 = Instant::now();
        let calls = (0..10_000).map(|_| c.version());
        let results = join_all(calls).await;
        let ok = results
            .iter()
            .filter(|r| r.as_ref().is_ok_and(|v| v.to_string() == "0.0.2"))
            .count();
        assert_eq!(
            ok,
            10_000,
            "{transport}: {:?}",
            results.iter().find(|r| r.is_err())
        );
        eprintln!("{transport}: 10 000 pipelined calls in {:?}", t0.elapsed());
        assert_eq!(c.pending_calls(), 0);
        let st = c.stats();
        assert!(st.packets_received >= 10_000, "{transport}: {st:?}");
        c.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_that_never_reads_does_not_block_calls() {
    let uri = common::uri("test_tcp");
    let c = Client::connect_with(&uri, ClientOptions::default().event_capacity(4))
        .await
        .unwrap();
    let mut idle = c.subscribe(Subscription::domain(None)).await.unwrap();
    let name = common::unique_name("lag");
    let xml = format!(
        "<domain type='test'><name>{name}</name><memory>65536</memory>\
         <os><type>hvm</type></os></domain>"
    );
    // 20 define/undefine pairs = 40 events into a queue of 4, with calls in between.
    let t0 = Instant::now();
    for _ in 0..20 {
        let d = c.define_xml(&xml).await.unwrap();
        c.undefine(&d, Default::default()).await.unwrap();
        c.version().await.unwrap();
    }
    assert!(t0.elapsed() < Duration::from_secs(10));
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Now read: the overflow is reported, then the 4 oldest events.
    let mut lagged = 0;
    let mut events = 0;
    while let Ok(Some(item)) = tokio::time::timeout(Duration::from_millis(300), idle.next()).await {
        match item.unwrap() {
            EventItem::Lagged(n) => lagged += n,
            EventItem::Event(_) => events += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(events, 4);
    assert!(lagged >= 36, "lagged {lagged}");
    // Let the deregistrations be answered before the connection goes: the runtime ends with
    // the test, and libvirtd 9.0 can crash when a client leaves mid-(de)registration.
    drop(idle);
    c.close().await.unwrap();
}

#[cfg(feature = "blocking")]
#[test]
fn blocking_daemon_killed_mid_call() {
    let d = PrivateDaemon::start();
    let c = libvirt_client::blocking::Client::connect_with(
        &d.test_unix(),
        ClientOptions::default().keepalive(None),
    )
    .unwrap();
    d.signal("STOP");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let c = c.clone();
            std::thread::spawn(move || c.version())
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    d.signal("KILL");
    for h in handles {
        assert!(h.join().unwrap().unwrap_err().is_closed());
    }
    assert!(t0.elapsed() < Duration::from_secs(1));
}

/// A daemon restart as a long-lived user meets it: the old connection dies, the wrapper's next
/// run() connects to the new daemon (async and blocking).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_wrappers_survive_a_daemon_restart() {
    use libvirt_client::reconnect::{BlockingReconnecting, Reconnecting};
    let mut d = PrivateDaemon::start();
    let r = Reconnecting::new(d.test_tcp(), ClientOptions::default());
    let b = std::sync::Arc::new(BlockingReconnecting::new(
        d.test_unix(),
        ClientOptions::default(),
    ));
    let c1 = r.client().await.unwrap();
    assert_eq!(c1.version().await.unwrap().to_string(), "0.0.2");
    let b1 = {
        let b = b.clone();
        tokio::task::spawn_blocking(move || b.client().unwrap())
            .await
            .unwrap()
    };
    let pid = d.pid();
    d.restart();
    assert_ne!(d.pid(), pid);
    let t0 = Instant::now();
    while c1.is_open() || b1.is_open() {
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "old connections stay open"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let v = r
        .run(
            Duration::from_millis(10),
            |c| async move { c.version().await },
        )
        .await
        .unwrap();
    assert_eq!(v.to_string(), "0.0.2");
    assert_eq!(r.reconnects(), 1);
    let b2 = b.clone();
    let v = tokio::task::spawn_blocking(move || b2.run(Duration::from_millis(10), |c| c.version()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.to_string(), "0.0.2");
    assert_eq!(b.reconnects(), 1);
    r.client().await.unwrap().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_wrapper_replaces_a_closed_connection() {
    use libvirt_client::reconnect::Reconnecting;
    let d = PrivateDaemon::start();
    let r = Reconnecting::new(d.test_unix(), ClientOptions::default());
    let c1 = r.client().await.unwrap();
    assert_eq!(c1.version().await.unwrap().to_string(), "0.0.2");
    // The connection closes (here: locally); run() gets a fresh one for the next operation.
    c1.close().await.unwrap();
    let v = r
        .run(
            Duration::from_millis(10),
            |c| async move { c.version().await },
        )
        .await
        .unwrap();
    assert_eq!(v.to_string(), "0.0.2");
    assert_eq!(r.reconnects(), 1);
    // The daemon dies: the old connection fails closed, reconnecting fails with a typed
    // connect error (no hang).
    let c2 = r.client().await.unwrap();
    drop(d);
    let t0 = Instant::now();
    while c2.is_open() {
        assert!(t0.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let e = r.client().await.unwrap_err();
    assert!(
        matches!(e, libvirt_client::Error::ConnectUnix { .. }),
        "{e}"
    );
}
