//! A thin QEMU guest-agent (QGA) client over the sans-IO [`qmp_proto::qga::QgaSession`]: async
//! ([`Client`], feature `async`) and blocking (`blocking::Client`, feature `blocking`).
//!
//! Connect to the host end of a virtio-serial `org.qemu.guest_agent.0` port (or to qemu-ga's own
//! listen socket), or wrap any byte stream. The agent has no greeting and no command ids, and the
//! stream may hold a previous client's leftovers, so the client first *syncs*: it sends a 0xFF
//! byte (which resets the agent's JSON parser, ending any half-written command) and
//! `guest-sync-delimited` with a random token, and discards everything up to the agent's answer
//! (each discarded object is logged with `tracing` at debug level and counted, see
//! `stale_discarded`).
//!
//! **One command at a time.** The agent answers in order and without ids, so a reply can only be
//! matched to its command by position. Each client therefore runs its commands strictly one after
//! another (clones share the connection and queue for it): correctness over throughput. When a
//! command times out, or an async call is cancelled (its future dropped) after its bytes may have
//! gone out, the stream is out of step: its reply may still come. The client then resyncs (new
//! token) before the next command, so a late reply is discarded and never handed to the wrong
//! caller.
//!
//! Agent errors keep their class: [`Error::Qmp`] with the agent's
//! [`QmpError`](qmp_proto::QmpError) (`CommandNotFound` for unknown and for disabled commands).
//!
//! ```no_run
//! # #[cfg(feature = "async")]
//! # async fn demo() -> qmp_client::Result<()> {
//! use qmp_client::qga::{Client, QgaOptions};
//! use std::time::Duration;
//!
//! let ga = Client::connect_unix("/run/vm/qga.sock", QgaOptions::default()).await?;
//! ga.ping().await?;
//! let info = ga.info().await?;
//! println!("qemu-ga {}: {} commands", info.version, info.supported_commands.len());
//! let ns = ga.get_time().await?;
//! let host = ga.get_host_name().await?;
//! let os = ga.get_osinfo().await?;
//! // Any command by name; this one with its own timeout.
//! let fsinfo = ga
//!     .execute_with_timeout("guest-get-fsinfo", None, Duration::from_secs(5))
//!     .await;
//! # let _ = (ns, host, os, fsinfo); Ok(()) }
//! ```
//!
//! The blocking driver has the same shape:
//!
//! ```no_run
//! # #[cfg(feature = "blocking")]
//! # fn demo() -> qmp_client::Result<()> {
//! use qmp_client::qga::{blocking::Client, QgaOptions};
//! let ga = Client::connect_unix("/run/vm/qga.sock", QgaOptions::default())?;
//! let ns = ga.get_time()?;
//! # let _ = ns; Ok(()) }
//! ```

#[cfg(feature = "async")]
mod asynchronous;
#[cfg(feature = "blocking")]
pub mod blocking;

#[cfg(feature = "async")]
pub use asynchronous::Client;

use crate::{Error, Result};
use qmp_proto::qga::{QgaOutput, QgaSession};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// How to connect to a guest agent.
#[derive(Debug, Clone)]
pub struct QgaOptions {
    /// Longest wait for the socket connection itself.
    pub connect_timeout: Duration,
    /// Longest wait for the agent to answer a sync (on connect, and before the first command
    /// after a timed-out or cancelled one). A guest whose agent is not running never answers.
    pub sync_timeout: Duration,
    /// Default per-command timeout (`None`: wait as long as the connection lives).
    pub command_timeout: Option<Duration>,
    /// Longest reply accepted, in bytes.
    pub max_frame_len: usize,
}

impl Default for QgaOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            sync_timeout: Duration::from_secs(5),
            command_timeout: Some(Duration::from_secs(30)),
            max_frame_len: qmp_proto::DEFAULT_MAX_FRAME_LEN,
        }
    }
}

/// What `guest-info` returns: the agent's version and the commands it knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestInfo {
    /// The agent's version ("7.2.22").
    pub version: String,
    /// Every command the agent knows, with whether it is enabled.
    pub supported_commands: Vec<GuestCommandInfo>,
}

impl GuestInfo {
    /// Whether the agent knows `command` and has it enabled.
    pub fn is_enabled(&self, command: &str) -> bool {
        self.supported_commands
            .iter()
            .any(|c| c.name == command && c.enabled)
    }
}

/// One entry of [`GuestInfo::supported_commands`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestCommandInfo {
    /// The command's name.
    pub name: String,
    /// False when the agent was started with the command blocked.
    pub enabled: bool,
    /// Whether the command sends a reply on success (`guest-shutdown` does not).
    #[serde(rename = "success-response")]
    pub success_response: bool,
}

/// What `guest-get-osinfo` returns (every field optional, as the agent omits what it does not
/// know).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestOsInfo {
    /// `uname -r` (Linux) or the Windows build.
    pub kernel_release: Option<String>,
    /// `uname -v` or the Windows version.
    pub kernel_version: Option<String>,
    /// `uname -m` or the Windows architecture.
    pub machine: Option<String>,
    /// os-release `ID` ("debian", "mswindows").
    pub id: Option<String>,
    /// os-release `NAME`.
    pub name: Option<String>,
    /// os-release `PRETTY_NAME`.
    pub pretty_name: Option<String>,
    /// os-release `VERSION`.
    pub version: Option<String>,
    /// os-release `VERSION_ID`.
    pub version_id: Option<String>,
    /// os-release `VARIANT`.
    pub variant: Option<String>,
    /// os-release `VARIANT_ID`.
    pub variant_id: Option<String>,
}

