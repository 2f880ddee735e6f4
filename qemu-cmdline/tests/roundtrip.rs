//! parse ∘ build is the identity, for every kind and any string in paths, names and values; ids
//! are either kept exactly or refused with a typed error; validation catches what QEMU would.

use proptest::prelude::*;
use qemu_cmdline::devices::Rng;
use qemu_cmdline::devices::*;
use qemu_cmdline::*;

fn pci() -> Pci {
    Pci {
        bus: Some("rp1".into()),
        addr: Some("0x0".into()),
    }
}

/// `-mem-path` with `s` in the path (the knob `every_kind` cannot hold).
fn mem_path(s: &str) -> QemuConfig {
    let mut c = QemuConfig::new();
    c.machine = Some(Machine::new("q35"));
    c.knobs.hugepages = Some(format!("/hp/{s}"));
    c
}

/// A configuration holding every built-in kind, with `s` in every free-text field.
fn every_kind(s: &str) -> QemuConfig {
    let mut c = QemuConfig::new().qmp("qmp0", &format!("/run/{s}/qmp.sock"));
    c.name = Some(Name {
        guest: s.into(),
        debug_threads: true,
    });
    c.uuid = Some("0b7d2b5c-4a4e-4e8e-9a53-2f1c9b1d0e7f".into());
    c.machine = Some(
        Machine::new("q35")
            .accel("tcg")
            .option("nvdimm", "on")
            .option("kernel-irqchip", "split")
            .option("memory-backend", "ram0"),
    );
    c.cpu = Some(Cpu {
        model: "qemu64".into(),
        features: vec![("pmu".into(), "off".into())],
    });
    c.smp = Some(Smp {
        cpus: 2,
        sockets: Some(2),
        dies: Some(1),
        cores: Some(1),
        threads: Some(2),
        maxcpus: Some(4),
    });
    c.memory = Some(Memory {
        size_mib: 256,
        slots: Some(2),
        maxmem_mib: Some(1024),
    });
    c.kernel = Some(Kernel {
        path: format!("/k/{s}"),
        initrd: Some(format!("/i/{s}")),
        append: Some(format!("console=ttyS0 {s}")),
    });
    c.bios = Some(format!("/b/{s}"));
    c.rtc = Some(Rtc {
        base: "2006-06-17T16:01:21".into(),
        clock: Some("vm".into()),
        driftfix: Some("slew".into()),
    });
    c.vga = Some("std".into());
    c.globals = vec![
        Global {
            driver: "virtio-blk-pci".into(),
            property: "serial".into(),
            value: s.into(),
        },
        Global {
            driver: "virtio-rng-pci".into(),
            property: "period".into(),
            value: "2000".into(),
        },
    ];
    c.knobs = Knobs {
        no_user_config: true,
        nodefaults: true,
        display: Some(Display::None),
        daemonize: false,
        // -mem-path and memory-backend= exclude each other (QEMU refuses both); the vhost-user
        // devices here need the backend, so -mem-path is covered by `mem_path(s)`.
        hugepages: None,
        mem_prealloc: true,
        mem_lock: true,
        paused: true,
    };
    c.add_fds = vec![AddFd {
        fd: 3,
        set: 1,
        opaque: Some(s.into()),
    }];
    let rp = PcieRootPort {
        id: "rp1".into(),
        chassis: 1,
        slot: 1,
        port: Some(16),
        pci: Pci::default(),
    };
    let mut disk = Block::virtio("disk0", &format!("/img/{s}.qcow2"), Format::Qcow2);
    disk.read_only = true;
    if let Some(d) = disk.device.as_mut() {
        d.pci = pci();
        d.serial = Some(s.into());
        d.bootindex = Some(1);
    }
    let mut raw = Block::virtio("raw0", &format!("/img/{s}.raw"), Format::Raw);
    raw.device = None;
    let scsi_disk = Block {
        device: Some(BlockDevice {
            id: "sd0".into(),
            kind: Frontend::ScsiHd,
            pci: Pci::on("scsi0.0"),
            serial: None,
            bootindex: None,
        }),
        ..Block::virtio("sd0", &format!("/img/{s}"), Format::Raw)
    };
    let ide_disk = Block {
        device: Some(BlockDevice {
            id: "hd0".into(),
            kind: Frontend::IdeHd,
            pci: Pci::on("ide.0"),
            serial: None,
            bootindex: None,
        }),
        ..Block::virtio("hd0", s, Format::Raw)
    };
    let mut nic = Net::virtio(
        "nic0",
        NetBackend::TapFds {
            fds: vec![4, 5],
            vhost: true,
            vhostfds: vec![6, 7],
        },
    );
    if let Some(d) = nic.device.as_mut() {
        d.mac = Some("52:54:00:12:34:56".into());
        d.queues = Some(2);
    }
    c.add_fds.push(AddFd {
        fd: 8,
        set: 2,
        opaque: None,
    });
    c.devices = vec![
        Box::new(MemoryBackend {
            id: "ram0".into(),
            kind: MemoryKind::Memfd { hugetlb: false },
            size: 256 << 20,
            share: true,
            prealloc: false,
        }),
        Box::new(Generic::object(
            "iothread",
            "io0",
            vec![("poll-max-ns".into(), Prop::Num(32))],
        )),
        Box::new(Iommu {
            id: "iommu0".into(),
            model: IommuModel::Intel {
                caching_mode: true,
                intremap: false,
            },
        }),
        Box::new(rp),
        Box::new(PciBridge {
            id: "br0".into(),
            chassis_nr: 2,
            pci: Pci::default(),
        }),
        Box::new(PcieRootPort {
            id: "rp2".into(),
            chassis: 1,
            slot: 2,
            port: None,
            pci: Pci::default(),
        }),
        Box::new(PciePciBridge {
            id: "ppb0".into(),
            msi: Some(false),
            pci: Pci::on("rp2"),
        }),
        Box::new(disk),
        Box::new(raw),
        Box::new(ScsiController {
            id: "scsi0".into(),
            iothread: Some("io0".into()),
            num_queues: Some(2),
            pci: Pci::on("br0"),
        }),
        Box::new(scsi_disk),
        Box::new(ide_disk),
        Box::new(nic),
        Box::new(Net::virtio("nic1", NetBackend::User)),
        Box::new(Net::virtio(
            "nic2",
            NetBackend::TapIfname {
                ifname: "tap0".into(),
                queues: Some(2),
            },
        )),
        Box::new(Net::virtio(
            "nic3",
            NetBackend::VhostUser {
                chardev_id: "vu0".into(),
                socket_path: format!("/s/{s}"),
                queues: Some(2),
            },
        )),
        Box::new(Virtio9p {
            id: "fs0".into(),
            fsdev_id: "fsdev0".into(),
            path: format!("/share/{s}"),
            mount_tag: s.into(),
            security_model: "none".into(),
            readonly: true,
            pci: Pci::default(),
        }),
        Box::new(VirtioFs {
            id: "vfs0".into(),
            chardev_id: "vfsc0".into(),
            socket_path: format!("/s/{s}"),
            tag: s.into(),
            queue_size: Some(1024),
            pci: Pci::default(),
        }),
        Box::new(Chardev {
            id: "ch0".into(),
            backend: ChardevBackend::Socket {
                path: format!("/s/{s}"),
                server: true,
            },
        }),
        Box::new(Chardev {
            id: "ch1".into(),
            backend: ChardevBackend::Socket {
                path: format!("/s/{s}"),
                server: false,
            },
        }),
        Box::new(Chardev {
            id: "ch5".into(),
            backend: ChardevBackend::SocketFd {
                fd: 10,
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
                path: format!("/log/{s}"),
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
            name: Some(s.into()),
            console: false,
        }),
        Box::new(VirtPort {
            id: "con0".into(),
            chardev: "ch4".into(),
            bus: "vser0.0".into(),
            name: None,
            console: true,
        }),
        Box::new(VhostUserDevice {
            id: "vub0".into(),
            driver: "vhost-user-blk-pci".into(),
            chardev_id: "vubc0".into(),
            socket_path: format!("/s/{s}"),
            num_queues: Some(2),
            pci: Pci::default(),
        }),
        Box::new(Vfio {
            id: "gpu0".into(),
            host: "0000:01:00.0".into(),
            pci: Pci::default(),
        }),
        Box::new(Vsock {
            id: "vsock0".into(),
            guest_cid: 3,
            vhostfd: Some(9),
            pci: Pci::default(),
        }),
        Box::new(Rng {
            id: "rng0".into(),
            object_id: "rngb0".into(),
            filename: Some(format!("/dev/{s}")),
            max_bytes: Some(1024),
            period: Some(1000),
            pci: Pci::default(),
        }),
        Box::new(Rng {
            id: "rng1".into(),
            object_id: "rngb1".into(),
            filename: None,
            max_bytes: None,
            period: None,
            pci: Pci::default(),
        }),
        Box::new(Balloon {
            id: "balloon0".into(),
            deflate_on_oom: true,
            pci: Pci {
                bus: Some("ppb0".into()),
                addr: Some("0x3".into()),
            },
        }),
        Box::new(Iommu {
            id: "viommu0".into(),
            model: IommuModel::Virtio(Pci::default()),
        }),
        Box::new(Pvpanic {
            id: "pvpanic0".into(),
            ioport: Some(0x505),
        }),
        Box::new(FwCfg {
            name: "opt/vmwire/a".into(),
            source: FwCfgSource::String(s.into()),
        }),
        Box::new(FwCfg {
            name: "opt/vmwire/b".into(),
            source: FwCfgSource::File(format!("/f/{s}")),
        }),
        Box::new(MemoryBackend {
            id: "mem0".into(),
            kind: MemoryKind::Ram,
            size: 64 << 20,
            share: false,
            prealloc: false,
        }),
        Box::new(MemoryBackend {
            id: "mem1".into(),
            kind: MemoryKind::File {
                mem_path: format!("/m/{s}"),
            },
            size: 64 << 20,
            share: true,
            prealloc: true,
        }),
        Box::new(MemoryBackend {
            id: "mem2".into(),
            kind: MemoryKind::Memfd { hugetlb: false },
            size: 64 << 20,
            share: true,
            prealloc: false,
        }),
        Box::new(Nvdimm {
            id: "nv0".into(),
            memdev: "mem1".into(),
            label_size: Some(128 << 10),
        }),
        Box::new(Generic::device(
            "virtio-keyboard-pci",
            "kbd0",
            vec![("addr".into(), Prop::Str("0x1f".into()))],
        )),
    ];
    c
}

fn syntaxes() -> [Syntax; 3] {
    [
        Syntax::TEXT,
        Syntax::json(QemuVersion::new(7, 2)),
        Syntax::json(QemuVersion::new(6, 0)),
    ]
}

fn assert_round_trip(c: &QemuConfig) {
    for syntax in syntaxes() {
        let argv = c
            .build(&syntax)
            .unwrap_or_else(|e| panic!("build {syntax:?}: {e}"));
        let back = QemuConfig::parse(&argv).unwrap_or_else(|e| panic!("parse {argv:?}: {e}"));
        assert_eq!(
            back.build(&syntax).unwrap(),
            argv,
            "build(parse(build(c))) != build(c)"
        );
        assert_eq!(&back, c, "parse(build(c)) != c for {argv:?}");
    }
}

#[test]
fn every_kind_round_trips_in_every_syntax() {
    let c = every_kind("plain");
    assert_round_trip(&c);
    // no option fell back to Generic except the two generic ones
    let generic = c
        .devices
        .iter()
        .filter(|d| d.as_any().is::<Generic>())
        .count();
    let back = QemuConfig::parse(&c.build(&Syntax::TEXT).unwrap()).unwrap();
    assert_eq!(
        back.devices
            .iter()
            .filter(|d| d.as_any().is::<Generic>())
            .count(),
        generic
    );
}

#[test]
fn json_is_used_only_where_the_version_reads_it() {
    let c = every_kind("x");
    let argv = c.build(&Syntax::json(QemuVersion::new(6, 2))).unwrap();
    let json_flags: std::collections::BTreeSet<&str> = argv
        .windows(2)
        .filter(|w| w[1].starts_with('{'))
        .map(|w| w[0].as_str())
        .collect();
    assert_eq!(
        json_flags,
        ["-blockdev", "-device", "-object"].into_iter().collect()
    );
    let argv = c.build(&Syntax::json(QemuVersion::new(7, 2))).unwrap();
    assert!(argv
        .windows(2)
        .any(|w| w[0] == "-netdev" && w[1].starts_with('{')));
}

#[test]
fn an_injection_attempt_stays_a_value() {
    let c = every_kind("a,read-only=on,b");
    let argv = c.build(&Syntax::TEXT).unwrap();
    assert!(argv.contains(
        &"driver=file,node-name=disk0-file,filename=/img/a,,read-only=on,,b.qcow2,read-only=on"
            .to_string()
    ));
    assert_round_trip(&c);
}

/// argv made of the options this crate writes, some arguments mutated; only argv that parse
/// and build (in at least one syntax) are yielded.
fn plausible_argv() -> impl Strategy<Value = Vec<String>> {
    let c = every_kind("p,q=r");
    let mut pool = Vec::new();
    for s in syntaxes() {
        let a = c.build(&s).expect("build");
        pool.extend(a.chunks(2).map(|w| w.to_vec()));
    }
    let piece = prop_oneof![
        Just(String::new()),
        Just(",".to_string()),
        Just("=".to_string()),
        Just(",,".to_string()),
        "[a-z0-9]{1,3}",
        Just("on".to_string())
    ];
    let item = (
        proptest::sample::select(pool),
        0usize..200,
        piece,
        any::<bool>(),
        proptest::bool::weighted(0.3),
    )
        .prop_map(|(pair, at, piece, cut, mutate)| {
            let mut pair = pair;
            if let Some(arg) = pair.get_mut(1).filter(|_| mutate) {
                let mut i = at.min(arg.len());
                while !arg.is_char_boundary(i) {
                    i -= 1;
                }
                if cut {
                    arg.truncate(i);
                }
                arg.insert_str(i, &piece);
            }
            pair
        });
    proptest::collection::vec(item, 0..12)
        .prop_map(|v| v.concat())
        .prop_filter("parses and builds", |argv| {
            QemuConfig::parse(argv).is_ok_and(|c| syntaxes().iter().any(|s| c.build(s).is_ok()))
        })
}

fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>().prop_map(|s| s.replace('\0', "")),
        "[,=\"' a-zé€💥\\\\{}:/.\\-]{0,24}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_string_in_paths_and_values_survives(s in nasty()) {
        for c in [every_kind(&s), mem_path(&s)] {
            match c.build(&Syntax::TEXT) {
                Ok(_) => assert_round_trip(&c),
                // the only refusal allowed: an empty path where one is required
                Err(e) => prop_assert!(s.is_empty() && matches!(e, Error::Missing { .. }), "{s:?}: {e}"),
            }
        }
    }

    #[test]
    fn any_id_is_kept_exactly_or_refused_typed(id in nasty()) {
        let well_formed = id.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && id.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
        let c = QemuConfig::new()
            .device(Chardev { id: id.clone(), backend: ChardevBackend::Null })
            .device(Generic::object("iothread", &id, vec![]))
            .device(Balloon { id: id.clone(), deflate_on_oom: false, pci: Pci::default() });
        match c.build(&Syntax::TEXT) {
            Ok(_) => { prop_assert!(well_formed); assert_round_trip(&c) }
            Err(e) => prop_assert!(!well_formed && matches!(e, Error::InvalidId { .. }), "{id:?}: {e}"),
        }
    }

    #[test]
    fn nul_is_refused_typed(a in nasty(), b in nasty()) {
        let c = QemuConfig::new().device(Block::virtio("d", &format!("{a}\0{b}"), Format::Raw));
        let refused = matches!(c.build(&Syntax::TEXT), Err(Error::Unrepresentable { .. }));
        prop_assert!(refused);
    }

    #[test]
    fn whatever_parses_and_builds_is_a_fixed_point(argv in plausible_argv()) {
        // the strategy yields only argv that parse and build: every case checks the property
        let c = QemuConfig::parse(&argv).expect("plausible_argv yields argv that parse");
        let mut built = 0;
        for syntax in syntaxes() {
            if let Ok(a) = c.build(&syntax) {
                built += 1;
                let c2 = QemuConfig::parse(&a).unwrap_or_else(|e| panic!("{argv:?} -> {a:?}: {e}"));
                prop_assert_eq!(&c2, &c, "{:?}", syntax);
                prop_assert_eq!(c2.build(&syntax).expect("rebuild"), a);
            }
        }
        prop_assert!(built > 0, "plausible_argv yields configs that build: {:?}", argv);
    }

    #[test]
    fn parse_never_panics(argv in proptest::collection::vec(nasty(), 0..6)) {
        let _ = QemuConfig::parse(&argv);
    }
}

