//! Push arbitrary bytes through `libvirt_proto::Framer` (split at fuzzer-chosen points) and
//! through a `Connection` with pending calls, a stream, keepalive and a callback route. Must never
//! panic; every packet the framer yields must re-encode to the bytes it came from; the connection
//! must end up either open or closed with one `Closed` event last.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use libvirt_proto::{
    CallOptions, Connection, Event, EventFamily, Framer, KeepaliveConfig, ProcedureId,
    RemoteError, StreamItem,
};

fuzz_target!(|data: &[u8]| {
    let (cuts, data) = data.split_at(data.len().min(2));
    let step = usize::from(cuts.first().copied().unwrap_or(0)).max(1);

    // 1. The framer alone, `step` bytes at a time.
    let mut f = Framer::with_max_packet(1 << 20);
    let mut consumed = 0usize;
    'outer: for chunk in data.chunks(step) {
        f.push(chunk);
        loop {
            match f.next_packet() {
                Ok(Some(p)) => {
                    let wire = p.to_vec().expect("a decoded packet re-encodes");
                    assert_eq!(&data[consumed..consumed + wire.len()], &wire[..]);
                    consumed += wire.len() + p.num_fds as usize;
                }
                Ok(None) => break,
                Err(_) => {
                    assert!(f.is_failed());
                    break 'outer;
                }
            }
        }
    }
    let _ = RemoteError::decode(data);

    // 2. A connection in a busy state.
    let t0 = Instant::now();
    let mut c = Connection::default();
    let target = ProcedureId::remote(4);
    let calls: Vec<_> = (0..4).map(|_| c.start_call(target, b"").unwrap()).collect();
    let stream = c
        .start_call_with(
            ProcedureId::remote(211),
            CallOptions {
                stream: true,
                ..Default::default()
            },
            |_| Ok(()),
        )
        .unwrap();
    c.abandon(calls[1]);
    c.route_callback(EventFamily::Domain, 1, 7);
    c.enable_keepalive(
        KeepaliveConfig {
            interval: Duration::from_secs(1),
            count: 1,
        },
        t0,
    );
    let split = usize::from(cuts.get(1).copied().unwrap_or(0)) % (data.len() + 1);
    let _ = c.handle_input(&data[..split]);
    c.handle_timeout(t0 + Duration::from_secs(1));
    let _ = c.stream_send(stream, b"abc");
    let _ = c.handle_input(&data[split..]);
    while let Ok(Some(item)) = c.stream_recv(stream) {
        if item == StreamItem::Eof {
            let _ = c.stream_finish(stream);
        }
    }
    c.handle_timeout(t0 + Duration::from_secs(5));
    while c.poll_transmit().is_some() {}
    let mut closed_events = 0;
    let mut last_closed = false;
    while let Some(e) = c.poll_event() {
        last_closed = matches!(e, Event::Closed(_));
        closed_events += usize::from(last_closed);
    }
    assert!(closed_events <= 1);
    assert_eq!(c.is_closed(), closed_events == 1);
    assert!(!c.is_closed() || last_closed);
});
