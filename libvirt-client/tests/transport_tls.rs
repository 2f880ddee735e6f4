//! The TLS transport against an in-process rustls server that behaves like libvirtd's TLS
//! listener: it requires a client certificate from its CA and, after the handshake, sends one
//! byte (1 = client accepted). Certificates are generated per test with rcgen in libvirt's
//! `pkipath` layout. (A TLS-enabled libvirtd peer comes later.)

// The helpers serve the blocking and the async modules; with one feature off some go unused.
#![cfg_attr(
    not(all(feature = "blocking", feature = "async")),
    allow(dead_code, unused_imports)
)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use libvirt_client::transport::ConnectOptions;
use libvirt_client::uri::Uri;
use libvirt_client::Error;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedKey, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} CA"));
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn issue(&self, names: &[&str], purpose: ExtendedKeyUsagePurpose) -> CertifiedKey {
        self.issue_serial(names, purpose, 1)
    }

    fn issue_serial(
        &self,
        names: &[&str],
        purpose: ExtendedKeyUsagePurpose,
        serial: u64,
    ) -> CertifiedKey {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.serial_number = Some(rcgen::SerialNumber::from(serial));
        for n in names {
            p.subject_alt_names.push(match n.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*n).try_into().unwrap()),
            });
        }
        p.extended_key_usages = vec![purpose];
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        CertifiedKey {
            cert,
            key_pair: key,
        }
    }

    /// A CRL revoking the certificate with serial `revoked`.
    fn crl_pem(&self, revoked: u64) -> String {
        rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2020, 1, 1),
            next_update: rcgen::date_time_ymd(2100, 1, 1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from(revoked),
                revocation_time: rcgen::date_time_ymd(2021, 1, 1),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            }],
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&self.cert, &self.key)
        .unwrap()
        .pem()
        .unwrap()
    }

    /// Write cacert.pem, clientcert.pem and clientkey.pem (libvirt's names) into `dir`.
    fn write_client_pki(&self, dir: &Path, client: &CertifiedKey) {
        std::fs::write(dir.join("cacert.pem"), self.cert.pem()).unwrap();
        std::fs::write(dir.join("clientcert.pem"), client.cert.pem()).unwrap();
        std::fs::write(dir.join("clientkey.pem"), client.key_pair.serialize_pem()).unwrap();
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server config: certificate `server`, client certificates must chain to `client_ca`.
fn server_config(server: &CertifiedKey, client_ca: &Ca) -> Arc<ServerConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(client_ca.cert.der().clone()).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server.key_pair.serialize_der()));
    Arc::new(
        ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![CertificateDer::from(server.cert.der().to_vec())], key)
            .unwrap(),
    )
}

#[derive(Clone, Copy)]
enum Verdict {
    /// Send 1, then answer one 28-byte call with a canned AUTH_LIST reply.
    Accept,
    /// Send 0 and close.
    Refuse,
    /// Close without sending anything.
    Close,
    /// Send 1, then echo everything until the client closes.
    Echo,
}

/// Serve one connection on a fresh 127.0.0.1 port; the thread returns what happened.
fn serve_once(
    config: Arc<ServerConfig>,
    verdict: Verdict,
) -> (u16, JoinHandle<Result<(), String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let h = std::thread::spawn(move || -> Result<(), String> {
        let (sock, _) = listener.accept().map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let conn = ServerConnection::new(config).map_err(|e| e.to_string())?;
        let mut tls = StreamOwned::new(conn, sock);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| format!("handshake: {e}"))?;
        }
        match verdict {
            Verdict::Accept => {
                if tls.conn.peer_certificates().is_none_or(|c| c.is_empty()) {
                    return Err("client sent no certificate".into());
                }
                tls.write_all(&[1]).map_err(|e| e.to_string())?;
                tls.flush().map_err(|e| e.to_string())?;
                let mut call = [0u8; 28];
                tls.read_exact(&mut call).map_err(|e| e.to_string())?;
                let serial = u32::from_be_bytes(call[20..24].try_into().unwrap());
                let reply: Vec<u8> = [36, 0x2000_8086, 1, 66, 1, serial, 0, 1, 0]
                    .iter()
                    .flat_map(|w: &u32| w.to_be_bytes())
                    .collect();
                tls.write_all(&reply).map_err(|e| e.to_string())?;
                tls.flush().map_err(|e| e.to_string())?;
                // wait for the client to finish
                let mut rest = Vec::new();
                let _ = tls.read_to_end(&mut rest);
            }
            Verdict::Refuse => {
                tls.write_all(&[0]).map_err(|e| e.to_string())?;
                tls.flush().map_err(|e| e.to_string())?;
                tls.conn.send_close_notify();
                let _ = tls.conn.complete_io(&mut tls.sock);
            }
            Verdict::Close => {
                tls.conn.send_close_notify();
                let _ = tls.conn.complete_io(&mut tls.sock);
            }
            Verdict::Echo => {
                tls.write_all(&[1]).map_err(|e| e.to_string())?;
                tls.flush().map_err(|e| e.to_string())?;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match tls.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => tls.write_all(&buf[..n]).map_err(|e| e.to_string())?,
                        Err(e) => return Err(format!("echo read: {e}")),
                    }
                }
            }
        }
        Ok(())
    });
    (port, h)
}

