//! Event subscriptions: every family (domain — every event id, network, storage pool, node
//! device, secret, QEMU monitor events, connection closed) as typed values, optionally
//! filtered to one object.
//!
//! A subscription registers one server-side callback per event id with the family's
//! `*_REGISTER_ANY` procedure (pipelined), routes the callback ids to its own queue and
//! deregisters them when dropped. A callback id is routed the moment its registration reply
//! is decoded; events of a family that arrive while one of its registrations is in flight
//! (libvirtd can send one before the reply) are held and handed to the subscriber whose
//! reply names their callback id. Registering waits at most
//! [`ClientOptions::call_timeout`](crate::ClientOptions) in all. If subscribing fails, times out
//! or (async) is dropped half-way, every registration the daemon accepted is deregistered,
//! including those whose replies arrive later.
//!
//! # Overflow policy
//! Each subscription buffers at most [`ClientOptions::event_capacity`](crate::ClientOptions)
//! events. When it is full, NEW events are dropped and counted; the subscriber's next item is
//! then [`EventItem::Lagged`]`(n)` (followed by the buffered, older events). A slow or absent consumer
//! never delays replies, streams or other subscriptions. When the connection ends the
//! subscriber receives [`EventItem::Closed`] and then the end of the stream/iterator.

use libvirt_proto::generated::api::{
    DomainEventID, NetworkEventID, NodeDeviceEventID, SecretEventID, StoragePoolEventID,
};
use libvirt_proto::generated::qemu::{self, procs as qprocs};
use libvirt_proto::generated::remote::{self, procs, RemoteNonnullDomain};
use libvirt_proto::program::Call;
use libvirt_proto::{CallId, CloseReason, EventFamily};

use crate::core::{CallResult, Shared, State};
use crate::{Error, TypedEvent};

/// `REMOTE_PROC_CONNECT_EVENT_CONNECTION_CLOSED`.
pub(crate) const CONNECTION_CLOSED_PROC: i32 = 362;

/// What to subscribe to. `None` fields are not subscribed; `Some(None)` means every object of
/// that family; `Some(Some(x))` only `x`.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Subscription {
    /// Domain events (every event id the daemon knows).
    pub domain: Option<Option<RemoteNonnullDomain>>,
    /// Network events.
    pub network: Option<Option<remote::RemoteNonnullNetwork>>,
    /// Storage pool events.
    pub storage_pool: Option<Option<remote::RemoteNonnullStoragePool>>,
    /// Node device events.
    pub node_device: Option<Option<remote::RemoteNonnullNodeDevice>>,
    /// Secret events.
    pub secret: Option<Option<remote::RemoteNonnullSecret>>,
    /// QEMU monitor events (QEMU program): domain filter and event-name filter.
    pub qemu_monitor: Option<(Option<RemoteNonnullDomain>, Option<String>)>,
    /// The daemon's connection-closed notifications (`CONNECT_REGISTER_CLOSE_CALLBACK`).
    pub connection_closed: bool,
}

impl Subscription {
    /// Every family, every object (QEMU monitor events included: they need the QEMU driver,
    /// so use [`Subscription::all_remote`] on other drivers).
    pub fn all() -> Self {
        Self {
            qemu_monitor: Some((None, None)),
            ..Self::all_remote()
        }
    }

    /// Every family of the remote program, every object.
    pub fn all_remote() -> Self {
        Self {
            domain: Some(None),
            network: Some(None),
            storage_pool: Some(None),
            node_device: Some(None),
            secret: Some(None),
            qemu_monitor: None,
            connection_closed: true,
        }
    }

    /// Every domain event of one domain (or every domain with `None`).
    pub fn domain(dom: Option<RemoteNonnullDomain>) -> Self {
        Self {
            domain: Some(dom),
            ..Self::default()
        }
    }

    /// Every network event of one network (or every network with `None`).
    pub fn network(net: Option<remote::RemoteNonnullNetwork>) -> Self {
        Self {
            network: Some(net),
            ..Self::default()
        }
    }

    /// Every storage pool event of one pool (or every pool with `None`).
    pub fn storage_pool(pool: Option<remote::RemoteNonnullStoragePool>) -> Self {
        Self {
            storage_pool: Some(pool),
            ..Self::default()
        }
    }

    /// Every node device event of one device (or every device with `None`).
    pub fn node_device(dev: Option<remote::RemoteNonnullNodeDevice>) -> Self {
        Self {
            node_device: Some(dev),
            ..Self::default()
        }
    }

    /// Every secret event of one secret (or every secret with `None`).
    pub fn secret(secret: Option<remote::RemoteNonnullSecret>) -> Self {
        Self {
            secret: Some(secret),
            ..Self::default()
        }
    }

