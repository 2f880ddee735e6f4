//! The blocking driver (std only): a reader thread feeds the connection; a caller writes its
//! own call when no one else is writing and the socket takes it without blocking (plain unix
//! and tcp), and a writer thread writes everything else; a timer thread that never touches
//! the socket's data runs its timers (keepalive, per-call deadlines), so they fire even while
//! the writer is stuck on a peer that stopped reading; each caller parks until its own call's
//! result arrives.
//!
//! When the connection closes (timer, read or write error, local close) the socket is shut
//! down from the timer thread, which unblocks a reader and a writer stuck in the kernel.
//! Dropping the last client does the same and never waits more than a bounded time for the
//! threads (a caller-supplied transport that cannot be shut down may leave its thread behind).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use libvirt_proto::generated::remote::{self, procs};
use libvirt_proto::program::Call;
use libvirt_proto::{Connection, Reply};

use crate::core::{self, Inline, InlineWrite, Shared};
use crate::open::{self, Features};
use crate::options::ClientOptions;
use crate::transport::{BlockingReader, BlockingTransport, BlockingWriter, ShutdownHandle};
use crate::uri::Uri;
use crate::Error;

struct Inner {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    shutdown: Arc<Option<ShutdownHandle>>,
    options: ClientOptions,
    features: OnceLock<Features>,
    uri: Option<Uri>,
}

/// Wait while the open connection still waits for replies, for at most `core::LINGER`.
fn linger(shared: &Shared) {
    let end = Instant::now() + crate::core::LINGER;
    while shared.replies_outstanding() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How long dropping the last client waits for the driver threads to end.
const DROP_JOIN_LIMIT: Duration = Duration::from_secs(2);

impl Drop for Inner {
    fn drop(&mut self) {
        // Replies still owed (a dropped subscription's deregistrations): let them arrive
        // first, for at most LINGER.
        linger(&self.shared);
        {
            let mut st = self.shared.lock();
            st.conn.close();
            st.dispatch();
        }
        self.shared.wake_waiters();
        self.shared.wake_writer();
        self.shared.wake_timer();
        // Unblock a reader or writer stuck in the kernel (the timer thread does this too).
        if let Some(h) = self.shutdown.as_ref() {
            let _ = h.shutdown();
        }
        let end = Instant::now() + DROP_JOIN_LIMIT;
        while Instant::now() < end && !self.threads.iter().all(|t| t.is_finished()) {
            std::thread::sleep(Duration::from_millis(2));
        }
        for t in self.threads.drain(..) {
            if t.is_finished() {
                let _ = t.join();
            }
            // else: detached (only a caller-supplied transport blocked forever can do this)
        }
    }
}

/// An open connection to a libvirt daemon (blocking, std only).
///
/// `Clone + Send + Sync`: clones share one connection; calls from many threads are
/// pipelined. The same generated methods and helpers as the async [`crate::Client`], without
/// `.await`.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("blocking::Client")
            .field("uri", &self.inner.uri.as_ref().map(|u| u.to_string()))
            .finish()
    }
}

impl Client {
    /// Connect to `uri` and open it, with default options (an empty `uri`: the default URI,
    /// see [`crate::Client::connect`]).
    pub fn connect(uri: &str) -> Result<Client, Error> {
        Client::connect_with(uri, ClientOptions::default())
    }

    /// Connect to `uri` (empty: the default URI) and open it.
    pub fn connect_with(uri: &str, options: ClientOptions) -> Result<Client, Error> {
        let uri: Uri = if uri.is_empty() {
            Uri::default_uri()?
        } else {
            uri.parse()?
        };
        let topts = options.transport.clone().read_only(options.read_only);
        let transport = BlockingTransport::connect(&uri, &topts)?;
        let name = uri.remote_name();
        let client = Client::from_transport(transport, options, Some(uri))?;
        client.open(Some(&name))?;
        Ok(client)
    }

