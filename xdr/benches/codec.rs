//! Decode and encode of big realistic libvirt replies, as bytes/s beside a memcpy of the same
//! bytes. The types mirror what the codegen emits for `remote_protocol.x` (limits included):
//!
//! - `remote_connect_list_all_domains_ret` with 16 384 domains;
//! - `remote_connect_get_all_domain_stats_ret` with 1 000 records × 60 typed params.
//!
//! Beside our decoder, `reference_hand_written*` decode the same bytes with a loop written for
//! these two types alone (no serde, same checks): the yardstick for what per-field decoding can
//! reach here at all.
//!
//! Run: `cargo bench -p xdr --bench codec -- --warm-up-time 1 --measurement-time 3`.
//!
//! Compare the rows of one run with each other. Each stats decode allocates about 2.4 MB that
//! glibc hands back to the kernel when it is freed, so every iteration faults its pages in again
//! (about 700 faults); on a VM guest whose freed pages go back to the host, that cost changes
//! with the host's state, and so do the absolute stats numbers from run to run.

// criterion_group! generates an undocumented pub fn.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use serde::de::{Error as _, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

// ---- owned shapes -------------------------------------------------------------------------

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct NonnullDomain {
    #[serde(
        serialize_with = "xdr::limit::serialize::<4194304, _, _>",
        deserialize_with = "xdr::limit::deserialize::<4194304, _, _>"
    )]
    name: String,
    #[serde(with = "xdr::opaque_fixed")]
    uuid: [u8; 16],
    id: i32,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct ListAllDomainsRet {
    #[serde(
        serialize_with = "xdr::limit::serialize::<16384, _, _>",
        deserialize_with = "xdr::limit::deserialize::<16384, _, _>"
    )]
    domains: Vec<NonnullDomain>,
    ret: u32,
}

/// `remote_typed_param_value`: union switch (int type), as generated code writes unions.
#[derive(Debug, Clone, PartialEq)]
enum TypedParamValue<S> {
    Int(i32),
    UInt(u32),
    LLong(i64),
    ULLong(u64),
    Double(f64),
    Boolean(i32),
    String(S),
}

impl<S: Serialize> Serialize for TypedParamValue<S> {
    fn serialize<Ser: Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        let mut t = s.serialize_tuple(2)?;
        match self {
            TypedParamValue::Int(v) => {
                t.serialize_element(&1i32)?;
                t.serialize_element(v)?;
            }
            TypedParamValue::UInt(v) => {
                t.serialize_element(&2i32)?;
                t.serialize_element(v)?;
            }
            TypedParamValue::LLong(v) => {
                t.serialize_element(&3i32)?;
                t.serialize_element(v)?;
            }
            TypedParamValue::ULLong(v) => {
                t.serialize_element(&4i32)?;
                t.serialize_element(v)?;
            }
            TypedParamValue::Double(v) => {
                t.serialize_element(&5i32)?;
                t.serialize_element(v)?;
            }
            TypedParamValue::Boolean(v) => {
                t.serialize_element(&6i32)?;
                t.serialize_element(v)?;
            }
            TypedParamValue::String(v) => {
                t.serialize_element(&7i32)?;
                t.serialize_element(v)?;
            }
        }
        t.end()
    }
}

struct ValueVisitor<S>(std::marker::PhantomData<S>);

fn arm<'de, A: SeqAccess<'de>, T: Deserialize<'de>>(seq: &mut A) -> Result<T, A::Error> {
    seq.next_element()?
        .ok_or_else(|| A::Error::invalid_length(1, &"union arm"))
}

impl<'de, S: Deserialize<'de>> Visitor<'de> for ValueVisitor<S> {
    type Value = TypedParamValue<S>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("remote_typed_param_value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let d: i32 = seq
            .next_element()?
            .ok_or_else(|| A::Error::invalid_length(0, &self))?;
        Ok(match d {
            1 => TypedParamValue::Int(arm(&mut seq)?),
            2 => TypedParamValue::UInt(arm(&mut seq)?),
            3 => TypedParamValue::LLong(arm(&mut seq)?),
            4 => TypedParamValue::ULLong(arm(&mut seq)?),
            5 => TypedParamValue::Double(arm(&mut seq)?),
            6 => TypedParamValue::Boolean(arm(&mut seq)?),
            7 => TypedParamValue::String(arm(&mut seq)?),
            other => {
                return Err(A::Error::invalid_value(
                    serde::de::Unexpected::Signed(other.into()),
                    &"remote_typed_param_value",
                ))
            }
        })
    }
}

