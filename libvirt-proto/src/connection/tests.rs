//! Unit tests of the connection: bytes in, packets and events out.

use std::time::{Duration, Instant};

use super::*;
use crate::event::{callback_event_family, QEMU_PROGRAM, REMOTE_PROGRAM};
use crate::generated::api::{ErrorDomain, ErrorNumber};
use crate::packet::encode_packet;

const PROC: ProcedureId = ProcedureId {
    program: REMOTE_PROGRAM,
    version: 1,
    procedure: 4,
};

fn pkt(
    kind: MessageType,
    status: MessageStatus,
    serial: u32,
    procedure: i32,
    body: &[u8],
) -> Vec<u8> {
    let program = REMOTE_PROGRAM;
    let h = Header {
        program,
        version: 1,
        procedure,
        kind,
        serial,
        status,
    };
    let mut out = Vec::new();
    encode_packet(&h, 0, body, &mut out).unwrap();
    out
}

fn reply(serial: u32, body: &[u8]) -> Vec<u8> {
    pkt(
        MessageType::Reply,
        MessageStatus::Ok,
        serial,
        PROC.procedure,
        body,
    )
}

fn error_reply(serial: u32, e: &RemoteError) -> Vec<u8> {
    let mut b = Vec::new();
    e.encode(&mut b).unwrap();
    pkt(
        MessageType::Reply,
        MessageStatus::Error,
        serial,
        PROC.procedure,
        &b,
    )
}

fn keepalive(procedure: i32) -> Vec<u8> {
    let h = Header {
        program: KEEPALIVE_PROGRAM,
        version: 1,
        procedure,
        kind: MessageType::Message,
        serial: 0,
        status: MessageStatus::Ok,
    };
    let mut out = Vec::new();
    encode_packet(&h, 0, &[], &mut out).unwrap();
    out
}

/// Everything the connection wants to send, as packets.
fn sent(c: &mut Connection) -> Vec<Packet> {
    let mut f = Framer::new();
    let mut out = Vec::new();
    while let Some(t) = c.poll_transmit() {
        f.push(&t.data);
        f.push(&vec![0u8; t.fds.len()]);
        while let Some(p) = f.next_packet().unwrap() {
            out.push(p);
        }
    }
    assert_eq!(f.buffered(), 0);
    out
}

