//! libvirt connection URIs.
//!
//! A libvirt URI has the form `driver[+transport]://[user@][host][:port]/[path][?params]`
//! (see libvirt's "Connection URIs" documentation). [`Uri::parse`] splits it into a typed
//! [`Uri`]: the hypervisor driver, the transport (unix when no host is given, tls when one is,
//! like libvirt's remote driver), user, host (IPv6 literals without their brackets), port,
//! path, the percent-decoded query parameters in order, and the remote driver's own parameters
//! ([`RemoteParams`]: `socket`, `mode`, `pkipath`, `no_verify`, ...) checked as libvirt checks
//! them. Unknown parameters are kept and passed to the daemon.
//!
//! [`Uri::remote_name`] is the name the client sends in `REMOTE_PROC_CONNECT_OPEN`: the URI
//! without transport, user, host, port and the remote driver's parameters (so
//! `qemu+unix:///session?socket=/x` opens `qemu:///session` on the daemon).
//! [`Uri::unix_socket`] picks the daemon socket the way libvirt does for system, session and
//! modular (per-driver) daemons.
//!
//! ```
//! use libvirt_client::uri::{TransportKind, Uri};
//!
//! let uri: Uri = "qemu+ssh://root@[::1]:2222/system?keyfile=/k&foo=a%20b".parse()?;
//! assert_eq!(uri.driver(), "qemu");
//! assert_eq!(uri.transport(), TransportKind::Ssh);
//! assert_eq!(uri.host(), Some("::1"));
//! assert_eq!(uri.port(), Some(2222));
//! assert_eq!(uri.remote().keyfile.as_deref(), Some(std::path::Path::new("/k")));
//! assert_eq!(uri.remote_name(), "qemu:///system?foo=a%20b");
//! assert_eq!(uri.to_string().parse::<Uri>()?, uri);
//! # Ok::<(), libvirt_client::Error>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::Error;

/// TCP port of libvirtd's plain TCP listener (`LIBVIRTD_TCP_PORT`).
pub const DEFAULT_TCP_PORT: u16 = 16509;
/// TCP port of libvirtd's TLS listener (`LIBVIRTD_TLS_PORT`).
pub const DEFAULT_TLS_PORT: u16 = 16514;
/// Environment variable holding the default URI.
pub const DEFAULT_URI_ENV: &str = "LIBVIRT_DEFAULT_URI";

/// How the client reaches the daemon (the `+transport` part of the URI scheme).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportKind {
    /// Unix domain socket on this machine.
    Unix,
    /// Plain, unencrypted TCP.
    Tcp,
    /// TLS over TCP with x509 certificates (libvirt's PKI layout).
    Tls,
    /// The system `ssh` program, running `virt-ssh-helper` or `nc -U` on the remote host.
    Ssh,
    /// An external program (`command=`) whose stdin/stdout carry the protocol.
    Ext,
    /// libvirt's in-process libssh2 client (parsed, not supported by this crate: use `ssh`).
    Libssh2,
    /// libvirt's in-process libssh client (parsed, not supported by this crate: use `ssh`).
    Libssh,
}

impl TransportKind {
    /// The name used in URI schemes (`unix`, `tcp`, `tls`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Unix => "unix",
            TransportKind::Tcp => "tcp",
            TransportKind::Tls => "tls",
            TransportKind::Ssh => "ssh",
            TransportKind::Ext => "ext",
            TransportKind::Libssh2 => "libssh2",
            TransportKind::Libssh => "libssh",
        }
    }

    /// Parse a transport name, ASCII case-insensitively (as libvirt does).
    pub fn from_name(name: &str) -> Option<TransportKind> {
        Some(match name.to_ascii_lowercase().as_str() {
            "unix" => TransportKind::Unix,
            "tcp" => TransportKind::Tcp,
            "tls" => TransportKind::Tls,
            "ssh" => TransportKind::Ssh,
            "ext" => TransportKind::Ext,
            "libssh2" => TransportKind::Libssh2,
            "libssh" => TransportKind::Libssh,
            _ => return None,
        })
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which daemon a local socket belongs to (the `mode=` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Use the per-driver daemon's socket if it exists, else libvirtd's (the default).
    Auto,
    /// The monolithic `libvirtd` (socket `libvirt-sock`).
    Legacy,
    /// The per-driver (modular) daemon, e.g. `virtqemud` (socket `virtqemud-sock`).
    Direct,
}

impl Mode {
    /// The parameter value (`auto`, `legacy`, `direct`).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Legacy => "legacy",
            Mode::Direct => "direct",
        }
    }
}

/// What runs on the remote side of an ssh connection (the `proxy=` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proxy {
    /// `virt-ssh-helper` when the remote host has it, else netcat.
    Auto,
    /// Only netcat (`nc -U socket`).
    Netcat,
    /// Only libvirt's native `virt-ssh-helper`.
    Native,
}

impl Proxy {
    /// The parameter value (`auto`, `netcat`, `native`).
    pub fn as_str(self) -> &'static str {
        match self {
            Proxy::Auto => "auto",
            Proxy::Netcat => "netcat",
            Proxy::Native => "native",
        }
    }
}

