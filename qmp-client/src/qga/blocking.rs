//! The blocking guest-agent driver on std only: a reader thread hands the agent's bytes over a
//! channel (so any reader works and every wait has a deadline); the caller holding the
//! connection's lock writes its command and takes bytes until its reply.

use super::{decode, GuestInfo, GuestOsInfo, HostName, Link, QgaOptions};
use crate::{Error, Result};
use serde_json::Value;
use std::io::{Read, Write};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What the reader thread passes on: bytes, the end of the stream (empty), or a read error.
type Chunk = std::io::Result<Vec<u8>>;

fn reader_loop(mut reader: Box<dyn Read + Send>, tx: Sender<Chunk>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let chunk = match reader.read(&mut buf) {
            Ok(n) => Ok(buf[..n].to_vec()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
        let end = !matches!(&chunk, Ok(b) if !b.is_empty());
        if tx.send(chunk).is_err() || end {
            return;
        }
    }
}

struct Conn {
    writer: Box<dyn Write + Send>,
    rx: Receiver<Chunk>,
    link: Link,
    /// The stream ended or failed: every later call fails at once.
    closed: bool,
}

/// Why an exchange stopped early.
enum Stop {
    Err(Error),
    Timeout,
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Err(e)
    }
}

impl Conn {
    /// Write `bytes` and take input until `done` says the awaited output arrived or `deadline`
    /// passes. IO errors and the end of the stream close the connection.
    fn exchange<T>(
        &mut self,
        bytes: &[u8],
        command: Option<&str>,
        deadline: Option<Instant>,
        mut done: impl FnMut(&mut Link) -> Option<T>,
    ) -> Result<T, Stop> {
        if let Err(e) = self
            .writer
            .write_all(bytes)
            .and_then(|()| self.writer.flush())
        {
            self.closed = true;
            return Err(Error::from(e).into());
        }
        let closed = |c: &mut Self| {
            c.closed = true;
            Stop::Err(Error::Closed {
                command: command.map(str::to_owned),
            })
        };
        loop {
            if let Some(r) = done(&mut self.link) {
                return Ok(r);
            }
            let chunk = match deadline {
                None => match self.rx.recv() {
                    Ok(c) => c,
                    Err(_) => return Err(closed(self)),
                },
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    match self.rx.recv_timeout(left) {
                        Ok(c) => c,
                        Err(RecvTimeoutError::Timeout) => return Err(Stop::Timeout),
                        Err(RecvTimeoutError::Disconnected) => return Err(closed(self)),
                    }
                }
            };
            match chunk {
                Ok(b) if b.is_empty() => return Err(closed(self)),
                Ok(b) => self.link.input(&b),
                Err(e) => {
                    self.closed = true;
                    return Err(Error::from(e).into());
                }
            }
        }
    }

    fn sync(&mut self, timeout: Duration) -> Result<()> {
        let bytes = self.link.begin_sync();
        let stale = self.link.stale();
        let deadline = Instant::now() + timeout;
        match self.exchange(&bytes, None, Some(deadline), |l| {
            l.poll_sync().then_some(())
        }) {
            Ok(()) => {
                tracing::debug!(discarded = self.link.stale() - stale, "guest agent: synced");
                Ok(())
            }
            Err(Stop::Timeout) => Err(Error::SyncTimeout { after: timeout }),
            Err(Stop::Err(e)) => Err(e),
        }
    }
}

