//! The sans-IO QMP session: bytes in, messages and bytes out.
//!
//! A [`Session`] owns the protocol state (greeting, negotiation, ids, the in-flight window) and no
//! IO and no clock. A driver feeds it what it reads ([`Session::handle_input`],
//! [`Session::handle_eof`]), writes what [`Session::poll_transmit`] hands out, and delivers what
//! [`Session::poll_output`] reports. Timeouts are the driver's: it calls [`Session::cancel`].
//!
//! # Oversize messages
//!
//! A message longer than [`FramerConfig::max_frame_len`] is skipped unread (memory stays
//! bounded) and reported as [`Output::ProtocolError`] with [`Error::FrameTooLong`]. When it
//! starts like a reply (`{"return"` or `{"error"`, see [`FrameStart`]), the
//! session works out whose reply it was and fails that command at once with
//! [`Error::ResponseTooLarge`] ([`Output::Failed`]), instead of leaving it to its timeout:
//!
//! - QEMU answers in-band commands in order, so with no `exec-oob` command in flight the reply
//!   belongs to the oldest in-band command written and not yet answered.
//! - With `exec-oob` commands in flight the owner is ambiguous (an out-of-band reply may overtake
//!   in-band ones). No command is failed on a guess: the candidates (the oldest in-band command
//!   plus every `exec-oob` command in flight) are remembered, and each later reply narrows them
//!   down. A reply to a newer in-band command proves the oldest one's reply was the oversize
//!   one; when all candidates but one have their answers, the last one is the owner. Until then
//!   they wait (and their own timeouts still apply).
//! - An oversize event (`{"timestamp"` or `{"event"`) is dropped: its name is not known, so no
//!   subscriber can be told it specifically. It is reported as the protocol error above and
//!   counted by [`Session::oversize_events_dropped`].
//! - Anything else oversize (a first key the framer cannot place) is only reported.

use crate::framer::{FrameStart, Framer, FramerConfig};
use crate::message::{Event, Greeting, Message, QmpError};
use crate::Error;
use serde::Serialize;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::fmt;

/// QEMU stops reading its monitor once this many in-band commands are unanswered.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 8;

/// Session settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// Framing limits.
    pub framer: FramerConfig,
    /// Ask for the `oob` capability when the server offers it.
    pub want_oob: bool,
    /// Most in-band commands written but unanswered; later ones wait in order. Clamped to 1..=8.
    pub max_in_flight: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            framer: FramerConfig::default(),
            want_oob: false,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// The id this session gave a command; QEMU echoes it in the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandId(pub u64);

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Where the session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for the server's greeting.
    AwaitingGreeting,
    /// `qmp_capabilities` sent, waiting for its return.
    Negotiating,
    /// Commands flow.
    Ready,
    /// The stream ended or the protocol broke; nothing more can be sent.
    Closed,
}

/// Something the driver must deliver.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// The server greeted (always the first output, events aside).
    Greeting(Greeting),
    /// Negotiation finished: commands flow.
    Ready {
        /// Whether out-of-band execution is enabled.
        oob: bool,
    },
    /// A command finished, successfully or with QEMU's error.
    Reply {
        /// The command.
        id: CommandId,
        /// The return value, or QEMU's error.
        result: Result<Value, QmpError>,
    },
    /// A command cannot finish (the connection closed).
    Failed {
        /// The command.
        id: CommandId,
        /// Why.
        error: Error,
    },
    /// An asynchronous event.
    Event(Event),
    /// A reply whose id matches no command of this session.
    Unmatched(Message),
    /// Bad input from the peer. The session goes on unless it also reports `Closed`.
    ProtocolError(Error),
    /// The session is over; every pending command has been failed.
    Closed,
}

/// Bytes of one command, ready to write. Commands come out in submission order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The command these bytes carry (fds to attach, if any, belong with its first byte).
    pub id: CommandId,
    /// The encoded command, newline-terminated.
    pub bytes: Vec<u8>,
}

/// What [`Session::cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// The command was still queued: it will never be sent.
    Unsent,
    /// The command was sent; its reply will be dropped when it comes.
    Abandoned,
    /// No such pending command (already answered, cancelled, or unknown).
    NotPending,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    oob: bool,
    abandoned: bool,
    negotiation: bool,
    /// Handed to the transmit queue: only such a command can be answered. A reply naming a
    /// command still waiting for room in the window is the server's mistake, not its answer.
    sent: bool,
    /// The driver attaches file descriptors (SCM_RIGHTS) to this command.
    fds: bool,
}

/// An oversize reply whose owner is one of these commands, not yet known which.
#[derive(Debug, Clone)]
struct Suspects {
    /// The oldest in-band command unanswered when the reply came, if any.
    in_band: Option<u64>,
    /// `exec-oob` commands in flight then.
    oob: Vec<u64>,
}

impl Suspects {
    fn count(&self) -> usize {
        usize::from(self.in_band.is_some()) + self.oob.len()
    }

    fn only(&self) -> Option<u64> {
        match (self.in_band, &self.oob[..]) {
            (Some(id), []) | (None, &[id]) => Some(id),
            _ => None,
        }
    }
}

