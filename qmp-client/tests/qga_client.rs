//! `qmp_client::qga`: both drivers against the real QEMU guest agent (Debian's qemu-ga 7.2) and,
//! for the timing-dependent paths (timeouts, cancellation, late replies, a silent agent), against
//! a scripted fake agent on a unix socket.
//!
//! The real agent runs as in qmp-proto's `tests/qga_agent.rs`: its own `qemu-ga -m unix-listen`
//! per test on a socket in a temp dir (killed on drop), private state dir, pid file and log, no
//! config file, and every RPC blocked except a few harmless read-only ones. The binary comes from
//! the peers' endpoints file (`VMWIRE_PEERS`, key `qemu.ga`), else `PATH` and `/usr/sbin`; a
//! missing agent is a failure naming the package, never a skip. The agent is never asked to
//! sleep: the slow replies come from the fake.

#![cfg(all(unix, any(feature = "async", feature = "blocking")))]

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[path = "../../qmp-proto/tests/common/qemu_ga.rs"]
mod qemu_ga;
use qemu_ga::{Agent, ALLOWED};

impl Agent {
    /// A previous client that wrote half a command and went away (reading nothing, so the agent
    /// has no reply to send it).
    fn leave_half_written_command(&self) {
        let mut first = UnixStream::connect(&self.socket).expect("connect to qemu-ga");
        first.write_all(b"{\"execute\": \"guest-pi").unwrap();
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap()
        .trim()
        .to_owned()
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// What the fake agent does.
#[derive(Clone)]
struct Script {
    /// Answer `guest-sync-delimited` (0xFF then the token); a silent agent never syncs.
    answer_syncs: bool,
    /// Sent to each new connection before anything else: a reply owed to a previous client.
    stale_on_accept: Option<Value>,
    /// How long the `slow` command takes; its reply is `{"late": true}`.
    slow: Duration,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            answer_syncs: true,
            stale_on_accept: None,
            slow: Duration::from_millis(400),
        }
    }
}

/// A scripted guest agent on a unix socket. Like qemu-ga it answers in order, one command at a
/// time; a 0xFF byte resets its parser. Commands: `guest-sync-delimited`, `guest-ping`, `echo`
/// (returns its arguments), `slow` (answers `{"late": true}` after [`Script::slow`]), `quit`
/// (closes the connection unanswered); anything else is CommandNotFound.
struct FakeAgent {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    /// Every command received, by name (`sync` for guest-sync-delimited).
    seen: Arc<Mutex<Vec<String>>>,
}

impl FakeAgent {
    fn start(script: Script) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("fake-qga.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                serve(conn, &script, &log);
            }
        });
        Self {
            _dir: dir,
            socket,
            seen,
        }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(mut conn: UnixStream, script: &Script, seen: &Mutex<Vec<String>>) {
    if let Some(v) = &script.stale_on_accept {
        let _ = conn.write_all(format!("{v}\n").as_bytes());
    }
    let mut line = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            match b {
                0xFF => line.clear(),
                b'\n' => {
                    let cmd: Value = match serde_json::from_slice(&line) {
                        Ok(v) => v,
                        Err(_) => json!({"execute": "<garbage>"}),
                    };
                    line.clear();
                    let name = cmd["execute"].as_str().unwrap_or_default().to_owned();
                    let reply = match name.as_str() {
                        "guest-sync-delimited" => {
                            seen.lock().unwrap().push("sync".into());
                            if !script.answer_syncs {
                                continue;
                            }
                            let id = &cmd["arguments"]["id"];
                            let mut r = vec![0xFF];
                            r.extend(format!("{}\n", json!({"return": id})).as_bytes());
                            r
                        }
                        _ => {
                            seen.lock().unwrap().push(name.clone());
                            let v = match name.as_str() {
                                "guest-ping" => json!({"return": {}}),
                                "echo" => json!({"return": cmd["arguments"]}),
                                "slow" => {
                                    std::thread::sleep(script.slow);
                                    json!({"return": {"late": true}})
                                }
                                "quit" => return,
                                other => json!({"error": {
                                    "class": "CommandNotFound",
                                    "desc": format!("The command {other} has not been found"),
                                }}),
                            };
                            format!("{v}\n").into_bytes()
                        }
                    };
                    if conn.write_all(&reply).is_err() {
                        return;
                    }
                }
                b => line.push(b),
            }
        }
    }
}