struct Inner {
    conn: Mutex<Conn>,
    options: QgaOptions,
    shutdown: Box<dyn Fn() + Send + Sync>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Ends the reader thread's read (sockets).
        (self.shutdown)();
    }
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A blocking guest-agent connection; clone it to share it between threads. Commands run one at
/// a time (see the [module docs](crate::qga)).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("qga::blocking::Client")
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connect to a unix socket (the host end of the agent's virtio-serial port, or qemu-ga's
    /// listen socket) within the connect timeout, then sync within the sync timeout.
    #[cfg(unix)]
    pub fn connect_unix(path: impl AsRef<std::path::Path>, options: QgaOptions) -> Result<Self> {
        let s = crate::unix_connect::connect_within(path.as_ref(), options.connect_timeout)?;
        s.set_nonblocking(false)?;
        let r = s.try_clone()?;
        let w = s.try_clone()?;
        // A wedged agent that stops reading must not block a write forever: a write that
        // cannot finish within the longer of the sync and command timeouts fails (and the
        // connection closes) instead.
        let write_limit = options
            .command_timeout
            .unwrap_or(options.sync_timeout)
            .max(options.sync_timeout)
            .max(Duration::from_millis(1));
        w.set_write_timeout(Some(write_limit))?;
        let shutdown = move || {
            let _ = s.shutdown(std::net::Shutdown::Both);
        };
        Self::start(Box::new(r), Box::new(w), Box::new(shutdown), options)
    }

    /// Talk to the agent over any reader/writer pair, syncing first within the sync timeout.
    ///
    /// A reader thread reads the agent's output; it ends when its current read returns after
    /// the last clone of the client is dropped (a generic reader cannot be interrupted).
    pub fn connect_io(
        reader: impl Read + Send + 'static,
        writer: impl Write + Send + 'static,
        options: QgaOptions,
    ) -> Result<Self> {
        Self::start(Box::new(reader), Box::new(writer), Box::new(|| {}), options)
    }

    fn start(
        reader: Box<dyn Read + Send>,
        writer: Box<dyn Write + Send>,
        shutdown: Box<dyn Fn() + Send + Sync>,
        options: QgaOptions,
    ) -> Result<Self> {
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("qga-reader".into())
            .spawn(move || reader_loop(reader, tx))?;
        let inner = Arc::new(Inner {
            conn: Mutex::new(Conn {
                writer,
                rx,
                link: Link::new(options.max_frame_len),
                closed: false,
            }),
            options,
            shutdown,
        });
        relock(&inner.conn).sync(inner.options.sync_timeout)?;
        Ok(Self { inner })
    }

    /// Whether the connection has ended (the agent went away or IO failed).
    pub fn is_closed(&self) -> bool {
        relock(&self.inner.conn).closed
    }

    /// Objects discarded while syncing so far (a previous client's replies, late replies to
    /// timed-out commands, the agent's complaint about the 0xFF byte).
    pub fn stale_discarded(&self) -> u64 {
        relock(&self.inner.conn).link.stale()
    }

    /// Run a command by name with JSON arguments (an object, or `None`), with the default
    /// timeout ([`QgaOptions::command_timeout`]).
    pub fn execute(&self, command: &str, arguments: Option<Value>) -> Result<Value> {
        self.run(command, arguments, self.inner.options.command_timeout)
    }

    /// Run a command with its own timeout.
    pub fn execute_with_timeout(
        &self,
        command: &str,
        arguments: Option<Value>,
        timeout: Duration,
    ) -> Result<Value> {
        self.run(command, arguments, Some(timeout))
    }

    /// The command, after a resync if the stream is out of step (a timed-out command leaves it
    /// so).
    fn run(
        &self,
        command: &str,
        arguments: Option<Value>,
        timeout: Option<Duration>,
    ) -> Result<Value> {
        let mut conn = relock(&self.inner.conn);
        if conn.closed {
            return Err(Error::Closed {
                command: Some(command.to_owned()),
            });
        }
        if conn.link.needs_sync() {
            conn.sync(self.inner.options.sync_timeout)?;
        }
        let bytes = conn.link.begin_command(command, arguments)?;
        let deadline = timeout.map(|t| Instant::now() + t);
        match conn.exchange(&bytes, Some(command), deadline, |l| l.poll_reply(command)) {
            Ok(r) => r,
            Err(Stop::Err(e)) => Err(e),
            Err(Stop::Timeout) => Err(Error::Timeout {
                command: command.to_owned(),
                after: timeout.unwrap_or_default(),
            }),
        }
    }

    /// `guest-ping`: whether the agent answers at all.
    pub fn ping(&self) -> Result<()> {
        self.execute("guest-ping", None).map(drop)
    }

    /// `guest-info`: the agent's version and its commands with their enabled flags.
    pub fn info(&self) -> Result<GuestInfo> {
        decode("guest-info", self.execute("guest-info", None)?)
    }

    /// `guest-get-time`: the guest's clock, in nanoseconds since the epoch.
    pub fn get_time(&self) -> Result<i64> {
        decode("guest-get-time", self.execute("guest-get-time", None)?)
    }

    /// `guest-get-host-name`: the guest's host name.
    pub fn get_host_name(&self) -> Result<String> {
        let v = self.execute("guest-get-host-name", None)?;
        decode::<HostName>("guest-get-host-name", v).map(|h| h.host_name)
    }

    /// `guest-get-osinfo`: the guest's kernel and OS release.
    pub fn get_osinfo(&self) -> Result<GuestOsInfo> {
        decode("guest-get-osinfo", self.execute("guest-get-osinfo", None)?)
    }
}
