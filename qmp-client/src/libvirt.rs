//! QMP through libvirt (feature `libvirt`): a [`Client`] whose commands go through
//! `virDomainQemuMonitorCommand` (the QEMU program's `DOMAIN_MONITOR_COMMAND`) of a
//! [`libvirt_client::Client`] and whose events come from its QEMU monitor event subscription.
//! Everything built on [`Client::execute`] (typed [`Client::call`], the helpers, the govmm
//! layer, subscriptions) then works the same for libvirt-managed guests.
//!
//! Differences from a direct socket: no fd passing ([`Error::FdPassingUnsupported`]), no
//! `exec-oob` (`Error::Protocol(OobNotNegotiated)`, as with a QEMU that does not offer it),
//! and the greeting is made up from `query-version` (capabilities empty: libvirt owns the
//! monitor and negotiated it).
//!
//! # Events lost in libvirt
//!
//! libvirt-client's subscription has a bounded queue of its own
//! ([`ClientOptions::event_capacity`](libvirt_client::ClientOptions)); when it overflows it
//! reports `EventItem::Lagged(n)`. That loss is passed on to every [`Client::subscribe`]r
//! (whatever its filter: nobody knows which events they were) as the crate reports a loss to
//! its own queues: [`RecvError::Lagged`](crate::RecvError::Lagged) from `recv`, and the
//! helpers' waits (`next_within`: `device_del_and_wait`, `execute_then_wait_event`, ...) end
//! at once with [`Error::EventsLost`] instead of running out their time. libvirt-client reports
//! its loss ahead of the older events it still holds (a full queue of them); the loss is put
//! back after those, where it happened, or as soon as libvirt has nothing more queued,
//! whichever comes first. A monitor event libvirt-client or this module cannot decode is lost
//! the same way, as `Lagged(1)` at its place.
//!
//! Errors: QEMU's error replies (relayed by libvirt as the monitor's JSON) are [`Error::Qmp`]
//! with QEMU's class; anything libvirt itself refuses or fails at (domain not running, lost
//! connection, ...) is [`Error::Libvirt`] carrying `libvirt_client::Error` (its
//! `remote_code()` gives libvirt's error number).