fn events(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn reply_of(e: &Event) -> (CallId, Result<&[u8], &Error>) {
    match e {
        Event::Reply { id, result } => (*id, result.as_ref().map(|r| &r.body[..])),
        other => panic!("expected a reply, got {other:?}"),
    }
}

#[test]
fn pipelined_calls_answered_out_of_order() {
    let mut c = Connection::default();
    let a = c.start_call(PROC, b"aaaa").unwrap();
    let b = c.start_call(PROC, b"bbbb").unwrap();
    let d = c.start_call(PROC, b"").unwrap();
    assert_eq!((a.serial(), b.serial(), d.serial()), (1, 2, 3));
    let p = sent(&mut c);
    assert_eq!(p.len(), 3);
    assert_eq!(p[0].header.kind, MessageType::Call);
    assert_eq!(p[1].header.serial, 2);
    assert_eq!(&p[1].body[..], b"bbbb");
    assert_eq!(c.pending_calls(), 3);

    let mut wire = reply(3, b"r3r3");
    wire.extend(reply(1, b"r1r1"));
    wire.extend(reply(2, b""));
    // One byte at a time.
    for byte in &wire {
        c.handle_input(&[*byte]).unwrap();
    }
    let ev = events(&mut c);
    assert_eq!(ev.len(), 3);
    assert_eq!(reply_of(&ev[0]), (d, Ok(&b"r3r3"[..])));
    assert_eq!(reply_of(&ev[1]), (a, Ok(&b"r1r1"[..])));
    assert_eq!(reply_of(&ev[2]), (b, Ok(&b""[..])));
    assert_eq!(c.pending_calls(), 0);
}

#[test]
fn abandoned_call_late_reply_is_dropped() {
    let mut c = Connection::default();
    let a = c.start_call(PROC, b"").unwrap();
    let b = c.start_call(PROC, b"").unwrap();
    c.abandon(a);
    let mut wire = reply(a.serial(), b"late");
    wire.extend(reply(b.serial(), b"ok!!"));
    c.handle_input(&wire).unwrap();
    let ev = events(&mut c);
    assert_eq!(ev.len(), 1);
    assert_eq!(reply_of(&ev[0]), (b, Ok(&b"ok!!"[..])));
    assert_eq!(c.stats().discarded_replies, 1);
    assert!(!c.is_closed());
    // A second reply for the same serial is now a protocol violation.
    let err = c.handle_input(&reply(a.serial(), b"")).unwrap_err();
    assert!(matches!(err, Error::UnexpectedPacket { .. }), "{err}");
}

#[test]
fn serials_skip_abandoned_ones_on_wrap() {
    let mut c = Connection {
        next_serial: u32::MAX,
        ..Connection::default()
    };
    let a = c.start_call(PROC, b"").unwrap();
    assert_eq!(a.serial(), u32::MAX);
    let b = c.start_call(PROC, b"").unwrap();
    assert_eq!(b.serial(), 1, "0 is skipped");
}

#[test]
fn remote_error_is_typed() {
    let mut c = Connection::default();
    let a = c.start_call(PROC, b"").unwrap();
    let e = RemoteError::new(
        ErrorNumber(42),
        ErrorDomain(10),
        "Domain not found: no domain with matching name 'nope'",
    );
    c.handle_input(&error_reply(a.serial(), &e)).unwrap();
    let ev = events(&mut c);
    match &ev[0] {
        Event::Reply {
            id,
            result: Err(Error::Remote(r)),
        } => {
            assert_eq!(*id, a);
            assert_eq!(**r, e);
        }
        other => panic!("{other:?}"),
    }
    // A malformed error body is a typed error for that call only.
    let b = c.start_call(PROC, b"").unwrap();
    c.handle_input(&pkt(
        MessageType::Reply,
        MessageStatus::Error,
        b.serial(),
        4,
        &[0, 0],
    ))
    .unwrap();
    match &events(&mut c)[0] {
        Event::Reply {
            result: Err(Error::Xdr { what, .. }),
            ..
        } => assert_eq!(what, "remote_error"),
        other => panic!("{other:?}"),
    }
    assert!(!c.is_closed());
}

#[test]
fn keepalive_timing_with_fake_clock() {
    let t0 = Instant::now();
    let s = Duration::from_secs(5);
    let mut c = Connection::default();
    assert_eq!(c.poll_timeout(), None);
    c.enable_keepalive(
        KeepaliveConfig {
            interval: s,
            count: 2,
        },
        t0,
    );
    let call = c.start_call(PROC, b"").unwrap();
    sent(&mut c);
    assert_eq!(c.poll_timeout(), Some(t0 + s));
    c.handle_timeout(t0 + s - Duration::from_millis(1));
    assert!(sent(&mut c).is_empty());
    c.handle_timeout(t0 + s);
    let p = sent(&mut c);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].header.program, KEEPALIVE_PROGRAM);
    assert_eq!(p[0].header.procedure, KEEPALIVE_PROC_PING);
    assert_eq!(p[0].header.kind, MessageType::Message);
    assert_eq!(c.poll_timeout(), Some(t0 + 2 * s));
    c.handle_timeout(t0 + 2 * s);
    assert_eq!(sent(&mut c).len(), 1);
    assert_eq!(c.stats().pings_sent, 2);
    assert!(events(&mut c).is_empty());
    c.handle_timeout(t0 + 3 * s);
    assert!(c.is_closed());
    let ev = events(&mut c);
    assert_eq!(ev.len(), 2);
    assert!(matches!(
        &ev[0],
        Event::Reply { id, result: Err(Error::Closed(CloseReason::KeepaliveTimeout { count: 2, .. })) } if *id == call
    ));
    assert!(matches!(
        ev[1],
        Event::Closed(CloseReason::KeepaliveTimeout { .. })
    ));
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn keepalive_any_packet_resets_countdown() {
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    let mut c = Connection::default();
    c.enable_keepalive(
        KeepaliveConfig {
            interval: s,
            count: 1,
        },
        t0,
    );
    for i in 1..10 {
        c.handle_timeout(t0 + i * s);
        assert_eq!(sent(&mut c).len(), usize::from(i % 2 == 1), "tick {i}");
        if i % 2 == 1 {
            c.handle_input(&keepalive(KEEPALIVE_PROC_PONG)).unwrap();
        }
    }
    assert!(!c.is_closed());
    assert!(
        events(&mut c).is_empty(),
        "PONGs are not application events"
    );
}

#[test]
fn server_pings_are_always_answered() {
    let mut c = Connection::default();
    c.handle_input(&keepalive(KEEPALIVE_PROC_PING)).unwrap();
    c.handle_input(&keepalive(77)).unwrap();
    let p = sent(&mut c);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].header.procedure, KEEPALIVE_PROC_PONG);
    assert_eq!(p[0].header.serial, 0);
    assert_eq!(c.stats().pongs_sent, 1);
    assert_eq!(c.stats().ignored_keepalive, 1);
    assert!(events(&mut c).is_empty());
}

#[test]
fn eof_fails_every_pending_call_and_stream() {
    let mut c = Connection::default();
    let a = c.start_call(PROC, b"").unwrap();
    let s = c
        .start_call_with(
            PROC,
            CallOptions {
                stream: true,
                ..Default::default()
            },
            |_| Ok(()),
        )
        .unwrap();
    let b = c.start_call(PROC, b"").unwrap();
    c.handle_input(&reply(1, b"")[..10]).unwrap(); // partial packet pending
    c.handle_eof();
    let ev = events(&mut c);
    let ids: Vec<CallId> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Reply {
                id,
                result: Err(Error::Closed(CloseReason::Eof)),
            } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(ids, vec![a, s, b]);
    assert!(ev.iter().any(|e| matches!(e, Event::StreamFailed { id, error: Error::Closed(CloseReason::Eof) } if *id == s)));
    assert!(matches!(ev.last(), Some(Event::Closed(CloseReason::Eof))));
    assert_eq!(
        c.start_call(PROC, b""),
        Err(Error::Closed(CloseReason::Eof))
    );
    assert!(c.handle_input(b"x").is_err());
    assert!(c.poll_transmit().is_none());
    c.handle_io_error("again");
    assert!(events(&mut c).is_empty(), "closing twice emits nothing");
}

