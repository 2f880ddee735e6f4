//! The extra libvirt daemons `peers start` runs beside the main one:
//!
//! - `libvirt2`: a second session daemon (user `vmwire-peer2`, unix socket + 127.0.0.1:16600,
//!   auth none, its own `host_uuid`): the destination of migration tests.
//! - `libvirt_auth`: one daemon (user `vmwire-peer3`) that serves SASL on its unix socket
//!   (`auth_unix_rw = "sasl"`, SCRAM-SHA-256 / PLAIN against a sasldb with a test user) and TLS on
//!   127.0.0.1:16602 (client certificates required; CA, server and client certificates are
//!   generated with openssl at each start). Its endpoints appear as `libvirt_sasl` and
//!   `libvirt_tls` in endpoints.json.
//!
//! SASL runs on the unix socket because libvirtd asks SASL mechanisms for a security layer
//! (SSF >= 56) on plain TCP, and SCRAM/PLAIN have none; on unix sockets (and TLS) it does not.

use crate::util::{self, display, pid_alive, read_pid, terminate, wait_until, which};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The user of the second daemon.
pub const PEER2_USER: &str = "vmwire-peer2";
/// The user of the SASL + TLS daemon.
pub const PEER3_USER: &str = "vmwire-peer3";
/// Second daemon's TCP port (auth none).
pub const LIBVIRT2_TCP_PORT: u16 = 16600;
/// The SASL/TLS daemon's TLS port.
pub const LIBVIRT_TLS_PORT: u16 = 16602;
/// The SASL test user and password (sasldb of the auth daemon).
pub const SASL_USER: &str = "vmwire";
/// Password of [`SASL_USER`].
pub const SASL_PASSWORD: &str = "vmwire-secret";
/// Mechanisms the auth daemon offers.
pub const SASL_MECHS: &str = "scram-sha-256 plain";

/// Users the extra daemons run as.
pub const USERS: &[&str] = &[PEER2_USER, PEER3_USER];

/// Programs needed beyond the main peers, with their Debian packages.
pub const NEEDED: &[(&str, &str)] = &[("saslpasswd2", "sasl2-bin"), ("openssl", "openssl")];

const SCRAM_PLUGIN: &str = "/usr/lib/x86_64-linux-gnu/sasl2/libscram.so";

/// Debian packages to install (missing programs and the SASL mechanism plugins).
pub fn missing_packages() -> Vec<&'static str> {
    let mut v = super::missing_packages(NEEDED);
    if !Path::new(SCRAM_PLUGIN).exists() {
        v.push("libsasl2-modules");
    }
    v
}

struct Daemon {
    /// Folder name below the peers dir.
    dir: &'static str,
    user: &'static str,
    host_uuid: &'static str,
}

const D2: Daemon = Daemon {
    dir: "libvirt2",
    user: PEER2_USER,
    host_uuid: "7c1f2e4a-0b9d-4c55-9a3e-2f6d8e1b0a02",
};
const D3: Daemon = Daemon {
    dir: "libvirt-auth",
    user: PEER3_USER,
    host_uuid: "7c1f2e4a-0b9d-4c55-9a3e-2f6d8e1b0a03",
};

impl Daemon {
    fn root(&self, peers: &Path) -> PathBuf {
        peers.join(self.dir)
    }
    fn pid(&self, peers: &Path) -> PathBuf {
        self.root(peers).join("libvirtd.pid")
    }
    fn log(&self, peers: &Path) -> PathBuf {
        self.root(peers).join("libvirtd.log")
    }
    fn socket(&self, peers: &Path) -> PathBuf {
        self.root(peers).join("run/libvirt/libvirt-sock")
    }
    fn uri(&self, peers: &Path, driver: &str, path: &str) -> String {
        format!(
            "{driver}+unix:///{path}?socket={}",
            self.socket(peers).display()
        )
    }
}

/// Whether every extra daemon is alive.
pub fn running(peers: &Path) -> bool {
    [&D2, &D3]
        .iter()
        .all(|d| read_pid(&d.pid(peers)).is_some_and(pid_alive))
}

