//! Helpers for what users do most: the commands that need an event wait, fd passing and
//! migration with progress.
//!
//! Both drivers have them, with the same names and behaviour: the async [`Client`](crate::Client)
//! (feature `async`) and [`blocking::Client`](crate::blocking::Client) (feature `blocking`). What
//! they decide (the arguments sent, the event waited for, how a reply is read, when a migration
//! is over, failed or out of time) is written once here; each driver only runs the commands.

#![cfg_attr(not(any(feature = "async", feature = "blocking")), allow(dead_code))]

use crate::{Error, EventFilter, Result};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Progress of a migration, from `query-migrate`.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationProgress {
    /// `setup`, `active`, `completed`, `failed`, ... (kept as text: QEMU adds states).
    pub status: String,
    /// RAM bytes transferred so far.
    pub transferred: u64,
    /// RAM bytes in total.
    pub total: u64,
    /// RAM bytes still to send (as QEMU counts them; `total` until QEMU reports it).
    pub remaining: u64,
    /// The raw `query-migrate` reply, for everything else.
    pub raw: Value,
}

impl MigrationProgress {
    /// Read a `query-migrate` reply (missing numbers read as 0, a missing status as `none`).
    pub fn from_value(raw: Value) -> Self {
        let n = |p: &str| raw.pointer(p).and_then(Value::as_u64);
        let total = n("/ram/total").unwrap_or(0);
        Self {
            status: raw["status"].as_str().unwrap_or("none").to_owned(),
            transferred: n("/ram/transferred").unwrap_or(0),
            total,
            remaining: n("/ram/remaining").unwrap_or(total),
            raw,
        }
    }

    /// Fraction of RAM sent, 0.0..=1.0 (1.0 once completed): `1 - remaining / total`
    /// (transferred bytes can exceed the total when pages are sent again).
    pub fn fraction(&self) -> f64 {
        if self.status == "completed" {
            1.0
        } else if self.total == 0 {
            0.0
        } else {
            (1.0 - self.remaining as f64 / self.total as f64).clamp(0.0, 1.0)
        }
    }
}

/// How long [`migrate_and_wait`](crate::Client::migrate_and_wait) waits, after cancelling a
/// migration that ran out of time, for QEMU to report it cancelled.
pub const MIGRATION_CANCEL_GRACE: Duration = Duration::from_secs(10);

/// `query-status`'s run state.
pub(crate) fn run_state(v: Value) -> Result<String> {
    v["status"].as_str().map(str::to_owned).ok_or_else(|| {
        Error::Protocol(qmp_proto::Error::BadReturn {
            command: "query-status".into(),
            reason: format!("no status in {v}"),
        })
    })
}

/// `device_del`'s arguments and the DEVICE_DELETED that says it is done. `id` is a qdev id or
/// a canonical QOM path (starting with `/`): an id must equal the event's `device`, a path its
/// `path` (the backend's event, which carries only its own, longer `path`, matches neither).
pub(crate) fn device_del(id: &str) -> (Value, EventFilter) {
    let filter = EventFilter::name("DEVICE_DELETED");
    let filter = if id.starts_with('/') {
        filter.data_eq("/path", id)
    } else {
        filter.data_eq("/device", id)
    };
    (json!({ "id": id }), filter)
}

/// What `system_powerdown` waits for.
pub(crate) fn shutdown_filter() -> EventFilter {
    EventFilter::name("SHUTDOWN")
}

/// `getfd`'s arguments.
pub(crate) fn getfd_args(name: &str) -> Result<Value> {
    if name.is_empty() {
        return Err(Error::InvalidArgument(
            "getfd needs a non-empty fd name".into(),
        ));
    }
    Ok(json!({ "fdname": name }))
}

/// `add-fd`'s arguments.
pub(crate) fn add_fd_args(fdset_id: Option<i64>) -> Result<Value> {
    match fdset_id {
        Some(id) if id < 0 => Err(Error::InvalidArgument(format!(
            "fd set id {id} is negative"
        ))),
        Some(id) => Ok(json!({ "fdset-id": id })),
        None => Ok(json!({})),
    }
}

/// `add-fd`'s reply: `(fdset_id, fd)`.
pub(crate) fn add_fd_reply(v: Value) -> Result<(i64, i64)> {
    match (v["fdset-id"].as_i64(), v["fd"].as_i64()) {
        (Some(set), Some(fd)) => Ok((set, fd)),
        _ => Err(Error::Protocol(qmp_proto::Error::BadReturn {
            command: "add-fd".into(),
            reason: format!("unexpected {v}"),
        })),
    }
}

