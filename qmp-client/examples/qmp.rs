//! `cargo run -q -p qmp-client --example qmp -- SOCKET 'JSON'... [--events SECS]`
//!
//! Connects to SOCKET (`unix:PATH`, `tcp:HOST:PORT` or a path), runs each command (all pipelined,
//! printed in order) and prints each response as one JSON line; with `--events SECS` it then
//! prints the events that arrive during SECS seconds. A command is a JSON object
//! `{"execute": NAME, "arguments": {...}}` or just a command name.

use qmp_client::{Client, ConnectOptions, EventFilter, RecvError};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: qmp SOCKET 'JSON'... [--events SECS]";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("qmp: {e}");
            ExitCode::from(2)
        }
    }
}

/// `--events`' argument: seconds, a finite number from 0 up (fractions allowed).
fn event_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("--events wants seconds, got {text:?}"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("--events wants a finite number of seconds >= 0, got {text:?}"))
}

async fn run() -> Result<ExitCode, String> {
    let mut args = std::env::args().skip(1);
    let socket = args.next().ok_or(USAGE)?;
    let mut commands = Vec::new();
    let mut events = None;
    while let Some(a) = args.next() {
        if a == "--events" {
            let text = args.next().ok_or(USAGE)?;
            events = Some(event_seconds(&text)?);
        } else if a.trim_start().starts_with('{') {
            let v: Value = serde_json::from_str(&a).map_err(|e| format!("bad JSON {a}: {e}"))?;
            let name = v["execute"]
                .as_str()
                .ok_or_else(|| format!("no \"execute\" in {a}"))?
                .to_owned();
            commands.push((name, v.get("arguments").cloned()));
        } else {
            commands.push((a, None));
        }
    }
    let client = Client::connect(&socket, ConnectOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut sub = events.map(|_| client.subscribe(EventFilter::all()));
    // One task per command: all are submitted at once and pipelined; printed in order.
    let calls: Vec<_> = commands
        .into_iter()
        .map(|(n, a)| {
            let c = client.clone();
            tokio::spawn(async move { c.execute(&n, a).await })
        })
        .collect();
    let mut failed = false;
    for call in calls {
        let r = call.await.map_err(|e| e.to_string())?;
        let line = match r {
            Ok(v) => json!({ "return": v }),
            Err(qmp_client::Error::Qmp { error, .. }) => {
                failed = true;
                json!({ "error": { "class": error.class.as_str(), "desc": error.desc } })
            }
            Err(e) => return Err(e.to_string()),
        };
        println!("{line}");
    }
    if let (Some(d), Some(sub)) = (events, sub.as_mut()) {
        let end = Instant::now() + d;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, sub.recv()).await {
                Err(_) | Ok(Err(RecvError::Closed)) => break,
                Ok(Ok(e)) => println!("{}", serde_json::to_string(&e).expect("events serialise")),
                Ok(Err(e)) => eprintln!("qmp: {e}"),
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
