//! Streams, live: a screenshot of a `qemu:///session` TCG guest, volume upload and download
//! through the blocking client's std `Read`/`Write`, explicit `abort()` on both clients, and
//! a stream that fails promptly with a typed error when its connection dies (private daemon).
#![cfg(all(feature = "async", feature = "blocking"))]

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use libvirt_client::libvirt_proto::StreamItem;
use libvirt_client::{Client, Error};
use tokio::io::AsyncReadExt;

use common::daemon::PrivateDaemon;
use common::PeerDir;

/// A [`PeerDir`] the daemon's user owns.
fn owned_peer_dir(tag: &str) -> PeerDir {
    let dir = PeerDir::new(tag);
    let st = std::process::Command::new("chown")
        .arg("vmwire-peer:")
        .arg(&dir.0)
        .status()
        .unwrap();
    assert!(st.success());
    dir
}

fn pool_xml(name: &str, dir: &PeerDir) -> String {
    format!(
        "<pool type='dir'><name>{name}</name><target><path>{}</path></target></pool>",
        dir.0.display()
    )
}

fn vol_xml(name: &str, size: usize) -> String {
    format!(
        "<volume><name>{name}</name><capacity unit='bytes'>{size}</capacity>\
         <allocation>0</allocation><target><format type='raw'/></target></volume>"
    )
}

/// Destroys and undefines a guest however the test ends.
struct DomainGuard {
    uri: String,
    name: String,
}

