//! The blocking driver's helpers on real TCG PCs: device_del with its DEVICE_DELETED wait (by id
//! and by QOM path), fd passing (add-fd backing a blockdev, getfd), and migration with progress
//! and with a timeout.
#![cfg(feature = "blocking")]

mod common;

use common::{qcow2, Qemu, MACHINE_PC};
use qmp_client::blocking::Client;
use qmp_client::{Error, EventFilter};
use serde_json::json;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use common::connect_blocking as connect;

fn qdev_ids(c: &Client) -> Vec<String> {
    let v = c
        .execute("qom-list", Some(json!({"path": "/machine/peripheral"})))
        .unwrap();
    common::qom_list_names(&v)
}

fn plug(c: &Client, node: &str, id: &str, addr: &str) {
    c.execute("device_add", Some(json!({"driver": "virtio-blk-pci", "drive": node, "id": id, "bus": "br1", "addr": addr})))
        .unwrap();
    assert!(qdev_ids(c).contains(&id.to_owned()));
}

#[test]
fn device_del_by_id_and_by_path_with_fd_backed_disks() {
    let q = Qemu::spawn(MACHINE_PC);
    let img = q.path("fd.qcow2");
    qcow2(&img, "8M");
    let c = connect(&q);
    // add-fd: the image enters QEMU as an fd in set 7 and backs a qcow2 node.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&img)
        .unwrap();
    let (set, fd) = c.add_fd(Some(7), OwnedFd::from(file)).unwrap();
    assert_eq!(set, 7);
    assert!(fd > 2);
    c.execute(
        "blockdev-add",
        Some(json!({"driver": "qcow2", "node-name": "fdisk",
                    "file": {"driver": "file", "filename": "/dev/fdset/7"}})),
    )
    .unwrap();
    plug(&c, "fdisk", "vblk-id", "1");
    let all = c.subscribe(EventFilter::name("DEVICE_DELETED"));
    c.device_del_and_wait("vblk-id", Duration::from_secs(10))
        .unwrap();
    assert!(!qdev_ids(&c).contains(&"vblk-id".to_owned()));
    // The backend's path-only event came first and was not taken for the device's.
    let first = all.recv_timeout(Duration::from_secs(1)).unwrap();
    assert!(first.data.get("device").is_none(), "{first:?}");
    let second = all.recv_timeout(Duration::from_secs(1)).unwrap();
    assert_eq!(second.data["device"], "vblk-id");

    // By canonical QOM path.
    plug(&c, "fdisk", "vblk-path", "2");
    c.device_del_and_wait("/machine/peripheral/vblk-path", Duration::from_secs(10))
        .unwrap();
    assert!(!qdev_ids(&c).contains(&"vblk-path".to_owned()));
    // A device that is not there: QEMU's error, no wait.
    let r = c.device_del_and_wait("nope", Duration::from_secs(10));
    assert!(
        matches!(&r, Err(Error::Qmp { error, .. }) if error.class == qmp_client::qmp_proto::ErrorClass::DeviceNotFound),
        "{r:?}"
    );

    // getfd: a named fd; closefd finds it once.
    let (r, _w) = std::io::pipe().unwrap();
    c.get_fd("mypipe", OwnedFd::from(r)).unwrap();
    c.execute("closefd", Some(json!({"fdname": "mypipe"})))
        .unwrap();
    assert!(c
        .execute("closefd", Some(json!({"fdname": "mypipe"})))
        .is_err());
    // Bad arguments are refused before anything is sent.
    let (r, _w) = std::io::pipe().unwrap();
    assert!(matches!(
        c.get_fd("", OwnedFd::from(r)),
        Err(Error::InvalidArgument(_))
    ));
}

fn wait_status(c: &Client, want: &str) -> String {
    let start = Instant::now();
    loop {
        let s = c.status().unwrap();
        if s == want || start.elapsed() > Duration::from_secs(5) {
            return s;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn migrate_and_wait_reports_progress_then_completes() {
    let pair = common::MigrationPair::spawn();
    let (s, d) = (connect(&pair.src), connect(&pair.dst));
    assert_eq!(d.status().unwrap(), "inmigrate");
    s.execute(
        "migrate-set-parameters",
        Some(json!({"max-bandwidth": 16 << 20})),
    )
    .unwrap();
    let uri = format!("tcp:127.0.0.1:{}", common::free_port());
    d.execute("migrate-incoming", Some(json!({"uri": uri})))
        .unwrap();
    let mut seen = Vec::new();
    let done = s
        .migrate_and_wait(
            &uri,
            Duration::from_millis(20),
            Duration::from_secs(60),
            |p| seen.push((p.status.clone(), p.transferred)),
        )
        .unwrap();
    assert_eq!(done.status, "completed");
    assert!(
        done.transferred >= common::MIGRATION_RAM / 2,
        "{:?}",
        done.raw
    );
    common::assert_progress_grew(&seen);
    assert_eq!(wait_status(&s, "postmigrate"), "postmigrate");
    assert_eq!(wait_status(&d, "running"), "running");
    // Bad URI: refused before anything is sent.
    assert!(matches!(
        s.migrate_and_wait(
            "nowhere",
            Duration::from_millis(10),
            Duration::from_secs(1),
            |_| {}
        ),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn migrate_and_wait_cancels_at_its_timeout() {
    let pair = common::MigrationPair::spawn();
    let (s, d) = (connect(&pair.src), connect(&pair.dst));
    s.execute(
        "migrate-set-parameters",
        Some(json!({"max-bandwidth": 1 << 20})),
    )
    .unwrap();
    let uri = format!("tcp:127.0.0.1:{}", common::free_port());
    d.execute("migrate-incoming", Some(json!({"uri": uri})))
        .unwrap();
    let r = s.migrate_and_wait(
        &uri,
        Duration::from_millis(50),
        Duration::from_millis(800),
        |_| {},
    );
    assert!(
        matches!(&r, Err(Error::MigrationTimeout { status, .. }) if status == "cancelled"),
        "{r:?}"
    );
    assert_eq!(s.migration_progress().unwrap().status, "cancelled");
    assert_eq!(s.status().unwrap(), "running");
}
