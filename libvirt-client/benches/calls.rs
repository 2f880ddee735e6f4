//! Calls per second and single-call latency of our clients against a real libvirtd.
//!
//! Driven by `cargo xtask bench libvirt`, which runs the same measurements with libvirt's own C
//! client (libvirt.so) and prints both side by side. One measurement per run; the result is one
//! JSON line on stdout (the same shape as the C harness's):
//!
//! ```text
//! cargo bench -p libvirt-client --bench calls -- --uri URI --driver async|async-ct|blocking \
//!     --call lib-version|domain-info|list-domains (--serial N | --callers T --secs S) \
//!     [--busy-poll US]
//! ```
//!
//! - `--serial N`: N calls one after the other (after a warm-up); mean, p50 and p99 latency.
//! - `--callers T --secs S`: T concurrent callers sharing ONE connection for S seconds; calls/s.
//!
//! Calls: `lib-version` (`CONNECT_GET_LIB_VERSION`), `domain-info` (`DOMAIN_GET_INFO` on the
//! test driver's domain `test`), `list-domains` (`CONNECT_LIST_ALL_DOMAINS`, every domain the
//! URI's driver has; at least one, or the run fails).
//!
//! Drivers: `async` is [`libvirt_client::Client`] on tokio's multi-thread runtime, `async-ct`
//! the same on a current-thread runtime, `blocking` is [`libvirt_client::blocking::Client`]
//! with one OS thread per caller. `--busy-poll US` sets
//! [`ClientOptions::busy_poll`](libvirt_client::ClientOptions::busy_poll) (default off).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libvirt_client::libvirt_proto::generated::api::ConnectListAllDomainsFlags;
use libvirt_client::libvirt_proto::generated::remote::RemoteNonnullDomain;

/// Calls made before any measurement (connection and allocator warm-up).
const WARMUP_CALLS: usize = 200;
/// The test driver's predefined domain.
const TEST_DOMAIN: &str = "test";

#[derive(Clone, Copy, PartialEq)]
enum CallKind {
    LibVersion,
    DomainInfo,
    ListDomains,
}

#[derive(Clone, Copy)]
enum Mode {
    Serial(usize),
    Callers(usize, f64),
}

struct Args {
    uri: String,
    driver: String,
    call: CallKind,
    mode: Mode,
    busy_poll: Option<Duration>,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut uri = None;
    let mut driver = "async".to_owned();
    let mut call = CallKind::LibVersion;
    let mut serial = None;
    let mut callers = None;
    let mut secs = 2.0;
    let mut busy_poll = None;
    let mut it = std::env::args().skip(1);
    let num = |v: Option<String>, what: &str| -> Result<f64, String> {
        let v = v.ok_or_else(|| format!("{what} needs a value"))?;
        v.parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n > 0.0)
            .ok_or_else(|| format!("{what}: `{v}` is not a positive number"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            // Passed by `cargo bench`.
            "--bench" => {}
            "--uri" => uri = Some(it.next().ok_or("--uri needs a value")?),
            "--driver" => driver = it.next().ok_or("--driver needs a value")?,
            "--call" => {
                call = match it.next().as_deref() {
                    Some("lib-version") => CallKind::LibVersion,
                    Some("domain-info") => CallKind::DomainInfo,
                    Some("list-domains") => CallKind::ListDomains,
                    other => {
                        return Err(format!(
                        "--call: expected lib-version, domain-info or list-domains, got {other:?}"
                    ))
                    }
                }
            }
            "--serial" => serial = Some(num(it.next(), "--serial")? as usize),
            "--callers" => callers = Some(num(it.next(), "--callers")? as usize),
            "--secs" => secs = num(it.next(), "--secs")?,
            "--busy-poll" => {
                busy_poll = Some(Duration::from_secs_f64(
                    num(it.next(), "--busy-poll")? / 1e6,
                ))
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let Some(uri) = uri else {
        // `cargo bench` without arguments (or `cargo test --benches`): nothing to measure.
        return Ok(None);
    };
    let mode = match (serial, callers) {
        (Some(n), None) => Mode::Serial(n),
        (None, Some(t)) => Mode::Callers(t, secs),
        _ => return Err("give exactly one of --serial N and --callers T".into()),
    };
    if !["async", "async-ct", "blocking"].contains(&driver.as_str()) {
        return Err(format!(
            "--driver: expected async, async-ct or blocking, got `{driver}`"
        ));
    }
    Ok(Some(Args {
        uri,
        driver,
        call,
        mode,
        busy_poll,
    }))
}

fn main() {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            eprintln!("calls: no --uri given; run `cargo xtask bench libvirt` instead");
            return;
        }
        Err(e) => {
            eprintln!("calls: {e}");
            std::process::exit(2);
        }
    };
    let r = match args.driver.as_str() {
        "blocking" => run_blocking(&args),
        flavor => {
            let rt = if flavor == "async-ct" {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
            };
            match rt {
                Ok(rt) => rt.block_on(run_async(&args)),
                Err(e) => Err(format!("tokio runtime: {e}")),
            }
        }
    };
    match r {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("calls: {e}");
            std::process::exit(1);
        }
    }
}

