//! The blocking driver on std only: callers write their own commands; one reader thread per
//! connection reads replies and events and writes commands the in-flight window released.

use crate::core::{Core, Fds, Outgoing};
use crate::events::{EventFilter, Item, LagWatch, RecvError, Sink};
use crate::options::{parse_target, ConnectOptions, Exec, Target};
use crate::router::{Notice, Reply};
use crate::{Error, Result};
use qmp_proto::{Command, CommandId, Event, Greeting, Session};
use serde_json::Value;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

type ReplyTx = SyncSender<Result<Value>>;
type EventTx = SyncSender<Item>;

impl Reply for ReplyTx {
    fn send(self, result: Result<Value>) {
        let _ = self.try_send(result);
    }
}

impl Sink for EventTx {
    fn offer(&self, item: Item) -> Result<(), bool> {
        self.try_send(item)
            .map_err(|e| matches!(e, TrySendError::Full(_)))
    }
}

enum Writer {
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixStream),
    Other(Box<dyn Write + Send>),
    /// The connection ended: the caller's writer was dropped, nothing more is written.
    Closed,
}

impl Writer {
    fn write_all(&mut self, out: &mut VecDeque<Outgoing>) -> std::io::Result<()> {
        while let Some(front) = out.front_mut() {
            let rest = &front.bytes[front.written..];
            let n = match self {
                #[cfg(unix)]
                Writer::Unix(s) if !front.fds.is_empty() => {
                    let n = crate::fds::send_with_fds(&*s, rest, &front.fds)?;
                    front.fds.clear();
                    n
                }
                #[cfg(unix)]
                Writer::Unix(s) => s.write(rest)?,
                Writer::Other(w) => w.write(rest)?,
                Writer::Closed => return Err(std::io::ErrorKind::BrokenPipe.into()),
            };
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            front.written += n;
            if front.written == front.bytes.len() {
                out.pop_front();
            }
        }
        match self {
            #[cfg(unix)]
            Writer::Unix(_) | Writer::Closed => Ok(()),
            Writer::Other(w) => w.flush(),
        }
    }
}

struct Inner {
    core: Mutex<Core<ReplyTx, EventTx>>,
    /// Lock order: `writer`, then `core`. Holding `writer` while taking the session's output
    /// keeps commands in submission order on the wire.
    writer: Mutex<Writer>,
    shutdown: Box<dyn Fn() + Send + Sync>,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    /// Write whatever the session has to send. A write error ends the connection (see
    /// [`close`](Self::close)).
    fn flush(&self) {
        let mut w = relock(&self.writer);
        let mut out = VecDeque::new();
        relock(&self.core).take_outgoing(&mut out);
        if out.is_empty() {
            return;
        }
        if let Err(e) = w.write_all(&mut out) {
            tracing::warn!(error = %e, "QMP write failed");
            drop(w);
            self.close();
        }
    }

    /// End the connection: drop the writer (a caller's own writer too, so its peer sees the
    /// end), shut the socket down, and close the session so every pending command fails at
    /// once with [`Error::Closed`]. The reader thread stops at its next read (at once for
    /// sockets, whose shutdown ends the read).
    fn close(&self) {
        // Shut the socket down first: that also ends a write blocked on a full socket, which
        // holds the writer's lock.
        (self.shutdown)();
        let old = std::mem::replace(&mut *relock(&self.writer), Writer::Closed);
        drop(old);
        let _ = relock(&self.core).eof();
    }
}

struct Handle(Arc<Inner>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A blocking QMP connection; clone it to share it between threads (commands from many threads
/// are pipelined).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    _handle: Arc<Handle>,
    greeting: Arc<Greeting>,
    oob: bool,
    fd_passing: bool,
    options: Arc<ConnectOptions>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("blocking::Client")
            .field("version", &self.greeting.version.qemu)
            .finish_non_exhaustive()
    }
}

