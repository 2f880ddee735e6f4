//! Event fan-out: filters and the bounded, lossless-until-full subscriber queues shared by both
//! drivers.
//!
//! # Overflow policy
//!
//! Each subscriber has its own queue of [`ConnectOptions::event_queue`](crate::ConnectOptions)
//! events (or the capacity given to `subscribe_with_capacity`). Nothing waits for a slow
//! subscriber: when its queue is full, further matching events are dropped for it alone and
//! counted. The loss is reported exactly once, as `RecvError::Lagged(n)`, at the point of the
//! stream where it happened: after the events that were queued before it and before any event
//! that came after it. It is reported at the subscriber's next receive once those earlier
//! events are taken, without waiting for another event to arrive.
//!
//! Events lost before they reach the fan-out (libvirt's own subscription overflowing under
//! [`Client::via_libvirt`](crate::Client::via_libvirt), feature `libvirt`) are reported the same
//! way to every subscriber, whatever its filter, at the point where they were lost.

use qmp_proto::Event;
use serde_json::Value;
use std::sync::{Arc, Mutex, MutexGuard};

/// Which events a subscriber wants: any of `names` (all when empty) whose data has every given
/// JSON-pointer/value pair.
///
/// ```
/// use qmp_client::EventFilter;
/// // DEVICE_DELETED for device "disk1" only (not the `path`-only one QEMU also sends).
/// let f = EventFilter::name("DEVICE_DELETED").data_eq("/device", "disk1");
/// # let _ = f;
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    names: Vec<String>,
    data: Vec<(String, Value)>,
}

impl EventFilter {
    /// Every event.
    pub fn all() -> Self {
        Self::default()
    }

    /// Events with this name.
    pub fn name(name: impl Into<String>) -> Self {
        Self {
            names: vec![name.into()],
            data: Vec::new(),
        }
    }

    /// Events with any of these names.
    pub fn names<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        Self {
            names: names.into_iter().map(Into::into).collect(),
            data: Vec::new(),
        }
    }

    /// Also require `data` at JSON `pointer` (e.g. `/device`) to equal `value`.
    pub fn data_eq(mut self, pointer: impl Into<String>, value: impl Into<Value>) -> Self {
        self.data.push((pointer.into(), value.into()));
        self
    }

    /// Whether `event` passes.
    pub fn matches(&self, event: &Event) -> bool {
        (self.names.is_empty() || self.names.contains(&event.event))
            && self
                .data
                .iter()
                .all(|(p, v)| event.data.pointer(p) == Some(v))
    }

    /// A description for timeout messages.
    pub(crate) fn describe(&self) -> String {
        let names = if self.names.is_empty() {
            "any event".to_owned()
        } else {
            self.names.join("|")
        };
        if self.data.is_empty() {
            names
        } else {
            let conds: Vec<String> = self.data.iter().map(|(p, v)| format!("{p}={v}")).collect();
            format!("{names} with {}", conds.join(", "))
        }
    }
}

/// What a subscription's queue carries.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    Event(Event),
    /// This many matching events were dropped because the queue was full.
    Lost(u64),
}

/// Why a subscription yielded no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The subscriber fell behind: this many matching events were dropped at this point of the
    /// stream because its queue was full. Reported as soon as the subscriber has taken the
    /// events queued before the loss (no newer event is needed to reveal it); later events are
    /// delivered normally. See the crate's overflow policy on `subscribe`.
    #[error("subscriber fell behind: {0} events dropped")]
    Lagged(u64),
    /// The connection is closed: no more events will come.
    #[error("the QMP connection is closed")]
    Closed,
}

/// A bounded queue a driver can push into without blocking.
pub(crate) trait Sink {
    /// `Ok(())`, `Err(true)` when full, `Err(false)` when the receiver is gone.
    fn offer(&self, item: Item) -> Result<(), bool>;
}

/// Losses not yet reported to one subscriber, shared by the dispatcher and the subscription
/// (whichever reports them first takes them, so each loss is reported once).
#[derive(Debug, Default)]
pub(crate) struct Lag {
    /// Matching events dropped since the last report.
    lost: u64,
    /// How many items (events and loss markers) had been queued for the subscriber when the
    /// first of them was dropped.
    at: u64,
}

fn lock(lag: &Mutex<Lag>) -> MutexGuard<'_, Lag> {
    lag.lock().unwrap_or_else(|p| p.into_inner())
}

/// The subscription's side of [`Lag`]: reports a loss once every event queued before it has
/// been received, so the report needs no newer event to carry it.
#[derive(Debug, Default)]
pub(crate) struct LagWatch {
    lag: Arc<Mutex<Lag>>,
    received: u64,
}

impl LagWatch {
    /// Count an item (event or loss marker) taken from the queue.
    pub(crate) fn received(&mut self) {
        self.received += 1;
    }

