//! `xml::Domain` against the XML the real libvirtd returns (`cargo xtask peers start`).
//!
//! For the test driver's `test` domain and for a tiny TCG domain on `qemu:///session` (inactive
//! and running): parse → write → parse is equal, the written XML equals the daemon's text, typed
//! fields agree with what `virsh dominfo`/`domblklist`/`domiflist` report, and XML we write is
//! accepted back by the daemon unchanged. A domain built with the typed builder is defined and
//! read back with its values kept.
#![cfg(feature = "xml")]

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use libvirt_client::xml::{
    BootDevice, CharDevice, Clock, ClockOffset, Device, Disk, DiskBus, DiskDriver, Domain,
    DomainType, Element, Interface, InterfaceType, LifecycleAction, MemBalloon, Memory, Os, Vcpu,
};

fn endpoints() -> serde_json::Value {
    let path = std::env::var("VMWIRE_PEERS")
        .unwrap_or_else(|_| "/var/tmp/vmwire-peers/endpoints.json".to_owned());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read peers endpoints {path}: {e}; run `cargo xtask peers start`")
    });
    serde_json::from_str(&text).expect("endpoints file is JSON")
}

struct Virsh {
    bin: String,
    uri: String,
}

impl Virsh {
    fn new(uri_key: &str) -> Virsh {
        let e = endpoints();
        let uri = e["libvirt"]["uris"][uri_key]
            .as_str()
            .unwrap_or_else(|| {
                panic!("endpoints file lacks libvirt.uris.{uri_key}; run `cargo xtask peers start`")
            })
            .to_string();
        let bin = e["virsh"].as_str().unwrap_or("virsh").to_string();
        Virsh { bin, uri }
    }

    fn try_run(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.uri)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin));
        if out.status.success() {
            Ok(String::from_utf8(out.stdout).expect("virsh prints UTF-8"))
        } else {
            Err(format!(
                "virsh {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn run(&self, args: &[&str]) -> String {
        self.try_run(args).unwrap_or_else(|e| panic!("{e}"))
    }

    fn define(&self, xml: &str) -> String {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("domain.xml");
        std::fs::write(&path, xml).expect("write domain XML");
        self.run(&["define", path.to_str().expect("utf-8 temp path")])
    }

    /// `Key: value` lines of `virsh dominfo`.
    fn dominfo(&self, name: &str) -> Vec<(String, String)> {
        self.run(&["dominfo", name])
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    }

    /// Data rows of a virsh table (after the `----` rule).
    fn table_rows(&self, args: &[&str]) -> usize {
        self.run(args)
            .lines()
            .skip_while(|l| !l.starts_with("---"))
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .count()
    }
}

fn info<'a>(info: &'a [(String, String)], key: &str) -> &'a str {
    info.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("dominfo lacks {key}"))
}

/// Undefines (and first destroys) a domain on drop, so a failing test leaves nothing behind.
struct DomainGuard<'a> {
    virsh: &'a Virsh,
    name: String,
}

impl Drop for DomainGuard<'_> {
    fn drop(&mut self) {
        let _ = self.virsh.try_run(&["destroy", &self.name]);
        let _ = self.virsh.try_run(&["undefine", "--nvram", &self.name]);
    }
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// The checks every daemon XML must pass; returns the parsed domain. With `byte_exact`, the
/// written text must also equal the daemon's byte for byte (true unless the XML holds quotes in
/// text, which libvirt escapes as `&apos;`/`&quot;`, or metadata, which libvirt prints with
/// double quotes).
fn check_lossless(daemon_xml: &str, byte_exact: bool) -> Domain {
    let dom = Domain::from_xml(daemon_xml).expect("daemon XML parses");
    let written = dom.to_xml().expect("writes");
    let again = Domain::from_xml(&written).expect("our XML parses");
    assert_eq!(again, dom, "parse -> write -> parse changed the tree");
    if byte_exact {
        // libvirt also uses single quotes and two-space layout; virsh adds a newline.
        assert_eq!(
            written,
            daemon_xml.trim_end(),
            "written XML differs from the daemon's"
        );
    }
    // And canonically (attribute order and layout whitespace ignored).
    let daemon_tree = Element::parse(daemon_xml).expect("parses");
    assert!(again.element().canonical_eq(&daemon_tree));
    // Every typed view reads without error.
    dom.devices().expect("devices read");
    dom.os().expect("os reads");
    dom.vcpu().expect("vcpu reads");
    dom.cpu().expect("cpu reads");
    dom.clock().expect("clock reads");
    dom.memory().expect("memory reads");
    dom.current_memory().expect("currentMemory reads");
    dom.id().expect("id reads");
    dom
}