fn stream_call(c: &mut Connection) -> CallId {
    let id = c
        .start_call_with(
            PROC,
            CallOptions {
                stream: true,
                ..Default::default()
            },
            |out| {
                out.extend_from_slice(b"args");
                Ok(())
            },
        )
        .unwrap();
    sent(c);
    id
}

fn stream_pkt(serial: u32, status: MessageStatus, body: &[u8]) -> Vec<u8> {
    pkt(MessageType::Stream, status, serial, PROC.procedure, body)
}

#[test]
fn stream_download_data_hole_eof_finish() {
    let mut c = Connection::default();
    let id = stream_call(&mut c);
    let s = id.serial();
    let mut hole = Vec::new();
    crate::stream::encode_hole(1 << 20, 0, &mut hole).unwrap();
    let mut wire = reply(s, b"");
    wire.extend(stream_pkt(s, MessageStatus::Continue, b"hello"));
    wire.extend(pkt(
        MessageType::StreamHole,
        MessageStatus::Continue,
        s,
        PROC.procedure,
        &hole,
    ));
    wire.extend(stream_pkt(s, MessageStatus::Continue, b"world"));
    wire.extend(stream_pkt(s, MessageStatus::Continue, b""));
    c.handle_input(&wire).unwrap();
    let ev = events(&mut c);
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(reply_of(&ev[0]), (id, Ok(&b""[..])));
    assert!(
        matches!(ev[1], Event::StreamReadable { id: i } if i == id),
        "one readable notice"
    );
    assert_eq!(c.stream_buffered(id), 10);
    assert_eq!(
        c.stream_recv(id),
        Ok(Some(StreamItem::Data(Bytes::from_static(b"hello"))))
    );
    assert_eq!(
        c.stream_recv(id),
        Ok(Some(StreamItem::Hole {
            length: 1 << 20,
            flags: 0
        }))
    );
    assert_eq!(
        c.stream_recv(id),
        Ok(Some(StreamItem::Data(Bytes::from_static(b"world"))))
    );
    assert_eq!(c.stream_recv(id), Ok(Some(StreamItem::Eof)));
    assert_eq!(c.stream_recv(id), Ok(None));
    c.stream_finish(id).unwrap();
    let p = sent(&mut c);
    assert_eq!(p.len(), 1);
    assert_eq!(
        (p[0].header.kind, p[0].header.status, p[0].header.serial),
        (MessageType::Stream, MessageStatus::Ok, s)
    );
    assert!(matches!(
        c.stream_send(id, b"x"),
        Err(Error::StreamState { .. })
    ));
    c.handle_input(&stream_pkt(s, MessageStatus::Ok, b""))
        .unwrap();
    let ev = events(&mut c);
    assert!(matches!(ev[..], [Event::StreamFinished { id: i }] if i == id));
    assert_eq!(c.stream_recv(id), Err(Error::NoSuchStream { serial: s }));
}

#[test]
fn stream_upload_chunks_holes_and_finish() {
    let mut c = Connection::new(Config {
        stream_chunk_size: 4,
        ..Config::default()
    });
    let id = stream_call(&mut c);
    c.stream_send(id, b"0123456789").unwrap();
    c.stream_send(id, b"").unwrap();
    c.stream_send_hole(id, 4096, 0).unwrap();
    c.stream_finish(id).unwrap();
    let p = sent(&mut c);
    let bodies: Vec<&[u8]> = p.iter().map(|p| &p.body[..]).collect();
    assert_eq!(bodies[..3], [&b"0123"[..], b"4567", b"89"]);
    assert!(p[..3].iter().all(|p| p.header.kind == MessageType::Stream
        && p.header.status == MessageStatus::Continue
        && p.header.serial == id.serial()
        && p.header.procedure == PROC.procedure));
    assert_eq!(p[3].header.kind, MessageType::StreamHole);
    assert_eq!(crate::stream::decode_hole(&p[3].body).unwrap(), (4096, 0));
    assert_eq!(
        (p[4].header.status, p[4].body.len()),
        (MessageStatus::Ok, 0)
    );
    assert_eq!(p.len(), 5);
}

#[test]
fn stream_abort_discards_late_packets() {
    let mut c = Connection::default();
    let id = stream_call(&mut c);
    let other = c.start_call(PROC, b"").unwrap();
    sent(&mut c);
    c.handle_input(&reply(id.serial(), b"")).unwrap();
    c.stream_abort(id).unwrap();
    let p = sent(&mut c);
    assert_eq!(
        (p[0].header.kind, p[0].header.status, p[0].body.len()),
        (MessageType::Stream, MessageStatus::Error, 0)
    );
    events(&mut c);
    let mut wire = stream_pkt(id.serial(), MessageStatus::Continue, b"late data");
    wire.extend(stream_pkt(id.serial(), MessageStatus::Ok, b""));
    wire.extend(reply(other.serial(), b"fine"));
    c.handle_input(&wire).unwrap();
    let ev = events(&mut c);
    assert_eq!(ev.len(), 1);
    assert_eq!(reply_of(&ev[0]), (other, Ok(&b"fine"[..])));
    assert_eq!(c.stats().discarded_stream_packets, 2);
    assert_eq!(
        c.stream_send(id, b"x"),
        Err(Error::NoSuchStream {
            serial: id.serial()
        })
    );
}