#[test]
fn validation_errors_are_typed() {
    let base = || {
        let mut c = QemuConfig::new();
        c.machine = Some(Machine::new("q35"));
        c
    };
    let dup = base()
        .device(Balloon {
            id: "x".into(),
            deflate_on_oom: false,
            pci: Pci::default(),
        })
        .device(Pvpanic {
            id: "x".into(),
            ioport: None,
        });
    assert!(matches!(
        dup.validate(),
        Err(Error::DuplicateId {
            namespace: Namespace::Device,
            ..
        })
    ));

    let cases: Vec<(QemuConfig, Namespace)> = vec![
        (
            base().device(Balloon {
                id: "b".into(),
                deflate_on_oom: false,
                pci: Pci::on("nosuchbus"),
            }),
            Namespace::Bus(BusKind::Pci),
        ),
        (
            base().device(Serial {
                id: "s".into(),
                chardev: "nochar".into(),
            }),
            Namespace::Chardev,
        ),
        (
            base().device(Nvdimm {
                id: "n".into(),
                memdev: "nomem".into(),
                label_size: None,
            }),
            Namespace::Object,
        ),
        (
            base().device(ScsiController {
                id: "c".into(),
                iothread: Some("noio".into()),
                num_queues: None,
                pci: Pci::default(),
            }),
            Namespace::Object,
        ),
        (
            base().device(Block {
                device: Some(BlockDevice {
                    id: "d".into(),
                    kind: Frontend::ScsiHd,
                    pci: Pci::on("scsi9.0"),
                    serial: None,
                    bootindex: None,
                }),
                ..Block::virtio("d", "/x", Format::Raw)
            }),
            Namespace::Bus(BusKind::Scsi),
        ),
    ];
    for (c, ns) in cases {
        match c.validate() {
            Err(Error::DanglingReference { namespace, .. }) => assert_eq!(namespace, ns),
            other => panic!("expected a dangling {ns} reference, got {other:?}"),
        }
    }

    let mut c = base();
    c.smp = Some(Smp {
        cpus: 4,
        maxcpus: Some(2),
        ..Smp::default()
    });
    assert!(matches!(c.validate(), Err(Error::Impossible(_))));
    let mut c = base();
    c.smp = Some(Smp {
        cpus: 2,
        sockets: Some(1),
        dies: Some(1),
        cores: Some(1),
        threads: Some(1),
        maxcpus: None,
    });
    assert!(matches!(c.validate(), Err(Error::Impossible(_))));

    let nv = || {
        base()
            .device(MemoryBackend {
                id: "m".into(),
                kind: MemoryKind::Ram,
                size: 1 << 20,
                share: false,
                prealloc: false,
            })
            .device(Nvdimm {
                id: "n".into(),
                memdev: "m".into(),
                label_size: None,
            })
    };
    assert!(matches!(nv().validate(), Err(Error::Impossible(m)) if m.contains("slots")));
    let mut c = nv();
    c.memory = Some(Memory {
        size_mib: 128,
        slots: Some(1),
        maxmem_mib: Some(512),
    });
    assert!(matches!(c.validate(), Err(Error::Impossible(m)) if m.contains("nvdimm=on")));
    c.machine = Some(Machine::new("q35").option("nvdimm", "on"));
    assert!(c.validate().is_ok());

    // a device on a bus of the wrong kind
    let c = base()
        .device(ScsiController {
            id: "scsi0".into(),
            iothread: None,
            num_queues: None,
            pci: Pci::default(),
        })
        .device(Balloon {
            id: "b".into(),
            deflate_on_oom: false,
            pci: Pci::on("scsi0.0"),
        });
    assert!(
        matches!(c.validate(), Err(Error::Impossible(m)) if m.contains("which is a SCSI bus, not a PCI bus"))
    );

    // vhost-user needs shared guest memory, named by memory-backend=, of the -m size
    let vu = || {
        Net::virtio(
            "n",
            NetBackend::VhostUser {
                chardev_id: "c".into(),
                socket_path: "/s".into(),
                queues: None,
            },
        )
    };
    assert!(
        matches!(base().device(vu()).validate(), Err(Error::Impossible(m)) if m.contains("shared guest memory"))
    );
    let shared = |share: bool, mib: u64| {
        let mut c = base().device(MemoryBackend {
            id: "ram".into(),
            kind: MemoryKind::Memfd { hugetlb: false },
            size: mib << 20,
            share,
            prealloc: false,
        });
        c.machine = Some(Machine::new("q35").option("memory-backend", "ram"));
        c.memory = Some(Memory {
            size_mib: 128,
            ..Memory::default()
        });
        c.device(vu())
    };
    assert!(
        matches!(shared(false, 128).validate(), Err(Error::Impossible(m)) if m.contains("share off"))
    );
    assert!(
        matches!(shared(true, 64).validate(), Err(Error::Impossible(m)) if m.contains("must match"))
    );
    assert!(shared(true, 128).validate().is_ok());
    let mut c = base();
    c.machine = Some(Machine::new("q35").option("memory-backend", "nothing"));
    assert!(matches!(
        c.validate(),
        Err(Error::DanglingReference {
            namespace: Namespace::Object,
            ..
        })
    ));

    // -mem-path and -machine memory-backend= together: QEMU 7.2 exits with "'-mem-path' can't
    // be used together with '-machine memory-backend'"
    let mut c = shared(true, 128);
    c.knobs.hugepages = Some("/dev/hugepages".into());
    assert!(matches!(c.validate(), Err(Error::Impossible(m)) if m.contains("-mem-path")));

    // validate() refuses what build() would: a malformed device id, a bad uuid
    let c = base().device(Balloon {
        id: "".into(),
        deflate_on_oom: false,
        pci: Pci::default(),
    });
    assert!(
        matches!(c.validate(), Err(Error::InvalidId { .. })),
        "{:?}",
        c.validate()
    );
    let mut c = base();
    c.uuid = Some("not-a-uuid".into());
    assert!(c.validate().is_err());

    // numbers that would overflow are refused, not wrapped
    let mut c = base();
    c.smp = Some(Smp {
        cpus: 1,
        sockets: Some(u64::MAX),
        dies: Some(2),
        cores: Some(2),
        threads: Some(2),
        maxcpus: None,
    });
    assert!(matches!(c.validate(), Err(Error::Impossible(m)) if m.contains("overflows")));
    let mut n = Net::virtio("n", NetBackend::User);
    if let Some(d) = n.device.as_mut() {
        d.queues = Some(u64::MAX);
    }
    assert!(
        matches!(base().device(n).validate(), Err(Error::Impossible(m)) if m.contains("at most 1024"))
    );
    let mut plan = FdPlan::new();
    let null = std::fs::File::open("/dev/null").expect("open /dev/null");
    assert!(matches!(
        plan.add_at(i32::MAX, null),
        Err(Error::FdPlan(m)) if m.contains("above")
    ));

    // generic options' references are checked like the typed kinds'
    let g =
        |props: Vec<(String, Prop)>| base().device(Generic::device("virtio-blk-pci", "g", props));
    assert!(matches!(
        g(vec![("drive".into(), Prop::Str("nowhere".into()))]).validate(),
        Err(Error::DanglingReference { namespace: Namespace::Node, id, .. }) if id == "nowhere"
    ));
    let c = g(vec![("drive".into(), Prop::Str("d0".into()))]).device(Generic::object(
        "iothread",
        "io9",
        vec![],
    ));
    assert!(matches!(c.validate(), Err(Error::DanglingReference { .. })));
    let mut node = Opt::bare("-blockdev");
    node.props
        .push(("driver".into(), Prop::Str("null-co".into())));
    node.props
        .push(("node-name".into(), Prop::Str("d0".into())));
    assert!(c.device(Generic { opt: node }).validate().is_ok());

    // isa devices need an ISA bus: a machine without known buses has none
    let mut c = QemuConfig::new().device(Pvpanic {
        id: "p".into(),
        ioport: None,
    });
    assert!(
        c.validate().is_ok(),
        "no -machine means QEMU's default pc, which has isa.0"
    );
    c.machine = Some(Machine::new("microvm"));
    assert!(matches!(
        c.validate(),
        Err(Error::DanglingReference {
            namespace: Namespace::Bus(BusKind::Isa),
            ..
        })
    ));

    let mut pc = QemuConfig::new().device(PcieRootPort {
        id: "rp".into(),
        chassis: 1,
        slot: 0,
        port: None,
        pci: Pci::default(),
    });
    pc.machine = Some(Machine::new("pc"));
    assert!(matches!(pc.validate(), Err(Error::Impossible(m)) if m.contains("q35")));

    let q = Net::virtio(
        "n",
        NetBackend::TapFds {
            fds: vec![3],
            vhost: false,
            vhostfds: vec![],
        },
    );
    let mut q2 = q.clone();
    q2.device.as_mut().unwrap().queues = Some(2);
    assert!(
        matches!(base().device(q2).validate(), Err(Error::Impossible(m)) if m.contains("2 queues but 1 tap fds"))
    );

    // implied values and keys that cannot be escaped
    let mut c = base();
    c.machine = Some(Machine::new("q35,accel=kvm"));
    assert!(matches!(
        c.build(&Syntax::TEXT),
        Err(Error::Unrepresentable { .. })
    ));
    let mut c = base();
    c.machine = Some(Machine::new("q35").option("a=b", "c"));
    assert!(matches!(
        c.build(&Syntax::TEXT),
        Err(Error::Unrepresentable { .. })
    ));
    let mut c = base();
    c.cpu = Some(Cpu {
        model: "max".into(),
        features: vec![("x".into(), "a,b".into())],
    });
    assert!(matches!(
        c.build(&Syntax::TEXT),
        Err(Error::Unrepresentable { .. })
    ));
    let c = base().device(Generic::device("virtio-rng-pci,id=x", "r", vec![]));
    assert!(matches!(
        c.build(&Syntax::TEXT),
        Err(Error::Unrepresentable { .. })
    ));
    let c = base().device(Generic::device("virtio-rng-pci", "r", vec![]).clone());
    assert!(c.build(&Syntax::TEXT).is_ok());
    let c = base().device(Block::virtio(
        "thisnodenameislongerthan31bytes",
        "/x",
        Format::Raw,
    ));
    assert!(matches!(
        c.build(&Syntax::TEXT),
        Err(Error::InvalidId {
            what: "node-name",
            ..
        })
    ));
}

