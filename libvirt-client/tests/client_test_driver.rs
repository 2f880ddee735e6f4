//! The async and blocking clients against the REAL libvirtd's test driver (test:///default
//! served by the peer daemon), over unix and tcp: open, versions, list, lookup, dominfo,
//! dumpxml (cross-checked against virsh), lifecycle events, call timeouts and abandonment.
#![cfg(all(feature = "async", feature = "blocking"))]

mod common;

use std::time::Duration;

use libvirt_client::events::{EventItem, Subscription};
use libvirt_client::libvirt_proto::generated::api::{
    DomainEventType, DomainMetadataType, DomainState,
};
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
        // The daemon's libvirt version, as virsh reports it.
        let lib = c.lib_version().await.unwrap();
        let virsh_version = common::virsh(&uri, &["version", "--daemon"]);
        let daemon_line = virsh_version
            .lines()
            .find_map(|l| l.strip_prefix("Running against daemon:"))
            .unwrap_or_else(|| panic!("{virsh_version}"));
        assert_eq!(daemon_line.trim(), lib.to_string(), "{virsh_version}");

        // `list --all`, row by row (id, name, state). Other tests add domains concurrently:
        // retry until virsh's listing is the same before and after ours.
        let mut compared = false;
        for _ in 0..10 {
            let before = virsh_list_rows(&uri);
            let ours = our_list_rows(&c).await;
            let after = virsh_list_rows(&uri);
            if before != after {
                continue;
            }
            assert_eq!(ours, before, "{key}: list --all");
            compared = true;
            break;
        }
        assert!(
            compared,
            "the domain list never held still for a comparison"
        );

        let dom = c.lookup_domain("test").await.unwrap();
        let st = c.domain_state(&dom).await.unwrap();
        assert_eq!(st.state, DomainState::RUNNING);
        // Every dominfo field against virsh's.
        let dominfo = common::virsh(&uri, &["dominfo", "test"]);
        let virsh_fields: Vec<(String, String)> = dominfo
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let ours = our_dominfo(&c, &dom).await;
        let names = |f: &[(String, String)]| f.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        assert_eq!(names(&ours), names(&virsh_fields), "{dominfo}");
        for ((k, mine), (_, theirs)) in ours.iter().zip(&virsh_fields) {
            if k == "CPU time" {
                // The test driver reports the wall clock as CPU time: close, not equal.
                let secs = |v: &str| v.trim_end_matches('s').parse::<f64>().unwrap();
                assert!(
                    (secs(mine) - secs(theirs)).abs() < 60.0,
                    "CPU time {mine} vs {theirs}"
                );
            } else {
                assert_eq!(mine, theirs, "dominfo {k}");
            }
        }

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

/// virsh's `list --all` table as (id, name, state) rows.
fn virsh_list_rows(uri: &str) -> Vec<(String, String, String)> {
    let out = common::virsh(uri, &["list", "--all"]);
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["Id", "Name", "State"], "{out}");
    assert!(lines.next().unwrap().starts_with("---"), "{out}");
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            assert!(cols.len() >= 3, "{out}");
            (cols[0].to_owned(), cols[1].to_owned(), cols[2..].join(" "))
        })
        .collect()
}

fn state_name(s: DomainState) -> &'static str {
    match s {
        DomainState::RUNNING => "running",
        DomainState::BLOCKED => "idle",
        DomainState::PAUSED => "paused",
        DomainState::SHUTDOWN => "in shutdown",
        DomainState::SHUTOFF => "shut off",
        DomainState::CRASHED => "crashed",
        DomainState::PMSUSPENDED => "pmsuspended",
        _ => "no state",
    }
}

/// Our `list --all` rows, in virsh's order (active by id, then inactive by name).
async fn our_list_rows(c: &Client) -> Vec<(String, String, String)> {
    let mut doms = c.domains().await.unwrap();
    doms.sort_by_key(|d| (d.id < 0, if d.id >= 0 { d.id } else { 0 }, d.name.clone()));
    let mut rows = Vec::new();
    for d in doms {
        let Ok(st) = c.domain_state(&d).await else {
            continue; // gone meanwhile: the retry catches it
        };
        let id = if d.id >= 0 {
            d.id.to_string()
        } else {
            "-".to_owned()
        };
        rows.push((id, d.name.clone(), state_name(st.state).to_owned()));
    }
    rows
}

