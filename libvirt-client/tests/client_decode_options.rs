//! Replies holding strings that are not UTF-8, from the real session daemon: a directory pool
//! whose folder holds a file named in Latin-1 (`caf\xe9.img`), as libvirt names the pool's
//! volumes after its files whatever their bytes.
//!
//! Strict decoding (the default) refuses the volume list with a typed error naming the field,
//! and the connection goes on; `ClientOptions::decode` with `xdr::Utf8::Lossy` reads the whole
//! list, the odd name with U+FFFD, as many volumes as `virsh vol-list` shows (which prints the
//! name as `caf\xff.img`). Both drivers.
#![cfg(all(feature = "async", feature = "blocking"))]

mod common;

use std::os::unix::ffi::OsStrExt;

use libvirt_client::libvirt_proto::generated::remote::RemoteNonnullStoragePool;
use libvirt_client::xdr;
use libvirt_client::{Client, ClientOptions, Error};

use common::PeerDir;

const LATIN1_NAME: &[u8] = b"caf\xe9.img";
const LOSSY_NAME: &str = "caf\u{fffd}.img";

/// A pool folder with `disk.raw` and the Latin-1-named file, owned by the daemon's user.
fn pool_dir() -> PeerDir {
    let dir = PeerDir::new("utf8pool");
    std::fs::write(dir.0.join("disk.raw"), vec![0u8; 4096]).unwrap();
    std::fs::write(
        dir.0.join(std::ffi::OsStr::from_bytes(LATIN1_NAME)),
        vec![0u8; 8192],
    )
    .unwrap();
    dir.chown(&dir.0);
    dir
}

fn pool_xml(name: &str, dir: &PeerDir) -> String {
    format!(
        "<pool type='dir'><name>{name}</name><target><path>{}</path></target></pool>",
        dir.0.display()
    )
}

fn lossy() -> ClientOptions {
    ClientOptions::default().decode_options(xdr::DecodeOptions::new().with_utf8(xdr::Utf8::Lossy))
}

/// The strict decode error: an XDR `InvalidUtf8` whose path ends at a volume's name.
fn assert_invalid_utf8(e: &Error) {
    match e {
        Error::Proto(libvirt_client::libvirt_proto::Error::Xdr {
            source: xdr::Error::InvalidUtf8 { path },
            ..
        }) => assert!(
            path.starts_with("remote_storage_pool_list_all_volumes_ret.vols[")
                && path.ends_with("].name"),
            "{path}"
        ),
        other => panic!("expected an InvalidUtf8 decode error, got {other:?}"),
    }
}