/// A migration URI names its transport (`tcp:`, `unix:`, `fd:`, `exec:`, `file:`, ...).
pub(crate) fn check_migration_uri(uri: &str) -> Result<()> {
    if uri.contains(':') {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "migration URI {uri:?} has no transport"
        )))
    }
}

/// What a migration waiter does after a `query-migrate`.
#[derive(Debug)]
pub(crate) enum Next {
    /// Finished: return this.
    Done(Result<MigrationProgress>),
    /// Poll again after the interval.
    Wait,
    /// Out of time: send `migrate_cancel`, tell [`MigrationWatch::cancelled`], poll again.
    Cancel,
}

/// When a migration is over, failed or out of time (shared by both drivers' `migrate_and_wait`).
#[derive(Debug)]
pub(crate) struct MigrationWatch {
    started: Instant,
    timeout: Duration,
    cancelled_at: Option<Instant>,
}

impl MigrationWatch {
    pub(crate) fn new(started: Instant, timeout: Duration) -> Self {
        Self {
            started,
            timeout,
            cancelled_at: None,
        }
    }

    /// `migrate_cancel` was sent at `at`.
    pub(crate) fn cancelled(&mut self, at: Instant) {
        self.cancelled_at = Some(at);
    }

    pub(crate) fn next(&self, p: MigrationProgress, now: Instant) -> Next {
        let timed_out = |p: &MigrationProgress| Error::MigrationTimeout {
            after: self.timeout,
            status: p.status.clone(),
        };
        match (p.status.as_str(), self.cancelled_at) {
            // It may finish while being cancelled: then it is done.
            ("completed", _) => Next::Done(Ok(p)),
            ("failed" | "cancelled", Some(_)) => Next::Done(Err(timed_out(&p))),
            ("failed" | "cancelled", None) => {
                let desc = p.raw["error-desc"]
                    .as_str()
                    .unwrap_or("no reason given")
                    .to_owned();
                Next::Done(Err(Error::MigrationFailed {
                    status: p.status,
                    desc,
                }))
            }
            (_, Some(at)) if now.saturating_duration_since(at) > MIGRATION_CANCEL_GRACE => {
                Next::Done(Err(timed_out(&p)))
            }
            (_, Some(_)) => Next::Wait,
            (_, None) if now.saturating_duration_since(self.started) > self.timeout => Next::Cancel,
            (_, None) => Next::Wait,
        }
    }
}

#[cfg(feature = "async")]
impl crate::Client {
    /// `query-status`: the run state, e.g. `running`, `paused`, `prelaunch`, `postmigrate`.
    pub async fn status(&self) -> Result<String> {
        run_state(self.execute("query-status", None).await?)
    }

    /// `device_del`, then wait for the DEVICE_DELETED event that says the device is gone.
    /// `id` is the device's qdev id (matched against the event's `device`) or its canonical QOM
    /// path such as `/machine/peripheral/disk1` (matched against `path`); QEMU's extra event for
    /// a device's backend, which carries only the backend's own path, is ignored either way.
    /// Matching events dropped from the wait's full queue end it at once with
    /// [`Error::EventsLost`] (see [`execute_then_wait_event`](crate::Client::execute_then_wait_event)).
    pub async fn device_del_and_wait(&self, id: &str, timeout: Duration) -> Result<()> {
        let (args, filter) = device_del(id);
        self.execute_then_wait_event("device_del", Some(args), filter, timeout)
            .await
            .map(|_| ())
    }

    /// `system_powerdown` (ACPI power button), then wait for SHUTDOWN. Needs a guest that
    /// handles ACPI. SHUTDOWN events dropped from the wait's full queue end it at once with
    /// [`Error::EventsLost`].
    pub async fn system_powerdown_and_wait(&self, timeout: Duration) -> Result<()> {
        self.execute_then_wait_event("system_powerdown", None, shutdown_filter(), timeout)
            .await
            .map(|_| ())
    }

    /// `getfd`: hand QEMU `fd` under `name` (unix sockets only). Several at once are safe: each
    /// fd-carrying command is written once the previous one is answered.
    #[cfg(unix)]
    pub async fn get_fd(&self, name: &str, fd: std::os::fd::OwnedFd) -> Result<()> {
        let args = getfd_args(name)?;
        self.execute_with("getfd", Some(args), crate::Exec::fds(vec![fd]))
            .await
            .map(|_| ())
    }