#[test]
fn parse_refuses_what_it_does_not_write() {
    for argv in [
        vec!["-drive", "file=x"],
        vec!["-m"],
        vec!["-m", "512"],
        vec!["-smp", "cpus=x"],
        vec!["-machine", "q35", "-machine", "pc"],
        vec!["-mon", "chardev=x,mode=control"],
        vec!["-object", "iothread"],
        vec!["-device", "{\"id\": 1}"],
    ] {
        assert!(
            matches!(QemuConfig::parse(&argv), Err(Error::Parse { .. })),
            "{argv:?}"
        );
    }
}

/// A kind defined outside the crate plugs in without touching the core.
#[derive(Clone, Debug, PartialEq)]
struct Watchdog {
    id: String,
    action_reset: bool,
}

impl Device for Watchdog {
    fn describe(&self) -> String {
        format!("watchdog `{}`", self.id)
    }
    fn opts(&self) -> Result<Vec<Opt>> {
        Ok(vec![Opt::new("-device", "i6300esb")
            .prop("id", self.id.clone())
            .flag_on("x-reset", self.action_reset)])
    }
    fn declares(&self) -> Vec<IdRef> {
        vec![(Namespace::Device, self.id.clone())]
    }
}

impl ParseDevice for Watchdog {
    fn parse(opts: &[Opt]) -> Option<(usize, Self)> {
        let o = opts
            .first()
            .filter(|o| o.flag == "-device" && o.implied.as_deref() == Some("i6300esb"))?;
        let mut r = opt::PropReader::new(o);
        let w = Watchdog {
            id: r.str("id")?,
            action_reset: r.bool("x-reset").ok()?.unwrap_or(false),
        };
        r.done().then_some((1, w))
    }
}

