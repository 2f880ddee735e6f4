//! `remote_error` (`virNetMessageError` in `virnetprotocol.x`): the body of a failed reply and
//! of a server-side stream error, decoded into a typed value.

use std::fmt;

use crate::header::STRING_MAX;
use crate::Error;

/// A domain reference inside an error (`virNetMessageNonnullDomain`; libvirt marks it unused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDomainRef {
    /// Domain name.
    pub name: String,
    /// Domain UUID.
    pub uuid: [u8; 16],
    /// Domain id (-1 when inactive).
    pub id: i32,
}

/// A network reference inside an error (`virNetMessageNonnullNetwork`; unused by libvirt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorNetworkRef {
    /// Network name.
    pub name: String,
    /// Network UUID.
    pub uuid: [u8; 16],
}

/// A libvirt error as sent by the server (`virNetMessageError`, alias `remote_error`).
///
/// `code`, `domain` and `level` are `virErrorNumber`, `virErrorDomain` and `virErrorLevel`
/// values; unknown values are kept as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    /// `virErrorNumber` (e.g. 42 = `VIR_ERR_NO_DOMAIN`).
    pub code: i32,
    /// `virErrorDomain`: the subsystem that raised it (e.g. 10 = `VIR_FROM_DOM`).
    pub domain: i32,
    /// The full human readable message, already formatted by the server.
    pub message: Option<String>,
    /// `virErrorLevel`: 1 = warning, 2 = error.
    pub level: i32,
    /// The domain concerned, if the server filled it (it normally does not).
    pub dom: Option<ErrorDomainRef>,
    /// Extra string information 1.
    pub str1: Option<String>,
    /// Extra string information 2.
    pub str2: Option<String>,
    /// Extra string information 3.
    pub str3: Option<String>,
    /// Extra number information 1.
    pub int1: i32,
    /// Extra number information 2.
    pub int2: i32,
    /// The network concerned, if the server filled it (it normally does not).
    pub net: Option<ErrorNetworkRef>,
}

/// `VIR_ERR_NO_DOMAIN`: the domain lookup failed.
pub const VIR_ERR_NO_DOMAIN: i32 = 42;
/// `VIR_ERR_RPC`: an RPC-level failure.
pub const VIR_ERR_RPC: i32 = 39;

impl RemoteError {
    /// Decode a `remote_error` body (the payload of a REPLY with status ERROR, or of a server
    /// STREAM packet with status ERROR). Trailing bytes are an error; every string is limited to
    /// `VIR_NET_MESSAGE_STRING_MAX`.
    pub fn decode(body: &[u8]) -> Result<Self, Error> {
        let mut r = Reader {
            input: body,
            pos: 0,
        };
        let e = Self {
            code: r.int("code")?,
            domain: r.int("domain")?,
            message: r.opt_string("message")?,
            level: r.int("level")?,
            dom: if r.bool("dom")? {
                Some(ErrorDomainRef {
                    name: r.string("dom.name")?,
                    uuid: r.uuid("dom.uuid")?,
                    id: r.int("dom.id")?,
                })
            } else {
                None
            },
            str1: r.opt_string("str1")?,
            str2: r.opt_string("str2")?,
            str3: r.opt_string("str3")?,
            int1: r.int("int1")?,
            int2: r.int("int2")?,
            net: if r.bool("net")? {
                Some(ErrorNetworkRef {
                    name: r.string("net.name")?,
                    uuid: r.uuid("net.uuid")?,
                })
            } else {
                None
            },
        };
        if r.pos != body.len() {
            return Err(r.fail(format!("{} trailing bytes", body.len() - r.pos)));
        }
        Ok(e)
    }

    /// Encode as a `remote_error` body (what a server sends).
    pub fn encode(&self, out: &mut Vec<u8>) {
        fn int(out: &mut Vec<u8>, v: i32) {
            out.extend_from_slice(&v.to_be_bytes());
        }
        fn string(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
            out.resize(out.len() + (4 - s.len() % 4) % 4, 0);
        }
        fn opt(out: &mut Vec<u8>, s: &Option<String>) {
            match s {
                Some(s) => {
                    int(out, 1);
                    string(out, s);
                }
                None => int(out, 0),
            }
        }
        int(out, self.code);
        int(out, self.domain);
        opt(out, &self.message);
        int(out, self.level);
        match &self.dom {
            Some(d) => {
                int(out, 1);
                string(out, &d.name);
                out.extend_from_slice(&d.uuid);
                int(out, d.id);
            }
            None => int(out, 0),
        }
        opt(out, &self.str1);
        opt(out, &self.str2);
        opt(out, &self.str3);
        int(out, self.int1);
        int(out, self.int2);
        match &self.net {
            Some(n) => {
                int(out, 1);
                string(out, &n.name);
                out.extend_from_slice(&n.uuid);
            }
            None => int(out, 0),
        }
    }

