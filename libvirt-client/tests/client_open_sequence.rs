//! The open sequence's order on the wire, as libvirt's remote driver (`doRemoteOpen`) sends
//! it: AUTH_LIST, the keepalive feature probe, CONNECT_OPEN, then the other feature probes.
//! A scripted in-process daemon on a socket pair records what each client sends.
#![cfg(all(feature = "async", feature = "blocking"))]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use libvirt_client::libvirt_proto::packet::encode_packet;
use libvirt_client::libvirt_proto::{Framer, Header, MessageStatus, MessageType};

const AUTH_LIST: i32 = 66;
const SUPPORTS_FEATURE: i32 = 60;
const CONNECT_OPEN: i32 = 1;
const AUTH_POLKIT: i32 = 70;
/// `remote_auth_type`: REMOTE_AUTH_NONE, REMOTE_AUTH_SASL, REMOTE_AUTH_POLKIT.
const NONE: i32 = 0;
const POLKIT: i32 = 2;

/// Answer every call with success until the client hangs up; returns (procedure, first
/// argument word) per call, in order. Keepalive PINGs (program 0x6b656570) are answered
/// with PONGs and not recorded.
fn fake_daemon(s: UnixStream) -> Vec<(i32, Option<i32>)> {
    fake_daemon_with(s, &[NONE], 1)
}

/// [`fake_daemon`] offering the auth types `auth` and answering AUTH_POLKIT with `complete`.
fn fake_daemon_with(mut s: UnixStream, auth: &[i32], complete: i32) -> Vec<(i32, Option<i32>)> {
    let mut f = Framer::new();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => return seen,
            Ok(n) => n,
        };
        f.push(&buf[..n]);
        while let Ok(Some(p)) = f.next_packet() {
            let h = p.header;
            if h.program == 0x6b65_6570 {
                if h.procedure == 1 {
                    let pong = Header { procedure: 2, ..h };
                    let mut out = Vec::new();
                    encode_packet(&pong, 0, &[], &mut out).unwrap();
                    let _ = s.write_all(&out);
                }
                continue;
            }
            let arg = p
                .body
                .get(..4)
                .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            seen.push((h.procedure, arg));
            let body: Vec<u8> = match h.procedure {
                AUTH_LIST => (auth.len() as u32)
                    .to_be_bytes()
                    .into_iter()
                    .chain(auth.iter().flat_map(|a| a.to_be_bytes()))
                    .collect(),
                AUTH_POLKIT => complete.to_be_bytes().to_vec(),
                SUPPORTS_FEATURE => 1i32.to_be_bytes().to_vec(),
                _ => Vec::new(),
            };
            let reply = Header {
                kind: MessageType::Reply,
                status: MessageStatus::Ok,
                ..h
            };
            let mut out = Vec::new();
            encode_packet(&reply, 0, &body, &mut out).unwrap();
            if s.write_all(&out).is_err() {
                return seen;
            }
        }
    }
}

fn expected() -> Vec<(i32, Option<i32>)> {
    vec![
        (AUTH_LIST, None),
        (SUPPORTS_FEATURE, Some(10)), // VIR_DRV_FEATURE_PROGRAM_KEEPALIVE
        (CONNECT_OPEN, Some(1)),      // name present: the optional string's marker
        (SUPPORTS_FEATURE, Some(14)), // REMOTE_EVENT_CALLBACK
        (SUPPORTS_FEATURE, Some(15)), // REMOTE_CLOSE_CALLBACK
        (SUPPORTS_FEATURE, Some(8)),  // FD_PASSING
    ]
}

#[cfg(feature = "blocking")]
#[test]
fn blocking_open_probes_keepalive_before_connect_open() {
    use libvirt_client::blocking::Client;
    use libvirt_client::transport::BlockingTransport;
    let (a, b) = UnixStream::pair().unwrap();
    let daemon = std::thread::spawn(move || fake_daemon(b));
    let c =
        Client::from_transport(BlockingTransport::from_unix(a), Default::default(), None).unwrap();
    let f = c.open(Some("test:///default")).unwrap();
    assert!(f.keepalive && f.event_callbacks && f.close_callback && f.fd_passing);
    drop(c);
    assert_eq!(daemon.join().unwrap(), expected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_open_probes_keepalive_before_connect_open() {
    use libvirt_client::transport::AsyncTransport;
    use libvirt_client::Client;
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let daemon = std::thread::spawn(move || fake_daemon(b));
    let c = Client::from_transport(
        AsyncTransport::from_unix(tokio::net::UnixStream::from_std(a).unwrap()),
        Default::default(),
        None,
    )
    .unwrap();
    let f = c.open(Some("test:///default")).await.unwrap();
    assert!(f.keepalive && f.event_callbacks);
    drop(c);
    let seen = tokio::task::spawn_blocking(move || daemon.join().unwrap())
        .await
        .unwrap();
    assert_eq!(seen, expected());
}

/// A daemon offering polkit first: the client runs AUTH_POLKIT before the probes; an
/// incomplete polkit answer is a typed authentication failure; `auth=polkit` in the URI is
/// refused by a daemon that offers only none (blocking driver; the async one runs the same
/// `open::pick_auth` / `check_polkit` steps).
#[test]
fn polkit_auth_in_the_open_sequence() {
    use libvirt_client::blocking::Client;
    use libvirt_client::transport::BlockingTransport;
    use libvirt_client::uri::Uri;
    let run = |auth: &'static [i32], complete: i32, uri: Option<&str>| {
        let (a, b) = UnixStream::pair().unwrap();
        let daemon = std::thread::spawn(move || fake_daemon_with(b, auth, complete));
        let uri = uri.map(|u| Uri::parse(u).unwrap());
        let c = Client::from_transport(BlockingTransport::from_unix(a), Default::default(), uri)
            .unwrap();
        let r = c.open(Some("test:///default")).map(|_| ());
        drop(c);
        (r, daemon.join().unwrap())
    };
    let (r, seen) = run(&[POLKIT, NONE], 1, None);
    r.unwrap();
    assert_eq!(seen[..2], [(AUTH_LIST, None), (AUTH_POLKIT, None)]);
    assert_eq!(seen[2..], expected()[1..]);
    let (r, seen) = run(&[POLKIT], 0, None);
    assert!(
        matches!(&r, Err(libvirt_client::Error::AuthFailed { method, .. }) if method == "polkit"),
        "{r:?}"
    );
    assert_eq!(seen, [(AUTH_LIST, None), (AUTH_POLKIT, None)]);
    let (r, seen) = run(&[NONE], 1, Some("test:///default?auth=polkit"));
    assert!(
        matches!(&r, Err(libvirt_client::Error::AuthFailed { reason, .. }) if reason.contains("rejected")),
        "{r:?}"
    );
    assert_eq!(seen, [(AUTH_LIST, None)]);
}
