//! What both drivers share: the sans-IO [`Connection`] behind one lock, plus the tables that
//! connect its events to waiting callers, event subscribers and stream handles.
//!
//! Every mutation of the connection is followed by [`State::dispatch`], which drains
//! `poll_event` under the same lock and records results where the waiters look for them; the
//! driver then wakes them (tokio `Waker`s stored here, and a `Condvar` for blocking callers).
//! Nothing here blocks on a consumer: replies go to per-call slots, events to bounded
//! per-subscriber queues (overflow is counted and reported as a `Lagged` item).

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

use libvirt_proto::program::Call;
use libvirt_proto::{
    CallId, CallOptions, CloseReason, Connection, Event, ProcedureId, Reply, ServerMessage,
};

use crate::Error;

/// A call's outcome as delivered to its waiter.
pub(crate) type CallResult = Result<Reply, libvirt_proto::Error>;

#[derive(Default)]
pub(crate) struct CallSlot {
    pub(crate) result: Option<CallResult>,
    pub(crate) waker: Option<Waker>,
    /// An event registration for subscriber `token`: its reply is acted on in `dispatch`
    /// (routing, early events) before anyone waits for it.
    pub(crate) reg: Option<(crate::events::Reg, u64)>,
    /// Nobody waits any more (the subscribe was dropped or failed): a successful
    /// registration is undone as soon as its reply arrives.
    pub(crate) orphan: bool,
}

/// One subscriber's bounded queue of raw server messages.
pub(crate) struct SubQueue {
    pub(crate) items: VecDeque<ServerMessage>,
    pub(crate) capacity: usize,
    /// Messages dropped since the subscriber last saw a `Lagged` notice.
    pub(crate) lagged: u64,
    pub(crate) closed: Option<CloseReason>,
    pub(crate) waker: Option<Waker>,
}

#[derive(Default)]
pub(crate) struct StreamWait {
    pub(crate) waker: Option<Waker>,
    /// A writer waiting for the send queue to drain.
    pub(crate) write_waker: Option<Waker>,
    /// Set when the server confirmed our finish.
    pub(crate) finished: bool,
    /// Why the stream failed (the connection may already have forgotten the stream).
    pub(crate) failed: Option<libvirt_proto::Error>,
}

/// Everything behind the lock.
pub(crate) struct State {
    pub(crate) conn: Connection,
    pub(crate) calls: HashMap<u32, CallSlot>,
    pub(crate) subs: HashMap<u64, SubQueue>,
    pub(crate) streams: HashMap<u32, StreamWait>,
    pub(crate) next_token: u64,
    /// Subscribers of the daemon's connection-closed notifications.
    pub(crate) close_subs: std::collections::HashSet<u64>,
    /// Server messages no subscriber claimed (e.g. after deregistration), for diagnostics.
    pub(crate) unrouted_messages: u64,
    /// The fatal input error that closed the connection, when it was a reply announcing more
    /// descriptors than arrived: that call fails with it rather than a bare "closed".
    pub(crate) missing_fds: Option<libvirt_proto::Error>,
    /// Callback events that arrived while a registration of their family was in flight
    /// (libvirtd may send an event before the reply that tells us its callback id); handed
    /// to the subscriber when the reply arrives, dropped (counted as unrouted) when no
    /// registration of the family is in flight any more.
    pub(crate) early: VecDeque<ServerMessage>,
}

/// How long closing a connection (dropping the last client, or `close`) waits for replies the
/// daemon still owes, typically the deregistrations a dropped subscription sent: libvirtd 9.0
/// can crash (a use-after-free in `remoteClientFreePrivateCallbacks`) when a client goes away
/// while one of its event (de)registrations is being processed.
pub(crate) const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// Wakes a blocked caller's thread (the blocking driver's call waker).
#[cfg(feature = "blocking")]
struct ThreadWaker(std::thread::Thread);

#[cfg(feature = "blocking")]
impl std::task::Wake for ThreadWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.unpark();
    }
}

/// Early events kept at most (beyond: the in-flight registrations' subscribers see `Lagged`).
const EARLY_LIMIT: usize = 4096;

