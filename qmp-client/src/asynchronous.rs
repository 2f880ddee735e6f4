//! The async driver on tokio: one task moves bytes between the socket and the shared session.

use crate::core::{Core, Fds, Outgoing};
use crate::events::{EventFilter, Item, LagWatch, RecvError, Sink};
use crate::options::{parse_target, ConnectOptions, Exec, Target};
use crate::router::{Notice, Reply};
use crate::{Error, Result};
use qmp_proto::{Command, CommandId, Event, Greeting, Session};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, Notify};

/// Any byte stream QMP can run over (a socket, a pipe pair, an in-memory duplex).
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AsyncStream for T {}

type ReplyTx = oneshot::Sender<Result<Value>>;
type EventTx = mpsc::Sender<Item>;

impl Reply for ReplyTx {
    fn send(self, result: Result<Value>) {
        let _ = oneshot::Sender::send(self, result);
    }
}

impl Sink for EventTx {
    fn offer(&self, item: Item) -> Result<(), bool> {
        self.try_send(item)
            .map_err(|e| matches!(e, mpsc::error::TrySendError::Full(_)))
    }
}

pub(crate) struct Shared {
    core: Mutex<Core<ReplyTx, EventTx>>,
    pub(crate) wake: Notify,
    pub(crate) shutdown: AtomicBool,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Core<ReplyTx, EventTx>> {
        // A panic while holding the lock cannot leave the core half-updated in a way that
        // matters more than losing the connection; keep going.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Ends the driver when the last client clone goes away.
struct Handle(Arc<Shared>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.shutdown.store(true, Ordering::SeqCst);
        self.0.wake.notify_one();
    }
}

/// An async QMP connection. Cheap to clone; all clones share one connection. Calls from many
/// tasks are pipelined (up to 8 in flight, then queued in order).
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    _handle: Arc<Handle>,
    greeting: Arc<Greeting>,
    oob: bool,
    fd_passing: bool,
    options: Arc<ConnectOptions>,
    /// Commands go through libvirt instead of a socket.
    #[cfg(feature = "libvirt")]
    via: Option<Arc<crate::libvirt::Via>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("version", &self.greeting.version.qemu)
            .finish_non_exhaustive()
    }
}

enum Writer {
    #[cfg(unix)]
    Unix(tokio::net::unix::OwnedWriteHalf),
    Other(tokio::io::WriteHalf<Box<dyn AsyncStream>>),
}

impl Writer {
    async fn write_front(&mut self, out: &mut VecDeque<Outgoing>) -> std::io::Result<()> {
        let front = out.front_mut().expect("called with something to write");
        let rest = &front.bytes[front.written..];
        let n = if front.fds.is_empty() {
            match self {
                #[cfg(unix)]
                Writer::Unix(w) => w.write(rest).await?,
                Writer::Other(w) => w.write(rest).await?,
            }
        } else {
            match self {
                #[cfg(unix)]
                Writer::Unix(w) => {
                    let s: &tokio::net::UnixStream = w.as_ref();
                    let n = loop {
                        s.writable().await?;
                        match s.try_io(tokio::io::Interest::WRITABLE, || {
                            crate::fds::send_with_fds(s, rest, &front.fds)
                        }) {
                            Ok(n) => break n,
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                            Err(e) => return Err(e),
                        }
                    };
                    front.fds.clear();
                    n
                }
                Writer::Other(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::Unsupported,
                        "fd passing needs a unix socket",
                    ))
                }
            }
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        front.written += n;
        if front.written == front.bytes.len() {
            out.pop_front();
        }
        Ok(())
    }
}

type ReadyTx = oneshot::Sender<Result<Greeting>>;