struct Setup {
    dir: tempfile::TempDir,
    /// The URI with `PORT` in place of the port.
    uri: String,
    config: Arc<ServerConfig>,
}

/// A CA, a server certificate for `server_names` from `server_ca` (default: the same CA), a
/// client certificate from the CA, the client PKI in a temp dir, and the URI (`extra` params).
fn setup(server_names: &[&str], foreign_server_ca: bool, extra: &str) -> Setup {
    let ca = Ca::new("libvirt");
    let other = Ca::new("other");
    let server_ca = if foreign_server_ca { &other } else { &ca };
    let server = server_ca.issue(server_names, ExtendedKeyUsagePurpose::ServerAuth);
    let client = ca.issue(&["client.example"], ExtendedKeyUsagePurpose::ClientAuth);
    let dir = tempfile::tempdir().unwrap();
    ca.write_client_pki(dir.path(), &client);
    let config = server_config(&server, &ca);
    let uri = format!(
        "test+tls://127.0.0.1:PORT/default?pkipath={}{extra}",
        dir.path().display()
    );
    Setup { dir, uri, config }
}

fn with_port(uri: &str, port: u16) -> Uri {
    Uri::parse(&uri.replace(":PORT/", &format!(":{port}/"))).unwrap()
}

fn opts() -> ConnectOptions {
    ConnectOptions::default().connect_timeout(Some(Duration::from_secs(10)))
}

fn auth_list_reply_ok(reply: &[u8]) {
    let w: Vec<u32> = reply
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(w, [36, 0x2000_8086, 1, 66, 1, 9, 0, 1, 0]);
}

fn auth_list_call() -> Vec<u8> {
    [28u32, 0x2000_8086, 1, 66, 0, 9, 0]
        .iter()
        .flat_map(|w| w.to_be_bytes())
        .collect()
}

#[cfg(feature = "blocking")]
mod blocking {
    use super::*;
    use libvirt_client::transport::BlockingTransport;

    fn connect(
        s: &Setup,
        verdict: Verdict,
    ) -> (
        Result<BlockingTransport, Error>,
        JoinHandle<Result<(), String>>,
    ) {
        let (port, server) = serve_once(s.config.clone(), verdict);
        (
            BlockingTransport::connect(&with_port(&s.uri, port), &opts()),
            server,
        )
    }

    #[test]
    fn accepted_client_exchanges_bytes_through_split_halves() {
        let s = setup(&["127.0.0.1"], false, "");
        let (t, server) = connect(&s, Verdict::Accept);
        let t = t.unwrap();
        assert_eq!(t.kind(), Some(libvirt_client::uri::TransportKind::Tls));
        let (mut r, mut w) = t.into_split().unwrap();
        let reader = std::thread::spawn(move || {
            let mut reply = [0u8; 36];
            r.read_exact(&mut reply).unwrap();
            reply
        });
        w.write_all(&auth_list_call()).unwrap();
        auth_list_reply_ok(&reader.join().unwrap());
        w.shutdown().unwrap();
        server.join().unwrap().unwrap();
    }

