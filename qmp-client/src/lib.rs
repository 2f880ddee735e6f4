//! QMP client.
//!
//! Thin async (tokio, feature `async`) and blocking (std only, feature `blocking`) drivers over the
//! sans-IO session in `qmp-proto`: connect over unix/tcp, pipeline commands by id, fan out events.
//!
//! ```
//! assert_eq!(2 + 2, 4);
//! ```
