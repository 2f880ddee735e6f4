//! The `virsh` example (examples/virsh.rs) against the REAL virsh (path from the peers'
//! endpoints file) on the peer libvirtd: same stdout, stderr and exit status for `version`,
//! `list`, `dominfo`, `domstate`, `dumpxml`, the lifecycle commands and their errors; `event
//! --all --loop --timeout 3` printing lifecycle events while another connection suspends and
//! resumes a domain; `qemu-monitor-command` on a tiny TCG guest of `qemu:///session`.
//!
//! The example is run as a process. `cargo test` builds examples next to the test binaries
//! (`<target>/<profile>/examples/virsh`); when that binary is missing or older than its source
//! (e.g. `cargo test --test example_virsh` alone) it is built first with the features this
//! test was built with, so cargo finds it up to date in the usual case.

#![cfg(feature = "async")]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The tests of this file share the test driver's state (they define domains, suspend them):
/// run them one at a time so that `list --all` comparisons see a stable set.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// How long any one command may take on a loaded machine before the test fails (no hangs).
const PROCESS_LIMIT: Duration = Duration::from_secs(120);

/// The example binary, built if needed.
fn example() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let me = std::env::current_exe().expect("test binary path");
        // <target>/<profile>/deps/example_virsh-HASH
        let profile_dir = me
            .parent()
            .and_then(Path::parent)
            .expect("test binary lives in <target>/<profile>/deps");
        let bin = profile_dir.join("examples").join("virsh");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/virsh.rs");
        let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let fresh = matches!((mtime(&bin), mtime(&src)), (Some(b), Some(s)) if b >= s);
        if !fresh {
            build_example(profile_dir);
        }
        assert!(bin.exists(), "{} was not built", bin.display());
        bin
    })
}

fn build_example(profile_dir: &Path) {
    let target_dir = profile_dir.parent().expect("<target>");
    let mut features = Vec::new();
    if cfg!(feature = "async") {
        features.push("async");
    }
    if cfg!(feature = "blocking") {
        features.push("blocking");
    }
    if cfg!(feature = "xml") {
        features.push("xml");
    }
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "-q", "-p", "libvirt-client", "--example", "virsh"])
        .arg("--target-dir")
        .arg(target_dir)
        .args(["--no-default-features", "--features", &features.join(",")])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some(p) => {
            cmd.args(["--profile", p]);
        }
    }
    let st = cmd.status().expect("run cargo build --example virsh");
    assert!(st.success(), "building the virsh example failed: {st}");
}

/// Run `program args`, failing the test if it runs longer than [`PROCESS_LIMIT`].
fn run(program: &Path, args: &[&str]) -> Output {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let id = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(PROCESS_LIMIT) {
        Ok(out) => out.expect("wait for the process"),
        Err(_) => {
            let _ = Command::new("kill").arg(id.to_string()).status();
            panic!(
                "{} {args:?} did not finish in {PROCESS_LIMIT:?}",
                program.display()
            );
        }
    }
}

fn virsh_bin() -> PathBuf {
    PathBuf::from(
        common::endpoints()["virsh"]
            .as_str()
            .unwrap_or("/usr/bin/virsh"),
    )
}

/// Run the example with `-c uri args`.
fn ours(uri: &str, args: &[&str]) -> Output {
    let mut all = vec!["-c", uri];
    all.extend_from_slice(args);
    run(example(), &all)
}

/// Run the real virsh with `-c uri args`.
fn theirs(uri: &str, args: &[&str]) -> Output {
    let mut all = vec!["-c", uri];
    all.extend_from_slice(args);
    run(&virsh_bin(), &all)
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("UTF-8 output")
}

/// (exit code, stdout, stderr), stdout passed through `normalise`.
type Run = (Option<i32>, String, String);

fn outcome(o: &Output, normalise: fn(&str) -> String) -> Run {
    (
        o.status.code(),
        normalise(&text(&o.stdout)),
        text(&o.stderr),
    )
}

fn same(s: &str) -> String {
    s.to_owned()
}

/// Both programs give the same exit code, stdout (after `normalise`) and stderr for `args`.
/// Other test suites share the daemon and define/undefine their own domains at any moment, so
/// one differing pair of runs is retried (up to 5 pairs); a real difference persists.
fn assert_same(uri: &str, args: &[&str], normalise: fn(&str) -> String) -> Run {
    let mut last = None;
    for _ in 0..5 {
        let a = outcome(&ours(uri, args), normalise);
        let b = outcome(&theirs(uri, args), normalise);
        if a == b {
            return a;
        }
        last = Some((a, b));
        std::thread::sleep(Duration::from_millis(300));
    }
    let (a, b) = last.expect("at least one run");
    panic!(
        "`virsh {args:?}` differs:\n--- example (exit {:?})\n{}{}\n--- virsh (exit {:?})\n{}{}",
        a.0, a.1, a.2, b.0, b.1, b.2
    );
}