    /// Only the daemon's connection-closed notifications (and the end of the connection).
    pub fn connection_closed() -> Self {
        Self {
            connection_closed: true,
            ..Self::default()
        }
    }

    /// QEMU monitor events of one domain (or all), optionally only the named event.
    pub fn qemu_monitor(dom: Option<RemoteNonnullDomain>, event: Option<String>) -> Self {
        Self {
            qemu_monitor: Some((dom, event)),
            ..Self::default()
        }
    }
}

/// One item of a subscription.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventItem {
    /// An event.
    Event(TypedEvent),
    /// `n` events were dropped because this subscription's buffer was full.
    Lagged(u64),
    /// The connection ended; nothing follows.
    Closed(CloseReason),
}

/// One registration request.
#[derive(Debug, Clone)]
pub(crate) enum Reg {
    Domain(i32),
    Network(i32),
    Pool(i32),
    NodeDevice(i32),
    Secret(i32),
    Qemu,
    Close,
}

impl Reg {
    /// The callback family (`None` for the close callback).
    pub(crate) fn family(&self) -> Option<EventFamily> {
        Some(match self {
            Reg::Domain(_) => EventFamily::Domain,
            Reg::Network(_) => EventFamily::Network,
            Reg::Pool(_) => EventFamily::StoragePool,
            Reg::NodeDevice(_) => EventFamily::NodeDevice,
            Reg::Secret(_) => EventFamily::Secret,
            Reg::Qemu => EventFamily::QemuMonitor,
            Reg::Close => return None,
        })
    }
}

/// A registration the daemon accepted (what to undo on drop).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Registered {
    Callback(EventFamily, i32),
    Close,
}

pub(crate) fn plan(s: &Subscription) -> Vec<Reg> {
    let mut out = Vec::new();
    let ids = |k: &[(&str, i32)]| k.iter().map(|(_, v)| *v).collect::<Vec<_>>();
    if s.domain.is_some() {
        let k: Vec<(&str, i32)> = DomainEventID::known()
            .iter()
            .map(|(n, v)| (*n, v.0))
            .collect();
        out.extend(ids(&k).into_iter().map(Reg::Domain));
    }
    if s.network.is_some() {
        let k: Vec<(&str, i32)> = NetworkEventID::known()
            .iter()
            .map(|(n, v)| (*n, v.0))
            .collect();
        out.extend(ids(&k).into_iter().map(Reg::Network));
    }
    if s.storage_pool.is_some() {
        let k: Vec<(&str, i32)> = StoragePoolEventID::known()
            .iter()
            .map(|(n, v)| (*n, v.0))
            .collect();
        out.extend(ids(&k).into_iter().map(Reg::Pool));
    }
    if s.node_device.is_some() {
        let k: Vec<(&str, i32)> = NodeDeviceEventID::known()
            .iter()
            .map(|(n, v)| (*n, v.0))
            .collect();
        out.extend(ids(&k).into_iter().map(Reg::NodeDevice));
    }
    if s.secret.is_some() {
        let k: Vec<(&str, i32)> = SecretEventID::known()
            .iter()
            .map(|(n, v)| (*n, v.0))
            .collect();
        out.extend(ids(&k).into_iter().map(Reg::Secret));
    }
    if s.qemu_monitor.is_some() {
        out.push(Reg::Qemu);
    }
    if s.connection_closed {
        out.push(Reg::Close);
    }
    out
}

/// Start the registration call for `reg` on behalf of subscriber `token`.
pub(crate) fn start_reg(
    shared: &Shared,
    s: &Subscription,
    reg: &Reg,
    token: u64,
) -> Result<CallId, Error> {
    let r = reg.clone();
    match reg {
        Reg::Domain(id) => shared
            .start_registration::<procs::ConnectDomainEventCallbackRegisterAny>(
                &remote::RemoteConnectDomainEventCallbackRegisterAnyArgs {
                    event_id: *id,
                    dom: s.domain.clone().flatten(),
                },
                r,
                token,
            ),
        Reg::Network(id) => shared.start_registration::<procs::ConnectNetworkEventRegisterAny>(
            &remote::RemoteConnectNetworkEventRegisterAnyArgs {
                event_id: *id,
                net: s.network.clone().flatten(),
            },
            r,
            token,
        ),
        Reg::Pool(id) => shared.start_registration::<procs::ConnectStoragePoolEventRegisterAny>(
            &remote::RemoteConnectStoragePoolEventRegisterAnyArgs {
                event_id: *id,
                pool: s.storage_pool.clone().flatten(),
            },
            r,
            token,
        ),
        Reg::NodeDevice(id) => shared
            .start_registration::<procs::ConnectNodeDeviceEventRegisterAny>(
                &remote::RemoteConnectNodeDeviceEventRegisterAnyArgs {
                    event_id: *id,
                    dev: s.node_device.clone().flatten(),
                },
                r,
                token,
            ),
        Reg::Secret(id) => shared.start_registration::<procs::ConnectSecretEventRegisterAny>(
            &remote::RemoteConnectSecretEventRegisterAnyArgs {
                event_id: *id,
                secret: s.secret.clone().flatten(),
            },
            r,
            token,
        ),
        Reg::Qemu => {
            let (dom, event) = s.qemu_monitor.clone().unwrap_or_default();
            shared.start_registration::<qprocs::ConnectDomainMonitorEventRegister>(
                &qemu::QemuConnectDomainMonitorEventRegisterArgs {
                    dom,
                    event,
                    flags: 0,
                },
                r,
                token,
            )
        }
        Reg::Close => {
            shared.start_registration::<procs::ConnectRegisterCloseCallback>(&(), r, token)
        }
    }
}