fn reader_loop(
    inner: Arc<Inner>,
    mut reader: Box<dyn Read + Send>,
    ready: SyncSender<Result<Greeting>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut greeting = None;
    let mut ready = Some(ready);
    loop {
        let notices = match reader.read(&mut buf) {
            Ok(0) => relock(&inner.core).eof(),
            Ok(n) => relock(&inner.core).input(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "QMP read failed");
                relock(&inner.core).eof()
            }
        };
        inner.flush();
        // Closed by a write error or by the last client going away.
        let mut closed = relock(&inner.core).session.state() == qmp_proto::State::Closed;
        for n in notices {
            match n {
                Notice::Greeting(g) => greeting = Some(g),
                Notice::Ready => {
                    if let (Some(tx), Some(g)) = (ready.take(), greeting.take()) {
                        let _ = tx.try_send(Ok(g));
                    }
                }
                Notice::Failed(e) => {
                    if let Some(tx) = ready.take() {
                        let _ = tx.try_send(Err(e));
                    }
                }
                Notice::Closed => closed = true,
            }
        }
        if closed {
            if let Some(tx) = ready.take() {
                let _ = tx.try_send(Err(Error::Closed { command: None }));
            }
            return;
        }
    }
}

impl Client {
    /// Connect to `unix:PATH`, `tcp:HOST:PORT` or a socket path, then greet and negotiate.
    pub fn connect(target: &str, options: ConnectOptions) -> Result<Self> {
        match parse_target(target) {
            Target::Unix(p) => Self::connect_unix(p, options),
            Target::Tcp(a) => Self::connect_tcp(a, options),
        }
    }

    /// Connect to a unix socket (fd passing available) within the connect timeout (a listener
    /// whose backlog is full makes a unix connect wait), then greet within the greeting timeout.
    #[cfg(unix)]
    pub fn connect_unix(
        path: impl AsRef<std::path::Path>,
        options: ConnectOptions,
    ) -> Result<Self> {
        let s = crate::unix_connect::connect_within(path.as_ref(), options.connect_timeout)?;
        s.set_nonblocking(false)?;
        let r = s.try_clone()?;
        let w = s.try_clone()?;
        let shutdown = move || {
            let _ = s.shutdown(std::net::Shutdown::Both);
        };
        Self::start(
            Box::new(r),
            Writer::Unix(w),
            Box::new(shutdown),
            true,
            options,
        )
    }