/// Typed fields against `virsh dominfo`, `domblklist` and `domiflist` for the same domain.
fn check_against_virsh(virsh: &Virsh, name: &str, dom: &Domain, inactive: bool) {
    let i = virsh.dominfo(name);
    assert_eq!(dom.name().as_deref(), Some(info(&i, "Name")));
    assert_eq!(dom.uuid().as_deref(), Some(info(&i, "UUID")));
    let max_kib = format!("{} KiB", dom.memory().unwrap().unwrap().to_kib().unwrap());
    assert_eq!(max_kib, info(&i, "Max memory"));
    let vcpu = dom.vcpu().unwrap().unwrap();
    assert_eq!(
        vcpu.current.unwrap_or(vcpu.count).to_string(),
        info(&i, "CPU(s)")
    );
    match dom.id().unwrap() {
        Some(id) => assert_eq!(id.to_string(), info(&i, "Id")),
        None => assert_eq!(info(&i, "Id"), "-"),
    }
    let flag: &[&str] = if inactive { &["--inactive"] } else { &[] };
    let blk = virsh.table_rows(&[&["domblklist", name][..], flag].concat());
    assert_eq!(dom.disks().unwrap().len(), blk, "disk count vs domblklist");
    let ifs = virsh.table_rows(&[&["domiflist", name][..], flag].concat());
    assert_eq!(
        dom.interfaces().unwrap().len(),
        ifs,
        "interface count vs domiflist"
    );
}

#[test]
fn test_driver_domain_round_trips_and_reads_typed() {
    let virsh = Virsh::new("test_unix");
    let xml = virsh.run(&["dumpxml", "test"]);
    let dom = check_lossless(&xml, true);
    check_against_virsh(&virsh, "test", &dom, false);
    assert_eq!(dom.domain_type(), Some(DomainType::Test));
    let os = dom.os().unwrap().unwrap();
    assert_eq!(os.kind.as_deref(), Some("hvm"));
    assert!(os.arch.is_some());
    let disk = &dom.disks().unwrap()[0];
    let source = disk.source.as_ref().and_then(|s| s.file.clone()).unwrap();
    let blk = virsh.run(&["domblklist", "test"]);
    assert!(blk.contains(&source), "{source} not in {blk}");
    let mac = dom.interfaces().unwrap()[0].mac.clone().unwrap();
    assert!(virsh.run(&["domiflist", "test"]).contains(&mac));
    // Also with the inactive definition.
    let inactive = check_lossless(&virsh.run(&["dumpxml", "--inactive", "test"]), true);
    assert_eq!(inactive.name(), dom.name());
}

const TINY: &str = "<domain type='qemu'>
  <name>NAME</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='network'/></os>
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='pty'/><console type='pty'/>
    <memballoon model='none'/>
  </devices>
</domain>";