/// The QMP protocol state machine. See the module docs.
///
/// ```
/// use qmp_proto::{Output, Session, State};
/// let mut s = Session::default();
/// let id = s.execute("query-status", None).unwrap(); // queued until negotiated
/// s.handle_input(b"{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2, \"micro\": 0}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n");
/// assert!(matches!(s.poll_output(), Some(Output::Greeting(_))));
/// let neg = s.poll_transmit().unwrap();
/// assert_eq!(neg.bytes, b"{\"execute\":\"qmp_capabilities\",\"id\":1}\n");
/// assert!(s.poll_transmit().is_none()); // query-status waits for the negotiation
/// s.handle_input(b"{\"return\": {}, \"id\": 1}\n");
/// assert_eq!(s.poll_output(), Some(Output::Ready { oob: false }));
/// assert_eq!(s.state(), State::Ready);
/// assert_eq!(s.poll_transmit().unwrap().id, id);
/// ```
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    framer: Framer,
    state: State,
    greeting: Option<Greeting>,
    oob: bool,
    next_id: u64,
    slots: HashMap<u64, Slot>,
    /// In-band commands written and unanswered, oldest first (includes abandoned ones: QEMU still
    /// counts them).
    in_band: VecDeque<u64>,
    /// In-band commands waiting for room in the window.
    queue: VecDeque<Transmit>,
    transmit: VecDeque<Transmit>,
    outputs: VecDeque<Output>,
    late_replies: u64,
    /// Oversize replies whose command is not known yet (only with `exec-oob` in flight).
    suspects: Vec<Suspects>,
    oversize_events: u64,
    /// The fd-carrying command written and not yet answered (see [`Session::execute_with_fds`]).
    fd_in_flight: Option<u64>,
    /// Most in-band commands ever written and unanswered at once (negotiation aside).
    max_in_flight_seen: usize,
}

impl Default for Session {
    fn default() -> Self {
        Self::new(SessionConfig::default())
    }
}