/// `rust DRIVER`, plus the busy-poll limit when one is set.
fn client_label(args: &Args) -> String {
    match args.busy_poll {
        Some(d) => format!("rust {} busy-poll {} us", args.driver, d.as_micros()),
        None => format!("rust {}", args.driver),
    }
}

fn options(args: &Args) -> libvirt_client::ClientOptions {
    libvirt_client::ClientOptions::default().busy_poll(args.busy_poll)
}

/// The JSON line for a serial run.
fn latency_json(args: &Args, mut samples: Vec<u64>) -> String {
    samples.sort_unstable();
    let n = samples.len();
    let pct = |p: usize| samples[(n * p / 100).min(n - 1)];
    let mean = samples.iter().sum::<u64>() as f64 / n as f64;
    serde_json::json!({
        "client": client_label(args),
        "mode": "serial",
        "n": n,
        "mean_ns": mean,
        "p50_ns": pct(50),
        "p99_ns": pct(99),
    })
    .to_string()
}

/// The JSON line for a concurrent run.
fn throughput_json(args: &Args, callers: usize, calls: u64, elapsed: Duration) -> String {
    serde_json::json!({
        "client": client_label(args),
        "mode": "callers",
        "callers": callers,
        "calls": calls,
        "secs": elapsed.as_secs_f64(),
        "calls_per_s": calls as f64 / elapsed.as_secs_f64(),
    })
    .to_string()
}