/// The remote driver's own URI parameters, extracted like libvirt's remote driver does
/// (names matched ASCII case-insensitively; the last occurrence wins). These are stripped from
/// the name sent to the daemon; every other parameter is passed through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteParams {
    /// `name=`: the name to send in CONNECT_OPEN instead of the one derived from the URI.
    pub name: Option<String>,
    /// `command=`: the ssh binary (ssh transport) or the program to run (ext transport).
    pub command: Option<String>,
    /// `socket=`: the daemon's unix socket path (local for unix, remote for ssh).
    pub socket: Option<PathBuf>,
    /// `auth=`: the authentication type to use, among those the daemon offers: `sasl`,
    /// `sasl.MECH` (that SASL mechanism only) or `polkit`.
    pub auth: Option<String>,
    /// `sshauth=`: ssh authentication methods for libssh/libssh2.
    pub sshauth: Option<String>,
    /// `netcat=`: the netcat binary on the remote host (implies the netcat proxy).
    pub netcat: Option<String>,
    /// `keyfile=`: the ssh private key file.
    pub keyfile: Option<PathBuf>,
    /// `pkipath=`: the directory holding `cacert.pem`, `clientcert.pem` and `clientkey.pem`.
    pub pkipath: Option<PathBuf>,
    /// `known_hosts=`: known hosts file (libssh/libssh2).
    pub known_hosts: Option<String>,
    /// `known_hosts_verify=`: host key policy (libssh/libssh2).
    pub known_hosts_verify: Option<String>,
    /// `tls_priority=`: a GnuTLS priority string (recorded; rustls has its own defaults).
    pub tls_priority: Option<String>,
    /// `mode=`: which daemon's socket to use.
    pub mode: Option<Mode>,
    /// `proxy=`: what to run on the remote side of ssh.
    pub proxy: Option<Proxy>,
    /// `no_sanity=1`: skip sanity checks of our own TLS certificates.
    pub no_sanity: bool,
    /// `no_verify=1`: do not verify the server (TLS certificate; ssh: accept new host keys).
    pub no_verify: bool,
    /// `no_tty=1`: never prompt on a terminal (ssh `BatchMode=yes`).
    pub no_tty: bool,
}

/// Parameters the remote driver consumes (and `authfile`, which libvirt's auth code uses).
const REMOTE_PARAM_NAMES: &[&str] = &[
    "name",
    "command",
    "socket",
    "auth",
    "sshauth",
    "netcat",
    "keyfile",
    "pkipath",
    "known_hosts",
    "known_hosts_verify",
    "tls_priority",
    "mode",
    "proxy",
    "no_sanity",
    "no_verify",
    "no_tty",
    "authfile",
];

/// Whether `name` is one of the remote driver's own parameters (not passed to the daemon).
pub fn is_remote_param(name: &str) -> bool {
    REMOTE_PARAM_NAMES
        .iter()
        .any(|p| p.eq_ignore_ascii_case(name))
}

impl RemoteParams {
    fn extract(params: &[(String, String)]) -> Result<RemoteParams, Error> {
        let mut r = RemoteParams::default();
        for (name, value) in params {
            let n = name.to_ascii_lowercase();
            let s = || Some(value.clone());
            let p = || Some(PathBuf::from(value));
            match n.as_str() {
                "name" => r.name = s(),
                "command" => r.command = s(),
                "socket" => r.socket = p(),
                "auth" => r.auth = s(),
                "sshauth" => r.sshauth = s(),
                "netcat" => r.netcat = s(),
                "keyfile" => r.keyfile = p(),
                "pkipath" => r.pkipath = p(),
                "known_hosts" => r.known_hosts = s(),
                "known_hosts_verify" => r.known_hosts_verify = s(),
                "tls_priority" => r.tls_priority = s(),
                "mode" => {
                    r.mode = Some(match value.as_str() {
                        "auto" => Mode::Auto,
                        "legacy" => Mode::Legacy,
                        "direct" => Mode::Direct,
                        _ => return Err(bad_param(name, value, "expected auto, legacy or direct")),
                    })
                }
                "proxy" => {
                    r.proxy = Some(match value.as_str() {
                        "auto" => Proxy::Auto,
                        "netcat" => Proxy::Netcat,
                        "native" => Proxy::Native,
                        _ => return Err(bad_param(name, value, "expected auto, netcat or native")),
                    })
                }
                "no_sanity" => r.no_sanity = parse_flag(name, value)?,
                "no_verify" => r.no_verify = parse_flag(name, value)?,
                "no_tty" => r.no_tty = parse_flag(name, value)?,
                _ => {}
            }
        }
        Ok(r)
    }
}

