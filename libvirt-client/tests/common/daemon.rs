//! A private libvirtd just for one test (as user vmwire-peer, own dirs, own TCP port), so that
//! the test may stop or kill it without disturbing the shared peers. Killed on drop.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The user the peers' daemon runs as.
const USER: &str = "vmwire-peer";

/// A running private libvirtd.
pub struct PrivateDaemon {
    dir: PathBuf,
    child: Child,
    /// Extra environment of the daemon (kept for [`PrivateDaemon::restart`]).
    env: Vec<String>,
    /// TCP port on 127.0.0.1.
    pub port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PrivateDaemon {
    /// Start it and wait until its unix socket and TCP port accept connections.
    pub fn start() -> PrivateDaemon {
        Self::start_with("none", &[], &[])
    }

    /// Like [`PrivateDaemon::start`] with `auth_unix_rw` set to `auth_unix_rw`, the `files`
    /// (path relative to the daemon's folder, contents) written first and the `env` variables
    /// (`NAME=value`) added to the daemon's environment. `{dir}` in contents and values is
    /// replaced by the daemon's folder.
    pub fn start_with(auth_unix_rw: &str, files: &[(&str, &str)], env: &[&str]) -> PrivateDaemon {
        let dir = PathBuf::from(format!(
            "/var/tmp/vmwire-client-test-{}-{}",
            std::process::id(),
            super::unique_name("d")
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["run", "config/libvirt", "cache", "home"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let port = free_port();
        let conf = dir.join("libvirtd.conf");
        std::fs::write(
            &conf,
            format!(
                "auth_unix_ro = \"none\"\nauth_unix_rw = \"{auth_unix_rw}\"\n\
                 unix_sock_ro_perms = \"0777\"\nunix_sock_rw_perms = \"0777\"\n\
                 unix_sock_admin_perms = \"0700\"\nlisten_tls = 0\nlisten_tcp = 1\n\
                 listen_addr = \"127.0.0.1\"\ntcp_port = \"{port}\"\nauth_tcp = \"none\"\n\
                 log_outputs = \"3:file:{}/libvirtd.log\"\n",
                dir.display()
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("config/libvirt/qemu.conf"),
            "stdio_handler = \"file\"\n",
        )
        .unwrap();
        let dir_s = dir.display().to_string();
        for (path, contents) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, contents.replace("{dir}", &dir_s)).unwrap();
        }
        let st = Command::new("chown")
            .args(["-R", &format!("{USER}:")])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "chown {USER} (tests run as root, like the peers)"
        );
        let env: Vec<String> = env.iter().map(|e| e.replace("{dir}", &dir_s)).collect();
        let child = spawn(&dir, &env);
        let d = PrivateDaemon {
            dir,
            child,
            env,
            port,
        };
        d.wait_up();
        d
    }

    fn wait_up(&self) {
        let end = Instant::now() + Duration::from_secs(20);
        while !(self.socket().exists()
            && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok())
        {
            assert!(
                Instant::now() < end,
                "private libvirtd did not come up: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kill the daemon and start a new one on the same socket and port (a daemon restart as
    /// its clients see it).
    pub fn restart(&mut self) {
        self.signal("KILL");
        let _ = self.child.wait();
        // The dead daemon's socket file stays; wait_up must see the new one.
        let _ = std::fs::remove_file(self.socket());
        self.child = spawn(&self.dir, &self.env);
        self.wait_up();
    }

    /// The daemon's pid (runuser execs nothing: find the libvirtd child).
    pub fn pid(&self) -> i32 {
        // runuser forks libvirtd as its child; find it through /proc.
        let parent = self.child.id();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                let after = &stat[stat.rfind(')').unwrap_or(0) + 2..];
                let ppid: u32 = after.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
                if ppid == parent && stat.contains("(libvirtd)") {
                    return pid;
                }
            }
        }
        if std::fs::read_to_string(format!("/proc/{parent}/comm"))
            .is_ok_and(|c| c.trim() == "libvirtd")
        {
            return parent as i32;
        }
        panic!("no libvirtd under runuser pid {parent}");
    }

    /// The unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("run/libvirt/libvirt-sock")
    }

    /// `test+unix:///default?socket=...`
    pub fn test_unix(&self) -> String {
        format!("test+unix:///default?socket={}", self.socket().display())
    }

    /// `test+tcp://127.0.0.1:PORT/default`
    pub fn test_tcp(&self) -> String {
        format!("test+tcp://127.0.0.1:{}/default", self.port)
    }

    /// Send a signal to libvirtd.
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// The daemon's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("libvirtd.log")).unwrap_or_default()
    }

    fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Start libvirtd as [`USER`] in `dir` (its `libvirtd.conf`); not --daemon, so the child is
/// libvirtd itself and its pid is ours to signal.
fn spawn(dir: &Path, env: &[String]) -> Child {
    Command::new("runuser")
        .args(["-u", USER, "--", "env", "-i"])
        .arg("PATH=/usr/sbin:/usr/bin:/sbin:/bin")
        .arg(format!("HOME={}", dir.join("home").display()))
        .arg(format!("XDG_RUNTIME_DIR={}", dir.join("run").display()))
        .arg(format!("XDG_CONFIG_HOME={}", dir.join("config").display()))
        .arg(format!("XDG_CACHE_HOME={}", dir.join("cache").display()))
        .args(env)
        .args(["libvirtd", "--listen", "--config"])
        .arg(dir.join("libvirtd.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run libvirtd via runuser")
}

impl Drop for PrivateDaemon {
    fn drop(&mut self) {
        if let Ok(pid) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.pid())) {
            let _ = Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(self.dir());
    }
}
