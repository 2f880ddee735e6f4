//! The go-libvirt-style helpers against the REAL daemon's test driver: block IO tune get/set,
//! shutdown and reboot; reset on a `qemu:///session` TCG guest (secrets and storage pools are
//! in tests/client_events.rs), each checked by what the daemon reports afterwards (state,
//! QEMU's RESET event, virsh).
#![cfg(feature = "async")]

mod common;

use std::time::Duration;

use libvirt_client::events::{EventItem, EventStream, Subscription};
use libvirt_client::libvirt_proto::generated::api::{DomainEventType, DomainState};
use libvirt_client::{BlockIoTune, Client, TypedEvent};

fn domain_xml(name: &str) -> String {
    format!(
        "<domain type='test'><name>{name}</name><memory unit='MiB'>64</memory>\
         <vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os><devices>\
         <disk type='file' device='disk'><source file='/guest/{name}.img'/>\
         <target dev='vda' bus='virtio'/></disk></devices></domain>"
    )
}

/// Undefines the domain however the test ends.
struct Guard(String, String);

impl Drop for Guard {
    fn drop(&mut self) {
        for cmd in ["destroy", "undefine"] {
            let _ = std::process::Command::new("virsh")
                .args(["-c", &self.0, cmd, &self.1])
                .output();
        }
    }
}