fn bad_param(name: &str, value: &str, reason: &str) -> Error {
    Error::InvalidParam {
        name: name.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

/// libvirt reads these flags as a whole decimal `int` (leading blanks and a sign allowed);
/// any non-zero value sets the flag.
fn parse_flag(name: &str, value: &str) -> Result<bool, Error> {
    value
        .trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c'])
        .parse::<i32>()
        .map(|v| v != 0)
        .map_err(|_| bad_param(name, value, "expected an integer (0 = off, non-zero = on)"))
}

/// A parsed libvirt connection URI.
///
/// Equality compares the parsed parts; `parse(uri.to_string()) == uri` holds for every `Uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    driver: String,
    transport: Option<TransportKind>,
    authority: bool,
    user: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    path: String,
    params: Vec<(String, String)>,
    fragment: Option<String>,
    remote: RemoteParams,
}

impl Uri {
    /// Parse a libvirt URI.
    ///
    /// Accepts `driver[+transport]://[user@][host][:port][/path][?query][#fragment]` and
    /// `driver:path`. User, host and path are percent-decoded; the query is split on `&` (or
    /// `;`) into `name=value` pairs, each percent-decoded (`name` alone means an empty value,
    /// `=value` is ignored, as libvirt does). A port of `0` or an empty port means "default".
    pub fn parse(input: &str) -> Result<Uri, Error> {
        let invalid = |reason: &str| Error::InvalidUri {
            uri: input.to_owned(),
            reason: reason.to_owned(),
        };
        if input.is_empty() {
            return Err(invalid("empty URI"));
        }
        if let Some(c) = input.chars().find(|c| c.is_ascii_control() || *c == ' ') {
            return Err(invalid(&format!(
                "contains {c:?}; URI-escape it (e.g. %20 for a space)"
            )));
        }
        let colon = input
            .find(':')
            .ok_or_else(|| invalid("no scheme; expected e.g. qemu:///system"))?;
        let scheme = &input[..colon];
        let mut chars = scheme.chars();
        let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return Err(invalid(
                "scheme must start with a letter and hold only letters, digits, '+', '-', '.'",
            ));
        }
        let (driver, transport) = match scheme.split_once('+') {
            None => (scheme.to_owned(), None),
            Some((d, t)) => {
                let kind = TransportKind::from_name(t).ok_or_else(|| Error::UnknownTransport {
                    uri: input.to_owned(),
                    transport: t.to_owned(),
                })?;
                (d.to_owned(), Some(kind))
            }
        };
        if driver.is_empty() {
            return Err(invalid("empty driver name before '+'"));
        }

        let mut rest = &input[colon + 1..];
        let mut fragment = None;
        if let Some(i) = rest.find('#') {
            fragment = Some(decode(&rest[i + 1..]).map_err(|e| invalid(&e))?);
            rest = &rest[..i];
        }
        let mut query = None;
        if let Some(i) = rest.find('?') {
            query = Some(&rest[i + 1..]);
            rest = &rest[..i];
        }

        let mut user = None;
        let mut host = None;
        let mut port = None;
        let authority = rest.starts_with("//");
        let path_part;
        if authority {
            let after = &rest[2..];
            let end = after.find('/').unwrap_or(after.len());
            let auth = &after[..end];
            path_part = &after[end..];
            let hostport = match auth.rfind('@') {
                Some(at) => {
                    user = Some(decode(&auth[..at]).map_err(|e| invalid(&e))?);
                    &auth[at + 1..]
                }
                None => auth,
            };
            let (h, p) = if let Some(v6) = hostport.strip_prefix('[') {
                let close = v6
                    .find(']')
                    .ok_or_else(|| invalid("'[' of an IPv6 address without ']'"))?;
                let addr = &v6[..close];
                if addr.is_empty()
                    || !addr
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
                {
                    return Err(invalid("bad IPv6 address between '[' and ']'"));
                }
                let after = &v6[close + 1..];
                let p = match after {
                    "" => None,
                    _ => Some(after.strip_prefix(':').ok_or_else(|| {
                        invalid("expected ':port' or '/' after the IPv6 address")
                    })?),
                };
                (addr.to_owned(), p)
            } else {
                match hostport.rfind(':') {
                    Some(i) => (
                        decode(&hostport[..i]).map_err(|e| invalid(&e))?,
                        Some(&hostport[i + 1..]),
                    ),
                    None => (decode(hostport).map_err(|e| invalid(&e))?, None),
                }
            };
            if h.contains(['/', '?', '#', '@', '[', ']'])
                || (h.contains(':') && !hostport.starts_with('['))
            {
                return Err(invalid("host name holds a reserved character"));
            }
            if !h.is_empty() {
                host = Some(h);
            } else if user.is_some() || p.is_some_and(|p| !p.is_empty()) {
                return Err(invalid("user or port given without a host"));
            }
            if let Some(p) = p.filter(|p| !p.is_empty()) {
                if !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid(&format!("port {p:?} is not a number")));
                }
                let n: u32 = p
                    .parse()
                    .ok()
                    .filter(|n| *n <= u32::from(u16::MAX))
                    .ok_or_else(|| invalid(&format!("port {p} is out of range (1-65535)")))?;
                port = u16::try_from(n).ok().filter(|n| *n != 0);
            }
        } else {
            path_part = rest;
        }
        let path = decode(path_part).map_err(|e| invalid(&e))?;

        let params = match query {
            Some(q) => parse_query(q).map_err(|e| invalid(&e))?,
            None => Vec::new(),
        };

        if transport == Some(TransportKind::Unix) {
            if let Some(h) = &host {
                return Err(invalid(&format!(
                    "the unix transport cannot reach remote server {h:?}; use ssh, tls or tcp"
                )));
            }
        }
        let remote = RemoteParams::extract(&params)?;
        Ok(Uri {
            driver,
            transport,
            authority,
            user,
            host,
            port,
            path,
            params,
            fragment,
            remote,
        })
    }

    /// The URI from `LIBVIRT_DEFAULT_URI`, or `None` when it is unset or empty (libvirt then
    /// asks the local daemon to pick a driver: see [`Uri::local_probe`]). URI aliases from
    /// `libvirt.conf` are not resolved.
    pub fn from_env() -> Result<Option<Uri>, Error> {
        match std::env::var(DEFAULT_URI_ENV) {
            Ok(v) if v.is_empty() => Ok(None),
            Ok(v) => Uri::parse(&v)
                .map(Some)
                .map_err(|e| Error::InvalidDefaultUri {
                    reason: e.to_string(),
                }),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::InvalidDefaultUri {
                reason: "not valid UTF-8".to_owned(),
            }),
        }
    }

    /// What libvirt does when no URI is given, as a URI: `remote:///session`. The `remote`
    /// driver sends an empty name so the daemon picks a driver itself, and the `/session` path
    /// selects the local socket libvirt picks for a URI-less open: the per-user daemon's for
    /// non-root users, the system daemon's for root.
    pub fn local_probe() -> Uri {
        Uri::parse("remote:///session").expect("static URI parses")
    }

    /// The default URI as libvirt chooses it: `LIBVIRT_DEFAULT_URI` if set, else `uri_default`
    /// from the client configuration file ([`LocalEnv::client_config_file`]) if it has one,
    /// else [`Uri::local_probe`]. URI aliases are not resolved.
    pub fn default_uri() -> Result<Uri, Error> {
        if let Some(u) = Uri::from_env()? {
            return Ok(u);
        }
        if let Some(path) = LocalEnv::from_process().client_config_file() {
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    if let Some(u) =
                        uri_default_from_conf(&text).map_err(|reason| Error::InvalidDefaultUri {
                            reason: format!("{}: {reason}", path.display()),
                        })?
                    {
                        return Uri::parse(&u).map_err(|e| Error::InvalidDefaultUri {
                            reason: format!("{}: uri_default: {e}", path.display()),
                        });
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::InvalidDefaultUri {
                        reason: format!("cannot read {}: {e}", path.display()),
                    })
                }
            }
        }
        Ok(Uri::local_probe())
    }

    /// The hypervisor driver (`qemu`, `test`, `lxc`, `remote`, ...): the scheme before `+`.
    pub fn driver(&self) -> &str {
        &self.driver
    }

    /// The transport: the one after `+` in the scheme, else tls when a host is given and unix
    /// when not (libvirt's rule).
    pub fn transport(&self) -> TransportKind {
        match self.transport {
            Some(t) => t,
            None if self.host.is_some() => TransportKind::Tls,
            None => TransportKind::Unix,
        }
    }

    /// The transport named in the scheme, if any.
    pub fn explicit_transport(&self) -> Option<TransportKind> {
        self.transport
    }

    /// The user name (`user@`), percent-decoded.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The host, percent-decoded; IPv6 literals without brackets.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The host to connect to: the URI's host, or `localhost` (libvirt's default).
    pub fn host_or_localhost(&self) -> &str {
        self.host.as_deref().unwrap_or("localhost")
    }

    /// The port given in the URI (`None` when absent or 0).
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The port to connect to: the URI's, else 16509 for tcp and 16514 for tls. `None` for
    /// the other transports without an explicit port (ssh then uses its own default).
    pub fn effective_port(&self) -> Option<u16> {
        self.port.or(match self.transport() {
            TransportKind::Tcp => Some(DEFAULT_TCP_PORT),
            TransportKind::Tls => Some(DEFAULT_TLS_PORT),
            _ => None,
        })
    }

    /// The path (`/system`, `/session`, `/default`, ...), percent-decoded; may be empty.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The fragment after `#`, if any.
    pub fn fragment(&self) -> Option<&str> {
        self.fragment.as_deref()
    }

    /// All query parameters in order, percent-decoded, including the remote driver's own.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// The value of the last parameter named `name` (ASCII case-insensitive), if any.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The parameters passed through to the daemon (all but the remote driver's own).
    pub fn passthrough_params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params
            .iter()
            .filter(|(n, _)| !is_remote_param(n))
            .map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The remote driver's parameters, typed.
    pub fn remote(&self) -> &RemoteParams {
        &self.remote
    }

    /// A copy with parameter `name` set to `value` (replacing earlier occurrences, else
    /// appended), checked like a parsed parameter.
    pub fn with_param(&self, name: &str, value: &str) -> Result<Uri, Error> {
        let mut u = self.clone();
        let mut replaced = false;
        u.params.retain_mut(|(n, v)| {
            if n.eq_ignore_ascii_case(name) {
                if replaced {
                    return false;
                }
                replaced = true;
                *v = value.to_owned();
            }
            true
        });
        if !replaced {
            u.params.push((name.to_owned(), value.to_owned()));
        }
        u.remote = RemoteParams::extract(&u.params)?;
        Ok(u)
    }

    /// Whether this URI names the per-user session daemon the way libvirt decides it: path
    /// `/session`, or the test driver reached through an explicit transport; only for
    /// non-root users (`euid_is_root == false`).
    pub fn wants_session_daemon(&self, euid_is_root: bool) -> bool {
        !euid_is_root
            && (self.path == "/session" || self.transport.is_some() && self.driver == "test")
    }

    /// The name sent to the daemon in `REMOTE_PROC_CONNECT_OPEN`.
    ///
    /// The `name=` parameter if given; the empty string (daemon probes) for `remote` URIs;
    /// else `driver:///path` plus the passed-through parameters and fragment — transport, user,
    /// host, port and the remote driver's parameters removed, as libvirt's remote driver does.
    pub fn remote_name(&self) -> String {
        if let Some(n) = &self.remote.name {
            return n.clone();
        }
        if self.driver == "remote" {
            return String::new();
        }
        self.format_name(|n| !is_remote_param(n))
    }

    /// The URI given to `virt-ssh-helper` on the remote host: like [`Uri::remote_name`] but
    /// keeping the `mode` and `socket` parameters.
    pub fn ssh_helper_uri(&self) -> String {
        if let Some(n) = &self.remote.name {
            return n.clone();
        }
        if self.driver == "remote" {
            return String::new();
        }
        self.format_name(|n| {
            !is_remote_param(n)
                || n.eq_ignore_ascii_case("mode")
                || n.eq_ignore_ascii_case("socket")
        })
    }

    fn format_name(&self, keep: impl Fn(&str) -> bool) -> String {
        let mut s = format!("{}://", self.driver);
        encode_into(&mut s, &self.path, PATH_KEEP);
        let mut first = true;
        for (n, v) in self.params.iter().filter(|(n, _)| keep(n)) {
            s.push(if first { '?' } else { '&' });
            first = false;
            encode_into(&mut s, n, STRICT_KEEP);
            s.push('=');
            encode_into(&mut s, v, STRICT_KEEP);
        }
        if let Some(f) = &self.fragment {
            s.push('#');
            encode_into(&mut s, f, QUERY_KEEP);
        }
        s
    }

    /// The unix socket of the daemon this URI addresses on this machine, chosen like libvirt's
    /// remote driver: the `socket=` parameter if given; else, per [`Mode`], the per-driver
    /// daemon's socket (`virtqemud-sock`, `virtproxyd`'s `libvirt-sock` for `remote`) or
    /// libvirtd's `libvirt-sock`, in `/var/run/libvirt/` (`-sock-ro` when `read_only`) for
    /// the system daemon or the user runtime directory for the session daemon
    /// ([`Uri::wants_session_daemon`]). `Mode::Auto` picks the direct socket if it exists,
    /// else libvirtd's. Reads the environment and probes the file system; see
    /// [`Uri::unix_socket_in`] for the pure form.
    pub fn unix_socket(&self, read_only: bool) -> Result<SocketChoice, Error> {
        let env = LocalEnv::from_process();
        self.unix_socket_in(&env, read_only, |p| p.exists())
    }

    /// [`Uri::unix_socket`] with the environment and the file-existence probe given.
    pub fn unix_socket_in(
        &self,
        env: &LocalEnv,
        read_only: bool,
        exists: impl Fn(&Path) -> bool,
    ) -> Result<SocketChoice, Error> {
        if let Some(s) = &self.remote.socket {
            return Ok(SocketChoice {
                path: s.clone(),
                mode: self.remote.mode.unwrap_or(Mode::Auto),
                daemon: None,
            });
        }
        let session = self.wants_session_daemon(env.euid_is_root);
        let dir = |prefix: &str| -> PathBuf {
            if session {
                env.user_runtime_dir.join(format!("{prefix}-sock"))
            } else {
                PathBuf::from(format!(
                    "/var/run/libvirt/{prefix}-{}",
                    if read_only { "sock-ro" } else { "sock" }
                ))
            }
        };
        let (direct_daemon, direct_sock) = if self.driver == "remote" {
            ("virtproxyd".to_owned(), dir("libvirt"))
        } else {
            let d = format!("virt{}d", self.driver);
            let s = dir(&d);
            (d, s)
        };
        let legacy_sock = dir("libvirt");
        let transport = self.transport();
        let mode = match self.remote.mode.unwrap_or(Mode::Auto) {
            Mode::Auto if transport == TransportKind::Unix => {
                if exists(&direct_sock) {
                    Mode::Direct
                } else {
                    Mode::Legacy
                }
            }
            Mode::Auto => Mode::Legacy,
            m => m,
        };
        match mode {
            Mode::Direct if transport != TransportKind::Unix => Err(Error::Unsupported {
                reason: format!(
                    "mode=direct works only for the unix transport, not {transport}; \
                     pass socket= or mode=legacy"
                ),
            }),
            Mode::Direct => Ok(SocketChoice {
                path: direct_sock,
                mode,
                daemon: Some(direct_daemon),
            }),
            _ => Ok(SocketChoice {
                path: legacy_sock,
                mode: Mode::Legacy,
                daemon: Some("libvirtd".to_owned()),
            }),
        }
    }
}

