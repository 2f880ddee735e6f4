//! The blocking (std only) transport.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustls::ClientConnection;

use super::child::ChildProcess;
use super::{tcp, tls, unix, ConnectOptions, Endpoint};
use crate::uri::{TransportKind, Uri};
use crate::Error;

/// A caller-supplied byte stream.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A connected blocking transport: `Read + Write` over unix, tcp, tls, a child process (ssh,
/// ext) or any stream given to [`BlockingTransport::from_stream`].
///
/// For a driver with a reader thread, [`BlockingTransport::into_split`] gives independent
/// reader and writer halves.
pub struct BlockingTransport {
    inner: Inner,
    kind: Option<TransportKind>,
}

enum Inner {
    Unix(UnixStream),
    Tcp(TcpStream),
    Tls(TlsReader, TlsWriter),
    Child(UnixStream, Arc<ChildProcess>),
    Stream(Box<dyn Stream>),
    Halves(Box<dyn Read + Send>, Box<dyn Write + Send>),
}

impl fmt::Debug for BlockingTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = match &self.inner {
            Inner::Unix(_) => "unix",
            Inner::Tcp(_) => "tcp",
            Inner::Tls(..) => "tls",
            Inner::Child(..) => "child process",
            Inner::Stream(_) => "stream",
            Inner::Halves(..) => "reader+writer",
        };
        f.debug_struct("BlockingTransport")
            .field("inner", &inner)
            .field("kind", &self.kind)
            .finish()
    }
}

impl BlockingTransport {
    /// Connect to the daemon `uri` addresses (see [`Endpoint::from_uri`]).
    pub fn connect(uri: &Uri, opts: &ConnectOptions) -> Result<BlockingTransport, Error> {
        BlockingTransport::connect_endpoint(&Endpoint::from_uri(uri, opts)?, opts)
    }

    /// Connect to an endpoint.
    pub fn connect_endpoint(
        endpoint: &Endpoint,
        opts: &ConnectOptions,
    ) -> Result<BlockingTransport, Error> {
        let inner = match endpoint {
            Endpoint::Unix { path } => Inner::Unix(unix::connect_blocking(path)?),
            Endpoint::Tcp { host, port } => {
                Inner::Tcp(tcp::connect_blocking(host, *port, opts.connect_timeout)?)
            }
            Endpoint::Tls {
                host,
                port,
                settings,
            } => {
                let config = tls::client_config(settings)?;
                let sock = tcp::connect_blocking(host, *port, opts.connect_timeout)?;
                tls_handshake(config, host, sock, opts.connect_timeout)?
            }
            Endpoint::Command { spec, .. } => {
                let (sock, child) = ChildProcess::spawn(spec)?;
                Inner::Child(sock, child)
            }
        };
        Ok(BlockingTransport {
            inner,
            kind: Some(endpoint.kind()),
        })
    }

    /// Run the client side of TLS (with libvirt's certificate verdict byte) over an already
    /// connected TCP stream.
    pub fn tls_over(
        sock: TcpStream,
        host: &str,
        config: Arc<rustls::ClientConfig>,
        timeout: Option<Duration>,
    ) -> Result<BlockingTransport, Error> {
        Ok(BlockingTransport {
            inner: tls_handshake(config, host, sock, timeout)?,
            kind: Some(TransportKind::Tls),
        })
    }

    /// Wrap an already connected unix socket (e.g. one inherited from a service manager): a
    /// unix transport, able to pass file descriptors.
    pub fn from_unix(sock: UnixStream) -> BlockingTransport {
        BlockingTransport {
            inner: Inner::Unix(sock),
            kind: Some(TransportKind::Unix),
        }
    }

