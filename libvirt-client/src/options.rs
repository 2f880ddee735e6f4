//! Client options shared by the async and blocking drivers.

use std::time::Duration;

use libvirt_proto::KeepaliveConfig;

use crate::transport::ConnectOptions;

/// How [`Client::connect_with`](crate::Client::connect_with) (and the blocking twin) opens and
/// runs a connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Transport settings (connect timeout, local environment). `read_only` is taken from
    /// [`ClientOptions::read_only`].
    pub transport: ConnectOptions,
    /// Open read-only (`VIR_CONNECT_RO`).
    pub read_only: bool,
    /// Keepalive (`None`: off). Enabled only when the daemon supports the keepalive program,
    /// as libvirt's client does. Default: libvirt's 5 s interval, 5 missed PINGs.
    pub keepalive: Option<KeepaliveConfig>,
    /// Default limit for every call (`None`: wait for the reply or the connection's end),
    /// except the [`LONG_RUNNING`] ones. Default 60 s. A call that times out fails with a
    /// timeout error; its late reply is discarded.
    pub call_timeout: Option<Duration>,
    /// Limit for the [`LONG_RUNNING`] procedures, whose reply comes when a job of any length
    /// ends (save, restore, core dump, volume wipe, migration steps, ...). Default `None`, as
    /// in libvirt, whose client has no call timeouts: a dead daemon is still noticed by
    /// keepalive.
    pub long_call_timeout: Option<Duration>,
    /// Events buffered per subscription before newer ones are dropped and reported as
    /// `Lagged(n)`. Default 1024.
    pub event_capacity: usize,
    /// Sans-IO connection settings (packet limits, stream buffering). Over TLS,
    /// `transmit_coalesce` is taken as 0 whatever it says here: every packet is written by
    /// itself, since libvirtd would leave a packet that shares a TLS record with the previous
    /// one unread until more bytes arrive.
    pub connection: libvirt_proto::Config,
    /// SASL credentials, used when the daemon asks for SASL authentication.
    pub credentials: Option<crate::sasl::Credentials>,
    /// Busy polling (`None`, the default: off). While callers wait for replies, the driver's
    /// reader looks for input for up to this long (at most 1 s is used), yielding the CPU
    /// between looks (blocking: `sched_yield`; async: `tokio::task::yield_now`), before it
    /// sleeps in the kernel.
    ///
    /// This trades CPU for wake-ups: a reader that is still running when a reply arrives needs
    /// no wake-up, and neither does the daemon's next wake-up of a CPU this keeps busy. Where
    /// waking a sleeping CPU is dear (virtual machines, whose idle vCPUs halt) this raises
    /// many-caller throughput. The cost: up to this much CPU after each read while a call
    /// waits, however long its reply takes; tens to a few hundred microseconds suit calls that
    /// the daemon answers at once. Measured with `cargo xtask bench libvirt --busy-poll`. Used
    /// on plain unix and tcp sockets; other transports (TLS, ssh, custom streams) ignore it.
    pub busy_poll: Option<Duration>,
    /// How call replies and events are decoded (default: strict, [`xdr::DecodeOptions::new`]).
    ///
    /// Strict decoding refuses a reply holding a string that is not UTF-8, with an error naming
    /// the field. libvirt's own client takes any bytes, and a daemon can send them: a directory
    /// pool names its volumes after the files in it, whatever their bytes, so one such file
    /// makes the pool's volume list undecodable. With [`xdr::Utf8::Lossy`] such strings are
    /// decoded with U+FFFD replacements and the rest of the reply is kept (the names are then
    /// for display: the original bytes are lost). [`xdr::Padding::Lenient`] accepts non-zero
    /// padding, as libvirt's decoder does. Error replies always decode their messages lossily.
    pub decode: xdr::DecodeOptions,
}

impl Default for ClientOptions {
    fn default() -> Self {
        let connection = libvirt_proto::Config {
            // Subscribers have their own bounded queues; the connection's queue is drained
            // on every read, so make it large enough never to matter.
            message_queue_limit: 1 << 20,
            ..libvirt_proto::Config::default()
        };
        Self {
            transport: ConnectOptions::default(),
            read_only: false,
            keepalive: Some(KeepaliveConfig::default()),
            call_timeout: Some(Duration::from_secs(60)),
            long_call_timeout: None,
            event_capacity: 1024,
            connection,
            credentials: None,
            busy_poll: None,
            decode: xdr::DecodeOptions::new(),
        }
    }
}

impl ClientOptions {
    /// Set [`ClientOptions::credentials`] (SASL).
    pub fn credentials(mut self, credentials: crate::sasl::Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Set [`ClientOptions::read_only`].
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Set [`ClientOptions::keepalive`].
    pub fn keepalive(mut self, keepalive: Option<KeepaliveConfig>) -> Self {
        self.keepalive = keepalive;
        self
    }

    /// Set [`ClientOptions::call_timeout`].
    pub fn call_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Set [`ClientOptions::long_call_timeout`].
    pub fn long_call_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.long_call_timeout = timeout;
        self
    }

    /// The default timeout of a call to `procedure`: [`ClientOptions::long_call_timeout`] for
    /// the [`LONG_RUNNING`] procedures, [`ClientOptions::call_timeout`] for the others.
    pub fn timeout_for(
        &self,
        procedure: &libvirt_proto::program::ProcedureInfo,
    ) -> Option<Duration> {
        if LONG_RUNNING.contains(&procedure.name) {
            self.long_call_timeout
        } else {
            self.call_timeout
        }
    }

