//! The `tcp` transport (and the TCP part of `tls`): resolve the host, try each address in
//! turn, each within the connect timeout.

#![cfg_attr(not(any(feature = "blocking", feature = "async")), allow(dead_code))]

use std::io;
#[cfg(any(feature = "blocking", feature = "async"))]
use std::net::SocketAddr;
#[cfg(any(feature = "blocking", feature = "async"))]
use std::time::Duration;

use crate::Error;

fn resolve_error(host: &str, port: u16, source: io::Error) -> Error {
    Error::Resolve {
        host: host.to_owned(),
        port,
        source,
    }
}

fn no_addresses(host: &str, port: u16) -> Error {
    resolve_error(
        host,
        port,
        io::Error::new(io::ErrorKind::NotFound, "no addresses found"),
    )
}

fn connect_error(host: &str, port: u16, source: io::Error) -> Error {
    Error::ConnectTcp {
        host: host.to_owned(),
        port,
        source,
    }
}

/// Connect a std TCP stream (with `TCP_NODELAY`, as small RPC packets want).
#[cfg(feature = "blocking")]
pub(crate) fn connect_blocking(
    host: &str,
    port: u16,
    timeout: Option<Duration>,
) -> Result<std::net::TcpStream, Error> {
    use std::net::{TcpStream, ToSocketAddrs};
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| resolve_error(host, port, e))?
        .collect();
    let mut last = None;
    for addr in &addrs {
        let r = match timeout {
            Some(t) if !t.is_zero() => TcpStream::connect_timeout(addr, t),
            _ => TcpStream::connect(addr),
        };
        match r {
            Ok(s) => {
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                last = Some(super::timeout_error(format!("connect to {addr}"), timeout))
            }
            Err(e) => last = Some(connect_error(host, port, e)),
        }
    }
    Err(last.unwrap_or_else(|| no_addresses(host, port)))
}

/// Connect a tokio TCP stream (with `TCP_NODELAY`).
#[cfg(feature = "async")]
pub(crate) async fn connect_async(
    host: &str,
    port: u16,
    timeout: Option<Duration>,
) -> Result<tokio::net::TcpStream, Error> {
    use tokio::net::TcpStream;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| resolve_error(host, port, e))?
        .collect();
    let mut last = None;
    for addr in &addrs {
        let r = match timeout {
            Some(t) => match tokio::time::timeout(t, TcpStream::connect(addr)).await {
                Ok(r) => r,
                Err(_) => {
                    last = Some(super::timeout_error(format!("connect to {addr}"), timeout));
                    continue;
                }
            },
            None => TcpStream::connect(addr).await,
        };
        match r {
            Ok(s) => {
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = Some(connect_error(host, port, e)),
        }
    }
    Err(last.unwrap_or_else(|| no_addresses(host, port)))
}