/// Volume names as `virsh vol-list` prints them (the first column after the header; virsh
/// escapes bytes that are not UTF-8, so its output is text).
fn virsh_volumes(uri: &str, pool: &str) -> Vec<String> {
    common::virsh(uri, &["vol-list", pool])
        .lines()
        .skip(2)
        .filter_map(|l| l.split("  ").map(str::trim).find(|c| !c.is_empty()))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_volume_list_with_a_latin1_file_name() {
    let uri = common::uri("qemu_unix");
    let dir = pool_dir();
    let name = common::unique_name("utf8pool");
    let strict = Client::connect(&uri).await.unwrap();
    let pool: RemoteNonnullStoragePool = strict
        .storage_pool_create_xml(pool_xml(&name, &dir), Default::default())
        .await
        .unwrap();

    let e = strict
        .storage_pool_list_all_volumes(pool.clone(), 1, 0)
        .await
        .unwrap_err();
    assert_invalid_utf8(&e);
    // Nothing else is disturbed: the connection answers the next call.
    assert!(strict.connect_get_lib_version().await.unwrap() > 0);

    let lossy_client = Client::connect_with(&uri, lossy()).await.unwrap();
    let ret = lossy_client
        .storage_pool_list_all_volumes(pool.clone(), 1, 0)
        .await
        .unwrap();
    let mut names: Vec<&str> = ret.vols.iter().map(|v| v.name.as_str()).collect();
    names.sort();
    assert_eq!(names, [LOSSY_NAME, "disk.raw"]);
    assert_eq!(ret.ret, 2);
    let virsh = virsh_volumes(&uri, &name);
    assert_eq!(virsh.len(), names.len(), "{virsh:?}");
    // virsh cannot show the byte either: its table prints an undecodable byte as `\xff`.
    assert!(virsh.iter().any(|n| n == "caf\\xff.img"), "{virsh:?}");
    // Keys are the files' paths: lossy too.
    assert!(ret
        .vols
        .iter()
        .any(|v| v.key.ends_with(LOSSY_NAME) && v.key.starts_with(&*dir.0.to_string_lossy())));

    strict.storage_pool_destroy(pool).await.unwrap();
}

#[test]
fn blocking_volume_list_with_a_latin1_file_name() {
    let uri = common::uri("qemu_tcp");
    let dir = pool_dir();
    let name = common::unique_name("utf8bpool");
    let strict = libvirt_client::blocking::Client::connect(&uri).unwrap();
    let pool = strict
        .storage_pool_create_xml(pool_xml(&name, &dir), Default::default())
        .unwrap();

    let e = strict
        .storage_pool_list_all_volumes(pool.clone(), 1, 0)
        .unwrap_err();
    assert_invalid_utf8(&e);
    assert!(strict.connect_get_lib_version().unwrap() > 0);

    let lossy_client = libvirt_client::blocking::Client::connect_with(&uri, lossy()).unwrap();
    let ret = lossy_client
        .storage_pool_list_all_volumes(pool.clone(), 1, 0)
        .unwrap();
    let mut names: Vec<&str> = ret.vols.iter().map(|v| v.name.as_str()).collect();
    names.sort();
    assert_eq!(names, [LOSSY_NAME, "disk.raw"]);
    // The lossy name is for display: looking it up finds nothing, with the daemon's own error.
    let e = lossy_client
        .storage_vol_lookup_by_name(pool.clone(), LOSSY_NAME.to_owned())
        .unwrap_err();
    assert!(e.remote().is_some(), "{e:?}");

    strict.storage_pool_destroy(pool).unwrap();
}

/// Events follow the same option (`TypedEvent::decode_with`, which the drivers call with
/// `ClientOptions::decode`): a lifecycle event for a domain named in Latin-1.
#[test]
fn events_decode_with_the_options() {
    use libvirt_client::libvirt_proto::generated::remote::{
        self, RemoteDomainEventCallbackLifecycleMsg, RemoteDomainEventLifecycleMsg,
        RemoteNonnullDomain,
    };
    use libvirt_client::libvirt_proto::ServerMessage;
    use libvirt_client::TypedEvent;

    let msg = RemoteDomainEventCallbackLifecycleMsg {
        callback_id: 3,
        msg: RemoteDomainEventLifecycleMsg {
            dom: RemoteNonnullDomain {
                name: "caf!".into(),
                uuid: [9; 16],
                id: 4,
            },
            event: 2,
            detail: 0,
        },
    };
    let mut body = xdr::to_bytes(&msg).unwrap();
    let at = body.iter().position(|&b| b == b'!').unwrap();
    body[at] = 0xe9;
    let m = ServerMessage {
        program: remote::PROGRAM,
        version: remote::VERSION,
        procedure: 318,
        callback_id: Some(3),
        route: None,
        body: body.into(),
    };
    let e = TypedEvent::decode(&m).unwrap_err();
    assert!(e.to_string().contains("UTF-8"), "{e}");
    let lossy = xdr::DecodeOptions::new().with_utf8(xdr::Utf8::Lossy);
    match TypedEvent::decode_with(&m, lossy).unwrap() {
        Some(TypedEvent::DomainEventCallbackLifecycle(ev)) => {
            assert_eq!(ev.msg.dom.name, "caf\u{fffd}");
            assert_eq!((ev.callback_id, ev.msg.event), (3, 2));
        }
        other => panic!("{other:?}"),
    }
}