fn fake_options() -> qmp_client::qga::QgaOptions {
    qmp_client::qga::QgaOptions {
        sync_timeout: Duration::from_secs(5),
        command_timeout: Some(Duration::from_secs(5)),
        ..Default::default()
    }
}

fn is_timeout(e: &qmp_client::Error, command: &str) -> bool {
    matches!(e, qmp_client::Error::Timeout { command: c, .. } if c == command)
}

#[cfg(feature = "async")]
mod asynchronous {
    use super::*;
    use qmp_client::qga::{Client, QgaOptions};
    use qmp_client::qmp_proto::ErrorClass;
    use qmp_client::Error;

    #[tokio::test]
    async fn async_real_agent_connect_sync_and_helpers() {
        let agent = Agent::spawn();
        let ga = Client::connect_unix(&agent.socket, QgaOptions::default())
            .await
            .unwrap();
        // The agent's complaint about the 0xFF byte, at least.
        assert!(ga.stale_discarded().await >= 1);
        ga.ping().await.unwrap();
        let info = ga.info().await.unwrap();
        assert_eq!(info.version, agent.version());
        for c in ALLOWED {
            assert!(info.is_enabled(c), "{c} should be enabled: {info:?}");
        }
        assert!(!info.is_enabled("guest-shutdown"));
        assert!(info
            .supported_commands
            .iter()
            .any(|c| c.name == "guest-exec" && !c.enabled));
        let ns = ga.get_time().await.unwrap();
        assert!((now_ns() - ns).abs() < 60_000_000_000, "agent time {ns}");
        assert_eq!(ga.get_host_name().await.unwrap(), hostname());
        let os = ga.get_osinfo().await.unwrap();
        assert_eq!(os.kernel_release, Some(kernel_release()));
        assert_eq!(
            ga.execute("guest-sync", Some(json!({"id": 4242})))
                .await
                .unwrap(),
            json!(4242)
        );
        assert!(!ga.is_closed().await);
    }

