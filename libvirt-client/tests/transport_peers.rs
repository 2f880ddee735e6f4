//! Transports against the REAL libvirtd started by `cargo xtask peers start`: unix, tcp, ext
//! (`nc -U`) and ssh (a stand-in `ssh` program given with `command=` that runs the remote
//! command locally, since no sshd runs here), through both the blocking and the async
//! transport. Each exchanges hand-framed packets: REMOTE_PROC_AUTH_LIST, then
//! REMOTE_PROC_CONNECT_OPEN with the URI's `remote_name()`, which the daemon must accept.

// The helpers serve the blocking and the async modules; with one feature off some go unused.
#![cfg_attr(
    not(all(feature = "blocking", feature = "async")),
    allow(dead_code, unused_imports)
)]

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use libvirt_client::transport::{ConnectOptions, Endpoint};
use libvirt_client::uri::{TransportKind, Uri};

fn endpoints() -> serde_json::Value {
    let path = std::env::var("VMWIRE_PEERS")
        .unwrap_or_else(|_| "/var/tmp/vmwire-peers/endpoints.json".to_owned());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read peers endpoints {path}: {e}; run `cargo xtask peers start`")
    });
    serde_json::from_str(&text).expect("endpoints file is JSON")
}

fn socket() -> String {
    endpoints()["libvirt"]["socket"]
        .as_str()
        .expect("libvirt.socket")
        .to_owned()
}

fn uri(key: &str) -> Uri {
    let ep = endpoints();
    let s = ep["libvirt"]["uris"][key]
        .as_str()
        .unwrap_or_else(|| panic!("libvirt.uris.{key} in endpoints"));
    Uri::parse(s).unwrap()
}

/// Percent-encode for a URI parameter value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

const REMOTE_PROGRAM: u32 = 0x2000_8086;
const PROC_CONNECT_OPEN: u32 = 1;
const PROC_AUTH_LIST: u32 = 66;

/// One call packet: header [len, program, version, procedure, type=CALL, serial, status=OK].
fn call(procedure: u32, serial: u32, body: &[u8]) -> Vec<u8> {
    let len = 28 + body.len() as u32;
    let mut out: Vec<u8> = [len, REMOTE_PROGRAM, 1, procedure, 0, serial, 0]
        .iter()
        .flat_map(|w| w.to_be_bytes())
        .collect();
    out.extend_from_slice(body);
    out
}

/// CONNECT_OPEN args: optional string name (present), flags 0.
fn open_args(name: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&1u32.to_be_bytes());
    b.extend_from_slice(&(name.len() as u32).to_be_bytes());
    b.extend_from_slice(name.as_bytes());
    b.resize(b.len().next_multiple_of(4), 0);
    b.extend_from_slice(&0u32.to_be_bytes());
    b
}

/// Split a whole reply packet (without its length word) into header words and body.
fn parse_reply(body: &[u8]) -> ([u32; 6], Vec<u8>) {
    let w: Vec<u32> = body[..24]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect();
    ([w[0], w[1], w[2], w[3], w[4], w[5]], body[24..].to_vec())
}

fn check_auth_list(header: [u32; 6], body: &[u8], serial: u32) {
    // program, version, procedure, type = REPLY (1), serial echoed, status = OK (0)
    assert_eq!(header, [REMOTE_PROGRAM, 1, PROC_AUTH_LIST, 1, serial, 0]);
    // one auth type offered: REMOTE_AUTH_NONE (the peer daemon is configured so)
    assert_eq!(body, [0, 0, 0, 1, 0, 0, 0, 0]);
}

fn check_open(header: [u32; 6], body: &[u8], serial: u32, name: &str) {
    assert_eq!(
        header,
        [REMOTE_PROGRAM, 1, PROC_CONNECT_OPEN, 1, serial, 0],
        "CONNECT_OPEN {name:?} failed; error body {body:?}"
    );
    assert!(body.is_empty());
}