    /// Connect over TCP (`host:port`) within the connect timeout.
    pub fn connect_tcp(addr: &str, options: ConnectOptions) -> Result<Self> {
        use std::net::{TcpStream, ToSocketAddrs};
        let err = |e: std::io::Error| Error::Connect {
            target: addr.to_owned(),
            source: Arc::new(e),
        };
        let sa = addr.to_socket_addrs().map_err(err)?.next().ok_or_else(|| {
            err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "address resolves to nothing",
            ))
        })?;
        let s = TcpStream::connect_timeout(&sa, options.connect_timeout).map_err(|e| {
            if e.kind() == std::io::ErrorKind::TimedOut {
                Error::ConnectTimeout {
                    target: addr.to_owned(),
                    after: options.connect_timeout,
                }
            } else {
                err(e)
            }
        })?;
        let _ = s.set_nodelay(true);
        let r = s.try_clone()?;
        let w = s.try_clone()?;
        let shutdown = move || {
            let _ = s.shutdown(std::net::Shutdown::Both);
        };
        Self::start(
            Box::new(r),
            Writer::Other(Box::new(w)),
            Box::new(shutdown),
            false,
            options,
        )
    }

    /// Run QMP over any reader/writer pair (no fd passing).
    ///
    /// A write error ends the connection: pending and later commands fail at once with
    /// [`Error::Closed`] and the writer is dropped; so does dropping the last clone of the
    /// client. The reader thread ends when its current read returns (end of stream, an error or
    /// more bytes): a generic reader cannot be interrupted.
    pub fn connect_io(
        reader: impl Read + Send + 'static,
        writer: impl Write + Send + 'static,
        options: ConnectOptions,
    ) -> Result<Self> {
        Self::start(
            Box::new(reader),
            Writer::Other(Box::new(writer)),
            Box::new(|| {}),
            false,
            options,
        )
    }

    fn start(
        reader: Box<dyn Read + Send>,
        writer: Writer,
        shutdown: Box<dyn Fn() + Send + Sync>,
        fd_passing: bool,
        options: ConnectOptions,
    ) -> Result<Self> {
        let inner = Arc::new(Inner {
            core: Mutex::new(Core::new(Session::new(options.session))),
            writer: Mutex::new(writer),
            shutdown,
        });
        let handle = Arc::new(Handle(inner.clone()));
        let (tx, rx) = sync_channel(1);
        let thread_inner = inner.clone();
        std::thread::Builder::new()
            .name("qmp-reader".into())
            .spawn(move || reader_loop(thread_inner, reader, tx))?;
        let greeting = match rx.recv_timeout(options.greeting_timeout) {
            Ok(r) => r?,
            Err(RecvTimeoutError::Timeout) => {
                return Err(Error::GreetingTimeout {
                    after: options.greeting_timeout,
                })
            }
            Err(RecvTimeoutError::Disconnected) => return Err(Error::Closed { command: None }),
        };
        let oob = relock(&inner.core).session.oob_enabled();
        Ok(Self {
            inner,
            _handle: handle,
            greeting: Arc::new(greeting),
            oob,
            fd_passing,
            options: Arc::new(options),
        })
    }

    /// The server's greeting.
    pub fn greeting(&self) -> &Greeting {
        &self.greeting
    }

    /// Whether out-of-band execution was negotiated.
    pub fn oob_enabled(&self) -> bool {
        self.oob
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        relock(&self.inner.core).session.state() == qmp_proto::State::Closed
    }

    /// Events QEMU sent that were longer than the framing limit
    /// ([`SessionConfig::framer`](qmp_proto::SessionConfig)): they are dropped unread (their
    /// name is unknown, so no subscriber can be told of them specifically), logged and counted
    /// here.
    pub fn oversize_events_dropped(&self) -> u64 {
        relock(&self.inner.core).session.oversize_events_dropped()
    }

    /// The most in-band commands that were in flight (written, unanswered) at once on this
    /// connection: shows pipelining used the window (at most
    /// [`SessionConfig::max_in_flight`](qmp_proto::SessionConfig)).
    pub fn max_in_flight_seen(&self) -> usize {
        relock(&self.inner.core).session.max_in_flight_seen()
    }

    /// Send a command without waiting; wait on the returned [`Pending`]. Many submits in a row
    /// are pipelined.
    pub fn submit(&self, command: &str, arguments: Option<Value>, exec: Exec) -> Result<Pending> {
        #[cfg(unix)]
        let fds: Fds = exec.fds;
        #[cfg(not(unix))]
        let fds: Fds = Vec::new();
        if !fds.is_empty() && !self.fd_passing {
            return Err(Error::FdPassingUnsupported);
        }
        let (tx, rx) = sync_channel(1);
        let id = relock(&self.inner.core).submit(command, arguments, exec.oob, fds, tx)?;
        self.inner.flush();
        Ok(Pending {
            inner: self.inner.clone(),
            id: Some(id),
            rx,
            command: command.to_owned(),
            timeout: exec.timeout.or(self.options.command_timeout),
        })
    }

    /// Run a command by name with JSON arguments, with the default timeout.
    pub fn execute(&self, command: &str, arguments: Option<Value>) -> Result<Value> {
        self.submit(command, arguments, Exec::default())?.wait()
    }

    /// Run a command with per-call settings (timeout, `exec-oob`, fds).
    pub fn execute_with(
        &self,
        command: &str,
        arguments: Option<Value>,
        exec: Exec,
    ) -> Result<Value> {
        self.submit(command, arguments, exec)?.wait()
    }

    /// Run a typed command.
    pub fn call<C: Command>(&self, command: &C) -> Result<C::Returns> {
        let value = self.execute(C::NAME, command.arguments()?)?;
        Ok(C::decode_return(value)?)
    }

    /// Receive matching events from now on (bounded by [`ConnectOptions::event_queue`]).
    ///
    /// Overflow policy: nothing waits for a slow subscriber. Once its queue is full, further
    /// matching events are dropped for it alone and counted; the loss is reported once, as
    /// [`RecvError::Lagged`], in stream order (after the events queued before it, before any
    /// newer one) and as soon as the subscriber next receives after taking those earlier events,
    /// without waiting for another event to arrive.
    pub fn subscribe(&self, filter: EventFilter) -> Subscription {
        self.subscribe_with_capacity(filter, self.options.event_queue)
    }

    /// [`subscribe`](Self::subscribe) with an explicit queue bound.
    pub fn subscribe_with_capacity(&self, filter: EventFilter, capacity: usize) -> Subscription {
        let (tx, rx) = sync_channel(capacity.max(1));
        let mut core = relock(&self.inner.core);
        let lag = if core.session.state() != qmp_proto::State::Closed {
            core.router.events.add(filter.clone(), tx)
        } else {
            LagWatch::default()
        };
        Subscription {
            rx,
            filter,
            lag: std::cell::RefCell::new(lag),
        }
    }

    /// Run a command and wait for the event it causes (subscribed before sending). The wait is
    /// [`Subscription::next_within`]: matching events dropped from its full queue before one is
    /// received end it at once with [`Error::EventsLost`].
    pub fn execute_then_wait_event(
        &self,
        command: &str,
        arguments: Option<Value>,
        filter: EventFilter,
        timeout: Duration,
    ) -> Result<(Value, Event)> {
        let sub = self.subscribe(filter);
        let value = self.execute(command, arguments)?;
        let event = sub.next_within(timeout)?;
        Ok((value, event))
    }
}