    /// Set [`ClientOptions::event_capacity`].
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity;
        self
    }

    /// Set [`ClientOptions::busy_poll`].
    pub fn busy_poll(mut self, limit: Option<Duration>) -> Self {
        self.busy_poll = limit;
        self
    }

    /// Set [`ClientOptions::decode`].
    pub fn decode_options(mut self, decode: xdr::DecodeOptions) -> Self {
        self.decode = decode;
        self
    }

    /// Set [`ClientOptions::transport`].
    pub fn transport(mut self, transport: ConnectOptions) -> Self {
        self.transport = transport;
        self
    }
}

/// Procedures whose reply waits for work of unbounded length (the daemon answers when the
/// job is done): they get [`ClientOptions::long_call_timeout`] instead of
/// [`ClientOptions::call_timeout`].
pub const LONG_RUNNING: &[&str] = &[
    "REMOTE_PROC_DOMAIN_SAVE",
    "REMOTE_PROC_DOMAIN_SAVE_FLAGS",
    "REMOTE_PROC_DOMAIN_SAVE_PARAMS",
    "REMOTE_PROC_DOMAIN_RESTORE",
    "REMOTE_PROC_DOMAIN_RESTORE_FLAGS",
    "REMOTE_PROC_DOMAIN_RESTORE_PARAMS",
    "REMOTE_PROC_DOMAIN_MANAGED_SAVE",
    "REMOTE_PROC_DOMAIN_CORE_DUMP",
    "REMOTE_PROC_DOMAIN_CORE_DUMP_WITH_FORMAT",
    "REMOTE_PROC_DOMAIN_DESTROY",
    "REMOTE_PROC_DOMAIN_DESTROY_FLAGS",
    "REMOTE_PROC_DOMAIN_CREATE",
    "REMOTE_PROC_DOMAIN_CREATE_WITH_FLAGS",
    "REMOTE_PROC_DOMAIN_CREATE_WITH_FILES",
    "REMOTE_PROC_DOMAIN_CREATE_XML",
    "REMOTE_PROC_DOMAIN_CREATE_XML_WITH_FILES",
    "REMOTE_PROC_DOMAIN_SNAPSHOT_CREATE_XML",
    "REMOTE_PROC_DOMAIN_REVERT_TO_SNAPSHOT",
    "REMOTE_PROC_DOMAIN_SNAPSHOT_DELETE",
    "REMOTE_PROC_DOMAIN_CHECKPOINT_CREATE_XML",
    "REMOTE_PROC_DOMAIN_FSTRIM",
    "REMOTE_PROC_DOMAIN_GET_GUEST_INFO",
    "REMOTE_PROC_DOMAIN_INTERFACE_ADDRESSES",
    "REMOTE_PROC_DOMAIN_MIGRATE_PERFORM",
    "REMOTE_PROC_DOMAIN_MIGRATE_FINISH",
    "REMOTE_PROC_DOMAIN_MIGRATE_FINISH2",
    "REMOTE_PROC_DOMAIN_MIGRATE_PERFORM3",
    "REMOTE_PROC_DOMAIN_MIGRATE_FINISH3",
    "REMOTE_PROC_DOMAIN_MIGRATE_PERFORM3_PARAMS",
    "REMOTE_PROC_DOMAIN_MIGRATE_FINISH3_PARAMS",
    "REMOTE_PROC_STORAGE_VOL_WIPE",
    "REMOTE_PROC_STORAGE_VOL_WIPE_PATTERN",
    "REMOTE_PROC_STORAGE_VOL_CREATE_XML",
    "REMOTE_PROC_STORAGE_VOL_CREATE_XML_FROM",
    "REMOTE_PROC_STORAGE_VOL_RESIZE",
    "REMOTE_PROC_STORAGE_POOL_BUILD",
    "REMOTE_PROC_STORAGE_POOL_CREATE",
    "REMOTE_PROC_STORAGE_POOL_CREATE_XML",
    "REMOTE_PROC_STORAGE_POOL_REFRESH",
    "REMOTE_PROC_STORAGE_POOL_DELETE",
    "REMOTE_PROC_NODE_SUSPEND_FOR_DURATION",
    "QEMU_PROC_DOMAIN_MONITOR_COMMAND",
    "QEMU_PROC_DOMAIN_AGENT_COMMAND",
];

#[cfg(test)]
mod tests {
    use super::*;
    use libvirt_proto::generated::{qemu, remote};

    #[test]
    fn long_running_names_are_real_procedures() {
        for name in LONG_RUNNING {
            let known = remote::PROCEDURES
                .iter()
                .chain(qemu::PROCEDURES)
                .any(|p| p.name == *name);
            assert!(
                known,
                "{name} is no procedure of libvirt's remote or qemu program"
            );
        }
    }

    #[test]
    fn long_procedures_get_the_long_timeout() {
        let o = ClientOptions::default().call_timeout(Some(Duration::from_secs(3)));
        let save = remote::Procedure::DomainSave.info();
        let version = remote::Procedure::ConnectGetLibVersion.info();
        assert_eq!(o.timeout_for(save), None);
        assert_eq!(o.timeout_for(version), Some(Duration::from_secs(3)));
        let o = o.long_call_timeout(Some(Duration::from_secs(900)));
        assert_eq!(o.timeout_for(save), Some(Duration::from_secs(900)));
    }
}
