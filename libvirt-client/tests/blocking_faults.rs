//! The blocking driver against a daemon that stops answering and stops reading (a private
//! libvirtd, SIGSTOPped): keepalive and per-call timeouts fire with typed errors within a
//! bounded time, even while the writer thread is stuck on a full send buffer, and dropping
//! the client returns.
#![cfg(feature = "blocking")]

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use libvirt_client::blocking::Client;
use libvirt_client::libvirt_proto::generated::remote::procs::ConnectGetVersion;
use libvirt_client::libvirt_proto::KeepaliveConfig;
use libvirt_client::{ClientOptions, Error};

use common::daemon::PrivateDaemon;

/// Start `n` calls, each sending about 1 MiB (a domain XML the daemon never reads), from
/// their own threads; their results arrive on the returned channel.
fn flood(c: &Client, n: usize) -> mpsc::Receiver<Result<(), Error>> {
    let (tx, rx) = mpsc::channel();
    let xml = format!(
        "<domain type='test'><name>big</name><description>{}</description>\
         <memory>65536</memory><os><type>hvm</type></os></domain>",
        "x".repeat(1 << 20)
    );
    for _ in 0..n {
        let (c, tx, xml) = (c.clone(), tx.clone(), xml.clone());
        std::thread::spawn(move || {
            let _ = tx.send(c.domain_define_xml(xml).map(|_| ()));
        });
    }
    rx
}

/// Drop `c` on another thread; true when the drop returned within `limit`.
fn drop_within(c: Client, limit: Duration) -> bool {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        drop(c);
        let _ = tx.send(());
    });
    rx.recv_timeout(limit).is_ok()
}

#[test]
fn blocking_keepalive_fires_while_the_writer_is_stuck_on_a_full_send_buffer() {
    let d = PrivateDaemon::start();
    let interval = Duration::from_millis(200);
    let opts = ClientOptions::default()
        .keepalive(Some(KeepaliveConfig { interval, count: 2 }))
        .call_timeout(None);
    for uri in [d.test_unix(), d.test_tcp()] {
        let c = Client::connect_with(&uri, opts.clone()).unwrap();
        assert!(c.features().keepalive);
        assert_eq!(c.version().unwrap().to_string(), "0.0.2");
    }
    let unix = Client::connect_with(&d.test_unix(), opts.clone()).unwrap();
    let tcp = Client::connect_with(&d.test_tcp(), opts).unwrap();
    d.signal("STOP");
    // 24 MiB of calls each: far beyond any socket buffer, so each writer blocks in write().
    let n = 24;
    let rx_unix = flood(&unix, n);
    let rx_tcp = flood(&tcp, n);
    let t0 = Instant::now();
    for rx in [&rx_unix, &rx_tcp] {
        for _ in 0..n {
            let r = rx
                .recv_timeout(Duration::from_secs(5).saturating_sub(t0.elapsed()))
                .expect("a call hung although keepalive should have declared the daemon dead");
            let e = r.unwrap_err();
            assert!(e.is_closed(), "{e}");
        }
    }
    for c in [&unix, &tcp] {
        common::assert_keepalive_timeout(c.close_reason());
        // New calls fail at once.
        assert!(c.version().unwrap_err().is_closed());
    }
    assert!(
        drop_within(unix, Duration::from_secs(3)),
        "drop hung (unix)"
    );
    assert!(drop_within(tcp, Duration::from_secs(3)), "drop hung (tcp)");
}

#[test]
fn blocking_call_timeouts_fire_while_the_writer_is_stuck() {
    let d = PrivateDaemon::start();
    let opts = ClientOptions::default()
        .keepalive(None)
        .call_timeout(Some(Duration::from_millis(500)));
    let c = Client::connect_with(&d.test_unix(), opts).unwrap();
    d.signal("STOP");
    let n = 24;
    let rx = flood(&c, n);
    let t0 = Instant::now();
    for _ in 0..n {
        let r = rx
            .recv_timeout(Duration::from_secs(5).saturating_sub(t0.elapsed()))
            .expect("a call hung past its timeout");
        let e = r.unwrap_err();
        assert!(e.is_timeout(), "{e}");
    }
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    // The connection itself is not dead (no keepalive): a call still waits, then times out.
    assert!(c.is_open());
    let t1 = Instant::now();
    assert!(c.version().unwrap_err().is_timeout());
    assert!(t1.elapsed() < Duration::from_secs(2));
    // Dropping the client with the writer still stuck returns.
    assert!(drop_within(c, Duration::from_secs(3)), "drop hung");
}