    /// A plain error with only code, domain, level 2 (error) and message set.
    pub fn new(code: i32, domain: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            domain,
            message: Some(message.into()),
            level: 2,
            dom: None,
            str1: None,
            str2: None,
            str3: None,
            int1: 0,
            int2: 0,
            net: None,
        }
    }
}

impl fmt::Display for RemoteError {
    /// Like libvirt (`virsh` prints `error: <message>`): the server-formatted message; without one,
    /// the code and domain numbers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => f.write_str(m),
            None => write!(
                f,
                "libvirt error code {} (domain {}) without a message",
                self.code, self.domain
            ),
        }
    }
}

impl std::error::Error for RemoteError {}

/// A minimal XDR reader for the handful of shapes in `virNetMessageError`.
struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn fail(&self, detail: String) -> Error {
        Error::Xdr {
            op: "decode",
            what: "remote_error".into(),
            detail,
        }
    }

    fn take(&mut self, n: usize, field: &str) -> Result<&[u8], Error> {
        let rest = self.input.len() - self.pos;
        if rest < n {
            return Err(self.fail(format!("{field}: needed {n} bytes, {rest} remaining")));
        }
        let s = &self.input[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u32(&mut self, field: &str) -> Result<u32, Error> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn int(&mut self, field: &str) -> Result<i32, Error> {
        Ok(self.u32(field)? as i32)
    }

    fn bool(&mut self, field: &str) -> Result<bool, Error> {
        match self.u32(field)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.fail(format!("{field}: invalid bool {v}"))),
        }
    }

    fn uuid(&mut self, field: &str) -> Result<[u8; 16], Error> {
        let b = self.take(16, field)?;
        let mut u = [0u8; 16];
        u.copy_from_slice(b);
        Ok(u)
    }

    fn string(&mut self, field: &str) -> Result<String, Error> {
        let len = self.u32(field)?;
        if len > STRING_MAX {
            return Err(self.fail(format!(
                "{field}: string length {len} exceeds VIR_NET_MESSAGE_STRING_MAX {STRING_MAX}"
            )));
        }
        let len = len as usize;
        let bytes = self.take(len, field)?.to_vec();
        let pad = (4 - len % 4) % 4;
        if self.take(pad, field)?.iter().any(|b| *b != 0) {
            return Err(self.fail(format!("{field}: non-zero padding")));
        }
        String::from_utf8(bytes).map_err(|_| self.fail(format!("{field}: invalid UTF-8")))
    }

    fn opt_string(&mut self, field: &str) -> Result<Option<String>, Error> {
        if self.bool(field)? {
            Ok(Some(self.string(field)?))
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_full() {
        let e = RemoteError {
            code: VIR_ERR_NO_DOMAIN,
            domain: 10,
            message: Some("Domain not found: no domain with matching name 'x'".into()),
            level: 2,
            dom: Some(ErrorDomainRef {
                name: "x".into(),
                uuid: [7; 16],
                id: -1,
            }),
            str1: Some("a".into()),
            str2: None,
            str3: Some("ccc".into()),
            int1: 5,
            int2: -6,
            net: Some(ErrorNetworkRef {
                name: "default".into(),
                uuid: [1; 16],
            }),
        };
        let mut b = Vec::new();
        e.encode(&mut b);
        assert_eq!(RemoteError::decode(&b).unwrap(), e);
        assert_eq!(
            e.to_string(),
            "Domain not found: no domain with matching name 'x'"
        );
    }

    #[test]
    fn malformed_bodies_are_typed_errors() {
        let e = RemoteError::new(1, 2, "m");
        let mut b = Vec::new();
        e.encode(&mut b);
        for cut in 0..b.len() {
            assert!(matches!(
                RemoteError::decode(&b[..cut]),
                Err(Error::Xdr { .. })
            ));
        }
        b.push(0);
        assert!(matches!(RemoteError::decode(&b), Err(Error::Xdr { .. })));
        // A huge string length is refused without allocating.
        let mut b = vec![0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1];
        b.extend_from_slice(&(STRING_MAX + 1).to_be_bytes());
        let err = RemoteError::decode(&b).unwrap_err();
        assert!(err.to_string().contains("STRING_MAX"), "{err}");
    }

    #[test]
    fn display_without_message() {
        let mut e = RemoteError::new(1, 2, "");
        e.message = None;
        assert_eq!(
            e.to_string(),
            "libvirt error code 1 (domain 2) without a message"
        );
    }
}
