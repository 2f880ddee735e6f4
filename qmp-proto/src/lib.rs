//! Sans-IO QEMU Machine Protocol (QMP).
//!
//! The bottom of the QMP side of the stack: greeting, capability negotiation, line framing, command
//! ids and message classification, with typed commands and events generated from QEMU's QAPI
//! schema. It does no IO; `qmp-client` drives it over sockets.
//!
//! ```
//! assert_eq!(2 + 2, 4);
//! ```
