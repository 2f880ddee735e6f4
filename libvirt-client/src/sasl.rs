//! SASL authentication: sans-IO client mechanisms (SCRAM-SHA-256 after RFC 5802/7677, PLAIN,
//! EXTERNAL) and libvirt's `AUTH_SASL_INIT` / `AUTH_SASL_START` / `AUTH_SASL_STEP` exchange.
//!
//! A mechanism is a small state machine: [`Mechanism::start`] gives the initial response,
//! [`Mechanism::step`] answers each server challenge, [`Mechanism::finish`] checks the server's
//! last message (SCRAM verifies the server's signature, so a daemon that does not know the
//! password cannot pretend to). The drivers run the exchange in the open sequence when the
//! daemon asks for SASL, with the [`Credentials`] from
//! [`ClientOptions::credentials`](crate::ClientOptions).
//!
//! Mechanisms without a security layer (all three here) are what libvirtd accepts on unix
//! sockets and TLS; on plain TCP it insists on one (SSF >= 56) and offers none of these.
//!
//! # EXTERNAL and libvirtd
//! libvirtd does not offer EXTERNAL even when its SASL `mech_list` names it: shown on a unix
//! socket against Debian's libvirtd 9.0 with `mech_list: external scram-sha-256 plain`, which
//! offers `SCRAM-SHA-256` and `PLAIN` only (the real-daemon test
//! `external_not_offered_even_when_configured`). The reason, from the sources: Cyrus SASL's
//! server side makes EXTERNAL available only on a connection given an external identity with
//! `sasl_setprop(SASL_AUTH_EXTERNAL)`, and libvirt's SASL layer (`virnetsaslcontext.c`, in 9.0
//! as in 11.3) sets only `SASL_SSF_EXTERNAL` (the TLS key size) and the security properties,
//! never that identity (so TLS connections, not tested here, are not expected to differ). A TLS client certificate or unix peer credentials are checked by
//! libvirtd itself instead (`tls_allowed_dn_list`, the socket's permissions), not through
//! SASL. [`External`] is therefore checked against RFC 4422 in unit tests only, for other
//! SASL servers speaking libvirt's protocol; against libvirtd, asking for EXTERNAL alone ends
//! with [`Error::AuthFailed`] ("no common mechanism").
//!
//! ```
//! use libvirt_client::sasl::{Mechanism, ScramSha256};
//!
//! // RFC 7677's example exchange.
//! let mut m = ScramSha256::with_nonce("user", "pencil", None, "rOprNGfwEbeRWgbNEkqO");
//! assert_eq!(m.start()?, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO".to_vec());
//! let last = m.step(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
//!                     s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")?;
//! assert!(last.ends_with(b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="));
//! m.finish(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")?;
//! # Ok::<(), libvirt_client::Error>(())
//! ```

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::{digest, hmac, pbkdf2};
use std::num::NonZeroU32;

use crate::Error;

/// Who to authenticate as.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct Credentials {
    /// Authentication identity (user name in the sasldb).
    pub username: Option<String>,
    /// Password (SCRAM, PLAIN).
    pub password: Option<String>,
    /// Authorization identity (usually empty: the same as the user).
    pub authzid: Option<String>,
    /// Mechanisms to use, in order of preference (upper case, e.g. `SCRAM-SHA-256`); empty:
    /// SCRAM-SHA-256, then PLAIN, then EXTERNAL.
    pub mechanisms: Vec<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("authzid", &self.authzid)
            .field("mechanisms", &self.mechanisms)
            .finish()
    }
}

