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
    /// Default limit for every call (`None`: wait for the reply or the connection's end).
    /// Default 60 s. A call that times out fails with a timeout error; its late reply is
    /// discarded.
    pub call_timeout: Option<Duration>,
    /// Events buffered per subscription before newer ones are dropped and reported as
    /// `Lagged(n)`. Default 1024.
    pub event_capacity: usize,
    /// Sans-IO connection settings (packet limits, stream buffering).
    pub connection: libvirt_proto::Config,
    /// SASL credentials, used when the daemon asks for SASL authentication.
    pub credentials: Option<crate::sasl::Credentials>,
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
            event_capacity: 1024,
            connection,
            credentials: None,
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

    /// Set [`ClientOptions::event_capacity`].
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity;
        self
    }

    /// Set [`ClientOptions::transport`].
    pub fn transport(mut self, transport: ConnectOptions) -> Self {
        self.transport = transport;
        self
    }
}