    /// A loss to report now: events dropped right after the items received so far.
    pub(crate) fn take(&mut self) -> Option<u64> {
        let mut lag = lock(&self.lag);
        if lag.lost > 0 && lag.at == self.received {
            Some(std::mem::take(&mut lag.lost))
        } else {
            None
        }
    }
}

pub(crate) struct Subscriber<S> {
    filter: EventFilter,
    sink: S,
    lag: Arc<Mutex<Lag>>,
    /// Items (events and loss markers) queued for this subscriber so far.
    queued: u64,
}

/// All subscribers of one connection.
pub(crate) struct Registry<S> {
    subs: Vec<Subscriber<S>>,
}

impl<S> Default for Registry<S> {
    fn default() -> Self {
        Self { subs: Vec::new() }
    }
}

impl<S: Sink> Registry<S> {
    /// Add a subscriber; the returned watch goes with its receiving end.
    pub(crate) fn add(&mut self, filter: EventFilter, sink: S) -> LagWatch {
        let lag = Arc::new(Mutex::new(Lag::default()));
        self.subs.push(Subscriber {
            filter,
            sink,
            lag: lag.clone(),
            queued: 0,
        });
        LagWatch { lag, received: 0 }
    }

    /// Offer `event` to every matching subscriber. A full queue counts the loss; it is reported
    /// by the subscription once it has received what was queued before it, or by a `Lost(n)`
    /// marker put in order before the next event that finds room, whichever comes first. Gone
    /// receivers are forgotten.
    pub(crate) fn dispatch(&mut self, event: &Event) {
        self.subs.retain_mut(|s| {
            if !s.filter.matches(event) {
                return true;
            }
            let mut lag = lock(&s.lag);
            if lag.lost > 0 {
                match s.sink.offer(Item::Lost(lag.lost)) {
                    Ok(()) => {
                        lag.lost = 0;
                        s.queued += 1;
                    }
                    Err(true) => {
                        lag.lost += 1;
                        return true;
                    }
                    Err(false) => return false,
                }
            }
            match s.sink.offer(Item::Event(event.clone())) {
                Ok(()) => {
                    s.queued += 1;
                    true
                }
                Err(true) => {
                    if lag.lost == 0 {
                        lag.at = s.queued;
                    }
                    lag.lost += 1;
                    true
                }
                Err(false) => false,
            }
        });
    }

    /// `n` events were lost before they reached this registry (the source's own queue
    /// overflowed: libvirt's event subscription under [`Client::via_libvirt`]). Nobody knows
    /// which events they were, so every subscriber, whatever its filter, is told at this point
    /// of its stream, exactly as for a loss to its own full queue: a `Lost(n)` marker when
    /// there is room, else counted with the loss already pending there.
    ///
    /// [`Client::via_libvirt`]: crate::Client::via_libvirt
    #[cfg_attr(not(feature = "libvirt"), allow(dead_code))]
    pub(crate) fn lost_upstream(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        self.subs.retain_mut(|s| {
            let mut lag = lock(&s.lag);
            if lag.lost > 0 {
                // Nothing was queued after the pending loss (the next offer would have put it
                // in first): this one follows it directly.
                lag.lost += n;
                return true;
            }
            match s.sink.offer(Item::Lost(n)) {
                Ok(()) => {
                    s.queued += 1;
                    true
                }
                Err(true) => {
                    lag.at = s.queued;
                    lag.lost = n;
                    true
                }
                Err(false) => false,
            }
        });
    }