/// A command sent by [`Client::submit`]. Dropping it without waiting cancels the command.
#[derive(Debug)]
pub struct Pending {
    inner: Arc<Inner>,
    id: Option<CommandId>,
    rx: Receiver<Result<Value>>,
    command: String,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inner")
    }
}

impl Pending {
    /// The id the command carries on the wire.
    pub fn id(&self) -> CommandId {
        self.id.expect("set until waited")
    }

    /// Wait for the reply (within the command's timeout; on timeout it is cancelled).
    pub fn wait(mut self) -> Result<Value> {
        let r = match self.timeout {
            Some(t) => match self.rx.recv_timeout(t) {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(Error::Timeout {
                        command: self.command.clone(),
                        after: t,
                    })
                }
                Err(RecvTimeoutError::Disconnected) => Err(Error::Closed {
                    command: Some(self.command.clone()),
                }),
            },
            None => self.rx.recv().unwrap_or_else(|_| {
                Err(Error::Closed {
                    command: Some(self.command.clone()),
                })
            }),
        };
        self.id = None;
        r
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            relock(&self.inner.core).cancel(id);
            self.inner.flush();
        }
    }
}

/// A stream of events matching a filter. See [`Client::subscribe`].
#[derive(Debug)]
pub struct Subscription {
    rx: Receiver<Item>,
    filter: EventFilter,
    /// In a cell so receiving takes `&self` (the receiver is not `Sync` either).
    lag: std::cell::RefCell<LagWatch>,
}

impl Subscription {
    /// The next matching event (blocks); [`RecvError::Lagged`] where events were lost to a full
    /// queue (returned at once when the events queued before the loss have been taken, not when
    /// a newer event arrives), [`RecvError::Closed`] after the connection ended and the queue is
    /// drained.
    pub fn recv(&self) -> Result<Event, RecvError> {
        if let Some(n) = self.lag.borrow_mut().take() {
            return Err(RecvError::Lagged(n));
        }
        match self.rx.recv() {
            Ok(item) => {
                self.lag.borrow_mut().received();
                match item {
                    Item::Event(e) => Ok(e),
                    Item::Lost(n) => Err(RecvError::Lagged(n)),
                }
            }
            Err(_) => Err(RecvError::Closed),
        }
    }

    /// The next matching event within `timeout` (lost events are skipped over;
    /// [`next_within`](Self::next_within) fails on them instead).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Event> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(n) = self.lag.borrow_mut().take() {
                tracing::warn!(lost = n, "event subscriber lagged");
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(item) => {
                    self.lag.borrow_mut().received();
                    match item {
                        Item::Event(e) => return Ok(e),
                        Item::Lost(n) => tracing::warn!(lost = n, "event subscriber lagged"),
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(Error::EventTimeout {
                        what: self.filter.describe(),
                        after: timeout,
                    })
                }
                Err(RecvTimeoutError::Disconnected) => return Err(Error::Closed { command: None }),
            }
        }
    }

    /// The next matching event within `timeout`; matching events lost to a full queue before it
    /// (the awaited one may be among them) end the wait at once with [`Error::EventsLost`]
    /// rather than letting it run out its time. [`Error::EventTimeout`] when nothing comes,
    /// [`Error::Closed`] when the connection ended. What the helpers' waits use.
    pub fn next_within(&self, timeout: Duration) -> Result<Event> {
        let lost = |lost| Error::EventsLost {
            what: self.filter.describe(),
            lost,
        };
        // While this waits, a new loss needs a full queue, which ends the wait with an item.
        if let Some(n) = self.lag.borrow_mut().take() {
            return Err(lost(n));
        }
        match self.rx.recv_timeout(timeout) {
            Ok(item) => {
                self.lag.borrow_mut().received();
                match item {
                    Item::Event(e) => Ok(e),
                    Item::Lost(n) => Err(lost(n)),
                }
            }
            Err(RecvTimeoutError::Timeout) => Err(Error::EventTimeout {
                what: self.filter.describe(),
                after: timeout,
            }),
            Err(RecvTimeoutError::Disconnected) => Err(Error::Closed { command: None }),
        }
    }
}
