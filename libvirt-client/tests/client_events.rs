//! Event families other than domain events, live: network, storage pool and node device
//! events from the test driver, secret events from `qemu:///session`, the connection-closed
//! subscription against a private daemon; `Subscription::all`, `all_remote` and `events()`;
//! and filtering to one object (a filtered subscription never sees another object's events).
//! The secret and storage-pool helpers (`secrets`, `secret_value`, `set_secret_value`,
//! `storage_pools`) are exercised on the way.
#![cfg(all(feature = "async", feature = "blocking"))]

mod common;

use std::time::Duration;

use libvirt_client::events::{EventItem, EventStream, Subscription};
use libvirt_client::libvirt_proto::generated::api::{
    DomainEventID, NetworkEventID, NetworkEventLifecycleType, NodeDeviceEventID,
    NodeDeviceEventLifecycleType, SecretEventID, SecretEventLifecycleType, StoragePoolEventID,
    StoragePoolEventLifecycleType,
};
use libvirt_client::libvirt_proto::CloseReason;
use libvirt_client::{Client, TypedEvent};

use common::daemon::PrivateDaemon;

/// The object name and event of a lifecycle event of the non-domain families.
fn lifecycle(ev: &TypedEvent) -> Option<(&'static str, String, i32)> {
    Some(match ev {
        TypedEvent::NetworkEventLifecycle(m) => ("network", m.net.name.clone(), m.event),
        TypedEvent::StoragePoolEventLifecycle(m) => ("pool", m.pool.name.clone(), m.event),
        TypedEvent::NodeDeviceEventLifecycle(m) => ("nodedev", m.dev.name.clone(), m.event),
        TypedEvent::SecretEventLifecycle(m) => ("secret", uuid(&m.secret.uuid), m.event),
        _ => return None,
    })
}

fn uuid(u: &[u8]) -> String {
    u.iter().map(|b| format!("{b:02x}")).collect()
}

/// Read lifecycle events of `family` until one of `last_name` with event `last` arrived;
/// returns every such event (name, event) seen, in order.
async fn until(
    s: &mut EventStream,
    family: &str,
    last_name: &str,
    last: i32,
) -> Vec<(String, i32)> {
    let mut got = Vec::new();
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), s.next())
            .await
            .unwrap_or_else(|_| panic!("{family} events so far: {got:?}"))
            .expect("stream open")
            .expect("decodes");
        let EventItem::Event(ev) = item else {
            panic!("{item:?} after {got:?}");
        };
        if let Some((f, name, event)) = lifecycle(&ev) {
            if f == family {
                let done = name == last_name && event == last;
                got.push((name, event));
                if done {
                    return got;
                }
            }
        }
    }
}

fn only(got: &[(String, i32)], name: &str) -> Vec<i32> {
    got.iter()
        .filter(|(n, _)| n == name)
        .map(|(_, e)| *e)
        .collect()
}

