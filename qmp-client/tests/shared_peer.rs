//! The shared QEMU of `cargo xtask peers start` (others use it too: read-only queries, no quit).
#![cfg(feature = "async")]

mod common;

use qmp_client::{Client, ConnectOptions};
use std::time::Duration;

#[tokio::test]
async fn shared_qemu_greets_and_negotiates() {
    let ep = common::endpoints();
    let path = ep["qemu"]["qmp_socket"]
        .as_str()
        .expect("endpoints file lacks qemu.qmp_socket; run `cargo xtask peers start`");
    // QEMU serves one QMP client at a time: wait our turn if another test holds it.
    let o = ConnectOptions {
        greeting_timeout: Duration::from_secs(60),
        ..Default::default()
    };
    let c = Client::connect_unix(path, o)
        .await
        .expect("connect to the shared QEMU");
    assert!(c.greeting().version.qemu.major >= 7);
    let v = c.execute("query-version", None).await.unwrap();
    assert_eq!(v["qemu"]["major"], c.greeting().version.qemu.major);
    assert!(c.status().await.is_ok());
}
