//! `qemu:///session` on the REAL peer libvirtd with tiny TCG guests: define, start, suspend,
//! resume, QMP through libvirt, lifecycle and QEMU monitor events in order, console I/O (a
//! 34-byte boot sector that greets and echoes on COM1), destroy, undefine; a sparse storage
//! volume upload/download round trip in a dir pool.
#![cfg(all(feature = "async", feature = "blocking"))]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use libvirt_client::events::{EventItem, EventStream, Subscription};
use libvirt_client::libvirt_proto::generated::api::{
    DomainEventType, DomainState, StorageVolDownloadFlags, StorageVolUploadFlags,
};
use libvirt_client::libvirt_proto::StreamItem;
use libvirt_client::{Client, Domain, TypedEvent};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::PeerDir;

/// `VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM`, looked up by its C name.
fn sparse_upload() -> StorageVolUploadFlags {
    StorageVolUploadFlags::known()
        .iter()
        .find(|(n, _)| *n == "VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM")
        .expect("flag known")
        .1
}

/// `VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM`.
fn sparse_download() -> StorageVolDownloadFlags {
    StorageVolDownloadFlags::known()
        .iter()
        .find(|(n, _)| *n == "VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM")
        .expect("flag known")
        .1
}

/// Real-mode boot sector: print "vmwire-console-ready\r\n" on COM1, then echo every byte
/// received on COM1 (hand-assembled; see the listing in the comments).
fn boot_sector() -> Vec<u8> {
    let mut code: Vec<u8> = vec![
        0x31, 0xC0, // xor ax,ax
        0x8E, 0xD8, // mov ds,ax
        0xFC, // cld
        0xBE, 0x22, 0x7C, // mov si,0x7c22 (msg)
        0xAC, // print: lodsb
        0x08, 0xC0, // or al,al
        0x74, 0x06, // jz echo
        0xBA, 0xF8, 0x03, // mov dx,0x3f8
        0xEE, // out dx,al
        0xEB, 0xF5, // jmp print
        0xBA, 0xFD, 0x03, // echo: mov dx,0x3fd (line status)
        0xEC, // in al,dx
        0xA8, 0x01, // test al,1 (data ready)
        0x74, 0xF8, // jz echo
        0xBA, 0xF8, 0x03, // mov dx,0x3f8
        0xEC, // in al,dx
        0xEE, // out dx,al
        0xEB, 0xF1, // jmp echo
    ];
    assert_eq!(code.len(), 34);
    code.extend_from_slice(b"vmwire-console-ready\r\n\0");
    code.resize(510, 0);
    code.extend_from_slice(&[0x55, 0xAA]);
    code.resize(1 << 20, 0);
    code
}

fn domain_xml(name: &str, disk: &Path, channel: &Path) -> String {
    format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>\
         <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>\
         <devices><emulator>{}</emulator>\
         <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{}'/>\
         <target dev='hda' bus='ide'/></disk>\
         <serial type='pty'/><console type='pty'/>\
         <channel type='unix'><source mode='bind' path='{}'/><target type='virtio' name='org.vmwire.test.0'/></channel>\
         <memballoon model='none'/></devices></domain>",
        common::endpoints()["qemu"]["binary"]
            .as_str()
            .unwrap_or("/usr/bin/qemu-system-x86_64"),
        disk.display(),
        channel.display()
    )
}

/// Destroys and undefines the domain however the test ends.
struct DomainGuard {
    uri: String,
    name: String,
}

impl Drop for DomainGuard {
    fn drop(&mut self) {
        let virsh = common::endpoints()["virsh"]
            .as_str()
            .unwrap_or("virsh")
            .to_owned();
        for cmd in ["destroy", "undefine"] {
            let _ = std::process::Command::new(&virsh)
                .args(["-c", &self.uri, cmd, &self.name])
                .output();
        }
    }
}

async fn next_lifecycle(s: &mut EventStream, name: &str) -> DomainEventType {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(30), s.next())
            .await
            .expect("a lifecycle event in time")
            .expect("open")
            .expect("decodes");
        if let EventItem::Event(TypedEvent::DomainEventCallbackLifecycle(m)) = item {
            if m.msg.dom.name == name {
                return DomainEventType(m.msg.event);
            }
        }
    }
}

/// The next QEMU monitor event named `want`; returns the names skipped before it.
async fn monitor_event(s: &mut EventStream, want: &str) -> Vec<String> {
    let mut skipped = Vec::new();
    loop {
        let e = next_monitor_event(s).await;
        if e == want {
            return skipped;
        }
        skipped.push(e);
    }
}

async fn next_monitor_event(s: &mut EventStream) -> String {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(30), s.next())
            .await
            .expect("a monitor event in time")
            .expect("open")
            .expect("decodes");
        if let EventItem::Event(TypedEvent::QemuDomainMonitorEvent(m)) = item {
            return m.event;
        }
    }
}