impl<'de, S: Deserialize<'de>> Deserialize<'de> for TypedParamValue<S> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_tuple(2, ValueVisitor(std::marker::PhantomData))
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct TypedParam {
    #[serde(
        serialize_with = "xdr::limit::serialize::<4194304, _, _>",
        deserialize_with = "xdr::limit::deserialize::<4194304, _, _>"
    )]
    field: String,
    value: TypedParamValue<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct DomainStatsRecord {
    dom: NonnullDomain,
    #[serde(
        serialize_with = "xdr::limit::serialize::<262144, _, _>",
        deserialize_with = "xdr::limit::deserialize::<262144, _, _>"
    )]
    params: Vec<TypedParam>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[allow(non_snake_case)]
struct GetAllDomainStatsRet {
    #[serde(
        serialize_with = "xdr::limit::serialize::<16384, _, _>",
        deserialize_with = "xdr::limit::deserialize::<16384, _, _>"
    )]
    retStats: Vec<DomainStatsRecord>,
}

// ---- borrowed shapes (same wire format, strings borrowed from the input) --------------------

#[derive(Deserialize, Debug)]
struct NonnullDomainRef<'a> {
    #[serde(borrow, deserialize_with = "xdr::limit::deserialize::<4194304, _, _>")]
    name: &'a str,
    #[serde(with = "xdr::opaque_fixed")]
    uuid: [u8; 16],
    id: i32,
}

#[derive(Deserialize, Debug)]
struct ListAllDomainsRetRef<'a> {
    #[serde(borrow, deserialize_with = "xdr::limit::deserialize::<16384, _, _>")]
    domains: Vec<NonnullDomainRef<'a>>,
    ret: u32,
}

#[derive(Deserialize, Debug)]
struct TypedParamRef<'a> {
    #[serde(borrow, deserialize_with = "xdr::limit::deserialize::<4194304, _, _>")]
    field: &'a str,
    #[serde(borrow)]
    value: TypedParamValue<&'a str>,
}

#[derive(Deserialize, Debug)]
struct DomainStatsRecordRef<'a> {
    #[serde(borrow)]
    dom: NonnullDomainRef<'a>,
    #[serde(borrow, deserialize_with = "xdr::limit::deserialize::<262144, _, _>")]
    params: Vec<TypedParamRef<'a>>,
}

#[derive(Deserialize, Debug)]
#[allow(non_snake_case)]
struct GetAllDomainStatsRetRef<'a> {
    #[serde(borrow, deserialize_with = "xdr::limit::deserialize::<16384, _, _>")]
    retStats: Vec<DomainStatsRecordRef<'a>>,
}

impl NonnullDomainRef<'_> {
    fn to_owned(&self) -> NonnullDomain {
        NonnullDomain {
            name: self.name.to_string(),
            uuid: self.uuid,
            id: self.id,
        }
    }
}

impl ListAllDomainsRetRef<'_> {
    fn to_owned(&self) -> ListAllDomainsRet {
        ListAllDomainsRet {
            domains: self
                .domains
                .iter()
                .map(NonnullDomainRef::to_owned)
                .collect(),
            ret: self.ret,
        }
    }
}

