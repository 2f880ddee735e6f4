//! A scripted QMP peer over in-memory streams (`connect_stream` / `connect_io`) for what a real
//! QEMU cannot be made to do on cue: an event sent before the return of the command that caused
//! it, with the return held back until the test has seen the event.
#![cfg(all(feature = "async", feature = "blocking"))]

use serde_json::{json, Value};
use std::time::Duration;

const GREETING: &[u8] = b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"\"}, \"capabilities\": []}}\n";

fn event(name: &str) -> String {
    format!("{{\"event\": \"{name}\", \"data\": {{\"guest\": false}}, \"timestamp\": {{\"seconds\": 1, \"microseconds\": 2}}}}\n")
}

fn ret(id: &Value) -> String {
    format!("{{\"return\": {{}}, \"id\": {id}}}\n")
}

#[cfg(feature = "async")]
mod asynchronous {
    use super::*;
    use qmp_client::{Client, ConnectOptions, EventFilter};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    #[tokio::test]
    async fn event_before_return() {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let peer = tokio::spawn(async move {
            let (r, mut w) = tokio::io::split(theirs);
            let mut lines = BufReader::new(r).lines();
            w.write_all(GREETING).await.unwrap();
            let mut go = Some(go_rx);
            while let Some(line) = lines.next_line().await.unwrap() {
                let cmd: Value = serde_json::from_str(&line).unwrap();
                let id = &cmd["id"];
                match cmd["execute"].as_str().unwrap() {
                    // The event, then the return only when the test says so.
                    "held" => {
                        w.write_all(event("SHUTDOWN").as_bytes()).await.unwrap();
                        go.take().unwrap().await.unwrap();
                        w.write_all(ret(id).as_bytes()).await.unwrap();
                    }
                    // The event and the return in one write.
                    "together" => {
                        let both = event("POWERDOWN") + &ret(id);
                        w.write_all(both.as_bytes()).await.unwrap();
                    }
                    _ => w.write_all(ret(id).as_bytes()).await.unwrap(),
                }
            }
        });
        let c = Client::connect_stream(ours, ConnectOptions::default())
            .await
            .unwrap();
        let mut sub = c.subscribe(EventFilter::name("SHUTDOWN"));
        let c2 = c.clone();
        let call = tokio::spawn(async move { c2.execute("held", None).await });
        // The event arrives while the command is still unanswered, and is delivered then.
        let e = sub.recv_timeout(Duration::from_secs(5)).await.unwrap();
        assert_eq!(e.event, "SHUTDOWN");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!call.is_finished(), "the return was held back");
        go_tx.send(()).unwrap();
        assert_eq!(call.await.unwrap().unwrap(), json!({}));
        // execute_then_wait_event sees an event that came before (with) the return.
        let (v, e) = c
            .execute_then_wait_event(
                "together",
                None,
                EventFilter::name("POWERDOWN"),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!((v, e.event.as_str()), (json!({}), "POWERDOWN"));
        drop((c, sub));
        peer.await.unwrap();
    }
}

#[cfg(feature = "blocking")]
mod blocking {
    use super::*;
    use qmp_client::blocking::Client;
    use qmp_client::{ConnectOptions, EventFilter};
    use std::io::{BufRead, BufReader, Write};

    #[test]
    fn event_before_return() {
        let (from_peer, mut to_client) = std::io::pipe().unwrap();
        let (from_client, to_peer) = std::io::pipe().unwrap();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let peer = std::thread::spawn(move || {
            to_client.write_all(GREETING).unwrap();
            for line in BufReader::new(from_client).lines() {
                let cmd: Value = serde_json::from_str(&line.unwrap()).unwrap();
                let id = &cmd["id"];
                match cmd["execute"].as_str().unwrap() {
                    "held" => {
                        to_client.write_all(event("SHUTDOWN").as_bytes()).unwrap();
                        go_rx.recv().unwrap();
                        to_client.write_all(ret(id).as_bytes()).unwrap();
                    }
                    "together" => {
                        let both = event("POWERDOWN") + &ret(id);
                        to_client.write_all(both.as_bytes()).unwrap();
                    }
                    _ => to_client.write_all(ret(id).as_bytes()).unwrap(),
                }
            }
        });
        let c = Client::connect_io(from_peer, to_peer, ConnectOptions::default()).unwrap();
        let sub = c.subscribe(EventFilter::name("SHUTDOWN"));
        let c2 = c.clone();
        let call = std::thread::spawn(move || c2.execute("held", None));
        let e = sub.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(e.event, "SHUTDOWN");
        std::thread::sleep(Duration::from_millis(50));
        assert!(!call.is_finished(), "the return was held back");
        go_tx.send(()).unwrap();
        assert_eq!(call.join().unwrap().unwrap(), json!({}));
        let (v, e) = c
            .execute_then_wait_event(
                "together",
                None,
                EventFilter::name("POWERDOWN"),
                Duration::from_secs(5),
            )
            .unwrap();
        assert_eq!((v, e.event.as_str()), (json!({}), "POWERDOWN"));
        // Dropping the client drops its writer: the peer sees the end and stops.
        drop((c, sub));
        peer.join().unwrap();
    }
}
