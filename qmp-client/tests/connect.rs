//! Connecting: connect timeouts against listeners that never accept (unix and TCP), missing
//! sockets, QMP over TCP to a real QEMU, and QMP over a caller's own byte stream; async and
//! blocking drivers.
#![cfg(all(feature = "async", feature = "blocking"))]

mod common;

use common::{blackhole, Qemu, MACHINE_NONE};
use qmp_client::{ConnectOptions, Error};
use std::time::{Duration, Instant};

const CONNECT_TIMEOUT: Duration = Duration::from_millis(400);

fn quick() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: CONNECT_TIMEOUT,
        greeting_timeout: Duration::from_secs(10),
        ..Default::default()
    }
}

/// A timeout that fired no earlier than asked and not much later.
fn assert_timed_out<T: std::fmt::Debug>(r: Result<T, Error>, started: Instant, target: &str) {
    let took = started.elapsed();
    match r {
        Err(Error::ConnectTimeout { target: t, after }) => {
            assert_eq!(after, CONNECT_TIMEOUT);
            assert!(t.contains(target), "{t} vs {target}");
        }
        other => panic!("expected a connect timeout, got {other:?}"),
    }
    assert!(took >= CONNECT_TIMEOUT, "{took:?}");
    assert!(took < CONNECT_TIMEOUT + Duration::from_secs(2), "{took:?}");
}

#[cfg(feature = "async")]
mod asynchronous {
    use super::*;
    use qmp_client::{Client, Exec};

    async fn connect_tcp_retrying(addr: &str) -> Client {
        let start = Instant::now();
        loop {
            match Client::connect_tcp(addr, ConnectOptions::default()).await {
                Err(Error::Connect { .. }) if start.elapsed() < Duration::from_secs(10) => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                r => return r.expect("connect over tcp"),
            }
        }
    }

    #[tokio::test]
    async fn unix_connect_timeout_and_missing_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("full.sock");
        let _hole = blackhole::unix(&path);
        let t = Instant::now();
        let r = Client::connect_unix(&path, quick()).await;
        assert_timed_out(r, t, "full.sock");
        let t = Instant::now();
        let r = Client::connect(
            &format!("unix:{}", dir.path().join("absent.sock").display()),
            quick(),
        )
        .await;
        assert!(matches!(r, Err(Error::Connect { .. })), "{r:?}");
        assert!(t.elapsed() < CONNECT_TIMEOUT);
    }

    #[tokio::test]
    async fn tcp_connect_timeout() {
        let (_hole, addr) = blackhole::tcp();
        let t = Instant::now();
        let r = Client::connect(&format!("tcp:{addr}"), quick()).await;
        assert_timed_out(r, t, &addr.to_string());
    }

    #[tokio::test]
    async fn tcp_to_real_qemu() {
        let (q, addr) = Qemu::spawn_tcp(MACHINE_NONE);
        let c = connect_tcp_retrying(&addr).await;
        assert!(c.greeting().version.qemu.major >= 7, "{}", q.log());
        // Pipelined over TCP, matched by id.
        let (a, b) = tokio::join!(
            c.execute("query-status", None),
            c.execute("query-qmp-schema", None)
        );
        assert_eq!(a.unwrap()["status"], "running");
        assert!(b.unwrap().as_array().unwrap().len() > 1000);
        // No fd passing over TCP: refused before anything is sent.
        let fd = std::fs::File::open("/dev/null").unwrap();
        let r = c
            .execute_with("getfd", None, Exec::fds(vec![fd.into()]))
            .await;
        assert!(matches!(r, Err(Error::FdPassingUnsupported)), "{r:?}");
        assert_eq!(
            c.execute("query-status", None).await.unwrap()["running"],
            true
        );
    }

    /// QMP over a stream the caller connected itself.
    #[tokio::test]
    async fn stream_to_real_qemu() {
        let q = Qemu::spawn(MACHINE_NONE);
        let start = Instant::now();
        let stream = loop {
            match tokio::net::UnixStream::connect(&q.qmp).await {
                Ok(s) => break s,
                Err(_) if start.elapsed() < Duration::from_secs(10) => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err(e) => panic!("{e}"),
            }
        };
        let c = Client::connect_stream(stream, ConnectOptions::default())
            .await
            .unwrap();
        let v = c
            .execute(
                "qom-get",
                Some(serde_json::json!({"path": "/machine", "property": "type"})),
            )
            .await
            .unwrap();
        assert_eq!(v, "none-machine");
        let e = c.execute("no-such-command", None).await.unwrap_err();
        assert_eq!(
            e.qmp_class(),
            Some(&qmp_client::qmp_proto::ErrorClass::CommandNotFound)
        );
    }
}

