//! What both drivers do with a session's outputs: complete pending commands, fan out events.

use crate::events::{Registry, Sink};
use crate::Error;
use qmp_proto::{CommandId, Greeting, Output};
use serde_json::Value;
use std::collections::HashMap;

/// Where a command's result goes.
pub(crate) trait Reply {
    fn send(self, result: Result<Value, Error>);
}

/// Connection-level news for the driver.
#[derive(Debug)]
pub(crate) enum Notice {
    Greeting(Greeting),
    Ready,
    Closed,
    /// Fatal before the session is ready (no greeting, negotiation refused).
    Failed(Error),
}

pub(crate) struct Router<R, S> {
    pending: HashMap<CommandId, (String, R)>,
    pub(crate) events: Registry<S>,
    ready: bool,
}

impl<R, S> Default for Router<R, S> {
    fn default() -> Self {
        Self {
            pending: HashMap::new(),
            events: Registry::default(),
            ready: false,
        }
    }
}

impl<R: Reply, S: Sink> Router<R, S> {
    pub(crate) fn register(&mut self, id: CommandId, command: String, reply: R) {
        self.pending.insert(id, (command, reply));
    }

    /// Forget a command (timed out or abandoned by its caller).
    pub(crate) fn forget(&mut self, id: CommandId) -> bool {
        self.pending.remove(&id).is_some()
    }

    pub(crate) fn handle(&mut self, out: Output) -> Option<Notice> {
        match out {
            Output::Greeting(g) => return Some(Notice::Greeting(g)),
            Output::Ready { .. } => {
                self.ready = true;
                return Some(Notice::Ready);
            }
            Output::Reply { id, result } => {
                if let Some((command, reply)) = self.pending.remove(&id) {
                    reply.send(result.map_err(|error| Error::Qmp { command, error }));
                }
            }
            Output::Failed { id, error } => {
                if let Some((command, reply)) = self.pending.remove(&id) {
                    reply.send(Err(match error {
                        qmp_proto::Error::Closed => Error::Closed {
                            command: Some(command),
                        },
                        qmp_proto::Error::ResponseTooLarge { limit } => {
                            Error::ResponseTooLarge { command, limit }
                        }
                        other => Error::Protocol(other),
                    }));
                }
            }
            Output::Event(e) => self.events.dispatch(&e),
            Output::Unmatched(m) => tracing::debug!(?m, "QMP reply matching no command"),
            Output::ProtocolError(e) => {
                tracing::warn!(error = %e, "bad QMP input");
                if !self.ready {
                    return Some(Notice::Failed(e.into()));
                }
            }
            Output::Closed => {
                for (_, (command, reply)) in self.pending.drain() {
                    reply.send(Err(Error::Closed {
                        command: Some(command),
                    }));
                }
                self.events.close();
                return Some(Notice::Closed);
            }
        }
        None
    }
}
