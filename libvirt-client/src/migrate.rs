//! Live migration between two daemons, driven by this client (libvirt's v3 protocol) or by the
//! source daemon (peer-to-peer, optionally tunnelled).
//!
//! # Client-driven (v3)
//! [`Migration::run`] holds a source and a destination connection and runs the five steps as
//! libvirt's `virDomainMigrateVersion3Full` does, passing each step's cookie to the next:
//!
//! 1. `Begin3` on the source: the domain XML for the destination (from `xmlin` if given) and a
//!    cookie. `VIR_MIGRATE_CHANGE_PROTECTION` is added to the source's flags (Begin3, Perform3,
//!    Confirm3) whenever the source daemon supports it, as libvirt does: Begin3 then starts a
//!    migration job that keeps the guest from being changed until Confirm3 ends it;
//! 2. `Prepare3` on the destination: starts an incoming guest (paused, waiting for the
//!    migration stream) and may choose the migration URI;
//! 3. `Perform3` on the source: QEMU sends the guest (progress is polled meanwhile with job
//!    stats);
//! 4. `Finish3` on the destination, with `cancelled = 1` when Perform failed: resumes the new
//!    guest, or kills it;
//! 5. `Confirm3` on the source, with `cancelled = 1` when Finish returned no domain: stops the
//!    old guest, or resumes it. Skipped when Perform failed (the source already knows).
//!
//! The `*_PARAMS` procedures are used when both daemons support
//! `VIR_DRV_FEATURE_MIGRATION_PARAMS`, the plain ones otherwise ([`Protocol`]).
//!
//! # Failures and cleanup (as `virDomainMigrateVersion3Full`)
//! The FIRST failure is what the caller sees; later steps that fail while cleaning up do not
//! overwrite it. Step by step:
//!
//! - Begin3 fails: its error, nothing else is called.
//! - Prepare3 fails: with change protection (a job was started by Begin3) Confirm3 is called
//!   with `cancelled = 1` and an empty cookie to end that job, and its own result is ignored;
//!   without change protection nothing is called. Prepare's error is returned either way.
//! - Prepare3 succeeds but neither it nor the caller set a migration URI: Perform3 is skipped,
//!   Finish3 gets `cancelled = 1` and Prepare's cookie, Confirm3 follows as after any Finish;
//!   the caller gets [`Error::Migration`] with [`Phase::Prepare`].
//! - `VIR_MIGRATE_OFFLINE`: Perform3 is skipped, Finish3 gets `cancelled = 0` and no cookie.
//! - Perform3 fails: Finish3 with `cancelled = 1`, no Confirm3; Perform's error is returned,
//!   with libvirt's one exception: when it is QEMU's generic `VIR_ERR_OPERATION_FAILED` and
//!   Finish reported a more specific QEMU error (not `VIR_ERR_MIGRATE_FINISH_OK`), Finish's error
//!   is returned instead.
//! - Finish3 fails after a good Perform: Confirm3 with `cancelled = 1` resumes the source guest;
//!   Finish's error is returned.
//! - Confirm3 fails after a good Finish: the guest runs on the destination and that domain is
//!   returned (the source copy may stay paused, as libvirt warns).
//! - A destination whose Finish3 returns a domain although told `cancelled = 1`: libvirt logs
//!   this and returns the domain, and so does [`Migration::run`] (the guest does run there).
//!
//! # Errors
//! Options that cannot be honoured are refused before any migration call with
//! [`Error::InvalidMigration`]: a zero progress interval; `VIR_MIGRATE_PEER2PEER` or
//! `VIR_MIGRATE_TUNNELLED` given to [`Migration`] (only the source daemon runs that path: use
//! [`peer_to_peer`]); and, whenever the plain procedures are used ([`Protocol::Plain`], or
//! [`Protocol::Auto`] with a daemon lacking migration parameters), `persist_xml` or any extra
//! typed parameter, which plain v3 cannot carry (libvirt's client refuses them the same way,
//! with `VIR_ERR_ARGUMENT_UNSUPPORTED`, instead of dropping them).
//!
//! A failed step comes as [`Error::MigrationStep`]: [`Error::migration_phase`] tells which step
//! (and so which daemon) failed, [`Error::remote`] gives the daemon's own error.
//!
//! # Cancellation
//! The progress callback returns `ControlFlow::Break(())` to cancel: the orchestrator calls
//! `DOMAIN_ABORT_JOB` on the source (retrying at the next poll if the daemon refuses) and stops
//! calling the callback. The aborted Perform3 fails, the steps above clean up (Finish3 kills the
//! prepared guest, the source guest keeps running) and the caller gets
//! [`Error::MigrationCancelled`] wrapping the step's error (the daemon's
//! `VIR_ERR_OPERATION_ABORTED`). Only a migration whose abort the source daemon ACCEPTED is
//! reported as cancelled: when every abort was refused, whatever Perform3 returned is returned
//! as is. A Break that comes after QEMU finished sending cannot undo the migration: the result
//! is then the migrated domain, as with `virDomainAbortJob` racing a finishing job.
//!
//! # Dropping a migration
//! Dropping the future of [`Migration::run`] or [`Migration::complete`] WHILE PERFORM3 RUNS
//! spawns, on the current tokio runtime, a clean-up task: `DOMAIN_ABORT_JOB` on the source,
//! Finish3 with `cancelled = 1` on the destination (its prepared guest is killed), Confirm3 with
//! `cancelled = 1` on the source (in case Perform3 completed meanwhile), all errors ignored. It
//! is best effort: it needs the runtime to keep running and both connections open. Dropped at
//! any other point (during Begin3/Prepare3, or during Finish3/Confirm3, whose outcome is then
//! unknown) nothing is undone by this client: the source's migration job and the destination's
//! paused guest stay until the daemons clean up when the connections close (see AUTODESTROY),
//! so drop the [`Client`]s too if a migration future has to be dropped there.
//!
//! # AUTODESTROY
//! The destination daemon ties the guest that `Prepare3` starts to the connection that
//! prepared it: if that connection closes before `Finish3` (the controlling client died), the
//! daemon destroys the half-migrated guest; the source daemon likewise cancels the outgoing job
//! when the source connection closes. Keep both [`Client`]s alive for the whole migration.
//!
//! # Peer-to-peer
//! [`peer_to_peer`] asks the source daemon to connect to the destination itself
//! (`Perform3` with `VIR_MIGRATE_PEER2PEER`, plus `VIR_MIGRATE_TUNNELLED` to carry the data
//! over the daemons' connection), as go-libvirt's `Migrate` does.