    /// Wrap any blocking byte stream. Such a transport cannot be split (use
    /// [`BlockingTransport::from_halves`] for that) and has no timeouts of its own.
    pub fn from_stream<S: Read + Write + Send + 'static>(stream: S) -> BlockingTransport {
        BlockingTransport {
            inner: Inner::Stream(Box::new(stream)),
            kind: None,
        }
    }

    /// Wrap a stream given as separate reading and writing halves.
    pub fn from_halves<R, W>(reader: R, writer: W) -> BlockingTransport
    where
        R: Read + Send + 'static,
        W: Write + Send + 'static,
    {
        BlockingTransport {
            inner: Inner::Halves(Box::new(reader), Box::new(writer)),
            kind: None,
        }
    }

    /// The transport kind, `None` for caller-supplied streams.
    pub fn kind(&self) -> Option<TransportKind> {
        self.kind
    }

    /// The unix socket, for passing file descriptors (unix transport only).
    pub fn as_unix(&self) -> Option<&UnixStream> {
        match &self.inner {
            Inner::Unix(s) => Some(s),
            _ => None,
        }
    }

    /// Whether file descriptors can be passed (unix transport only, as in libvirt).
    pub fn can_pass_fds(&self) -> bool {
        matches!(self.inner, Inner::Unix(_))
    }

    /// The child process id (ssh and ext transports).
    pub fn child_id(&self) -> Option<u32> {
        match &self.inner {
            Inner::Child(_, c) => Some(c.id()),
            _ => None,
        }
    }

    /// What the child process (ssh, ext) has written to stderr so far.
    pub fn child_stderr(&self) -> Option<String> {
        match &self.inner {
            Inner::Child(_, c) => Some(c.stderr()),
            _ => None,
        }
    }

    /// Limit how long one read may block (`None`: forever). A read that times out fails with
    /// `WouldBlock` or `TimedOut`. Caller-supplied streams return `Unsupported`.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match &self.inner {
            Inner::Unix(s) | Inner::Child(s, _) => s.set_read_timeout(timeout),
            Inner::Tcp(s) => s.set_read_timeout(timeout),
            Inner::Tls(r, _) => r.sock.set_read_timeout(timeout),
            Inner::Stream(_) | Inner::Halves(..) => Err(unsupported("read timeouts")),
        }
    }

    /// Limit how long one write may block (`None`: forever).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match &self.inner {
            Inner::Unix(s) | Inner::Child(s, _) => s.set_write_timeout(timeout),
            Inner::Tcp(s) => s.set_write_timeout(timeout),
            Inner::Tls(_, w) => w.sock.set_write_timeout(timeout),
            Inner::Stream(_) | Inner::Halves(..) => Err(unsupported("write timeouts")),
        }
    }

    /// Split into a reader and a writer usable from different threads. Dropping both closes
    /// the connection (and reaps a child process). Fails for [`BlockingTransport::from_stream`]
    /// transports.
    pub fn into_split(self) -> Result<(BlockingReader, BlockingWriter), Error> {
        let (r, w): (ReadHalf, WriteHalf) = match self.inner {
            Inner::Unix(s) => {
                let w = s.try_clone()?;
                (ReadHalf::Unix(s, None), WriteHalf::Unix(w, None))
            }
            Inner::Child(s, c) => {
                let w = s.try_clone()?;
                (
                    ReadHalf::Unix(s, Some(c.clone())),
                    WriteHalf::Unix(w, Some(c)),
                )
            }
            Inner::Tcp(s) => {
                let w = s.try_clone()?;
                (ReadHalf::Tcp(s), WriteHalf::Tcp(w))
            }
            Inner::Tls(r, w) => (ReadHalf::Tls(r), WriteHalf::Tls(w)),
            Inner::Halves(r, w) => (ReadHalf::Boxed(r), WriteHalf::Boxed(w)),
            Inner::Stream(_) => {
                return Err(Error::Unsupported {
                    reason: "a stream given to from_stream cannot be split; use from_halves"
                        .to_owned(),
                })
            }
        };
        let read_timeout = match &r {
            ReadHalf::Unix(s, _) => s.read_timeout()?,
            _ => None,
        };
        Ok((
            BlockingReader {
                half: r,
                read_timeout,
            },
            BlockingWriter(w),
        ))
    }

    /// Shut down both directions (the peer sees end-of-file).
    pub fn shutdown(&self) -> io::Result<()> {
        match &self.inner {
            Inner::Unix(s) | Inner::Child(s, _) => s.shutdown(std::net::Shutdown::Both),
            Inner::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
            Inner::Tls(r, _) => {
                let _ = r.shared.close_notify(&r.sock);
                r.sock.shutdown(std::net::Shutdown::Both)
            }
            Inner::Stream(_) | Inner::Halves(..) => Ok(()),
        }
    }
}

fn unsupported(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{what} are not available on a caller-supplied stream"),
    )
}