/// The unix socket chosen for a URI.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketChoice {
    /// The socket path.
    pub path: PathBuf,
    /// The mode it was chosen by (`Legacy` or `Direct`; `socket=` keeps the given mode).
    pub mode: Mode,
    /// The daemon that owns it (`libvirtd`, `virtqemud`, ...); `None` for `socket=`.
    pub daemon: Option<String>,
}

/// The parts of the local environment that socket selection depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalEnv {
    /// Whether the effective user is root (then system sockets are used even for `/session`).
    pub euid_is_root: bool,
    /// libvirt's user runtime directory: `$XDG_RUNTIME_DIR/libvirt`, or when that variable is
    /// unset or empty, `$XDG_CACHE_HOME/libvirt`, or `$HOME/.cache/libvirt`.
    pub user_runtime_dir: PathBuf,
    /// The user's home directory (`$HOME`), where `~/.pki/libvirt` TLS credentials live.
    pub home: Option<PathBuf>,
}

impl LocalEnv {
    /// Build from explicit values.
    pub fn new(euid_is_root: bool, user_runtime_dir: PathBuf) -> LocalEnv {
        LocalEnv {
            euid_is_root,
            user_runtime_dir,
            home: None,
        }
    }

    /// Set [`LocalEnv::home`].
    pub fn with_home(mut self, home: Option<PathBuf>) -> LocalEnv {
        self.home = home;
        self
    }

