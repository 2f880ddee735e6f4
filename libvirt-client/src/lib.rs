//! Pure-Rust libvirt client.
//!
//! The top of the libvirt side of the stack: thin async (tokio, feature `async`) and blocking
//! (std only, feature `blocking`) drivers that move bytes between a transport (unix, tcp, tls, ssh,
//! ext, or any byte stream) and the sans-IO [`libvirt_proto::Connection`], plus the typed API and
//! helpers. Nothing links libvirt.so.
//!
//! - [`Client`] (async) and [`blocking::Client`]: `Clone + Send + Sync` handles to one
//!   connection; calls are pipelined; dropping a call's future abandons it; per-call timeouts;
//!   when the connection dies every pending call and stream fails at once with a closed error.
//!   [`Client::connect`] runs libvirt's open sequence ([`open`]): auth list, auth (none,
//!   polkit, SASL; the URI's `auth=` chooses), `CONNECT_OPEN`, keepalive opt-in, feature probes.
//! - Every procedure of the remote, qemu, lxc and admin programs is a generated method
//!   (`domain_get_info`, `qemu_domain_monitor_command`, `admin_connect_list_servers`...), with
//!   libvirt's documentation and typed flags where libvirt documents them (the six that carry
//!   file descriptors are typed methods of [`fds`] instead); [`helpers`] adds go-libvirt-style
//!   shortcuts.
//! - [`events`]: subscriptions to every event family as a `Stream` / `Iterator` of
//!   [`TypedEvent`]s with a bounded, reported overflow policy.
//! - [`fds`]: calls that pass file descriptors over unix sockets (`open_graphics_fd`,
//!   `create_xml_with_files`...), and `call_with_fds` for any procedure.
//! - [`stream`]: libvirt streams as `AsyncRead`/`AsyncWrite` and `Read`/`Write` (sparse holes).
//! - [`reconnect`]: a reconnecting wrapper; [`uri`], [`transport`]: URIs and byte transports.
//! - [`ClientOptions`]: timeouts, keepalive, event buffering, SASL credentials,
//!   [`busy_poll`](ClientOptions::busy_poll) for many-caller throughput where waking a CPU is
//!   dear (virtual machines), and [`decode`](ClientOptions::decode) to read replies holding
//!   strings that are not UTF-8 (libvirt passes file names through as bytes).
//!
//! ```no_run
//! use libvirt_client::events::{EventItem, Subscription};
//! use libvirt_client::{Client, TypedEvent};
//!
//! # async fn demo() -> Result<(), libvirt_client::Error> {
//! let c = Client::connect("qemu:///session").await?;
//! println!("hypervisor {} on libvirt {}", c.version().await?, c.lib_version().await?);
//! let mut events = c.subscribe(Subscription::domain(None)).await?;
//! for dom in c.domains().await? {
//!     println!("{} is {}", dom.name, c.domain_state(&dom).await?.state);
//! }
//! while let Some(item) = events.next().await {
//!     if let EventItem::Event(TypedEvent::DomainEventCallbackLifecycle(e)) = item? {
//!         println!("{}: event {}", e.msg.dom.name, e.msg.event);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! URIs are parsed without IO:
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

// The docs link both drivers; with a feature off those links have no target. docs.rs builds
// with every feature (Cargo.toml).
#![cfg_attr(
    not(all(feature = "async", feature = "blocking")),
    allow(rustdoc::broken_intra_doc_links)
)]
// Without a driver feature only the shared, IO-free parts are built; the driver plumbing they
// serve is then unused.
#![cfg_attr(
    not(any(feature = "async", feature = "blocking")),
    allow(dead_code, unused_imports, unused_macros)
)]

pub mod admin;
#[cfg(feature = "async")]
mod async_client;
#[cfg(feature = "blocking")]
pub mod blocking;
mod core;
mod error;
pub mod events;
#[cfg(any(feature = "async", feature = "blocking"))]
pub mod fds;
mod generated;
pub mod helpers;
#[cfg(feature = "async")]
pub mod migrate;
pub mod open;
mod options;
pub mod reconnect;
pub mod sasl;
pub mod stream;
pub mod transport;
pub mod uri;
#[cfg(feature = "xml")]
pub mod xml;

#[cfg(feature = "async")]
pub use async_client::Client;
pub use error::{Error, MigrationPhase};
pub use generated::events::TypedEvent;
pub use helpers::{BlockIoTune, Domain, DomainStateInfo, Version};
pub use libvirt_proto;
pub use options::{ClientOptions, LONG_RUNNING};
/// The XDR codec the wire types use (for [`ClientOptions::decode`] and `xdr::Opaque`), so that
/// users need not depend on a matching version themselves.
pub use xdr;
