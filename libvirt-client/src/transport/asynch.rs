//! The async (tokio) transport.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use super::child::ChildProcess;
use super::{tcp, tls, unix, ConnectOptions, Endpoint};
use crate::uri::{TransportKind, Uri};
use crate::Error;

/// Any tokio byte stream [`AsyncTransport::from_stream`] accepts.
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AsyncStream for T {}

/// A connected async transport: tokio `AsyncRead + AsyncWrite` over unix, tcp, tls, a child
/// process (ssh, ext) or any stream given to [`AsyncTransport::from_stream`].
///
/// Split it with `tokio::io::split` for separate reader and writer tasks.
pub struct AsyncTransport {
    inner: Inner,
    kind: Option<TransportKind>,
}

enum Inner {
    Unix(UnixStream),
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Child(UnixStream, Arc<ChildProcess>),
    Stream(Box<dyn AsyncStream>),
}

impl fmt::Debug for AsyncTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = match &self.inner {
            Inner::Unix(_) => "unix",
            Inner::Tcp(_) => "tcp",
            Inner::Tls(_) => "tls",
            Inner::Child(..) => "child process",
            Inner::Stream(_) => "stream",
        };
        f.debug_struct("AsyncTransport")
            .field("inner", &inner)
            .field("kind", &self.kind)
            .finish()
    }
}

async fn with_timeout<T>(
    timeout: Option<Duration>,
    what: impl FnOnce() -> String,
    fut: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match timeout {
        Some(t) => tokio::time::timeout(t, fut)
            .await
            .unwrap_or_else(|_| Err(super::timeout_error(what(), timeout))),
        None => fut.await,
    }
}

impl AsyncTransport {
    /// Connect to the daemon `uri` addresses (see [`Endpoint::from_uri`]).
    pub async fn connect(uri: &Uri, opts: &ConnectOptions) -> Result<AsyncTransport, Error> {
        AsyncTransport::connect_endpoint(&Endpoint::from_uri(uri, opts)?, opts).await
    }

    /// Connect to an endpoint.
    pub async fn connect_endpoint(
        endpoint: &Endpoint,
        opts: &ConnectOptions,
    ) -> Result<AsyncTransport, Error> {
        let inner = match endpoint {
            Endpoint::Unix { path } => Inner::Unix(unix::connect_async(path).await?),
            Endpoint::Tcp { host, port } => {
                Inner::Tcp(tcp::connect_async(host, *port, opts.connect_timeout).await?)
            }
            Endpoint::Tls {
                host,
                port,
                settings,
            } => {
                let config = tls::client_config(settings)?;
                let sock = tcp::connect_async(host, *port, opts.connect_timeout).await?;
                return AsyncTransport::tls_over(sock, host, config, opts.connect_timeout).await;
            }
            Endpoint::Command { spec, .. } => {
                let (sock, child) = ChildProcess::spawn(spec)?;
                sock.set_nonblocking(true)?;
                Inner::Child(UnixStream::from_std(sock)?, child)
            }
        };
        Ok(AsyncTransport {
            inner,
            kind: Some(endpoint.kind()),
        })
    }

    /// Run the client side of TLS (with libvirt's certificate verdict byte) over an already
    /// connected TCP stream; `timeout` bounds the handshake and the verdict.
    pub async fn tls_over(
        sock: TcpStream,
        host: &str,
        config: Arc<rustls::ClientConfig>,
        timeout: Option<Duration>,
    ) -> Result<AsyncTransport, Error> {
        let name = tls::server_name(host)?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let mut stream = with_timeout(timeout, || format!("TLS handshake with {host}"), async {
            connector
                .connect(name, sock)
                .await
                .map_err(|source| Error::TlsHandshake {
                    host: host.to_owned(),
                    source,
                })
        })
        .await?;
        let verdict = with_timeout(
            timeout,
            || format!("waiting for {host} to accept our TLS client certificate"),
            async {
                match stream.read_u8().await {
                    Ok(b) => Ok(Some(b)),
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
                    Err(source) => Err(Error::TlsHandshake {
                        host: host.to_owned(),
                        source,
                    }),
                }
            },
        )
        .await?;
        tls::check_verdict(verdict, host)?;
        Ok(AsyncTransport {
            inner: Inner::Tls(Box::new(stream)),
            kind: Some(TransportKind::Tls),
        })
    }

