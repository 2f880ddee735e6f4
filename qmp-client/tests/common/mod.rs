//! Real QEMU processes for the tests: each in a fresh temp dir, killed on drop.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The peers' endpoints file (`cargo xtask peers start` writes it).
pub fn endpoints() -> serde_json::Value {
    let path = std::env::var("VMWIRE_PEERS")
        .unwrap_or_else(|_| "/var/tmp/vmwire-peers/endpoints.json".to_owned());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read peers endpoints {path}: {e}; run `cargo xtask peers start`")
    });
    serde_json::from_str(&text).expect("endpoints file is JSON")
}

fn tool(key: &str) -> String {
    endpoints()["qemu"][key]
        .as_str()
        .unwrap_or_else(|| panic!("endpoints file lacks qemu.{key}; run `cargo xtask peers start`"))
        .to_owned()
}

/// A QEMU this test started.
pub struct Qemu {
    child: Child,
    pub dir: tempfile::TempDir,
    pub qmp: PathBuf,
}

/// The property names of a `qom-list` reply.
pub fn qom_list_names(reply: &serde_json::Value) -> Vec<String> {
    reply
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect()
}

/// Connect to `q`'s QMP socket, retrying for up to 5 s while QEMU has not created it yet.
#[cfg(feature = "async")]
pub async fn connect(q: &Qemu) -> qmp_client::Client {
    let start = Instant::now();
    loop {
        match qmp_client::Client::connect_unix(&q.qmp, qmp_client::ConnectOptions::default()).await
        {
            Err(qmp_client::Error::Connect { .. }) if start.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            r => return r.expect("connect"),
        }
    }
}

/// [`connect`] with the blocking driver.
#[cfg(feature = "blocking")]
pub fn connect_blocking(q: &Qemu) -> qmp_client::blocking::Client {
    let start = Instant::now();
    loop {
        match qmp_client::blocking::Client::connect_unix(
            &q.qmp,
            qmp_client::ConnectOptions::default(),
        ) {
            Err(qmp_client::Error::Connect { .. }) if start.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            r => return r.expect("connect"),
        }
    }
}

/// A machine with no devices: fast, enough for protocol tests.
pub const MACHINE_NONE: &[&str] = &["-machine", "none"];
/// A stopped TCG PC with 64 MiB, with an SHPC bridge (`br1`) whose empty, powered-off slots
/// let device_del complete without a guest OS.
pub const MACHINE_PC: &[&str] = &[
    "-machine",
    "pc,accel=tcg",
    "-m",
    "64",
    "-S",
    "-global",
    "PIIX4_PM.acpi-pci-hotplug-with-bridge-support=off",
    "-device",
    "pci-bridge,id=br1,chassis_nr=1,shpc=on,addr=5",
];

impl Qemu {
    pub fn spawn(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let qmp = dir.path().join("qmp.sock");
        let q = Self::spawn_in(
            dir,
            &format!("unix:{},server=on,wait=off", qmp.display()),
            args,
        );
        let start = Instant::now();
        while !q.qmp.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "QEMU made no QMP socket: {}",
                q.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        q
    }

    /// A QEMU whose QMP monitor listens on TCP at `127.0.0.1:port` (a port that was free a
    /// moment ago); connect with retries, QEMU may not listen yet.
    pub fn spawn_tcp(args: &[&str]) -> (Self, String) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let dir = tempfile::tempdir().expect("temp dir");
        let q = Self::spawn_in(dir, &format!("tcp:{addr},server=on,wait=off"), args);
        (q, addr)
    }

    fn spawn_in(dir: tempfile::TempDir, qmp_arg: &str, args: &[&str]) -> Self {
        let qmp = dir.path().join("qmp.sock");
        let log = std::fs::File::create(dir.path().join("qemu.log")).unwrap();
        let child = Command::new(tool("binary"))
            .args(["-nodefaults", "-nographic", "-display", "none"])
            .arg("-qmp")
            .arg(qmp_arg)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn qemu");
        Self { child, dir, qmp }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("qemu.log")).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Wait for QEMU to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < within {
            if self.child.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Make a qcow2 image with `qemu-img`.
pub fn qcow2(path: &Path, size: &str) {
    let ok = Command::new(tool("img"))
        .args(["create", "-q", "-f", "qcow2"])
        .arg(path)
        .arg(size)
        .status()
        .expect("run qemu-img");
    assert!(ok.success(), "qemu-img create failed");
}

/// Listening sockets that never accept, with their backlog full: a connect to them waits.
pub mod blackhole {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::os::fd::OwnedFd;
    use std::path::Path;
    use std::time::Duration;

    /// Keeps the listener and the connections filling its backlog alive.
    pub struct Hole {
        _listener: OwnedFd,
        _queued: Vec<OwnedFd>,
    }

    fn listener(family: AddressFamily) -> OwnedFd {
        rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None).unwrap()
    }

    /// A unix socket at `path` with a full backlog.
    pub fn unix(path: &Path) -> Hole {
        let l = listener(AddressFamily::UNIX);
        rustix::net::bind(&l, &SocketAddrUnix::new(path).unwrap()).unwrap();
        rustix::net::listen(&l, 0).unwrap();
        let mut queued = Vec::new();
        loop {
            let s = rustix::net::socket_with(
                AddressFamily::UNIX,
                SocketType::STREAM,
                SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
                None,
            )
            .unwrap();
            match rustix::net::connect(&s, &SocketAddrUnix::new(path).unwrap()) {
                Ok(()) => queued.push(s),
                Err(rustix::io::Errno::AGAIN) => break,
                Err(e) => panic!("filling the unix backlog: {e}"),
            }
            assert!(queued.len() < 1000, "the unix backlog never filled");
        }
        Hole {
            _listener: l,
            _queued: queued,
        }
    }

    /// A TCP listener on 127.0.0.1 whose accept queue is full, so the kernel drops new SYNs: a
    /// connect to the returned address hangs as if the host were unreachable.
    pub fn tcp() -> (Hole, SocketAddr) {
        let l = listener(AddressFamily::INET);
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        rustix::net::bind(&l, &any).unwrap();
        rustix::net::listen(&l, 0).unwrap();
        let l = TcpListener::from(l);
        let addr = l.local_addr().unwrap();
        let mut queued = Vec::new();
        loop {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(s) => queued.push(OwnedFd::from(s)),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
                Err(e) => panic!("filling the tcp accept queue: {e}"),
            }
            assert!(queued.len() < 100, "the tcp accept queue never filled");
        }
        (
            Hole {
                _listener: OwnedFd::from(l),
                _queued: queued,
            },
            addr,
        )
    }
}

