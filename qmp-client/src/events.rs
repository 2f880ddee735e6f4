//! Event fan-out: filters and the bounded, lossless-until-full subscriber queues shared by both
//! drivers.

use qmp_proto::Event;
use serde_json::Value;

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
    /// stream because its queue was full. Later events are delivered normally.
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

pub(crate) struct Subscriber<S> {
    filter: EventFilter,
    sink: S,
    lost: u64,
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
    pub(crate) fn add(&mut self, filter: EventFilter, sink: S) {
        self.subs.push(Subscriber {
            filter,
            sink,
            lost: 0,
        });
    }

    /// Offer `event` to every matching subscriber. A full queue counts the loss and delivers a
    /// `Lost(n)` marker in order as soon as there is room; gone receivers are forgotten.
    pub(crate) fn dispatch(&mut self, event: &Event) {
        self.subs.retain_mut(|s| {
            if !s.filter.matches(event) {
                return true;
            }
            if s.lost > 0 {
                match s.sink.offer(Item::Lost(s.lost)) {
                    Ok(()) => s.lost = 0,
                    Err(true) => {
                        s.lost += 1;
                        return true;
                    }
                    Err(false) => return false,
                }
            }
            match s.sink.offer(Item::Event(event.clone())) {
                Ok(()) => true,
                Err(true) => {
                    s.lost += 1;
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

    #[test]
    fn overflow_is_counted_and_reported_in_order() {
        let q = Q(Rc::default(), 2);
        let mut r = Registry::default();
        r.add(EventFilter::all(), q.clone());
        for i in 0..5 {
            r.dispatch(&ev(&format!("E{i}"), serde_json::json!({})));
        }
        // E0, E1 queued; E2..E4 lost.
        q.0.borrow_mut().clear();
        r.dispatch(&ev("E5", serde_json::json!({})));
        let got = q.0.borrow();
        assert!(matches!(got[0], Item::Lost(3)));
        assert!(matches!(&got[1], Item::Event(e) if e.event == "E5"));
    }
}