    /// Wrap an already connected unix socket: a unix transport, able to pass file descriptors.
    pub fn from_unix(sock: UnixStream) -> AsyncTransport {
        AsyncTransport {
            inner: Inner::Unix(sock),
            kind: Some(TransportKind::Unix),
        }
    }

    /// Wrap any tokio byte stream (a proxy, an in-memory duplex, another TLS stack...).
    pub fn from_stream<S: AsyncStream + 'static>(stream: S) -> AsyncTransport {
        AsyncTransport {
            inner: Inner::Stream(Box::new(stream)),
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

    /// Split into the driver's reading and writing sides. A unix socket (also the one to an
    /// ssh or ext child process) leaves tokio's `UnixStream` for [`UnixReader`] and
    /// [`UnixWriter`] (see there why); tcp is split into tokio's owned halves, so that both can
    /// reach the socket; anything else goes through `tokio::io::split`. Fails only if tokio
    /// cannot let go of the unix socket.
    pub(crate) fn into_sides(self) -> io::Result<(ReadSide, WriteSide)> {
        Ok(match self.inner {
            Inner::Unix(s) => {
                let (r, w) = unix_halves(s, None)?;
                (ReadSide::Unix(r), WriteSide::Unix(w))
            }
            Inner::Child(s, child) => {
                let (r, w) = unix_halves(s, Some(child))?;
                (ReadSide::Unix(r), WriteSide::Unix(w))
            }
            Inner::Tcp(s) => {
                let (r, w) = s.into_split();
                (ReadSide::Tcp(r), WriteSide::Tcp(w))
            }
            _ => {
                let (r, w) = tokio::io::split(self);
                (ReadSide::Split(r), WriteSide::Split(w))
            }
        })
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
}

impl AsyncRead for AsyncTransport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Inner::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Inner::Stream(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Inner::Child(s, child) => {
                let before = buf.filled().len();
                let wanted = buf.remaining() > 0;
                match Pin::new(s).poll_read(cx, buf) {
                    Poll::Ready(r) => {
                        let r = r.map(|()| buf.filled().len() - before);
                        Poll::Ready(child.read_outcome(r, wanted).map(|_| ()))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncWrite for AsyncTransport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Inner::Child(s, c) => match Pin::new(s).poll_write(cx, buf) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(c.explain(e))),
                other => other,
            },
            Inner::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Inner::Stream(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Unix(s) | Inner::Child(s, _) => Pin::new(s).poll_write_vectored(cx, bufs),
            Inner::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Inner::Stream(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Inner::Unix(s) | Inner::Child(s, _) => s.is_write_vectored(),
            Inner::Tcp(s) => s.is_write_vectored(),
            Inner::Tls(s) => s.is_write_vectored(),
            Inner::Stream(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Unix(s) | Inner::Child(s, _) => Pin::new(s).poll_flush(cx),
            Inner::Tcp(s) => Pin::new(s).poll_flush(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Inner::Stream(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Unix(s) | Inner::Child(s, _) => Pin::new(s).poll_shutdown(cx),
            Inner::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Inner::Stream(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The async driver's reading side (see [`AsyncTransport::into_sides`]).
pub(crate) enum ReadSide {
    Unix(UnixReader),
    Tcp(tokio::net::tcp::OwnedReadHalf),
    Split(tokio::io::ReadHalf<AsyncTransport>),
}

/// The async driver's writing side.
pub(crate) enum WriteSide {
    Unix(UnixWriter),
    Tcp(tokio::net::tcp::OwnedWriteHalf),
    Split(tokio::io::WriteHalf<AsyncTransport>),
}

/// A unix socket's reading side, registered with tokio for readability only.
///
/// Each time the daemon takes bytes off a unix socket, the kernel tells everyone waiting on it
/// that it is writable again (`unix_write_space`), whether or not it was ever full. tokio's
/// `UnixStream` registers for both directions, so every call the daemon read woke the reader
/// from `epoll_wait` for nothing: one extra sleep and wake-up per call, and in a VM often an
/// IPI to a halted CPU. A registration for readability alone is not woken by that (epoll
/// filters wake-ups by the events asked for), as libvirt's own client, which polls for input
/// only while it waits for replies, is not.
pub(crate) struct UnixReader {
    fd: AsyncFd<Arc<std::os::unix::net::UnixStream>>,
    /// ssh and ext: the process at the other end, whose stderr explains an end or a failure.
    child: Option<Arc<ChildProcess>>,
}

/// A unix socket's writing side: sends go straight to the non-blocking socket. Only when it is
/// full does [`UnixWriter::writable`] register (a duplicate of) the descriptor for writability,
/// until there is room again; see [`UnixReader`] for why no registration listens for it all
/// the time. Dropping it shuts the writing direction down, as tokio's write halves do.
pub(crate) struct UnixWriter {
    sock: Arc<std::os::unix::net::UnixStream>,
    /// As in [`UnixReader`]; also keeps the process alive while the writer lives.
    child: Option<Arc<ChildProcess>>,
}

/// Take a unix socket away from tokio's `UnixStream` and make the driver's two halves of it.
fn unix_halves(
    s: UnixStream,
    child: Option<Arc<ChildProcess>>,
) -> io::Result<(UnixReader, UnixWriter)> {
    // Non-blocking, as tokio left it.
    let sock = Arc::new(s.into_std()?);
    let fd = register(sock.clone(), tokio::io::Interest::READABLE)?;
    let reader = UnixReader {
        fd,
        child: child.clone(),
    };
    Ok((reader, UnixWriter { sock, child }))
}

impl UnixReader {
    /// A read's outcome, with a child process's account of an end of file or a failure
    /// ([`ChildProcess::read_outcome`]).
    fn outcome(&self, r: io::Result<usize>, wanted: bool) -> io::Result<usize> {
        match &self.child {
            Some(c) => c.read_outcome(r, wanted),
            None => r,
        }
    }
}

/// Register a unix socket with tokio's reactor for `interest` alone. tokio offers no safe
/// way to choose the interest of a socket's registration (`UnixStream` always takes both).
#[allow(unsafe_code)]
fn register(
    sock: Arc<std::os::unix::net::UnixStream>,
    interest: tokio::io::Interest,
) -> io::Result<AsyncFd<Arc<std::os::unix::net::UnixStream>>> {
    // SAFETY: tokio requires the descriptor to stay open, naming the same socket, for as long
    // as the `AsyncFd` lives. The `AsyncFd` holds an owner of it (an `Arc` of the
    // `UnixStream`, which closes its descriptor only when the last `Arc` is dropped), and
    // `as_raw_fd` of a `UnixStream` always returns that one descriptor.
    Ok(unsafe { AsyncFd::register_with_interest(sock, interest) }?)
}

impl UnixWriter {
    /// Send what the socket takes now (`WouldBlock` when nothing fits). `MSG_NOSIGNAL`: a
    /// daemon gone is an `EPIPE` error, never a `SIGPIPE` for the program.
    fn send(&self, data: &[u8]) -> io::Result<usize> {
        use std::os::fd::AsFd;
        loop {
            match rustix::net::send(self.sock.as_fd(), data, rustix::net::SendFlags::NOSIGNAL) {
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(self.explain(e.into())),
                Ok(n) => return Ok(n),
            }
        }
    }

    /// A child process's account of a failed write (see [`ChildProcess::explain`]).
    fn explain(&self, e: io::Error) -> io::Error {
        match &self.child {
            Some(c) => c.explain(e),
            None => e,
        }
    }

    /// Wait until the socket has room, through a registration made for this wait alone. epoll
    /// checks readiness when a descriptor is added, so room made before then is not missed.
    async fn writable(&self) -> io::Result<()> {
        let dup = Arc::new(self.sock.try_clone()?);
        let fd = register(dup, tokio::io::Interest::WRITABLE)?;
        let _ready = fd.writable().await?;
        Ok(())
    }
}

impl Drop for UnixWriter {
    fn drop(&mut self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
    }
}

impl ReadSide {
    /// Whether [`try_read_with_fds`](Self::try_read_with_fds) can read on this side (unix,
    /// also to a child process, and tcp).
    pub(crate) fn can_try_read(&self) -> bool {
        matches!(self, ReadSide::Unix(_) | ReadSide::Tcp(_))
    }

    /// Read what has arrived without waiting (`WouldBlock` otherwise), as
    /// [`read_with_fds`](Self::read_with_fds) does; `Unsupported` on split streams. It asks the
    /// socket itself, not tokio's readiness: on a multi-thread runtime only the worker holding
    /// the I/O driver updates that, and it may be asleep in `epoll_wait`.
    pub(crate) fn try_read_with_fds(
        &mut self,
        buf: &mut [u8],
        fds: &mut Vec<std::os::fd::OwnedFd>,
    ) -> io::Result<usize> {
        use std::os::fd::AsFd;
        match self {
            ReadSide::Unix(r) => {
                let got = super::fdpass::recv_now(r.fd.get_ref().as_fd(), true, buf, fds);
                r.outcome(got, !buf.is_empty())
            }
            ReadSide::Tcp(r) => {
                let s: &tokio::net::TcpStream = r.as_ref();
                super::fdpass::recv_now(s.as_fd(), false, buf, fds)
            }
            ReadSide::Split(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "non-blocking reads need a plain unix or tcp socket",
            )),
        }
    }

    /// Read bytes, appending the descriptors that came with them (unix only) to `fds`.
    /// Cancel-safe: nothing is consumed unless the future completes.
    pub(crate) async fn read_with_fds(
        &mut self,
        buf: &mut [u8],
        fds: &mut Vec<std::os::fd::OwnedFd>,
    ) -> io::Result<usize> {
        use std::os::fd::AsFd;
        match self {
            ReadSide::Unix(r) => loop {
                let wanted = !buf.is_empty();
                let mut ready = r.fd.readable().await?;
                if let Ok(got) =
                    ready.try_io(|s| super::fdpass::recv(s.get_ref().as_fd(), buf, fds))
                {
                    return r.outcome(got, wanted);
                }
            },
            ReadSide::Tcp(r) => r.read(buf).await,
            ReadSide::Split(r) => r.read(buf).await,
        }
    }
}

impl WriteSide {
    /// Whether [`try_write`](Self::try_write) can write on this side (unix, also to a child
    /// process, and tcp).
    pub(crate) fn can_try_write(&self) -> bool {
        matches!(self, WriteSide::Unix(_) | WriteSide::Tcp(_))
    }

    /// Write what the socket takes now without waiting (`WouldBlock` when nothing fits);
    /// `Unsupported` where [`can_try_write`](Self::can_try_write) is false.
    pub(crate) fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        match self {
            WriteSide::Unix(w) => w.send(data),
            WriteSide::Tcp(w) => w.try_write(data),
            WriteSide::Split(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "non-blocking writes need a plain unix or tcp socket",
            )),
        }
    }

    /// Write all of `data`.
    pub(crate) async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        match self {
            WriteSide::Unix(w) => {
                let mut rest = data;
                while !rest.is_empty() {
                    match w.send(rest) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) => rest = &rest[n..],
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => w.writable().await?,
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
            WriteSide::Tcp(w) => w.write_all(data).await,
            WriteSide::Split(w) => w.write_all(data).await,
        }
    }

    /// Send descriptors after the packet announcing them (unix only; `Unsupported` elsewhere,
    /// never a silent drop).
    pub(crate) async fn send_fds(&mut self, fds: &[std::os::fd::OwnedFd]) -> io::Result<()> {
        use std::os::fd::AsFd;
        match self {
            WriteSide::Unix(w) if w.child.is_none() => {
                let mut sent = 0;
                loop {
                    match super::fdpass::send(w.sock.as_fd(), fds, &mut sent) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => w.writable().await?,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        r => return r,
                    }
                }
            }
            WriteSide::Unix(_) | WriteSide::Tcp(_) | WriteSide::Split(_) if fds.is_empty() => {
                Ok(())
            }
            WriteSide::Unix(_) | WriteSide::Tcp(_) | WriteSide::Split(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "file descriptors can only be passed over the unix transport",
            )),
        }
    }

    /// Flush buffered output.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        match self {
            WriteSide::Unix(_) => Ok(()),
            WriteSide::Tcp(w) => w.flush().await,
            WriteSide::Split(w) => w.flush().await,
        }
    }

    /// Shut down the writing direction.
    pub(crate) async fn shutdown(&mut self) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        match self {
            WriteSide::Unix(w) => w.sock.shutdown(std::net::Shutdown::Write),
            WriteSide::Tcp(w) => w.shutdown().await,
            WriteSide::Split(w) => w.shutdown().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// See the blocking transport's test of the same name: the driver's reader, waiting in
    /// `epoll_wait` on a current-thread runtime, must sleep through the peer taking the bytes
    /// we send (tokio's `UnixStream`, registered for writability too, woke it each time).
    #[test]
    fn a_waiting_unix_reader_sleeps_while_the_peer_takes_our_bytes() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let ours = a.try_clone().unwrap();
        let reader = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .unwrap();
            rt.block_on(async move {
                a.set_nonblocking(true).unwrap();
                let t = AsyncTransport::from_unix(UnixStream::from_std(a).unwrap());
                let (mut rd, _wr) = t.into_sides().unwrap();
                let before = super::super::thread_sleeps();
                let mut buf = [0u8; 8];
                let n = rd.read_with_fds(&mut buf, &mut Vec::new()).await.unwrap();
                (super::super::thread_sleeps() - before, buf[..n].to_vec())
            })
        });
        super::super::check_reader_sleeps_while_peer_reads(ours, b, reader);
    }

    /// The unix writing side waits for room when the socket is full, and ends with a shutdown
    /// of the writing direction when dropped.
    #[tokio::test]
    async fn unix_writer_waits_for_room_and_shuts_down_on_drop() {
        let (a, b) = UnixStream::pair().unwrap();
        let (_rd, mut wr) = AsyncTransport::from_unix(a).into_sides().unwrap();
        let data: Vec<u8> = (0..4u32 << 20).map(|i| i as u8).collect();
        let expect = data.clone();
        let drain = tokio::spawn(async move {
            let mut b = b;
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            got
        });
        wr.write_all(&data).await.unwrap();
        drop(wr);
        assert!(drain.await.unwrap() == expect);
    }

    #[tokio::test]
    async fn from_stream_duplex() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut t = AsyncTransport::from_stream(a);
        assert_eq!(t.kind(), None);
        t.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        b.write_all(b"pong").await.unwrap();
        let (mut r, _w) = tokio::io::split(t);
        r.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
    }