fn read_packet(s: &mut impl Read) -> ([u32; 6], Vec<u8>) {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let len = u32::from_be_bytes(len) as usize;
    assert!(
        (28..=65536).contains(&len),
        "implausible reply length {len}"
    );
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).unwrap();
    parse_reply(&body)
}

/// AUTH_LIST then CONNECT_OPEN(name) over a blocking byte stream.
fn exchange_blocking(s: &mut (impl Read + Write), name: &str) {
    s.write_all(&call(PROC_AUTH_LIST, 7, &[])).unwrap();
    let (h, b) = read_packet(s);
    check_auth_list(h, &b, 7);
    s.write_all(&call(PROC_CONNECT_OPEN, 8, &open_args(name)))
        .unwrap();
    let (h, b) = read_packet(s);
    check_open(h, &b, 8, name);
}

async fn exchange_async(
    s: &mut (impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin),
    name: &str,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    async fn read_packet(s: &mut (impl tokio::io::AsyncRead + Unpin)) -> ([u32; 6], Vec<u8>) {
        let len = s.read_u32().await.unwrap() as usize;
        assert!(
            (28..=65536).contains(&len),
            "implausible reply length {len}"
        );
        let mut body = vec![0u8; len - 4];
        s.read_exact(&mut body).await.unwrap();
        parse_reply(&body)
    }
    s.write_all(&call(PROC_AUTH_LIST, 7, &[])).await.unwrap();
    let (h, b) = read_packet(s).await;
    check_auth_list(h, &b, 7);
    s.write_all(&call(PROC_CONNECT_OPEN, 8, &open_args(name)))
        .await
        .unwrap();
    let (h, b) = read_packet(s).await;
    check_open(h, &b, 8, name);
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn need_nc() {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("nc").is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`nc` (Debian package netcat-openbsd) is needed; run `cargo xtask peers install`"
    );
}

/// An ext URI whose command is a script running `nc -U <daemon socket>`.
fn ext_uri(dir: &Path) -> Uri {
    need_nc();
    let cmd = script(
        dir,
        "tunnel",
        &format!("#!/bin/sh\nexec nc -U '{}'\n", socket()),
    );
    Uri::parse(&format!(
        "test+ext:///default?command={}",
        enc(cmd.to_str().unwrap())
    ))
    .unwrap()
}

/// A stand-in for `ssh`: records its arguments (one per line) in `args.txt`, then runs the
/// remote command with `sh -c` as a remote login shell would.
fn fake_ssh(dir: &Path) -> PathBuf {
    script(
        dir,
        "fake-ssh",
        &format!(
            "#!/bin/sh\n\
             printf '%s\\n' \"$@\" > '{}/args.txt'\n\
             while [ \"$1\" != -- ]; do shift; done\n\
             shift 2\n\
             exec sh -c \"$1\"\n",
            dir.display()
        ),
    )
}

fn ssh_uri(dir: &Path) -> Uri {
    need_nc();
    let ssh = fake_ssh(dir);
    Uri::parse(&format!(
        "test+ssh://tester@localhost:2222/default?command={}&socket={}&keyfile=/k&no_tty=1&no_verify=1",
        enc(ssh.to_str().unwrap()),
        enc(&socket())
    ))
    .unwrap()
}

fn check_ssh_args(dir: &Path) {
    let args = std::fs::read_to_string(dir.join("args.txt")).unwrap();
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(
        args[..15],
        [
            "-p",
            "2222",
            "-l",
            "tester",
            "-i",
            "/k",
            "-T",
            "-e",
            "none",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "--",
            "localhost"
        ]
    );
    assert!(args[15].starts_with("sh -c '"), "{args:?}");
    assert!(args[15].contains(&socket()), "{args:?}");
}

#[cfg(feature = "blocking")]
mod blocking {
    use super::*;
    use libvirt_client::transport::BlockingTransport;
    use std::time::Duration;

