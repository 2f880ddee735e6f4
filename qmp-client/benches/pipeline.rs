//! Pipelined vs one-at-a-time QMP throughput against one real QEMU, and the same work done by
//! QEMU's python `qemu.qmp` (when `python3 -c 'import qemu.qmp'` works).
//!
//! `cargo bench -p qmp-client --all-features --bench pipeline` (N commands, default 2000; set
//! QMP_BENCH_N). Plain timing, no criterion: the numbers are commands per second.

use qmp_client::{Client, ConnectOptions};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn qemu_binary() -> String {
    let path = std::env::var("VMWIRE_PEERS")
        .unwrap_or_else(|_| "/var/tmp/vmwire-peers/endpoints.json".into());
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["qemu"]["binary"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "qemu-system-x86_64".into())
}

struct Qemu(std::process::Child);
impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const ARGS: &str = r#"{"path": "/machine", "property": "type"}"#;

fn report(name: &str, n: usize, t: Duration, base: Option<Duration>) -> Duration {
    let rate = n as f64 / t.as_secs_f64();
    let vs = base
        .map(|b| format!("  ({:.1}x serial)", b.as_secs_f64() / t.as_secs_f64()))
        .unwrap_or_default();
    println!(
        "{name:<34} {n:>6} cmds {:>8.1} ms {rate:>9.0} cmd/s{vs}",
        t.as_secs_f64() * 1e3
    );
    t
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // nothing for `cargo test --benches` to list
    }
    let n: usize = std::env::var("QMP_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let dir = std::env::temp_dir().join(format!("qmp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("qmp.sock");
    let _q = Qemu(
        Command::new(qemu_binary())
            .args([
                "-machine",
                "none",
                "-nodefaults",
                "-nographic",
                "-display",
                "none",
                "-qmp",
            ])
            .arg(format!("unix:{},server=on,wait=off", sock.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn QEMU"),
    );
    let args: serde_json::Value = serde_json::from_str(ARGS).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let connect = || loop {
        if let Ok(c) = rt.block_on(Client::connect_unix(&sock, ConnectOptions::default())) {
            return c;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let c = connect();
    rt.block_on(async {
        for _ in 0..100 {
            c.execute("qom-get", Some(args.clone())).await.unwrap(); // warm up
        }
    });
    let t = Instant::now();
    rt.block_on(async {
        for _ in 0..n {
            let v = c.execute("qom-get", Some(args.clone())).await.unwrap();
            assert_eq!(v, "none-machine");
        }
    });
    let serial = report("rust async, one at a time", n, t.elapsed(), None);
    let t = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (c, a) = (c.clone(), args.clone());
                tokio::spawn(async move { c.execute("qom-get", Some(a)).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), "none-machine");
        }
    });
    report(
        "rust async, pipelined (window 8)",
        n,
        t.elapsed(),
        Some(serial),
    );
    drop(c);
    drop(rt); // ends the driver task, closing the connection: QEMU serves one client at a time

    #[cfg(feature = "blocking")]
    {
        let b = loop {
            if let Ok(c) =
                qmp_client::blocking::Client::connect_unix(&sock, ConnectOptions::default())
            {
                break c;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let t = Instant::now();
        for _ in 0..n {
            b.execute("qom-get", Some(args.clone())).unwrap();
        }
        let bserial = report("rust blocking, one at a time", n, t.elapsed(), None);
        let t = Instant::now();
        let pending: Vec<_> = (0..n)
            .map(|_| {
                b.submit("qom-get", Some(args.clone()), Default::default())
                    .unwrap()
            })
            .collect();
        for p in pending {
            p.wait().unwrap();
        }
        report("rust blocking, pipelined", n, t.elapsed(), Some(bserial));
    }

    let py = format!(
        r#"
import asyncio, time, json
from qemu.qmp import QMPClient
async def main():
    q = QMPClient('bench')
    await q.connect({sock:?})
    args = json.loads({ARGS:?})
    for _ in range(100): await q.execute('qom-get', args)
    t = time.perf_counter()
    for _ in range({n}): await q.execute('qom-get', args)
    s = time.perf_counter() - t
    t = time.perf_counter()
    await asyncio.gather(*[q.execute('qom-get', args) for _ in range({n})])
    p = time.perf_counter() - t
    await q.disconnect()
    print(s, p)
asyncio.run(main())
"#,
        sock = sock.display().to_string(),
    );
    match Command::new("python3").args(["-c", &py]).output() {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let nums: Vec<f64> = text
                .split_whitespace()
                .filter_map(|s| s.parse().ok())
                .collect();
            if let [s, p] = nums[..] {
                let s = report(
                    "python qemu.qmp, one at a time",
                    n,
                    Duration::from_secs_f64(s),
                    None,
                );
                report(
                    "python qemu.qmp, asyncio.gather",
                    n,
                    Duration::from_secs_f64(p),
                    Some(s),
                );
            }
        }
        Ok(o) => println!(
            "python qemu.qmp: skipped ({})",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(e) => println!("python qemu.qmp: skipped ({e})"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
