//! A minimal vhost-user net backend: enough of the protocol (docs/interop/vhost-user.rst in
//! QEMU) to answer what QEMU asks while it realizes `-netdev vhost-user` at startup, before the
//! guest runs. It keeps no rings and maps no memory; it records every request it was sent.
//!
//! Wire format: every message is a 12-byte header of three little-endian u32 (request, flags,
//! payload size) and the payload. Flags hold the protocol version (1) in bits 0-1, bit 2 marks
//! a reply, bit 3 asks for an ack (only meaningful once REPLY_ACK is negotiated, which this
//! backend never offers). File descriptors ride along as SCM_RIGHTS; reading without a control
//! buffer lets the kernel close them.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Front-end requests this backend knows by name (vhost-user.rst, "Front-end message types").
pub const GET_FEATURES: u32 = 1;
/// Set the features the front-end acked.
pub const SET_FEATURES: u32 = 2;
/// The front-end claims the backend (sent once per vhost device, i.e. per queue pair).
pub const SET_OWNER: u32 = 3;
/// Eventfd the backend signals when it used buffers of a ring.
pub const SET_VRING_CALL: u32 = 13;
/// Eventfd the backend signals on a ring error.
pub const SET_VRING_ERR: u32 = 14;
/// Enable or disable a ring (QEMU disables the queue pairs the guest has not enabled yet).
pub const SET_VRING_ENABLE: u32 = 18;
/// Ask for the protocol feature bits.
pub const GET_PROTOCOL_FEATURES: u32 = 15;
/// Set the protocol feature bits the front-end acked.
pub const SET_PROTOCOL_FEATURES: u32 = 16;
/// Ask for the number of queues (with the MQ protocol feature).
pub const GET_QUEUE_NUM: u32 = 17;

/// Feature bit: the backend speaks the protocol-feature extension.
pub const F_PROTOCOL_FEATURES: u64 = 1 << 30;
/// virtio 1.0.
pub const F_VERSION_1: u64 = 1 << 32;
/// virtio-net: mergeable receive buffers.
pub const F_NET_MRG_RXBUF: u64 = 1 << 15;
/// virtio-net: multiqueue.
pub const F_NET_MQ: u64 = 1 << 22;
/// Protocol feature bit: multiple queues (GET_QUEUE_NUM is answered).
pub const PROTOCOL_F_MQ: u64 = 1 << 0;

const VERSION: u32 = 1;
const FLAG_REPLY: u32 = 1 << 2;
/// Larger than any message QEMU sends during start-up (the memory table is the largest).
const MAX_PAYLOAD: u32 = 64 << 10;

/// A listening backend serving one front-end connection on a thread.
pub struct VhostUserNet {
    requests: Arc<Mutex<Vec<u32>>>,
    errors: Arc<Mutex<Vec<String>>>,
    _thread: JoinHandle<()>,
}

impl VhostUserNet {
    /// Listen on `path`; offer `queue_pairs` queue pairs (the MQ protocol feature).
    pub fn listen(path: &Path, queue_pairs: u64) -> VhostUserNet {
        let listener = UnixListener::bind(path).expect("bind the vhost-user socket");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (r, e) = (requests.clone(), errors.clone());
        let thread = std::thread::spawn(move || {
            let result = listener
                .accept()
                .map_err(|err| format!("accept: {err}"))
                .and_then(|(conn, _)| serve(conn, queue_pairs, &r));
            if let Err(err) = result {
                eprintln!("vhost-user backend: {err}");
                e.lock().expect("lock").push(err);
            }
        });
        VhostUserNet {
            requests,
            errors,
            _thread: thread,
        }
    }

    /// The requests received so far, in order.
    pub fn requests(&self) -> Vec<u32> {
        self.requests.lock().expect("lock").clone()
    }

    /// Protocol errors seen (a malformed message, a request needing an answer we cannot give).
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().expect("lock").clone()
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

/// Serve one connection until the front-end closes it.
fn serve(mut conn: UnixStream, queue_pairs: u64, seen: &Mutex<Vec<u32>>) -> Result<(), String> {
    let features = F_PROTOCOL_FEATURES
        | F_VERSION_1
        | F_NET_MRG_RXBUF
        | if queue_pairs > 1 { F_NET_MQ } else { 0 };
    loop {
        let mut header = [0u8; 12];
        match conn.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(format!("read header: {e}")),
        }
        let (request, flags, size) = (u32_at(&header, 0), u32_at(&header, 4), u32_at(&header, 8));
        if flags & 3 != VERSION {
            return Err(format!(
                "request {request}: version {} in flags {flags:#x}",
                flags & 3
            ));
        }
        if size > MAX_PAYLOAD {
            return Err(format!("request {request}: payload of {size} bytes"));
        }
        let mut payload = vec![0u8; size as usize];
        conn.read_exact(&mut payload)
            .map_err(|e| format!("read payload of request {request}: {e}"))?;
        seen.lock().expect("lock").push(request);
        let answer = match request {
            GET_FEATURES => Some(features),
            GET_PROTOCOL_FEATURES => Some(PROTOCOL_F_MQ),
            GET_QUEUE_NUM => Some(queue_pairs),
            // QEMU expects no reply to these (no REPLY_ACK negotiated)
            SET_FEATURES
            | SET_OWNER
            | SET_VRING_CALL
            | SET_VRING_ERR
            | SET_VRING_ENABLE
            | SET_PROTOCOL_FEATURES => None,
            other => return Err(format!("unexpected request {other} at start-up")),
        };
        if let Some(v) = answer {
            let mut reply = Vec::with_capacity(20);
            reply.extend_from_slice(&request.to_le_bytes());
            reply.extend_from_slice(&(VERSION | FLAG_REPLY).to_le_bytes());
            reply.extend_from_slice(&8u32.to_le_bytes());
            reply.extend_from_slice(&v.to_le_bytes());
            conn.write_all(&reply)
                .map_err(|e| format!("reply to request {request}: {e}"))?;
        }
    }
}