    fn connect(uri: &Uri) -> BlockingTransport {
        let t = BlockingTransport::connect(uri, &ConnectOptions::default())
            .unwrap_or_else(|e| panic!("connect {uri}: {e}"));
        t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        t
    }

    #[test]
    fn unix() {
        let u = uri("test_unix");
        let mut t = connect(&u);
        assert_eq!(t.kind(), Some(TransportKind::Unix));
        assert!(t.as_unix().is_some());
        exchange_blocking(&mut t, &u.remote_name());
    }

    #[test]
    fn tcp() {
        let u = uri("test_tcp");
        let mut t = connect(&u);
        assert_eq!(t.kind(), Some(TransportKind::Tcp));
        exchange_blocking(&mut t, &u.remote_name());
    }

    /// The check above can fail: the daemon refuses a name it has no driver for.
    #[test]
    fn daemon_refuses_a_wrong_name() {
        let mut t = connect(&uri("test_unix"));
        t.write_all(&call(PROC_CONNECT_OPEN, 3, &open_args("nosuchdriver:///x")))
            .unwrap();
        let (h, body) = read_packet(&mut t);
        assert_eq!(
            h,
            [REMOTE_PROGRAM, 1, PROC_CONNECT_OPEN, 1, 3, 1],
            "status ERROR"
        );
        assert!(!body.is_empty());
    }

    #[test]
    fn split_halves_across_threads() {
        let u = uri("test_tcp");
        let (mut r, mut w) = connect(&u).into_split().unwrap();
        let reader = std::thread::spawn(move || {
            let (h, b) = read_packet(&mut r);
            check_auth_list(h, &b, 7);
            r
        });
        w.write_all(&call(PROC_AUTH_LIST, 7, &[])).unwrap();
        let mut r = reader.join().unwrap();
        // shutting down the writer wakes the reader with end-of-file
        w.shutdown().unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(r.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn ext_nc() {
        let dir = tempfile::tempdir().unwrap();
        let u = ext_uri(dir.path());
        let mut t = connect(&u);
        assert_eq!(t.kind(), Some(TransportKind::Ext));
        exchange_blocking(&mut t, &u.remote_name());
        let pid = t.child_id().unwrap();
        drop(t);
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "child reaped");
    }

    #[test]
    fn ssh_via_stand_in() {
        let dir = tempfile::tempdir().unwrap();
        let u = ssh_uri(dir.path());
        let mut t = connect(&u);
        assert_eq!(t.kind(), Some(TransportKind::Ssh));
        exchange_blocking(&mut t, &u.remote_name());
        check_ssh_args(dir.path());
    }

    #[test]
    fn ssh_failure_reports_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let ssh = script(
            dir.path(),
            "ssh",
            "#!/bin/sh\necho 'tester@nowhere: Permission denied (publickey).' >&2\nexit 255\n",
        );
        let u = Uri::parse(&format!(
            "qemu+ssh://tester@nowhere/system?command={}",
            enc(ssh.to_str().unwrap())
        ))
        .unwrap();
        let mut t = connect(&u);
        let _ = t.write_all(&call(PROC_AUTH_LIST, 1, &[]));
        let mut buf = [0u8; 4];
        let err = t.read_exact(&mut buf).unwrap_err();
        assert!(err.to_string().contains("Permission denied"), "{err}");
    }

    #[test]
    fn refused_unix_socket_is_typed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nobody-home");
        let u = Uri::parse(&format!(
            "test+unix:///default?socket={}",
            enc(path.to_str().unwrap())
        ))
        .unwrap();
        match BlockingTransport::connect(&u, &ConnectOptions::default()) {
            Err(libvirt_client::Error::ConnectUnix { path: p, .. }) => assert_eq!(p, path),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refused_tcp_port_is_typed() {
        let port = free_port();
        let u = Uri::parse(&format!("test+tcp://127.0.0.1:{port}/default")).unwrap();
        match BlockingTransport::connect(&u, &ConnectOptions::default()) {
            Err(libvirt_client::Error::ConnectTcp { port: p, .. }) => assert_eq!(p, port),
            other => panic!("{other:?}"),
        }
    }
}

#[cfg(feature = "async")]
mod asynchronous {
    use super::*;
    use libvirt_client::transport::AsyncTransport;