/// A registration's reply was decoded (called from `State::dispatch`, in wire order):
/// `outcome` is `Ok(callback id)` on success. Hands held early events to the subscriber (or
/// drops them for an orphan), undoes an orphan's registration, and drops held events no
/// in-flight registration can claim any more.
pub(crate) fn registration_replied(
    st: &mut State,
    reg: &Reg,
    token: u64,
    outcome: Result<Option<i32>, ()>,
    orphan: bool,
) {
    match (reg.family(), outcome) {
        (None, Ok(_)) => {
            if orphan {
                st.close_subs.remove(&token);
                start_dereg(st, Registered::Close);
            } else {
                st.close_subs.insert(token);
            }
        }
        (Some(f), Ok(Some(cb))) => {
            let early = std::mem::take(&mut st.early);
            for m in early {
                let mine = m.callback_id == Some(cb)
                    && libvirt_proto::event::callback_event_family(m.program, m.procedure)
                        == Some(f);
                if !mine {
                    st.early.push_back(m);
                } else if orphan || !st.deliver(token, &m) {
                    st.unrouted_messages += 1;
                }
            }
            if orphan {
                st.conn.unroute_callback(f, cb);
                start_dereg(st, Registered::Callback(f, cb));
            }
        }
        _ => {}
    }
    if let Some(f) = reg.family() {
        if !st.registration_in_flight(f) {
            let before = st.early.len();
            st.early.retain(|m| {
                libvirt_proto::event::callback_event_family(m.program, m.procedure) != Some(f)
            });
            st.unrouted_messages += (before - st.early.len()) as u64;
        }
    }
}

/// Queue a call of `C` whose reply nobody wants (deregistrations).
fn send_abandoned<C: Call>(st: &mut State, args: &C::Args) {
    let target = libvirt_proto::ProcedureId {
        program: C::PROGRAM,
        version: C::VERSION,
        procedure: C::PROCEDURE as i32,
    };
    if let Ok(id) = st
        .conn
        .start_call_with(target, libvirt_proto::CallOptions::default(), |out| {
            xdr::to_writer_vec(args, out).map_err(|e| libvirt_proto::Error::encode(C::NAME, e))
        })
    {
        st.conn.abandon(id);
    }
}

/// Queue the deregistration of `r` (the close callback only when no subscriber still wants
/// it: the daemon keeps one per connection). The caller wakes the writer.
fn start_dereg(st: &mut State, r: Registered) {
    if st.conn.is_closed() {
        return;
    }
    match r {
        Registered::Callback(EventFamily::Domain, cb) => {
            send_abandoned::<procs::ConnectDomainEventCallbackDeregisterAny>(
                st,
                &remote::RemoteConnectDomainEventCallbackDeregisterAnyArgs { callback_id: cb },
            )
        }
        Registered::Callback(EventFamily::Network, cb) => {
            send_abandoned::<procs::ConnectNetworkEventDeregisterAny>(
                st,
                &remote::RemoteConnectNetworkEventDeregisterAnyArgs { callback_id: cb },
            )
        }
        Registered::Callback(EventFamily::StoragePool, cb) => {
            send_abandoned::<procs::ConnectStoragePoolEventDeregisterAny>(
                st,
                &remote::RemoteConnectStoragePoolEventDeregisterAnyArgs { callback_id: cb },
            )
        }
        Registered::Callback(EventFamily::NodeDevice, cb) => {
            send_abandoned::<procs::ConnectNodeDeviceEventDeregisterAny>(
                st,
                &remote::RemoteConnectNodeDeviceEventDeregisterAnyArgs { callback_id: cb },
            )
        }
        Registered::Callback(EventFamily::Secret, cb) => {
            send_abandoned::<procs::ConnectSecretEventDeregisterAny>(
                st,
                &remote::RemoteConnectSecretEventDeregisterAnyArgs { callback_id: cb },
            )
        }
        Registered::Callback(EventFamily::QemuMonitor, cb) => {
            send_abandoned::<qprocs::ConnectDomainMonitorEventDeregister>(
                st,
                &qemu::QemuConnectDomainMonitorEventDeregisterArgs { callback_id: cb },
            )
        }
        Registered::Close => {
            if st.close_subs.is_empty() {
                send_abandoned::<procs::ConnectUnregisterCloseCallback>(st, &());
            }
        }
        Registered::Callback(..) => {}
    }
}