async fn run_async(args: &Args) -> Result<String, String> {
    let client = libvirt_client::Client::connect_with(&args.uri, options(args))
        .await
        .map_err(|e| format!("connect {}: {e}", args.uri))?;
    let dom = match args.call {
        CallKind::DomainInfo => Some(
            client
                .domain_lookup_by_name(TEST_DOMAIN.into())
                .await
                .map_err(|e| format!("look up domain `{TEST_DOMAIN}`: {e}"))?,
        ),
        CallKind::LibVersion | CallKind::ListDomains => None,
    };
    let call = args.call;
    let one = move |c: libvirt_client::Client, dom: Option<RemoteNonnullDomain>| async move {
        match (call, dom) {
            (CallKind::ListDomains, _) => c
                .connect_list_all_domains(1, ConnectListAllDomainsFlags::empty())
                .await
                .map(|r| r.domains.len() as u64),
            (_, Some(d)) => c.domain_get_info(d).await.map(|i| i.nr_virt_cpu as u64),
            (_, None) => c.connect_get_lib_version().await,
        }
        .map_err(|e| e.to_string())
    };
    for _ in 0..WARMUP_CALLS {
        one(client.clone(), dom.clone()).await?;
    }
    if call == CallKind::ListDomains && one(client.clone(), None).await? == 0 {
        return Err(format!("{} has no domains to list", args.uri));
    }
    let out = match args.mode {
        Mode::Serial(n) => {
            let mut samples = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                one(client.clone(), dom.clone()).await?;
                samples.push(t.elapsed().as_nanos() as u64);
            }
            latency_json(args, samples)
        }
        Mode::Callers(callers, secs) => {
            let stop = Arc::new(AtomicBool::new(false));
            let count = Arc::new(AtomicU64::new(0));
            let start = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..callers {
                let (c, d, stop, count) =
                    (client.clone(), dom.clone(), stop.clone(), count.clone());
                tasks.push(tokio::spawn(async move {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        one(c.clone(), d.clone()).await?;
                        n += 1;
                    }
                    count.fetch_add(n, Ordering::Relaxed);
                    Ok::<(), String>(())
                }));
            }
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            stop.store(true, Ordering::Relaxed);
            for t in tasks {
                t.await.map_err(|e| format!("caller task: {e}"))??;
            }
            throughput_json(
                args,
                callers,
                count.load(Ordering::Relaxed),
                start.elapsed(),
            )
        }
    };
    let _ = client.close().await;
    Ok(out)
}

fn run_blocking(args: &Args) -> Result<String, String> {
    let client = libvirt_client::blocking::Client::connect_with(&args.uri, options(args))
        .map_err(|e| format!("connect {}: {e}", args.uri))?;
    let dom = match args.call {
        CallKind::DomainInfo => Some(
            client
                .domain_lookup_by_name(TEST_DOMAIN.into())
                .map_err(|e| format!("look up domain `{TEST_DOMAIN}`: {e}"))?,
        ),
        CallKind::LibVersion | CallKind::ListDomains => None,
    };
    let call = args.call;
    let one = |c: &libvirt_client::blocking::Client, dom: &Option<RemoteNonnullDomain>| {
        match (call, dom) {
            (CallKind::ListDomains, _) => c
                .connect_list_all_domains(1, ConnectListAllDomainsFlags::empty())
                .map(|r| r.domains.len() as u64),
            (_, Some(d)) => c.domain_get_info(d.clone()).map(|i| i.nr_virt_cpu as u64),
            (_, None) => c.connect_get_lib_version(),
        }
        .map_err(|e| e.to_string())
    };
    for _ in 0..WARMUP_CALLS {
        one(&client, &dom)?;
    }
    if call == CallKind::ListDomains && one(&client, &None)? == 0 {
        return Err(format!("{} has no domains to list", args.uri));
    }
    let out = match args.mode {
        Mode::Serial(n) => {
            let mut samples = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                one(&client, &dom)?;
                samples.push(t.elapsed().as_nanos() as u64);
            }
            latency_json(args, samples)
        }
        Mode::Callers(callers, secs) => {
            let stop = AtomicBool::new(false);
            let count = AtomicU64::new(0);
            let start = Instant::now();
            std::thread::scope(|s| {
                let workers: Vec<_> = (0..callers)
                    .map(|_| {
                        s.spawn(|| {
                            let mut n = 0u64;
                            while !stop.load(Ordering::Relaxed) {
                                one(&client, &dom)?;
                                n += 1;
                            }
                            count.fetch_add(n, Ordering::Relaxed);
                            Ok::<(), String>(())
                        })
                    })
                    .collect();
                std::thread::sleep(Duration::from_secs_f64(secs));
                stop.store(true, Ordering::Relaxed);
                workers.into_iter().try_for_each(|w| {
                    w.join()
                        .map_err(|_| "caller thread panicked".to_owned())
                        .and_then(|r| r)
                })
            })?;
            throughput_json(
                args,
                callers,
                count.load(Ordering::Relaxed),
                start.elapsed(),
            )
        }
    };
    let _ = client.close();
    Ok(out)
}
