//! The open sequence, as libvirt's remote driver (`doRemoteOpen`) runs it: `AUTH_LIST`,
//! authentication (none, polkit, SASL via [`crate::sasl`]), the keepalive opt-in
//! (`CONNECT_SUPPORTS_FEATURE` for `VIR_DRV_FEATURE_PROGRAM_KEEPALIVE`; keepalive starts at
//! once when the daemon supports it and the options ask for it), `CONNECT_OPEN` with the URI's
//! name and flags, then the other feature probes.
//!
//! The decisions are pure functions here; the drivers run the calls.

use libvirt_proto::generated::remote::{RemoteAuthType, RemoteConnectOpenArgs};

use crate::Error;

/// `VIR_DRV_FEATURE_FD_PASSING` (libvirt's `libvirt_internal.h`).
pub const FEATURE_FD_PASSING: i32 = 8;
/// `VIR_DRV_FEATURE_PROGRAM_KEEPALIVE`.
pub const FEATURE_PROGRAM_KEEPALIVE: i32 = 10;
/// `VIR_DRV_FEATURE_REMOTE_EVENT_CALLBACK`.
pub const FEATURE_REMOTE_EVENT_CALLBACK: i32 = 14;
/// `VIR_DRV_FEATURE_REMOTE_CLOSE_CALLBACK`.
pub const FEATURE_REMOTE_CLOSE_CALLBACK: i32 = 15;

/// `VIR_CONNECT_RO`.
pub(crate) const CONNECT_RO: u32 = 1;

/// What the daemon supports (keepalive probed before `CONNECT_OPEN`, the rest after).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Features {
    /// Keepalive program (and we enabled keepalive if the options asked for it).
    pub keepalive: bool,
    /// Callback-id event registration (`*_CALLBACK_REGISTER_ANY`).
    pub event_callbacks: bool,
    /// `CONNECT_EVENT_CONNECTION_CLOSED` notifications.
    pub close_callback: bool,
    /// File-descriptor passing.
    pub fd_passing: bool,
}

/// The authentication step to run, from the daemon's `AUTH_LIST` answer and the URI's `auth=`
/// parameter, as libvirt's remote driver decides it: without `auth=` the first type offered;
/// with `auth=sasl`, `auth=sasl.MECH` or `auth=polkit` that type, which the daemon must offer
/// ([`Error::AuthFailed`] otherwise, as for an unknown `auth=` value). `auth=sasl.MECH` also
/// restricts SASL to mechanism `MECH` (returned upper-cased).
pub(crate) fn pick_auth(
    types: &[RemoteAuthType],
    wanted: Option<&str>,
) -> Result<(RemoteAuthType, Option<String>), Error> {
    let Some(first) = types.first() else {
        // Nothing to authenticate (libvirt ignores `auth=` then too).
        return Ok((RemoteAuthType::None, None));
    };
    let Some(wanted) = wanted else {
        return Ok((*first, None));
    };
    let failed = |reason: String| Error::AuthFailed {
        method: wanted.to_owned(),
        reason,
        remote: None,
    };
    let lower = wanted.to_ascii_lowercase();
    let (kind, mechanism) = if lower == "sasl" {
        (RemoteAuthType::Sasl, None)
    } else if let Some(mech) = lower.strip_prefix("sasl.") {
        if mech.is_empty() {
            return Err(failed("`auth=sasl.` names no SASL mechanism".into()));
        }
        (RemoteAuthType::Sasl, Some(mech.to_ascii_uppercase()))
    } else if lower == "polkit" {
        (RemoteAuthType::Polkit, None)
    } else {
        return Err(failed(format!(
            "unknown authentication type {wanted:?} in the URI's auth= (sasl, sasl.MECH, polkit)"
        )));
    };
    if !types.contains(&kind) {
        return Err(failed(format!(
            "requested authentication type {wanted} rejected: the daemon offers {types:?}"
        )));
    }
    Ok((kind, mechanism))
}

/// The authentication step the open sequence runs.
pub(crate) enum AuthStep {
    /// Nothing to do.
    None,
    /// `AUTH_POLKIT`.
    Polkit,
    /// The SASL exchange with these credentials.
    Sasl(crate::sasl::Credentials),
}

/// [`pick_auth`] for a connection: `auth=` from its URI, and for SASL the options'
/// credentials, limited to the mechanism of `auth=sasl.MECH` when one is named.
pub(crate) fn auth_step(
    types: &[RemoteAuthType],
    uri: Option<&crate::uri::Uri>,
    credentials: Option<&crate::sasl::Credentials>,
) -> Result<AuthStep, Error> {
    let wanted = uri.and_then(|u| u.remote().auth.as_deref());
    Ok(match pick_auth(types, wanted)? {
        (RemoteAuthType::Polkit, _) => AuthStep::Polkit,
        (RemoteAuthType::Sasl, mechanism) => {
            let mut creds = credentials.cloned().unwrap_or_default();
            if let Some(mech) = mechanism {
                creds.mechanisms = vec![mech];
            }
            AuthStep::Sasl(creds)
        }
        (RemoteAuthType::None, _) => AuthStep::None,
    })
}

/// The result of `AUTH_POLKIT`: `complete` must be non-zero.
pub(crate) fn check_polkit(complete: i32) -> Result<(), Error> {
    if complete == 0 {
        return Err(Error::AuthFailed {
            method: "polkit".into(),
            reason: "the daemon did not complete polkit authentication".into(),
            remote: None,
        });
    }
    Ok(())
}

/// `CONNECT_OPEN`'s arguments: the URI's name, and `VIR_CONNECT_RO` for a read-only connection.
pub(crate) fn connect_open_args(name: Option<&str>, read_only: bool) -> RemoteConnectOpenArgs {
    RemoteConnectOpenArgs {
        name: name.map(str::to_owned),
        flags: if read_only { CONNECT_RO } else { 0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_choice() {
        use RemoteAuthType::{None as NoAuth, Polkit, Sasl};
        let pick = pick_auth;
        assert_eq!(pick(&[], None).unwrap(), (NoAuth, None));
        assert_eq!(pick(&[], Some("sasl")).unwrap(), (NoAuth, None));
        assert_eq!(pick(&[Polkit], None).unwrap(), (Polkit, None));
        assert_eq!(pick(&[Sasl, NoAuth], None).unwrap(), (Sasl, None));
        // auth= picks among the offered types, whatever their order.
        assert_eq!(pick(&[NoAuth, Sasl], Some("SASL")).unwrap(), (Sasl, None));
        assert_eq!(
            pick(&[Polkit, Sasl], Some("sasl.scram-sha-256")).unwrap(),
            (Sasl, Some("SCRAM-SHA-256".into()))
        );
        assert_eq!(
            pick(&[Sasl, Polkit], Some("polkit")).unwrap(),
            (Polkit, None)
        );
        for (types, wanted) in [
            (&[Sasl][..], "polkit"),
            (&[Polkit][..], "sasl"),
            (&[Sasl][..], "kerberos"),
            (&[Sasl][..], "sasl."),
            (&[NoAuth][..], "none"),
        ] {
            let e = pick(types, Some(wanted)).unwrap_err();
            assert!(
                matches!(&e, Error::AuthFailed { method, .. } if method == wanted),
                "{wanted}: {e:?}"
            );
        }
        assert!(check_polkit(0).is_err());
        assert!(check_polkit(1).is_ok());
    }
}