    #[tokio::test]
    async fn async_real_agent_errors_keep_their_class() {
        let agent = Agent::spawn();
        let ga = Client::connect_unix(&agent.socket, QgaOptions::default())
            .await
            .unwrap();
        let e = ga.execute("guest-no-such-command", None).await.unwrap_err();
        assert_eq!(e.qmp_class(), Some(&ErrorClass::CommandNotFound), "{e}");
        let Error::Qmp { command, error } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(command, "guest-no-such-command");
        assert_eq!(
            error.desc,
            "The command guest-no-such-command has not been found"
        );
        // Blocked: CommandNotFound as well (qemu-ga 7.2), with its own description.
        let e = ga.execute("guest-shutdown", None).await.unwrap_err();
        let Error::Qmp { error, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(error.class, ErrorClass::CommandNotFound);
        assert_eq!(error.desc, "Command guest-shutdown has been disabled");
        let e = ga
            .execute("guest-get-time", Some(json!({"bogus": 1})))
            .await
            .unwrap_err();
        assert_eq!(e.qmp_class(), Some(&ErrorClass::GenericError), "{e}");
        // Arguments that are not an object are refused before anything is sent.
        let e = ga
            .execute("guest-ping", Some(json!([1])))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Protocol(_)), "{e:?}");
        ga.ping().await.unwrap();
    }

    #[tokio::test]
    async fn async_real_agent_after_a_half_written_command() {
        let agent = Agent::spawn();
        agent.leave_half_written_command();
        let ga = Client::connect_unix(&agent.socket, QgaOptions::default())
            .await
            .unwrap();
        // One object: the agent's parse error covering the fragment and the 0xFF.
        assert_eq!(ga.stale_discarded().await, 1);
        ga.ping().await.unwrap();
        assert_eq!(ga.info().await.unwrap().version, agent.version());
    }

    #[tokio::test]
    async fn async_timeout_resyncs_and_discards_the_late_reply() {
        let fake = FakeAgent::start(Script::default());
        let ga = Client::connect_unix(&fake.socket, fake_options())
            .await
            .unwrap();
        assert_eq!(ga.stale_discarded().await, 0);
        let e = ga
            .execute_with_timeout("slow", None, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(is_timeout(&e, "slow"), "{e:?}");
        // The late `{"late": true}` comes while the client resyncs; echo gets its own answer.
        let args = json!({"n": 1});
        assert_eq!(ga.execute("echo", Some(args.clone())).await.unwrap(), args);
        assert_eq!(ga.stale_discarded().await, 1);
        // In step again: no resync before the next command.
        ga.ping().await.unwrap();
        assert_eq!(fake.seen(), ["sync", "slow", "sync", "echo", "guest-ping"]);

        // The late reply arrives while the client is idle: still discarded.
        let e = ga
            .execute_with_timeout("slow", None, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(is_timeout(&e, "slow"), "{e:?}");
        tokio::time::sleep(Duration::from_millis(600)).await;
        let args = json!({"n": 2});
        assert_eq!(ga.execute("echo", Some(args.clone())).await.unwrap(), args);
        assert_eq!(ga.stale_discarded().await, 2);
    }

    #[tokio::test]
    async fn async_cancelled_call_resyncs() {
        let fake = FakeAgent::start(Script::default());
        let ga = Client::connect_unix(&fake.socket, fake_options())
            .await
            .unwrap();
        // Drop the call's future after its command went out.
        let cancelled =
            tokio::time::timeout(Duration::from_millis(100), ga.execute("slow", None)).await;
        assert!(cancelled.is_err(), "the slow call should still be pending");
        let args = json!({"after": "cancel"});
        assert_eq!(ga.execute("echo", Some(args.clone())).await.unwrap(), args);
        assert_eq!(ga.stale_discarded().await, 1);
        assert_eq!(fake.seen(), ["sync", "slow", "sync", "echo"]);
        // Clones share the connection and queue for it.
        let other = ga.clone();
        let (a, b) = tokio::join!(
            ga.execute("echo", Some(json!({"who": "a"}))),
            other.execute("echo", Some(json!({"who": "b"})))
        );
        assert_eq!(a.unwrap(), json!({"who": "a"}));
        assert_eq!(b.unwrap(), json!({"who": "b"}));
    }

    #[tokio::test]
    async fn async_stale_output_on_connect_unknown_command_and_close() {
        let fake = FakeAgent::start(Script {
            stale_on_accept: Some(json!({"return": "owed to someone else"})),
            ..Script::default()
        });
        let ga = Client::connect_unix(&fake.socket, fake_options())
            .await
            .unwrap();
        assert_eq!(ga.stale_discarded().await, 1);
        ga.ping().await.unwrap();
        let e = ga.execute("nosuch", None).await.unwrap_err();
        assert_eq!(e.qmp_class(), Some(&ErrorClass::CommandNotFound));
        let e = ga.execute("quit", None).await.unwrap_err();
        assert!(
            matches!(&e, Error::Closed { command: Some(c) } if c == "quit"),
            "{e:?}"
        );
        assert!(ga.is_closed().await);
        assert!(matches!(ga.ping().await, Err(Error::Closed { .. })));
    }

    #[tokio::test]
    async fn async_silent_agent_sync_times_out() {
        let fake = FakeAgent::start(Script {
            answer_syncs: false,
            ..Script::default()
        });
        let options = QgaOptions {
            sync_timeout: Duration::from_millis(200),
            ..fake_options()
        };
        let e = Client::connect_unix(&fake.socket, options)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::SyncTimeout { .. }), "{e:?}");
        // Nothing listens here.
        let e = Client::connect_unix(fake.socket.with_extension("none"), fake_options())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Connect { .. }), "{e:?}");
    }
}

#[cfg(feature = "blocking")]
mod blocking {
    use super::*;
    use qmp_client::qga::blocking::Client;
    use qmp_client::qga::QgaOptions;
    use qmp_client::qmp_proto::ErrorClass;
    use qmp_client::Error;

    #[test]
    fn blocking_real_agent_connect_sync_and_helpers() {
        let agent = Agent::spawn();
        let ga = Client::connect_unix(&agent.socket, QgaOptions::default()).unwrap();
        assert!(ga.stale_discarded() >= 1);
        ga.ping().unwrap();
        let info = ga.info().unwrap();
        assert_eq!(info.version, agent.version());
        for c in ALLOWED {
            assert!(info.is_enabled(c), "{c} should be enabled: {info:?}");
        }
        assert!(!info.is_enabled("guest-shutdown"));
        let ns = ga.get_time().unwrap();
        assert!((now_ns() - ns).abs() < 60_000_000_000, "agent time {ns}");
        assert_eq!(ga.get_host_name().unwrap(), hostname());
        let os = ga.get_osinfo().unwrap();
        assert_eq!(os.kernel_release, Some(kernel_release()));
        assert_eq!(
            ga.execute("guest-sync", Some(json!({"id": 4242}))).unwrap(),
            json!(4242)
        );
        assert!(!ga.is_closed());
    }

