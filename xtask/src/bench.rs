//! `cargo xtask bench libvirt`: calls/s and single-call latency of our libvirt client next to
//! libvirt's own C client library (libvirt.so), against the same real libvirtd.
//!
//! Both sides make the same calls on the test driver over ONE connection: N serial calls for
//! latency (mean, p50, p99), then 1 and T concurrent callers for a few seconds each for calls/s.
//! The calls: `CONNECT_GET_LIB_VERSION` and `DOMAIN_GET_INFO` on the predefined domain `test`,
//! where the daemon's own cost per call is most of the work, and `CONNECT_LIST_ALL_DOMAINS` of
//! a test driver loaded with `--domains D` generated domains (a file the bench writes), where
//! each side's decoding of a large reply counts too.
//! The C side is a small pthreads harness of our own (below), compiled here with
//! `cc -O2 ... -lvirt -lpthread`; our side is `libvirt-client/benches/calls.rs`, built with the
//! bench profile. The runs of the different clients are interleaved so that the machine's load
//! hits them alike; with `--rounds R` every cell is the median of R runs. `--busy-poll US` adds
//! our clients with `ClientOptions::busy_poll` set (the `+poll` rows). Around each many-caller
//! run the bench also reads the client's and the daemon's CPU time (`/proc/.../stat`) and the
//! machine's IPIs (`/proc/interrupts` RES + CAL), and prints them per call: in a VM, a client
//! that leaves CPUs idle makes every daemon wake-up an IPI, which shows up as daemon CPU.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::{peers, util};

