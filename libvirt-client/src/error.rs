//! The crate's single error type.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong in `libvirt-client`.
///
/// Each variant carries what a user needs to act on it: the offending URI or parameter, the
/// socket path, host and port, the program that was run and what it wrote to stderr.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection URI is malformed.
    #[error("invalid libvirt URI {uri:?}: {reason}")]
    InvalidUri {
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The `+transport` part of the URI scheme names no transport libvirt knows.
    #[error(
        "unknown transport {transport:?} in URI {uri:?} \
         (expected one of tls, unix, ssh, ext, tcp, libssh2, libssh)"
    )]
    UnknownTransport {
        /// The URI as given.
        uri: String,
        /// The transport name found after `+`.
        transport: String,
    },

    /// A URI query parameter has a value this crate (like libvirt) cannot accept.
    #[error("invalid value {value:?} for URI parameter `{name}`: {reason}")]
    InvalidParam {
        /// Parameter name.
        name: String,
        /// Parameter value as decoded from the URI.
        value: String,
        /// What would be accepted.
        reason: String,
    },

    /// The `LIBVIRT_DEFAULT_URI` environment variable is set but not usable.
    #[error("environment variable LIBVIRT_DEFAULT_URI: {reason}")]
    InvalidDefaultUri {
        /// What is wrong with it.
        reason: String,
    },

    /// The URI asks for something this client cannot do (e.g. the `libssh` transport, or the
    /// `direct` socket mode over ssh).
    #[error("unsupported connection request: {reason}")]
    Unsupported {
        /// What is not supported and what to use instead.
        reason: String,
    },

    /// Connecting to a unix socket failed.
    #[error("cannot connect to unix socket {path}: {source} (is the daemon running, and may this user open the socket?)")]
    ConnectUnix {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// Resolving a host name failed.
    #[error("cannot resolve host {host:?} (port {port}): {source}")]
    Resolve {
        /// Host name.
        host: String,
        /// Port.
        port: u16,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },

    /// Every address of the host refused or failed the TCP connection.
    #[error("cannot connect to {host}:{port}: {source}")]
    ConnectTcp {
        /// Host name as given in the URI.
        host: String,
        /// Port.
        port: u16,
        /// The error from the last address tried.
        #[source]
        source: io::Error,
    },

    /// A connection step did not finish in time.
    #[error("{what} timed out after {timeout:?}")]
    Timeout {
        /// The step (connect to ..., TLS handshake with ...).
        what: String,
        /// The limit that was exceeded.
        timeout: Duration,
    },

    /// A TLS credential file (CA, client certificate or key) could not be read.
    #[error("cannot read TLS credential file {path}: {source} (set up libvirt's PKI files or pass `pkipath=`)")]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// A TLS credential file was read but does not hold what it should.
    #[error("bad TLS credential file {path}: {reason}")]
    TlsCredentials {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// rustls refused the TLS configuration or the server name.
    #[error("TLS setup: {reason}")]
    TlsConfig {
        /// rustls' explanation.
        reason: String,
    },

    /// The TLS handshake with the daemon failed (untrusted server certificate, wrong host name,
    /// no common protocol version, the server refused our certificate...).
    #[error("TLS handshake with {host} failed: {source}")]
    TlsHandshake {
        /// The server's host name.
        host: String,
        /// The error, usually wrapping a `rustls::Error`.
        #[source]
        source: io::Error,
    },

    /// After the TLS handshake the daemon did not confirm our client certificate. libvirtd sends
    /// one byte, `1`, when it accepts the client; anything else means it rejected our
    /// certificate's distinguished name or our IP address.
    #[error(
        "server {host} refused this client after the TLS handshake ({got}); \
         check that the daemon's tls_allowed_dn_list admits our client certificate"
    )]
    TlsClientRefused {
        /// The server's host name.
        host: String,
        /// What arrived instead of the byte `1`.
        got: String,
    },

    /// Starting an external program (ssh, or the `ext` transport's command) failed.
    #[error("cannot run {program:?}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// A protocol-level failure: the daemon's error for a call ([`libvirt_proto::Error::Remote`]),
    /// a call timeout, the connection's end ([`libvirt_proto::Error::Closed`]), a malformed
    /// packet. [`Error::remote`] gives the daemon's error when there is one.
    #[error(transparent)]
    Proto(#[from] libvirt_proto::Error),

    /// The daemon requires an authentication method this client does not implement yet.
    #[error("the daemon requires {method} authentication, which this client does not support yet (offered: {offered:?}); configure auth none or polkit for this socket")]
    UnsupportedAuth {
        /// The method (`sasl`).
        method: String,
        /// Every method the daemon offered.
        offered: Vec<String>,
    },

    /// Authentication ran but did not succeed.
    #[error("{method} authentication failed: {reason}")]
    AuthFailed {
        /// The method.
        method: String,
        /// Why.
        reason: String,
        /// The daemon's own error when it refused (e.g. `VIR_ERR_AUTH_FAILED` from the RPC
        /// domain for a wrong password); `None` when this client gave up by itself. Also
        /// reachable with [`Error::remote`].
        remote: Option<Box<libvirt_proto::RemoteError>>,
    },

    /// A server message (event) could not be decoded as its procedure's type.
    #[error("cannot decode event (program {program:#x}, procedure {procedure}): {source}")]
    EventDecode {
        /// Program number.
        program: u32,
        /// Procedure number.
        procedure: i32,
        /// Why.
        #[source]
        source: libvirt_proto::Error,
    },

    /// A reply did not have the shape a helper expects (e.g. a version number out of range).
    #[error("unexpected reply to {procedure}: {reason}")]
    UnexpectedReply {
        /// The C procedure name.
        procedure: &'static str,
        /// What was wrong.
        reason: String,
    },

    /// A stream operation failed or the stream was used after its end.
    #[error("stream: {reason}")]
    Stream {
        /// What happened.
        reason: String,
    },

    /// A migration step failed for a reason the daemons did not report themselves (e.g. the
    /// destination's Prepare3 chose no migration URI and none was given).
    #[error("migration ({phase}): {reason}")]
    Migration {
        /// The step.
        phase: MigrationPhase,
        /// What went wrong.
        reason: String,
    },

    /// A migration step's call failed: `error` is that call's error (usually the daemon's,
    /// reachable with [`Error::remote`]), `phase` says which step and so which daemon (Begin,
    /// Perform and Confirm run on the source, Prepare and Finish on the destination).
    #[error("migration {phase} failed: {error}")]
    MigrationStep {
        /// The step whose call failed.
        phase: MigrationPhase,
        /// The call's error.
        #[source]
        error: Box<Error>,
    },

    /// The migration options cannot be honoured; refused before any migration call (as
    /// libvirt's own client refuses them, e.g. `VIR_ERR_ARGUMENT_UNSUPPORTED` for extended
    /// parameters without the params procedures).
    #[error("invalid migration option {option}: {reason}")]
    InvalidMigration {
        /// The option (`persist_xml`, `progress_interval`, `flags`, a parameter name...).
        option: String,
        /// Why it cannot be used and what to do instead.
        reason: String,
    },

    /// A migration was cancelled by its caller: the progress callback returned
    /// `ControlFlow::Break`, the orchestrator aborted the source's job (`DOMAIN_ABORT_JOB`, as
    /// `virDomainAbortJob`), and the migration then failed. `error` is the failure the abort
    /// caused, as the daemons reported it (libvirt 9.0's QEMU driver: `VIR_ERR_OPERATION_ABORTED`
    /// from the `VIR_FROM_QEMU` domain); [`Error::remote`] sees through to it. The guest keeps
    /// running on the source.
    #[error("migration cancelled by the caller: {error}")]
    MigrationCancelled {
        /// The error of the aborted migration.
        #[source]
        error: Box<Error>,
    },

    /// A call would pass file descriptors over a transport that cannot carry them: only a unix
    /// socket connection can (libvirt's rule too). Nothing was sent.
    #[error(
        "cannot pass {count} file descriptor(s) over the {transport} transport: only a unix \
         socket connection carries them (connect with a local URI such as qemu:///session)"
    )]
    FdPassingUnavailable {
        /// The connection's transport (`tcp`, `tls`, `ssh`, `ext`, `stream`...).
        transport: String,
        /// Descriptors the call wanted to pass.
        count: usize,
    },

    /// Any other I/O error on an established transport.
    #[error("transport I/O error: {0}")]
    Io(#[from] io::Error),
}

