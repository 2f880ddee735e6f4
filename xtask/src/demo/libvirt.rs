//! Demo section: `libvirt-client` (blocking driver) against the peer libvirtd — versions, the
//! test driver's domains, a tiny TCG guest's lifecycle with live events, and a QMP command
//! through libvirt's QEMU program.

use std::time::Duration;

use anyhow::{Context, Result};
use libvirt_client::blocking::Client;
use libvirt_client::events::{EventItem, Subscription};
use libvirt_client::libvirt_proto::generated::api::DomainEventType;
use libvirt_client::TypedEvent;
use serde_json::{json, Value};

use super::endpoint;

/// Destroys and undefines the demo guest however the section ends.
struct Guard<'a> {
    client: &'a Client,
    name: String,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if let Ok(d) = self.client.lookup_domain(&self.name) {
            let _ = self.client.destroy(&d);
            let _ = self.client.undefine(&d, Default::default());
        }
    }
}

pub fn tour(endpoints: &Value) -> Result<()> {
    let test_uri = endpoint(endpoints, "/libvirt/uris/test_unix")?;
    let test = Client::connect(&test_uri).context("connecting to the test driver")?;
    println!(
        "  {test_uri}\n    libvirt {}, hypervisor {}, features {:?}",
        test.lib_version()?,
        test.version()?,
        test.features()
    );
    for d in test.domains()? {
        let st = test.domain_state(&d)?;
        let info = test.domain_get_info(d.clone())?;
        println!(
            "    domain {:<10} id {:>2}  {}  {} vCPU  {} KiB",
            d.name, d.id, st.state, info.nr_virt_cpu, info.memory
        );
    }
    test.close()?;

    let qemu_uri = endpoint(endpoints, "/libvirt/uris/qemu_unix")?;
    let emulator = endpoint(endpoints, "/qemu/binary")?;
    let c = Client::connect(&qemu_uri).context("connecting to qemu:///session")?;
    println!(
        "  {qemu_uri}\n    QEMU {} via libvirt {}",
        c.version()?,
        c.lib_version()?
    );
    let name = format!("vmwire-demo-{}", std::process::id());
    let xml = format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='network'/></os>\
         <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>\
         <devices><emulator>{emulator}</emulator><serial type='pty'/><console type='pty'/>\
         <memballoon model='none'/></devices></domain>"
    );
    let mut events = c.subscribe(Subscription::domain(None))?;
    let _guard = Guard {
        client: &c,
        name: name.clone(),
    };
    let dom = c.define_xml(&xml)?;
    let mut show = |what: &str| -> Result<()> {
        println!("    {what}");
        // Print the lifecycle events this step caused, as they arrive.
        while let Some(Some(item)) = events.next_timeout(Duration::from_millis(300)) {
            if let EventItem::Event(TypedEvent::DomainEventCallbackLifecycle(e)) = item? {
                if e.msg.dom.name == name {
                    println!(
                        "      event: {} (detail {})",
                        DomainEventType(e.msg.event),
                        e.msg.detail
                    );
                }
            }
        }
        Ok(())
    };
    show(&format!("defined {name}"))?;
    c.start(&dom)?;
    show(&format!("started: {}", c.domain_state(&dom)?.state))?;
    let status = c.qmp(&dom, &json!({"execute": "query-status"}))?;
    println!(
        "    QMP through libvirt: query-status -> {}",
        status["return"]
    );
    c.suspend(&dom)?;
    show(&format!("suspended: {}", c.domain_state(&dom)?.state))?;
    c.resume(&dom)?;
    show(&format!("resumed: {}", c.domain_state(&dom)?.state))?;
    let name_q = c.qmp(&dom, &json!({"execute": "query-name"}))?;
    println!("    QMP: query-name -> {}", name_q["return"]);
    c.destroy(&dom)?;
    show("destroyed")?;
    c.undefine(&dom, Default::default())?;
    show("undefined")?;
    drop(events);
    println!(
        "    {} packets in, {} out on one connection",
        c.stats().packets_received,
        c.stats().packets_sent
    );
    Ok(())
}
