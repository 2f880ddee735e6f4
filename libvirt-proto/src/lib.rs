//! Sans-IO libvirt RPC protocol.
//!
//! Sits on `xdr` and under `libvirt-client`: packet header and framing, the generated types and
//! procedures of the remote, qemu, lxc, admin and keepalive programs, and the connection state
//! machine (serials, pending calls, events, streams, keepalive). It never does IO and has no
//! clock: a driver feeds it bytes, descriptors, EOF and the time, and drains bytes to send,
//! application events and the next deadline (the `quinn-proto` shape).
//!
//! # Modules
//! - [`header`]: the 24-byte header, [`MessageType`] / [`MessageStatus`], libvirt's size limits.
//! - [`packet`]: encoding a whole packet (length word, header, fd count, body).
//! - [`framer`]: [`Framer`], the incremental decoder (any split in, whole packets out, zero-copy).
//! - [`remote_error`]: [`RemoteError`], the typed `remote_error` of failed calls and streams.
//! - [`connection`]: [`Connection`], the client state machine; [`event`]: what it reports;
//!   [`stream`]: stream items; [`keepalive`]: keepalive settings and timing.
//!
//! # Unknown values
//! The flag sets and enums generated from libvirt's API description (`generated::api`:
//! domain states, event ids, error codes...) keep values this crate does not know, so a newer
//! daemon's additions pass through. The enums of the `.x` files themselves (`remote_auth_type`,
//! the typed-parameter kinds...) are protocol words whose set libvirt fixes with the program
//! version: a value outside them fails the decode with a typed [`xdr::Error`] naming the field,
//! as a wrong discriminant would.
//!
//! # Example: one call, its reply in two pieces
//! ```
//! use libvirt_proto::generated::remote::{procs, RemoteConnectGetLibVersionRet};
//! use libvirt_proto::packet::encode_packet;
//! use libvirt_proto::{Connection, Event, Framer, Header, MessageType};
//!
//! let mut conn = Connection::default();
//! // REMOTE_PROC_CONNECT_GET_LIB_VERSION takes no arguments.
//! let call = conn.start(procs::ConnectGetLibVersion, &())?;
//! let sent = conn.poll_transmit().expect("a packet to send");
//! // A driver writes `sent.data` to the socket; here we decode it as the server would.
//! let mut framer = Framer::new();
//! framer.push(&sent.data);
//! let packet = framer.next_packet()?.expect("one whole packet");
//! assert_eq!(packet.header.kind, MessageType::Call);
//! assert_eq!((packet.header.procedure, packet.header.serial), (157, call.serial()));
//!
//! // The server answers `remote_connect_get_lib_version_ret { unsigned hyper lib_ver; }`.
//! let reply = Header { kind: MessageType::Reply, ..packet.header };
//! let mut wire = Vec::new();
//! encode_packet(&reply, 0, &11_003_000u64.to_be_bytes(), &mut wire)?;
//! conn.handle_input(&wire[..5])?; // bytes may arrive in any split
//! conn.handle_input(&wire[5..])?;
//! match conn.poll_event() {
//!     Some(Event::Reply { id, result }) => {
//!         assert_eq!(id, call);
//!         let ret: RemoteConnectGetLibVersionRet = result?.decode()?;
//!         assert_eq!(ret.lib_ver, 11_003_000);
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! # Ok::<(), libvirt_proto::Error>(())
//! ```

pub mod connection;
mod error;
pub mod event;
pub mod framer;
pub mod generated;
pub mod header;
pub mod keepalive;
pub mod packet;
pub mod program;
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
/// The XDR codec of every generated type (`xdr::Opaque` fields, `xdr::DecodeOptions`), so that
/// users need not depend on a matching version themselves.
pub use xdr;