async fn next_lifecycle(s: &mut EventStream, name: &str) -> (DomainEventType, i32) {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), s.next())
            .await
            .expect("an event in time")
            .expect("open")
            .expect("decodes");
        if let EventItem::Event(TypedEvent::DomainEventCallbackLifecycle(m)) = item {
            if m.msg.dom.name == name {
                return (DomainEventType(m.msg.event), m.msg.detail);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_io_tune_round_trip() {
    let uri = common::uri("test_unix");
    let c = Client::connect(&uri).await.unwrap();
    let name = common::unique_name("iotune");
    let _g = Guard(uri.clone(), name.clone());
    let dom = c.define_xml(&domain_xml(&name)).await.unwrap();
    c.start(&dom).await.unwrap();
    let dom = c.lookup_domain(&name).await.unwrap();
    let before = c.block_io_tune(&dom, "vda").await.unwrap();
    assert_eq!(before.total_bytes_sec, Some(0), "{before:?}");
    let mut want = BlockIoTune::default();
    want.total_bytes_sec = Some(10_000_000);
    want.total_iops_sec = Some(400);
    // (The test driver wants the burst limits at least as high.)
    want.total_bytes_sec_max = Some(20_000_000);
    want.total_iops_sec_max = Some(800);
    want.total_bytes_sec_max_length = Some(30);
    c.set_block_io_tune(&dom, "vda", &want).await.unwrap();
    let after = c.block_io_tune(&dom, "vda").await.unwrap();
    assert_eq!(after.total_bytes_sec, Some(10_000_000), "{after:?}");
    assert_eq!(after.total_iops_sec, Some(400), "{after:?}");
    assert_eq!(after.total_bytes_sec_max, Some(20_000_000), "{after:?}");
    assert_eq!(after.total_bytes_sec_max_length, Some(30), "{after:?}");
    assert_eq!(after.read_bytes_sec, Some(0), "{after:?}");
    // Every parameter the daemon reports has its typed field.
    assert!(after.other.is_empty(), "{:?}", after.other);
    // virsh sees the same.
    let out = common::virsh(&uri, &["blkdeviotune", &name, "vda"]);
    let field = |k: &str| {
        out.lines()
            .find_map(|l| l.split_once(':').filter(|(a, _)| a.trim() == k))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| panic!("{k} in {out}"))
    };
    assert_eq!(field("total_bytes_sec"), "10000000");
    assert_eq!(field("total_iops_sec"), "400");
    assert_eq!(field("total_bytes_sec_max_length"), "30");
    // An unknown disk is the daemon's typed error.
    let e = c.block_io_tune(&dom, "vdz").await.unwrap_err();
    assert!(e.remote().is_some(), "{e}");
    c.destroy(&dom).await.unwrap();
    c.undefine(&dom, Default::default()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_and_reboot() {
    let uri = common::uri("test_tcp");
    let c = Client::connect(&uri).await.unwrap();
    let name = common::unique_name("power");
    let _g = Guard(uri.clone(), name.clone());
    // on_reboot=destroy: a reboot the daemon carried out leaves the domain shut off.
    let xml = domain_xml(&name).replace("</os>", "</os><on_reboot>destroy</on_reboot>");
    let dom = c.define_xml(&xml).await.unwrap();
    let mut ev = c
        .subscribe(Subscription::domain(Some(dom.clone())))
        .await
        .unwrap();
    c.start(&dom).await.unwrap();
    assert_eq!(
        next_lifecycle(&mut ev, &name).await.0,
        DomainEventType::STARTED
    );
    let dom = c.lookup_domain(&name).await.unwrap();
    c.reboot(&dom, Default::default()).await.unwrap();
    assert_eq!(
        c.domain_state(&dom).await.unwrap().state,
        DomainState::SHUTOFF
    );

    // Shutdown: the test driver's guest obeys at once.
    c.start(&dom).await.unwrap();
    let dom = c.lookup_domain(&name).await.unwrap();
    assert_eq!(
        c.domain_state(&dom).await.unwrap().state,
        DomainState::RUNNING
    );
    c.shutdown(&dom, Default::default()).await.unwrap();
    assert_eq!(
        c.domain_state(&dom).await.unwrap().state,
        DomainState::SHUTOFF
    );
    assert_eq!(common::virsh(&uri, &["domstate", &name]).trim(), "shut off");
    // Shutting down a stopped domain is the daemon's typed error (the test driver says
    // VIR_ERR_INTERNAL_ERROR "domain '...' not running").
    let e = c.shutdown(&dom, Default::default()).await.unwrap_err();
    assert_eq!(i32::from(e.remote_code().unwrap()), 1, "{e}");
    assert!(e.to_string().contains("not running"), "{e}");
    c.undefine(&dom, Default::default()).await.unwrap();
    // Let the deregistrations be answered before the connection goes: the runtime ends with
    // the test, and libvirtd 9.0 can crash when a client leaves mid-(de)registration.
    drop(ev);
    c.close().await.unwrap();
}

/// `reset` on a real TCG guest: QEMU reports the system reset (RESET monitor event) and libvirt
/// turns it into the domain REBOOT event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_a_tcg_guest() {
    let uri = common::uri("qemu_unix");
    let c = Client::connect(&uri).await.unwrap();
    let name = common::unique_name("reset");
    let _g = Guard(uri.clone(), name.clone());
    let xml = format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='pc'>hvm</type></os>\
         <devices><emulator>{}</emulator><memballoon model='none'/></devices></domain>",
        common::endpoints()["qemu"]["binary"]
            .as_str()
            .unwrap_or("/usr/bin/qemu-system-x86_64")
    );
    let dom = c.define_xml(&xml).await.unwrap();
    c.start(&dom).await.unwrap();
    let dom = c.lookup_domain(&name).await.unwrap();
    let mut mon = c
        .subscribe(Subscription::qemu_monitor(
            Some(dom.clone()),
            Some("RESET".to_owned()),
        ))
        .await
        .unwrap();
    let mut domain_events = c
        .subscribe(Subscription::domain(Some(dom.clone())))
        .await
        .unwrap();
    c.reset(&dom).await.unwrap();
    let item = tokio::time::timeout(Duration::from_secs(20), mon.next())
        .await
        .expect("RESET in time")
        .unwrap()
        .unwrap();
    match item {
        EventItem::Event(TypedEvent::QemuDomainMonitorEvent(m)) => {
            assert_eq!(m.event, "RESET");
            assert_eq!(m.dom.name, name);
        }
        other => panic!("{other:?}"),
    }
    loop {
        let item = tokio::time::timeout(Duration::from_secs(20), domain_events.next())
            .await
            .expect("REBOOT in time")
            .unwrap()
            .unwrap();
        match item {
            EventItem::Event(TypedEvent::DomainEventCallbackReboot(m)) => {
                assert_eq!(m.msg.dom.name, name);
                break;
            }
            EventItem::Event(_) => continue, // other kinds for this domain may come first
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        c.domain_state(&dom).await.unwrap().state,
        DomainState::RUNNING
    );
    c.destroy(&dom).await.unwrap();
    c.undefine(&dom, Default::default()).await.unwrap();
    // Let the deregistrations be answered before the connection goes: the runtime ends with
    // the test, and libvirtd 9.0 can crash when a client leaves mid-(de)registration.
    drop(mon);
    drop(domain_events);
    c.close().await.unwrap();
}
