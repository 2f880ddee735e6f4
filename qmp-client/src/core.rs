//! The state both drivers share behind one mutex: the sans-IO session, pending replies,
//! subscribers and fds waiting to go out with their command.

use crate::events::Sink;
use crate::router::{Notice, Reply, Router};
use crate::Error;
use qmp_proto::{CommandId, Session};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
#[cfg(unix)]
use std::os::fd::OwnedFd;

/// Fds to send: passed only on unix sockets.
#[cfg(unix)]
pub(crate) type Fds = Vec<OwnedFd>;
/// Fds to send: nothing to pass on this platform.
#[cfg(not(unix))]
pub(crate) type Fds = Vec<()>;

/// Bytes to write; `fds` go with the first byte.
pub(crate) struct Outgoing {
    pub(crate) bytes: Vec<u8>,
    pub(crate) fds: Fds,
    pub(crate) written: usize,
}

pub(crate) struct Core<R, S> {
    pub(crate) session: Session,
    pub(crate) router: Router<R, S>,
    fds: HashMap<CommandId, Fds>,
}

impl<R: Reply, S: Sink> Core<R, S> {
    pub(crate) fn new(session: Session) -> Self {
        Self {
            session,
            router: Router::default(),
            fds: HashMap::new(),
        }
    }

    pub(crate) fn submit(
        &mut self,
        command: &str,
        arguments: Option<Value>,
        oob: bool,
        fds: Fds,
        reply: R,
    ) -> Result<CommandId, Error> {
        // An fd-carrying command waits in the session until the previous one is answered (QEMU
        // drops fds it has not handed out when new ones arrive); exec-oob skips the queue, so
        // it cannot carry fds.
        let id = match (oob, fds.is_empty()) {
            (true, false) => {
                return Err(Error::InvalidArgument(format!(
                    "`{command}`: file descriptors cannot go with exec-oob (fd-carrying commands \
                     are sent in-band, one at a time)"
                )))
            }
            (true, true) => self.session.execute_oob(command, arguments),
            (false, false) => self.session.execute_with_fds(command, arguments),
            (false, true) => self.session.execute(command, arguments),
        };
        let id = id.map_err(|e| match e {
            qmp_proto::Error::Closed => Error::Closed {
                command: Some(command.to_owned()),
            },
            other => Error::Protocol(other),
        })?;
        self.router.register(id, command.to_owned(), reply);
        if !fds.is_empty() {
            self.fds.insert(id, fds);
        }
        Ok(id)
    }

    /// Give up on a command: never sent if still queued, late reply dropped otherwise.
    pub(crate) fn cancel(&mut self, id: CommandId) {
        self.session.cancel(id);
        self.router.forget(id);
        self.fds.remove(&id);
    }

    fn drain(&mut self, notices: &mut Vec<Notice>) {
        while let Some(out) = self.session.poll_output() {
            if let Some(n) = self.router.handle(out) {
                notices.push(n);
            }
        }
    }

    pub(crate) fn input(&mut self, bytes: &[u8]) -> Vec<Notice> {
        let mut notices = Vec::new();
        self.session.handle_input(bytes);
        self.drain(&mut notices);
        notices
    }

    pub(crate) fn eof(&mut self) -> Vec<Notice> {
        let mut notices = Vec::new();
        self.session.handle_eof();
        self.drain(&mut notices);
        self.fds.clear();
        notices
    }

    /// Move what the session wants written into `out`, coalescing commands without fds.
    pub(crate) fn take_outgoing(&mut self, out: &mut VecDeque<Outgoing>) {
        while let Some(t) = self.session.poll_transmit() {
            let fds = self.fds.remove(&t.id).unwrap_or_default();
            match out.back_mut() {
                Some(last) if fds.is_empty() && last.written == 0 => {
                    last.bytes.extend_from_slice(&t.bytes)
                }
                _ => out.push_back(Outgoing {
                    bytes: t.bytes,
                    fds,
                    written: 0,
                }),
            }
        }
    }
}
