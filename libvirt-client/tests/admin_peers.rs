//! The admin program against the real peer daemon's admin socket. libvirtd accepts only its own
//! user there (it refuses even root), so the calls run in a child process of this test binary
//! started as the daemon's user; the parent checks the child's findings against what it sees
//! itself over the normal socket.
#![cfg(all(feature = "async", feature = "blocking"))]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use libvirt_client::libvirt_proto::generated::api::ErrorNumber;
use libvirt_client::{Client, ClientOptions};

fn admin_socket() -> PathBuf {
    common::endpoints()["libvirt"]["admin_socket"]
        .as_str()
        .expect("endpoints lack libvirt.admin_socket; run `cargo xtask peers start`")
        .into()
}

/// Child half of `admin_program_as_the_daemons_user`: one JSON line of findings on stdout.
#[tokio::test]
#[ignore = "run as the daemon's user by admin_program_as_the_daemons_user"]
async fn child_admin_calls() {
    let Some(path) = std::env::var_os("VMWIRE_ADMIN_SOCK") else {
        return;
    };
    let path = PathBuf::from(path);
    let admin = Client::connect_admin(&path, ClientOptions::default())
        .await
        .expect("admin open");
    let version = admin
        .admin_connect_get_lib_version()
        .await
        .expect("version");
    let servers = admin
        .admin_connect_list_servers(16, 0)
        .await
        .expect("list servers");
    let names: Vec<String> = servers.servers.iter().map(|s| s.name.clone()).collect();
    let srv = admin
        .admin_connect_lookup_server("admin".into(), 0)
        .await
        .expect("lookup the admin server");
    let clients = admin
        .admin_server_list_clients(srv.clone(), 64, 0)
        .await
        .expect("list clients");
    let pool = admin
        .admin_server_get_threadpool_parameters(srv, 0)
        .await
        .expect("threadpool parameters");
    let fields: Vec<String> = pool.iter().map(|p| p.field.clone()).collect();
    let missing = admin
        .admin_connect_lookup_server("no-such-server".into(), 0)
        .await
        .expect_err("no such server");
    // The blocking client opens the same way (on its own thread: no runtime inside).
    let blocking_names = tokio::task::spawn_blocking(move || {
        let b = libvirt_client::blocking::Client::connect_admin(&path, ClientOptions::default())
            .expect("blocking admin open");
        let r = b.admin_connect_list_servers(16, 0).expect("blocking list");
        r.servers.into_iter().map(|s| s.name).collect::<Vec<_>>()
    })
    .await
    .expect("join");
    println!(
        "{}",
        serde_json::json!({
            "version": version,
            "servers": names,
            "ret": servers.ret,
            "admin_clients": clients.clients.len(),
            "pool_fields": fields,
            "missing_code": missing.remote_code().map(|c| c.0),
            "blocking_servers": blocking_names,
        })
    );
}

#[tokio::test]
async fn admin_program_as_the_daemons_user() {
    let user = common::endpoints()["libvirt"]["user"]
        .as_str()
        .expect("endpoints lack libvirt.user")
        .to_owned();
    // A copy the daemon's user can run wherever the checkout lives (e.g. under /root).
    let exe = PathBuf::from(format!(
        "/var/tmp/vmwire-admin-child-{}",
        std::process::id()
    ));
    std::fs::copy(std::env::current_exe().expect("test binary"), &exe).expect("copy");
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = Command::new("runuser")
        .args(["-u", &user, "--"])
        .arg(&exe)
        .args(["--ignored", "--exact", "child_admin_calls", "--nocapture"])
        .env("VMWIRE_ADMIN_SOCK", admin_socket())
        .output();
    let _ = std::fs::remove_file(&exe);
    let out = out.expect("run the child as the daemon's user");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: serde_json::Value = stdout
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no findings from the child: {stdout}"));

    // The same daemon over its normal socket reports the same library version.
    let c = Client::connect(&common::uri("test_unix"))
        .await
        .expect("connect");
    assert_eq!(
        found["version"].as_u64(),
        Some(c.connect_get_lib_version().await.expect("version"))
    );
    // libvirtd runs two servers: the main one and the admin one.
    let servers: Vec<&str> = found["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    assert_eq!(servers.len() as u64, found["ret"].as_u64().unwrap());
    assert!(servers.contains(&"libvirtd"), "{servers:?}");
    assert!(servers.contains(&"admin"), "{servers:?}");
    assert_eq!(
        found["blocking_servers"].as_array().unwrap().len(),
        servers.len()
    );
    // The child's own admin connection is a client of the admin server.
    assert!(found["admin_clients"].as_u64().unwrap() >= 1, "{found}");
    let fields = found["pool_fields"].to_string();
    for f in ["minWorkers", "maxWorkers", "nWorkers"] {
        assert!(fields.contains(f), "{f} not in {fields}");
    }
    // typed from the daemon
    assert_eq!(
        found["missing_code"].as_i64(),
        Some(i64::from(ErrorNumber::ERR_NO_SERVER.0)),
        "{found}"
    );
}

/// Root is not the daemon's user: the daemon drops the connection, and the open fails with a
/// typed "connection closed" error instead of hanging.
#[tokio::test]
async fn admin_socket_refuses_another_user() {
    let err = match Client::connect_admin(&admin_socket(), ClientOptions::default()).await {
        Ok(_) => panic!("the daemon accepted root on its admin socket"),
        Err(e) => e,
    };
    assert!(err.is_closed(), "{err:?}");
    let blocking =
        libvirt_client::blocking::Client::connect_admin(&admin_socket(), ClientOptions::default());
    let err = match blocking {
        Ok(_) => panic!("the daemon accepted root on its admin socket (blocking)"),
        Err(e) => e,
    };
    assert!(err.is_closed(), "{err:?}");
}
