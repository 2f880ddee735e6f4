//! Byte transports to a libvirt daemon.
//!
//! A transport is a connected, bidirectional byte stream that carries libvirt's RPC packets.
//! It is built from a [`Uri`] the way libvirt's remote driver does it:
//!
//! | transport | what is connected |
//! |-----------|-------------------|
//! | `unix`    | the daemon's unix socket ([`Uri::unix_socket`]) |
//! | `tcp`     | host:port (16509 by default), every resolved address tried in turn |
//! | `tls`     | as tcp (port 16514), then TLS with libvirt's PKI files ([`tls`]), then the daemon's one-byte "client accepted" reply |
//! | `ssh`     | the system `ssh` running `virt-ssh-helper` or `nc -U` remotely ([`ssh`]) |
//! | `ext`     | the program named by `command=` ([`ext`]) |
//!
//! The steps that need no IO are public and pure: [`Endpoint::from_uri`] decides what to
//! connect to; [`ssh::ssh_command`] and [`ext::ext_command`] build the child's command line;
//! [`tls::TlsFiles`] and [`tls::client_config`] build the rustls configuration.
//!
//! Two drivers execute an [`Endpoint`]: `BlockingTransport` (feature `blocking`, std only:
//! `Read + Write`, timeouts, split into reader and writer halves for a reader thread) and
//! `AsyncTransport` (feature `async`, tokio `AsyncRead + AsyncWrite`). Both also wrap any
//! byte stream of the caller's (`from_stream`).
//!
//! Only the unix transport passes file descriptors (`SCM_RIGHTS`, see `can_pass_fds`), as in
//! libvirt, whose `virNetSocketHasPassFD` is true for unix sockets only.
//!
//! Programs (ssh, ext) talk over a unix socket pair that is their stdin and stdout, like
//! libvirt's; their stderr is collected and reported when the stream ends, and the process is
//! killed and reaped when the transport is dropped.

use std::path::PathBuf;
use std::time::Duration;

use crate::uri::{LocalEnv, TransportKind, Uri};
use crate::Error;

#[cfg(any(feature = "blocking", feature = "async"))]
mod child;
pub mod ext;
#[cfg(any(feature = "blocking", feature = "async"))]
pub(crate) mod fdpass;
pub mod ssh;
pub mod tcp;
pub mod tls;
pub mod unix;

#[cfg(feature = "blocking")]
mod blocking;
#[cfg(feature = "blocking")]
pub use blocking::{BlockingReader, BlockingTransport, BlockingWriter, ShutdownHandle};

#[cfg(feature = "async")]
mod asynch;
#[cfg(feature = "async")]
pub use asynch::{AsyncStream, AsyncTransport};
#[cfg(feature = "async")]
pub(crate) use asynch::{ReadSide, WriteSide};

/// Options for connecting a transport.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Open read-only (`VIR_CONNECT_RO`): picks the system daemon's `-sock-ro` socket and runs
    /// `virt-ssh-helper -r` over ssh.
    pub read_only: bool,
    /// Limit for establishing the connection (each TCP connect attempt, the TLS handshake and
    /// the daemon's certificate verdict). `None` waits as long as the OS does.
    pub connect_timeout: Option<Duration>,
    /// Effective-uid and runtime-directory facts used to pick sockets; read from the process
    /// by default.
    pub env: LocalEnv,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            read_only: false,
            connect_timeout: Some(Duration::from_secs(30)),
            env: LocalEnv::from_process(),
        }
    }
}

impl ConnectOptions {
    /// Set [`ConnectOptions::read_only`].
    pub fn read_only(mut self, read_only: bool) -> ConnectOptions {
        self.read_only = read_only;
        self
    }

    /// Set [`ConnectOptions::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> ConnectOptions {
        self.connect_timeout = timeout;
        self
    }

    /// Set [`ConnectOptions::env`].
    pub fn env(mut self, env: LocalEnv) -> ConnectOptions {
        self.env = env;
        self
    }
}

/// A program to run whose stdin and stdout carry the protocol (ssh and ext transports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// The program (looked up on `PATH` when it has no `/`).
    pub program: String,
    /// Its arguments (not including the program).
    pub args: Vec<String>,
}

