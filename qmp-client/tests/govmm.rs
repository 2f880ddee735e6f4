//! The govmm-parity helpers (`qmp_client::govmm`) on a real stopped TCG PC this test starts.
#![cfg(feature = "async")]

mod common;

use common::{qcow2, Qemu, GOVMM_PC as PC};
use qmp_client::govmm::{
    BlkDevice, Blockdev, Cache, Dump, FileDriver, Memdev, MemoryDeviceKind, NetDevice,
};
use qmp_client::qmp_proto::generated::types as t;
use qmp_client::{Client, Error};
use serde_json::{json, Map, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

use common::connect;

async fn peripherals(c: &Client) -> Vec<String> {
    let v = c
        .execute("qom-list", Some(json!({"path": "/machine/peripheral"})))
        .await
        .unwrap();
    common::qom_list_names(&v)
}

async fn controller(c: &Client, driver: &str, id: &str, addr: &str) {
    c.execute(
        "device_add",
        Some(json!({"driver": driver, "id": id, "bus": "br1", "addr": addr})),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn run_state_blockdev_and_block_devices() {
    let q = Qemu::spawn(PC);
    let img = q.path("disk.qcow2");
    qcow2(&img, "16M");
    let c = connect(&q).await;
    assert!(c.capabilities().iter().any(|c| c == "oob"));
    assert_eq!(
        c.query_status().await.unwrap().status,
        t::RunState::Prelaunch
    );
    c.cont().await.unwrap();
    assert_eq!(c.query_status().await.unwrap().status, t::RunState::Running);
    c.stop().await.unwrap();
    assert_eq!(c.query_status().await.unwrap().status, t::RunState::Paused);

    let dev = Blockdev {
        node_name: "disk0".into(),
        path: img.to_str().unwrap().into(),
        format: t::BlockdevDriver::Qcow2,
        read_only: false,
        cache: Some(Cache {
            direct: true,
            no_flush: true,
        }),
        file_driver: FileDriver::File,
        aio: None,
    };
    c.blockdev_add(&dev).await.unwrap();
    let nodes = c
        .call(&qmp_client::qmp_proto::generated::commands::QueryNamedBlockNodes::default())
        .await
        .unwrap();
    let node = nodes
        .iter()
        .find(|n| n.node_name.as_deref() == Some("disk0"))
        .expect("disk0");
    let cache = node.cache.as_ref().expect("cache info");
    assert!(cache.direct && cache.no_flush, "{cache:?}");
    // The same node name twice is QEMU's error, typed.
    assert!(matches!(c.blockdev_add(&dev).await, Err(Error::Qmp { .. })));

    c.blk_device_add(&BlkDevice {
        id: "vblk0".into(),
        node_name: "disk0".into(),
        driver: "virtio-blk-pci".into(),
        bus: Some("br1".into()),
        addr: Some("1".into()),
        share_rw: true,
        serial: Some("SER123".into()),
    })
    .await
    .unwrap();
    assert!(peripherals(&c).await.contains(&"vblk0".to_owned()));
    assert_eq!(
        c.qom_get("/machine/peripheral/vblk0", "serial")
            .await
            .unwrap(),
        "SER123"
    );
    c.device_del_and_wait("vblk0", WAIT).await.unwrap();

    // SCSI: a controller, a disk on it, unplugged again.
    controller(&c, "virtio-scsi-pci", "scsi0", "2").await;
    c.scsi_device_add("sd0", "disk0", "scsi0.0", Some(0), Some(3))
        .await
        .unwrap();
    assert_eq!(
        c.qom_get("/machine/peripheral/sd0", "lun").await.unwrap(),
        3
    );
    c.device_del_and_wait("sd0", WAIT).await.unwrap();
    assert!(!peripherals(&c).await.contains(&"sd0".to_owned()));
    c.blockdev_del("disk0").await.unwrap();
    let nodes = c
        .call(&qmp_client::qmp_proto::generated::commands::QueryNamedBlockNodes::default())
        .await
        .unwrap();
    assert!(nodes
        .iter()
        .all(|n| n.node_name.as_deref() != Some("disk0")));
}

#[tokio::test]
async fn net_serial_vsock_and_chardevs() {
    let q = Qemu::spawn(PC);
    let c = connect(&q).await;

    // A hub port needs no host networking.
    c.netdev_add(
        "net0",
        "hubport",
        Map::from_iter([("hubid".into(), json!(0))]),
    )
    .await
    .unwrap();
    c.net_device_add(&NetDevice {
        id: "nic0".into(),
        netdev: "net0".into(),
        driver: "virtio-net-pci".into(),
        mac: Some("52:54:00:aa:bb:cc".into()),
        bus: Some("br1".into()),
        addr: Some("3".into()),
        queues: None,
    })
    .await
    .unwrap();
    assert_eq!(
        c.qom_get("/machine/peripheral/nic0", "mac").await.unwrap(),
        "52:54:00:aa:bb:cc"
    );
    c.device_del_and_wait("nic0", WAIT).await.unwrap();
    c.netdev_del("net0").await.unwrap();

    // A virtio-serial port over a unix-socket chardev.
    let sock = q.path("port.sock");
    c.chardev_add_unix_socket("ch0", sock.to_str().unwrap(), true)
        .await
        .unwrap();
    assert!(sock.exists(), "QEMU did not listen on {sock:?}");
    let chardevs = c.execute("query-chardev", None).await.unwrap();
    assert!(chardevs
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["label"] == "ch0"));
    controller(&c, "virtio-serial-pci", "vser0", "4").await;
    c.virtio_serial_port_add("port0", "ch0", "org.example.port", Some("vser0.0"))
        .await
        .unwrap();
    assert_eq!(
        c.qom_get("/machine/peripheral/port0", "name")
            .await
            .unwrap(),
        "org.example.port"
    );
    // Busy chardevs cannot go: QEMU says so.
    assert!(matches!(c.chardev_del("ch0").await, Err(Error::Qmp { .. })));
    c.device_del_and_wait("port0", WAIT).await.unwrap();
    c.chardev_del("ch0").await.unwrap();
    let chardevs = c.execute("query-chardev", None).await.unwrap();
    assert!(!chardevs
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["label"] == "ch0"));

    // vhost-vsock needs the host's /dev/vhost-vsock: with it the device plugs, without it
    // QEMU refuses (typed); the argument check comes first either way.
    assert!(matches!(
        c.vsock_add("vsock0", 2, None, Some("br1")).await,
        Err(Error::InvalidArgument(_))
    ));
    let r = c.vsock_add("vsock0", 3, None, Some("br1")).await;
    if std::path::Path::new("/dev/vhost-vsock").exists() {
        r.unwrap();
        assert!(peripherals(&c).await.contains(&"vsock0".to_owned()));
    } else {
        let err = r.unwrap_err();
        assert!(matches!(err, Error::Qmp { .. }), "{err:?}");
        assert!(err.to_string().contains("vhost-vsock"), "{err}");
    }
}

#[tokio::test]
async fn cpu_memory_balloon_qom_dump_and_migration_settings() {
    let q = Qemu::spawn(PC);
    let c = connect(&q).await;

    // query-cpus-fast on 7.2: the one boot vCPU, index 0, with a real host thread
    let running = c.query_cpus().await.unwrap();
    assert_eq!(running.len(), 1, "{running:?}");
    assert_eq!(running[0].cpu_index, 0);
    assert!(running[0].thread_id > 0, "{running:?}");
    assert!(running[0].qom_path.starts_with("/machine/"), "{running:?}");

    let cpus = c.hotpluggable_cpus().await.unwrap();
    assert_eq!(cpus.len(), 2);
    let plugged = cpus.iter().find(|s| s.qom_path.is_some()).unwrap();
    assert!(matches!(
        c.cpu_device_add("cpu1", plugged).await,
        Err(Error::InvalidArgument(_))
    ));
    let free = cpus.iter().find(|s| s.qom_path.is_none()).unwrap().clone();
    c.cpu_device_add("cpu1", &free).await.unwrap();
    let cpus = c.hotpluggable_cpus().await.unwrap();
    assert!(cpus.iter().all(|s| s.qom_path.is_some()), "{cpus:?}");
    assert!(cpus
        .iter()
        .any(|s| s.qom_path.as_deref() == Some("/machine/peripheral/cpu1")));

    assert!(matches!(
        c.memdev_add(&Memdev {
            id: "m1".into(),
            size: 1000,
            mem_path: None,
            share: false,
            ..Default::default()
        })
        .await,
        Err(Error::InvalidArgument(_))
    ));
    c.memdev_add(&Memdev {
        id: "m1".into(),
        size: 64 << 20,
        mem_path: None,
        share: false,
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(c.memory_devices().await.unwrap().is_empty());
    c.memory_device_add("dimm1", MemoryDeviceKind::Dimm, "m1")
        .await
        .unwrap();
    let mem = c.memory_devices().await.unwrap();
    assert_eq!(mem.len(), 1, "{mem:?}");
    assert_eq!(mem[0].r#type, t::MemoryDeviceInfoKind::Dimm);
    assert_eq!(mem[0].branch["data"]["id"], "dimm1");
    assert_eq!(mem[0].branch["data"]["size"], 64 << 20);
    // This machine has no NVDIMM support (no nvdimm=on): QEMU refuses, typed.
    c.memdev_add(&Memdev {
        id: "m2".into(),
        size: 2 << 20,
        mem_path: None,
        share: false,
        ..Default::default()
    })
    .await
    .unwrap();
    // (nvdimm_hotplug_on_a_pmem_file_backend plugs one on a machine with nvdimm=on)
    let r = c
        .memory_device_add("nv1", MemoryDeviceKind::Nvdimm, "m2")
        .await;
    assert!(
        matches!(&r, Err(Error::Qmp { error, .. }) if error.desc.contains("nvdimm is not enabled")),
        "{r:?}"
    );

    // Balloon: the guest does not run, so the size stays; the request is accepted.
    assert!(matches!(c.balloon(0).await, Err(Error::InvalidArgument(_))));
    controller(&c, "virtio-balloon-pci", "balloon0", "1").await;
    c.balloon(32 << 20).await.unwrap();
    // 64 MiB of base RAM plus the 64 MiB DIMM.
    assert_eq!(c.balloon_actual().await.unwrap(), 128 << 20);
    let path = "/machine/peripheral/balloon0";
    c.qom_set(path, "guest-stats-polling-interval", json!(7))
        .await
        .unwrap();
    assert_eq!(
        c.qom_get(path, "guest-stats-polling-interval")
            .await
            .unwrap(),
        7
    );

    // Migration capabilities and parameters, set and read back.
    c.set_migration_capabilities(&[(t::MigrationCapability::Xbzrle, true)])
        .await
        .unwrap();
    let caps = c.migration_capabilities().await.unwrap();
    assert!(caps
        .iter()
        .any(|s| s.capability == t::MigrationCapability::Xbzrle && s.state));
    let params = Map::from_iter([
        ("max-bandwidth".to_owned(), json!(12_345_678)),
        ("downtime-limit".to_owned(), json!(450)),
    ]);
    c.set_migration_parameters(params).await.unwrap();
    let p = c.migration_parameters().await.unwrap();
    assert_eq!(p.max_bandwidth, Some(12_345_678));
    assert_eq!(p.downtime_limit, Some(450));
    assert_eq!(c.migration_progress().await.unwrap().status, "none");

    // Dump the (64 MiB + 64 MiB DIMM) guest memory as ELF.
    let dump = q.path("guest.core");
    assert!(matches!(
        c.dump_guest_memory(&Dump {
            path: "relative.core".into(),
            paging: false,
            format: None
        })
        .await,
        Err(Error::InvalidArgument(_))
    ));
    c.dump_guest_memory(&Dump {
        path: dump.to_str().unwrap().into(),
        paging: false,
        format: Some(t::DumpGuestMemoryFormat::Elf),
    })
    .await
    .unwrap();
    let bytes = std::fs::read(&dump).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF");
    assert!(bytes.len() as u64 > 64 << 20, "{} bytes", bytes.len());

    let schema = c.qmp_schema().await.unwrap();
    assert!(schema.iter().any(|s| s.name == "dump-guest-memory"));
}

#[tokio::test]
async fn hardware_helpers_validate_before_sending() {
    let q = Qemu::spawn(common::MACHINE_NONE);
    let c = connect(&q).await;
    let bad = |r: Result<(), Error>| matches!(r, Err(Error::InvalidArgument(_)));
    assert!(bad(c
        .vfio_device_add("v0", "vfio-pci", "00:02", None, None)
        .await));
    assert!(bad(c
        .vfio_device_add("v0", "virtio-blk-pci", "0000:00:02.0", None, None)
        .await));
    assert!(bad(c
        .vfio_device_add("0v", "vfio-pci", "0000:00:02.0", None, None)
        .await));
    assert!(bad(c
        .vhost_user_device_add("fs0", "vhost-user-fs-pci", "ch0", None, None, None)
        .await));
    assert!(bad(c
        .vhost_user_device_add(
            "fs0",
            "vhost-user-fs-pci",
            "ch0",
            Some(&"x".repeat(37)),
            None,
            None
        )
        .await));
    assert!(bad(c
        .vhost_user_device_add("b0", "vhost-user-blk-pci", "ch0", Some("t"), None, None)
        .await));
    assert!(bad(c
        .vhost_user_device_add("b0", "virtio-blk-pci", "ch0", None, None, None)
        .await));
    assert!(bad(c.netdev_add_by_fds("tap0", vec![], vec![]).await));
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    assert!(bad(c
        .netdev_add_by_fds(
            "tap0",
            vec![a.into()],
            vec![b.into(), {
                let (x, _y) = std::os::unix::net::UnixStream::pair().unwrap();
                x.into()
            }]
        )
        .await));
    assert!(bad(c
        .net_device_add(&NetDevice {
            id: "n0".into(),
            netdev: "net0".into(),
            driver: "virtio-net-pci".into(),
            mac: Some("52:54:00:aa:bb".into()),
            bus: None,
            addr: None,
            queues: None,
        })
        .await));
    // 2·queues + 2 vectors would overflow u32: refused before any arithmetic
    assert!(bad(c
        .net_device_add(&NetDevice {
            id: "n0".into(),
            netdev: "net0".into(),
            driver: "virtio-net-pci".into(),
            mac: None,
            bus: None,
            addr: None,
            queues: Some(u32::MAX),
        })
        .await));
    assert!(bad(c
        .chardev_add_unix_socket("c0", &"/x".repeat(60), true)
        .await));
    assert!(bad(c.migrate_incoming("nowhere").await));
    assert!(bad(c.migrate("nowhere").await));
    assert!(bad(c.netdev_add_vhost_user("vu0", "0ch", None).await));
    assert!(bad(c.netdev_add_vhost_user("vu0", "ch0", Some(0)).await));
    assert!(bad(c.netdev_add_vhost_user("vu0", "ch0", Some(1025)).await));
    for devno in ["fe.0.01", "fe.4.0001", "00.0.0001", "fe.0.000g", "fe.0"] {
        assert!(
            bad(c.net_ccw_device_add("n0", "net0", devno, None).await),
            "{devno}"
        );
    }
    assert!(bad(c
        .net_ccw_device_add("n0", "net0", "fe.0.0001", Some("nonsense"))
        .await));
    // Real fds that are not taps: QEMU found both under the names the helper gave them with
    // getfd (an unknown name is "File descriptor named ... has not been found", as the raw
    // command shows) and refused them only at the tap ioctl.
    let r = c
        .execute(
            "netdev_add",
            Some(json!({"type": "tap", "id": "tap9", "fds": "nosuch"})),
        )
        .await;
    assert!(
        matches!(&r, Err(Error::Qmp { error, .. })
            if error.desc.contains("File descriptor named 'nosuch' has not been found")),
        "{r:?}"
    );
    let not_tap = |r: &Result<(), Error>| {
        matches!(r, Err(Error::Qmp { error, .. })
            if error.desc.starts_with("Unable to query TUNGETIFF on FD")
                && error.desc.contains("Inappropriate ioctl for device"))
    };
    let (sock, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    let r = c
        .netdev_add_by_fds("tap0", vec![sock.into(), null.into()], vec![])
        .await;
    assert!(not_tap(&r), "{r:?}");
    let (sock, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let vhost = std::fs::File::open("/dev/null").unwrap();
    let r = c
        .netdev_add_by_fds("tap1", vec![sock.into()], vec![vhost.into()])
        .await;
    assert!(not_tap(&r), "{r:?}");
    // No tap netdev was made.
    for id in ["tap0", "tap1"] {
        let r = c.netdev_del(id).await;
        assert!(
            matches!(&r, Err(Error::Qmp { error, .. }) if error.desc.contains(id)),
            "{r:?}"
        );
    }
    // Well-formed: QEMU's own refusals come back typed, naming what is missing here.
    let r = c.netdev_add_vhost_user("vu0", "nochardev", Some(2)).await;
    assert!(
        matches!(&r, Err(Error::Qmp { error, .. }) if error.desc.contains("nochardev")),
        "{r:?}"
    );
    let r = c.net_ccw_device_add("n0", "net0", "fe.0.0001", None).await;
    assert!(
        matches!(&r, Err(Error::Qmp { error, .. }) if error.desc.contains("virtio-net-ccw")),
        "{r:?}"
    );
    assert!(bad(c.set_migration_capabilities(&[]).await));
    // Well-formed but on a machine without PCI, QEMU refuses them, typed.
    let r = c
        .vfio_device_add("v0", "vfio-pci", "0000:00:02.0", None, None)
        .await;
    assert!(matches!(r, Err(Error::Qmp { .. })), "{r:?}");
    // Nothing invalid reached QEMU: the connection is fine and nothing was added.
    let children = c
        .execute("qom-list", Some(json!({"path": "/machine/peripheral"})))
        .await
        .unwrap();
    let children: Vec<&Value> = children
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"].as_str().is_some_and(|t| t.starts_with("child<")))
        .collect();
    assert!(children.is_empty(), "{children:?}");
}

/// The protocol-node options reach QEMU: `host_device` opens a device node QEMU's `file`
/// refuses, the AIO backend goes on that node, and vhost-user devices land on the given bus
/// slot.
#[tokio::test]
async fn host_device_aio_and_vhost_user_slots() {
    let q = Qemu::spawn(PC);
    let img = q.path("disk.qcow2");
    qcow2(&img, "16M");
    let c = connect(&q).await;

    // /dev/null is a character device: `file` refuses it, `host_device` opens it.
    let null = Blockdev {
        node_name: "null0".into(),
        path: "/dev/null".into(),
        format: t::BlockdevDriver::Raw,
        read_only: true,
        cache: None,
        file_driver: FileDriver::File,
        aio: None,
    };
    let r = c.blockdev_add(&null).await;
    assert!(
        matches!(&r, Err(Error::Qmp { error, .. }) if error.desc.contains("regular file")),
        "{r:?}"
    );
    c.blockdev_add(&Blockdev {
        file_driver: FileDriver::HostDevice,
        ..null.clone()
    })
    .await
    .unwrap();
    let nodes = c
        .call(&qmp_client::qmp_proto::generated::commands::QueryNamedBlockNodes::default())
        .await
        .unwrap();
    assert!(
        nodes
            .iter()
            .any(|n| n.drv == "host_device" && n.file == "/dev/null"),
        "{nodes:?}"
    );
    c.blockdev_del("null0").await.unwrap();

    // AIO: threads is taken; a name QEMU does not know comes back as its refusal of `aio`,
    // which shows where the option goes; native without O_DIRECT never reaches QEMU.
    let disk = Blockdev {
        node_name: "disk0".into(),
        path: img.to_str().unwrap().into(),
        format: t::BlockdevDriver::Qcow2,
        read_only: false,
        cache: None,
        file_driver: FileDriver::File,
        aio: Some(t::BlockdevAioOptions::Threads),
    };
    c.blockdev_add(&disk).await.unwrap();
    c.blockdev_del("disk0").await.unwrap();
    let r = c
        .blockdev_add(&Blockdev {
            aio: Some(t::BlockdevAioOptions::Unknown("nonsense".into())),
            ..disk.clone()
        })
        .await;
    assert!(
        matches!(&r, Err(Error::Qmp { error, .. }) if error.desc.contains("aio")),
        "{r:?}"
    );
    let r = c
        .blockdev_add(&Blockdev {
            aio: Some(t::BlockdevAioOptions::Native),
            ..disk.clone()
        })
        .await;
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");

    // vhost-user on a bridge slot: QEMU checks the slot before it talks to the backend, so
    // the slot taken by another device is its refusal naming that slot, and an unknown bus
    // its refusal naming the bus: both show bus and addr reached it.
    let sock = q.path("vhost.sock");
    c.chardev_add_unix_socket("vu0", sock.to_str().unwrap(), true)
        .await
        .unwrap();
    controller(&c, "virtio-serial-pci", "vser0", "3").await;
    let r = c
        .vhost_user_device_add(
            "vblk1",
            "vhost-user-blk-pci",
            "vu0",
            None,
            Some("br1"),
            Some("0x3"),
        )
        .await;
    assert!(
        matches!(&r, Err(Error::Qmp { error, .. })
            if error.desc.contains("slot 3") && error.desc.contains("vser0")),
        "{r:?}"
    );
    let r = c
        .vhost_user_device_add(
            "vblk1",
            "vhost-user-blk-pci",
            "vu0",
            None,
            Some("nosuchbus"),
            None,
        )
        .await;
    assert!(
        matches!(&r, Err(Error::Qmp { error, .. }) if error.desc.contains("nosuchbus")),
        "{r:?}"
    );
    assert!(matches!(
        c.vhost_user_device_add(
            "vblk1",
            "vhost-user-blk-pci",
            "vu0",
            None,
            None,
            Some("0x20")
        )
        .await,
        Err(Error::InvalidArgument(_))
    ));
    assert!(!peripherals(&c).await.contains(&"vblk1".to_owned()));
}

/// NVDIMM hot-plug on a machine with `nvdimm=on`: a shared file backend with `pmem` and
/// `align` (the Debian QEMU 7.2 peer is built with libpmem, so `pmem=on` is taken), an
/// `nvdimm` over it, seen by query-memory-devices. QEMU 7.2 cannot unplug NVDIMMs; it says so.
#[tokio::test]
async fn nvdimm_hotplug_on_a_pmem_file_backend() {
    let q = Qemu::spawn(&[
        "-machine",
        "pc,accel=tcg,nvdimm=on",
        "-S",
        "-m",
        "64M,slots=2,maxmem=512M",
    ]);
    let c = connect(&q).await;
    let file = q.path("nvdimm.img");
    c.memdev_add(&Memdev {
        id: "nvm0".into(),
        size: 32 << 20,
        mem_path: Some(file.to_str().unwrap().into()),
        share: true,
        pmem: true,
        align: Some(2 << 20),
    })
    .await
    .unwrap();
    assert_eq!(c.qom_get("/objects/nvm0", "pmem").await.unwrap(), true);
    assert_eq!(c.qom_get("/objects/nvm0", "align").await.unwrap(), 2 << 20);
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        32 << 20,
        "QEMU sizes the backing file"
    );
    c.memory_device_add("nv1", MemoryDeviceKind::Nvdimm, "nvm0")
        .await
        .unwrap();
    let mem = c.memory_devices().await.unwrap();
    assert_eq!(mem.len(), 1, "{mem:?}");
    assert_eq!(mem[0].r#type, t::MemoryDeviceInfoKind::Nvdimm);
    let data = &mem[0].branch["data"];
    assert_eq!(data["id"], "nv1", "{data}");
    assert_eq!(data["memdev"], "/objects/nvm0", "{data}");
    assert_eq!(data["size"], 32 << 20, "{data}");
    assert_eq!(data["hotplugged"], true, "{data}");
    let r = c.device_del("nv1").await;
    assert!(
        matches!(&r, Err(Error::Qmp { error, .. })
            if error.desc.contains("nvdimm device hot unplug is not supported")),
        "{r:?}"
    );
    // The backend stays in use by the plugged NVDIMM.
    let r = c.object_del("nvm0").await;
    assert!(
        matches!(&r, Err(Error::Qmp { error, .. }) if error.desc.contains("is in use")),
        "{r:?}"
    );
    assert_eq!(c.memory_devices().await.unwrap().len(), 1);
}

/// Unplugging a DIMM or a vCPU of a PC is a request to the guest: QEMU raises an ACPI event
/// and removes the device (DEVICE_DELETED) only once the guest OS has offlined and ejected it
/// (QEMU's docs on memory and CPU hot-unplug: both need guest cooperation). This machine runs
/// no OS (TCG, nothing to boot), so under TCG here the request is accepted and the wait ends in
/// `EventTimeout`, the device staying. vCPU unplug is refused outright while the PIIX4's CPU
/// hotplug is in its legacy mode, until the switch to the modern interface that a guest's
/// ACPI code makes (done here with qom-set).
#[tokio::test]
async fn dimm_and_cpu_unplug_wait_for_the_guest() {
    const NO_GUEST: Duration = Duration::from_secs(2);
    let q = Qemu::spawn(PC);
    let c = connect(&q).await;
    c.cont().await.unwrap();

    c.memdev_add(&Memdev {
        id: "m1".into(),
        size: 64 << 20,
        ..Default::default()
    })
    .await
    .unwrap();
    c.memory_device_add("dimm1", MemoryDeviceKind::Dimm, "m1")
        .await
        .unwrap();
    let r = c.device_del_and_wait("dimm1", NO_GUEST).await;
    assert!(matches!(r, Err(Error::EventTimeout { .. })), "{r:?}");
    let mem = c.memory_devices().await.unwrap();
    assert!(
        mem.iter().any(|m| m.branch["data"]["id"] == "dimm1"),
        "{mem:?}"
    );
    let r = c.object_del("m1").await;
    assert!(
        matches!(&r, Err(Error::Qmp { error, .. }) if error.desc.contains("is in use")),
        "{r:?}"
    );

    let cpus = c.hotpluggable_cpus().await.unwrap();
    let free = cpus.iter().find(|s| s.qom_path.is_none()).unwrap().clone();
    c.cpu_device_add("cpu1", &free).await.unwrap();
    let r = c.device_del("cpu1").await;
    assert!(
        matches!(&r, Err(Error::Qmp { error, .. })
            if error.desc.contains("unplug request for not supported device type")),
        "{r:?}"
    );
    let unattached = c
        .execute("qom-list", Some(json!({"path": "/machine/unattached"})))
        .await
        .unwrap();
    let pm = unattached
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == "child<PIIX4_PM>")
        .expect("the PIIX4 power management device");
    let pm = format!("/machine/unattached/{}", pm["name"].as_str().unwrap());
    assert_eq!(c.qom_get(&pm, "cpu-hotplug-legacy").await.unwrap(), true);
    c.qom_set(&pm, "cpu-hotplug-legacy", json!(false))
        .await
        .unwrap();
    let r = c.device_del_and_wait("cpu1", NO_GUEST).await;
    assert!(matches!(r, Err(Error::EventTimeout { .. })), "{r:?}");
    let cpus = c.hotpluggable_cpus().await.unwrap();
    assert!(
        cpus.iter()
            .any(|s| s.qom_path.as_deref() == Some("/machine/peripheral/cpu1")),
        "{cpus:?}"
    );
    assert_eq!(c.query_cpus().await.unwrap().len(), 2);
}
