//! Pipelined vs one-at-a-time QMP throughput against one real QEMU, and the same work done by
//! QEMU's python `qemu.qmp` (when `python3 -c 'import qemu.qmp'` works).
//!
//! `cargo bench -p qmp-client --all-features --bench pipeline` (N commands, default 2000; set
//! QMP_BENCH_N). Plain timing, no criterion: the numbers are commands per second, plus the CPU
//! time QEMU spent per command (from /proc/PID/stat) and the command's size on the wire.
//!
//! QEMU's monitor reads its socket one byte per `recvmsg` (its `monitor_can_read` grants one
//! byte at a time; about four eventfd writes follow each byte), so QEMU's cost grows with the
//! command's length in bytes. The last block runs the same comparison with commands of three
//! sizes to show it: what pipelining can gain is bounded by QEMU, not by the client.

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

/// CPU time (user + system) the process has used, from /proc/PID/stat.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

/// QEMU's CPU use over a measurement.
struct QemuCpu(u32, Option<Duration>);
impl QemuCpu {
    fn start(pid: u32) -> Self {
        QemuCpu(pid, cpu_time(pid))
    }
    fn per_cmd(&self, n: usize) -> Option<f64> {
        let d = cpu_time(self.0)?.checked_sub(self.1?)?;
        Some(d.as_secs_f64() * 1e6 / n as f64)
    }
}

fn report(
    name: &str,
    n: usize,
    t: Duration,
    base: Option<Duration>,
    qemu: Option<&QemuCpu>,
) -> Duration {
    let rate = n as f64 / t.as_secs_f64();
    let vs = base
        .map(|b| format!("  ({:.1}x serial)", b.as_secs_f64() / t.as_secs_f64()))
        .unwrap_or_default();
    let cpu = qemu
        .and_then(|q| q.per_cmd(n))
        .map(|us| format!("  QEMU {us:>4.0} us CPU/cmd"))
        .unwrap_or_default();
    println!(
        "{name:<34} {n:>6} cmds {:>8.1} ms {rate:>9.0} cmd/s{cpu}{vs}",
        t.as_secs_f64() * 1e3
    );
    t
}

/// The bytes our client writes for one command (id 1000).
fn wire_len(cmd: &str, args: Option<&serde_json::Value>) -> usize {
    let mut v = serde_json::json!({"execute": cmd, "id": 1000});
    if let Some(a) = args {
        v["arguments"] = a.clone();
    }
    serde_json::to_vec(&v).unwrap().len() + 1
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
    let q = Qemu(
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
    let pid = q.0.id();
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
    println!(
        "qom-get /machine type: {} bytes on the wire",
        wire_len("qom-get", Some(&args))
    );
    let (t, cpu) = (Instant::now(), QemuCpu::start(pid));
    rt.block_on(async {
        for _ in 0..n {
            let v = c.execute("qom-get", Some(args.clone())).await.unwrap();
            assert_eq!(v, "none-machine");
        }
    });
    let serial = report(
        "rust async, one at a time",
        n,
        t.elapsed(),
        None,
        Some(&cpu),
    );
    let (t, cpu) = (Instant::now(), QemuCpu::start(pid));
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
        Some(&cpu),
    );
    // The same with shorter commands: QEMU's cost per command follows its length.
    for (cmd, cargs) in [
        ("query-status", None),
        ("x-none", None), // CommandNotFound: parsed, looked up, answered
    ] {
        println!("{cmd}: {} bytes on the wire", wire_len(cmd, cargs));
        let (t, cpu) = (Instant::now(), QemuCpu::start(pid));
        rt.block_on(async {
            for _ in 0..n {
                let _ = c.execute(cmd, cargs.cloned()).await;
            }
        });
        let s = report(
            &format!("  {cmd}, one at a time"),
            n,
            t.elapsed(),
            None,
            Some(&cpu),
        );
        let (t, cpu) = (Instant::now(), QemuCpu::start(pid));
        rt.block_on(async {
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let c = c.clone();
                    tokio::spawn(async move { c.execute(cmd, None).await })
                })
                .collect();
            for t in tasks {
                let _ = t.await.unwrap();
            }
        });
        report(
            &format!("  {cmd}, pipelined"),
            n,
            t.elapsed(),
            Some(s),
            Some(&cpu),
        );
    }
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
        let (t, cpu) = (Instant::now(), QemuCpu::start(pid));
        for _ in 0..n {
            b.execute("qom-get", Some(args.clone())).unwrap();
        }
        let bserial = report(
            "rust blocking, one at a time",
            n,
            t.elapsed(),
            None,
            Some(&cpu),
        );
        let (t, cpu) = (Instant::now(), QemuCpu::start(pid));
        let pending: Vec<_> = (0..n)
            .map(|_| {
                b.submit("qom-get", Some(args.clone()), Default::default())
                    .unwrap()
            })
            .collect();
        for p in pending {
            p.wait().unwrap();
        }
        report(
            "rust blocking, pipelined",
            n,
            t.elapsed(),
            Some(bserial),
            Some(&cpu),
        );
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
                    None,
                );
                report(
                    "python qemu.qmp, asyncio.gather",
                    n,
                    Duration::from_secs_f64(p),
                    Some(s),
                    None,
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