    /// libvirt's client configuration file: `/etc/libvirt/libvirt.conf` for root, else
    /// `$XDG_CONFIG_HOME/libvirt/libvirt.conf` (`~/.config/libvirt/libvirt.conf`).
    pub fn client_config_file(&self) -> Option<PathBuf> {
        if self.euid_is_root {
            return Some(PathBuf::from("/etc/libvirt/libvirt.conf"));
        }
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| self.home.as_ref().map(|h| h.join(".config")))?;
        Some(base.join("libvirt/libvirt.conf"))
    }

    /// Read the process's effective uid and environment variables.
    pub fn from_process() -> LocalEnv {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let base = var("XDG_RUNTIME_DIR")
            .or_else(|| var("XDG_CACHE_HOME"))
            .or_else(|| var("HOME").map(|h| h.join(".cache")))
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        LocalEnv {
            euid_is_root: effective_uid() == Some(0),
            user_runtime_dir: base.join("libvirt"),
            home: var("HOME"),
        }
    }
}

/// The `uri_default` setting of a libvirt client configuration file (`libvirt.conf`), if set.
///
/// Reads `uri_default = "..."` (or single-quoted) lines, ignoring comments and other settings;
/// the last one wins. Any other form of the value is an error.
pub fn uri_default_from_conf(text: &str) -> Result<Option<String>, String> {
    let mut found = None;
    for (no, line) in text.lines().enumerate() {
        let line = line.trim_start();
        let Some(rest) = line.strip_prefix("uri_default") else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(value) = rest.strip_prefix('=') else {
            if rest.is_empty() || rest.starts_with('#') {
                return Err(format!("line {}: uri_default without a value", no + 1));
            }
            continue; // another key that starts with "uri_default"
        };
        let value = value.trim();
        let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'');
        let parsed = quote.and_then(|q| {
            let inner = &value[1..];
            let end = inner.find(q)?;
            let after = inner[end + 1..].trim();
            (after.is_empty() || after.starts_with('#')).then(|| inner[..end].to_owned())
        });
        match parsed {
            Some(v) => found = Some(v),
            None => {
                return Err(format!(
                    "line {}: uri_default must be a quoted string, got {value:?}",
                    no + 1
                ))
            }
        }
    }
    Ok(found)
}

/// The process's effective uid, read from `/proc/self/status` (no `unsafe`); `None` when that
/// cannot be read.
pub fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

impl FromStr for Uri {
    type Err = Error;
    fn from_str(s: &str) -> Result<Uri, Error> {
        Uri::parse(s)
    }
}

impl TryFrom<&str> for Uri {
    type Error = Error;
    fn try_from(s: &str) -> Result<Uri, Error> {
        Uri::parse(s)
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(64);
        s.push_str(&self.driver);
        if let Some(t) = self.transport {
            s.push('+');
            s.push_str(t.as_str());
        }
        s.push(':');
        if self.authority {
            s.push_str("//");
            if let Some(u) = &self.user {
                encode_into(&mut s, u, USER_KEEP);
                s.push('@');
            }
            if let Some(h) = &self.host {
                if h.contains(':') {
                    s.push('[');
                    s.push_str(h);
                    s.push(']');
                } else {
                    encode_into(&mut s, h, HOST_KEEP);
                }
            }
            if let Some(p) = self.port {
                s.push(':');
                s.push_str(&p.to_string());
            }
        }
        match self.path.strip_prefix("//") {
            // Without an authority, a path starting with `//` (from `drv:/%2F...`) must not
            // print as one: escape its second slash.
            Some(rest) if !self.authority => {
                s.push_str("/%2F");
                encode_into(&mut s, rest, PATH_KEEP);
            }
            _ => encode_into(&mut s, &self.path, PATH_KEEP),
        }
        for (i, (n, v)) in self.params.iter().enumerate() {
            s.push(if i == 0 { '?' } else { '&' });
            encode_into(&mut s, n, STRICT_KEEP);
            s.push('=');
            encode_into(&mut s, v, QUERY_KEEP);
        }
        if let Some(fr) = &self.fragment {
            s.push('#');
            encode_into(&mut s, fr, QUERY_KEEP);
        }
        f.write_str(&s)
    }
}