use std::ops::ControlFlow;
use std::time::Duration;

use libvirt_proto::generated::api::{
    DomainGetJobStatsFlags, DomainJobType, DomainMigrateFlags, DomainMigrateMaxSpeedFlags,
    DomainState, ErrorDomain, ErrorNumber,
};
use libvirt_proto::generated::remote::{
    procs, RemoteDomainGetJobStatsArgs, RemoteDomainMigrateFinish3Args,
    RemoteDomainMigrateFinish3ParamsArgs, RemoteDomainMigrateGetCompressionCacheArgs,
    RemoteDomainMigrateGetMaxDowntimeArgs, RemoteDomainMigrateGetMaxSpeedArgs,
    RemoteDomainMigratePerform3Args, RemoteDomainMigratePerform3ParamsArgs,
    RemoteDomainMigrateSetCompressionCacheArgs, RemoteDomainMigrateSetMaxDowntimeArgs,
    RemoteDomainMigrateSetMaxSpeedArgs, RemoteNonnullDomain, RemoteTypedParam,
    RemoteTypedParamValue,
};
use xdr::Opaque;

use crate::{Client, Error};

/// Bound on each cleanup call made after a dropped migration (it runs unattended).
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(60);

/// `VIR_DRV_FEATURE_MIGRATION_V3`.
pub const FEATURE_MIGRATION_V3: i32 = 6;
/// `VIR_DRV_FEATURE_MIGRATE_CHANGE_PROTECTION`.
pub const FEATURE_MIGRATE_CHANGE_PROTECTION: i32 = 7;
/// `VIR_DRV_FEATURE_MIGRATION_P2P`.
pub const FEATURE_MIGRATION_P2P: i32 = 4;
/// `VIR_DRV_FEATURE_MIGRATION_PARAMS`.
pub const FEATURE_MIGRATION_PARAMS: i32 = 13;

/// Names of libvirt's migration parameters (`VIR_MIGRATE_PARAM_*`).
pub mod param {
    /// `VIR_MIGRATE_PARAM_URI`: where QEMU sends the migration stream.
    pub const URI: &str = "migrate_uri";
    /// `VIR_MIGRATE_PARAM_DEST_NAME`: the guest's name on the destination.
    pub const DEST_NAME: &str = "destination_name";
    /// `VIR_MIGRATE_PARAM_DEST_XML`: the guest's XML on the destination.
    pub const DEST_XML: &str = "destination_xml";
    /// `VIR_MIGRATE_PARAM_PERSIST_XML`: the persistent definition on the destination.
    pub const PERSIST_XML: &str = "persistent_xml";
    /// `VIR_MIGRATE_PARAM_BANDWIDTH`: MiB/s (ullong).
    pub const BANDWIDTH: &str = "bandwidth";
    /// `VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY`: MiB/s once in post-copy (ullong).
    pub const BANDWIDTH_POSTCOPY: &str = "bandwidth.postcopy";
    /// `VIR_MIGRATE_PARAM_GRAPHICS_URI`.
    pub const GRAPHICS_URI: &str = "graphics_uri";
    /// `VIR_MIGRATE_PARAM_LISTEN_ADDRESS`.
    pub const LISTEN_ADDRESS: &str = "listen_address";
    /// `VIR_MIGRATE_PARAM_MIGRATE_DISKS` (may repeat).
    pub const MIGRATE_DISKS: &str = "migrate_disks";
    /// `VIR_MIGRATE_PARAM_DISKS_PORT`.
    pub const DISKS_PORT: &str = "disks_port";
    /// `VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS`.
    pub const PARALLEL_CONNECTIONS: &str = "parallel.connections";
    /// `VIR_MIGRATE_PARAM_TLS_DESTINATION`.
    pub const TLS_DESTINATION: &str = "tls.destination";
}

/// Which procedure family to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// `*_PARAMS` when both daemons support migration parameters, plain v3 otherwise.
    #[default]
    Auto,
    /// Always the `*_PARAMS` procedures.
    Params,
    /// Always the plain v3 procedures (no typed parameters beyond URI, name, XML, bandwidth).
    Plain,
}

/// What to migrate how. Build with [`MigrateOptions::new`] and the setters.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct MigrateOptions {
    /// `VIR_MIGRATE_*` flags (`LIVE`, `PERSIST_DEST`, `UNDEFINE_SOURCE`, ...).
    pub flags: DomainMigrateFlags,
    /// Migration URI for QEMU (e.g. `tcp:127.0.0.1:49152`); `None`: the destination picks.
    pub uri: Option<String>,
    /// The guest's name on the destination.
    pub dname: Option<String>,
    /// Domain XML to use for the destination (`xmlin` / `VIR_MIGRATE_PARAM_DEST_XML`).
    pub xmlin: Option<String>,
    /// Persistent XML on the destination (params protocol only).
    pub persist_xml: Option<String>,
    /// Bandwidth limit in MiB/s.
    pub bandwidth_mib: Option<u64>,
    /// Further typed parameters (params protocol only), see [`param`].
    pub extra: Vec<RemoteTypedParam>,
    /// Procedure family.
    pub protocol: Protocol,
    /// How often progress is polled during Perform (default 200 ms).
    pub progress_interval: Option<Duration>,
    /// Timeout of the steps that last as long as the transfer (Perform3, Finish3); `None`
    /// (the default): none, as in libvirt, whose client sets no call timeouts. The client's
    /// [`call_timeout`](crate::ClientOptions::call_timeout) (60 s by default) would otherwise
    /// cut any migration longer than that; a dead daemon is still noticed by keepalive, and
    /// the caller can cancel from the progress callback.
    pub transfer_timeout: Option<Duration>,
}

