//! The fd plan: open file descriptors the child inherits, each at a number chosen up front so the
//! configuration can name it (`fds=3:4`, `vhostfd=5`, `-add-fd fd=6,set=1` then
//! `/dev/fdset/1`).

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::{Child, Command};

/// The largest child fd number [`FdPlan::add_at`] takes: Linux's hard ceiling on descriptor
/// numbers (`fs.nr_open` defaults to 1 048 576); the plan's temporaries go above the targets.
pub const MAX_CHILD_FD: i32 = 1 << 20;

/// File descriptors to pass to QEMU, keyed by the number the child will see.
#[derive(Debug, Default)]
pub struct FdPlan {
    fds: BTreeMap<i32, OwnedFd>,
}

impl FdPlan {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pass `fd` at the lowest free number from 3 up; returns that number.
    pub fn add(&mut self, fd: impl Into<OwnedFd>) -> i32 {
        let mut n = 3;
        while self.fds.contains_key(&n) {
            n += 1;
        }
        self.fds.insert(n, fd.into());
        n
    }

    /// Pass `fd` at `child_fd` exactly.
    /// Refused when above [`MAX_CHILD_FD`] or below 3.
    pub fn add_at(&mut self, child_fd: i32, fd: impl Into<OwnedFd>) -> Result<()> {
        if child_fd < 3 {
            return Err(Error::FdPlan(format!(
                "child fd {child_fd} would replace stdin/stdout/stderr"
            )));
        }
        if child_fd > MAX_CHILD_FD {
            return Err(Error::FdPlan(format!(
                "child fd {child_fd} is above {MAX_CHILD_FD}, the largest descriptor Linux allows \
                 (fs.nr_open)"
            )));
        }
        if self.fds.contains_key(&child_fd) {
            return Err(Error::FdPlan(format!("child fd {child_fd} planned twice")));
        }
        self.fds.insert(child_fd, fd.into());
        Ok(())
    }

    /// The numbers the child will see, ascending.
    pub fn child_fds(&self) -> Vec<i32> {
        self.fds.keys().copied().collect()
    }

    /// Check that every fd the configuration names is in the plan.
    pub fn covers(&self, needed: &[i32]) -> Result<()> {
        let missing: Vec<i32> = needed
            .iter()
            .copied()
            .filter(|n| !self.fds.contains_key(n))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::FdPlan(format!(
            "the configuration uses fds {missing:?} that the fd plan does not pass (planned: {:?})",
            self.child_fds()
        )))
    }

    /// Spawn `cmd` with the planned fds at their numbers (and, as always, stdin/stdout/stderr
    /// as `cmd` sets them; everything else std opens is close-on-exec).
    ///
    /// Between fork and exec the child moves every planned fd to its number with `dup2`, after
    /// first copying all of them above every source and target, so a source that is another
    /// fd's target (a swap, a cycle) is never overwritten before it is moved.
    ///
    /// std opens fds of its own for the spawn (`/dev/null` for null stdio, stdio pipes, and the
    /// pipe over which the child reports a failed exec), at the lowest free numbers. Were one of
    /// them at a target number, the child's `dup2` would close it: a failed exec would then be
    /// reported as a success and its error bytes written into the planned file. So while
    /// spawning, every target number that is free in this process holds a close-on-exec
    /// placeholder, and std's fds land elsewhere. (The one window left: a target number that
    /// another thread of this process closes during the spawn.)
    pub fn spawn(&self, cmd: &mut Command) -> std::io::Result<Child> {
        let pairs: Vec<(RawFd, RawFd)> = self
            .fds
            .iter()
            .map(|(n, fd)| (fd.as_raw_fd(), *n))
            .collect();
        let Some(&(any_open, _)) = pairs.first() else {
            return cmd.spawn();
        };
        let held = inherit::reserve(pairs.iter().map(|p| p.1), any_open);
        inherit::install(cmd, pairs);
        let child = cmd.spawn();
        drop(held);
        child
    }
}

#[allow(unsafe_code)]
mod inherit {
    //! The crate's only unsafe code: moving fds to fixed numbers in the child between fork and
    //! exec, and holding the target numbers free of std's own fds during the spawn.

    use std::os::fd::{FromRawFd, OwnedFd, RawFd};
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    /// Close-on-exec placeholders at every number of `targets` that is free in this process
    /// (copies of `any_open`), held by the caller for the duration of a spawn.
    pub(super) fn reserve(targets: impl Iterator<Item = RawFd>, any_open: RawFd) -> Vec<OwnedFd> {
        let mut held = Vec::new();
        for n in targets {
            // SAFETY: F_GETFD only queries the descriptor table; no fd is used or closed.
            if unsafe { libc::fcntl(n, libc::F_GETFD) } != -1 {
                continue; // taken (by the plan's sources or anything else): std cannot get it
            }
            // SAFETY: duplicating an fd the plan owns (open for the whole call) to the lowest
            // free number >= n; the result, if any, is a new fd owned by nobody else.
            let t = unsafe { libc::fcntl(any_open, libc::F_DUPFD_CLOEXEC, n) };
            if t < 0 {
                continue; // above RLIMIT_NOFILE: the child's dup2 fails and spawn reports it
            }
            // SAFETY: `t` was just created by F_DUPFD_CLOEXEC and is owned here only.
            let fd = unsafe { OwnedFd::from_raw_fd(t) };
            if t == n {
                held.push(fd);
            } // else another thread took n meanwhile: taken, fine; the copy is closed
        }
        held
    }

    pub(super) fn install(cmd: &mut Command, pairs: Vec<(RawFd, RawFd)>) {
        // Temporaries go above every target so no dup2 target can clobber a source not yet moved.
        let base = pairs.iter().map(|p| p.1.max(p.0)).max().unwrap_or(2) + 1;
        let mut tmp: Vec<RawFd> = vec![-1; pairs.len()];
        // SAFETY: the closure runs in the forked child before exec. It only calls fcntl and dup2
        // (async-signal-safe), allocates nothing (`tmp` is sized beforehand, indexed in place)
        // and touches no locks. The source fds stay open in the parent until spawn returns
        // because the FdPlan owning them is borrowed for the spawn. Temporaries are
        // close-on-exec; dup2 clears close-on-exec on the targets, so exactly the planned
        // numbers survive exec.
        unsafe {
            cmd.pre_exec(move || {
                for (k, (src, _)) in pairs.iter().enumerate() {
                    let t = libc::fcntl(*src, libc::F_DUPFD_CLOEXEC, base);
                    if t < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    tmp[k] = t;
                }
                for (k, (_, dst)) in pairs.iter().enumerate() {
                    if libc::dup2(tmp[k], *dst) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
}