#[test]
fn stream_abort_answered_by_reply_error_is_discarded() {
    // libvirtd confirms an abort with a REPLY carrying an error when virStreamAbort fails
    // (always, before 0.9): the stream's serial, type REPLY.
    let mut c = Connection::default();
    let id = stream_call(&mut c);
    c.handle_input(&reply(id.serial(), b"")).unwrap();
    c.stream_abort(id).unwrap();
    let e = RemoteError::new(
        ErrorNumber(39),
        ErrorDomain(7),
        "stream aborted at client request",
    );
    c.handle_input(&error_reply(id.serial(), &e)).unwrap();
    assert!(!c.is_closed());
    assert_eq!(c.stats().discarded_stream_packets, 1);
    assert!(events(&mut c)
        .iter()
        .all(|e| matches!(e, Event::Reply { .. })));
    // Only one terminal packet is expected; a second one is a violation.
    assert!(c.handle_input(&error_reply(id.serial(), &e)).is_err());
}

#[test]
fn stream_call_abandoned_before_its_reply() {
    let mut c = Connection::default();
    let id = stream_call(&mut c);
    c.abandon(id);
    let p = sent(&mut c);
    assert_eq!(
        p[0].header.status,
        MessageStatus::Error,
        "the stream is aborted"
    );
    let e = RemoteError::new(ErrorNumber(1), ErrorDomain(7), "abort failed");
    let mut wire = reply(id.serial(), b"");
    wire.extend(stream_pkt(id.serial(), MessageStatus::Continue, b"data"));
    wire.extend(error_reply(id.serial(), &e));
    c.handle_input(&wire).unwrap();
    assert!(!c.is_closed());
    assert!(events(&mut c).is_empty());
    assert_eq!(c.stats().discarded_replies, 1);
    assert_eq!(c.stats().discarded_stream_packets, 2);
}

#[test]
fn stream_finish_failure_reply_fails_the_stream() {
    // daemonStreamHandleFinish answers a failed virStreamFinish with a REPLY error.
    let mut c = Connection::default();
    let id = stream_call(&mut c);
    c.handle_input(&reply(id.serial(), b"")).unwrap();
    events(&mut c);
    c.stream_finish(id).unwrap();
    let e = RemoteError::new(ErrorNumber(38), ErrorDomain(18), "write failed");
    c.handle_input(&error_reply(id.serial(), &e)).unwrap();
    let ev = events(&mut c);
    assert!(
        matches!(&ev[..], [Event::StreamFailed { id: i, error: Error::Remote(r) }] if *i == id && **r == e),
        "{ev:?}"
    );
    assert!(!c.is_closed());
}

#[test]
fn stream_server_error_after_data() {
    let mut c = Connection::default();
    let id = stream_call(&mut c);
    let e = RemoteError::new(ErrorNumber(38), ErrorDomain(18), "cannot read: I/O error");
    let mut b = Vec::new();
    e.encode(&mut b).unwrap();
    let mut wire = reply(id.serial(), b"");
    wire.extend(stream_pkt(id.serial(), MessageStatus::Continue, b"part"));
    wire.extend(stream_pkt(id.serial(), MessageStatus::Error, &b));
    c.handle_input(&wire).unwrap();
    let ev = events(&mut c);
    assert!(
        matches!(&ev[2], Event::StreamFailed { id: i, error: Error::Remote(r) } if *i == id && **r == e)
    );
    assert_eq!(
        c.stream_recv(id),
        Ok(Some(StreamItem::Data(Bytes::from_static(b"part"))))
    );
    assert_eq!(c.stream_recv(id), Err(Error::Remote(Box::new(e))));
    assert_eq!(
        c.stream_recv(id),
        Err(Error::NoSuchStream {
            serial: id.serial()
        })
    );
}

#[test]
fn stream_call_error_fails_stream() {
    let mut c = Connection::default();
    let id = stream_call(&mut c);
    c.handle_input(&error_reply(
        id.serial(),
        &RemoteError::new(ErrorNumber(1), ErrorDomain(2), "no"),
    ))
    .unwrap();
    let ev = events(&mut c);
    assert!(matches!(&ev[0], Event::StreamFailed { id: i, .. } if *i == id));
    assert!(matches!(&ev[1], Event::Reply { id: i, result: Err(Error::Remote(_)) } if *i == id));
    assert!(c.stream_send(id, b"x").is_err());
}