impl MigrateOptions {
    /// Options with `flags`.
    pub fn new(flags: DomainMigrateFlags) -> Self {
        Self {
            flags,
            ..Self::default()
        }
    }
    /// Set [`MigrateOptions::uri`].
    pub fn uri(mut self, uri: impl Into<String>) -> Self {
        self.uri = Some(uri.into());
        self
    }
    /// Set [`MigrateOptions::dname`].
    pub fn dname(mut self, name: impl Into<String>) -> Self {
        self.dname = Some(name.into());
        self
    }
    /// Set [`MigrateOptions::xmlin`].
    pub fn xmlin(mut self, xml: impl Into<String>) -> Self {
        self.xmlin = Some(xml.into());
        self
    }
    /// Set [`MigrateOptions::persist_xml`].
    pub fn persist_xml(mut self, xml: impl Into<String>) -> Self {
        self.persist_xml = Some(xml.into());
        self
    }
    /// Set [`MigrateOptions::bandwidth_mib`].
    pub fn bandwidth_mib(mut self, mib_per_s: u64) -> Self {
        self.bandwidth_mib = Some(mib_per_s);
        self
    }
    /// Add a typed parameter (see [`param`]).
    pub fn param(mut self, field: &str, value: RemoteTypedParamValue) -> Self {
        self.extra.push(RemoteTypedParam {
            field: field.to_owned(),
            value,
        });
        self
    }
    /// Set [`MigrateOptions::protocol`].
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }
    /// Set [`MigrateOptions::transfer_timeout`].
    pub fn transfer_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.transfer_timeout = timeout;
        self
    }
    /// Set [`MigrateOptions::progress_interval`].
    pub fn progress_interval(mut self, every: Duration) -> Self {
        self.progress_interval = Some(every);
        self
    }

    /// The typed parameter list libvirt's params procedures take.
    pub fn params(&self) -> Vec<RemoteTypedParam> {
        let mut v = Vec::new();
        let s = |f: &str, x: &String| RemoteTypedParam {
            field: f.to_owned(),
            value: RemoteTypedParamValue::String(x.clone()),
        };
        if let Some(x) = &self.uri {
            v.push(s(param::URI, x));
        }
        if let Some(x) = &self.dname {
            v.push(s(param::DEST_NAME, x));
        }
        if let Some(x) = &self.xmlin {
            v.push(s(param::DEST_XML, x));
        }
        if let Some(x) = &self.persist_xml {
            v.push(s(param::PERSIST_XML, x));
        }
        if let Some(b) = self.bandwidth_mib {
            v.push(RemoteTypedParam {
                field: param::BANDWIDTH.to_owned(),
                value: RemoteTypedParamValue::Ullong(b),
            });
        }
        v.extend(self.extra.iter().cloned());
        v
    }
}

/// Replace (or add) a string parameter.
fn set_string(params: &mut Vec<RemoteTypedParam>, field: &str, value: &str) {
    params.retain(|p| p.field != field);
    params.push(RemoteTypedParam {
        field: field.to_owned(),
        value: RemoteTypedParamValue::String(value.to_owned()),
    });
}

fn get_string<'a>(params: &'a [RemoteTypedParam], field: &str) -> Option<&'a str> {
    params.iter().find_map(|p| match &p.value {
        RemoteTypedParamValue::String(s) if p.field == field => Some(s.as_str()),
        _ => None,
    })
}

/// A step of the v3 protocol (the crate's [`MigrationPhase`](crate::MigrationPhase)).
pub use crate::error::MigrationPhase as Phase;

/// Wrap a step's error with the step ([`Error::MigrationStep`]).
fn at(phase: Phase) -> impl FnOnce(Error) -> Error {
    move |error| Error::MigrationStep {
        phase,
        error: Box::new(error),
    }
}

fn invalid(option: &str, reason: impl Into<String>) -> Error {
    Error::InvalidMigration {
        option: option.to_owned(),
        reason: reason.into(),
    }
}

/// Checks that need no daemon: the progress interval, and for the client-driven protocol
/// ([`Migration`]) the flags that only the source daemon's peer-to-peer path handles.
fn check_static(opts: &MigrateOptions, client_driven: bool) -> Result<(), Error> {
    if opts.progress_interval == Some(Duration::ZERO) {
        return Err(invalid(
            "progress_interval",
            "must be longer than zero (it is the period of the job statistics polling)",
        ));
    }
    let p2p = DomainMigrateFlags::PEER2PEER | DomainMigrateFlags::TUNNELLED;
    if client_driven && opts.flags.intersects(p2p) {
        return Err(invalid(
            "flags",
            "VIR_MIGRATE_PEER2PEER and VIR_MIGRATE_TUNNELLED make the source daemon run the \
             migration itself: use migrate::peer_to_peer, not Migration::run",
        ));
    }
    Ok(())
}

/// Without the params procedures only the URI, the destination name, the destination XML and
/// the bandwidth can be passed (through their setters); libvirt's client refuses anything else
/// with `VIR_ERR_ARGUMENT_UNSUPPORTED` ("extended parameters were passed") rather than drop it,
/// and so does this one.
fn check_plain(opts: &MigrateOptions) -> Result<(), Error> {
    const WHY: &str = "the plain v3 procedures cannot carry it (use Protocol::Params with daemons \
                       that support VIR_DRV_FEATURE_MIGRATION_PARAMS)";
    if opts.persist_xml.is_some() {
        return Err(invalid("persist_xml", WHY));
    }
    if let Some(p) = opts.extra.first() {
        let why = match p.field.as_str() {
            param::URI | param::DEST_NAME | param::DEST_XML | param::BANDWIDTH => {
                "with the plain v3 procedures set it with its MigrateOptions setter (uri, \
                 dname, xmlin, bandwidth_mib)"
            }
            _ => WHY,
        };
        return Err(invalid(&p.field, why));
    }
    Ok(())
}

/// Progress of a running migration job (from `DOMAIN_GET_JOB_STATS` on the source).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Progress {
    /// Job type (`VIR_DOMAIN_JOB_*`; `UNBOUNDED` while running).
    pub job_type: DomainJobType,
    /// Milliseconds since the job started.
    pub time_elapsed_ms: Option<u64>,
    /// Bytes to transfer in total (memory + disks), when known.
    pub data_total: Option<u64>,
    /// Bytes transferred.
    pub data_processed: Option<u64>,
    /// Bytes left.
    pub data_remaining: Option<u64>,
    /// Memory bytes transferred.
    pub memory_processed: Option<u64>,
    /// Memory transfer rate, bytes/s.
    pub memory_bps: Option<u64>,
    /// Every statistic the daemon sent.
    pub raw: Vec<RemoteTypedParam>,
}

