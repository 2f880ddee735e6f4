//! The sans-IO `Connection` driven by hand over a std `UnixStream` against the REAL libvirtd
//! started by `cargo xtask peers start` (endpoints file: `$VMWIRE_PEERS`, default
//! /var/tmp/vmwire-peers/endpoints.json).

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use libvirt_proto::generated::api::{DomainEventID, DomainEventType, ErrorLevel, ErrorNumber};
use libvirt_proto::generated::remote::{
    procs, RemoteAuthType, RemoteConnectDomainEventCallbackDeregisterAnyArgs,
    RemoteConnectDomainEventCallbackRegisterAnyArgs, RemoteConnectListAllDomainsArgs,
    RemoteConnectOpenArgs, RemoteConnectSupportsFeatureArgs, RemoteDomainCreateXmlArgs,
    RemoteDomainDestroyArgs, RemoteDomainEventCallbackLifecycleMsg, RemoteDomainLookupByNameArgs,
    RemoteDomainScreenshotArgs,
};
use libvirt_proto::program::{Call, ProcedureMarker};
use libvirt_proto::{
    CallId, CloseReason, Connection, Error, Event, EventFamily, KeepaliveConfig, Reply,
    ServerMessage, StreamItem,
};

fn endpoints() -> serde_json::Value {
    let path = std::env::var("VMWIRE_PEERS")
        .unwrap_or_else(|_| "/var/tmp/vmwire-peers/endpoints.json".to_owned());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read peers endpoints {path}: {e}; run `cargo xtask peers start`")
    });
    serde_json::from_str(&text).expect("endpoints file is JSON")
}

/// `VIR_DRV_FEATURE_PROGRAM_KEEPALIVE` (`virDrvFeature` in libvirt's `libvirt_internal.h`,
/// not part of the public API XML).
const FEATURE_PROGRAM_KEEPALIVE: i32 = 10;

/// A tiny blocking driver: the whole "IO layer" a sans-IO connection needs.
struct Driver {
    sock: UnixStream,
    conn: Connection,
    /// Events that were not the reply being waited for.
    backlog: Vec<Event>,
    buf: Vec<u8>,
}

impl Driver {
    fn connect() -> Self {
        let ep = endpoints();
        let path = ep["libvirt"]["socket"].as_str().expect("libvirt.socket");
        let sock = UnixStream::connect(path)
            .unwrap_or_else(|e| panic!("connect {path}: {e}; run `cargo xtask peers start`"));
        Self {
            sock,
            conn: Connection::default(),
            backlog: Vec::new(),
            buf: vec![0; 64 * 1024],
        }
    }

    fn flush(&mut self) {
        while let Some(t) = self.conn.poll_transmit() {
            assert!(t.fds.is_empty());
            self.sock.write_all(&t.data).expect("write");
        }
    }

