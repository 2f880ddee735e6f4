//! The `tls` transport's credentials and rustls configuration.
//!
//! libvirt's PKI layout, as its remote driver looks it up:
//!
//! - `pkipath=DIR`: `DIR/cacert.pem`, `DIR/clientcert.pem`, `DIR/clientkey.pem` (and
//!   `DIR/cacrl.pem` when present).
//! - otherwise, for non-root users, `~/.pki/libvirt/` holds the same names: the CA (and CRL)
//!   is taken from there when it exists, the certificate and key when both exist;
//! - and what is still missing comes from the system locations `/etc/pki/CA/cacert.pem`,
//!   `/etc/pki/CA/cacrl.pem`, `/etc/pki/libvirt/clientcert.pem` and
//!   `/etc/pki/libvirt/private/clientkey.pem`.
//!
//! The CA certificate must exist. The client certificate and key are optional together, as in
//! libvirt's client (`virNetTLSContextLoadCredentials` lets a client miss them): with neither
//! file the handshake runs without a client certificate and the daemon decides; with only one
//! of the two this client stops with [`Error::TlsFile`] naming the missing one (libvirt would
//! silently go without a certificate).
//!
//! The server's certificate must chain to the CA and match the host name of the URI, unless
//! `no_verify=1`. After the handshake libvirtd checks our certificate against its own rules
//! and sends one byte: `1` when it accepts us ([`check_verdict`]); when it refuses (no
//! certificate, a distinguished name not in `tls_allowed_dn_list`) it closes the connection
//! instead, which is [`Error::TlsClientRefused`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::uri::{LocalEnv, Uri};
use crate::Error;

/// The system CA certificate.
pub const SYSTEM_CACERT: &str = "/etc/pki/CA/cacert.pem";
/// The system CA revocation list.
pub const SYSTEM_CACRL: &str = "/etc/pki/CA/cacrl.pem";
/// The system client certificate.
pub const SYSTEM_CLIENTCERT: &str = "/etc/pki/libvirt/clientcert.pem";
/// The system client key.
pub const SYSTEM_CLIENTKEY: &str = "/etc/pki/libvirt/private/clientkey.pem";

/// Where the TLS credentials are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsFiles {
    /// CA certificate(s), PEM.
    pub ca: PathBuf,
    /// CA revocation list(s), PEM; optional (used when the file exists).
    pub crl: PathBuf,
    /// Client certificate chain, PEM.
    pub cert: PathBuf,
    /// Client private key, PEM (PKCS#1, PKCS#8 or SEC1).
    pub key: PathBuf,
    /// Whether the files come from `pkipath=` rather than being looked up (either way the CA
    /// must exist and the certificate and key are optional together).
    pub explicit: bool,
}

impl TlsFiles {
    /// The files in one directory (`pkipath=`).
    pub fn in_dir(dir: &Path) -> TlsFiles {
        TlsFiles {
            ca: dir.join("cacert.pem"),
            crl: dir.join("cacrl.pem"),
            cert: dir.join("clientcert.pem"),
            key: dir.join("clientkey.pem"),
            explicit: true,
        }
    }

    /// The system-wide files.
    pub fn system() -> TlsFiles {
        TlsFiles {
            ca: SYSTEM_CACERT.into(),
            crl: SYSTEM_CACRL.into(),
            cert: SYSTEM_CLIENTCERT.into(),
            key: SYSTEM_CLIENTKEY.into(),
            explicit: false,
        }
    }

    /// Look the files up as libvirt does (see the module docs). `user_home` is `Some` for
    /// non-root users; `exists` probes the file system.
    pub fn locate(
        pkipath: Option<&Path>,
        user_home: Option<&Path>,
        exists: impl Fn(&Path) -> bool,
    ) -> TlsFiles {
        if let Some(dir) = pkipath {
            return TlsFiles::in_dir(dir);
        }
        let mut files = TlsFiles::system();
        if let Some(home) = user_home {
            let user = TlsFiles::in_dir(&home.join(".pki/libvirt"));
            if exists(&user.ca) {
                files.ca = user.ca;
            }
            if exists(&user.crl) {
                files.crl = user.crl;
            }
            if exists(&user.cert) && exists(&user.key) {
                files.cert = user.cert;
                files.key = user.key;
            }
        }
        files
    }
}