fn child_read(
    s: &mut UnixStream,
    child: Option<&Arc<ChildProcess>>,
    buf: &mut [u8],
) -> io::Result<usize> {
    let wanted = !buf.is_empty();
    match child {
        Some(c) => c.read_outcome(s.read(buf), wanted),
        None => s.read(buf),
    }
}

impl Read for BlockingTransport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Unix(s) => s.read(buf),
            Inner::Child(s, c) => child_read(s, Some(c), buf),
            Inner::Tcp(s) => s.read(buf),
            Inner::Tls(r, _) => r.read(buf),
            Inner::Stream(s) => s.read(buf),
            Inner::Halves(r, _) => r.read(buf),
        }
    }
}

impl Write for BlockingTransport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Unix(s) => s.write(buf),
            Inner::Child(s, c) => s.write(buf).map_err(|e| c.explain(e)),
            Inner::Tcp(s) => s.write(buf),
            Inner::Tls(_, w) => w.write(buf),
            Inner::Stream(s) => s.write(buf),
            Inner::Halves(_, w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Unix(s) | Inner::Child(s, _) => s.flush(),
            Inner::Tcp(s) => s.flush(),
            Inner::Tls(_, w) => w.flush(),
            Inner::Stream(s) => s.flush(),
            Inner::Halves(_, w) => w.flush(),
        }
    }
}

/// The reading half of a split [`BlockingTransport`].
pub struct BlockingReader {
    half: ReadHalf,
    /// The read timeout, kept for the `poll` that [`BlockingReader::read_with_fds`] makes on a
    /// unix socket (the socket's own `SO_RCVTIMEO` does not bound a `poll`).
    read_timeout: Option<Duration>,
}

/// The writing half of a split [`BlockingTransport`].
pub struct BlockingWriter(WriteHalf);

enum ReadHalf {
    Unix(UnixStream, Option<Arc<ChildProcess>>),
    Tcp(TcpStream),
    Tls(TlsReader),
    Boxed(Box<dyn Read + Send>),
}

enum WriteHalf {
    // The child handle also keeps the process alive until both halves are gone.
    Unix(UnixStream, Option<Arc<ChildProcess>>),
    Tcp(TcpStream),
    Tls(TlsWriter),
    Boxed(Box<dyn Write + Send>),
}

impl fmt::Debug for BlockingReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlockingReader")
    }
}

impl fmt::Debug for BlockingWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlockingWriter")
    }
}

impl BlockingReader {
    /// Limit how long one read may block (`None`: forever); `Unsupported` for caller-supplied
    /// halves.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match &self.half {
            ReadHalf::Unix(s, _) => {
                s.set_read_timeout(timeout)?;
                self.read_timeout = timeout;
                Ok(())
            }
            ReadHalf::Tcp(s) => s.set_read_timeout(timeout),
            ReadHalf::Tls(r) => r.sock.set_read_timeout(timeout),
            ReadHalf::Boxed(_) => Err(unsupported("read timeouts")),
        }
    }

    /// Whether [`try_read_with_fds`](Self::try_read_with_fds) can read on this half (plain
    /// unix and tcp sockets).
    pub fn can_try_read(&self) -> bool {
        matches!(self.half, ReadHalf::Unix(_, None) | ReadHalf::Tcp(_))
    }

    /// Read what has arrived without waiting, as [`read_with_fds`](Self::read_with_fds) does
    /// (`WouldBlock` when nothing has); `Unsupported` on all but plain unix and tcp sockets.
    pub fn try_read_with_fds(
        &mut self,
        buf: &mut [u8],
        fds: &mut Vec<std::os::fd::OwnedFd>,
    ) -> io::Result<usize> {
        use std::os::fd::AsFd;
        match &self.half {
            ReadHalf::Unix(s, None) => super::fdpass::recv_now(s.as_fd(), true, buf, fds),
            ReadHalf::Tcp(s) => super::fdpass::recv_now(s.as_fd(), false, buf, fds),
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "non-blocking reads need a plain unix or tcp socket",
            )),
        }
    }

    /// Read like [`Read::read`], appending the file descriptors that arrive with the bytes to
    /// `fds` (unix transport; other transports never bring any). On a unix socket every read
    /// must go through here: a plain read would let the kernel discard the descriptors.
    ///
    /// On a unix socket (also one to an ssh or ext child process) it waits in `poll` for input
    /// alone, as libvirt's client does. A thread asleep in `recvmsg` is also woken each time
    /// the peer takes bytes off the socket (the kernel then signals room to write to everyone
    /// waiting on it), which for a client is once per call it sent, for nothing; `poll`
    /// filters those wake-ups out.
    pub fn read_with_fds(
        &mut self,
        buf: &mut [u8],
        fds: &mut Vec<std::os::fd::OwnedFd>,
    ) -> io::Result<usize> {
        use std::os::fd::AsFd;
        match &mut self.half {
            ReadHalf::Unix(s, None) => loop {
                match super::fdpass::recv_now(s.as_fd(), true, buf, fds) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        wait_readable(s.as_fd(), self.read_timeout)?
                    }
                    r => return r,
                }
            },
            ReadHalf::Unix(s, Some(c)) => {
                wait_readable(s.as_fd(), self.read_timeout)?;
                child_read(s, Some(c), buf)
            }
            _ => self.read(buf),
        }
    }
}

