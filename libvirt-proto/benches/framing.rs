//! Framer and Connection throughput.
//!
//! - `framer/*`: split a 16 MiB buffer of packets back into packets (bodies are zero-copy
//!   slices), beside a memcpy of the same bytes.
//! - `connection/64_pipelined_calls`: start 64 calls, feed their replies in one read, drain the
//!   events: the per-call cost of the state machine without any IO.

// `criterion_group!` generates an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use libvirt_proto::packet::encode_packet;
use libvirt_proto::{Connection, Event, Framer, Header, MessageStatus, MessageType, ProcedureId};

fn wire(body_len: usize, total: usize) -> Vec<u8> {
    let body = vec![0x5a; body_len];
    let mut out = Vec::with_capacity(total + body_len + 28);
    let mut serial = 1;
    while out.len() < total {
        let h = Header {
            program: 0x2000_8086,
            version: 1,
            procedure: 4,
            kind: MessageType::Reply,
            serial,
            status: MessageStatus::Ok,
        };
        encode_packet(&h, 0, &body, &mut out).unwrap();
        serial += 1;
    }
    out
}

fn framer(c: &mut Criterion) {
    let mut g = c.benchmark_group("framer");
    for body_len in [64usize, 1024, 65536] {
        let data = wire(body_len, 16 << 20);
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_with_input(BenchmarkId::new("decode", body_len), &data, |b, data| {
            b.iter(|| {
                let mut f = Framer::new();
                f.push(data);
                let mut n = 0usize;
                while let Some(p) = f.next_packet().unwrap() {
                    n += p.body.len();
                }
                black_box(n)
            })
        });
        g.bench_with_input(BenchmarkId::new("memcpy", body_len), &data, |b, data| {
            b.iter(|| black_box(data.to_vec()))
        });
    }
    g.finish();
}

fn connection(c: &mut Criterion) {
    let mut g = c.benchmark_group("connection");
    g.throughput(Throughput::Elements(64));
    g.bench_function("64_pipelined_calls", |b| {
        let mut conn = Connection::default();
        let target = ProcedureId::remote(157);
        let mut replies = Vec::new();
        b.iter(|| {
            replies.clear();
            for _ in 0..64 {
                let id = conn.start_call_args(target, &()).unwrap();
                let h = Header {
                    program: target.program,
                    version: 1,
                    procedure: target.procedure,
                    kind: MessageType::Reply,
                    serial: id.serial(),
                    status: MessageStatus::Ok,
                };
                encode_packet(&h, 0, &11_003_000u64.to_be_bytes(), &mut replies).unwrap();
            }
            while let Some(t) = conn.poll_transmit() {
                black_box(t.data.len());
            }
            conn.handle_input(&replies).unwrap();
            let mut sum = 0u64;
            while let Some(e) = conn.poll_event() {
                if let Event::Reply { result: Ok(r), .. } = e {
                    sum += r.decode::<u64>().unwrap();
                }
            }
            black_box(sum)
        })
    });
    g.finish();
}

criterion_group!(benches, framer, connection);
criterion_main!(benches);
