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

mod error;
pub mod framer;
pub mod header;
pub mod packet;
pub mod remote_error;

pub use error::{CloseReason, Error};
pub use framer::Framer;
pub use header::{Header, MessageStatus, MessageType};
pub use packet::Packet;
pub use remote_error::RemoteError;
