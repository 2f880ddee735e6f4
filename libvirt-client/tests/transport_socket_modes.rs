//! Socket choice for `qemu:///session` against the real peer daemon: libvirt's legacy
//! (`libvirt-sock`) and modular (`virtqemud-sock`) names in the user's runtime directory, with
//! `mode=legacy`, `mode=direct` and auto. Debian's libvirt 9.0 ships no modular daemons, so a
//! runtime directory of our own holds symlinks named as they would be, pointing at the peer
//! libvirtd's socket; what is checked is which name each mode opens.
#![cfg(all(feature = "async", feature = "blocking"))]

mod common;

use std::path::{Path, PathBuf};

use libvirt_client::transport::ConnectOptions;
use libvirt_client::uri::{LocalEnv, Uri};
use libvirt_client::{Client, ClientOptions, Error};

fn peer_socket() -> PathBuf {
    let uri = common::uri("qemu_unix");
    Uri::parse(&uri)
        .unwrap()
        .remote()
        .socket
        .clone()
        .expect("the peers' qemu_unix URI names its socket")
}

fn options(runtime_dir: &Path) -> ClientOptions {
    let mut t = ConnectOptions::default();
    // A non-root user's session: sockets come from the runtime directory.
    t.env = LocalEnv::new(false, runtime_dir.to_path_buf());
    ClientOptions::default().transport(t)
}

async fn open(uri: &str, dir: &Path) -> Result<Client, Error> {
    Client::connect_with(uri, options(dir)).await
}

fn missing(r: Result<Client, Error>, want: &Path) {
    match r {
        Err(Error::ConnectUnix { path, .. }) => assert_eq!(path, want),
        other => panic!("expected ConnectUnix {}: {other:?}", want.display()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_socket_modes() {
    let dir = common::PeerDir::new("rt");
    let (direct, legacy) = (dir.0.join("virtqemud-sock"), dir.0.join("libvirt-sock"));

    // Only the modular daemon's socket: direct and auto open it, legacy does not.
    std::os::unix::fs::symlink(peer_socket(), &direct).unwrap();
    for uri in ["qemu:///session?mode=direct", "qemu:///session"] {
        let c = open(uri, &dir.0).await.unwrap();
        assert!(c.version().await.is_ok(), "{uri}");
        c.close().await.unwrap();
    }
    missing(open("qemu:///session?mode=legacy", &dir.0).await, &legacy);

    // Only libvirtd's socket: legacy and auto open it, direct does not.
    std::fs::remove_file(&direct).unwrap();
    std::os::unix::fs::symlink(peer_socket(), &legacy).unwrap();
    for uri in ["qemu:///session?mode=legacy", "qemu:///session"] {
        let c = open(uri, &dir.0).await.unwrap();
        assert!(c.version().await.is_ok(), "{uri}");
        c.close().await.unwrap();
    }
    missing(open("qemu:///session?mode=direct", &dir.0).await, &direct);

    // The blocking driver picks the same way.
    let b = tokio::task::spawn_blocking({
        let d = dir.0.clone();
        move || libvirt_client::blocking::Client::connect_with("qemu:///session", options(&d))
    })
    .await
    .unwrap()
    .unwrap();
    assert!(b.version().is_ok());
    b.close().unwrap();
}
