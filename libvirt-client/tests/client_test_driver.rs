//! The async and blocking clients against the REAL libvirtd's test driver (unix and tcp).

mod common;

use libvirt_client::libvirt_proto::generated::remote::procs;
use libvirt_client::Client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_open_version_list_unix_and_tcp() {
    for uri in [common::uri("test_unix"), common::uri("test_tcp")] {
        let c = Client::connect(&uri).await.unwrap();
        assert!(c.features().keepalive, "{uri}");
        let hv = c.call::<procs::ConnectGetVersion>(&()).await.unwrap();
        assert_eq!(hv.hv_ver, 2, "test driver hypervisor version");
        c.close().await.unwrap();
    }
}

#[cfg(feature = "blocking")]
#[test]
fn blocking_open_version() {
    for uri in [common::uri("test_unix"), common::uri("test_tcp")] {
        let c = libvirt_client::blocking::Client::connect(&uri).unwrap();
        let hv = c.call::<procs::ConnectGetVersion>(&()).unwrap();
        assert_eq!(hv.hv_ver, 2);
        c.close().unwrap();
    }
}
