//! Real-peer proof of the schema-driven codec and dissector: `virsh` talks to the private
//! libvirtd through a recording unix-socket proxy; `cargo xtask xdr dissect` must decode both
//! directions (procedures, arguments, replies), `xdr encode` must reproduce every body virsh and
//! libvirtd sent byte for byte, and our own encoding of the same calls (plain serde structs
//! through `xdr`, and `libvirt-proto`'s generated types and packet encoder) must equal virsh's
//! packets byte for byte.
//!
//! Needs the peers (`cargo xtask peers start`; endpoints file from `$VMWIRE_PEERS`, default
//! `/var/tmp/vmwire-peers/endpoints.json`) and libvirt's `.x` files (`$VMWIRE_LIBVIRT_PROTOCOL`,
//! default `../shared/libvirt-protocol/11.3.0` next to the workspace).

use serde::Serialize;
use serde_json::Value as Json;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

fn endpoints() -> Json {
    let path = std::env::var("VMWIRE_PEERS")
        .unwrap_or_else(|_| "/var/tmp/vmwire-peers/endpoints.json".into());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("peers endpoints file {path} missing ({e}): run `cargo xtask peers start`")
    });
    serde_json::from_str(&text).expect("endpoints file is JSON")
}

fn protocol_dir() -> PathBuf {
    std::env::var_os("VMWIRE_LIBVIRT_PROTOCOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/libvirt-protocol/11.3.0")
        })
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(tag: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("vmwire-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

/// Copy `from` to `to`, recording every byte, until EOF; then shut down `to`'s write side.
fn pump(mut from: UnixStream, mut to: UnixStream, log: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 65536];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                log.lock().unwrap().extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Run virsh with `commands` through a recording proxy in front of the daemon's socket; returns
/// (virsh stdout, client->server bytes, server->client bytes).
fn capture_virsh(commands: &str) -> (String, Vec<u8>, Vec<u8>) {
    let ep = endpoints();
    let daemon = ep["libvirt"]["socket"]
        .as_str()
        .expect("libvirt.socket")
        .to_string();
    let virsh = ep["virsh"].as_str().unwrap_or("/usr/bin/virsh").to_string();
    let dir = temp_dir("xdr-virsh");
    let proxy = dir.0.join("proxy.sock");
    let listener = UnixListener::bind(&proxy).unwrap();
    let c2s = Arc::new(Mutex::new(Vec::new()));
    let s2c = Arc::new(Mutex::new(Vec::new()));
    let (c2s2, s2c2) = (c2s.clone(), s2c.clone());
    let proxy_thread = thread::spawn(move || {
        let (client, _) = listener.accept().expect("virsh connects to the proxy");
        let server = UnixStream::connect(&daemon).expect("the daemon's socket accepts");
        let (c, s) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let up = thread::spawn(move || pump(client, server, c2s2));
        let down = thread::spawn(move || pump(s, c, s2c2));
        up.join().unwrap();
        down.join().unwrap();
    });
    let uri = format!("test+unix:///default?socket={}", proxy.display());
    let out = Command::new(&virsh)
        .args(["-q", "-c", &uri, commands])
        .env("LIBVIRT_DEFAULT_URI", "")
        .output()
        .expect("virsh runs");
    assert!(
        out.status.success(),
        "virsh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // virsh has exited: its socket is closed, so both pumps end.
    for _ in 0..100 {
        if proxy_thread.is_finished() {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    assert!(proxy_thread.is_finished(), "proxy did not see EOF");
    proxy_thread.join().unwrap();
    let c2s = c2s.lock().unwrap().clone();
    let s2c = s2c.lock().unwrap().clone();
    (String::from_utf8_lossy(&out.stdout).into_owned(), c2s, s2c)
}

fn xtask(args: &[&str], stdin: &[u8]) -> (bool, Vec<u8>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xtask runs");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn dissect(stream: &[u8]) -> Vec<Json> {
    let dir = protocol_dir();
    let (ok, out, err) = xtask(
        &["xdr", "dissect", "--spec-dir", dir.to_str().unwrap()],
        stream,
    );
    assert!(ok, "dissect failed: {err}");
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// The packets of a stream as byte slices (length word included).
fn split_packets(stream: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = stream;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        out.push(&rest[..len]);
        rest = &rest[len..];
    }
    assert!(
        rest.is_empty(),
        "a partial packet at the end of the capture"
    );
    out
}

/// Header (after the length word) plus the fd count for `*_WITH_FDS`.
fn body_offset(packet: &Json) -> usize {
    4 + 24 + if packet.get("fds").is_some() { 4 } else { 0 }
}

// Our own encoding of a few calls: plain serde structs mirroring the .x declarations.
#[derive(Serialize)]
struct ConnectOpenArgs<'a> {
    name: Option<&'a str>,
    flags: u32,
}

#[derive(Serialize)]
struct ConnectListAllDomainsArgs {
    need_results: i32,
    flags: u32,
}

#[derive(Serialize)]
struct NonnullDomain<'a> {
    name: &'a str,
    #[serde(with = "xdr::opaque_fixed")]
    uuid: [u8; 16],
    id: i32,
}

#[derive(Serialize)]
struct DomainArgs<'a> {
    dom: NonnullDomain<'a>,
}

const REMOTE_PROGRAM: u32 = 0x2000_8086;

fn our_call(procedure: u32, serial: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let len = (28 + body.len()) as u32;
    for w in [len, REMOTE_PROGRAM, 1, procedure, 0, serial, 0] {
        out.extend_from_slice(&w.to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

#[test]
fn virsh_traffic_dissects_and_reencodes_byte_for_byte() {
    let (stdout, c2s, s2c) = capture_virsh("list --all; dominfo test");
    assert!(
        stdout.contains("test"),
        "virsh list shows the test domain: {stdout}"
    );

    let calls = dissect(&c2s);
    let replies = dissect(&s2c);
    let names: Vec<&str> = calls
        .iter()
        .map(|p| p["procedure"].as_str().unwrap_or("?"))
        .collect();
    eprintln!("virsh sent: {names:?}");

    // (a) the dissector's view: the procedures virsh needs, with their arguments and replies.
    let find = |proc_name: &str| -> &Json {
        calls
            .iter()
            .find(|p| p["procedure"] == proc_name)
            .unwrap_or_else(|| panic!("virsh sent no {proc_name}; sent {names:?}"))
    };
    let reply_to = |call: &Json| -> &Json {
        replies
            .iter()
            .find(|r| r["serial"] == call["serial"] && r["type"] == "VIR_NET_REPLY")
            .unwrap_or_else(|| panic!("no reply to {call}"))
    };
    for p in calls.iter() {
        assert_eq!(p["program"], "remote", "{p}");
        assert!(p.get("decode_error").is_none(), "{p}");
    }
    for r in replies.iter() {
        assert!(r.get("decode_error").is_none(), "{r}");
    }
    let open = find("REMOTE_PROC_CONNECT_OPEN");
    assert_eq!(open["type"], "VIR_NET_CALL");
    assert_eq!(open["body_type"], "remote_connect_open_args");
    assert_eq!(open["body"]["name"], "test:///default");
    assert_eq!(reply_to(open)["status"], "VIR_NET_OK");

    let list = find("REMOTE_PROC_CONNECT_LIST_ALL_DOMAINS");
    assert_eq!(list["body"]["need_results"], 1);
    let list_ret = &reply_to(list)["body"];
    let domains = list_ret["domains"].as_array().expect("domains array");
    let test_dom = domains
        .iter()
        .find(|d| d["name"] == "test")
        .unwrap_or_else(|| panic!("the test driver's domain is listed: {list_ret}"));
    assert_eq!(list_ret["ret"], domains.len());

    let info = find("REMOTE_PROC_DOMAIN_GET_INFO");
    assert_eq!(info["body"]["dom"]["name"], "test");
    let info_ret = &reply_to(info)["body"];
    assert!(info_ret["maxMem"].as_u64().unwrap() > 0, "{info_ret}");
    assert!(info_ret["nrVirtCpu"].as_u64().unwrap() > 0, "{info_ret}");

    let close = calls.last().unwrap();
    assert_eq!(close["procedure"], "REMOTE_PROC_CONNECT_CLOSE");
    assert_eq!(close["body_type"], "void");

    // (b1) every body, both directions: dissect's JSON -> `xdr encode` == the bytes on the wire.
    let dir = protocol_dir();
    let remote_x = dir.join("remote_protocol.x");
    for (stream, packets) in [(&c2s, &calls), (&s2c, &replies)] {
        let raw = split_packets(stream);
        assert_eq!(raw.len(), packets.len());
        for (bytes, p) in raw.iter().zip(packets.iter()) {
            let body = &bytes[body_offset(p)..];
            let (ty, json) = if let Some(e) = p.get("error") {
                ("virNetMessageError", e)
            } else if let Some(b) = p.get("body") {
                (p["body_type"].as_str().unwrap(), b)
            } else {
                assert!(body.is_empty(), "{p}");
                continue;
            };
            let spec = if ty.starts_with("virNet") {
                dir.join("virnetprotocol.x")
            } else {
                remote_x.clone()
            };
            let (ok, out, err) = xtask(
                &[
                    "xdr",
                    "encode",
                    "--spec",
                    spec.to_str().unwrap(),
                    "--type",
                    ty,
                ],
                json.to_string().as_bytes(),
            );
            assert!(ok, "encode {ty}: {err}");
            assert_eq!(out, body, "re-encoded {ty} differs from the wire ({p})");
        }
    }

    // (b2) our own encoding of the calls == virsh's packets (same serials).
    let raw_calls = split_packets(&c2s);
    let packet_of = |call: &Json| -> &[u8] {
        let i = calls.iter().position(|p| p == call).unwrap();
        raw_calls[i]
    };
    let serial = |p: &Json| p["serial"].as_u64().unwrap() as u32;

    let body = xdr::to_bytes(&ConnectOpenArgs {
        name: Some("test:///default"),
        flags: 0,
    })
    .unwrap();
    assert_eq!(our_call(1, serial(open), &body), packet_of(open));

    let flags = list["body"]["flags"].as_u64().unwrap() as u32;
    // virsh asks for active and inactive domains (VIR_CONNECT_LIST_DOMAINS_ACTIVE|INACTIVE = 3).
    assert_eq!(flags & 3, 3, "list --all flags {flags:#x}");
    let body = xdr::to_bytes(&ConnectListAllDomainsArgs {
        need_results: 1,
        flags,
    })
    .unwrap();
    assert_eq!(our_call(273, serial(list), &body), packet_of(list));

    // The domain as the daemon listed it (uuid and id from the reply, not from virsh's call).
    let uuid: [u8; 16] = hex_bytes(test_dom["uuid"].as_str().unwrap())
        .try_into()
        .unwrap();
    let body = xdr::to_bytes(&DomainArgs {
        dom: NonnullDomain {
            name: "test",
            uuid,
            id: test_dom["id"].as_i64().unwrap() as i32,
        },
    })
    .unwrap();
    assert_eq!(our_call(16, serial(info), &body), packet_of(info));

    assert_eq!(our_call(2, serial(close), &[]), packet_of(close));

    // (b3) the same calls through libvirt-proto: generated types and its packet encoder.
    use libvirt_proto::generated::remote as r;
    let proto_call = |procedure: i32, serial: u32, body: &[u8]| {
        let header = libvirt_proto::Header {
            program: r::PROGRAM,
            version: 1,
            procedure,
            kind: libvirt_proto::MessageType::Call,
            serial,
            status: libvirt_proto::MessageStatus::Ok,
        };
        let mut out = Vec::new();
        libvirt_proto::packet::encode_packet(&header, 0, body, &mut out).unwrap();
        out
    };
    let open_args = r::RemoteConnectOpenArgs {
        name: Some("test:///default".into()),
        flags: 0,
    };
    assert_eq!(
        proto_call(1, serial(open), &xdr::to_bytes(&open_args).unwrap()),
        packet_of(open)
    );
    let list_args = r::RemoteConnectListAllDomainsArgs {
        need_results: 1,
        flags,
    };
    assert_eq!(
        proto_call(273, serial(list), &xdr::to_bytes(&list_args).unwrap()),
        packet_of(list)
    );
    let info_args = r::RemoteDomainGetInfoArgs {
        dom: r::RemoteNonnullDomain {
            name: "test".into(),
            uuid,
            id: test_dom["id"].as_i64().unwrap() as i32,
        },
    };
    assert_eq!(
        proto_call(16, serial(info), &xdr::to_bytes(&info_args).unwrap()),
        packet_of(info)
    );
    // and the daemon's replies decode with the generated types to what the dissector showed
    let raw_replies = split_packets(&s2c);
    let reply_bytes = |call: &Json| {
        let i = replies
            .iter()
            .position(|r| r["serial"] == call["serial"])
            .unwrap();
        &raw_replies[i][28..]
    };
    let got: r::RemoteConnectListAllDomainsRet = xdr::from_bytes(reply_bytes(list)).unwrap();
    assert_eq!(got.ret as usize, domains.len());
    assert_eq!(
        got.domains.iter().find(|d| d.name == "test").unwrap().uuid,
        uuid
    );
    let got: r::RemoteDomainGetInfoRet = xdr::from_bytes(reply_bytes(info)).unwrap();
    assert_eq!(got.max_mem, info_ret["maxMem"].as_u64().unwrap());
    assert_eq!(
        u64::from(got.nr_virt_cpu),
        info_ret["nrVirtCpu"].as_u64().unwrap()
    );
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn cli_decode_encode_and_errors() {
    let dir = protocol_dir();
    let spec = dir.join("qemu_protocol.x"); // includes remote_protocol.x for remote_nonnull_domain
    let spec = spec.to_str().unwrap();
    let ty = "qemu_domain_monitor_command_args";
    let json = r#"{"dom":{"name":"vm","uuid":"00112233445566778899aabbccddeeff","id":-1},"cmd":"{\"execute\":\"query-status\"}","flags":0}"#;
    let (ok, bytes, err) = xtask(
        &["xdr", "encode", "--spec", spec, "--type", ty],
        json.as_bytes(),
    );
    assert!(ok, "{err}");
    assert_eq!(bytes.len(), 4 + 4 + 16 + 4 + 4 + 28 + 4);
    let (ok, out, err) = xtask(&["xdr", "decode", "--spec", spec, "--type", ty], &bytes);
    assert!(ok, "{err}");
    assert_eq!(String::from_utf8(out).unwrap(), format!("{json}\n"));

    // trailing bytes, truncation, bad JSON: non-zero exit, one line on stderr, nothing on stdout
    let mut long = bytes.clone();
    long.extend_from_slice(&[0, 0, 0, 0]);
    for (args, input, says) in [
        (vec!["decode"], long.as_slice(), "4 trailing bytes"),
        (vec!["decode"], &bytes[..bytes.len() - 1], "end of input"),
        (vec!["encode"], b"{\"dom\":1}".as_slice(), "dom"),
        (vec!["encode"], b"not json".as_slice(), "JSON"),
    ] {
        let mut a = vec!["xdr"];
        a.extend(args);
        a.extend(["--spec", spec, "--type", ty]);
        let (ok, out, err) = xtask(&a, input);
        assert!(!ok, "{a:?} must fail");
        assert!(out.is_empty(), "nothing on stdout");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
        assert!(err.contains(says), "{a:?}: `{says}` not in {err:?}");
    }
    let (ok, _, err) = xtask(&["xdr", "decode", "--spec", spec, "--type", "nope"], b"");
    assert!(!ok && err.contains("unknown type `nope`"), "{err}");
    let (ok, _, err) = xtask(
        &["xdr", "decode", "--spec", "/nonexistent.x", "--type", ty],
        b"",
    );
    assert!(!ok && err.contains("/nonexistent.x"), "{err}");
}

#[test]
fn cli_dissect_reports_a_truncated_stream() {
    // CONNECT_GET_LIB_VERSION call, then half a packet.
    let mut stream = Vec::new();
    for w in [28u32, REMOTE_PROGRAM, 1, 157, 0, 9, 0, 40, REMOTE_PROGRAM] {
        stream.extend_from_slice(&w.to_be_bytes());
    }
    let dir = protocol_dir();
    let (ok, out, err) = xtask(
        &["xdr", "dissect", "--spec-dir", dir.to_str().unwrap()],
        &stream,
    );
    assert!(!ok);
    let out = String::from_utf8(out).unwrap();
    assert_eq!(out.lines().count(), 1, "{out}");
    let p: Json = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(p["procedure"], "REMOTE_PROC_CONNECT_GET_LIB_VERSION");
    assert_eq!(p["serial"], 9);
    assert_eq!(p["body_type"], "void");
    assert!(err.contains("packet[1]"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1);
}

#[test]
fn cli_lenient_padding() {
    let dir = protocol_dir();
    let spec = dir.join("qemu_protocol.x");
    let spec = spec.to_str().unwrap();
    let ty = "qemu_domain_monitor_command_args";
    let json = r#"{"dom":{"name":"vm","uuid":"00112233445566778899aabbccddeeff","id":-1},"cmd":"{\"execute\":\"query-status\"}","flags":0}"#;
    let (ok, good, err) = xtask(
        &["xdr", "encode", "--spec", spec, "--type", ty],
        json.as_bytes(),
    );
    assert!(ok, "{err}");
    // The last padding byte of `cmd` (26 bytes + 2 of padding), before `flags`.
    let mut bad = good.clone();
    let at = bad.len() - 5;
    assert_eq!(bad[at], 0);
    bad[at] = 0x7f;
    let (ok, out, err) = xtask(&["xdr", "decode", "--spec", spec, "--type", ty], &bad);
    assert!(!ok && out.is_empty(), "strict must fail");
    assert!(
        err.contains("non-zero padding") && err.contains("qemu_domain_monitor_command_args.cmd"),
        "{err}"
    );
    let (ok, out, err) = xtask(
        &[
            "xdr",
            "decode",
            "--lenient-padding",
            "--spec",
            spec,
            "--type",
            ty,
        ],
        &bad,
    );
    assert!(ok, "{err}");
    assert_eq!(String::from_utf8(out).unwrap(), format!("{json}\n"));
    // Re-encoding writes zero padding: the original bytes, not the lenient input.
    let (ok, again, err) = xtask(
        &["xdr", "encode", "--spec", spec, "--type", ty],
        json.as_bytes(),
    );
    assert!(ok, "{err}");
    assert_eq!(again, good);
    // encode has no such option; dissect has.
    let (ok, _, err) = xtask(
        &[
            "xdr",
            "encode",
            "--spec",
            spec,
            "--type",
            ty,
            "--lenient-padding",
        ],
        json.as_bytes(),
    );
    assert!(!ok && err.contains("--lenient-padding"), "{err}");
    let mut stream = Vec::new();
    for w in [28u32, REMOTE_PROGRAM, 1, 157, 0, 9, 0] {
        stream.extend_from_slice(&w.to_be_bytes());
    }
    let (ok, out, err) = xtask(
        &[
            "xdr",
            "dissect",
            "--lenient-padding",
            "--spec-dir",
            dir.to_str().unwrap(),
        ],
        &stream,
    );
    assert!(ok, "{err}");
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 1);
}

#[test]
fn cli_lossy_utf8() {
    let dir = protocol_dir();
    let spec = dir.join("remote_protocol.x");
    let spec = spec.to_str().unwrap();
    let ty = "remote_nonnull_storage_vol";
    let json = r#"{"pool":"default","name":"caf!.img","key":"/var/lib/images/caf!.img"}"#;
    let (ok, good, err) = xtask(
        &["xdr", "encode", "--spec", spec, "--type", ty],
        json.as_bytes(),
    );
    assert!(ok, "{err}");
    // Latin-1 é (0xe9 alone is not UTF-8) in the name and the key, as a file name can have.
    let bad: Vec<u8> = good
        .iter()
        .map(|&b| if b == b'!' { 0xe9 } else { b })
        .collect();
    let (ok, out, err) = xtask(&["xdr", "decode", "--spec", spec, "--type", ty], &bad);
    assert!(!ok && out.is_empty(), "strict must fail");
    assert!(
        err.contains("not valid UTF-8") && err.contains("remote_nonnull_storage_vol.name"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1);
    let (ok, out, err) = xtask(
        &[
            "xdr",
            "decode",
            "--lossy-utf8",
            "--spec",
            spec,
            "--type",
            ty,
        ],
        &bad,
    );
    assert!(ok, "{err}");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("{}\n", json.replace('!', "\u{fffd}"))
    );
    let (ok, _, err) = xtask(
        &[
            "xdr",
            "encode",
            "--spec",
            spec,
            "--type",
            ty,
            "--lossy-utf8",
        ],
        json.as_bytes(),
    );
    assert!(!ok && err.contains("--lossy-utf8"), "{err}");
}
