//! Demo section for `qmp-client` (blocking driver, std only): the shared QEMU's status and a
//! pipelined burst, a hotplug round trip on a TCG PC, and a live migration between two QEMUs
//! with a progress bar.

use super::endpoint;
use anyhow::{bail, Context, Result};
use qmp_client::blocking::Client;
use qmp_client::{ConnectOptions, EventFilter, Exec};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn tour(endpoints: &Value) -> Result<()> {
    let qemu = endpoint(endpoints, "/qemu/binary")?;
    let img = endpoint(endpoints, "/qemu/img")?;
    status(&endpoint(endpoints, "/qemu/qmp_socket")?)?;
    let dir = std::env::temp_dir().join(format!("vmwire-demo-qmp-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = hotplug(&qemu, &img, &dir).and_then(|()| migration(&qemu, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn status(socket: &str) -> Result<()> {
    let o = ConnectOptions {
        greeting_timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let c = Client::connect_unix(socket, o).context("connecting to the shared QEMU")?;
    let g = c.greeting();
    let s = c.execute("query-status", None)?;
    println!(
        "  shared QEMU {} (capabilities {:?}, oob {}): status {}",
        g.version.qemu,
        g.capabilities,
        if c.oob_enabled() { "on" } else { "off" },
        s["status"]
    );
    let t = Instant::now();
    let pending: Vec<_> = (0..50)
        .map(|i| {
            c.submit(
                "qom-list",
                Some(json!({"path": format!("/no-such-{i}")})),
                Exec::default(),
            )
        })
        .collect::<Result<_, _>>()?;
    let mut matched = 0;
    for (i, p) in pending.into_iter().enumerate() {
        match p.wait() {
            Err(qmp_client::Error::Qmp { error, .. })
                if error.desc.contains(&format!("/no-such-{i}")) =>
            {
                matched += 1
            }
            other => bail!("command {i} got the wrong reply: {other:?}"),
        }
    }
    println!(
        "  50 pipelined commands, each answered by id with its own error: {matched}/50 in {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

/// A QEMU of this demo, killed on drop.
struct Qemu {
    child: Child,
    qmp: PathBuf,
}

impl Qemu {
    fn spawn(binary: &str, dir: &Path, name: &str, args: &[&str]) -> Result<Self> {
        let qmp = dir.join(format!("{name}.sock"));
        let child = Command::new(binary)
            .args(["-nodefaults", "-nographic", "-display", "none", "-qmp"])
            .arg(format!("unix:{},server=on,wait=off", qmp.display()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {binary}"))?;
        Ok(Self { child, qmp })
    }

    fn connect(&self) -> Result<Client> {
        let start = Instant::now();
        loop {
            match Client::connect_unix(&self.qmp, ConnectOptions::default()) {
                Ok(c) => return Ok(c),
                Err(e) if start.elapsed() > Duration::from_secs(10) => return Err(e.into()),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hotplug(qemu: &str, img: &str, dir: &Path) -> Result<()> {
    let disk = dir.join("hot.qcow2");
    let out = Command::new(img)
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&disk)
        .arg("32M")
        .output()?;
    if !out.status.success() {
        bail!(
            "qemu-img create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // An SHPC bridge: its slots stay powered off without a guest OS, so unplug completes at once.
    let vm = Qemu::spawn(
        qemu,
        dir,
        "hot",
        &[
            "-machine",
            "pc,accel=tcg",
            "-m",
            "64",
            "-S",
            "-global",
            "PIIX4_PM.acpi-pci-hotplug-with-bridge-support=off",
            "-device",
            "pci-bridge,id=br1,chassis_nr=1,shpc=on,addr=5",
        ],
    )?;
    let c = vm.connect()?;
    let t = Instant::now();
    c.execute(
        "blockdev-add",
        Some(json!({"driver": "qcow2", "node-name": "hot0", "file": {"driver": "file", "filename": disk}})),
    )?;
    println!("  blockdev-add qcow2 node hot0 <- {}", disk.display());
    c.execute("device_add", Some(json!({"driver": "virtio-blk-pci", "drive": "hot0", "id": "vblk-hot", "bus": "br1", "addr": "1"})))?;
    let ids = |c: &Client| -> Result<Vec<String>> {
        let v = c.execute("qom-list", Some(json!({"path": "/machine/peripheral"})))?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect())
    };
    println!(
        "  device_add virtio-blk-pci id=vblk-hot on br1 slot 1: peripherals {:?}",
        ids(&c)?
    );
    let every = c.subscribe(EventFilter::name("DEVICE_DELETED"));
    c.device_del_and_wait("vblk-hot", Duration::from_secs(10))?;
    while let Ok(e) = every.recv_timeout(Duration::from_millis(50)) {
        let which = if e.data.get("device").is_some() {
            "<- the one waited for"
        } else {
            "(path only: ignored)"
        };
        println!("  event DEVICE_DELETED {} {which}", e.data);
    }
    println!("  peripherals after device_del: {:?}", ids(&c)?);
    c.execute("blockdev-del", Some(json!({"node-name": "hot0"})))?;
    println!(
        "  blockdev-del hot0; round trip took {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

fn migration(qemu: &str, dir: &Path) -> Result<()> {
    // The source's 64 MiB of RAM come from a file of non-zero pages: QEMU sends zero pages as a
    // few header bytes, so a fresh guest's RAM would be across at once and the bar show nothing.
    const RAM: u64 = 64 << 20;
    let ram = dir.join("src-ram.img");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&ram)?);
        let mut page = vec![0u8; 4096];
        for i in 0..RAM / 4096 {
            page.fill((i % 251) as u8 + 1);
            f.write_all(&page)?;
        }
        f.flush()?;
    }
    let mem = format!("{}", RAM >> 20);
    let src_ram = format!(
        "memory-backend-file,id=ram0,size={RAM},share=off,mem-path={}",
        ram.display()
    );
    let dst_ram = format!("memory-backend-ram,id=ram0,size={RAM}");
    let machine = "pc,accel=tcg,memory-backend=ram0";
    let src = Qemu::spawn(
        qemu,
        dir,
        "src",
        &["-machine", machine, "-m", &mem, "-object", &src_ram],
    )?;
    let dst = Qemu::spawn(
        qemu,
        dir,
        "dst",
        &[
            "-machine",
            machine,
            "-m",
            &mem,
            "-object",
            &dst_ram,
            "-incoming",
            "defer",
        ],
    )?;
    let (s, d) = (src.connect()?, dst.connect()?);
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let uri = format!("tcp:127.0.0.1:{port}");
    d.execute("migrate-incoming", Some(json!({"uri": uri})))?;
    s.execute(
        "migrate-set-capabilities",
        Some(json!({"capabilities": [{"capability": "events", "state": true}]})),
    )?;
    // Slow it down so the bar has something to show: 32 MiB/s, about two seconds.
    s.execute(
        "migrate-set-parameters",
        Some(json!({"max-bandwidth": 32 << 20})),
    )?;
    let events = s.subscribe(EventFilter::name("MIGRATION"));
    println!(
        "  source {} -> destination {} over {uri}",
        s.status()?,
        d.status()?
    );
    let t = Instant::now();
    let mut out = std::io::stdout();
    let mut drawn = Ok(());
    let done = s.migrate_and_wait(
        &uri,
        Duration::from_millis(50),
        Duration::from_secs(120),
        |p| {
            let filled = (p.fraction() * 30.0).round() as usize;
            let line = write!(
                out,
                "\r  [{}{}] {:>5.1}% {:>10} sent  {:<10}",
                "#".repeat(filled),
                ".".repeat(30 - filled),
                p.fraction() * 100.0,
                human(p.transferred),
                p.status
            )
            .and_then(|()| out.flush());
            if drawn.is_ok() {
                drawn = line;
            }
        },
    );
    println!();
    drawn?;
    let done = done.context("migration")?;
    let mut seen = Vec::new();
    while let Ok(e) = events.recv_timeout(Duration::from_millis(100)) {
        seen.push(e.data["status"].as_str().unwrap_or("?").to_owned());
    }
    let wait_state = |c: &Client, want: &str| -> Result<String> {
        let start = Instant::now();
        loop {
            let st = c.status()?;
            if st == want || start.elapsed() > Duration::from_secs(5) {
                return Ok(st);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    println!("  MIGRATION events on the source: {}", seen.join(" -> "));
    println!(
        "  done in {:.2} s ({} of RAM sent): source is {}, destination is {}",
        t.elapsed().as_secs_f64(),
        human(done.transferred),
        wait_state(&s, "postmigrate")?,
        wait_state(&d, "running")?
    );
    Ok(())
}

fn human(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}