/// Everything the TLS transport needs besides host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsSettings {
    /// Credential files.
    pub files: TlsFiles,
    /// Verify the server's certificate chain and host name (`no_verify=1` turns it off).
    pub verify_server: bool,
    /// `tls_priority=` as given (a GnuTLS priority string: recorded, not applied; rustls uses
    /// its own safe defaults, TLS 1.2 and 1.3).
    pub priority: Option<String>,
}

impl TlsSettings {
    /// The settings a URI asks for.
    pub fn from_uri(uri: &Uri, env: &LocalEnv) -> TlsSettings {
        let r = uri.remote();
        let home = if env.euid_is_root {
            None
        } else {
            env.home.as_deref()
        };
        TlsSettings {
            files: TlsFiles::locate(r.pkipath.as_deref(), home, |p| p.exists()),
            verify_server: !r.no_verify,
            priority: r.tls_priority.clone(),
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::TlsFile {
        path: path.to_owned(),
        source,
    })
}

fn bad(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::TlsCredentials {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad(path, "holds no PEM CERTIFICATE block"));
    }
    Ok(certs)
}

/// The rustls crypto provider used by this crate (ring).
pub fn provider() -> Arc<CryptoProvider> {
    // rustls 0.23.48 deprecates ring's provider for lacking post-quantum key exchange; libvirt's
    // GnuTLS peers do not offer it either, and ring keeps the build free of cmake/C toolchains.
    #[allow(deprecated)]
    let ring = rustls::crypto::ring::default_provider();
    Arc::new(ring)
}

/// Build the rustls client configuration from the credential files.
pub fn client_config(settings: &TlsSettings) -> Result<Arc<ClientConfig>, Error> {
    let provider = provider();
    let files = &settings.files;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::TlsConfig {
            reason: e.to_string(),
        })?;

    let builder = if settings.verify_server {
        let mut roots = RootCertStore::empty();
        for c in certs(&files.ca)? {
            roots
                .add(c)
                .map_err(|e| bad(&files.ca, format!("unusable CA certificate: {e}")))?;
        }
        let mut crls = Vec::new();
        if files.crl.exists() {
            let pem = read(&files.crl)?;
            crls = CertificateRevocationListDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(&files.crl, format!("not a PEM CRL: {e}")))?;
        }
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .with_crls(crls)
                .build()
                .map_err(|e| Error::TlsConfig {
                    reason: format!("server verifier from {}: {e}", files.ca.display()),
                })?;
        builder.with_webpki_verifier(verifier)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoServerVerification(provider.clone())))
    };

    let have_cert = files.cert.exists();
    let have_key = files.key.exists();
    if !have_cert && !have_key {
        // No client certificate at all (libvirt's client allows that too): the server decides
        // whether it accepts the connection.
        return Ok(Arc::new(builder.with_no_client_auth()));
    }
    let chain = certs(&files.cert)?;
    let key_pem = read(&files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| bad(&files.key, format!("no usable PEM private key: {e}")))?;
    let config = builder.with_client_auth_cert(chain, key).map_err(|e| {
        bad(
            &files.key,
            format!("does not fit {}: {e}", files.cert.display()),
        )
    })?;
    Ok(Arc::new(config))
}

/// The name the server certificate must match.
pub fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    ServerName::try_from(host.to_owned()).map_err(|e| Error::TlsConfig {
        reason: format!("{host:?} is not a valid TLS server name: {e}"),
    })
}

/// Check the byte libvirtd sends after the handshake: `Some(1)` means our client certificate
/// was accepted; anything else (another byte, or the connection closing: `None`) is a refusal.
pub fn check_verdict(byte: Option<u8>, host: &str) -> Result<(), Error> {
    match byte {
        Some(1) => Ok(()),
        Some(b) => Err(Error::TlsClientRefused {
            host: host.to_owned(),
            got: format!("byte {b:#04x}"),
        }),
        None => Err(Error::TlsClientRefused {
            host: host.to_owned(),
            got: "the connection closed".to_owned(),
        }),
    }
}