impl BlockingWriter {
    /// Send file descriptors the way libvirt does (one `0` byte carrying each, `SCM_RIGHTS`),
    /// after the packet that announces them was written. Fails with `Unsupported` on every
    /// transport but unix; never drops descriptors silently.
    pub fn send_fds(&mut self, fds: &[std::os::fd::OwnedFd]) -> io::Result<()> {
        use std::os::fd::AsFd;
        match &self.0 {
            WriteHalf::Unix(s, None) => super::fdpass::send(s.as_fd(), fds, &mut 0),
            _ if fds.is_empty() => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "file descriptors can only be passed over the unix transport",
            )),
        }
    }

    /// Whether [`try_send`](Self::try_send) can write on this transport (plain unix and tcp
    /// sockets; not TLS, a child process's socket or a caller-supplied writer).
    pub fn can_try_send(&self) -> bool {
        matches!(&self.0, WriteHalf::Unix(_, None) | WriteHalf::Tcp(_))
    }

    /// Write what fits in the socket's send buffer now, without blocking: the bytes written
    /// (`WouldBlock` when none fit). `Unsupported` where [`can_try_send`](Self::can_try_send)
    /// is false. Takes `&self`: callers share the half behind their own lock.
    pub fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        use rustix::net::SendFlags;
        use std::os::fd::AsFd;
        let fd = match &self.0 {
            WriteHalf::Unix(s, None) => s.as_fd(),
            WriteHalf::Tcp(s) => s.as_fd(),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "non-blocking sends need a plain unix or tcp socket",
                ))
            }
        };
        loop {
            match rustix::net::send(fd, buf, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
                Err(rustix::io::Errno::INTR) => continue,
                r => return r.map_err(io::Error::from),
            }
        }
    }

    /// Limit how long one write may block (`None`: forever); `Unsupported` for caller-supplied
    /// halves.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match &self.0 {
            WriteHalf::Unix(s, _) => s.set_write_timeout(timeout),
            WriteHalf::Tcp(s) => s.set_write_timeout(timeout),
            WriteHalf::Tls(w) => w.sock.set_write_timeout(timeout),
            WriteHalf::Boxed(_) => Err(unsupported("write timeouts")),
        }
    }

    /// A handle that shuts the connection down from any thread, even while this half is
    /// blocked in a write (or the reader in a read): both then fail or see end-of-file.
    /// `None` for caller-supplied halves. Unlike [`BlockingWriter::shutdown`] it sends no TLS
    /// `close_notify` (that would wait for a writer blocked on a full send buffer).
    pub fn shutdown_handle(&self) -> Option<ShutdownHandle> {
        let sock = match &self.0 {
            WriteHalf::Unix(s, _) => s.try_clone().ok().map(ShutdownSock::Unix),
            WriteHalf::Tcp(s) => s.try_clone().ok().map(ShutdownSock::Tcp),
            WriteHalf::Tls(w) => w.sock.try_clone().ok().map(ShutdownSock::Tcp),
            WriteHalf::Boxed(_) => None,
        };
        sock.map(ShutdownHandle)
    }

    /// Shut down the connection in both directions, which also wakes a reader blocked on the
    /// other half (it sees end-of-file).
    pub fn shutdown(&self) -> io::Result<()> {
        match &self.0 {
            WriteHalf::Unix(s, _) => s.shutdown(std::net::Shutdown::Both),
            WriteHalf::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
            WriteHalf::Tls(w) => {
                let _ = w.shared.close_notify(&w.sock);
                w.sock.shutdown(std::net::Shutdown::Both)
            }
            WriteHalf::Boxed(_) => Ok(()),
        }
    }
}