fn c_str(b: &[i8]) -> String {
    let bytes: Vec<u8> = b
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The fields virsh's `dominfo` prints, from our calls.
async fn our_dominfo(c: &Client, dom: &libvirt_client::Domain) -> Vec<(String, String)> {
    let info = c.domain_get_info(dom.clone()).await.unwrap();
    let u = &dom.uuid;
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        hex(&u[0..4]),
        hex(&u[4..6]),
        hex(&u[6..8]),
        hex(&u[8..10]),
        hex(&u[10..16])
    );
    let yes_no = |v: i32| if v != 0 { "yes" } else { "no" }.to_owned();
    let model = c.node_get_security_model().await.unwrap();
    let label = c.domain_get_security_label(dom.clone()).await.unwrap();
    let mut f = vec![
        ("Id", dom.id.to_string()),
        ("Name", dom.name.clone()),
        ("UUID", uuid),
        ("OS Type", c.domain_get_os_type(dom.clone()).await.unwrap()),
        (
            "State",
            state_name(DomainState(i32::from(info.state))).to_owned(),
        ),
        ("CPU(s)", info.nr_virt_cpu.to_string()),
        (
            "CPU time",
            format!("{:.1}s", info.cpu_time as f64 / 1_000_000_000.0),
        ),
        ("Max memory", format!("{} KiB", info.max_mem)),
        ("Used memory", format!("{} KiB", info.memory)),
        (
            "Persistent",
            yes_no(c.domain_is_persistent(dom.clone()).await.unwrap()),
        ),
        (
            "Autostart",
            if c.domain_get_autostart(dom.clone()).await.unwrap() != 0 {
                "enable"
            } else {
                "disable"
            }
            .to_owned(),
        ),
        (
            "Managed save",
            yes_no(
                c.domain_has_managed_save_image(dom.clone(), 0)
                    .await
                    .unwrap(),
            ),
        ),
        ("Security model", c_str(&model.model)),
        ("Security DOI", c_str(&model.doi)),
    ];
    let l = c_str(&label.label);
    let mode = if label.enforcing != 0 {
        "enforcing"
    } else {
        "permissive"
    };
    f.push(("Security label", format!("{l} ({mode})")));
    f.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
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
        // Another domain changes meanwhile: the filtered stream must not show it.
        let other = c
            .define_xml(&test_domain_xml(&common::unique_name("evt-other")))
            .await
            .unwrap();
        c.start(&dom).await.unwrap();
        c.start(&other).await.unwrap();
        c.suspend(&dom).await.unwrap();
        c.resume(&dom).await.unwrap();
        c.destroy(&other).await.unwrap();
        c.destroy(&dom).await.unwrap();
        c.undefine(&other, Default::default()).await.unwrap();
        c.undefine(&dom, Default::default()).await.unwrap();

        let want_all = [
            DomainEventType::DEFINED,
            DomainEventType::STARTED,
            DomainEventType::SUSPENDED,
            DomainEventType::RESUMED,
            DomainEventType::STOPPED,
            DomainEventType::UNDEFINED,
        ];
        let got = collect_lifecycle(&mut all, &name, want_all.len(), false).await;
        assert_eq!(got, want_all, "{key}");
        let got = collect_lifecycle(&mut mine, &name, want_all.len() - 1, true).await;
        assert_eq!(got, &want_all[1..], "{key} filtered");
        drop(all);
        drop(mine);
        c.close().await.unwrap();
    }
}

