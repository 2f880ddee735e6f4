//! Demo section for `qemu-cmdline`: a typed configuration becomes argv, QEMU runs it, QMP shows
//! what QEMU made of it, and the guard kills it.

use super::endpoint;
use anyhow::{bail, Context, Result};
use qemu_cmdline::devices::{
    Balloon, Block, Chardev, ChardevBackend, Format, Net, NetBackend, Pci, Rng, Serial,
};
use qemu_cmdline::{Display, Launcher, Machine, Memory, Name, QemuConfig, QemuVersion, Syntax};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

pub fn tour(endpoints: &Value) -> Result<()> {
    let qemu = endpoint(endpoints, "/qemu/binary")?;
    let img = endpoint(endpoints, "/qemu/img")?;
    let dir = std::env::temp_dir().join(format!("vmwire-demo-cmdline-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&qemu, &img, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(qemu: &str, img: &str, dir: &Path) -> Result<()> {
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    // an image whose name would inject options into a naive command line
    let disk = p("disk,read-only=on,ü.qcow2");
    let out = std::process::Command::new(img)
        .args(["create", "-q", "-f", "qcow2", &disk, "16M"])
        .output()?;
    if !out.status.success() {
        bail!(
            "qemu-img create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let mut config = QemuConfig::new()
        .qmp("qmp0", &p("qmp.sock"))
        .device(Block::virtio("disk0", &disk, Format::Qcow2))
        .device(Net::virtio("nic0", NetBackend::User))
        .device(Rng {
            id: "rng0".into(),
            object_id: "rng0-backend".into(),
            filename: None,
            max_bytes: None,
            period: None,
            pci: Pci::default(),
        })
        .device(Balloon {
            id: "balloon0".into(),
            deflate_on_oom: true,
            pci: Pci::default(),
        })
        .device(Chardev {
            id: "log0".into(),
            backend: ChardevBackend::File {
                path: p("serial, log.txt"),
            },
        })
        .device(Serial {
            id: "serial0".into(),
            chardev: "log0".into(),
        });
    config.name = Some(Name {
        guest: "demo, with a comma".into(),
        debug_threads: false,
    });
    config.machine = Some(Machine::new("q35").accel("tcg"));
    config.memory = Some(Memory {
        size_mib: 128,
        ..Memory::default()
    });
    config.knobs.no_user_config = true;
    config.knobs.nodefaults = true;
    config.knobs.display = Some(Display::None);
    config.knobs.paused = true;

    let argv = config.build(&Syntax::TEXT)?;
    println!("  typed config -> {} argv entries, e.g.:", argv.len());
    for w in argv
        .windows(2)
        .filter(|w| w[0] == "-blockdev" || w[0] == "-name")
    {
        println!("    {} {}", w[0], w[1]);
    }
    let json = config.build(&Syntax::json(QemuVersion::new(7, 2)))?;
    if let Some(w) = json.windows(2).find(|w| w[0] == "-blockdev") {
        println!(
            "  the same in JSON syntax (QEMU >= 2.9 for -blockdev):\n    {} {}",
            w[0], w[1]
        );
    }
    let back = QemuConfig::parse(&argv)?;
    if back != config {
        bail!("parse(build(config)) differs from config:\n{back:?}\n{config:?}");
    }
    println!("  parse(argv) == config: true");

    let t = Instant::now();
    let guest = Launcher::new(qemu, config)
        .spawn()
        .context("launching QEMU")?;
    println!(
        "  {qemu} pid {} ready (QMP answered) in {:?}",
        guest.pid(),
        t.elapsed()
    );
    let mut qmp = Qmp::connect(&guest.qmp_paths()[0])?;
    let status = qmp.execute("query-status")?;
    println!(
        "  query-status: {} (running: {})",
        status["status"], status["running"]
    );
    println!("  query-name: {}", qmp.execute("query-name")?["name"]);
    println!("  query-pci:");
    for bus in qmp.execute("query-pci")?.as_array().into_iter().flatten() {
        for d in bus["devices"].as_array().into_iter().flatten() {
            println!(
                "    {:02x}.{} {:<28} {:04x}:{:04x} {}",
                d["slot"].as_u64().unwrap_or(0),
                d["function"],
                d["class_info"]["desc"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!(
                        "class {:#06x}",
                        d["class_info"]["class"].as_u64().unwrap_or(0)
                    )),
                d["id"]["vendor"].as_u64().unwrap_or(0),
                d["id"]["device"].as_u64().unwrap_or(0),
                d["qdev_id"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .unwrap_or("(built in)")
            );
        }
    }
    // the disk's protocol node must be there, and name exactly our file
    let nodes = qmp.execute("query-named-block-nodes")?;
    let files: Vec<&Value> = nodes
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["drv"] == "file")
        .collect();
    let Some(n) = files.iter().find(|n| n["node-name"] == "disk0-file") else {
        bail!(
            "QEMU reports no file node `disk0-file` (file nodes: {files:?}): the disk was not \
             opened as configured"
        );
    };
    if n["file"].as_str() != Some(disk.as_str()) {
        bail!(
            "QEMU opened {} but the config named {disk:?}: the argv was mis-escaped",
            n["file"]
        );
    }
    println!(
        "  block node {} file {} (exactly the name we gave)",
        n["node-name"], n["file"]
    );
    let status = guest.kill()?;
    println!("  killed and reaped: {status}");
    Ok(())
}

/// Just enough QMP for the tour (the qmp-client crate is the real thing).
struct Qmp {
    w: UnixStream,
    r: BufReader<UnixStream>,
}

impl Qmp {
    fn connect(path: &Path) -> Result<Qmp> {
        let s = UnixStream::connect(path)
            .with_context(|| format!("connecting to {}", path.display()))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut q = Qmp {
            w: s.try_clone()?,
            r: BufReader::new(s),
        };
        q.line()?; // greeting
        q.execute("qmp_capabilities")?;
        Ok(q)
    }

    fn line(&mut self) -> Result<Value> {
        let mut l = String::new();
        if self.r.read_line(&mut l)? == 0 {
            bail!("QMP connection closed");
        }
        Ok(serde_json::from_str(&l)?)
    }

    fn execute(&mut self, cmd: &str) -> Result<Value> {
        writeln!(self.w, "{}", json!({"execute": cmd, "id": cmd}))?;
        loop {
            let v = self.line()?;
            if v.get("id") != Some(&json!(cmd)) {
                continue;
            }
            if let Some(e) = v.get("error") {
                bail!("{cmd}: {e}");
            }
            return Ok(v["return"].clone());
        }
    }
}
