//! The async driver: three small tokio tasks (reader, writer, timer) move bytes and time
//! between an [`AsyncTransport`] and the sans-IO connection; callers await per-call slots.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use libvirt_proto::generated::remote::{self, procs};
use libvirt_proto::program::Call;
use libvirt_proto::{CallId, Connection, Reply};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::core::{self, CallResult, Inline, InlineWrite, Shared};
use crate::open::{self, Features};
use crate::options::ClientOptions;
use crate::transport::{AsyncTransport, ReadSide, WriteSide};
use crate::uri::Uri;
use crate::Error;

/// How the driver's tasks wake each other. The timer task is woken only when a deadline
/// earlier than the one it sleeps on appears (see `Shared::timer_is_late`).
#[derive(Default)]
struct Notes {
    write: Notify,
    timer: Notify,
    resume: Notify,
    shutdown: Notify,
}

struct Inner {
    shared: Arc<Shared>,
    notes: Arc<Notes>,
    tasks: Vec<JoinHandle<()>>,
    options: ClientOptions,
    features: OnceLock<Features>,
    uri: Option<Uri>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Replies still owed (a dropped subscription's deregistrations): let them arrive
        // first, on a task of the runtime, for at most LINGER.
        if self.shared.replies_outstanding() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let (shared, notes) = (self.shared.clone(), self.notes.clone());
                let tasks = std::mem::take(&mut self.tasks);
                rt.spawn(async move {
                    let end = tokio::time::Instant::now() + crate::core::LINGER;
                    while shared.replies_outstanding() && tokio::time::Instant::now() < end {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    shut_down(&shared, &notes, &tasks);
                });
                return;
            }
        }
        shut_down(&self.shared, &self.notes, &self.tasks);
    }
}

/// Close the connection and end the driver's tasks.
fn shut_down(shared: &Shared, notes: &Notes, tasks: &[JoinHandle<()>]) {
    {
        let mut st = shared.lock();
        st.conn.close();
        st.dispatch();
    }
    shared.wake_waiters();
    notes.shutdown.notify_one();
    notes.write.notify_one();
    notes.timer.notify_one();
    for t in tasks {
        t.abort();
    }
}

/// An open connection to a libvirt daemon (async, tokio).
///
/// Cheap to clone (`Clone + Send + Sync`); every clone shares one connection on which any
/// number of calls run concurrently (pipelined). Dropping a call's future abandons the call
/// (its late reply is discarded). The connection closes when the last clone (and the last
/// event subscription or stream using it) is dropped, or with [`Client::close`].
///
/// Dropped while the daemon still owes replies (typically the deregistrations a just-dropped
/// subscription sent), the connection stays open until they arrive (at most a second), on a
/// task of the runtime. A runtime that ends first (the end of `main` or of a test) cuts it at
/// once, and libvirtd 9.0 can crash when a client leaves while its event (de)registrations are
/// being processed: `close().await` before the runtime ends waits for them.
///
/// Every procedure of the remote, qemu, lxc and admin programs is a method (generated; see
/// the `*_` methods below, named after the C procedures), plus helpers such as
/// [`Client::version`], [`Client::domains`] and [`Client::events`].
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("uri", &self.inner.uri.as_ref().map(|u| u.to_string()))
            .finish()
    }
}

impl Client {
    /// Connect to `uri` (e.g. `qemu+tcp://host/system`) and open it, with default options. An
    /// empty `uri` means the default, as `virConnectOpen(NULL)`: `LIBVIRT_DEFAULT_URI`, else
    /// the client configuration's `uri_default`, else the local daemon picks
    /// ([`Uri::default_uri`]).
    pub async fn connect(uri: &str) -> Result<Client, Error> {
        Client::connect_with(uri, ClientOptions::default()).await
    }

