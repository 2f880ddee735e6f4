//! SASL against the real SASL daemon of `cargo xtask peers` (`libvirt_sasl`: sasldb with a
//! test user; SCRAM-SHA-256 and PLAIN on its unix socket).
#![cfg(feature = "async")]

mod common;

use libvirt_client::sasl::Credentials;
use libvirt_client::{Client, ClientOptions, Error};

fn sasl() -> serde_json::Value {
    let e = common::endpoints()["libvirt_sasl"].clone();
    assert!(
        e.is_object(),
        "endpoints lack libvirt_sasl; run `cargo xtask peers start`"
    );
    e
}

fn uri() -> String {
    sasl()["uris"]["test_unix"]
        .as_str()
        .expect("uri")
        .to_owned()
}

fn creds(password: &str) -> Credentials {
    Credentials::password(sasl()["username"].as_str().expect("username"), password)
}

fn password() -> String {
    sasl()["password"].as_str().expect("password").to_owned()
}

async fn connect(c: Option<Credentials>) -> Result<Client, Error> {
    let mut o = ClientOptions::default();
    if let Some(c) = c {
        o = o.credentials(c);
    }
    Client::connect_with(&uri(), o).await
}

#[tokio::test]
async fn scram_sha256_right_password() {
    let c = connect(Some(creds(&password()).mechanisms(["SCRAM-SHA-256"])))
        .await
        .expect("SCRAM-SHA-256 login");
    assert!(c.connect_get_lib_version().await.expect("version") >= 9_000_000);
    // The daemon serves us: the test driver's default domain is there.
    assert!(c.domain_lookup_by_name("test".into()).await.is_ok());
}

#[tokio::test]
async fn scram_sha256_wrong_password() {
    let e = connect(Some(
        creds("not-the-password").mechanisms(["SCRAM-SHA-256"]),
    ))
    .await
    .expect_err("wrong password must fail");
    assert!(
        matches!(&e, Error::AuthFailed { method, .. } if method.contains("SCRAM-SHA-256")),
        "{e:?}"
    );
}

#[tokio::test]
async fn plain_right_and_wrong() {
    connect(Some(creds(&password()).mechanisms(["PLAIN"])))
        .await
        .expect("PLAIN login");
    let e = connect(Some(creds("nope").mechanisms(["PLAIN"])))
        .await
        .expect_err("wrong password");
    assert!(matches!(e, Error::AuthFailed { .. }), "{e:?}");
}

#[tokio::test]
async fn no_credentials_or_unknown_user() {
    let e = connect(None).await.expect_err("no credentials");
    assert!(matches!(e, Error::AuthFailed { .. }), "{e:?}");
    let e = connect(Some(Credentials::password("nobody-here", "x")))
        .await
        .expect_err("unknown user");
    assert!(matches!(e, Error::AuthFailed { .. }), "{e:?}");
    let e = connect(Some(creds(&password()).mechanisms(["GSSAPI"])))
        .await
        .expect_err("no common mechanism");
    assert!(e.to_string().contains("no common mechanism"), "{e}");
}

/// libvirtd does not offer EXTERNAL (it never gives Cyrus SASL the external identity that
/// mechanism needs; see the `sasl` module docs), so a client that insists on it stops before
/// sending anything, with the daemon's real offer in the error.
#[tokio::test]
async fn external_is_not_offered() {
    let e = connect(Some(Credentials::default().mechanisms(["EXTERNAL"])))
        .await
        .expect_err("EXTERNAL against libvirtd");
    assert!(
        matches!(&e, Error::AuthFailed { reason, .. }
            if reason.contains("no common mechanism") && reason.contains("SCRAM-SHA-256")),
        "{e:?}"
    );
}