    /// Both directions full at once: a writer thread pushes 8 MiB while the reader thread
    /// takes the echo back; neither half may stall the other.
    #[test]
    fn split_halves_stream_both_ways_at_once() {
        let s = setup(&["127.0.0.1"], false, "");
        let (t, server) = connect(&s, Verdict::Echo);
        let (mut r, mut w) = t.unwrap().into_split().unwrap();
        r.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        const TOTAL: usize = 8 << 20;
        let data: Vec<u8> = (0..TOTAL).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        let writer = std::thread::spawn(move || {
            for chunk in data.chunks(100_000) {
                w.write_all(chunk).unwrap();
            }
            w
        });
        let mut got = vec![0u8; TOTAL];
        r.read_exact(&mut got).unwrap();
        assert!(got == expected, "echo differs");
        let w = writer.join().unwrap();
        w.shutdown().unwrap();
        server.join().unwrap().unwrap();
    }

    #[test]
    fn refused_client_gets_a_typed_error() {
        let s = setup(&["127.0.0.1"], false, "");
        let (t, server) = connect(&s, Verdict::Refuse);
        match t {
            Err(Error::TlsClientRefused { host, got }) => {
                assert_eq!(host, "127.0.0.1");
                assert!(got.contains("0x00"), "{got}");
            }
            other => panic!("{other:?}"),
        }
        server.join().unwrap().unwrap();
    }

    #[test]
    fn silent_close_is_a_refusal() {
        let s = setup(&["127.0.0.1"], false, "");
        let (t, server) = connect(&s, Verdict::Close);
        assert!(matches!(t, Err(Error::TlsClientRefused { .. })), "{t:?}");
        server.join().unwrap().unwrap();
    }

    #[test]
    fn untrusted_server_is_rejected_unless_no_verify() {
        let s = setup(&["127.0.0.1"], true, "");
        let (t, server) = connect(&s, Verdict::Accept);
        assert!(matches!(t, Err(Error::TlsHandshake { .. })), "{t:?}");
        assert!(
            server.join().unwrap().is_err(),
            "server saw the handshake fail"
        );

        let s = setup(&["127.0.0.1"], true, "&no_verify=1");
        let (t, server) = connect(&s, Verdict::Accept);
        let mut t = t.unwrap();
        t.write_all(&auth_list_call()).unwrap();
        let mut reply = [0u8; 36];
        t.read_exact(&mut reply).unwrap();
        auth_list_reply_ok(&reply);
        t.shutdown().unwrap();
        server.join().unwrap().unwrap();
    }

