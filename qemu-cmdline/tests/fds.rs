//! The fd plan against real children: every planned fd arrives at its number with the right
//! file, whatever the parent's numbers (a source that is another fd's target: swaps, cycles),
//! and std's own spawn fds never sit on a target number. One test in this binary: it relies
//! on which fd numbers are free in the process, so no other test may open fds meanwhile.

use qemu_cmdline::FdPlan;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where each of `fds` points in a child spawned with `plan` (readlink of /proc/self/fd/N, run
/// as the child itself), and the numbers the child holds open.
fn in_child(plan: &FdPlan, fds: &[i32]) -> (Vec<PathBuf>, Vec<i32>) {
    let mut cmd = Command::new("sh");
    // `ls` lists its own fds (it opens one more, for the directory), readlink resolves ours
    let script = "ls -1 /proc/self/fd; echo --; exec readlink \"$@\"";
    cmd.arg("-c").arg(script).arg("sh");
    cmd.args(fds.iter().map(|n| format!("/proc/self/fd/{n}")));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = plan
        .spawn(&mut cmd)
        .expect("spawn sh")
        .wait_with_output()
        .expect("wait");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (open, links) = text.split_once("--\n").expect("two parts");
    let open = open
        .lines()
        .map(|l| l.parse().expect("an fd number"))
        .collect();
    (links.lines().map(PathBuf::from).collect(), open)
}

/// This process's fds without close-on-exec (`flags:` in /proc/self/fdinfo, octal, lacks
/// O_CLOEXEC): every child inherits them, planned or not.
fn inheritable_fds() -> Vec<i32> {
    const O_CLOEXEC: u32 = 0o2_000_000;
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc/self/fdinfo").expect("fdinfo") {
        let e = e.expect("entry");
        let Ok(n) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(info) = std::fs::read_to_string(e.path()) else {
            continue; // the directory's own fd, closed by now
        };
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
            .expect("flags in fdinfo");
        if flags & O_CLOEXEC == 0 {
            v.push(n);
        }
    }
    v
}

fn file(dir: &Path, name: &str) -> (File, PathBuf) {
    let p = dir.join(name);
    let f = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .expect("open");
    (f, p.canonicalize().expect("canonical"))
}

#[test]
fn planned_fds_arrive_at_their_numbers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();

    // --- swaps, a cycle, a fd at its own number, a high number, an automatic number
    let mut plan = FdPlan::new();
    let mut want: Vec<(i32, PathBuf)> = Vec::new();
    let [(a, pa), (b, pb), (c, pc)] = ["a", "b", "c"].map(|n| file(d, n));
    let (x, y, z) = (a.as_raw_fd(), b.as_raw_fd(), c.as_raw_fd());
    // a 3-cycle: each file goes where the next one is in the parent
    plan.add_at(y, a).expect("a at y");
    plan.add_at(z, b).expect("b at z");
    plan.add_at(x, c).expect("c at x");
    want.extend([(y, pa), (z, pb), (x, pc)]);
    // a swap
    let [(e, pe), (f, pf)] = ["e", "f"].map(|n| file(d, n));
    let (ne, nf) = (e.as_raw_fd(), f.as_raw_fd());
    plan.add_at(nf, e).expect("e at f's number");
    plan.add_at(ne, f).expect("f at e's number");
    want.extend([(nf, pe), (ne, pf)]);
    // its own number
    let (g, pg) = file(d, "g");
    let ng = g.as_raw_fd();
    plan.add_at(ng, g).expect("g at its number");
    want.push((ng, pg));
    // far above anything open
    let (h, ph) = file(d, "h");
    plan.add_at(700, h).expect("h at 700");
    want.push((700, ph));
    // the lowest number no other planned fd has
    let (i, pi) = file(d, "i");
    let ni = plan.add(i);
    want.push((ni, pi));
    // and the refusals
    let (j, _) = file(d, "j");
    assert!(plan.add_at(700, j).is_err(), "a number planned twice");
    let (k, _) = file(d, "k");
    assert!(plan.add_at(2, k).is_err(), "stderr");

    let numbers: Vec<i32> = want.iter().map(|w| w.0).collect();
    let (links, open) = in_child(&plan, &numbers);
    for ((n, path), got) in want.iter().zip(&links) {
        assert_eq!(got, path, "fd {n} in the child");
    }
    assert_eq!(links.len(), want.len());
    // nothing else leaked (no temporary, no source at its parent number): the child holds
    // stdio, the planned fds, what this test process itself inherited without close-on-exec
    // (a test runner's fds), and the one `ls` opened itself
    let mut expected: Vec<i32> = [0, 1, 2].into_iter().chain(numbers.clone()).collect();
    expected.sort_unstable();
    let inherited = inheritable_fds();
    let extra: Vec<i32> = open
        .iter()
        .filter(|n| !expected.contains(n) && !inherited.contains(n))
        .copied()
        .collect();
    assert_eq!(
        extra.len(),
        1,
        "child fds {open:?}, planned {expected:?}, inheritable here {inherited:?}"
    );
    assert!(expected.iter().all(|n| open.contains(n)), "{open:?}");
    drop(plan);

    // --- std's own spawn fds (null stdio, the exec-error pipe) take the lowest free numbers:
    // plan files exactly there, then make the exec fail. std must report the failure (it
    // would report success, and write its error into our file, had a dup2 closed its pipe)
    let files: Vec<(File, PathBuf)> = (0..6).map(|n| file(d, &format!("low{n}"))).collect();
    let probes: Vec<File> = (0..6)
        .map(|_| File::open("/dev/null").expect("/dev/null"))
        .collect();
    let lowest: Vec<i32> = probes.iter().map(AsRawFd::as_raw_fd).collect();
    drop(probes); // now free: exactly where std's fds would go
    let mut plan = FdPlan::new();
    let mut paths = Vec::new();
    for ((f, p), n) in files.into_iter().zip(&lowest) {
        plan.add_at(*n, f).expect("plan");
        paths.push(p);
    }
    let mut cmd = Command::new(d.join("no-such-binary"));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match plan.spawn(&mut cmd) {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}"),
        Ok(mut child) => {
            let status = child.wait().expect("wait");
            panic!("a missing binary spawned (exit {status}): std's exec-error pipe was lost");
        }
    }
    for p in &paths {
        assert_eq!(std::fs::read(p).expect("read"), b"", "{p:?} was written to");
    }
    // and with a binary that exists, the files arrive at those low numbers
    let (links, _) = in_child(&plan, &lowest);
    assert_eq!(links, paths);
}
