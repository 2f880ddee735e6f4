//! A child process as a byte stream (ssh and ext transports).
//!
//! The child's stdin and stdout are one end of a unix socket pair (like libvirt's), so the
//! parent holds a single full-duplex socket with timeouts, `try_clone` and tokio support. The
//! child's stderr is collected (bounded) by a thread so that it can be reported when the
//! stream ends. The process is killed and reaped when the last handle is dropped.

use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::transport::CommandSpec;
use crate::Error;

/// Keep at most this much of the child's stderr (the end of it).
const STDERR_CAP: usize = 16 * 1024;
/// How long to wait, once the stream ends, for the child's last words on stderr.
const STDERR_GRACE: Duration = Duration::from_millis(200);

#[derive(Debug, Default)]
struct Stderr {
    text: Mutex<Vec<u8>>,
    done: AtomicBool,
}

/// A running child process and what it wrote to stderr.
#[derive(Debug)]
pub(crate) struct ChildProcess {
    child: Mutex<Child>,
    program: String,
    stderr: Arc<Stderr>,
}

impl ChildProcess {
    /// Spawn `spec` with stdin/stdout on a socket pair; returns our end of it.
    pub(crate) fn spawn(spec: &CommandSpec) -> Result<(UnixStream, Arc<ChildProcess>), Error> {
        let (ours, theirs) = UnixStream::pair()?;
        let theirs_out = theirs.try_clone()?;
        let mut child = Command::new(&spec.program)
            .args(&spec.args)
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::from(OwnedFd::from(theirs_out)))
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Spawn {
                program: spec.display(),
                source,
            })?;
        let stderr = Arc::new(Stderr::default());
        if let Some(mut pipe) = child.stderr.take() {
            let sink = stderr.clone();
            std::thread::Builder::new()
                .name("libvirt-child-stderr".into())
                .spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = pipe.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let mut text = sink.text.lock().unwrap_or_else(|e| e.into_inner());
                        text.extend_from_slice(&buf[..n]);
                        if text.len() > STDERR_CAP {
                            let cut = text.len() - STDERR_CAP;
                            text.drain(..cut);
                        }
                    }
                    sink.done.store(true, Ordering::Release);
                })?;
        } else {
            stderr.done.store(true, Ordering::Release);
        }
        Ok((
            ours,
            Arc::new(ChildProcess {
                child: Mutex::new(child),
                program: spec.program.clone(),
                stderr,
            }),
        ))
    }

    /// What the child wrote to stderr so far (lossy UTF-8, trimmed).
    pub(crate) fn stderr(&self) -> String {
        let text = self.stderr.text.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&text).trim().to_owned()
    }

    /// The process id.
    pub(crate) fn id(&self) -> u32 {
        self.child.lock().unwrap_or_else(|e| e.into_inner()).id()
    }

    /// Called when the stream hit end-of-file: give the child a moment to finish its stderr,
    /// then turn the EOF into an error that carries it (and the exit status) if there is any.
    pub(crate) fn eof(&self) -> io::Result<()> {
        self.report(io::ErrorKind::UnexpectedEof)
    }

    /// Called on a read or write error: when the child went away (reset, broken pipe), say
    /// what it wrote to stderr.
    pub(crate) fn explain(&self, e: io::Error) -> io::Error {
        match e.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
                self.report(e.kind()).err().unwrap_or(e)
            }
            _ => e,
        }
    }

    /// A read's outcome on the child's socket, with the child's account of an end of file
    /// ([`eof`](Self::eof); `wanted`: the read had room, so 0 bytes means the end) or of a
    /// failure ([`explain`](Self::explain)).
    pub(crate) fn read_outcome(&self, r: io::Result<usize>, wanted: bool) -> io::Result<usize> {
        match r {
            Ok(0) if wanted => self.eof().map(|()| 0),
            Err(e) => Err(self.explain(e)),
            r => r,
        }
    }

    fn report(&self, kind: io::ErrorKind) -> io::Result<()> {
        let deadline = Instant::now() + STDERR_GRACE;
        while !self.stderr.done.load(Ordering::Acquire) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let stderr = self.stderr();
        if stderr.is_empty() {
            return Ok(());
        }
        // The child usually exits right after closing its end: wait (briefly) for its status.
        let status = loop {
            let exited = self
                .child
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .try_wait();
            match exited {
                Ok(Some(s)) => break format!(" ({s})"),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => break String::new(),
            }
        };
        Err(io::Error::new(
            kind,
            format!(
                "{} closed the connection{status}; its stderr: {stderr}",
                self.program
            ),
        ))
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sh(script: &str) -> CommandSpec {
        CommandSpec {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
        }
    }

    #[test]
    fn echo_through_child() {
        let (mut s, child) = ChildProcess::spawn(&sh("exec cat")).unwrap();
        s.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        let pid = child.id();
        drop(s);
        drop(child);
        // reaped: no such process any more (not even a zombie)
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn stderr_is_reported_at_eof() {
        let (mut s, child) =
            ChildProcess::spawn(&sh("echo 'no route to host' >&2; exit 255")).unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(s.read(&mut buf).unwrap(), 0);
        let err = child.eof().unwrap_err();
        assert!(err.to_string().contains("no route to host"), "{err}");
        assert!(err.to_string().contains("255"), "{err}");
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let e = ChildProcess::spawn(&CommandSpec {
            program: "/nonexistent/prog".into(),
            args: vec![],
        })
        .unwrap_err();
        assert!(matches!(e, Error::Spawn { .. }), "{e}");
    }

    #[test]
    fn drop_kills_a_child_that_ignores_eof() {
        let (s, child) = ChildProcess::spawn(&sh("trap '' TERM; sleep 30")).unwrap();
        let pid = child.id();
        let t = Instant::now();
        drop(s);
        drop(child);
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }
}
