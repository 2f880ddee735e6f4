//! `cargo xtask`: the project's automation, a plain binary with subcommands.
//!
//! - `peers install|start|stop|status` — the real libvirtd and QEMU the tests talk to.
//! - `ci` — the full gate, in the order CI runs it.
//! - `demo` — the project's main job: a tour of the crates against the real peers.

mod bench;
mod ci;
mod codegen;
mod codegen_client;
mod codegen_qapi;
mod demo;
mod fuzz;
mod fuzz_seeds;
mod peers;
mod util;
mod xdr_cmd;

use anyhow::{bail, Result};

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  peers install        install libvirtd, virsh and QEMU (Debian packages) and the peer user
  peers start          start the private libvirtd and a QEMU with QMP; writes the endpoints file
  peers stop           destroy guests, stop libvirtd and QEMU, leave nothing running
  peers status         show what is running and where
  codegen [--check] [--protocol-dir DIR]
                       every generator below, in order (libvirt-proto, libvirt-client, qmp-proto);
                       --check fails when any committed output is stale
  codegen-libvirt [--check] [--protocol-dir DIR]
                       generate libvirt-proto/src/generated from libvirt's .x and API XML
  codegen-client [--check]
                       generate libvirt-client/src/generated (typed methods, typed events)
  codegen-qapi [--check] [QAPI-DIR]
                       generate qmp-proto/src/generated from QEMU's QAPI schema
  ci                   the full gate: peers, fmt, clippy, tests, docs, freshness, fuzz smoke
  demo                 the main job: tour the crates against the real peers
  bench libvirt [...]  calls/s and latency: our libvirt client vs libvirt.so (C), same daemon
  fuzz [SECONDS]       run every fuzz target (cargo-fuzz, stable) for a few seconds each
  fuzz seeds [--check] write the wire targets' seed inputs (fuzz/seeds/<target>/) from encoded
                       sample values; --check fails when the committed ones differ
  xdr decode|encode --spec FILE.x --type NAME
                       XDR on stdin -> JSON on stdout, or JSON -> XDR (schema-driven)
  xdr dissect [--spec-dir DIR]
                       a raw libvirt byte stream on stdin -> one JSON line per packet
";

/// `codegen [--check] [--protocol-dir DIR]`: all generators. Every one runs even when an earlier
/// one reports stale output, so one `--check` names everything to regenerate.
fn codegen_all(args: &[&str]) -> Result<()> {
    let check: &[&str] = if args.contains(&"--check") {
        &["--check"]
    } else {
        &[]
    };
    let mut failed = Vec::new();
    for (name, result) in [
        ("codegen-libvirt", codegen::cmd(args)),
        ("codegen-client", codegen_client::cmd(check)),
        ("codegen-qapi", codegen_qapi::cmd(check)),
    ] {
        if let Err(e) = result {
            eprintln!("xtask: {name}: {e:#}");
            failed.push(name);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("failed: {}", failed.join(", "))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: &[String]) -> Result<()> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["peers", rest @ ..] => peers::cmd(rest),
        ["bench", rest @ ..] => bench::cmd(rest),
        ["ci", rest @ ..] => ci::cmd(rest),
        ["codegen", rest @ ..] => codegen_all(rest),
        ["codegen-libvirt", rest @ ..] => codegen::cmd(rest),
        ["codegen-client", rest @ ..] => codegen_client::cmd(rest),
        ["codegen-qapi", rest @ ..] => codegen_qapi::cmd(rest),
        ["demo", rest @ ..] => demo::cmd(rest),
        ["fuzz", rest @ ..] => fuzz::cmd(rest),
        ["xdr", rest @ ..] => xdr_cmd::cmd(rest),
        [] | ["help"] | ["--help"] | ["-h"] => {
            print!("{USAGE}");
            Ok(())
        }
        [other, ..] => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}