#[test]
fn malformed_hole_fails_only_the_stream() {
    let mut c = Connection::default();
    let id = stream_call(&mut c);
    let other = c.start_call(PROC, b"").unwrap();
    sent(&mut c);
    c.handle_input(&pkt(
        MessageType::StreamHole,
        MessageStatus::Continue,
        id.serial(),
        4,
        b"abc",
    ))
    .unwrap();
    let ev = events(&mut c);
    assert!(matches!(
        &ev[0],
        Event::StreamFailed {
            error: Error::Xdr { .. },
            ..
        }
    ));
    assert_eq!(
        sent(&mut c)[0].header.status,
        MessageStatus::Error,
        "abort sent"
    );
    c.handle_input(&reply(other.serial(), b"")).unwrap();
    assert_eq!(events(&mut c).len(), 1);
}

#[test]
fn stream_backpressure_signal() {
    let mut c = Connection::new(Config {
        stream_buffer_limit: 8,
        ..Config::default()
    });
    let id = stream_call(&mut c);
    c.handle_input(&stream_pkt(
        id.serial(),
        MessageStatus::Continue,
        b"12345678",
    ))
    .unwrap();
    assert!(!c.is_read_paused());
    c.handle_input(&stream_pkt(id.serial(), MessageStatus::Continue, b"9"))
        .unwrap();
    assert!(c.is_read_paused());
    c.stream_recv(id).unwrap();
    assert!(!c.is_read_paused());
    assert_eq!(c.stream_buffered(id), 1);
}

