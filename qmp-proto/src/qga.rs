//! Guest agent (QGA) framing: the same JSON objects as QMP, but no greeting, no ids and a stream
//! that may hold a previous client's leftovers. `guest-sync-delimited` resynchronises: the client
//! sends a 0xFF byte (which resets the agent's parser) and the command with a random token; the
//! agent answers with a 0xFF byte and then `{"return": token}`. Everything before is stale.
//!
//! Checked against Debian's qemu-ga 7.2 (`tests/qga_agent.rs`): the agent's `id` is a QAPI
//! `int` (int64), so only the low 63 bits of a token are sent; and the agent's JSON parser
//! answers the 0xFF byte itself with `{"error": {"class": "GenericError", "desc": "JSON parse
//! error, stray '\uFFFD'"}}` before the sync's reply, so every sync sees at least that one
//! [`QgaOutput::Discarded`] object.
//!
//! ```
//! use qmp_proto::qga::{QgaOutput, QgaSession};
//! let mut q = QgaSession::default();
//! let bytes = q.sync(42);
//! assert_eq!(bytes[0], 0xFF);
//! q.handle_input(b"{\"return\": \"stale\"}\n\xff{\"return\": 42}\n");
//! assert!(matches!(q.poll_output(), Some(QgaOutput::Discarded(_))));
//! assert_eq!(q.poll_output(), Some(QgaOutput::Synced));
//! assert!(!q.needs_sync());
//! let _cmd = q.execute("guest-ping", None).unwrap();
//! assert!(q.needs_sync()); // were the command abandoned now, its reply could still come
//! q.handle_input(b"{\"return\": {}}\n");
//! assert!(matches!(q.poll_output(), Some(QgaOutput::Reply(Ok(_)))));
//! assert!(!q.needs_sync());
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
    /// A JSON object received while syncing (a reply owed to someone else, or the agent's
    /// complaint about the 0xFF byte), exactly as received; reported, not used.
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
    /// A sync has completed and no bad output has come since.
    in_step: bool,
    /// Objects (and bad frames) discarded while syncing, in total.
    discarded: u64,
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
            in_step: false,
            discarded: 0,
        }
    }

    /// Bytes that resynchronise the stream with `token` (use a random one). Any outstanding
    /// command is forgotten.
    ///
    /// Only the low 63 bits of `token` are used: the agent's `id` is a JSON int64 and it refuses
    /// larger values with a GenericError (and no 0xFF), which would leave the sync unanswered.
    pub fn sync(&mut self, token: u64) -> Vec<u8> {
        let token = token & i64::MAX as u64;
        self.syncing = Some(token);
        self.outstanding = 0;
        self.in_step = false;
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

    /// Whether the stream must be resynchronised before the next command: it has never been
    /// synced, a sync is unanswered, a command's reply has not been taken with
    /// [`poll_output`](Self::poll_output) (the agent may still send it, or it waits there: a
    /// timed-out or abandoned command), or the agent sent bad output since the last sync. A
    /// client that runs one command at a time and syncs whenever this is true never takes
    /// someone else's reply for its own.
    pub fn needs_sync(&self) -> bool {
        !self.in_step || self.syncing.is_some() || self.outstanding > 0 || !self.outputs.is_empty()
    }

    /// Objects and bad frames discarded while syncing, since the session began (a previous
    /// client's leftovers, late replies, the agent's complaint about the 0xFF byte).
    pub fn discarded(&self) -> u64 {
        self.discarded
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
            let parsed = frame.and_then(|f| {
                serde_json::from_slice::<Value>(f).map_err(|e| Error::InvalidJson {
                    reason: e.to_string(),
                })
            });
            let out = match parsed {
                Err(e) => QgaOutput::ProtocolError(e),
                Ok(value) => match self.syncing {
                    Some(token) => {
                        if value.get("return") == Some(&json!(token)) {
                            self.syncing = None;
                            self.in_step = true;
                            QgaOutput::Synced
                        } else {
                            QgaOutput::Discarded(value)
                        }
                    }
                    None => self.reply(value),
                },
            };
            match &out {
                QgaOutput::Discarded(_) => self.discarded += 1,
                QgaOutput::ProtocolError(_) if self.syncing.is_some() => self.discarded += 1,
                // Bad output in step: the stream can no longer be trusted.
                QgaOutput::ProtocolError(_) => self.in_step = false,
                QgaOutput::Synced | QgaOutput::Reply(_) => {}
            }
            self.outputs.push_back(out);
        }
    }

    /// Classify an object received while in sync.
    fn reply(&mut self, value: Value) -> QgaOutput {
        match Message::from_value(value) {
            Err(e) => QgaOutput::ProtocolError(e),
            Ok(m) => match m {
                Message::Return { value, .. } if self.outstanding > 0 => {
                    self.outstanding -= 1;
                    QgaOutput::Reply(Ok(value))
                }
                Message::Error { error, .. } if self.outstanding > 0 => {
                    self.outstanding -= 1;
                    QgaOutput::Reply(Err(error))
                }
                other => QgaOutput::ProtocolError(Error::Unrecognized {
                    reason: "unsolicited message from the guest agent",
                    snippet: crate::error::snippet(&format!("{other:?}")),
                }),
            },
        }
    }

    /// The next thing to deliver.
    pub fn poll_output(&mut self) -> Option<QgaOutput> {
        self.outputs.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    fn drain(q: &mut QgaSession) -> Vec<QgaOutput> {
        std::iter::from_fn(|| q.poll_output()).collect()
    }

    #[test]
    fn needs_sync_tracks_whether_the_stream_is_in_step() {
        let mut q = QgaSession::default();
        assert!(q.needs_sync(), "never synced");
        q.sync(5);
        assert!(q.needs_sync(), "sync unanswered");
        q.handle_input(b"{\"return\": \"old\"}\n\xff{\"return\": 5}\n");
        drain(&mut q);
        assert!(!q.needs_sync());
        assert_eq!(q.discarded(), 1);
        // A command in flight (or abandoned): its reply may still come.
        q.execute("guest-ping", None).unwrap();
        assert!(q.needs_sync());
        q.handle_input(b"{\"return\": {}}\n");
        assert!(q.needs_sync(), "reply arrived but not taken");
        assert!(matches!(drain(&mut q)[..], [QgaOutput::Reply(Ok(_))]));
        assert!(!q.needs_sync(), "reply taken");
        // Bad output in step: out of step until the next sync.
        q.handle_input(b"{\"return\": 1}\n");
        assert!(matches!(drain(&mut q)[..], [QgaOutput::ProtocolError(_)]));
        assert!(q.needs_sync());
        q.sync(6);
        q.handle_input(b"not json\n\xff{\"return\": 6}\n");
        let out = drain(&mut q);
        assert!(
            matches!(out[..], [QgaOutput::ProtocolError(_), QgaOutput::Synced]),
            "{out:?}"
        );
        assert!(!q.needs_sync());
        assert_eq!(
            q.discarded(),
            2,
            "bad frames while syncing count as discarded"
        );
    }

    #[test]
    fn sync_token_fits_the_agents_int64() {
        // qemu-ga 7.2 answers an id above i64::MAX with a GenericError ("Invalid parameter type
        // for 'id', expected: integer") and no 0xFF: the sync would never complete.
        let mut q = QgaSession::default();
        let bytes = q.sync(u64::MAX);
        assert_eq!(bytes[0], 0xFF);
        let cmd: Value = serde_json::from_slice(&bytes[1..]).unwrap();
        assert_eq!(cmd["arguments"]["id"], json!(i64::MAX));
        q.handle_input(b"\xff{\"return\": 9223372036854775807}\n");
        assert_eq!(drain(&mut q), [QgaOutput::Synced]);
        assert!(!q.is_syncing());

        let bytes = q.sync(1 << 63 | 7);
        let cmd: Value = serde_json::from_slice(&bytes[1..]).unwrap();
        assert_eq!(cmd["arguments"]["id"], json!(7));
        // The caller's unmasked token is not what the agent echoes.
        q.handle_input(b"\xff{\"return\": 9223372036854775815}\n");
        assert!(matches!(drain(&mut q)[..], [QgaOutput::Discarded(_)]));
        q.handle_input(b"\xff{\"return\": 7}\n");
        assert_eq!(drain(&mut q), [QgaOutput::Synced]);
    }

    #[test]
    fn discarded_objects_are_kept_as_received() {
        // Bytes qemu-ga 7.2 sent after a half-written command, then 0xFF + sync: it reports the
        // stray bytes as a parse error before its own 0xFF and the token.
        let mut q = QgaSession::default();
        q.sync(1);
        q.handle_input(
            b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\\"guest-pi\\uFFFD'\"}}\n\
              \xff{\"return\": 1}\n",
        );
        let out = drain(&mut q);
        assert_eq!(
            out,
            [
                QgaOutput::Discarded(json!({"error": {
                    "class": "GenericError",
                    "desc": "JSON parse error, stray '\"guest-pi\u{FFFD}'"
                }})),
                QgaOutput::Synced,
            ]
        );
    }

    #[test]
    fn stale_replies_then_pipelined_replies_in_order() {
        let mut q = QgaSession::default();
        q.execute("guest-ping", None).unwrap();
        // Resync before reading: the ping's reply is stale now.
        q.sync(2);
        for c in ["guest-ping", "nosuch", "guest-get-time"] {
            q.execute(c, None).unwrap();
        }
        q.handle_input(b"{\"return\": {}}\n{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n\xff{\"return\": 2}\n");
        q.handle_input(b"{\"return\": {}}\n{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command nosuch has not been found\"}}\n{\"return\": 1796535126524864000}\n");
        let out = drain(&mut q);
        assert_eq!(out.len(), 6, "{out:?}");
        assert_eq!(out[0], QgaOutput::Discarded(json!({"return": {}})));
        assert!(matches!(out[1], QgaOutput::Discarded(_)));
        assert_eq!(out[2], QgaOutput::Synced);
        assert_eq!(out[3], QgaOutput::Reply(Ok(json!({}))));
        let QgaOutput::Reply(Err(e)) = &out[4] else {
            panic!("{:?}", out[4])
        };
        assert_eq!(e.class, ErrorClass::CommandNotFound);
        assert_eq!(out[5], QgaOutput::Reply(Ok(json!(1796535126524864000u64))));
        // Nothing is owed any more: another reply is unsolicited.
        q.handle_input(b"{\"return\": {}}\n");
        assert!(matches!(
            drain(&mut q)[..],
            [QgaOutput::ProtocolError(Error::Unrecognized { .. })]
        ));
    }

    #[test]
    fn arguments_must_be_an_object() {
        let mut q = QgaSession::default();
        assert!(matches!(
            q.execute("guest-ping", Some(json!([1]))),
            Err(Error::ArgumentsNotObject { .. })
        ));
        let bytes = q.execute("guest-sync", Some(json!({"id": 5}))).unwrap();
        assert_eq!(bytes.last(), Some(&b'\n'));
        let cmd: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            cmd,
            json!({"execute": "guest-sync", "arguments": {"id": 5}})
        );
        // The failed call owes nothing; the good one does.
        q.handle_input(b"{\"return\": 5}\n{\"return\": 6}\n");
        let out = drain(&mut q);
        assert_eq!(out[0], QgaOutput::Reply(Ok(json!(5))));
        assert!(matches!(out[1], QgaOutput::ProtocolError(_)));
    }

    #[test]
    fn bad_json_while_syncing_is_a_protocol_error() {
        let mut q = QgaSession::default();
        q.sync(3);
        q.handle_input(b"{\"return\": }\n\xff{\"return\": 3}\n");
        let out = drain(&mut q);
        assert!(matches!(
            out[0],
            QgaOutput::ProtocolError(Error::InvalidJson { .. })
        ));
        assert_eq!(out[1], QgaOutput::Synced);
    }
}