/// Shuts a split transport's socket down from any thread (see
/// [`BlockingWriter::shutdown_handle`]).
#[derive(Debug)]
pub struct ShutdownHandle(ShutdownSock);

#[derive(Debug)]
enum ShutdownSock {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl ShutdownHandle {
    /// Shut the socket down in both directions: blocked reads see end-of-file, blocked and
    /// later writes fail.
    pub fn shutdown(&self) -> io::Result<()> {
        match &self.0 {
            ShutdownSock::Unix(s) => s.shutdown(std::net::Shutdown::Both),
            ShutdownSock::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
        }
    }
}

/// Wait until `sock` has input (or end of file, or an error) for at most `timeout` (`None`:
/// forever, as is a timeout too long to have a deadline); `WouldBlock` when the time runs out,
/// as a read on a socket with that `SO_RCVTIMEO` would fail. Retried on `EINTR` with the time
/// left.
fn wait_readable(sock: std::os::fd::BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<()> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use std::time::Instant;
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        // Never fails: what is left fits in an `Instant`, and so in a `timespec`.
        let ts = left
            .map(Timespec::try_from)
            .transpose()
            .map_err(io::Error::other)?;
        let mut fds = [PollFd::new(&sock, PollFlags::IN)];
        match poll(&mut fds, ts.as_ref()) {
            Ok(0) => return Err(io::ErrorKind::WouldBlock.into()),
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

impl Read for BlockingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.half {
            ReadHalf::Unix(s, c) => child_read(s, c.as_ref(), buf),
            ReadHalf::Tcp(s) => s.read(buf),
            ReadHalf::Tls(r) => r.read(buf),
            ReadHalf::Boxed(r) => r.read(buf),
        }
    }
}

impl Write for BlockingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            WriteHalf::Unix(s, None) => s.write(buf),
            WriteHalf::Unix(s, Some(c)) => s.write(buf).map_err(|e| c.explain(e)),
            WriteHalf::Tcp(s) => s.write(buf),
            WriteHalf::Tls(w) => w.write(buf),
            WriteHalf::Boxed(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.0 {
            WriteHalf::Unix(s, _) => s.flush(),
            WriteHalf::Tcp(s) => s.flush(),
            WriteHalf::Tls(w) => w.flush(),
            WriteHalf::Boxed(w) => w.flush(),
        }
    }
}

// ---- TLS over a std TcpStream, splittable ----
//
// The rustls connection sits behind a mutex shared by both halves, held only while rustls
// works, never across socket IO; each half owns a clone of the socket. The reader receives raw
// bytes without any lock, then feeds them to rustls. Whoever sends TLS records holds the
// separate `send` mutex from draining rustls' output until it is on the wire, so records leave
// in order; a reader blocked in the network never stalls the writer and a writer blocked in
// the network never stalls the reader (which would deadlock when both directions are full).

struct Shared {
    conn: Mutex<ClientConnection>,
    send: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn tls_err(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl Shared {
    /// Take what rustls wants to send (caller holds `send`).
    fn drain(&self) -> io::Result<Vec<u8>> {
        let mut conn = lock(&self.conn);
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out)?;
        }
        Ok(out)
    }

    /// Send everything rustls has queued.
    fn flush_to(&self, mut sock: &TcpStream) -> io::Result<()> {
        let _send = lock(&self.send);
        let out = self.drain()?;
        sock.write_all(&out)
    }

    /// Send what rustls has queued if no writer is busy (the reader's courtesy flush for
    /// key-update replies and alerts; otherwise the next write carries them).
    fn try_flush_to(&self, mut sock: &TcpStream) -> io::Result<()> {
        if let Ok(_send) = self.send.try_lock() {
            let out = self.drain()?;
            sock.write_all(&out)?;
        }
        Ok(())
    }

    fn close_notify(&self, sock: &TcpStream) -> io::Result<()> {
        lock(&self.conn).send_close_notify();
        self.flush_to(sock)
    }
}