impl CommandSpec {
    /// The command line, shell-quoted where needed, for messages and logs.
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| ssh::shell_escape(a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What a URI says to connect to, decided without IO (except the file-existence probes that
/// socket selection and TLS credential lookup make, as libvirt's do).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Endpoint {
    /// A local unix socket.
    Unix {
        /// The socket path.
        path: PathBuf,
    },
    /// Plain TCP.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// TLS over TCP.
    Tls {
        /// Host name or address (also the name the server certificate must match).
        host: String,
        /// Port.
        port: u16,
        /// Where the CA, client certificate and key are read from, and whether to verify.
        settings: tls::TlsSettings,
    },
    /// A child process speaking the protocol on stdin/stdout.
    Command {
        /// The transport it implements (ssh or ext).
        kind: TransportKind,
        /// What to run.
        spec: CommandSpec,
    },
}

impl Endpoint {
    /// Decide what to connect to for `uri`.
    pub fn from_uri(uri: &Uri, opts: &ConnectOptions) -> Result<Endpoint, Error> {
        let kind = uri.transport();
        let port = || {
            uri.effective_port()
                .expect("tcp and tls have default ports")
        };
        Ok(match kind {
            TransportKind::Unix => Endpoint::Unix {
                path: uri
                    .unix_socket_in(&opts.env, opts.read_only, |p| p.exists())?
                    .path,
            },
            TransportKind::Tcp => Endpoint::Tcp {
                host: uri.host_or_localhost().to_owned(),
                port: port(),
            },
            TransportKind::Tls => Endpoint::Tls {
                host: uri.host_or_localhost().to_owned(),
                port: port(),
                settings: tls::TlsSettings::from_uri(uri, &opts.env),
            },
            TransportKind::Ssh => Endpoint::Command {
                kind,
                spec: ssh::ssh_command(uri, opts.read_only, &opts.env)?,
            },
            TransportKind::Ext => Endpoint::Command {
                kind,
                spec: ext::ext_command(uri)?,
            },
            TransportKind::Libssh | TransportKind::Libssh2 => {
                return Err(Error::Unsupported {
                    reason: format!(
                        "the {kind} transport (libvirt's in-process ssh client) is not \
                         implemented; use {}+ssh:// (the system ssh program) instead",
                        uri.driver()
                    ),
                })
            }
        })
    }

    /// The transport kind this endpoint implements.
    pub fn kind(&self) -> TransportKind {
        match self {
            Endpoint::Unix { .. } => TransportKind::Unix,
            Endpoint::Tcp { .. } => TransportKind::Tcp,
            Endpoint::Tls { .. } => TransportKind::Tls,
            Endpoint::Command { kind, .. } => *kind,
        }
    }
}

/// Whether libvirt regards a transport as secure (`virConnectIsSecure`'s client half): unix,
/// tls and ssh are; tcp and ext (an arbitrary program) are not.
pub fn is_secure(kind: TransportKind) -> bool {
    matches!(
        kind,
        TransportKind::Unix
            | TransportKind::Tls
            | TransportKind::Ssh
            | TransportKind::Libssh
            | TransportKind::Libssh2
    )
}

#[cfg(any(feature = "blocking", feature = "async"))]
fn timeout_error(what: String, timeout: Option<Duration>) -> Error {
    Error::Timeout {
        what,
        timeout: timeout.unwrap_or_default(),
    }
}

/// How many times the calling thread has gone to sleep so far (`voluntary_ctxt_switches`), for
/// tests that check a reader is not woken for nothing.
#[cfg(test)]
pub(crate) fn thread_sleeps() -> u64 {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("voluntary_ctxt_switches in /proc/thread-self/status")
}

/// Drive a test of a reader waiting for input on our end of a unix socket pair: 200 times,
/// write a byte on our end (`ours`) and take it off at the `peer`'s, which makes the kernel
/// signal room to write to everyone waiting on our socket; then the peer sends `reply`. The
/// `reader` thread returns how often it went to sleep meanwhile and what it read: `reply`,
/// having slept through the rest (a few sleeps at most, not one per byte the peer took).
#[cfg(test)]
pub(crate) fn check_reader_sleeps_while_peer_reads(
    mut ours: impl std::io::Write,
    mut peer: std::os::unix::net::UnixStream,
    reader: std::thread::JoinHandle<(u64, Vec<u8>)>,
) {
    use std::io::{Read, Write};
    use std::time::Duration;
    std::thread::sleep(Duration::from_millis(20));
    for _ in 0..200 {
        ours.write_all(b"x").unwrap();
        peer.read_exact(&mut [0u8; 1]).unwrap();
        // Time for a reader woken by that to go back to sleep.
        std::thread::sleep(Duration::from_micros(300));
    }
    peer.write_all(b"reply").unwrap();
    let (sleeps, got) = reader.join().unwrap();
    assert_eq!(got, b"reply");
    assert!(sleeps <= 5, "the reader went back to sleep {sleeps} times");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ConnectOptions {
        ConnectOptions::default().env(LocalEnv::new(false, PathBuf::from("/run/user/7/libvirt")))
    }

    #[test]
    fn endpoints_from_uris() {
        let e = |s: &str| Endpoint::from_uri(&Uri::parse(s).unwrap(), &opts());
        match e("qemu+unix:///system?socket=/tmp/s").unwrap() {
            Endpoint::Unix { path } => assert_eq!(path, PathBuf::from("/tmp/s")),
            other => panic!("{other:?}"),
        }
        match e("qemu:///session").unwrap() {
            Endpoint::Unix { path } => {
                assert_eq!(path, PathBuf::from("/run/user/7/libvirt/libvirt-sock"))
            }
            other => panic!("{other:?}"),
        }
        match e("test+tcp://127.0.0.1:16599/default").unwrap() {
            Endpoint::Tcp { host, port } => assert_eq!((host.as_str(), port), ("127.0.0.1", 16599)),
            other => panic!("{other:?}"),
        }
        match e("test+tcp:///default").unwrap() {
            Endpoint::Tcp { host, port } => assert_eq!((host.as_str(), port), ("localhost", 16509)),
            other => panic!("{other:?}"),
        }
        match e("qemu://node/system?pkipath=/pki&no_verify=1").unwrap() {
            Endpoint::Tls {
                host,
                port,
                settings,
            } => {
                assert_eq!((host.as_str(), port), ("node", 16514));
                assert_eq!(settings.files.ca, PathBuf::from("/pki/cacert.pem"));
                assert!(!settings.verify_server);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            e("qemu+ssh://h/system").unwrap(),
            Endpoint::Command {
                kind: TransportKind::Ssh,
                ..
            }
        ));
        assert!(matches!(
            e("qemu+ext:///system?command=/bin/true").unwrap(),
            Endpoint::Command {
                kind: TransportKind::Ext,
                ..
            }
        ));
        assert!(matches!(
            e("qemu+ext:///system"),
            Err(Error::InvalidParam { .. })
        ));
        assert!(matches!(
            e("qemu+libssh://h/system"),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn secure_kinds() {
        assert!(is_secure(TransportKind::Unix));
        assert!(is_secure(TransportKind::Tls));
        assert!(!is_secure(TransportKind::Tcp));
        assert!(!is_secure(TransportKind::Ext));
    }
}