/// Finish a registration: route its callback id to `token`. `Ok(None)`: the daemon does not
/// know this event id (older daemon) — skipped.
pub(crate) fn finish_reg(
    shared: &Shared,
    reg: &Reg,
    result: CallResult,
    token: u64,
) -> Result<Option<Registered>, Error> {
    let reply = match result {
        Ok(r) => r,
        Err(e) => {
            // An event id newer than the daemon: libvirtd answers "unsupported event ID N"
            // (domains), "unsupported network event ID N", "unsupported storage pool event
            // ID N", ... (VIR_ERR_INTERNAL_ERROR from the RPC layer) or VIR_ERR_INVALID_ARG /
            // VIR_ERR_NO_SUPPORT for that id only; the other ids still work.
            let skip = e.remote().is_some_and(|r| {
                matches!(i32::from(r.code), 3 | 8)
                    || r.message.as_deref().is_some_and(unsupported_event_id)
            }) && !matches!(reg, Reg::Close | Reg::Qemu);
            return if skip { Ok(None) } else { Err(e.into()) };
        }
    };
    let (family, cb) = match reg {
        Reg::Domain(_) => (
            EventFamily::Domain,
            shared
                .decode_ret::<procs::ConnectDomainEventCallbackRegisterAny>(&reply)?
                .callback_id,
        ),
        Reg::Network(_) => (
            EventFamily::Network,
            shared
                .decode_ret::<procs::ConnectNetworkEventRegisterAny>(&reply)?
                .callback_id,
        ),
        Reg::Pool(_) => (
            EventFamily::StoragePool,
            shared
                .decode_ret::<procs::ConnectStoragePoolEventRegisterAny>(&reply)?
                .callback_id,
        ),
        Reg::NodeDevice(_) => (
            EventFamily::NodeDevice,
            shared
                .decode_ret::<procs::ConnectNodeDeviceEventRegisterAny>(&reply)?
                .callback_id,
        ),
        Reg::Secret(_) => (
            EventFamily::Secret,
            shared
                .decode_ret::<procs::ConnectSecretEventRegisterAny>(&reply)?
                .callback_id,
        ),
        Reg::Qemu => (
            EventFamily::QemuMonitor,
            shared
                .decode_ret::<qprocs::ConnectDomainMonitorEventRegister>(&reply)?
                .callback_id,
        ),
        Reg::Close => {
            shared.lock().close_subs.insert(token);
            return Ok(Some(Registered::Close));
        }
    };
    shared.lock().conn.route_callback(family, cb, token);
    Ok(Some(Registered::Callback(family, cb)))
}

/// Whether a daemon error message says an event id is unknown to it
/// (`unsupported event ID 5`, `unsupported network event ID 1`, ...).
fn unsupported_event_id(message: &str) -> bool {
    message
        .find("unsupported ")
        .is_some_and(|i| message[i..].contains(" event ID "))
}

/// Undo registrations without waiting (the calls go out; their replies are discarded).
pub(crate) fn deregister(shared: &Shared, token: u64, regs: &[Registered]) {
    {
        let mut st = shared.lock();
        st.subs.remove(&token);
        st.close_subs.remove(&token);
        for r in regs {
            if let Registered::Callback(f, cb) = r {
                st.conn.unroute_callback(*f, *cb);
            }
        }
        for r in regs {
            start_dereg(&mut st, *r);
        }
    }
    shared.wake_writer();
}

/// A subscription being set up: the registrations in flight (in plan order) and those the
/// daemon accepted. Dropped before [`Pending::finish`] (error, timeout, dropped future), it
/// undoes everything: accepted registrations are deregistered now, those still in flight
/// when their replies arrive.
pub(crate) struct Pending {
    shared: std::sync::Arc<Shared>,
    token: u64,
    started: std::collections::VecDeque<(Reg, CallId)>,
    regs: Vec<Registered>,
    done: bool,
}

impl Pending {
    /// Add the subscriber queue and start every registration `sub` needs.
    pub(crate) fn start(
        shared: std::sync::Arc<Shared>,
        capacity: usize,
        sub: &Subscription,
    ) -> Result<Pending, Error> {
        let token = shared.add_subscriber(capacity);
        let mut p = Pending {
            shared,
            token,
            started: Default::default(),
            regs: Vec::new(),
            done: false,
        };
        for reg in plan(sub) {
            let id = start_reg(&p.shared, sub, &reg, token)?;
            p.started.push_back((reg, id));
        }
        Ok(p)
    }