    /// Connect to `uri` (empty: the default URI) and open it.
    pub async fn connect_with(uri: &str, options: ClientOptions) -> Result<Client, Error> {
        let uri: Uri = if uri.is_empty() {
            Uri::default_uri()?
        } else {
            uri.parse()?
        };
        let topts = options.transport.clone().read_only(options.read_only);
        let transport = AsyncTransport::connect(&uri, &topts).await?;
        let name = uri.remote_name();
        let client = Client::from_transport(transport, options, Some(uri))?;
        client.open(Some(&name)).await?;
        Ok(client)
    }

    /// Run the driver over an already connected transport without opening anything (for the
    /// admin program, or to run a custom open sequence); see [`Client::open`]. Fails only when
    /// tokio cannot hand over a unix socket (see [`AsyncTransport`]'s unix transport).
    pub fn from_transport(
        transport: AsyncTransport,
        options: ClientOptions,
        uri: Option<Uri>,
    ) -> Result<Client, Error> {
        let notes = Arc::new(Notes::default());
        let (n, t) = (notes.clone(), notes.clone());
        let fd_refusal = crate::fds::refusal(transport.can_pass_fds(), transport.kind());
        let shared = Arc::new(
            Shared::new(
                Connection::new(core::connection_config(&options, transport.kind())),
                Box::new(move || {
                    n.write.notify_one();
                    n.resume.notify_one();
                }),
                Box::new(move || t.timer.notify_one()),
                fd_refusal,
            )
            .with_decode(options.decode),
        );
        let (rd, wr) = transport.into_sides()?;
        let inline = wr.can_try_write();
        let wr = Arc::new(tokio::sync::Mutex::new(wr));
        if inline {
            let (side, notes) = (wr.clone(), notes.clone());
            let write: InlineWrite = Box::new(move |shared| write_inline(shared, &side, &notes));
            let _ = shared.inline_write.set(write);
        }
        let tasks = vec![
            tokio::spawn(reader(shared.clone(), notes.clone(), rd, options.busy_poll)),
            tokio::spawn(writer(shared.clone(), notes.clone(), wr)),
            tokio::spawn(timer(shared.clone(), notes.clone())),
        ];
        Ok(Client {
            inner: Arc::new(Inner {
                shared,
                notes,
                tasks,
                options,
                features: OnceLock::new(),
                uri,
            }),
        })
    }

    /// The open sequence, in libvirt's order: `AUTH_LIST`, authentication (none, polkit or
    /// SASL), the keepalive opt-in, `CONNECT_OPEN` with `name` and the read-only flag, then
    /// the other feature probes.
    pub async fn open(&self, name: Option<&str>) -> Result<Features, Error> {
        let auth = self.call::<procs::AuthList>(&()).await?;
        let step = open::auth_step(
            &auth.types,
            self.inner.uri.as_ref(),
            self.inner.options.credentials.as_ref(),
        )?;
        match step {
            open::AuthStep::Polkit => {
                let r = self.call::<procs::AuthPolkit>(&()).await?;
                open::check_polkit(r.complete)?;
            }
            open::AuthStep::Sasl(creds) => crate::sasl::authenticate(self, &creds).await?,
            open::AuthStep::None => {}
        }
        let probe = |feature| async move {
            self.call::<procs::ConnectSupportsFeature>(&remote::RemoteConnectSupportsFeatureArgs {
                feature,
            })
            .await
            .map(|r| r.supported != 0)
        };
        // libvirt's doRemoteOpen: the keepalive probe comes before CONNECT_OPEN (so keepalive
        // watches the open too), the other probes after it.
        let keepalive = probe(open::FEATURE_PROGRAM_KEEPALIVE).await?;
        self.inner
            .shared
            .opt_in_keepalive(keepalive, self.inner.options.keepalive);
        self.call::<procs::ConnectOpen>(&open::connect_open_args(
            name,
            self.inner.options.read_only,
        ))
        .await?;
        let features = Features {
            keepalive,
            event_callbacks: probe(open::FEATURE_REMOTE_EVENT_CALLBACK).await?,
            close_callback: probe(open::FEATURE_REMOTE_CLOSE_CALLBACK).await?,
            fd_passing: probe(open::FEATURE_FD_PASSING).await?,
        };
        let _ = self.inner.features.set(features);
        Ok(features)
    }