impl Credentials {
    /// User name and password.
    pub fn password(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: Some(username.into()),
            password: Some(password.into()),
            ..Credentials::default()
        }
    }

    /// Restrict or order the mechanisms (e.g. `["PLAIN"]`).
    pub fn mechanisms<I: IntoIterator<Item = S>, S: Into<String>>(mut self, mechs: I) -> Self {
        self.mechanisms = mechs.into_iter().map(|m| m.into().to_uppercase()).collect();
        self
    }

    /// Choose a mechanism from the daemon's list (comma or space separated) and build it.
    pub fn choose(&self, offered: &str) -> Result<Box<dyn Mechanism + Send>, Error> {
        let offered: Vec<String> = offered
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(str::to_uppercase)
            .collect();
        let default = ["SCRAM-SHA-256", "PLAIN", "EXTERNAL"].map(String::from);
        let wanted = if self.mechanisms.is_empty() {
            &default[..]
        } else {
            &self.mechanisms[..]
        };
        let name = wanted
            .iter()
            .find(|w| offered.contains(w))
            .ok_or_else(|| Error::AuthFailed {
                method: "sasl".into(),
                reason: format!(
                    "no common mechanism: the daemon offers {offered:?}, this client uses {wanted:?}"
                ),
                remote: None,
            })?;
        let user = || {
            self.username.clone().ok_or_else(|| Error::AuthFailed {
                method: format!("sasl {name}"),
                reason: "no user name given (set ClientOptions::credentials)".into(),
                remote: None,
            })
        };
        let pass = || {
            self.password.clone().ok_or_else(|| Error::AuthFailed {
                method: format!("sasl {name}"),
                reason: "no password given (set ClientOptions::credentials)".into(),
                remote: None,
            })
        };
        Ok(match name.as_str() {
            "SCRAM-SHA-256" => Box::new(ScramSha256::new(
                &user()?,
                &pass()?,
                self.authzid.as_deref(),
            )?),
            "PLAIN" => Box::new(Plain::new(&user()?, &pass()?, self.authzid.as_deref())),
            "EXTERNAL" => Box::new(External::new(self.authzid.as_deref())),
            other => {
                return Err(Error::AuthFailed {
                    method: "sasl".into(),
                    reason: format!(
                        "mechanism {other} is not implemented (SCRAM-SHA-256, PLAIN, EXTERNAL are)"
                    ),
                    remote: None,
                })
            }
        })
    }
}

/// A client-side SASL mechanism (sans-IO).
pub trait Mechanism {
    /// The IANA name (`SCRAM-SHA-256`).
    fn name(&self) -> &'static str;
    /// The initial response (sent with `AUTH_SASL_START`).
    fn start(&mut self) -> Result<Vec<u8>, Error>;
    /// The answer to a server challenge.
    fn step(&mut self, challenge: &[u8]) -> Result<Vec<u8>, Error>;
    /// Check the server's final data (when the server reports completion).
    fn finish(&mut self, data: &[u8]) -> Result<(), Error>;
}

fn fail(mech: &str, reason: impl Into<String>) -> Error {
    Error::AuthFailed {
        method: format!("sasl {mech}"),
        reason: reason.into(),
        remote: None,
    }
}

/// PLAIN (RFC 4616): `authzid NUL user NUL password` in one message.
#[derive(Clone)]
pub struct Plain {
    msg: Vec<u8>,
}

impl Plain {
    /// PLAIN for `user`/`password`.
    pub fn new(user: &str, password: &str, authzid: Option<&str>) -> Self {
        let mut msg = Vec::new();
        msg.extend_from_slice(authzid.unwrap_or("").as_bytes());
        msg.push(0);
        msg.extend_from_slice(user.as_bytes());
        msg.push(0);
        msg.extend_from_slice(password.as_bytes());
        Plain { msg }
    }
}

impl Mechanism for Plain {
    fn name(&self) -> &'static str {
        "PLAIN"
    }
    fn start(&mut self) -> Result<Vec<u8>, Error> {
        Ok(self.msg.clone())
    }
    fn step(&mut self, _challenge: &[u8]) -> Result<Vec<u8>, Error> {
        Err(fail(
            "PLAIN",
            "the server sent a challenge; PLAIN has a single message",
        ))
    }
    fn finish(&mut self, _data: &[u8]) -> Result<(), Error> {
        Ok(())
    }
}

/// EXTERNAL (RFC 4422 appendix A): identity from the transport (TLS client certificate, unix
/// peer credentials); sends only the optional authorization identity. libvirtd never offers it
/// (see the module documentation, "EXTERNAL and libvirtd").
#[derive(Clone)]
pub struct External {
    authzid: Vec<u8>,
}

impl External {
    /// EXTERNAL, optionally asking to act as `authzid`.
    pub fn new(authzid: Option<&str>) -> Self {
        External {
            authzid: authzid.unwrap_or("").as_bytes().to_vec(),
        }
    }
}

impl Mechanism for External {
    fn name(&self) -> &'static str {
        "EXTERNAL"
    }
    fn start(&mut self) -> Result<Vec<u8>, Error> {
        Ok(self.authzid.clone())
    }
    fn step(&mut self, _challenge: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(self.authzid.clone())
    }
    fn finish(&mut self, _data: &[u8]) -> Result<(), Error> {
        Ok(())
    }
}

