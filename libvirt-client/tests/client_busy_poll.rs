//! `ClientOptions::busy_poll` on both drivers. Against a private libvirtd (unix and tcp): many
//! concurrent callers get every reply right while the reader polls without blocking, an idle
//! connection does not poll, and a daemon killed while a call waits still fails it at once.
//! Over TLS (the peers' TLS daemon), where the option is ignored, the same calls work.
//! In process (a fake daemon that answers one of two calls and holds the other back): the
//! reader polls after the first reply (it uses CPU) but stops at its limit and sleeps until
//! the held reply comes; a daemon that hangs up while the reader polls fails the held call at
//! once, not when the polling round ends.
//!
//! One test function: it measures this process's CPU time, which other tests running beside
//! it in the same binary would disturb.
#![cfg(all(feature = "async", feature = "blocking"))]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libvirt_client::libvirt_proto::packet::encode_packet;
use libvirt_client::libvirt_proto::{Framer, Header, MessageStatus, MessageType};
use libvirt_client::transport::{AsyncTransport, BlockingTransport};
use libvirt_client::{blocking, Client, ClientOptions};

use common::daemon::PrivateDaemon;

/// The busy-poll limit under test.
const LIMIT: Duration = Duration::from_millis(2);
/// How long each idle or held-back stretch lasts.
const QUIET: Duration = Duration::from_millis(500);
/// Most CPU this process may use over such a stretch. Polling through all of it would use
/// about `QUIET`; sleeping uses next to nothing.
const QUIET_CPU_MAX: Duration = Duration::from_millis(150);

/// The limit for the held-back reply: long enough for its polling to show in CPU time.
const HELD_LIMIT: Duration = Duration::from_millis(200);

fn opts() -> ClientOptions {
    opts_with(LIMIT)
}

fn opts_with(limit: Duration) -> ClientOptions {
    ClientOptions::default()
        .keepalive(None)
        .busy_poll(Some(limit))
}

/// CPU time (user + system) this process has used, from /proc/self/stat (10 ms ticks).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// CPU this process uses while `quiet` runs.
fn cpu_during(quiet: impl FnOnce()) -> Duration {
    let before = cpu_time();
    quiet();
    cpu_time() - before
}

fn check_quiet(what: &str, used: Duration) {
    assert!(
        used < QUIET_CPU_MAX,
        "{what}: {used:?} of CPU in {QUIET:?} (busy polling past its limit?)"
    );
}

/// While a reply is held back after other input: the reader polls (CPU is used) for about
/// [`HELD_LIMIT`], then sleeps (far less than the whole [`QUIET`] stretch is used).
fn check_held(what: &str, used: Duration) {
    assert!(
        used >= HELD_LIMIT / 4 && used <= HELD_LIMIT + QUIET_CPU_MAX,
        "{what}: {used:?} of CPU in {QUIET:?}; polling for {HELD_LIMIT:?} should use about that"
    );
}

fn blocking_round(uri: &str) {
    let c = blocking::Client::connect_with(uri, opts()).unwrap();
    std::thread::scope(|s| {
        for t in 0..16 {
            let c = &c;
            s.spawn(move || {
                for i in 0..200 {
                    if (t + i) % 2 == 0 {
                        assert_eq!(c.version().unwrap().to_string(), "0.0.2");
                    } else {
                        let d = c.domain_lookup_by_name("test".into()).unwrap();
                        assert_eq!(d.name, "test");
                    }
                }
            });
        }
    });
    check_quiet(
        &format!("idle blocking client on {uri}"),
        cpu_during(|| std::thread::sleep(QUIET)),
    );
    c.close().unwrap();
}

