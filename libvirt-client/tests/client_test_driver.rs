//! The async and blocking clients against the REAL libvirtd's test driver (test:///default
//! served by the peer daemon), over unix and tcp: open, versions, list, lookup, dominfo,
//! dumpxml (cross-checked against virsh), lifecycle events, call timeouts and abandonment.

mod common;

use std::time::Duration;

use libvirt_client::events::{EventItem, Subscription};
use libvirt_client::libvirt_proto::generated::api::{DomainEventType, DomainState};
use libvirt_client::{Client, TypedEvent};

fn test_domain_xml(name: &str) -> String {
    format!(
        "<domain type='test'><name>{name}</name><memory unit='MiB'>64</memory>\
         <vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_version_list_lookup_dominfo_dumpxml() {
    for key in ["test_unix", "test_tcp"] {
        let uri = common::uri(key);
        let c = Client::connect(&uri).await.unwrap();
        let f = c.features();
        assert!(f.keepalive && f.event_callbacks, "{key}: {f:?}");
        // The test driver reports hypervisor version 2 (virsh: "TEST 0.0.2").
        assert_eq!(c.version().await.unwrap().to_string(), "0.0.2");
        let lib = c.lib_version().await.unwrap();
        assert_eq!(lib.major, 9, "libvirtd 9.x on this machine: {lib}");

        let names: Vec<String> = c
            .domains()
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert!(names.contains(&"test".to_owned()), "{names:?}");
        let virsh_list = common::virsh(&uri, &["list", "--all", "--name"]);
        for n in &names {
            // Other tests may add domains concurrently; every one we saw that still exists
            // must be in virsh's list taken afterwards, and "test" must be.
            if n == "test" {
                assert!(virsh_list.lines().any(|l| l.trim() == n), "{virsh_list}");
            }
        }

        let dom = c.lookup_domain("test").await.unwrap();
        let st = c.domain_state(&dom).await.unwrap();
        assert_eq!(st.state, DomainState::RUNNING);
        let info = c.domain_get_info(dom.clone()).await.unwrap();
        let dominfo = common::virsh(&uri, &["dominfo", "test"]);
        let field = |k: &str| {
            dominfo
                .lines()
                .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_owned()))
                .unwrap_or_else(|| panic!("no {k} in {dominfo}"))
        };
        assert_eq!(field("CPU(s):"), info.nr_virt_cpu.to_string());
        assert_eq!(field("Max memory:"), format!("{} KiB", info.max_mem));
        assert_eq!(field("State:"), "running");

        let xml = c.domain_xml(&dom, Default::default()).await.unwrap();
        assert_eq!(xml.trim(), common::virsh(&uri, &["dumpxml", "test"]).trim());

        // A daemon error is typed.
        let e = c.lookup_domain("no-such-domain-xyz").await.unwrap_err();
        assert_eq!(
            i32::from(e.remote_code().unwrap()),
            42,
            "VIR_ERR_NO_DOMAIN: {e}"
        );
        c.close().await.unwrap();
        assert!(!c.is_open());
        let e = c.version().await.unwrap_err();
        assert!(e.is_closed(), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_events_in_order() {
    for key in ["test_unix", "test_tcp"] {
        let c = Client::connect(&common::uri(key)).await.unwrap();
        let name = common::unique_name("evt");
        let mut all = c.subscribe(Subscription::domain(None)).await.unwrap();
        assert!(all.registrations() >= 20, "{}", all.registrations());
        let dom = c.define_xml(&test_domain_xml(&name)).await.unwrap();
        // A second subscription filtered to this domain only.
        let mut mine = c
            .subscribe(Subscription::domain(Some(dom.clone())))
            .await
            .unwrap();
        c.start(&dom).await.unwrap();
        c.suspend(&dom).await.unwrap();
        c.resume(&dom).await.unwrap();
        c.destroy(&dom).await.unwrap();
        c.undefine(&dom, Default::default()).await.unwrap();

        let want_all = [
            DomainEventType::DEFINED,
            DomainEventType::STARTED,
            DomainEventType::SUSPENDED,
            DomainEventType::RESUMED,
            DomainEventType::STOPPED,
            DomainEventType::UNDEFINED,
        ];
        let got = collect_lifecycle(&mut all, &name, want_all.len()).await;
        assert_eq!(got, want_all, "{key}");
        let got = collect_lifecycle(&mut mine, &name, want_all.len() - 1).await;
        assert_eq!(got, &want_all[1..], "{key} filtered");
        drop(all);
        drop(mine);
        c.close().await.unwrap();
    }
}

async fn collect_lifecycle(
    s: &mut libvirt_client::events::EventStream,
    name: &str,
    n: usize,
) -> Vec<DomainEventType> {
    let mut got = Vec::new();
    while got.len() < n {
        let item = tokio::time::timeout(Duration::from_secs(10), s.next())
            .await
            .unwrap_or_else(|_| panic!("events so far: {got:?}"))
            .expect("stream open")
            .expect("decodes");
        if let EventItem::Event(TypedEvent::DomainEventCallbackLifecycle(m)) = item {
            if m.msg.dom.name == name {
                got.push(DomainEventType(m.msg.event));
            }
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_calls_leave_the_connection_usable() {
    let c = Client::connect(&common::uri("test_unix")).await.unwrap();
    // Abandon 100 calls by dropping their futures after they were sent.
    for _ in 0..100 {
        let fut = c.version();
        let _ = tokio::time::timeout(Duration::from_micros(1), fut).await;
    }
    assert_eq!(c.version().await.unwrap().to_string(), "0.0.2");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(c.pending_calls(), 0);
}

#[cfg(feature = "blocking")]
#[test]
fn blocking_client_same_semantics() {
    use libvirt_client::blocking::Client;
    for key in ["test_unix", "test_tcp"] {
        let c = Client::connect(&common::uri(key)).unwrap();
        assert_eq!(c.version().unwrap().to_string(), "0.0.2");
        let dom = c.lookup_domain("test").unwrap();
        assert_eq!(c.domain_state(&dom).unwrap().state, DomainState::RUNNING);
        // Calls from several threads on one connection.
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..50 {
                        assert_eq!(c.version().unwrap().major, 0);
                    }
                });
            }
        });
        let name = common::unique_name("bevt");
        let mut ev = c.subscribe(Subscription::domain(None)).unwrap();
        let d = c.define_xml(&test_domain_xml(&name)).unwrap();
        c.undefine(&d, Default::default()).unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            match ev.next_timeout(Duration::from_secs(10)) {
                Some(Some(Ok(EventItem::Event(TypedEvent::DomainEventCallbackLifecycle(m)))))
                    if m.msg.dom.name == name =>
                {
                    got.push(DomainEventType(m.msg.event))
                }
                Some(Some(Ok(_))) => {}
                other => panic!("{other:?} after {got:?}"),
            }
        }
        assert_eq!(got, [DomainEventType::DEFINED, DomainEventType::UNDEFINED]);
        drop(ev);
        c.close().unwrap();
    }
}