    /// What the daemon supports (after the open sequence).
    pub fn features(&self) -> Features {
        self.inner.features.get().copied().unwrap_or_default()
    }

    /// The URI this client connected to, if it was made from one.
    pub fn uri(&self) -> Option<&Uri> {
        self.inner.uri.as_ref()
    }

    /// The options in force.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// Call procedure `C` with its default timeout ([`ClientOptions::timeout_for`]).
    pub async fn call<C: Call>(&self, args: &C::Args) -> Result<C::Ret, Error> {
        self.call_with_timeout::<C>(args, self.inner.options.timeout_for(C::INFO))
            .await
    }

    /// Call procedure `C` with its own timeout (`None`: none).
    pub async fn call_with_timeout<C: Call>(
        &self,
        args: &C::Args,
        timeout: Option<Duration>,
    ) -> Result<C::Ret, Error> {
        let id = self.inner.shared.start::<C>(args, timeout, false)?;
        let reply = CallFuture::new(self.inner.shared.clone(), id).await?;
        self.inner.shared.decode_ret::<C>(&reply)
    }

    /// Start a stream-opening call of procedure `C` and wait for its reply; returns the reply
    /// and the stream.
    pub async fn call_stream<C: Call>(
        &self,
        args: &C::Args,
    ) -> Result<(C::Ret, crate::stream::AsyncVirStream), Error> {
        let id =
            self.inner
                .shared
                .start::<C>(args, self.inner.options.timeout_for(C::INFO), true)?;
        let stream = crate::stream::AsyncVirStream::new(self.clone(), id);
        let reply = CallFuture::new(self.inner.shared.clone(), id).await?;
        Ok((self.inner.shared.decode_ret::<C>(&reply)?, stream))
    }

    /// Call procedure `C` passing file descriptors (`CALL_WITH_FDS`; unix transport only,
    /// else [`Error::FdPassingUnavailable`] before anything is sent); returns the decoded reply
    /// and the descriptors the daemon passed back (`REPLY_WITH_FDS`). The descriptors given
    /// are closed once sent. See [`crate::fds`] for typed methods.
    pub async fn call_with_fds<C: Call>(
        &self,
        args: &C::Args,
        fds: Vec<std::os::fd::OwnedFd>,
    ) -> Result<(C::Ret, Vec<std::os::fd::OwnedFd>), Error> {
        let id = self.inner.shared.start_with_fds::<C>(
            args,
            self.inner.options.timeout_for(C::INFO),
            false,
            fds,
        )?;
        let reply = CallFuture::new(self.inner.shared.clone(), id).await?;
        let ret = self.inner.shared.decode_ret::<C>(&reply)?;
        Ok((ret, reply.fds))
    }

    /// Call a procedure by number with raw XDR arguments; returns the raw reply.
    pub async fn call_raw(
        &self,
        target: libvirt_proto::ProcedureId,
        args: &[u8],
        fds: Vec<std::os::fd::OwnedFd>,
    ) -> Result<Reply, Error> {
        let id = self.inner.shared.start_raw(
            target,
            self.inner.options.call_timeout,
            false,
            fds,
            |out| {
                out.extend_from_slice(args);
                Ok(())
            },
        )?;
        Ok(CallFuture::new(self.inner.shared.clone(), id).await?)
    }

    /// Close politely (`CONNECT_CLOSE`), then locally: pending calls fail, streams and
    /// subscriptions end.
    pub async fn close(&self) -> Result<(), Error> {
        // Let replies still owed arrive first (see `Drop`), for at most LINGER.
        let end = tokio::time::Instant::now() + crate::core::LINGER;
        while self.inner.shared.replies_outstanding() && tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let r = self
            .call_with_timeout::<procs::ConnectClose>(&(), Some(Duration::from_secs(5)))
            .await;
        {
            let mut st = self.inner.shared.lock();
            st.conn.close();
            st.dispatch();
        }
        self.inner.shared.wake_waiters();
        self.inner.shared.wake_writer();
        self.inner.notes.shutdown.notify_one();
        r
    }

