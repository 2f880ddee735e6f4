//! `cargo xtask peers`: the real libvirtd and QEMU that integration tests and the demo talk to.
//!
//! libvirtd runs in session mode as an unprivileged user (`vmwire-peer` when we are root, else the
//! current user), listening on a unix socket and on 127.0.0.1 TCP only. A QEMU with `-machine none`
//! serves QMP on a unix socket. `start` writes every endpoint into `endpoints.json`, which tests
//! read through the `VMWIRE_PEERS` variable (or its default path). `stop` destroys guests first and
//! leaves no process behind.
//!
//! Everything lives below one folder: `$VMWIRE_PEERS_DIR`, by default `/var/tmp/vmwire-peers`.

use crate::util::{self, display, pid_alive, read_pid, terminate, wait_until, which};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

mod extra;

/// The unprivileged user libvirtd runs as when xtask runs as root.
pub const PEER_USER: &str = "vmwire-peer";
/// libvirtd's TCP port (loopback only).
pub const LIBVIRT_TCP_PORT: u16 = 16599;

/// Binaries the peers need, with the Debian package that ships each.
const NEEDED: &[(&str, &str)] = &[
    ("libvirtd", "libvirt-daemon"),
    ("virsh", "libvirt-clients"),
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("qemu-img", "qemu-utils"),
    // `nc -U`: libvirt-client's ext and ssh transport tests tunnel to libvirtd's socket with it.
    ("nc", "netcat-openbsd"),
    // libvirt-client's ssh transport tests run their own sshd on 127.0.0.1 (installing the
    // package starts no service where policy-rc.d forbids it, as in containers).
    ("sshd", "openssh-server"),
    // qmp-proto's guest-agent tests run their own qemu-ga on a unix socket (installing the
    // package starts no service where policy-rc.d forbids it, as in containers).
    ("qemu-ga", "qemu-guest-agent"),
];

pub fn cmd(args: &[&str]) -> Result<()> {
    match args {
        ["install"] => install(),
        ["start"] => start().map(|_| ()),
        ["stop"] => stop(),
        ["status"] => status(),
        _ => bail!("usage: cargo xtask peers install|start|stop|status"),
    }
}

/// The folder holding all peer state.
pub fn peers_dir() -> PathBuf {
    std::env::var_os("VMWIRE_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/vmwire-peers"))
}

/// Where `start` writes the endpoints; tests read it (override with `VMWIRE_PEERS`).
pub fn endpoints_path() -> PathBuf {
    peers_dir().join("endpoints.json")
}

struct Layout {
    root: PathBuf,
}

impl Layout {
    fn new() -> Self {
        Layout { root: peers_dir() }
    }
    fn libvirt(&self) -> PathBuf {
        self.root.join("libvirt")
    }
    fn libvirt_pid(&self) -> PathBuf {
        self.libvirt().join("libvirtd.pid")
    }
    fn libvirt_log(&self) -> PathBuf {
        self.libvirt().join("libvirtd.log")
    }
    fn runtime(&self) -> PathBuf {
        self.libvirt().join("run")
    }
    fn socket(&self) -> PathBuf {
        self.runtime().join("libvirt/libvirt-sock")
    }
    fn socket_ro(&self) -> PathBuf {
        self.runtime().join("libvirt/libvirt-sock-ro")
    }
    fn admin_socket(&self) -> PathBuf {
        self.runtime().join("libvirt/libvirt-admin-sock")
    }
    fn qemu(&self) -> PathBuf {
        self.root.join("qemu")
    }
    fn qemu_pid(&self) -> PathBuf {
        self.qemu().join("qemu.pid")
    }
    fn qmp_socket(&self) -> PathBuf {
        self.qemu().join("qmp.sock")
    }
    fn qemu_log(&self) -> PathBuf {
        self.qemu().join("qemu.log")
    }
    fn session_uri(&self, driver: &str, path: &str) -> String {
        format!("{driver}+unix:///{path}?socket={}", self.socket().display())
    }
}