/// After a define each, B's then A's `life` (start, stop, undefine) of `family`: `only_a`,
/// filtered to A, sees exactly A's `life`; `all` sees both whole lives.
async fn assert_lives(
    only_a: &mut EventStream,
    all: &mut EventStream,
    family: &str,
    (a, b): (&str, &str),
    defined: i32,
    life: [i32; 3],
) {
    let got = until(only_a, family, a, life[2]).await;
    assert_eq!(
        got,
        life.iter().map(|e| (a.to_owned(), *e)).collect::<Vec<_>>(),
        "the filtered subscription saw exactly A's events"
    );
    let got = until(all, family, a, life[2]).await;
    assert_eq!(only(&got, b), [&[defined][..], &life[..]].concat());
    assert_eq!(only(&got, a), [&[defined][..], &life[..]].concat());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_events_all_and_filtered_to_one_network() {
    let c = Client::connect(&common::uri("test_unix")).await.unwrap();
    let (a, b) = (common::unique_name("neta"), common::unique_name("netb"));
    let xml = |n: &str| format!("<network><name>{n}</name></network>");
    // events(): every family of the remote program.
    let mut all = c.events().await.unwrap();
    let net_a = c.network_define_xml(xml(&a)).await.unwrap();
    let net_b = c.network_define_xml(xml(&b)).await.unwrap();
    let mut only_a = c
        .subscribe(Subscription::network(Some(net_a.clone())))
        .await
        .unwrap();
    // libvirtd 9.0 knows the lifecycle id only (METADATA_CHANGE came in 9.8): skipped, not
    // an error.
    let n = only_a.registrations();
    assert!(n >= 1 && n <= NetworkEventID::known().len(), "{n}");
    // B's whole life first, then A's: in-order delivery means a leak of B's events into the
    // filtered stream would show before A's last event.
    for n in [&net_b, &net_a] {
        c.network_create(n.clone()).await.unwrap();
        c.network_destroy(n.clone()).await.unwrap();
        c.network_undefine(n.clone()).await.unwrap();
    }
    assert_lives(
        &mut only_a,
        &mut all,
        "network",
        (&a, &b),
        NetworkEventLifecycleType::DEFINED.0,
        [
            NetworkEventLifecycleType::STARTED.0,
            NetworkEventLifecycleType::STOPPED.0,
            NetworkEventLifecycleType::UNDEFINED.0,
        ],
    )
    .await;
    // Nothing more for the filtered one.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), only_a.next())
            .await
            .is_err()
    );
    // Let the deregistrations be answered before the connection goes: the runtime ends with
    // the test, and libvirtd 9.0 can crash when a client leaves mid-(de)registration.
    drop((all, only_a));
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_pool_events_all_and_filtered_to_one_pool() {
    let c = Client::connect(&common::uri("test_tcp")).await.unwrap();
    let (a, b) = (common::unique_name("poola"), common::unique_name("poolb"));
    let xml = |n: &str| {
        format!(
            "<pool type='dir'><name>{n}</name><target><path>/var/tmp/{n}</path></target></pool>"
        )
    };
    let mut all = c.subscribe(Subscription::storage_pool(None)).await.unwrap();
    assert_eq!(all.registrations(), StoragePoolEventID::known().len());
    let pa = c
        .storage_pool_define_xml(xml(&a), Default::default())
        .await
        .unwrap();
    let pb = c
        .storage_pool_define_xml(xml(&b), Default::default())
        .await
        .unwrap();
    // storage_pools() sees both.
    let names: Vec<String> = c
        .storage_pools()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert!(names.contains(&a) && names.contains(&b), "{names:?}");
    let mut only_a = c
        .subscribe(Subscription::storage_pool(Some(pa.clone())))
        .await
        .unwrap();
    for p in [&pb, &pa] {
        c.storage_pool_create(p.clone(), Default::default())
            .await
            .unwrap();
        c.storage_pool_destroy(p.clone()).await.unwrap();
        c.storage_pool_undefine(p.clone()).await.unwrap();
    }
    assert_lives(
        &mut only_a,
        &mut all,
        "pool",
        (&a, &b),
        StoragePoolEventLifecycleType::DEFINED.0,
        [
            StoragePoolEventLifecycleType::STARTED.0,
            StoragePoolEventLifecycleType::STOPPED.0,
            StoragePoolEventLifecycleType::UNDEFINED.0,
        ],
    )
    .await;
    let names: Vec<String> = c
        .storage_pools()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert!(!names.contains(&a) && !names.contains(&b), "{names:?}");
    // Let the deregistrations be answered before the connection goes: the runtime ends with
    // the test, and libvirtd 9.0 can crash when a client leaves mid-(de)registration.
    drop((all, only_a));
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_device_events_from_a_created_vhba() {
    let c = Client::connect(&common::uri("test_unix")).await.unwrap();
    let mut all = c.subscribe(Subscription::node_device(None)).await.unwrap();
    assert_eq!(all.registrations(), NodeDeviceEventID::known().len());
    // Filtered to another device: must see nothing of the vHBA.
    let computer = c
        .node_device_lookup_by_name("computer".into())
        .await
        .unwrap();
    let mut other = c
        .subscribe(Subscription::node_device(Some(computer)))
        .await
        .unwrap();
    let wwpn = format!("10000000{:08x}", std::process::id());
    let xml = format!(
        "<device><parent>scsi_host1</parent><capability type='scsi_host'>\
         <capability type='fc_host'><wwnn>2000000012345678</wwnn><wwpn>{wwpn}</wwpn>\
         </capability></capability></device>"
    );
    let dev = c
        .node_device_create_xml(xml, Default::default())
        .await
        .unwrap();
    c.node_device_destroy(dev.name.clone()).await.unwrap();
    let got = until(
        &mut all,
        "nodedev",
        &dev.name,
        NodeDeviceEventLifecycleType::DELETED.0,
    )
    .await;
    assert_eq!(
        only(&got, &dev.name),
        [
            NodeDeviceEventLifecycleType::CREATED.0,
            NodeDeviceEventLifecycleType::DELETED.0
        ]
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), other.next())
            .await
            .is_err(),
        "a subscription filtered to 'computer' saw the vHBA's events"
    );
    // Let the deregistrations be answered before the connection goes: the runtime ends with
    // the test, and libvirtd 9.0 can crash when a client leaves mid-(de)registration.
    drop((all, other));
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_events_and_helpers_on_qemu_session() {
    let c = Client::connect(&common::uri("qemu_unix")).await.unwrap();
    // Subscription::all (QEMU monitor events included) registers every family.
    let mut all = c.subscribe(Subscription::all()).await.unwrap();
    assert!(
        all.registrations()
            >= DomainEventID::known().len() - 4
                + NetworkEventID::known().len()
                + StoragePoolEventID::known().len()
                + NodeDeviceEventID::known().len()
                + SecretEventID::known().len()
                + 2,
        "{}",
        all.registrations()
    );
    let xml = |n: &str| {
        format!(
            "<secret ephemeral='no' private='no'><usage type='volume'>\
             <volume>/var/tmp/{n}</volume></usage></secret>"
        )
    };
    let (a, b) = (common::unique_name("seca"), common::unique_name("secb"));
    let sa = c
        .secret_define_xml(xml(&a), Default::default())
        .await
        .unwrap();
    let sb = c
        .secret_define_xml(xml(&b), Default::default())
        .await
        .unwrap();
    let (ua, ub) = (uuid(&sa.uuid), uuid(&sb.uuid));
    let mut only_a = c
        .subscribe(Subscription::secret(Some(sa.clone())))
        .await
        .unwrap();
    assert_eq!(only_a.registrations(), SecretEventID::known().len());
    // Helpers: list, set, get.
    let listed: Vec<String> = c
        .secrets()
        .await
        .unwrap()
        .iter()
        .map(|s| uuid(&s.uuid))
        .collect();
    assert!(listed.contains(&ua) && listed.contains(&ub), "{listed:?}");
    c.set_secret_value(&sb, b"value-b").await.unwrap();
    c.set_secret_value(&sa, b"s3cret\0bytes").await.unwrap();
    assert_eq!(c.secret_value(&sa).await.unwrap(), b"s3cret\0bytes");
    assert_eq!(c.secret_value(&sb).await.unwrap(), b"value-b");
    c.secret_undefine(sb.clone()).await.unwrap();
    c.secret_undefine(sa.clone()).await.unwrap();
    let listed: Vec<String> = c
        .secrets()
        .await
        .unwrap()
        .iter()
        .map(|s| uuid(&s.uuid))
        .collect();
    assert!(!listed.contains(&ua) && !listed.contains(&ub), "{listed:?}");

    // The filtered stream: A's value change, then A's undefine; nothing of B.
    let mut got = Vec::new();
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), only_a.next())
            .await
            .unwrap_or_else(|_| panic!("so far {got:?}"))
            .unwrap()
            .unwrap();
        match item {
            EventItem::Event(TypedEvent::SecretEventValueChanged(m)) => {
                got.push((uuid(&m.secret.uuid), "value".to_owned()))
            }
            EventItem::Event(TypedEvent::SecretEventLifecycle(m)) => {
                let done = m.event == SecretEventLifecycleType::UNDEFINED.0;
                got.push((uuid(&m.secret.uuid), format!("life{}", m.event)));
                if done {
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        got,
        [
            (ua.clone(), "value".to_owned()),
            (
                ua.clone(),
                format!("life{}", SecretEventLifecycleType::UNDEFINED.0)
            )
        ]
    );
    // The subscription to all saw both secrets' whole lives.
    let mut seen = Vec::new();
    while !seen.contains(&(ua.clone(), "undefined")) {
        let item = tokio::time::timeout(Duration::from_secs(10), all.next())
            .await
            .unwrap_or_else(|_| panic!("so far {seen:?}"))
            .unwrap()
            .unwrap();
        match item {
            EventItem::Event(TypedEvent::SecretEventValueChanged(m)) => {
                seen.push((uuid(&m.secret.uuid), "value"))
            }
            EventItem::Event(TypedEvent::SecretEventLifecycle(m)) => seen.push((
                uuid(&m.secret.uuid),
                match SecretEventLifecycleType(m.event) {
                    SecretEventLifecycleType::DEFINED => "defined",
                    SecretEventLifecycleType::UNDEFINED => "undefined",
                    _ => "other",
                },
            )),
            _ => {} // other families (guests of other tests)
        }
    }
    let of = |u: &str| {
        seen.iter()
            .filter(|(x, _)| x == u)
            .map(|(_, e)| *e)
            .collect::<Vec<_>>()
    };
    assert_eq!(of(&ub), ["defined", "value", "undefined"]);
    assert_eq!(of(&ua), ["defined", "value", "undefined"]);
    // Let the deregistrations be answered before the connection goes: the runtime ends with
    // the test, and libvirtd 9.0 can crash when a client leaves mid-(de)registration.
    drop((all, only_a));
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_closed_subscription_sees_the_daemon_go() {
    let d = PrivateDaemon::start();
    let c = Client::connect(&d.test_unix()).await.unwrap();
    assert!(c.features().close_callback);
    let mut closed = c
        .subscribe(Subscription::connection_closed())
        .await
        .unwrap();
    assert_eq!(closed.registrations(), 1);
    // all_remote includes it as well.
    let mut every = c.subscribe(Subscription::all_remote()).await.unwrap();
    assert!(every.registrations() > 1);
    // Quiet while the daemon lives.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), closed.next())
            .await
            .is_err()
    );
    let t0 = std::time::Instant::now();
    d.signal("TERM");
    for s in [&mut closed, &mut every] {
        let item = tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .expect("closed promptly");
        assert!(
            matches!(item, Some(Ok(EventItem::Closed(CloseReason::Eof)))),
            "{item:?}"
        );
        assert!(s.next().await.is_none());
    }
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(!c.is_open());
}

#[cfg(feature = "blocking")]
#[test]
fn blocking_events_sees_network_events() {
    let c = libvirt_client::blocking::Client::connect(&common::uri("test_tcp")).unwrap();
    let mut ev = c.events().unwrap();
    let name = common::unique_name("bnet");
    let net = c
        .network_define_xml(format!("<network><name>{name}</name></network>"))
        .unwrap();
    c.network_undefine(net).unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        match ev.next_timeout(Duration::from_secs(10)) {
            Some(Some(Ok(EventItem::Event(TypedEvent::NetworkEventLifecycle(m)))))
                if m.net.name == name =>
            {
                got.push(m.event)
            }
            Some(Some(Ok(_))) => {}
            other => panic!("{other:?} after {got:?}"),
        }
    }
    assert_eq!(
        got,
        [
            NetworkEventLifecycleType::DEFINED.0,
            NetworkEventLifecycleType::UNDEFINED.0
        ]
    );
}