impl Progress {
    /// Parse job statistics.
    pub fn from_stats(job_type: i32, params: Vec<RemoteTypedParam>) -> Progress {
        let u = |name: &str| {
            params.iter().find_map(|p| match p.value {
                RemoteTypedParamValue::Ullong(v) if p.field == name => Some(v),
                RemoteTypedParamValue::Uint(v) if p.field == name => Some(u64::from(v)),
                _ => None,
            })
        };
        Progress {
            job_type: DomainJobType(job_type),
            time_elapsed_ms: u("time_elapsed"),
            data_total: u("data_total"),
            data_processed: u("data_processed"),
            data_remaining: u("data_remaining"),
            memory_processed: u("memory_processed"),
            memory_bps: u("memory_bps"),
            raw: params,
        }
    }

    /// Fraction done in `0.0..=1.0`, when the totals are known: `(total - remaining) / total`
    /// (`processed / total` when the daemon sends no remaining). Processed bytes are what went
    /// over the wire, and QEMU sends zero pages as a few bytes each, so they undercount.
    pub fn fraction(&self) -> Option<f64> {
        let total = self.data_total.filter(|t| *t > 0)?;
        let done = self
            .data_remaining
            .map(|r| total.saturating_sub(r))
            .or(self.data_processed)?;
        Some((done as f64 / total as f64).clamp(0.0, 1.0))
    }
}

/// The migration job's statistics on `dom` (`DOMAIN_GET_JOB_STATS`).
pub async fn job_progress(client: &Client, dom: &RemoteNonnullDomain) -> Result<Progress, Error> {
    job_stats(client, dom, DomainGetJobStatsFlags::empty()).await
}

