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

/// Answer every call with success until the client hangs up; returns (procedure, first
/// argument word) per call, in order. Keepalive PINGs (program 0x6b656570) are answered
/// with PONGs and not recorded.
fn fake_daemon(mut s: UnixStream) -> Vec<(i32, Option<i32>)> {
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
                AUTH_LIST => 1u32
                    .to_be_bytes()
                    .into_iter()
                    .chain(0i32.to_be_bytes()) // [REMOTE_AUTH_NONE]
                    .collect(),
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
    );
    let f = c.open(Some("test:///default")).await.unwrap();
    assert!(f.keepalive && f.event_callbacks);
    drop(c);
    let seen = tokio::task::spawn_blocking(move || daemon.join().unwrap())
        .await
        .unwrap();
    assert_eq!(seen, expected());
}
