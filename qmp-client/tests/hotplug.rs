//! Hotplug, fd passing and migration on real TCG PCs this test starts.
#![cfg(feature = "async")]

mod common;

use common::{qcow2, Qemu, MACHINE_PC};
use qmp_client::{Client, ConnectOptions, Error, EventFilter};
use serde_json::{json, Value};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

async fn connect(q: &Qemu) -> Client {
    let start = Instant::now();
    loop {
        match Client::connect_unix(&q.qmp, ConnectOptions::default()).await {
            Err(Error::Connect { .. }) if start.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            r => return r.expect("connect"),
        }
    }
}

async fn qdev_ids(c: &Client) -> Vec<String> {
    let v = c
        .execute("qom-list", Some(json!({"path": "/machine/peripheral"})))
        .await
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect()
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn loopback_migration_with_progress() {
    let src_args = ["-machine", "pc,accel=tcg", "-m", "64"];
    let src = Qemu::spawn(&src_args);
    let dst = Qemu::spawn(&["-machine", "pc,accel=tcg", "-m", "64", "-incoming", "defer"]);
    let s = connect(&src).await;
    let d = connect(&dst).await;
    assert_eq!(d.status().await.unwrap(), "inmigrate");
    assert_eq!(s.status().await.unwrap(), "running");
    s.execute(
        "migrate-set-capabilities",
        Some(json!({"capabilities": [{"capability": "events", "state": true}]})),
    )
    .await
    .unwrap();
    let mut src_events = s.subscribe(EventFilter::name("MIGRATION"));
    let dst_resumed = d.subscribe(EventFilter::name("RESUME"));
    let port = free_port();
    let uri = format!("tcp:127.0.0.1:{port}");
    d.execute("migrate-incoming", Some(json!({"uri": uri})))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let done = s
        .migrate_and_wait(
            &uri,
            Duration::from_millis(5),
            Duration::from_secs(60),
            |p| seen.push(p.status.clone()),
        )
        .await
        .unwrap();
    assert_eq!(done.status, "completed");
    assert!(
        done.transferred > 0 && done.total >= 64 << 20,
        "{:?}",
        done.raw
    );
    assert_eq!(seen.last().map(String::as_str), Some("completed"));
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