    /// The next registration to wait for.
    pub(crate) fn front(&self) -> Option<CallId> {
        self.started.front().map(|(_, id)| *id)
    }

    /// Take call `id`'s result if it is there (registering `waker` otherwise); never
    /// abandons the call.
    pub(crate) fn take_result(
        &self,
        id: CallId,
        waker: Option<&std::task::Waker>,
    ) -> Option<CallResult> {
        let mut st = self.shared.lock();
        match st.calls.get_mut(&id.0) {
            Some(slot) => match slot.result.take() {
                Some(r) => {
                    st.calls.remove(&id.0);
                    Some(r)
                }
                None => {
                    if let Some(w) = waker {
                        slot.waker = Some(w.clone());
                    }
                    None
                }
            },
            None => Some(Err(libvirt_proto::Error::Closed(
                st.conn
                    .close_reason()
                    .cloned()
                    .unwrap_or(CloseReason::Local),
            ))),
        }
    }

    /// Record the front registration's result.
    pub(crate) fn finish_front(&mut self, r: CallResult) -> Result<(), Error> {
        let Some((reg, _)) = self.started.pop_front() else {
            return Ok(());
        };
        if let Some(x) = finish_reg(&self.shared, &reg, r, self.token)? {
            self.regs.push(x);
        }
        Ok(())
    }

    /// Everything registered: hand over the token and registrations.
    pub(crate) fn finish(mut self) -> (u64, Vec<Registered>) {
        self.done = true;
        (self.token, std::mem::take(&mut self.regs))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        {
            let mut st = self.shared.lock();
            for (reg, id) in self.started.drain(..) {
                let Some(slot) = st.calls.get_mut(&id.0) else {
                    continue;
                };
                match slot.result.take() {
                    // Replied already (and routed by dispatch): undo now.
                    Some(r) => {
                        st.calls.remove(&id.0);
                        if let Ok(reply) = r {
                            let cb = reply
                                .body
                                .get(..4)
                                .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                            registration_replied(&mut st, &reg, self.token, Ok(cb), true);
                        }
                    }
                    // Undone by dispatch when the reply arrives.
                    None => slot.orphan = true,
                }
            }
        }
        deregister(&self.shared, self.token, &self.regs);
    }
}

/// The limit for registering, as a typed timeout error.
fn registration_timeout(t: std::time::Duration) -> Error {
    Error::Timeout {
        what: "event registration".to_owned(),
        timeout: t,
    }
}

/// Take the next item for subscription `token`: `Some(item)`, or `None` when nothing is
/// queued (and the stream has not ended). `Some(None)` means the end.
pub(crate) fn try_next(
    shared: &Shared,
    token: u64,
    ended: &mut bool,
    waker: Option<&std::task::Waker>,
) -> Option<Option<Result<EventItem, Error>>> {
    if *ended {
        return Some(None);
    }
    let mut st = shared.lock();
    let Some(q) = st.subs.get_mut(&token) else {
        *ended = true;
        return Some(None);
    };
    if q.lagged > 0 {
        let n = std::mem::take(&mut q.lagged);
        return Some(Some(Ok(EventItem::Lagged(n))));
    }
    if let Some(m) = q.items.pop_front() {
        drop(st);
        return Some(Some(match TypedEvent::decode_with(&m, shared.decode) {
            Ok(Some(ev)) => Ok(EventItem::Event(ev)),
            Ok(None) => Err(Error::EventDecode {
                program: m.program,
                procedure: m.procedure,
                source: libvirt_proto::Error::StreamState {
                    serial: 0,
                    reason: "not an event procedure of the remote or qemu program",
                },
            }),
            Err(source) => Err(Error::EventDecode {
                program: m.program,
                procedure: m.procedure,
                source,
            }),
        }));
    }
    if let Some(reason) = q.closed.take() {
        *ended = true;
        return Some(Some(Ok(EventItem::Closed(reason))));
    }
    if let Some(w) = waker {
        q.waker = Some(w.clone());
    }
    None
}

#[cfg(feature = "async")]
pub use self::asynch::EventStream;

#[cfg(feature = "async")]
mod asynch {
    use super::*;
    use crate::Client;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A subscription on the async client: a `futures_core::Stream` of
    /// `Result<EventItem, Error>`. Dropping it deregisters its callbacks.
    #[derive(Debug)]
    pub struct EventStream {
        client: Client,
        token: u64,
        regs: Vec<Registered>,
        ended: bool,
    }

