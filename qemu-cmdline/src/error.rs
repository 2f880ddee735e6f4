//! The crate's one error type.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Everything that can go wrong while building, validating, parsing or launching a QEMU command
/// line. Each variant names what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value that QEMU takes as an implied (first, key-less) element, a key, or a name that
    /// cannot be escaped contains a character QEMU would misread.
    #[error("{what} {value:?} cannot be written on a QEMU command line: {reason}")]
    Unrepresentable {
        /// What the value is (e.g. "implied `driver` of -device", "key of -machine").
        what: String,
        /// The offending value.
        value: String,
        /// Why it cannot be written (e.g. "contains ','").
        reason: &'static str,
    },
    /// An id or node name that QEMU would refuse (it must start with a letter and continue with
    /// letters, digits, `-`, `.` or `_`; node names are at most 31 bytes).
    #[error("invalid {what} {id:?}: {reason}")]
    InvalidId {
        /// What kind of identifier (e.g. "device id", "node-name").
        what: &'static str,
        /// The identifier given.
        id: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A field QEMU needs is empty or missing.
    #[error("{kind}: missing {field}")]
    Missing {
        /// The device or option kind.
        kind: String,
        /// The missing field.
        field: &'static str,
    },
    /// Two things in the same namespace carry the same id.
    #[error("duplicate {namespace} id {id:?} (used by {first} and {second})")]
    DuplicateId {
        /// The namespace (device, node, chardev, netdev, object, fsdev, fw_cfg name, bus).
        namespace: crate::Namespace,
        /// The id used twice.
        id: String,
        /// Who declared it first.
        first: String,
        /// Who declared it again.
        second: String,
    },
    /// A device refers to a backend, bus, chardev, netdev, memdev or node that nothing declares.
    #[error("{from} refers to {namespace} {id:?}, which nothing in the configuration declares")]
    DanglingReference {
        /// Who refers.
        from: String,
        /// Which namespace the reference points into.
        namespace: crate::Namespace,
        /// The missing id.
        id: String,
    },
    /// A combination QEMU cannot run (e.g. maxcpus < cpus, an NVDIMM without memory slots).
    #[error("impossible configuration: {0}")]
    Impossible(String),
    /// A file descriptor referenced by the configuration is missing from the fd plan, or the
    /// plan is inconsistent.
    #[error("fd plan: {0}")]
    FdPlan(String),
    /// The argv could not be parsed back.
    #[error("argument {index} ({arg:?}): {reason}")]
    Parse {
        /// Index in the argv (0 = first option after the binary).
        index: usize,
        /// The argument.
        arg: String,
        /// What is wrong with it.
        reason: String,
    },
    /// QEMU could not be started.
    #[error("could not start {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// QEMU exited before its QMP socket appeared.
    #[error("QEMU exited with {status} before QMP was ready; stderr:\n{stderr}")]
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// Everything it wrote to stderr.
        stderr: String,
    },
    /// The QMP socket did not accept a connection in time.
    #[error("QMP socket {path} not ready after {waited:?}; QEMU stderr so far:\n{stderr}")]
    QmpTimeout {
        /// The socket path waited for.
        path: PathBuf,
        /// How long we waited.
        waited: Duration,
        /// QEMU's stderr so far.
        stderr: String,
    },
    /// The launch request cannot be honoured (e.g. no QMP socket to wait for, `-daemonize`).
    #[error("cannot launch: {0}")]
    Launch(String),
    /// An OS error while managing the QEMU process.
    #[error("I/O error while {doing}: {source}")]
    Io {
        /// What we were doing.
        doing: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
