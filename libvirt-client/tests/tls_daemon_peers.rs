//! TLS end to end against the real TLS daemon of `cargo xtask peers` (`libvirt_tls`: libvirtd
//! with `listen_tls`, certificates generated at start, client certificates required).
#![cfg(feature = "async")]

mod common;

use libvirt_client::{Client, Error};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

fn tls() -> serde_json::Value {
    let e = common::endpoints()["libvirt_tls"].clone();
    assert!(
        e.is_object(),
        "endpoints lack libvirt_tls; run `cargo xtask peers start`"
    );
    e
}

#[tokio::test]
async fn valid_client_certificate_opens_and_calls() {
    let uri = tls()["uris"]["test_tls"].as_str().expect("uri").to_owned();
    let c = Client::connect(&uri).await.expect("TLS open");
    assert!(c.connect_get_lib_version().await.expect("version") >= 9_000_000);
    assert!(c.domain_lookup_by_name("test".into()).await.is_ok());
    let q = tls()["uris"]["qemu_tls"].as_str().expect("uri").to_owned();
    let c = Client::connect(&q).await.expect("TLS open (qemu)");
    assert!(c.connect_get_version().await.expect("hv version") > 0);
}

#[tokio::test]
async fn server_from_another_ca_is_refused() {
    let pki = std::path::PathBuf::from(tls()["pkipath"].as_str().expect("pkipath"));
    let dir = tempfile::tempdir().expect("tempdir");
    // Our real client certificate and key, but a CA that did not sign the server.
    for f in ["clientcert.pem", "clientkey.pem"] {
        std::fs::copy(pki.join(f), dir.path().join(f)).expect("copy");
    }
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "some other CA");
    let ca = p.self_signed(&key).expect("CA");
    std::fs::write(dir.path().join("cacert.pem"), ca.pem()).expect("write");
    let port = tls()["port"].as_u64().expect("port");
    let uri = format!(
        "test+tls://127.0.0.1:{port}/default?pkipath={}",
        dir.path().display()
    );
    let e = Client::connect(&uri).await.expect_err("untrusted server");
    assert!(matches!(e, Error::TlsHandshake { .. }), "{e:?}");
}

/// The daemon's log from byte `from` on.
fn log_since(from: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let path = tls()["log"].as_str().expect("log").to_owned();
    let mut f = std::fs::File::open(&path).expect("daemon log");
    f.seek(SeekFrom::Start(from)).expect("seek");
    let mut s = String::new();
    f.read_to_string(&mut s).expect("read log");
    s
}

fn log_len() -> u64 {
    let path = tls()["log"].as_str().expect("log").to_owned();
    std::fs::metadata(path).expect("daemon log").len()
}

/// Without a client certificate this client still connects (as libvirt's: the certificate is
/// optional on the client side), completes the handshake, and it is the DAEMON that refuses:
/// it closes the connection instead of sending its "accepted" byte, and logs why.
#[tokio::test]
async fn missing_client_certificate_is_refused() {
    let pki = std::path::PathBuf::from(tls()["pkipath"].as_str().expect("pkipath"));
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(pki.join("cacert.pem"), dir.path().join("cacert.pem")).expect("copy");
    let port = tls()["port"].as_u64().expect("port");
    let uri = format!(
        "test+tls://127.0.0.1:{port}/default?pkipath={}",
        dir.path().display()
    );
    let before = log_len();
    let e = Client::connect(&uri)
        .await
        .expect_err("no client certificate");
    // TlsClientRefused comes only after a completed handshake (we verified the server), from
    // reading the daemon's verdict: it closed the connection.
    assert!(
        matches!(&e, Error::TlsClientRefused { got, .. } if got.contains("closed")),
        "{e:?}"
    );
    // The daemon says it itself (libvirt's server-side certificate check).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let log = log_since(before);
        if log.contains("Failed to verify peer's certificate") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon logged no certificate refusal: {log}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The same directory with our client certificate and key: accepted.
    for f in ["clientcert.pem", "clientkey.pem"] {
        std::fs::copy(pki.join(f), dir.path().join(f)).expect("copy");
    }
    let c = Client::connect(&uri)
        .await
        .expect("TLS open with a certificate");
    assert!(c.connect_get_lib_version().await.expect("version") >= 9_000_000);
}

/// Rounds of pipelined bursts: 8 callers, 400 calls each round, on a fresh connection.
/// libvirtd reads TLS one packet at a time and does not look at what gnutls already decrypted,
/// so a TLS record holding the end of one call and the start of the next left that call unread
/// until the daemon's keepalive PING, 5 s later (about a third of such rounds stalled). Every
/// packet now gets records of its own; each round must finish well within those 5 s.
const BURST_ROUNDS: usize = 8;
const BURST_CALLERS: usize = 8;
const BURST_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

fn burst_options() -> libvirt_client::ClientOptions {
    // No keepalive of ours: only the daemon's would end a stall.
    libvirt_client::ClientOptions::default().keepalive(None)
}

#[tokio::test]
async fn pipelined_bursts_do_not_stall() {
    let uri = tls()["uris"]["test_tls"].as_str().expect("uri").to_owned();
    for round in 0..BURST_ROUNDS {
        let c = Client::connect_with(&uri, burst_options())
            .await
            .expect("TLS open");
        let t = std::time::Instant::now();
        let tasks: Vec<_> = (0..BURST_CALLERS)
            .map(|k| {
                let c = c.clone();
                tokio::spawn(async move {
                    for i in 0..50 {
                        if (k + i) % 2 == 0 {
                            c.connect_get_lib_version().await.unwrap();
                        } else {
                            c.domain_lookup_by_name("test".into()).await.unwrap();
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let took = t.elapsed();
        assert!(took < BURST_LIMIT, "round {round} took {took:?}");
        c.close().await.unwrap();
    }
}

#[cfg(feature = "blocking")]
#[test]
fn pipelined_bursts_do_not_stall_blocking() {
    let uri = tls()["uris"]["test_tls"].as_str().expect("uri").to_owned();
    for round in 0..BURST_ROUNDS {
        let c = libvirt_client::blocking::Client::connect_with(&uri, burst_options())
            .expect("TLS open");
        let t = std::time::Instant::now();
        std::thread::scope(|s| {
            for k in 0..BURST_CALLERS {
                let c = &c;
                s.spawn(move || {
                    for i in 0..50 {
                        if (k + i) % 2 == 0 {
                            c.connect_get_lib_version().unwrap();
                        } else {
                            c.domain_lookup_by_name("test".into()).unwrap();
                        }
                    }
                });
            }
        });
        let took = t.elapsed();
        assert!(took < BURST_LIMIT, "round {round} took {took:?}");
        c.close().unwrap();
    }
}
