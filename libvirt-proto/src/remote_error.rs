//! `remote_error` (`virNetMessageError` in `virnetprotocol.x`): the body of a failed reply and
//! of a server-side stream error, decoded into a typed value.

use std::fmt;

use crate::generated::api::{ErrorDomain, ErrorLevel, ErrorNumber};
use crate::generated::virnet::{
    VirNetMessageError, VirNetMessageNonnullDomain, VirNetMessageNonnullNetwork,
};
use crate::Error;

/// A libvirt error as sent by the server (`virNetMessageError`, alias `remote_error`), with
/// typed `code`, `domain` and `level` (values this libvirt version does not know are kept).
///
/// `Display` prints what libvirt prints after `error: `: the message the server formatted
/// (e.g. `Domain not found: no domain with matching name 'x'`).
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteError {
    /// `virErrorNumber`, e.g. [`ErrorNumber::ERR_NO_DOMAIN`].
    pub code: ErrorNumber,
    /// `virErrorDomain`: the subsystem that raised it, e.g. [`ErrorDomain::DOM`].
    pub domain: ErrorDomain,
    /// The full human readable message, already formatted by the server.
    pub message: Option<String>,
    /// `virErrorLevel`: warning or error.
    pub level: ErrorLevel,
    /// The domain concerned, if the server filled it (libvirt marks it unused).
    pub dom: Option<VirNetMessageNonnullDomain>,
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
    /// The network concerned, if the server filled it (libvirt marks it unused).
    pub net: Option<VirNetMessageNonnullNetwork>,
}

impl From<VirNetMessageError> for RemoteError {
    fn from(w: VirNetMessageError) -> Self {
        Self {
            code: ErrorNumber(w.code),
            domain: ErrorDomain(w.domain),
            message: w.message,
            level: ErrorLevel(w.level),
            dom: w.dom,
            str1: w.str1,
            str2: w.str2,
            str3: w.str3,
            int1: w.int1,
            int2: w.int2,
            net: w.net,
        }
    }
}

impl From<RemoteError> for VirNetMessageError {
    fn from(e: RemoteError) -> Self {
        Self {
            code: e.code.0,
            domain: e.domain.0,
            message: e.message,
            level: e.level.0,
            dom: e.dom,
            str1: e.str1,
            str2: e.str2,
            str3: e.str3,
            int1: e.int1,
            int2: e.int2,
            net: e.net,
        }
    }
}

impl RemoteError {
    /// Decode a `remote_error` body (the payload of a REPLY with status ERROR, or of a server
    /// STREAM packet with status ERROR) with the generated `virNetMessageError` type. Trailing
    /// bytes are an error; every string is limited to `VIR_NET_MESSAGE_STRING_MAX`.
    ///
    /// Strings that are not UTF-8 (a message built from a file name, or translated in a
    /// non-UTF-8 locale) are decoded with U+FFFD replacements ([`xdr::Utf8::Lossy`]) rather
    /// than refused: the message is for people to read, and the error's code and domain must
    /// not be lost to it.
    pub fn decode(body: &[u8]) -> Result<Self, Error> {
        let options = xdr::DecodeOptions::new().with_utf8(xdr::Utf8::Lossy);
        let w: VirNetMessageError =
            xdr::from_bytes_with(body, options).map_err(|e| Error::decode("remote_error", e))?;
        Ok(w.into())
    }

    /// Encode as a `remote_error` body (what a server sends), appending to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let w: VirNetMessageError = self.clone().into();
        xdr::to_writer_vec(&w, out).map_err(|e| Error::encode("remote_error", e))
    }

    /// A plain error with only code, domain, level [`ErrorLevel::ERROR`] and message set.
    pub fn new(code: ErrorNumber, domain: ErrorDomain, message: impl Into<String>) -> Self {
        Self {
            code,
            domain,
            message: Some(message.into()),
            level: ErrorLevel::ERROR,
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
    /// Like libvirt (`virsh` prints `error: <message>`): the server-formatted message; without
    /// one, the code and domain names (numbers when unknown).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => f.write_str(m),
            None => write!(
                f,
                "libvirt error {} from {} without a message",
                self.code, self.domain
            ),
        }
    }
}

impl std::error::Error for RemoteError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::STRING_MAX;

    #[test]
    fn round_trip_full() {
        let e = RemoteError {
            code: ErrorNumber::ERR_NO_DOMAIN,
            domain: ErrorDomain::DOM,
            message: Some("Domain not found: no domain with matching name 'x'".into()),
            level: ErrorLevel::ERROR,
            dom: Some(VirNetMessageNonnullDomain {
                name: "x".into(),
                uuid: [7; 16],
                id: -1,
            }),
            str1: Some("a".into()),
            str2: None,
            str3: Some("ccc".into()),
            int1: 5,
            int2: -6,
            net: Some(VirNetMessageNonnullNetwork {
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
        assert_eq!(format!("{:?}", e.code), "VIR_ERR_NO_DOMAIN(42)");
    }

    #[test]
    fn wire_layout_is_virnetmessageerror() {
        // code 42, domain 6, message "m", level 2, no dom, 3 x no str, int1 1, int2 2, no net.
        let words: [u32; 13] = [42, 6, 1, 1, 0x6d00_0000, 2, 0, 0, 0, 0, 1, 2, 0];
        let b: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        let e = RemoteError::decode(&b).unwrap();
        assert_eq!(e.code, ErrorNumber::ERR_NO_DOMAIN);
        assert_eq!(e.domain, ErrorDomain::DOM);
        assert_eq!(e.level, ErrorLevel::ERROR);
        assert_eq!((e.message.as_deref(), e.int1, e.int2), (Some("m"), 1, 2));
    }

    #[test]
    fn malformed_bodies_are_typed_errors() {
        let e = RemoteError::new(ErrorNumber(1), ErrorDomain(2), "m");
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
    fn messages_that_are_not_utf8_keep_the_error() {
        // code 55 (VIR_ERR_OPERATION_INVALID), domain 18 (storage), message "vol 'caf\xe9'"
        // in Latin-1, level 2, no dom, str1 the same name, no str2/str3, ints 0, no net.
        let mut b = Vec::new();
        for w in [55u32, 18, 1] {
            b.extend(w.to_be_bytes());
        }
        let latin1 = b"vol 'caf\xe9'";
        b.extend((latin1.len() as u32).to_be_bytes());
        b.extend(latin1);
        b.extend([0, 0]); // padding to 12

        for w in [2u32, 0, 1] {
            b.extend(w.to_be_bytes());
        }
        b.extend(4u32.to_be_bytes());
        b.extend(b"caf\xe9");
        for w in [0u32, 0, 0, 0, 0] {
            b.extend(w.to_be_bytes());
        }
        let e = RemoteError::decode(&b).unwrap();
        assert_eq!(e.code, ErrorNumber::ERR_OPERATION_INVALID);
        assert_eq!(e.domain, ErrorDomain::STORAGE);
        assert_eq!(e.message.as_deref(), Some("vol 'caf\u{fffd}'"));
        assert_eq!(e.str1.as_deref(), Some("caf\u{fffd}"));
    }

    #[test]
    fn unknown_codes_are_kept_and_displayed() {
        let mut e = RemoteError::new(ErrorNumber(9999), ErrorDomain::DOM, "");
        e.message = None;
        assert_eq!(
            e.to_string(),
            "libvirt error 9999 from VIR_FROM_DOM without a message"
        );
        let mut b = Vec::new();
        e.encode(&mut b).unwrap();
        assert_eq!(RemoteError::decode(&b).unwrap().code, ErrorNumber(9999));
    }
}
