//! Against the real qemu-system-x86_64 (TCG, `-S`): every kind launched and checked over QMP;
//! nasty filenames read back exactly; kinds needing absent hardware checked as far as QEMU's own
//! error naming the missing host resource.

mod support;

use proptest::prelude::{any, prop_assert_eq, prop_oneof, proptest, ProptestConfig, Strategy};
use qemu_cmdline::devices::Rng;
use qemu_cmdline::devices::*;
use qemu_cmdline::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use support::vhost_user::{self, VhostUserNet};
use support::{qemu, Helper, Qmp};

fn base(dir: &Path, machine: &str) -> QemuConfig {
    let mut c = QemuConfig::new().qmp("qmp0", &dir.join("qmp.sock").to_string_lossy());
    c.machine = Some(Machine::new(machine).accel("tcg"));
    c.memory = Some(Memory {
        size_mib: 128,
        ..Memory::default()
    });
    c.knobs = Knobs {
        no_user_config: true,
        nodefaults: true,
        display: Some(Display::None),
        paused: true,
        ..Knobs::default()
    };
    c
}

fn launch(c: QemuConfig, syntax: Syntax, fds: FdPlan) -> (QemuProcess, Qmp) {
    let p = Launcher::new(qemu().0, c)
        .syntax(syntax)
        .fds(fds)
        .spawn()
        .unwrap_or_else(|e| panic!("launch failed: {e}"));
    let q = Qmp::connect(&p.qmp_paths()[0]);
    (p, q)
}

fn launch_err(c: QemuConfig, fds: FdPlan) -> String {
    match Launcher::new(qemu().0, c).fds(fds).spawn() {
        Err(Error::Exited { stderr, status }) => {
            assert!(!status.success());
            stderr
        }
        Err(e) => panic!("expected QEMU to exit with an error, got {e}"),
        Ok(p) => panic!("expected QEMU to fail, it runs: {:?}", p.argv()),
    }
}