    /// `cacrl.pem` beside the CA is honoured: a revoked server certificate is refused, and a
    /// CRL revoking another serial changes nothing.
    #[test]
    fn revoked_server_certificate_is_refused() {
        let ca = Ca::new("libvirt");
        let server = ca.issue_serial(&["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth, 42);
        let client = ca.issue(&["client.example"], ExtendedKeyUsagePurpose::ClientAuth);
        let dir = tempfile::tempdir().unwrap();
        ca.write_client_pki(dir.path(), &client);
        let config = server_config(&server, &ca);
        let uri = format!(
            "test+tls://127.0.0.1:PORT/default?pkipath={}",
            dir.path().display()
        );

        std::fs::write(dir.path().join("cacrl.pem"), ca.crl_pem(7)).unwrap();
        let (port, srv) = serve_once(config.clone(), Verdict::Refuse);
        let t = BlockingTransport::connect(&with_port(&uri, port), &opts());
        assert!(matches!(t, Err(Error::TlsClientRefused { .. })), "{t:?}");
        srv.join().unwrap().unwrap();

        std::fs::write(dir.path().join("cacrl.pem"), ca.crl_pem(42)).unwrap();
        let (port, srv) = serve_once(config, Verdict::Accept);
        match BlockingTransport::connect(&with_port(&uri, port), &opts()) {
            Err(Error::TlsHandshake { source, .. }) => {
                assert!(
                    source.to_string().to_lowercase().contains("revoked"),
                    "{source}"
                )
            }
            other => panic!("{other:?}"),
        }
        let _ = srv.join().unwrap();
    }

    #[test]
    fn server_name_must_match() {
        let s = setup(&["libvirt.example"], false, "");
        let (t, server) = connect(&s, Verdict::Accept);
        match t {
            Err(Error::TlsHandshake { source, .. }) => {
                assert!(
                    source
                        .to_string()
                        .to_lowercase()
                        .contains("not valid for name"),
                    "{source}"
                )
            }
            other => panic!("{other:?}"),
        }
        let _ = server.join().unwrap();
    }

    #[test]
    fn client_certificate_from_another_ca_is_refused_by_the_server() {
        let s = setup(&["127.0.0.1"], false, "");
        // Replace the client certificate with one from a CA the server does not trust.
        let stranger = Ca::new("stranger");
        let client = stranger.issue(&["client.example"], ExtendedKeyUsagePurpose::ClientAuth);
        let dir = s.dir.path();
        std::fs::write(dir.join("clientcert.pem"), client.cert.pem()).unwrap();
        std::fs::write(dir.join("clientkey.pem"), client.key_pair.serialize_pem()).unwrap();
        let (t, server) = connect(&s, Verdict::Accept);
        assert!(matches!(t, Err(Error::TlsHandshake { .. })), "{t:?}");
        assert!(server.join().unwrap().is_err());
    }

    #[test]
    fn missing_pki_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let u = Uri::parse(&format!(
            "test+tls://127.0.0.1:1/default?pkipath={}",
            dir.path().display()
        ))
        .unwrap();
        match BlockingTransport::connect(&u, &opts()) {
            Err(Error::TlsFile { path, .. }) => assert_eq!(path, dir.path().join("cacert.pem")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn silent_server_times_out() {
        let s = setup(&["127.0.0.1"], false, "");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
        let t = BlockingTransport::connect(
            &with_port(&s.uri, port),
            &ConnectOptions::default().connect_timeout(Some(Duration::from_millis(300))),
        );
        assert!(matches!(t, Err(Error::Timeout { .. })), "{t:?}");
        let _held: TcpStream = hold.join().unwrap().unwrap();
    }
}

#[cfg(feature = "async")]
mod asynchronous {
    use super::*;
    use libvirt_client::transport::AsyncTransport;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn connect(
        s: &Setup,
        verdict: Verdict,
    ) -> (
        Result<AsyncTransport, Error>,
        JoinHandle<Result<(), String>>,
    ) {
        let (port, server) = serve_once(s.config.clone(), verdict);
        (
            AsyncTransport::connect(&with_port(&s.uri, port), &opts()).await,
            server,
        )
    }

    #[tokio::test]
    async fn accepted_client_exchanges_bytes() {
        let s = setup(&["127.0.0.1"], false, "");
        let (t, server) = connect(&s, Verdict::Accept).await;
        let mut t = t.unwrap();
        t.write_all(&auth_list_call()).await.unwrap();
        let mut reply = [0u8; 36];
        t.read_exact(&mut reply).await.unwrap();
        auth_list_reply_ok(&reply);
        t.shutdown().await.unwrap();
        drop(t);
        tokio::task::spawn_blocking(move || server.join().unwrap())
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn refused_client_gets_a_typed_error() {
        let s = setup(&["127.0.0.1"], false, "");
        let (t, _server) = connect(&s, Verdict::Refuse).await;
        assert!(matches!(t, Err(Error::TlsClientRefused { .. })), "{t:?}");
        let (t, _server) = connect(&s, Verdict::Close).await;
        assert!(matches!(t, Err(Error::TlsClientRefused { .. })), "{t:?}");
    }

    #[tokio::test]
    async fn untrusted_server_is_rejected_unless_no_verify() {
        let s = setup(&["127.0.0.1"], true, "");
        let (t, _server) = connect(&s, Verdict::Accept).await;
        assert!(matches!(t, Err(Error::TlsHandshake { .. })), "{t:?}");
        let s = setup(&["127.0.0.1"], true, "&no_verify=1");
        let (t, _server) = connect(&s, Verdict::Accept).await;
        assert!(t.is_ok(), "{t:?}");
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let s = setup(&["127.0.0.1"], false, "");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = tokio::spawn(async move { listener.accept().await.map(|(s, _)| s) });
        let t = AsyncTransport::connect(
            &with_port(&s.uri, port),
            &ConnectOptions::default().connect_timeout(Some(Duration::from_millis(300))),
        )
        .await;
        assert!(matches!(t, Err(Error::Timeout { .. })), "{t:?}");
        let _held = hold.await.unwrap().unwrap();
    }
}
