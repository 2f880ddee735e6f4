//! Hotplug, fd passing and migration on real TCG PCs this test starts.
#![cfg(feature = "async")]

mod common;

use common::{qcow2, Qemu, MACHINE_PC};
use qmp_client::{Client, Error, EventFilter};
use serde_json::{json, Value};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use common::connect;

async fn qdev_ids(c: &Client) -> Vec<String> {
    let v = c
        .execute("qom-list", Some(json!({"path": "/machine/peripheral"})))
        .await
        .unwrap();
    common::qom_list_names(&v)
}

#[tokio::test]
async fn blockdev_and_virtio_blk_round_trip() {
    let q = Qemu::spawn(MACHINE_PC);
    let img = q.path("disk.qcow2");
    qcow2(&img, "16M");
    let c = connect(&q).await;
    c.execute(
        "blockdev-add",
        Some(json!({"driver": "qcow2", "node-name": "disk0",
                    "file": {"driver": "file", "filename": img, "cache": {"direct": false}}})),
    )
    .await
    .unwrap();
    c.execute("device_add", Some(json!({"driver": "virtio-blk-pci", "drive": "disk0", "id": "vblk0", "bus": "br1", "addr": "1"})))
        .await
        .unwrap();
    assert!(qdev_ids(&c).await.contains(&"vblk0".to_owned()));
    // QEMU first sends DEVICE_DELETED with only the backend `path`; the wait must not stop there.
    let mut all = c.subscribe(EventFilter::name("DEVICE_DELETED"));
    c.device_del_and_wait("vblk0", Duration::from_secs(10))
        .await
        .unwrap();
    assert!(!qdev_ids(&c).await.contains(&"vblk0".to_owned()));
    let first = all.recv_timeout(Duration::from_secs(1)).await.unwrap();
    assert!(first.data.get("device").is_none(), "{first:?}");
    let second = all.recv_timeout(Duration::from_secs(1)).await.unwrap();
    assert_eq!(second.data["device"], "vblk0");
    // The node is free again: delete it.
    c.execute("blockdev-del", Some(json!({"node-name": "disk0"})))
        .await
        .unwrap();
}

/// device_del by canonical QOM path: the wait matches the event's `path` (its `device` is the
/// id, which the caller did not give), not the backend's path-only event.
#[tokio::test]
async fn device_del_and_wait_by_qom_path() {
    let q = Qemu::spawn(MACHINE_PC);
    let c = connect(&q).await;
    c.execute(
        "blockdev-add",
        Some(json!({"driver": "null-co", "node-name": "null0"})),
    )
    .await
    .unwrap();
    c.execute("device_add", Some(json!({"driver": "virtio-blk-pci", "drive": "null0", "id": "vblkp", "bus": "br1", "addr": "3"})))
        .await
        .unwrap();
    let path = "/machine/peripheral/vblkp";
    let mut all = c.subscribe(EventFilter::name("DEVICE_DELETED"));
    let started = Instant::now();
    c.device_del_and_wait(path, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!qdev_ids(&c).await.contains(&"vblkp".to_owned()));
    // What QEMU sent: the backend's path-only event, then the device's, whose path was given.
    let mut got = Vec::new();
    while let Ok(e) = all.recv_timeout(Duration::from_millis(300)).await {
        got.push(e.data);
    }
    assert_eq!(got.last().unwrap()["path"], path, "{got:?}");
    assert_eq!(got.last().unwrap()["device"], "vblkp", "{got:?}");
    assert!(
        got.iter()
            .any(|d| d.get("device").is_none() && d["path"] != path),
        "{got:?}"
    );
}

#[tokio::test]
async fn add_fd_backs_a_blockdev_and_getfd_names_one() {
    let q = Qemu::spawn(MACHINE_PC);
    let img = q.path("fd.qcow2");
    qcow2(&img, "8M");
    let c = connect(&q).await;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&img)
        .unwrap();
    let (set, fd) = c.add_fd(Some(7), OwnedFd::from(file)).await.unwrap();
    assert_eq!(set, 7);
    assert!(fd > 2);
    let sets = c.execute("query-fdsets", None).await.unwrap();
    assert_eq!(sets[0]["fdset-id"], 7);
    c.execute(
        "blockdev-add",
        Some(json!({"driver": "qcow2", "node-name": "fdisk",
                    "file": {"driver": "file", "filename": "/dev/fdset/7"}})),
    )
    .await
    .unwrap();
    let nodes = c
        .execute("query-named-block-nodes", Some(json!({"flat": true})))
        .await
        .unwrap();
    let node = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node-name"] == "fdisk")
        .expect("node");
    assert_eq!(node["drv"], "qcow2");
    assert_eq!(node["image"]["virtual-size"], 8 << 20, "{node}");
    c.execute("device_add", Some(json!({"driver": "virtio-blk-pci", "drive": "fdisk", "id": "fblk", "bus": "br1", "addr": "2"})))
        .await
        .unwrap();
    c.device_del_and_wait("fblk", Duration::from_secs(10))
        .await
        .unwrap();

    // getfd: a named fd, then closefd; a second closefd proves the first found it.
    let (r, _w) = std::io::pipe().unwrap();
    c.get_fd("mypipe", OwnedFd::from(r)).await.unwrap();
    c.execute("closefd", Some(json!({"fdname": "mypipe"})))
        .await
        .unwrap();
    let e = c
        .execute("closefd", Some(json!({"fdname": "mypipe"})))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("mypipe"), "{e}");
}