struct TlsReader {
    shared: Arc<Shared>,
    sock: TcpStream,
    /// Received bytes rustls has not taken yet.
    raw: Vec<u8>,
    eof: bool,
}

struct TlsWriter {
    shared: Arc<Shared>,
    sock: TcpStream,
}

impl Read for TlsReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let mut conn = lock(&self.shared.conn);
            match conn.reader().read(buf) {
                Ok(n) => return Ok(n), // n == 0: clean close_notify
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if self.eof {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed the TLS connection without close_notify",
                ));
            }
            if !self.raw.is_empty() {
                let mut slice = &self.raw[..];
                let taken = conn.read_tls(&mut slice)?;
                self.raw.drain(..taken);
                let processed = conn.process_new_packets();
                let wants_write = conn.wants_write();
                drop(conn);
                if wants_write {
                    // alerts, key-update replies: best effort, errors surface on the writer
                    let _ = self.shared.try_flush_to(&self.sock);
                }
                processed.map_err(tls_err)?;
                continue;
            }
            drop(conn);
            let mut tmp = [0u8; 16 * 1024];
            let n = (&self.sock).read(&mut tmp)?;
            if n == 0 {
                self.eof = true;
                let mut conn = lock(&self.shared.conn);
                conn.read_tls(&mut &[][..])?;
                conn.process_new_packets().map_err(tls_err)?;
                continue;
            }
            self.raw.extend_from_slice(&tmp[..n]);
        }
    }
}

impl Write for TlsWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _send = lock(&self.shared.send);
        let n = lock(&self.shared.conn).writer().write(buf)?;
        let out = self.shared.drain()?;
        (&self.sock).write_all(&out)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        lock(&self.shared.conn).writer().flush()?;
        self.shared.flush_to(&self.sock)
    }
}