fn async_round(uri: &str, rt: &tokio::runtime::Runtime) {
    let c = rt.block_on(Client::connect_with(uri, opts())).unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|t| {
                let c = c.clone();
                tokio::spawn(async move {
                    for i in 0..50 {
                        if (t + i) % 2 == 0 {
                            assert_eq!(c.version().await.unwrap().to_string(), "0.0.2");
                        } else {
                            let d = c.domain_lookup_by_name("test".into()).await.unwrap();
                            assert_eq!(d.name, "test");
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    // The runtime keeps running its driver tasks (current-thread: only inside block_on).
    check_quiet(
        &format!("idle async client on {uri}"),
        cpu_during(|| rt.block_on(async { tokio::time::sleep(QUIET).await })),
    );
    rt.block_on(c.close()).unwrap();
}

/// The lib version the in-process daemon reports.
const FAKE_LIB_VERSION: u64 = 9_000_000;

/// What the in-process daemon does with the call it held back.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Then {
    /// Answer it.
    Answer,
    /// Close the connection instead.
    HangUp,
}

/// A limit longer than the hang-up test's bound, so a hang-up seen only after the polling
/// round would fail it.
const LONG_LIMIT: Duration = Duration::from_millis(900);
/// How soon a call must fail after the in-process daemon hangs up during a polling round.
const HANG_UP_SEEN_WITHIN: Duration = Duration::from_millis(300);

/// An in-process daemon on `s`: waits for two calls, answers the first (as
/// `CONNECT_GET_LIB_VERSION`) at once, and deals with the second as `release` says; after an
/// answer it waits for the client to close.
fn fake_daemon(s: UnixStream, release: std::sync::mpsc::Receiver<Then>) {
    let mut framer = Framer::new();
    let mut calls: Vec<Header> = Vec::new();
    let mut buf = [0u8; 4096];
    let answer = |h: &Header| {
        let h = Header {
            kind: MessageType::Reply,
            status: MessageStatus::Ok,
            ..*h
        };
        let mut out = Vec::new();
        encode_packet(&h, 0, &FAKE_LIB_VERSION.to_be_bytes(), &mut out).unwrap();
        (&s).write_all(&out).unwrap();
    };
    while calls.len() < 2 {
        let n = (&s).read(&mut buf).unwrap();
        assert!(n > 0, "client closed early");
        framer.push(&buf[..n]);
        while let Some(p) = framer.next_packet().unwrap() {
            calls.push(p.header);
        }
    }
    answer(&calls[0]);
    match release.recv().unwrap() {
        Then::Answer => {
            answer(&calls[1]);
            while (&s).read(&mut buf).is_ok_and(|n| n > 0) {}
        }
        Then::HangUp => s.shutdown(std::net::Shutdown::Both).unwrap(),
    }
}

/// The held call failed, soon after the daemon hung up (`hung_up`); `failed_at` is when.
fn check_hang_up_seen(
    driver: &str,
    r: Result<u64, libvirt_client::Error>,
    hung_up: Instant,
    failed_at: Instant,
) {
    assert!(r.is_err(), "{driver}: {r:?}");
    let after = failed_at.duration_since(hung_up);
    assert!(
        after < HANG_UP_SEEN_WITHIN,
        "{driver}: the hang-up was seen {after:?} later (polling for {LONG_LIMIT:?})"
    );
}

/// Two calls to the in-process daemon; once one is answered (the reader has just read its
/// reply and polls for the other): with [`Then::Answer`], the CPU used over [`QUIET`] shows
/// polling that stopped at [`HELD_LIMIT`], then the held reply comes; with [`Then::HangUp`],
/// the daemon closes during the round ([`LONG_LIMIT`]) and the held call fails at once.
fn blocking_held_reply(then: Then) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let (release, released) = std::sync::mpsc::channel();
    let daemon = std::thread::spawn(move || fake_daemon(theirs, released));
    let limit = if then == Then::Answer {
        HELD_LIMIT
    } else {
        LONG_LIMIT
    };
    let c = blocking::Client::from_transport(
        BlockingTransport::from_unix(ours),
        opts_with(limit),
        None,
    )
    .unwrap();
    std::thread::scope(|s| {
        let calls = [
            s.spawn(|| (c.connect_get_lib_version(), Instant::now())),
            s.spawn(|| (c.connect_get_lib_version(), Instant::now())),
        ];
        // One of the two is answered; the reader has just read its reply.
        while !calls.iter().any(|c| c.is_finished()) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let [a, b] = calls;
        let (answered, held) = if a.is_finished() { (a, b) } else { (b, a) };
        assert_eq!(answered.join().unwrap().0.unwrap(), FAKE_LIB_VERSION);
        match then {
            Then::Answer => {
                check_held(
                    "blocking client owed a reply",
                    cpu_during(|| std::thread::sleep(QUIET)),
                );
                release.send(then).unwrap();
                assert_eq!(held.join().unwrap().0.unwrap(), FAKE_LIB_VERSION);
            }
            Then::HangUp => {
                let hung_up = Instant::now();
                release.send(then).unwrap();
                let (r, at) = held.join().unwrap();
                check_hang_up_seen("blocking", r, hung_up, at);
            }
        }
    });
    drop(c);
    daemon.join().unwrap();
}

fn async_held_reply(rt: &tokio::runtime::Runtime, then: Then) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let (release, released) = std::sync::mpsc::channel();
    let daemon = std::thread::spawn(move || fake_daemon(theirs, released));
    ours.set_nonblocking(true).unwrap();
    let limit = if then == Then::Answer {
        HELD_LIMIT
    } else {
        LONG_LIMIT
    };
    rt.block_on(async move {
        let t = AsyncTransport::from_unix(tokio::net::UnixStream::from_std(ours).unwrap());
        let c = Client::from_transport(t, opts_with(limit), None).unwrap();
        let calls: Vec<_> = (0..2)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { (c.connect_get_lib_version().await, Instant::now()) })
            })
            .collect();
        let (answered, _, mut rest) = futures_util::future::select_all(calls).await;
        assert_eq!(answered.unwrap().0.unwrap(), FAKE_LIB_VERSION);
        let held = rest.pop().unwrap();
        match then {
            Then::Answer => {
                let before = cpu_time();
                tokio::time::sleep(QUIET).await;
                check_held("async client owed a reply", cpu_time() - before);
                release.send(then).unwrap();
                assert_eq!(held.await.unwrap().0.unwrap(), FAKE_LIB_VERSION);
            }
            Then::HangUp => {
                let hung_up = Instant::now();
                release.send(then).unwrap();
                let (r, at) = held.await.unwrap();
                check_hang_up_seen("async", r, hung_up, at);
            }
        }
        // Nothing is owed: the connection closes at once, while this runtime still runs.
        drop(c);
        tokio::task::spawn_blocking(move || daemon.join().unwrap())
            .await
            .unwrap();
    });
}

