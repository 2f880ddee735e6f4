//! The govmm helpers' version-dependent arguments, against scripted peers whose greeting
//! claims an old or a current QEMU (the real peer is QEMU 7.2 only; QEMU 2.x cannot be run
//! here). Each peer records the commands it receives and answers every one with success
//! (`query-cpus` and `query-cpus-fast` with a vCPU list in their own forms); the test checks
//! what went on the wire.
#![cfg(feature = "async")]

use qmp_client::govmm::{BlkDevice, Blockdev, Cache, FileDriver, Memdev};
use qmp_client::qmp_proto::generated::types as t;
use qmp_client::{Client, ConnectOptions};
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The commands a peer received, as (execute, arguments).
type Log = Arc<Mutex<Vec<(String, Value)>>>;

/// A client connected to a scripted peer announcing QEMU `major.minor.0`.
async fn peer(major: u32, minor: u32) -> (Client, Log) {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let log: Log = Arc::default();
    let seen = log.clone();
    tokio::spawn(async move {
        let (r, mut w) = tokio::io::split(theirs);
        let greeting = json!({"QMP": {
            "version": {"qemu": {"major": major, "minor": minor, "micro": 0}, "package": ""},
            "capabilities": []
        }});
        w.write_all(format!("{greeting}\n").as_bytes())
            .await
            .unwrap();
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let cmd: Value = serde_json::from_str(&line).unwrap();
            let name = cmd["execute"].as_str().unwrap().to_owned();
            let ret = match name.as_str() {
                "query-cpus" => json!([{
                    "CPU": 0, "current": true, "halted": false, "arch": "x86",
                    "qom_path": "/machine/unattached/device[0]", "thread_id": 4242
                }]),
                "query-cpus-fast" => json!([{
                    "cpu-index": 0, "qom-path": "/machine/unattached/device[0]",
                    "thread-id": 4242, "target": "x86_64"
                }]),
                _ => json!({}),
            };
            if name != "qmp_capabilities" {
                seen.lock()
                    .unwrap()
                    .push((name, cmd.get("arguments").cloned().unwrap_or(Value::Null)));
            }
            let reply = json!({"return": ret, "id": cmd["id"]});
            w.write_all(format!("{reply}\n").as_bytes()).await.unwrap();
        }
    });
    let c = Client::connect_stream(ours, ConnectOptions::default())
        .await
        .unwrap();
    (c, log)
}

fn blockdev() -> Blockdev {
    Blockdev {
        node_name: "disk0".into(),
        path: "/var/tmp/disk.qcow2".into(),
        format: t::BlockdevDriver::Qcow2,
        read_only: false,
        cache: Some(Cache {
            direct: true,
            no_flush: false,
        }),
        file_driver: FileDriver::File,
        aio: None,
    }
}

fn blk() -> BlkDevice {
    BlkDevice {
        id: "vd0".into(),
        node_name: "disk0".into(),
        driver: "virtio-blk-pci".into(),
        bus: None,
        addr: None,
        share_rw: true,
        serial: None,
    }
}

fn memdev() -> Memdev {
    Memdev {
        id: "mem0".into(),
        size: 128 << 20,
        mem_path: Some("/dev/shm/m".into()),
        share: true,
        ..Default::default()
    }
}

/// Run every version-dependent helper once; returns what the peer received.
async fn run_all(major: u32, minor: u32) -> Vec<(String, Value)> {
    let (c, log) = peer(major, minor).await;
    let mut dev = blockdev();
    if (major, minor) < (2, 9) {
        // Cache options need 2.9: refused before anything is sent.
        let e = c.blockdev_add(&dev).await.unwrap_err();
        assert!(e.to_string().contains("2.9"), "{e}");
        dev.cache = None;
    }
    c.blockdev_add(&dev).await.unwrap();
    c.blockdev_del("disk0").await.unwrap();
    c.blk_device_add(&blk()).await.unwrap();
    c.memdev_add(&memdev()).await.unwrap();
    let mut params = Map::new();
    params.insert("downtime-limit".into(), json!(250));
    params.insert("max-bandwidth".into(), json!(1 << 20));
    c.set_migration_parameters(params).await.unwrap();
    let cpus = c.query_cpus().await.unwrap();
    assert_eq!(cpus.len(), 1);
    assert_eq!(cpus[0].cpu_index, 0);
    assert_eq!(cpus[0].thread_id, 4242);
    assert_eq!(cpus[0].qom_path, "/machine/unattached/device[0]");
    drop(c);
    let got = log.lock().unwrap().clone();
    got
}

