//! Event subscriptions: every family (domain — every event id, network, storage pool, node
//! device, secret, QEMU monitor events, connection closed) as typed values, optionally
//! filtered to one object.
//!
//! A subscription registers one server-side callback per event id with the family's
//! `*_REGISTER_ANY` procedure (pipelined), routes the callback ids to its own queue and
//! deregisters them when dropped.
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

use crate::core::{CallResult, Shared};
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

/// Start the registration call for `reg`.
pub(crate) fn start_reg(shared: &Shared, s: &Subscription, reg: &Reg) -> Result<CallId, Error> {
    let t = shared_timeout();
    match reg {
        Reg::Domain(id) => shared.start::<procs::ConnectDomainEventCallbackRegisterAny>(
            &remote::RemoteConnectDomainEventCallbackRegisterAnyArgs {
                event_id: *id,
                dom: s.domain.clone().flatten(),
            },
            t,
            false,
        ),
        Reg::Network(id) => shared.start::<procs::ConnectNetworkEventRegisterAny>(
            &remote::RemoteConnectNetworkEventRegisterAnyArgs {
                event_id: *id,
                net: s.network.clone().flatten(),
            },
            t,
            false,
        ),
        Reg::Pool(id) => shared.start::<procs::ConnectStoragePoolEventRegisterAny>(
            &remote::RemoteConnectStoragePoolEventRegisterAnyArgs {
                event_id: *id,
                pool: s.storage_pool.clone().flatten(),
            },
            t,
            false,
        ),
        Reg::NodeDevice(id) => shared.start::<procs::ConnectNodeDeviceEventRegisterAny>(
            &remote::RemoteConnectNodeDeviceEventRegisterAnyArgs {
                event_id: *id,
                dev: s.node_device.clone().flatten(),
            },
            t,
            false,
        ),
        Reg::Secret(id) => shared.start::<procs::ConnectSecretEventRegisterAny>(
            &remote::RemoteConnectSecretEventRegisterAnyArgs {
                event_id: *id,
                secret: s.secret.clone().flatten(),
            },
            t,
            false,
        ),
        Reg::Qemu => {
            let (dom, event) = s.qemu_monitor.clone().unwrap_or_default();
            shared.start::<qprocs::ConnectDomainMonitorEventRegister>(
                &qemu::QemuConnectDomainMonitorEventRegisterArgs {
                    dom,
                    event,
                    flags: 0,
                },
                t,
                false,
            )
        }
        Reg::Close => shared.start::<procs::ConnectRegisterCloseCallback>(&(), t, false),
    }
}

fn shared_timeout() -> Option<std::time::Duration> {
    Some(std::time::Duration::from_secs(60))
}

fn decode<C: Call>(r: &libvirt_proto::Reply) -> Result<C::Ret, Error> {
    crate::core::decode_ret::<C>(r)
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
            decode::<procs::ConnectDomainEventCallbackRegisterAny>(&reply)?.callback_id,
        ),
        Reg::Network(_) => (
            EventFamily::Network,
            decode::<procs::ConnectNetworkEventRegisterAny>(&reply)?.callback_id,
        ),
        Reg::Pool(_) => (
            EventFamily::StoragePool,
            decode::<procs::ConnectStoragePoolEventRegisterAny>(&reply)?.callback_id,
        ),
        Reg::NodeDevice(_) => (
            EventFamily::NodeDevice,
            decode::<procs::ConnectNodeDeviceEventRegisterAny>(&reply)?.callback_id,
        ),
        Reg::Secret(_) => (
            EventFamily::Secret,
            decode::<procs::ConnectSecretEventRegisterAny>(&reply)?.callback_id,
        ),
        Reg::Qemu => (
            EventFamily::QemuMonitor,
            decode::<qprocs::ConnectDomainMonitorEventRegister>(&reply)?.callback_id,
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
        if st.conn.is_closed() {
            return;
        }
    }
    for r in regs {
        let id = match *r {
            Registered::Callback(EventFamily::Domain, cb) => {
                shared.start::<procs::ConnectDomainEventCallbackDeregisterAny>(
                    &remote::RemoteConnectDomainEventCallbackDeregisterAnyArgs { callback_id: cb },
                    None,
                    false,
                )
            }
            Registered::Callback(EventFamily::Network, cb) => {
                shared.start::<procs::ConnectNetworkEventDeregisterAny>(
                    &remote::RemoteConnectNetworkEventDeregisterAnyArgs { callback_id: cb },
                    None,
                    false,
                )
            }
            Registered::Callback(EventFamily::StoragePool, cb) => {
                shared.start::<procs::ConnectStoragePoolEventDeregisterAny>(
                    &remote::RemoteConnectStoragePoolEventDeregisterAnyArgs { callback_id: cb },
                    None,
                    false,
                )
            }
            Registered::Callback(EventFamily::NodeDevice, cb) => {
                shared.start::<procs::ConnectNodeDeviceEventDeregisterAny>(
                    &remote::RemoteConnectNodeDeviceEventDeregisterAnyArgs { callback_id: cb },
                    None,
                    false,
                )
            }
            Registered::Callback(EventFamily::Secret, cb) => shared
                .start::<procs::ConnectSecretEventDeregisterAny>(
                &remote::RemoteConnectSecretEventDeregisterAnyArgs { callback_id: cb },
                None,
                false,
            ),
            Registered::Callback(EventFamily::QemuMonitor, cb) => {
                shared.start::<qprocs::ConnectDomainMonitorEventDeregister>(
                    &qemu::QemuConnectDomainMonitorEventDeregisterArgs { callback_id: cb },
                    None,
                    false,
                )
            }
            Registered::Close => {
                shared.start::<procs::ConnectUnregisterCloseCallback>(&(), None, false)
            }
            Registered::Callback(..) => continue,
        };
        if let Ok(id) = id {
            shared.abandon(id);
        }
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
        return Some(Some(match TypedEvent::decode(&m) {
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
            let shared = self.shared().clone();
            let token = shared.add_subscriber(self.options().event_capacity);
            let mut stream = EventStream {
                client: self.clone(),
                token,
                regs: Vec::new(),
                ended: false,
            };
            let plan = plan(&sub);
            let mut started = Vec::new();
            for reg in &plan {
                started.push((reg, start_reg(&shared, &sub, reg)?));
            }
            let mut first_err = None;
            for (reg, id) in started {
                let r = self.wait_call(id).await;
                match finish_reg(&shared, reg, r, token) {
                    Ok(Some(x)) => stream.regs.push(x),
                    Ok(None) => {}
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            match first_err {
                Some(e) => Err(e),
                None => Ok(stream),
            }
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
            let token = shared.add_subscriber(self.options().event_capacity);
            let mut it = EventIter {
                client: self.clone(),
                token,
                regs: Vec::new(),
                ended: false,
            };
            let plan = plan(&sub);
            let mut started = Vec::new();
            for reg in &plan {
                started.push((reg, start_reg(&shared, &sub, reg)?));
            }
            let mut first_err = None;
            for (reg, id) in started {
                let r = shared.wait_blocking(id);
                match finish_reg(&shared, reg, r, token) {
                    Ok(Some(x)) => it.regs.push(x),
                    Ok(None) => {}
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            match first_err {
                Some(e) => Err(e),
                None => Ok(it),
            }
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