/// The state plus the two condition variables blocking code waits on.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// Callers (blocking driver): a reply, event or stream item arrived, or the connection
    /// closed.
    pub(crate) cv: Condvar,
    /// The blocking driver's writer thread (and a reader paused by stream backpressure):
    /// output queued, or the connection closed.
    pub(crate) write_cv: Condvar,
    /// The blocking driver's timer thread: a deadline earlier than its own appeared, or the
    /// connection closed.
    pub(crate) timer_cv: Condvar,
    /// Origin of `timer_armed`.
    timer_base: Instant,
    /// The deadline the driver's timer sleeps for, in ns since `timer_base` (`u64::MAX`:
    /// none). Read and written with the state lock held. Where a deadline is added (a call,
    /// keepalive) it is compared with the connection's next one and the timer is woken only
    /// when that is earlier: waking it on every call would cost a thread or task switch per
    /// call. (Not the writer's job: a writer stuck on a full socket must not stall timers.)
    timer_armed: std::sync::atomic::AtomicU64,
    /// Wakes the async driver's writer task (no-op for the blocking driver).
    pub(crate) kick: Box<dyn Fn() + Send + Sync>,
    /// Wakes the async driver's timer task (no-op for the blocking driver).
    kick_timer: Box<dyn Fn() + Send + Sync>,
    /// `None` when the transport passes file descriptors, else the transport's name (calls
    /// with descriptors are then refused before anything is sent).
    pub(crate) fd_refusal: Option<String>,
    /// How replies and events are decoded ([`crate::ClientOptions::decode`]).
    pub(crate) decode: xdr::DecodeOptions,
    /// The driver's inline write (see [`Shared::output_queued`]): writes queued output on the
    /// calling thread or task if it can without blocking; true when nothing is left for the
    /// writer. Unset where the transport cannot write without blocking (TLS, child process,
    /// caller-supplied streams).
    pub(crate) inline_write: OnceLock<InlineWrite>,
}

/// See [`Shared::inline_write`].
pub(crate) type InlineWrite = Box<dyn Fn(&Shared) -> bool + Send + Sync>;

/// At most this many bytes are written inline per call start: a caller (or, async, the
/// worker thread its task runs on) is not held up writing a large packet to a fast reader; the
/// writer thread or task writes the rest.
pub(crate) const INLINE_MAX: usize = 256 << 10;

/// What [`write_inline`] did.
pub(crate) enum Inline {
    /// Everything queued was written.
    Done,
    /// Output is left for the driver's writer: the socket was full, or output carries
    /// descriptors. It was given back to the connection, in order.
    Left,
    /// Writing failed: the connection is closed and its waiters woken; the driver wakes its
    /// writer and timer so they end too.
    Failed,
}

/// The sans-IO connection settings for a transport of kind `kind`. Over TLS every packet is
/// written by itself, so a TLS record never holds the end of one packet and the start of the
/// next. libvirtd (9.0) reads TLS one packet at a time and, once a packet is complete, waits
/// for the socket to become readable. It does not check what gnutls has already decrypted. The
/// start of a second packet left in a record therefore sits unread until more bytes arrive:
/// after a burst of pipelined calls, that is the daemon's next keepalive PING, 5 s later.
/// Other transports keep merging small packets (fewer writes).
pub(crate) fn connection_config(
    options: &crate::ClientOptions,
    kind: Option<crate::uri::TransportKind>,
) -> libvirt_proto::Config {
    let mut config = options.connection.clone();
    if kind == Some(crate::uri::TransportKind::Tls) {
        config.transmit_coalesce = 0;
    }
    config
}

/// Longest busy-polling round, whatever [`crate::ClientOptions::busy_poll`] asks for.
pub(crate) const BUSY_POLL_MAX: Duration = Duration::from_secs(1);

/// Tries between two looks at whether the connection was closed meanwhile.
const BUSY_POLL_CLOSE_CHECK: u32 = 64;

/// [`crate::ClientOptions::busy_poll`], shared by both drivers' readers: one polling round,
/// from the connection's state (polling happens only while callers wait for replies) and the
/// outcomes of non-blocking reads.
pub(crate) struct BusyPoll<'a> {
    shared: &'a Shared,
    start: Instant,
    limit: Duration,
    tries: u32,
}