/// Start both extra daemons (as their users when `root`); returns their endpoints as
/// `(key, value)` pairs for endpoints.json.
pub fn start(peers: &Path, root: bool) -> Result<Vec<(&'static str, Value)>> {
    for (bin, pkg) in NEEDED {
        if which(bin).is_none() {
            bail!(
                "`{bin}` not found (Debian package {pkg}); run `cargo xtask peers install` first"
            );
        }
    }
    if !Path::new(SCRAM_PLUGIN).exists() {
        bail!("{SCRAM_PLUGIN} missing (Debian package libsasl2-modules); run `cargo xtask peers install`");
    }
    if root {
        for u in USERS {
            if !super::user_exists(u) {
                bail!("user {u} does not exist; run `cargo xtask peers install` first");
            }
        }
    }
    let user = |u: &'static str| if root { Some(u) } else { None };

    // Second daemon: plain, like the main one, on its own port and host UUID.
    let d2 = D2.root(peers);
    prepare_dir(&d2)?;
    let conf2 = format!(
        "auth_unix_ro = \"none\"\n\
         auth_unix_rw = \"none\"\n\
         unix_sock_ro_perms = \"0777\"\n\
         unix_sock_rw_perms = \"0777\"\n\
         unix_sock_admin_perms = \"0700\"\n\
         listen_tls = 0\n\
         listen_tcp = 1\n\
         listen_addr = \"127.0.0.1\"\n\
         tcp_port = \"{LIBVIRT2_TCP_PORT}\"\n\
         auth_tcp = \"none\"\n\
         host_uuid = \"{}\"\n",
        D2.host_uuid
    );
    launch(
        peers,
        &D2,
        user(D2.user),
        &conf2,
        &[],
        Some(LIBVIRT2_TCP_PORT),
    )?;

    // Auth daemon: SASL on the unix socket, TLS (client certificates) on a port.
    let d3 = D3.root(peers);
    prepare_dir(&d3)?;
    let sasl_dir = d3.join("sasl2");
    fs::create_dir_all(&sasl_dir)?;
    let sasldb = sasl_dir.join("passwd.db");
    fs::write(
        sasl_dir.join("libvirt.conf"),
        format!(
            "# written by cargo xtask peers start\nmech_list: {SASL_MECHS}\nsasldb_path: {}\n",
            sasldb.display()
        ),
    )?;
    let realm = sasl_realm();
    let mut pw = Command::new("saslpasswd2");
    pw.arg("-f")
        .arg(&sasldb)
        .args(["-a", "libvirt", "-u", &realm, "-c", "-p", SASL_USER])
        .stdin(Stdio::piped());
    let mut child = pw
        .spawn()
        .with_context(|| format!("cannot run `{}`", display(&pw)))?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().context("saslpasswd2 stdin")?;
        stdin.write_all(SASL_PASSWORD.as_bytes())?;
    }
    let st = child.wait()?;
    if !st.success() {
        bail!("`{}` failed ({st})", display(&pw));
    }
    let pki = d3.join("pki");
    let certs = gen_pki(&pki)?;
    let conf3 = format!(
        "auth_unix_ro = \"none\"\n\
         auth_unix_rw = \"sasl\"\n\
         unix_sock_ro_perms = \"0777\"\n\
         unix_sock_rw_perms = \"0777\"\n\
         unix_sock_admin_perms = \"0700\"\n\
         listen_tls = 1\n\
         listen_tcp = 0\n\
         listen_addr = \"127.0.0.1\"\n\
         tls_port = \"{LIBVIRT_TLS_PORT}\"\n\
         auth_tls = \"none\"\n\
         key_file = \"{}\"\n\
         cert_file = \"{}\"\n\
         ca_file = \"{}\"\n\
         host_uuid = \"{}\"\n",
        certs.server_key.display(),
        certs.server_cert.display(),
        certs.ca_cert.display(),
        D3.host_uuid
    );
    let sasl_env = format!("SASL_CONF_PATH={}", sasl_dir.display());
    if let Err(e) = launch(
        peers,
        &D3,
        user(D3.user),
        &conf3,
        &[&sasl_env],
        Some(LIBVIRT_TLS_PORT),
    ) {
        stop(peers, root);
        return Err(e);
    }

    let ep2 = json!({
        "pid": read_pid(&D2.pid(peers)),
        "user": D2.user,
        "socket": D2.socket(peers),
        "tcp_host": "127.0.0.1",
        "tcp_port": LIBVIRT2_TCP_PORT,
        "host_uuid": D2.host_uuid,
        "log": D2.log(peers),
        "uris": {
            "test_unix": D2.uri(peers, "test", "default"),
            "qemu_unix": D2.uri(peers, "qemu", "session"),
            "qemu_tcp": format!("qemu+tcp://127.0.0.1:{LIBVIRT2_TCP_PORT}/session"),
            "test_tcp": format!("test+tcp://127.0.0.1:{LIBVIRT2_TCP_PORT}/default"),
        },
    });
    let sasl = json!({
        "pid": read_pid(&D3.pid(peers)),
        "socket": D3.socket(peers),
        "username": SASL_USER,
        "password": SASL_PASSWORD,
        "realm": realm,
        "mechs": SASL_MECHS.split(' ').collect::<Vec<_>>(),
        "sasl_conf": sasl_dir.join("libvirt.conf"),
        "log": D3.log(peers),
        "uris": {
            "test_unix": D3.uri(peers, "test", "default"),
            "qemu_unix": D3.uri(peers, "qemu", "session"),
        },
    });
    let tls = json!({
        "pid": read_pid(&D3.pid(peers)),
        "host": "127.0.0.1",
        "port": LIBVIRT_TLS_PORT,
        "pkipath": certs.client_dir,
        "ca_cert": certs.ca_cert,
        "ca_key": certs.ca_key,
        "server_cert": certs.server_cert,
        "log": D3.log(peers),
        "uris": {
            "test_tls": format!(
                "test+tls://127.0.0.1:{LIBVIRT_TLS_PORT}/default?pkipath={}",
                certs.client_dir.display()
            ),
            "qemu_tls": format!(
                "qemu+tls://127.0.0.1:{LIBVIRT_TLS_PORT}/session?pkipath={}",
                certs.client_dir.display()
            ),
        },
    });
    Ok(vec![
        ("libvirt2", ep2),
        ("libvirt_sasl", sasl),
        ("libvirt_tls", tls),
    ])
}