async fn drive(
    shared: Arc<Shared>,
    mut reader: Box<dyn AsyncRead + Send + Unpin>,
    mut writer: Writer,
    mut ready: Option<ReadyTx>,
) {
    let mut out: VecDeque<Outgoing> = VecDeque::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut greeting = None;
    loop {
        shared.lock().take_outgoing(&mut out);
        let notices;
        tokio::select! {
            biased;
            _ = shared.wake.notified() => {
                if shared.shutdown.load(Ordering::SeqCst) {
                    notices = shared.lock().eof();
                } else {
                    continue;
                }
            }
            r = reader.read(&mut buf) => {
                notices = match r {
                    Ok(0) => shared.lock().eof(),
                    Ok(n) => shared.lock().input(&buf[..n]),
                    Err(e) => {
                        tracing::warn!(error = %e, "QMP read failed");
                        shared.lock().eof()
                    }
                };
            }
            r = writer.write_front(&mut out), if !out.is_empty() => {
                match r {
                    Ok(()) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "QMP write failed");
                        notices = shared.lock().eof();
                    }
                }
            }
        }
        let mut closed = false;
        for n in notices {
            match n {
                Notice::Greeting(g) => greeting = Some(g),
                Notice::Ready => {
                    if let (Some(tx), Some(g)) = (ready.take(), greeting.take()) {
                        let _ = tx.send(Ok(g));
                    }
                }
                Notice::Failed(e) => {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(Err(e));
                    }
                }
                Notice::Closed => closed = true,
            }
        }
        if closed {
            if let Some(tx) = ready.take() {
                let _ = tx.send(Err(Error::Closed { command: None }));
            }
            return;
        }
    }
}

impl Client {
    /// Connect to `unix:PATH`, `tcp:HOST:PORT` or a socket path, then greet and negotiate.
    pub async fn connect(target: &str, options: ConnectOptions) -> Result<Self> {
        match parse_target(target) {
            Target::Unix(p) => Self::connect_unix(p, options).await,
            Target::Tcp(a) => Self::connect_tcp(a, options).await,
        }
    }

    /// Connect to a unix socket (fd passing available) within the connect timeout (a listener
    /// whose backlog is full makes a unix connect wait), then greet within the greeting timeout.
    #[cfg(unix)]
    pub async fn connect_unix(
        path: impl AsRef<std::path::Path>,
        options: ConnectOptions,
    ) -> Result<Self> {
        let stream =
            crate::unix_connect::connect_within_async(path.as_ref(), options.connect_timeout)
                .await?;
        let (r, w) = stream.into_split();
        Self::start(Box::new(r), Writer::Unix(w), true, options).await
    }

    /// Connect over TCP (`host:port`).
    pub async fn connect_tcp(addr: &str, options: ConnectOptions) -> Result<Self> {
        let stream = tokio::time::timeout(
            options.connect_timeout,
            tokio::net::TcpStream::connect(addr),
        )
        .await
        .map_err(|_| Error::ConnectTimeout {
            target: addr.to_owned(),
            after: options.connect_timeout,
        })?
        .map_err(|e| Error::Connect {
            target: addr.to_owned(),
            source: Arc::new(e),
        })?;
        let _ = stream.set_nodelay(true);
        Self::connect_stream(stream, options).await
    }

    /// Run QMP over any byte stream (no fd passing).
    pub async fn connect_stream<S: AsyncStream>(
        stream: S,
        options: ConnectOptions,
    ) -> Result<Self> {
        let boxed: Box<dyn AsyncStream> = Box::new(stream);
        let (r, w) = tokio::io::split(boxed);
        Self::start(Box::new(r), Writer::Other(w), false, options).await
    }

    async fn start(
        reader: Box<dyn AsyncRead + Send + Unpin>,
        writer: Writer,
        fd_passing: bool,
        options: ConnectOptions,
    ) -> Result<Self> {
        let shared = Arc::new(Shared {
            core: Mutex::new(Core::new(Session::new(options.session))),
            wake: Notify::new(),
            shutdown: AtomicBool::new(false),
        });
        let (tx, rx) = oneshot::channel();
        tokio::spawn(drive(shared.clone(), reader, writer, Some(tx)));
        let handle = Arc::new(Handle(shared.clone()));
        let greeting = match tokio::time::timeout(options.greeting_timeout, rx).await {
            Err(_) => {
                return Err(Error::GreetingTimeout {
                    after: options.greeting_timeout,
                })
            }
            Ok(Err(_)) => return Err(Error::Closed { command: None }),
            Ok(Ok(r)) => r?,
        };
        let oob = shared.lock().session.oob_enabled();
        Ok(Self {
            shared,
            _handle: handle,
            greeting: Arc::new(greeting),
            oob,
            fd_passing,
            options: Arc::new(options),
            #[cfg(feature = "libvirt")]
            via: None,
        })
    }