    async fn connect(uri: &Uri) -> AsyncTransport {
        AsyncTransport::connect(uri, &ConnectOptions::default())
            .await
            .unwrap_or_else(|e| panic!("connect {uri}: {e}"))
    }

    async fn exchange(t: &mut AsyncTransport, name: &str) {
        tokio::time::timeout(std::time::Duration::from_secs(10), exchange_async(t, name))
            .await
            .expect("daemon answered within 10 s");
    }

    #[tokio::test]
    async fn unix() {
        let u = uri("test_unix");
        let mut t = connect(&u).await;
        assert_eq!(t.kind(), Some(TransportKind::Unix));
        assert!(t.as_unix().is_some());
        exchange(&mut t, &u.remote_name()).await;
    }

    #[tokio::test]
    async fn tcp() {
        let u = uri("test_tcp");
        let mut t = connect(&u).await;
        assert_eq!(t.kind(), Some(TransportKind::Tcp));
        exchange(&mut t, &u.remote_name()).await;
    }

    #[tokio::test]
    async fn qemu_session_over_unix() {
        let u = uri("qemu_unix");
        assert_eq!(u.remote_name(), "qemu:///session");
        let mut t = connect(&u).await;
        exchange(&mut t, &u.remote_name()).await;
    }

    #[tokio::test]
    async fn ext_nc() {
        let dir = tempfile::tempdir().unwrap();
        let u = ext_uri(dir.path());
        let mut t = connect(&u).await;
        assert_eq!(t.kind(), Some(TransportKind::Ext));
        exchange(&mut t, &u.remote_name()).await;
    }

    #[tokio::test]
    async fn ssh_via_stand_in() {
        let dir = tempfile::tempdir().unwrap();
        let u = ssh_uri(dir.path());
        let mut t = connect(&u).await;
        assert_eq!(t.kind(), Some(TransportKind::Ssh));
        exchange(&mut t, &u.remote_name()).await;
        check_ssh_args(dir.path());
    }

    #[tokio::test]
    async fn any_stream_via_from_stream() {
        let s = tokio::net::UnixStream::connect(socket()).await.unwrap();
        let mut t = AsyncTransport::from_stream(s);
        exchange(&mut t, "test:///default").await;
    }

