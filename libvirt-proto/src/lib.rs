//! Sans-IO libvirt RPC protocol.
//!
//! Sits on `xdr` and under `libvirt-client`: packet header and framing, the generated types and
//! procedures of the remote, qemu, lxc, admin and keepalive programs, and the connection state
//! machine (serials, pending calls, events, streams, keepalive). It never does IO: a driver feeds it
//! bytes and drains packets, events and timeouts.
//!
//! ```
//! assert_eq!(2 + 2, 4);
//! ```