/// A subscribe abandoned half-way (future dropped, or its registration timed out while the
/// daemon was frozen) leaves nothing registered: once the daemon answers, every registration
/// it accepted is undone, so later changes bring replies only, no events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_subscriptions_are_deregistered() {
    let d = PrivateDaemon::start();
    let opts = libvirt_client::ClientOptions::default()
        .keepalive(None)
        .call_timeout(Some(Duration::from_millis(300)));
    let c = Client::connect_with(&d.test_unix(), opts).await.unwrap();
    d.signal("STOP");
    // Dropped future.
    let dropped = tokio::time::timeout(
        Duration::from_millis(50),
        c.subscribe(Subscription::all_remote()),
    )
    .await;
    assert!(dropped.is_err(), "the frozen daemon cannot have answered");
    // Registration timeout: a typed error.
    let e = c.subscribe(Subscription::domain(None)).await.unwrap_err();
    assert!(e.is_timeout(), "{e}");
    d.signal("CONT");
    // Let the late registration replies arrive and their deregistrations complete.
    let t0 = std::time::Instant::now();
    loop {
        c.version().await.unwrap();
        if c.pending_calls() == 0 && t0.elapsed() > Duration::from_millis(300) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.version().await.unwrap();
    // A define and an undefine (and a version): three replies arrive, no events.
    let s0 = c.stats();
    let name = common::unique_name("quiet");
    let dom = c
        .define_xml(&format!(
            "<domain type='test'><name>{name}</name><memory>65536</memory>\
             <os><type>hvm</type></os></domain>"
        ))
        .await
        .unwrap();
    c.undefine(&dom, Default::default()).await.unwrap();
    c.version().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // (A server PING, answered by a PONG, would be no event: not counted.)
    let s1 = c.stats();
    let events = s1.packets_received - s0.packets_received - (s1.pongs_sent - s0.pongs_sent);
    assert_eq!(events, 3, "{s1:?}");
    // A live subscription on the same connection does see such events (the check above is
    // not vacuous).
    let mut live = c.subscribe(Subscription::domain(None)).await.unwrap();
    let dom = c
        .define_xml(&format!(
            "<domain type='test'><name>{name}</name><memory>65536</memory>\
             <os><type>hvm</type></os></domain>"
        ))
        .await
        .unwrap();
    let item = tokio::time::timeout(Duration::from_secs(5), live.next())
        .await
        .expect("event")
        .unwrap()
        .unwrap();
    assert!(matches!(item, EventItem::Event(_)), "{item:?}");
    c.undefine(&dom, Default::default()).await.unwrap();
}

/// Dropping a subscription and then its client at once: the deregistrations the subscription
/// sent are answered before the connection closes (libvirtd 9.0 can crash when a client goes
/// while its event (de)registrations are being processed), on both clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_subscription_and_client_together_lets_deregistrations_finish() {
    let d = PrivateDaemon::start();
    for _ in 0..10 {
        let c = Client::connect(&d.test_unix()).await.unwrap();
        let s = c.subscribe(Subscription::domain(None)).await.unwrap();
        drop(s);
        drop(c);
    }
    let uri = d.test_unix();
    tokio::task::spawn_blocking(move || {
        for _ in 0..10 {
            let c = libvirt_client::blocking::Client::connect(&uri).unwrap();
            let s = c.subscribe(Subscription::domain(None)).unwrap();
            drop(s);
            drop(c);
        }
    })
    .await
    .unwrap();
    // The daemon is alive and saw every deregistration before its client went away.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = Client::connect(&d.test_unix()).await.unwrap();
    c.version().await.unwrap();
    let log = d.log();
    assert!(!log.contains("not registered"), "{log}");
    assert!(!log.contains("incomplete"), "{log}");
}
