//! A reconnecting wrapper for long-lived users: hands out the current connection, and opens a
//! new one (same URI and options) when the current one has closed — daemon restart, network
//! loss, keepalive timeout.
//!
//! Nothing is replayed behind the caller's back: calls that were pending when the connection
//! died fail with a closed error, and event subscriptions end with `EventItem::Closed`; the
//! caller decides what to retry (see [`Reconnecting::run`] for idempotent operations) and
//! re-subscribes.

use std::time::Duration;

use crate::{ClientOptions, Error};

/// Reconnecting async client.
#[cfg(feature = "async")]
#[derive(Debug)]
pub struct Reconnecting {
    uri: String,
    options: ClientOptions,
    current: tokio::sync::Mutex<Option<crate::Client>>,
    reconnects: std::sync::atomic::AtomicU64,
}

#[cfg(feature = "async")]
impl Reconnecting {
    /// A wrapper for `uri`; connects on first use.
    pub fn new(uri: impl Into<String>, options: ClientOptions) -> Self {
        Self {
            uri: uri.into(),
            options,
            current: tokio::sync::Mutex::new(None),
            reconnects: Default::default(),
        }
    }

    /// The open connection, connecting (again) if there is none or it has closed.
    pub async fn client(&self) -> Result<crate::Client, Error> {
        let mut cur = self.current.lock().await;
        if let Some(c) = cur.as_ref().filter(|c| c.is_open()) {
            return Ok(c.clone());
        }
        if cur.take().is_some() {
            self.reconnects
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let c = crate::Client::connect_with(&self.uri, self.options.clone()).await?;
        *cur = Some(c.clone());
        Ok(c)
    }

    /// Run `op` on the current connection; if it fails because the connection closed, connect
    /// again and run it once more (after `delay`). Use only for idempotent operations.
    pub async fn run<T, F, Fut>(&self, delay: Duration, op: F) -> Result<T, Error>
    where
        F: Fn(crate::Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        match op(self.client().await?).await {
            Err(e) if e.is_closed() => {
                tokio::time::sleep(delay).await;
                op(self.client().await?).await
            }
            r => r,
        }
    }

    /// How many times a closed connection was replaced.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Reconnecting blocking client.
#[cfg(feature = "blocking")]
#[derive(Debug)]
pub struct BlockingReconnecting {
    uri: String,
    options: ClientOptions,
    current: std::sync::Mutex<Option<crate::blocking::Client>>,
    reconnects: std::sync::atomic::AtomicU64,
}

#[cfg(feature = "blocking")]
impl BlockingReconnecting {
    /// A wrapper for `uri`; connects on first use.
    pub fn new(uri: impl Into<String>, options: ClientOptions) -> Self {
        Self {
            uri: uri.into(),
            options,
            current: std::sync::Mutex::new(None),
            reconnects: Default::default(),
        }
    }

    /// The open connection, connecting (again) if needed.
    pub fn client(&self) -> Result<crate::blocking::Client, Error> {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cur.as_ref().filter(|c| c.is_open()) {
            return Ok(c.clone());
        }
        if cur.take().is_some() {
            self.reconnects
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let c = crate::blocking::Client::connect_with(&self.uri, self.options.clone())?;
        *cur = Some(c.clone());
        Ok(c)
    }

    /// Run `op`; on a closed-connection failure, reconnect and run it once more. Use only for
    /// idempotent operations.
    pub fn run<T>(
        &self,
        delay: Duration,
        op: impl Fn(crate::blocking::Client) -> Result<T, Error>,
    ) -> Result<T, Error> {
        match op(self.client()?) {
            Err(e) if e.is_closed() => {
                std::thread::sleep(delay);
                op(self.client()?)
            }
            r => r,
        }
    }

    /// How many times a closed connection was replaced.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(std::sync::atomic::Ordering::Relaxed)
    }
}