    impl Client {
        /// Subscribe to events (see [`Subscription`] and the module docs for the overflow
        /// policy). Registrations run pipelined; event ids the daemon does not know are
        /// skipped.
        pub async fn subscribe(&self, sub: Subscription) -> Result<EventStream, Error> {
            let mut pending =
                Pending::start(self.shared().clone(), self.options().event_capacity, &sub)?;
            let mut first_err = None;
            let wait = async {
                while let Some(id) = pending.front() {
                    let r = std::future::poll_fn(|cx| {
                        match pending.take_result(id, Some(cx.waker())) {
                            Some(r) => Poll::Ready(r),
                            None => Poll::Pending,
                        }
                    })
                    .await;
                    if let Err(e) = pending.finish_front(r) {
                        first_err.get_or_insert(e);
                    }
                }
            };
            match self.options().call_timeout {
                Some(t) => tokio::time::timeout(t, wait)
                    .await
                    .map_err(|_| registration_timeout(t))?,
                None => wait.await,
            }
            if let Some(e) = first_err {
                return Err(e);
            }
            let (token, regs) = pending.finish();
            Ok(EventStream {
                client: self.clone(),
                token,
                regs,
                ended: false,
            })
        }

        /// Every event of every family of the remote program (all domains, networks, pools,
        /// node devices, secrets; connection closed).
        pub async fn events(&self) -> Result<EventStream, Error> {
            self.subscribe(Subscription::all_remote()).await
        }
    }

    impl EventStream {
        /// The next item (`None` after the connection closed).
        pub async fn next(&mut self) -> Option<Result<EventItem, Error>> {
            std::future::poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut *self), cx))
                .await
        }

        /// How many server callbacks this subscription registered.
        pub fn registrations(&self) -> usize {
            self.regs.len()
        }
    }

    impl futures_core::Stream for EventStream {
        type Item = Result<EventItem, Error>;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            let this = &mut *self;
            match try_next(
                this.client.shared(),
                this.token,
                &mut this.ended,
                Some(cx.waker()),
            ) {
                Some(x) => Poll::Ready(x),
                None => Poll::Pending,
            }
        }
    }

    impl Drop for EventStream {
        fn drop(&mut self) {
            deregister(self.client.shared(), self.token, &self.regs);
        }
    }
}

#[cfg(feature = "blocking")]
pub use self::blocking::EventIter;

#[cfg(feature = "blocking")]
mod blocking {
    use super::*;
    use crate::blocking::Client;
    use std::time::{Duration, Instant};

    /// A subscription on the blocking client: an `Iterator` of `Result<EventItem, Error>`
    /// (blocks for the next event). Dropping it deregisters its callbacks.
    #[derive(Debug)]
    pub struct EventIter {
        client: Client,
        token: u64,
        regs: Vec<Registered>,
        ended: bool,
    }

    impl Client {
        /// Subscribe to events (see [`Subscription`]).
        pub fn subscribe(&self, sub: Subscription) -> Result<EventIter, Error> {
            let shared = self.shared().clone();
            let mut pending = Pending::start(shared.clone(), self.options().event_capacity, &sub)?;
            let limit = self.options().call_timeout;
            let end = limit.map(|t| Instant::now() + t);
            let mut first_err = None;
            while let Some(id) = pending.front() {
                let r = loop {
                    if let Some(r) = pending.take_result(id, None) {
                        break r;
                    }
                    let st = shared.lock();
                    let ready = st.calls.get(&id.0).is_none_or(|s| s.result.is_some());
                    if ready {
                        continue;
                    }
                    match end {
                        Some(end) => {
                            let now = Instant::now();
                            if now >= end {
                                return Err(registration_timeout(limit.unwrap_or_default()));
                            }
                            let _ = shared.cv.wait_timeout(st, end - now);
                        }
                        None => drop(shared.cv.wait(st)),
                    }
                };
                if let Err(e) = pending.finish_front(r) {
                    first_err.get_or_insert(e);
                }
            }
            if let Some(e) = first_err {
                return Err(e);
            }
            let (token, regs) = pending.finish();
            Ok(EventIter {
                client: self.clone(),
                token,
                regs,
                ended: false,
            })
        }

        /// Every event of every family of the remote program.
        pub fn events(&self) -> Result<EventIter, Error> {
            self.subscribe(Subscription::all_remote())
        }
    }

    impl EventIter {
        /// The next item, waiting at most `timeout`; `Ok(None)` on timeout.
        pub fn next_timeout(
            &mut self,
            timeout: Duration,
        ) -> Option<Option<Result<EventItem, Error>>> {
            let end = Instant::now() + timeout;
            let shared = self.client.shared().clone();
            loop {
                if let Some(x) = try_next(&shared, self.token, &mut self.ended, None) {
                    return Some(x);
                }
                let now = Instant::now();
                if now >= end {
                    return None;
                }
                let st = shared.lock();
                let ready = st
                    .subs
                    .get(&self.token)
                    .is_none_or(|q| !q.items.is_empty() || q.lagged > 0 || q.closed.is_some());
                if !ready {
                    let _ = shared.cv.wait_timeout(st, end - now);
                }
            }
        }

