//! QMP client: async (tokio, feature `async`) and blocking (std only, feature `blocking`)
//! drivers over the sans-IO [`qmp_proto::Session`].
//!
//! Where it sits: `qmp-proto` holds the protocol (framing, ids, the in-flight window, typed
//! commands); this crate moves its bytes over unix/tcp sockets or any byte stream, pipelines
//! calls from many tasks or threads, fans events out to subscribers, passes fds over unix
//! sockets and adds helpers that wait for the events commands cause. [`govmm`] adds typed,
//! validated VM-management calls (Kata govmm's set) to both drivers; with feature `libvirt`,
//! `Client::via_libvirt` runs all of it through libvirt's QEMU monitor passthrough. [`qga`] is a
//! thin guest-agent client (sync, in-order commands, resync after a timeout) on both drivers.
//!
//! ```no_run
//! # #[cfg(feature = "async")]
//! # async fn demo() -> qmp_client::Result<()> {
//! use qmp_client::{Client, ConnectOptions, EventFilter};
//! use serde_json::json;
//! use std::time::Duration;
//!
//! let qmp = Client::connect("/run/vm/qmp.sock", ConnectOptions::default()).await?;
//! println!("QEMU {}", qmp.greeting().version.qemu);
//! let status = qmp.execute("query-status", None).await?;
//! // The same, typed from QEMU's QAPI schema:
//! use qmp_client::qmp_proto::generated::commands::QueryStatus;
//! let typed = qmp.call(&QueryStatus {}).await?;
//! println!("running: {}", typed.running);
//! // Hot-unplug and wait for QEMU to confirm it (the `device`-carrying DEVICE_DELETED).
//! qmp.execute_then_wait_event(
//!     "device_del",
//!     Some(json!({"id": "disk1"})),
//!     EventFilter::name("DEVICE_DELETED").data_eq("/device", "disk1"),
//!     Duration::from_secs(10),
//! )
//! .await?;
//! # let _ = status; Ok(()) }
//! ```
//!
//! The blocking driver has the same shape:
//!
//! ```no_run
//! # #[cfg(feature = "blocking")]
//! # fn demo() -> qmp_client::Result<()> {
//! let qmp = qmp_client::blocking::Client::connect("/run/vm/qmp.sock", Default::default())?;
//! let version = qmp.execute("query-version", None)?;
//! # let _ = version; Ok(()) }
//! ```

// Without a driver feature only the shared types are built; the driver plumbing they serve
// is then unused.
#![cfg_attr(not(any(feature = "async", feature = "blocking")), allow(dead_code))]
// The docs link both drivers and the libvirt transport; with a feature off those links have no
// target. docs.rs builds with every feature (Cargo.toml).
#![cfg_attr(
    not(all(feature = "async", feature = "blocking", feature = "libvirt")),
    allow(rustdoc::broken_intra_doc_links)
)]

#[cfg(feature = "async")]
mod asynchronous;
#[cfg(feature = "blocking")]
pub mod blocking;
mod core;
mod error;
mod events;
#[cfg(unix)]
mod fds;
#[cfg(any(feature = "async", feature = "blocking"))]
pub mod govmm;
pub mod helpers;
#[cfg(feature = "libvirt")]
pub mod libvirt;
mod options;
pub mod qga;
mod router;
#[cfg(unix)]
mod unix_connect;

#[cfg(feature = "async")]
pub use asynchronous::{AsyncStream, Client, Subscription};
pub use error::{Error, Result};
pub use events::{EventFilter, RecvError};
pub use options::{ConnectOptions, Exec};
pub use qmp_proto;