    /// `add-fd`: put `fd` in an fd set (a new one when `fdset_id` is `None`); returns
    /// `(fdset_id, fd number in QEMU)`. Open it in QEMU as `/dev/fdset/<fdset_id>`.
    #[cfg(unix)]
    pub async fn add_fd(
        &self,
        fdset_id: Option<i64>,
        fd: std::os::fd::OwnedFd,
    ) -> Result<(i64, i64)> {
        let args = add_fd_args(fdset_id)?;
        add_fd_reply(
            self.execute_with("add-fd", Some(args), crate::Exec::fds(vec![fd]))
                .await?,
        )
    }

    /// `query-migrate`.
    pub async fn migration_progress(&self) -> Result<MigrationProgress> {
        Ok(MigrationProgress::from_value(
            self.execute("query-migrate", None).await?,
        ))
    }

    /// Start `migrate` to `uri` and poll `query-migrate` every `interval`, calling `progress`
    /// each time, until it completes (Ok). A migration that fails or is cancelled by someone
    /// else is [`Error::MigrationFailed`]. One still running after `timeout` is cancelled
    /// (`migrate_cancel`, then polled up to [`MIGRATION_CANCEL_GRACE`] until QEMU reports it
    /// over) and reported as [`Error::MigrationTimeout`], unless it completed meanwhile.
    pub async fn migrate_and_wait(
        &self,
        uri: &str,
        interval: Duration,
        timeout: Duration,
        mut progress: impl FnMut(&MigrationProgress),
    ) -> Result<MigrationProgress> {
        let mut watch = MigrationWatch::new(Instant::now(), timeout);
        self.migrate(uri).await?;
        loop {
            let p = self.migration_progress().await?;
            progress(&p);
            match watch.next(p, Instant::now()) {
                Next::Done(r) => return r,
                Next::Cancel => {
                    self.execute("migrate_cancel", None).await?;
                    watch.cancelled(Instant::now());
                }
                Next::Wait => tokio::time::sleep(interval).await,
            }
        }
    }
}

#[cfg(feature = "blocking")]
impl crate::blocking::Client {
    /// `query-status`: the run state, e.g. `running`, `paused`, `prelaunch`, `postmigrate`.
    pub fn status(&self) -> Result<String> {
        run_state(self.execute("query-status", None)?)
    }

    /// `device_del`, then wait for the DEVICE_DELETED event that says the device is gone
    /// (`id` a qdev id or a canonical QOM path; as the async
    /// [`device_del_and_wait`](crate::Client::device_del_and_wait)).
    pub fn device_del_and_wait(&self, id: &str, timeout: Duration) -> Result<()> {
        let (args, filter) = device_del(id);
        self.execute_then_wait_event("device_del", Some(args), filter, timeout)
            .map(|_| ())
    }

    /// `system_powerdown` (ACPI power button), then wait for SHUTDOWN. Needs a guest that
    /// handles ACPI. SHUTDOWN events dropped from the wait's full queue end it at once with
    /// [`Error::EventsLost`].
    pub fn system_powerdown_and_wait(&self, timeout: Duration) -> Result<()> {
        self.execute_then_wait_event("system_powerdown", None, shutdown_filter(), timeout)
            .map(|_| ())
    }

    /// `getfd`: hand QEMU `fd` under `name` (unix sockets only). Several at once are safe: each
    /// fd-carrying command is written once the previous one is answered.
    #[cfg(unix)]
    pub fn get_fd(&self, name: &str, fd: std::os::fd::OwnedFd) -> Result<()> {
        let args = getfd_args(name)?;
        self.execute_with("getfd", Some(args), crate::Exec::fds(vec![fd]))
            .map(|_| ())
    }

    /// `add-fd`: put `fd` in an fd set (a new one when `fdset_id` is `None`); returns
    /// `(fdset_id, fd number in QEMU)`. Open it in QEMU as `/dev/fdset/<fdset_id>`.
    #[cfg(unix)]
    pub fn add_fd(&self, fdset_id: Option<i64>, fd: std::os::fd::OwnedFd) -> Result<(i64, i64)> {
        let args = add_fd_args(fdset_id)?;
        add_fd_reply(self.execute_with("add-fd", Some(args), crate::Exec::fds(vec![fd]))?)
    }

    /// `query-migrate`.
    pub fn migration_progress(&self) -> Result<MigrationProgress> {
        Ok(MigrationProgress::from_value(
            self.execute("query-migrate", None)?,
        ))
    }