#[test]
fn tcg_domain_inactive_and_running_round_trips() {
    let virsh = Virsh::new("qemu_unix");
    let name = unique("vmwire-xml-tiny");
    let guard = DomainGuard {
        virsh: &virsh,
        name: name.clone(),
    };
    virsh.define(&TINY.replace("NAME", &name));

    let inactive_xml = virsh.run(&["dumpxml", "--inactive", &name]);
    let inactive = check_lossless(&inactive_xml, true);
    check_against_virsh(&virsh, &name, &inactive, true);
    assert_eq!(inactive.domain_type(), Some(DomainType::Qemu));
    assert_eq!(inactive.id().unwrap(), None);
    assert_eq!(inactive.memory().unwrap().unwrap().to_kib(), Some(65536));
    let os = inactive.os().unwrap().unwrap();
    assert_eq!(
        (os.kind.as_deref(), os.arch.as_deref()),
        (Some("hvm"), Some("x86_64"))
    );
    // libvirt expands the machine alias `pc` to a versioned machine type.
    assert!(
        os.machine.as_deref().is_some_and(|m| m.starts_with("pc")),
        "{:?}",
        os.machine
    );
    assert_eq!(os.boot, vec![BootDevice::Network]);
    assert_eq!(inactive.on_reboot(), Some(LifecycleAction::Restart));
    assert_eq!(
        inactive.emulator().as_deref(),
        Some("/usr/bin/qemu-system-x86_64")
    );

    // What we write is what libvirt reads: redefine from our output, nothing changes.
    virsh.define(&inactive.to_xml().unwrap());
    let redefined = Domain::from_xml(&virsh.run(&["dumpxml", "--inactive", &name])).unwrap();
    assert!(redefined.element().canonical_eq(inactive.element()));

    virsh.run(&["start", &name]);
    let live_xml = virsh.run(&["dumpxml", &name]);
    let live = check_lossless(&live_xml, true);
    check_against_virsh(&virsh, &name, &live, false);
    let id: i32 = virsh.run(&["domid", &name]).trim().parse().unwrap();
    assert_eq!(live.id().unwrap(), Some(id));
    // The running serial port got a pty path that the typed view reads.
    let serial = live.devices().unwrap().into_iter().find_map(|d| match d {
        Device::Serial(s) => Some(s),
        _ => None,
    });
    assert!(serial
        .unwrap()
        .source_path
        .is_some_and(|p| p.starts_with("/dev/pts/")));
    // Live XML with `--inactive` is still the inactive definition.
    let inactive_again = check_lossless(&virsh.run(&["dumpxml", "--inactive", &name]), true);
    assert!(inactive_again.element().canonical_eq(inactive.element()));
    drop(guard);
    assert!(
        virsh.try_run(&["dominfo", &name]).is_err(),
        "guard undefined the domain"
    );
}

