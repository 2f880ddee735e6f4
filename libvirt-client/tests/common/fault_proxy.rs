//! An in-process fault-injecting proxy between our client and a real daemon's unix socket.
//!
//! Every packet is forwarded whole (both directions are framed with libvirt-proto's
//! [`Framer`]), except CALLs of the remote program to a chosen procedure: those the proxy
//! answers itself with a REPLY of status ERROR carrying the given `remote_error`, under the
//! call's serial, and the daemon never sees them. File descriptors are not carried (no test
//! through the proxy passes any).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use libvirt_client::libvirt_proto::generated::api::{ErrorDomain, ErrorNumber};
use libvirt_client::libvirt_proto::generated::remote;
use libvirt_client::libvirt_proto::{
    Framer, Header, MessageStatus, MessageType, Packet, RemoteError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

/// A running proxy; stops accepting when dropped (open connections end with the runtime or
/// when either side closes).
pub struct FaultProxy {
    path: PathBuf,
    hits: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listen on a fresh socket and forward to `daemon_socket`; calls of each procedure of
    /// `faults` (remote program) are answered with its error.
    pub fn start(
        daemon_socket: impl AsRef<Path>,
        faults: &[(remote::Procedure, RemoteError)],
    ) -> FaultProxy {
        let faults: Arc<Vec<(i32, RemoteError)>> =
            Arc::new(faults.iter().map(|(p, e)| (*p as i32, e.clone())).collect());
        let dir = tempfile::Builder::new()
            .prefix("vmwire-faultproxy-")
            .tempdir()
            .expect("proxy dir");
        let path = dir.path().join("sock");
        let listener = UnixListener::bind(&path).expect("bind proxy socket");
        let daemon = daemon_socket.as_ref().to_owned();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(up) = UnixStream::connect(&daemon).await else {
                    continue;
                };
                tokio::spawn(serve(client, up, faults.clone(), h.clone()));
            }
        });
        FaultProxy {
            path,
            hits,
            _dir: dir,
            accept,
        }
    }

    /// A `qemu+unix` URI through the proxy.
    pub fn qemu_uri(&self) -> String {
        format!("qemu+unix:///session?socket={}", self.path.display())
    }

    /// How many calls were answered with the fault so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// An error as a daemon would send it.
pub fn remote_error(code: ErrorNumber, domain: ErrorDomain, message: &str) -> RemoteError {
    RemoteError::new(code, domain, message)
}

async fn serve(
    client: UnixStream,
    up: UnixStream,
    faults: Arc<Vec<(i32, RemoteError)>>,
    hits: Arc<AtomicUsize>,
) {
    let (mut c_rd, mut c_wr) = client.into_split();
    let (mut u_rd, mut u_wr) = up.into_split();
    // Whole packets to the client, from the daemon or from the proxy.
    let (to_client, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            if c_wr.write_all(&p).await.is_err() {
                break;
            }
        }
    });
    let down_tx = to_client.clone();
    let down = tokio::spawn(async move {
        let mut f = Framer::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match u_rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            f.push(&buf[..n]);
            while let Ok(Some(p)) = f.next_packet() {
                let Ok(bytes) = p.to_vec() else { return };
                if down_tx.send(bytes).is_err() {
                    return;
                }
            }
            if f.is_failed() {
                break;
            }
        }
    });
    let mut f = Framer::new();
    let mut buf = vec![0u8; 64 * 1024];
    'up: loop {
        let n = match c_rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        f.push(&buf[..n]);
        while let Ok(Some(p)) = f.next_packet() {
            let h = p.header;
            let fault = faults.iter().find(|(p, _)| *p == h.procedure);
            if let (true, Some((_, error))) = (
                h.program == remote::PROGRAM && h.kind == MessageType::Call,
                fault,
            ) {
                hits.fetch_add(1, Ordering::SeqCst);
                let header = Header {
                    kind: MessageType::Reply,
                    status: MessageStatus::Error,
                    ..h
                };
                let mut body = Vec::new();
                error.encode(&mut body).expect("encode remote_error");
                let reply = Packet::new(header, body).to_vec().expect("encode reply");
                if to_client.send(reply).is_err() {
                    break 'up;
                }
                continue;
            }
            let Ok(bytes) = p.to_vec() else { break 'up };
            if u_wr.write_all(&bytes).await.is_err() {
                break 'up;
            }
        }
        if f.is_failed() {
            break;
        }
    }
    // The client left: close the daemon side (the daemon sees the connection end, as it
    // would without the proxy), and stop forwarding.
    drop(u_wr);
    down.abort();
    drop(to_client);
    let _ = writer.await;
}
