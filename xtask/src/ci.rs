//! `cargo xtask ci`: the whole gate, in the order CI runs it.
//!
//! Every step runs even when an earlier one failed, so one run shows every problem; the peers are
//! stopped at the end whatever happened. The closing line is `ci: N passed, N failed` (tests), then
//! the verdict naming any failed step.

use crate::{fuzz, peers, util};
use anyhow::{bail, Result};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Steps that only exist once the code they check exists are added here.
struct Step {
    name: &'static str,
    run: fn(&mut Tally) -> Result<()>,
}

#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
}

pub fn cmd(args: &[&str]) -> Result<()> {
    if !args.is_empty() {
        bail!("usage: cargo xtask ci");
    }
    let started = Instant::now();
    let root = util::workspace_root();
    std::env::set_current_dir(&root)?;

    let steps: &[Step] = &[
        Step {
            name: "peers install",
            run: |_| peers::install(),
        },
        Step {
            name: "peers start",
            run: |_| peers::start().map(|_| ()),
        },
        Step {
            name: "fmt",
            run: |_| cargo(&["fmt", "--all", "--check"]),
        },
        Step {
            name: "codegen --check",
            run: |_| crate::codegen::cmd(&["--check"]),
        },
        Step {
            name: "codegen-client --check",
            run: |_| crate::codegen_client::cmd(&["--check"]),
        },
        Step {
            name: "codegen-qapi --check",
            run: |_| crate::codegen_qapi::cmd(&["--check"]),
        },
        Step {
            name: "fuzz seeds --check",
            run: |_| crate::fuzz_seeds::cmd(&["--check"]),
        },
        Step {
            name: "clippy",
            run: |_| {
                cargo(&[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--all-features",
                    "--",
                    "-D",
                    "warnings",
                ])
            },
        },
        Step {
            name: "tests",
            run: tests,
        },
        Step {
            name: "docs",
            run: |_| docs(),
        },
        Step {
            name: "fuzz smoke",
            run: |_| fuzz::smoke(None),
        },
    ];

    let mut tally = Tally::default();
    let mut failed_steps = Vec::new();
    for step in steps {
        println!("\n==> ci: {}", step.name);
        let t = Instant::now();
        let result = (step.run)(&mut tally);
        match result {
            Ok(()) => println!(
                "==> ci: {} ok ({:.1} s)",
                step.name,
                t.elapsed().as_secs_f64()
            ),
            Err(e) => {
                eprintln!("==> ci: {} FAILED: {e:#}", step.name);
                failed_steps.push(step.name);
                // Without peers, the rest would only fail for the same reason.
                if step.name.starts_with("peers") {
                    break;
                }
            }
        }
    }
    println!("\n==> ci: peers stop");
    if let Err(e) = peers::stop() {
        eprintln!("==> ci: peers stop FAILED: {e:#}");
        failed_steps.push("peers stop");
    }

    println!("\nci: {} passed, {} failed", tally.passed, tally.failed);
    println!("ci: took {:.0} s", started.elapsed().as_secs_f64());
    if failed_steps.is_empty() {
        println!("ci: all steps passed");
        Ok(())
    } else {
        bail!("failed steps: {}", failed_steps.join(", "))
    }
}

fn cargo(args: &[&str]) -> Result<()> {
    util::run(Command::new(env!("CARGO")).args(args))
}

fn docs() -> Result<()> {
    util::run(
        Command::new(env!("CARGO"))
            .args(["doc", "--workspace", "--no-deps", "--all-features"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )
}

/// All tests of the workspace, with the peers' endpoints in the environment. cargo's own lines stay
/// visible; the `test result:` lines are added up for the closing summary.
fn tests(tally: &mut Tally) -> Result<()> {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["test", "--workspace", "--all-features", "--no-fail-fast"])
        .env("VMWIRE_PEERS", peers::endpoints_path())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().expect("stdout is piped");
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some((p, f)) = parse_test_result(&line) {
            tally.passed += p;
            tally.failed += f;
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("`{}` failed: {status}", util::display(&cmd));
    }
    Ok(())
}

/// Parse libtest's `test result: ok. 3 passed; 1 failed; ...` into (passed, failed).
fn parse_test_result(line: &str) -> Option<(u64, u64)> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let count = |word: &str| -> Option<u64> {
        rest.split(';')
            .find_map(|part| {
                part.trim()
                    .trim_start_matches(|c: char| !c.is_ascii_digit())
                    .strip_suffix(word)
            })
            .and_then(|n| n.trim().parse().ok())
    };
    Some((count(" passed")?, count(" failed")?))
}

#[cfg(test)]
mod tests {
    use super::parse_test_result;

    #[test]
    fn parses_libtest_summaries() {
        assert_eq!(
            parse_test_result("test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s"),
            Some((12, 0))
        );
        assert_eq!(
            parse_test_result(
                "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out"
            ),
            Some((3, 2))
        );
        assert_eq!(parse_test_result("running 3 tests"), None);
    }
}
