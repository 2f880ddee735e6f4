//! Decode and encode of big replies with the *generated* types (owned strings), as the clients
//! decode them, beside a memcpy of the same bytes: `remote_connect_list_all_domains_ret` with
//! 16 384 domains and `remote_connect_get_all_domain_stats_ret` with 1 000 records of 60 typed
//! params. `xdr/benches/codec.rs` measures the same shapes with borrowed strings.
//!
//! Run: `cargo bench -p libvirt-proto --bench generated -- --warm-up-time 1 --measurement-time 3`.

// `criterion_group!` generates an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use libvirt_proto::generated::remote::{
    RemoteConnectGetAllDomainStatsRet, RemoteConnectListAllDomainsRet, RemoteDomainStatsRecord,
    RemoteNonnullDomain, RemoteTypedParam, RemoteTypedParamValue as V,
};

fn domain(i: usize) -> RemoteNonnullDomain {
    let mut uuid = [0u8; 16];
    for (k, b) in uuid.iter_mut().enumerate() {
        *b = (i.wrapping_mul(31).wrapping_add(k * 7)) as u8;
    }
    RemoteNonnullDomain {
        name: format!("tenant-{:03}-vm-{i:05}", i % 97),
        uuid,
        id: if i % 5 == 0 { -1 } else { i as i32 + 1 },
    }
}

/// 60 params shaped like `virsh domstats` output: mostly counters, a few strings.
fn params(i: usize) -> Vec<RemoteTypedParam> {
    let p = |field: String, value| RemoteTypedParam { field, value };
    let mut v = vec![
        p("state.state".into(), V::Int(1)),
        p("state.reason".into(), V::Int(1)),
        p("cpu.time".into(), V::Ullong(123_456_789_012 + i as u64)),
        p("vcpu.current".into(), V::Uint(2)),
        p("net.0.name".into(), V::String(format!("vnet{i}"))),
        p(
            "block.0.path".into(),
            V::String(format!("/var/lib/libvirt/images/vm-{i:05}.qcow2")),
        ),
        p("perf.cpu_util".into(), V::Double(0.375)),
        p("vm.guest_active".into(), V::Boolean(1)),
    ];
    let mut k = 0;
    while v.len() < 60 {
        v.push(p(
            format!("balloon.counter_{k}"),
            V::Ullong(987_654 * (k as u64 + 1)),
        ));
        k += 1;
    }
    v
}

fn bench_one<T>(c: &mut Criterion, group: &str, value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = xdr::to_bytes(value).unwrap();
    let shared = Bytes::from(bytes.clone());
    assert_eq!(&xdr::from_bytes::<T>(&bytes).unwrap(), value);
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    let mut buf = Vec::with_capacity(bytes.len());
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(black_box(&bytes));
            black_box(buf.as_ptr());
        })
    });
    g.bench_function("decode_generated", |b| {
        b.iter(|| xdr::from_bytes::<T>(black_box(&bytes)).unwrap())
    });
    g.bench_function("decode_generated_from_shared", |b| {
        b.iter(|| xdr::from_shared::<T>(black_box(&shared)).unwrap())
    });
    let mut out = Vec::with_capacity(bytes.len());
    g.bench_function("encode_generated", |b| {
        b.iter(|| {
            out.clear();
            xdr::to_writer_vec(black_box(value), &mut out).unwrap();
            black_box(out.len());
        })
    });
    g.finish();
}

fn generated(c: &mut Criterion) {
    let list = RemoteConnectListAllDomainsRet {
        domains: (0..16_384).map(domain).collect(),
        ret: 16_384,
    };
    bench_one(c, "generated_list_all_domains_16384", &list);
    let stats = RemoteConnectGetAllDomainStatsRet {
        ret_stats: (0..1000)
            .map(|i| RemoteDomainStatsRecord {
                dom: domain(i),
                params: params(i),
            })
            .collect(),
    };
    bench_one(c, "generated_all_domain_stats_1000x60", &stats);
}

criterion_group!(benches, generated);
criterion_main!(benches);