/// A source and a destination for a loopback migration that takes a while and shows progress:
/// the source's 32 MiB of RAM come from a file whose every page holds non-zero bytes (QEMU
/// sends zero pages as a few header bytes, so a fresh guest's RAM would migrate at once); the
/// destination waits with `-incoming defer`. Both run SeaBIOS with nothing to boot.
pub struct MigrationPair {
    pub src: Qemu,
    pub dst: Qemu,
    _ram: tempfile::NamedTempFile,
}

/// The RAM both ends of a [`MigrationPair`] have.
pub const MIGRATION_RAM: u64 = 32 << 20;

impl MigrationPair {
    pub fn spawn() -> Self {
        use std::io::Write;
        let mut ram = tempfile::NamedTempFile::new().expect("RAM file");
        let mut page = vec![0u8; 4096];
        for i in 0..(MIGRATION_RAM / 4096) {
            page.fill((i % 251) as u8 + 1);
            page[..8].copy_from_slice(&i.to_le_bytes());
            ram.write_all(&page).unwrap();
        }
        ram.flush().unwrap();
        let size = format!("size={MIGRATION_RAM}");
        let file = format!(
            "memory-backend-file,id=ram0,{size},share=off,mem-path={}",
            ram.path().display()
        );
        let mem = format!("{}", MIGRATION_RAM >> 20);
        let src = Qemu::spawn(&[
            "-machine",
            "pc,accel=tcg,memory-backend=ram0",
            "-m",
            &mem,
            "-object",
            &file,
        ]);
        let dst = Qemu::spawn(&[
            "-machine",
            "pc,accel=tcg,memory-backend=ram0",
            "-m",
            &mem,
            "-object",
            &format!("memory-backend-ram,id=ram0,{size}"),
            "-incoming",
            "defer",
        ]);
        Self {
            src,
            dst,
            _ram: ram,
        }
    }
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Progress reports of one migration: several while active, with growing transferred bytes.
pub fn assert_progress_grew(seen: &[(String, u64)]) {
    let active: Vec<u64> = seen
        .iter()
        .filter(|(s, _)| s == "active")
        .map(|&(_, t)| t)
        .collect();
    let mut distinct = active.clone();
    distinct.dedup();
    assert!(
        distinct.len() >= 3,
        "want >= 3 distinct transferred values while active, got {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0].1 <= w[1].1),
        "transferred went down: {seen:?}"
    );
    assert!(
        distinct.windows(2).all(|w| w[0] < w[1]),
        "not growing: {distinct:?}"
    );
}

/// The govmm tests' machine (async and blocking): a stopped TCG PC with room for a CPU and a
/// DIMM, and an SHPC bridge (`br1`) whose empty, powered-off slots let device_del complete
/// without a guest OS.
pub const GOVMM_PC: &[&str] = &[
    "-machine",
    "pc,accel=tcg",
    "-S",
    "-smp",
    "1,maxcpus=2",
    "-m",
    "64M,slots=2,maxmem=256M",
    "-global",
    "PIIX4_PM.acpi-pci-hotplug-with-bridge-support=off",
    "-device",
    "pci-bridge,id=br1,chassis_nr=1,shpc=on,addr=5",
];