/// Poll query-status for up to 5 s until it says `want`; returns the last status.
async fn wait_status(c: &Client, want: &str) -> String {
    let start = Instant::now();
    loop {
        let s = c.status().await.unwrap();
        if s == want || start.elapsed() > Duration::from_secs(5) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn loopback_migration_with_progress() {
    let pair = common::MigrationPair::spawn();
    let s = connect(&pair.src).await;
    let d = connect(&pair.dst).await;
    assert_eq!(d.status().await.unwrap(), "inmigrate");
    assert_eq!(s.status().await.unwrap(), "running");
    s.execute(
        "migrate-set-capabilities",
        Some(json!({"capabilities": [{"capability": "events", "state": true}]})),
    )
    .await
    .unwrap();
    // 32 MiB of non-zero RAM at 16 MiB/s: about two seconds, QEMU's counters move every 100 ms.
    s.execute(
        "migrate-set-parameters",
        Some(json!({"max-bandwidth": 16 << 20})),
    )
    .await
    .unwrap();
    let mut src_events = s.subscribe(EventFilter::name("MIGRATION"));
    let dst_resumed = d.subscribe(EventFilter::name("RESUME"));
    let uri = format!("tcp:127.0.0.1:{}", common::free_port());
    d.execute("migrate-incoming", Some(json!({"uri": uri})))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let done = s
        .migrate_and_wait(
            &uri,
            Duration::from_millis(20),
            Duration::from_secs(60),
            |p| seen.push((p.status.clone(), p.transferred)),
        )
        .await
        .unwrap();
    assert_eq!(done.status, "completed");
    assert!(
        done.transferred >= common::MIGRATION_RAM / 2 && done.total >= common::MIGRATION_RAM,
        "{:?}",
        done.raw
    );
    assert_eq!(
        seen.last().map(|(s, _)| s.as_str()),
        Some("completed"),
        "{seen:?}"
    );
    common::assert_progress_grew(&seen);
    let mut statuses = Vec::new();
    while let Ok(e) = src_events.recv_timeout(Duration::from_millis(500)).await {
        statuses.push(e.data["status"].as_str().unwrap_or_default().to_owned());
        if statuses.last().map(String::as_str) == Some("completed") {
            break;
        }
    }
    assert_eq!(
        statuses.first().map(String::as_str),
        Some("setup"),
        "{statuses:?}"
    );
    assert!(statuses.iter().any(|s| s == "active"), "{statuses:?}");
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("completed"),
        "{statuses:?}"
    );
    // Both ends: the source stopped after handing over, the destination runs.
    let mut dst_resumed = dst_resumed;
    dst_resumed
        .recv_timeout(Duration::from_secs(10))
        .await
        .unwrap();
    // The source's run state changes just after its migration reports `completed`.
    assert_eq!(wait_status(&s, "postmigrate").await, "postmigrate");
    assert_eq!(wait_status(&d, "running").await, "running");
    let dm = d.execute("query-migrate", None).await.unwrap();
    assert_eq!(
        dm.get("status").and_then(Value::as_str),
        Some("completed"),
        "{dm}"
    );
}

/// A migration still running at its timeout is cancelled, reported as MigrationTimeout, and
/// the source keeps running.
#[tokio::test]
async fn migration_timeout_cancels() {
    let pair = common::MigrationPair::spawn();
    let s = connect(&pair.src).await;
    let d = connect(&pair.dst).await;
    // 32 MiB at 1 MiB/s would take half a minute.
    s.execute(
        "migrate-set-parameters",
        Some(json!({"max-bandwidth": 1 << 20})),
    )
    .await
    .unwrap();
    let uri = format!("tcp:127.0.0.1:{}", common::free_port());
    d.execute("migrate-incoming", Some(json!({"uri": uri})))
        .await
        .unwrap();
    let started = Instant::now();
    let mut last = String::new();
    let r = s
        .migrate_and_wait(
            &uri,
            Duration::from_millis(50),
            Duration::from_millis(800),
            |p| last = p.status.clone(),
        )
        .await;
    match &r {
        Err(Error::MigrationTimeout { after, status }) => {
            assert_eq!(*after, Duration::from_millis(800));
            assert_eq!(status, "cancelled");
        }
        other => panic!("expected MigrationTimeout, got {other:?}"),
    }
    assert_eq!(last, "cancelled");
    assert!(started.elapsed() < Duration::from_secs(15));
    let m = s.migration_progress().await.unwrap();
    assert_eq!(m.status, "cancelled", "{:?}", m.raw);
    assert_eq!(s.status().await.unwrap(), "running");
}
