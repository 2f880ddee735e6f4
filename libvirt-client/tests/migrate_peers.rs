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
use libvirt_client::migrate::{self, MigrateOptions, Migration, Phase, Progress, Protocol};
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

/// Connect to A, then to B.
async fn connect_both() -> (Client, Client) {
    let a = Client::connect(&uri_a()).await.expect("connect A");
    let b = Client::connect(&uri_b()).await.expect("connect B");
    (a, b)
}

/// A fresh `tcp:` migration URI: a free local port.
fn tcp_uri() -> String {
    format!("tcp:127.0.0.1:{}", free_port())
}

/// A live migration to a fresh [`tcp_uri`] by `protocol`.
fn live_opts(protocol: Protocol) -> MigrateOptions {
    MigrateOptions::new(DomainMigrateFlags::LIVE)
        .uri(tcp_uri())
        .protocol(protocol)
}

/// A live migration to a fresh [`tcp_uri`] held to 1 MiB/s and polled every 100 ms: a
/// [`start_loaded_guest`] of [`BLOB_MIB`] takes seconds to move.
fn slow_opts() -> MigrateOptions {
    MigrateOptions::new(DomainMigrateFlags::LIVE)
        .uri(tcp_uri())
        .bandwidth_mib(1)
        .progress_interval(Duration::from_millis(100))
}

/// The state of `name` on `c` (`what`: the guest it should be) is `want`.
async fn assert_state(c: &Client, name: &str, what: &str, want: DomainState) {
    assert_eq!(state(c, name).await.expect(what), want, "{what}");
}

/// Prepare `dom`'s migration to `b` by `protocol` (the procedure family it asks for is the
/// one used): the destination's guest waits there, paused.
async fn prepare_paused_on_b(
    m: &Migration,
    b: &Client,
    dom: &RemoteNonnullDomain,
    opts: &MigrateOptions,
    protocol: Protocol,
) -> migrate::Prepared {
    let prepared = m.prepare(dom, opts).await.expect("prepare");
    assert_eq!(prepared.use_params, protocol == Protocol::Params);
    assert_state(b, &dom.name, "prepared guest on B", DomainState::PAUSED).await;
    prepared
}

/// The progress callback of the cancellation tests: records `p`; cancels once data is really
/// moving and much is left.
fn break_once_moving(seen: &mut Vec<Progress>, p: &Progress) -> ControlFlow<()> {
    seen.push(p.clone());
    if p.memory_processed.unwrap_or(0) > 512 * 1024 {
        ControlFlow::Break(())
    } else {
        ControlFlow::Continue(())
    }
}

/// A migration cancelled by [`break_once_moving`] was cancelled while much was left, and
/// its error is typed as a cancellation.
fn assert_cancelled_early(seen: &[Progress], err: &Error) {
    let last = seen.last().expect("progress was reported");
    assert!(
        last.data_remaining.unwrap_or(0) > 2 * 1024 * 1024,
        "cancelled too late to prove anything: {last:?}"
    );
    assert!(
        matches!(err, Error::MigrationCancelled { .. }),
        "not typed as cancelled: {err:?}"
    );
}