async fn job_stats(
    client: &Client,
    dom: &RemoteNonnullDomain,
    flags: DomainGetJobStatsFlags,
) -> Result<Progress, Error> {
    let r = client
        .call::<procs::DomainGetJobStats>(&RemoteDomainGetJobStatsArgs {
            dom: dom.clone(),
            flags: flags.bits(),
        })
        .await?;
    Ok(Progress::from_stats(r.r#type, r.params))
}

/// Statistics of the job `dom` completed last (`VIR_DOMAIN_JOB_STATS_COMPLETED`): after a
/// migration the destination daemon has the whole migration's totals (libvirt sends them in
/// Finish's cookie), so this is the measured end state of what `Progress` showed while running.
pub async fn completed_job_progress(
    client: &Client,
    dom: &RemoteNonnullDomain,
) -> Result<Progress, Error> {
    job_stats(client, dom, DomainGetJobStatsFlags::COMPLETED).await
}

/// Cancel the running job of `dom` (`DOMAIN_ABORT_JOB`, as `virDomainAbortJob`); a running
/// migration fails with `VIR_ERR_OPERATION_ABORTED` and the guest stays on the source. The
/// orchestrator calls this itself when its progress callback returns `ControlFlow::Break`.
pub async fn abort(client: &Client, dom: &RemoteNonnullDomain) -> Result<(), Error> {
    client.domain_abort_job(dom.clone()).await
}

/// Set the bandwidth limit of `dom`'s migration (MiB/s), also while it runs.
pub async fn set_max_speed(
    client: &Client,
    dom: &RemoteNonnullDomain,
    mib_per_s: u64,
) -> Result<(), Error> {
    set_speed(client, dom, mib_per_s, DomainMigrateMaxSpeedFlags::empty()).await
}

/// The bandwidth limit of `dom`'s migration (MiB/s).
pub async fn max_speed(client: &Client, dom: &RemoteNonnullDomain) -> Result<u64, Error> {
    get_speed(client, dom, DomainMigrateMaxSpeedFlags::empty()).await
}

/// Set the bandwidth limit of `dom`'s migration once it switched to post-copy (MiB/s;
/// `VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY`, libvirt >= 5.1). The QEMU driver needs a running
/// guest for it.
pub async fn set_postcopy_max_speed(
    client: &Client,
    dom: &RemoteNonnullDomain,
    mib_per_s: u64,
) -> Result<(), Error> {
    set_speed(
        client,
        dom,
        mib_per_s,
        DomainMigrateMaxSpeedFlags::DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY,
    )
    .await
}

/// The post-copy bandwidth limit of `dom`'s migration (MiB/s;
/// `VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY`).
pub async fn postcopy_max_speed(client: &Client, dom: &RemoteNonnullDomain) -> Result<u64, Error> {
    get_speed(
        client,
        dom,
        DomainMigrateMaxSpeedFlags::DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY,
    )
    .await
}

async fn set_speed(
    client: &Client,
    dom: &RemoteNonnullDomain,
    mib_per_s: u64,
    flags: DomainMigrateMaxSpeedFlags,
) -> Result<(), Error> {
    client
        .call::<procs::DomainMigrateSetMaxSpeed>(&RemoteDomainMigrateSetMaxSpeedArgs {
            dom: dom.clone(),
            bandwidth: mib_per_s,
            flags: flags.bits(),
        })
        .await
}

async fn get_speed(
    client: &Client,
    dom: &RemoteNonnullDomain,
    flags: DomainMigrateMaxSpeedFlags,
) -> Result<u64, Error> {
    Ok(client
        .call::<procs::DomainMigrateGetMaxSpeed>(&RemoteDomainMigrateGetMaxSpeedArgs {
            dom: dom.clone(),
            flags: flags.bits(),
        })
        .await?
        .bandwidth)
}

/// Set the tolerated downtime of `dom`'s live migration (milliseconds).
pub async fn set_max_downtime(
    client: &Client,
    dom: &RemoteNonnullDomain,
    ms: u64,
) -> Result<(), Error> {
    client
        .call::<procs::DomainMigrateSetMaxDowntime>(&RemoteDomainMigrateSetMaxDowntimeArgs {
            dom: dom.clone(),
            downtime: ms,
            flags: 0,
        })
        .await
}

/// The tolerated downtime of `dom`'s live migration (milliseconds).
pub async fn max_downtime(client: &Client, dom: &RemoteNonnullDomain) -> Result<u64, Error> {
    Ok(client
        .call::<procs::DomainMigrateGetMaxDowntime>(&RemoteDomainMigrateGetMaxDowntimeArgs {
            dom: dom.clone(),
            flags: 0,
        })
        .await?
        .downtime)
}

/// Set the XBZRLE compression cache size (bytes) of `dom`'s migration.
pub async fn set_compression_cache(
    client: &Client,
    dom: &RemoteNonnullDomain,
    bytes: u64,
) -> Result<(), Error> {
    client
        .call::<procs::DomainMigrateSetCompressionCache>(
            &RemoteDomainMigrateSetCompressionCacheArgs {
                dom: dom.clone(),
                cache_size: bytes,
                flags: 0,
            },
        )
        .await
}

/// The XBZRLE compression cache size (bytes) of `dom`'s migration.
pub async fn compression_cache(client: &Client, dom: &RemoteNonnullDomain) -> Result<u64, Error> {
    Ok(client
        .call::<procs::DomainMigrateGetCompressionCache>(
            &RemoteDomainMigrateGetCompressionCacheArgs {
                dom: dom.clone(),
                flags: 0,
            },
        )
        .await?
        .cache_size)
}

async fn supports(client: &Client, feature: i32) -> Result<bool, Error> {
    client
        .connect_supports_feature(feature)
        .await
        .map(|r| r != 0)
}

/// Whether to use the params procedures for `protocol` with these two daemons.
async fn use_params(src: &Client, dst: &Client, protocol: Protocol) -> Result<bool, Error> {
    Ok(match protocol {
        Protocol::Params => true,
        Protocol::Plain => false,
        Protocol::Auto => {
            supports(src, FEATURE_MIGRATION_PARAMS).await?
                && supports(dst, FEATURE_MIGRATION_PARAMS).await?
        }
    })
}

/// The state after `Prepare3`: what the next steps need. Returned by [`Migration::prepare`]
/// so that callers (and tests) can run the steps one by one.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Whether the params procedures are in use.
    pub use_params: bool,
    /// Flags sent to the source (with `CHANGE_PROTECTION` when supported, `PAUSED` when the
    /// guest was paused).
    pub flags: DomainMigrateFlags,
    /// Flags sent to the destination.
    pub dest_flags: DomainMigrateFlags,
    /// The parameters (with `destination_xml` and `migrate_uri` updated).
    pub params: Vec<RemoteTypedParam>,
    /// The migration URI (the destination's, else ours); `None` when neither chose one, in
    /// which case [`Migration::complete`] cancels instead of performing.
    pub uri: Option<String>,
    /// The destination's cookie for Perform.
    pub cookie: Opaque,
}

/// A client-driven migration: source and destination connections.
#[derive(Debug, Clone)]
pub struct Migration {
    /// Connection to the source daemon.
    pub source: Client,
    /// Connection to the destination daemon.
    pub dest: Client,
}

impl Migration {
    /// A migration from `source` to `dest`.
    pub fn new(source: Client, dest: Client) -> Self {
        Migration { source, dest }
    }

    /// Run all five steps; returns the guest on the destination. `progress` is called with
    /// the source's job statistics while Perform runs; returning `ControlFlow::Break(())`
    /// aborts the job: the migration then fails with [`Error::MigrationCancelled`] and the
    /// guest keeps running on the source (see the module documentation, "Cancellation").
    ///
    /// Refused with [`Error::InvalidMigration`] before any migration call: a zero
    /// `progress_interval`, `PEER2PEER` or `TUNNELLED` in the flags (use [`peer_to_peer`]),
    /// and options the plain v3 procedures cannot carry when those are used. A failed step's
    /// error is [`Error::MigrationStep`] naming the step ([`Error::migration_phase`]).
    ///
    /// Dropping the returned future: see "Dropping a migration" in the module documentation.
    pub async fn run(
        &self,
        dom: &RemoteNonnullDomain,
        opts: &MigrateOptions,
        mut progress: impl FnMut(&Progress) -> ControlFlow<()>,
    ) -> Result<RemoteNonnullDomain, Error> {
        let prepared = self.prepare(dom, opts).await?;
        self.complete(dom, opts, prepared, &mut progress).await
    }

    /// Steps 1 and 2 (Begin3 on the source, Prepare3 on the destination). On a Prepare
    /// failure the source's job is released (Confirm3 with cancelled when change protection
    /// is in use) and Prepare's error returned. Options are checked first as in
    /// [`Migration::run`].
    pub async fn prepare(
        &self,
        dom: &RemoteNonnullDomain,
        opts: &MigrateOptions,
    ) -> Result<Prepared, Error> {
        check_static(opts, true)?;
        if opts.protocol == Protocol::Plain {
            check_plain(opts)?;
        }
        let src = &self.source;
        let dst = &self.dest;
        let use_params = use_params(src, dst, opts.protocol).await?;
        if !use_params {
            check_plain(opts)?;
        }
        let protection = if supports(src, FEATURE_MIGRATE_CHANGE_PROTECTION).await? {
            DomainMigrateFlags::CHANGE_PROTECTION
        } else {
            DomainMigrateFlags::empty()
        };
        let mut params = opts.params();
        let mut flags = opts.flags;

        // 1. Begin3
        let (cookie, dom_xml) = if use_params {
            let r = src
                .domain_migrate_begin3_params(dom.clone(), params.clone(), (flags | protection).0)
                .await
                .map_err(at(Phase::Begin))?;
            (r.cookie_out, r.xml)
        } else {
            let r = src
                .domain_migrate_begin3(
                    dom.clone(),
                    opts.xmlin.clone(),
                    u64::from((flags | protection).0),
                    opts.dname.clone(),
                    opts.bandwidth_mib.unwrap_or(0),
                )
                .await
                .map_err(at(Phase::Begin))?;
            (r.cookie_out, r.xml)
        };
        // libvirt asks GetState when the params procedures are in use (a source that new has
        // it) and GetInfo otherwise; a failure of either only means "not known to be paused".
        let state = if use_params {
            src.domain_get_state(dom.clone(), 0).await.map(|s| s.state)
        } else {
            src.domain_get_info(dom.clone())
                .await
                .map(|i| i32::from(i.state))
        };
        if state.is_ok_and(|s| DomainState(s) == DomainState::PAUSED) {
            flags |= DomainMigrateFlags::PAUSED;
        }
        let dest_flags =
            flags & !(DomainMigrateFlags::ABORT_ON_ERROR | DomainMigrateFlags::AUTO_CONVERGE);

        // 2. Prepare3
        let prep = if use_params {
            set_string(&mut params, param::DEST_XML, &dom_xml);
            dst.domain_migrate_prepare3_params(params.clone(), cookie, dest_flags.0)
                .await
                .map(|r| (r.cookie_out, r.uri_out))
        } else {
            dst.domain_migrate_prepare3(
                cookie,
                opts.uri.clone(),
                u64::from(dest_flags.0),
                opts.dname.clone(),
                opts.bandwidth_mib.unwrap_or(0),
                dom_xml,
            )
            .await
            .map(|r| (r.cookie_out, r.uri_out))
        };
        let (cookie, uri_out) = match prep {
            Ok(x) => x,
            Err(e) => {
                // As libvirt: with change protection Begin3 started a migration job on the
                // source, which Confirm3(cancelled) ends (its own error never replaces
                // Prepare's); without it there is no job and nothing more is called.
                if !protection.is_empty() {
                    let _ = self
                        .confirm(
                            dom,
                            use_params,
                            &params,
                            flags | protection,
                            Opaque::default(),
                            true,
                        )
                        .await;
                }
                return Err(at(Phase::Prepare)(e));
            }
        };
        let uri = match uri_out {
            Some(u) => {
                if use_params {
                    set_string(&mut params, param::URI, &u);
                }
                Some(u)
            }
            None => opts
                .uri
                .clone()
                .or_else(|| get_string(&params, param::URI).map(str::to_owned)),
        };
        Ok(Prepared {
            use_params,
            flags: flags | protection,
            dest_flags,
            params,
            uri,
            cookie,
        })
    }

    /// Steps 3 to 5 (Perform3, Finish3, Confirm3) after [`Migration::prepare`], with the
    /// failure handling of the module documentation. When `prepared.uri` is `None` (neither
    /// Prepare3 nor the caller chose a migration URI) Perform3 is skipped and the prepared guest
    /// is cancelled. A zero `opts.progress_interval` is polled every millisecond here (it is
    /// refused earlier, by [`Migration::prepare`]).
    pub async fn complete(
        &self,
        dom: &RemoteNonnullDomain,
        opts: &MigrateOptions,
        prepared: Prepared,
        progress: &mut impl FnMut(&Progress) -> ControlFlow<()>,
    ) -> Result<RemoteNonnullDomain, Error> {
        let mut orig_err: Option<Error> = None;
        let mut notify_source = true;
        let mut aborted = false;
        let (cookie, cancelled) = if prepared.uri.is_none() {
            // libvirt: "domainMigratePrepare3 did not set uri"; Finish gets Prepare's cookie.
            orig_err = Some(Error::Migration {
                phase: Phase::Prepare,
                reason: "the destination's Prepare3 did not set a migration URI and none was \
                         given"
                    .into(),
            });
            (prepared.cookie.clone(), true)
        } else if prepared.flags.contains(DomainMigrateFlags::OFFLINE) {
            (Opaque::default(), false)
        } else {
            // 3. Perform3 (with progress polling on the side). Should this future be dropped
            // meanwhile, the guard cancels the migration on both daemons.
            let mut guard = DropGuard {
                m: Some((
                    self.clone(),
                    dom.clone(),
                    opts.dname.clone(),
                    prepared.clone(),
                )),
            };
            let (r, abort_accepted) = self.perform(dom, &prepared, opts, progress).await;
            guard.m = None;
            aborted = abort_accepted;
            match r {
                Ok(c) => (c, false),
                Err(e) => {
                    // Perform failed: keep its error; the source already knows (no Confirm).
                    orig_err = Some(at(Phase::Perform)(e));
                    notify_source = false;
                    (Opaque::default(), true)
                }
            }
        };

        // 4. Finish3
        let finished = self
            .finish(
                dom,
                opts.dname.as_deref(),
                &prepared,
                cookie,
                cancelled,
                opts.transfer_timeout,
            )
            .await
            .map_err(at(Phase::Finish));
        let (ddomain, cookie) = match finished {
            Ok((d, c)) => (Some(d), c),
            Err(finish_err) => {
                if cancelled {
                    // libvirt's exception: QEMU's generic failure on the source is less useful
                    // than the destination's own QEMU error.
                    let generic = orig_err.as_ref().and_then(Error::remote).is_some_and(|r| {
                        r.domain == ErrorDomain::QEMU && r.code == ErrorNumber::ERR_OPERATION_FAILED
                    });
                    let specific = finish_err.remote().is_some_and(|r| {
                        r.domain == ErrorDomain::QEMU
                            && r.code != ErrorNumber::ERR_MIGRATE_FINISH_OK
                    });
                    if generic && specific {
                        orig_err = Some(finish_err);
                    }
                } else if orig_err.is_none() {
                    orig_err = Some(finish_err);
                }
                (None, Opaque::default())
            }
        };
        // A destination that returns a domain although cancelled ignored the cancel; libvirt
        // logs that and returns the domain (below), and so do we.

        // 5. Confirm3
        if notify_source {
            let r = self
                .confirm(
                    dom,
                    prepared.use_params,
                    &prepared.params,
                    prepared.flags,
                    cookie,
                    ddomain.is_none(),
                )
                .await;
            if let Err(e) = r {
                if orig_err.is_none() && ddomain.is_none() {
                    orig_err = Some(at(Phase::Confirm)(e));
                }
                // Otherwise the guest runs on the destination; the source copy may be left
                // paused, as libvirt warns.
            }
        }
        match (ddomain, orig_err) {
            (Some(d), _) => Ok(d),
            (None, Some(e)) if aborted => Err(Error::MigrationCancelled { error: Box::new(e) }),
            (None, Some(e)) => Err(e),
            (None, None) => Err(Error::Migration {
                phase: Phase::Finish,
                reason: "the destination returned no domain".into(),
            }),
        }
    }

    async fn perform(
        &self,
        dom: &RemoteNonnullDomain,
        prepared: &Prepared,
        opts: &MigrateOptions,
        progress: &mut impl FnMut(&Progress) -> ControlFlow<()>,
    ) -> (Result<Opaque, Error>, bool) {
        let src = self.source.clone();
        let call = {
            let dom = dom.clone();
            let prepared = prepared.clone();
            let opts = opts.clone();
            async move {
                if prepared.use_params {
                    src.call_with_timeout::<procs::DomainMigratePerform3Params>(
                        &RemoteDomainMigratePerform3ParamsArgs {
                            dom,
                            dconnuri: None,
                            params: prepared.params,
                            cookie_in: prepared.cookie,
                            flags: prepared.flags.0,
                        },
                        opts.transfer_timeout,
                    )
                    .await
                    .map(|r| r.cookie_out)
                } else {
                    src.call_with_timeout::<procs::DomainMigratePerform3>(
                        &RemoteDomainMigratePerform3Args {
                            dom,
                            xmlin: None,
                            cookie_in: prepared.cookie,
                            dconnuri: None,
                            uri: prepared.uri,
                            flags: u64::from(prepared.flags.0),
                            dname: opts.dname,
                            resource: opts.bandwidth_mib.unwrap_or(0),
                        },
                        opts.transfer_timeout,
                    )
                    .await
                    .map(|r| r.cookie_out)
                }
            }
        };
        watch(&self.source, dom, call, opts.progress_interval, progress).await
    }

    /// Finish3 on the destination, within `timeout`; returns the new guest and the cookie for
    /// Confirm3.
    async fn finish(
        &self,
        dom: &RemoteNonnullDomain,
        dname: Option<&str>,
        prepared: &Prepared,
        cookie: Opaque,
        cancelled: bool,
        timeout: Option<Duration>,
    ) -> Result<(RemoteNonnullDomain, Opaque), Error> {
        let dst = &self.dest;
        if prepared.use_params {
            let mut params = prepared.params.clone();
            if get_string(&params, param::DEST_NAME).is_none() {
                set_string(&mut params, param::DEST_NAME, &dom.name);
            }
            let r = dst
                .call_with_timeout::<procs::DomainMigrateFinish3Params>(
                    &RemoteDomainMigrateFinish3ParamsArgs {
                        params,
                        cookie_in: cookie,
                        flags: prepared.dest_flags.0,
                        cancelled: i32::from(cancelled),
                    },
                    timeout,
                )
                .await?;
            Ok((r.dom, r.cookie_out))
        } else {
            let dname = dname.map_or_else(|| dom.name.clone(), str::to_owned);
            let r = dst
                .call_with_timeout::<procs::DomainMigrateFinish3>(
                    &RemoteDomainMigrateFinish3Args {
                        dname,
                        cookie_in: cookie,
                        dconnuri: None,
                        uri: prepared.uri.clone(),
                        flags: u64::from(prepared.dest_flags.0),
                        cancelled: i32::from(cancelled),
                    },
                    timeout,
                )
                .await?;
            Ok((r.dom, r.cookie_out))
        }
    }

    async fn confirm(
        &self,
        dom: &RemoteNonnullDomain,
        use_params: bool,
        params: &[RemoteTypedParam],
        flags: DomainMigrateFlags,
        cookie: Opaque,
        cancelled: bool,
    ) -> Result<(), Error> {
        let src = &self.source;
        if use_params {
            src.domain_migrate_confirm3_params(
                dom.clone(),
                params.to_vec(),
                cookie,
                flags.0,
                i32::from(cancelled),
            )
            .await
        } else {
            src.domain_migrate_confirm3(
                dom.clone(),
                cookie,
                u64::from(flags.0),
                i32::from(cancelled),
            )
            .await
        }
    }
}

/// Armed while Perform3 runs: if [`Migration::complete`]'s future is dropped then, cancels the
/// migration on a task of the current tokio runtime (see "Dropping a migration").
struct DropGuard {
    m: Option<(Migration, RemoteNonnullDomain, Option<String>, Prepared)>,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        let Some((m, dom, dname, prepared)) = self.m.take() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            // Every error is ignored: each call only helps when the step before left
            // something to undo. The abort makes the outstanding Perform3 fail on the source;
            // Finish3(cancelled) kills the prepared guest on the destination; Confirm3
            // (cancelled) resumes the source guest should Perform3 have completed after all
            // (after a failed Perform3 the source refuses it: no job).
            let _ = abort(&m.source, &dom).await;
            let _ = m
                .finish(
                    &dom,
                    dname.as_deref(),
                    &prepared,
                    Opaque::default(),
                    true,
                    Some(CLEANUP_TIMEOUT),
                )
                .await;
            let _ = m
                .confirm(
                    &dom,
                    prepared.use_params,
                    &prepared.params,
                    prepared.flags,
                    Opaque::default(),
                    true,
                )
                .await;
        });
    }
}