    /// Drop every sink: receivers see `Closed` once they have drained their queue.
    pub(crate) fn close(&mut self) {
        self.subs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qmp_proto::Timestamp;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[derive(Clone)]
    struct Q(Rc<RefCell<Vec<Item>>>, usize);
    impl Sink for Q {
        fn offer(&self, item: Item) -> Result<(), bool> {
            let mut v = self.0.borrow_mut();
            if v.len() >= self.1 {
                return Err(true);
            }
            v.push(item);
            Ok(())
        }
    }

    fn ev(name: &str, data: Value) -> Event {
        Event {
            event: name.into(),
            data,
            timestamp: Timestamp {
                seconds: 1,
                microseconds: 2,
            },
        }
    }

    #[test]
    fn filters() {
        let f = EventFilter::name("DEVICE_DELETED").data_eq("/device", "d1");
        assert!(f.matches(&ev(
            "DEVICE_DELETED",
            serde_json::json!({"device": "d1", "path": "/x"})
        )));
        assert!(!f.matches(&ev("DEVICE_DELETED", serde_json::json!({"path": "/x"}))));
        assert!(!f.matches(&ev("STOP", serde_json::json!({}))));
        assert!(EventFilter::all().matches(&ev("STOP", serde_json::json!({}))));
        assert_eq!(f.describe(), "DEVICE_DELETED with /device=\"d1\"");
    }

    /// Pops from a test queue the way a subscription does: the watch first, then the queue.
    fn recv(q: &Q, watch: &mut LagWatch) -> Option<Result<String, u64>> {
        if let Some(n) = watch.take() {
            return Some(Err(n));
        }
        let mut v = q.0.borrow_mut();
        if v.is_empty() {
            return None;
        }
        watch.received();
        Some(match v.remove(0) {
            Item::Event(e) => Ok(e.event),
            Item::Lost(n) => Err(n),
        })
    }

    /// A loss is reported once, after the events queued before it, as soon as the subscriber
    /// has taken those: no newer event is needed to reveal it.
    #[test]
    fn overflow_reported_at_next_receive_in_order() {
        let q = Q(Rc::default(), 2);
        let mut r = Registry::default();
        let mut watch = r.add(EventFilter::all(), q.clone());
        for i in 0..5 {
            r.dispatch(&ev(&format!("E{i}"), serde_json::json!({})));
        }
        // E0, E1 queued; E2..E4 lost.
        assert_eq!(recv(&q, &mut watch), Some(Ok("E0".into())));
        assert_eq!(recv(&q, &mut watch), Some(Ok("E1".into())));
        assert_eq!(recv(&q, &mut watch), Some(Err(3)));
        assert_eq!(recv(&q, &mut watch), None);
        // Reported once: the next event comes without a marker.
        r.dispatch(&ev("E5", serde_json::json!({})));
        assert_eq!(recv(&q, &mut watch), Some(Ok("E5".into())));
        assert_eq!(recv(&q, &mut watch), None);
    }

    /// When newer events find room before the subscriber looks, the marker goes into the queue
    /// ahead of them, and the watch does not report the same loss again.
    #[test]
    fn overflow_marker_in_queue_reported_once() {
        let q = Q(Rc::default(), 3);
        let mut r = Registry::default();
        let mut watch = r.add(EventFilter::all(), q.clone());
        for i in 0..4 {
            r.dispatch(&ev(&format!("E{i}"), serde_json::json!({})));
        }
        assert_eq!(recv(&q, &mut watch), Some(Ok("E0".into())));
        assert_eq!(recv(&q, &mut watch), Some(Ok("E1".into())));
        r.dispatch(&ev("E4", serde_json::json!({})));
        let got: Vec<_> = std::iter::from_fn(|| recv(&q, &mut watch)).collect();
        assert_eq!(got, vec![Ok("E2".into()), Err(1), Ok("E4".into())]);
        // Room for the marker but not the event: the marker, then the new loss at its place.
        let q = Q(Rc::default(), 2);
        let mut watch = r.add(EventFilter::name("F"), q.clone());
        for _ in 0..3 {
            r.dispatch(&ev("F", serde_json::json!({"n": 1})));
        }
        assert_eq!(recv(&q, &mut watch), Some(Ok("F".into())));
        r.dispatch(&ev("F", serde_json::json!({"n": 2})));
        let got: Vec<_> = std::iter::from_fn(|| recv(&q, &mut watch)).collect();
        assert_eq!(got, vec![Ok("F".into()), Err(1), Err(1)]);
    }

    /// A loss before the registry reaches every subscriber, whatever its filter, in stream
    /// order: queued as a marker where there is room, else reported once the events queued
    /// before it are taken, merged with a loss of the subscriber's own pending there.
    #[test]
    fn upstream_loss_reaches_every_subscriber_in_order() {
        let mut r = Registry::default();
        let roomy = Q(Rc::default(), 8);
        let mut w_roomy = r.add(EventFilter::name("DEVICE_DELETED"), roomy.clone());
        let tight = Q(Rc::default(), 1);
        let mut w_tight = r.add(EventFilter::all(), tight.clone());
        r.dispatch(&ev("STOP", serde_json::json!({})));
        r.lost_upstream(0);
        r.lost_upstream(4);
        r.dispatch(&ev("DEVICE_DELETED", serde_json::json!({})));
        let got: Vec<_> = std::iter::from_fn(|| recv(&roomy, &mut w_roomy)).collect();
        assert_eq!(got, vec![Err(4), Ok("DEVICE_DELETED".into())]);
        // Full with STOP: the upstream loss and DEVICE_DELETED (dropped here) come as one.
        let got: Vec<_> = std::iter::from_fn(|| recv(&tight, &mut w_tight)).collect();
        assert_eq!(got, vec![Ok("STOP".into()), Err(5)]);
        // Reported once.
        r.dispatch(&ev("RESUME", serde_json::json!({})));
        assert_eq!(recv(&tight, &mut w_tight), Some(Ok("RESUME".into())));
        assert_eq!(recv(&tight, &mut w_tight), None);
    }
}