async fn read_until(stream: &mut libvirt_client::stream::AsyncVirStream, needle: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(60), async {
        while !got.windows(needle.len()).any(|w| w == needle) {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "console EOF after {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("console said only {:?}", String::from_utf8_lossy(&got)));
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcg_guest_lifecycle_qmp_events_console() {
    let uri = common::uri("qemu_unix");
    let c = Client::connect(&uri).await.unwrap();
    let dir = PeerDir::new("guest");
    let disk = dir.0.join("boot.img");
    std::fs::write(&disk, boot_sector()).unwrap();
    dir.chown(&dir.0);
    let name = common::unique_name("tcg");
    let _guard = DomainGuard {
        uri: uri.clone(),
        name: name.clone(),
    };

    let mut life = c.subscribe(Subscription::domain(None)).await.unwrap();
    let dom: Domain = c
        .define_xml(&domain_xml(&name, &disk, &dir.0.join("ch.sock")))
        .await
        .unwrap();
    assert_eq!(
        next_lifecycle(&mut life, &name).await,
        DomainEventType::DEFINED
    );
    let mut mon = c
        .subscribe(Subscription::qemu_monitor(Some(dom.clone()), None))
        .await
        .unwrap();

    c.start(&dom).await.unwrap();
    // libvirt's QEMU driver starts the CPUs paused and resumes them: a RESUMED (detail
    // UNPAUSED) may precede STARTED.
    let mut e = next_lifecycle(&mut life, &name).await;
    if e == DomainEventType::RESUMED {
        e = next_lifecycle(&mut life, &name).await;
    }
    assert_eq!(e, DomainEventType::STARTED);
    assert_eq!(
        c.domain_state(&dom).await.unwrap().state,
        DomainState::RUNNING
    );

    // Console: the guest greets, then echoes what we type.
    let mut console = c
        .domain_open_console(dom.clone(), None, Default::default())
        .await
        .unwrap();
    read_until(&mut console, b"vmwire-console-ready").await;
    console.write_all(b"ping-42").await.unwrap();
    read_until(&mut console, b"ping-42").await;

    // A domain channel (virtio-serial port on a unix socket): opened by name and written to (this
    // guest has no virtio driver to answer); an unknown name is the daemon's typed error.
    let mut channel = c
        .domain_open_channel(
            dom.clone(),
            Some("org.vmwire.test.0".into()),
            Default::default(),
        )
        .await
        .unwrap();
    channel.write_all(b"to-the-guest").await.unwrap();
    channel.flush().await.unwrap();
    channel.abort();
    let e = c
        .domain_open_channel(
            dom.clone(),
            Some("org.vmwire.nope.0".into()),
            Default::default(),
        )
        .await
        .unwrap_err();
    assert!(e.remote().is_some(), "{e}");
    // The connection goes on after both.
    assert_eq!(
        c.domain_state(&dom).await.unwrap().state,
        DomainState::RUNNING
    );

    // QMP through libvirt.
    let r = c
        .qmp(&dom, &json!({"execute": "query-status"}))
        .await
        .unwrap();
    assert_eq!(r["return"]["status"], "running", "{r}");

    c.suspend(&dom).await.unwrap();
    assert_eq!(
        next_lifecycle(&mut life, &name).await,
        DomainEventType::SUSPENDED
    );
    // (The RESUME of the start, queued before, may come first.)
    let before = monitor_event(&mut mon, "STOP").await;
    assert!(before.iter().all(|e| e == "RESUME"), "{before:?}");
    let r = c
        .qmp(&dom, &json!({"execute": "query-status"}))
        .await
        .unwrap();
    assert_eq!(r["return"]["status"], "paused", "{r}");
    assert_eq!(
        c.domain_state(&dom).await.unwrap().state,
        DomainState::PAUSED
    );

    c.resume(&dom).await.unwrap();
    assert_eq!(
        next_lifecycle(&mut life, &name).await,
        DomainEventType::RESUMED
    );
    assert_eq!(next_monitor_event(&mut mon).await, "RESUME");
    drop(mon);

    // libvirt passes QEMU's error answer through unchanged (qemuMonitorJSONArbitraryCommand
    // returns the reply text whatever it holds): a QMP error object, not a daemon error.
    let v = c
        .qmp(&dom, &json!({"execute": "no-such-command"}))
        .await
        .unwrap();
    assert_eq!(v["error"]["class"], "CommandNotFound", "{v}");
    assert!(
        v["error"]["desc"]
            .as_str()
            .is_some_and(|d| d.contains("no-such-command")),
        "{v}"
    );
    assert!(v.get("return").is_none(), "{v}");

    drop(console);
    c.destroy(&dom).await.unwrap();
    // QEMU reports the SIGTERM as a host-initiated SHUTDOWN before libvirt's STOPPED.
    let mut e = next_lifecycle(&mut life, &name).await;
    if e == DomainEventType::SHUTDOWN {
        e = next_lifecycle(&mut life, &name).await;
    }
    assert_eq!(e, DomainEventType::STOPPED);
    c.undefine(&dom, Default::default()).await.unwrap();
    assert_eq!(
        next_lifecycle(&mut life, &name).await,
        DomainEventType::UNDEFINED
    );
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparse_volume_upload_download_round_trip() {
    let uri = common::uri("qemu_tcp");
    let c = Client::connect(&uri).await.unwrap();
    let dir = PeerDir::new("pool");
    dir.chown(&dir.0);
    let pool_name = common::unique_name("pool");
    let pool = c
        .storage_pool_create_xml(
            format!(
                "<pool type='dir'><name>{pool_name}</name><target><path>{}</path></target></pool>",
                dir.0.display()
            ),
            Default::default(),
        )
        .await
        .unwrap();
    const MIB: usize = 1 << 20;
    let size = 8 * MIB;
    let vol = c
        .storage_vol_create_xml(
            pool.clone(),
            format!(
                "<volume><name>v.raw</name><capacity unit='bytes'>{size}</capacity>\
                 <allocation>0</allocation><target><format type='raw'/></target></volume>"
            ),
            Default::default(),
        )
        .await
        .unwrap();

    // Upload: 1 MiB data, 6 MiB hole, 1 MiB data.
    let a: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8 | 1).collect();
    let b: Vec<u8> = (0..MIB).map(|i| (i % 241) as u8 | 1).collect();
    let mut up = c
        .storage_vol_upload(vol.clone(), 0, size as u64, sparse_upload())
        .await
        .unwrap();
    up.send(&a).await.unwrap();
    up.send_hole(6 * MIB as i64).await.unwrap();
    up.send(&b).await.unwrap();
    up.finish().await.unwrap();

    // The file is sparse on disk.
    let meta = std::fs::metadata(dir.0.join("v.raw")).unwrap();
    assert_eq!(meta.len(), size as u64);
    assert!(
        meta.blocks() * 512 < 4 * MIB as u64,
        "{} blocks",
        meta.blocks()
    );

    // Sparse download: data, a hole, data.
    let mut down = c
        .storage_vol_download(vol.clone(), 0, size as u64, sparse_download())
        .await
        .unwrap();
    let mut image = Vec::new();
    let mut holes = 0i64;
    while let Some(item) = down.recv_item().await.unwrap() {
        match item {
            StreamItem::Data(d) => image.extend_from_slice(&d),
            StreamItem::Hole { length, .. } => {
                holes += length;
                image.resize(image.len() + length as usize, 0);
            }
            StreamItem::Eof => break,
        }
    }
    down.finish().await.unwrap();
    assert!(holes >= 4 * MIB as i64, "holes {holes}");
    assert_eq!(image.len(), size);
    assert!(image[..MIB] == a[..] && image[7 * MIB..] == b[..]);
    assert!(image[MIB..7 * MIB].iter().all(|&x| x == 0));

    // Plain (non-sparse) download through AsyncRead reads holes as zeros.
    let mut plain = c
        .storage_vol_download(vol.clone(), 0, size as u64, Default::default())
        .await
        .unwrap();
    let mut all = Vec::new();
    plain.read_to_end(&mut all).await.unwrap();
    plain.finish().await.unwrap();
    assert!(all == image);
    // A sparse download read through AsyncRead: its holes come out as zeros too.
    let mut sparse = c
        .storage_vol_download(vol.clone(), 0, size as u64, sparse_download())
        .await
        .unwrap();
    let mut all = Vec::new();
    sparse.read_to_end(&mut all).await.unwrap();
    sparse.finish().await.unwrap();
    assert!(all == image);

    // The blocking client: upload other data around a hole (Write + send_hole), then a
    // sparse download through Read.
    let blocking_vol = vol.clone();
    let (file, blocking_uri) = (dir.0.join("v.raw"), uri.clone());
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let c = libvirt_client::blocking::Client::connect(&blocking_uri).unwrap();
        let x: Vec<u8> = (0..MIB).map(|i| (i % 239) as u8 | 1).collect();
        let y: Vec<u8> = (0..2 * MIB).map(|i| (i % 233) as u8 | 1).collect();
        let mut up = c
            .storage_vol_upload(blocking_vol.clone(), 0, size as u64, sparse_upload())
            .unwrap();
        up.write_all(&x).unwrap();
        up.send_hole(5 * MIB as i64).unwrap();
        up.write_all(&y).unwrap();
        up.finish().unwrap();
        let meta = std::fs::metadata(&file).unwrap();
        assert!(
            meta.blocks() * 512 < 5 * MIB as u64,
            "{} blocks",
            meta.blocks()
        );
        let mut down = c
            .storage_vol_download(blocking_vol, 0, size as u64, sparse_download())
            .unwrap();
        let mut got = Vec::new();
        down.read_to_end(&mut got).unwrap();
        down.finish().unwrap();
        assert_eq!(got.len(), size);
        assert!(got[..MIB] == x[..] && got[6 * MIB..] == y[..]);
        assert!(got[MIB..6 * MIB].iter().all(|&v| v == 0));
        c.close().unwrap();
    })
    .await
    .unwrap();

    c.storage_vol_delete(vol, Default::default()).await.unwrap();
    c.storage_pool_destroy(pool).await.unwrap();
    c.close().await.unwrap();
}