const USAGE: &str = "\
usage: cargo xtask bench libvirt [--call lib-version|domain-info|list-domains|all] [--callers T]
                                 [--secs S] [--serial N] [--rounds R] [--uri URI] [--domains D]
                                 [--clients LIST] [--busy-poll US]

  --call     the call to measure (default: all = lib-version, domain-info and list-domains)
  --callers  concurrent callers on one connection for the second throughput run (default 64)
  --secs     seconds per throughput run (default 1.5)
  --serial   serial calls for the latency run (default 2000)
  --rounds   repeat everything R times; cells are medians (default 1)
  --uri      daemon URI (default: libvirt.uris.test_unix from the peers' endpoints file; for
             list-domains, the same daemon's test driver loaded with D generated domains)
  --domains  domains in the test driver's file for list-domains (default 1000)
  --clients  comma-separated subset of c,async,async-ct,blocking (default: all four); a
             Rust client with `+poll` (e.g. blocking+poll) runs with busy polling
  --busy-poll  our clients' busy-poll limit in microseconds (ClientOptions::busy_poll) for the
             `+poll` clients; given alone, adds async+poll,async-ct+poll,blocking+poll to the
             clients (default limit 200)
";

/// The C harness, written to a temporary folder and compiled on each run.
const HARNESS_C: &str = r#"/* The C side of `cargo xtask bench libvirt`: the same measurements as
 * libvirt-client/benches/calls.rs, made with libvirt's own client library (libvirt.so).
 * Written for this project; compiled by xtask with `cc -O2 ... -lvirt -lpthread`.
 *
 *   harness URI lib-version|domain-info|list-domains serial N
 *   harness URI lib-version|domain-info|list-domains callers T SECS
 *
 * T threads share ONE virConnectPtr. Prints one JSON line on stdout. */
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WARMUP_CALLS 200

static virConnectPtr conn;
static virDomainPtr dom; /* NULL: virConnectGetLibVersion or virConnectListAllDomains */
static int list; /* virConnectListAllDomains */
static atomic_int stop;
static atomic_ullong total;

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int one_call(void)
{
    if (dom) {
        virDomainInfo info;
        return virDomainGetInfo(dom, &info);
    }
    if (list) {
        virDomainPtr *doms = NULL;
        int n = virConnectListAllDomains(conn, &doms, 0);
        for (int i = 0; i < n; i++)
            virDomainFree(doms[i]);
        free(doms);
        return n;
    }
    unsigned long v;
    return virConnectGetLibVersion(conn, &v);
}

static void fail(const char *what)
{
    const char *msg = virGetLastErrorMessage();
    fprintf(stderr, "harness: %s: %s\n", what, msg ? msg : "unknown error");
    exit(1);
}

static void *caller(void *arg)
{
    unsigned long long n = 0;
    (void)arg;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        if (one_call() < 0)
            fail("call");
        n++;
    }
    atomic_fetch_add(&total, n);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double positive(const char *s, const char *what)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || !(v > 0)) {
        fprintf(stderr, "harness: %s: `%s` is not a positive number\n", what, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr,
                "usage: %s URI lib-version|domain-info|list-domains serial N | callers T SECS\n",
                argv[0]);
        return 2;
    }
    const char *uri = argv[1], *call = argv[2], *mode = argv[3];
    int serial = strcmp(mode, "serial") == 0;
    if (!serial && (strcmp(mode, "callers") != 0 || argc < 6)) {
        fprintf(stderr, "harness: mode must be `serial N` or `callers T SECS`\n");
        return 2;
    }
    unsigned long libver = 0;
    if (virGetVersion(&libver, NULL, NULL) < 0)
        fail("virGetVersion");
    conn = virConnectOpen(uri);
    if (!conn)
        fail("virConnectOpen");
    if (strcmp(call, "domain-info") == 0) {
        dom = virDomainLookupByName(conn, "test");
        if (!dom)
            fail("virDomainLookupByName test");
    } else if (strcmp(call, "list-domains") == 0) {
        list = 1;
    } else if (strcmp(call, "lib-version") != 0) {
        fprintf(stderr, "harness: call must be lib-version, domain-info or list-domains\n");
        return 2;
    }
    for (int i = 0; i < WARMUP_CALLS; i++)
        if (one_call() < 0)
            fail("warm-up call");
    if (list && one_call() == 0) {
        fprintf(stderr, "harness: %s has no domains to list\n", uri);
        return 1;
    }

    char client[64];
    snprintf(client, sizeof client, "C libvirt.so %lu.%lu.%lu", libver / 1000000,
             libver / 1000 % 1000, libver % 1000);
    if (serial) {
        size_t n = (size_t)positive(argv[4], "N");
        uint64_t *s = malloc(n * sizeof *s), sum = 0;
        if (!s)
            return 1;
        for (size_t i = 0; i < n; i++) {
            uint64_t t = now_ns();
            if (one_call() < 0)
                fail("call");
            s[i] = now_ns() - t;
            sum += s[i];
        }
        qsort(s, n, sizeof *s, cmp_u64);
        size_t p50 = n * 50 / 100, p99 = n * 99 / 100;
        if (p99 > n - 1)
            p99 = n - 1;
        printf("{\"client\":\"%s\",\"mode\":\"serial\",\"n\":%zu,\"mean_ns\":%.1f,"
               "\"p50_ns\":%llu,\"p99_ns\":%llu}\n",
               client, n, (double)sum / (double)n, (unsigned long long)s[p50],
               (unsigned long long)s[p99]);
        free(s);
    } else {
        int t = (int)positive(argv[4], "T");
        double secs = positive(argv[5], "SECS");
        pthread_t *th = calloc((size_t)t, sizeof *th);
        if (!th)
            return 1;
        uint64_t start = now_ns();
        for (int i = 0; i < t; i++)
            if (pthread_create(&th[i], NULL, caller, NULL) != 0) {
                fprintf(stderr, "harness: pthread_create failed\n");
                return 1;
            }
        struct timespec d = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
        nanosleep(&d, NULL);
        atomic_store(&stop, 1);
        for (int i = 0; i < t; i++)
            pthread_join(th[i], NULL);
        double el = (double)(now_ns() - start) / 1e9;
        unsigned long long calls = atomic_load(&total);
        printf("{\"client\":\"%s\",\"mode\":\"callers\",\"callers\":%d,\"calls\":%llu,"
               "\"secs\":%.6f,\"calls_per_s\":%.1f}\n",
               client, t, calls, el, (double)calls / el);
        free(th);
    }
    if (dom)
        virDomainFree(dom);
    virConnectClose(conn);
    return 0;
}
"#;

