//! `cargo xtask fuzz [SECONDS]` and the CI fuzz smoke step: run every target in
//! `fuzz/fuzz_targets` with cargo-fuzz (libFuzzer) for a few seconds each.
//!
//! Works on stable Rust: with `--sanitizer none` cargo-fuzz passes only stable codegen flags
//! (`-Cpasses=sancov-module`, `-Cllvm-args=-sanitizer-coverage-*`, `--cfg fuzzing`), so no
//! nightly is needed. cargo-fuzz is installed with `cargo install` when missing (a fresh CI
//! machine has only Rust). Corpora and crash artifacts go under `target/fuzz-smoke/<target>/`;
//! a target's committed seed inputs, if any, are read from `fuzz/seeds/<target>/` (those of the
//! wire targets are written by `cargo xtask fuzz seeds`, see `fuzz_seeds.rs`).

use crate::util;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The cargo-fuzz release CI installs (built from crates.io with its own lock file).
const CARGO_FUZZ_VERSION: &str = "0.13.2";
/// Fuzzing time shared by all targets in CI, in seconds; each gets between 5 and 15 s of it.
const CI_BUDGET_SECS: u64 = 120;

pub fn cmd(args: &[&str]) -> Result<()> {
    match args {
        [] => smoke(None),
        ["seeds", rest @ ..] => crate::fuzz_seeds::cmd(rest),
        [secs] => smoke(Some(secs.parse().context("SECONDS must be a number")?)),
        _ => {
            bail!("usage: cargo xtask fuzz [SECONDS-PER-TARGET] | cargo xtask fuzz seeds [--check]")
        }
    }
}

/// Every fuzz target (file stem in `fuzz/fuzz_targets`), sorted.
fn targets(root: &Path) -> Result<Vec<String>> {
    let dir = root.join("fuzz/fuzz_targets");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs") {
            if let Some(stem) = path.file_stem() {
                names.push(stem.to_string_lossy().into_owned());
            }
        }
    }
    names.sort();
    if names.is_empty() {
        bail!("no fuzz targets in {}", dir.display());
    }
    Ok(names)
}

fn cargo() -> Command {
    Command::new(env!("CARGO"))
}

fn ensure_cargo_fuzz() -> Result<()> {
    let installed = cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if installed {
        return Ok(());
    }
    if util::which("c++").is_none() {
        bail!("libFuzzer needs a C++ compiler: `apt-get install g++`");
    }
    println!("fuzz: cargo-fuzz missing; installing {CARGO_FUZZ_VERSION} (once per machine)");
    let mut install = cargo();
    install.args([
        "install",
        "cargo-fuzz",
        "--locked",
        "--version",
        CARGO_FUZZ_VERSION,
    ]);
    println!("fuzz: {}", util::display(&install));
    util::run(&mut install)
}

/// Build every target once, then run each for `secs` seconds (default: CI budget split).
pub fn smoke(secs: Option<u64>) -> Result<()> {
    let root = util::workspace_root();
    let names = targets(&root)?;
    let secs = secs.unwrap_or((CI_BUDGET_SECS / names.len() as u64).clamp(5, 15));
    ensure_cargo_fuzz()?;

    let fuzz_dir = root.join("fuzz");
    let target_dir = root.join("target/fuzz");
    let target_dir = target_dir.to_string_lossy();
    let common = ["--sanitizer", "none", "--target-dir", &target_dir];

    let mut build = cargo();
    build
        .current_dir(&fuzz_dir)
        .args(["fuzz", "build"])
        .args(common);
    println!("fuzz: {}", util::display(&build));
    util::run(&mut build)?;

    let mut failed = Vec::new();
    for name in &names {
        let work = root.join("target/fuzz-smoke").join(name);
        let corpus = work.join("corpus");
        let artifacts = work.join("artifacts");
        std::fs::create_dir_all(&corpus)?;
        std::fs::create_dir_all(&artifacts)?;
        let mut run = cargo();
        run.current_dir(&fuzz_dir)
            .args(["fuzz", "run"])
            .args(common)
            .arg(name)
            .arg(&corpus);
        // Committed seeds (read only: libFuzzer writes new inputs to the first directory).
        let seeds = fuzz_dir.join("seeds").join(name);
        if seeds.is_dir() {
            run.arg(&seeds);
        }
        run.arg("--")
            .arg(format!("-max_total_time={secs}"))
            .arg("-timeout=10")
            .arg("-rss_limit_mb=2048")
            .arg(format!("-artifact_prefix={}/", artifacts.display()));
        println!("fuzz: {}", util::display(&run));
        let t = Instant::now();
        let out = run
            .output()
            .with_context(|| format!("cannot run `{}`", util::display(&run)))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let done = log
            .lines()
            .rev()
            .find(|l| l.starts_with("Done "))
            .unwrap_or("(no summary line)");
        if out.status.success() {
            println!(
                "fuzz: {name}: ok, {done} ({:.0} s wall, corpus {})",
                t.elapsed().as_secs_f64(),
                count_files(&corpus)
            );
        } else {
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("fuzz: {name}: FAILED ({}); last lines:", out.status);
            for line in tail.iter().rev() {
                eprintln!("  {line}");
            }
            eprintln!(
                "fuzz: {name}: crash inputs (if any) in {}",
                artifacts.display()
            );
            failed.push(name.as_str());
        }
    }
    if failed.is_empty() {
        println!("fuzz: {} targets ran {secs} s each, no crash", names.len());
        Ok(())
    } else {
        bail!("fuzz targets failed: {}", failed.join(", "))
    }
}

fn count_files(dir: &PathBuf) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}