/// Names no command line builder should mangle (random ones: `any_filename_reaches_qemu_exactly`).
fn nasty_names() -> Vec<String> {
    [
        "a,b",
        "x=y",
        ",read-only=on",
        "c,,d=e,",
        "ünï cödé 💥",
        "quote\"s'",
        "sp ace",
        "{\"json\":1}",
        "help",
        "-dash",
        "nbd:host:1",
        "tab\there",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn named_nodes(q: &mut Qmp) -> BTreeMap<String, Value> {
    let nodes = q.ok("query-named-block-nodes", json!({"flat": true}));
    nodes
        .as_array()
        .expect("array")
        .iter()
        .map(|n| {
            (
                n["node-name"].as_str().unwrap_or_default().to_owned(),
                n.clone(),
            )
        })
        .collect()
}

#[test]
fn nasty_filenames_reach_qemu_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = qemu().1;
    for syntax in [Syntax::TEXT, Syntax::json(QemuVersion::new(7, 2))] {
        let mut c = base(dir.path(), "q35");
        let mut expect = Vec::new();
        for (i, name) in nasty_names().into_iter().enumerate() {
            let path = dir.path().join(&name).to_string_lossy().into_owned();
            let format = if i % 3 == 0 && !name.contains(':') {
                Format::Qcow2
            } else {
                Format::Raw
            };
            if !Path::new(&path).exists() {
                if format == Format::Qcow2 {
                    let out = std::process::Command::new(&img)
                        .args(["create", "-q", "-f", "qcow2", &path, "1M"])
                        .output()
                        .expect("qemu-img");
                    assert!(
                        out.status.success(),
                        "qemu-img create {path:?}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                } else {
                    std::fs::write(&path, vec![0u8; 4096]).expect("create image");
                }
            }
            let mut b = Block::virtio(&format!("d{i}"), &path, format);
            if i % 2 == 1 {
                b.device = None; // nodes only; every other one also gets a virtio-blk device
            }
            expect.push((b.file_node.clone(), b.node.clone(), path, format));
            c.devices.push(Box::new(b));
        }
        let argv = c.build(&syntax).expect("build");
        assert_eq!(QemuConfig::parse(&argv).expect("parse"), c);
        let (_p, mut q) = launch(c, syntax, FdPlan::new());
        let nodes = named_nodes(&mut q);
        for (file_node, node, path, format) in &expect {
            let f = &nodes
                .get(file_node)
                .unwrap_or_else(|| panic!("node {file_node} missing"));
            assert_eq!(
                f["file"].as_str(),
                Some(path.as_str()),
                "{syntax:?}: file node of {path:?}"
            );
            assert_eq!(f["drv"], "file");
            let g = &nodes[node];
            assert_eq!(
                g["drv"],
                if *format == Format::Qcow2 {
                    "qcow2"
                } else {
                    "raw"
                }
            );
            assert_eq!(
                g["image"]["filename"].as_str(),
                Some(path.as_str()),
                "{syntax:?}: format node of {path:?}"
            );
        }
    }
}

/// File names: the characters QEMU's parsers care about (`,` `=` quotes, braces, `:`),
/// spaces and unicode; or anything a file name may hold (no `/`, no NUL).
fn any_file_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[,=\"' a-zé€💥\\\\{}:.\\-]{1,30}",
        any::<String>().prop_map(|s| s.replace(['/', '\0'], "")),
    ]
    .prop_filter("a file name", |s| {
        !s.is_empty() && s != "." && s != ".." && s.len() <= 255
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

    /// Any file name, built into a `-blockdev` file node (text or JSON syntax), is the file
    /// QEMU opens: `query-named-block-nodes` gives back the exact path.
    #[test]
    fn any_filename_reaches_qemu_exactly(name in any_file_name(), json in any::<bool>()) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(&name).to_string_lossy().into_owned();
        std::fs::write(&path, vec![0u8; 4096]).expect("create the image");
        let mut b = Block::virtio("d0", &path, Format::Raw);
        b.device = None;
        let syntax = if json { Syntax::json(QemuVersion::new(7, 2)) } else { Syntax::TEXT };
        let c = base(dir.path(), "q35").device(b);
        let argv = c.build(&syntax).expect("build");
        prop_assert_eq!(&QemuConfig::parse(&argv).expect("parse"), &c);
        let (_p, mut q) = launch(c, syntax, FdPlan::new());
        let nodes = named_nodes(&mut q);
        prop_assert_eq!(nodes["d0-file"]["drv"].as_str(), Some("file"));
        prop_assert_eq!(nodes["d0-file"]["file"].as_str(), Some(path.as_str()));
        prop_assert_eq!(nodes["d0"]["image"]["filename"].as_str(), Some(path.as_str()));
    }
}

fn pci_devices(q: &mut Qmp) -> BTreeMap<String, (Value, String)> {
    fn walk(devs: &Value, bus: &str, out: &mut BTreeMap<String, (Value, String)>) {
        for d in devs.as_array().into_iter().flatten() {
            let id = d["qdev_id"].as_str().unwrap_or_default().to_owned();
            if let Some(b) = d.get("pci_bridge") {
                walk(&b["devices"], &id, out);
            }
            if !id.is_empty() {
                out.insert(id, (d.clone(), bus.to_owned()));
            }
        }
    }
    let mut out = BTreeMap::new();
    for bus in q.ok("query-pci", json!({})).as_array().expect("buses") {
        walk(&bus["devices"], "root", &mut out);
    }
    out
}

fn every_kind_q35(dir: &Path, fds: &mut FdPlan) -> QemuConfig {
    let s = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let img = s("disk,0=x.qcow2");
    let out = std::process::Command::new(qemu().1)
        .args(["create", "-q", "-f", "qcow2", &img, "1M"])
        .output()
        .expect("qemu-img");
    assert!(out.status.success());
    for f in ["scsi,disk", "ide=disk", "fw,cfg", "fdset,disk"] {
        std::fs::write(s(f), vec![0u8; 4096]).expect("file");
    }
    std::fs::create_dir_all(s("share,=dir")).expect("dir");
    // a listening socket QEMU inherits and serves a chardev on (fd=N)
    let listener = std::os::unix::net::UnixListener::bind(s("listen,=fd.sock")).expect("bind");
    let listen_fd = fds.add(std::os::fd::OwnedFd::from(listener));
    let fdset_file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(s("fdset,disk"))
        .expect("open");
    let child_fd = fds.add(fdset_file);

    let mut c = base(dir, "q35");
    c.name = Some(Name {
        guest: "vm,name=x ü".into(),
        debug_threads: true,
    });
    c.uuid = Some("0b7d2b5c-4a4e-4e8e-9a53-2f1c9b1d0e7f".into());
    if let Some(m) = c.machine.as_mut() {
        m.options.push(("nvdimm".into(), "on".into()));
    }
    c.cpu = Some(Cpu {
        model: "qemu64".into(),
        features: vec![("pmu".into(), "off".into())],
    });
    c.smp = Some(Smp {
        cpus: 2,
        sockets: Some(2),
        dies: Some(1),
        cores: Some(2),
        threads: Some(1),
        maxcpus: Some(4),
    });
    c.memory = Some(Memory {
        size_mib: 256,
        slots: Some(2),
        maxmem_mib: Some(1024),
    });
    c.rtc = Some(Rtc {
        base: "2006-06-17T16:01:21".into(),
        clock: Some("vm".into()),
        driftfix: None,
    });
    c.vga = Some("std".into());
    c.globals = vec![
        Global {
            driver: "virtio-blk-pci".into(),
            property: "serial".into(),
            value: "s,e=r".into(),
        },
        Global {
            driver: "virtio-rng-pci".into(),
            property: "period".into(),
            value: "2000".into(),
        },
    ];
    c.add_fds = vec![AddFd {
        fd: child_fd,
        set: 1,
        opaque: Some("o,p=q".into()),
    }];
    let mut fdset_disk = Block::virtio("fdd", "/dev/fdset/1", Format::Raw);
    fdset_disk.device = None;
    let mut nic = Net::virtio("nic0", NetBackend::User);
    if let Some(d) = nic.device.as_mut() {
        d.mac = Some("52:54:00:12:34:56".into());
        d.queues = Some(2);
    }
    let mut disk = Block::virtio("disk0", &img, Format::Qcow2);
    if let Some(d) = disk.device.as_mut() {
        d.pci = Pci::on("rp1");
        d.bootindex = Some(1);
    }
    let scsi_disk = Block {
        device: Some(BlockDevice {
            id: "sd0".into(),
            kind: Frontend::ScsiHd,
            pci: Pci::on("scsi0.0"),
            serial: Some("scsi,1".into()),
            bootindex: None,
        }),
        ..Block::virtio("sd0", &s("scsi,disk"), Format::Raw)
    };
    let ide_disk = Block {
        device: Some(BlockDevice {
            id: "hd0".into(),
            kind: Frontend::IdeHd,
            pci: Pci::on("ide.0"),
            serial: None,
            bootindex: None,
        }),
        ..Block::virtio("hd0", &s("ide=disk"), Format::Raw)
    };
    let scsi_disk = Block {
        read_only: true,
        ..scsi_disk
    };
    c.devices = vec![
        Box::new(Generic::object(
            "iothread",
            "io0",
            vec![("poll-max-ns".into(), Prop::Num(32))],
        )),
        Box::new(PcieRootPort {
            id: "rp1".into(),
            chassis: 1,
            slot: 1,
            port: Some(16),
            pci: Pci::default(),
        }),
        Box::new(Iommu {
            id: "iommu0".into(),
            model: IommuModel::Intel {
                caching_mode: true,
                intremap: false,
            },
        }),
        Box::new(PciBridge {
            id: "br0".into(),
            chassis_nr: 2,
            pci: Pci::default(),
        }),
        Box::new(disk),
        Box::new(fdset_disk),
        Box::new(ScsiController {
            id: "scsi0".into(),
            iothread: Some("io0".into()),
            num_queues: Some(2),
            pci: Pci::on("br0"),
        }),
        Box::new(scsi_disk),
        Box::new(ide_disk),
        Box::new(nic),
        Box::new(Virtio9p {
            id: "fs0".into(),
            fsdev_id: "fsdev0".into(),
            path: s("share,=dir"),
            mount_tag: "tag,=1".into(),
            security_model: "none".into(),
            readonly: true,
            pci: Pci::default(),
        }),
        Box::new(Chardev {
            id: "ch0".into(),
            backend: ChardevBackend::Socket {
                path: s("ch,0.sock"),
                server: true,
            },
        }),
        Box::new(Chardev {
            id: "ch5".into(),
            backend: ChardevBackend::SocketFd {
                fd: listen_fd,
                server: true,
            },
        }),
        Box::new(Chardev {
            id: "ch2".into(),
            backend: ChardevBackend::Pty,
        }),
        Box::new(Chardev {
            id: "ch3".into(),
            backend: ChardevBackend::File {
                path: s("log,=file"),
            },
        }),
        Box::new(Chardev {
            id: "ch4".into(),
            backend: ChardevBackend::Null,
        }),
        Box::new(Serial {
            id: "serial0".into(),
            chardev: "ch2".into(),
        }),
        Box::new(VirtioSerial {
            id: "vser0".into(),
            pci: Pci::default(),
        }),
        Box::new(VirtPort {
            id: "port0".into(),
            chardev: "ch0".into(),
            bus: "vser0.0".into(),
            name: Some("org.vmwire,=port".into()),
            console: false,
        }),
        Box::new(VirtPort {
            id: "con0".into(),
            chardev: "ch4".into(),
            bus: "vser0.0".into(),
            name: None,
            console: true,
        }),
        Box::new(Rng {
            id: "rng0".into(),
            object_id: "rngb0".into(),
            filename: Some("/dev/urandom".into()),
            max_bytes: Some(1024),
            period: None,
            pci: Pci::default(),
        }),
        Box::new(Rng {
            id: "rng1".into(),
            object_id: "rngb1".into(),
            filename: None,
            max_bytes: None,
            period: Some(500),
            pci: Pci::default(),
        }),
        Box::new(Balloon {
            id: "balloon0".into(),
            deflate_on_oom: true,
            pci: Pci::default(),
        }),
        Box::new(Pvpanic {
            id: "pvpanic0".into(),
            ioport: Some(0x506),
        }),
        Box::new(FwCfg {
            name: "opt/vmwire/a".into(),
            source: FwCfgSource::String("x,y=z".into()),
        }),
        Box::new(FwCfg {
            name: "opt/vmwire/b".into(),
            source: FwCfgSource::File(s("fw,cfg")),
        }),
        Box::new(MemoryBackend {
            id: "mem0".into(),
            kind: MemoryKind::Ram,
            size: 32 << 20,
            share: false,
            prealloc: false,
        }),
        Box::new(MemoryBackend {
            id: "mem1".into(),
            kind: MemoryKind::File {
                mem_path: s("mem,file"),
            },
            size: 32 << 20,
            share: true,
            prealloc: true,
        }),
        Box::new(MemoryBackend {
            id: "mem2".into(),
            kind: MemoryKind::Memfd { hugetlb: false },
            size: 16 << 20,
            share: true,
            prealloc: false,
        }),
        Box::new(Nvdimm {
            id: "nv0".into(),
            memdev: "mem1".into(),
            label_size: Some(128 << 10),
        }),
        Box::new(Generic::device("virtio-keyboard-pci", "kbd0", vec![])),
    ];
    c
}

fn check_every_kind(q: &mut Qmp, dir: &Path) {
    let s = |name: &str| dir.join(name).to_string_lossy().into_owned();
    // globals of the machine
    assert_eq!(q.ok("query-name", json!({}))["name"], "vm,name=x ü");
    assert_eq!(
        q.ok("query-uuid", json!({}))["UUID"],
        "0b7d2b5c-4a4e-4e8e-9a53-2f1c9b1d0e7f"
    );
    assert_eq!(q.ok("query-status", json!({}))["status"], "prelaunch");
    let cpus = q.ok("query-cpus-fast", json!({}));
    assert_eq!(cpus.as_array().map(Vec::len), Some(2));
    let cpu0 = cpus[0]["qom-path"].as_str().expect("qom-path").to_owned();
    assert_eq!(q.qom(&cpu0, "type"), "qemu64-x86_64-cpu");
    assert_eq!(q.qom(&cpu0, "pmu"), false);
    assert_eq!(
        q.ok("query-hotpluggable-cpus", json!({}))
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    assert_eq!(
        q.ok("query-memory-size-summary", json!({}))["base-memory"],
        256u64 << 20
    );
    assert_eq!(q.qom("/machine", "rtc-time")["tm_year"], 106);
    assert_eq!(q.qom("/machine", "nvdimm"), true);
    assert!(q.ok("query-kvm", json!({}))["enabled"] == false);

    // PCI topology
    let pci = pci_devices(q);
    for id in [
        "rp1", "br0", "fs0", "nic0", "vser0", "rng0", "rng1", "balloon0", "kbd0",
    ] {
        assert!(
            pci.contains_key(id),
            "{id} missing from query-pci: {:?}",
            pci.keys()
        );
    }
    // before the firmware numbers bridged buses, query-pci cannot see behind them: ask QOM
    assert_eq!(
        q.qom("/machine/peripheral/disk0", "parent_bus"),
        "/machine/peripheral/rp1/rp1"
    );
    assert_eq!(
        q.qom("/machine/peripheral/scsi0", "parent_bus"),
        "/machine/peripheral/br0/br0"
    );
    assert_eq!(
        q.qom("/machine/peripheral/sd0", "parent_bus"),
        "/machine/peripheral/scsi0/virtio-backend/scsi0.0"
    );
    let vga = q.ok("query-pci", json!({}))[0]["devices"]
        .as_array()
        .expect("devs")
        .iter()
        .any(|d| d["class_info"]["class"] == 0x0300);
    assert!(vga, "a VGA device from -vga std");

    // block devices
    let blocks = q.ok("query-block", json!({}));
    let by_qdev: BTreeMap<String, Value> = blocks
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|b| Some((b["qdev"].as_str()?.to_owned(), b.clone())))
        .collect();
    let find = |id: &str| {
        by_qdev
            .iter()
            .find(|(k, _)| *k == id || k.starts_with(&format!("/machine/peripheral/{id}/")))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{id} not in query-block: {:?}", by_qdev.keys()))
    };
    assert_eq!(find("disk0")["inserted"]["node-name"], "disk0");
    assert_eq!(find("disk0")["inserted"]["file"], s("disk,0=x.qcow2"));
    assert_eq!(find("sd0")["inserted"]["file"], s("scsi,disk"));
    assert_eq!(find("sd0")["inserted"]["ro"], true);
    assert_eq!(find("hd0")["inserted"]["ro"], false);
    let nodes = named_nodes(q);
    assert_eq!(nodes["fdd-file"]["file"], "/dev/fdset/1");
    assert_eq!(
        q.qom("/machine/peripheral/disk0", "serial"),
        "s,e=r",
        "-global virtio-blk-pci.serial"
    );
    assert_eq!(q.qom("/machine/peripheral/disk0", "bootindex"), 1);
    assert_eq!(q.qom("/machine/peripheral/sd0", "serial"), "scsi,1");
    assert_eq!(
        q.qom("/machine/peripheral/scsi0", "iothread"),
        "/objects/io0"
    );
    assert_eq!(q.qom("/machine/peripheral/scsi0", "num_queues"), 2);
    let fdsets = q.ok("query-fdsets", json!({}));
    assert_eq!(fdsets[0]["fdset-id"], 1);
    assert_eq!(fdsets[0]["fds"][0]["opaque"], "o,p=q");

    // buses and controllers
    assert_eq!(q.qom("/machine/peripheral/rp1", "chassis"), 1);
    assert_eq!(q.qom("/machine/peripheral/rp1", "slot"), 1);
    assert_eq!(q.qom("/machine/peripheral/rp1", "port"), 16);
    assert_eq!(q.qom("/machine/peripheral/br0", "chassis_nr"), 2);
    assert_eq!(q.qom("/machine/peripheral/iommu0", "caching-mode"), true);

    // net
    assert_eq!(
        q.qom("/machine/peripheral/nic0", "mac"),
        "52:54:00:12:34:56"
    );
    assert_eq!(q.qom("/machine/peripheral/nic0", "mq"), true);
    assert_eq!(q.qom("/machine/peripheral/nic0", "vectors"), 6);
    assert_eq!(q.qom("/machine/peripheral/nic0", "netdev"), "nic0-net");

    // 9p
    assert_eq!(q.qom("/machine/peripheral/fs0", "mount_tag"), "tag,=1");
    assert_eq!(q.qom("/machine/peripheral/fs0", "fsdev"), "fsdev0");

    // chardevs and their frontends
    let chardevs: BTreeMap<String, String> = q
        .ok("query-chardev", json!({}))
        .as_array()
        .expect("array")
        .iter()
        .map(|c| {
            (
                c["label"].as_str().unwrap_or_default().to_owned(),
                c["filename"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(chardevs["ch0"].contains(&s("ch,0.sock")), "{chardevs:?}");
    assert!(chardevs["ch2"].starts_with("pty:"), "{chardevs:?}");
    assert_eq!(chardevs["ch4"], "null");
    assert!(
        chardevs["ch5"].contains(&s("listen,=fd.sock")),
        "{chardevs:?}"
    );
    let peer = std::os::unix::net::UnixStream::connect(s("listen,=fd.sock"));
    assert!(peer.is_ok(), "QEMU listens on the inherited fd");
    assert!(chardevs.contains_key("ch3") && chardevs.contains_key("qmp0"));
    assert!(
        Path::new(&s("log,=file")).exists(),
        "the file chardev created its file"
    );
    assert_eq!(q.qom("/machine/peripheral/serial0", "chardev"), "ch2");
    assert_eq!(
        q.qom("/machine/peripheral/port0", "name"),
        "org.vmwire,=port"
    );
    assert_eq!(q.qom("/machine/peripheral/port0", "chardev"), "ch0");
    assert_eq!(q.qom("/machine/peripheral/con0", "type"), "virtconsole");

    // rng, balloon, pvpanic
    assert_eq!(q.qom("/objects/rngb0", "filename"), "/dev/urandom");
    assert_eq!(q.qom("/objects/rngb1", "type"), "rng-builtin");
    assert_eq!(q.qom("/machine/peripheral/rng0", "max-bytes"), 1024);
    assert_eq!(
        q.qom("/machine/peripheral/rng0", "period"),
        2000,
        "-global virtio-rng-pci.period"
    );
    assert_eq!(q.qom("/machine/peripheral/rng1", "period"), 500);
    assert_eq!(
        q.qom("/machine/peripheral/balloon0", "deflate-on-oom"),
        true
    );
    assert_eq!(q.qom("/machine/peripheral/pvpanic0", "ioport"), 0x506);

    // memory
    let memdevs: BTreeMap<String, Value> = q
        .ok("query-memdev", json!({}))
        .as_array()
        .expect("array")
        .iter()
        .map(|m| (m["id"].as_str().unwrap_or_default().to_owned(), m.clone()))
        .collect();
    assert_eq!(memdevs["mem0"]["size"], 32u64 << 20);
    assert_eq!(memdevs["mem1"]["share"], true);
    assert_eq!(memdevs["mem1"]["prealloc"], true);
    assert_eq!(memdevs["mem2"]["size"], 16u64 << 20);
    assert_eq!(q.qom("/objects/mem1", "mem-path"), s("mem,file"));
    assert_eq!(q.qom("/objects/mem2", "type"), "memory-backend-memfd");
    let mdevs = q.ok("query-memory-devices", json!({}));
    let nv = mdevs
        .as_array()
        .expect("array")
        .iter()
        .find(|d| d["type"] == "nvdimm")
        .expect("an nvdimm");
    assert_eq!(nv["data"]["id"], "nv0");
    assert_eq!(nv["data"]["memdev"], "/objects/mem1");
    assert_eq!(q.qom("/machine/peripheral/nv0", "label-size"), 128 << 10);
    assert_eq!(q.qom("/objects/io0", "poll-max-ns"), 32);
}

#[test]
fn every_kind_runs_in_real_qemu_text_and_json() {
    for syntax in [Syntax::TEXT, Syntax::json(QemuVersion::new(7, 2))] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut fds = FdPlan::new();
        let c = every_kind_q35(dir.path(), &mut fds);
        let fd = fds.child_fds()[1];
        let argv = c.build(&syntax).expect("build");
        assert_eq!(
            QemuConfig::parse(&argv).expect("parse"),
            c,
            "parse(build(c)) == c"
        );
        // The number the plan chose is the one the argv names; QEMU then finds it open (the
        // fd set checked below exists only if `-add-fd` could dup that descriptor).
        assert!(
            argv.windows(2)
                .any(|w| w[0] == "-add-fd" && w[1].split(',').any(|p| p == format!("fd={fd}"))),
            "-add-fd fd={fd} in {argv:?}"
        );
        let (p, mut q) = launch(c, syntax, fds);
        check_every_kind(&mut q, dir.path());
        q.ok("quit", json!({}));
        assert!(p.wait(Duration::from_secs(10)).expect("exit").success());
    }
}

#[test]
fn pc_machine_bridge_ide_virtio_iommu_and_memory_knobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = dir.path().join("pc,disk").to_string_lossy().into_owned();
    std::fs::write(&disk, vec![0u8; 4096]).expect("file");
    let mut c = base(dir.path(), "pc");
    c.memory = Some(Memory {
        size_mib: 32,
        ..Memory::default()
    });
    c.knobs.mem_prealloc = true;
    c.knobs.mem_lock = true;
    c.knobs.display = Some(Display::Nographic);
    let second_qmp = dir.path().join("second, qmp=.sock");
    c.qmp.push(QmpSocket {
        id: "qmp1".into(),
        path: second_qmp.to_string_lossy().into_owned(),
    });
    let ram_dir = dir.path().join("huge,pages=dir");
    std::fs::create_dir_all(&ram_dir).expect("dir");
    c.knobs.hugepages = Some(ram_dir.to_string_lossy().into_owned());
    c.devices = vec![
        Box::new(Iommu {
            id: "viommu0".into(),
            model: IommuModel::Virtio(Pci::default()),
        }),
        Box::new(PciBridge {
            id: "br0".into(),
            chassis_nr: 1,
            pci: Pci {
                bus: Some("pci.0".into()),
                addr: Some("0x5".into()),
            },
        }),
        Box::new(Balloon {
            id: "b0".into(),
            deflate_on_oom: false,
            pci: Pci {
                bus: Some("br0".into()),
                addr: Some("0x3".into()),
            },
        }),
        Box::new(Block {
            device: Some(BlockDevice {
                id: "hd0".into(),
                kind: Frontend::IdeHd,
                pci: Pci::on("ide.1"),
                serial: None,
                bootindex: None,
            }),
            ..Block::virtio("hd0", &disk, Format::Raw)
        }),
    ];
    let (_p, mut q) = launch(c, Syntax::json(QemuVersion::new(7, 2)), FdPlan::new());
    let pci = pci_devices(&mut q);
    assert!(pci.contains_key("br0"), "{pci:?}");
    assert_eq!(pci["br0"].0["slot"], 5);
    // before the firmware numbers the bridge's bus, query-pci cannot see behind it: ask QOM
    assert_eq!(
        q.qom("/machine/peripheral/b0", "parent_bus"),
        "/machine/peripheral/br0/br0"
    );
    assert_eq!(q.qom("/machine/peripheral/b0", "addr"), 3 << 3);
    assert!(pci.contains_key("viommu0"));
    assert_eq!(
        q.ok("query-memory-size-summary", json!({}))["base-memory"],
        32u64 << 20
    );
    assert_eq!(q.qom("/machine/peripheral/hd0", "drive"), "hd0");
    // the second QMP socket answers too
    let mut q2 = Qmp::connect(&second_qmp);
    assert_eq!(q2.ok("query-status", json!({}))["status"], "prelaunch");
    // -mem-path: guest RAM is a file backend in that directory, preallocated
    assert_eq!(
        q.qom("/objects/pc.ram", "mem-path"),
        ram_dir.to_string_lossy().as_ref()
    );
    assert_eq!(q.qom("/objects/pc.ram", "prealloc"), true);
    let overcommit = std::fs::read_to_string(format!("/proc/{}/status", _p.pid())).expect("status");
    let locked = overcommit
        .lines()
        .find(|l| l.starts_with("VmLck:"))
        .expect("VmLck");
    assert_ne!(
        locked.split_whitespace().nth(1),
        Some("0"),
        "-overcommit mem-lock=on locked memory: {locked}"
    );
}

/// Kinds needing host resources this machine lacks: QEMU must get as far as naming the missing
/// resource (so our argv was accepted up to there).
#[test]
fn kinds_without_host_resources_fail_on_the_resource_not_the_argv() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir
        .path()
        .join("no,such=sock")
        .to_string_lossy()
        .into_owned();
    let devnull = || std::fs::File::open("/dev/null").expect("/dev/null");

    // vfio: no such host device
    let c = base(dir.path(), "q35").device(Vfio {
        id: "v0".into(),
        host: "0000:99:1f.7".into(),
        pci: Pci::default(),
    });
    let e = launch_err(c, FdPlan::new());
    assert!(e.contains("/sys/bus/pci/devices/0000:99:1f.7"), "{e}");

    // vsock: no vhost-vsock device
    let c = base(dir.path(), "q35").device(Vsock {
        id: "vs0".into(),
        guest_cid: 3,
        vhostfd: None,
        pci: Pci::default(),
    });
    let e = launch_err(c, FdPlan::new());
    assert!(
        e.contains("vhost-vsock") && e.contains("open vhost device"),
        "{e}"
    );

    // tap/macvtap by fds: the fds arrive at the planned numbers, and are not taps
    let mut fds = FdPlan::new();
    let a = fds.add(devnull());
    let b = fds.add(devnull());
    let mut nic = Net::virtio(
        "nic0",
        NetBackend::TapFds {
            fds: vec![a, b],
            vhost: false,
            vhostfds: vec![],
        },
    );
    nic.device.as_mut().expect("device").queues = Some(2);
    let e = launch_err(base(dir.path(), "q35").device(nic), fds);
    assert!(e.contains(&format!("TUNGETIFF on FD {a}")), "{e}");

    // vhost-user net, vhost-user-blk, virtio-fs (which need shared guest memory): no backend
    // listening at the (nasty) path
    let shared = || {
        let mut c = base(dir.path(), "q35").device(MemoryBackend {
            id: "ram".into(),
            kind: MemoryKind::Memfd { hugetlb: false },
            size: 128 << 20,
            share: true,
            prealloc: false,
        });
        if let Some(m) = c.machine.as_mut() {
            m.options.push(("memory-backend".into(), "ram".into()));
        }
        c
    };
    let vu = Net::virtio(
        "nic1",
        NetBackend::VhostUser {
            chardev_id: "vuc".into(),
            socket_path: missing.clone(),
            queues: Some(2),
        },
    );
    let vub = VhostUserDevice {
        id: "vub".into(),
        driver: "vhost-user-blk-pci".into(),
        chardev_id: "vubc".into(),
        socket_path: missing.clone(),
        num_queues: None,
        pci: Pci::default(),
    };
    let vfs = VirtioFs {
        id: "vfs".into(),
        chardev_id: "vfsc".into(),
        socket_path: missing.clone(),
        tag: "t".into(),
        queue_size: None,
        pci: Pci::default(),
    };
    for c in [
        shared().device(vu),
        shared().device(vub),
        shared().device(vfs),
    ] {
        let e = launch_err(c, FdPlan::new());
        assert!(
            e.contains(&format!("Failed to connect to '{missing}'")),
            "{e}"
        );
    }

    // a fw_cfg file that is not there: named in QEMU's error, commas and all
    let fw = dir.path().join("fw,missing").to_string_lossy().into_owned();
    let c = base(dir.path(), "q35").device(FwCfg {
        name: "opt/x".into(),
        source: FwCfgSource::File(fw.clone()),
    });
    let e = launch_err(c, FdPlan::new());
    assert!(e.contains(&fw), "{e}");
}

#[test]
fn daemonize_is_refused_by_the_launcher_and_works_from_argv() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = base(dir.path(), "q35");
    c.knobs.daemonize = true;
    assert!(matches!(
        Launcher::new(qemu().0, c.clone()).spawn(),
        Err(Error::Launch(_))
    ));
    // the argv itself daemonizes: the foreground process exits 0 once QEMU is up
    let argv = c.build(&Syntax::TEXT).expect("build");
    let out = std::process::Command::new(qemu().0)
        .args(&argv)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut q = Qmp::connect(&dir.path().join("qmp.sock"));
    assert_eq!(q.ok("query-status", json!({}))["status"], "prelaunch");
    let _ = q.execute("quit", json!({}));
}

/// A file QEMU's x86 loader accepts as a Linux kernel (boot protocol 2.12 header, nothing to
/// run): enough for a `-S` guest to load it, initrd and command line included.
fn fake_bzimage(path: &Path) {
    let mut b = vec![0u8; 8192];
    b[0x1f1] = 4; // setup sectors
    b[0x1fe..0x200].copy_from_slice(&[0x55, 0xaa]);
    b[0x202..0x206].copy_from_slice(b"HdrS");
    b[0x206..0x208].copy_from_slice(&0x020cu16.to_le_bytes()); // protocol version
    b[0x211] = 0x01; // loaded high
    b[0x22c..0x230].copy_from_slice(&0x37ff_ffffu32.to_le_bytes()); // initrd_addr_max
    b[0x238..0x23c].copy_from_slice(&2048u32.to_le_bytes()); // cmdline_size
    std::fs::write(path, b).expect("fake kernel");
}

#[test]
fn kernel_initrd_append_and_bios_reach_qemu_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let (kernel, initrd, bios) = (p("ker,nel=ü"), p("init,rd"), p("bi,os=.bin"));
    fake_bzimage(Path::new(&kernel));
    std::fs::write(&initrd, b"initrd").expect("initrd");
    std::fs::copy("/usr/share/seabios/bios-256k.bin", &bios)
        .expect("seabios (Debian package seabios, a dependency of qemu-system-x86)");
    let append = "console=ttyS0,115200 root=/dev/vda quiet a=\"b, c\" ü";
    let mut c = base(dir.path(), "q35");
    c.kernel = Some(Kernel {
        path: kernel.clone(),
        initrd: Some(initrd.clone()),
        append: Some(append.into()),
    });
    c.bios = Some(bios.clone());
    let (_p, mut q) = launch(c, Syntax::TEXT, FdPlan::new());
    assert_eq!(q.qom("/machine", "kernel"), kernel.as_str());
    assert_eq!(q.qom("/machine", "initrd"), initrd.as_str());
    assert_eq!(q.qom("/machine", "append"), append);
    assert_eq!(q.qom("/machine", "firmware"), bios.as_str());
}

#[test]
fn launcher_errors_and_guard() {
    let dir = tempfile::tempdir().expect("tempdir");
    // a missing binary
    match Launcher::new(dir.path().join("no-qemu"), base(dir.path(), "q35")).spawn() {
        Err(Error::Spawn { .. }) => {}
        other => panic!("expected Spawn error, got {other:?}"),
    }
    // fds named by the config but not planned
    let c = base(dir.path(), "q35").device(Vsock {
        id: "v".into(),
        guest_cid: 3,
        vhostfd: Some(7),
        pci: Pci::default(),
    });
    assert!(matches!(
        Launcher::new(qemu().0, c).spawn(),
        Err(Error::FdPlan(_))
    ));
    // something that never opens its QMP socket
    let script = dir.path().join("slow-qemu");
    std::fs::write(&script, "#!/bin/sh\nexec sleep 30\n").expect("script");
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .expect("chmod");
    let t = std::time::Instant::now();
    match Launcher::new(&script, base(dir.path(), "q35"))
        .timeout(Duration::from_millis(300))
        .spawn()
    {
        Err(Error::QmpTimeout { waited, .. }) => assert_eq!(waited, Duration::from_millis(300)),
        other => panic!("expected QmpTimeout, got {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(5));
    // the guard kills and reaps on drop
    let (p, _q) = launch(base(dir.path(), "q35"), Syntax::TEXT, FdPlan::new());
    let pid = p.pid();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    drop(p);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "QEMU {pid} still exists after drop"
    );
    // detach leaves it running
    let dir2 = tempfile::tempdir().expect("tempdir");
    let (p, _q) = launch(base(dir2.path(), "q35"), Syntax::TEXT, FdPlan::new());
    let mut child = p.detach();
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "detached QEMU keeps running"
    );
    child.kill().expect("kill");
    child.wait().expect("reap");
}

/// `base` with guest RAM in a shared memfd backend, as vhost-user devices need.
fn shared_memory(dir: &Path) -> QemuConfig {
    let mut c = base(dir, "q35").device(MemoryBackend {
        id: "ram".into(),
        kind: MemoryKind::Memfd { hugetlb: false },
        size: 128 << 20,
        share: true,
        prealloc: false,
    });
    if let Some(m) = c.machine.as_mut() {
        m.options.push(("memory-backend".into(), "ram".into()));
    }
    c
}

/// A binary shipped beside qemu-system-x86_64 by Debian's qemu-system-common.
fn qemu_sibling(name: &str) -> std::path::PathBuf {
    let p = Path::new(&qemu().0).with_file_name(name);
    assert!(
        p.exists(),
        "{p:?} missing (Debian package qemu-system-common, a dependency of qemu-system-x86)"
    );
    p
}

/// virtiofsd: Debian 12's qemu-system-common ships QEMU's own at /usr/lib/qemu; later Debian
/// releases ship the Rust one (package virtiofsd) at /usr/libexec.
fn virtiofsd(socket: &Path, share: &Path) -> std::process::Command {
    let c_version = Path::new("/usr/lib/qemu/virtiofsd");
    let rust_version = Path::new("/usr/libexec/virtiofsd");
    if c_version.exists() {
        let mut cmd = std::process::Command::new(c_version);
        cmd.arg(format!("--socket-path={}", socket.display()))
            .args(["-o", &format!("source={}", share.display())])
            .args(["-o", "sandbox=chroot"]);
        cmd
    } else if rust_version.exists() {
        let mut cmd = std::process::Command::new(rust_version);
        cmd.arg("--socket-path")
            .arg(socket)
            .arg("--shared-dir")
            .arg(share)
            .args(["--sandbox", "chroot"]);
        cmd
    } else {
        panic!("no virtiofsd: install Debian's qemu-system-common (12) or virtiofsd (13+)")
    }
}

/// vhost-user net, vhost-user-blk and virtio-fs against real backends: QEMU's storage daemon
/// exporting a block node, virtiofsd sharing a folder, and a vhost-user net responder of our
/// own (tests/support/vhost_user.rs); each device realized and checked over QMP.
#[test]
fn vhost_user_devices_run_against_real_backends() {
    for syntax in [Syntax::TEXT, Syntax::json(QemuVersion::new(7, 2))] {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |n: &str| dir.path().join(n);

        // vhost-user-blk: qemu-storage-daemon exports a null-co node with two queues
        let blk_sock = p("vu,blk=.sock");
        let addr = opt::escape_value("socket path", &blk_sock.to_string_lossy()).expect("path");
        let mut qsd = std::process::Command::new(qemu_sibling("qemu-storage-daemon"));
        qsd.args([
            "--blockdev",
            "driver=null-co,node-name=n0,size=67108864",
            "--export",
            &format!(
                "type=vhost-user-blk,id=e0,node-name=n0,writable=on,num-queues=2,\
                 addr.type=unix,addr.path={addr}"
            ),
        ]);
        let _qsd = Helper::spawn(qsd, &p("qsd.log"), &blk_sock);

        // virtio-fs: virtiofsd shares a folder
        let share = p("share dir ü");
        std::fs::create_dir_all(&share).expect("share");
        let fs_sock = p("vu,fs=.sock");
        let mut fsd = Helper::spawn(virtiofsd(&fs_sock, &share), &p("virtiofsd.log"), &fs_sock);

        // vhost-user net: our responder, offering two queue pairs
        let net_sock = p("vu,net=.sock");
        let net_backend = VhostUserNet::listen(&net_sock, 2);

        let mut nic = Net::virtio(
            "nic1",
            NetBackend::VhostUser {
                chardev_id: "vuc".into(),
                socket_path: net_sock.to_string_lossy().into_owned(),
                queues: Some(2),
            },
        );
        if let Some(d) = nic.device.as_mut() {
            d.queues = Some(2);
            d.mac = Some("52:54:00:ab:cd:ef".into());
        }
        let c = shared_memory(dir.path())
            .device(nic)
            .device(VhostUserDevice {
                id: "vub".into(),
                driver: "vhost-user-blk-pci".into(),
                chardev_id: "vubc".into(),
                socket_path: blk_sock.to_string_lossy().into_owned(),
                num_queues: Some(2),
                pci: Pci::default(),
            })
            .device(VirtioFs {
                id: "vfs".into(),
                chardev_id: "vfsc".into(),
                socket_path: fs_sock.to_string_lossy().into_owned(),
                tag: "tag,=fs".into(),
                queue_size: Some(512),
                pci: Pci::default(),
            });
        let argv = c.build(&syntax).expect("build");
        assert_eq!(QemuConfig::parse(&argv).expect("parse"), c);
        let (p, mut q) = launch(c, syntax, FdPlan::new());

        let pci = pci_devices(&mut q);
        for id in ["nic1", "vub", "vfs"] {
            assert!(pci.contains_key(id), "{id} missing: {:?}", pci.keys());
        }
        // PCI ids: virtio vendor; subsystem 1 = net, 2 = block (transitional devices); the
        // modern-only fs device is 0x1040 + 26
        assert_eq!(pci["nic1"].0["id"]["vendor"], 0x1af4);
        assert_eq!(pci["nic1"].0["id"]["subsystem"], 1);
        assert_eq!(pci["vub"].0["id"]["subsystem"], 2);
        assert_eq!(pci["vfs"].0["id"]["device"], 0x1040 + 26);

        let dev = |id: &str| format!("/machine/peripheral/{id}");
        assert_eq!(q.qom(&dev("vub"), "num-queues"), 2);
        assert_eq!(q.qom(&dev("vub"), "chardev"), "vubc");
        assert_eq!(q.qom(&dev("vfs"), "tag"), "tag,=fs");
        assert_eq!(q.qom(&dev("vfs"), "queue-size"), 512);
        assert_eq!(q.qom(&dev("vfs"), "chardev"), "vfsc");
        assert_eq!(q.qom(&dev("nic1"), "netdev"), "nic1-net");
        assert_eq!(q.qom(&dev("nic1"), "mac"), "52:54:00:ab:cd:ef");
        assert_eq!(q.qom(&dev("nic1"), "mq"), true);
        assert_eq!(q.qom(&dev("nic1"), "vectors"), 6);

        // every socket chardev is connected to its backend
        let chardevs = q.ok("query-chardev", json!({}));
        for (label, sock) in [("vuc", &net_sock), ("vubc", &blk_sock), ("vfsc", &fs_sock)] {
            let c = chardevs
                .as_array()
                .expect("array")
                .iter()
                .find(|c| c["label"] == label)
                .unwrap_or_else(|| panic!("{label} not in {chardevs}"));
            // a connected client socket shows its (unnamed) local address; QEMU names the
            // path only while disconnected
            assert_eq!(c["filename"], "unix:", "{label} on {sock:?}: {c}");
            // vhost-user-fs talks over the chardev without installing frontend handlers
            if label != "vfsc" {
                assert_eq!(c["frontend-open"], true, "{c}");
            }
        }

        // the net backend was asked what a two-queue-pair netdev needs: one vhost device per
        // queue pair (each negotiating protocol features, each with two rings), the backend
        // claimed once and asked once how many queues it has
        let seen = net_backend.requests();
        assert!(
            net_backend.errors().is_empty(),
            "{:?}",
            net_backend.errors()
        );
        let count = |r: u32| seen.iter().filter(|x| **x == r).count();
        assert_eq!(count(vhost_user::GET_PROTOCOL_FEATURES), 2, "{seen:?}");
        assert_eq!(count(vhost_user::SET_PROTOCOL_FEATURES), 2, "{seen:?}");
        assert_eq!(count(vhost_user::SET_OWNER), 1, "{seen:?}");
        assert_eq!(count(vhost_user::GET_QUEUE_NUM), 1, "{seen:?}");
        assert_eq!(count(vhost_user::SET_VRING_CALL), 4, "{seen:?}");
        assert_eq!(count(vhost_user::SET_VRING_ENABLE), 4, "{seen:?}");
        // and the features it offered reached the guest-visible device
        let status = q.ok(
            "x-query-virtio-status",
            json!({"path": dev("nic1") + "/virtio-backend"}),
        );
        let host: Vec<&str> = status["host-features"]["dev-features"]
            .as_array()
            .expect("host features")
            .iter()
            .filter_map(|f| f.as_str()?.split(':').next())
            .collect();
        for offered in ["VIRTIO_NET_F_MQ", "VIRTIO_NET_F_MRG_RXBUF"] {
            assert!(host.contains(&offered), "{offered} not in {host:?}");
        }
        // virtio-net offers checksum offload by default; the backend did not, so it is gone
        assert!(!host.contains(&"VIRTIO_NET_F_CSUM"), "{host:?}");

        assert!(fsd.running(), "virtiofsd serves QEMU");
        q.ok("quit", json!({}));
        assert!(p.wait(Duration::from_secs(10)).expect("exit").success());
    }
}

/// Deletes a network interface (if it still exists) when dropped.
struct LinkGuard(String);

impl LinkGuard {
    fn exists(&self) -> bool {
        Path::new(&format!("/sys/class/net/{}", self.0)).exists()
    }
}

impl Drop for LinkGuard {
    fn drop(&mut self) {
        if self.exists() {
            let _ = std::process::Command::new("ip")
                .args(["link", "delete", &self.0])
                .status();
        }
    }
}

/// Accept one connection within 10 s.
fn accept_within(listener: &std::os::unix::net::UnixListener) -> std::os::unix::net::UnixStream {
    listener.set_nonblocking(true).expect("nonblocking");
    let start = std::time::Instant::now();
    loop {
        match listener.accept() {
            Ok((s, _)) => return s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "no connection in 10 s"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// A tap QEMU opens by name (multiqueue; we run as root), and a chardev connecting as a
/// client to a socket the test listens on.
#[test]
fn tap_by_ifname_and_client_socket_chardev() {
    for (n, syntax) in [Syntax::TEXT, Syntax::json(QemuVersion::new(7, 2))]
        .into_iter()
        .enumerate()
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let tap = LinkGuard(format!("vmwt{}x{n}", std::process::id() % 100_000));
        assert!(!tap.exists(), "{} exists already", tap.0);
        let sock = dir.path().join("cl,ient=.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");

        let mut nic = Net::virtio(
            "nic0",
            NetBackend::TapIfname {
                ifname: tap.0.clone(),
                queues: Some(2),
            },
        );
        if let Some(d) = nic.device.as_mut() {
            d.queues = Some(2);
        }
        let c = base(dir.path(), "q35")
            .device(nic)
            .device(Chardev {
                id: "cl0".into(),
                backend: ChardevBackend::Socket {
                    path: sock.to_string_lossy().into_owned(),
                    server: false,
                },
            })
            .device(Serial {
                id: "serial0".into(),
                chardev: "cl0".into(),
            });
        let argv = c.build(&syntax).expect("build");
        assert_eq!(QemuConfig::parse(&argv).expect("parse"), c);
        let (p, mut q) = launch(c, syntax, FdPlan::new());

        // the chardev connected to us, and QEMU reports it connected, with its frontend
        let _conn = accept_within(&listener);
        let chardevs = q.ok("query-chardev", json!({}));
        let cl0 = chardevs
            .as_array()
            .expect("array")
            .iter()
            .find(|c| c["label"] == "cl0")
            .unwrap_or_else(|| panic!("cl0 not in {chardevs}"))
            .clone();
        assert_eq!(
            cl0["filename"], "unix:",
            "connected (else `disconnected:unix:PATH`)"
        );
        assert_eq!(cl0["frontend-open"], true);
        assert_eq!(q.qom("/machine/peripheral/serial0", "chardev"), "cl0");

        // the tap exists, as a multiqueue tap with virtio-net headers, and is the netdev's
        assert!(tap.exists(), "QEMU created {}", tap.0);
        let flags = std::fs::read_to_string(format!("/sys/class/net/{}/tun_flags", tap.0))
            .expect("tun_flags");
        let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).expect("hex");
        const IFF_TAP: u32 = 0x0002;
        const IFF_MULTI_QUEUE: u32 = 0x0100;
        const IFF_VNET_HDR: u32 = 0x4000;
        assert_eq!(
            flags & (IFF_TAP | IFF_MULTI_QUEUE | IFF_VNET_HDR),
            IFF_TAP | IFF_MULTI_QUEUE | IFF_VNET_HDR,
            "tun_flags {flags:#x}"
        );
        let info = q.ok(
            "human-monitor-command",
            json!({"command-line": "info network"}),
        );
        let info = info.as_str().expect("text");
        assert!(
            info.contains(&format!(
                "nic0-net: index=0,type=tap,ifname={},script=no,downscript=no",
                tap.0
            )),
            "{info}"
        );
        assert_eq!(q.qom("/machine/peripheral/nic0", "netdev"), "nic0-net");
        assert_eq!(q.qom("/machine/peripheral/nic0", "mq"), true);

        q.ok("quit", json!({}));
        assert!(p.wait(Duration::from_secs(10)).expect("exit").success());
        assert!(!tap.exists(), "{} outlived QEMU", tap.0);
    }
}

/// A boot sector (16-bit real mode, loaded by SeaBIOS at 0000:7c00) that dumps every fw_cfg
/// file named `opt/...` to COM1: `FWCFG:`, then per file its name, a NUL, its size (u32
/// big-endian, as in the directory) and its contents; then a lone NUL. fw_cfg on x86: selector
/// port 0x510 (u16), data port 0x511 (u8 reads); key 0x19 is the file directory (u32 BE count,
/// then 64-byte entries: u32 BE size, u16 BE select, u16 reserved, char name[56]).
/// Hand-assembled; the comments are the source.
const FW_CFG_DUMPER: &[u8] = &[
    0xFA, //             7c00 cli
    0x31, 0xC0, //       7c01 xor ax,ax
    0x8E, 0xD8, //       7c03 mov ds,ax
    0x8E, 0xC0, //       7c05 mov es,ax
    0x8E, 0xD0, //       7c07 mov ss,ax
    0xBC, 0x00, 0x7C, // 7c09 mov sp,0x7c00
    0xFC, //             7c0c cld
    0xBE, 0xA4, 0x7C, // 7c0d mov si,marker
    0xAC, //             7c10 .m: lodsb
    0x84, 0xC0, //       7c11 test al,al
    0x74, 0x05, //       7c13 jz .dir
    0xE8, 0x7B, 0x00, // 7c15 call putc
    0xEB, 0xF6, //       7c18 jmp .m
    0xBA, 0x10, 0x05, // 7c1a .dir: mov dx,0x510
    0xB8, 0x19, 0x00, // 7c1d mov ax,0x19          ; the file directory
    0xEF, //             7c20 out dx,ax
    0x42, //             7c21 inc dx               ; 0x511
    0xEC, 0xEC, //       7c22 in al,dx (x2)        ; count bits 31..16, ignored
    0xEC, //             7c24 in al,dx
    0x88, 0xC4, //       7c25 mov ah,al
    0xEC, //             7c27 in al,dx             ; ax = count
    0x89, 0xC5, //       7c28 mov bp,ax            ; bp = entries left
    0x89, 0xC1, //       7c2a mov cx,ax
    0xC1, 0xE1, 0x06, // 7c2c shl cx,6             ; 64 bytes an entry
    0xBF, 0x00, 0x80, // 7c2f mov di,0x8000
    0xF3, 0x6C, //       7c32 rep insb             ; the directory to 0000:8000
    0xBE, 0x00, 0x80, // 7c34 mov si,0x8000
    0x85, 0xED, //       7c37 .next: test bp,bp
    0x74, 0x4F, //       7c39 jz .done
    0x4D, //             7c3b dec bp
    0x66, 0x81, 0x7C, 0x08, b'o', b'p', b't', b'/', // 7c3c cmp dword [si+8],"opt/"
    0x75, 0x3F, //       7c44 jne .skip
    0x56, //             7c46 push si
    0x83, 0xC6, 0x08, // 7c47 add si,8             ; the name
    0xAC, //             7c4a .n: lodsb
    0xE8, 0x45, 0x00, // 7c4b call putc            ; name and its NUL
    0x84, 0xC0, //       7c4e test al,al
    0x75, 0xF8, //       7c50 jnz .n
    0x5E, //             7c52 pop si
    0x8A, 0x64, 0x04, // 7c53 mov ah,[si+4]
    0x8A, 0x44, 0x05, // 7c56 mov al,[si+5]        ; ax = select
    0xBA, 0x10, 0x05, // 7c59 mov dx,0x510
    0xEF, //             7c5c out dx,ax            ; select the file
    0x8A, 0x04, //       7c5d mov al,[si]
    0xE8, 0x31, 0x00, // 7c5f call putc            ; the size, 4 bytes big-endian
    0x8A, 0x44, 0x01, // 7c62 mov al,[si+1]
    0xE8, 0x2B, 0x00, // 7c65 call putc
    0x8A, 0x44, 0x02, // 7c68 mov al,[si+2]
    0xE8, 0x25, 0x00, // 7c6b call putc
    0x8A, 0x44, 0x03, // 7c6e mov al,[si+3]
    0xE8, 0x1F, 0x00, // 7c71 call putc
    0x8A, 0x6C, 0x02, // 7c74 mov ch,[si+2]
    0x8A, 0x4C, 0x03, // 7c77 mov cl,[si+3]        ; cx = size (below 64 KiB)
    0xE3, 0x09, //       7c7a jcxz .skip
    0xBA, 0x11, 0x05, // 7c7c .c: mov dx,0x511
    0xEC, //             7c7f in al,dx
    0xE8, 0x10, 0x00, // 7c80 call putc
    0xE2, 0xF7, //       7c83 loop .c
    0x83, 0xC6, 0x40, // 7c85 .skip: add si,64
    0xEB, 0xAD, //       7c88 jmp .next
    0x30, 0xC0, //       7c8a .done: xor al,al
    0xE8, 0x04, 0x00, // 7c8c call putc            ; the end mark
    0xFA, //             7c8f .halt: cli
    0xF4, //             7c90 hlt
    0xEB, 0xFC, //       7c91 jmp .halt
    0x52, //             7c93 putc: push dx
    0x50, //             7c94 push ax
    0xBA, 0xFD, 0x03, // 7c95 mov dx,0x3fd         ; COM1 line status
    0xEC, //             7c98 .w: in al,dx
    0xA8, 0x20, //       7c99 test al,0x20         ; transmitter empty
    0x74, 0xFB, //       7c9b jz .w
    0x58, //             7c9d pop ax
    0xBA, 0xF8, 0x03, // 7c9e mov dx,0x3f8
    0xEE, //             7ca1 out dx,al
    0x5A, //             7ca2 pop dx
    0xC3, //             7ca3 ret
    b'F', b'W', b'C', b'F', b'G', b':', 0, // 7ca4 marker
];

/// The files [`FW_CFG_DUMPER`] wrote, if its output is complete.
fn fw_cfg_dump(out: &[u8]) -> Option<BTreeMap<String, Vec<u8>>> {
    let start = out.windows(6).position(|w| w == b"FWCFG:")? + 6;
    let mut rest = &out[start..];
    let mut files = BTreeMap::new();
    loop {
        let nul = rest.iter().position(|b| *b == 0)?;
        let name = String::from_utf8(rest[..nul].to_vec()).expect("UTF-8 name");
        rest = &rest[nul + 1..];
        if name.is_empty() {
            return Some(files);
        }
        let size = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let data = rest.get(4..4 + size)?.to_vec();
        rest = &rest[4 + size..];
        files.insert(name, data);
    }
}

/// fw_cfg items as the guest reads them: a boot sector dumps every `opt/` file to the serial
/// port; string and file contents (commas in both, and in the file's path) arrive exactly.
#[test]
fn fw_cfg_contents_reach_the_guest_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let mut boot = FW_CFG_DUMPER.to_vec();
    assert!(boot.len() <= 510, "the dumper fits a sector");
    boot.resize(510, 0);
    boot.extend_from_slice(&[0x55, 0xAA]);
    boot.resize(1 << 20, 0); // SeaBIOS will not boot a disk of one sector
    let disk = p("boot,disk=.img");
    std::fs::write(&disk, &boot).expect("disk");
    let file_contents: Vec<u8> = b"file,contents=1,,2\n"
        .iter()
        .copied()
        .chain(0..=255u8)
        .collect();
    let file = p("fw,cfg=file ü");
    std::fs::write(&file, &file_contents).expect("fw_cfg file");
    let string = "x,y=z,, \"quoted\" ü";

    let mut c = base(dir.path(), "q35");
    c.knobs.paused = false;
    let mut disk = Block::virtio("boot", &disk, Format::Raw);
    if let Some(d) = disk.device.as_mut() {
        d.bootindex = Some(1);
    }
    let serial_out = p("serial,out");
    let c = c
        .device(disk)
        .device(Chardev {
            id: "com1".into(),
            backend: ChardevBackend::File {
                path: serial_out.clone(),
            },
        })
        .device(Serial {
            id: "serial0".into(),
            chardev: "com1".into(),
        })
        .device(FwCfg {
            name: "opt/vmwire/string,=".into(),
            source: FwCfgSource::String(string.into()),
        })
        .device(FwCfg {
            name: "opt/vmwire/file".into(),
            source: FwCfgSource::File(file),
        });
    let (_p, _q) = launch(c, Syntax::TEXT, FdPlan::new());

    let start = std::time::Instant::now();
    let files = loop {
        let out = std::fs::read(&serial_out).unwrap_or_default();
        if let Some(files) = fw_cfg_dump(&out) {
            break files;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no complete dump on the serial port in 60 s: {:?}",
            String::from_utf8_lossy(&out)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let expect: BTreeMap<String, Vec<u8>> = [
        (
            "opt/vmwire/string,=".to_string(),
            string.as_bytes().to_vec(),
        ),
        ("opt/vmwire/file".to_string(), file_contents),
    ]
    .into_iter()
    .collect();
    assert_eq!(files, expect);
}

/// A text command line read back and built with JSON syntax runs in QEMU: options no typed kind
/// claims keep their values untyped and stay text (QEMU types them), typed kinds become JSON.
#[test]
fn parsed_text_options_built_as_json_run_in_qemu() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = base(dir.path(), "q35")
        .device(Balloon {
            id: "balloon0".into(),
            deflate_on_oom: true,
            pci: Pci::default(),
        })
        .build(&Syntax::TEXT)
        .expect("build");
    text.extend(
        [
            "-object",
            "iothread,id=io0,poll-max-ns=32,poll-grow=2",
            "-blockdev",
            "driver=null-co,node-name=n0,size=1048576,read-zeroes=on",
            "-netdev",
            "user,id=u0,ipv6=off,hostname=h,,1",
            "-device",
            "virtio-scsi-pci,id=scsi0,iothread=io0,num_queues=2,virtqueue_size=128",
        ]
        .map(String::from),
    );
    let c = QemuConfig::parse(&text).expect("parse");
    let json = Syntax::json(QemuVersion::new(7, 2));
    let argv = c.build(&json).expect("build");
    assert_eq!(QemuConfig::parse(&argv).expect("parse"), c);
    let arg_of = |flag: &str, needle: &str| {
        argv.windows(2)
            .find(|w| w[0] == flag && w[1].contains(needle))
            .map(|w| w[1].clone())
            .unwrap_or_else(|| panic!("{flag} with {needle} in {argv:?}"))
    };
    // untyped values: text, exactly as read
    assert_eq!(
        arg_of("-object", "io0"),
        "iothread,id=io0,poll-max-ns=32,poll-grow=2"
    );
    assert_eq!(arg_of("-netdev", "u0"), "user,id=u0,ipv6=off,hostname=h,,1");
    assert!(!arg_of("-blockdev", "n0").starts_with('{'));
    assert!(!arg_of("-device", "scsi0").starts_with('{'));
    // a typed kind read back from text: JSON with its types
    assert_eq!(
        arg_of("-device", "balloon0"),
        r#"{"deflate-on-oom":true,"driver":"virtio-balloon-pci","id":"balloon0"}"#
    );

    let (_p, mut q) = launch(c, json, FdPlan::new());
    assert_eq!(q.qom("/objects/io0", "poll-max-ns"), 32);
    assert_eq!(q.qom("/objects/io0", "poll-grow"), 2);
    assert_eq!(q.qom("/machine/peripheral/scsi0", "num_queues"), 2);
    assert_eq!(q.qom("/machine/peripheral/scsi0", "virtqueue_size"), 128);
    assert_eq!(
        q.qom("/machine/peripheral/scsi0", "iothread"),
        "/objects/io0"
    );
    assert_eq!(
        q.qom("/machine/peripheral/balloon0", "deflate-on-oom"),
        true
    );
    let nodes = named_nodes(&mut q);
    assert_eq!(nodes["n0"]["drv"], "null-co");
    assert_eq!(nodes["n0"]["image"]["virtual-size"], 1048576);
    let info = q.ok(
        "human-monitor-command",
        json!({"command-line": "info network"}),
    );
    assert!(
        info.as_str()
            .expect("text")
            .contains("u0: index=0,type=user"),
        "{info}"
    );
}

/// Run QEMU on `argv` and return its stderr, asserting it exits with an error within 10 s.
fn qemu_refuses(argv: &[String]) -> String {
    use std::io::Read;
    let mut child = std::process::Command::new(qemu().0)
        .args(argv)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn QEMU");
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("QEMU accepted {argv:?} (still running after 10 s)");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    assert!(!status.success(), "QEMU exited 0 on {argv:?}");
    err
}

/// What `validate()` refuses, QEMU 7.2 refuses too: each typed configuration is refused by
/// validate, and the argv of its fixed twin with the one argument changed the way the refused
/// configuration would write it makes QEMU exit with its own message.
#[test]
fn what_validate_refuses_qemu_refuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = || {
        let mut c = base(dir.path(), "q35");
        c.qmp.clear(); // QEMU is expected to exit, not to serve QMP
        c
    };
    let fw = |n: &str| FwCfg {
        name: n.into(),
        source: FwCfgSource::String("x".into()),
    };
    let rp = |id: &str, chassis: u64| PcieRootPort {
        id: id.into(),
        chassis,
        slot: 1,
        port: None,
        pci: Pci::default(),
    };
    let mem_of = |slots: Option<u64>, maxmem_mib: Option<u64>| {
        let mut c = base();
        c.memory = Some(Memory {
            size_mib: 128,
            slots,
            maxmem_mib,
        });
        c
    };
    let mem = |maxmem_mib: u64| mem_of(Some(2), Some(maxmem_mib));
    let file = |c: QemuConfig, f: fn(&mut QemuConfig, String)| {
        let mut c = c;
        f(&mut c, dir.path().join("f").to_string_lossy().into_owned());
        c
    };
    let empty = |c: QemuConfig, f: fn(&mut QemuConfig, String)| {
        let mut c = c;
        f(&mut c, String::new());
        c
    };
    let set_kernel = |c: &mut QemuConfig, p: String| {
        c.kernel = Some(Kernel {
            path: p,
            initrd: None,
            append: None,
        })
    };
    let set_bios = |c: &mut QemuConfig, p: String| c.bios = Some(p);
    let set_mem_path = |c: &mut QemuConfig, p: String| c.knobs.hugepages = Some(p);
    let set_rtc = |c: &mut QemuConfig, b: String| {
        c.rtc = Some(Rtc {
            base: b,
            clock: None,
            driftfix: None,
        })
    };
    let f = dir.path().join("f").to_string_lossy().into_owned();
    // (refused config, fixed twin, argument of the twin -> as the refused one writes it,
    //  QEMU's message)
    let cases: Vec<(QemuConfig, QemuConfig, String, String, &str)> = vec![
        (
            base().device(fw("opt/a")).device(fw("opt/a")),
            base().device(fw("opt/a")).device(fw("opt/b")),
            "name=opt/b,string=x".into(),
            "name=opt/a,string=x".into(),
            "duplicate fw_cfg file name: opt/a",
        ),
        (
            base().device(rp("rp1", 1)).device(rp("rp2", 1)),
            base().device(rp("rp1", 1)).device(rp("rp2", 2)),
            "pcie-root-port,id=rp2,chassis=2,slot=1".into(),
            "pcie-root-port,id=rp2,chassis=1,slot=1".into(),
            "Can't add chassis slot, error -16",
        ),
        (
            mem(128),
            mem(256),
            "size=128M,slots=2,maxmem=256M".into(),
            "size=128M,slots=2,maxmem=128M".into(),
            "memory slots were specified but maximum memory size (0x8000000) is equal to the \
             initial memory size",
        ),
        (
            mem_of(Some(0), None),
            mem_of(None, None),
            "size=128M".into(),
            "size=128M,slots=0".into(),
            "slots specified but no max-size",
        ),
        (
            mem_of(None, Some(64)),
            mem_of(None, Some(128)),
            "size=128M,maxmem=128M".into(),
            "size=128M,maxmem=64M".into(),
            "maximum memory size (0x4000000) must be at least the initial memory size",
        ),
        (
            mem_of(Some(257), Some(1024)),
            mem_of(Some(256), Some(1024)),
            "size=128M,slots=256,maxmem=1024M".into(),
            "size=128M,slots=257,maxmem=1024M".into(),
            "unsupported amount of memory slots: 257",
        ),
        (
            empty(base(), set_kernel),
            file(base(), set_kernel),
            f.clone(),
            String::new(),
            "could not open kernel file ''",
        ),
        (
            empty(base(), set_bios),
            file(base(), set_bios),
            f.clone(),
            String::new(),
            "could not load PC BIOS ''",
        ),
        (
            empty(base(), set_mem_path),
            file(base(), set_mem_path),
            f.clone(),
            String::new(),
            "can't open backing store  for guest RAM",
        ),
        (
            empty(base(), set_rtc),
            with_rtc_utc(base()),
            "base=utc".into(),
            "base=".into(),
            "invalid datetime format",
        ),
    ];
    for (bad, good, from, to, message) in cases {
        let refused = bad.validate();
        assert!(
            refused.is_err(),
            "validate accepts what QEMU refuses: {message}"
        );
        let mut argv = good.build(&Syntax::TEXT).expect("the fixed twin builds");
        let at = argv
            .iter()
            .position(|a| *a == from)
            .unwrap_or_else(|| panic!("{from:?} not in {argv:?}"));
        argv[at] = to;
        let e = qemu_refuses(&argv);
        assert!(e.contains(message), "{message:?} not in {e}");
    }
    // and the -m forms QEMU accepts, validate accepts: maxmem alone, 0 slots with maxmem = size
    for (slots, maxmem_mib) in [(None, Some(256)), (Some(0), Some(128))] {
        let mut c = crate::base(dir.path(), "q35");
        c.memory = Some(Memory {
            size_mib: 128,
            slots,
            maxmem_mib,
        });
        c.validate().expect("validates");
        let (_p, mut q) = launch(c, Syntax::TEXT, FdPlan::new());
        let m = q.ok("query-memory-size-summary", json!({}));
        assert_eq!(m["base-memory"], 128u64 << 20, "{slots:?} {maxmem_mib:?}");
    }
}

fn with_rtc_utc(mut c: QemuConfig) -> QemuConfig {
    c.rtc = Some(Rtc {
        base: "utc".into(),
        clock: None,
        driftfix: None,
    });
    c
}

/// A pcie-pci-bridge behind a root port, a conventional PCI device behind it: in QEMU's device
/// tree where the argv put them, in text and JSON syntax.
#[test]
fn pcie_pci_bridge_carries_a_pci_device() {
    let dir = tempfile::tempdir().expect("tempdir");
    for syntax in [Syntax::TEXT, Syntax::json(QemuVersion::new(7, 2))] {
        let c = base(dir.path(), "q35")
            .device(PcieRootPort {
                id: "rp1".into(),
                chassis: 1,
                slot: 1,
                port: None,
                pci: Pci::default(),
            })
            .device(PciePciBridge {
                id: "ppb".into(),
                msi: Some(false),
                pci: Pci::on("rp1"),
            })
            .device(Balloon {
                id: "b0".into(),
                deflate_on_oom: true,
                pci: Pci {
                    bus: Some("ppb".into()),
                    addr: Some("0x3".into()),
                },
            });
        let (_p, mut q) = launch(c, syntax, FdPlan::new());
        let pci = pci_devices(&mut q);
        assert_eq!(pci["rp1"].1, "root", "{pci:?}");
        assert_eq!(q.qom("/machine/peripheral/ppb", "type"), "pcie-pci-bridge");
        assert_eq!(q.qom("/machine/peripheral/ppb", "msi"), "off");
        // before the firmware numbers the buses, query-pci cannot see behind the root port:
        // ask QOM where each device sits
        assert_eq!(
            q.qom("/machine/peripheral/ppb", "parent_bus"),
            "/machine/peripheral/rp1/rp1"
        );
        assert_eq!(
            q.qom("/machine/peripheral/b0", "parent_bus"),
            "/machine/peripheral/ppb/ppb"
        );
        assert_eq!(q.qom("/machine/peripheral/b0", "addr"), 3 << 3);
        assert_eq!(q.qom("/machine/peripheral/b0", "deflate-on-oom"), true);
        assert_eq!(
            q.qom("/machine/peripheral/b0", "type"),
            "virtio-balloon-pci"
        );
        // let SeaBIOS number the buses, then query-pci shows the whole chain
        q.ok("cont", json!({}));
        let start = std::time::Instant::now();
        let pci = loop {
            let pci = pci_devices(&mut q);
            if pci.contains_key("b0") {
                break pci;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "firmware did not number the bridge's bus: {pci:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(pci["ppb"].1, "rp1", "{pci:?}");
        assert_eq!(pci["b0"].1, "ppb", "{pci:?}");
        assert_eq!(pci["b0"].0["slot"], 3);
        // Red Hat's PCIe-to-PCI bridge, class PCI bridge
        assert_eq!(pci["ppb"].0["id"]["vendor"], 0x1b36);
        assert_eq!(pci["ppb"].0["id"]["device"], 0x000e);
        assert_eq!(pci["ppb"].0["class_info"]["class"], 0x0604);
    }
}

/// A fresh (non-persistent) tap interface, as the fd QEMU inherits: /dev/net/tun attached with
/// TUNSETIFF (IFF_TAP | IFF_NO_PI). It goes away when the last fd to it closes.
#[allow(unsafe_code)]
fn open_tap() -> std::fs::File {
    use std::os::fd::AsRawFd;
    const TUNSETIFF: u64 = 0x4004_54ca;
    let f = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .expect("/dev/net/tun (we run as root)");
    let mut ifr = [0u8; 40];
    ifr[..7].copy_from_slice(b"vmwt%d\0");
    ifr[16..18].copy_from_slice(&(0x0002u16 | 0x1000).to_ne_bytes());
    // SAFETY: TUNSETIFF reads and writes a 40-byte struct ifreq, which `ifr` is, on an open
    // /dev/net/tun fd that `f` keeps alive for the call.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), TUNSETIFF as _, ifr.as_mut_ptr()) };
    assert_eq!(r, 0, "TUNSETIFF: {}", std::io::Error::last_os_error());
    f
}

/// Host resources this machine lacks, reached with everything else real: QEMU's own error
/// names the resource (vhost-net behind a real tap, a vhost-vsock fd, huge pages), the argv
/// itself was read as meant (QEMU echoes it in its error).
#[test]
fn vhost_fds_and_hugetlb_memory_fail_on_the_host_resource() {
    let dir = tempfile::tempdir().expect("tempdir");
    let devnull = || std::fs::File::open("/dev/null").expect("/dev/null");

    // a real tap by fd runs (the fd arrives and QEMU takes it as a tap) ...
    let mut fds = FdPlan::new();
    let t = fds.add(open_tap());
    let c = base(dir.path(), "q35").device(Net::virtio(
        "nic0",
        NetBackend::TapFds {
            fds: vec![t],
            vhost: false,
            vhostfds: vec![],
        },
    ));
    let (p, mut q) = launch(c, Syntax::TEXT, fds);
    let info = q.ok(
        "human-monitor-command",
        json!({"command-line": "info network"}),
    );
    assert!(
        info.as_str()
            .is_some_and(|s| s.contains(&format!("fd={t}"))),
        "{info}"
    );
    drop(p);
    // ... and with vhost=on and a vhostfd that is no /dev/vhost-net (this machine has none),
    // QEMU fails on vhost-net itself
    let mut fds = FdPlan::new();
    let t = fds.add(open_tap());
    let v = fds.add(devnull());
    let c = base(dir.path(), "q35").device(Net::virtio(
        "nic0",
        NetBackend::TapFds {
            fds: vec![t],
            vhost: true,
            vhostfds: vec![v],
        },
    ));
    let e = launch_err(c, fds);
    assert!(e.contains(&format!("fds={t},vhost=on,vhostfds={v}")), "{e}");
    assert!(e.contains("vhost_set_owner failed"), "{e}");
    assert!(
        e.contains("vhost-net requested but could not be initialized"),
        "{e}"
    );

    // vsock with an inherited vhostfd that is no /dev/vhost-vsock
    let mut fds = FdPlan::new();
    let v = fds.add(devnull());
    let c = base(dir.path(), "q35").device(Vsock {
        id: "vs0".into(),
        guest_cid: 3,
        vhostfd: Some(v),
        pci: Pci::default(),
    });
    let e = launch_err(c, fds);
    assert!(e.contains(&format!("vhostfd={v}")), "{e}");
    assert!(e.contains("vhost_set_owner failed"), "{e}");

    // guest RAM in a hugetlb memfd: needs free huge pages
    let free_huge: u64 = std::fs::read_to_string("/proc/meminfo")
        .expect("meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("HugePages_Free");
    let mut c = base(dir.path(), "q35").device(MemoryBackend {
        id: "ram".into(),
        kind: MemoryKind::Memfd { hugetlb: true },
        size: 128 << 20,
        share: true,
        prealloc: false,
    });
    if let Some(m) = c.machine.as_mut() {
        m.options.push(("memory-backend".into(), "ram".into()));
    }
    if free_huge * 2 < 128 {
        let e = launch_err(c, FdPlan::new());
        assert!(
            e.contains("unable to map backing store for guest RAM: Cannot allocate memory"),
            "{free_huge} free huge pages: {e}"
        );
    } else {
        let (_p, mut q) = launch(c, Syntax::TEXT, FdPlan::new());
        assert_eq!(q.qom("/objects/ram", "hugetlb"), true);
    }
}

/// -rtc base/clock/driftfix as QEMU applies them: the RTC's date and its lost-tick policy.
#[test]
fn rtc_base_and_driftfix_reach_qemu() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (driftfix, policy) in [
        (Some("slew"), "slew"),
        (Some("none"), "discard"),
        (None, "discard"),
    ] {
        let mut c = base(dir.path(), "q35");
        c.rtc = Some(Rtc {
            base: "2006-06-17T16:01:21".into(),
            clock: Some("vm".into()),
            driftfix: driftfix.map(Into::into),
        });
        let (_p, mut q) = launch(c, Syntax::TEXT, FdPlan::new());
        let rtc = q.qom("/machine", "rtc_state");
        let rtc = rtc.as_str().expect("a path");
        assert_eq!(q.qom(rtc, "lost_tick_policy"), policy, "{driftfix:?}");
        // clock=vm and -S: the guest clock has not moved
        assert_eq!(
            q.qom("/machine", "rtc-time"),
            json!({"tm_year": 106, "tm_mon": 5, "tm_mday": 17, "tm_hour": 16, "tm_min": 1, "tm_sec": 21})
        );
    }
}