    /// Start `migrate` to `uri` and wait for it, reporting progress; as the async
    /// [`migrate_and_wait`](crate::Client::migrate_and_wait) (a migration out of time is
    /// cancelled and reported as [`Error::MigrationTimeout`]).
    pub fn migrate_and_wait(
        &self,
        uri: &str,
        interval: Duration,
        timeout: Duration,
        mut progress: impl FnMut(&MigrationProgress),
    ) -> Result<MigrationProgress> {
        let mut watch = MigrationWatch::new(Instant::now(), timeout);
        self.migrate(uri)?;
        loop {
            let p = self.migration_progress()?;
            progress(&p);
            match watch.next(p, Instant::now()) {
                Next::Done(r) => return r,
                Next::Cancel => {
                    self.execute("migrate_cancel", None)?;
                    watch.cancelled(Instant::now());
                }
                Next::Wait => std::thread::sleep(interval),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qmp_proto::Event;

    fn progress(status: &str) -> MigrationProgress {
        MigrationProgress::from_value(json!({"status": status, "error-desc": "boom",
            "ram": {"transferred": 10, "total": 100, "remaining": 40}}))
    }

    #[test]
    fn progress_reads_query_migrate() {
        let p = progress("active");
        assert_eq!((p.transferred, p.total, p.remaining), (10, 100, 40));
        assert!((p.fraction() - 0.6).abs() < 1e-9);
        assert_eq!(progress("completed").fraction(), 1.0);
        let empty = MigrationProgress::from_value(json!({}));
        assert_eq!((empty.status.as_str(), empty.fraction()), ("none", 0.0));
    }

    #[test]
    fn migration_watch_decides() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut w = MigrationWatch::new(t0, 10 * s);
        assert!(matches!(w.next(progress("active"), t0 + s), Next::Wait));
        assert!(matches!(
            w.next(progress("completed"), t0 + s),
            Next::Done(Ok(p)) if p.status == "completed"
        ));
        match w.next(progress("failed"), t0 + s) {
            Next::Done(Err(Error::MigrationFailed { status, desc })) => {
                assert_eq!((status.as_str(), desc.as_str()), ("failed", "boom"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            w.next(progress("active"), t0 + 11 * s),
            Next::Cancel
        ));
        w.cancelled(t0 + 11 * s);
        assert!(matches!(
            w.next(progress("cancelling"), t0 + 12 * s),
            Next::Wait
        ));
        assert!(matches!(
            w.next(progress("cancelled"), t0 + 12 * s),
            Next::Done(Err(Error::MigrationTimeout { status, after })) if status == "cancelled" && after == 10 * s
        ));
        // Completed while being cancelled: done after all.
        assert!(matches!(
            w.next(progress("completed"), t0 + 12 * s),
            Next::Done(Ok(_))
        ));
        // QEMU never confirms the cancel: give up after the grace period.
        assert!(matches!(
            w.next(progress("active"), t0 + 12 * s + MIGRATION_CANCEL_GRACE),
            Next::Done(Err(Error::MigrationTimeout { .. }))
        ));
    }

    #[test]
    fn device_del_matches_id_or_path() {
        let ev = |data: Value| Event {
            event: "DEVICE_DELETED".into(),
            data,
            timestamp: qmp_proto::Timestamp {
                seconds: 1,
                microseconds: 0,
            },
        };
        let own = ev(json!({"device": "vblk0", "path": "/machine/peripheral/vblk0"}));
        let backend = ev(json!({"path": "/machine/peripheral/vblk0/virtio-backend"}));
        let (args, by_id) = device_del("vblk0");
        assert_eq!(args, json!({"id": "vblk0"}));
        assert!(by_id.matches(&own) && !by_id.matches(&backend));
        let (args, by_path) = device_del("/machine/peripheral/vblk0");
        assert_eq!(args, json!({"id": "/machine/peripheral/vblk0"}));
        assert!(by_path.matches(&own) && !by_path.matches(&backend));
        let anon = ev(json!({"path": "/machine/peripheral-anon/device[0]"}));
        assert!(device_del("/machine/peripheral-anon/device[0]")
            .1
            .matches(&anon));
    }

    #[test]
    fn fd_arguments_and_reply() {
        assert!(matches!(getfd_args(""), Err(Error::InvalidArgument(_))));
        assert_eq!(getfd_args("a").unwrap(), json!({"fdname": "a"}));
        assert!(matches!(
            add_fd_args(Some(-1)),
            Err(Error::InvalidArgument(_))
        ));
        assert_eq!(add_fd_args(None).unwrap(), json!({}));
        assert_eq!(
            add_fd_reply(json!({"fdset-id": 3, "fd": 9})).unwrap(),
            (3, 9)
        );
        assert!(matches!(add_fd_reply(json!({})), Err(Error::Protocol(_))));
    }
}