#[derive(Serialize)]
struct Wire<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    execute: Option<&'a str>,
    #[serde(rename = "exec-oob", skip_serializing_if = "Option::is_none")]
    exec_oob: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<&'a Value>,
    id: u64,
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Session {
    /// A session waiting for the server's greeting.
    pub fn new(mut config: SessionConfig) -> Self {
        config.max_in_flight = config.max_in_flight.clamp(1, DEFAULT_MAX_IN_FLIGHT);
        Self {
            framer: Framer::new(config.framer),
            config,
            state: State::AwaitingGreeting,
            greeting: None,
            oob: false,
            next_id: 0,
            slots: HashMap::new(),
            in_band: VecDeque::new(),
            queue: VecDeque::new(),
            transmit: VecDeque::new(),
            outputs: VecDeque::new(),
            late_replies: 0,
            suspects: Vec::new(),
            oversize_events: 0,
            fd_in_flight: None,
            max_in_flight_seen: 0,
        }
    }

    /// Where the session stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// The server's greeting, once received.
    pub fn greeting(&self) -> Option<&Greeting> {
        self.greeting.as_ref()
    }

    /// Whether out-of-band execution was negotiated.
    pub fn oob_enabled(&self) -> bool {
        self.oob
    }

    /// In-band commands written and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_band.len()
    }

    /// In-band commands waiting for room in the window (or, behind an fd-carrying command, for
    /// the fd-carrying command in flight to be answered).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The most in-band commands that were ever written and unanswered at the same time
    /// (at most [`SessionConfig::max_in_flight`]): shows whether pipelining used the window.
    pub fn max_in_flight_seen(&self) -> usize {
        self.max_in_flight_seen
    }

    /// Whether an fd-carrying command is written and not yet answered (the next one waits).
    pub fn fd_command_in_flight(&self) -> bool {
        self.fd_in_flight.is_some()
    }

    /// Replies dropped because their command had been cancelled.
    pub fn late_replies_dropped(&self) -> u64 {
        self.late_replies
    }

    /// Events dropped because they were longer than the framing limit (see the module docs).
    pub fn oversize_events_dropped(&self) -> u64 {
        self.oversize_events
    }

    /// Queue a command. It is written once negotiation is done and fewer than
    /// [`SessionConfig::max_in_flight`] in-band commands are unanswered.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<CommandId, Error> {
        self.submit(command, arguments, false, false)
    }

    /// Queue a command the driver sends with file descriptors attached (SCM_RIGHTS, e.g.
    /// `getfd` or `add-fd`), in order with other in-band commands.
    ///
    /// QEMU keeps the fds of a read until a command takes them, and throws away fds it has not
    /// handed out when new ones arrive (its socket chardev closes them); it reads ahead of the
    /// command it runs. So an fd-carrying command is written only once the previous one is
    /// answered: until then it waits at the head of the queue, and the commands behind it wait
    /// too (submission order is kept on the wire).
    pub fn execute_with_fds(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<CommandId, Error> {
        self.submit(command, arguments, false, true)
    }

    /// Write a command for out-of-band execution right away (needs the negotiated `oob`
    /// capability and a command that allows it, such as `migrate-pause` or `x-oob-test`).
    pub fn execute_oob(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<CommandId, Error> {
        if self.state == State::Closed {
            return Err(Error::Closed);
        }
        if !self.oob {
            return Err(Error::OobNotNegotiated);
        }
        self.submit(command, arguments, true, false)
    }

    fn submit(
        &mut self,
        command: &str,
        arguments: Option<Value>,
        oob: bool,
        fds: bool,
    ) -> Result<CommandId, Error> {
        if self.state == State::Closed {
            return Err(Error::Closed);
        }
        let arguments = match arguments {
            Some(Value::Object(m)) if m.is_empty() => None,
            Some(v @ Value::Object(_)) => Some(v),
            None | Some(Value::Null) => None,
            Some(other) => {
                return Err(Error::ArgumentsNotObject {
                    command: command.to_owned(),
                    got: json_type(&other),
                })
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        let wire = Wire {
            execute: (!oob).then_some(command),
            exec_oob: oob.then_some(command),
            arguments: arguments.as_ref(),
            id,
        };
        let mut bytes = serde_json::to_vec(&wire).expect("a JSON value always serialises");
        bytes.push(b'\n');
        let t = Transmit {
            id: CommandId(id),
            bytes,
        };
        self.slots.insert(
            id,
            Slot {
                oob,
                abandoned: false,
                negotiation: false,
                sent: oob,
                fds,
            },
        );
        if oob {
            self.transmit.push_back(t);
        } else {
            self.queue.push_back(t);
            self.fill_window();
        }
        Ok(CommandId(id))
    }

    fn fill_window(&mut self) {
        if self.state != State::Ready {
            return;
        }
        while self.in_band.len() < self.config.max_in_flight {
            let Some(front) = self.queue.front() else {
                break;
            };
            let id = front.id.0;
            let fds = self.slots.get(&id).is_some_and(|s| s.fds);
            if fds && self.fd_in_flight.is_some() {
                // Its fds would reach QEMU before the previous command's fds are taken.
                break;
            }
            let Some(t) = self.queue.pop_front() else {
                break;
            };
            if fds {
                self.fd_in_flight = Some(id);
            }
            self.in_band.push_back(id);
            self.max_in_flight_seen = self.max_in_flight_seen.max(self.in_band.len());
            if let Some(slot) = self.slots.get_mut(&id) {
                slot.sent = true;
            }
            self.transmit.push_back(t);
        }
    }

    /// Command `id` will get no (further) reply: an fd-carrying command waiting behind it may go.
    fn release_fds(&mut self, id: u64) {
        if self.fd_in_flight == Some(id) {
            self.fd_in_flight = None;
        }
    }

    /// Give up on a command. A queued command is never sent; a sent one has its reply dropped
    /// when it arrives, so the stream stays in step.
    pub fn cancel(&mut self, id: CommandId) -> Cancelled {
        if let Some(pos) = self.queue.iter().position(|t| t.id == id) {
            self.queue.remove(pos);
            self.slots.remove(&id.0);
            return Cancelled::Unsent;
        }
        if let Some(pos) = self.transmit.iter().position(|t| t.id == id) {
            // Handed out for writing but not taken yet: drop it outright.
            self.transmit.remove(pos);
            self.slots.remove(&id.0);
            self.in_band.retain(|&i| i != id.0);
            self.release_fds(id.0);
            self.fill_window();
            return Cancelled::Unsent;
        }
        match self.slots.get_mut(&id.0) {
            Some(slot) if !slot.abandoned && !slot.negotiation => {
                slot.abandoned = true;
                Cancelled::Abandoned
            }
            _ => Cancelled::NotPending,
        }
    }

    /// Bytes to write next, one command at a time, in order.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmit.pop_front()
    }

    /// The next thing to deliver.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Feed bytes read from the server.
    pub fn handle_input(&mut self, bytes: &[u8]) {
        if self.state == State::Closed {
            return;
        }
        self.framer.push(bytes);
        loop {
            let decoded = match self.framer.next_frame() {
                None => break,
                Some(Err(e)) => Err(e),
                Some(Ok(frame)) => Message::decode(frame),
            };
            match decoded {
                Ok(m) => self.handle_message(m),
                Err(e @ Error::FrameTooLong { max, start }) => {
                    self.outputs.push_back(Output::ProtocolError(e));
                    match start {
                        FrameStart::Reply => self.oversize_reply(max),
                        FrameStart::Event => self.oversize_events += 1,
                        _ => {}
                    }
                }
                Err(e) => self.outputs.push_back(Output::ProtocolError(e)),
            }
            if self.state == State::Closed {
                break;
            }
        }
    }

    /// The stream ended (or broke): every pending command fails with [`Error::Closed`].
    pub fn handle_eof(&mut self) {
        if self.state == State::AwaitingGreeting {
            let got = "end of stream".to_owned();
            self.outputs
                .push_back(Output::ProtocolError(Error::NoGreeting { got }));
        }
        self.close();
    }

    fn close(&mut self) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        let mut ids: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, s)| !s.abandoned && !s.negotiation)
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        for id in ids {
            self.outputs.push_back(Output::Failed {
                id: CommandId(id),
                error: Error::Closed,
            });
        }
        self.slots.clear();
        self.suspects.clear();
        self.in_band.clear();
        self.queue.clear();
        self.transmit.clear();
        self.fd_in_flight = None;
        self.outputs.push_back(Output::Closed);
    }

    fn handle_message(&mut self, m: Message) {
        match (self.state, m) {
            (_, Message::Event(e)) => self.outputs.push_back(Output::Event(e)),
            (State::AwaitingGreeting, Message::Greeting(g)) => {
                let oob = self.config.want_oob && g.offers_oob();
                self.greeting = Some(g.clone());
                self.outputs.push_back(Output::Greeting(g));
                let id = self.next_id;
                self.next_id += 1;
                let arguments = oob.then(|| serde_json::json!({"enable": ["oob"]}));
                let wire = Wire {
                    execute: Some("qmp_capabilities"),
                    exec_oob: None,
                    arguments: arguments.as_ref(),
                    id,
                };
                let mut bytes = serde_json::to_vec(&wire).expect("a JSON value always serialises");
                bytes.push(b'\n');
                self.slots.insert(
                    id,
                    Slot {
                        oob: false,
                        abandoned: false,
                        negotiation: true,
                        sent: true,
                        fds: false,
                    },
                );
                self.in_band.push_back(id);
                self.transmit.push_front(Transmit {
                    id: CommandId(id),
                    bytes,
                });
                self.oob = oob;
                self.state = State::Negotiating;
            }
            (State::AwaitingGreeting, other) => {
                let got = format!("{other:?}");
                self.outputs
                    .push_back(Output::ProtocolError(Error::NoGreeting {
                        got: crate::error::snippet(&got),
                    }));
                self.close();
            }
            (_, Message::Greeting(g)) => {
                self.outputs
                    .push_back(Output::Unmatched(Message::Greeting(g)));
            }
            (_, Message::Return { id, value }) => self.handle_reply(id, Ok(value)),
            (_, Message::Error { id, error }) => self.handle_reply(id, Err(error)),
        }
    }

    /// Written to the peer: handed out by [`poll_transmit`](Self::poll_transmit).
    fn written(&self, id: u64) -> bool {
        self.slots.get(&id).is_some_and(|s| s.sent) && !self.transmit.iter().any(|t| t.id.0 == id)
    }

    /// A reply too long to read came: fail its command, or remember the candidates when
    /// `exec-oob` makes the owner ambiguous (see the module docs).
    fn oversize_reply(&mut self, limit: usize) {
        // In-band commands already blamed for an earlier oversize reply have had their answer.
        let blamed: Vec<u64> = self.suspects.iter().filter_map(|s| s.in_band).collect();
        let in_band = self
            .in_band
            .iter()
            .copied()
            .find(|id| !blamed.contains(id))
            .filter(|&id| self.written(id));
        let mut oob: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, s)| s.oob)
            .map(|(&id, _)| id)
            .filter(|&id| self.written(id))
            .collect();
        oob.sort_unstable();
        let suspects = Suspects { in_band, oob };
        match suspects.only() {
            Some(id) => {
                let oob = suspects.in_band.is_none();
                if self.fail_too_large(id, limit) && !self.suspects.is_empty() {
                    self.answered(id, oob);
                }
            }
            None if suspects.count() == 0 => {}
            // Each written command owns at most one reply: more unresolved oversize replies
            // than that is the peer's noise, not worth remembering (keeps memory bounded).
            None if self.suspects.len() >= self.slots.len() => {}
            None => self.suspects.push(suspects),
        }
    }

    /// Command `id` has had its answer: narrow down the oversize replies' owners, failing those
    /// that become certain.
    fn answered(&mut self, id: u64, oob: bool) {
        let limit = self.config.framer.max_frame_len;
        let mut work = vec![(id, oob)];
        while let Some((id, oob)) = work.pop() {
            let mut owners = Vec::new();
            self.suspects.retain_mut(|s| {
                s.oob.retain(|&o| o != id);
                match s.in_band {
                    Some(b) if b == id => s.in_band = None,
                    // In-band replies come in order: a newer one answered means the oldest
                    // one's reply was the oversize one.
                    Some(b) if !oob && id > b => {
                        owners.push((b, false));
                        return false;
                    }
                    _ => {}
                }
                match s.only() {
                    Some(owner) => {
                        owners.push((owner, s.in_band.is_none()));
                        false
                    }
                    None => s.count() > 0,
                }
            });
            for (owner, owner_oob) in owners {
                if self.fail_too_large(owner, limit) {
                    work.push((owner, owner_oob));
                }
            }
        }
    }

    /// Fail `id` whose reply was too long; false when it was no longer pending.
    fn fail_too_large(&mut self, id: u64, limit: usize) -> bool {
        let Some(slot) = self.slots.remove(&id) else {
            return false;
        };
        if !slot.oob {
            self.in_band.retain(|&i| i != id);
        }
        self.release_fds(id);
        if slot.negotiation {
            self.outputs
                .push_back(Output::ProtocolError(Error::ResponseTooLarge { limit }));
            self.close();
            return true;
        }
        if slot.abandoned {
            self.late_replies += 1;
        } else {
            self.outputs.push_back(Output::Failed {
                id: CommandId(id),
                error: Error::ResponseTooLarge { limit },
            });
        }
        self.fill_window();
        true
    }

    fn handle_reply(&mut self, wire_id: Option<Value>, result: Result<Value, QmpError>) {
        // QEMU omits the id only when it could not parse the request; it still answers in-band
        // requests in order, so such a reply belongs to the oldest in-band command.
        let id = match &wire_id {
            Some(v) => v
                .as_u64()
                .filter(|id| self.slots.get(id).is_some_and(|s| s.sent)),
            None => self.in_band.front().copied(),
        };
        let Some(id) = id else {
            let m = match result {
                Ok(value) => Message::Return { id: wire_id, value },
                Err(error) => Message::Error { id: wire_id, error },
            };
            self.outputs.push_back(Output::Unmatched(m));
            return;
        };
        let Some(slot) = self.slots.remove(&id) else {
            return;
        };
        if !slot.oob {
            self.in_band.retain(|&i| i != id);
        }
        self.release_fds(id);
        if slot.negotiation {
            match result {
                Ok(_) => {
                    self.state = State::Ready;
                    self.outputs.push_back(Output::Ready { oob: self.oob });
                }
                Err(e) => {
                    self.outputs
                        .push_back(Output::ProtocolError(Error::NegotiationFailed {
                            class: e.class.to_string(),
                            desc: e.desc,
                        }));
                    self.close();
                    return;
                }
            }
        } else if slot.abandoned {
            self.late_replies += 1;
        } else {
            self.outputs.push_back(Output::Reply {
                id: CommandId(id),
                result,
            });
        }
        if !self.suspects.is_empty() {
            self.answered(id, slot.oob);
        }
        self.fill_window();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorClass, FrameStart};
    use serde_json::json;

    const GREETING: &[u8] = b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n";

    fn outputs(s: &mut Session) -> Vec<Output> {
        std::iter::from_fn(|| s.poll_output()).collect()
    }

    fn sent(s: &mut Session) -> Vec<Value> {
        std::iter::from_fn(|| s.poll_transmit())
            .map(|t| {
                let v: Value = serde_json::from_slice(&t.bytes).unwrap();
                assert_eq!(v["id"], json!(t.id.0));
                v
            })
            .collect()
    }

    fn ready(config: SessionConfig) -> Session {
        let mut s = Session::new(config);
        s.handle_input(
            b"{\"event\": \"EARLY\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\n",
        );
        s.handle_input(GREETING);
        let neg = sent(&mut s);
        assert_eq!(neg[0]["execute"], "qmp_capabilities");
        s.handle_input(format!("{{\"return\": {{}}, \"id\": {}}}\n", neg[0]["id"]).as_bytes());
        let out = outputs(&mut s);
        assert!(
            matches!(&out[0], Output::Event(e) if e.event == "EARLY"),
            "{out:?}"
        );
        assert!(matches!(out[1], Output::Greeting(_)));
        assert!(matches!(out[2], Output::Ready { .. }));
        s
    }

    #[test]
    fn oob_negotiated_when_wanted_and_offered() {
        let mut s = Session::new(SessionConfig {
            want_oob: true,
            ..Default::default()
        });
        assert_eq!(
            s.execute_oob("x-oob-test", None),
            Err(Error::OobNotNegotiated)
        );
        s.handle_input(GREETING);
        let neg = sent(&mut s);
        assert_eq!(neg[0]["arguments"], json!({"enable": ["oob"]}));
        s.handle_input(b"{\"return\": {}, \"id\": 0}");
        assert!(s.oob_enabled());
        let _ = outputs(&mut s);
        // oob commands bypass the window
        for _ in 0..8 {
            s.execute("query-status", None).unwrap();
        }
        s.execute("query-status", None).unwrap();
        let oob = s.execute_oob("migrate-pause", None).unwrap();
        let wire = sent(&mut s);
        assert_eq!(wire.len(), 9);
        assert_eq!(wire[8]["exec-oob"], "migrate-pause");
        assert_eq!(wire[8]["id"], json!(oob.0));
        assert_eq!(s.queued(), 1);
    }

    #[test]
    fn window_of_eight_then_fifo() {
        let mut s = ready(SessionConfig::default());
        let ids: Vec<CommandId> = (0..20)
            .map(|i| s.execute("echo", Some(json!({"n": i}))).unwrap())
            .collect();
        let first = sent(&mut s);
        assert_eq!(first.len(), 8);
        assert_eq!(s.queued(), 12);
        // Answer out of order (oob style); each answer lets one more command out, in order.
        s.handle_input(format!("{{\"return\": 3, \"id\": {}}}", ids[3].0).as_bytes());
        let next = sent(&mut s);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0]["arguments"]["n"], 8);
        assert_eq!(
            outputs(&mut s),
            vec![Output::Reply {
                id: ids[3],
                result: Ok(json!(3))
            }]
        );
    }

    #[test]
    fn fd_commands_wait_for_the_previous_fd_command() {
        let mut s = ready(SessionConfig::default());
        let a = s
            .execute_with_fds("getfd", Some(json!({"fdname": "a"})))
            .unwrap();
        let q1 = s.execute("query-status", None).unwrap();
        let b = s
            .execute_with_fds("getfd", Some(json!({"fdname": "b"})))
            .unwrap();
        let q2 = s.execute("query-status", None).unwrap();
        let c = s.execute_with_fds("add-fd", None).unwrap();
        // a and the plain command behind it go; b waits for a's answer, and q2 waits behind b.
        let wire = sent(&mut s);
        assert_eq!(
            wire.iter()
                .map(|v| v["id"].as_u64().unwrap())
                .collect::<Vec<_>>(),
            vec![a.0, q1.0]
        );
        assert!(s.fd_command_in_flight());
        assert_eq!(s.queued(), 3);
        // Answering the plain command frees nothing.
        s.handle_input(format!("{{\"return\": {{}}, \"id\": {}}}\n", q1.0).as_bytes());
        assert!(sent(&mut s).is_empty());
        // a answered: b and q2 go, c waits for b.
        s.handle_input(format!("{{\"return\": {{}}, \"id\": {}}}\n", a.0).as_bytes());
        let wire = sent(&mut s);
        assert_eq!(
            wire.iter()
                .map(|v| v["id"].as_u64().unwrap())
                .collect::<Vec<_>>(),
            vec![b.0, q2.0]
        );
        assert_eq!(s.queued(), 1);
        // b cancelled after it was written still holds c back: QEMU has its fds until it
        // answers.
        assert_eq!(s.cancel(b), Cancelled::Abandoned);
        assert!(sent(&mut s).is_empty());
        s.handle_input(
            format!(
                "{{\"error\": {{\"class\": \"GenericError\", \"desc\": \"x\"}}, \"id\": {}}}\n",
                b.0
            )
            .as_bytes(),
        );
        let wire = sent(&mut s);
        assert_eq!(wire.len(), 1);
        assert_eq!(wire[0]["id"], json!(c.0));
        assert_eq!(wire[0]["execute"], "add-fd");
        // An fd command cancelled before it is taken for writing releases the next one too.
        s.handle_input(format!("{{\"return\": {{}}, \"id\": {}}}\n", c.0).as_bytes());
        let d = s
            .execute_with_fds("getfd", Some(json!({"fdname": "d"})))
            .unwrap();
        let e = s
            .execute_with_fds("getfd", Some(json!({"fdname": "e"})))
            .unwrap();
        assert_eq!(s.cancel(d), Cancelled::Unsent);
        let wire = sent(&mut s);
        assert_eq!(wire.len(), 1);
        assert_eq!(wire[0]["id"], json!(e.0));
        // Closing ends the wait: everything pending fails, nothing is left held.
        let f = s
            .execute_with_fds("getfd", Some(json!({"fdname": "f"})))
            .unwrap();
        assert!(sent(&mut s).is_empty());
        let _ = outputs(&mut s);
        s.handle_eof();
        let out = outputs(&mut s);
        assert!(
            out.contains(&Output::Failed {
                id: f,
                error: Error::Closed
            }),
            "{out:?}"
        );
        assert!(!s.fd_command_in_flight());
    }

    #[test]
    fn oversize_reply_to_fd_command_releases_the_next() {
        let mut s = small_limit(150, false);
        let a = s.execute_with_fds("add-fd", None).unwrap();
        let b = s.execute_with_fds("add-fd", None).unwrap();
        assert_eq!(sent(&mut s).len(), 1);
        s.handle_input(&big_reply(a.0));
        let out = outputs(&mut s);
        assert!(out.contains(&too_large(a)), "{out:?}");
        let wire = sent(&mut s);
        assert_eq!(wire.len(), 1);
        assert_eq!(wire[0]["id"], json!(b.0));
    }

    #[test]
    fn max_in_flight_seen_is_the_high_water_mark() {
        let mut s = ready(SessionConfig::default());
        assert_eq!(s.max_in_flight_seen(), 0, "negotiation is not counted");
        let ids: Vec<CommandId> = (0..3).map(|_| s.execute("x", None).unwrap()).collect();
        assert_eq!(sent(&mut s).len(), 3);
        assert_eq!(s.max_in_flight_seen(), 3);
        for id in &ids {
            s.handle_input(format!("{{\"return\": {{}}, \"id\": {}}}\n", id.0).as_bytes());
        }
        for _ in 0..20 {
            s.execute("x", None).unwrap();
        }
        assert_eq!(s.max_in_flight_seen(), 8);
        assert_eq!(s.in_flight(), 8);
    }

    #[test]
    fn cancel_queued_and_in_flight() {
        let mut s = ready(SessionConfig {
            max_in_flight: 1,
            ..Default::default()
        });
        let a = s.execute("a", None).unwrap();
        let b = s.execute("b", None).unwrap();
        let c = s.execute("c", None).unwrap();
        assert_eq!(sent(&mut s).len(), 1);
        assert_eq!(s.cancel(b), Cancelled::Unsent);
        assert_eq!(s.cancel(a), Cancelled::Abandoned);
        assert_eq!(s.cancel(a), Cancelled::NotPending);
        s.handle_input(format!("{{\"return\": {{}}, \"id\": {}}}\n", a.0).as_bytes());
        assert_eq!(outputs(&mut s), vec![]);
        assert_eq!(s.late_replies_dropped(), 1);
        let wire = sent(&mut s);
        assert_eq!(wire.len(), 1);
        assert_eq!(wire[0]["execute"], "c");
        s.handle_input(
            format!(
                "{{\"error\": {{\"class\": \"GenericError\", \"desc\": \"no\"}}, \"id\": {}}}\n",
                c.0
            )
            .as_bytes(),
        );
        let out = outputs(&mut s);
        let [Output::Reply { id, result: Err(e) }] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(*id, c);
        assert_eq!(e.class, ErrorClass::GenericError);
    }

    #[test]
    fn eof_fails_everything_pending() {
        let mut s = ready(SessionConfig::default());
        let ids: Vec<_> = (0..10).map(|_| s.execute("x", None).unwrap()).collect();
        let _ = sent(&mut s);
        s.handle_eof();
        let out = outputs(&mut s);
        assert_eq!(out.len(), 11);
        for (o, id) in out.iter().zip(&ids) {
            assert_eq!(
                *o,
                Output::Failed {
                    id: *id,
                    error: Error::Closed
                }
            );
        }
        assert_eq!(out[10], Output::Closed);
        assert_eq!(s.execute("x", None), Err(Error::Closed));
    }

    #[test]
    fn event_before_return_and_unmatched() {
        let mut s = ready(SessionConfig::default());
        let q = s.execute("quit", None).unwrap();
        let _ = sent(&mut s);
        s.handle_input(format!("{{\"timestamp\": {{\"seconds\": 5, \"microseconds\": 6}}, \"event\": \"SHUTDOWN\", \"data\": {{\"guest\": false}}}}\n{{\"return\": {{}}, \"id\": {}}}\n{{\"return\": 1, \"id\": \"stranger\"}}\ngarbage\n", q.0).as_bytes());
        let out = outputs(&mut s);
        assert!(matches!(&out[0], Output::Event(e) if e.event == "SHUTDOWN"));
        assert_eq!(
            out[1],
            Output::Reply {
                id: q,
                result: Ok(json!({}))
            }
        );
        assert!(matches!(out[2], Output::Unmatched(_)));
        assert!(matches!(
            out[3],
            Output::ProtocolError(Error::Garbage { .. })
        ));
    }

    #[test]
    fn reply_naming_a_queued_command_is_unmatched() {
        let mut s = ready(SessionConfig::default());
        let ids: Vec<CommandId> = (0..9).map(|_| s.execute("x", None).unwrap()).collect();
        assert_eq!(sent(&mut s).len(), 8);
        let queued = ids[8];
        // A server answering a command it was never sent: not taken as that command's reply.
        s.handle_input(format!("{{\"return\": 1, \"id\": {}}}\n", queued.0).as_bytes());
        assert!(matches!(outputs(&mut s)[..], [Output::Unmatched(_)]));
        assert_eq!((s.in_flight(), s.queued()), (8, 1));
        // The real answers still land on their commands, and the queued one is then sent.
        s.handle_input(format!("{{\"return\": 2, \"id\": {}}}\n", ids[0].0).as_bytes());
        assert_eq!(
            outputs(&mut s),
            vec![Output::Reply {
                id: ids[0],
                result: Ok(json!(2))
            }]
        );
        assert_eq!(sent(&mut s)[0]["id"], json!(queued.0));
        s.handle_input(format!("{{\"return\": 3, \"id\": {}}}\n", queued.0).as_bytes());
        assert_eq!(
            outputs(&mut s),
            vec![Output::Reply {
                id: queued,
                result: Ok(json!(3))
            }]
        );
    }

    #[test]
    fn id_less_error_goes_to_oldest_in_band() {
        let mut s = ready(SessionConfig::default());
        let a = s.execute("a", None).unwrap();
        let _b = s.execute("b", None).unwrap();
        let _ = sent(&mut s);
        s.handle_input(
            b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}\n",
        );
        let out = outputs(&mut s);
        assert!(matches!(&out[0], Output::Reply { id, result: Err(_) } if *id == a));
    }

    fn small_limit(max: usize, oob: bool) -> Session {
        let mut s = Session::new(SessionConfig {
            framer: FramerConfig {
                max_frame_len: max,
                sync_byte: false,
            },
            want_oob: oob,
            ..Default::default()
        });
        s.handle_input(GREETING);
        let _ = sent(&mut s);
        s.handle_input(b"{\"return\": {}, \"id\": 0}\n");
        let _ = outputs(&mut s);
        assert_eq!(s.oob_enabled(), oob);
        s
    }

    fn big_reply(id: u64) -> Vec<u8> {
        format!("{{\"return\": \"{}\", \"id\": {id}}}\n", "z".repeat(500)).into_bytes()
    }

    fn too_large(id: CommandId) -> Output {
        Output::Failed {
            id,
            error: Error::ResponseTooLarge { limit: 150 },
        }
    }

    fn too_long_reply() -> Output {
        Output::ProtocolError(Error::FrameTooLong {
            max: 150,
            start: FrameStart::Reply,
        })
    }

    /// In-band only: the oversize reply is the oldest command's, failed at once; the next one
    /// still gets its own reply and the window moves on.
    #[test]
    fn oversize_reply_fails_oldest_in_band_at_once() {
        let mut s = small_limit(150, false);
        let ids: Vec<CommandId> = (0..9).map(|_| s.execute("x", None).unwrap()).collect();
        assert_eq!(sent(&mut s).len(), 8);
        s.handle_input(&big_reply(ids[0].0));
        assert_eq!(outputs(&mut s), vec![too_long_reply(), too_large(ids[0])]);
        assert_eq!(sent(&mut s)[0]["id"], json!(ids[8].0));
        s.handle_input(format!("{{\"return\": 1, \"id\": {}}}\n", ids[1].0).as_bytes());
        assert_eq!(
            outputs(&mut s),
            vec![Output::Reply {
                id: ids[1],
                result: Ok(json!(1))
            }]
        );
        // An error reply can be oversize too; an abandoned command's is just dropped.
        assert_eq!(s.cancel(ids[2]), Cancelled::Abandoned);
        s.handle_input(&big_reply(ids[2].0));
        assert_eq!(outputs(&mut s), vec![too_long_reply()]);
        assert_eq!(s.late_replies_dropped(), 1);
        s.handle_input(
            format!(
                "{{\"error\": {{\"class\": \"GenericError\", \"desc\": \"{}\"}}}}\n",
                "e".repeat(300)
            )
            .as_bytes(),
        );
        assert_eq!(outputs(&mut s), vec![too_long_reply(), too_large(ids[3])]);
        assert_eq!(s.in_flight(), 5);
    }

    /// An oversize reply with nothing written to own it is only reported; an oversize event is
    /// dropped and counted; neither fails a command.
    #[test]
    fn oversize_without_owner_or_event() {
        let mut s = small_limit(150, false);
        s.handle_input(&big_reply(99));
        assert_eq!(outputs(&mut s), vec![too_long_reply()]);
        let a = s.execute("a", None).unwrap(); // queued for writing, not written yet
        s.handle_input(&big_reply(a.0));
        assert_eq!(outputs(&mut s), vec![too_long_reply()]);
        let _ = sent(&mut s);
        s.handle_input(
            format!(
                "{{\"timestamp\": {{\"seconds\": 1, \"microseconds\": 2}}, \"event\": \"X\", \"data\": \"{}\"}}\n",
                "d".repeat(300)
            )
            .as_bytes(),
        );
        assert_eq!(
            outputs(&mut s),
            vec![Output::ProtocolError(Error::FrameTooLong {
                max: 150,
                start: FrameStart::Event
            })]
        );
        assert_eq!(s.oversize_events_dropped(), 1);
        s.handle_input(format!("{{\"return\": 1, \"id\": {}}}\n", a.0).as_bytes());
        assert!(matches!(outputs(&mut s)[..], [Output::Reply { id, .. }] if id == a));
    }

    /// With exec-oob in flight the owner is ambiguous: nothing fails until later replies show
    /// whose it was.
    #[test]
    fn oversize_reply_with_oob_in_flight_waits_for_proof() {
        // The oob command answers: the in-band one was the owner.
        let mut s = small_limit(150, true);
        let a = s.execute("a", None).unwrap();
        let o = s.execute_oob("o", None).unwrap();
        let _ = sent(&mut s);
        s.handle_input(&big_reply(a.0));
        assert_eq!(outputs(&mut s), vec![too_long_reply()]);
        s.handle_input(format!("{{\"return\": 2, \"id\": {}}}\n", o.0).as_bytes());
        let out = outputs(&mut s);
        assert_eq!(
            out,
            vec![
                Output::Reply {
                    id: o,
                    result: Ok(json!(2))
                },
                too_large(a)
            ]
        );

        // The in-band one answers: the oob one was the owner.
        let mut s = small_limit(150, true);
        let a = s.execute("a", None).unwrap();
        let o = s.execute_oob("o", None).unwrap();
        let _ = sent(&mut s);
        s.handle_input(&big_reply(o.0));
        assert_eq!(outputs(&mut s), vec![too_long_reply()]);
        s.handle_input(format!("{{\"return\": 1, \"id\": {}}}\n", a.0).as_bytes());
        assert_eq!(
            outputs(&mut s),
            vec![
                Output::Reply {
                    id: a,
                    result: Ok(json!(1))
                },
                too_large(o)
            ]
        );

        // A newer in-band command answers: in-band order says the oldest was the owner, though
        // two oob commands are still in flight.
        let mut s = small_limit(150, true);
        let a = s.execute("a", None).unwrap();
        let b = s.execute("b", None).unwrap();
        let o1 = s.execute_oob("o1", None).unwrap();
        let o2 = s.execute_oob("o2", None).unwrap();
        let _ = sent(&mut s);
        s.handle_input(&big_reply(a.0));
        s.handle_input(format!("{{\"return\": 1, \"id\": {}}}\n", b.0).as_bytes());
        let out = outputs(&mut s);
        assert_eq!(
            out[1..],
            [
                Output::Reply {
                    id: b,
                    result: Ok(json!(1))
                },
                too_large(a)
            ]
        );
        for o in [o1, o2] {
            s.handle_input(format!("{{\"return\": 3, \"id\": {}}}\n", o.0).as_bytes());
            assert_eq!(
                outputs(&mut s),
                vec![Output::Reply {
                    id: o,
                    result: Ok(json!(3))
                }]
            );
        }

        // Only an oob command could own it: failed at once.
        let mut s = small_limit(150, true);
        let o = s.execute_oob("o", None).unwrap();
        let _ = sent(&mut s);
        s.handle_input(&big_reply(o.0));
        assert_eq!(outputs(&mut s), vec![too_long_reply(), too_large(o)]);
        // EOF with candidates pending fails them as closed, once.
        let a = s.execute("a", None).unwrap();
        let o = s.execute_oob("o", None).unwrap();
        let _ = sent(&mut s);
        s.handle_input(&big_reply(a.0));
        s.handle_eof();
        let out = outputs(&mut s);
        assert_eq!(
            out[1..],
            [
                Output::Failed {
                    id: a,
                    error: Error::Closed
                },
                Output::Failed {
                    id: o,
                    error: Error::Closed
                },
                Output::Closed
            ]
        );
    }

    #[test]
    fn no_greeting_closes() {
        let mut s = Session::default();
        let id = s.execute("x", None).unwrap();
        s.handle_input(b"{\"return\": {}}\n");
        let out = outputs(&mut s);
        assert!(matches!(
            out[0],
            Output::ProtocolError(Error::NoGreeting { .. })
        ));
        assert_eq!(
            out[1],
            Output::Failed {
                id,
                error: Error::Closed
            }
        );
        assert_eq!(s.state(), State::Closed);
    }

    #[test]
    fn negotiation_refused() {
        let mut s = Session::default();
        s.handle_input(GREETING);
        s.handle_input(
            b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"nope\"}, \"id\": 0}\n",
        );
        let out = outputs(&mut s);
        assert!(matches!(
            out[1],
            Output::ProtocolError(Error::NegotiationFailed { .. })
        ));
        assert_eq!(s.state(), State::Closed);
    }

    #[test]
    fn arguments_must_be_objects() {
        let mut s = Session::default();
        assert!(matches!(
            s.execute("x", Some(json!([1]))),
            Err(Error::ArgumentsNotObject {
                got: "an array",
                ..
            })
        ));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;
        use std::collections::{HashMap, VecDeque};

        proptest! {
            /// Oversize replies, in-band ones in order and exec-oob ones anywhere between them:
            /// a command is only ever failed as ResponseTooLarge when its reply was oversize,
            /// every other one gets its own reply, none ends twice, and with no exec-oob in
            /// flight every oversize reply fails its command at once.
            #[test]
            fn oversize_blame_is_never_wrong(
                n_in in 0usize..9,
                n_oob in 0usize..4,
                big in proptest::collection::vec(any::<bool>(), 12),
                picks in proptest::collection::vec(any::<bool>(), 24),
            ) {
                let mut s = small_limit(150, true);
                let mut in_band = VecDeque::new();
                let mut oob = VecDeque::new();
                for _ in 0..n_in {
                    in_band.push_back(s.execute("x", None).unwrap().0);
                }
                for _ in 0..n_oob {
                    oob.push_back(s.execute_oob("o", None).unwrap().0);
                }
                let _ = sent(&mut s);
                let oversize = |id: u64| big[id as usize % 12];
                let mut ended = HashMap::new();
                let mut picks = picks.into_iter();
                while !(in_band.is_empty() && oob.is_empty()) {
                    let from_oob = !oob.is_empty() && (in_band.is_empty() || picks.next().unwrap_or(true));
                    let id = if from_oob { oob.pop_front() } else { in_band.pop_front() }.unwrap();
                    if oversize(id) {
                        s.handle_input(&big_reply(id));
                    } else {
                        s.handle_input(format!("{{\"return\": {id}, \"id\": {id}}}\n").as_bytes());
                    }
                    while let Some(out) = s.poll_output() {
                        match out {
                            Output::Reply { id, result } => {
                                prop_assert!(!oversize(id.0));
                                prop_assert_eq!(result, Ok(json!(id.0)));
                                prop_assert!(ended.insert(id.0, false).is_none(), "ended twice");
                            }
                            Output::Failed { id, error } => {
                                prop_assert_eq!(error, Error::ResponseTooLarge { limit: 150 });
                                prop_assert!(oversize(id.0), "{} blamed wrongly", id);
                                prop_assert!(ended.insert(id.0, true).is_none(), "ended twice");
                            }
                            Output::ProtocolError(Error::FrameTooLong { .. }) => {}
                            other => prop_assert!(false, "{:?}", other),
                        }
                    }
                }
                if n_oob == 0 {
                    prop_assert_eq!(ended.len(), n_in);
                }
            }

            /// Whatever order replies come in and whichever commands are cancelled, every
            /// command ends exactly once (reply or cancel), never more than the window is in
            /// flight, and commands are written in submission order.
            #[test]
            fn every_command_ends_once(
                n in 1usize..40,
                window in 1usize..9,
                picks in proptest::collection::vec(any::<proptest::sample::Index>(), 0..80),
                cancels in proptest::collection::vec(any::<bool>(), 40),
            ) {
                let mut s = ready(SessionConfig { max_in_flight: window, ..Default::default() });
                let ids: Vec<_> = (0..n).map(|_| s.execute("x", None).unwrap()).collect();
                let mut written: Vec<u64> = Vec::new();
                let mut outstanding: Vec<u64> = Vec::new();
                let mut ended = std::collections::HashSet::new();
                for (i, id) in ids.iter().enumerate() {
                    if cancels[i] && i % 3 == 0 && s.cancel(*id) == Cancelled::Unsent {
                        ended.insert(id.0);
                    }
                }
                let mut picks = picks.into_iter();
                loop {
                    while let Some(t) = s.poll_transmit() {
                        written.push(t.id.0);
                        outstanding.push(t.id.0);
                    }
                    prop_assert!(s.in_flight() <= window);
                    if outstanding.is_empty() {
                        break;
                    }
                    let k = picks.next().map_or(0, |p| p.index(outstanding.len()));
                    let o = outstanding.remove(k);
                    if cancels[o as usize % 40] && s.cancel(CommandId(o)) == Cancelled::Abandoned {
                        ended.insert(o);
                    }
                    s.handle_input(format!("{{\"return\": {o}, \"id\": {o}}}\n").as_bytes());
                    while let Some(out) = s.poll_output() {
                        let Output::Reply { id, result } = out else { panic!("{out:?}") };
                        prop_assert_eq!(result, Ok(json!(id.0)));
                        prop_assert!(ended.insert(id.0), "ended twice");
                    }
                }
                prop_assert!(written.windows(2).all(|w| w[0] < w[1]));
                prop_assert_eq!(ended.len(), n);
                prop_assert_eq!(s.queued(), 0);
            }
        }
    }
}