use crate::{Client, Error, Result};
use libvirt_client::events::{EventItem, Subscription as LvSubscription};
use libvirt_client::Domain;
use qmp_proto::{ErrorClass, Event, QmpError, Timestamp};
use serde_json::{json, Map, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The libvirt side of a [`Client`] made by [`Client::via_libvirt`].
pub(crate) struct Via {
    conn: libvirt_client::Client,
    dom: Domain,
}

impl Drop for Via {
    fn drop(&mut self) {
        tracing::debug!(domain = %self.dom.name, "QMP-over-libvirt client dropped");
    }
}

fn libvirt_error(command: &str, e: libvirt_client::Error) -> Error {
    Error::Libvirt {
        command: command.to_owned(),
        source: Arc::new(e),
    }
}

/// Turn the monitor's reply object into the command's value or error.
pub(crate) fn decode_reply(command: &str, reply: Value) -> Result<Value> {
    if let Some(v) = reply.get("return") {
        return Ok(v.clone());
    }
    if let Some(e) = reply.get("error") {
        let class = e["class"].as_str().unwrap_or("GenericError");
        let desc = e["desc"].as_str().unwrap_or("(no description)");
        return Err(Error::Qmp {
            command: command.to_owned(),
            error: QmpError {
                class: ErrorClass::from_name(class),
                desc: desc.to_owned(),
            },
        });
    }
    Err(Error::Protocol(qmp_proto::Error::BadReturn {
        command: command.to_owned(),
        reason: format!("libvirt's monitor answer has neither return nor error: {reply}"),
    }))
}

/// A QEMU monitor event as libvirt relays it, as a QMP event (`details` is the data as JSON
/// text; absent for events without data).
pub(crate) fn monitor_event(
    event: String,
    seconds: i64,
    micros: u32,
    details: Option<&str>,
) -> Result<Event> {
    let data = match details {
        None => Value::Object(Map::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| {
            Error::Protocol(qmp_proto::Error::BadEvent {
                event: event.clone(),
                reason: format!("libvirt's event details are not JSON ({e}): {text}"),
            })
        })?,
    };
    Ok(Event {
        event,
        data,
        timestamp: Timestamp {
            seconds,
            microseconds: i64::from(micros),
        },
    })
}

/// What the relay makes of one item of libvirt's monitor event subscription.
#[derive(Debug, PartialEq)]
pub(crate) enum Relayed {
    /// A QEMU event to fan out.
    Event(Event),
    /// This many events were dropped from libvirt-client's full queue; they came after the
    /// events it still holds.
    Lagged(u64),
    /// One event that could not be decoded, lost at its own place.
    Undecodable,
    /// Not a monitor event (nothing to pass on).
    Skip,
    /// The subscription ended.
    End,
}

/// Translate an item of libvirt's monitor event subscription.
pub(crate) fn relay(
    item: Option<std::result::Result<EventItem, libvirt_client::Error>>,
) -> Relayed {
    match item {
        Some(Ok(EventItem::Event(libvirt_client::TypedEvent::QemuDomainMonitorEvent(m)))) => {
            match monitor_event(m.event, m.seconds, m.micros, m.details.as_deref()) {
                Ok(e) => Relayed::Event(e),
                Err(e) => {
                    tracing::warn!(error = %e, "bad monitor event from libvirt");
                    Relayed::Undecodable
                }
            }
        }
        Some(Ok(EventItem::Lagged(n))) => {
            tracing::warn!(lost = n, "libvirt's monitor event subscription overflowed");
            Relayed::Lagged(n)
        }
        Some(Ok(EventItem::Closed(_))) | None => Relayed::End,
        Some(Ok(_)) => Relayed::Skip,
        Some(Err(e)) => {
            tracing::warn!(error = %e, "undecodable event from libvirt");
            Relayed::Undecodable
        }
    }
}

/// Puts libvirt-client's losses back where they happened. It reports `Lagged(n)` when its
/// queue of `held` events is full, ahead of those (older) events; the `n` lost ones came after
/// them.
#[derive(Debug)]
pub(crate) struct LossOrder {
    held: u64,
    /// Items taken from libvirt so far (events, and undecodable ones).
    taken: u64,
    /// Losses not yet reported: (due once `taken` reaches this, how many).
    pending: std::collections::VecDeque<(u64, u64)>,
}

impl LossOrder {
    pub(crate) fn new(held: usize) -> Self {
        Self {
            held: held.max(1) as u64,
            taken: 0,
            pending: Default::default(),
        }
    }

    /// libvirt reported `n` lost after what it holds now.
    pub(crate) fn lagged(&mut self, n: u64) {
        self.pending.push_back((self.taken + self.held, n));
    }

    /// An item libvirt held was taken (and passed on): the losses due right after it.
    pub(crate) fn taken(&mut self) -> Option<u64> {
        self.taken += 1;
        let mut due = 0;
        while let Some(&(at, n)) = self.pending.front() {
            if at > self.taken {
                break;
            }
            due += n;
            self.pending.pop_front();
        }
        (due > 0).then_some(due)
    }

    /// Whether losses wait for older events.
    pub(crate) fn waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    /// libvirt holds nothing more: every older event has been passed on, all losses are due.
    pub(crate) fn drained(&mut self) -> Option<u64> {
        let due: u64 = self.pending.drain(..).map(|(_, n)| n).sum();
        (due > 0).then_some(due)
    }
}

/// The next item of libvirt's subscription if one is ready now; `None` when its queue is empty.
async fn ready_item<S: MonitorEvents>(events: &mut S) -> Option<Option<LvItem>> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match events.poll_item(cx) {
            std::task::Poll::Ready(item) => Some(item),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

type LvItem = std::result::Result<EventItem, libvirt_client::Error>;

/// A source of libvirt monitor event items (the subscription's stream; scripted in tests).
pub(crate) trait MonitorEvents: Send + 'static {
    fn poll_item(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<LvItem>>;
}

impl MonitorEvents for libvirt_client::events::EventStream {
    fn poll_item(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<LvItem>> {
        std::pin::pin!(self.next()).poll(cx)
    }
}

/// Fan libvirt's monitor events out to `shared`'s subscribers, losses included, until the
/// subscription or the client ends; then end the subscribers' streams as a socket's EOF does.
pub(crate) async fn pump<S: MonitorEvents>(
    shared: Arc<crate::asynchronous::Shared>,
    mut events: S,
    held: usize,
) {
    let mut order = LossOrder::new(held);
    loop {
        let item = if order.waiting() {
            // Losses wait for the older events libvirt held: take what is ready; once
            // nothing is, those are all through and the losses are due.
            match ready_item(&mut events).await {
                Some(item) => item,
                None => {
                    if let Some(n) = order.drained() {
                        shared.lock().router.events.lost_upstream(n);
                    }
                    continue;
                }
            }
        } else {
            tokio::select! {
                _ = shared.wake.notified() => {
                    if shared.shutdown.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    continue;
                }
                item = std::future::poll_fn(|cx| events.poll_item(cx)) => item,
            }
        };
        let mut core = shared.lock();
        let events = &mut core.router.events;
        match relay(item) {
            Relayed::Event(e) => events.dispatch(&e),
            Relayed::Undecodable => events.lost_upstream(1),
            Relayed::Lagged(n) => {
                order.lagged(n);
                continue;
            }
            Relayed::Skip => continue,
            Relayed::End => break,
        }
        // An item libvirt held was passed on: the losses due right after it.
        if let Some(n) = order.taken() {
            events.lost_upstream(n);
        }
    }
    // As a socket's EOF: subscribers see the losses still owed, then the end; later
    // subscriptions end at once, `is_closed` turns true.
    let mut core = shared.lock();
    if let Some(n) = order.drained() {
        core.router.events.lost_upstream(n);
    }
    let _ = core.eof();
}

impl Via {
    pub(crate) async fn execute(
        &self,
        command: &str,
        arguments: Option<Value>,
        timeout: Option<Duration>,
    ) -> Result<Value> {
        let mut msg = json!({ "execute": command });
        if let Some(a) = arguments {
            if !a.is_object() {
                return Err(Error::Protocol(qmp_proto::Error::ArgumentsNotObject {
                    command: command.to_owned(),
                    got: "not an object",
                }));
            }
            msg["arguments"] = a;
        }
        let call = self.conn.qmp(&self.dom, &msg);
        let reply = match timeout {
            Some(t) => tokio::time::timeout(t, call)
                .await
                .map_err(|_| Error::Timeout {
                    command: command.to_owned(),
                    after: t,
                })?,
            None => call.await,
        }
        // libvirt's own refusals (domain not running, no such domain, access denied, the
        // connection gone) stay libvirt errors; only what QEMU's monitor answered becomes
        // `Error::Qmp` (libvirt hands the monitor's error reply back as JSON).
        .map_err(|e| libvirt_error(command, e))?;
        decode_reply(command, reply)
    }
}

impl Client {
    /// QMP to `dom` through the libvirt connection `conn` (the guest must run under libvirt's
    /// QEMU driver). Events come from a QEMU monitor event subscription for `dom`, fanned out to
    /// [`Client::subscribe`]rs like a direct connection's.
    pub async fn via_libvirt(
        conn: libvirt_client::Client,
        dom: Domain,
        options: crate::ConnectOptions,
    ) -> Result<Client> {
        let events = conn
            .subscribe(LvSubscription::qemu_monitor(Some(dom.clone()), None))
            .await
            .map_err(|e| libvirt_error("(monitor event subscription)", e))?;
        let via = Arc::new(Via { conn, dom });
        let version = via
            .execute("query-version", None, options.command_timeout)
            .await?;
        let version: qmp_proto::Version = serde_json::from_value(version).map_err(|e| {
            Error::Protocol(qmp_proto::Error::BadReturn {
                command: "query-version".into(),
                reason: e.to_string(),
            })
        })?;
        let greeting = qmp_proto::Greeting {
            version,
            capabilities: Vec::new(),
        };
        let held = via.conn.options().event_capacity;
        let client = Client::for_backend(greeting, options, Some(via));
        tokio::spawn(pump(client.shared_for_backend(), events, held));
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_errors() {
        assert_eq!(
            decode_reply("q", json!({"return": {"a": 1}, "id": "libvirt-7"})).unwrap(),
            json!({"a": 1})
        );
        let e = decode_reply(
            "q",
            json!({"error": {"class": "CommandNotFound", "desc": "no"}}),
        )
        .unwrap_err();
        assert_eq!(e.qmp_class(), Some(&ErrorClass::CommandNotFound));
        assert!(matches!(
            decode_reply("q", json!({"id": 1})),
            Err(Error::Protocol(_))
        ));
    }

    fn msg(event: &str, details: Option<&str>) -> LvItem {
        Ok(EventItem::Event(
            libvirt_client::TypedEvent::QemuDomainMonitorEvent(
                libvirt_client::libvirt_proto::generated::qemu::QemuDomainMonitorEventMsg {
                    event: event.into(),
                    seconds: 1,
                    micros: 2,
                    details: details.map(str::to_owned),
                    ..Default::default()
                },
            ),
        ))
    }

    #[test]
    fn relay_translates_items_and_losses() {
        match relay(Some(msg("DEVICE_DELETED", Some(r#"{"device":"d1"}"#)))) {
            Relayed::Event(e) => {
                assert_eq!(e.event, "DEVICE_DELETED");
                assert_eq!(e.data["device"], "d1");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(relay(Some(Ok(EventItem::Lagged(7)))), Relayed::Lagged(7));
        assert_eq!(relay(Some(msg("X", Some("{nope")))), Relayed::Undecodable);
        assert_eq!(
            relay(Some(Ok(EventItem::Closed(
                libvirt_client::libvirt_proto::CloseReason::Eof
            )))),
            Relayed::End
        );
        assert_eq!(relay(None), Relayed::End);
    }

    /// libvirt reports a loss ahead of the full queue of older events it holds: it is due after
    /// those, or when libvirt holds nothing more.
    #[test]
    fn losses_go_after_the_events_libvirt_held() {
        let mut o = LossOrder::new(2);
        assert!(!o.waiting());
        assert_eq!(o.taken(), None);
        o.lagged(3);
        assert!(o.waiting());
        assert_eq!(o.taken(), None);
        // One older event was taken, a new one found room behind the other, then more were
        // lost: those come after the new one.
        o.lagged(1);
        assert_eq!(o.taken(), Some(3));
        assert_eq!(o.taken(), Some(1));
        assert!(!o.waiting());
        o.lagged(5);
        assert_eq!(o.taken(), None);
        assert_eq!(o.drained(), Some(5));
        assert_eq!(o.drained(), None);
        assert!(!o.waiting());
    }

    /// A scripted libvirt subscription: items handed over in order, `Pending` when none is
    /// queued, the end when the sender is dropped.
    struct Script(tokio::sync::mpsc::UnboundedReceiver<LvItem>);

    impl MonitorEvents for Script {
        fn poll_item(
            &mut self,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<LvItem>> {
            self.0.poll_recv(cx)
        }
    }

    /// The relay end to end, in process: libvirt's losses reach `recv` as `Lagged` after the
    /// events it held, a helper-style wait fails with `EventsLost` at once, and the end of the
    /// subscription ends the subscribers.
    #[tokio::test]
    async fn libvirt_losses_reach_subscribers() {
        use crate::{EventFilter, RecvError};
        let greeting = qmp_proto::Greeting {
            version: serde_json::from_value(
                json!({"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": ""}),
            )
            .unwrap(),
            capabilities: Vec::new(),
        };
        let client = Client::for_backend(greeting, crate::ConnectOptions::default(), None);
        let mut all = client.subscribe(EventFilter::all());
        let mut deleted =
            client.subscribe(EventFilter::name("DEVICE_DELETED").data_eq("/device", "d1"));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        // libvirt's queue (2 events) was full: it reports the loss, then the two older events.
        tx.send(Ok(EventItem::Lagged(3))).unwrap();
        tx.send(msg("STOP", None)).unwrap();
        tx.send(msg("RESUME", None)).unwrap();
        tokio::spawn(pump(client.shared_for_backend(), Script(rx), 2));

        let wait = Duration::from_secs(10);
        assert_eq!(all.recv().await.unwrap().event, "STOP");
        assert_eq!(all.recv().await.unwrap().event, "RESUME");
        assert_eq!(all.recv().await.unwrap_err(), RecvError::Lagged(3));
        // The DEVICE_DELETED wait does not run out its time: the loss ends it.
        let started = std::time::Instant::now();
        let r = deleted.next_within(wait).await;
        assert!(matches!(r, Err(Error::EventsLost { lost: 3, .. })), "{r:?}");
        assert!(started.elapsed() < wait / 2);

        // Fewer older events than libvirt's capacity (it had dropped some at subscription
        // time): the loss is due once libvirt holds nothing more.
        tx.send(Ok(EventItem::Lagged(5))).unwrap();
        tx.send(msg(
            "DEVICE_DELETED",
            Some(r#"{"device":"d1","path":"/p"}"#),
        ))
        .unwrap();
        assert_eq!(all.recv().await.unwrap().event, "DEVICE_DELETED");
        assert_eq!(all.recv().await.unwrap_err(), RecvError::Lagged(5));
        assert_eq!(
            deleted.next_within(wait).await.unwrap().data["device"],
            "d1"
        );
        assert_eq!(deleted.recv().await.unwrap_err(), RecvError::Lagged(5));

        // An event that cannot be decoded is lost at its place.
        tx.send(msg("BAD", Some("{nope"))).unwrap();
        tx.send(msg("STOP", None)).unwrap();
        assert_eq!(all.recv().await.unwrap_err(), RecvError::Lagged(1));
        assert_eq!(all.recv().await.unwrap().event, "STOP");

        drop(tx);
        assert_eq!(all.recv().await.unwrap_err(), RecvError::Closed);
        assert_eq!(deleted.recv().await.unwrap_err(), RecvError::Lagged(1));
        assert_eq!(deleted.recv().await.unwrap_err(), RecvError::Closed);
        assert!(client.is_closed());
    }

    #[test]
    fn monitor_events() {
        let e = monitor_event("STOP".into(), 5, 6, None).unwrap();
        assert_eq!(e.data, json!({}));
        assert_eq!(e.timestamp.microseconds, 6);
        let e = monitor_event("DEVICE_DELETED".into(), 5, 6, Some(r#"{"path":"/x"}"#)).unwrap();
        assert_eq!(e.data["path"], "/x");
        assert!(monitor_event("X".into(), 0, 0, Some("{nope")).is_err());
    }
}
