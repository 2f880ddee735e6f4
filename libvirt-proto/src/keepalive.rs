//! Keepalive timing like libvirt's client (`src/rpc/virkeepalive.c`), on the caller's clock.
//!
//! After opt-in, whenever a whole `interval` passes without any packet from the server, send a
//! PING; any packet from the server resets the count. When `count` PINGs went unanswered and one
//! more interval passes in silence, the peer is dead. libvirt's client defaults are interval 5 s,
//! count 5 (`remote.conf` `keepalive_interval` / `keepalive_count`).
//!
//! Difference from libvirt: the connection has no clock, so reception is noted as a flag and
//! accounted at the next [`handle_timeout`](crate::Connection::handle_timeout); a PING can
//! therefore go out up to one interval later than libvirt would send it, never earlier.

use std::time::{Duration, Instant};

/// Keepalive settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepaliveConfig {
    /// Silence after which a PING is sent (and between PINGs).
    pub interval: Duration,
    /// Unanswered PINGs tolerated; the peer is declared dead one interval after the last.
    pub count: u32,
}

impl Default for KeepaliveConfig {
    /// libvirt's client defaults: 5 s, 5 PINGs.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            count: 5,
        }
    }
}

/// What the timer decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tick {
    Nothing,
    SendPing,
    Dead,
}

#[derive(Debug)]
pub(crate) struct Keepalive {
    pub(crate) config: KeepaliveConfig,
    countdown: u32,
    interval_start: Instant,
    activity: bool,
}

impl Keepalive {
    pub(crate) fn new(config: KeepaliveConfig, now: Instant) -> Self {
        Self {
            config,
            countdown: config.count,
            interval_start: now,
            activity: false,
        }
    }

    /// A packet arrived from the server.
    pub(crate) fn note_activity(&mut self) {
        self.activity = true;
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.interval_start + self.config.interval
    }

    pub(crate) fn tick(&mut self, now: Instant) -> Tick {
        if now < self.deadline() {
            return Tick::Nothing;
        }
        if std::mem::take(&mut self.activity) {
            self.countdown = self.config.count;
            self.interval_start = now;
            return Tick::Nothing;
        }
        if self.countdown == 0 {
            return Tick::Dead;
        }
        self.countdown -= 1;
        self.interval_start = now;
        Tick::SendPing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_then_death() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut k = Keepalive::new(
            KeepaliveConfig {
                interval: s,
                count: 2,
            },
            t0,
        );
        assert_eq!(k.tick(t0), Tick::Nothing);
        assert_eq!(k.tick(t0 + s / 2), Tick::Nothing);
        assert_eq!(k.tick(t0 + s), Tick::SendPing);
        assert_eq!(k.deadline(), t0 + 2 * s);
        assert_eq!(k.tick(t0 + 2 * s), Tick::SendPing);
        assert_eq!(k.tick(t0 + 3 * s), Tick::Dead);
    }

    #[test]
    fn activity_resets() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut k = Keepalive::new(
            KeepaliveConfig {
                interval: s,
                count: 1,
            },
            t0,
        );
        assert_eq!(k.tick(t0 + s), Tick::SendPing);
        k.note_activity();
        assert_eq!(k.tick(t0 + 2 * s), Tick::Nothing);
        assert_eq!(k.tick(t0 + 3 * s), Tick::SendPing);
        assert_eq!(k.tick(t0 + 4 * s), Tick::Dead);
    }
}