#[test]
fn domain_built_with_the_typed_builder_is_accepted_and_kept() {
    let virsh = Virsh::new("qemu_unix");
    let name = unique("vmwire-xml-built");
    let _guard = DomainGuard {
        virsh: &virsh,
        name: name.clone(),
    };
    let metadata = Element::parse("<metadata><app:info xmlns:app='urn:vmwire:test' owner='xml &amp; co'>kept</app:info></metadata>")
        .unwrap();
    let mut os = Os::hvm("x86_64", "pc");
    os.boot = vec![BootDevice::Hd, BootDevice::Network];
    let mut disk = Disk::file(
        "/var/tmp/vmwire does-not-exist.qcow2",
        "vda",
        DiskBus::Virtio,
    );
    disk.driver = Some(DiskDriver {
        name: Some("qemu".into()),
        format: Some("qcow2".into()),
        cache: Some("none".into()),
        ..Default::default()
    });
    disk.serial = Some("SER-1".into());
    let mut cdrom = Disk::file("/var/tmp/x.iso", "sda", DiskBus::Sata);
    cdrom.device = Some("cdrom".into());
    cdrom.readonly = true;
    let nic = Interface {
        kind: Some(InterfaceType::User),
        mac: Some("52:54:00:12:34:56".into()),
        model: Some("e1000".into()),
        ..Default::default()
    };
    let built = Domain::builder(DomainType::Qemu, name.clone())
        .title("Title with <markup> & 'quotes'")
        .description("line one\nline two & \"three\"")
        .metadata(metadata)
        .memory(Memory::mib(96))
        .current_memory(Memory::mib(64))
        .vcpu(Vcpu {
            count: 2,
            current: Some(1),
            ..Vcpu::new(2)
        })
        .os(os)
        .feature("acpi")
        .clock(Clock {
            offset: Some(ClockOffset::Utc),
            ..Default::default()
        })
        .on_poweroff(LifecycleAction::Destroy)
        .on_reboot(LifecycleAction::Restart)
        .on_crash(LifecycleAction::Preserve)
        .device(Device::Emulator("/usr/bin/qemu-system-x86_64".into()))
        .device(Device::Disk(disk.clone()))
        .device(Device::Disk(cdrom))
        .device(Device::Interface(nic.clone()))
        .device(Device::Serial(CharDevice::pty()))
        .device(Device::Console(CharDevice::pty()))
        .device(Device::MemBalloon(MemBalloon {
            model: Some("none".into()),
            ..Default::default()
        }))
        .build();
    let xml = built.to_xml().unwrap();
    virsh.define(&xml);

    let back = check_lossless(&virsh.run(&["dumpxml", "--inactive", &name]), false);
    check_against_virsh(&virsh, &name, &back, true);
    assert_eq!(back.name(), built.name());
    assert_eq!(back.title(), built.title());
    assert_eq!(back.description(), built.description());
    let info = back
        .metadata()
        .and_then(|m| m.child("app:info"))
        .expect("metadata kept");
    assert_eq!(info.attr("owner"), Some("xml & co"));
    assert_eq!(info.text(), "kept");
    assert_eq!(back.memory().unwrap().unwrap().to_kib(), Some(96 * 1024));
    assert_eq!(
        back.current_memory().unwrap().unwrap().to_kib(),
        Some(64 * 1024)
    );
    let vcpu = back.vcpu().unwrap().unwrap();
    assert_eq!((vcpu.count, vcpu.current), (2, Some(1)));
    assert_eq!(
        back.os().unwrap().unwrap().boot,
        vec![BootDevice::Hd, BootDevice::Network]
    );
    assert!(back.features().contains(&"acpi".to_string()));
    assert_eq!(back.on_crash(), Some(LifecycleAction::Preserve));
    assert_eq!(
        back.clock().unwrap().unwrap().offset,
        Some(ClockOffset::Utc)
    );
    let disks = back.disks().unwrap();
    assert_eq!(disks.len(), 2);
    assert_eq!(disks[0].source, disk.source);
    assert_eq!(disks[0].serial.as_deref(), Some("SER-1"));
    assert_eq!(
        disks[0].driver.as_ref().and_then(|d| d.cache.as_deref()),
        Some("none")
    );
    assert!(disks[1].readonly);
    let ifs = back.interfaces().unwrap();
    assert_eq!(ifs.len(), 1);
    assert_eq!(
        (
            ifs[0].kind.clone(),
            ifs[0].mac.clone(),
            ifs[0].model.clone()
        ),
        (nic.kind, nic.mac, nic.model)
    );

    // Edit the daemon's XML through the typed setters and define it again: libvirt keeps the
    // edits and everything it had added (addresses, controllers) survives.
    let mut edited = back.clone();
    edited.set_memory(Memory::mib(128));
    edited.set_title(Some("edited"));
    let mut d0 = edited.disks().unwrap().remove(0);
    d0.target_dev = Some("vdb".into());
    let index = edited
        .devices()
        .unwrap()
        .iter()
        .position(|d| matches!(d, Device::Disk(_)))
        .unwrap();
    assert!(edited.set_device(index, &Device::Disk(d0)));
    virsh.define(&edited.to_xml().unwrap());
    let after = check_lossless(&virsh.run(&["dumpxml", "--inactive", &name]), false);
    assert_eq!(after.memory().unwrap().unwrap().to_kib(), Some(128 * 1024));
    assert_eq!(after.title().as_deref(), Some("edited"));
    assert_eq!(after.disks().unwrap()[0].target_dev.as_deref(), Some("vdb"));
    assert_eq!(
        after.disks().unwrap()[0].address,
        back.disks().unwrap()[0].address
    );
    assert_eq!(
        after.devices().unwrap().len(),
        back.devices().unwrap().len()
    );
}