#[cfg(feature = "blocking")]
mod blocking {
    use super::*;
    use qmp_client::blocking::Client;
    use qmp_client::Exec;

    #[test]
    fn unix_connect_timeout_and_missing_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("full.sock");
        let _hole = blackhole::unix(&path);
        let t = Instant::now();
        let r = Client::connect_unix(&path, quick());
        assert_timed_out(r, t, "full.sock");
        let t = Instant::now();
        let r = Client::connect(dir.path().join("absent.sock").to_str().unwrap(), quick());
        assert!(matches!(r, Err(Error::Connect { .. })), "{r:?}");
        assert!(t.elapsed() < CONNECT_TIMEOUT);
    }

    #[test]
    fn tcp_connect_timeout() {
        let (_hole, addr) = blackhole::tcp();
        let t = Instant::now();
        let r = Client::connect(&format!("tcp:{addr}"), quick());
        assert_timed_out(r, t, &addr.to_string());
    }

    #[test]
    fn tcp_to_real_qemu() {
        let (q, addr) = Qemu::spawn_tcp(MACHINE_NONE);
        let start = Instant::now();
        let c = loop {
            match Client::connect_tcp(&addr, ConnectOptions::default()) {
                Err(Error::Connect { .. }) if start.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                r => break r.expect("connect over tcp"),
            }
        };
        assert!(c.greeting().version.qemu.major >= 7, "{}", q.log());
        let pending: Vec<_> = (0..20)
            .map(|_| c.submit("query-status", None, Exec::default()).unwrap())
            .collect();
        for p in pending {
            assert_eq!(p.wait().unwrap()["status"], "running");
        }
        let fd = std::fs::File::open("/dev/null").unwrap();
        let r = c.execute_with("getfd", None, Exec::fds(vec![fd.into()]));
        assert!(matches!(r, Err(Error::FdPassingUnsupported)), "{r:?}");
    }

    /// A write error on a caller's own writer ends the session: a pending command with no
    /// timeout fails at once (typed), later ones too, the writer is dropped, and the reader
    /// thread ends at its next read.
    #[test]
    fn io_write_error_ends_the_session() {
        use std::io::Write;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;

        struct Flaky {
            fail: Arc<AtomicBool>,
            dropped: Arc<AtomicBool>,
        }
        impl Write for Flaky {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                if self.fail.load(Ordering::SeqCst) {
                    Err(std::io::ErrorKind::BrokenPipe.into())
                } else {
                    Ok(b.len())
                }
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl Drop for Flaky {
            fn drop(&mut self) {
                self.dropped.store(true, Ordering::SeqCst);
            }
        }
        struct Tracked(std::io::PipeReader, Arc<AtomicBool>);
        impl std::io::Read for Tracked {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                self.0.read(b)
            }
        }
        impl Drop for Tracked {
            fn drop(&mut self) {
                self.1.store(true, Ordering::SeqCst);
            }
        }

        let (r, mut w) = std::io::pipe().unwrap();
        // The greeting and the answer to qmp_capabilities (id 0) up front.
        w.write_all(b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"\"}, \"capabilities\": []}}\n{\"return\": {}, \"id\": 0}\n").unwrap();
        let fail = Arc::new(AtomicBool::new(false));
        let writer_dropped = Arc::new(AtomicBool::new(false));
        let reader_dropped = Arc::new(AtomicBool::new(false));
        let options = ConnectOptions {
            command_timeout: None,
            ..ConnectOptions::default()
        };
        let c = Client::connect_io(
            Tracked(r, reader_dropped.clone()),
            Flaky {
                fail: fail.clone(),
                dropped: writer_dropped.clone(),
            },
            options,
        )
        .unwrap();
        assert!(!c.is_closed());
        fail.store(true, Ordering::SeqCst);
        let (tx, rx) = std::sync::mpsc::channel();
        let c2 = c.clone();
        std::thread::spawn(move || {
            let _ = tx.send(c2.execute("query-status", None));
        });
        let r = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("a command whose write failed must not wait forever");
        assert!(
            matches!(&r, Err(Error::Closed { command: Some(c) }) if c == "query-status"),
            "{r:?}"
        );
        assert!(c.is_closed());
        assert!(writer_dropped.load(Ordering::SeqCst));
        let started = Instant::now();
        let r = c.execute("query-version", None);
        assert!(matches!(r, Err(Error::Closed { .. })), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(1));
        // The reader thread stops at its next read instead of serving a dead session.
        w.write_all(
            b"{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\n",
        )
        .unwrap();
        let started = Instant::now();
        while !reader_dropped.load(Ordering::SeqCst) {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "reader thread still running"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// QMP over a reader/writer pair the caller made.
    #[test]
    fn io_pair_to_real_qemu() {
        let q = Qemu::spawn(MACHINE_NONE);
        let start = Instant::now();
        let s = loop {
            match std::os::unix::net::UnixStream::connect(&q.qmp) {
                Ok(s) => break s,
                Err(_) if start.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("{e}"),
            }
        };
        let c = Client::connect_io(s.try_clone().unwrap(), s, ConnectOptions::default()).unwrap();
        let v = c
            .execute(
                "qom-get",
                Some(serde_json::json!({"path": "/machine", "property": "type"})),
            )
            .unwrap();
        assert_eq!(v, "none-machine");
        let schema = c.execute("query-qmp-schema", None).unwrap();
        assert!(schema.as_array().unwrap().len() > 1000);
    }
}

/// An oversize event from a scripted peer over an in-memory stream: dropped, counted, and the
/// connection and its subscribers go on.
#[cfg(feature = "async")]
#[tokio::test]
async fn oversize_event_dropped_and_counted() {
    use qmp_client::{Client, EventFilter};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let peer = tokio::spawn(async move {
        let (r, mut w) = tokio::io::split(theirs);
        let mut lines = BufReader::new(r).lines();
        w.write_all(b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"\"}, \"capabilities\": []}}\n").await.unwrap();
        let mut n = 0;
        while let Some(line) = lines.next_line().await.unwrap() {
            let cmd: serde_json::Value = serde_json::from_str(&line).unwrap();
            let id = &cmd["id"];
            if n == 1 {
                let big = format!(
                    "{{\"timestamp\": {{\"seconds\": 1, \"microseconds\": 2}}, \"event\": \"BIG\", \"data\": {{\"x\": \"{}\"}}}}\n",
                    "b".repeat(4096)
                );
                w.write_all(big.as_bytes()).await.unwrap();
                w.write_all(b"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 3}, \"event\": \"SMALL\"}\n").await.unwrap();
            }
            w.write_all(format!("{{\"return\": {n}, \"id\": {id}}}\n").as_bytes())
                .await
                .unwrap();
            n += 1;
        }
    });
    let mut o = ConnectOptions::default();
    o.session.framer.max_frame_len = 1024;
    let c = Client::connect_stream(ours, o).await.unwrap();
    let mut all = c.subscribe(EventFilter::all());
    assert_eq!(c.execute("first", None).await.unwrap(), 1);
    assert_eq!(c.oversize_events_dropped(), 1);
    let e = all.recv_timeout(Duration::from_secs(5)).await.unwrap();
    assert_eq!(e.event, "SMALL");
    assert_eq!(c.execute("second", None).await.unwrap(), 2);
    drop(c);
    drop(all);
    peer.await.unwrap();
}
