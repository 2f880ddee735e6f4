//! Live migration between the two real session daemons of `cargo xtask peers` (A: `libvirt`,
//! B: `libvirt2`), with tiny TCG guests and no disks.
#![cfg(feature = "async")]

mod common;

use std::io::BufRead;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use libvirt_client::events::{EventItem, Subscription};
use libvirt_client::libvirt_proto::generated::api::{
    DomainCreateFlags, DomainMigrateFlags, DomainState, DomainXMLFlags, ErrorNumber,
};
use libvirt_client::libvirt_proto::generated::remote::RemoteNonnullDomain;
use libvirt_client::migrate::{self, MigrateOptions, Migration, Progress, Protocol};
use libvirt_client::{Client, Error, TypedEvent};

/// One migration at a time: the machine has two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn uri_a() -> String {
    common::uri("qemu_unix")
}

fn uri_b() -> String {
    common::endpoints()["libvirt2"]["uris"]["qemu_unix"]
        .as_str()
        .expect("endpoints lack libvirt2.uris.qemu_unix; run `cargo xtask peers start`")
        .to_owned()
}

fn b_tcp_uri() -> String {
    common::endpoints()["libvirt2"]["uris"]["qemu_tcp"]
        .as_str()
        .expect("endpoints lack libvirt2.uris.qemu_tcp")
        .to_owned()
}