/// Our clients, as `--driver` values of the bench binary, with their table labels.
const RUST_CLIENTS: [(&str, &str); 3] = [
    ("async", "rust async (tokio mt)"),
    ("async-ct", "rust async (tokio ct)"),
    ("blocking", "rust blocking (threads)"),
];

struct Opts {
    calls: Vec<&'static str>,
    callers: usize,
    secs: f64,
    serial: usize,
    rounds: usize,
    uri: Option<String>,
    clients: Vec<String>,
    /// Busy-poll limit (µs) of the `+poll` clients.
    busy_poll_us: u64,
    /// Domains in the generated test-driver file that `list-domains` lists.
    domains: usize,
}

/// Every call the bench knows, in the order `--call all` measures them.
const CALLS: [&str; 3] = ["lib-version", "domain-info", "list-domains"];

/// `bench <rest>`.
pub fn cmd(args: &[&str]) -> Result<()> {
    match args {
        ["libvirt", rest @ ..] => libvirt(&parse(rest)?),
        _ => bail!("unknown bench\n\n{USAGE}"),
    }
}

fn parse(args: &[&str]) -> Result<Opts> {
    let mut o = Opts {
        calls: CALLS.to_vec(),
        callers: 64,
        secs: 1.5,
        serial: 2000,
        rounds: 1,
        uri: None,
        clients: ["c", "async", "async-ct", "blocking"]
            .map(String::from)
            .to_vec(),
        busy_poll_us: 200,
        domains: 1000,
    };
    let (mut clients_given, mut poll_given) = (false, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .copied()
                .with_context(|| format!("{a} needs a value\n\n{USAGE}"))
        };
        match *a {
            "--call" => {
                o.calls = match val()? {
                    "all" => CALLS.to_vec(),
                    one => match CALLS.iter().find(|c| **c == one) {
                        Some(c) => vec![*c],
                        None => bail!("--call: unknown call `{one}`\n\n{USAGE}"),
                    },
                }
            }
            "--callers" => o.callers = positive(a, val()?)?,
            "--serial" => o.serial = positive(a, val()?)?,
            "--rounds" => o.rounds = positive(a, val()?)?,
            "--domains" => o.domains = positive(a, val()?)?,
            "--secs" => {
                let v = val()?;
                o.secs = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .with_context(|| format!("--secs: `{v}` is not a positive number"))?;
            }
            "--uri" => o.uri = Some(val()?.to_owned()),
            "--clients" => {
                clients_given = true;
                o.clients = val()?.split(',').map(str::to_owned).collect();
                for c in &o.clients {
                    let driver = c.strip_suffix("+poll").unwrap_or(c);
                    if c != "c" && !RUST_CLIENTS.iter().any(|(d, _)| *d == driver) {
                        bail!("--clients: unknown client `{c}`\n\n{USAGE}");
                    }
                }
            }
            "--busy-poll" => {
                poll_given = true;
                o.busy_poll_us = positive(a, val()?)? as u64;
            }
            other => bail!("unknown argument `{other}`\n\n{USAGE}"),
        }
    }
    if poll_given && !clients_given {
        o.clients
            .extend(RUST_CLIENTS.iter().map(|(d, _)| format!("{d}+poll")));
    }
    Ok(o)
}