#[test]
fn a_new_kind_plugs_in() {
    let c = QemuConfig::new().device(Watchdog {
        id: "wd0".into(),
        action_reset: true,
    });
    let argv = c.build(&Syntax::TEXT).unwrap();
    assert_eq!(argv, ["-device", "i6300esb,id=wd0,x-reset=on"]);
    let mut parsers = Parsers::default();
    parsers.register::<Watchdog>();
    assert_eq!(QemuConfig::parse_with(&argv, &parsers).unwrap(), c);
    // without registration it is kept, as a generic device
    let g = QemuConfig::parse(&argv).unwrap();
    assert!(g.devices[0].as_any().is::<Generic>());
    assert_eq!(g.build(&Syntax::TEXT).unwrap(), argv);
}

/// Groups of devices (each group valid on its own, ids suffixed with `i`) covering the typed
/// kinds the parser knows, for mixing with generic options spelled like them.
fn kinds(i: usize) -> Vec<Vec<Box<dyn Device>>> {
    let p = |bus: bool| Pci {
        bus: bus.then(|| "pcie.0".into()),
        addr: None,
    };
    let mut blk = Block::virtio(&format!("d{i}"), &format!("/img/{i},x"), Format::Raw);
    blk.read_only = i % 2 == 0;
    let mut nodev = Block::virtio(&format!("n{i}"), &format!("/img/n{i}"), Format::Qcow2);
    nodev.device = None;
    let mut net = Net::virtio(&format!("nic{i}"), NetBackend::User);
    if let Some(d) = net.device.as_mut() {
        d.mac = Some(format!("52:54:00:00:00:{:02x}", i % 256));
        d.queues = Some(2);
    }
    let vu_net = Net::virtio(
        &format!("vn{i}"),
        NetBackend::VhostUser {
            chardev_id: format!("vnc{i}"),
            socket_path: format!("/run/vn{i}.sock"),
            queues: Some(2),
        },
    );
    let b = |d: Box<dyn Device>| vec![d];
    vec![
        b(Box::new(Balloon {
            id: format!("bal{i}"),
            deflate_on_oom: i % 2 == 1,
            pci: p(i % 3 == 0),
        })),
        b(Box::new(MemoryBackend {
            id: format!("mr{i}"),
            kind: MemoryKind::Ram,
            size: 1 << 20,
            share: false,
            prealloc: i % 2 == 0,
        })),
        b(Box::new(MemoryBackend {
            id: format!("mf{i}"),
            kind: MemoryKind::Memfd { hugetlb: false },
            size: 2 << 20,
            share: true,
            prealloc: false,
        })),
        b(Box::new(blk)),
        b(Box::new(nodev)),
        b(Box::new(net)),
        b(Box::new(vu_net)),
        b(Box::new(VhostUserDevice {
            id: format!("vub{i}"),
            driver: "vhost-user-blk-pci".into(),
            chardev_id: format!("vubc{i}"),
            socket_path: format!("/run/vub{i}"),
            num_queues: Some(1),
            pci: p(false),
        })),
        b(Box::new(Chardev {
            id: format!("ch{i}"),
            backend: ChardevBackend::Socket {
                path: format!("/run/ch{i}"),
                server: i % 2 == 0,
            },
        })),
        b(Box::new(Rng {
            id: format!("rng{i}"),
            object_id: format!("rngo{i}"),
            filename: (i % 2 == 0).then(|| "/dev/urandom".into()),
            max_bytes: Some(1024),
            period: None,
            pci: p(false),
        })),
        b(Box::new(PcieRootPort {
            id: format!("rp{i}"),
            chassis: 10 + i as u64,
            slot: 1,
            port: Some(i as u64),
            pci: p(true),
        })),
        b(Box::new(PciePciBridge {
            id: format!("ppb{i}"),
            msi: [None, Some(true), Some(false)][i % 3],
            pci: p(true),
        })),
        b(Box::new(PciBridge {
            id: format!("br{i}"),
            chassis_nr: 100 + i as u64,
            pci: p(false),
        })),
        b(Box::new(ScsiController {
            id: format!("scsi{i}"),
            iothread: None,
            num_queues: Some(2),
            pci: p(false),
        })),
        vec![
            Box::new(VirtioSerial {
                id: format!("vser{i}"),
                pci: p(false),
            }),
            Box::new(Chardev {
                id: format!("vpc{i}"),
                backend: ChardevBackend::Null,
            }),
            Box::new(VirtPort {
                id: format!("vp{i}"),
                chardev: format!("vpc{i}"),
                bus: format!("vser{i}.0"),
                name: Some("org.qemu.guest_agent.0".into()),
                console: i % 2 == 0,
            }),
        ],
        b(Box::new(Iommu {
            id: format!("viommu{i}"),
            model: IommuModel::Virtio(p(false)),
        })),
        b(Box::new(Vsock {
            id: format!("vs{i}"),
            guest_cid: 3 + i as u64,
            vhostfd: None,
            pci: p(false),
        })),
        b(Box::new(Virtio9p {
            id: format!("p9{i}"),
            fsdev_id: format!("fs{i}"),
            path: format!("/share/{i}"),
            mount_tag: format!("tag{i}"),
            security_model: "none".into(),
            readonly: i % 2 == 0,
            pci: p(false),
        })),
        b(Box::new(Pvpanic {
            id: format!("pvp{i}"),
            ioport: None,
        })),
    ]
}

