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

/// The authentication step to run, from the daemon's `AUTH_LIST` answer (libvirt's order:
/// the first type offered decides).
pub(crate) fn pick_auth(types: &[RemoteAuthType]) -> Result<RemoteAuthType, Error> {
    match types.first() {
        None | Some(RemoteAuthType::None) => Ok(RemoteAuthType::None),
        Some(RemoteAuthType::Polkit) => Ok(RemoteAuthType::Polkit),
        Some(RemoteAuthType::Sasl) => Ok(RemoteAuthType::Sasl),
    }
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
        assert_eq!(pick_auth(&[]).unwrap(), RemoteAuthType::None);
        assert_eq!(
            pick_auth(&[RemoteAuthType::Polkit]).unwrap(),
            RemoteAuthType::Polkit
        );
        assert_eq!(
            pick_auth(&[RemoteAuthType::Sasl, RemoteAuthType::None]).unwrap(),
            RemoteAuthType::Sasl
        );
        assert!(check_polkit(0).is_err());
        assert!(check_polkit(1).is_ok());
    }
}