#[derive(Clone)]
enum ScramState {
    Initial,
    SentFirst,
    SentFinal {
        server_key: Vec<u8>,
        auth_message: String,
    },
    Done,
}

/// SCRAM-SHA-256 (RFC 5802, RFC 7677), without channel binding (`n,,`).
///
/// The password is used as given (no SASLprep): ASCII passwords behave as in any SCRAM
/// implementation.
#[derive(Clone)]
pub struct ScramSha256 {
    password: String,
    gs2_header: String,
    client_first_bare: String,
    nonce: String,
    state: ScramState,
}

/// `saslname`: `=` and `,` escaped as `=3D` and `=2C`.
fn saslname(s: &str) -> String {
    s.replace('=', "=3D").replace(',', "=2C")
}

const SCRAM: &str = "SCRAM-SHA-256";

impl ScramSha256 {
    /// A fresh exchange with a random 24-byte client nonce.
    pub fn new(user: &str, password: &str, authzid: Option<&str>) -> Result<Self, Error> {
        let mut raw = [0u8; 24];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw)
            .map_err(|_| fail(SCRAM, "the system random generator failed"))?;
        Ok(Self::with_nonce(user, password, authzid, &B64.encode(raw)))
    }

    /// An exchange with a fixed client nonce (tests and examples only: the nonce must be
    /// unpredictable in real use).
    pub fn with_nonce(user: &str, password: &str, authzid: Option<&str>, nonce: &str) -> Self {
        let gs2_header = match authzid {
            Some(a) if !a.is_empty() => format!("n,a={},", saslname(a)),
            _ => "n,,".into(),
        };
        ScramSha256 {
            password: password.to_owned(),
            gs2_header,
            client_first_bare: format!("n={},r={nonce}", saslname(user)),
            nonce: nonce.to_owned(),
            state: ScramState::Initial,
        }
    }

    fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
            .as_ref()
            .to_vec()
    }

    /// The attributes `k=v` of a SCRAM message.
    fn attrs(msg: &str) -> impl Iterator<Item = (char, &str)> {
        msg.split(',').filter_map(|kv| {
            let mut c = kv.chars();
            let k = c.next()?;
            kv.get(1..)?.strip_prefix('=').map(|v| (k, v))
        })
    }
}

impl Mechanism for ScramSha256 {
    fn name(&self) -> &'static str {
        SCRAM
    }

    fn start(&mut self) -> Result<Vec<u8>, Error> {
        if !matches!(self.state, ScramState::Initial) {
            return Err(fail(SCRAM, "start called twice"));
        }
        self.state = ScramState::SentFirst;
        Ok(format!("{}{}", self.gs2_header, self.client_first_bare).into_bytes())
    }

    fn step(&mut self, challenge: &[u8]) -> Result<Vec<u8>, Error> {
        match self.state {
            ScramState::SentFirst => {}
            ScramState::SentFinal { .. } => {
                // Some servers send server-final as a challenge: verify, answer empty.
                self.finish(challenge)?;
                return Ok(Vec::new());
            }
            _ => return Err(fail(SCRAM, "unexpected challenge")),
        }
        let server_first = std::str::from_utf8(challenge)
            .map_err(|_| fail(SCRAM, "server-first-message is not UTF-8"))?;
        if let Some((_, e)) = Self::attrs(server_first).find(|(k, _)| *k == 'e') {
            return Err(fail(SCRAM, format!("server error: {e}")));
        }
        let get = |key: char| {
            Self::attrs(server_first)
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v)
                .ok_or_else(|| {
                    fail(
                        SCRAM,
                        format!("server-first-message lacks `{key}=`: {server_first:?}"),
                    )
                })
        };
        let nonce = get('r')?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(fail(
                SCRAM,
                "the server's nonce does not extend ours (possible replay)",
            ));
        }
        let salt = B64
            .decode(get('s')?)
            .map_err(|e| fail(SCRAM, format!("bad salt: {e}")))?;
        let iterations: u32 = get('i')?
            .parse()
            .map_err(|_| fail(SCRAM, "bad iteration count"))?;
        // RFC 7677 asks for at least 4096; refuse absurd counts that would hang us.
        let iterations = NonZeroU32::new(iterations)
            .filter(|i| i.get() <= 10_000_000)
            .ok_or_else(|| fail(SCRAM, format!("iteration count {iterations} out of range")))?;

        let mut salted = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            &salt,
            self.password.as_bytes(),
            &mut salted,
        );
        let client_key = Self::hmac(&salted, b"Client Key");
        let stored_key = digest::digest(&digest::SHA256, &client_key);
        let without_proof = format!("c={},r={nonce}", B64.encode(self.gs2_header.as_bytes()));
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_sig = Self::hmac(stored_key.as_ref(), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_sig)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = Self::hmac(&salted, b"Server Key");
        let out = format!("{without_proof},p={}", B64.encode(proof)).into_bytes();
        self.state = ScramState::SentFinal {
            server_key,
            auth_message,
        };
        Ok(out)
    }

    fn finish(&mut self, data: &[u8]) -> Result<(), Error> {
        let ScramState::SentFinal {
            server_key,
            auth_message,
        } = &self.state
        else {
            if matches!(self.state, ScramState::Done) && data.is_empty() {
                return Ok(());
            }
            return Err(fail(SCRAM, "the server finished before the exchange did"));
        };
        let msg = std::str::from_utf8(data)
            .map_err(|_| fail(SCRAM, "server-final-message is not UTF-8"))?;
        if let Some((_, e)) = Self::attrs(msg).find(|(k, _)| *k == 'e') {
            return Err(fail(SCRAM, format!("server error: {e}")));
        }
        let v = Self::attrs(msg)
            .find(|(k, _)| *k == 'v')
            .ok_or_else(|| fail(SCRAM, format!("server-final-message lacks `v=`: {msg:?}")))?
            .1;
        let got = B64
            .decode(v)
            .map_err(|e| fail(SCRAM, format!("bad server signature: {e}")))?;
        // ServerSignature = HMAC(ServerKey, AuthMessage), compared in constant time.
        let key = hmac::Key::new(hmac::HMAC_SHA256, server_key);
        if hmac::verify(&key, auth_message.as_bytes(), &got).is_err() {
            return Err(fail(
                SCRAM,
                "the server's signature is wrong: it does not know the password",
            ));
        }
        self.state = ScramState::Done;
        Ok(())
    }
}