impl Drop for DomainGuard {
    fn drop(&mut self) {
        for cmd in ["destroy", "undefine"] {
            let _ = std::process::Command::new("virsh")
                .args(["-c", &self.uri, cmd, &self.name])
                .output();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshot_of_a_tcg_guest_is_a_png_image() {
    let uri = common::uri("qemu_unix");
    let c = Client::connect(&uri).await.unwrap();
    let name = common::unique_name("shot");
    let _guard = DomainGuard {
        uri: uri.clone(),
        name: name.clone(),
    };
    let xml = format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='pc'>hvm</type></os>\
         <devices><emulator>{}</emulator><video><model type='vga'/></video>\
         <memballoon model='none'/></devices></domain>",
        common::endpoints()["qemu"]["binary"]
            .as_str()
            .unwrap_or("/usr/bin/qemu-system-x86_64")
    );
    let dom = c.define_xml(&xml).await.unwrap();
    c.start(&dom).await.unwrap();
    let (mime, mut stream) = c.domain_screenshot(dom.clone(), 0, 0).await.unwrap();
    // QEMU 7.2 can write PNG, which libvirt 9.0 then asks for.
    assert_eq!(mime.as_deref(), Some("image/png"));
    let mut img = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut img))
        .await
        .expect("screenshot in time")
        .unwrap();
    stream.finish().await.unwrap();
    // PNG: signature, IHDR (width, height), ..., IEND.
    assert_eq!(
        &img[..8],
        b"\x89PNG\r\n\x1a\n",
        "{:?}",
        &img[..16.min(img.len())]
    );
    assert_eq!(&img[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let (w, h) = (be(&img[16..20]), be(&img[20..24]));
    assert!(w >= 320 && h >= 200, "{w}x{h}");
    assert_eq!(&img[img.len() - 8..img.len() - 4], b"IEND");
    c.destroy(&dom).await.unwrap();
    c.undefine(&dom, Default::default()).await.unwrap();
}

#[cfg(feature = "blocking")]
#[test]
fn blocking_stream_read_write_round_trip_and_abort() {
    use libvirt_client::blocking::Client;
    let c = Client::connect(&common::uri("qemu_tcp")).unwrap();
    let dir = owned_peer_dir("bpool");
    let pool = c
        .storage_pool_create_xml(
            pool_xml(&common::unique_name("bpool"), &dir),
            Default::default(),
        )
        .unwrap();
    const MIB: usize = 1 << 20;
    let size = 3 * MIB + 12_345;
    let vol = c
        .storage_vol_create_xml(pool.clone(), vol_xml("b.raw", size), Default::default())
        .unwrap();
    let data: Vec<u8> = (0..size).map(|i| (i * 7 % 253) as u8).collect();

    // Upload through std::io::Write in odd-sized writes.
    let mut up = c
        .storage_vol_upload(vol.clone(), 0, size as u64, Default::default())
        .unwrap();
    for chunk in data.chunks(100_003) {
        up.write_all(chunk).unwrap();
    }
    up.flush().unwrap();
    up.finish().unwrap();
    assert_eq!(std::fs::read(dir.0.join("b.raw")).unwrap(), data);

    // Download through std::io::Read.
    let mut down = c
        .storage_vol_download(vol.clone(), 0, size as u64, Default::default())
        .unwrap();
    let mut back = Vec::new();
    down.read_to_end(&mut back).unwrap();
    down.finish().unwrap();
    assert!(back == data);

    // Abort a download after its first item: the daemon confirms (its terminal packet is
    // discarded), nothing else is disturbed.
    let discarded = c.stats().discarded_stream_packets;
    let mut down = c
        .storage_vol_download(vol.clone(), 0, size as u64, Default::default())
        .unwrap();
    assert!(matches!(
        down.recv_item().unwrap(),
        Some(StreamItem::Data(_))
    ));
    down.abort();
    let t0 = Instant::now();
    while c.stats().discarded_stream_packets == discarded {
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", c.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    // Abort an upload half-way: the daemon stops writing; the volume still works.
    let mut up = c
        .storage_vol_upload(vol.clone(), 0, size as u64, Default::default())
        .unwrap();
    up.write_all(&vec![0xAB; MIB]).unwrap();
    up.abort();
    assert_eq!(c.version().unwrap().major, 7, "QEMU 7.x");
    let mut down = c
        .storage_vol_download(vol.clone(), 0, 16, Default::default())
        .unwrap();
    let mut head = Vec::new();
    down.read_to_end(&mut head).unwrap();
    down.finish().unwrap();
    assert_eq!(head.len(), 16);

    c.storage_vol_delete(vol, Default::default()).unwrap();
    c.storage_pool_destroy(pool).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_abort_of_a_download_keeps_the_connection_usable() {
    let c = Client::connect(&common::uri("qemu_unix")).await.unwrap();
    let dir = owned_peer_dir("apool");
    let pool = c
        .storage_pool_create_xml(
            pool_xml(&common::unique_name("apool"), &dir),
            Default::default(),
        )
        .await
        .unwrap();
    let size = 4 << 20;
    let vol = c
        .storage_vol_create_xml(pool.clone(), vol_xml("a.raw", size), Default::default())
        .await
        .unwrap();
    let discarded = c.stats().discarded_stream_packets;
    let mut down = c
        .storage_vol_download(vol.clone(), 0, size as u64, Default::default())
        .await
        .unwrap();
    assert!(matches!(
        down.recv_item().await.unwrap(),
        Some(StreamItem::Data(_))
    ));
    down.abort();
    let t0 = Instant::now();
    while c.stats().discarded_stream_packets == discarded {
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", c.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(c.pending_calls(), 0);
    assert_eq!(c.version().await.unwrap().major, 7);
    c.storage_vol_delete(vol, Default::default()).await.unwrap();
    c.storage_pool_destroy(pool).await.unwrap();
}

/// A download from a private daemon that is killed mid-stream: reading fails with the typed
/// "connection closed" error (not a clean EOF) within a second, on both clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_fails_promptly_when_the_connection_dies() {
    let d = PrivateDaemon::start();
    let uri = format!("qemu+unix:///session?socket={}", d.socket().display());
    let c = Client::connect(&uri).await.unwrap();
    let dir = owned_peer_dir("kpool");
    let pool = c
        .storage_pool_create_xml(
            pool_xml(&common::unique_name("kpool"), &dir),
            Default::default(),
        )
        .await
        .unwrap();
    let size = 256usize << 20;
    let vol = c
        .storage_vol_create_xml(pool.clone(), vol_xml("k.raw", size), Default::default())
        .await
        .unwrap();
    let mut down = c
        .storage_vol_download(vol.clone(), 0, size as u64, Default::default())
        .await
        .unwrap();
    let mut buf = vec![0u8; 1 << 16];
    assert!(down.read(&mut buf).await.unwrap() > 0);
    let t0 = Instant::now();
    d.signal("KILL");
    let mut total = 0usize;
    let err = loop {
        match tokio::time::timeout(Duration::from_secs(2), down.read(&mut buf))
            .await
            .expect("the read did not hang")
        {
            Ok(0) => panic!("clean EOF after {total} bytes from a killed daemon"),
            Ok(n) => total += n,
            Err(e) => break e,
        }
    };
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert!(total < size, "{total}");
    let typed = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<Error>())
        .unwrap_or_else(|| panic!("not a typed error: {err:?}"));
    assert!(typed.is_closed(), "{typed}");
    // recv_item says the same, typed.
    let e = down.recv_item().await.unwrap_err();
    assert!(e.is_closed(), "{e}");
}

#[cfg(feature = "blocking")]
#[test]
fn blocking_stream_fails_promptly_when_the_connection_dies() {
    let d = PrivateDaemon::start();
    let uri = format!("qemu+unix:///session?socket={}", d.socket().display());
    let c = libvirt_client::blocking::Client::connect(&uri).unwrap();
    let dir = owned_peer_dir("kbpool");
    let pool = c
        .storage_pool_create_xml(
            pool_xml(&common::unique_name("kbpool"), &dir),
            Default::default(),
        )
        .unwrap();
    let size = 256usize << 20;
    let vol = c
        .storage_vol_create_xml(pool, vol_xml("kb.raw", size), Default::default())
        .unwrap();
    let mut down = c
        .storage_vol_download(vol, 0, size as u64, Default::default())
        .unwrap();
    let mut buf = vec![0u8; 1 << 16];
    assert!(down.read(&mut buf).unwrap() > 0);
    let t0 = Instant::now();
    d.signal("KILL");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut total = 0usize;
        let r = loop {
            match down.read(&mut buf) {
                Ok(0) => break Ok(total),
                Ok(n) => total += n,
                Err(e) => break Err(e),
            }
        };
        let _ = tx.send(r);
    });
    let r = rx
        .recv_timeout(Duration::from_secs(3))
        .expect("the blocking read did not hang");
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    let err = r.expect_err("a killed daemon is no clean EOF");
    let typed = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<Error>())
        .unwrap_or_else(|| panic!("not a typed error: {err:?}"));
    assert!(typed.is_closed(), "{typed}");
}