    #[tokio::test]
    async fn endpoint_of_the_unix_uri_is_the_socket() {
        match Endpoint::from_uri(&uri("test_unix"), &ConnectOptions::default()).unwrap() {
            Endpoint::Unix { path } => assert_eq!(path, PathBuf::from(socket())),
            other => panic!("{other:?}"),
        }
    }
}

/// A private sshd on 127.0.0.1 (run as this test's user, with its own host key and one
/// authorized client key), killed on drop. The real `ssh` client reaches it through a
/// `command=` wrapper that only adds `-F` with a private known-hosts file, so every argument
/// libvirt-client builds goes to the real ssh unchanged.
struct Sshd {
    child: std::process::Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Sshd {
    fn start() -> Sshd {
        use std::process::{Command, Stdio};
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(
            sshd.is_file(),
            "/usr/sbin/sshd (Debian package openssh-server) is needed; run `cargo xtask peers install`"
        );
        need_nc();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for key in ["hostkey", "id", "stranger"] {
            let st = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key))
                .status()
                .expect("ssh-keygen runs");
            assert!(st.success());
        }
        std::fs::copy(d.join("id.pub"), d.join("authorized_keys")).unwrap();
        let port = free_port();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {0}/hostkey\n\
                 AuthorizedKeysFile {0}/authorized_keys\nPidFile {0}/sshd.pid\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nLogLevel ERROR\n",
                d.display()
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("ssh_config"),
            format!(
                "UserKnownHostsFile {}/known_hosts\nGlobalKnownHostsFile /dev/null\n",
                d.display()
            ),
        )
        .unwrap();
        script(
            d,
            "ssh",
            &format!(
                "#!/bin/sh\nexec ssh -F '{}/ssh_config' \"$@\"\n",
                d.display()
            ),
        );
        // sshd's privilege separation directory
        let _ = std::fs::create_dir_all("/run/sshd");
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let mut child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sshd starts");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "sshd exited ({st}): {}",
                    std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "sshd did not listen in 10 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Sshd { child, dir, port }
    }

    /// An ssh URI to this sshd as the current user (`extra` appended to the query).
    fn uri(&self, key: &str, extra: &str) -> Uri {
        let d = self.dir.path();
        let user = match libvirt_client::uri::effective_uid() {
            Some(0) => "root".to_owned(),
            _ => std::env::var("USER").expect("USER names the current user"),
        };
        Uri::parse(&format!(
            "test+ssh://{user}@127.0.0.1:{}/default?command={}&keyfile={}&no_tty=1&socket={}{extra}",
            self.port,
            enc(d.join("ssh").to_str().unwrap()),
            enc(d.join(key).to_str().unwrap()),
            enc(&socket()),
        ))
        .unwrap()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[cfg(feature = "blocking")]
mod real_ssh_blocking {
    use super::*;
    use libvirt_client::transport::BlockingTransport;
    use std::time::Duration;

    fn connect(uri: &Uri) -> BlockingTransport {
        let t = BlockingTransport::connect(uri, &ConnectOptions::default())
            .unwrap_or_else(|e| panic!("connect {uri}: {e}"));
        t.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        t
    }

    #[test]
    fn reaches_libvirtd_through_sshd() {
        let sshd = Sshd::start();
        let u = sshd.uri("id", "&no_verify=1");
        let mut t = connect(&u);
        exchange_blocking(&mut t, &u.remote_name());
        // split halves work over the child process too
        let (mut r, mut w) = t.into_split().unwrap();
        w.write_all(&call(PROC_AUTH_LIST, 11, &[])).unwrap();
        let (h, b) = read_packet(&mut r);
        check_auth_list(h, &b, 11);
    }

    #[test]
    fn unauthorized_key_reports_ssh_stderr() {
        let sshd = Sshd::start();
        let mut t = connect(&sshd.uri("stranger", "&no_verify=1"));
        let _ = t.write_all(&call(PROC_AUTH_LIST, 1, &[]));
        let mut buf = [0u8; 4];
        let err = t.read_exact(&mut buf).unwrap_err();
        assert!(err.to_string().contains("Permission denied"), "{err}");
    }

    #[test]
    fn unknown_host_key_is_refused_without_no_verify() {
        let sshd = Sshd::start();
        let mut t = connect(&sshd.uri("id", ""));
        let _ = t.write_all(&call(PROC_AUTH_LIST, 1, &[]));
        let mut buf = [0u8; 4];
        let err = t.read_exact(&mut buf).unwrap_err();
        assert!(
            err.to_string().contains("Host key verification failed"),
            "{err}"
        );
    }
}

#[cfg(feature = "async")]
mod real_ssh_async {
    use super::*;
    use libvirt_client::transport::AsyncTransport;

    #[tokio::test]
    async fn reaches_libvirtd_through_sshd() {
        let sshd = Sshd::start();
        let u = sshd.uri("id", "&no_verify=1");
        let mut t = AsyncTransport::connect(&u, &ConnectOptions::default())
            .await
            .unwrap();
        tokio::time::timeout(
            std::time::Duration::from_secs(20),
            exchange_async(&mut t, &u.remote_name()),
        )
        .await
        .expect("answer through ssh within 20 s");
    }
}