/// A step of libvirt's v3 migration protocol (see `libvirt_client::migrate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MigrationPhase {
    /// `Begin3` on the source.
    Begin,
    /// `Prepare3` on the destination.
    Prepare,
    /// `Perform3` on the source (also the whole of a peer-to-peer migration).
    Perform,
    /// `Finish3` on the destination.
    Finish,
    /// `Confirm3` on the source.
    Confirm,
}

impl std::fmt::Display for MigrationPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MigrationPhase::Begin => "Begin3 (source)",
            MigrationPhase::Prepare => "Prepare3 (destination)",
            MigrationPhase::Perform => "Perform3 (source)",
            MigrationPhase::Finish => "Finish3 (destination)",
            MigrationPhase::Confirm => "Confirm3 (source)",
        })
    }
}

impl Error {
    /// The daemon's error, when this is a failed call.
    pub fn remote(&self) -> Option<&libvirt_proto::RemoteError> {
        match self {
            Error::Proto(e) => e.remote(),
            Error::MigrationCancelled { error } => error.remote(),
            Error::MigrationStep { error, .. } => error.remote(),
            Error::AuthFailed {
                remote: Some(r), ..
            } => Some(&**r),
            _ => None,
        }
    }

    /// The migration step that failed ([`Error::MigrationStep`], [`Error::Migration`], also
    /// inside [`Error::MigrationCancelled`]); `None` for other errors.
    pub fn migration_phase(&self) -> Option<MigrationPhase> {
        match self {
            Error::MigrationStep { phase, .. } | Error::Migration { phase, .. } => Some(*phase),
            Error::MigrationCancelled { error } => error.migration_phase(),
            _ => None,
        }
    }

    /// The daemon's error code (`virErrorNumber`), when this is a failed call.
    pub fn remote_code(&self) -> Option<libvirt_proto::generated::api::ErrorNumber> {
        self.remote().map(|r| r.code)
    }

    /// True when the connection is gone (closed, EOF, keepalive timeout, IO error): retrying
    /// needs a new connection.
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::Proto(libvirt_proto::Error::Closed(_)))
    }

    /// True when the call timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Proto(libvirt_proto::Error::TimedOut { .. }))
            || matches!(self, Error::Timeout { .. })
    }
}
