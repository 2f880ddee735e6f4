//! Every validation rule, one table row each: a configuration that breaks exactly that rule is
//! refused with the expected typed error, and the same configuration with the one thing fixed
//! validates (so the row fails if the rule is deleted, and cannot pass through another rule).

use qemu_cmdline::devices::*;
use qemu_cmdline::*;

/// A q35 machine with 128 MiB and nothing else.
fn q35() -> QemuConfig {
    let mut c = QemuConfig::new();
    c.machine = Some(Machine::new("q35"));
    c.memory = Some(Memory {
        size_mib: 128,
        ..Memory::default()
    });
    c
}

fn with(mut c: QemuConfig, f: impl FnOnce(&mut QemuConfig)) -> QemuConfig {
    f(&mut c);
    c
}

fn mem(size_mib: u64, slots: Option<u64>, maxmem_mib: Option<u64>) -> QemuConfig {
    with(q35(), |c| {
        c.memory = Some(Memory {
            size_mib,
            slots,
            maxmem_mib,
        })
    })
}

fn ide(read_only: bool, addr: Option<&str>) -> QemuConfig {
    let mut b = Block::virtio("d0", "/img", Format::Raw);
    b.read_only = read_only;
    if let Some(d) = b.device.as_mut() {
        d.kind = Frontend::IdeHd;
        d.pci = Pci {
            bus: Some("ide.0".into()),
            addr: addr.map(Into::into),
        };
    }
    q35().device(b)
}

fn tap(fds: Vec<i32>, vhost: bool, vhostfds: Vec<i32>, queues: Option<u64>) -> QemuConfig {
    let mut n = Net::virtio(
        "n0",
        NetBackend::TapFds {
            fds,
            vhost,
            vhostfds,
        },
    );
    n.device.as_mut().expect("device").queues = queues;
    q35().device(n)
}

fn tap_ifname(backend_queues: Option<u64>, device_queues: Option<u64>) -> QemuConfig {
    let mut n = Net::virtio(
        "n0",
        NetBackend::TapIfname {
            ifname: "tap0".into(),
            queues: backend_queues,
        },
    );
    n.device.as_mut().expect("device").queues = device_queues;
    q35().device(n)
}

fn shared_memory() -> QemuConfig {
    with(
        q35().device(MemoryBackend {
            id: "ram".into(),
            kind: MemoryKind::Memfd { hugetlb: false },
            size: 128 << 20,
            share: true,
            prealloc: false,
        }),
        |c| c.machine = Some(Machine::new("q35").option("memory-backend", "ram")),
    )
}

fn vhost_user(driver: &str) -> QemuConfig {
    shared_memory().device(VhostUserDevice {
        id: "vu0".into(),
        driver: driver.into(),
        chardev_id: "vuc".into(),
        socket_path: "/run/vu.sock".into(),
        num_queues: None,
        pci: Pci::default(),
    })
}

fn vhost_user_net(backend_queues: Option<u64>, device_queues: Option<u64>) -> QemuConfig {
    let mut n = Net::virtio(
        "n0",
        NetBackend::VhostUser {
            chardev_id: "c0".into(),
            socket_path: "/run/n.sock".into(),
            queues: backend_queues,
        },
    );
    n.device.as_mut().expect("device").queues = device_queues;
    shared_memory().device(n)
}

fn bridge(chassis_nr: u64) -> QemuConfig {
    q35().device(PciBridge {
        id: "br0".into(),
        chassis_nr,
        pci: Pci::default(),
    })
}

fn vsock(guest_cid: u64) -> QemuConfig {
    q35().device(Vsock {
        id: "vs0".into(),
        guest_cid,
        vhostfd: None,
        pci: Pci::default(),
    })
}

fn intel_iommu(machine: &str) -> QemuConfig {
    with(
        q35().device(Iommu {
            id: "iommu0".into(),
            model: IommuModel::Intel {
                caching_mode: true,
                intremap: false,
            },
        }),
        |c| c.machine = Some(Machine::new(machine)),
    )
}

fn fw_cfg(names: &[&str]) -> QemuConfig {
    names.iter().fold(q35(), |c, n| {
        c.device(FwCfg {
            name: (*n).into(),
            source: FwCfgSource::String("x".into()),
        })
    })
}