/// Run `call` while polling `dom`'s job statistics on `client` every `every` (200 ms when
/// `None`, at least 1 ms). A `Break` from `progress` aborts the job (`DOMAIN_ABORT_JOB`, tried
/// again at each later tick until the daemon accepts it); `progress` is not called after a
/// `Break`. Returns the call's result and whether an abort was ACCEPTED by the daemon (a Break
/// whose abort was always refused does not make the call's failure a cancellation).
async fn watch<T>(
    client: &Client,
    dom: &RemoteNonnullDomain,
    call: impl std::future::Future<Output = Result<T, Error>>,
    every: Option<Duration>,
    progress: &mut impl FnMut(&Progress) -> ControlFlow<()>,
) -> (Result<T, Error>, bool) {
    let every = every
        .unwrap_or(Duration::from_millis(200))
        .max(Duration::from_millis(1));
    tokio::pin!(call);
    let mut cancel = false;
    let mut aborted = false;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            r = &mut call => return (r, aborted),
            _ = tick.tick() => {
                if cancel {
                    if !aborted {
                        aborted = abort(client, dom).await.is_ok();
                    }
                    continue;
                }
                // Job stats may briefly fail (no job yet / job over): not an error of ours.
                if let Ok(p) = job_progress(client, dom).await {
                    if p.job_type != DomainJobType::NONE && progress(&p).is_break() {
                        cancel = true;
                        aborted = abort(client, dom).await.is_ok();
                    }
                }
            }
        }
    }
}