#[test]
fn blocking_stopped_daemon_keepalive_declares_it_dead() {
    let d = PrivateDaemon::start();
    let interval = Duration::from_millis(200);
    let opts = ClientOptions::default().keepalive(Some(KeepaliveConfig { interval, count: 2 }));
    let c = Client::connect_with(&d.test_tcp(), opts).unwrap();
    assert!(c.features().keepalive);
    // Idle through several intervals while the daemon answers PINGs: stays open.
    std::thread::sleep(interval * 5);
    assert!(c.is_open());
    assert!(c.stats().pings_sent >= 2, "{:?}", c.stats());
    d.signal("STOP");
    let pending = {
        let c = c.clone();
        std::thread::spawn(move || c.version())
    };
    let t0 = Instant::now();
    while c.is_open() {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "keepalive did not fire"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    common::assert_keepalive_timeout(c.close_reason());
    assert!(pending.join().unwrap().unwrap_err().is_closed());
    d.signal("CONT");
}

#[test]
fn blocking_per_call_timeout() {
    let d = PrivateDaemon::start();
    let c = Client::connect_with(&d.test_unix(), ClientOptions::default().keepalive(None)).unwrap();
    d.signal("STOP");
    let t0 = Instant::now();
    let e = c
        .call_with_timeout::<ConnectGetVersion>(&(), Some(Duration::from_millis(100)))
        .unwrap_err();
    assert!(e.is_timeout(), "{e}");
    assert!(
        t0.elapsed() >= Duration::from_millis(100) && t0.elapsed() < Duration::from_secs(1),
        "{:?}",
        t0.elapsed()
    );
    // The late reply is discarded once the daemon answers; the connection stays usable.
    d.signal("CONT");
    assert_eq!(c.version().unwrap().to_string(), "0.0.2");
    let t1 = Instant::now();
    while c.stats().discarded_replies == 0 {
        assert!(t1.elapsed() < Duration::from_secs(2), "{:?}", c.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn blocking_large_upload_to_a_stopped_daemon_fails_typed_and_drop_returns() {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let d = PrivateDaemon::start();
    let uri = format!("qemu+unix:///session?socket={}", d.socket().display());
    let opts = ClientOptions::default().keepalive(Some(KeepaliveConfig {
        interval: Duration::from_millis(200),
        count: 2,
    }));
    let c = Client::connect_with(&uri, opts).unwrap();
    let dir = std::path::PathBuf::from(format!("/var/tmp/{}", common::unique_name("upool")));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let pool = c
        .storage_pool_create_xml(
            format!(
                "<pool type='dir'><name>{}</name><target><path>{}</path></target></pool>",
                common::unique_name("upool"),
                dir.display()
            ),
            Default::default(),
        )
        .unwrap();
    let size = 64usize << 20;
    let vol = c
        .storage_vol_create_xml(
            pool,
            format!(
                "<volume><name>u.raw</name><capacity unit='bytes'>{size}</capacity>\
                 <allocation>0</allocation><target><format type='raw'/></target></volume>"
            ),
            Default::default(),
        )
        .unwrap();
    let mut up = c
        .storage_vol_upload(vol, 0, size as u64, Default::default())
        .unwrap();
    d.signal("STOP");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = up.write_all(&vec![0x5A; size]);
        let _ = tx.send(r);
    });
    let r = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the upload hung although keepalive should have declared the daemon dead");
    let err = r.expect_err("64 MiB cannot go to a stopped daemon");
    let typed = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<Error>())
        .unwrap_or_else(|| panic!("not a typed error: {err:?}"));
    assert!(typed.is_closed(), "{typed}");
    common::assert_keepalive_timeout(c.close_reason());
    assert!(drop_within(c, Duration::from_secs(3)), "drop hung");
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}
