//! The crate's one error type.

use qmp_proto::QmpError;
use std::sync::Arc;
use std::time::Duration;

/// Everything a QMP call can fail with.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Connecting failed (wrong path or port, QEMU not running, permissions).
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// Socket path or address.
        target: String,
        /// The OS error.
        source: Arc<std::io::Error>,
    },
    /// Connecting took longer than the connect timeout.
    #[error("connecting to {target} timed out after {after:?}")]
    ConnectTimeout {
        /// Socket path or address.
        target: String,
        /// The timeout.
        after: Duration,
    },
    /// The greeting and negotiation took longer than the greeting timeout: the peer is probably
    /// not QMP, or another client holds the monitor.
    #[error("no QMP greeting and negotiation within {after:?} (is another client connected?)")]
    GreetingTimeout {
        /// The timeout.
        after: Duration,
    },
    /// Reading or writing the socket failed; the connection is unusable.
    #[error("QMP connection IO error: {0}")]
    Io(Arc<std::io::Error>),
    /// QEMU answered the command with an error.
    #[error("`{command}` failed: {error}")]
    Qmp {
        /// The command.
        command: String,
        /// QEMU's error class and description.
        error: QmpError,
    },
    /// The command got no answer within its timeout; it was cancelled (a late reply is dropped).
    #[error("`{command}` got no reply within {after:?} (cancelled)")]
    Timeout {
        /// The command.
        command: String,
        /// The timeout.
        after: Duration,
    },
    /// QEMU's reply was longer than the framing limit
    /// ([`SessionConfig::framer`](qmp_proto::SessionConfig)); it was skipped unread and the
    /// command failed as soon as the reply was known to be its own. The connection stays usable.
    #[error("the reply to `{command}` exceeded the {limit} byte limit and was dropped")]
    ResponseTooLarge {
        /// The command.
        command: String,
        /// The configured limit.
        limit: usize,
    },
    /// Waiting for an event timed out.
    #[error("no {what} within {after:?}")]
    EventTimeout {
        /// The awaited event, described.
        what: String,
        /// The timeout.
        after: Duration,
    },
    /// Events a wait was subscribed to were dropped because its queue was full (the overflow
    /// policy of `subscribe`) before the awaited one arrived: it may have been among them, so
    /// the wait ends at once instead of running out its time. Returned by the waits of the
    /// helpers (`execute_then_wait_event`, `device_del_and_wait`, ...) and by
    /// `Subscription::next_within`.
    #[error("{lost} {what} event(s) were dropped (subscriber queue full) while waiting; the awaited one may be among them")]
    EventsLost {
        /// The awaited event, described.
        what: String,
        /// How many matching events were dropped.
        lost: u64,
    },
    /// The connection closed (QEMU exited or the client shut down) before the command finished.
    #[error("the QMP connection is closed{}", .command.as_ref().map(|c| format!(" (`{c}` cannot complete)")).unwrap_or_default())]
    Closed {
        /// The command that was pending, if any.
        command: Option<String>,
    },
    /// The peer broke the protocol (or sent a value we could not decode).
    #[error(transparent)]
    Protocol(#[from] qmp_proto::Error),
    /// Fds can only be passed over unix sockets.
    #[error("file descriptors can only be passed over a unix socket")]
    FdPassingUnsupported,
    /// libvirt failed to relay a command (QMP through libvirt, feature `libvirt`).
    #[cfg(feature = "libvirt")]
    #[error("libvirt could not relay `{command}`: {source}")]
    Libvirt {
        /// The command.
        command: String,
        /// libvirt-client's error.
        source: Arc<libvirt_client::Error>,
    },
    /// A migration ended `failed` (or was cancelled by someone else) before completing.
    #[error("migration {status}: {desc}")]
    MigrationFailed {
        /// The final `query-migrate` status (`failed`, `cancelled`).
        status: String,
        /// QEMU's `error-desc`, or "no reason given".
        desc: String,
    },
    /// A migration had not completed within its timeout; it was cancelled (`migrate_cancel`).
    #[error("migration not completed within {after:?}; cancelled (status {status})")]
    MigrationTimeout {
        /// The timeout.
        after: Duration,
        /// The last `query-migrate` status seen (`cancelled` once QEMU confirmed the cancel).
        status: String,
    },
    /// The guest agent did not answer `guest-sync-delimited` in time (module [`qga`](crate::qga)):
    /// no agent runs in the guest, or it is wedged.
    #[error("the guest agent did not answer guest-sync-delimited within {after:?} (is it running in the guest?)")]
    SyncTimeout {
        /// The sync timeout.
        after: Duration,
    },
    /// A helper was given an argument QEMU would refuse; nothing was sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// QEMU's error class when QEMU refused the command.
    pub fn qmp_class(&self) -> Option<&qmp_proto::ErrorClass> {
        match self {
            Self::Qmp { error, .. } => Some(&error.class),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::Io(Arc::new(e))
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
