//! Parses libvirt 11.3.0's six `.x` files (read from the shared inputs, never copied into the repo):
//! the directory is `$VMWIRE_LIBVIRT_PROTOCOL`, or `../shared/libvirt-protocol/11.3.0` relative to
//! the workspace root.
#![cfg(feature = "schema")]

use std::path::PathBuf;
use xdr::schema::{Annotation, Definition, EnumDef, Schema, C_CONSTANTS};

fn protocol_dir() -> PathBuf {
    let dir = match std::env::var_os("VMWIRE_LIBVIRT_PROTOCOL") {
        Some(d) => PathBuf::from(d),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/libvirt-protocol/11.3.0")
        }
    };
    assert!(
        dir.join("remote_protocol.x").is_file(),
        "libvirt protocol files not found in {}: set VMWIRE_LIBVIRT_PROTOCOL to the directory \
         holding remote_protocol.x and api/ (libvirt 11.3.0)",
        dir.display()
    );
    dir
}

fn load(file: &str) -> Schema {
    let path = protocol_dir().join(file);
    Schema::load_with_includes(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn find_enum<'a>(schema: &'a Schema, name: &str) -> &'a EnumDef {
    match schema.definition(name) {
        Some((_, item)) => match &item.def {
            Definition::Enum(e) => e,
            other => panic!("{name} is not an enum: {other:?}"),
        },
        None => panic!("{name} not found"),
    }
}

fn ann(key: &str, value: &str) -> Annotation {
    Annotation {
        key: key.into(),
        value: value.into(),
    }
}

#[test]
fn all_six_files_parse_and_resolve() {
    for (file, program, procs) in [
        ("remote_protocol.x", Some("remote_procedure"), 453),
        ("qemu_protocol.x", Some("qemu_procedure"), 0),
        ("lxc_protocol.x", Some("lxc_procedure"), 0),
        ("admin_protocol.x", Some("admin_procedure"), 0),
        ("virkeepaliveprotocol.x", Some("keepalive_procedure"), 2),
        ("virnetprotocol.x", None, 0),
    ] {
        let schema = load(file);
        if let Some(p) = program {
            let e = find_enum(&schema, p);
            let values = schema.enum_values(e);
            assert!(!values.is_empty(), "{file}: {p} is empty");
            // Procedure numbers are 1..=N without gaps or repeats.
            let mut nums: Vec<i64> = values.iter().map(|(_, v)| *v).collect();
            nums.sort();
            let expect: Vec<i64> = (1..=nums.len() as i64).collect();
            assert_eq!(nums, expect, "{file}: procedure numbers");
            if procs > 0 {
                assert_eq!(values.len(), procs, "{file}");
            }
        }
    }
}

#[test]
fn qemu_and_lxc_pull_in_remote() {
    let qemu = load("qemu_protocol.x");
    assert_eq!(
        qemu.specs().len(),
        2,
        "qemu_protocol.x includes remote_protocol.h"
    );
    assert!(qemu.specs()[0].file.ends_with("remote_protocol.x"));
    assert!(qemu.definition("remote_nonnull_domain").is_some());
    let lxc = load("lxc_protocol.x");
    assert_eq!(lxc.specs().len(), 2);
}

#[test]
fn program_constants() {
    assert_eq!(
        load("remote_protocol.x").constant("REMOTE_PROGRAM"),
        Some(0x20008086)
    );
    assert_eq!(
        load("qemu_protocol.x").constant("QEMU_PROGRAM"),
        Some(0x20008087)
    );
    assert_eq!(
        load("lxc_protocol.x").constant("LXC_PROGRAM"),
        Some(0x00068000)
    );
    assert_eq!(
        load("admin_protocol.x").constant("ADMIN_PROGRAM"),
        Some(0x06900690)
    );
    let ka = load("virkeepaliveprotocol.x");
    assert_eq!(ka.constant("KEEPALIVE_PROGRAM"), Some(0x6b656570));
    assert_eq!(ka.constant("KEEPALIVE_PROTOCOL_VERSION"), Some(1));
    let net = load("virnetprotocol.x");
    assert_eq!(net.constant("VIR_NET_MESSAGE_MAX"), Some(33554432));
    assert_eq!(net.constant("VIR_NET_STREAM_HOLE"), Some(6));
    let remote = load("remote_protocol.x");
    assert_eq!(remote.constant("REMOTE_SECURITY_LABEL_MAX"), Some(4097));
}