/// `no_verify=1`: accept any server certificate, but still check the handshake signatures
/// (so the peer does hold the certificate's key).
#[derive(Debug)]
struct NoServerVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_files() {
        let none = |_: &Path| false;
        assert_eq!(TlsFiles::locate(None, None, none), TlsFiles::system());
        let f = TlsFiles::locate(Some(Path::new("/pki")), Some(Path::new("/home/u")), |_| {
            true
        });
        assert_eq!(f.ca, Path::new("/pki/cacert.pem"));
        assert_eq!(f.cert, Path::new("/pki/clientcert.pem"));
        assert_eq!(f.key, Path::new("/pki/clientkey.pem"));
        assert!(f.explicit);
        // user dir: CA on its own, cert and key only as a pair
        let f = TlsFiles::locate(None, Some(Path::new("/home/u")), |p| {
            p.ends_with("cacert.pem") || p.ends_with("clientcert.pem")
        });
        assert_eq!(f.ca, Path::new("/home/u/.pki/libvirt/cacert.pem"));
        assert_eq!(f.cert, Path::new(SYSTEM_CLIENTCERT));
        assert_eq!(f.key, Path::new(SYSTEM_CLIENTKEY));
        let f = TlsFiles::locate(None, Some(Path::new("/home/u")), |p| p.starts_with("/home"));
        assert_eq!(f.key, Path::new("/home/u/.pki/libvirt/clientkey.pem"));
        assert!(!f.explicit);
    }

    #[test]
    fn settings_from_uri() {
        let env = LocalEnv::new(false, "/run/user/1/libvirt".into()).with_home(Some("/h".into()));
        let s = TlsSettings::from_uri(
            &Uri::parse("qemu://h/system?pkipath=/p&no_verify=1&tls_priority=NORMAL").unwrap(),
            &env,
        );
        assert_eq!(s.files, TlsFiles::in_dir(Path::new("/p")));
        assert!(!s.verify_server);
        assert_eq!(s.priority.as_deref(), Some("NORMAL"));
        let s = TlsSettings::from_uri(&Uri::parse("qemu://h/system").unwrap(), &env);
        assert!(s.verify_server);
    }

    #[test]
    fn verdict() {
        assert!(check_verdict(Some(1), "h").is_ok());
        assert!(matches!(
            check_verdict(Some(0), "h"),
            Err(Error::TlsClientRefused { .. })
        ));
        assert!(matches!(
            check_verdict(None, "h"),
            Err(Error::TlsClientRefused { .. })
        ));
    }

    fn write_pki(dir: &Path) -> rcgen::CertifiedKey {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client".to_owned()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        std::fs::write(dir.join("cacert.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("clientcert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("clientkey.pem"), key.serialize_pem()).unwrap();
        rcgen::CertifiedKey {
            cert,
            key_pair: key,
        }
    }

    #[test]
    fn config_from_files() {
        let dir = tempfile::tempdir().unwrap();
        write_pki(dir.path());
        let mut s = TlsSettings {
            files: TlsFiles::in_dir(dir.path()),
            verify_server: true,
            priority: None,
        };
        let c = client_config(&s).unwrap();
        assert!(c.client_auth_cert_resolver.has_certs());
        s.verify_server = false;
        client_config(&s).unwrap();

        // missing key with pkipath: a typed error naming the file
        std::fs::remove_file(dir.path().join("clientkey.pem")).unwrap();
        match client_config(&s) {
            Err(Error::TlsFile { path, .. }) => assert!(path.ends_with("clientkey.pem")),
            other => panic!("{other:?}"),
        }
        // neither certificate nor key with pkipath: no client certificate, as libvirt
        std::fs::remove_file(dir.path().join("clientcert.pem")).unwrap();
        let c = client_config(&s).unwrap();
        assert!(!c.client_auth_cert_resolver.has_certs());
        // garbage CA
        std::fs::write(dir.path().join("cacert.pem"), "not pem").unwrap();
        s.verify_server = true;
        match client_config(&s) {
            Err(Error::TlsCredentials { path, .. }) => assert!(path.ends_with("cacert.pem")),
            other => panic!("{other:?}"),
        }
        // key that does not belong to the certificate
        let dir2 = tempfile::tempdir().unwrap();
        write_pki(dir2.path());
        std::fs::write(
            dir2.path().join("clientkey.pem"),
            rcgen::KeyPair::generate().unwrap().serialize_pem(),
        )
        .unwrap();
        let s2 = TlsSettings {
            files: TlsFiles::in_dir(dir2.path()),
            verify_server: true,
            priority: None,
        };
        assert!(matches!(
            client_config(&s2),
            Err(Error::TlsCredentials { .. })
        ));
    }

    #[test]
    fn names() {
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("::1").is_ok());
        assert!(server_name("host.example").is_ok());
        assert!(matches!(
            server_name("bad name!"),
            Err(Error::TlsConfig { .. })
        ));
    }
}
