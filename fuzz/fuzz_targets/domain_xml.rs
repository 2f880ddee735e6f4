//! Arbitrary text into `libvirt_client::xml`: the lossless element tree and the typed domain
//! view. Never a panic; whatever parses writes back and re-parses to an equal tree; every typed
//! device reads back from what it writes, and from itself written over its old element (the
//! typed setters replace only what their type models).
#![no_main]

use libfuzzer_sys::fuzz_target;
use libvirt_client::xml::{Device, Domain, Element};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(tree) = Element::parse(text) else { return };
    let xml = tree.to_xml().expect("a parsed tree writes");
    assert_eq!(Element::parse(&xml).expect("written XML parses"), tree);
    assert!(tree.canonical().canonical_eq(&tree));

    let Ok(dom) = Domain::from_element(tree) else { return };
    // Typed getters: a typed error at worst.
    let _ = (dom.id(), dom.name(), dom.uuid(), dom.title(), dom.description());
    let _ = (dom.memory(), dom.current_memory(), dom.max_memory(), dom.vcpu());
    let _ = (dom.os(), dom.cpu(), dom.clock(), dom.features(), dom.emulator());
    let _ = (dom.on_poweroff(), dom.on_reboot(), dom.on_crash(), dom.domain_type());
    let _ = (dom.disks(), dom.interfaces());
    let Ok(devices) = dom.devices() else { return };
    let olds: Vec<&Element> = dom
        .element()
        .child("devices")
        .map(|d| d.elements().collect())
        .unwrap_or_default();
    for (device, old) in devices.iter().zip(olds) {
        let fresh = device.to_element();
        assert_eq!(
            Device::from_element(&fresh).as_ref(),
            Ok(device),
            "to_element reads back: {fresh:?}"
        );
        let merged = device.merge_into(old);
        assert_eq!(
            Device::from_element(&merged).as_ref(),
            Ok(device),
            "merge_into reads back: {merged:?}"
        );
        let _ = Element::parse(&merged.to_xml().expect("a merged device writes"));
    }
});
