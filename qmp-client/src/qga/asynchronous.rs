//! The async guest-agent driver: no background task; the caller holding the connection's lock
//! writes its command and reads until its reply.

use super::{decode, GuestInfo, GuestOsInfo, HostName, Link, QgaOptions};
use crate::{AsyncStream, Error, Result};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Conn {
    stream: Box<dyn AsyncStream>,
    link: Link,
    /// The stream ended or failed: every later call fails at once.
    closed: bool,
    buf: Vec<u8>,
}

impl Conn {
    /// Write `bytes` and read until `done` says the awaited output arrived. IO errors and the
    /// end of the stream close the connection.
    async fn exchange<T>(
        &mut self,
        bytes: &[u8],
        command: Option<&str>,
        mut done: impl FnMut(&mut Link) -> Option<T>,
    ) -> Result<T> {
        if let Err(e) = self.stream.write_all(bytes).await {
            self.closed = true;
            return Err(e.into());
        }
        if let Err(e) = self.stream.flush().await {
            self.closed = true;
            return Err(e.into());
        }
        loop {
            if let Some(r) = done(&mut self.link) {
                return Ok(r);
            }
            match self.stream.read(&mut self.buf).await {
                Ok(0) => {
                    self.closed = true;
                    return Err(Error::Closed {
                        command: command.map(str::to_owned),
                    });
                }
                Ok(n) => self.link.input(&self.buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.closed = true;
                    return Err(e.into());
                }
            }
        }
    }

    async fn sync(&mut self, timeout: Duration) -> Result<()> {
        let bytes = self.link.begin_sync();
        let stale = self.link.stale();
        tokio::time::timeout(
            timeout,
            self.exchange(&bytes, None, |l| l.poll_sync().then_some(())),
        )
        .await
        .map_err(|_| Error::SyncTimeout { after: timeout })??;
        tracing::debug!(discarded = self.link.stale() - stale, "guest agent: synced");
        Ok(())
    }
}

struct Inner {
    conn: tokio::sync::Mutex<Conn>,
    options: QgaOptions,
}

/// An async guest-agent connection. Cheap to clone; clones share the connection and their
/// commands run one at a time, in the order they get the connection (see the
/// [module docs](crate::qga)).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("qga::Client").finish_non_exhaustive()
    }
}

impl Client {
    /// Connect to a unix socket (the host end of the agent's virtio-serial port, or qemu-ga's
    /// listen socket) within the connect timeout, then sync within the sync timeout.
    #[cfg(unix)]
    pub async fn connect_unix(
        path: impl AsRef<std::path::Path>,
        options: QgaOptions,
    ) -> Result<Self> {
        let stream =
            crate::unix_connect::connect_within_async(path.as_ref(), options.connect_timeout)
                .await?;
        Self::connect_stream(stream, options).await
    }

    /// Talk to the agent over any byte stream, syncing first within the sync timeout.
    pub async fn connect_stream<S: AsyncStream>(stream: S, options: QgaOptions) -> Result<Self> {
        let mut conn = Conn {
            stream: Box::new(stream),
            link: Link::new(options.max_frame_len),
            closed: false,
            buf: vec![0; 64 * 1024],
        };
        conn.sync(options.sync_timeout).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                conn: tokio::sync::Mutex::new(conn),
                options,
            }),
        })
    }

    /// Whether the connection has ended (the agent went away or IO failed).
    pub async fn is_closed(&self) -> bool {
        self.inner.conn.lock().await.closed
    }

    /// Objects discarded while syncing so far (a previous client's replies, late replies to
    /// timed-out commands, the agent's complaint about the 0xFF byte).
    pub async fn stale_discarded(&self) -> u64 {
        self.inner.conn.lock().await.link.stale()
    }

    /// Run a command by name with JSON arguments (an object, or `None`), with the default
    /// timeout ([`QgaOptions::command_timeout`]).
    pub async fn execute(&self, command: &str, arguments: Option<Value>) -> Result<Value> {
        self.run(command, arguments, self.inner.options.command_timeout)
            .await
    }

    /// Run a command with its own timeout.
    pub async fn execute_with_timeout(
        &self,
        command: &str,
        arguments: Option<Value>,
        timeout: Duration,
    ) -> Result<Value> {
        self.run(command, arguments, Some(timeout)).await
    }

    /// The command, after a resync if the stream is out of step. Dropping the future at any
    /// point leaves the stream marked out of step, so the next command resyncs first.
    async fn run(
        &self,
        command: &str,
        arguments: Option<Value>,
        timeout: Option<Duration>,
    ) -> Result<Value> {
        let mut conn = self.inner.conn.lock().await;
        if conn.closed {
            return Err(Error::Closed {
                command: Some(command.to_owned()),
            });
        }
        if conn.link.needs_sync() {
            conn.sync(self.inner.options.sync_timeout).await?;
        }
        let bytes = conn.link.begin_command(command, arguments)?;
        let call = conn.exchange(&bytes, Some(command), |l| l.poll_reply(command));
        match timeout {
            None => call.await?,
            Some(after) => {
                tokio::time::timeout(after, call)
                    .await
                    .map_err(|_| Error::Timeout {
                        command: command.to_owned(),
                        after,
                    })??
            }
        }
    }

    /// `guest-ping`: whether the agent answers at all.
    pub async fn ping(&self) -> Result<()> {
        self.execute("guest-ping", None).await.map(drop)
    }

    /// `guest-info`: the agent's version and its commands with their enabled flags.
    pub async fn info(&self) -> Result<GuestInfo> {
        decode("guest-info", self.execute("guest-info", None).await?)
    }

    /// `guest-get-time`: the guest's clock, in nanoseconds since the epoch.
    pub async fn get_time(&self) -> Result<i64> {
        decode(
            "guest-get-time",
            self.execute("guest-get-time", None).await?,
        )
    }

    /// `guest-get-host-name`: the guest's host name.
    pub async fn get_host_name(&self) -> Result<String> {
        let v = self.execute("guest-get-host-name", None).await?;
        decode::<HostName>("guest-get-host-name", v).map(|h| h.host_name)
    }

    /// `guest-get-osinfo`: the guest's kernel and OS release.
    pub async fn get_osinfo(&self) -> Result<GuestOsInfo> {
        decode(
            "guest-get-osinfo",
            self.execute("guest-get-osinfo", None).await?,
        )
    }
}
