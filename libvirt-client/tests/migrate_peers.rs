//! Live migration between the two real session daemons of `cargo xtask peers` (A: `libvirt`,
//! B: `libvirt2`), with tiny TCG guests and no disks.
#![cfg(feature = "async")]

mod common;

use std::io::BufRead;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use libvirt_client::events::{EventItem, Subscription};
use libvirt_client::libvirt_proto::generated::api::{
    DomainCreateFlags, DomainJobType, DomainMigrateFlags, DomainState, DomainXMLFlags, ErrorDomain,
    ErrorNumber,
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

/// A guest whose RAM holds `blob` (a file of non-zero bytes, loaded at 16 MiB by QEMU's
/// `loader` device): migrating it moves at least the blob's size, so a bandwidth limit of a
/// few MiB/s makes the migration last seconds. (A guest without an OS is almost all zero
/// pages, which QEMU sends as a few bytes each: it migrates in a blink whatever the limit.)
fn loaded_guest_xml(name: &str, blob: &std::path::Path) -> String {
    format!(
        "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\
         <name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='network'/></os>\
         <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot>\
         <on_crash>destroy</on_crash><devices>\
         <emulator>/usr/bin/qemu-system-x86_64</emulator>\
         <serial type='pty'/><console type='pty'/><memballoon model='none'/>\
         </devices><qemu:commandline><qemu:arg value='-device'/>\
         <qemu:arg value='loader,file={},addr=0x1000000,force-raw=on'/>\
         </qemu:commandline></domain>",
        blob.display()
    )
}

/// A world-readable file of `mib` MiB of pseudo-random bytes (both daemons' QEMUs read it, as
/// their own users), removed when dropped.
fn blob_file(mib: usize) -> tempfile::TempPath {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let mut f = tempfile::Builder::new()
        .prefix("vmwire-migblob-")
        .tempfile_in("/var/tmp")
        .expect("blob file");
    // xorshift64*: every 4 KiB page differs and none is zero (QEMU would skip zero pages).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for chunk in buf.chunks_exact_mut(8) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            chunk.copy_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        f.write_all(&buf).expect("write blob");
    }
    f.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .expect("chmod blob");
    f.into_temp_path()
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

/// Start a guest carrying `mib` MiB of non-zero memory (see [`loaded_guest_xml`]).
async fn start_loaded_guest(
    a: &Client,
    prefix: &str,
    mib: usize,
) -> (RemoteNonnullDomain, Guard, tempfile::TempPath) {
    let blob = blob_file(mib);
    let name = common::unique_name(prefix);
    let guard = Guard(name.clone());
    let dom = a
        .domain_create_xml(loaded_guest_xml(&name, &blob), DomainCreateFlags::empty())
        .await
        .expect("start loaded guest on A");
    (dom, guard, blob)
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

/// Prepare3 fails on the destination. The QEMU source supports change protection, so Begin3
/// started a job there that the orchestrator must end with Confirm3(cancelled), as libvirt
/// does: a second migration of the same guest proves the job is gone.
async fn destination_refuses_bad_xml(protocol: Protocol) {
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
        .protocol(protocol)
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
    let opts = MigrateOptions::new(DomainMigrateFlags::LIVE)
        .uri(format!("tcp:127.0.0.1:{}", free_port()))
        .protocol(protocol);
    Migration::new(a.clone(), b.clone())
        .run(&dom, &opts, |_| ControlFlow::Continue(()))
        .await
        .expect("migration after a refused one");
}

#[tokio::test(flavor = "multi_thread")]
async fn destination_refuses_bad_xml_params() {
    destination_refuses_bad_xml(Protocol::Params).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn destination_refuses_bad_xml_plain_v3() {
    destination_refuses_bad_xml(Protocol::Plain).await;
}

/// Prepare3 succeeded but no migration URI is known: as libvirt, no Perform3; Finish3 is
/// told cancelled (B drops its guest), Confirm3 cancelled (A's job ends, the guest runs on).
#[tokio::test(flavor = "multi_thread")]
async fn missing_migration_uri_cancels_prepared_guest() {
    let _serial = SERIAL.lock().await;
    let a = Client::connect(&uri_a()).await.expect("connect A");
    let b = Client::connect(&uri_b()).await.expect("connect B");
    let (dom, _guard) = start_guest(&a, "mignouri").await;
    let opts =
        MigrateOptions::new(DomainMigrateFlags::LIVE).uri(format!("tcp:127.0.0.1:{}", free_port()));
    let m = Migration::new(a.clone(), b.clone());
    let mut prepared = m.prepare(&dom, &opts).await.expect("prepare");
    assert_eq!(
        state(&b, &dom.name).await.expect("prepared guest on B"),
        DomainState::PAUSED
    );
    prepared.uri = None;
    let mut called = false;
    let err = m
        .complete(&dom, &opts, prepared, &mut |_| {
            called = true;
            ControlFlow::Continue(())
        })
        .await
        .expect_err("no URI: no migration");
    assert!(
        matches!(&err, Error::Migration { phase, .. } if phase == "prepare"),
        "{err:?}"
    );
    assert!(!called, "Perform ran without a URI");
    assert!(
        wait_gone(&b, &dom.name, Duration::from_secs(10)).await,
        "prepared guest left on B"
    );
    assert_eq!(
        state(&a, &dom.name).await.expect("guest on A"),
        DomainState::RUNNING
    );
    let now = migrate::job_progress(&a, &dom).await.expect("job on A");
    assert_eq!(
        now.job_type,
        DomainJobType::NONE,
        "A's job not ended: {now:?}"
    );
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
    // The caller sees the source's (Perform's) error, not Finish's "cancelled" one: libvirt
    // 9.0's QEMU driver opens the tcp: migration connection itself (virNetSocket), so the
    // refusal is an RPC-domain system error carrying the connect(2) errno.
    let remote = err
        .remote()
        .unwrap_or_else(|| panic!("not a daemon error: {err:?}"));
    assert_eq!(remote.code, ErrorNumber::ERR_SYSTEM_ERROR, "{err}");
    assert_eq!(remote.domain, ErrorDomain::RPC, "{err}");
    assert_eq!(
        std::io::Error::from_raw_os_error(remote.int1).kind(),
        std::io::ErrorKind::ConnectionRefused,
        "errno {} in {err}",
        remote.int1
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

/// Size of the non-zero memory of the guests that must migrate slowly.
const BLOB_MIB: usize = 8;

#[tokio::test(flavor = "multi_thread")]
async fn cancel_from_progress_callback() {
    let _serial = SERIAL.lock().await;
    let a = Client::connect(&uri_a()).await.expect("connect A");
    let b = Client::connect(&uri_b()).await.expect("connect B");
    let (dom, _guard, _blob) = start_loaded_guest(&a, "migcancel", BLOB_MIB).await;
    // The domain's own limit (no bandwidth parameter in the migration): 1 MiB/s makes the
    // 8 MiB of data take 8 s; unlimited it would be gone before the first progress poll.
    migrate::set_max_speed(&a, &dom, 1)
        .await
        .expect("set speed");
    let opts = MigrateOptions::new(DomainMigrateFlags::LIVE)
        .uri(format!("tcp:127.0.0.1:{}", free_port()))
        .progress_interval(Duration::from_millis(100));
    let mut seen: Vec<Progress> = Vec::new();
    let err = Migration::new(a.clone(), b.clone())
        .run(&dom, &opts, |p| {
            seen.push(p.clone());
            // Cancel once data is really moving and much is left.
            if p.memory_processed.unwrap_or(0) > 512 * 1024 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .await
        .expect_err("a cancelled migration must fail");
    let last = seen.last().expect("progress was reported");
    assert!(
        last.data_remaining.unwrap_or(0) > 2 * 1024 * 1024,
        "cancelled too late to prove anything: {last:?}"
    );
    assert!(
        matches!(err, Error::MigrationCancelled { .. }),
        "not typed as cancelled: {err:?}"
    );
    let remote = err.remote().expect("the daemon's error inside");
    assert_eq!(remote.code, ErrorNumber::ERR_OPERATION_ABORTED, "{err}");
    assert_eq!(remote.domain, ErrorDomain::QEMU, "{err}");
    // The callback is not called again after Break.
    assert_eq!(
        seen.iter()
            .filter(|p| p.memory_processed.unwrap_or(0) > 512 * 1024)
            .count(),
        1,
        "{seen:?}"
    );
    assert_eq!(
        state(&a, &dom.name).await.expect("guest on A"),
        DomainState::RUNNING
    );
    assert!(
        wait_gone(&b, &dom.name, Duration::from_secs(10)).await,
        "prepared guest left on B"
    );
    // The source's job is over (Perform released it).
    let now = migrate::job_progress(&a, &dom).await.expect("job on A");
    assert_eq!(now.job_type, DomainJobType::NONE, "{now:?}");
}

/// The same cancellation when the source daemon runs the protocol (p2p).
#[tokio::test(flavor = "multi_thread")]
async fn cancel_peer_to_peer_from_progress_callback() {
    let _serial = SERIAL.lock().await;
    let a = Client::connect(&uri_a()).await.expect("connect A");
    let b = Client::connect(&uri_b()).await.expect("connect B");
    let (dom, _guard, _blob) = start_loaded_guest(&a, "migp2pcancel", BLOB_MIB).await;
    let opts = MigrateOptions::new(DomainMigrateFlags::LIVE)
        .uri(format!("tcp:127.0.0.1:{}", free_port()))
        .bandwidth_mib(1)
        .protocol(Protocol::Params)
        .progress_interval(Duration::from_millis(100));
    let mut seen: Vec<Progress> = Vec::new();
    let err = migrate::peer_to_peer(&a, &dom, &b_tcp_uri(), &opts, |p| {
        seen.push(p.clone());
        if p.memory_processed.unwrap_or(0) > 512 * 1024 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .await
    .expect_err("a cancelled p2p migration must fail");
    let last = seen.last().expect("progress was reported");
    assert!(
        last.data_remaining.unwrap_or(0) > 2 * 1024 * 1024,
        "cancelled too late to prove anything: {last:?}"
    );
    assert!(
        matches!(err, Error::MigrationCancelled { .. }),
        "not typed as cancelled: {err:?}"
    );
    assert_eq!(
        err.remote_code(),
        Some(ErrorNumber::ERR_OPERATION_ABORTED),
        "{err}"
    );
    assert_eq!(
        state(&a, &dom.name).await.expect("guest on A"),
        DomainState::RUNNING
    );
    assert!(
        wait_gone(&b, &dom.name, Duration::from_secs(10)).await,
        "prepared guest left on B"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_to_peer_tunnelled() {
    let _serial = SERIAL.lock().await;
    let a = Client::connect(&uri_a()).await.expect("connect A");
    let b = Client::connect(&uri_b()).await.expect("connect B");
    let (dom, _guard) = start_guest(&a, "migtunnel").await;
    let flags = DomainMigrateFlags::LIVE | DomainMigrateFlags::TUNNELLED;
    // A migration URI makes no sense when the data goes through the daemons: refused here.
    let with_uri = MigrateOptions::new(flags).uri(format!("tcp:127.0.0.1:{}", free_port()));
    let e = migrate::peer_to_peer(&a, &dom, &b_tcp_uri(), &with_uri, |_| {
        ControlFlow::Continue(())
    })
    .await
    .expect_err("TUNNELLED with a URI");
    assert!(matches!(e, Error::Migration { .. }), "{e:?}");
    let opts = MigrateOptions::new(flags).protocol(Protocol::Params);
    migrate::peer_to_peer(&a, &dom, &b_tcp_uri(), &opts, |_| ControlFlow::Continue(()))
        .await
        .expect("tunnelled p2p migration");
    assert_eq!(
        state(&b, &dom.name).await.expect("guest on B"),
        DomainState::RUNNING
    );
    assert!(
        wait_gone(&a, &dom.name, Duration::from_secs(10)).await,
        "guest still on A"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bandwidth_option_is_honoured() {
    let _serial = SERIAL.lock().await;
    let a = Client::connect(&uri_a()).await.expect("connect A");
    let b = Client::connect(&uri_b()).await.expect("connect B");
    let (dom, _guard, _blob) = start_loaded_guest(&a, "migbw", BLOB_MIB).await;

    // Post-copy limit: its own value, set and read back live, beside the pre-copy one.
    migrate::set_max_speed(&a, &dom, 1000)
        .await
        .expect("set speed");
    for mib in [7, 13] {
        migrate::set_postcopy_max_speed(&a, &dom, mib)
            .await
            .expect("set post-copy speed");
        assert_eq!(
            migrate::postcopy_max_speed(&a, &dom)
                .await
                .expect("post-copy speed"),
            mib
        );
    }
    assert_eq!(migrate::max_speed(&a, &dom).await.expect("speed"), 1000);

    const LIMIT: u64 = 2;
    let opts = MigrateOptions::new(DomainMigrateFlags::LIVE)
        .uri(format!("tcp:127.0.0.1:{}", free_port()))
        .bandwidth_mib(LIMIT)
        .progress_interval(Duration::from_millis(100));
    let mut seen: Vec<Progress> = Vec::new();
    let new = Migration::new(a.clone(), b.clone())
        .run(&dom, &opts, |p| {
            seen.push(p.clone());
            ControlFlow::Continue(())
        })
        .await
        .expect("migration A -> B");
    let limit_bps = LIMIT * 1024 * 1024;
    // While it ran, QEMU's measured rate stayed near the limit (unlimited loopback does
    // hundreds of MiB/s).
    let rates: Vec<u64> = seen.iter().filter_map(|p| p.memory_bps).collect();
    assert!(!rates.is_empty(), "no rate reported: {seen:?}");
    assert!(
        rates.iter().all(|r| *r <= limit_bps * 3 / 2),
        "rate above the {LIMIT} MiB/s limit: {rates:?}"
    );
    // The measured whole job: the blob's bytes took their time at that rate.
    let done = migrate::completed_job_progress(&b, &new)
        .await
        .expect("completed job on B");
    let bps = done.memory_bps.expect("completed rate");
    assert!(bps > 0 && bps <= limit_bps * 3 / 2, "{done:?}");
    let min_ms = (BLOB_MIB as u64) * 1000 / LIMIT * 3 / 4;
    assert!(
        done.time_elapsed_ms.expect("elapsed") >= min_ms,
        "{BLOB_MIB} MiB at {LIMIT} MiB/s took less than {min_ms} ms: {done:?}"
    );
    assert_eq!(
        state(&b, &dom.name).await.expect("guest on B"),
        DomainState::RUNNING
    );
}