/// Decode a helper's return value.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(command: &str, value: Value) -> Result<T> {
    serde_json::from_value(value).map_err(|e| {
        Error::Protocol(qmp_proto::Error::BadReturn {
            command: command.to_owned(),
            reason: e.to_string(),
        })
    })
}

/// `guest-get-host-name`'s `{"host-name": ...}`.
#[derive(Deserialize)]
pub(crate) struct HostName {
    #[serde(rename = "host-name")]
    pub(crate) host_name: String,
}

/// A sync token nobody else will send: std's randomly keyed hasher over a counter, the time and
/// the process id (no RNG dependency needed; unpredictability is not a security property here).
fn random_token() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    h.write_u128(now.as_nanos());
    h.write_u32(std::process::id());
    h.finish()
}

/// The protocol state both drivers share: the session (which knows whether the stream is in
/// step) and how its outputs turn into results.
#[derive(Debug)]
pub(crate) struct Link {
    session: QgaSession,
}

impl Link {
    pub(crate) fn new(max_frame_len: usize) -> Self {
        Self {
            session: QgaSession::new(max_frame_len),
        }
    }

    /// The stream may hold output owed to no one (never synced, a command timed out or was
    /// cancelled, a sync did not finish, a reply was garbled): sync before the next command.
    pub(crate) fn needs_sync(&self) -> bool {
        self.session.needs_sync()
    }

    /// Objects discarded while syncing, in total.
    pub(crate) fn stale(&self) -> u64 {
        self.session.discarded()
    }

    /// The bytes of a new sync with a fresh token.
    pub(crate) fn begin_sync(&mut self) -> Vec<u8> {
        self.session.sync(random_token())
    }

    /// The bytes of a command. Until its reply is read the stream counts as out of step, so an
    /// interruption anywhere (timeout, cancellation, a write cut short) leads to a resync.
    pub(crate) fn begin_command(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Vec<u8>> {
        Ok(self.session.execute(command, arguments)?)
    }

    pub(crate) fn input(&mut self, bytes: &[u8]) {
        self.session.handle_input(bytes);
    }

    /// Whether the sync finished (consumes what the session has to say until then).
    pub(crate) fn poll_sync(&mut self) -> bool {
        while let Some(out) = self.session.poll_output() {
            match out {
                QgaOutput::Synced => return true,
                QgaOutput::Discarded(v) => {
                    tracing::debug!(discarded = %v, "guest agent: discarded stale output while syncing");
                }
                QgaOutput::ProtocolError(e) => {
                    tracing::debug!(error = %e, "guest agent: discarded bad output while syncing");
                }
                QgaOutput::Reply(r) => {
                    // Cannot happen while syncing (the session discards everything before the
                    // token); dropped all the same.
                    tracing::debug!(reply = ?r, "guest agent: discarded reply while syncing");
                }
            }
        }
        false
    }

    /// The command's outcome once known. A protocol error leaves the stream out of step.
    pub(crate) fn poll_reply(&mut self, command: &str) -> Option<Result<Value>> {
        while let Some(out) = self.session.poll_output() {
            match out {
                QgaOutput::Reply(r) => {
                    return Some(r.map_err(|error| Error::Qmp {
                        command: command.to_owned(),
                        error,
                    }));
                }
                QgaOutput::ProtocolError(e) => {
                    tracing::warn!(command, error = %e, "guest agent sent bad output");
                    return Some(Err(Error::Protocol(e)));
                }
                QgaOutput::Synced | QgaOutput::Discarded(_) => {
                    // Not syncing, so the session reports neither.
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_differ() {
        let a = random_token();
        let b = random_token();
        assert_ne!(a, b);
    }

    #[test]
    fn link_resyncs_after_an_unanswered_command() {
        let mut l = Link::new(1 << 20);
        assert!(l.needs_sync());
        let sync = l.begin_sync();
        let token: Value = serde_json::from_slice(&sync[1..]).unwrap();
        let token = token["arguments"]["id"].clone();
        l.input(b"{\"return\": \"old\"}\n");
        assert!(!l.poll_sync());
        let mut answer = vec![0xFF];
        answer.extend(format!("{{\"return\": {token}}}\n").as_bytes());
        l.input(&answer);
        assert!(l.poll_sync());
        assert!(!l.needs_sync());
        assert_eq!(l.stale(), 1);

        l.begin_command("guest-ping", None).unwrap();
        assert!(l.needs_sync(), "out of step until the reply is read");
        assert!(l.poll_reply("guest-ping").is_none());
        l.input(b"{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"x\"}}\n");
        let e = l.poll_reply("guest-ping").unwrap().unwrap_err();
        assert_eq!(e.qmp_class(), Some(&qmp_proto::ErrorClass::CommandNotFound));
        assert!(!l.needs_sync());

        assert!(l.begin_command("guest-ping", Some(json!([1]))).is_err());
        assert!(!l.needs_sync(), "nothing was sent");
    }

    #[test]
    fn osinfo_and_info_decode() {
        let os: GuestOsInfo = decode(
            "guest-get-osinfo",
            json!({"kernel-release": "6.1.0", "pretty-name": "Debian", "extra": 1}),
        )
        .unwrap();
        assert_eq!(os.kernel_release.as_deref(), Some("6.1.0"));
        assert_eq!(os.pretty_name.as_deref(), Some("Debian"));
        let info: GuestInfo = decode(
            "guest-info",
            json!({"version": "7.2", "supported_commands": [
                {"name": "guest-ping", "enabled": true, "success-response": true}]}),
        )
        .unwrap();
        assert!(info.is_enabled("guest-ping"));
        assert!(!info.is_enabled("guest-exec"));
        assert!(matches!(
            decode::<GuestInfo>("guest-info", json!(1)),
            Err(Error::Protocol(qmp_proto::Error::BadReturn { .. }))
        ));
    }
}