    /// A client whose commands go to `via` (no socket, no driver task; `None` only in tests
    /// that feed events in and send no commands).
    #[cfg(feature = "libvirt")]
    pub(crate) fn for_backend(
        greeting: Greeting,
        options: ConnectOptions,
        via: Option<Arc<crate::libvirt::Via>>,
    ) -> Self {
        let shared = Arc::new(Shared {
            core: Mutex::new(Core::new(Session::new(options.session))),
            wake: Notify::new(),
            shutdown: AtomicBool::new(false),
        });
        Self {
            _handle: Arc::new(Handle(shared.clone())),
            shared,
            greeting: Arc::new(greeting),
            oob: false,
            fd_passing: false,
            options: Arc::new(options),
            via,
        }
    }

    /// The state event subscribers hang off (for a backend feeding events in).
    #[cfg(feature = "libvirt")]
    pub(crate) fn shared_for_backend(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// The server's greeting (QEMU version, capabilities offered).
    pub fn greeting(&self) -> &Greeting {
        &self.greeting
    }

    /// Whether out-of-band execution was negotiated.
    pub fn oob_enabled(&self) -> bool {
        self.oob
    }

    /// Whether the connection has ended (QEMU exited, IO failed, or protocol broke).
    pub fn is_closed(&self) -> bool {
        self.shared.lock().session.state() == qmp_proto::State::Closed
    }

    /// Events QEMU sent that were longer than the framing limit
    /// ([`SessionConfig::framer`](qmp_proto::SessionConfig)): they are dropped unread (their
    /// name is unknown, so no subscriber can be told of them specifically), logged and counted
    /// here.
    pub fn oversize_events_dropped(&self) -> u64 {
        self.shared.lock().session.oversize_events_dropped()
    }

    /// The most in-band commands that were in flight (written, unanswered) at once on this
    /// connection: shows pipelining used the window (at most
    /// [`SessionConfig::max_in_flight`](qmp_proto::SessionConfig)).
    pub fn max_in_flight_seen(&self) -> usize {
        self.shared.lock().session.max_in_flight_seen()
    }

    /// Run a command by name with JSON arguments (an object, or `None`), with the default timeout.
    pub async fn execute(&self, command: &str, arguments: Option<Value>) -> Result<Value> {
        self.execute_with(command, arguments, Exec::default()).await
    }

    /// Run a command with per-call settings (timeout, `exec-oob`, fds).
    ///
    /// Dropping the returned future cancels the command: if it was not yet written it never is,
    /// otherwise its reply is dropped when it arrives.
    pub async fn execute_with(
        &self,
        command: &str,
        arguments: Option<Value>,
        exec: Exec,
    ) -> Result<Value> {
        #[cfg(unix)]
        let fds: Fds = exec.fds;
        #[cfg(not(unix))]
        let fds: Fds = Vec::new();
        if !fds.is_empty() && !self.fd_passing {
            return Err(Error::FdPassingUnsupported);
        }
        #[cfg(feature = "libvirt")]
        if let Some(via) = &self.via {
            if exec.oob {
                // libvirt owns the monitor and sends in-band only.
                return Err(qmp_proto::Error::OobNotNegotiated.into());
            }
            let timeout = exec.timeout.or(self.options.command_timeout);
            return via.execute(command, arguments, timeout).await;
        }
        let (tx, rx) = oneshot::channel();
        let id = self
            .shared
            .lock()
            .submit(command, arguments, exec.oob, fds, tx)?;
        self.shared.wake.notify_one();
        let mut guard = CancelOnDrop {
            shared: &self.shared,
            id: Some(id),
        };
        let timeout = exec.timeout.or(self.options.command_timeout);
        let result = match timeout {
            Some(t) => match tokio::time::timeout(t, rx).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(Error::Timeout {
                        command: command.to_owned(),
                        after: t,
                    })
                }
            },
            None => rx.await,
        };
        guard.id = None;
        result.unwrap_or_else(|_| {
            Err(Error::Closed {
                command: Some(command.to_owned()),
            })
        })
    }

    /// Run a typed command (see [`qmp_proto::generated`] and [`Command`]).
    pub async fn call<C: Command>(&self, command: &C) -> Result<C::Returns> {
        let value = self.execute(C::NAME, command.arguments()?).await?;
        Ok(C::decode_return(value)?)
    }

    /// Receive matching events from now on. The subscription holds up to
    /// [`ConnectOptions::event_queue`] events; past that it reports [`RecvError::Lagged`].
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
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let mut core = self.shared.lock();
        let lag = if core.session.state() != qmp_proto::State::Closed {
            core.router.events.add(filter.clone(), tx)
        } else {
            LagWatch::default()
        };
        Subscription { rx, filter, lag }
    }

    /// Run a command and wait for the event it causes (subscribing first, so an event that
    /// arrives before the command's return is not missed). Returns the command's value and the
    /// event. The wait is [`Subscription::next_within`]: matching events dropped from its full
    /// queue before one is received end it at once with [`Error::EventsLost`].
    pub async fn execute_then_wait_event(
        &self,
        command: &str,
        arguments: Option<Value>,
        filter: EventFilter,
        timeout: Duration,
    ) -> Result<(Value, Event)> {
        let mut sub = self.subscribe(filter);
        let value = self.execute(command, arguments).await?;
        let event = sub.next_within(timeout).await?;
        Ok((value, event))
    }
}