fn guest_xml(name: &str) -> String {
    format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='network'/></os>\
         <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot>\
         <on_crash>destroy</on_crash><devices>\
         <emulator>/usr/bin/qemu-system-x86_64</emulator>\
         <serial type='pty'/><console type='pty'/><memballoon model='none'/>\
         </devices></domain>"
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Destroys and undefines the guest on both daemons.
struct Guard(String);

impl Drop for Guard {
    fn drop(&mut self) {
        for uri in [uri_a(), uri_b()] {
            for cmd in ["destroy", "undefine"] {
                let _ = std::process::Command::new("virsh")
                    .args(["-q", "-c", &uri, cmd, &self.0])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }
}

async fn start_guest(a: &Client, prefix: &str) -> (RemoteNonnullDomain, Guard) {
    let name = common::unique_name(prefix);
    let guard = Guard(name.clone());
    let dom = a
        .domain_create_xml(guest_xml(&name), DomainCreateFlags::empty())
        .await
        .expect("start guest on A");
    (dom, guard)
}

async fn state(c: &Client, name: &str) -> Result<DomainState, Error> {
    let dom = c.domain_lookup_by_name(name.to_owned()).await?;
    Ok(DomainState(c.domain_get_state(dom, 0).await?.state))
}

async fn wait_gone(c: &Client, name: &str, within: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < within {
        match state(c, name).await {
            Err(e) if e.remote_code() == Some(ErrorNumber::ERR_NO_DOMAIN) => return true,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    false
}

/// Lifecycle (event, detail) pairs of `name` seen on `events` within `wait`.
async fn lifecycle(
    events: &mut libvirt_client::events::EventStream,
    name: &str,
    want: i32,
    wait: Duration,
) -> Vec<(i32, i32)> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(item)) = tokio::time::timeout_at(deadline, events.next()).await {
        if let Ok(EventItem::Event(TypedEvent::DomainEventCallbackLifecycle(m))) = item {
            if m.msg.dom.name == name {
                seen.push((m.msg.event, m.msg.detail));
                if m.msg.event == want {
                    break;
                }
            }
        }
    }
    seen
}

const EV_STARTED: i32 = 2;
const EV_RESUMED: i32 = 4;
const EV_STOPPED: i32 = 5;
const STOPPED_MIGRATED: i32 = 3;
const STARTED_MIGRATED: i32 = 1;

async fn live_migration(protocol: Protocol) {
    let _serial = SERIAL.lock().await;
    let a = Client::connect(&uri_a()).await.expect("connect A");
    let b = Client::connect(&uri_b()).await.expect("connect B");
    let mut ev_a = a
        .subscribe(Subscription::domain(None))
        .await
        .expect("events A");
    let mut ev_b = b
        .subscribe(Subscription::domain(None))
        .await
        .expect("events B");
    let (dom, _guard) = start_guest(&a, "mig").await;

    let opts = MigrateOptions::new(DomainMigrateFlags::LIVE)
        .uri(format!("tcp:127.0.0.1:{}", free_port()))
        .protocol(protocol)
        .progress_interval(Duration::from_millis(5));
    let mut seen: Vec<Progress> = Vec::new();
    let m = Migration::new(a.clone(), b.clone());
    let new = m
        .run(&dom, &opts, |p| {
            seen.push(p.clone());
            ControlFlow::Continue(())
        })
        .await
        .expect("migration A -> B");
    assert_eq!(new.name, dom.name);
    assert_eq!(new.uuid, dom.uuid);
    assert_eq!(
        state(&b, &dom.name).await.expect("guest on B"),
        DomainState::RUNNING
    );
    assert!(
        wait_gone(&a, &dom.name, Duration::from_secs(10)).await,
        "guest still on A"
    );
    assert!(!seen.is_empty(), "no progress reported during Perform");
    assert!(
        seen.iter().any(|p| p.time_elapsed_ms.is_some()),
        "progress without statistics: {seen:?}"
    );
    let on_a = lifecycle(&mut ev_a, &dom.name, EV_STOPPED, Duration::from_secs(10)).await;
    assert!(
        on_a.contains(&(EV_STOPPED, STOPPED_MIGRATED)),
        "A's lifecycle events: {on_a:?}"
    );
    let on_b = lifecycle(&mut ev_b, &dom.name, EV_RESUMED, Duration::from_secs(10)).await;
    assert!(
        on_b.contains(&(EV_STARTED, STARTED_MIGRATED)),
        "B's lifecycle events: {on_b:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn live_migration_params() {
    live_migration(Protocol::Auto).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn live_migration_plain_v3() {
    live_migration(Protocol::Plain).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn destination_refuses_bad_xml() {
    let _serial = SERIAL.lock().await;
    let a = Client::connect(&uri_a()).await.expect("connect A");
    let b = Client::connect(&uri_b()).await.expect("connect B");
    let (dom, _guard) = start_guest(&a, "migbadxml").await;
    // The source accepts it (same ABI); the destination cannot run this emulator.
    let xml = a
        .domain_get_xml_desc(dom.clone(), DomainXMLFlags::MIGRATABLE)
        .await
        .expect("source XML")
        .replace(
            "/usr/bin/qemu-system-x86_64",
            "/nonexistent/qemu-system-x86_64",
        );
    let opts = MigrateOptions::new(DomainMigrateFlags::LIVE)
        .uri(format!("tcp:127.0.0.1:{}", free_port()))
        .xmlin(xml);
    let err = Migration::new(a.clone(), b.clone())
        .run(&dom, &opts, |_| ControlFlow::Continue(()))
        .await
        .expect_err("destination must refuse");
    let remote = err
        .remote()
        .unwrap_or_else(|| panic!("not a daemon error: {err}"));
    assert!(
        remote
            .message
            .as_deref()
            .unwrap_or("")
            .contains("nonexistent"),
        "{err}"
    );
    assert_eq!(
        state(&a, &dom.name).await.expect("guest on A"),
        DomainState::RUNNING
    );
    assert!(wait_gone(&b, &dom.name, Duration::from_secs(5)).await);
    // The source is free for another migration: the job was released.
    let opts =
        MigrateOptions::new(DomainMigrateFlags::LIVE).uri(format!("tcp:127.0.0.1:{}", free_port()));
    Migration::new(a.clone(), b.clone())
        .run(&dom, &opts, |_| ControlFlow::Continue(()))
        .await
        .expect("migration after a refused one");
}

#[tokio::test(flavor = "multi_thread")]
async fn perform_failure_is_preserved_and_cleaned_up() {
    let _serial = SERIAL.lock().await;
    let a = Client::connect(&uri_a()).await.expect("connect A");
    let b = Client::connect(&uri_b()).await.expect("connect B");
    let (dom, _guard) = start_guest(&a, "migperf").await;
    let opts =
        MigrateOptions::new(DomainMigrateFlags::LIVE).uri(format!("tcp:127.0.0.1:{}", free_port()));
    let m = Migration::new(a.clone(), b.clone());
    let mut prepared = m.prepare(&dom, &opts).await.expect("prepare");
    // The destination waits; it is there, paused.
    assert_eq!(
        state(&b, &dom.name).await.expect("prepared guest on B"),
        DomainState::PAUSED
    );
    // Point the source somewhere nobody listens: Perform fails.
    let dead = format!("tcp:127.0.0.1:{}", free_port());
    prepared.uri = Some(dead.clone());
    prepared.params.retain(|p| p.field != migrate::param::URI);
    prepared.params.push(
        libvirt_client::libvirt_proto::generated::remote::RemoteTypedParam {
            field: migrate::param::URI.into(),
            value: libvirt_client::libvirt_proto::generated::remote::RemoteTypedParamValue::String(
                dead,
            ),
        },
    );
    let err = m
        .complete(&dom, &opts, prepared, &mut |_| ControlFlow::Continue(()))
        .await
        .expect_err("perform must fail");
    let msg = err.to_string();
    assert!(err.remote().is_some(), "{msg}");
    // The caller sees the source's (Perform's) error, not Finish's "cancelled" error.
    assert!(
        msg.contains("connect") || msg.contains("refused") || msg.contains("Failed"),
        "{msg}"
    );
    assert!(
        wait_gone(&b, &dom.name, Duration::from_secs(10)).await,
        "prepared guest left on B"
    );
    assert_eq!(
        state(&a, &dom.name).await.expect("guest on A"),
        DomainState::RUNNING
    );
}

/// Child half of `killed_client_autodestroys`: Begin + Prepare, report, then wait to be killed.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "run as a child process by killed_client_autodestroys"]
async fn child_prepare_and_hang() {
    let Ok(name) = std::env::var("VMWIRE_MIGRATE_CHILD") else {
        return;
    };
    let port: u16 = std::env::var("VMWIRE_MIGRATE_PORT")
        .unwrap()
        .parse()
        .unwrap();
    let a = Client::connect(&uri_a()).await.expect("connect A");
    let b = Client::connect(&uri_b()).await.expect("connect B");
    let dom = a.domain_lookup_by_name(name).await.expect("guest on A");
    let opts = MigrateOptions::new(DomainMigrateFlags::LIVE).uri(format!("tcp:127.0.0.1:{port}"));
    // Keep both connections open (a dropped Migration closes them: AUTODESTROY).
    let m = Migration::new(a, b);
    let _prepared = m.prepare(&dom, &opts).await.expect("prepare");
    println!("PREPARED");
    tokio::time::sleep(Duration::from_secs(120)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_client_autodestroys() {
    let _serial = SERIAL.lock().await;
    let a = Client::connect(&uri_a()).await.expect("connect A");
    let b = Client::connect(&uri_b()).await.expect("connect B");
    let (dom, _guard) = start_guest(&a, "migkill").await;
    let exe = std::env::current_exe().expect("test binary");
    let mut child = std::process::Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "child_prepare_and_hang",
            "--nocapture",
        ])
        .env("VMWIRE_MIGRATE_CHILD", &dom.name)
        .env("VMWIRE_MIGRATE_PORT", free_port().to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    // Keep draining the child's stdout until it dies (a closed pipe would kill it early).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("PREPARED") {
                let _ = tx.send(());
            }
        }
    });
    let prepared = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
        .await
        .expect("join");
    assert!(prepared.is_ok(), "child did not prepare");
    assert_eq!(
        state(&b, &dom.name).await.expect("prepared guest on B"),
        DomainState::PAUSED
    );
    child.kill().expect("kill child");
    let _ = child.wait();
    assert!(
        wait_gone(&b, &dom.name, Duration::from_secs(15)).await,
        "B did not destroy the prepared guest after the client died"
    );
    assert_eq!(
        state(&a, &dom.name).await.expect("guest on A"),
        DomainState::RUNNING
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_to_peer_params() {
    let _serial = SERIAL.lock().await;
    let a = Client::connect(&uri_a()).await.expect("connect A");
    let b = Client::connect(&uri_b()).await.expect("connect B");
    let (dom, _guard) = start_guest(&a, "migp2p").await;
    migrate::set_max_downtime(&a, &dom, 300)
        .await
        .expect("set downtime");
    migrate::set_max_speed(&a, &dom, 1000)
        .await
        .expect("set speed");
    assert_eq!(migrate::max_speed(&a, &dom).await.expect("speed"), 1000);
    let opts = MigrateOptions::new(DomainMigrateFlags::LIVE)
        .uri(format!("tcp:127.0.0.1:{}", free_port()))
        .protocol(Protocol::Params);
    migrate::peer_to_peer(&a, &dom, &b_tcp_uri(), &opts, |_| ControlFlow::Continue(()))
        .await
        .expect("p2p migration");
    assert_eq!(
        state(&b, &dom.name).await.expect("guest on B"),
        DomainState::RUNNING
    );
    assert!(wait_gone(&a, &dom.name, Duration::from_secs(10)).await);
}
