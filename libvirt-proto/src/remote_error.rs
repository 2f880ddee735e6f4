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

/// The wire form of `virNetMessageError` (temporary hand-written serde mirror until the
/// generated `remote_error` type is available).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename = "remote_error")]
struct Wire {
    code: i32,
    domain: i32,
    #[serde(
        serialize_with = "xdr::limit::serialize::<STRING_MAX, _, _>",
        deserialize_with = "xdr::limit::deserialize::<STRING_MAX, _, _>"
    )]
    message: Option<String>,
    level: i32,
    dom: Option<WireDomain>,
    #[serde(
        serialize_with = "xdr::limit::serialize::<STRING_MAX, _, _>",
        deserialize_with = "xdr::limit::deserialize::<STRING_MAX, _, _>"
    )]
    str1: Option<String>,
    #[serde(
        serialize_with = "xdr::limit::serialize::<STRING_MAX, _, _>",
        deserialize_with = "xdr::limit::deserialize::<STRING_MAX, _, _>"
    )]
    str2: Option<String>,
    #[serde(
        serialize_with = "xdr::limit::serialize::<STRING_MAX, _, _>",
        deserialize_with = "xdr::limit::deserialize::<STRING_MAX, _, _>"
    )]
    str3: Option<String>,
    int1: i32,
    int2: i32,
    net: Option<WireNetwork>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct WireDomain {
    #[serde(
        serialize_with = "xdr::limit::serialize::<STRING_MAX, _, _>",
        deserialize_with = "xdr::limit::deserialize::<STRING_MAX, _, _>"
    )]
    name: String,
    #[serde(with = "xdr::opaque_fixed")]
    uuid: [u8; 16],
    id: i32,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct WireNetwork {
    #[serde(
        serialize_with = "xdr::limit::serialize::<STRING_MAX, _, _>",
        deserialize_with = "xdr::limit::deserialize::<STRING_MAX, _, _>"
    )]
    name: String,
    #[serde(with = "xdr::opaque_fixed")]
    uuid: [u8; 16],
}

impl RemoteError {
    /// Decode a `remote_error` body (the payload of a REPLY with status ERROR, or of a server
    /// STREAM packet with status ERROR). Trailing bytes are an error; every string is limited to
    /// `VIR_NET_MESSAGE_STRING_MAX`.
    pub fn decode(body: &[u8]) -> Result<Self, Error> {
        let w: Wire = xdr::from_bytes(body).map_err(|e| Error::decode("remote_error", e))?;
        Ok(Self {
            code: w.code,
            domain: w.domain,
            message: w.message,
            level: w.level,
            dom: w.dom.map(|d| ErrorDomainRef {
                name: d.name,
                uuid: d.uuid,
                id: d.id,
            }),
            str1: w.str1,
            str2: w.str2,
            str3: w.str3,
            int1: w.int1,
            int2: w.int2,
            net: w.net.map(|n| ErrorNetworkRef {
                name: n.name,
                uuid: n.uuid,
            }),
        })
    }

    /// Encode as a `remote_error` body (what a server sends), appending to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let w = Wire {
            code: self.code,
            domain: self.domain,
            message: self.message.clone(),
            level: self.level,
            dom: self.dom.as_ref().map(|d| WireDomain {
                name: d.name.clone(),
                uuid: d.uuid,
                id: d.id,
            }),
            str1: self.str1.clone(),
            str2: self.str2.clone(),
            str3: self.str3.clone(),
            int1: self.int1,
            int2: self.int2,
            net: self.net.as_ref().map(|n| WireNetwork {
                name: n.name.clone(),
                uuid: n.uuid,
            }),
        };
        xdr::to_writer_vec(&w, out).map_err(|e| Error::encode("remote_error", e))
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
        e.encode(&mut b).unwrap();
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
        e.encode(&mut b).unwrap();
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
        assert!(
            matches!(
                err,
                Error::Xdr {
                    source: xdr::Error::LengthOverLimit { .. },
                    ..
                }
            ),
            "{err}"
        );
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