fn tls_handshake(
    config: Arc<rustls::ClientConfig>,
    host: &str,
    mut sock: TcpStream,
    timeout: Option<Duration>,
) -> Result<Inner, Error> {
    let name = tls::server_name(host)?;
    let mut conn = ClientConnection::new(config, name).map_err(|e| Error::TlsConfig {
        reason: e.to_string(),
    })?;
    let old_read = sock.read_timeout()?;
    let old_write = sock.write_timeout()?;
    sock.set_read_timeout(timeout)?;
    sock.set_write_timeout(timeout)?;
    let timed_out = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        )
    };
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut sock) {
            return Err(if timed_out(&e) {
                super::timeout_error(format!("TLS handshake with {host}"), timeout)
            } else {
                Error::TlsHandshake {
                    host: host.to_owned(),
                    source: e,
                }
            });
        }
    }
    let shared = Arc::new(Shared {
        conn: Mutex::new(conn),
        send: Mutex::new(()),
    });
    let mut reader = TlsReader {
        shared: shared.clone(),
        sock: sock.try_clone()?,
        raw: Vec::new(),
        eof: false,
    };
    // libvirtd's verdict on our certificate: one byte, 1 = accepted.
    let mut byte = [0u8; 1];
    let verdict = match reader.read(&mut byte) {
        Ok(1) => Some(byte[0]),
        Ok(_) => None,
        Err(e) if timed_out(&e) => {
            return Err(super::timeout_error(
                format!("waiting for {host} to accept our TLS client certificate"),
                timeout,
            ))
        }
        // The server aborting the session (e.g. a TLS alert about our certificate) is a
        // refusal too; keep the reason.
        Err(e) => {
            return Err(Error::TlsHandshake {
                host: host.to_owned(),
                source: e,
            })
        }
    };
    tls::check_verdict(verdict, host)?;
    sock.set_read_timeout(old_read)?;
    sock.set_write_timeout(old_write)?;
    Ok(Inner::Tls(reader, TlsWriter { shared, sock }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_stream_and_halves() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut t = BlockingTransport::from_stream(a);
        assert_eq!(t.kind(), None);
        t.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        b.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        b.write_all(b"pong").unwrap();
        t.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
        assert!(t.set_read_timeout(None).is_err());
        assert!(t.into_split().is_err());

        let (a, mut b) = UnixStream::pair().unwrap();
        let t = BlockingTransport::from_halves(a.try_clone().unwrap(), a);
        let (mut r, mut w) = t.into_split().unwrap();
        w.write_all(b"x").unwrap();
        b.read_exact(&mut buf[..1]).unwrap();
        b.write_all(b"y").unwrap();
        r.read_exact(&mut buf[..1]).unwrap();
        assert_eq!(buf[0], b'y');
        // Caller-supplied halves cannot be read without blocking.
        assert!(!r.can_try_read());
        let e = r.try_read_with_fds(&mut buf, &mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
    }

    /// The kernel signals room to write to everyone waiting on a unix socket each time the
    /// peer takes bytes off it. A reader waiting for input (the driver's reader, while callers'
    /// requests go out and the daemon reads them) must sleep through all of that.
    #[test]
    fn a_waiting_unix_reader_sleeps_while_the_peer_takes_our_bytes() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut r, w) = BlockingTransport::from_unix(a).into_split().unwrap();
        let reader = std::thread::spawn(move || {
            let before = super::super::thread_sleeps();
            let mut buf = [0u8; 8];
            let n = r.read_with_fds(&mut buf, &mut Vec::new()).unwrap();
            (super::super::thread_sleeps() - before, buf[..n].to_vec())
        });
        super::super::check_reader_sleeps_while_peer_reads(w, b, reader);
    }

    #[test]
    fn a_unix_read_timeout_bounds_read_with_fds() {
        let (a, _b) = UnixStream::pair().unwrap();
        let (mut r, _w) = BlockingTransport::from_unix(a).into_split().unwrap();
        r.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        let t = std::time::Instant::now();
        let e = r.read_with_fds(&mut [0u8; 8], &mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(t.elapsed() >= Duration::from_millis(30));
        // A timeout set before the split is kept too.
        let (a, _b) = UnixStream::pair().unwrap();
        let t = BlockingTransport::from_unix(a);
        t.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        let (mut r, _w) = t.into_split().unwrap();
        let e = r.read_with_fds(&mut [0u8; 8], &mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    /// A read timeout too long for a deadline (`Duration::MAX`; the socket keeps the longest
    /// it can) waits like no timeout at all, and never panics.
    #[test]
    fn a_huge_unix_read_timeout_waits_for_input() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let (mut r, _w) = BlockingTransport::from_unix(a).into_split().unwrap();
        r.set_read_timeout(Some(Duration::MAX)).unwrap();
        let peer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            b.write_all(b"late").unwrap();
            b
        });
        let mut buf = [0u8; 8];
        let n = r.read_with_fds(&mut buf, &mut Vec::new()).unwrap();
        assert_eq!(&buf[..n], b"late");
        drop(peer.join().unwrap());
    }

    #[test]
    fn try_read_on_unix_and_tcp() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let (mut r, _w) = BlockingTransport::from_unix(a).into_split().unwrap();
        assert!(r.can_try_read());
        let (mut buf, mut fds) = ([0u8; 8], Vec::new());
        let e = r.try_read_with_fds(&mut buf, &mut fds).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        // A descriptor rides on a byte, as libvirt sends them.
        let (carried, _other) = UnixStream::pair().unwrap();
        super::super::fdpass::send(
            std::os::fd::AsFd::as_fd(&b),
            &[std::os::fd::OwnedFd::from(carried)],
            &mut 0,
        )
        .unwrap();
        assert_eq!(r.try_read_with_fds(&mut buf, &mut fds).unwrap(), 1);
        assert_eq!(fds.len(), 1);
        b.write_all(b"abc").unwrap();
        assert_eq!(r.try_read_with_fds(&mut buf, &mut fds).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
        drop(b);
        assert_eq!(
            r.try_read_with_fds(&mut buf, &mut fds).unwrap(),
            0,
            "end of file"
        );

        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut s2, _) = l.accept().unwrap();
        let t = BlockingTransport {
            inner: Inner::Tcp(c),
            kind: Some(TransportKind::Tcp),
        };
        let (mut r, _w) = t.into_split().unwrap();
        assert!(r.can_try_read());
        let e = r.try_read_with_fds(&mut buf, &mut fds).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        s2.write_all(b"tcp").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let n = loop {
            match r.try_read_with_fds(&mut buf, &mut fds) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "tcp bytes never came");
                    std::thread::yield_now();
                }
                r => break r.unwrap(),
            }
        };
        assert_eq!(&buf[..n], &b"tcp"[..n]);
    }
}