    /// Run the driver over a connected transport without opening anything.
    pub fn from_transport(
        transport: BlockingTransport,
        options: ClientOptions,
        uri: Option<Uri>,
    ) -> Result<Client, Error> {
        let fd_refusal = crate::fds::refusal(transport.can_pass_fds(), transport.kind());
        let config = core::connection_config(&options, transport.kind());
        let (rd, wr) = transport.into_split()?;
        let shared = Arc::new(
            Shared::new(
                Connection::new(config),
                Box::new(|| {}),
                Box::new(|| {}),
                fd_refusal,
            )
            .with_decode(options.decode),
        );
        let shutdown = Arc::new(wr.shutdown_handle());
        let inline = wr.can_try_send();
        let wr = Arc::new(Mutex::new(wr));
        if inline {
            let side = wr.clone();
            let write: InlineWrite = Box::new(move |shared| write_inline(shared, &side));
            let _ = shared.inline_write.set(write);
        }
        let busy_poll = options.busy_poll;
        let s1 = shared.clone();
        let s2 = shared.clone();
        let s3 = shared.clone();
        let h3 = shutdown.clone();
        let spawned = (|| {
            Ok::<_, std::io::Error>(vec![
                std::thread::Builder::new()
                    .name("libvirt-reader".into())
                    .spawn(move || reader(s1, rd, busy_poll))?,
                std::thread::Builder::new()
                    .name("libvirt-writer".into())
                    .spawn(move || writer(s2, wr))?,
                std::thread::Builder::new()
                    .name("libvirt-timer".into())
                    .spawn(move || timer(s3, h3))?,
            ])
        })();
        let threads = match spawned {
            Ok(t) => t,
            Err(e) => {
                // Whatever started ends with the connection.
                {
                    let mut st = shared.lock();
                    st.conn.close();
                    st.dispatch();
                }
                shared.wake_writer();
                shared.wake_timer();
                if let Some(h) = shutdown.as_ref() {
                    let _ = h.shutdown();
                }
                return Err(e.into());
            }
        };
        Ok(Client {
            inner: Arc::new(Inner {
                shared,
                threads,
                shutdown,
                options,
                features: OnceLock::new(),
                uri,
            }),
        })
    }

    /// The open sequence (see [`crate::Client::open`]).
    pub fn open(&self, name: Option<&str>) -> Result<Features, Error> {
        let auth = self.call::<procs::AuthList>(&())?;
        let step = open::auth_step(
            &auth.types,
            self.inner.uri.as_ref(),
            self.inner.options.credentials.as_ref(),
        )?;
        match step {
            open::AuthStep::Polkit => {
                let r = self.call::<procs::AuthPolkit>(&())?;
                open::check_polkit(r.complete)?;
            }
            open::AuthStep::Sasl(creds) => crate::sasl::authenticate_blocking(self, &creds)?,
            open::AuthStep::None => {}
        }
        let probe = |feature| {
            self.call::<procs::ConnectSupportsFeature>(&remote::RemoteConnectSupportsFeatureArgs {
                feature,
            })
            .map(|r| r.supported != 0)
        };
        // libvirt's doRemoteOpen: the keepalive probe comes before CONNECT_OPEN (so keepalive
        // watches the open too), the other probes after it.
        let keepalive = probe(open::FEATURE_PROGRAM_KEEPALIVE)?;
        self.inner
            .shared
            .opt_in_keepalive(keepalive, self.inner.options.keepalive);
        self.call::<procs::ConnectOpen>(&open::connect_open_args(
            name,
            self.inner.options.read_only,
        ))?;
        let features = Features {
            keepalive,
            event_callbacks: probe(open::FEATURE_REMOTE_EVENT_CALLBACK)?,
            close_callback: probe(open::FEATURE_REMOTE_CLOSE_CALLBACK)?,
            fd_passing: probe(open::FEATURE_FD_PASSING)?,
        };
        let _ = self.inner.features.set(features);
        Ok(features)
    }

    /// What the daemon supports (after the open sequence).
    pub fn features(&self) -> Features {
        self.inner.features.get().copied().unwrap_or_default()
    }

    /// The URI this client connected to, if any.
    pub fn uri(&self) -> Option<&Uri> {
        self.inner.uri.as_ref()
    }