    /// One round of IO: send what is queued, read once (until the next timer at most), fire timers.
    fn turn(&mut self, limit: Instant) {
        self.flush();
        let now = Instant::now();
        let until = self.conn.poll_timeout().map_or(limit, |t| t.min(limit));
        let wait = until
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        self.sock.set_read_timeout(Some(wait)).unwrap();
        match self.sock.read(&mut self.buf) {
            Ok(0) => self.conn.handle_eof(),
            Ok(n) => self.conn.handle_input(&self.buf[..n]).expect("valid input"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => self.conn.handle_io_error(e),
        }
        self.conn.handle_timeout(Instant::now());
        self.flush();
    }

    fn wait_reply(&mut self, id: CallId) -> Result<Reply, Error> {
        let limit = Instant::now() + Duration::from_secs(20);
        if let Some(i) = self
            .backlog
            .iter()
            .position(|e| matches!(e, Event::Reply { id: got, .. } if *got == id))
        {
            match self.backlog.remove(i) {
                Event::Reply { result, .. } => return result,
                _ => unreachable!(),
            }
        }
        loop {
            while let Some(ev) = self.conn.poll_event() {
                match ev {
                    Event::Reply { id: got, result } if got == id => return result,
                    other => self.backlog.push(other),
                }
            }
            assert!(Instant::now() < limit, "no reply for {id} within 20 s");
            self.turn(limit);
        }
    }

    fn call<C: Call>(&mut self, procedure: C, args: &C::Args) -> Result<C::Ret, Error> {
        let id = self.conn.start(procedure, args).expect("start call");
        self.wait_reply(id)?.decode::<C::Ret>()
    }

    fn open(&mut self) {
        let auth = self.call(procs::AuthList, &()).unwrap();
        assert_eq!(
            auth.types,
            vec![RemoteAuthType::None],
            "the peer daemon uses auth none"
        );
        let args = RemoteConnectOpenArgs {
            name: Some("test:///default".into()),
            flags: 0,
        };
        self.call(procs::ConnectOpen, &args).unwrap();
    }

    fn close(&mut self) {
        self.call(procs::ConnectClose, &()).unwrap();
        assert_eq!(self.conn.pending_calls(), 0);
    }
}

#[test]
fn open_version_list_error_close() {
    let mut d = Driver::connect();
    d.open();

    let hv = d.call(procs::ConnectGetVersion, &()).unwrap().hv_ver;
    // The test driver's hypervisor version is fixed at 2 (`virsh version`: "Running
    // hypervisor: TEST 0.0.2").
    assert_eq!(hv, 2);
    let lib = d.call(procs::ConnectGetLibVersion, &()).unwrap().lib_ver;
    assert!(
        (9_000_000..100_000_000).contains(&lib),
        "library version {lib}"
    );

    let args = RemoteConnectListAllDomainsArgs {
        need_results: 1,
        flags: 0,
    };
    let list = d.call(procs::ConnectListAllDomains, &args).unwrap();
    assert_eq!(list.ret as usize, list.domains.len());
    assert!(
        list.domains.iter().any(|dom| dom.name == "test"),
        "the test driver's default domain is listed: {:?}",
        list.domains
    );

    // A deliberate error: a typed remote error with VIR_ERR_NO_DOMAIN.
    let args = RemoteDomainLookupByNameArgs {
        name: "no-such-domain-vmwire".into(),
    };
    let err = d.call(procs::DomainLookupByName, &args).unwrap_err();
    let remote = err.remote().expect("a remote error");
    assert_eq!(remote.code, ErrorNumber::ERR_NO_DOMAIN);
    assert_eq!(remote.level, ErrorLevel::ERROR);
    // libvirtd 9.0's test driver says just "Domain not found" (virsh prints the same).
    assert!(
        remote.to_string().starts_with("Domain not found"),
        "{remote}"
    );
    assert_eq!(err.to_string(), remote.to_string());
    assert!(
        !d.conn.is_closed(),
        "a remote error does not close anything"
    );

    d.close();
    assert!(d.backlog.is_empty(), "{:?}", d.backlog);
    // The server hangs up after CONNECT_CLOSE; EOF is reported as a close.
    let limit = Instant::now() + Duration::from_secs(5);
    while !d.conn.is_closed() && Instant::now() < limit {
        d.turn(limit);
    }
    assert_eq!(d.conn.close_reason(), Some(&CloseReason::Eof));
    assert!(matches!(
        d.conn.poll_event(),
        Some(Event::Closed(CloseReason::Eof))
    ));
}

#[test]
fn pipelined_calls_and_abandoned_call() {
    let mut d = Driver::connect();
    d.open();
    let ids: Vec<CallId> = (0..64)
        .map(|i| {
            if i % 2 == 0 {
                d.conn.start(procs::ConnectGetVersion, &()).unwrap()
            } else {
                d.conn.start(procs::ConnectGetLibVersion, &()).unwrap()
            }
        })
        .collect();
    // Abandon a few: their replies must be dropped without disturbing the others.
    for id in ids.iter().step_by(7) {
        d.conn.abandon(*id);
    }
    let mut got = 0;
    for (i, id) in ids.iter().enumerate() {
        if i % 7 == 0 {
            continue;
        }
        // Both replies are one unsigned hyper.
        let v: u64 = d.wait_reply(*id).unwrap().decode().unwrap();
        assert!(v > 0);
        got += 1;
    }
    assert_eq!(got, 64 - 10);
    let v = d.call(procs::ConnectGetLibVersion, &()).unwrap().lib_ver;
    assert!(v > 0);
    assert_eq!(d.conn.stats().discarded_replies, 10);
    assert!(d.backlog.is_empty());
    d.close();
}

#[test]
fn keepalive_against_libvirtd() {
    let mut d = Driver::connect();
    d.open();
    let args = RemoteConnectSupportsFeatureArgs {
        feature: FEATURE_PROGRAM_KEEPALIVE,
    };
    let supported = d.call(procs::ConnectSupportsFeature, &args).unwrap();
    assert_eq!(supported.supported, 1);
    let interval = Duration::from_millis(200);
    d.conn
        .enable_keepalive(KeepaliveConfig { interval, count: 2 }, Instant::now());
    // Stay idle for several intervals: we PING, the server PONGs, nobody dies.
    let end = Instant::now() + interval * 8;
    while Instant::now() < end {
        d.turn(end);
    }
    let st = d.conn.stats();
    assert!(st.pings_sent >= 2, "{st:?}");
    assert!(!d.conn.is_closed(), "{:?}", d.conn.close_reason());
    assert!(d.backlog.is_empty(), "PONGs are not application events");
    d.close();
}

#[test]
fn screenshot_stream_from_test_driver() {
    let mut d = Driver::connect();
    d.open();
    let args = RemoteDomainLookupByNameArgs {
        name: "test".into(),
    };
    let dom = d.call(procs::DomainLookupByName, &args).unwrap().dom;
    // @readstream: the generated table marks it, so `start` opens the stream state.
    assert!(procs::DomainScreenshot::STREAM.is_some());
    let args = RemoteDomainScreenshotArgs {
        dom,
        screen: 0,
        flags: 0,
    };
    let id = d.conn.start(procs::DomainScreenshot, &args).unwrap();
    let ret: <procs::DomainScreenshot as Call>::Ret = d.wait_reply(id).unwrap().decode().unwrap();
    assert!(ret.mime.is_some_and(|m| m.starts_with("image/")));
    let mut data = Vec::new();
    let limit = Instant::now() + Duration::from_secs(20);
    loop {
        match d.conn.stream_recv(id).unwrap() {
            Some(StreamItem::Data(b)) => data.extend_from_slice(&b),
            Some(StreamItem::Hole { .. }) => panic!("no holes in a screenshot"),
            Some(StreamItem::Eof) => break,
            None => {
                assert!(Instant::now() < limit, "stream stalled");
                d.turn(limit);
            }
        }
    }
    assert!(data.len() > 8, "screenshot has {} bytes", data.len());
    d.conn.stream_finish(id).unwrap();
    let limit = Instant::now() + Duration::from_secs(20);
    'done: loop {
        while let Some(ev) = d.conn.poll_event() {
            match ev {
                Event::StreamFinished { id: got } if got == id => break 'done,
                Event::StreamReadable { .. } => {}
                other => panic!("{other:?}"),
            }
        }
        assert!(Instant::now() < limit);
        d.turn(limit);
    }
    d.close();
}