fn runtimes() -> [tokio::runtime::Runtime; 2] {
    [
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    ]
}

#[test]
fn busy_polling_answers_everything_and_stops_at_its_limit() {
    let d = PrivateDaemon::start();
    for uri in [d.test_unix(), d.test_tcp()] {
        blocking_round(&uri);
        for rt in runtimes() {
            async_round(&uri, &rt);
        }
    }

    // TLS (the peers' TLS daemon): the option is ignored there (rustls sits between the
    // socket and the bytes), calls still work and an idle connection does not poll.
    let tls = common::endpoints()["libvirt_tls"]["uris"]["test_tls"]
        .as_str()
        .expect("endpoints lack libvirt_tls.uris.test_tls; run `cargo xtask peers start`")
        .to_owned();
    blocking_round(&tls);
    let ct = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    async_round(&tls, &ct);

    // A reply held back while the reader has just had input: it polls up to its limit, then
    // sleeps; a hang-up during the polling is seen at once (an in-process daemon decides
    // when replies go out).
    for then in [Then::Answer, Then::HangUp] {
        blocking_held_reply(then);
        for rt in runtimes() {
            async_held_reply(&rt, then);
        }
    }

    let c = Arc::new(blocking::Client::connect_with(&d.test_unix(), opts()).unwrap());
    // A real daemon killed while a call waits (its reader, with nothing read since the call,
    // asleep in read): the call fails at once.
    d.signal("STOP");
    let c2 = c.clone();
    let call = std::thread::spawn(move || {
        let r = c2.version();
        (r, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(100));
    d.signal("KILL");
    let killed = Instant::now();
    let (r, failed_at) = call.join().unwrap();
    assert!(r.is_err(), "a call to a killed daemon succeeded: {r:?}");
    assert!(
        failed_at.duration_since(killed) < Duration::from_secs(1),
        "the call failed {:?} after the kill",
        failed_at.duration_since(killed)
    );
}
