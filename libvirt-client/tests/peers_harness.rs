//! Proves the test harness reaches the real libvirtd started by `cargo xtask peers start`: over
//! both the unix socket and 127.0.0.1 TCP, one hand-framed call gets a well-formed reply.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

fn endpoints() -> serde_json::Value {
    let path = std::env::var("VMWIRE_PEERS")
        .unwrap_or_else(|_| "/var/tmp/vmwire-peers/endpoints.json".to_owned());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read peers endpoints {path}: {e}; run `cargo xtask peers start`")
    });
    serde_json::from_str(&text).expect("endpoints file is JSON")
}

/// Send REMOTE_PROC_AUTH_LIST (program 0x20008086, version 1, procedure 66) and return the reply
/// header words and the auth types offered.
fn auth_list(s: &mut (impl Read + Write)) -> ([u32; 6], Vec<u32>) {
    let words: [u32; 7] = [28, 0x2000_8086, 1, 66, 0, 7, 0];
    let call: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    s.write_all(&call).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let len = u32::from_be_bytes(len) as usize;
    assert!((32..=4096).contains(&len), "implausible reply length {len}");
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).unwrap();
    let w: Vec<u32> = body
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect();
    let header = [w[0], w[1], w[2], w[3], w[4], w[5]];
    let n = w[6] as usize;
    (header, w[7..7 + n].to_vec())
}

fn check(header: [u32; 6], auth: &[u32]) {
    // program, version, procedure, type = REPLY (1), serial echoed, status = OK (0)
    assert_eq!(header, [0x2000_8086, 1, 66, 1, 7, 0]);
    // The peer daemon is configured with auth "none" (REMOTE_AUTH_NONE = 0).
    assert_eq!(auth, &[0]);
}

#[test]
fn libvirtd_answers_on_unix_socket() {
    let ep = endpoints();
    let path = ep["libvirt"]["socket"].as_str().expect("libvirt.socket");
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (header, auth) = auth_list(&mut s);
    check(header, &auth);
}

#[test]
fn libvirtd_answers_on_loopback_tcp() {
    let ep = endpoints();
    let port = ep["libvirt"]["tcp_port"]
        .as_u64()
        .expect("libvirt.tcp_port") as u16;
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (header, auth) = auth_list(&mut s);
    check(header, &auth);
}
