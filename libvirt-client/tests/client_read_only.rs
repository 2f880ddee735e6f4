//! Every read-only procedure of the remote program, called once against the test driver
//! (test:///default in the REAL peer libvirtd).
//!
//! "Read-only" is decided from libvirt's `@acl` annotations (only `read`, `getattr` or
//! `search_*` permissions; streams, event messages and event (de)registrations, open/close and
//! auth excluded; `REMOTE_PROC_DOMAIN_GET_PERF_EVENTS` is a plain read): the generator
//! (`cargo xtask codegen-client`) writes the list and one typed call per procedure into
//! `tests/generated/read_only_calls.rs`. "Implemented by the test driver" is decided by the
//! daemon: libvirt's public API layer answers `VIR_ERR_NO_SUPPORT` (3) before touching any
//! argument when the driver lacks the entry point; success, or an error whose code proves the
//! daemon decoded the arguments and the driver looked at them ([`UNDERSTOOD`]), means the test
//! driver implements it. Every call must come back as a reply we decode; none may break the
//! connection.
#![cfg(feature = "async")]

mod common;

#[path = "generated/read_only_calls.rs"]
mod read_only_calls;

use libvirt_client::libvirt_proto::generated::remote;
use libvirt_client::Client;

/// Daemon error codes that prove the daemon decoded the arguments and the driver (or
/// libvirt's API layer checking them) handled the call: `VIR_ERR_INVALID_ARG` (8),
/// `VIR_ERR_NO_DOMAIN` (42), `VIR_ERR_NO_NETWORK` (43), `VIR_ERR_NO_STORAGE_POOL` (49),
/// `VIR_ERR_NO_STORAGE_VOL` (50), `VIR_ERR_NO_NODE_DEVICE` (53), `VIR_ERR_NO_INTERFACE` (57),
/// `VIR_ERR_NO_DOMAIN_SNAPSHOT` (72), `VIR_ERR_NO_DOMAIN_METADATA` (80),
/// `VIR_ERR_OPERATION_UNSUPPORTED` (84, the driver refusing one mode of an entry point it has)
/// and `VIR_ERR_NO_DOMAIN_CHECKPOINT` (103). `VIR_ERR_NO_SUPPORT` (3) means the driver lacks
/// the entry point; `VIR_ERR_RPC` (39) "unknown procedure" that the daemon predates it; any
/// other error fails the test.
const UNDERSTOOD: [i32; 11] = [8, 42, 43, 49, 50, 53, 57, 72, 80, 84, 103];

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
    let mut unknown = Vec::new();
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
                let code = i32::from(remote.code);
                let message = remote.message.as_deref().unwrap_or("");
                if code == 3 {
                    unsupported.push(*name);
                } else if UNDERSTOOD.contains(&code) {
                    implemented.push(*name);
                } else if code == 39 && message.starts_with("unknown procedure") {
                    // VIR_ERR_RPC: a procedure newer than this daemon (libvirtd 9.0 vs the
                    // 11.3 protocol).
                    unknown.push(*name);
                } else {
                    // Anything else (e.g. VIR_ERR_RPC "Unable to decode message payload")
                    // means the daemon did not understand our arguments.
                    panic!(
                        "{name}: daemon error {code} does not prove the call was understood: {e}"
                    );
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
    eprintln!("unknown to this daemon: {unknown:?}");
    // The core read paths must succeed outright.
    for must in [
        "REMOTE_PROC_CONNECT_LIST_ALL_DOMAINS",
        "REMOTE_PROC_DOMAIN_GET_INFO",
        "REMOTE_PROC_DOMAIN_GET_XML_DESC",
        "REMOTE_PROC_CONNECT_GET_CAPABILITIES",
        "REMOTE_PROC_NODE_GET_INFO",
        "REMOTE_PROC_NETWORK_GET_XML_DESC",
        "REMOTE_PROC_STORAGE_POOL_GET_INFO",
        // Read-only although its name holds EVENT (perf events, not daemon events).
        "REMOTE_PROC_DOMAIN_GET_PERF_EVENTS",
    ] {
        assert!(
            results.iter().any(|(n, r)| *n == must && r.is_ok()),
            "{must}: {:?}",
            results.iter().find(|(n, _)| *n == must)
        );
    }
    // 88 succeed and 135 are implemented with libvirtd 9.0's test driver.
    assert!(ok >= 85, "only {ok} succeeded");
    assert!(implemented.len() >= 130, "{}", implemented.len());
    assert!(unknown.len() <= 4, "{unknown:?}");
    assert!(c.is_open());
    assert_eq!(c.version().await.unwrap().to_string(), "0.0.2");
}
