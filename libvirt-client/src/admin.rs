//! The admin program: a daemon's administration socket (`libvirt-admin-sock`), as libvirt's
//! `virAdmConnectOpen` opens it.
//!
//! The admin socket speaks its own program (`admin_protocol.x`) and has its own open sequence:
//! no `AUTH_LIST`, no keepalive probe, just `ADMIN_PROC_CONNECT_OPEN`. The daemon accepts only
//! its own user on it (a session daemon refuses even root). Every admin procedure is then a
//! method of the client (`admin_connect_list_servers`, `admin_server_list_clients`, ...).
//!
//! ```no_run
//! # async fn f() -> Result<(), libvirt_client::Error> {
//! use libvirt_client::{Client, ClientOptions};
//! let path = libvirt_client::admin::session_socket()?;
//! let admin = Client::connect_admin(&path, ClientOptions::default()).await?;
//! for srv in admin.admin_connect_list_servers(16, 0).await?.servers {
//!     println!("server {}", srv.name);
//! }
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};

use crate::transport::Endpoint;
use crate::{ClientOptions, Error};

/// The system daemon's admin socket (`/run/libvirt/libvirt-admin-sock`).
pub const SYSTEM_SOCKET: &str = "/run/libvirt/libvirt-admin-sock";

/// The session daemon's admin socket of the current user:
/// `$XDG_RUNTIME_DIR/libvirt/libvirt-admin-sock`, as libvirt's admin client picks it.
pub fn session_socket() -> Result<PathBuf, Error> {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => Ok(Path::new(&dir).join("libvirt/libvirt-admin-sock")),
        _ => Err(Error::InvalidUri {
            uri: "libvirtd:///session".into(),
            reason: "XDG_RUNTIME_DIR is not set: no session admin socket to connect to".into(),
        }),
    }
}

fn endpoint(path: &Path) -> Endpoint {
    Endpoint::Unix {
        path: path.to_path_buf(),
    }
}

#[cfg(feature = "async")]
impl crate::Client {
    /// Connect to a daemon's admin socket and open the admin program
    /// (`ADMIN_PROC_CONNECT_OPEN`), as `virAdmConnectOpen` does.
    pub async fn connect_admin(path: &Path, options: ClientOptions) -> Result<Self, Error> {
        let transport =
            crate::transport::AsyncTransport::connect_endpoint(&endpoint(path), &options.transport)
                .await?;
        let client = Self::from_transport(transport, options, None)?;
        client
            .admin_connect_open(libvirt_proto::generated::api::ConnectFlags::empty())
            .await?;
        Ok(client)
    }
}

#[cfg(feature = "blocking")]
impl crate::blocking::Client {
    /// Connect to a daemon's admin socket and open the admin program
    /// (`ADMIN_PROC_CONNECT_OPEN`), as `virAdmConnectOpen` does.
    pub fn connect_admin(path: &Path, options: ClientOptions) -> Result<Self, Error> {
        let transport = crate::transport::BlockingTransport::connect_endpoint(
            &endpoint(path),
            &options.transport,
        )?;
        let client = Self::from_transport(transport, options, None)?;
        client.admin_connect_open(libvirt_proto::generated::api::ConnectFlags::empty())?;
        Ok(client)
    }
}