/// How a group enters the configuration.
#[derive(Clone, Copy, Debug)]
enum Spelling {
    /// The typed kinds.
    Typed,
    /// Every option a generic one, exactly as the typed kind writes it.
    GenericExact,
    /// Generic, properties in reverse order.
    GenericReversed,
    /// Generic, booleans and numbers given as strings.
    GenericStrings,
    /// Generic, values of unknown type (as read from text syntax).
    GenericText,
    /// Typed, but the last option of a multi-option kind split off as a generic one (a Block
    /// without device and a generic `-device ...,drive=`).
    SplitLast,
}

fn generic_of(o: &Opt, s: Spelling) -> Box<dyn Device> {
    let mut o = o.clone();
    match s {
        Spelling::GenericReversed => o.props.reverse(),
        Spelling::GenericStrings => {
            for (_, p) in &mut o.props {
                *p = Prop::Str(p.text());
            }
        }
        Spelling::GenericText => {
            for (_, p) in &mut o.props {
                *p = Prop::Text(p.text());
            }
        }
        _ => {}
    }
    Box::new(Generic { opt: o })
}

fn spell(group: Vec<Box<dyn Device>>, s: Spelling) -> Vec<Box<dyn Device>> {
    let opts: Vec<Opt> = group
        .iter()
        .flat_map(|d| d.opts().expect("kinds() build"))
        .collect();
    match s {
        Spelling::Typed => group,
        Spelling::SplitLast => {
            let mut out = Vec::new();
            for d in group {
                if let Some(b) = d
                    .as_any()
                    .downcast_ref::<Block>()
                    .filter(|b| b.device.is_some())
                {
                    let last = b.opts().expect("build").pop().expect("device");
                    out.push(Box::new(Block {
                        device: None,
                        ..b.clone()
                    }) as Box<dyn Device>);
                    out.push(generic_of(&last, Spelling::GenericExact));
                } else if let Some(n) = d
                    .as_any()
                    .downcast_ref::<Net>()
                    .filter(|n| n.device.is_some())
                {
                    let last = n.opts().expect("build").pop().expect("device");
                    out.push(Box::new(Net {
                        device: None,
                        ..n.clone()
                    }));
                    out.push(generic_of(&last, Spelling::GenericExact));
                } else if let Some(v) = d.as_any().downcast_ref::<VhostUserDevice>() {
                    // a client socket chardev, then a generic vhost-user device on it
                    let last = v.opts().expect("build").pop().expect("device");
                    out.push(Box::new(Chardev {
                        id: v.chardev_id.clone(),
                        backend: ChardevBackend::Socket {
                            path: v.socket_path.clone(),
                            server: false,
                        },
                    }));
                    out.push(generic_of(&last, Spelling::GenericExact));
                } else {
                    out.push(d);
                }
            }
            out
        }
        _ => opts.iter().map(|o| generic_of(o, s)).collect(),
    }
}