/// The test driver's CPU time grows with the wall clock between the two runs: its value is
/// replaced, the line itself must be there in both.
fn without_cpu_time(s: &str) -> String {
    s.lines()
        .map(|l| {
            if l.starts_with("CPU time:") {
                "CPU time:       <t>".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + if s.ends_with('\n') { "\n" } else { "" }
}

fn test_uri() -> String {
    common::uri("test_unix")
}

/// A persistent domain of our own (the shared `test` domain is left alone: other suites compare
/// its state), defined through the library on a connection that stays open for the whole test:
/// the daemon's `test:///default` state lives only while some connection holds it, so domains
/// defined by short-lived processes vanish with them. Destroyed and undefined on drop.
struct TempDomain {
    rt: tokio::runtime::Runtime,
    client: libvirt_client::Client,
    dom: libvirt_client::Domain,
    name: String,
}

impl TempDomain {
    fn define(uri: &str, xml: impl FnOnce(&str) -> String) -> TempDomain {
        let name = common::unique_name("virsh-ex");
        // A worker thread keeps the connection served (keepalive) between our calls.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let client = rt
            .block_on(libvirt_client::Client::connect(uri))
            .unwrap_or_else(|e| panic!("connect {uri}: {e}; run `cargo xtask peers start`"));
        let dom = rt
            .block_on(client.define_xml(&xml(&name)))
            .expect("define the domain");
        TempDomain {
            rt,
            client,
            dom,
            name,
        }
    }
}

impl Drop for TempDomain {
    fn drop(&mut self) {
        let _ = self.rt.block_on(self.client.destroy(&self.dom));
        let _ = self
            .rt
            .block_on(self.client.undefine(&self.dom, Default::default()));
    }
}

fn test_domain_xml(name: &str) -> String {
    format!(
        "<domain type='test'><name>{name}</name><memory unit='MiB'>64</memory>\
         <vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>"
    )
}

#[test]
fn version_lines_match_virsh() {
    let _g = serial();
    let uri = test_uri();
    let a = ours(&uri, &["version", "--daemon"]);
    let b = theirs(&uri, &["version", "--daemon"]);
    assert!(a.status.success(), "{}", text(&a.stderr));
    assert!(b.status.success(), "{}", text(&b.stderr));
    let (a, b) = (text(&a.stdout), text(&b.stdout));
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    assert_eq!(la.len(), lb.len(), "ours:\n{a}\nvirsh:\n{b}");
    // Same labels on every line, in the same order.
    for (x, y) in la.iter().zip(&lb) {
        assert_eq!(
            x.split(':').next(),
            y.split(':').next(),
            "ours:\n{a}\nvirsh:\n{b}"
        );
    }
    // What the daemon reports is identical: hypervisor type and version, daemon version.
    let line = |ls: &[&str], label: &str| -> String {
        ls.iter()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label} line"))
            .to_string()
    };
    assert_eq!(
        line(&la, "Running hypervisor:"),
        line(&lb, "Running hypervisor:")
    );
    assert_eq!(
        line(&la, "Running against daemon:"),
        line(&lb, "Running against daemon:")
    );
    // virsh's "Using API" is its local libvirt.so; the example links none and reports the
    // daemon's libvirt there: "<type> <daemon version>".
    let daemon = line(&lb, "Running against daemon:")
        .trim_start_matches("Running against daemon:")
        .trim()
        .to_owned();
    let kind = line(&lb, "Using API:")
        .trim_start_matches("Using API:")
        .split_whitespace()
        .next()
        .expect("API type")
        .to_owned();
    assert_eq!(
        line(&la, "Using API:"),
        format!("Using API: {kind} {daemon}")
    );
    // The library lines name this crate.
    assert!(
        line(&la, "Using library:").contains("libvirt-client"),
        "{a}"
    );
    // Both end with virsh's empty line.
    assert!(a.ends_with("\n\n") && b.ends_with("\n\n"));
}

#[test]
fn list_dominfo_domstate_dumpxml_match_virsh() {
    let _g = serial();
    let uri = test_uri();
    // An inactive domain too, so that both table sections and the "-" id appear.
    let dom = TempDomain::define(&uri, test_domain_xml);
    let (code, out, _) = assert_same(&uri, &["list", "--all"], same);
    assert_eq!(code, Some(0));
    assert!(out.contains(&dom.name) && out.contains(" test "), "{out}");
    assert_same(&uri, &["list"], same);
    assert_same(&uri, &["list", "--inactive"], same);
    assert_same(&uri, &["list", "--all", "--name"], same);
    assert_same(&uri, &["list", "--all", "--uuid", "--name"], same);
    assert_same(&uri, &["-q", "list", "--all"], same);

    for name in ["test", dom.name.as_str()] {
        let (code, out, _) = assert_same(&uri, &["dominfo", name], without_cpu_time);
        assert_eq!(code, Some(0));
        assert!(out.contains(&format!("Name:           {name}\n")), "{out}");
        assert_same(&uri, &["domstate", name], same);
        assert_same(&uri, &["domstate", "--reason", name], same);
        let (_, xml, _) = assert_same(&uri, &["dumpxml", name], same);
        assert!(xml.starts_with("<domain type='test'"), "{xml}");
        assert_same(&uri, &["dumpxml", "--inactive", name], same);
    }
    // By UUID as well.
    let uuid = text(&theirs(&uri, &["domuuid", "test"]).stdout);
    assert_same(&uri, &["domstate", uuid.trim()], same);
}

#[test]
fn errors_match_virsh_and_exit_1() {
    let _g = serial();
    let uri = test_uri();
    let missing = common::unique_name("no-such-domain");
    for cmd in ["dominfo", "domstate", "dumpxml", "suspend", "start"] {
        let (code, _, err) = assert_same(&uri, &[cmd, &missing], same);
        assert_eq!(code, Some(1), "{cmd}");
        assert_eq!(err, format!("error: failed to get domain '{missing}'\n"));
    }
    // The daemon's refusal, after virsh's own context line.
    let dom = TempDomain::define(&uri, test_domain_xml);
    let (code, _, err) = assert_same(&uri, &["suspend", &dom.name], same);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with(&format!(
            "error: Failed to suspend domain '{}'\nerror: ",
            dom.name
        )),
        "{err}"
    );
    // Unknown command, missing argument, unreachable daemon: exit 1, `error: ` on stderr.
    let o = ours(&uri, &["frobnicate"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(text(&o.stderr), "error: unknown command: 'frobnicate'\n");
    let o = ours(&uri, &["dominfo"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).starts_with("error: "),
        "{}",
        text(&o.stderr)
    );
    let gone = tempfile::tempdir().expect("temp dir");
    let bad = format!(
        "test+unix:///default?socket={}",
        gone.path().join("nothing-here").display()
    );
    let o = ours(&bad, &["list"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.starts_with("error: failed to connect to the hypervisor\nerror: "),
        "{err}"
    );
    assert!(err.contains("nothing-here"), "{err}");
}

/// Lines read from a child's stdout as they arrive.
fn line_reader(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn event_loop_prints_lifecycle_events_while_another_connection_acts() {
    let _g = serial();
    let uri = test_uri();
    let dom = TempDomain::define(&uri, test_domain_xml);
    let o = ours(&uri, &["start", &dom.name]);
    assert_eq!(
        (o.status.code(), text(&o.stdout)),
        (Some(0), format!("Domain '{}' started\n\n", dom.name)),
        "{}",
        text(&o.stderr)
    );

    let args = ["-c", &uri, "event", "--all", "--loop", "--timeout", "3"];
    // The real virsh listens too (started first, so that it is most likely registered before
    // the first suspend): its lines are the reference for ours.
    let mut reference = Command::new(virsh_bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn virsh event");
    std::thread::sleep(Duration::from_millis(500));
    let mut ev = Command::new(example())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the example's event loop");
    let lines = line_reader(&mut ev);
    let suspended = format!(
        "event 'lifecycle' for domain '{}': Suspended Paused",
        dom.name
    );
    let resumed = format!(
        "event 'lifecycle' for domain '{}': Resumed Unpaused",
        dom.name
    );

    // The event process needs a moment to connect and register; it is not observable from
    // outside, so suspend + resume (from other connections) until the resume shows up. Its
    // 3 s timeout counts from the registration, so the pairs after that land inside it.
    // Registration can land between a suspend and its resume, so wait for a whole pair: a
    // suspend seen, then a resume after it.
    let pair = |seen: &[String]| {
        seen.iter()
            .position(|l| *l == suspended)
            .is_some_and(|s| seen[s..].contains(&resumed))
    };
    let mut seen = Vec::new();
    let start = Instant::now();
    while !pair(&seen) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no lifecycle events in 60 s; got {seen:?}"
        );
        for (cmd, done) in [("suspend", "suspended"), ("resume", "resumed")] {
            let o = ours(&uri, &[cmd, &dom.name]);
            assert_eq!(
                text(&o.stdout),
                format!("Domain '{}' {done}\n\n", dom.name),
                "{}",
                text(&o.stderr)
            );
        }
        while let Ok(l) = lines.recv_timeout(Duration::from_millis(300)) {
            seen.push(l);
        }
    }
    // Then the loop times out by itself (3 s after registration) and counts.
    let until = Instant::now() + PROCESS_LIMIT;
    loop {
        match lines.recv_timeout(Duration::from_secs(1)) {
            Ok(l) => seen.push(l),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                assert!(Instant::now() < until, "event loop did not end: {seen:?}")
            }
        }
    }
    let status = ev.wait().expect("event loop exit");
    assert!(status.success(), "event loop failed: {seen:?}");
    assert!(pair(&seen), "suspend then resume events expected: {seen:?}");
    let events = seen.iter().filter(|l| l.starts_with("event '")).count();
    let tail: Vec<&str> = seen[seen.len().saturating_sub(3)..]
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "event loop timed out",
            &format!("events received: {events}"),
            ""
        ],
        "{seen:?}"
    );

    // virsh's own lines: the same texts for our domain's events (which of them it saw depends
    // on when it registered and when its own 3 s ran out), and the same closing lines.
    let reference = {
        let limit = Instant::now() + PROCESS_LIMIT;
        while reference.try_wait().expect("virsh event").is_none() {
            assert!(Instant::now() < limit, "virsh event did not end");
            std::thread::sleep(Duration::from_millis(100));
        }
        reference.wait_with_output().expect("virsh event output")
    };
    let theirs = text(&reference.stdout);
    let prefix = format!("event 'lifecycle' for domain '{}': ", dom.name);
    for l in theirs.lines().filter(|l| l.starts_with(&prefix)) {
        assert!(l == suspended || l == resumed, "{l:?} in\n{theirs}");
    }
    let theirs_events = theirs.lines().filter(|l| l.starts_with("event '")).count();
    assert!(
        theirs.ends_with(&format!(
            "event loop timed out\nevents received: {theirs_events}\n\n"
        )),
        "{theirs}"
    );

    let o = ours(&uri, &["destroy", &dom.name]);
    assert_eq!(
        text(&o.stdout),
        format!("Domain '{}' destroyed\n\n", dom.name)
    );
    assert_same(&uri, &["domstate", "--reason", &dom.name], same);
}

/// QMP through libvirt on a tiny TCG guest (no disk: it sits in the firmware), compared with
/// virsh's answer to the same command.
#[test]
fn qemu_monitor_command_matches_virsh() {
    let _g = serial();
    let uri = common::uri("qemu_unix");
    let emulator = common::endpoints()["qemu"]["binary"]
        .as_str()
        .unwrap_or("/usr/bin/qemu-system-x86_64")
        .to_owned();
    let dom = TempDomain::define(&uri, |name| {
        format!(
            "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='network'/></os>\
             <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot>\
             <on_crash>destroy</on_crash><devices><emulator>{emulator}</emulator>\
             <memballoon model='none'/></devices></domain>"
        )
    });
    let o = ours(&uri, &["start", &dom.name]);
    assert!(o.status.success(), "start: {}", text(&o.stderr));
    assert_same(&uri, &["domstate", "--reason", &dom.name], same);
    assert_same(&uri, &["dumpxml", &dom.name], same);

    let cmd = r#"{"execute":"query-status"}"#;
    let json = |o: &Output| -> serde_json::Value {
        assert!(o.status.success(), "{}", text(&o.stderr));
        let mut v: serde_json::Value = serde_json::from_str(&text(&o.stdout)).expect("JSON");
        // libvirt numbers its monitor commands: the ids differ from run to run.
        v.as_object_mut().expect("object").remove("id");
        v
    };
    let a = json(&ours(&uri, &["qemu-monitor-command", &dom.name, cmd]));
    let b = json(&theirs(&uri, &["qemu-monitor-command", &dom.name, cmd]));
    assert_eq!(a, b);
    assert_eq!(a["return"]["status"], "running", "{a}");
    // --pretty and --return-value give the same JSON as virsh's.
    for flag in ["--pretty", "--return-value"] {
        let args = ["qemu-monitor-command", flag, &dom.name, cmd];
        let (oa, ob) = (ours(&uri, &args), theirs(&uri, &args));
        let parse = |o: &Output| -> serde_json::Value {
            assert!(o.status.success(), "{flag}: {}", text(&o.stderr));
            let mut v: serde_json::Value = serde_json::from_str(&text(&o.stdout)).expect("JSON");
            if let Some(m) = v.as_object_mut() {
                m.remove("id");
            }
            v
        };
        assert_eq!(parse(&oa), parse(&ob), "{flag}");
    }
    // HMP through the same call.
    let o = ours(
        &uri,
        &["qemu-monitor-command", "--hmp", &dom.name, "info", "status"],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        text(
            &theirs(
                &uri,
                &["qemu-monitor-command", "--hmp", &dom.name, "info", "status"]
            )
            .stdout
        )
    );
}