    #[tokio::test]
    async fn child_stream_reports_stderr() {
        let spec = super::super::CommandSpec {
            program: "sh".into(),
            args: vec!["-c".into(), "read x; echo \"got $x\"; echo oops >&2".into()],
        };
        let mut t = AsyncTransport::connect_endpoint(
            &Endpoint::Command {
                kind: TransportKind::Ext,
                spec,
            },
            &ConnectOptions::default(),
        )
        .await
        .unwrap();
        assert!(t.child_id().is_some());
        t.write_all(b"hi\n").await.unwrap();
        let mut out = Vec::new();
        let err = t.read_to_end(&mut out).await.unwrap_err();
        assert_eq!(out, b"got hi\n");
        assert!(err.to_string().contains("oops"), "{err}");
    }

    /// The driver's sides over a child process's socket: what the child writes comes through,
    /// and its end is an error carrying its stderr, as through the transport itself.
    #[tokio::test]
    async fn child_sides_report_stderr() {
        let spec = super::super::CommandSpec {
            program: "sh".into(),
            args: vec!["-c".into(), "read x; echo \"got $x\"; echo oops >&2".into()],
        };
        let endpoint = Endpoint::Command {
            kind: TransportKind::Ext,
            spec,
        };
        let t = AsyncTransport::connect_endpoint(&endpoint, &ConnectOptions::default())
            .await
            .unwrap();
        let (mut rd, mut wr) = t.into_sides().unwrap();
        assert!(rd.can_try_read() && wr.can_try_write());
        wr.write_all(b"hi\n").await.unwrap();
        let fds = [std::fs::File::open("/dev/null").unwrap().into()];
        let e = wr.send_fds(&fds).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        let (mut out, mut buf) = (Vec::new(), [0u8; 64]);
        let err = loop {
            match rd.read_with_fds(&mut buf, &mut Vec::new()).await {
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => break e,
            }
        };
        assert_eq!(out, b"got hi\n");
        assert!(err.to_string().contains("oops"), "{err}");
    }
}
