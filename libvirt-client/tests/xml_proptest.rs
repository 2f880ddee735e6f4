//! Property tests for `libvirt_client::xml`: any string XML can carry survives the typed API,
//! any tree survives write → parse, and no input makes the parser panic.
#![cfg(feature = "xml")]

use libvirt_client::xml::{
    Device, Disk, DiskBus, DiskSource, Domain, DomainType, Element, Interface, InterfaceSource,
    Memory, Node, XmlError,
};
use proptest::prelude::*;

/// Characters XML 1.0 can carry, biased towards the awkward ones.
fn xml_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(vec!['<', '>', '&', '\'', '"', ']', ' ', '\t', '\n', '\r', ';', '#', '-', '?']),
        3 => any::<char>().prop_filter("XML 1.0 Char", |c| {
            matches!(*c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
        }),
        2 => prop::char::range('a', 'z'),
    ]
}

fn xml_string() -> impl Strategy<Value = String> {
    prop::collection::vec(xml_char(), 0..40).prop_map(|v| v.into_iter().collect())
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_.-]{0,8}(:[a-zA-Z_][a-zA-Z0-9_-]{0,5})?"
}

fn tree() -> impl Strategy<Value = Element> {
    let leaf =
        (name(), prop::collection::vec((name(), xml_string()), 0..3)).prop_map(|(n, attrs)| {
            let mut e = Element::new(n);
            for (k, v) in attrs {
                e.set_attr(k, v);
            }
            e
        });
    leaf.prop_recursive(4, 40, 5, |inner| {
        let node = prop_oneof![
            3 => inner.prop_map(Node::Element),
            2 => xml_string().prop_filter("non-empty", |s| !s.is_empty()).prop_map(Node::Text),
            1 => xml_string().prop_filter("no terminator", |s| !s.contains("]]>")).prop_map(Node::CData),
            1 => "[a-z ]{0,10}".prop_filter("comment syntax", |s| !s.ends_with('-')).prop_map(Node::Comment),
            1 => "[a-z]{1,5}( [a-z ]{0,6})?".prop_filter("not xml", |s| !s.to_ascii_lowercase().starts_with("xml"))
                .prop_map(Node::ProcessingInstruction),
        ];
        (name(), prop::collection::vec(node, 0..6)).prop_map(|(n, nodes)| {
            let mut e = Element::new(n);
            for node in nodes {
                // The parser merges adjacent text nodes; generate the merged form.
                match (e.children.last_mut(), node) {
                    (Some(Node::Text(prev)), Node::Text(t)) => prev.push_str(&t),
                    (_, n) => e.children.push(n),
                }
            }
            e
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn strings_survive_the_typed_api(
        dom_name in xml_string(),
        title in xml_string(),
        description in xml_string(),
        path in xml_string(),
        network in xml_string(),
        serial in xml_string(),
    ) {
        let mut disk = Disk::file(path.clone(), "vda", DiskBus::Virtio);
        disk.serial = Some(serial.clone());
        let nic = Interface {
            source: Some(InterfaceSource { network: Some(network.clone()), ..Default::default() }),
            ..Default::default()
        };
        let built = Domain::builder(DomainType::Qemu, dom_name.clone())
            .title(title.clone())
            .description(description.clone())
            .memory(Memory::kib(1))
            .device(Device::Disk(disk))
            .device(Device::Interface(nic))
            .build();
        let back = Domain::from_xml(&built.to_xml().unwrap()).unwrap();
        prop_assert_eq!(&back, &built);
        prop_assert_eq!(back.name(), Some(dom_name.clone()));
        prop_assert_eq!(back.title(), Some(title));
        prop_assert_eq!(back.description(), Some(description));
        let d = &back.disks().unwrap()[0];
        prop_assert_eq!(d.source.as_ref().and_then(|s| s.file.clone()), Some(path.clone()));
        prop_assert_eq!(d.serial.clone(), Some(serial));
        prop_assert_eq!(back.interfaces().unwrap()[0].source.as_ref().and_then(|s| s.network.clone()), Some(network));

        // The same through the setters on an existing domain.
        let mut edited = back.clone();
        edited.set_name(&path);
        let mut d2 = d.clone();
        d2.source = Some(DiskSource { file: Some(dom_name.clone()), ..Default::default() });
        prop_assert!(edited.set_device(0, &Device::Disk(d2)));
        let again = Domain::from_xml(&edited.to_xml().unwrap()).unwrap();
        prop_assert_eq!(again.name(), Some(path));
        prop_assert_eq!(again.disks().unwrap()[0].source.as_ref().and_then(|s| s.file.clone()), Some(dom_name));
    }

    #[test]
    fn any_tree_survives_write_then_parse(t in tree()) {
        let xml = t.to_xml().unwrap();
        let back = Element::parse(&xml).unwrap();
        prop_assert_eq!(&back, &t);
        prop_assert!(back.canonical_eq(&t));
        // Re-indenting changes layout only.
        prop_assert!(t.indented("  ").canonical_eq(&t));
    }

    #[test]
    fn strings_xml_cannot_carry_are_refused_when_writing(prefix in "[a-z]{0,5}", c in prop::sample::select(vec!['\u{0}', '\u{1}', '\u{8}', '\u{B}', '\u{1F}', '\u{FFFE}', '\u{FFFF}'])) {
        let bad = format!("{prefix}{c}");
        let d = Domain::builder(DomainType::Qemu, bad.clone()).build();
        let err = d.to_xml().unwrap_err();
        prop_assert!(matches!(err, XmlError::InvalidChar { code, .. } if code == c as u32), "{err:?}");
        let e = Element::new("a").with_attr("v", bad);
        prop_assert!(e.to_xml().is_err());
    }

    #[test]
    fn parser_never_panics(s in ".{0,200}") {
        let _ = Element::parse(&s);
        let _ = Domain::from_xml(&s);
    }

    #[test]
    fn parser_never_panics_on_mangled_domains(cut in 0usize..600, junk in "[<>&;'\"/=!\\[\\]a-z ]{0,6}") {
        let xml = "<domain type='qemu' id='3'><name>n</name><memory unit='MiB'>64</memory>\
                   <vcpu current='1'>2</vcpu><os><type arch='x86_64'>hvm</type></os>\
                   <devices><disk type='file'><source file='/a'/><target dev='vda'/></disk></devices></domain>";
        let at = cut.min(xml.len());
        let mangled = format!("{}{}{}", &xml[..at], junk, &xml[at..]);
        if let Ok(d) = Domain::from_xml(&mangled) {
            // Whatever parsed reads without panicking and writes back to the same tree.
            let _ = (d.memory(), d.vcpu(), d.os(), d.devices(), d.id());
            let again = Domain::from_xml(&d.to_xml().unwrap()).unwrap();
            prop_assert_eq!(again, d);
        }
    }
}
