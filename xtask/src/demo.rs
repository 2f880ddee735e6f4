//! `cargo xtask demo`: the project's main job — start the real peers and tour what the crates do
//! against them, with readable output. Each capability adds its own section here.

mod cmdline;
mod libvirt;
mod migrate;
mod qmp;
mod wire;

use crate::peers;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::time::Duration;

pub fn cmd(args: &[&str]) -> Result<()> {
    if !args.is_empty() {
        bail!("usage: cargo xtask demo");
    }
    peers::install()?;
    let started_here = peers::start()?;
    let result = tour();
    // Leave the machine as we found it: stop what this run started.
    if started_here {
        peers::stop()?;
    }
    result
}

/// The demo's sections, in order. Each area of the project adds one: a module under
/// `xtask/src/demo/` with `pub fn tour(endpoints: &Value) -> Result<()>`, listed here.
const SECTIONS: &[(&str, Section)] = &[
    ("the peers answer", peers_answer),
    (
        "qemu-cmdline: a typed config launched in real QEMU",
        cmdline::tour,
    ),
    (
        "qmp-client: status, a hotplug round trip, a live migration",
        qmp::tour,
    ),
    (
        "libvirt wire: calls encoded by libvirt-proto, dissected by the schema",
        wire::tour,
    ),
    (
        "libvirt-client: versions, domains, a TCG guest's lifecycle with live events, QMP via libvirt",
        libvirt::tour,
    ),
    (
        "libvirt-client: live migration between two daemons, with progress",
        migrate::tour,
    ),
];

/// One section of the tour: given the peers' endpoints, show something and say what it showed.
type Section = fn(&Value) -> Result<()>;

fn tour() -> Result<()> {
    let endpoints: Value =
        serde_json::from_str(&std::fs::read_to_string(peers::endpoints_path())?)?;
    for (title, section) in SECTIONS {
        println!("\n== {title}");
        section(&endpoints).with_context(|| format!("demo section `{title}`"))?;
    }
    println!();
    Ok(())
}

/// Read a string from the endpoints file by JSON pointer (e.g. `/libvirt/socket`).
pub fn endpoint(endpoints: &Value, ptr: &str) -> Result<String> {
    endpoints
        .pointer(ptr)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .with_context(|| format!("endpoints file lacks {ptr}"))
}

fn peers_answer(endpoints: &Value) -> Result<()> {
    let str_at = |ptr: &str| endpoint(endpoints, ptr);
    // libvirtd is toured by the libvirt-client section below.
    let qmp = str_at("/qemu/qmp_socket")?;
    let greeting = qmp_greeting(&qmp)?;
    let v = &greeting["QMP"]["version"]["qemu"];
    println!(
        "  {qmp}: greeting from QEMU {}.{}.{}, capabilities {}",
        v["major"], v["minor"], v["micro"], greeting["QMP"]["capabilities"]
    );
    Ok(())
}

fn qmp_greeting(socket: &str) -> Result<serde_json::Value> {
    let s = UnixStream::connect(socket).with_context(|| format!("connecting to {socket}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    Ok(serde_json::from_str(&line)?)
}