fn mixed_config() -> impl Strategy<Value = (QemuConfig, bool)> {
    let spelling = prop_oneof![
        Just(Spelling::Typed),
        Just(Spelling::GenericExact),
        Just(Spelling::GenericReversed),
        Just(Spelling::GenericStrings),
        Just(Spelling::GenericText),
        Just(Spelling::SplitLast),
    ];
    let n = kinds(0).len();
    (proptest::collection::vec((0..n, spelling), 1..8), 0..4usize).prop_map(|(picks, machine)| {
        let mut c = QemuConfig::new();
        let m = Machine::new("q35");
        let m = match machine {
            0 => m.accel("tcg").option("nvdimm", "on"),
            1 => m.option("accel", "tcg").option("nvdimm", "on"),
            2 => m.option("nvdimm", "on").option("accel", "tcg"),
            _ => m.accel("kvm").option("accel", "tcg"),
        };
        c.machine = Some(m.option("memory-backend", "ram"));
        c.memory = Some(Memory {
            size_mib: 128,
            slots: Some(2),
            maxmem_mib: Some(1024),
        });
        c.devices.push(Box::new(MemoryBackend {
            id: "ram".into(),
            kind: MemoryKind::Memfd { hugetlb: false },
            size: 128 << 20,
            share: true,
            prealloc: false,
        }));
        let mut text_only = false;
        for (i, (k, s)) in picks.into_iter().enumerate() {
            text_only |= matches!(s, Spelling::GenericText);
            let group = kinds(i).swap_remove(k);
            c.devices.extend(spell(group, s));
        }
        (c, text_only)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// build(parse(build(c))) == build(c) whatever mix of typed kinds and generic options
    /// spelled like them (exactly, reordered, retyped, untyped, split) and machine options
    /// (`accel` as field or option, anywhere): parsing may read a generic option back as the
    /// typed kind it spells, but never changes a byte of the argv. In every syntax, except that
    /// options holding values of unknown type ([`Prop::Text`]) are checked in text syntax only
    /// (documented on [`QemuConfig::parse`]).
    #[test]
    fn generic_and_typed_mixed_build_parse_build_is_identity((c, text_only) in mixed_config()) {
        let syntaxes: Vec<Syntax> = if text_only { vec![Syntax::TEXT] } else { syntaxes().to_vec() };
        for syntax in syntaxes {
            let argv = c.build(&syntax).unwrap_or_else(|e| panic!("build {syntax:?}: {e}\n{c:?}"));
            let back = QemuConfig::parse(&argv).unwrap_or_else(|e| panic!("parse {argv:?}: {e}"));
            let again = back.build(&syntax).unwrap_or_else(|e| panic!("rebuild {argv:?}: {e}"));
            prop_assert_eq!(&again, &argv, "{:?}", syntax);
            // and what parse gave back is a fixed point
            prop_assert_eq!(QemuConfig::parse(&again).expect("parse again"), back);
        }
    }
}

/// Buses a machine provides beyond the known types' are not on the command line: parse gives
/// them back from the devices that plug into them, so the parsed configuration validates as the
/// built one did.
#[test]
fn parsed_machine_buses_validate_like_the_built_ones() {
    let mut c = QemuConfig::new()
        .device(Balloon {
            id: "b0".into(),
            deflate_on_oom: false,
            pci: Pci::on("pcie.9"),
        })
        .device(Pvpanic {
            id: "p0".into(),
            ioport: None,
        })
        .device(PciePciBridge {
            id: "ppb".into(),
            msi: None,
            pci: Pci::on("pcie.9"),
        })
        .device(Balloon {
            id: "b1".into(),
            deflate_on_oom: false,
            pci: Pci::on("ppb"),
        });
    let mut m = Machine::new("my-board");
    assert!(m.buses.is_empty(), "an unknown type has no known buses");
    assert!(matches!(
        { c.machine = Some(m.clone()); c.validate() },
        Err(Error::DanglingReference { namespace: Namespace::Bus(BusKind::Pci), id, .. }) if id == "pcie.9"
    ));
    m.buses = vec![
        ("pcie.9".into(), BusKind::Pci),
        ("isa.0".into(), BusKind::Isa),
        ("spare.0".into(), BusKind::Scsi),
    ];
    c.machine = Some(m);
    c.validate().expect("validates with the machine's buses");
    for syntax in syntaxes() {
        let argv = c.build(&syntax).expect("build");
        let back = QemuConfig::parse(&argv).expect("parse");
        back.validate()
            .expect("the parsed configuration validates too");
        assert_eq!(back, c);
        let mut buses = back.machine.expect("machine").buses;
        buses.sort();
        // the used ones come back with the kind the devices expect; the bridge's bus is its own
        assert_eq!(
            buses,
            [
                ("isa.0".to_string(), BusKind::Isa),
                ("pcie.9".to_string(), BusKind::Pci)
            ]
        );
    }
}