    /// The options in force.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// Call procedure `C` with the default timeout.
    pub fn call<C: Call>(&self, args: &C::Args) -> Result<C::Ret, Error> {
        self.call_with_timeout::<C>(args, self.inner.options.timeout_for(C::INFO))
    }

    /// Call procedure `C` with its own timeout (`None`: none).
    pub fn call_with_timeout<C: Call>(
        &self,
        args: &C::Args,
        timeout: Option<Duration>,
    ) -> Result<C::Ret, Error> {
        let id = self.inner.shared.start::<C>(args, timeout, false)?;
        let reply = self.inner.shared.wait_blocking(id)?;
        self.inner.shared.decode_ret::<C>(&reply)
    }

    /// Start a stream-opening call of procedure `C`; returns its reply and the stream.
    pub fn call_stream<C: Call>(
        &self,
        args: &C::Args,
    ) -> Result<(C::Ret, crate::stream::BlockingVirStream), Error> {
        let id =
            self.inner
                .shared
                .start::<C>(args, self.inner.options.timeout_for(C::INFO), true)?;
        let stream = crate::stream::BlockingVirStream::new(self.clone(), id);
        let reply = self.inner.shared.wait_blocking(id)?;
        Ok((self.inner.shared.decode_ret::<C>(&reply)?, stream))
    }

    /// Call procedure `C` passing file descriptors (see [`crate::Client::call_with_fds`]);
    /// returns the decoded reply and the descriptors the daemon passed back.
    pub fn call_with_fds<C: Call>(
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
        let reply = self.inner.shared.wait_blocking(id)?;
        let ret = self.inner.shared.decode_ret::<C>(&reply)?;
        Ok((ret, reply.fds))
    }

    /// Call a procedure by number with raw XDR arguments; returns the raw reply.
    pub fn call_raw(
        &self,
        target: libvirt_proto::ProcedureId,
        args: &[u8],
    ) -> Result<Reply, Error> {
        let id = self.inner.shared.start_raw(
            target,
            self.inner.options.call_timeout,
            false,
            Vec::new(),
            |out| {
                out.extend_from_slice(args);
                Ok(())
            },
        )?;
        Ok(self.inner.shared.wait_blocking(id)?)
    }