fn to_wire(v: Vec<u8>) -> Vec<i8> {
    v.into_iter().map(|b| b as i8).collect()
}

fn from_wire(v: &[i8]) -> Vec<u8> {
    v.iter().map(|b| *b as u8).collect()
}

/// An upper bound on round trips (SCRAM needs 2).
const MAX_STEPS: usize = 16;

/// Map a daemon error during the exchange to a typed authentication failure that keeps the
/// daemon's error (code, domain, message) in `remote`.
fn auth_error(mech: &str, e: Error) -> Error {
    match e.remote() {
        Some(r) => Error::AuthFailed {
            method: format!("sasl {mech}"),
            reason: r
                .message
                .clone()
                .unwrap_or_else(|| "the daemon refused the credentials".into()),
            remote: Some(Box::new(r.clone())),
        },
        None => e,
    }
}

#[cfg(feature = "async")]
pub(crate) async fn authenticate(client: &crate::Client, creds: &Credentials) -> Result<(), Error> {
    use libvirt_proto::generated::remote::{
        procs, RemoteAuthSaslStartArgs, RemoteAuthSaslStepArgs,
    };
    let init = client.call::<procs::AuthSaslInit>(&()).await?;
    let mut mech = creds.choose(&init.mechlist)?;
    let name = mech.name();
    let first = mech.start()?;
    let mut r = client
        .call::<procs::AuthSaslStart>(&RemoteAuthSaslStartArgs {
            mech: name.to_owned(),
            nil: 0,
            data: to_wire(first),
        })
        .await
        .map_err(|e| auth_error(name, e))
        .map(|r| (r.complete, r.nil, r.data))?;
    for _ in 0..MAX_STEPS {
        let (complete, nil, data) = r;
        let data = if nil != 0 {
            Vec::new()
        } else {
            from_wire(&data)
        };
        if complete != 0 {
            return mech.finish(&data);
        }
        let answer = mech.step(&data)?;
        r = client
            .call::<procs::AuthSaslStep>(&RemoteAuthSaslStepArgs {
                nil: 0,
                data: to_wire(answer),
            })
            .await
            .map_err(|e| auth_error(name, e))
            .map(|r| (r.complete, r.nil, r.data))?;
    }
    Err(fail(name, format!("no completion after {MAX_STEPS} steps")))
}