#[test]
fn procedure_annotations_attach_to_their_member() {
    let schema = load("remote_protocol.x");
    let e = find_enum(&schema, "remote_procedure");
    let member = |name: &str| {
        e.members
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    // The long explanatory comment before the first member holds `- @generate: ...` lines,
    // which are documentation, not annotations.
    assert_eq!(
        member("REMOTE_PROC_CONNECT_OPEN").annotations(),
        vec![
            ann("generate", "none"),
            ann("priority", "high"),
            ann("acl", "connect:getattr")
        ]
    );
    assert_eq!(
        member("REMOTE_PROC_STORAGE_VOL_UPLOAD").annotations(),
        vec![
            ann("generate", "both"),
            ann("writestream", "1"),
            ann("sparseflag", "VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM"),
            ann("acl", "storage_vol:data_write"),
        ]
    );
    assert_eq!(
        member("REMOTE_PROC_DOMAIN_SCREENSHOT").annotations(),
        vec![
            ann("generate", "both"),
            ann("readstream", "1"),
            ann("acl", "domain:screenshot"),
        ]
    );
    // The last member has no trailing comma.
    assert_eq!(
        schema.constant("REMOTE_PROC_DOMAIN_EVENT_NIC_MAC_CHANGE"),
        Some(453)
    );
    // Every member carries a @generate annotation and at least one @acl.
    for m in &e.members {
        let a = m.annotations();
        assert_eq!(
            a.iter().filter(|a| a.key == "generate").count(),
            1,
            "{}",
            m.name
        );
        assert!(a.iter().any(|a| a.key == "acl"), "{}", m.name);
    }
}

#[test]
fn struct_comments_attach() {
    let schema = load("remote_protocol.x");
    let (_, item) = schema.definition("remote_domain_get_info_ret").unwrap();
    assert_eq!(item.comments.annotations(), vec![ann("insert", "1")]);
    let (_, item) = schema.definition("remote_nonnull_string").unwrap();
    let doc = item.comments.doc_comment(item.pos.line).unwrap();
    assert_eq!(doc.lines(), vec!["A long string, which may NOT be NULL."]);
}

/// The values in `C_CONSTANTS` agree with libvirt's API description, and each is used.
#[test]
fn c_constants_match_libvirt_api_xml() {
    let dir = protocol_dir();
    let xml = std::fs::read_to_string(dir.join("api/libvirt-api.xml")).unwrap();
    let attr = |line: &str, name: &str| -> Option<String> {
        let start = line.find(&format!(" {name}='"))? + name.len() + 3;
        let end = line[start..].find('\'')?;
        Some(line[start..start + end].to_string())
    };
    // Evaluate libvirt's macro bodies of the form `(16)`, `(256 + 1)`.
    let eval = |raw: &str| -> i64 {
        raw.trim_matches(|c| c == '(' || c == ')')
            .split('+')
            .map(|t| t.trim().parse::<i64>().unwrap())
            .sum()
    };
    let texts: Vec<String> = [
        "remote_protocol.x",
        "qemu_protocol.x",
        "lxc_protocol.x",
        "admin_protocol.x",
        "virkeepaliveprotocol.x",
        "virnetprotocol.x",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(dir.join(f)).unwrap())
    .collect();
    for c in C_CONSTANTS {
        let line = xml
            .lines()
            .find(|l| {
                (l.contains("<macro ") || l.contains("<enum "))
                    && l.contains(&format!("name='{}'", c.name))
            })
            .unwrap_or_else(|| panic!("{} not in libvirt-api.xml", c.name));
        let value = if line.contains("<macro ") {
            eval(&attr(line, "raw").unwrap())
        } else {
            attr(line, "value").unwrap().parse().unwrap()
        };
        assert_eq!(value, c.value, "{}", c.name);
        assert!(
            texts.iter().any(|t| t.contains(c.name)),
            "{} is not used by any .x file",
            c.name
        );
    }
}