        /// How many server callbacks this subscription registered.
        pub fn registrations(&self) -> usize {
            self.regs.len()
        }
    }

    impl Iterator for EventIter {
        type Item = Result<EventItem, Error>;

        fn next(&mut self) -> Option<Self::Item> {
            loop {
                if let Some(x) = self.next_timeout(Duration::from_secs(3600)) {
                    return x;
                }
            }
        }
    }

    impl Drop for EventIter {
        fn drop(&mut self) {
            deregister(self.client.shared(), self.token, &self.regs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use libvirt_proto::generated::api::{ErrorDomain, ErrorNumber};
    use libvirt_proto::packet::encode_packet;
    use libvirt_proto::{Connection, Framer, Header, MessageStatus, MessageType, RemoteError};
    use std::sync::Arc;

    const NET_EVENT: i32 = 315; // REMOTE_PROC_NETWORK_EVENT_LIFECYCLE

    fn shared() -> Arc<Shared> {
        Arc::new(Shared::new(
            Connection::default(),
            Box::new(|| {}),
            Box::new(|| {}),
            None,
        ))
    }

    fn packet(
        kind: MessageType,
        status: MessageStatus,
        serial: u32,
        procedure: i32,
        body: &[u8],
    ) -> Vec<u8> {
        let h = Header {
            program: libvirt_proto::event::REMOTE_PROGRAM,
            version: 1,
            procedure,
            kind,
            serial,
            status,
        };
        let mut out = Vec::new();
        encode_packet(&h, 0, body, &mut out).unwrap();
        out
    }

    fn reg_reply(serial: u32, cb: i32) -> Vec<u8> {
        packet(
            MessageType::Reply,
            MessageStatus::Ok,
            serial,
            <procs::ConnectNetworkEventRegisterAny as libvirt_proto::program::ProcedureMarker>::PROCEDURE as i32,
            &cb.to_be_bytes(),
        )
    }

    fn net_event(cb: i32) -> Vec<u8> {
        let mut body = cb.to_be_bytes().to_vec();
        body.extend_from_slice(b"rest");
        packet(MessageType::Message, MessageStatus::Ok, 0, NET_EVENT, &body)
    }

    fn feed(sh: &Shared, wire: &[u8]) {
        let mut st = sh.lock();
        st.handle_input(wire);
        st.dispatch();
    }

    /// The packets queued for sending: (serial, procedure, body).
    fn sent(sh: &Shared) -> Vec<(u32, i32, Vec<u8>)> {
        let mut st = sh.lock();
        let mut f = Framer::new();
        let mut out = Vec::new();
        while let Some(t) = st.conn.poll_transmit() {
            f.push(&t.data);
            while let Some(p) = f.next_packet().unwrap() {
                out.push((p.header.serial, p.header.procedure, p.body.to_vec()));
            }
        }
        out
    }

    fn deregs(sent: &[(u32, i32, Vec<u8>)]) -> Vec<i32> {
        sent.iter()
            .filter(|(_, p, _)| {
                *p == <procs::ConnectNetworkEventDeregisterAny as libvirt_proto::program::ProcedureMarker>::PROCEDURE as i32
            })
            .map(|(_, _, b)| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    fn wait_all(p: &mut Pending) -> Result<(), Error> {
        let mut first = None;
        while let Some(id) = p.front() {
            let r = p.take_result(id, None).expect("replied");
            if let Err(e) = p.finish_front(r) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    #[test]
    fn events_before_and_right_after_the_registration_reply_reach_the_subscriber() {
        let sh = shared();
        let mut p = Pending::start(sh.clone(), 16, &Subscription::network(None)).unwrap();
        let serials: Vec<u32> = sent(&sh).iter().map(|(s, _, _)| *s).collect();
        assert_eq!(serials.len(), NetworkEventID::known().len());
        // libvirtd may queue an event for callback 7 before the reply naming it; another
        // one follows the reply in the same read; a third is for nobody (callback 99).
        let mut wire = net_event(7);
        wire.extend(net_event(99));
        wire.extend(reg_reply(serials[0], 7));
        wire.extend(net_event(7));
        for s in &serials[1..] {
            wire.extend(reg_reply(*s, 8));
        }
        feed(&sh, &wire);
        wait_all(&mut p).unwrap();
        let (token, regs) = p.finish();
        assert_eq!(regs.len(), serials.len());
        let st = sh.lock();
        let q = &st.subs[&token];
        assert_eq!(q.items.len(), 2, "both events of callback 7 delivered");
        assert!(q.items.iter().all(|m| m.callback_id == Some(7)));
        assert_eq!(q.lagged, 0);
        // Callback 99's event was held while registrations were in flight, then dropped.
        assert!(st.early.is_empty());
        assert_eq!(st.unrouted_messages, 1);
    }

    #[test]
    fn a_failed_registration_undoes_the_accepted_ones() {
        let sh = shared();
        let mut p = Pending::start(sh.clone(), 16, &Subscription::network(None)).unwrap();
        let serials: Vec<u32> = sent(&sh).iter().map(|(s, _, _)| *s).collect();
        assert!(serials.len() >= 2);
        let mut wire = reg_reply(serials[0], 7);
        let mut b = Vec::new();
        RemoteError::new(ErrorNumber(1), ErrorDomain(7), "internal error: boom")
            .encode(&mut b)
            .unwrap();
        wire.extend(packet(
            MessageType::Reply,
            MessageStatus::Error,
            serials[1],
            <procs::ConnectNetworkEventRegisterAny as libvirt_proto::program::ProcedureMarker>::PROCEDURE as i32,
            &b,
        ));
        for s in &serials[2..] {
            wire.extend(reg_reply(*s, 9));
        }
        feed(&sh, &wire);
        assert!(wait_all(&mut p).is_err());
        drop(p);
        let mut want = vec![7];
        want.extend(std::iter::repeat_n(9, serials.len() - 2));
        assert_eq!(deregs(&sent(&sh)), want);
        let st = sh.lock();
        assert!(st.subs.is_empty() && st.calls.is_empty());
    }

    #[test]
    fn a_subscribe_dropped_half_way_deregisters_late_replies_too() {
        let sh = shared();
        let p = Pending::start(sh.clone(), 16, &Subscription::network(None)).unwrap();
        let serials: Vec<u32> = sent(&sh).iter().map(|(s, _, _)| *s).collect();
        assert!(serials.len() >= 2);
        // The first reply is in (not yet taken), the others are in flight; then the
        // subscriber gives up.
        feed(&sh, &reg_reply(serials[0], 7));
        drop(p);
        assert_eq!(deregs(&sent(&sh)), [7]);
        assert!(sh.lock().subs.is_empty());
        // Late replies: each registration is undone when its reply arrives.
        let mut wire = Vec::new();
        for (i, s) in serials[1..].iter().enumerate() {
            wire.extend(reg_reply(*s, 20 + i as i32));
        }
        // An event for a late callback is not delivered anywhere.
        wire.extend(net_event(20));
        feed(&sh, &wire);
        let want: Vec<i32> = (0..serials.len() as i32 - 1).map(|i| 20 + i).collect();
        assert_eq!(deregs(&sent(&sh)), want);
        let st = sh.lock();
        assert!(st.calls.is_empty(), "no slot leaked");
        assert!(st.early.is_empty());
        assert_eq!(st.unrouted_messages, 1);
    }

    #[test]
    fn the_close_callback_is_unregistered_only_by_its_last_subscriber() {
        let sh = shared();
        let mut regs = Vec::new();
        let mut tokens = Vec::new();
        for _ in 0..2 {
            let mut p = Pending::start(sh.clone(), 4, &Subscription::connection_closed()).unwrap();
            let s = sent(&sh);
            assert_eq!(s.len(), 1);
            feed(
                &sh,
                &packet(
                    MessageType::Reply,
                    MessageStatus::Ok,
                    s[0].0,
                    <procs::ConnectRegisterCloseCallback as libvirt_proto::program::ProcedureMarker>::PROCEDURE as i32,
                    &[],
                ),
            );
            wait_all(&mut p).unwrap();
            let (t, r) = p.finish();
            tokens.push(t);
            regs.push(r);
        }
        let unregister = <procs::ConnectUnregisterCloseCallback as libvirt_proto::program::ProcedureMarker>::PROCEDURE as i32;
        deregister(&sh, tokens[0], &regs[0]);
        assert!(sent(&sh).iter().all(|(_, p, _)| *p != unregister));
        deregister(&sh, tokens[1], &regs[1]);
        assert_eq!(
            sent(&sh)
                .iter()
                .filter(|(_, p, _)| *p == unregister)
                .count(),
            1
        );
    }

    #[test]
    fn unsupported_event_id_messages_of_every_family() {
        for m in [
            "internal error: unsupported event ID 27",
            "internal error: unsupported network event ID 1",
            "internal error: unsupported storage pool event ID 2",
            "internal error: unsupported node device event ID 2",
            "internal error: unsupported secret event ID 2",
        ] {
            assert!(unsupported_event_id(m), "{m}");
        }
        for m in [
            "unsupported flags (0x1)",
            "event ID 3 failed",
            "no such domain",
        ] {
            assert!(!unsupported_event_id(m), "{m}");
        }
    }
}
