//! The generated typed API (QEMU 10.0's QAPI schema) against the real, older QEMU (7.2) the
//! tests start: replies and events must decode despite the schema drift.
#![cfg(feature = "async")]

mod common;

use common::{qcow2, Qemu, MACHINE_PC};
use qmp_client::qmp_proto::generated::{commands as c, events, types as t, TypedEvent};
use qmp_client::{Client, Error, EventFilter};
use std::time::{Duration, Instant};

use common::connect;

/// A stopped TCG q35 with hotpluggable CPUs and memory, a disk and a chardev.
fn q35(img: &std::path::Path) -> Vec<String> {
    [
        "-machine",
        "q35,accel=tcg",
        "-S",
        "-name",
        "typed-test",
        "-uuid",
        "6f5c9a7e-2d3b-4c1a-9e8f-0a1b2c3d4e5f",
        "-smp",
        "1,maxcpus=2",
        "-m",
        "64M,slots=2,maxmem=256M",
        "-object",
        "memory-backend-ram,id=mem0,size=64M",
        "-chardev",
        "null,id=nullchr",
        "-blockdev",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!(
            "{{\"driver\":\"qcow2\",\"node-name\":\"disk0\",\"file\":{{\"driver\":\"file\",\"filename\":\"{}\"}}}}",
            img.display()
        ),
        "-device".into(),
        "virtio-blk-pci,drive=disk0,id=vblk0".into(),
    ])
    .collect()
}

fn spawn_q35() -> Qemu {
    // The image must exist before QEMU opens it: make it in a scratch dir kept alive by QEMU's.
    let scratch = tempfile::tempdir().unwrap();
    let img = scratch.path().join("disk.qcow2");
    qcow2(&img, "16M");
    let args = q35(&img);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let q = Qemu::spawn(&argv);
    // QEMU holds the image open; the directory can go once it did (keep it for the test's life).
    std::mem::forget(scratch);
    q
}