async fn live_migration(protocol: Protocol) {
    let _serial = SERIAL.lock().await;
    let (a, b) = connect_both().await;
    let mut ev_a = a
        .subscribe(Subscription::domain(None))
        .await
        .expect("events A");
    let mut ev_b = b
        .subscribe(Subscription::domain(None))
        .await
        .expect("events B");
    let (dom, _guard) = start_guest(&a, "mig").await;

    let opts = live_opts(protocol).progress_interval(Duration::from_millis(5));
    let mut seen: Vec<Progress> = Vec::new();
    let m = Migration::new(a.clone(), b.clone());
    // Step by step (what `run` does) to see which procedure family was used: both daemons
    // are libvirt 9.0, so Auto must pick the params procedures.
    let prepared = m.prepare(&dom, &opts).await.expect("prepare");
    assert_eq!(
        prepared.use_params,
        protocol != Protocol::Plain,
        "{protocol:?} used the wrong procedures"
    );
    let new = m
        .complete(&dom, &opts, prepared, &mut |p| {
            seen.push(p.clone());
            ControlFlow::Continue(())
        })
        .await
        .expect("migration A -> B");
    assert_eq!(new.name, dom.name);
    assert_eq!(new.uuid, dom.uuid);
    assert_state(&b, &dom.name, "guest on B", DomainState::RUNNING).await;
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
    // Let the deregistrations be answered before the connection goes: the runtime ends with
    // the test, and libvirtd 9.0 can crash when a client leaves mid-(de)registration.
    drop((ev_a, ev_b, m));
    a.close().await.unwrap();
    b.close().await.unwrap();
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
    let (a, b) = connect_both().await;
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
    let opts = live_opts(protocol).xmlin(xml);
    let err = Migration::new(a.clone(), b.clone())
        .run(&dom, &opts, |_| ControlFlow::Continue(()))
        .await
        .expect_err("destination must refuse");
    // It is B's Prepare3 that refused, not A's Begin3 (A accepts this XML).
    assert!(
        matches!(
            &err,
            Error::MigrationStep {
                phase: Phase::Prepare,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.migration_phase(), Some(Phase::Prepare));
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
    assert_state(&a, &dom.name, "guest on A", DomainState::RUNNING).await;
    assert!(wait_gone(&b, &dom.name, Duration::from_secs(5)).await);
    // The source is free for another migration: the job was released.
    let opts = live_opts(protocol);
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
async fn missing_migration_uri_cancels_prepared_guest(protocol: Protocol) {
    let _serial = SERIAL.lock().await;
    let (a, b) = connect_both().await;
    let (dom, _guard) = start_guest(&a, "mignouri").await;
    let opts = live_opts(protocol);
    let m = Migration::new(a.clone(), b.clone());
    let mut prepared = prepare_paused_on_b(&m, &b, &dom, &opts, protocol).await;
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
        matches!(
            &err,
            Error::Migration {
                phase: Phase::Prepare,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!called, "Perform ran without a URI");
    assert!(
        wait_gone(&b, &dom.name, Duration::from_secs(10)).await,
        "prepared guest left on B"
    );
    assert_state(&a, &dom.name, "guest on A", DomainState::RUNNING).await;
    let now = migrate::job_progress(&a, &dom).await.expect("job on A");
    assert_eq!(
        now.job_type,
        DomainJobType::NONE,
        "A's job not ended: {now:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_migration_uri_cancels_prepared_guest_params() {
    missing_migration_uri_cancels_prepared_guest(Protocol::Params).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_migration_uri_cancels_prepared_guest_plain_v3() {
    missing_migration_uri_cancels_prepared_guest(Protocol::Plain).await;
}

async fn perform_failure_is_preserved_and_cleaned_up(protocol: Protocol) {
    let _serial = SERIAL.lock().await;
    let (a, b) = connect_both().await;
    let (dom, _guard) = start_guest(&a, "migperf").await;
    let opts = live_opts(protocol);
    let m = Migration::new(a.clone(), b.clone());
    // The destination waits; it is there, paused.
    let mut prepared = prepare_paused_on_b(&m, &b, &dom, &opts, protocol).await;
    // Point the source somewhere nobody listens: Perform fails.
    let dead = tcp_uri();
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
    assert_eq!(err.migration_phase(), Some(Phase::Perform), "{err:?}");
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
    assert_state(&a, &dom.name, "guest on A", DomainState::RUNNING).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn perform_failure_is_preserved_and_cleaned_up_params() {
    perform_failure_is_preserved_and_cleaned_up(Protocol::Params).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn perform_failure_is_preserved_and_cleaned_up_plain_v3() {
    perform_failure_is_preserved_and_cleaned_up(Protocol::Plain).await;
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
    let (a, b) = connect_both().await;
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
    let (a, b) = connect_both().await;
    let (dom, _guard) = start_guest(&a, "migkill").await;
    let exe = std::env::current_exe().expect("test binary");
    let mut child = ChildGuard(
        std::process::Command::new(exe)
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
            .expect("spawn child"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
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
    assert_state(&b, &dom.name, "prepared guest on B", DomainState::PAUSED).await;
    // The child's Begin3 (with change protection) holds a migration job on A.
    let held = migrate::job_progress(&a, &dom).await.expect("job on A");
    assert_ne!(held.job_type, DomainJobType::NONE, "no job on A: {held:?}");
    drop(child);
    assert!(
        wait_gone(&b, &dom.name, Duration::from_secs(15)).await,
        "B did not destroy the prepared guest after the client died"
    );
    assert_state(&a, &dom.name, "guest on A", DomainState::RUNNING).await;
    // A released the dead client's migration job.
    assert!(
        wait_no_job(&a, &dom, Duration::from_secs(15)).await,
        "A kept the dead client's migration job"
    );
}

/// Kills and reaps the child when dropped (also when an assertion fails first).
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether `dom` has no job on `c` within `within`.
async fn wait_no_job(c: &Client, dom: &RemoteNonnullDomain, within: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < within {
        if let Ok(p) = migrate::job_progress(c, dom).await {
            if p.job_type == DomainJobType::NONE {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_to_peer_params() {
    let _serial = SERIAL.lock().await;
    let (a, b) = connect_both().await;
    let (dom, _guard) = start_guest(&a, "migp2p").await;
    for ms in [300, 450] {
        migrate::set_max_downtime(&a, &dom, ms)
            .await
            .expect("set downtime");
        assert_eq!(migrate::max_downtime(&a, &dom).await.expect("downtime"), ms);
    }
    for bytes in [64 << 20, 32 << 20] {
        migrate::set_compression_cache(&a, &dom, bytes)
            .await
            .expect("set compression cache");
        assert_eq!(
            migrate::compression_cache(&a, &dom)
                .await
                .expect("compression cache"),
            bytes
        );
    }
    migrate::set_max_speed(&a, &dom, 1000)
        .await
        .expect("set speed");
    assert_eq!(migrate::max_speed(&a, &dom).await.expect("speed"), 1000);
    let opts = live_opts(Protocol::Params);
    migrate::peer_to_peer(&a, &dom, &b_tcp_uri(), &opts, |_| ControlFlow::Continue(()))
        .await
        .expect("p2p migration");
    assert_state(&b, &dom.name, "guest on B", DomainState::RUNNING).await;
    assert!(wait_gone(&a, &dom.name, Duration::from_secs(10)).await);
}

/// Size of the non-zero memory of the guests that must migrate slowly.
const BLOB_MIB: usize = 8;

/// Cancel from the progress callback. The bandwidth comes from the migration's own option
/// (the `bandwidth` parameter, or plain v3's bandwidth argument): 1 MiB/s makes the 8 MiB of
/// data take 8 s; were it ignored, the migration would be over before the first progress poll
/// and the test would fail ("cancelled too late" or no error).
async fn cancel_from_progress_callback(protocol: Protocol) {
    let _serial = SERIAL.lock().await;
    let (a, b) = connect_both().await;
    let (dom, _guard, _blob) = start_loaded_guest(&a, "migcancel", BLOB_MIB).await;
    let opts = slow_opts().protocol(protocol);
    let mut seen: Vec<Progress> = Vec::new();
    let err = Migration::new(a.clone(), b.clone())
        .run(&dom, &opts, |p| break_once_moving(&mut seen, p))
        .await
        .expect_err("a cancelled migration must fail");
    assert_cancelled_early(&seen, &err);
    assert_eq!(err.migration_phase(), Some(Phase::Perform), "{err:?}");
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
    assert_state(&a, &dom.name, "guest on A", DomainState::RUNNING).await;
    assert!(
        wait_gone(&b, &dom.name, Duration::from_secs(10)).await,
        "prepared guest left on B"
    );
    // The source's job is over (Perform released it).
    let now = migrate::job_progress(&a, &dom).await.expect("job on A");
    assert_eq!(now.job_type, DomainJobType::NONE, "{now:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_from_progress_callback_params() {
    cancel_from_progress_callback(Protocol::Params).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_from_progress_callback_plain_v3() {
    cancel_from_progress_callback(Protocol::Plain).await;
}

/// The same cancellation when the source daemon runs the protocol (p2p).
#[tokio::test(flavor = "multi_thread")]
async fn cancel_peer_to_peer_from_progress_callback() {
    let _serial = SERIAL.lock().await;
    let (a, b) = connect_both().await;
    let (dom, _guard, _blob) = start_loaded_guest(&a, "migp2pcancel", BLOB_MIB).await;
    let opts = slow_opts().protocol(Protocol::Params);
    let mut seen: Vec<Progress> = Vec::new();
    let err = migrate::peer_to_peer(&a, &dom, &b_tcp_uri(), &opts, |p| {
        break_once_moving(&mut seen, p)
    })
    .await
    .expect_err("a cancelled p2p migration must fail");
    assert_cancelled_early(&seen, &err);
    assert_eq!(
        err.remote_code(),
        Some(ErrorNumber::ERR_OPERATION_ABORTED),
        "{err}"
    );
    assert_state(&a, &dom.name, "guest on A", DomainState::RUNNING).await;
    assert!(
        wait_gone(&b, &dom.name, Duration::from_secs(10)).await,
        "prepared guest left on B"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_to_peer_tunnelled() {
    let _serial = SERIAL.lock().await;
    let (a, b) = connect_both().await;
    let (dom, _guard) = start_guest(&a, "migtunnel").await;
    let flags = DomainMigrateFlags::LIVE | DomainMigrateFlags::TUNNELLED;
    // A migration URI makes no sense when the data goes through the daemons: refused here.
    let with_uri = MigrateOptions::new(flags).uri(tcp_uri());
    let e = migrate::peer_to_peer(&a, &dom, &b_tcp_uri(), &with_uri, |_| {
        ControlFlow::Continue(())
    })
    .await
    .expect_err("TUNNELLED with a URI");
    assert!(
        matches!(&e, Error::InvalidMigration { option, .. } if option == "uri"),
        "{e:?}"
    );
    let opts = MigrateOptions::new(flags).protocol(Protocol::Params);
    migrate::peer_to_peer(&a, &dom, &b_tcp_uri(), &opts, |_| ControlFlow::Continue(()))
        .await
        .expect("tunnelled p2p migration");
    assert_state(&b, &dom.name, "guest on B", DomainState::RUNNING).await;
    assert!(
        wait_gone(&a, &dom.name, Duration::from_secs(10)).await,
        "guest still on A"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bandwidth_option_is_honoured() {
    let _serial = SERIAL.lock().await;
    let (a, b) = connect_both().await;
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
        .uri(tcp_uri())
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
    assert_state(&b, &dom.name, "guest on B", DomainState::RUNNING).await;
}

/// Options the chosen procedures cannot honour are refused before Begin3: no migration job
/// is started on A (with change protection Begin3 would leave one), nothing appears on B.
#[tokio::test(flavor = "multi_thread")]
async fn invalid_options_refused_before_begin() {
    use libvirt_client::libvirt_proto::generated::remote::RemoteTypedParamValue;
    let _serial = SERIAL.lock().await;
    let (a, b) = connect_both().await;
    let (dom, _guard) = start_guest(&a, "miginval").await;
    let base = MigrateOptions::new(DomainMigrateFlags::LIVE).uri(tcp_uri());
    let cases = [
        (
            base.clone()
                .protocol(Protocol::Plain)
                .persist_xml(guest_xml(&dom.name)),
            "persist_xml",
        ),
        (
            base.clone().protocol(Protocol::Plain).param(
                migrate::param::MIGRATE_DISKS,
                RemoteTypedParamValue::String("vda".into()),
            ),
            migrate::param::MIGRATE_DISKS,
        ),
        (
            base.clone().progress_interval(Duration::ZERO),
            "progress_interval",
        ),
        (
            MigrateOptions::new(DomainMigrateFlags::LIVE | DomainMigrateFlags::PEER2PEER),
            "flags",
        ),
        (
            MigrateOptions::new(DomainMigrateFlags::LIVE | DomainMigrateFlags::TUNNELLED),
            "flags",
        ),
    ];
    let m = Migration::new(a.clone(), b.clone());
    for (opts, want) in cases {
        let err = m
            .run(&dom, &opts, |_| ControlFlow::Continue(()))
            .await
            .expect_err("must be refused");
        assert!(
            matches!(&err, Error::InvalidMigration { option, .. } if option == want),
            "{want}: {err:?}"
        );
        let job = migrate::job_progress(&a, &dom).await.expect("job on A");
        assert_eq!(job.job_type, DomainJobType::NONE, "{want}: Begin3 ran");
        let on_b = state(&b, &dom.name).await;
        assert_eq!(
            on_b.as_ref().err().and_then(Error::remote_code),
            Some(ErrorNumber::ERR_NO_DOMAIN),
            "{want}: {on_b:?}"
        );
    }
    // p2p: a zero interval and plain p2p with what it cannot carry.
    let zero = base.clone().progress_interval(Duration::ZERO);
    let err = migrate::peer_to_peer(&a, &dom, &b_tcp_uri(), &zero, |_| ControlFlow::Continue(()))
        .await
        .expect_err("zero interval");
    assert!(
        matches!(&err, Error::InvalidMigration { option, .. } if option == "progress_interval"),
        "{err:?}"
    );
    let plain = base
        .protocol(Protocol::Plain)
        .persist_xml(guest_xml(&dom.name));
    let err = migrate::peer_to_peer(
        &a,
        &dom,
        &b_tcp_uri(),
        &plain,
        |_| ControlFlow::Continue(()),
    )
    .await
    .expect_err("plain p2p with persist_xml");
    assert!(
        matches!(&err, Error::InvalidMigration { option, .. } if option == "persist_xml"),
        "{err:?}"
    );
    // The guest is untouched and still migrates.
    assert_state(&a, &dom.name, "guest on A", DomainState::RUNNING).await;
}

/// Destination XML (a changed description), a new name (dname) and, with the params
/// procedures, a persistent definition (persist_xml + PERSIST_DEST) on the SUCCESS path: all
/// read back on B.
async fn destination_xml_and_name(protocol: Protocol) {
    let _serial = SERIAL.lock().await;
    let (a, b) = connect_both().await;
    let (dom, _guard) = start_guest(&a, "migxml").await;
    let new_name = format!("{}-renamed", dom.name);
    let _guard_new = Guard(new_name.clone());
    let marker = format!("moved by vmwire {protocol:?}");
    let xml = a
        .domain_get_xml_desc(dom.clone(), DomainXMLFlags::MIGRATABLE)
        .await
        .expect("source XML");
    assert!(!xml.contains("<description>"), "{xml}");
    let with_desc = xml.replacen(
        "</name>",
        &format!("</name><description>{marker}</description>"),
        1,
    );
    let mut opts = live_opts(protocol)
        .dname(new_name.clone())
        .xmlin(with_desc.clone());
    let persist_marker = format!("persistent {marker}");
    if protocol == Protocol::Params {
        opts.flags |= DomainMigrateFlags::PERSIST_DEST;
        opts = opts.persist_xml(
            with_desc
                .replacen(
                    &format!("<name>{}</name>", dom.name),
                    &format!("<name>{new_name}</name>"),
                    1,
                )
                .replace(&marker, &persist_marker),
        );
    }
    let new = Migration::new(a.clone(), b.clone())
        .run(&dom, &opts, |_| ControlFlow::Continue(()))
        .await
        .expect("migration with destination XML and name");
    assert_eq!(new.name, new_name);
    assert_eq!(new.uuid, dom.uuid);
    assert_eq!(
        state(&b, &new_name).await.expect("renamed guest on B"),
        DomainState::RUNNING
    );
    let on_b = state(&b, &dom.name).await;
    assert_eq!(
        on_b.as_ref().err().and_then(Error::remote_code),
        Some(ErrorNumber::ERR_NO_DOMAIN),
        "old name on B: {on_b:?}"
    );
    let live = b
        .domain_get_xml_desc(new.clone(), DomainXMLFlags::empty())
        .await
        .expect("live XML on B");
    assert!(
        live.contains(&format!("<description>{marker}</description>")),
        "{live}"
    );
    let persistent = b
        .domain_is_persistent(new.clone())
        .await
        .expect("is persistent");
    if protocol == Protocol::Params {
        assert_eq!(persistent, 1, "PERSIST_DEST: not defined on B");
        let inactive = b
            .domain_get_xml_desc(new.clone(), DomainXMLFlags::INACTIVE)
            .await
            .expect("inactive XML on B");
        assert!(
            inactive.contains(&format!("<description>{persist_marker}</description>")),
            "{inactive}"
        );
    } else {
        assert_eq!(persistent, 0, "defined on B without PERSIST_DEST");
    }
    assert!(
        wait_gone(&a, &dom.name, Duration::from_secs(10)).await,
        "guest still on A"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn destination_xml_and_name_params() {
    destination_xml_and_name(Protocol::Params).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn destination_xml_and_name_plain_v3() {
    destination_xml_and_name(Protocol::Plain).await;
}

/// Dropping `run`'s future while Perform3 runs cancels the migration (the clean-up task):
/// with both connections kept open, B's prepared guest goes away and A's guest runs on with
/// its job released. Without the clean-up both would stay until the connections closed.
#[tokio::test(flavor = "multi_thread")]
async fn dropped_run_cancels_migration() {
    let _serial = SERIAL.lock().await;
    let (a, b) = connect_both().await;
    let (dom, _guard, _blob) = start_loaded_guest(&a, "migdrop", BLOB_MIB).await;
    let opts = slow_opts();
    let m = Migration::new(a.clone(), b.clone());
    let mut moving = false;
    let r = tokio::time::timeout(
        Duration::from_secs(3),
        m.run(&dom, &opts, |p| {
            moving |= p.memory_processed.unwrap_or(0) > 0;
            ControlFlow::Continue(())
        }),
    )
    .await;
    assert!(r.is_err(), "8 MiB at 1 MiB/s finished within 3 s: {r:?}");
    assert!(moving, "the migration was not under way when dropped");
    assert!(
        wait_gone(&b, &dom.name, Duration::from_secs(15)).await,
        "B kept the prepared guest of a dropped migration"
    );
    assert!(
        wait_no_job(&a, &dom, Duration::from_secs(15)).await,
        "A kept the job of a dropped migration"
    );
    assert_state(&a, &dom.name, "guest on A", DomainState::RUNNING).await;
    // Both connections are still the test's: the clean-up did it, not a closed connection.
    assert!(a.domain_lookup_by_name(dom.name.clone()).await.is_ok());
    drop(m);
}

fn socket_a() -> String {
    common::endpoints()["libvirt"]["socket"]
        .as_str()
        .expect("endpoints lack libvirt.socket")
        .to_owned()
}

fn socket_b() -> String {
    common::endpoints()["libvirt2"]["socket"]
        .as_str()
        .expect("endpoints lack libvirt2.socket")
        .to_owned()
}

use common::fault_proxy::{remote_error, FaultProxy};
use libvirt_client::libvirt_proto::generated::remote::Procedure;

/// Finish3 fails on B after a good Perform3 (B's answer is replaced by the proxy; B never
/// sees the call): Confirm3 with cancelled = 1 resumes the guest on A (it would stay paused
/// otherwise), the caller gets Finish's error (not Confirm's), and B's half-migrated guest,
/// never finished, dies with the connection that prepared it (AUTODESTROY).
async fn finish_failure_resumes_source(protocol: Protocol) {
    let _serial = SERIAL.lock().await;
    let proc = match protocol {
        Protocol::Plain => Procedure::DomainMigrateFinish3,
        _ => Procedure::DomainMigrateFinish3Params,
    };
    let proxy = FaultProxy::start(
        socket_b(),
        &[(
            proc,
            remote_error(
                ErrorNumber::ERR_INTERNAL_ERROR,
                ErrorDomain::QEMU,
                "injected Finish3 failure",
            ),
        )],
    );
    let (a, b) = connect_both().await;
    let b_faulty = Client::connect(&proxy.qemu_uri())
        .await
        .expect("connect B through the proxy");
    let (dom, _guard) = start_guest(&a, "migfinfail").await;
    let opts = live_opts(protocol);
    let err = Migration::new(a.clone(), b_faulty.clone())
        .run(&dom, &opts, |_| ControlFlow::Continue(()))
        .await
        .expect_err("Finish3 failed");
    assert_eq!(proxy.hits(), 1, "the fault was not hit exactly once");
    assert_eq!(err.migration_phase(), Some(Phase::Finish), "{err:?}");
    let remote = err.remote().expect("the daemon error");
    assert_eq!(remote.code, ErrorNumber::ERR_INTERNAL_ERROR, "{err}");
    assert_eq!(
        remote.message.as_deref(),
        Some("injected Finish3 failure"),
        "{err}"
    );
    // Confirm3(cancelled) resumed the guest Perform3 had paused at the end of the transfer.
    assert_state(&a, &dom.name, "guest on A", DomainState::RUNNING).await;
    assert!(
        wait_no_job(&a, &dom, Duration::from_secs(10)).await,
        "A's migration job not ended by Confirm3"
    );
    // B: never finished; gone once the connection that prepared it closes.
    drop(b_faulty);
    assert!(
        wait_gone(&b, &dom.name, Duration::from_secs(15)).await,
        "B kept the unfinished guest"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn finish_failure_resumes_source_params() {
    finish_failure_resumes_source(Protocol::Params).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn finish_failure_resumes_source_plain_v3() {
    finish_failure_resumes_source(Protocol::Plain).await;
}

/// Confirm3 fails on A after a good Finish3 (the proxy answers it; A never sees it): as
/// virDomainMigrateVersion3Full, the migration still succeeds with the destination's domain
/// (it runs on B), and the source copy stays paused ("probably left in 'paused' state on
/// source", libvirt warns).
#[tokio::test(flavor = "multi_thread")]
async fn confirm_failure_still_returns_destination_domain() {
    let _serial = SERIAL.lock().await;
    let proxy = FaultProxy::start(
        socket_a(),
        &[(
            Procedure::DomainMigrateConfirm3Params,
            remote_error(
                ErrorNumber::ERR_INTERNAL_ERROR,
                ErrorDomain::QEMU,
                "injected Confirm3 failure",
            ),
        )],
    );
    let (a, b) = connect_both().await;
    let a_faulty = Client::connect(&proxy.qemu_uri())
        .await
        .expect("connect A through the proxy");
    let (dom, _guard) = start_guest(&a, "migconffail").await;
    let opts = live_opts(Protocol::Params);
    let new = Migration::new(a_faulty.clone(), b.clone())
        .run(&dom, &opts, |_| ControlFlow::Continue(()))
        .await
        .expect("a failed Confirm3 does not fail the migration");
    assert_eq!(proxy.hits(), 1, "the fault was not hit exactly once");
    assert_eq!(new.name, dom.name);
    assert_state(&b, &dom.name, "guest on B", DomainState::RUNNING).await;
    assert_state(&a, &dom.name, "source copy on A", DomainState::PAUSED).await;
}

/// A Break whose abort the source refuses (the proxy answers DOMAIN_ABORT_JOB with an error)
/// is no cancellation: the migration's own failure (here: B's prepared guest destroyed while
/// the data flows, so Perform3 fails) comes back as Perform's error, not MigrationCancelled.
#[tokio::test(flavor = "multi_thread")]
async fn refused_abort_is_not_reported_as_cancelled() {
    let _serial = SERIAL.lock().await;
    let proxy = FaultProxy::start(
        socket_a(),
        &[(
            Procedure::DomainAbortJob,
            remote_error(
                ErrorNumber::ERR_OPERATION_INVALID,
                ErrorDomain::QEMU,
                "injected abort refusal",
            ),
        )],
    );
    let a = Client::connect(&uri_a()).await.expect("connect A");
    let a_faulty = Client::connect(&proxy.qemu_uri())
        .await
        .expect("connect A through the proxy");
    let b = Client::connect(&uri_b()).await.expect("connect B");
    let (dom, _guard, _blob) = start_loaded_guest(&a, "migabortref", BLOB_MIB).await;
    let opts = slow_opts().protocol(Protocol::Params);
    let name = dom.name.clone();
    let mut broke = false;
    let err = Migration::new(a_faulty.clone(), b.clone())
        .run(&dom, &opts, |p| {
            if p.memory_processed.unwrap_or(0) > 512 * 1024 && !broke {
                broke = true;
                // Make the migration fail by itself: destroy B's incoming guest.
                let name = name.clone();
                std::thread::spawn(move || {
                    let _ = std::process::Command::new("virsh")
                        .args(["-q", "-c", &uri_b(), "destroy", &name])
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .status();
                });
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        })
        .await
        .expect_err("the destination died");
    assert!(broke, "never asked to cancel");
    assert!(proxy.hits() >= 1, "no abort was tried");
    assert!(
        !matches!(err, Error::MigrationCancelled { .. }),
        "reported as cancelled although every abort was refused: {err:?}"
    );
    assert_eq!(err.migration_phase(), Some(Phase::Perform), "{err:?}");
    assert!(err.remote().is_some(), "{err:?}");
    assert_state(&a, &dom.name, "guest on A", DomainState::RUNNING).await;
}