fn root_ports(a: (u64, u64), b: (u64, u64)) -> QemuConfig {
    let rp = |id: &str, (chassis, slot): (u64, u64)| PcieRootPort {
        id: id.into(),
        chassis,
        slot,
        port: None,
        pci: Pci::default(),
    };
    q35().device(rp("rp1", a)).device(rp("rp2", b))
}

fn backend(size: u64) -> QemuConfig {
    q35().device(MemoryBackend {
        id: "m0".into(),
        kind: MemoryKind::Ram,
        size,
        share: false,
        prealloc: false,
    })
}

fn add_fds(fds: &[i32]) -> QemuConfig {
    with(q35(), |c| {
        c.add_fds = fds
            .iter()
            .map(|fd| AddFd {
                fd: *fd,
                set: 1,
                opaque: None,
            })
            .collect()
    })
}

fn smp(cpus: u64) -> QemuConfig {
    with(q35(), |c| {
        c.smp = Some(Smp {
            cpus,
            ..Smp::default()
        })
    })
}

fn knobs(daemonize: bool, display: Option<Display>) -> QemuConfig {
    with(q35(), |c| {
        c.knobs.daemonize = daemonize;
        c.knobs.display = display;
    })
}

fn kernel(path: &str, initrd: Option<&str>) -> QemuConfig {
    with(q35(), |c| {
        c.kernel = Some(Kernel {
            path: path.into(),
            initrd: initrd.map(Into::into),
            append: None,
        })
    })
}

fn rtc(base: &str, clock: Option<&str>, driftfix: Option<&str>) -> QemuConfig {
    with(q35(), |c| {
        c.rtc = Some(Rtc {
            base: base.into(),
            clock: clock.map(Into::into),
            driftfix: driftfix.map(Into::into),
        })
    })
}

