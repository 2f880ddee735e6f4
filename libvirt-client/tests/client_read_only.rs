//! Every read-only procedure of the remote program, called once against the test driver
//! (test:///default in the REAL peer libvirtd).
//!
//! "Read-only" is decided from libvirt's `@acl` annotations (only `read`, `getattr` or
//! `search_*` permissions; streams, events, open/close and auth excluded): the generator
//! (`cargo xtask codegen-client`) writes the list and one typed call per procedure into
//! `tests/generated/read_only_calls.rs`. "Implemented by the test driver" is decided by the
//! daemon: libvirt's public API layer answers `VIR_ERR_NO_SUPPORT` (3) before touching any
//! argument when the driver lacks the entry point; any other outcome (success, or an error
//! from the driver about its arguments) means the test driver implements it. Every call must
//! come back as a reply we decode (a daemon error is fine); none may break the connection.

mod common;

#[path = "generated/read_only_calls.rs"]
mod read_only_calls;

use libvirt_client::libvirt_proto::generated::remote;
use libvirt_client::Client;

/// Objects of the test driver's default configuration used as arguments (the generated
/// calls use those their procedures take).
#[allow(dead_code)]
pub struct Fixtures {
    dom: remote::RemoteNonnullDomain,
    net: remote::RemoteNonnullNetwork,
    pool: remote::RemoteNonnullStoragePool,
    iface: remote::RemoteNonnullInterface,
    dev: remote::RemoteNonnullNodeDevice,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_only_procedure_of_the_test_driver() {
    let c = Client::connect(&common::uri("test_unix")).await.unwrap();
    let f = Fixtures {
        dom: c.lookup_domain("test").await.unwrap(),
        net: c.network_lookup_by_name("default".into()).await.unwrap(),
        pool: c
            .storage_pool_lookup_by_name("default-pool".into())
            .await
            .unwrap(),
        iface: c.interface_lookup_by_name("eth1".into()).await.unwrap(),
        dev: c
            .node_device_lookup_by_name("computer".into())
            .await
            .unwrap(),
    };
    let results = read_only_calls::call_all(&c, &f).await;
    assert_eq!(results.len(), read_only_calls::READ_ONLY.len());
    let mut implemented = Vec::new();
    let mut unsupported = Vec::new();
    let mut ok = 0;
    for (name, r) in &results {
        match r {
            Ok(()) => {
                ok += 1;
                implemented.push(*name);
            }
            Err(e) => {
                let remote = e
                    .remote()
                    .unwrap_or_else(|| panic!("{name}: not a daemon error: {e}"));
                if i32::from(remote.code) == 3 {
                    unsupported.push(*name);
                } else {
                    implemented.push(*name);
                }
            }
        }
    }
    eprintln!(
        "{} read-only procedures: {} implemented by the test driver ({ok} succeeded with \
         fixture/default arguments), {} not supported",
        results.len(),
        implemented.len(),
        unsupported.len()
    );
    eprintln!("implemented: {implemented:?}");
    eprintln!("not supported: {unsupported:?}");
    // The core read paths must succeed outright.
    for must in [
        "REMOTE_PROC_CONNECT_LIST_ALL_DOMAINS",
        "REMOTE_PROC_DOMAIN_GET_INFO",
        "REMOTE_PROC_DOMAIN_GET_XML_DESC",
        "REMOTE_PROC_CONNECT_GET_CAPABILITIES",
        "REMOTE_PROC_NODE_GET_INFO",
        "REMOTE_PROC_NETWORK_GET_XML_DESC",
        "REMOTE_PROC_STORAGE_POOL_GET_INFO",
    ] {
        assert!(
            results.iter().any(|(n, r)| *n == must && r.is_ok()),
            "{must}: {:?}",
            results.iter().find(|(n, _)| *n == must)
        );
    }
    assert!(implemented.len() >= 60, "{}", implemented.len());
    assert!(c.is_open());
    assert_eq!(c.version().await.unwrap().to_string(), "0.0.2");
}
