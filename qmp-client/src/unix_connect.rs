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