/// What the refusal must look like.
enum Want {
    /// `Error::Impossible` whose message contains this.
    Impossible(&'static str),
    /// `Error::FdPlan` whose message contains this.
    FdPlan(&'static str),
    /// `Error::Missing` of this kind and field.
    Missing(&'static str, &'static str),
    /// `Error::Unrepresentable` of this `what`.
    Unrepresentable(&'static str),
    /// `Error::DuplicateId` in this namespace, of this id.
    Duplicate(Namespace, &'static str),
}

impl Want {
    fn matches(&self, e: &Error) -> bool {
        match (self, e) {
            (Want::Impossible(s), Error::Impossible(m)) | (Want::FdPlan(s), Error::FdPlan(m)) => {
                m.contains(s)
            }
            (Want::Missing(k, f), Error::Missing { kind, field }) => kind == k && field == f,
            (Want::Unrepresentable(w), Error::Unrepresentable { what, .. }) => what == w,
            (Want::Duplicate(ns, i), Error::DuplicateId { namespace, id, .. }) => {
                namespace == ns && id == i
            }
            _ => false,
        }
    }
}

/// (rule, breaking configuration, the same configuration fixed, expected error)
fn rules() -> Vec<(&'static str, QemuConfig, QemuConfig, Want)> {
    use Want::*;
    vec![
        // config.rs: -smp, -m
        (
            "0 cpus",
            smp(0),
            smp(1),
            Impossible("cpus must be at least 1"),
        ),
        (
            "0 MiB",
            mem(0, None, None),
            mem(1, None, None),
            Impossible("at least 1 MiB"),
        ),
        (
            "slots without maxmem",
            mem(128, Some(2), None),
            mem(128, Some(2), Some(256)),
            Impossible("slots need maxmem"),
        ),
        (
            "slots=0 without maxmem (QEMU refuses it too)",
            mem(128, Some(0), None),
            mem(128, None, None),
            Impossible("slots need maxmem"),
        ),
        (
            "maxmem < size",
            mem(128, None, Some(64)),
            mem(128, None, Some(128)),
            Impossible("maxmem 64 MiB < size 128 MiB"),
        ),
        (
            "slots with maxmem == size",
            mem(128, Some(2), Some(128)),
            mem(128, Some(0), Some(128)),
            Impossible("2 slots but maxmem = size = 128 MiB"),
        ),
        (
            "more slots than pc/q35 take",
            mem(128, Some(257), Some(1024)),
            mem(128, Some(256), Some(1024)),
            Impossible("257 slots; machine q35 takes at most 256"),
        ),
        // config.rs: knobs, -add-fd
        (
            "-daemonize with -nographic",
            knobs(true, Some(Display::Nographic)),
            knobs(true, Some(Display::None)),
            Impossible("-daemonize cannot be combined with -nographic"),
        ),
        (
            "-add-fd of stdio",
            add_fds(&[2]),
            add_fds(&[3]),
            FdPlan("would pass stdin/stdout/stderr"),
        ),
        (
            "-add-fd of one fd twice",
            add_fds(&[3, 3]),
            add_fds(&[3, 4]),
            FdPlan("fd 3 added to fd sets twice"),
        ),
        // config.rs: empty values QEMU needs
        (
            "empty -kernel",
            kernel("", None),
            kernel("/k", None),
            Missing("-kernel", "path"),
        ),
        (
            "-initrd without a -kernel path",
            kernel("", Some("/i")),
            kernel("/k", Some("/i")),
            Missing("-kernel", "path"),
        ),
        (
            "empty -initrd",
            kernel("/k", Some("")),
            kernel("/k", Some("/i")),
            Missing("-initrd", "path"),
        ),
        (
            "empty -bios",
            with(q35(), |c| c.bios = Some(String::new())),
            with(q35(), |c| c.bios = Some("/b".into())),
            Missing("-bios", "path"),
        ),
        (
            "empty -mem-path",
            with(q35(), |c| c.knobs.hugepages = Some(String::new())),
            with(q35(), |c| c.knobs.hugepages = Some("/hp".into())),
            Missing("-mem-path", "path"),
        ),
        (
            "empty -rtc base",
            rtc("", None, None),
            rtc("utc", None, None),
            Missing("-rtc", "base"),
        ),
        (
            "empty -rtc clock",
            rtc("utc", Some(""), None),
            rtc("utc", Some("vm"), None),
            Missing("-rtc", "clock"),
        ),
        (
            "empty -rtc driftfix",
            rtc("utc", None, Some("")),
            rtc("utc", None, Some("slew")),
            Missing("-rtc", "driftfix"),
        ),
        (
            "empty -vga",
            with(q35(), |c| c.vga = Some(String::new())),
            with(q35(), |c| c.vga = Some("std".into())),
            Missing("-vga", "type"),
        ),
        (
            "QMP socket without a path",
            q35().qmp("qmp0", ""),
            q35().qmp("qmp0", "/run/qmp.sock"),
            Missing("QMP socket `qmp0`", "path"),
        ),
        // devices.rs: block
        (
            "read-only ide-hd",
            ide(true, None),
            ide(false, None),
            Impossible("ide-hd cannot use a read-only node"),
        ),
        (
            "addr on a non-PCI device",
            ide(false, Some("0x3")),
            ide(false, None),
            Impossible("ide-hd is not a PCI device; it takes no addr"),
        ),
        // devices.rs: net
        (
            "multiqueue with 0 queues",
            tap(vec![3], false, vec![], Some(0)),
            tap(vec![3], false, vec![], Some(1)),
            Impossible("multiqueue with 0 queues"),
        ),
        (
            "tap backend and device queue counts differ",
            tap_ifname(Some(2), Some(4)),
            tap_ifname(Some(4), Some(4)),
            Impossible("backend has 2 queues, device 4"),
        ),
        (
            "vhost-user backend and device queue counts differ",
            vhost_user_net(Some(2), Some(4)),
            vhost_user_net(Some(4), Some(4)),
            Impossible("backend has 2 queues, device 4"),
        ),
        (
            "vhostfds without vhost=on",
            tap(vec![3], false, vec![4], None),
            tap(vec![3], true, vec![4], None),
            Impossible("vhostfds need vhost=on and one fd per tap fd (1 tap, 1 vhost)"),
        ),
        (
            "fewer vhostfds than tap fds",
            tap(vec![3, 4], true, vec![5], Some(2)),
            tap(vec![3, 4], true, vec![5, 6], Some(2)),
            Impossible("vhostfds need vhost=on and one fd per tap fd (2 tap, 1 vhost)"),
        ),
        // devices.rs: vhost-user, bridges, small devices
        (
            "vhost-user device of a non-vhost-user model",
            vhost_user("virtio-blk-pci"),
            vhost_user("vhost-user-blk-pci"),
            Impossible("is not a vhost-user-* model"),
        ),
        (
            "pci-bridge chassis_nr 0",
            bridge(0),
            bridge(1),
            Impossible("chassis_nr must be 1..=255"),
        ),
        (
            "pci-bridge chassis_nr 256",
            bridge(256),
            bridge(255),
            Impossible("chassis_nr must be 1..=255"),
        ),
        (
            "two root ports on one chassis slot",
            root_ports((1, 1), (1, 1)),
            root_ports((1, 1), (2, 1)),
            Impossible("chassis 1 slot 1 is already taken by pcie-root-port `rp1`"),
        ),
        (
            "vsock guest-cid 2",
            vsock(2),
            vsock(3),
            Impossible("guest-cid must be 3..=4294967295"),
        ),
        (
            "vsock guest-cid above 32 bits",
            vsock(1 << 32),
            vsock(u64::from(u32::MAX)),
            Impossible("guest-cid must be 3..=4294967295"),
        ),
        (
            "intel-iommu on pc",
            intel_iommu("pc"),
            intel_iommu("q35"),
            Impossible("needs a q35 machine"),
        ),
        (
            "fw_cfg name outside opt/",
            fw_cfg(&["etc/x"]),
            fw_cfg(&["opt/x"]),
            Unrepresentable("fw_cfg name"),
        ),
        (
            "fw_cfg name of 56 bytes",
            fw_cfg(&[&format!("opt/{}", "n".repeat(52))]),
            fw_cfg(&[&format!("opt/{}", "n".repeat(51))]),
            Unrepresentable("fw_cfg name"),
        ),
        (
            "duplicate fw_cfg name",
            fw_cfg(&["opt/a", "opt/a"]),
            fw_cfg(&["opt/a", "opt/b"]),
            Duplicate(Namespace::FwCfg, "opt/a"),
        ),
        (
            "memory backend of size 0",
            backend(0),
            backend(1 << 20),
            Missing("memory backend `m0`", "size"),
        ),
        // devices.rs: every field QEMU needs non-empty
        (
            "block device without a path",
            q35().device(Block::virtio("d0", "", Format::Raw)),
            q35().device(Block::virtio("d0", "/img", Format::Raw)),
            Missing("block device `d0`", "path"),
        ),
        (
            "tap without fds",
            tap(vec![], false, vec![], None),
            tap(vec![3], false, vec![], None),
            Missing("net device `n0-net`", "tap fds"),
        ),
        (
            "tap without ifname",
            q35().device(Net::virtio(
                "n0",
                NetBackend::TapIfname {
                    ifname: String::new(),
                    queues: None,
                },
            )),
            tap_ifname(None, None),
            Missing("net device `n0-net`", "ifname"),
        ),
        (
            "vhost-user net without socket",
            shared_memory().device(Net::virtio(
                "n0",
                NetBackend::VhostUser {
                    chardev_id: "c0".into(),
                    socket_path: String::new(),
                    queues: None,
                },
            )),
            vhost_user_net(None, None),
            Missing("net device `n0-net`", "socket path"),
        ),
        (
            "9p without path",
            p9("", "t", "none"),
            p9("/s", "t", "none"),
            Missing("9p share `p9`", "path"),
        ),
        (
            "9p without mount tag",
            p9("/s", "", "none"),
            p9("/s", "t", "none"),
            Missing("9p share `p9`", "mount_tag"),
        ),
        (
            "9p without security model",
            p9("/s", "t", ""),
            p9("/s", "t", "none"),
            Missing("9p share `p9`", "security_model"),
        ),
        (
            "virtio-fs without socket",
            virtio_fs("", "t"),
            virtio_fs("/run/fs.sock", "t"),
            Missing("virtio-fs share `fs0`", "socket path"),
        ),
        (
            "virtio-fs without tag",
            virtio_fs("/run/fs.sock", ""),
            virtio_fs("/run/fs.sock", "t"),
            Missing("virtio-fs share `fs0`", "tag"),
        ),
        (
            "socket chardev without path",
            chardev(ChardevBackend::Socket {
                path: String::new(),
                server: true,
            }),
            chardev(ChardevBackend::Socket {
                path: "/run/c".into(),
                server: true,
            }),
            Missing("chardev `c0`", "path"),
        ),
        (
            "file chardev without path",
            chardev(ChardevBackend::File {
                path: String::new(),
            }),
            chardev(ChardevBackend::File {
                path: "/log".into(),
            }),
            Missing("chardev `c0`", "path"),
        ),
        (
            "vhost-user device without socket",
            with(vhost_user("vhost-user-blk-pci"), |c| {
                let d = c.devices.pop().expect("device");
                let mut v = d
                    .as_any()
                    .downcast_ref::<VhostUserDevice>()
                    .expect("vhost-user")
                    .clone();
                v.socket_path.clear();
                c.devices.push(Box::new(v));
            }),
            vhost_user("vhost-user-blk-pci"),
            Missing("vhost-user device `vu0`", "socket path"),
        ),
        (
            "vfio without host",
            vfio(""),
            vfio("0000:00:1f.7"),
            Missing("vfio device `v0`", "host"),
        ),
        (
            "fw_cfg file without path",
            q35().device(FwCfg {
                name: "opt/f".into(),
                source: FwCfgSource::File(String::new()),
            }),
            q35().device(FwCfg {
                name: "opt/f".into(),
                source: FwCfgSource::File("/f".into()),
            }),
            Missing("fw_cfg item \"opt/f\"", "file"),
        ),
        (
            "file memory backend without mem-path",
            file_backend(""),
            file_backend("/dev/hugepages"),
            Missing("memory backend `mf`", "mem_path"),
        ),
        (
            "generic option without id (other than -device)",
            q35().device(Generic {
                opt: Opt::new("-object", "iothread"),
            }),
            q35().device(Generic::object("iothread", "io0", vec![])),
            Missing("-object iothread ``", "id"),
        ),
        (
            "generic option of a flag that cannot be generic",
            q35().device(Generic {
                opt: Opt::new("-fw_cfg", "x").prop("id", "a"),
            }),
            q35().device(Generic::device("virtio-rng-pci", "a", vec![])),
            Unrepresentable("generic option flag"),
        ),
    ]
}

fn p9(path: &str, tag: &str, model: &str) -> QemuConfig {
    q35().device(Virtio9p {
        id: "p9".into(),
        fsdev_id: "fs9".into(),
        path: path.into(),
        mount_tag: tag.into(),
        security_model: model.into(),
        readonly: false,
        pci: Pci::default(),
    })
}

fn virtio_fs(socket: &str, tag: &str) -> QemuConfig {
    shared_memory().device(VirtioFs {
        id: "fs0".into(),
        chardev_id: "fsc".into(),
        socket_path: socket.into(),
        tag: tag.into(),
        queue_size: None,
        pci: Pci::default(),
    })
}

fn chardev(backend: ChardevBackend) -> QemuConfig {
    q35().device(Chardev {
        id: "c0".into(),
        backend,
    })
}

fn vfio(host: &str) -> QemuConfig {
    q35().device(Vfio {
        id: "v0".into(),
        host: host.into(),
        pci: Pci::default(),
    })
}

fn file_backend(mem_path: &str) -> QemuConfig {
    q35().device(MemoryBackend {
        id: "mf".into(),
        kind: MemoryKind::File {
            mem_path: mem_path.into(),
        },
        size: 1 << 20,
        share: false,
        prealloc: false,
    })
}

#[test]
fn every_rule_refuses_typed_and_its_fix_validates() {
    let mut failures = Vec::new();
    for (rule, bad, good, want) in rules() {
        if let Err(e) = good.validate() {
            failures.push(format!("{rule}: the fixed configuration fails: {e}"));
        }
        match bad.validate() {
            Err(e) if want.matches(&e) => {
                // build refuses it the same way (it validates first)
                match bad.build(&Syntax::TEXT) {
                    Err(b) if want.matches(&b) => {}
                    other => failures.push(format!("{rule}: build gave {other:?}")),
                }
            }
            other => failures.push(format!("{rule}: validate gave {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