#[test]
fn lifecycle_events_routed_by_callback_id() {
    let mut d = Driver::connect();
    d.open();
    let args = RemoteConnectDomainEventCallbackRegisterAnyArgs {
        event_id: DomainEventID::LIFECYCLE.0,
        dom: None,
    };
    let cb = d
        .call(procs::ConnectDomainEventCallbackRegisterAny, &args)
        .unwrap()
        .callback_id;
    d.conn.route_callback(EventFamily::Domain, cb, 4242);
    let name = format!("vmwire-proto-ev-{}", std::process::id());
    let xml = format!(
        "<domain type='test'><name>{name}</name><memory>8192</memory><os><type>hvm</type></os></domain>"
    );
    let args = RemoteDomainCreateXmlArgs {
        xml_desc: xml,
        flags: 0,
    };
    let dom = d.call(procs::DomainCreateXml, &args).unwrap().dom;
    assert_eq!(dom.name, name);
    d.call(procs::DomainDestroy, &RemoteDomainDestroyArgs { dom })
        .unwrap();

    let mut seen = Vec::new();
    let limit = Instant::now() + Duration::from_secs(10);
    while seen.len() < 2 {
        while let Some(ev) = d.conn.poll_event() {
            d.backlog.push(ev);
        }
        for ev in std::mem::take(&mut d.backlog) {
            if let Event::Message(m @ ServerMessage { .. }) = ev {
                if m.procedure as u32 != procs::DomainEventCallbackLifecycle::PROCEDURE {
                    continue;
                }
                assert_eq!(m.callback_id, Some(cb));
                assert_eq!(m.route, Some(4242));
                let msg: RemoteDomainEventCallbackLifecycleMsg = m.decode().unwrap();
                assert_eq!(msg.callback_id, cb);
                if msg.msg.dom.name == name {
                    seen.push(DomainEventType(msg.msg.event));
                }
            }
        }
        if seen.len() < 2 {
            assert!(Instant::now() < limit, "events seen: {seen:?}");
            d.turn(limit);
        }
    }
    assert_eq!(
        seen,
        vec![DomainEventType::STARTED, DomainEventType::STOPPED]
    );
    let args = RemoteConnectDomainEventCallbackDeregisterAnyArgs { callback_id: cb };
    d.call(procs::ConnectDomainEventCallbackDeregisterAny, &args)
        .unwrap();
    d.conn.unroute_callback(EventFamily::Domain, cb);
    d.backlog.clear();
    d.close();
}