#[cfg(feature = "blocking")]
pub(crate) fn authenticate_blocking(
    client: &crate::blocking::Client,
    creds: &Credentials,
) -> Result<(), Error> {
    use libvirt_proto::generated::remote::{
        procs, RemoteAuthSaslStartArgs, RemoteAuthSaslStepArgs,
    };
    let init = client.call::<procs::AuthSaslInit>(&())?;
    let mut mech = creds.choose(&init.mechlist)?;
    let name = mech.name();
    let first = mech.start()?;
    let mut r = client
        .call::<procs::AuthSaslStart>(&RemoteAuthSaslStartArgs {
            mech: name.to_owned(),
            nil: 0,
            data: to_wire(first),
        })
        .map_err(|e| auth_error(name, e))
        .map(|r| (r.complete, r.nil, r.data))?;
    for _ in 0..MAX_STEPS {
        let (complete, nil, data) = r;
        let data = if nil != 0 {
            Vec::new()
        } else {
            from_wire(&data)
        };
        if complete != 0 {
            return mech.finish(&data);
        }
        let answer = mech.step(&data)?;
        r = client
            .call::<procs::AuthSaslStep>(&RemoteAuthSaslStepArgs {
                nil: 0,
                data: to_wire(answer),
            })
            .map_err(|e| auth_error(name, e))
            .map(|r| (r.complete, r.nil, r.data))?;
    }
    Err(fail(name, format!("no completion after {MAX_STEPS} steps")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER_FIRST: &[u8] =
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

    #[test]
    fn rfc7677_vector() {
        let mut m = ScramSha256::with_nonce("user", "pencil", None, "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(m.start().unwrap(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let fin = m.step(SERVER_FIRST).unwrap();
        assert_eq!(
            std::str::from_utf8(&fin).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        m.finish(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
    }

    #[test]
    fn wrong_server_signature_refused() {
        let mut m = ScramSha256::with_nonce("user", "pencil", None, "rOprNGfwEbeRWgbNEkqO");
        m.start().unwrap();
        m.step(SERVER_FIRST).unwrap();
        let e = m
            .finish(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap_err();
        assert!(matches!(e, Error::AuthFailed { .. }), "{e}");
        let mut m = ScramSha256::with_nonce("user", "pencil", None, "rOprNGfwEbeRWgbNEkqO");
        m.start().unwrap();
        m.step(SERVER_FIRST).unwrap();
        assert!(m.finish(b"e=invalid-proof").is_err());
    }

    #[test]
    fn bad_server_first_refused() {
        for bad in [
            &b"r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"[..],
            b"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            b"r=rOprNGfwEbeRWgbNEkqOx,s=***,i=4096",
            b"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",
            b"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999",
            b"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==",
            b"e=unknown-user",
            b"\xff\xfe",
            b"",
        ] {
            let mut m = ScramSha256::with_nonce("user", "pencil", None, "rOprNGfwEbeRWgbNEkqO");
            m.start().unwrap();
            let e = m.step(bad).unwrap_err();
            assert!(matches!(e, Error::AuthFailed { .. }), "{e}");
        }
    }

    #[test]
    fn names_escaped_and_nonce_random() {
        let m = ScramSha256::with_nonce("a=b,c", "p", Some("z"), "N");
        assert_eq!(m.client_first_bare, "n=a=3Db=2Cc,r=N");
        assert_eq!(m.gs2_header, "n,a=z,");
        let a = ScramSha256::new("u", "p", None).unwrap();
        let b = ScramSha256::new("u", "p", None).unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_eq!(a.nonce.len(), 32);
    }

    #[test]
    fn plain_external_and_choice() {
        assert_eq!(
            Plain::new("u", "p", None).start().unwrap(),
            b"\0u\0p".to_vec()
        );
        assert_eq!(External::new(Some("x")).start().unwrap(), b"x".to_vec());
        let c = Credentials::password("u", "p");
        assert_eq!(
            c.choose("PLAIN,SCRAM-SHA-256").unwrap().name(),
            "SCRAM-SHA-256"
        );
        assert_eq!(c.choose("plain digest-md5").unwrap().name(), "PLAIN");
        assert!(c.choose("GSSAPI").is_err());
        let c = c.mechanisms(["plain"]);
        assert_eq!(c.choose("SCRAM-SHA-256,PLAIN").unwrap().name(), "PLAIN");
        assert!(Credentials::default().choose("PLAIN").is_err());
        assert_eq!(
            Credentials::default().choose("EXTERNAL").unwrap().name(),
            "EXTERNAL"
        );
        assert!(!format!("{:?}", Credentials::password("u", "secret")).contains("secret"));
    }
}
