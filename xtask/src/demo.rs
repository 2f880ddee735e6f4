//! `cargo xtask demo`: the project's main job — start the real peers and tour what the crates do
//! against them, with readable output. Each capability adds its own section here.

mod cmdline;
mod migrate;
mod qmp;
mod wire;

use crate::peers;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
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
    let socket = str_at("/libvirt/socket")?;
    let auth = libvirt_auth_list(&socket)?;
    println!("  {socket}: REMOTE_PROC_AUTH_LIST -> OK, auth types offered: {auth:?}");

    let qmp = str_at("/qemu/qmp_socket")?;
    let greeting = qmp_greeting(&qmp)?;
    let v = &greeting["QMP"]["version"]["qemu"];
    println!(
        "  {qmp}: greeting from QEMU {}.{}.{}, capabilities {}",
        v["major"], v["minor"], v["micro"], greeting["QMP"]["capabilities"]
    );
    Ok(())
}

/// One hand-framed call (REMOTE_PROC_AUTH_LIST, no arguments) and its reply: enough to prove the
/// daemon speaks the protocol. Replaced by `libvirt-client` as it lands.
fn libvirt_auth_list(socket: &str) -> Result<Vec<u32>> {
    let mut s = UnixStream::connect(socket).with_context(|| format!("connecting to {socket}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    // length, program REMOTE (0x20008086), version 1, procedure 66, type CALL, serial 1, status OK
    let words: [u32; 7] = [28, 0x2000_8086, 1, 66, 0, 1, 0];
    let call: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    s.write_all(&call)?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if !(28..=4096).contains(&len) {
        bail!("implausible reply length {len}");
    }
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body)?;
    let word = |i: usize| u32::from_be_bytes(body[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
    if word(5) != 0 {
        bail!("daemon answered AUTH_LIST with status {}", word(5));
    }
    let n = word(6) as usize;
    if body.len() < (7 + n) * 4 {
        bail!("short AUTH_LIST reply");
    }
    Ok((0..n).map(|i| word(7 + i)).collect())
}

fn qmp_greeting(socket: &str) -> Result<serde_json::Value> {
    let s = UnixStream::connect(socket).with_context(|| format!("connecting to {socket}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    Ok(serde_json::from_str(&line)?)
}
