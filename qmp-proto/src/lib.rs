//! Sans-IO QEMU Machine Protocol (QMP).
//!
//! The bottom of the QMP side of the stack: greeting, capability negotiation, line framing,
//! command ids, the 8-command in-flight window and message classification, plus typed commands
//! and events generated from QEMU's QAPI schema. It does no IO and owns no clock: `qmp-client`
//! drives a [`Session`] over unix/tcp sockets (async on tokio, or blocking on std), and anything
//! else that can move bytes (a libvirt monitor passthrough, a test) can drive it too.
//!
//! ```
//! use qmp_proto::{Output, Session};
//! use serde_json::json;
//!
//! let mut session = Session::default();
//! // Bytes from the server (two messages in one read: an early event, then the greeting).
//! session.handle_input(b"{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 5}}\n\
//!     {\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2, \"micro\": 0}, \"package\": \"\"}, \"capabilities\": []}}\n");
//! assert!(matches!(session.poll_output(), Some(Output::Event(e)) if e.event == "RESUME"));
//! assert!(matches!(session.poll_output(), Some(Output::Greeting(_))));
//! // The session negotiates by itself; write what it hands out.
//! let negotiation = session.poll_transmit().unwrap();
//! session.handle_input(b"{\"return\": {}, \"id\": 0}\n");
//! assert_eq!(session.poll_output(), Some(Output::Ready { oob: false }));
//!
//! let id = session.execute("query-status", None).unwrap();
//! let request = session.poll_transmit().unwrap();
//! assert_eq!(request.bytes, b"{\"execute\":\"query-status\",\"id\":1}\n");
//! session.handle_input(b"{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": 1}\n");
//! assert_eq!(
//!     session.poll_output(),
//!     Some(Output::Reply { id, result: Ok(json!({"status": "running", "running": true})) })
//! );
//! # let _ = negotiation;
//! ```

mod command;
mod error;
pub mod framer;
pub mod generated;
pub mod message;
pub mod qga;
pub mod session;

pub use command::{Command, Empty};
pub use error::Error;
pub use framer::{FrameStart, Framer, FramerConfig, DEFAULT_MAX_FRAME_LEN};
pub use message::{
    ErrorClass, Event, Greeting, Message, QmpError, Timestamp, Version, VersionTriple,
};
pub use session::{
    Cancelled, CommandId, Output, Session, SessionConfig, State, Transmit, DEFAULT_MAX_IN_FLIGHT,
};
