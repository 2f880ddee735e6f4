//! SASL against the real SASL daemon of `cargo xtask peers` (`libvirt_sasl`: sasldb with a
//! test user; SCRAM-SHA-256 and PLAIN on its unix socket).
#![cfg(feature = "async")]

mod common;

use libvirt_client::libvirt_proto::generated::api::{ErrorDomain, ErrorNumber};
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
        matches!(&e, Error::AuthFailed { method, remote: Some(_), .. }
            if method.contains("SCRAM-SHA-256")),
        "{e:?}"
    );
    // The daemon's own typed error is kept.
    let r = e.remote().expect("the daemon's error");
    assert_eq!(r.code, ErrorNumber::ERR_AUTH_FAILED, "{e:?}");
    assert_eq!(r.domain, ErrorDomain::RPC, "{e:?}");
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

/// The shared auth daemon's `mech_list` is `scram-sha-256 plain`: a client that insists on
/// EXTERNAL stops before sending anything, with the daemon's real offer in the error.
#[tokio::test]
async fn external_only_stops_with_the_offer() {
    let e = connect(Some(Credentials::default().mechanisms(["EXTERNAL"])))
        .await
        .expect_err("EXTERNAL against libvirtd");
    assert!(
        matches!(&e, Error::AuthFailed { reason, remote: None, .. }
            if reason.contains("no common mechanism") && reason.contains("SCRAM-SHA-256")),
        "{e:?}"
    );
}

/// What the daemon offers, from the "no common mechanism" error of a client asking for a
/// mechanism nobody has.
fn offered(e: &Error) -> String {
    let Error::AuthFailed { reason, .. } = e else {
        panic!("not AuthFailed: {e:?}");
    };
    let start = reason.find("offers ").expect("offer in the message") + "offers ".len();
    let end = reason.find(", this client").expect("end of the offer");
    reason[start..end].to_owned()
}

/// The claim of the `sasl` module docs: even with `external` in its SASL `mech_list`,
/// libvirtd does not offer EXTERNAL (it never gives Cyrus SASL the external identity). A
/// private daemon with `mech_list: external scram-sha-256 plain` offers the other two only.
#[tokio::test]
async fn external_not_offered_even_when_configured() {
    let d = common::daemon::PrivateDaemon::start_with(
        "sasl",
        &[(
            "sasl2/libvirt.conf",
            "mech_list: external scram-sha-256 plain\nsasldb_path: {dir}/sasl2/passwd.db\n",
        )],
        &["SASL_CONF_PATH={dir}/sasl2"],
    );
    let e = Client::connect_with(
        &d.test_unix(),
        ClientOptions::default().credentials(Credentials::default().mechanisms(["NONE-SUCH"])),
    )
    .await
    .expect_err("no common mechanism");
    let offer = offered(&e);
    // The configuration was read (its list, not Cyrus' default of every plugin)...
    assert!(offer.contains("SCRAM-SHA-256"), "{offer} / {}", d.log());
    assert!(offer.contains("PLAIN"), "{offer}");
    assert!(
        !offer.contains("GSSAPI") && !offer.contains("DIGEST-MD5"),
        "{offer}"
    );
    // ...and EXTERNAL, listed there, is still not offered.
    assert!(!offer.contains("EXTERNAL"), "{offer}");
}

/// The URI's `auth=`: a type the daemon does not offer is refused before anything is sent;
/// `auth=sasl.MECH` overrides the credentials' own mechanism list.
#[tokio::test]
async fn uri_auth_param_selects_the_type_and_mechanism() {
    let with = |auth: &str| {
        libvirt_client::uri::Uri::parse(&uri())
            .and_then(|u| u.with_param("auth", auth))
            .expect("uri")
            .to_string()
    };
    let o =
        |pw: &str| ClientOptions::default().credentials(creds(pw).mechanisms(["SCRAM-SHA-256"]));
    let e = Client::connect_with(&with("polkit"), o(&password()))
        .await
        .expect_err("polkit is not offered");
    assert!(
        matches!(&e, Error::AuthFailed { method, reason, .. }
            if method == "polkit" && reason.contains("rejected")),
        "{e:?}"
    );
    // PLAIN although the credentials prefer SCRAM: the right password logs in...
    let c = Client::connect_with(&with("sasl.plain"), o(&password()))
        .await
        .expect("auth=sasl.plain login");
    assert!(c.connect_get_lib_version().await.expect("version") >= 9_000_000);
    c.close().await.unwrap();
    // ...and a wrong one fails in PLAIN, not in SCRAM.
    let e = Client::connect_with(&with("sasl.plain"), o("not-the-password"))
        .await
        .expect_err("wrong password");
    assert!(
        matches!(&e, Error::AuthFailed { method, .. } if method.contains("PLAIN")),
        "{e:?}"
    );
    #[cfg(feature = "blocking")]
    {
        let e = libvirt_client::blocking::Client::connect_with(&with("sasl.plain"), o("nope"))
            .expect_err("wrong password");
        assert!(
            matches!(&e, Error::AuthFailed { method, .. } if method.contains("PLAIN")),
            "{e:?}"
        );
    }
}

/// The blocking client's SASL path (`authenticate_blocking`): right password in, wrong one
/// refused with the daemon's typed error.
#[cfg(feature = "blocking")]
#[test]
fn blocking_scram_sha256_right_and_wrong() {
    use libvirt_client::blocking;
    let c = blocking::Client::connect_with(
        &uri(),
        ClientOptions::default().credentials(creds(&password()).mechanisms(["SCRAM-SHA-256"])),
    )
    .expect("blocking SCRAM-SHA-256 login");
    assert!(c.connect_get_lib_version().expect("version") >= 9_000_000);
    let e = blocking::Client::connect_with(
        &uri(),
        ClientOptions::default()
            .credentials(creds("not-the-password").mechanisms(["SCRAM-SHA-256"])),
    )
    .expect_err("wrong password must fail");
    assert!(
        matches!(&e, Error::AuthFailed { method, .. } if method.contains("SCRAM-SHA-256")),
        "{e:?}"
    );
    assert_eq!(e.remote_code(), Some(ErrorNumber::ERR_AUTH_FAILED), "{e:?}");
}
