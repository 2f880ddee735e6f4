//! Helpers for what users do most: the commands that need an event wait, fd passing and
//! migration with progress. All are thin layers over [`Client::execute`] and
//! [`Client::execute_then_wait_event`].

use crate::{Client, Error, EventFilter, Exec, Result};
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
    /// The raw `query-migrate` reply, for everything else.
    pub raw: Value,
}

impl MigrationProgress {
    fn from_value(raw: Value) -> Self {
        let n = |p: &str| raw.pointer(p).and_then(Value::as_u64).unwrap_or(0);
        Self {
            status: raw["status"].as_str().unwrap_or("none").to_owned(),
            transferred: n("/ram/transferred"),
            total: n("/ram/total"),
            raw,
        }
    }

    /// Fraction of RAM transferred, 0.0..=1.0 (1.0 once completed).
    pub fn fraction(&self) -> f64 {
        if self.status == "completed" {
            1.0
        } else if self.total == 0 {
            0.0
        } else {
            (self.transferred as f64 / self.total as f64).min(1.0)
        }
    }
}

impl Client {
    /// `query-status`: the run state, e.g. `running`, `paused`, `prelaunch`, `postmigrate`.
    pub async fn status(&self) -> Result<String> {
        let v = self.execute("query-status", None).await?;
        v["status"].as_str().map(str::to_owned).ok_or_else(|| {
            Error::Protocol(qmp_proto::Error::BadReturn {
                command: "query-status".into(),
                reason: format!("no status in {v}"),
            })
        })
    }

    /// `device_del`, then wait for the DEVICE_DELETED event naming `id` (QEMU also sends one
    /// carrying only the backend's `path`; that one is ignored).
    pub async fn device_del_and_wait(&self, id: &str, timeout: Duration) -> Result<()> {
        let filter = EventFilter::name("DEVICE_DELETED").data_eq("/device", id);
        self.execute_then_wait_event("device_del", Some(json!({ "id": id })), filter, timeout)
            .await
            .map(|_| ())
    }

    /// `system_powerdown` (ACPI power button), then wait for SHUTDOWN. Needs a guest that
    /// handles ACPI.
    pub async fn system_powerdown_and_wait(&self, timeout: Duration) -> Result<()> {
        self.execute_then_wait_event(
            "system_powerdown",
            None,
            EventFilter::name("SHUTDOWN"),
            timeout,
        )
        .await
        .map(|_| ())
    }

    /// `getfd`: hand QEMU `fd` under `name` (unix sockets only).
    #[cfg(unix)]
    pub async fn get_fd(&self, name: &str, fd: std::os::fd::OwnedFd) -> Result<()> {
        self.execute_with(
            "getfd",
            Some(json!({ "fdname": name })),
            Exec::fds(vec![fd]),
        )
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
        let args = match fdset_id {
            Some(id) => json!({ "fdset-id": id }),
            None => json!({}),
        };
        let v = self
            .execute_with("add-fd", Some(args), Exec::fds(vec![fd]))
            .await?;
        match (v["fdset-id"].as_i64(), v["fd"].as_i64()) {
            (Some(set), Some(fd)) => Ok((set, fd)),
            _ => Err(Error::Protocol(qmp_proto::Error::BadReturn {
                command: "add-fd".into(),
                reason: format!("unexpected {v}"),
            })),
        }
    }

    /// `query-migrate`.
    pub async fn migration_progress(&self) -> Result<MigrationProgress> {
        Ok(MigrationProgress::from_value(
            self.execute("query-migrate", None).await?,
        ))
    }

    /// Start `migrate` to `uri` and poll `query-migrate` every `interval`, calling `progress`
    /// each time, until it completes (Ok), fails or is cancelled (Err), or `timeout` passes.
    pub async fn migrate_and_wait(
        &self,
        uri: &str,
        interval: Duration,
        timeout: Duration,
        mut progress: impl FnMut(&MigrationProgress),
    ) -> Result<MigrationProgress> {
        let start = Instant::now();
        self.migrate(uri).await?;
        loop {
            let p = self.migration_progress().await?;
            progress(&p);
            match p.status.as_str() {
                "completed" => return Ok(p),
                "failed" | "cancelled" => {
                    let why = p.raw["error-desc"].as_str().unwrap_or("no reason given");
                    return Err(Error::Qmp {
                        command: "migrate".into(),
                        error: qmp_proto::QmpError {
                            class: qmp_proto::ErrorClass::GenericError,
                            desc: format!("migration {}: {why}", p.status),
                        },
                    });
                }
                _ => {}
            }
            if start.elapsed() > timeout {
                return Err(Error::Timeout {
                    command: "migrate".into(),
                    after: timeout,
                });
            }
            tokio::time::sleep(interval).await;
        }
    }
}