/// The realm saslpasswd2 and libvirtd agree on: the host name.
fn sasl_realm() -> String {
    Command::new("hostname")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    for sub in ["run", "config/libvirt", "cache", "home"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    // A file stdio handler keeps libvirtd from spawning virtlogd for each guest.
    fs::write(
        dir.join("config/libvirt/qemu.conf"),
        "stdio_handler = \"file\"\n",
    )?;
    Ok(())
}

fn launch(
    peers: &Path,
    d: &Daemon,
    user: Option<&str>,
    conf_body: &str,
    env: &[&str],
    port: Option<u16>,
) -> Result<()> {
    let dir = d.root(peers);
    let conf = dir.join("libvirtd.conf");
    fs::write(
        &conf,
        format!(
            "# written by cargo xtask peers start\n{conf_body}log_outputs = \"3:file:{}\"\n",
            d.log(peers).display()
        ),
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
        .arg(format!("XDG_RUNTIME_DIR={}", dir.join("run").display()))
        .arg(format!("XDG_CONFIG_HOME={}", dir.join("config").display()))
        .arg(format!("XDG_CACHE_HOME={}", dir.join("cache").display()))
        .args(env)
        .arg("libvirtd")
        .arg("--daemon")
        .arg("--listen")
        .arg("--config")
        .arg(&conf)
        .arg("--pid-file")
        .arg(d.pid(peers))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let out = cmd
        .output()
        .with_context(|| format!("cannot run `{}`", display(&cmd)))?;
    if !out.status.success() {
        bail!(
            "libvirtd ({}) failed to start ({}): {}\n{}",
            d.dir,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            super::log_tail(&d.log(peers))
        );
    }
    let sock = d.socket(peers);
    let up = wait_until(Duration::from_secs(15), || {
        sock.exists() && port.is_none_or(|p| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok())
    });
    if !up {
        bail!(
            "libvirtd ({}) did not open {} and port {port:?} within 15 s (is the port taken?)\n{}",
            d.dir,
            sock.display(),
            super::log_tail(&d.log(peers))
        );
    }
    Ok(())
}

struct Pki {
    ca_cert: PathBuf,
    ca_key: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    /// libvirt's client layout: cacert.pem, clientcert.pem, clientkey.pem.
    client_dir: PathBuf,
}

/// A CA, a server certificate for 127.0.0.1/localhost and a client certificate (openssl).
fn gen_pki(dir: &Path) -> Result<Pki> {
    let client_dir = dir.join("client");
    fs::create_dir_all(&client_dir)?;
    let p = |n: &str| dir.join(n);
    let ossl = |args: &[&str]| -> Result<()> {
        let mut c = Command::new("openssl");
        c.args(args).current_dir(dir).stdin(Stdio::null());
        let out = c
            .output()
            .with_context(|| format!("cannot run `{}`", display(&c)))?;
        if !out.status.success() {
            bail!(
                "`{}` failed: {}",
                display(&c),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    };
    fs::write(
        p("ca.ext"),
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier=hash\n",
    )?;
    fs::write(
        p("server.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )?;
    fs::write(
        p("client.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=clientAuth\n",
    )?;
    let key = |name: &str| {
        ossl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            name,
        ])
    };
    key("cakey.pem")?;
    ossl(&[
        "req",
        "-new",
        "-key",
        "cakey.pem",
        "-subj",
        "/O=vmwire peers/CN=vmwire test CA",
        "-out",
        "ca.csr",
    ])?;
    ossl(&[
        "x509",
        "-req",
        "-in",
        "ca.csr",
        "-signkey",
        "cakey.pem",
        "-days",
        "30",
        "-extfile",
        "ca.ext",
        "-out",
        "cacert.pem",
    ])?;
    for (name, cn) in [("server", "127.0.0.1"), ("client", "vmwire-client")] {
        let k = format!("{name}key.pem");
        let csr = format!("{name}.csr");
        let ext = format!("{name}.ext");
        let crt = format!("{name}cert.pem");
        key(&k)?;
        ossl(&[
            "req",
            "-new",
            "-key",
            &k,
            "-subj",
            &format!("/O=vmwire peers/CN={cn}"),
            "-out",
            &csr,
        ])?;
        ossl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "cacert.pem",
            "-CAkey",
            "cakey.pem",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ])?;
    }
    fs::copy(p("cacert.pem"), client_dir.join("cacert.pem"))?;
    fs::copy(p("clientcert.pem"), client_dir.join("clientcert.pem"))?;
    fs::copy(p("clientkey.pem"), client_dir.join("clientkey.pem"))?;
    // Tests run as root or as other users: the client credentials are test material.
    fs::set_permissions(
        client_dir.join("clientkey.pem"),
        fs::Permissions::from_mode(0o644),
    )?;
    Ok(Pki {
        ca_cert: p("cacert.pem"),
        ca_key: p("cakey.pem"),
        server_cert: p("servercert.pem"),
        server_key: p("serverkey.pem"),
        client_dir,
    })
}

/// Stop both extra daemons: destroy the second daemon's guests first, then SIGTERM, then
/// (as root) SIGKILL everything left of their users.
pub fn stop(peers: &Path, root: bool) {
    for d in [&D2, &D3] {
        if let Some(pid) = read_pid(&d.pid(peers)).filter(|p| pid_alive(*p)) {
            super::destroy_guests_at(&d.uri(peers, "qemu", "session"));
            terminate(pid, Duration::from_secs(10));
        }
        let _ = fs::remove_file(d.pid(peers));
    }
    if root {
        for u in USERS {
            if super::user_exists(u) {
                super::kill_user(u);
            }
        }
    }
}

/// `peers status` lines.
pub fn status(peers: &Path) -> Vec<String> {
    [&D2, &D3]
        .iter()
        .map(|d| {
            let s = match read_pid(&d.pid(peers)) {
                Some(pid) if pid_alive(pid) => format!("running (pid {pid})"),
                Some(pid) => format!("dead (stale pid {pid})"),
                None => "stopped".to_owned(),
            };
            format!("libvirtd ({}): {s}", d.dir)
        })
        .collect()
}