impl<'a> BusyPoll<'a> {
    /// A round, or `None` when no caller waits for a reply (then the reader sleeps at once).
    /// Replies owed only to abandoned calls do not count: no one waits for them, and a daemon
    /// may never send them.
    pub(crate) fn start(shared: &'a Shared, limit: Duration) -> Option<BusyPoll<'a>> {
        (shared.lock().conn.pending_calls() > 0).then(|| BusyPoll {
            shared,
            start: Instant::now(),
            limit: limit.min(BUSY_POLL_MAX),
            tries: 0,
        })
    }

    /// What one non-blocking read's outcome means: `Break(Some(r))`, a result for the reader;
    /// `Break(None)`, stop polling and sleep in a blocking read (the limit is reached, the
    /// connection was closed locally, or the transport cannot be read without blocking);
    /// `Continue`, yield the CPU and try again.
    pub(crate) fn step(
        &mut self,
        r: std::io::Result<usize>,
    ) -> std::ops::ControlFlow<Option<std::io::Result<usize>>> {
        use std::ops::ControlFlow::{Break, Continue};
        match r {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                self.tries += 1;
                if self.start.elapsed() >= self.limit
                    || (self.tries % BUSY_POLL_CLOSE_CHECK == 0
                        && self.shared.lock().conn.is_closed())
                {
                    Break(None)
                } else {
                    Continue(())
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => Break(None),
            r => Break(Some(r)),
        }
    }
}

/// A driver's inline write, on a caller's thread right after it queued a call, with no lock
/// held but the driver's write-half lock (so no one else takes output meanwhile): take the
/// connection's output and write it with `send`, which must never block (`WouldBlock` when the
/// socket is full). This saves the hand-off to the driver's writer, a thread or task switch
/// per call (libvirt's C client also writes on the caller's thread).
///
/// Stream writers waiting for the send queue to drain are woken once this is done, whatever
/// the outcome: this drain may be the only one they see (the rest it gives back may be taken
/// by another caller's inline write before the writer looks). Async ones by their wakers,
/// blocking ones (which wait on the callers' condition variable) by a notify when the
/// connection has streams.
pub(crate) fn write_inline(
    shared: &Shared,
    send: impl FnMut(&[u8]) -> std::io::Result<usize>,
) -> Inline {
    let (batch, stream_writers, streams) = {
        let mut st = shared.lock();
        if st.conn.is_closed() {
            return Inline::Left;
        }
        let batch = st.take_output();
        if batch.is_empty() {
            return Inline::Done;
        }
        (batch, st.take_stream_write_wakers(), !st.streams.is_empty())
    };
    let r = write_batch(shared, batch, send);
    for w in stream_writers {
        w.wake();
    }
    if streams {
        shared.wake_waiters();
    }
    r
}

/// [`write_inline`]'s writing and giving back.
fn write_batch(
    shared: &Shared,
    batch: Vec<libvirt_proto::Transmit>,
    mut send: impl FnMut(&[u8]) -> std::io::Result<usize>,
) -> Inline {
    let mut batch = batch.into_iter();
    let mut written = 0;
    let mut left = None;
    for mut t in batch.by_ref() {
        if !t.fds.is_empty() {
            left = Some(t);
            break;
        }
        let mut done = 0;
        // A caller writes at most INLINE_MAX inline; the writer takes over beyond that.
        while done < t.data.len() && written + done < INLINE_MAX {
            match send(&t.data[done..]) {
                Ok(n) if n > 0 => done += n,
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    shared.fail_io(e);
                    return Inline::Failed;
                }
            }
        }
        written += done;
        if done < t.data.len() {
            t.data = t.data.slice(done..);
            left = Some(t);
            break;
        }
    }
    let Some(t) = left else {
        return Inline::Done;
    };
    let mut st = shared.lock();
    let rest: Vec<libvirt_proto::Transmit> = batch.collect();
    for r in rest.into_iter().rev() {
        st.conn.requeue_transmit(r);
    }
    st.conn.requeue_transmit(t);
    Inline::Left
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

impl Shared {
    pub(crate) fn new(
        conn: Connection,
        kick: Box<dyn Fn() + Send + Sync>,
        kick_timer: Box<dyn Fn() + Send + Sync>,
        fd_refusal: Option<String>,
    ) -> Self {
        Self {
            state: Mutex::new(State {
                conn,
                calls: HashMap::new(),
                subs: HashMap::new(),
                streams: HashMap::new(),
                next_token: 1,
                unrouted_messages: 0,
                close_subs: Default::default(),
                missing_fds: None,
                early: VecDeque::new(),
            }),
            cv: Condvar::new(),
            write_cv: Condvar::new(),
            timer_cv: Condvar::new(),
            timer_base: Instant::now(),
            timer_armed: std::sync::atomic::AtomicU64::new(u64::MAX),
            kick,
            kick_timer,
            fd_refusal,
            decode: xdr::DecodeOptions::new(),
            inline_write: OnceLock::new(),
        }
    }

    /// Decode replies and events with `decode` (strict by default).
    pub(crate) fn with_decode(mut self, decode: xdr::DecodeOptions) -> Self {
        self.decode = decode;
        self
    }

    /// Decode a reply body as a call's return type, with [`Shared::decode`]
    /// ([`crate::ClientOptions::decode`]).
    pub(crate) fn decode_ret<C: Call>(&self, reply: &Reply) -> Result<C::Ret, Error> {
        xdr::from_shared_with(&reply.body, self.decode).map_err(|e| {
            Error::Proto(libvirt_proto::Error::decode(
                format!("reply of {}", C::NAME),
                e,
            ))
        })
    }

    fn timer_ns(&self, deadline: Option<Instant>) -> u64 {
        deadline.map_or(u64::MAX, |d| {
            u64::try_from(d.saturating_duration_since(self.timer_base).as_nanos())
                .unwrap_or(u64::MAX - 1)
                .min(u64::MAX - 1)
        })
    }

    /// The timer, with the state lock held: the connection's next deadline, recorded as the
    /// one the timer now sleeps for.
    pub(crate) fn arm_timer(&self, conn: &Connection) -> Option<Instant> {
        let deadline = conn.poll_timeout();
        self.timer_armed.store(
            self.timer_ns(deadline),
            std::sync::atomic::Ordering::Relaxed,
        );
        deadline
    }

    /// With the state lock held, after adding a deadline: does the connection want an earlier
    /// wake-up than the timer sleeps for?
    fn timer_is_late(&self, conn: &Connection) -> bool {
        self.timer_ns(conn.poll_timeout())
            < self.timer_armed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the open connection still waits for replies (see [`LINGER`]).
    pub(crate) fn replies_outstanding(&self) -> bool {
        let st = self.lock();
        !st.conn.is_closed() && st.conn.awaiting_replies() > 0
    }

    /// Lock the state (a poisoned lock is recovered: the state is consistent between calls).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wake the driver's timer: an earlier deadline, or the connection closed (the blocking
    /// timer thread then shuts the socket down).
    pub(crate) fn wake_timer(&self) {
        self.timer_cv.notify_one();
        (self.kick_timer)();
    }

    /// After a caller queued output, with no lock held: write it on the caller's thread when
    /// the driver can (see [`Shared::inline_write`]), else wake the writer.
    pub(crate) fn output_queued(&self) {
        if let Some(write) = self.inline_write.get() {
            if write(self) {
                return;
            }
        }
        self.wake_writer();
    }

    /// After queueing output or changing timers: wake whichever driver writes.
    pub(crate) fn wake_writer(&self) {
        self.write_cv.notify_all();
        (self.kick)();
    }

    /// The keepalive opt-in of the open sequence (see [`crate::open`]): when the daemon
    /// supports the keepalive program and the options ask for keepalive, start it now.
    pub(crate) fn opt_in_keepalive(
        &self,
        supported: bool,
        config: Option<libvirt_proto::KeepaliveConfig>,
    ) {
        if let (true, Some(ka)) = (supported, config) {
            let late = {
                let mut st = self.lock();
                st.conn.enable_keepalive(ka, Instant::now());
                self.timer_is_late(&st.conn)
            };
            self.wake_writer();
            if late {
                self.wake_timer();
            }
        }
    }

    /// A write failed: close the connection with `e` (failing every pending call and stream)
    /// and wake blocking waiters. The driver then ends its own tasks or threads.
    pub(crate) fn fail_io(&self, e: std::io::Error) {
        {
            let mut st = self.lock();
            st.conn.handle_io_error(e);
            st.dispatch();
        }
        self.wake_waiters();
    }

    /// After [`State::dispatch`]: wake blocking waiters.
    pub(crate) fn wake_waiters(&self) {
        self.cv.notify_all();
    }

    /// Start a call of procedure `C`; the result is collected by `take_result`.
    pub(crate) fn start<C: Call>(
        &self,
        args: &C::Args,
        timeout: Option<Duration>,
        stream: bool,
    ) -> Result<CallId, Error> {
        self.start_with_fds::<C>(args, timeout, stream, Vec::new())
    }

    /// Start a call of procedure `C` passing descriptors (`CALL_WITH_FDS` when `fds` is not
    /// empty).
    pub(crate) fn start_with_fds<C: Call>(
        &self,
        args: &C::Args,
        timeout: Option<Duration>,
        stream: bool,
        fds: Vec<std::os::fd::OwnedFd>,
    ) -> Result<CallId, Error> {
        let target = ProcedureId {
            program: C::PROGRAM,
            version: C::VERSION,
            procedure: C::PROCEDURE as i32,
        };
        self.start_raw(target, timeout, stream, fds, |out| {
            xdr::to_writer_vec(args, out)
                .map_err(|e| libvirt_proto::Error::encode(format!("arguments of {}", C::NAME), e))
        })
    }

    /// Start an event registration call of procedure `C` (no deadline: the subscriber
    /// bounds its wait) for subscriber `token`; its callback id is routed as soon as the reply
    /// is decoded.
    pub(crate) fn start_registration<C: Call>(
        &self,
        args: &C::Args,
        reg: crate::events::Reg,
        token: u64,
    ) -> Result<CallId, Error> {
        let target = ProcedureId {
            program: C::PROGRAM,
            version: C::VERSION,
            procedure: C::PROCEDURE as i32,
        };
        self.start_raw_then(
            target,
            None,
            false,
            Vec::new(),
            |out| {
                xdr::to_writer_vec(args, out).map_err(|e| {
                    libvirt_proto::Error::encode(format!("arguments of {}", C::NAME), e)
                })
            },
            |st, id| {
                if let Some(f) = reg.family() {
                    st.conn.route_reply_callback(id, f, token);
                }
                if let Some(slot) = st.calls.get_mut(&id.0) {
                    slot.reg = Some((reg, token));
                }
            },
        )
    }

    /// Start a call with explicit options and an encoder.
    pub(crate) fn start_raw(
        &self,
        target: ProcedureId,
        timeout: Option<Duration>,
        stream: bool,
        fds: Vec<std::os::fd::OwnedFd>,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), libvirt_proto::Error>,
    ) -> Result<CallId, Error> {
        self.start_raw_then(target, timeout, stream, fds, encode, |_, _| {})
    }

    /// [`Shared::start_raw`], running `then` under the same lock once the call is started.
    fn start_raw_then(
        &self,
        target: ProcedureId,
        timeout: Option<Duration>,
        stream: bool,
        fds: Vec<std::os::fd::OwnedFd>,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), libvirt_proto::Error>,
        then: impl FnOnce(&mut State, CallId),
    ) -> Result<CallId, Error> {
        if let (false, Some(transport)) = (fds.is_empty(), &self.fd_refusal) {
            return Err(Error::FdPassingUnavailable {
                transport: transport.clone(),
                count: fds.len(),
            });
        }
        let mut st = self.lock();
        let options = CallOptions {
            stream,
            fds,
            deadline: timeout.map(|t| Instant::now() + t),
        };
        let id = st.conn.start_call_with(target, options, encode)?;
        st.calls.insert(id.0, CallSlot::default());
        if stream {
            st.streams.insert(id.0, StreamWait::default());
        }
        then(&mut st, id);
        let late = self.timer_is_late(&st.conn);
        drop(st);
        self.output_queued();
        if late {
            self.wake_timer();
        }
        Ok(id)
    }

    /// The caller gave up on a call (its future was dropped).
    #[cfg(feature = "async")]
    pub(crate) fn abandon(&self, id: CallId) {
        let mut st = self.lock();
        if st.calls.remove(&id.0).is_some() {
            st.conn.abandon(id);
            st.streams.remove(&id.0);
            st.dispatch();
            drop(st);
            self.wake_waiters();
            self.wake_writer();
        }
    }

    /// Block (std) until call `id` has its result. The caller's thread parks and is woken by
    /// its own call's waker (a reply, a timeout or the connection's end all come as its
    /// result): one reply wakes one caller, not every blocked thread.
    #[cfg(feature = "blocking")]
    pub(crate) fn wait_blocking(&self, id: CallId) -> CallResult {
        let waker = Waker::from(std::sync::Arc::new(ThreadWaker(std::thread::current())));
        loop {
            {
                let mut st = self.lock();
                match st.calls.get_mut(&id.0) {
                    Some(slot) => {
                        if let Some(r) = slot.result.take() {
                            st.calls.remove(&id.0);
                            return r;
                        }
                        slot.waker = Some(waker.clone());
                    }
                    None => {
                        return Err(libvirt_proto::Error::Closed(
                            st.conn
                                .close_reason()
                                .cloned()
                                .unwrap_or(CloseReason::Local),
                        ))
                    }
                }
            }
            // A wake between the unlock and here leaves the park token set: no lost wake-up.
            std::thread::park();
        }
    }

    /// Register a subscriber queue; returns its routing token.
    pub(crate) fn add_subscriber(&self, capacity: usize) -> u64 {
        let mut st = self.lock();
        let token = st.next_token;
        st.next_token += 1;
        let closed = st.conn.close_reason().cloned();
        st.subs.insert(
            token,
            SubQueue {
                items: VecDeque::new(),
                capacity: capacity.max(1),
                lagged: 0,
                closed,
                waker: None,
            },
        );
        token
    }
}

impl State {
    /// All output the connection has queued, in order (for the driver holding the write half).
    pub(crate) fn take_output(&mut self) -> Vec<libvirt_proto::Transmit> {
        std::iter::from_fn(|| self.conn.poll_transmit()).collect()
    }