struct CancelOnDrop<'a> {
    shared: &'a Arc<Shared>,
    id: Option<CommandId>,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.shared.lock().cancel(id);
            self.shared.wake.notify_one();
        }
    }
}

/// A stream of events matching a filter. See [`Client::subscribe`].
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<Item>,
    filter: EventFilter,
    lag: LagWatch,
}

impl Subscription {
    /// The next matching event; [`RecvError::Lagged`] where events were lost to a full queue
    /// (returned at once when the events queued before the loss have been taken, not when a
    /// newer event arrives), [`RecvError::Closed`] after the connection ended and the queue is
    /// drained. Cancel-safe.
    pub async fn recv(&mut self) -> Result<Event, RecvError> {
        // A loss can only be pending here with an empty queue behind it if it was not yet put
        // in the queue; while waiting, a new loss needs a full queue, which ends the wait.
        if let Some(n) = self.lag.take() {
            return Err(RecvError::Lagged(n));
        }
        let item = self.rx.recv().await;
        if item.is_some() {
            self.lag.received();
        }
        match item {
            Some(Item::Event(e)) => Ok(e),
            Some(Item::Lost(n)) => Err(RecvError::Lagged(n)),
            None => Err(RecvError::Closed),
        }
    }

    /// The next matching event within `timeout`, as a crate error (lost events are skipped
    /// over; [`next_within`](Self::next_within) fails on them instead).
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Result<Event> {
        let what = self.filter.describe();
        let wait = async {
            loop {
                match self.recv().await {
                    Ok(e) => return Ok(e),
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(lost = n, "event subscriber lagged")
                    }
                    Err(RecvError::Closed) => return Err(Error::Closed { command: None }),
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| Error::EventTimeout {
                what,
                after: timeout,
            })?
    }

    /// The next matching event within `timeout`; matching events lost to a full queue before it
    /// (the awaited one may be among them) end the wait at once with [`Error::EventsLost`]
    /// rather than letting it run out its time. [`Error::EventTimeout`] when nothing comes,
    /// [`Error::Closed`] when the connection ended. What the helpers' waits use.
    pub async fn next_within(&mut self, timeout: Duration) -> Result<Event> {
        let what = self.filter.describe();
        let wait = async {
            match self.recv().await {
                Ok(e) => Ok(e),
                Err(RecvError::Lagged(lost)) => Err(Error::EventsLost {
                    what: what.clone(),
                    lost,
                }),
                Err(RecvError::Closed) => Err(Error::Closed { command: None }),
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or_else(|_| {
                Err(Error::EventTimeout {
                    what: what.clone(),
                    after: timeout,
                })
            })
    }
}