/// The first `n` lifecycle events of domain `name`; with `only_this`, an event of any other
/// domain fails the test (the stream is filtered to `name`).
async fn collect_lifecycle(
    s: &mut libvirt_client::events::EventStream,
    name: &str,
    n: usize,
    only_this: bool,
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
            } else {
                assert!(!only_this, "filtered to {name}, got {:?}", m.msg.dom.name);
            }
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_calls_leave_the_connection_usable() {
    // A private daemon, frozen while the calls are abandoned, so that every one of them is
    // surely still unanswered when its future is dropped.
    let d = common::daemon::PrivateDaemon::start();
    let c = Client::connect(&d.test_unix()).await.unwrap();
    assert_eq!(c.stats().discarded_replies, 0);
    d.signal("STOP");
    for _ in 0..100 {
        let fut = c.version();
        assert!(tokio::time::timeout(Duration::from_millis(2), fut)
            .await
            .is_err());
    }
    assert_eq!(
        c.pending_calls(),
        0,
        "abandoned calls are no longer pending"
    );
    d.signal("CONT");
    assert_eq!(c.version().await.unwrap().to_string(), "0.0.2");
    // Every abandoned call's late reply arrives and is discarded, nothing else.
    let t0 = std::time::Instant::now();
    while c.stats().discarded_replies < 100 {
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", c.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(c.stats().discarded_replies, 100);
    assert_eq!(c.pending_calls(), 0);
    assert_eq!(c.version().await.unwrap().to_string(), "0.0.2");
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

/// Typed enum and flag arguments (generated from libvirt's API XML) reach the daemon with
/// their values: the answers depend on them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_enum_and_flag_arguments_reach_the_daemon() {
    use libvirt_client::libvirt_proto::generated::api::{
        ConnectGetAllDomainStatsFlags, DomainStatsTypes, InterfaceXMLFlags,
    };
    let c = Client::connect(&common::uri("test_unix")).await.unwrap();
    let dom = c.lookup_domain("test").await.unwrap();
    // Stats: only the group asked for.
    let recs = c
        .connect_get_all_domain_stats(
            vec![dom.clone()],
            DomainStatsTypes::STATE,
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(recs.len(), 1);
    let fields: Vec<&str> = recs[0].params.iter().map(|p| p.field.as_str()).collect();
    assert!(fields.contains(&"state.state"), "{fields:?}");
    assert!(fields.iter().all(|f| f.starts_with("state.")), "{fields:?}");
    // A group the test driver lacks, enforced: refused by the daemon (VIR_ERR_ARGUMENT_UNSUPPORTED)
    // because both typed values arrived.
    let e = c
        .connect_get_all_domain_stats(
            vec![dom.clone()],
            DomainStatsTypes::VCPU,
            ConnectGetAllDomainStatsFlags::ENFORCE_STATS,
        )
        .await
        .unwrap_err();
    assert_eq!(i32::from(e.remote_code().unwrap()), 74, "{e}");
    // Interface XML: without flags it works; the test driver refuses INACTIVE by value.
    let iface = c.interface_lookup_by_name("eth1".into()).await.unwrap();
    let xml = c
        .interface_get_xml_desc(iface.clone(), InterfaceXMLFlags::default())
        .await
        .unwrap();
    assert!(xml.contains("<interface") && xml.contains("eth1"), "{xml}");
    let e = c
        .interface_get_xml_desc(iface, InterfaceXMLFlags::INTERFACE_XML_INACTIVE)
        .await
        .unwrap_err();
    assert_eq!(i32::from(e.remote_code().unwrap()), 8, "{e}");
    assert!(e.to_string().contains("unsupported flags (0x1)"), "{e}");
}

/// Another domain event kind live: METADATA_CHANGE, with the metadata type, for a description
/// and a title set on a domain of the test driver (`VIR_DOMAIN_METADATA_DESCRIPTION` = 0,
/// `VIR_DOMAIN_METADATA_TITLE` = 1); the values read back through the domain's XML.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_change_events() {
    let c = Client::connect(&common::uri("test_tcp")).await.unwrap();
    let name = common::unique_name("meta");
    let dom = c.define_xml(&test_domain_xml(&name)).await.unwrap();
    let mut ev = c
        .subscribe(Subscription::domain(Some(dom.clone())))
        .await
        .unwrap();
    for (kind, text) in [
        (DomainMetadataType::DESCRIPTION, "a description"),
        (DomainMetadataType::TITLE, "a title"),
    ] {
        c.domain_set_metadata(
            dom.clone(),
            kind,
            Some(text.into()),
            None,
            None,
            Default::default(),
        )
        .await
        .unwrap();
    }
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let item = tokio::time::timeout(Duration::from_secs(10), ev.next())
            .await
            .unwrap_or_else(|_| panic!("metadata events so far: {kinds:?}"))
            .expect("stream open")
            .expect("decodes");
        if let EventItem::Event(TypedEvent::DomainEventCallbackMetadataChange(m)) = item {
            assert_eq!(m.dom.name, name);
            kinds.push(m.r#type);
        }
    }
    assert_eq!(
        kinds,
        [
            DomainMetadataType::DESCRIPTION.0,
            DomainMetadataType::TITLE.0
        ]
    );
    let xml = c
        .domain_get_xml_desc(dom.clone(), Default::default())
        .await
        .unwrap();
    assert!(
        xml.contains("<description>a description</description>")
            && xml.contains("<title>a title</title>"),
        "{xml}"
    );
    drop(ev);
    c.undefine(&dom, Default::default()).await.unwrap();
    c.close().await.unwrap();
}