    /// The wakers of async stream writers waiting for the send queue to drain.
    pub(crate) fn take_stream_write_wakers(&mut self) -> Vec<Waker> {
        self.streams
            .values_mut()
            .filter_map(|s| s.write_waker.take())
            .collect()
    }

    /// Queue `m` for subscriber `t` (overflow policy: the newest message is dropped and
    /// counted; the subscriber sees `Lagged(n)` before its next item). False when there is
    /// no such subscriber.
    pub(crate) fn deliver(&mut self, t: u64, m: &ServerMessage) -> bool {
        let Some(sub) = self.subs.get_mut(&t) else {
            return false;
        };
        if sub.items.len() >= sub.capacity {
            sub.lagged += 1;
        } else {
            sub.items.push_back(m.clone());
        }
        if let Some(w) = sub.waker.take() {
            w.wake();
        }
        true
    }

    /// Whether a registration of `family` awaits its reply (for a live subscriber).
    pub(crate) fn registration_in_flight(&self, family: libvirt_proto::EventFamily) -> bool {
        self.calls.values().any(|s| {
            !s.orphan
                && s.result.is_none()
                && s.reg
                    .as_ref()
                    .is_some_and(|(r, _)| r.family() == Some(family))
        })
    }

    /// An early event of `family` had to be dropped: every subscriber with a registration
    /// of that family in flight may have missed it.
    fn lag_in_flight(&mut self, family: libvirt_proto::EventFamily) {
        let tokens: Vec<u64> = self
            .calls
            .values()
            .filter(|s| !s.orphan && s.result.is_none())
            .filter_map(|s| s.reg.as_ref())
            .filter(|(r, _)| r.family() == Some(family))
            .map(|(_, t)| *t)
            .collect();
        for t in tokens {
            if let Some(sub) = self.subs.get_mut(&t) {
                sub.lagged += 1;
                if let Some(w) = sub.waker.take() {
                    w.wake();
                }
            }
        }
        self.unrouted_messages += 1;
    }

