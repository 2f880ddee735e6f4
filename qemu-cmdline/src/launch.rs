//! Spawning QEMU from a configuration: argv, fds, stderr capture, waiting for QMP, and a guard
//! that kills and reaps the process on drop.

use crate::config::QemuConfig;
use crate::error::{Error, Result};
use crate::fds::FdPlan;
use crate::version::Syntax;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Starts QEMU for a [`QemuConfig`].
#[derive(Debug)]
pub struct Launcher {
    binary: PathBuf,
    config: QemuConfig,
    syntax: Syntax,
    fds: FdPlan,
    timeout: Duration,
}

impl Launcher {
    /// Launch `binary` (e.g. `/usr/bin/qemu-system-x86_64`) with `config`, text syntax, no fds,
    /// 10 s to bring up QMP.
    pub fn new(binary: impl Into<PathBuf>, config: QemuConfig) -> Self {
        Launcher {
            binary: binary.into(),
            config,
            syntax: Syntax::TEXT,
            fds: FdPlan::new(),
            timeout: Duration::from_secs(10),
        }
    }

    /// Use `syntax` for the argv.
    pub fn syntax(mut self, syntax: Syntax) -> Self {
        self.syntax = syntax;
        self
    }

    /// Pass these fds.
    pub fn fds(mut self, fds: FdPlan) -> Self {
        self.fds = fds;
        self
    }

    /// How long to wait for the QMP sockets.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The argv this launcher will run (without the binary).
    pub fn argv(&self) -> Result<Vec<String>> {
        self.config.build(&self.syntax)
    }

    /// Build the argv, spawn QEMU and wait until every QMP socket accepts a connection.
    pub fn spawn(self) -> Result<QemuProcess> {
        if self.config.knobs.daemonize {
            return Err(Error::Launch(
                "-daemonize forks away from the launcher; unset Knobs::daemonize".into(),
            ));
        }
        if self.config.qmp.is_empty() {
            return Err(Error::Launch(
                "no QMP socket to wait for; add one with QemuConfig::qmp".into(),
            ));
        }
        let argv = self.argv()?;
        self.fds.covers(&self.config.fds())?;
        let mut cmd = Command::new(&self.binary);
        cmd.args(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = self.fds.spawn(&mut cmd).map_err(|source| Error::Spawn {
            binary: self.binary.clone(),
            source,
        })?;
        drop(self.fds); // the child has its copies
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let reader = child.stderr.take().map(|mut pipe| {
            let buf = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    buf.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend_from_slice(&chunk[..n]);
                }
            })
        });
        let mut p = QemuProcess {
            child: Some(child),
            stderr,
            reader,
            qmp: self
                .config
                .qmp
                .iter()
                .map(|q| PathBuf::from(&q.path))
                .collect(),
            argv,
        };
        p.wait_qmp(self.timeout)?;
        Ok(p)
    }
}

/// One QMP socket being probed for readiness.
struct Probe {
    path: PathBuf,
    conn: Option<UnixStream>,
    buf: Vec<u8>,
    greeted: bool,
}

impl Probe {
    /// Advance without blocking long; true once `qmp_capabilities` returned.
    fn step(&mut self) -> Result<bool> {
        if self.conn.is_none() {
            let Ok(s) = UnixStream::connect(&self.path) else {
                return Ok(false);
            };
            s.set_read_timeout(Some(Duration::from_millis(20)))
                .map_err(|source| Error::Io {
                    doing: "setting a QMP read timeout",
                    source,
                })?;
            self.conn = Some(s);
            self.buf.clear();
            self.greeted = false;
        }
        let Some(s) = self.conn.as_mut() else {
            return Ok(false);
        };
        let mut chunk = [0u8; 1024];
        match s.read(&mut chunk) {
            Ok(0) => {
                self.conn = None; // closed under us; reconnect
                return Ok(false);
            }
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(_) => return Ok(false),
        }
        while let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line);
            if !self.greeted {
                if line.contains("\"QMP\"") {
                    self.greeted = true;
                    let sent = s.write_all(b"{\"execute\":\"qmp_capabilities\"}\n");
                    if sent.is_err() {
                        self.conn = None;
                        return Ok(false);
                    }
                }
            } else if line.contains("\"return\"") || line.contains("\"error\"") {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// A running QEMU. Dropping it kills and reaps the process unless [`detach`](Self::detach)ed.
#[derive(Debug)]
pub struct QemuProcess {
    child: Option<Child>,
    stderr: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
    qmp: Vec<PathBuf>,
    argv: Vec<String>,
}

impl QemuProcess {
    /// Ready means: every QMP socket answered `qmp_capabilities`. QEMU listens and even greets
    /// (from its monitor thread) before it creates the devices, but runs commands only from its
    /// main loop, after the configuration was accepted. The probe connection is then closed.
    fn wait_qmp(&mut self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let mut pending: Vec<Probe> = self
            .qmp
            .iter()
            .map(|p| Probe {
                path: p.clone(),
                conn: None,
                buf: Vec::new(),
                greeted: false,
            })
            .collect();
        loop {
            if let Some(status) = self.try_wait()? {
                self.join_reader();
                return Err(Error::Exited {
                    status,
                    stderr: self.stderr(),
                });
            }
            let mut ready = Vec::new();
            for (i, p) in pending.iter_mut().enumerate() {
                if p.step()? {
                    ready.push(i);
                }
            }
            for i in ready.into_iter().rev() {
                pending.remove(i);
            }
            if pending.is_empty() {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                let stderr = self.stderr();
                self.kill_and_reap();
                return Err(Error::QmpTimeout {
                    path: pending.remove(0).path,
                    waited: timeout,
                    stderr,
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn join_reader(&mut self) {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// The QMP socket paths, in configuration order.
    pub fn qmp_paths(&self) -> &[PathBuf] {
        &self.qmp
    }

    /// The argv QEMU was started with (without the binary).
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// What QEMU wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// The exit status if QEMU has exited.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(c) => c.try_wait().map_err(|source| Error::Io {
                doing: "polling QEMU",
                source,
            }),
            None => Ok(None),
        }
    }

    /// Wait for QEMU to exit (e.g. after QMP `quit`), up to `timeout`; kills it if it does not.
    pub fn wait(mut self, timeout: Duration) -> Result<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.try_wait()? {
                self.child = None;
                return Ok(s);
            }
            if start.elapsed() >= timeout {
                let stderr = self.stderr();
                self.kill_and_reap();
                return Err(Error::Launch(format!(
                    "QEMU did not exit within {timeout:?}; killed it. stderr:\n{stderr}"
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kill QEMU now and reap it; returns its exit status.
    pub fn kill(mut self) -> Result<ExitStatus> {
        let mut c = self
            .child
            .take()
            .ok_or_else(|| Error::Launch("process already detached".into()))?;
        let _ = c.kill();
        c.wait().map_err(|source| Error::Io {
            doing: "reaping QEMU",
            source,
        })
    }

    /// Let QEMU run on after this guard is dropped; the caller owns the [`Child`].
    pub fn detach(mut self) -> Child {
        self.child
            .take()
            .expect("a QemuProcess holds its child until kill/wait/detach consume it")
    }

    fn kill_and_reap(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}