    /// Whether the connection is closed, and why.
    pub fn close_reason(&self) -> Option<libvirt_proto::CloseReason> {
        self.inner.shared.lock().conn.close_reason().cloned()
    }

    /// Whether the connection is still usable.
    pub fn is_open(&self) -> bool {
        !self.inner.shared.lock().conn.is_closed()
    }

    /// Connection counters (packets, pings, discarded late replies...).
    pub fn stats(&self) -> libvirt_proto::Stats {
        self.inner.shared.lock().conn.stats()
    }

    /// Calls waiting for a reply.
    pub fn pending_calls(&self) -> usize {
        self.inner.shared.lock().conn.pending_calls()
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }
}

/// Waits for one call's result; abandons the call when dropped early.
struct CallFuture {
    shared: Arc<Shared>,
    id: CallId,
    done: bool,
}

impl CallFuture {
    fn new(shared: Arc<Shared>, id: CallId) -> Self {
        Self {
            shared,
            id,
            done: false,
        }
    }
}

impl Future for CallFuture {
    type Output = CallResult;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CallResult> {
        let id = self.id;
        let mut st = self.shared.lock();
        let out = match st.calls.get_mut(&id.0) {
            Some(slot) => match slot.result.take() {
                Some(r) => {
                    st.calls.remove(&id.0);
                    Poll::Ready(r)
                }
                None => {
                    slot.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            },
            None => Poll::Ready(Err(libvirt_proto::Error::Closed(
                st.conn
                    .close_reason()
                    .cloned()
                    .unwrap_or(libvirt_proto::CloseReason::Local),
            ))),
        };
        drop(st);
        if out.is_ready() {
            self.done = true;
        }
        out
    }
}

impl Drop for CallFuture {
    fn drop(&mut self) {
        if !self.done {
            self.shared.abandon(self.id);
        }
    }
}

async fn reader(
    shared: Arc<Shared>,
    notes: Arc<Notes>,
    mut rd: ReadSide,
    busy_poll: Option<Duration>,
) {
    let mut buf = vec![0u8; 256 << 10];
    let mut fds = Vec::new();
    let busy_poll = busy_poll.filter(|_| rd.can_try_read());
    loop {
        loop {
            let (paused, closed) = {
                let st = shared.lock();
                (st.conn.is_read_paused(), st.conn.is_closed())
            };
            if closed {
                return;
            }
            if !paused {
                break;
            }
            tokio::select! {
                _ = notes.resume.notified() => {}
                _ = notes.shutdown.notified() => return,
            }
        }
        let polled = match busy_poll {
            Some(limit) => busy_read(&shared, &mut rd, &mut buf, &mut fds, limit).await,
            None => None,
        };
        let r = match polled {
            Some(r) => r,
            None => tokio::select! {
                r = rd.read_with_fds(&mut buf, &mut fds) => r,
                _ = notes.shutdown.notified() => return,
            },
        };
        let (closed, to_write) = {
            let mut st = shared.lock();
            // Descriptors first: they belong to the packet these bytes complete.
            st.conn.handle_fds(fds.drain(..));
            match r {
                Ok(0) => st.conn.handle_eof(),
                Ok(n) => {
                    // A fatal input error closes the connection; dispatch reports it.
                    st.handle_input(&buf[..n]);
                }
                Err(e) => st.conn.handle_io_error(e),
            }
            st.dispatch();
            // Replies only remove deadlines (and input only postpones keepalive's), so the
            // timer needs no wake unless the connection ended.
            (st.conn.is_closed(), st.conn.transmit_buffered() > 0)
        };
        shared.wake_waiters();
        if to_write || closed {
            notes.write.notify_one();
        }
        if closed {
            notes.timer.notify_one();
            return;
        }
    }
}

/// [`ClientOptions::busy_poll`]: while callers wait for replies, read without waiting for up to
/// `limit`, yielding to the runtime between tries (other tasks run; tokio polls its I/O
/// driver). `None` when nothing came (or the side cannot be read without waiting): the caller
/// then awaits readiness as usual. A close meanwhile is seen by that await: its notification
/// is kept until then.
async fn busy_read(
    shared: &Shared,
    rd: &mut ReadSide,
    buf: &mut [u8],
    fds: &mut Vec<std::os::fd::OwnedFd>,
    limit: Duration,
) -> Option<std::io::Result<usize>> {
    let mut round = core::BusyPoll::start(shared, limit)?;
    loop {
        if let std::ops::ControlFlow::Break(r) = round.step(rd.try_read_with_fds(buf, fds)) {
            return r;
        }
        tokio::task::yield_now().await;
    }
}

/// The writer task. It and callers (see [`write_inline`]) share the write half behind one
/// lock, held from taking output off the connection until it is written: bytes go out in the
/// order the connection produced them.
async fn writer(shared: Arc<Shared>, notes: Arc<Notes>, side: Arc<tokio::sync::Mutex<WriteSide>>) {
    loop {
        let idle = {
            let st = shared.lock();
            st.conn.transmit_buffered() == 0 && !st.conn.is_closed()
        };
        if idle {
            notes.write.notified().await;
            continue;
        }
        // A caller writing inline holds this only for non-blocking writes.
        let mut wr = side.lock().await;
        let (batch, closed) = {
            let mut st = shared.lock();
            (st.take_output(), st.conn.is_closed())
        };
        if batch.is_empty() {
            if closed {
                let _ = wr.shutdown().await;
                return;
            }
            continue; // a caller wrote it inline
        }
        for t in batch {
            let mut r = wr.write_all(&t.data).await;
            if r.is_ok() && !t.fds.is_empty() {
                // libvirt's order: the packet, then one carrier byte per descriptor. The
                // descriptors (our duplicates) close when `t` drops.
                r = wr.send_fds(&t.fds).await;
            }
            if let Err(e) = r {
                shared.fail_io(e);
                // The reader and the timer end too.
                notes.shutdown.notify_one();
                notes.timer.notify_one();
                return;
            }
        }
        let _ = wr.flush().await;
        drop(wr);
        // Stream writers wait for the send queue to drain.
        shared.wake_waiters();
        wake_stream_writers(&shared);
    }
}

/// [`crate::core::write_inline`] for the async driver (on the caller's task): false when
/// output is left for the writer task (the socket was full, output carries descriptors, or
/// the writer task was writing).
fn write_inline(shared: &Shared, side: &tokio::sync::Mutex<WriteSide>, notes: &Notes) -> bool {
    let Ok(wr) = side.try_lock() else {
        return false;
    };
    let r = core::write_inline(shared, |b| wr.try_write(b));
    drop(wr);
    match r {
        // Stream writers waiting for the queue to drain were woken by `core::write_inline`.
        Inline::Done => true,
        Inline::Left => false,
        Inline::Failed => {
            // The reader, the writer (which shuts the socket down) and the timer all end.
            notes.shutdown.notify_one();
            notes.write.notify_one();
            notes.timer.notify_one();
            true
        }
    }
}

fn wake_stream_writers(shared: &Shared) {
    let wakers = shared.lock().take_stream_write_wakers();
    for w in wakers {
        w.wake();
    }
}

async fn timer(shared: Arc<Shared>, notes: Arc<Notes>) {
    loop {
        let (deadline, closed) = {
            let st = shared.lock();
            (shared.arm_timer(&st.conn), st.conn.is_closed())
        };
        if closed {
            return;
        }
        match deadline {
            Some(d) => {
                let d = tokio::time::Instant::from_std(d);
                tokio::select! {
                    _ = notes.timer.notified() => continue,
                    _ = tokio::time::sleep_until(d) => {}
                }
            }
            None => {
                notes.timer.notified().await;
                continue;
            }
        }
        let closed = {
            let mut st = shared.lock();
            st.conn.handle_timeout(Instant::now());
            st.dispatch();
            st.conn.is_closed()
        };
        shared.wake_waiters();
        notes.write.notify_one();
        if closed {
            notes.shutdown.notify_one();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A stream writer waits while more than the high-water mark is queued for the socket
    /// and must be woken once that output was taken off the queue. Here a caller's inline
    /// write takes it all and the socket takes all but a little (a daemon reading as fast as
    /// we write), so the rest is given back for the writer task; before the writer task
    /// runs, another caller's inline write takes that rest with its own small call. The
    /// writer task then finds nothing to write: nobody but these inline writes can wake the
    /// stream writer. (current_thread runtime: the driver's tasks run only when the test
    /// awaits, which fixes that interleaving.)
    #[tokio::test]
    async fn inline_writes_wake_a_stream_writer_waiting_for_the_send_queue_to_drain() {
        use tokio::io::AsyncWrite;
        let (ours, peer) = tokio::net::UnixStream::pair().unwrap();
        // The daemon: reads and discards everything, until the client goes.
        let peer = peer.into_std().unwrap();
        peer.set_nonblocking(false).unwrap();
        let end = peer.try_clone().unwrap();
        let drain = std::thread::spawn(move || {
            use std::io::Read;
            let mut peer = peer;
            let mut buf = vec![0u8; 1 << 20];
            while matches!(peer.read(&mut buf), Ok(n) if n > 0) {}
        });
        let client = Client::from_transport(
            AsyncTransport::from_unix(ours),
            ClientOptions::default().keepalive(None),
            None,
        )
        .unwrap();
        let shared = client.shared().clone();
        let id = shared
            .start::<procs::ConnectGetVersion>(&(), None, true)
            .unwrap();
        // Let the driver's tasks and the reactor run once (the socket is then known
        // writable, so inline writes can write).
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut stream = crate::stream::AsyncVirStream::new(client.clone(), id);
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let big = vec![7u8; 2 << 20];
        // Queue more than the high-water mark; the next write waits.
        let mut queued = 0;
        while let Poll::Ready(n) = Pin::new(&mut stream).poll_write(&mut cx, &big) {
            queued += n.unwrap();
        }
        assert!(queued >= 1 << 20);
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
        // Callers' inline writes (each at most core::INLINE_MAX): the socket takes all but
        // the last 1000 bytes.
        let total = shared.lock().conn.transmit_buffered();
        let mut budget = total - 1000;
        while shared.lock().conn.transmit_buffered() > 1000 {
            let r = core::write_inline(&shared, |b| {
                if budget == 0 {
                    return Err(std::io::ErrorKind::WouldBlock.into());
                }
                let n = b.len().min(budget);
                budget -= n;
                Ok(n)
            });
            assert!(matches!(r, Inline::Left));
        }
        assert_eq!(shared.lock().conn.transmit_buffered(), 1000);
        shared.wake_writer(); // as `Shared::output_queued` does when output is left
                              // Another caller's call: its inline write takes the rest with it, on the socket.
        shared
            .start::<procs::ConnectGetVersion>(&(), None, false)
            .unwrap();
        assert_eq!(shared.lock().conn.transmit_buffered(), 0);
        // The driver's tasks run; the queue stays empty.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            counter.0.load(Ordering::SeqCst) > 0,
            "the stream writer was never woken although the send queue drained"
        );
        assert!(Pin::new(&mut stream).poll_write(&mut cx, &big).is_ready());
        drop(stream);
        drop(client);
        end.shutdown(std::net::Shutdown::Both).unwrap();
        drain.join().unwrap();
    }
}
