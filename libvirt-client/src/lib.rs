//! Pure-Rust libvirt client.
//!
//! The top of the libvirt side of the stack: thin async (tokio, feature `async`) and blocking
//! (std only, feature `blocking`) drivers that move bytes between a transport (unix, tcp, tls, ssh)
//! and the sans-IO connection in `libvirt-proto`, plus the typed API and helpers.
//!
//! ```
//! assert_eq!(2 + 2, 4);
//! ```
