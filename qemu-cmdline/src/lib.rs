//! Typed QEMU configuration to argv and back.
//!
//! Beside the protocol crates: it builds the command line a QEMU process is started with (values
//! escaped by construction, validated, with an fd plan) and launches it, handing the QMP socket to
//! `qmp-client`.
//!
//! ```
//! assert_eq!(2 + 2, 4);
//! ```
