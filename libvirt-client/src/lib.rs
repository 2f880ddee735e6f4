//! Pure-Rust libvirt client.
//!
//! The top of the libvirt side of the stack: thin async (tokio, feature `async`) and blocking
//! (std only, feature `blocking`) drivers that move bytes between a transport (unix, tcp, tls, ssh,
//! ext, or any byte stream) and the sans-IO connection in `libvirt-proto`, plus the typed API and
//! helpers.
//!
//! - [`uri`]: libvirt connection URIs (`qemu+ssh://root@host/system?keyfile=...`), the daemon
//!   socket a URI addresses and the name sent to the daemon when opening.
//! - [`transport`]: connected byte streams built from a [`uri::Uri`].
//!
//! ```
//! use libvirt_client::uri::{TransportKind, Uri};
//!
//! let uri: Uri = "test+tcp://127.0.0.1:16599/default".parse()?;
//! assert_eq!(uri.transport(), TransportKind::Tcp);
//! assert_eq!(uri.effective_port(), Some(16599));
//! // What the client sends in REMOTE_PROC_CONNECT_OPEN:
//! assert_eq!(uri.remote_name(), "test:///default");
//! # Ok::<(), libvirt_client::Error>(())
//! ```

#[cfg(feature = "async")]
mod async_client;
#[cfg(feature = "blocking")]
pub mod blocking;
mod core;
mod error;
pub mod events;
mod generated;
pub mod helpers;
pub mod open;
mod options;
pub mod stream;
pub mod transport;
pub mod uri;
#[cfg(feature = "xml")]
pub mod xml;

#[cfg(feature = "async")]
pub use async_client::Client;
pub use error::Error;
pub use helpers::{BlockIoTune, Domain, DomainStateInfo, Version};
pub use generated::events::TypedEvent;
pub use libvirt_proto;
pub use options::ClientOptions;