fn positive(flag: &str, v: &str) -> Result<usize> {
    v.parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .with_context(|| format!("{flag}: `{v}` is not a positive integer"))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn libvirt(o: &Opts) -> Result<()> {
    if !peers::running() {
        println!("bench: peers not running; starting them");
        peers::start()?;
    }
    let text = std::fs::read_to_string(peers::endpoints_path())
        .with_context(|| format!("reading {}", peers::endpoints_path().display()))?;
    let endpoints: Value = serde_json::from_str(&text)?;
    let uri = match &o.uri {
        Some(u) => u.clone(),
        None => crate::demo::endpoint(&endpoints, "/libvirt/uris/test_unix")?,
    };
    let daemon = daemon_pid(&endpoints, &uri);
    let tmp = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let r = (|| {
        let list_uri = match &o.uri {
            Some(u) => u.clone(),
            None if o.calls.contains(&"list-domains") => {
                let file = write_domains_file(&tmp, o.domains)?;
                test_driver_uri(&uri, &file)?
            }
            None => uri.clone(),
        };
        let harness = if o.clients.iter().any(|c| c == "c") {
            Some(build_harness(&tmp)?)
        } else {
            None
        };
        let rust = if o.clients.iter().any(|c| c != "c") {
            Some(build_rust_bench()?)
        } else {
            None
        };
        let uris = Uris {
            main: &uri,
            list: &list_uri,
        };
        measure(o, uris, daemon, harness.as_deref(), rust.as_deref())
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    r
}

/// The daemon URIs the calls go to: `list` for list-domains, `main` for the others.
#[derive(Clone, Copy)]
struct Uris<'a> {
    main: &'a str,
    list: &'a str,
}

impl Uris<'_> {
    fn of(&self, call: &str) -> &str {
        if call == "list-domains" {
            self.list
        } else {
            self.main
        }
    }
}

/// Write a test-driver node file with `n` domains (all running) for list-domains to list
/// (libvirt's test driver loads such a file when the URI's path names it), readable by the
/// daemon's user; returns its path.
fn write_domains_file(dir: &Path, n: usize) -> Result<PathBuf> {
    use std::fmt::Write as _;
    use std::os::unix::fs::PermissionsExt;
    let mut xml = String::from("<node>\n");
    for i in 0..n {
        let _ = writeln!(
            xml,
            "  <domain type='test'><name>bench-{i:05}</name>\
             <uuid>6695eb01-f6a4-8304-79aa-{i:012x}</uuid><memory>65536</memory>\
             <vcpu>1</vcpu><os><type>hvm</type></os></domain>"
        );
    }
    xml.push_str("</node>\n");
    let path = dir.join("domains.xml");
    std::fs::write(&path, xml)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    Ok(path)
}

/// `uri` (a test-driver URI such as `test+unix:///default?socket=...`) with its path replaced
/// by `file`, so that the daemon's test driver loads that file.
fn test_driver_uri(uri: &str, file: &Path) -> Result<String> {
    let (scheme, rest) = uri
        .split_once(":///")
        .with_context(|| format!("`{uri}` is not a local test-driver URI"))?;
    let query = rest.find('?').map_or("", |q| &rest[q..]);
    Ok(format!("{scheme}://{}{query}", file.display()))
}

/// Make sure libvirt's headers are there (installing libvirt-dev as root), write and compile
/// the harness; returns the executable.
fn build_harness(dir: &Path) -> Result<PathBuf> {
    if !Path::new("/usr/include/libvirt/libvirt.h").is_file() {
        if util::euid()? != 0 {
            bail!(
                "libvirt's C headers are missing (/usr/include/libvirt/libvirt.h); install the \
                 Debian package libvirt-dev (`apt-get install -y libvirt-dev` as root) or run \
                 this command as root"
            );
        }
        println!("bench: installing libvirt-dev for the C client's headers");
        util::run(
            Command::new("apt-get")
                .args(["install", "-y", "libvirt-dev"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    let cc = util::which("cc").context("no C compiler (`cc`) on PATH; install gcc")?;
    let src = dir.join("harness.c");
    let exe = dir.join("harness");
    std::fs::write(&src, HARNESS_C)?;
    util::run(
        Command::new(cc)
            .args(["-O2", "-Wall", "-o"])
            .arg(&exe)
            .arg(&src)
            .args(["-lvirt", "-lpthread"]),
    )
    .context("compiling the C harness against libvirt.so")?;
    Ok(exe)
}

/// Build `libvirt-client/benches/calls.rs` with the bench profile; returns the executable.
fn build_rust_bench() -> Result<PathBuf> {
    println!("bench: building libvirt-client/benches/calls.rs (bench profile)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(util::workspace_root())
        .args(["bench", "-p", "libvirt-client", "--features", "blocking"])
        .args(["--bench", "calls", "--no-run", "--message-format=json"])
        .stdout(Stdio::piped());
    let out = cmd
        .output()
        .with_context(|| format!("cannot run `{}`", util::display(&cmd)))?;
    if !out.status.success() {
        bail!("`{}` failed: {}", util::display(&cmd), out.status);
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "calls")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo built no `calls` bench executable")
}

/// One measurement of one client: a serial run, or a concurrent run with this many callers.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Run {
    Serial,
    Callers(usize),
}

/// Run one measurement; returns the harness's JSON line.
fn run_one(
    o: &Opts,
    uri: &str,
    client: &str,
    call: &str,
    run: Run,
    harness: Option<&Path>,
    rust: Option<&Path>,
) -> Result<Value> {
    let mut cmd;
    if client == "c" {
        cmd = Command::new(harness.context("C harness not built")?);
        cmd.args([uri, call]);
        match run {
            Run::Serial => cmd.args(["serial".to_owned(), o.serial.to_string()]),
            Run::Callers(t) => cmd.args(["callers".into(), t.to_string(), o.secs.to_string()]),
        };
    } else {
        cmd = Command::new(rust.context("rust bench not built")?);
        let driver = client.strip_suffix("+poll");
        cmd.args([
            "--uri",
            uri,
            "--driver",
            driver.unwrap_or(client),
            "--call",
            call,
        ]);
        if driver.is_some() {
            cmd.args(["--busy-poll".to_owned(), o.busy_poll_us.to_string()]);
        }
        match run {
            Run::Serial => cmd.args(["--serial".to_owned(), o.serial.to_string()]),
            Run::Callers(t) => cmd.args([
                "--callers".to_owned(),
                t.to_string(),
                "--secs".into(),
                o.secs.to_string(),
            ]),
        };
    }
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run `{}`", util::display(&cmd)))?;
    if !out.status.success() {
        bail!("`{}` failed: {}", util::display(&cmd), out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim())
        .with_context(|| format!("`{}` printed no JSON result: {text}", util::display(&cmd)))
}

/// Per (call, client): the C library's version string or our label, and every metric's values.
type Cells = BTreeMap<(String, String), BTreeMap<&'static str, Vec<f64>>>;

/// The pid of the peers' main libvirtd when `uri` addresses it (its socket or TCP port).
fn daemon_pid(endpoints: &Value, uri: &str) -> Option<u32> {
    let lv = &endpoints["libvirt"];
    let socket = lv["socket"].as_str()?;
    let port = lv["tcp_port"].as_u64()?;
    let ours = uri.contains(socket) || uri.contains(&format!(":{port}/"));
    ours.then(|| lv["pid"].as_u64().and_then(|p| u32::try_from(p).ok()))
        .flatten()
}

/// CPU seconds (user + system) from a `/proc/.../stat` line: the process's own
/// (`children` false) or that of its waited-for children.
fn stat_cpu_secs(path: &str, children: bool) -> Option<f64> {
    let f = util::proc_stat(path)?;
    let i = if children { 13 } else { 11 };
    let ticks = f.get(i)?.parse::<u64>().ok()? + f.get(i + 1)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0) // USER_HZ
}

/// Rescheduling and function-call interrupts (IPIs) so far, all CPUs.
fn ipis() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/interrupts").ok()?;
    let mut n = 0;
    for line in text.lines() {
        let line = line.trim_start();
        if let Some(rest) = line
            .strip_prefix("RES:")
            .or_else(|| line.strip_prefix("CAL:"))
        {
            n += rest
                .split_whitespace()
                .map_while(|w| w.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    Some(n)
}

/// Counters read around a many-caller run, to show where each call's cost goes.
struct Costs {
    client: Option<f64>,
    daemon: Option<f64>,
    ipis: Option<u64>,
}

impl Costs {
    fn now(daemon: Option<u32>) -> Costs {
        Costs {
            client: stat_cpu_secs("/proc/self/stat", true),
            daemon: daemon.and_then(|p| stat_cpu_secs(&format!("/proc/{p}/stat"), false)),
            ipis: ipis(),
        }
    }

    /// Per call since `before`: client CPU µs, daemon CPU µs, IPIs.
    fn per_call(&self, before: &Costs, calls: f64) -> [Option<f64>; 3] {
        let us = |a: Option<f64>, b: Option<f64>| Some((a? - b?) * 1e6 / calls);
        [
            us(self.client, before.client),
            us(self.daemon, before.daemon),
            self.ipis
                .zip(before.ipis)
                .map(|(a, b)| a.saturating_sub(b) as f64 / calls),
        ]
    }
}

fn measure(
    o: &Opts,
    uris: Uris<'_>,
    daemon: Option<u32>,
    harness: Option<&Path>,
    rust: Option<&Path>,
) -> Result<()> {
    let load_before = loadavg();
    let mut cells: Cells = BTreeMap::new();
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    let runs = [Run::Serial, Run::Callers(1), Run::Callers(o.callers)];
    for round in 0..o.rounds {
        for call in &o.calls {
            for run in runs {
                for client in &o.clients {
                    let before = Costs::now(daemon);
                    let r = run_one(o, uris.of(call), client, call, run, harness, rust)
                        .with_context(|| format!("round {}: {client} {call}", round + 1))?;
                    if let Some(l) = r["client"].as_str() {
                        labels.insert(client.clone(), l.to_owned());
                    }
                    let cell = cells.entry((call.to_string(), client.clone())).or_default();
                    let num = |k: &str| {
                        r[k].as_f64()
                            .with_context(|| format!("result lacks `{k}`: {r}"))
                    };
                    match run {
                        Run::Serial => {
                            for k in ["mean_ns", "p50_ns", "p99_ns"] {
                                cell.entry(k).or_default().push(num(k)?);
                            }
                        }
                        Run::Callers(1) => cell.entry("tp1").or_default().push(num("calls_per_s")?),
                        Run::Callers(_) => {
                            cell.entry("tpn").or_default().push(num("calls_per_s")?);
                            let calls = num("calls")?.max(1.0);
                            let costs = Costs::now(daemon).per_call(&before, calls);
                            for (k, v) in ["cli_us", "dmn_us", "ipis"].into_iter().zip(costs) {
                                if let Some(v) = v {
                                    cell.entry(k).or_default().push(v);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    print_table(o, uris, &cells, &labels, &load_before);
    Ok(())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn print_table(
    o: &Opts,
    uris: Uris<'_>,
    cells: &Cells,
    labels: &BTreeMap<String, String>,
    load_before: &str,
) {
    let label = |c: &str| {
        let (driver, poll) = match c.strip_suffix("+poll") {
            Some(d) => (d, format!(", poll {} us", o.busy_poll_us)),
            None => (c, String::new()),
        };
        RUST_CLIENTS
            .iter()
            .find(|(d, _)| *d == driver)
            .map(|(_, l)| format!("{l}{poll}"))
            .or_else(|| labels.get(c).cloned())
            .unwrap_or_else(|| c.to_owned())
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!("libvirt calls on ONE connection to {}", uris.main);
    if o.calls.contains(&"list-domains") && uris.list != uris.main {
        println!("(list-domains: {})", uris.list);
    }
    println!(
        "{} serial calls for latency; {} s per throughput run; {} round(s), medians; {cores} cores, \
         load average {load_before} before, {} after",
        o.serial,
        o.secs,
        o.rounds,
        loadavg()
    );
    for call in &o.calls {
        let proc_name = match *call {
            "lib-version" => "CONNECT_GET_LIB_VERSION".to_owned(),
            "list-domains" if o.uri.is_none() => {
                format!("CONNECT_LIST_ALL_DOMAINS ({} domains)", o.domains)
            }
            "list-domains" => "CONNECT_LIST_ALL_DOMAINS".to_owned(),
            _ => "DOMAIN_GET_INFO (domain `test`)".to_owned(),
        };
        println!("\n{proc_name}");
        println!(
            "  {:<38} {:>9} {:>9} {:>9} {:>11} {:>13}",
            "client",
            "mean µs",
            "p50 µs",
            "p99 µs",
            "1 caller/s",
            format!("{} callers/s", o.callers)
        );
        let get = |client: &str, k: &str| {
            cells
                .get(&(call.to_string(), client.to_owned()))
                .and_then(|c| c.get(k))
                .map_or(f64::NAN, |v| median(v))
        };
        for client in &o.clients {
            println!(
                "  {:<38} {:>9.1} {:>9.1} {:>9.1} {:>11.0} {:>13.0}",
                label(client),
                get(client, "mean_ns") / 1e3,
                get(client, "p50_ns") / 1e3,
                get(client, "p99_ns") / 1e3,
                get(client, "tp1"),
                get(client, "tpn"),
            );
        }
        println!(
            "  per call at {} callers: {:>15} {:>15} {:>8}",
            o.callers, "client CPU µs", "daemon CPU µs", "IPIs"
        );
        for client in &o.clients {
            println!(
                "  {:<38} {:>15.1} {:>15.1} {:>8.2}",
                label(client),
                get(client, "cli_us"),
                get(client, "dmn_us"),
                get(client, "ipis"),
            );
        }
        if o.clients.iter().any(|c| c == "c") {
            println!(
                "  ratios vs C (goal: {} callers >= 1.50x throughput, latency <= 1.00x):",
                o.callers
            );
            for client in o.clients.iter().filter(|c| *c != "c") {
                println!(
                    "  {:<38} {} callers {:.2}x  1 caller {:.2}x  latency mean {:.2}x  p50 {:.2}x  p99 {:.2}x",
                    label(client),
                    o.callers,
                    get(client, "tpn") / get("c", "tpn"),
                    get(client, "tp1") / get("c", "tp1"),
                    get(client, "mean_ns") / get("c", "mean_ns"),
                    get(client, "p50_ns") / get("c", "p50_ns"),
                    get(client, "p99_ns") / get("c", "p99_ns"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_domains_uri_names_the_generated_file_and_keeps_the_query() {
        let file = Path::new("/tmp/xtask-bench-1/domains.xml");
        assert_eq!(
            test_driver_uri("test+unix:///default?socket=/run/s", file).unwrap(),
            "test+unix:///tmp/xtask-bench-1/domains.xml?socket=/run/s"
        );
        assert_eq!(
            test_driver_uri("test:///default", file).unwrap(),
            "test:///tmp/xtask-bench-1/domains.xml"
        );
        assert!(test_driver_uri("test+tcp://host/default", file).is_err());
    }

    #[test]
    fn domains_file_holds_that_many_domains() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = write_domains_file(&dir, 3).unwrap();
        let xml = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(xml.matches("<domain type='test'>").count(), 3);
        assert!(xml.contains("<name>bench-00002</name>"));
        assert!(xml.contains("<uuid>6695eb01-f6a4-8304-79aa-000000000002</uuid>"));
    }
}