/// The Debian packages of `table` (program, package) whose program is missing.
pub(crate) fn missing_packages(table: &[(&str, &'static str)]) -> Vec<&'static str> {
    let mut v: Vec<&str> = table
        .iter()
        .filter(|(bin, _)| which(bin).is_none())
        .map(|(_, pkg)| *pkg)
        .collect();
    v.dedup();
    v
}

/// `apt-get install` these packages (`why` says what they are for), or fail saying what to
/// install when we are not root or there is no apt-get.
fn apt_install(pkgs: &[&str], why: &str, root: bool) -> Result<()> {
    if pkgs.is_empty() {
        return Ok(());
    }
    let apt = which("apt-get");
    if !root || apt.is_none() {
        bail!(
            "missing Debian packages {why}: {} (as root: apt-get install {}){}",
            pkgs.join(" "),
            pkgs.join(" "),
            if apt.is_none() {
                " — apt-get was not found on this machine"
            } else {
                " — not running as root"
            }
        );
    }
    println!("peers: installing {} ({why})", pkgs.join(" "));
    util::run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(pkgs)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// `peers install`: the Debian packages and the peer user, each only when missing.
pub fn install() -> Result<()> {
    let root = util::euid()? == 0;
    let missing = missing_packages(NEEDED);
    if !missing.is_empty() && root && which("apt-get").is_some() {
        util::run(
            Command::new("apt-get")
                .args(["update", "-qq"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    apt_install(&missing, "for the peers", root)?;
    // Installing one package can remove another: a machine that ships a newer qemu-utils (from
    // backports) loses it when Debian's qemu-system-x86 comes in, and with it `qemu-img`. Look
    // again and install what went missing, so `start` never finds a hole `install` left.
    apt_install(
        &missing_packages(NEEDED),
        "removed by the install before",
        root,
    )?;
    let still = missing_packages(NEEDED);
    if !still.is_empty() {
        bail!("still missing after apt-get install: {}", still.join(" "));
    }
    apt_install(&extra::missing_packages(), "for the SASL/TLS peers", root)?;
    for u in extra::USERS.iter().filter(|_| root) {
        if !user_exists(u) {
            println!("peers: creating user {u}");
            util::run(Command::new("useradd").args([
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                u,
            ]))?;
        }
    }
    if root && !user_exists(PEER_USER) {
        println!("peers: creating user {PEER_USER}");
        util::run(Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            PEER_USER,
        ]))?;
    }
    println!(
        "peers: installed (libvirtd, virsh, qemu-system-x86_64, qemu-img, qemu-ga{})",
        if root { ", user vmwire-peer" } else { "" }
    );
    Ok(())
}

fn user_exists(user: &str) -> bool {
    Command::new("id")
        .args(["-u", user])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether both peers of a previous `start` are still alive.
pub fn running() -> bool {
    let l = Layout::new();
    let alive = |p: &Path| read_pid(p).is_some_and(pid_alive);
    alive(&l.libvirt_pid())
        && alive(&l.qemu_pid())
        && extra::running(&l.root)
        && endpoints_path().is_file()
}

/// `peers start`. Returns true when it started them, false when they were already running.
pub fn start() -> Result<bool> {
    if running() {
        println!(
            "peers: already running; endpoints in {}",
            endpoints_path().display()
        );
        return Ok(false);
    }
    // Half-started leftovers (one peer died): clear them so we start from a clean slate.
    stop_quietly()?;
    for (bin, pkg) in NEEDED {
        if which(bin).is_none() {
            bail!(
                "`{bin}` not found (Debian package {pkg}); run `cargo xtask peers install` first"
            );
        }
    }
    let l = Layout::new();
    let root = util::euid()? == 0;
    let user = if root {
        if !user_exists(PEER_USER) {
            bail!("user {PEER_USER} does not exist; run `cargo xtask peers install` first");
        }
        Some(PEER_USER)
    } else {
        None
    };

    fs::create_dir_all(&l.root).with_context(|| format!("creating {}", l.root.display()))?;
    fs::set_permissions(&l.root, fs::Permissions::from_mode(0o755))?;
    start_libvirtd(&l, user)?;
    if let Err(e) = start_qemu(&l) {
        stop_quietly()?;
        return Err(e);
    }
    // The second daemon (migration destination) and the SASL/TLS daemon.
    let more = match extra::start(&l.root, root) {
        Ok(more) => more,
        Err(e) => {
            stop_quietly()?;
            return Err(e);
        }
    };
    write_endpoints(&l, user, more)?;
    println!(
        "peers: libvirtd and QEMU running; endpoints in {}",
        endpoints_path().display()
    );
    Ok(true)
}

fn start_libvirtd(l: &Layout, user: Option<&str>) -> Result<()> {
    let dir = l.libvirt();
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    for sub in ["run", "config/libvirt", "cache", "home"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
    let conf = dir.join("libvirtd.conf");
    fs::write(
        &conf,
        format!(
            "# written by cargo xtask peers start\n\
             auth_unix_ro = \"none\"\n\
             auth_unix_rw = \"none\"\n\
             unix_sock_ro_perms = \"0777\"\n\
             unix_sock_rw_perms = \"0777\"\n\
             unix_sock_admin_perms = \"0700\"\n\
             listen_tls = 0\n\
             listen_tcp = 1\n\
             listen_addr = \"127.0.0.1\"\n\
             tcp_port = \"{LIBVIRT_TCP_PORT}\"\n\
             auth_tcp = \"none\"\n\
             log_outputs = \"3:file:{log}\"\n",
            log = l.libvirt_log().display()
        ),
    )?;
    // A file stdio handler keeps libvirtd from spawning virtlogd for each guest.
    fs::write(
        dir.join("config/libvirt/qemu.conf"),
        "stdio_handler = \"file\"\n",
    )?;
    if let Some(user) = user {
        util::run(
            Command::new("chown")
                .args(["-R", &format!("{user}:")])
                .arg(&dir),
        )?;
    }

    let mut cmd = match user {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--", "env", "-i"]);
            c
        }
        None => {
            let mut c = Command::new("env");
            c.arg("-i");
            c
        }
    };
    cmd.arg("PATH=/usr/sbin:/usr/bin:/sbin:/bin")
        .arg(format!("HOME={}", dir.join("home").display()))
        .arg(format!("XDG_RUNTIME_DIR={}", l.runtime().display()))
        .arg(format!("XDG_CONFIG_HOME={}", dir.join("config").display()))
        .arg(format!("XDG_CACHE_HOME={}", dir.join("cache").display()))
        .arg("libvirtd")
        .arg("--daemon")
        .arg("--listen")
        .arg("--config")
        .arg(&conf)
        .arg("--pid-file")
        .arg(l.libvirt_pid())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // With --daemon the parent returns once the daemon is set up (or has failed).
    let out = cmd
        .output()
        .with_context(|| format!("cannot run `{}`", display(&cmd)))?;
    if !out.status.success() {
        bail!(
            "libvirtd failed to start ({}): {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            log_tail(&l.libvirt_log())
        );
    }
    let up = wait_until(Duration::from_secs(15), || {
        l.socket().exists() && std::net::TcpStream::connect(("127.0.0.1", LIBVIRT_TCP_PORT)).is_ok()
    });
    if !up {
        bail!(
            "libvirtd did not open {} and 127.0.0.1:{LIBVIRT_TCP_PORT} within 15 s (is the port taken?)\n{}",
            l.socket().display(),
            log_tail(&l.libvirt_log())
        );
    }
    Ok(())
}

fn start_qemu(l: &Layout) -> Result<()> {
    let dir = l.qemu();
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    let log = fs::File::create(l.qemu_log())?;
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-machine",
        "none",
        "-nodefaults",
        "-display",
        "none",
        "-name",
        "vmwire-peer",
    ])
    .arg("-qmp")
    .arg(format!(
        "unix:{},server=on,wait=off",
        l.qmp_socket().display()
    ))
    .arg("-pidfile")
    .arg(l.qemu_pid())
    .arg("-daemonize")
    .stdin(Stdio::null())
    .stdout(log.try_clone()?)
    .stderr(log);
    // With -daemonize the parent exits once the child has opened its sockets.
    let status = util::status(&mut cmd)?;
    if !status.success() {
        bail!(
            "QEMU failed to start ({status})\n{}",
            log_tail(&l.qemu_log())
        );
    }
    if !wait_until(Duration::from_secs(10), || l.qmp_socket().exists()) {
        bail!(
            "QEMU did not create {} within 10 s\n{}",
            l.qmp_socket().display(),
            log_tail(&l.qemu_log())
        );
    }
    Ok(())
}

fn write_endpoints(
    l: &Layout,
    user: Option<&str>,
    more: Vec<(&str, serde_json::Value)>,
) -> Result<()> {
    let tcp = format!("127.0.0.1:{LIBVIRT_TCP_PORT}");
    let mut endpoints = json!({
        "dir": l.root,
        "libvirt": {
            "pid": read_pid(&l.libvirt_pid()),
            "user": user.map(str::to_owned).unwrap_or_else(|| std::env::var("USER").unwrap_or_default()),
            "socket": l.socket(),
            "socket_ro": l.socket_ro(),
            "admin_socket": l.admin_socket(),
            "tcp_host": "127.0.0.1",
            "tcp_port": LIBVIRT_TCP_PORT,
            "log": l.libvirt_log(),
            "uris": {
                "test_unix": l.session_uri("test", "default"),
                "test_tcp": format!("test+tcp://{tcp}/default"),
                "qemu_unix": l.session_uri("qemu", "session"),
                "qemu_tcp": format!("qemu+tcp://{tcp}/session"),
            },
        },
        "qemu": {
            "pid": read_pid(&l.qemu_pid()),
            "qmp_socket": l.qmp_socket(),
            "binary": which("qemu-system-x86_64"),
            "img": which("qemu-img"),
            "ga": which("qemu-ga"),
            "log": l.qemu_log(),
        },
        "virsh": which("virsh"),
    });
    for (key, value) in more {
        endpoints[key] = value;
    }
    let path = endpoints_path();
    fs::write(&path, serde_json::to_string_pretty(&endpoints)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// `peers stop`: destroy running guests, stop libvirtd and QEMU, make sure nothing is left.
pub fn stop() -> Result<()> {
    stop_quietly()?;
    println!("peers: stopped");
    Ok(())
}

fn stop_quietly() -> Result<()> {
    let l = Layout::new();
    let root = util::euid()? == 0;
    if let Some(pid) = read_pid(&l.libvirt_pid()).filter(|p| pid_alive(*p)) {
        destroy_guests(&l);
        terminate(pid, Duration::from_secs(10));
    }
    if let Some(pid) = read_pid(&l.qemu_pid()) {
        terminate(pid, Duration::from_secs(5));
    }
    extra::stop(&l.root, root);
    if root && user_exists(PEER_USER) {
        // Backstop: guests, helpers or a second daemon the tests started as the peer user.
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", PEER_USER])
            .stderr(Stdio::null())
            .status();
        let gone = wait_until(Duration::from_secs(5), || {
            !Command::new("pgrep")
                .args(["-u", PEER_USER])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        if !gone {
            bail!("processes of {PEER_USER} survived SIGKILL; see `pgrep -a -u {PEER_USER}`");
        }
    }
    let _ = fs::remove_file(endpoints_path());
    let _ = fs::remove_file(l.libvirt_pid());
    let _ = fs::remove_file(l.qemu_pid());
    Ok(())
}

/// Destroy every running QEMU guest of the session daemon (libvirtd leaves them running on exit).
fn destroy_guests(l: &Layout) {
    destroy_guests_at(&l.session_uri("qemu", "session"));
}

/// SIGKILL every process of `user` and wait (5 s) until none is left.
fn kill_user(user: &str) {
    let _ = Command::new("pkill")
        .args(["-KILL", "-u", user])
        .stderr(Stdio::null())
        .status();
    wait_until(Duration::from_secs(5), || {
        !Command::new("pgrep")
            .args(["-u", user])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
}

/// Destroy every running guest of the daemon at `uri`.
fn destroy_guests_at(uri: &str) {
    let uri = uri.to_owned();
    let names = Command::new("virsh")
        .args(["-q", "-c", &uri, "list", "--name"])
        .stderr(Stdio::null())
        .output();
    let Ok(names) = names else { return };
    for name in String::from_utf8_lossy(&names.stdout)
        .lines()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        let _ = Command::new("virsh")
            .args(["-q", "-c", &uri, "destroy", name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `peers status`.
pub fn status() -> Result<()> {
    let l = Layout::new();
    let state = |p: &Path| match read_pid(p) {
        Some(pid) if pid_alive(pid) => format!("running (pid {pid})"),
        Some(pid) => format!("dead (stale pid {pid})"),
        None => "stopped".to_owned(),
    };
    println!("libvirtd: {}", state(&l.libvirt_pid()));
    println!("qemu:     {}", state(&l.qemu_pid()));
    for line in extra::status(&l.root) {
        println!("{line}");
    }
    match fs::read_to_string(endpoints_path()) {
        Ok(text) => println!("endpoints ({}):\n{text}", endpoints_path().display()),
        Err(_) => println!("endpoints: none (run `cargo xtask peers start`)"),
    }
    Ok(())
}

fn log_tail(path: &Path) -> String {
    match fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(15)..];
            format!("last lines of {}:\n{}", path.display(), tail.join("\n"))
        }
        Err(_) => format!("(no log at {})", path.display()),
    }
}
