//! Connecting to a unix socket within a deadline.
//!
//! A unix `connect` blocks while the listener's backlog is full (a QEMU that stopped accepting,
//! a wedged process). Both drivers therefore connect non-blocking: a full backlog answers
//! `EAGAIN` at once (unix sockets have no `EINPROGRESS` to poll on), so the attempt is retried
//! with a short, growing pause until it succeeds, fails for another reason, or the connect
//! timeout passes.

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// One non-blocking attempt: the connected (non-blocking) stream, `None` while the listener's
/// backlog is full, or the OS error.
pub(crate) fn try_connect(path: &Path) -> std::io::Result<Option<UnixStream>> {
    let addr = SocketAddrUnix::new(path)?;
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    match rustix::net::connect(&fd, &addr) {
        Ok(()) => Ok(Some(UnixStream::from(fd))),
        Err(Errno::AGAIN) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The pause before attempt number `attempt` (1 ms doubling up to 32 ms).
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(1 << attempt.min(5))
}

/// Connect within `timeout`, retrying while the backlog is full (blocking: sleeps between
/// attempts). The stream is returned in non-blocking mode.
#[cfg(feature = "blocking")]
pub(crate) fn connect_within(path: &Path, timeout: Duration) -> crate::Result<UnixStream> {
    let deadline = std::time::Instant::now() + timeout;
    let mut attempt = 0;
    loop {
        match try_connect(path) {
            Ok(Some(s)) => return Ok(s),
            Ok(None) => {
                let now = std::time::Instant::now();
                if now >= deadline {
                    return Err(timed_out(path, timeout));
                }
                std::thread::sleep(backoff(attempt).min(deadline - now));
                attempt += 1;
            }
            Err(e) => return Err(refused(path, e)),
        }
    }
}

/// [`connect_within`] for tokio: waits between attempts without blocking the runtime.
#[cfg(feature = "async")]
pub(crate) async fn connect_within_async(
    path: &Path,
    timeout: Duration,
) -> crate::Result<tokio::net::UnixStream> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut attempt = 0;
    loop {
        match try_connect(path) {
            Ok(Some(s)) => return Ok(tokio::net::UnixStream::from_std(s)?),
            Ok(None) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(timed_out(path, timeout));
                }
                let wake = tokio::time::Instant::now() + backoff(attempt);
                tokio::time::sleep_until(wake.min(deadline)).await;
                attempt += 1;
            }
            Err(e) => return Err(refused(path, e)),
        }
    }
}

#[cfg(any(feature = "async", feature = "blocking"))]
fn timed_out(path: &Path, after: Duration) -> crate::Error {
    crate::Error::ConnectTimeout {
        target: path.display().to_string(),
        after,
    }
}

#[cfg(any(feature = "async", feature = "blocking"))]
fn refused(path: &Path, e: std::io::Error) -> crate::Error {
    crate::Error::Connect {
        target: path.display().to_string(),
        source: std::sync::Arc::new(e),
    }
}