#[test]
fn events_routed_by_callback_id() {
    let mut c = Connection::default();
    c.route_callback(EventFamily::Domain, 7, 99);
    let mut body = 7i32.to_be_bytes().to_vec();
    body.extend_from_slice(b"rest");
    let mut wire = pkt(MessageType::Message, MessageStatus::Ok, 0, 318, &body);
    // Same id, other family: not routed.
    wire.extend(pkt(MessageType::Message, MessageStatus::Ok, 0, 315, &body));
    // Legacy domain event without callback id (REMOTE_PROC_DOMAIN_EVENT_LIFECYCLE = 107).
    wire.extend(pkt(MessageType::Message, MessageStatus::Ok, 0, 107, &body));
    c.handle_input(&wire).unwrap();
    let ev = events(&mut c);
    let msgs: Vec<&ServerMessage> = ev
        .iter()
        .map(|e| match e {
            Event::Message(m) => m,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        (msgs[0].callback_id, msgs[0].route, msgs[0].procedure),
        (Some(7), Some(99), 318)
    );
    assert_eq!(&msgs[0].body[..], &body[..]);
    assert_eq!((msgs[1].callback_id, msgs[1].route), (Some(7), None));
    assert_eq!((msgs[2].callback_id, msgs[2].route), (None, None));
    c.unroute_callback(EventFamily::Domain, 7);
    c.handle_input(&pkt(MessageType::Message, MessageStatus::Ok, 0, 318, &body))
        .unwrap();
    assert!(matches!(&events(&mut c)[0], Event::Message(m) if m.route.is_none()));
}

#[test]
fn every_callback_event_is_routed_by_its_callback_id() {
    // Including the domain events whose names lack `CALLBACK` (block job 2, block threshold,
    // memory failure, memory device size change, NIC MAC change): the table decides.
    let cases: Vec<(u32, i32, EventFamily)> = crate::generated::PROGRAMS
        .iter()
        .flat_map(|prog| prog.procedures.iter().map(|p| (prog.number, p.number)))
        .filter_map(|(program, p)| {
            let p = i32::try_from(p).ok()?;
            callback_event_family(program, p).map(|f| (program, p, f))
        })
        .collect();
    assert!(cases.contains(&(QEMU_PROGRAM, 6, EventFamily::QemuMonitor)));
    assert_eq!(cases.len(), 37);
    for p in [339, 385, 423, 438, 453] {
        assert!(cases.iter().any(|c| c.1 == p), "{p}");
    }
    for (i, (program, procedure, family)) in cases.into_iter().enumerate() {
        let mut c = Connection::default();
        let id = 40 + i as i32;
        c.route_callback(family, id, 1000 + i as u64);
        let mut body = id.to_be_bytes().to_vec();
        body.extend_from_slice(b"payload");
        let h = Header {
            program,
            version: 1,
            procedure,
            kind: MessageType::Message,
            serial: 0,
            status: MessageStatus::Ok,
        };
        let mut wire = Vec::new();
        encode_packet(&h, 0, &body, &mut wire).unwrap();
        c.handle_input(&wire).unwrap();
        match &events(&mut c)[..] {
            [Event::Message(m)] => assert_eq!(
                (m.callback_id, m.route),
                (Some(id), Some(1000 + i as u64)),
                "{program:#x}/{procedure}"
            ),
            other => panic!("{program:#x}/{procedure}: {other:?}"),
        }
    }
}

#[test]
fn registration_reply_routes_events_in_the_same_read() {
    let mut c = Connection::default();
    let reg = c.start_call(PROC, &[]).unwrap();
    let other = c.start_call(PROC, &[]).unwrap();
    assert!(c.route_reply_callback(reg, EventFamily::Network, 5));
    assert!(!c.route_reply_callback(CallId(999), EventFamily::Network, 5));
    let _ = sent(&mut c);
    let mut ev_body = 3i32.to_be_bytes().to_vec();
    ev_body.extend_from_slice(b"net");
    // An event before the reply is not routed yet; the reply (callback id 3) and an event
    // right behind it in the same read: routed to 5 before anyone looked at the reply.
    let mut wire = pkt(MessageType::Message, MessageStatus::Ok, 0, 315, &ev_body);
    wire.extend(reply(reg.0, &3i32.to_be_bytes()));
    wire.extend(pkt(
        MessageType::Message,
        MessageStatus::Ok,
        0,
        315,
        &ev_body,
    ));
    // A failed registration routes nothing; a call without the marker neither.
    wire.extend(reply(other.0, &4i32.to_be_bytes()));
    let mut body4 = 4i32.to_be_bytes().to_vec();
    body4.extend_from_slice(b"x");
    wire.extend(pkt(MessageType::Message, MessageStatus::Ok, 0, 315, &body4));
    c.handle_input(&wire).unwrap();
    let ev = events(&mut c);
    assert_eq!(ev.len(), 5, "{ev:?}");
    assert!(matches!(&ev[0], Event::Message(m) if m.route.is_none()));
    assert_eq!(reply_of(&ev[1]).0, reg);
    assert!(matches!(&ev[2], Event::Message(m) if m.route == Some(5) && m.callback_id == Some(3)));
    assert_eq!(reply_of(&ev[3]).0, other);
    assert!(matches!(&ev[4], Event::Message(m) if m.route.is_none()));

    // An error reply to a marked call routes nothing.
    let failed = c.start_call(PROC, &[]).unwrap();
    c.route_reply_callback(failed, EventFamily::Secret, 6);
    let err = RemoteError::new(
        ErrorNumber(1),
        ErrorDomain(7),
        "internal error: unsupported secret event ID 9",
    );
    let mut wire = error_reply(failed.0, &err);
    let mut b9 = 0i32.to_be_bytes().to_vec();
    b9.extend_from_slice(b"s");
    wire.extend(pkt(MessageType::Message, MessageStatus::Ok, 0, 382, &b9));
    c.handle_input(&wire).unwrap();
    let ev = events(&mut c);
    assert!(reply_of(&ev[0]).1.is_err());
    assert!(matches!(&ev[1], Event::Message(m) if m.route.is_none()));
}

#[test]
fn message_queue_overflow_is_reported_and_replies_never_dropped() {
    let mut c = Connection::new(Config {
        message_queue_limit: 2,
        ..Config::default()
    });
    let a = c.start_call(PROC, b"").unwrap();
    let mut wire = Vec::new();
    for _ in 0..5 {
        wire.extend(pkt(MessageType::Message, MessageStatus::Ok, 0, 100, b""));
    }
    wire.extend(reply(a.serial(), b""));
    c.handle_input(&wire).unwrap();
    let ev = events(&mut c);
    assert_eq!(ev.len(), 3);
    assert!(matches!(ev[2], Event::Reply { .. }));
    assert_eq!(c.stats().messages_dropped, 3);
    c.handle_input(&pkt(MessageType::Message, MessageStatus::Ok, 0, 100, b""))
        .unwrap();
    let ev = events(&mut c);
    assert!(matches!(
        ev[..],
        [Event::MessagesDropped { count: 3 }, Event::Message(_)]
    ));
}

#[test]
fn malformed_packets_are_fatal_typed_errors() {
    type Check = fn(&Error) -> bool;
    let cases: Vec<(Vec<u8>, Check)> = vec![
        (pkt(MessageType::Call, MessageStatus::Ok, 1, 4, b""), |e| {
            matches!(e, Error::UnexpectedPacket { .. })
        }),
        (
            pkt(MessageType::Reply, MessageStatus::Continue, 1, 4, b""),
            |e| matches!(e, Error::UnexpectedPacket { .. }),
        ),
        (reply(999, b""), |e| {
            matches!(e, Error::UnexpectedPacket { .. })
        }),
        ((u32::MAX).to_be_bytes().to_vec(), |e| {
            matches!(e, Error::PacketTooLarge { .. })
        }),
        (5u32.to_be_bytes().to_vec(), |e| {
            matches!(e, Error::PacketTooShort { len: 5 })
        }),
        (
            {
                let mut p = reply(1, b"");
                p[19] = 42;
                p
            },
            |e| matches!(e, Error::UnknownMessageType { value: 42 }),
        ),
        (
            {
                let mut p = reply(1, b"");
                p[27] = 3;
                p
            },
            |e| matches!(e, Error::UnknownMessageStatus { value: 3 }),
        ),
    ];
    for (wire, check) in cases {
        let mut c = Connection::default();
        let a = c.start_call(PROC, b"").unwrap();
        let err = c.handle_input(&wire).unwrap_err();
        assert!(check(&err), "{err:?}");
        assert!(matches!(c.close_reason(), Some(CloseReason::Protocol(_))));
        let ev = events(&mut c);
        assert!(
            matches!(&ev[0], Event::Reply { id, result: Err(Error::Closed(CloseReason::Protocol(_))) } if *id == a)
        );
        assert!(matches!(ev.last(), Some(Event::Closed(_))));
    }
}

#[test]
fn reply_program_mismatch_is_fatal() {
    let mut c = Connection::default();
    let a = c.start_call(PROC, b"").unwrap();
    let h = Header {
        program: 0x2000_8087,
        version: 1,
        procedure: 4,
        kind: MessageType::Reply,
        serial: a.serial(),
        status: MessageStatus::Ok,
    };
    let mut wire = Vec::new();
    encode_packet(&h, 0, &[], &mut wire).unwrap();
    assert!(matches!(
        c.handle_input(&wire),
        Err(Error::UnexpectedPacket { .. })
    ));
}

fn devnull() -> OwnedFd {
    std::fs::File::open("/dev/null").unwrap().into()
}

#[test]
fn fds_are_passed_both_ways() {
    let mut c = Connection::default();
    let id = c
        .start_call_with(
            PROC,
            CallOptions {
                fds: vec![devnull(), devnull()],
                ..Default::default()
            },
            |o| {
                o.extend_from_slice(b"args");
                Ok(())
            },
        )
        .unwrap();
    let t = c.poll_transmit().unwrap();
    assert_eq!(t.fds.len(), 2);
    let mut f = Framer::new();
    f.push(&t.data);
    f.push(&[0, 0]);
    let p = f.next_packet().unwrap().unwrap();
    assert_eq!(
        (p.header.kind, p.num_fds, &p.body[..]),
        (MessageType::CallWithFds, 2, &b"args"[..])
    );

    let h = Header {
        program: REMOTE_PROGRAM,
        version: 1,
        procedure: 4,
        kind: MessageType::ReplyWithFds,
        serial: id.serial(),
        status: MessageStatus::Ok,
    };
    let mut wire = Vec::new();
    encode_packet(&h, 1, b"ret!", &mut wire).unwrap();
    wire.push(0); // carrier byte
    c.handle_fds([devnull()]);
    c.handle_input(&wire).unwrap();
    match events(&mut c).remove(0) {
        Event::Reply { result: Ok(r), .. } => {
            assert_eq!(r.fds.len(), 1);
            assert_eq!(&r.body[..], b"ret!");
        }
        other => panic!("{other:?}"),
    }
    // Without the descriptor: typed fatal error.
    let id = c.start_call(PROC, b"").unwrap();
    let mut wire = Vec::new();
    encode_packet(
        &Header {
            serial: id.serial(),
            ..h
        },
        1,
        b"",
        &mut wire,
    )
    .unwrap();
    wire.push(0);
    assert_eq!(
        c.handle_input(&wire),
        Err(Error::MissingFds {
            serial: id.serial(),
            expected: 1,
            available: 0
        })
    );
}

#[test]
fn call_deadline_times_out_and_late_reply_is_discarded() {
    let t0 = Instant::now();
    let mut c = Connection::default();
    let a = c
        .start_call_with(
            PROC,
            CallOptions {
                deadline: Some(t0 + Duration::from_secs(2)),
                ..Default::default()
            },
            |_| Ok(()),
        )
        .unwrap();
    let b = c.start_call(PROC, b"").unwrap();
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(2)));
    c.handle_timeout(t0 + Duration::from_secs(1));
    assert!(events(&mut c).is_empty());
    c.handle_timeout(t0 + Duration::from_secs(2));
    let ev = events(&mut c);
    assert!(
        matches!(&ev[..], [Event::Reply { id, result: Err(Error::TimedOut { .. }) }] if *id == a)
    );
    assert_eq!(c.poll_timeout(), None);
    let mut wire = reply(a.serial(), b"");
    wire.extend(reply(b.serial(), b""));
    c.handle_input(&wire).unwrap();
    assert_eq!(events(&mut c).len(), 1);
    assert_eq!(c.stats().discarded_replies, 1);
}