impl GetAllDomainStatsRetRef<'_> {
    fn to_owned(&self) -> GetAllDomainStatsRet {
        use TypedParamValue::*;
        let value = |v: &TypedParamValue<&str>| match *v {
            Int(x) => Int(x),
            UInt(x) => UInt(x),
            LLong(x) => LLong(x),
            ULLong(x) => ULLong(x),
            Double(x) => Double(x),
            Boolean(x) => Boolean(x),
            String(x) => String(x.to_string()),
        };
        GetAllDomainStatsRet {
            retStats: self
                .retStats
                .iter()
                .map(|r| DomainStatsRecord {
                    dom: r.dom.to_owned(),
                    params: r
                        .params
                        .iter()
                        .map(|p| TypedParam {
                            field: p.field.to_string(),
                            value: value(&p.value),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

// ---- reference: hand-written decoders without serde ------------------------------------------
//
// Not part of the crate: the fastest straightforward decoder of the same bytes into the same
// borrowed shapes, with the checks our decoder makes (length limits, lengths against the input,
// zero padding, UTF-8, trailing bytes), written as one loop with no serde in it. It shows how much
// of the gap to memcpy is serde's per-element call structure and how much is the work itself. The
// `_bytes` variants also skip UTF-8 (names as `&[u8]`): the cost of the per-field walk alone.

/// Any failure (the reference decoders only need to be right on valid input and never panic).
#[derive(Debug)]
struct RefError;

/// A cursor over the input for the reference decoders.
struct Cur<'a> {
    b: &'a [u8],
}

impl<'a> Cur<'a> {
    #[inline(always)]
    fn u32(&mut self) -> Result<u32, RefError> {
        let (head, rest) = self.b.split_first_chunk::<4>().ok_or(RefError)?;
        self.b = rest;
        Ok(u32::from_be_bytes(*head))
    }

    #[inline(always)]
    fn u64(&mut self) -> Result<u64, RefError> {
        let (head, rest) = self.b.split_first_chunk::<8>().ok_or(RefError)?;
        self.b = rest;
        Ok(u64::from_be_bytes(*head))
    }

    #[inline(always)]
    fn count(&mut self, max: u32) -> Result<usize, RefError> {
        let n = self.u32()?;
        if n > max || n as usize > self.b.len() / 4 {
            return Err(RefError);
        }
        Ok(n as usize)
    }

    #[inline(always)]
    fn bytes(&mut self, max: u32) -> Result<&'a [u8], RefError> {
        let len = self.u32()?;
        if len > max {
            return Err(RefError);
        }
        let len = len as usize;
        let padded = len + (len.wrapping_neg() & 3);
        if padded > self.b.len() {
            return Err(RefError);
        }
        let (field, rest) = self.b.split_at(padded);
        self.b = rest;
        let (data, pad) = field.split_at(len);
        if pad.iter().any(|&x| x != 0) {
            return Err(RefError);
        }
        Ok(data)
    }

    #[inline(always)]
    fn str(&mut self, max: u32) -> Result<&'a str, RefError> {
        std::str::from_utf8(self.bytes(max)?).map_err(|_| RefError)
    }

    #[inline(always)]
    fn uuid(&mut self) -> Result<[u8; 16], RefError> {
        let (head, rest) = self.b.split_first_chunk::<16>().ok_or(RefError)?;
        self.b = rest;
        Ok(*head)
    }
}

struct DomainBytes<'a> {
    name: &'a [u8],
    uuid: [u8; 16],
    id: i32,
}

fn reference_list(b: &[u8]) -> Result<(Vec<NonnullDomainRef<'_>>, u32), RefError> {
    let mut c = Cur { b };
    let n = c.count(16384)?;
    let mut domains = Vec::with_capacity(n);
    for _ in 0..n {
        let name = c.str(4194304)?;
        let uuid = c.uuid()?;
        let id = c.u32()? as i32;
        domains.push(NonnullDomainRef { name, uuid, id });
    }
    let ret = c.u32()?;
    if !c.b.is_empty() {
        return Err(RefError);
    }
    Ok((domains, ret))
}

fn reference_list_bytes(b: &[u8]) -> Result<(Vec<DomainBytes<'_>>, u32), RefError> {
    let mut c = Cur { b };
    let n = c.count(16384)?;
    let mut domains = Vec::with_capacity(n);
    for _ in 0..n {
        let name = c.bytes(4194304)?;
        let uuid = c.uuid()?;
        let id = c.u32()? as i32;
        domains.push(DomainBytes { name, uuid, id });
    }
    let ret = c.u32()?;
    if !c.b.is_empty() {
        return Err(RefError);
    }
    Ok((domains, ret))
}

fn reference_stats(b: &[u8]) -> Result<Vec<DomainStatsRecordRef<'_>>, RefError> {
    use TypedParamValue::*;
    let mut c = Cur { b };
    let n = c.count(16384)?;
    let mut records = Vec::with_capacity(n);
    for _ in 0..n {
        let dom = NonnullDomainRef {
            name: c.str(4194304)?,
            uuid: c.uuid()?,
            id: c.u32()? as i32,
        };
        let m = c.count(262144)?;
        let mut params = Vec::with_capacity(m);
        for _ in 0..m {
            let field = c.str(4194304)?;
            let value = match c.u32()? {
                1 => Int(c.u32()? as i32),
                2 => UInt(c.u32()?),
                3 => LLong(c.u64()? as i64),
                4 => ULLong(c.u64()?),
                5 => Double(f64::from_bits(c.u64()?)),
                6 => Boolean(c.u32()? as i32),
                7 => String(c.str(4194304)?),
                _ => return Err(RefError),
            };
            params.push(TypedParamRef { field, value });
        }
        records.push(DomainStatsRecordRef { dom, params });
    }
    if !c.b.is_empty() {
        return Err(RefError);
    }
    Ok(records)
}

// ---- realistic data -------------------------------------------------------------------------

fn uuid(i: usize) -> [u8; 16] {
    let mut u = [0u8; 16];
    for (k, b) in u.iter_mut().enumerate() {
        *b = (i.wrapping_mul(31).wrapping_add(k * 7)) as u8;
    }
    u
}

fn domain(i: usize) -> NonnullDomain {
    NonnullDomain {
        name: format!("tenant-{:03}-vm-{i:05}", i % 97),
        uuid: uuid(i),
        id: if i % 5 == 0 { -1 } else { i as i32 + 1 },
    }
}

fn list_all_domains(n: usize) -> ListAllDomainsRet {
    ListAllDomainsRet {
        domains: (0..n).map(domain).collect(),
        ret: n as u32,
    }
}

/// 60 params like `virsh domstats` prints for a small guest: state, cpu, balloon, vcpus, net,
/// block (with string names and paths).
fn params(i: usize) -> Vec<TypedParam> {
    use TypedParamValue::*;
    let p = |field: &str, value| TypedParam {
        field: field.to_string(),
        value,
    };
    let mut v = vec![
        p("state.state", Int(1)),
        p("state.reason", Int(1)),
        p("cpu.time", ULLong(123_456_789_012 + i as u64)),
        p("cpu.user", ULLong(98_765_432_100)),
        p("cpu.system", ULLong(12_345_678_900)),
        p("cpu.haltpoll.success.time", ULLong(4242)),
        p("cpu.haltpoll.fail.time", ULLong(17)),
        p("balloon.current", ULLong(4_194_304)),
        p("balloon.maximum", ULLong(4_194_304)),
        p("balloon.swap_in", ULLong(0)),
        p("balloon.swap_out", ULLong(0)),
        p("balloon.major_fault", ULLong(1234)),
        p("balloon.minor_fault", ULLong(567_890)),
        p("balloon.unused", ULLong(3_000_000)),
        p("balloon.available", ULLong(4_000_000)),
        p("balloon.usable", ULLong(3_500_000)),
        p("balloon.last-update", ULLong(1_700_000_000)),
        p("balloon.disk_caches", ULLong(200_000)),
        p("balloon.rss", ULLong(1_048_576)),
        p("vcpu.current", UInt(2)),
        p("vcpu.maximum", UInt(4)),
    ];
    for c in 0..2 {
        v.push(p(&format!("vcpu.{c}.state"), Int(1)));
        v.push(p(&format!("vcpu.{c}.time"), ULLong(55_000_000_000)));
        v.push(p(&format!("vcpu.{c}.wait"), ULLong(0)));
        v.push(p(&format!("vcpu.{c}.delay"), ULLong(1_000_000)));
    }
    v.push(p("net.count", UInt(1)));
    v.push(p("net.0.name", String(format!("vnet{i}"))));
    for f in [
        "rx.bytes", "rx.pkts", "rx.errs", "rx.drop", "tx.bytes", "tx.pkts", "tx.errs", "tx.drop",
    ] {
        v.push(p(&format!("net.0.{f}"), ULLong(987_654 * (i as u64 + 1))));
    }
    v.push(p("block.count", UInt(1)));
    v.push(p("block.0.name", String("vda".into())));
    v.push(p(
        "block.0.path",
        String(format!("/var/lib/libvirt/images/vm-{i:05}.qcow2")),
    ));
    for f in [
        "rd.reqs",
        "rd.bytes",
        "rd.times",
        "wr.reqs",
        "wr.bytes",
        "wr.times",
        "fl.reqs",
        "fl.times",
        "allocation",
        "capacity",
        "physical",
    ] {
        v.push(p(
            &format!("block.0.{f}"),
            ULLong(1_234_567 * (i as u64 + 3)),
        ));
    }
    v.push(p("dirtyrate.calc_status", Int(0)));
    v.push(p("dirtyrate.megabytes_per_second", LLong(-1)));
    v.push(p("cpu.cache.monitor.count", UInt(0)));
    v.push(p("perf.cpu_util", Double(0.375)));
    v.push(p("vm.guest_active", Boolean(1)));
    v.push(p("balloon.hugetlb_pgalloc", ULLong(0)));
    v.push(p("balloon.hugetlb_pgfail", ULLong(0)));
    assert_eq!(v.len(), 60);
    v
}

fn all_domain_stats(n: usize) -> GetAllDomainStatsRet {
    GetAllDomainStatsRet {
        retStats: (0..n)
            .map(|i| DomainStatsRecord {
                dom: domain(i),
                params: params(i),
            })
            .collect(),
    }
}

// ---- benches --------------------------------------------------------------------------------

fn bench_list(c: &mut Criterion) {
    let value = list_all_domains(16_384);
    let bytes = xdr::to_bytes(&value).unwrap();
    // Sanity: both decoders see the same thing.
    assert_eq!(xdr::from_bytes::<ListAllDomainsRet>(&bytes).unwrap(), value);
    let borrowed: ListAllDomainsRetRef<'_> = xdr::from_bytes(&bytes).unwrap();
    assert_eq!(borrowed.to_owned(), value);
    let (domains, ret) = reference_list(&bytes).unwrap();
    let reference = ListAllDomainsRetRef { domains, ret };
    assert_eq!(reference.to_owned(), value);
    let (domains, _) = reference_list_bytes(&bytes).unwrap();
    assert!(domains
        .iter()
        .zip(&value.domains)
        .all(|(d, v)| d.name == v.name.as_bytes() && d.uuid == v.uuid && d.id == v.id));

    let mut g = c.benchmark_group("list_all_domains_16384");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    let mut buf = Vec::with_capacity(bytes.len());
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(black_box(&bytes));
            black_box(buf.as_ptr());
        })
    });
    g.bench_function("decode_borrowed", |b| {
        b.iter(|| xdr::from_bytes::<ListAllDomainsRetRef<'_>>(black_box(&bytes)).unwrap())
    });
    g.bench_function("decode_owned", |b| {
        b.iter(|| xdr::from_bytes::<ListAllDomainsRet>(black_box(&bytes)).unwrap())
    });
    g.bench_function("reference_hand_written", |b| {
        b.iter(|| reference_list(black_box(&bytes)).unwrap())
    });
    g.bench_function("reference_hand_written_bytes", |b| {
        b.iter(|| reference_list_bytes(black_box(&bytes)).unwrap())
    });
    let mut out = Vec::with_capacity(bytes.len());
    g.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            xdr::to_writer_vec(black_box(&value), &mut out).unwrap();
        })
    });
    g.finish();
}