    /// Close politely (`CONNECT_CLOSE`), then locally.
    pub fn close(&self) -> Result<(), Error> {
        linger(&self.inner.shared);
        let r = self.call_with_timeout::<procs::ConnectClose>(&(), Some(Duration::from_secs(5)));
        {
            let mut st = self.inner.shared.lock();
            st.conn.close();
            st.dispatch();
        }
        self.inner.shared.wake_waiters();
        self.inner.shared.wake_writer();
        self.inner.shared.wake_timer();
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

    /// Connection counters.
    pub fn stats(&self) -> libvirt_proto::Stats {
        self.inner.shared.lock().conn.stats()
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }
}

fn reader(shared: Arc<Shared>, mut rd: BlockingReader, busy_poll: Option<Duration>) {
    let mut buf = vec![0u8; 256 << 10];
    let mut fds = Vec::new();
    let busy_poll = busy_poll.filter(|_| rd.can_try_read());
    loop {
        {
            let mut st = shared.lock();
            while st.conn.is_read_paused() && !st.conn.is_closed() {
                st = shared
                    .write_cv
                    .wait_timeout(st, Duration::from_millis(100))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            if st.conn.is_closed() {
                return;
            }
        }
        let r = match busy_poll
            .and_then(|limit| busy_read(&shared, &mut rd, &mut buf, &mut fds, limit))
        {
            Some(r) => r,
            None => rd.read_with_fds(&mut buf, &mut fds),
        };
        let (closed, to_write) = {
            let mut st = shared.lock();
            // Descriptors first: they belong to the packet these bytes complete.
            st.conn.handle_fds(fds.drain(..));
            match r {
                Ok(0) => st.conn.handle_eof(),
                Ok(n) => st.handle_input(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => st.conn.handle_io_error(e),
            }
            st.dispatch();
            // Replies only remove deadlines (and input only postpones keepalive's): the
            // writer is needed for queued output (PONGs) or the end, the timer for the end.
            (st.conn.is_closed(), st.conn.transmit_buffered() > 0)
        };
        shared.wake_waiters();
        if to_write || closed {
            shared.wake_writer();
        }
        if closed {
            shared.wake_timer();
            return;
        }
    }
}

/// [`ClientOptions::busy_poll`]: while callers wait for replies, read without blocking for up
/// to `limit`, yielding the CPU between tries. `None` when nothing came (or the transport
/// cannot be read without blocking): the caller then sleeps in a blocking read.
fn busy_read(
    shared: &Shared,
    rd: &mut BlockingReader,
    buf: &mut [u8],
    fds: &mut Vec<std::os::fd::OwnedFd>,
    limit: Duration,
) -> Option<std::io::Result<usize>> {
    let mut round = core::BusyPoll::start(shared, limit)?;
    loop {
        if let std::ops::ControlFlow::Break(r) = round.step(rd.try_read_with_fds(buf, fds)) {
            return r;
        }
        std::thread::yield_now();
    }
}

/// Runs the connection's timers; never blocks on the socket. When the connection is closed
/// it shuts the socket down (waking a reader or writer blocked in the kernel) and ends.
fn timer(shared: Arc<Shared>, shutdown: Arc<Option<ShutdownHandle>>) {
    let mut st = shared.lock();
    loop {
        let now = Instant::now();
        if st.conn.poll_timeout().is_some_and(|d| d <= now) {
            st.conn.handle_timeout(now);
            st.dispatch();
            shared.wake_waiters();
            // A PING may be queued, or the connection closed.
            shared.wake_writer();
        }
        if st.conn.is_closed() {
            drop(st);
            if let Some(h) = shutdown.as_ref() {
                let _ = h.shutdown();
            }
            return;
        }
        // Woken early only for an earlier deadline or the end (see `Shared::timer_is_late`).
        st = match shared.arm_timer(&st.conn) {
            Some(d) => {
                let wait = d.saturating_duration_since(Instant::now());
                shared
                    .timer_cv
                    .wait_timeout(st, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => shared.timer_cv.wait(st).unwrap_or_else(|e| e.into_inner()),
        };
    }
}

/// The writer thread. It and callers (see [`write_inline`]) share the write half behind one
/// lock, held from taking output off the connection until it is written: bytes go out in the
/// order the connection produced them.
fn writer(shared: Arc<Shared>, side: Arc<Mutex<BlockingWriter>>) {
    loop {
        {
            let mut st = shared.lock();
            while st.conn.transmit_buffered() == 0 && !st.conn.is_closed() {
                // Timers run on the timer thread, which wakes us when they queue output.
                st = shared.write_cv.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
        // A caller writing inline holds this only for non-blocking sends.
        let mut wr = side.lock().unwrap_or_else(|e| e.into_inner());
        let batch = {
            let mut st = shared.lock();
            let batch = st.take_output();
            if batch.is_empty() && st.conn.is_closed() {
                drop(st);
                shared.wake_timer();
                let _ = wr.shutdown();
                return;
            }
            batch
        };
        if batch.is_empty() {
            continue; // a caller wrote it inline
        }
        for t in batch {
            let mut r = wr.write_all(&t.data);
            if r.is_ok() && !t.fds.is_empty() {
                // libvirt's order: the packet, then one carrier byte per descriptor.
                r = wr.send_fds(&t.fds);
            }
            if let Err(e) = r {
                shared.fail_io(e);
                shared.wake_writer();
                shared.wake_timer();
                let _ = wr.shutdown();
                return;
            }
        }
        let _ = wr.flush();
        drop(wr);
        shared.wake_waiters();
    }
}

/// [`crate::core::write_inline`] for the blocking driver: false when output is left for the
/// writer thread (the socket was full, output carries descriptors, or another thread was
/// writing).
fn write_inline(shared: &Shared, side: &Mutex<BlockingWriter>) -> bool {
    let Ok(wr) = side.try_lock() else {
        return false;
    };
    let r = core::write_inline(shared, |b| wr.try_send(b));
    drop(wr);
    match r {
        Inline::Done => true,
        Inline::Left => false,
        Inline::Failed => {
            shared.wake_writer();
            shared.wake_timer();
            true
        }
    }
}