    #[test]
    fn blocking_real_agent_errors_keep_their_class() {
        let agent = Agent::spawn();
        let ga = Client::connect_unix(&agent.socket, QgaOptions::default()).unwrap();
        let e = ga.execute("guest-no-such-command", None).unwrap_err();
        assert_eq!(e.qmp_class(), Some(&ErrorClass::CommandNotFound), "{e}");
        let e = ga.execute("guest-exec", None).unwrap_err();
        let Error::Qmp { command, error } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(command, "guest-exec");
        assert_eq!(error.class, ErrorClass::CommandNotFound);
        assert_eq!(error.desc, "Command guest-exec has been disabled");
        let e = ga
            .execute("guest-get-time", Some(json!({"bogus": 1})))
            .unwrap_err();
        assert_eq!(e.qmp_class(), Some(&ErrorClass::GenericError), "{e}");
        ga.ping().unwrap();
    }

    #[test]
    fn blocking_real_agent_after_a_half_written_command() {
        let agent = Agent::spawn();
        agent.leave_half_written_command();
        let ga = Client::connect_unix(&agent.socket, QgaOptions::default()).unwrap();
        assert_eq!(ga.stale_discarded(), 1);
        ga.ping().unwrap();
        assert_eq!(ga.info().unwrap().version, agent.version());
    }

    #[test]
    fn blocking_timeout_resyncs_and_discards_the_late_reply() {
        let fake = FakeAgent::start(Script::default());
        let ga = Client::connect_unix(&fake.socket, fake_options()).unwrap();
        assert_eq!(ga.stale_discarded(), 0);
        let e = ga
            .execute_with_timeout("slow", None, Duration::from_millis(100))
            .unwrap_err();
        assert!(is_timeout(&e, "slow"), "{e:?}");
        let args = json!({"n": 1});
        assert_eq!(ga.execute("echo", Some(args.clone())).unwrap(), args);
        assert_eq!(ga.stale_discarded(), 1);
        ga.ping().unwrap();
        assert_eq!(fake.seen(), ["sync", "slow", "sync", "echo", "guest-ping"]);

        let e = ga
            .execute_with_timeout("slow", None, Duration::from_millis(50))
            .unwrap_err();
        assert!(is_timeout(&e, "slow"), "{e:?}");
        std::thread::sleep(Duration::from_millis(600));
        let args = json!({"n": 2});
        assert_eq!(ga.execute("echo", Some(args.clone())).unwrap(), args);
        assert_eq!(ga.stale_discarded(), 2);
    }

    #[test]
    fn blocking_over_io_pair_stale_output_unknown_command_and_close() {
        let fake = FakeAgent::start(Script {
            stale_on_accept: Some(json!({"return": "owed to someone else"})),
            ..Script::default()
        });
        let s = UnixStream::connect(&fake.socket).unwrap();
        let ga = Client::connect_io(s.try_clone().unwrap(), s, fake_options()).unwrap();
        assert_eq!(ga.stale_discarded(), 1);
        ga.ping().unwrap();
        let e = ga.execute("nosuch", None).unwrap_err();
        assert_eq!(e.qmp_class(), Some(&ErrorClass::CommandNotFound));
        // Clones share the connection; threads take turns.
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let ga = ga.clone();
                std::thread::spawn(move || ga.execute("echo", Some(json!({"i": i}))).unwrap())
            })
            .collect();
        for (i, t) in threads.into_iter().enumerate() {
            assert_eq!(t.join().unwrap(), json!({"i": i}));
        }
        let e = ga.execute("quit", None).unwrap_err();
        assert!(
            matches!(&e, Error::Closed { command: Some(c) } if c == "quit"),
            "{e:?}"
        );
        assert!(ga.is_closed());
        assert!(matches!(ga.ping(), Err(Error::Closed { .. })));
    }

    #[test]
    fn blocking_silent_agent_sync_times_out() {
        let fake = FakeAgent::start(Script {
            answer_syncs: false,
            ..Script::default()
        });
        let options = QgaOptions {
            sync_timeout: Duration::from_millis(200),
            ..fake_options()
        };
        let start = std::time::Instant::now();
        let e = Client::connect_unix(&fake.socket, options).unwrap_err();
        assert!(matches!(e, Error::SyncTimeout { .. }), "{e:?}");
        assert!(start.elapsed() < Duration::from_secs(3));
        let e =
            Client::connect_unix(fake.socket.with_extension("none"), fake_options()).unwrap_err();
        assert!(matches!(e, Error::Connect { .. }), "{e:?}");
    }
}