fn bench_stats(c: &mut Criterion) {
    let value = all_domain_stats(1_000);
    let bytes = xdr::to_bytes(&value).unwrap();
    assert_eq!(
        xdr::from_bytes::<GetAllDomainStatsRet>(&bytes).unwrap(),
        value
    );
    let borrowed: GetAllDomainStatsRetRef<'_> = xdr::from_bytes(&bytes).unwrap();
    assert_eq!(borrowed.retStats[7].params[30].field, "net.0.name");
    assert_eq!(borrowed.to_owned(), value);
    let reference = GetAllDomainStatsRetRef {
        retStats: reference_stats(&bytes).unwrap(),
    };
    assert_eq!(reference.to_owned(), value);

    let mut g = c.benchmark_group("all_domain_stats_1000x60");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    let mut buf = Vec::with_capacity(bytes.len());
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(black_box(&bytes));
            black_box(buf.as_ptr());
        })
    });
    g.bench_function("decode_borrowed", |b| {
        b.iter(|| xdr::from_bytes::<GetAllDomainStatsRetRef<'_>>(black_box(&bytes)).unwrap())
    });
    g.bench_function("decode_owned", |b| {
        b.iter(|| xdr::from_bytes::<GetAllDomainStatsRet>(black_box(&bytes)).unwrap())
    });
    g.bench_function("reference_hand_written", |b| {
        b.iter(|| reference_stats(black_box(&bytes)).unwrap())
    });
    let mut out = Vec::with_capacity(bytes.len());
    g.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            xdr::to_writer_vec(black_box(&value), &mut out).unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, bench_list, bench_stats);
criterion_main!(benches);
