//! Sans-IO libvirt RPC protocol.
//!
//! Sits on `xdr` and under `libvirt-client`: packet header and framing, the generated types and
//! procedures of the remote, qemu, lxc, admin and keepalive programs, and the connection state
//! machine (serials, pending calls, events, streams, keepalive). It never does IO: a driver feeds it
//! bytes and drains packets, events and timeouts.
//!
//! ```
//! assert_eq!(2 + 2, 4);
//! ```

pub mod connection;
mod error;
pub mod event;
pub mod framer;
pub mod header;
pub mod keepalive;
pub mod packet;
pub mod remote_error;
pub mod stream;

pub use connection::{CallId, CallOptions, Config, Connection, ProcedureId, Stats, Transmit};
pub use error::{CloseReason, Error};
pub use event::{Event, EventFamily, Reply, ServerMessage};
pub use framer::Framer;
pub use header::{Header, MessageStatus, MessageType};
pub use keepalive::KeepaliveConfig;
pub use packet::Packet;
pub use remote_error::RemoteError;
pub use stream::StreamItem;