    /// Feed bytes read from the transport (after their descriptors went to
    /// `Connection::handle_fds`). A fatal error closes the connection (and is reported to the
    /// waiters by `dispatch`); a reply that announced more descriptors than arrived is
    /// remembered so that its call fails with that error.
    pub(crate) fn handle_input(&mut self, data: &[u8]) {
        if let Err(e) = self.conn.handle_input(data) {
            if matches!(e, libvirt_proto::Error::MissingFds { .. }) {
                self.missing_fds = Some(e);
            }
        }
    }

    /// Drain the connection's events into the waiters' tables. Returns nothing; callers wake
    /// blocking waiters afterwards.
    pub(crate) fn dispatch(&mut self) {
        while let Some(ev) = self.conn.poll_event() {
            match ev {
                Event::Reply { id, mut result } => {
                    if let (Err(libvirt_proto::Error::Closed(_)), Some(e)) =
                        (&result, &self.missing_fds)
                    {
                        if matches!(e, libvirt_proto::Error::MissingFds { serial, .. } if *serial == id.0)
                        {
                            result = Err(e.clone());
                        }
                    }
                    let reg = self
                        .calls
                        .get(&id.0)
                        .and_then(|s| s.reg.clone().map(|r| (r, s.orphan)));
                    // A registration's outcome: Ok(callback id, if the body has one).
                    let outcome = result.as_ref().map(|r| {
                        r.body
                            .get(..4)
                            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    });
                    let outcome = outcome.map_err(|_| ());
                    if reg.as_ref().is_some_and(|(_, orphan)| *orphan) {
                        self.calls.remove(&id.0);
                    } else if let Some(slot) = self.calls.get_mut(&id.0) {
                        slot.result = Some(result);
                        if let Some(w) = slot.waker.take() {
                            w.wake();
                        }
                    }
                    if let Some(((reg, token), orphan)) = reg {
                        crate::events::registration_replied(self, &reg, token, outcome, orphan);
                    }
                }
                Event::Message(m) => {
                    if m.route.is_none() && m.callback_id.is_some() {
                        if let Some(f) =
                            libvirt_proto::event::callback_event_family(m.program, m.procedure)
                        {
                            if self.registration_in_flight(f) {
                                if self.early.len() >= EARLY_LIMIT {
                                    self.lag_in_flight(f);
                                } else {
                                    self.early.push_back(m);
                                }
                                continue;
                            }
                        }
                    }
                    let targets: Vec<u64> = match m.route {
                        Some(t) => vec![t],
                        None if m.program == libvirt_proto::event::REMOTE_PROGRAM
                            && m.procedure == crate::events::CONNECTION_CLOSED_PROC =>
                        {
                            self.close_subs.iter().copied().collect()
                        }
                        None => Vec::new(),
                    };
                    let mut delivered = false;
                    for t in targets {
                        delivered |= self.deliver(t, &m);
                    }
                    if !delivered {
                        self.unrouted_messages += 1;
                    }
                }
                Event::MessagesDropped { count } => {
                    // The connection's own queue overflowed (we drain it on every input, so
                    // this needs a burst larger than its limit within one read): everyone
                    // may have missed something.
                    for sub in self.subs.values_mut() {
                        sub.lagged += count;
                    }
                }
                Event::StreamReadable { id } | Event::StreamFailed { id, .. } => {
                    if let Some(s) = self.streams.get_mut(&id.0) {
                        if let Event::StreamFailed { error, .. } = &ev {
                            s.failed.get_or_insert_with(|| error.clone());
                        }
                        if let Some(w) = s.waker.take() {
                            w.wake();
                        }
                        if let Some(w) = s.write_waker.take() {
                            w.wake();
                        }
                    }
                }
                Event::StreamFinished { id } => {
                    if let Some(s) = self.streams.get_mut(&id.0) {
                        s.finished = true;
                        if let Some(w) = s.waker.take() {
                            w.wake();
                        }
                    }
                }
                Event::Closed(reason) => {
                    self.unrouted_messages += self.early.len() as u64;
                    self.early.clear();
                    for sub in self.subs.values_mut() {
                        sub.closed = Some(reason.clone());
                        if let Some(w) = sub.waker.take() {
                            w.wake();
                        }
                    }
                    for s in self.streams.values_mut() {
                        if let Some(w) = s.waker.take() {
                            w.wake();
                        }
                        if let Some(w) = s.write_waker.take() {
                            w.wake();
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_connections_write_every_packet_by_itself() {
        use crate::uri::TransportKind;
        let options = crate::ClientOptions::default();
        assert_eq!(
            connection_config(&options, Some(TransportKind::Tls)).transmit_coalesce,
            0
        );
        for kind in [Some(TransportKind::Unix), Some(TransportKind::Tcp), None] {
            assert_eq!(
                connection_config(&options, kind).transmit_coalesce,
                options.connection.transmit_coalesce
            );
        }
    }

    /// A connection's shared state with no driver around it.
    fn test_shared() -> Shared {
        Shared::new(
            Connection::default(),
            Box::new(|| {}),
            Box::new(|| {}),
            None,
        )
    }

    /// Procedure 1 of the remote program.
    const REMOTE_PROC_1: ProcedureId = ProcedureId {
        program: libvirt_proto::event::REMOTE_PROGRAM,
        version: 1,
        procedure: 1,
    };

    #[test]
    fn busy_polling_runs_only_while_callers_wait_and_stops_at_its_limit_or_a_close() {
        use std::io::{Error as IoError, ErrorKind};
        use std::ops::ControlFlow::{Break, Continue};
        let shared = test_shared();
        let long = Duration::from_secs(3600);
        assert!(BusyPoll::start(&shared, long).is_none(), "no one waits");
        shared
            .start_raw(REMOTE_PROC_1, None, false, Vec::new(), |_| Ok(()))
            .unwrap();
        let mut round = BusyPoll::start(&shared, long).expect("a caller waits");
        assert_eq!(round.limit, BUSY_POLL_MAX, "limits are capped");
        let would_block = || Err(IoError::from(ErrorKind::WouldBlock));
        assert!(matches!(round.step(would_block()), Continue(())));
        assert!(matches!(round.step(Ok(7)), Break(Some(Ok(7)))));
        assert!(
            matches!(round.step(Ok(0)), Break(Some(Ok(0)))),
            "end of file"
        );
        let reset = round.step(Err(IoError::from(ErrorKind::ConnectionReset)));
        assert!(matches!(reset, Break(Some(Err(e))) if e.kind() == ErrorKind::ConnectionReset));
        let unsupported = Err(IoError::from(ErrorKind::Unsupported));
        assert!(matches!(round.step(unsupported), Break(None)));
        // A limit reached.
        let mut done = BusyPoll::start(&shared, Duration::ZERO).unwrap();
        assert!(matches!(done.step(would_block()), Break(None)));
        // A local close is noticed within BUSY_POLL_CLOSE_CHECK tries.
        {
            let mut st = shared.lock();
            st.conn.close();
        }
        let stopped = (0..BUSY_POLL_CLOSE_CHECK).any(|_| round.step(would_block()).is_break());
        assert!(stopped, "kept polling a closed connection");
        // A call that is abandoned leaves no one waiting.
        let shared = test_shared();
        let id2 = shared
            .start_raw(REMOTE_PROC_1, None, false, Vec::new(), |_| Ok(()))
            .unwrap();
        assert!(BusyPoll::start(&shared, long).is_some());
        shared.lock().conn.abandon(id2);
        assert!(
            shared.lock().conn.awaiting_replies() > 0,
            "its reply is still owed"
        );
        assert!(
            BusyPoll::start(&shared, long).is_none(),
            "only an abandoned call"
        );
    }

    #[test]
    fn an_inline_write_stops_after_inline_max_and_gives_the_rest_back_in_order() {
        let shared = test_shared();
        let target = REMOTE_PROC_1;
        let body: Vec<u8> = (0..(1usize << 20)).map(|i| (i % 251) as u8).collect();
        shared
            .start_raw(target, None, false, Vec::new(), |out| {
                out.extend_from_slice(&body);
                Ok(())
            })
            .unwrap();
        let total = shared.lock().conn.transmit_buffered();
        assert!(total > body.len());
        // A socket that takes everything, 100 KiB at a time.
        let mut wire = Vec::new();
        let r = write_inline(&shared, |b| {
            let n = b.len().min(100 << 10);
            wire.extend_from_slice(&b[..n]);
            Ok(n)
        });
        assert!(matches!(r, Inline::Left));
        assert!(wire.len() >= INLINE_MAX && wire.len() < INLINE_MAX + (100 << 10));
        // The rest comes out next, in order: together it is the packet, byte for byte.
        let mut st = shared.lock();
        assert_eq!(st.conn.transmit_buffered(), total - wire.len());
        while let Some(t) = st.conn.poll_transmit() {
            wire.extend_from_slice(&t.data);
        }
        assert_eq!(wire.len(), total);
        assert_eq!(&wire[total - body.len()..], &body[..]);
    }
}
