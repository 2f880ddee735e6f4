//! Long-running procedures (start, save, dump, wipe, migration steps, ...) are not cut by the
//! client's default call timeout: they get `long_call_timeout` (none by default, as in
//! libvirt). Proven with a real TCG guest start on `qemu:///session`, which takes longer than
//! the tiny call timeout used here.
#![cfg(all(feature = "async", feature = "blocking"))]

mod common;

use std::time::Duration;

use libvirt_client::libvirt_proto::generated::api::DomainCreateFlags;
use libvirt_client::{Client, ClientOptions};

fn guest_xml(name: &str) -> String {
    format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='network'/></os>\
         <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>\
         <memballoon model='none'/></devices></domain>"
    )
}

/// Destroys the guest however the test ends (a timed-out start still starts it).
struct Guard(String);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("virsh")
            .args(["-q", "-c", &common::uri("qemu_unix"), "destroy", &self.0])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

const TINY: Duration = Duration::from_millis(30);

#[tokio::test]
async fn starting_a_guest_outlasts_the_call_timeout() {
    let uri = common::uri("qemu_unix");
    // Every ordinary call must answer within 30 ms; starting QEMU takes longer.
    let opts = ClientOptions::default().call_timeout(Some(TINY));
    let c = Client::connect_with(&uri, opts.clone())
        .await
        .expect("connect");
    let name = common::unique_name("longcall");
    let _g = Guard(name.clone());
    let dom = c
        .domain_create_xml(guest_xml(&name), DomainCreateFlags::empty())
        .await
        .expect("a long-running call is not cut by call_timeout");
    c.domain_destroy(dom).await.expect("destroy");

    // The same start with the long timeout set that low: cut, typed (so the start really
    // takes longer, and long_call_timeout is what applies to it).
    let c = Client::connect_with(&uri, opts.clone().long_call_timeout(Some(TINY)))
        .await
        .expect("connect");
    let name = common::unique_name("longcall");
    let _g2 = Guard(name.clone());
    let err = c
        .domain_create_xml(guest_xml(&name), DomainCreateFlags::empty())
        .await
        .expect_err("long_call_timeout applies");
    assert!(err.is_timeout(), "{err:?}");

    // The blocking client applies the same rule.
    let name = common::unique_name("longcall");
    let _g3 = Guard(name.clone());
    let b = tokio::task::spawn_blocking(move || {
        let b = libvirt_client::blocking::Client::connect_with(&uri, opts).expect("connect");
        b.domain_create_xml(guest_xml(&name), DomainCreateFlags::empty())
            .map(|d| d.name)
    })
    .await
    .expect("join");
    assert!(b.is_ok(), "{b:?}");
}
