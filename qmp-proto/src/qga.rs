//! Guest agent (QGA) framing: the same JSON objects as QMP, but no greeting, no ids and a stream
//! that may hold a previous client's leftovers. `guest-sync-delimited` resynchronises: the client
//! sends a 0xFF byte (which resets the agent's parser) and the command with a random token; the
//! agent answers with a 0xFF byte and then `{"return": token}`. Everything before is stale.
//!
//! ```
//! use qmp_proto::qga::{QgaOutput, QgaSession};
//! let mut q = QgaSession::default();
//! let bytes = q.sync(42);
//! assert_eq!(bytes[0], 0xFF);
//! q.handle_input(b"{\"return\": \"stale\"}\n\xff{\"return\": 42}\n");
//! assert!(matches!(q.poll_output(), Some(QgaOutput::Discarded(_))));
//! assert_eq!(q.poll_output(), Some(QgaOutput::Synced));
//! let _cmd = q.execute("guest-ping", None).unwrap();
//! q.handle_input(b"{\"return\": {}}\n");
//! assert!(matches!(q.poll_output(), Some(QgaOutput::Reply(Ok(_)))));
//! ```

use crate::framer::{Framer, FramerConfig};
use crate::message::{Message, QmpError};
use crate::Error;
use serde_json::{json, Value};
use std::collections::VecDeque;

/// What a [`QgaSession`] reports.
#[derive(Debug, Clone, PartialEq)]
pub enum QgaOutput {
    /// The agent answered the sync with our token: replies from now on are ours.
    Synced,
    /// A reply to the oldest outstanding command (the agent answers in order).
    Reply(Result<Value, QmpError>),
    /// Output received while syncing that belonged to someone else; reported, not used.
    Discarded(Value),
    /// Bad input from the agent.
    ProtocolError(Error),
}

/// The guest agent's protocol state.
#[derive(Debug)]
pub struct QgaSession {
    framer: Framer,
    syncing: Option<u64>,
    outstanding: usize,
    outputs: VecDeque<QgaOutput>,
}

impl Default for QgaSession {
    fn default() -> Self {
        Self::new(FramerConfig::default().max_frame_len)
    }
}

impl QgaSession {
    /// A session accepting replies up to `max_frame_len` bytes; call [`sync`](Self::sync) first.
    pub fn new(max_frame_len: usize) -> Self {
        Self {
            framer: Framer::new(FramerConfig {
                max_frame_len,
                sync_byte: true,
            }),
            syncing: None,
            outstanding: 0,
            outputs: VecDeque::new(),
        }
    }

    /// Bytes that resynchronise the stream with `token` (use a random one). Any outstanding
    /// command is forgotten.
    pub fn sync(&mut self, token: u64) -> Vec<u8> {
        self.syncing = Some(token);
        self.outstanding = 0;
        let mut bytes = vec![0xFF];
        let cmd = json!({"execute": "guest-sync-delimited", "arguments": {"id": token}});
        bytes.extend_from_slice(cmd.to_string().as_bytes());
        bytes.push(b'\n');
        bytes
    }

    /// Whether a sync is still waiting for its answer.
    pub fn is_syncing(&self) -> bool {
        self.syncing.is_some()
    }

    /// Encode a command; its reply comes back as the next [`QgaOutput::Reply`].
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Vec<u8>, Error> {
        let mut obj = json!({"execute": command});
        match arguments {
            None | Some(Value::Null) => {}
            Some(v @ Value::Object(_)) => obj["arguments"] = v,
            Some(_) => {
                return Err(Error::ArgumentsNotObject {
                    command: command.to_owned(),
                    got: "not an object",
                })
            }
        }
        self.outstanding += 1;
        let mut bytes = obj.to_string().into_bytes();
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Feed bytes read from the agent.
    pub fn handle_input(&mut self, bytes: &[u8]) {
        self.framer.push(bytes);
        while let Some(frame) = self.framer.next_frame() {
            let out = match frame.and_then(Message::decode) {
                Err(e) => QgaOutput::ProtocolError(e),
                Ok(m) => match (self.syncing, m) {
                    (Some(token), Message::Return { value, .. }) if value == json!(token) => {
                        self.syncing = None;
                        QgaOutput::Synced
                    }
                    (Some(_), Message::Return { value, .. }) => QgaOutput::Discarded(value),
                    (Some(_), other) => QgaOutput::Discarded(json!(format!("{other:?}"))),
                    (None, Message::Return { value, .. }) if self.outstanding > 0 => {
                        self.outstanding -= 1;
                        QgaOutput::Reply(Ok(value))
                    }
                    (None, Message::Error { error, .. }) if self.outstanding > 0 => {
                        self.outstanding -= 1;
                        QgaOutput::Reply(Err(error))
                    }
                    (None, other) => QgaOutput::ProtocolError(Error::Unrecognized {
                        reason: "unsolicited message from the guest agent",
                        snippet: crate::error::snippet(&format!("{other:?}")),
                    }),
                },
            };
            self.outputs.push_back(out);
        }
    }

    /// The next thing to deliver.
    pub fn poll_output(&mut self) -> Option<QgaOutput> {
        self.outputs.pop_front()
    }
}
