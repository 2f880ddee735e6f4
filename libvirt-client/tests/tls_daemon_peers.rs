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
    // Without clientcert.pem/clientkey.pem the client refuses up front, typed.
    let e = Client::connect(&uri)
        .await
        .expect_err("no client certificate");
    assert!(
        matches!(
            e,
            Error::TlsFile { .. } | Error::TlsClientRefused { .. } | Error::TlsHandshake { .. }
        ),
        "{e:?}"
    );
}