/// Peer-to-peer migration: the source daemon connects to `dest_uri` itself and runs the
/// protocol (`Perform3` with params and `VIR_MIGRATE_PEER2PEER`, plus whatever flags are in
/// `opts`, e.g. `TUNNELLED`). The source daemon must be able to open `dest_uri`. `progress`
/// sees the source's job statistics and can cancel with `ControlFlow::Break` as in
/// [`Migration::run`] (the error is then [`Error::MigrationCancelled`], when the daemon
/// accepted the abort). Options are refused with [`Error::InvalidMigration`] as in
/// [`Migration::run`] (a zero progress interval; with the plain Perform3, what it cannot
/// carry); the daemon's error comes as [`Error::MigrationStep`] with [`Phase::Perform`].
pub async fn peer_to_peer(
    source: &Client,
    dom: &RemoteNonnullDomain,
    dest_uri: &str,
    opts: &MigrateOptions,
    mut progress: impl FnMut(&Progress) -> ControlFlow<()>,
) -> Result<(), Error> {
    check_static(opts, false)?;
    let flags = opts.flags | DomainMigrateFlags::PEER2PEER;
    if flags.contains(DomainMigrateFlags::TUNNELLED) && opts.uri.is_some() {
        return Err(invalid(
            "uri",
            "a migration URI cannot be used with VIR_MIGRATE_TUNNELLED (the data goes through \
             the daemons' connection)",
        ));
    }
    if opts.protocol == Protocol::Plain {
        check_plain(opts)?;
    }
    let use_params = match opts.protocol {
        Protocol::Params => true,
        Protocol::Plain => false,
        Protocol::Auto => supports(source, FEATURE_MIGRATION_PARAMS).await?,
    };
    if !use_params {
        check_plain(opts)?;
    }
    let call = {
        let source = source.clone();
        let dom = dom.clone();
        let opts = opts.clone();
        let dest_uri = dest_uri.to_owned();
        async move {
            if use_params {
                source
                    .call_with_timeout::<procs::DomainMigratePerform3Params>(
                        &RemoteDomainMigratePerform3ParamsArgs {
                            dom,
                            dconnuri: Some(dest_uri),
                            params: opts.params(),
                            cookie_in: Opaque::default(),
                            flags: flags.0,
                        },
                        opts.transfer_timeout,
                    )
                    .await
                    .map(|r| r.cookie_out)
            } else {
                source
                    .call_with_timeout::<procs::DomainMigratePerform3>(
                        &RemoteDomainMigratePerform3Args {
                            dom,
                            xmlin: opts.xmlin,
                            cookie_in: Opaque::default(),
                            dconnuri: Some(dest_uri),
                            uri: opts.uri,
                            flags: u64::from(flags.0),
                            dname: opts.dname,
                            resource: opts.bandwidth_mib.unwrap_or(0),
                        },
                        opts.transfer_timeout,
                    )
                    .await
                    .map(|r| r.cookie_out)
            }
        }
    };
    match watch(source, dom, call, opts.progress_interval, &mut progress).await {
        (Ok(_), _) => Ok(()),
        (Err(e), true) => Err(Error::MigrationCancelled {
            error: Box::new(at(Phase::Perform)(e)),
        }),
        (Err(e), false) => Err(at(Phase::Perform)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_from_options() {
        let o = MigrateOptions::new(DomainMigrateFlags::LIVE)
            .uri("tcp:127.0.0.1:1")
            .dname("b")
            .bandwidth_mib(5)
            .param(param::DISKS_PORT, RemoteTypedParamValue::Int(7));
        let p = o.params();
        assert_eq!(get_string(&p, param::URI), Some("tcp:127.0.0.1:1"));
        assert_eq!(get_string(&p, param::DEST_NAME), Some("b"));
        assert!(p
            .iter()
            .any(|x| x.field == "bandwidth" && x.value == RemoteTypedParamValue::Ullong(5)));
        assert_eq!(p.len(), 4);
        let mut p = p;
        set_string(&mut p, param::URI, "tcp:x:2");
        assert_eq!(get_string(&p, param::URI), Some("tcp:x:2"));
        assert_eq!(p.len(), 4);
    }

    fn option(e: Result<(), Error>) -> String {
        match e {
            Err(Error::InvalidMigration { option, .. }) => option,
            other => panic!("not an InvalidMigration: {other:?}"),
        }
    }

    #[test]
    fn plain_refuses_what_it_cannot_carry() {
        let base = MigrateOptions::new(DomainMigrateFlags::LIVE)
            .uri("tcp:127.0.0.1:1")
            .dname("b")
            .xmlin("<domain/>")
            .bandwidth_mib(5);
        // What plain v3 carries passes.
        assert!(check_plain(&base).is_ok());
        assert_eq!(
            option(check_plain(&base.clone().persist_xml("<domain/>"))),
            "persist_xml"
        );
        let disks = base.clone().param(
            param::MIGRATE_DISKS,
            RemoteTypedParamValue::String("vda".into()),
        );
        assert_eq!(option(check_plain(&disks)), param::MIGRATE_DISKS);
        // A compatible field given as a raw parameter: refused too, pointing at its setter.
        let raw_uri = MigrateOptions::new(DomainMigrateFlags::LIVE)
            .param(param::URI, RemoteTypedParamValue::String("tcp:x:1".into()));
        match check_plain(&raw_uri) {
            Err(Error::InvalidMigration { option, reason }) => {
                assert_eq!(option, param::URI);
                assert!(reason.contains("setter"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn static_checks() {
        let ok = MigrateOptions::new(DomainMigrateFlags::LIVE)
            .progress_interval(Duration::from_millis(1));
        assert!(check_static(&ok, true).is_ok());
        let zero = ok.clone().progress_interval(Duration::ZERO);
        assert_eq!(option(check_static(&zero, true)), "progress_interval");
        assert_eq!(option(check_static(&zero, false)), "progress_interval");
        for f in [DomainMigrateFlags::PEER2PEER, DomainMigrateFlags::TUNNELLED] {
            let o = MigrateOptions::new(DomainMigrateFlags::LIVE | f);
            assert_eq!(option(check_static(&o, true)), "flags");
            // peer_to_peer takes them.
            assert!(check_static(&o, false).is_ok());
        }
    }

    #[test]
    fn progress_fraction() {
        let p = Progress::from_stats(
            2,
            vec![
                RemoteTypedParam {
                    field: "data_total".into(),
                    value: RemoteTypedParamValue::Ullong(200),
                },
                RemoteTypedParam {
                    field: "data_remaining".into(),
                    value: RemoteTypedParamValue::Ullong(50),
                },
            ],
        );
        assert_eq!(p.fraction(), Some(0.75));
        assert_eq!(Progress::default().fraction(), None);
        // A guest of zero pages: little sent, nothing remaining -> done.
        let done = Progress {
            data_total: Some(200),
            data_processed: Some(3),
            data_remaining: Some(0),
            ..Progress::default()
        };
        assert_eq!(done.fraction(), Some(1.0));
        let no_remaining = Progress {
            data_remaining: None,
            ..done
        };
        assert_eq!(no_remaining.fraction(), Some(0.015));
    }
}
