//! `cargo xtask`: the project's automation, a plain binary with subcommands.
//!
//! - `peers install|start|stop|status` — the real libvirtd and QEMU the tests talk to.
//! - `ci` — the full gate, in the order CI runs it.
//! - `demo` — the project's main job: a tour of the crates against the real peers.

mod ci;
mod codegen;
mod codegen_client;
mod codegen_qapi;
mod demo;
mod fuzz;
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
                       generate libvirt-proto/src/generated from libvirt's .x and API XML
  codegen-client [--check]
                       generate libvirt-client/src/generated (typed methods, typed events)
  ci                   the full gate: peers, fmt, clippy, tests, docs, freshness, fuzz smoke
  demo                 the main job: tour the crates against the real peers
  fuzz [SECONDS]       run every fuzz target (cargo-fuzz, stable) for a few seconds each
  xdr decode|encode --spec FILE.x --type NAME
                       XDR on stdin -> JSON on stdout, or JSON -> XDR (schema-driven)
  xdr dissect [--spec-dir DIR]
                       a raw libvirt byte stream on stdin -> one JSON line per packet
";

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
        ["ci", rest @ ..] => ci::cmd(rest),
        ["codegen", rest @ ..] => codegen::cmd(rest),
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