#[tokio::test]
async fn typed_queries_decode_from_qemu_7() {
    let q = spawn_q35();
    let qmp = connect(&q).await;

    let status = qmp.call(&c::QueryStatus {}).await.unwrap();
    assert!(!status.running);
    assert_eq!(status.status, t::RunState::Prelaunch);

    let v = qmp.call(&c::QueryVersion {}).await.unwrap();
    let g = &qmp.greeting().version.qemu;
    assert_eq!(
        (v.qemu.major, v.qemu.minor, v.qemu.micro),
        (g.major as i64, g.minor as i64, g.micro as i64)
    );
    assert!(v.qemu.major >= 7, "{v:?}");

    let name = qmp.call(&c::QueryName {}).await.unwrap();
    assert_eq!(name.name.as_deref(), Some("typed-test"));
    let uuid = qmp.call(&c::QueryUuid {}).await.unwrap();
    assert_eq!(uuid.uuid, "6f5c9a7e-2d3b-4c1a-9e8f-0a1b2c3d4e5f");

    let kvm = qmp.call(&c::QueryKvm {}).await.unwrap();
    assert!(!kvm.enabled, "TCG guest reports KVM enabled: {kvm:?}");

    let target = qmp.call(&c::QueryTarget {}).await.unwrap();
    assert_eq!(target.arch, t::SysEmuTarget::X8664);

    let commands = qmp.call(&c::QueryCommands {}).await.unwrap();
    let names: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
    for must in [
        "query-status",
        "qmp_capabilities",
        "device_add",
        "blockdev-add",
    ] {
        assert!(names.contains(&must), "{must} missing from {names:?}");
    }
    // Most of what QEMU 7.2 offers is in the 10.0 schema too.
    let known = names.iter().filter(|n| c::ALL.contains(n)).count();
    assert!(known * 10 >= names.len() * 9, "{known} of {}", names.len());

    let chardevs = qmp.call(&c::QueryChardev {}).await.unwrap();
    let null = chardevs
        .iter()
        .find(|c| c.label == "nullchr")
        .expect("nullchr");
    assert_eq!(null.filename, "null");

    let cpus = qmp.call(&c::QueryCpusFast {}).await.unwrap();
    assert_eq!(cpus.len(), 1);
    assert_eq!(cpus[0].cpu_index, 0);
    assert!(cpus[0].qom_path.starts_with("/machine/"), "{:?}", cpus[0]);
    assert_eq!(cpus[0].target, Some(t::SysEmuTarget::X8664));

    let blocks = qmp.call(&c::QueryBlock {}).await.unwrap();
    let vblk = blocks
        .iter()
        .find(|b| b.qdev.as_deref().is_some_and(|q| q.contains("vblk0")))
        .unwrap_or_else(|| panic!("no vblk0 in {blocks:?}"));
    let inserted = vblk.inserted.as_ref().expect("medium inserted");
    assert_eq!(inserted.node_name.as_deref(), Some("disk0"));
    assert_eq!(inserted.drv, "qcow2");

    let nodes = qmp.call(&c::QueryNamedBlockNodes::default()).await.unwrap();
    let disk = nodes
        .iter()
        .find(|n| n.node_name.as_deref() == Some("disk0"))
        .expect("disk0 node");
    let image = disk.image.as_ref().expect("image info");
    assert_eq!(image.virtual_size, 16 << 20);
    assert_eq!(image.format, "qcow2");

    let pci = qmp.call(&c::QueryPci {}).await.unwrap();
    let devices: Vec<&t::PciDeviceInfo> = pci.iter().flat_map(|b| &b.devices).collect();
    // virtio-blk: vendor 0x1af4 (Red Hat / virtio).
    assert!(
        devices.iter().any(|d| d.id.vendor == 0x1af4),
        "no virtio device in {devices:?}"
    );
    assert!(devices.iter().any(|d| d.qdev_id == "vblk0"));

    let mig = qmp.call(&c::QueryMigrate {}).await.unwrap();
    assert!(
        matches!(mig.status, None | Some(t::MigrationStatus::None)),
        "{mig:?}"
    );
    let caps = qmp.call(&c::QueryMigrateCapabilities {}).await.unwrap();
    assert!(caps
        .iter()
        .any(|c| c.capability == t::MigrationCapability::Xbzrle && !c.state));
    let params = qmp.call(&c::QueryMigrateParameters {}).await.unwrap();
    assert!(params.max_bandwidth.is_some_and(|b| b > 0), "{params:?}");

    let hot = qmp.call(&c::QueryHotpluggableCpus {}).await.unwrap();
    assert_eq!(hot.len(), 2, "{hot:?}");
    assert_eq!(hot.iter().filter(|c| c.qom_path.is_some()).count(), 1);
    assert!(hot
        .iter()
        .all(|c| c.vcpus_count == 1 && !c.r#type.is_empty()));

    let mem = qmp.call(&c::QueryMemoryDevices {}).await.unwrap();
    assert!(mem.is_empty(), "{mem:?}");
    let memdev = qmp.call(&c::QueryMemdev {}).await.unwrap();
    let mem0 = memdev
        .iter()
        .find(|m| m.id.as_deref() == Some("mem0"))
        .expect("mem0");
    assert_eq!(mem0.size, 64 << 20);

    let props = qmp
        .call(&c::QomList {
            path: "/machine/peripheral/vblk0".into(),
        })
        .await
        .unwrap();
    assert!(props.iter().any(|p| p.name == "type"), "{props:?}");
    let ty = qmp
        .call(&c::QomGet {
            path: "/machine/peripheral/vblk0".into(),
            property: "type".into(),
        })
        .await
        .unwrap();
    assert_eq!(ty, "virtio-blk-pci");

    let machines = qmp.call(&c::QueryMachines::default()).await.unwrap();
    assert!(machines.iter().any(|m| m.name.starts_with("pc-q35-")));
    assert!(machines.iter().any(|m| m.is_default == Some(true)));

    let cpu_defs = qmp.call(&c::QueryCpuDefinitions {}).await.unwrap();
    assert!(cpu_defs.iter().any(|d| d.name == "qemu64"), "no qemu64");

    let iothreads = qmp.call(&c::QueryIothreads {}).await.unwrap();
    assert!(iothreads.is_empty());

    let schema = qmp.call(&c::QueryQmpSchema {}).await.unwrap();
    assert!(schema.len() > 500, "{}", schema.len());
    let metas: std::collections::HashSet<&str> =
        schema.iter().map(|s| s.meta_type.as_str()).collect();
    for m in ["command", "event", "object", "enum", "builtin", "array"] {
        assert!(metas.contains(m), "{m} missing from {metas:?}");
    }
    // No meta-type the 10.0 schema lacks.
    assert!(schema
        .iter()
        .all(|s| !matches!(s.meta_type, t::SchemaMetaType::Unknown(_))));

    // A typed error: the command exists but the path does not.
    let err = qmp
        .call(&c::QomList {
            path: "/no/such/object".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Qmp { .. }), "{err:?}");
}

#[tokio::test]
async fn typed_events_stop_resume_device_deleted() {
    let q = Qemu::spawn(MACHINE_PC);
    let img = q.path("disk.qcow2");
    qcow2(&img, "16M");
    let qmp = connect(&q).await;
    let mut all = qmp.subscribe(EventFilter::names(["STOP", "RESUME", "DEVICE_DELETED"]));

    qmp.call(&c::Cont {}).await.unwrap();
    qmp.call(&c::Stop {}).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let e = all.recv_timeout(Duration::from_secs(10)).await.unwrap();
        match TypedEvent::from_event(&e).unwrap() {
            TypedEvent::Resume(_) => seen.push("RESUME"),
            TypedEvent::Stop(_) => seen.push("STOP"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["RESUME", "STOP"]);
    assert_eq!(
        qmp.call(&c::QueryStatus {}).await.unwrap().status,
        t::RunState::Paused
    );

    let mut file = serde_json::Map::new();
    file.insert(
        "file".into(),
        serde_json::json!({"driver": "file", "filename": img}),
    );
    qmp.call(&c::BlockdevAdd {
        arguments: t::BlockdevOptions {
            driver: t::BlockdevDriver::Qcow2,
            node_name: Some("disk1".into()),
            cache: Some(t::BlockdevCacheOptions {
                direct: Some(false),
                no_flush: Some(false),
            }),
            active: None,
            auto_read_only: None,
            detect_zeroes: None,
            discard: None,
            force_share: None,
            read_only: None,
            branch: file,
        },
    })
    .await
    .unwrap();
    let mut props = serde_json::Map::new();
    props.insert("drive".into(), "disk1".into());
    props.insert("addr".into(), "1".into());
    qmp.call(&c::DeviceAdd {
        driver: "virtio-blk-pci".into(),
        id: Some("vblk1".into()),
        bus: Some("br1".into()),
        properties: props,
    })
    .await
    .unwrap();
    qmp.call(&c::DeviceDel { id: "vblk1".into() })
        .await
        .unwrap();
    let start = Instant::now();
    let deleted = loop {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no DEVICE_DELETED"
        );
        let e = all.recv_timeout(Duration::from_secs(20)).await.unwrap();
        if let TypedEvent::DeviceDeleted(d) = TypedEvent::from_event(&e).unwrap() {
            if d.device.is_some() {
                break d;
            }
            // The backend's own event: a path and no device id.
            assert!(d.path.starts_with("/machine/"), "{d:?}");
        }
    };
    assert_eq!(deleted.device.as_deref(), Some("vblk1"));
    assert_eq!(deleted.path, "/machine/peripheral/vblk1");
}

#[tokio::test]
async fn events_of_qemu_7_schema_decode_or_stay_raw() {
    // Every event QEMU 7.2 declares: those in the 10.0 schema decode from their (empty or
    // minimal) data or fail with a typed error; those it lacks stay `Unknown` with the raw
    // event kept whole.
    let q = Qemu::spawn(common::MACHINE_NONE);
    let qmp = connect(&q).await;
    let schema = qmp.call(&c::QueryQmpSchema {}).await.unwrap();
    let peer_events: Vec<&str> = schema
        .iter()
        .filter(|s| s.meta_type == t::SchemaMetaType::Event)
        .map(|s| s.name.as_str())
        .collect();
    assert!(peer_events.len() > 30, "{peer_events:?}");
    // Events that take no data decode from `{}`.
    let raw = |name: &str| {
        serde_json::from_value::<qmp_client::qmp_proto::Event>(serde_json::json!({
            "event": name, "data": {},
            "timestamp": {"seconds": 1, "microseconds": 2}
        }))
        .unwrap()
    };
    let mut unknown = 0;
    for name in &peer_events {
        let e = raw(name);
        match TypedEvent::from_event(&e) {
            Ok(TypedEvent::Unknown(kept)) => {
                assert!(!events::ALL.contains(name));
                assert_eq!(kept, e);
                unknown += 1;
            }
            Ok(_) => assert!(events::ALL.contains(name)),
            Err(qmp_client::qmp_proto::Error::BadEvent { event, reason }) => {
                assert_eq!(&event, name);
                assert!(reason.contains("missing field"), "{reason}");
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    // QEMU 7.2 declares events by their schema names, so nearly all are known.
    assert!(unknown * 10 < peer_events.len(), "{unknown} unknown");
}

/// The names of the QOM properties (children included) of `path` (typed qom-list).
async fn qom_names(qmp: &Client, path: &str) -> Vec<String> {
    qmp.call(&c::QomList { path: path.into() })
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect()
}

/// Typed object-add with free-form properties (ObjectOptions: `qom-type` and `id` required, the
/// branch's properties untyped): an iothread and a RAM backend appear in the QOM tree with the
/// properties given, and typed object-del removes them.
#[tokio::test]
async fn typed_object_add_free_form() {
    let q = Qemu::spawn(common::MACHINE_NONE);
    let qmp = connect(&q).await;
    let object = |qom_type, id: &str, props: serde_json::Value| c::ObjectAdd {
        arguments: t::ObjectOptions {
            id: id.into(),
            qom_type,
            branch: props.as_object().unwrap().clone(),
        },
    };
    let io = object(
        t::ObjectType::Iothread,
        "io1",
        serde_json::json!({"poll-max-ns": 12345}),
    );
    // The wire form: one flat object, typed members and free-form properties side by side.
    use qmp_client::qmp_proto::Command;
    assert_eq!(
        io.arguments().unwrap(),
        Some(serde_json::json!({"qom-type": "iothread", "id": "io1", "poll-max-ns": 12345}))
    );
    qmp.call(&io).await.unwrap();
    qmp.call(&object(
        t::ObjectType::MemoryBackendRam,
        "ram1",
        serde_json::json!({"size": 8u64 << 20, "share": true}),
    ))
    .await
    .unwrap();
    let names = qom_names(&qmp, "/objects").await;
    assert!(names.contains(&"io1".to_owned()), "{names:?}");
    assert!(names.contains(&"ram1".to_owned()), "{names:?}");
    let get = |path: &str, property: &str| c::QomGet {
        path: path.into(),
        property: property.into(),
    };
    assert_eq!(
        qmp.call(&get("/objects/io1", "poll-max-ns")).await.unwrap(),
        12345
    );
    assert_eq!(
        qmp.call(&get("/objects/io1", "type")).await.unwrap(),
        "iothread"
    );
    assert_eq!(
        qmp.call(&get("/objects/ram1", "size")).await.unwrap(),
        8u64 << 20
    );
    assert_eq!(
        qmp.call(&get("/objects/ram1", "share")).await.unwrap(),
        true
    );
    // A property the type lacks is QEMU's error, typed as such.
    let e = qmp
        .call(&object(
            t::ObjectType::Iothread,
            "io2",
            serde_json::json!({"no-such-property": 1}),
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Qmp { .. }), "{e:?}");
    qmp.call(&c::ObjectDel { id: "io1".into() }).await.unwrap();
    let names = qom_names(&qmp, "/objects").await;
    assert!(!names.contains(&"io1".to_owned()), "{names:?}");
    assert!(!names.contains(&"io2".to_owned()), "{names:?}");
}