/// Characters kept as they are (besides ASCII letters and digits) when encoding each part.
const STRICT_KEEP: &str = "-._~";
const USER_KEEP: &str = "-._~!$'()*,+";
const HOST_KEEP: &str = "-._~";
const PATH_KEEP: &str = "-._~/:@!$'()*,+=";
const QUERY_KEEP: &str = "-._~/:@!$'()*,";

fn encode_into(out: &mut String, s: &str, keep: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || (b.is_ascii() && keep.as_bytes().contains(&b)) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
    }
}

/// Percent-decode `s` (no `+`-to-space: libvirt does not do that either); the result must be
/// UTF-8.
fn decode(s: &str) -> Result<String, String> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            match (
                b.get(i + 1).and_then(|c| hex(*c)),
                b.get(i + 2).and_then(|c| hex(*c)),
            ) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                _ => return Err(format!("bad percent-escape at {:?}", &s[i..])),
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("percent-escapes in {s:?} do not decode to UTF-8"))
}

fn parse_query(q: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for part in q.split(['&', ';']) {
        if part.is_empty() {
            continue;
        }
        match part.split_once('=') {
            None => out.push((decode(part)?, String::new())),
            Some(("", _)) => {} // "=value": ignored, as libvirt (and CGI.pm) do
            Some((n, v)) => out.push((decode(n)?, decode(v)?)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Uri {
        Uri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn local_uri_defaults_to_unix() {
        let u = p("qemu:///system");
        assert_eq!(u.driver(), "qemu");
        assert_eq!(u.transport(), TransportKind::Unix);
        assert_eq!(u.explicit_transport(), None);
        assert_eq!(u.host(), None);
        assert_eq!(u.path(), "/system");
        assert_eq!(u.effective_port(), None);
        assert_eq!(u.remote_name(), "qemu:///system");
        assert_eq!(u.to_string(), "qemu:///system");
    }

    #[test]
    fn host_defaults_to_tls_and_ports() {
        let u = p("qemu://node1/system");
        assert_eq!(u.transport(), TransportKind::Tls);
        assert_eq!(u.host(), Some("node1"));
        assert_eq!(u.effective_port(), Some(16514));
        let u = p("test+tcp://127.0.0.1:16599/default");
        assert_eq!(u.transport(), TransportKind::Tcp);
        assert_eq!(u.port(), Some(16599));
        assert_eq!(u.remote_name(), "test:///default");
        assert_eq!(p("test+tcp://h/default").effective_port(), Some(16509));
        assert_eq!(p("test+tls:///default").effective_port(), Some(16514));
        assert_eq!(p("test+tls:///default").host_or_localhost(), "localhost");
        assert_eq!(p("qemu+ssh://h/system").effective_port(), None);
    }

    #[test]
    fn user_ipv6_port() {
        let u = p("qemu+ssh://root@[fe80::1]:2222/system");
        assert_eq!(u.user(), Some("root"));
        assert_eq!(u.host(), Some("fe80::1"));
        assert_eq!(u.port(), Some(2222));
        assert_eq!(u.to_string(), "qemu+ssh://root@[fe80::1]:2222/system");
        let u = p("xen+tcp://[::1]/");
        assert_eq!(u.host(), Some("::1"));
        assert_eq!(u.port(), None);
    }

    #[test]
    fn transport_name_case_insensitive() {
        assert_eq!(p("qemu+SSH://h/system").transport(), TransportKind::Ssh);
        assert_eq!(
            p("qemu+libssh2://h/system").transport(),
            TransportKind::Libssh2
        );
        assert_eq!(
            p("qemu+ext:///system?command=/bin/x").transport(),
            TransportKind::Ext
        );
    }

    #[test]
    fn remote_name_strips_transport_params() {
        let u = p("qemu+unix:///session?socket=/x");
        assert_eq!(u.remote().socket.as_deref(), Some(Path::new("/x")));
        assert_eq!(u.remote_name(), "qemu:///session");
        let u = p("qemu+ssh://u@h:22/system?keyfile=/k&no_verify=1&foo=bar&mode=legacy&socket=/s&NetCat=nc");
        assert_eq!(u.remote_name(), "qemu:///system?foo=bar");
        assert_eq!(
            u.ssh_helper_uri(),
            "qemu:///system?foo=bar&mode=legacy&socket=%2Fs"
        );
        assert_eq!(u.remote().netcat.as_deref(), Some("nc"));
        assert!(u.remote().no_verify);
        let u = p("qemu+tcp://h/system?name=qemu:///embed");
        assert_eq!(u.remote_name(), "qemu:///embed");
        assert_eq!(p("remote://h/").remote_name(), "");
        assert_eq!(p("remote+unix:///").remote_name(), "");
        assert_eq!(
            p("qemu+tcp://h/system?x=a%20b%2Fc").remote_name(),
            "qemu:///system?x=a%20b%2Fc"
        );
        assert_eq!(
            p("test:///default#frag").remote_name(),
            "test:///default#frag"
        );
    }

    #[test]
    fn params_are_decoded_and_kept() {
        let u = p("test:///default?a=1&b&=ignored&&c=x%3Dy;d=%41");
        assert_eq!(
            u.params(),
            &[
                ("a".into(), "1".into()),
                ("b".into(), "".into()),
                ("c".into(), "x=y".into()),
                ("d".into(), "A".into())
            ]
        );
        assert_eq!(u.param("A"), Some("1"));
        assert_eq!(u.passthrough_params().count(), 4);
        assert_eq!(p("t:///?a=+").param("a"), Some("+"));
    }

    #[test]
    fn typed_remote_params() {
        let u = p("qemu+tls://h/system?pkipath=/p&no_verify=0&no_tty=+2&mode=direct&proxy=native&tls_priority=NORMAL&sshauth=agent&auth=polkit&command=/bin/ssh&authfile=/a");
        let r = u.remote();
        assert_eq!(r.pkipath.as_deref(), Some(Path::new("/p")));
        assert!(!r.no_verify);
        assert!(r.no_tty);
        assert_eq!(r.mode, Some(Mode::Direct));
        assert_eq!(r.proxy, Some(Proxy::Native));
        assert_eq!(r.tls_priority.as_deref(), Some("NORMAL"));
        assert_eq!(r.auth.as_deref(), Some("polkit"));
        assert_eq!(r.command.as_deref(), Some("/bin/ssh"));
        assert_eq!(u.remote_name(), "qemu:///system");
        // last occurrence wins
        assert!(p("t:///x?no_verify=1&no_verify=0")
            .remote()
            .no_verify
            .eq(&false));
    }

    #[test]
    fn typed_errors() {
        let e = |s: &str| Uri::parse(s).unwrap_err();
        assert!(
            matches!(e("qemu+bogus:///system"), Error::UnknownTransport { transport, .. } if transport == "bogus")
        );
        assert!(matches!(
            e("qemu+unix://host/system"),
            Error::InvalidUri { .. }
        ));
        assert!(
            matches!(e("t:///?no_verify=yes"), Error::InvalidParam { name, .. } if name == "no_verify")
        );
        assert!(matches!(e("t:///?mode=fast"), Error::InvalidParam { name, .. } if name == "mode"));
        assert!(matches!(e("t:///?proxy=x"), Error::InvalidParam { .. }));
        for bad in [
            "",
            "qemu",
            "://x",
            "1qemu:///",
            "q_emu:///",
            "+tcp:///",
            "qemu+tcp://h:70000/",
            "qemu+tcp://h:12a/",
            "qemu+tcp://[::1/",
            "qemu+tcp://[::1]x/",
            "qemu+tcp://[zz]/",
            "qemu:///a b",
            "qemu:///a%zz",
            "qemu:///a%ff",
            "qemu+tcp://u@/x",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn port_zero_or_empty_means_default() {
        assert_eq!(p("qemu+tcp://h:0/").effective_port(), Some(16509));
        assert_eq!(p("qemu+tcp://h:/").port(), None);
    }

    #[test]
    fn no_authority_form() {
        let u = p("test:/default");
        assert_eq!(u.path(), "/default");
        assert_eq!(u.to_string(), "test:/default");
        assert_eq!(p("remote:").path(), "");
    }

    #[test]
    fn display_encodes() {
        let u = p("qemu+ssh://us%40er@h/sys%20tem?x%26y=a%26b%20c#f");
        assert_eq!(u.user(), Some("us@er"));
        assert_eq!(u.path(), "/sys tem");
        assert_eq!(u.param("x&y"), Some("a&b c"));
        assert_eq!(
            u.to_string(),
            "qemu+ssh://us%40er@h/sys%20tem?x%26y=a%26b%20c#f"
        );
        // A path starting with `//` but no authority (found by the libvirt_uri fuzz target).
        let u = p("drv:/%2fo0");
        assert_eq!((u.host(), u.path()), (None, "//o0"));
        assert_eq!(u.to_string(), "drv:/%2Fo0");
        assert_eq!(p(&u.to_string()), u);
    }

    #[test]
    fn with_param_replaces_and_validates() {
        let u = p("test:///default?socket=/a&x=1&SOCKET=/b");
        let v = u.with_param("socket", "/c").unwrap();
        assert_eq!(v.to_string(), "test:///default?socket=/c&x=1");
        assert_eq!(v.remote().socket.as_deref(), Some(Path::new("/c")));
        assert!(u.with_param("no_tty", "x").is_err());
    }

    fn env(root: bool) -> LocalEnv {
        LocalEnv::new(root, PathBuf::from("/run/user/1000/libvirt"))
    }

    #[test]
    fn socket_selection() {
        let none = |_: &Path| false;
        let sock =
            |u: &str, root: bool, ro: bool| p(u).unix_socket_in(&env(root), ro, none).unwrap().path;
        assert_eq!(
            sock("qemu:///system", true, false),
            Path::new("/var/run/libvirt/libvirt-sock")
        );
        assert_eq!(
            sock("qemu:///system", false, true),
            Path::new("/var/run/libvirt/libvirt-sock-ro")
        );
        assert_eq!(
            sock("qemu:///session", false, false),
            Path::new("/run/user/1000/libvirt/libvirt-sock")
        );
        assert_eq!(
            sock("qemu:///session", false, true),
            Path::new("/run/user/1000/libvirt/libvirt-sock")
        );
        // root never uses the session daemon
        assert_eq!(
            sock("qemu:///session", true, false),
            Path::new("/var/run/libvirt/libvirt-sock")
        );
        // test driver with an explicit transport goes to the session daemon
        assert_eq!(
            sock("test+unix:///default", false, false),
            Path::new("/run/user/1000/libvirt/libvirt-sock")
        );
        assert_eq!(
            sock("test:///default", false, false),
            Path::new("/var/run/libvirt/libvirt-sock")
        );
        assert_eq!(
            sock("qemu:///system?socket=/x/y", false, false),
            Path::new("/x/y")
        );

        // direct mode and auto-detection
        let c = p("qemu:///system?mode=direct")
            .unix_socket_in(&env(true), false, none)
            .unwrap();
        assert_eq!(c.path, Path::new("/var/run/libvirt/virtqemud-sock"));
        assert_eq!(c.daemon.as_deref(), Some("virtqemud"));
        let c = p("qemu:///system?mode=direct")
            .unix_socket_in(&env(true), true, none)
            .unwrap();
        assert_eq!(c.path, Path::new("/var/run/libvirt/virtqemud-sock-ro"));
        let c = p("qemu:///session?mode=direct")
            .unix_socket_in(&env(false), false, none)
            .unwrap();
        assert_eq!(c.path, Path::new("/run/user/1000/libvirt/virtqemud-sock"));
        let direct_exists = |q: &Path| q.ends_with("virtqemud-sock");
        let c = p("qemu:///system")
            .unix_socket_in(&env(true), false, direct_exists)
            .unwrap();
        assert_eq!(
            (c.mode, c.daemon.as_deref()),
            (Mode::Direct, Some("virtqemud"))
        );
        let c = p("qemu:///system")
            .unix_socket_in(&env(true), false, none)
            .unwrap();
        assert_eq!(
            (c.mode, c.daemon.as_deref()),
            (Mode::Legacy, Some("libvirtd"))
        );
        let c = p("remote:///?mode=direct")
            .unix_socket_in(&env(true), false, none)
            .unwrap();
        assert_eq!(c.path, Path::new("/var/run/libvirt/libvirt-sock"));
        assert_eq!(c.daemon.as_deref(), Some("virtproxyd"));
        // ssh: auto means legacy, direct is refused
        let c = p("qemu+ssh://h/system")
            .unix_socket_in(&env(false), false, |_| true)
            .unwrap();
        assert_eq!(c.mode, Mode::Legacy);
        assert!(matches!(
            p("qemu+ssh://h/system?mode=direct").unix_socket_in(&env(false), false, none),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn local_probe_and_default() {
        let u = Uri::local_probe();
        assert_eq!(u.remote_name(), "");
        assert_eq!(u.transport(), TransportKind::Unix);
        let none = |_: &Path| false;
        let user = u.unix_socket_in(&env(false), false, none).unwrap();
        assert_eq!(user.path, Path::new("/run/user/1000/libvirt/libvirt-sock"));
        let root = u.unix_socket_in(&env(true), false, none).unwrap();
        assert_eq!(root.path, Path::new("/var/run/libvirt/libvirt-sock"));
        // direct mode for the probe is virtproxyd (socket libvirt-sock)
        let d = u.with_param("mode", "direct").unwrap();
        let c = d.unix_socket_in(&env(true), false, none).unwrap();
        assert_eq!(c.daemon.as_deref(), Some("virtproxyd"));
    }

    #[test]
    fn conf_uri_default() {
        let conf = "# comment\nuri_aliases = [\n  \"h=qemu+ssh://h/system\",\n]\n\
                    uri_default = \"qemu:///system\"  # trailing\nuri_default_x = 1\n";
        assert_eq!(
            uri_default_from_conf(conf).unwrap().as_deref(),
            Some("qemu:///system")
        );
        assert_eq!(
            uri_default_from_conf("uri_default='test:///default'")
                .unwrap()
                .as_deref(),
            Some("test:///default")
        );
        assert_eq!(
            uri_default_from_conf("# uri_default = \"x\"\n").unwrap(),
            None
        );
        assert!(uri_default_from_conf("uri_default = qemu:///system").is_err());
        assert!(uri_default_from_conf("uri_default = \"unterminated").is_err());
        assert!(uri_default_from_conf("uri_default\n").is_err());
        let env = LocalEnv::new(true, PathBuf::new());
        assert_eq!(
            env.client_config_file(),
            Some(PathBuf::from("/etc/libvirt/libvirt.conf"))
        );
    }

    #[test]
    fn effective_uid_reads() {
        assert!(effective_uid().is_some());
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        fn text() -> impl Strategy<Value = String> {
            "[a-zA-Z0-9 _./:@&=?#%+~!$,;é-]{0,12}"
        }

        prop_compose! {
            fn arb_uri()(
                driver in "[a-z][a-z0-9]{0,6}",
                transport in proptest::option::of(prop_oneof![
                    Just(TransportKind::Tcp), Just(TransportKind::Tls), Just(TransportKind::Ssh),
                    Just(TransportKind::Ext), Just(TransportKind::Libssh), Just(TransportKind::Libssh2)]),
                user in proptest::option::of("[a-zA-Z0-9@:% ._-]{1,8}"),
                host in proptest::option::of(prop_oneof![
                    "[a-z0-9][a-z0-9.-]{0,10}",
                    Just("::1".to_owned()),
                    Just("fe80::1:2".to_owned())]),
                port in proptest::option::of(1u16..),
                path in prop_oneof![Just(String::new()), "/[a-zA-Z0-9 /._%-]{0,12}"],
                params in proptest::collection::vec(("[a-zA-Z_][a-zA-Z0-9_ &=%]{0,8}", text()), 0..4),
                fragment in proptest::option::of(text()),
            ) -> String {
                let mut u = Uri {
                    driver, transport, authority: true, user: None, host: None, port: None, path,
                    params: params.into_iter()
                        // keep generated remote parameters valid
                        .filter(|(n, _)| !is_remote_param(n))
                        .collect(),
                    fragment, remote: RemoteParams::default(),
                };
                if let Some(h) = host {
                    u.user = user;
                    u.host = Some(h);
                    u.port = port;
                }
                u.to_string()
            }
        }

        proptest! {
            #[test]
            fn display_parse_is_identity(s in arb_uri()) {
                let u = Uri::parse(&s).unwrap();
                prop_assert_eq!(u.to_string(), s.clone());
                prop_assert_eq!(Uri::parse(&u.to_string()).unwrap(), u);
            }

            #[test]
            fn parse_never_panics(s in "\\PC{0,40}") {
                let _ = Uri::parse(&s);
            }

            #[test]
            fn parsed_uris_round_trip(s in "[a-z]{1,4}(\\+(tcp|tls|ssh|ext))?://([a-z%0-9@:]{0,6}@)?[a-z0-9.%]{0,6}(:[0-9]{1,5})?(/[a-z/%0-9]{0,6})?(\\?[a-z=&;%0-9]{0,10})?") {
                if let Ok(u) = Uri::parse(&s) {
                    let again = Uri::parse(&u.to_string()).unwrap();
                    prop_assert_eq!(again, u);
                }
            }
        }
    }
}
