//! Sans-IO XDR (RFC 4506) codec with serde support.
//!
//! This is the bottom of the stack: `libvirt-proto` encodes every libvirt RPC message with it.
//! It does no IO; it turns Rust values into XDR bytes and borrowed input bytes back into values,
//! enforcing declared maxima and never allocating more than the input can hold.
//!
//! ```
//! assert_eq!(2 + 2, 4);
//! ```
