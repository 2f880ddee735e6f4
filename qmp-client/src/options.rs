//! Connection and call settings shared by both drivers.

use qmp_proto::SessionConfig;
use std::time::Duration;

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Longest wait for the socket connection itself.
    pub connect_timeout: Duration,
    /// Longest wait for the greeting and capability negotiation.
    pub greeting_timeout: Duration,
    /// Default per-command timeout (`None`: wait as long as the connection lives).
    pub command_timeout: Option<Duration>,
    /// Protocol settings: framing limit, `oob`, in-flight window. The default asks for `oob`
    /// when QEMU offers it: without it QEMU stops reading after each command until it has
    /// answered, so pipelining gains little.
    pub session: SessionConfig,
    /// Events each subscriber may have queued before it starts losing them (and is told so).
    pub event_queue: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            greeting_timeout: Duration::from_secs(5),
            command_timeout: Some(Duration::from_secs(60)),
            session: SessionConfig {
                want_oob: true,
                ..SessionConfig::default()
            },
            event_queue: 1024,
        }
    }
}

/// Per-call settings for `execute_with`.
#[derive(Debug, Default)]
pub struct Exec {
    /// Overrides [`ConnectOptions::command_timeout`] when set.
    pub timeout: Option<Duration>,
    /// Send as `exec-oob` (needs the negotiated `oob` capability).
    pub oob: bool,
    /// File descriptors sent with the command (SCM_RIGHTS; unix sockets only), as `getfd` and
    /// `add-fd` expect.
    #[cfg(unix)]
    pub fds: Vec<std::os::fd::OwnedFd>,
}

impl Exec {
    /// With this timeout.
    pub fn timeout(timeout: Duration) -> Self {
        Self {
            timeout: Some(timeout),
            ..Self::default()
        }
    }

    /// With these fds attached.
    #[cfg(unix)]
    pub fn fds(fds: Vec<std::os::fd::OwnedFd>) -> Self {
        Self {
            fds,
            ..Self::default()
        }
    }
}

/// Where to connect: `unix:PATH`, `tcp:HOST:PORT`, or a bare path.
pub(crate) enum Target<'a> {
    Unix(&'a str),
    Tcp(&'a str),
}

pub(crate) fn parse_target(target: &str) -> Target<'_> {
    if let Some(p) = target.strip_prefix("unix:") {
        Target::Unix(p)
    } else if let Some(a) = target.strip_prefix("tcp:") {
        Target::Tcp(a)
    } else {
        Target::Unix(target)
    }
}
