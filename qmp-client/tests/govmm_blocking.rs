//! The govmm helpers on the blocking driver (`qmp_client::blocking::Client`), on a real stopped
//! TCG PC this test starts: a cross-section of what `tests/govmm.rs` runs on the async one.
#![cfg(feature = "blocking")]

mod common;

use common::{connect_blocking, qcow2, Qemu, GOVMM_PC as PC};
use qmp_client::blocking::Client;
use qmp_client::govmm::{BlkDevice, Blockdev, Cache, Dump, FileDriver, Memdev, MemoryDeviceKind};
use qmp_client::qmp_proto::generated::{commands as c, types as t};
use qmp_client::Error;
use serde_json::{json, Map};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn peripherals(c: &Client) -> Vec<String> {
    let v = c
        .execute("qom-list", Some(json!({"path": "/machine/peripheral"})))
        .unwrap();
    common::qom_list_names(&v)
}

fn has_node(c: &Client, name: &str) -> bool {
    c.call(&c::QueryNamedBlockNodes::default())
        .unwrap()
        .iter()
        .any(|n| n.node_name.as_deref() == Some(name))
}

#[test]
fn blocking_govmm_cross_section() {
    let q = Qemu::spawn(PC);
    let img = q.path("disk.qcow2");
    qcow2(&img, "16M");
    let c = connect_blocking(&q);
    assert!(c.capabilities().iter().any(|c| c == "oob"));

    // Run state.
    assert_eq!(c.query_status().unwrap().status, t::RunState::Prelaunch);
    c.cont().unwrap();
    assert_eq!(c.status().unwrap(), "running");
    c.stop().unwrap();
    assert_eq!(c.query_status().unwrap().status, t::RunState::Paused);

    // A qcow2 node with cache options, a virtio-blk device over it, unplugged with the
    // DEVICE_DELETED wait, the node deleted.
    let dev = Blockdev {
        node_name: "disk0".into(),
        path: img.to_str().unwrap().into(),
        format: t::BlockdevDriver::Qcow2,
        read_only: false,
        cache: Some(Cache {
            direct: false,
            no_flush: true,
        }),
        file_driver: FileDriver::File,
        aio: None,
    };
    assert!(matches!(
        c.blockdev_add(&Blockdev {
            node_name: "0bad".into(),
            ..dev.clone()
        }),
        Err(Error::InvalidArgument(_))
    ));
    c.blockdev_add(&dev).unwrap();
    assert!(has_node(&c, "disk0"));
    assert!(matches!(c.blockdev_add(&dev), Err(Error::Qmp { .. })));
    c.blk_device_add(&BlkDevice {
        id: "vblk0".into(),
        node_name: "disk0".into(),
        driver: "virtio-blk-pci".into(),
        bus: Some("br1".into()),
        addr: Some("1".into()),
        share_rw: true,
        serial: Some("BLK42".into()),
    })
    .unwrap();
    assert!(peripherals(&c).contains(&"vblk0".to_owned()));
    assert_eq!(
        c.qom_get("/machine/peripheral/vblk0", "serial").unwrap(),
        "BLK42"
    );
    c.device_del_and_wait("vblk0", WAIT).unwrap();
    assert!(!peripherals(&c).contains(&"vblk0".to_owned()));
    c.blockdev_del("disk0").unwrap();
    assert!(!has_node(&c, "disk0"));
    // A host device node (the character device /dev/null, which `file` refuses) with an AIO
    // backend; native AIO without O_DIRECT is refused before sending.
    let null = Blockdev {
        node_name: "null0".into(),
        path: "/dev/null".into(),
        format: t::BlockdevDriver::Raw,
        read_only: true,
        cache: None,
        file_driver: FileDriver::HostDevice,
        aio: Some(t::BlockdevAioOptions::Threads),
    };
    c.blockdev_add(&null).unwrap();
    assert!(has_node(&c, "null0"));
    c.blockdev_del("null0").unwrap();
    assert!(matches!(
        c.blockdev_add(&Blockdev {
            aio: Some(t::BlockdevAioOptions::Native),
            ..null
        }),
        Err(Error::InvalidArgument(_))
    ));

    // A unix-socket chardev, added and removed.
    let sock = q.path("ch.sock");
    c.chardev_add_unix_socket("ch0", sock.to_str().unwrap(), true)
        .unwrap();
    assert!(sock.exists(), "QEMU did not listen on {sock:?}");
    let labels = |c: &Client| {
        c.execute("query-chardev", None)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["label"].as_str().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    assert!(labels(&c).contains(&"ch0".to_owned()));
    c.chardev_del("ch0").unwrap();
    assert!(!labels(&c).contains(&"ch0".to_owned()));
    assert!(matches!(c.chardev_del("ch0"), Err(Error::Qmp { .. })));

    // vCPUs: query, then plug the free hotpluggable slot.
    let running = c.query_cpus().unwrap();
    assert_eq!(running.len(), 1, "{running:?}");
    assert!(running[0].thread_id > 0, "{running:?}");
    let cpus = c.hotpluggable_cpus().unwrap();
    assert_eq!(cpus.len(), 2);
    let plugged = cpus.iter().find(|s| s.qom_path.is_some()).unwrap();
    assert!(matches!(
        c.cpu_device_add("cpu1", plugged),
        Err(Error::InvalidArgument(_))
    ));
    let free = cpus.iter().find(|s| s.qom_path.is_none()).unwrap().clone();
    c.cpu_device_add("cpu1", &free).unwrap();
    assert!(c
        .hotpluggable_cpus()
        .unwrap()
        .iter()
        .all(|s| s.qom_path.is_some()));

    // Memory: a backend and a DIMM over it.
    c.memdev_add(&Memdev {
        id: "m1".into(),
        size: 64 << 20,
        mem_path: None,
        share: false,
        ..Default::default()
    })
    .unwrap();
    c.memory_device_add("dimm1", MemoryDeviceKind::Dimm, "m1")
        .unwrap();
    let mem = c.memory_devices().unwrap();
    assert_eq!(mem.len(), 1, "{mem:?}");
    assert_eq!(mem[0].branch["data"]["id"], "dimm1");

    // Balloon, and qom-set/qom-get on it.
    assert!(matches!(c.balloon(0), Err(Error::InvalidArgument(_))));
    c.execute(
        "device_add",
        Some(json!({"driver": "virtio-balloon-pci", "id": "balloon0", "bus": "br1", "addr": "2"})),
    )
    .unwrap();
    c.balloon(32 << 20).unwrap();
    assert_eq!(c.balloon_actual().unwrap(), 128 << 20);
    let path = "/machine/peripheral/balloon0";
    c.qom_set(path, "guest-stats-polling-interval", json!(5))
        .unwrap();
    assert_eq!(c.qom_get(path, "guest-stats-polling-interval").unwrap(), 5);

    // Migration capabilities and parameters, set and read back.
    assert!(matches!(
        c.set_migration_capabilities(&[]),
        Err(Error::InvalidArgument(_))
    ));
    c.set_migration_capabilities(&[(t::MigrationCapability::Xbzrle, true)])
        .unwrap();
    assert!(c
        .migration_capabilities()
        .unwrap()
        .iter()
        .any(|s| s.capability == t::MigrationCapability::Xbzrle && s.state));
    c.set_migration_parameters(Map::from_iter([
        ("max-bandwidth".to_owned(), json!(7_654_321)),
        ("downtime-limit".to_owned(), json!(350)),
    ]))
    .unwrap();
    let p = c.migration_parameters().unwrap();
    assert_eq!(p.max_bandwidth, Some(7_654_321));
    assert_eq!(p.downtime_limit, Some(350));
    assert!(matches!(
        c.migrate("nowhere"),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        c.migrate_incoming("nowhere"),
        Err(Error::InvalidArgument(_))
    ));

    // Dumps, detached and awaited: to a path, to `file:`, to an fd passed with getfd.
    let bad = Dump {
        path: "tcp:127.0.0.1:1".into(),
        paging: false,
        format: None,
    };
    assert!(matches!(
        c.dump_guest_memory(&bad),
        Err(Error::InvalidArgument(_))
    ));
    let core = q.path("a.core");
    c.dump_guest_memory(&Dump {
        path: core.to_str().unwrap().into(),
        ..bad.clone()
    })
    .unwrap();
    let elf = |p: &std::path::Path| {
        let bytes = std::fs::read(p).unwrap();
        assert_eq!(&bytes[..4], b"\x7fELF");
        assert!(bytes.len() as u64 > 64 << 20, "{} bytes", bytes.len());
    };
    elf(&core);
    let core = q.path("b.core");
    c.dump_guest_memory_within(
        &Dump {
            path: format!("file:{}", core.display()),
            format: Some(t::DumpGuestMemoryFormat::Elf),
            ..bad.clone()
        },
        WAIT,
    )
    .unwrap();
    elf(&core);
    let core = q.path("c.core");
    let file = std::fs::File::create(&core).unwrap();
    c.get_fd("dumpfd", file.into()).unwrap();
    c.dump_guest_memory_within(
        &Dump {
            path: "fd:dumpfd".into(),
            ..bad
        },
        WAIT,
    )
    .unwrap();
    elf(&core);
    let status = c.dump_status().unwrap();
    assert_eq!(status.status, t::DumpStatus::Completed);
    assert_eq!(status.completed, status.total);

    // Nothing invalid reached QEMU: still fine.
    assert_eq!(c.status().unwrap(), "paused");
    c.quit().unwrap();
}