#[test]
fn small_packets_are_coalesced() {
    let mut c = Connection::default();
    for _ in 0..10 {
        c.start_call(PROC, b"xxxx").unwrap();
    }
    assert_eq!(c.transmit_buffered(), 320);
    let t = c.poll_transmit().unwrap();
    assert_eq!(t.data.len(), 320);
    assert!(c.poll_transmit().is_none());
    assert_eq!(c.transmit_buffered(), 0);
}

#[test]
fn encode_failure_leaves_no_trace() {
    let mut c = Connection::default();
    let err = c
        .start_call_with(PROC, CallOptions::default(), |o| {
            o.extend_from_slice(b"partial");
            Err(Error::SerialsExhausted)
        })
        .unwrap_err();
    assert_eq!(err, Error::SerialsExhausted);
    assert!(c.poll_transmit().is_none());
    assert_eq!(c.pending_calls(), 0);
    assert_eq!(c.start_call(PROC, b"").unwrap().serial(), 1);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any number of pipelined calls, answered in any order (some abandoned, some with
        /// errors, events interleaved), fed in any split: each live call gets exactly its own
        /// outcome, abandoned ones get nothing, nothing else happens.
        #[test]
        fn any_order_any_split(
            n in 1usize..24,
            order_seed in proptest::collection::vec(any::<u32>(), 24),
            abandon_mask in any::<u32>(),
            error_mask in any::<u32>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let mut c = Connection::default();
            let ids: Vec<CallId> = (0..n).map(|_| c.start_call(PROC, b"").unwrap()).collect();
            sent(&mut c);
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by_key(|i| order_seed[*i]);
            let mut wire = Vec::new();
            for &i in &order {
                let id = ids[i];
                if abandon_mask & (1 << i) != 0 {
                    c.abandon(id);
                }
                if error_mask & (1 << i) != 0 {
                    let e = RemoteError::new(ErrorNumber(i as i32), ErrorDomain(1), format!("e{i}"));
                    wire.extend(error_reply(id.serial(), &e));
                } else {
                    wire.extend(reply(id.serial(), &(i as u32).to_be_bytes()));
                }
                wire.extend(pkt(MessageType::Message, MessageStatus::Ok, 0, 100, b""));
            }
            let mut cuts: Vec<usize> = cuts.into_iter().map(|x| x % (wire.len() + 1)).collect();
            cuts.extend([0, wire.len()]);
            cuts.sort_unstable();
            for w in cuts.windows(2) {
                c.handle_input(&wire[w[0]..w[1]]).unwrap();
            }
            let mut expected: Vec<usize> = order
                .iter()
                .copied()
                .filter(|i| abandon_mask & (1 << i) == 0)
                .collect();
            let mut messages = 0;
            for ev in events(&mut c) {
                match ev {
                    Event::Reply { id, result } => {
                        let i = expected.remove(0);
                        prop_assert_eq!(id, ids[i]);
                        match result {
                            Ok(r) => {
                                prop_assert!(error_mask & (1 << i) == 0);
                                prop_assert_eq!(&r.body[..], &(i as u32).to_be_bytes()[..]);
                            }
                            Err(Error::Remote(e)) => {
                                prop_assert!(error_mask & (1 << i) != 0);
                                prop_assert_eq!(e.code, ErrorNumber(i as i32));
                            }
                            Err(other) => prop_assert!(false, "{other}"),
                        }
                    }
                    Event::Message(_) => messages += 1,
                    other => prop_assert!(false, "{other:?}"),
                }
            }
            prop_assert!(expected.is_empty());
            prop_assert_eq!(messages, n);
            prop_assert_eq!(c.pending_calls(), 0);
            prop_assert!(!c.is_closed());
        }
    }
}