#[tokio::test]
async fn qemu_2_8_gets_the_old_forms() {
    let got = run_all(2, 8).await;
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "blockdev-add",
            "x-blockdev-del",
            "device_add",
            "object-add",
            "migrate-set-parameters",
            "query-cpus"
        ]
    );
    // 2.8: blockdev-add flat with node-name; x-blockdev-del by node-name.
    assert_eq!(got[0].1["node-name"], "disk0");
    assert!(got[0].1.get("options").is_none(), "{}", got[0].1);
    assert!(got[0].1.get("cache").is_none(), "{}", got[0].1);
    assert_eq!(got[1].1, json!({"node-name": "disk0"}));
    // No share-rw before 2.10.
    assert!(got[2].1.get("share-rw").is_none(), "{}", got[2].1);
    // Backend properties in `props` before 6.0.
    assert_eq!(
        got[3].1,
        json!({"qom-type": "memory-backend-file", "id": "mem0",
               "props": {"size": 128 << 20, "share": true, "mem-path": "/dev/shm/m"}})
    );
    // 2.8 has downtime-limit.
    assert_eq!(
        got[4].1,
        json!({"downtime-limit": 250, "max-bandwidth": 1 << 20})
    );
}

#[tokio::test]
async fn qemu_2_7_wraps_blockdev_add_and_names_nodes_by_id() {
    let (c, log) = peer(2, 7).await;
    let mut dev = blockdev();
    dev.cache = None;
    c.blockdev_add(&dev).await.unwrap();
    c.blockdev_del("disk0").await.unwrap();
    drop(c);
    let got = log.lock().unwrap().clone();
    assert_eq!(got[0].0, "blockdev-add");
    let opts = &got[0].1["options"];
    assert_eq!(opts["id"], "disk0");
    assert!(opts.get("node-name").is_none(), "{opts}");
    assert_eq!(opts["file"]["filename"], "/var/tmp/disk.qcow2");
    assert_eq!(
        got[1],
        ("x-blockdev-del".to_owned(), json!({"id": "disk0"}))
    );
}

#[tokio::test]
async fn qemu_2_7_sets_downtime_with_its_own_command() {
    let (c, log) = peer(2, 7).await;
    let mut params = Map::new();
    params.insert("downtime-limit".into(), json!(250));
    params.insert("max-bandwidth".into(), json!(1 << 20));
    c.set_migration_parameters(params).await.unwrap();
    let mut only = Map::new();
    only.insert("downtime-limit".into(), json!(1500));
    c.set_migration_parameters(only).await.unwrap();
    drop(c);
    let got = log.lock().unwrap().clone();
    assert_eq!(
        got,
        [
            ("migrate_set_downtime".to_owned(), json!({"value": 0.25})),
            (
                "migrate-set-parameters".to_owned(),
                json!({"max-bandwidth": 1 << 20})
            ),
            ("migrate_set_downtime".to_owned(), json!({"value": 1.5})),
        ]
    );
}

#[tokio::test]
async fn qemu_7_2_gets_the_current_forms() {
    let got = run_all(7, 2).await;
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "blockdev-add",
            "blockdev-del",
            "device_add",
            "object-add",
            "migrate-set-parameters",
            "query-cpus-fast"
        ]
    );
    assert_eq!(got[0].1["node-name"], "disk0");
    assert!(got[0].1.get("options").is_none());
    assert_eq!(got[0].1["cache"]["direct"], true);
    assert_eq!(got[0].1["file"]["cache"]["direct"], true);
    assert_eq!(got[2].1["share-rw"], true);
    assert_eq!(
        got[3].1,
        json!({"qom-type": "memory-backend-file", "id": "mem0", "size": 128 << 20,
               "share": true, "mem-path": "/dev/shm/m"})
    );
}
