//! The `unix` transport: a local unix domain socket.
//!
//! Over unix sockets libvirt can pass file descriptors; the transports expose the socket
//! (`as_unix`) for that. A path starting with `@` names a Linux abstract socket, as in libvirt.

#![cfg_attr(not(any(feature = "blocking", feature = "async")), allow(dead_code))]

use std::path::Path;

use crate::Error;

fn error(path: &Path, source: std::io::Error) -> Error {
    Error::ConnectUnix {
        path: path.to_owned(),
        source,
    }
}

/// Connect a std unix stream.
#[cfg(feature = "blocking")]
pub(crate) fn connect_blocking(path: &Path) -> Result<std::os::unix::net::UnixStream, Error> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixStream};
    let r = match abstract_name(path) {
        Some(name) => {
            SocketAddr::from_abstract_name(name).and_then(|a| UnixStream::connect_addr(&a))
        }
        None => UnixStream::connect(path),
    };
    r.map_err(|e| error(path, e))
}

/// Connect a tokio unix stream.
#[cfg(feature = "async")]
pub(crate) async fn connect_async(path: &Path) -> Result<tokio::net::UnixStream, Error> {
    if let Some(name) = abstract_name(path) {
        // tokio has no abstract-address connect: connect with std (a local connect does not
        // block) and convert.
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr, UnixStream};
        let s = SocketAddr::from_abstract_name(name)
            .and_then(|a| UnixStream::connect_addr(&a))
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|e| error(path, e))?;
        return tokio::net::UnixStream::from_std(s).map_err(|e| error(path, e));
    }
    tokio::net::UnixStream::connect(path)
        .await
        .map_err(|e| error(path, e))
}

fn abstract_name(path: &Path) -> Option<&[u8]> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().strip_prefix(b"@")
}