#[test]
fn ten_thousand_pipelined_calls_nothing_lost() {
    let mut c = Connection::default();
    let ids: Vec<CallId> = (0..10_000)
        .map(|_| c.start_call(PROC, b"").unwrap())
        .collect();
    assert_eq!(sent(&mut c).len(), 10_000);
    let mut wire = Vec::new();
    for id in ids.iter().rev() {
        wire.extend(reply(id.serial(), &id.serial().to_be_bytes()));
    }
    for chunk in wire.chunks(4093) {
        c.handle_input(chunk).unwrap();
    }
    let ev = events(&mut c);
    assert_eq!(ev.len(), 10_000);
    for (e, id) in ev.iter().zip(ids.iter().rev()) {
        assert_eq!(reply_of(e), (*id, Ok(&id.serial().to_be_bytes()[..])));
    }
    assert_eq!(c.pending_calls(), 0);
}

#[test]
fn connection_is_send() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<Connection>();
    assert_send::<Event>();
    assert_send::<Error>();
}

#[test]
fn requeued_rest_of_a_partial_write_goes_out_first() {
    let mut c = Connection::default();
    c.start_call(PROC, b"aaaa").unwrap();
    c.start_call(PROC, b"bbbb").unwrap();
    let t = c.poll_transmit().unwrap();
    let total = t.data.len();
    assert!(c.poll_transmit().is_none());
    assert_eq!(c.transmit_buffered(), 0);
    // A driver wrote 5 bytes without blocking; a third call is queued meanwhile.
    let (written, rest) = (t.data.slice(..5), t.data.slice(5..));
    c.start_call(PROC, b"cccc").unwrap();
    c.requeue_transmit(Transmit {
        data: rest,
        fds: Vec::new(),
    });
    assert_eq!(c.transmit_buffered(), total - 5 + 32);
    let mut f = Framer::new();
    f.push(&written);
    assert!(f.next_packet().unwrap().is_none());
    let mut bodies = Vec::new();
    while let Some(t) = c.poll_transmit() {
        f.push(&t.data);
        while let Some(p) = f.next_packet().unwrap() {
            bodies.push(p.body.to_vec());
        }
    }
    assert_eq!(
        bodies,
        [b"aaaa".to_vec(), b"bbbb".to_vec(), b"cccc".to_vec()]
    );
    assert_eq!(c.transmit_buffered(), 0);
    // Nothing is requeued into a closed connection, and an empty transmit is ignored.
    c.requeue_transmit(Transmit {
        data: Bytes::new(),
        fds: Vec::new(),
    });
    assert!(c.poll_transmit().is_none());
    c.close();
    c.requeue_transmit(Transmit {
        data: Bytes::from_static(b"late"),
        fds: Vec::new(),
    });
    assert!(c.poll_transmit().is_none());
}
