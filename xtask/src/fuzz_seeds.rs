//! `cargo xtask fuzz seeds [--check]`: the committed seed inputs of the wire fuzz targets,
//! written deterministically under `fuzz/seeds/<target>/` from encoded sample values: real
//! libvirt packets built with `libvirt-proto` (a CONNECT_OPEN call, a domain list reply, an error
//! reply, events, stream packets, a CALL_WITH_FDS, keepalive), values of the `xdr` fixtures'
//! schemas, QMP greeting/return/error/event lines and QEMU command lines built with
//! `qemu-cmdline`. Each file's layout is the one its target reads (see each target's docs).
//!
//! Every seed is checked on the way: typed bodies decode with `generated::decode_body` and
//! encode back to the same bytes, schema values decode, command lines parse. With `--check`,
//! nothing is written and any difference from the committed files is an error. Only the targets
//! listed here are managed (`domain_xml` and `libvirt_uri` keep their hand-written seeds).

use crate::util;
use anyhow::{bail, ensure, Context, Result};
use libvirt_proto::generated::{self, keepalive, qemu, remote, PROGRAMS};
use libvirt_proto::header::{Header, MessageStatus, MessageType};
use libvirt_proto::packet::encode_packet;
use libvirt_proto::program::Body;
use libvirt_proto::RemoteError;
use std::collections::BTreeMap;
use std::path::Path;

/// The targets whose seed folders this command owns, with their seed makers (given the
/// workspace root).
const TARGETS: &[(&str, MakeSeeds)] = &[
    ("cmdline_parse", |_| cmdline_parse()),
    ("generated_decode", |_| generated_decode()),
    ("libvirt_framer", |_| libvirt_framer()),
    ("qmp_framer", |_| Ok(qmp_framer())),
    ("qmp_session", |_| Ok(qmp_session())),
    ("schema_decode", schema_decode),
    ("xdr_decode", |_| xdr_decode()),
];

/// File name -> contents, for one target.
type Seeds = BTreeMap<String, Vec<u8>>;

/// A target's seed maker, given the workspace root.
type MakeSeeds = fn(&Path) -> Result<Seeds>;

pub fn cmd(args: &[&str]) -> Result<()> {
    let check = match args {
        [] => false,
        ["--check"] => true,
        _ => bail!("usage: cargo xtask fuzz seeds [--check]"),
    };
    let root = util::workspace_root();
    let all = all_seeds(&root)?;
    let mut stale = Vec::new();
    let mut total = 0usize;
    for (target, seeds) in &all {
        let dir = root.join("fuzz/seeds").join(target);
        total += seeds.values().map(Vec::len).sum::<usize>();
        let mut existing = BTreeMap::new();
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd {
                let path = e?.path();
                if path.is_file() {
                    let name = path.file_name().unwrap_or_default();
                    existing.insert(name.to_string_lossy().into_owned(), std::fs::read(&path)?);
                }
            }
        }
        if &existing == seeds {
            continue;
        }
        stale.push(target.clone());
        if check {
            continue;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for name in existing.keys().filter(|n| !seeds.contains_key(*n)) {
            std::fs::remove_file(dir.join(name))?;
        }
        for (name, bytes) in seeds {
            std::fs::write(dir.join(name), bytes)?;
        }
        println!(
            "fuzz seeds: wrote {} files in {}",
            seeds.len(),
            dir.display()
        );
    }
    let files: usize = all.values().map(BTreeMap::len).sum();
    if check && !stale.is_empty() {
        bail!(
            "fuzz seeds are stale for {}: run `cargo xtask fuzz seeds`",
            stale.join(", ")
        );
    }
    println!(
        "fuzz seeds: {files} files, {total} bytes, {} targets{}",
        all.len(),
        if stale.is_empty() {
            " (up to date)"
        } else {
            ""
        }
    );
    Ok(())
}

fn all_seeds(root: &Path) -> Result<BTreeMap<String, Seeds>> {
    let mut all = BTreeMap::new();
    for &(target, make) in TARGETS {
        let seeds = make(root)?;
        ensure!(!seeds.is_empty(), "{target}: no seeds");
        all.insert(target.to_string(), seeds);
    }
    Ok(all)
}

fn xdr<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    xdr::to_bytes(v).context("encoding a seed value")
}

// ---------------------------------------------------------------------------------------------
// Sample libvirt values.

const UUID_DEMO: [u8; 16] = [
    0x4d, 0xea, 0x22, 0xb3, 0x1d, 0x52, 0xd8, 0xf3, 0x2d, 0x81, 0x04, 0xb8, 0x6a, 0x8e, 0x13, 0x7c,
];
const UUID_TEST: [u8; 16] = [
    0x66, 0x95, 0xeb, 0x01, 0xf6, 0xa4, 0x81, 0x04, 0x4f, 0x4c, 0xd9, 0xc1, 0x4a, 0xd4, 0x2f, 0x3d,
];

fn dom(name: &str, uuid: [u8; 16], id: i32) -> remote::RemoteNonnullDomain {
    remote::RemoteNonnullDomain {
        name: name.into(),
        uuid,
        id,
    }
}

fn typed(field: &str, value: remote::RemoteTypedParamValue) -> remote::RemoteTypedParam {
    remote::RemoteTypedParam {
        field: field.into(),
        value,
    }
}

fn domain_stats() -> remote::RemoteConnectGetAllDomainStatsRet {
    use remote::RemoteTypedParamValue as V;
    remote::RemoteConnectGetAllDomainStatsRet {
        ret_stats: vec![remote::RemoteDomainStatsRecord {
            dom: dom("demo", UUID_DEMO, 1),
            params: vec![
                typed("state.state", V::Int(1)),
                typed("state.reason", V::Int(1)),
                typed("cpu.time", V::Ullong(1_524_000_000)),
                typed("balloon.current", V::Ullong(262_144)),
                typed("vcpu.current", V::Uint(1)),
                typed("block.0.name", V::String("vda".into())),
                typed("block.0.rd.bytes", V::Llong(1_048_576)),
                typed("net.0.rx.drop", V::Boolean(0)),
                typed("cpu.haltpoll.ratio", V::Double(0.25)),
            ],
        }],
    }
}

fn lifecycle_event(callback_id: i32) -> remote::RemoteDomainEventCallbackLifecycleMsg {
    remote::RemoteDomainEventCallbackLifecycleMsg {
        callback_id,
        msg: remote::RemoteDomainEventLifecycleMsg {
            dom: dom("demo", UUID_DEMO, 1),
            event: 2,  // VIR_DOMAIN_EVENT_STARTED
            detail: 0, // VIR_DOMAIN_EVENT_STARTED_BOOTED
        },
    }
}

fn no_domain_error() -> RemoteError {
    use libvirt_proto::generated::api::{ErrorDomain, ErrorNumber};
    let mut e = RemoteError::new(
        ErrorNumber::ERR_NO_DOMAIN,
        ErrorDomain::QEMU,
        "Domain not found: no domain with matching name 'nosuch'",
    );
    e.str1 = Some("Domain not found: %s".into());
    e.str2 = Some("no domain with matching name 'nosuch'".into());
    e
}

/// One packet's wire form.
fn packet(
    program: u32,
    procedure: i32,
    kind: MessageType,
    serial: u32,
    status: MessageStatus,
    num_fds: u32,
    body: &[u8],
) -> Result<Vec<u8>> {
    let header = Header {
        program,
        version: 1,
        procedure,
        kind,
        serial,
        status,
    };
    let mut out = Vec::new();
    encode_packet(&header, num_fds, body, &mut out).context("encoding a seed packet")?;
    Ok(out)
}

fn proc_no<P: Into<u32>>(p: P) -> i32 {
    p.into() as i32
}

// ---------------------------------------------------------------------------------------------
// generated_decode: `[program index, procedure hi, procedure lo, body kind, body...]`.

fn generated_decode() -> Result<Seeds> {
    use remote::Procedure as R;
    use remote::RemoteTypedParamValue as V;
    let mut seeds = Seeds::new();
    let mut add = |name: &str, program: u32, procedure: u32, body: Body, bytes: Vec<u8>| {
        let index = PROGRAMS
            .iter()
            .position(|p| p.number == program)
            .context("unknown program")?;
        let kind = match body {
            Body::Args => 0u8,
            Body::Ret => 1,
            Body::Message => 2,
        };
        // The top bit of the procedure word selects a raw procedure number (stable when the
        // tables grow), which must fit in the low 15 bits.
        ensure!(
            procedure < 0x8000,
            "{name}: procedure {procedure} too large"
        );
        let raw = 0x8000 | procedure as u16;
        let decoded = generated::decode_body(program, procedure, body, &bytes)
            .with_context(|| format!("{name}: unknown procedure"))?
            .with_context(|| format!("{name}: does not decode"))?;
        ensure!(
            decoded.encode()? == bytes,
            "{name}: does not re-encode exactly"
        );
        let mut input = vec![index as u8, (raw >> 8) as u8, raw as u8, kind];
        input.extend_from_slice(&bytes);
        seeds.insert(name.to_string(), input);
        Ok(())
    };
    let r = remote::PROGRAM;
    add(
        "remote-connect-open-args",
        r,
        R::ConnectOpen.number(),
        Body::Args,
        xdr(&remote::RemoteConnectOpenArgs {
            name: Some("qemu:///system".into()),
            flags: 0,
        })?,
    )?;
    add(
        "remote-connect-get-version-ret",
        r,
        R::ConnectGetVersion.number(),
        Body::Ret,
        xdr(&remote::RemoteConnectGetVersionRet { hv_ver: 7_002_000 })?,
    )?;
    add(
        "remote-connect-list-all-domains-ret",
        r,
        R::ConnectListAllDomains.number(),
        Body::Ret,
        xdr(&remote::RemoteConnectListAllDomainsRet {
            domains: vec![dom("demo", UUID_DEMO, 1), dom("test", UUID_TEST, -1)],
            ret: 2,
        })?,
    )?;
    add(
        "remote-domain-get-info-ret",
        r,
        R::DomainGetInfo.number(),
        Body::Ret,
        xdr(&remote::RemoteDomainGetInfoRet {
            state: 1,
            max_mem: 262_144,
            memory: 262_144,
            nr_virt_cpu: 1,
            cpu_time: 1_524_000_000,
        })?,
    )?;
    add(
        "remote-connect-get-all-domain-stats-ret",
        r,
        R::ConnectGetAllDomainStats.number(),
        Body::Ret,
        xdr(&domain_stats())?,
    )?;
    add(
        "remote-domain-set-scheduler-parameters-flags-args",
        r,
        R::DomainSetSchedulerParametersFlags.number(),
        Body::Args,
        xdr(&remote::RemoteDomainSetSchedulerParametersFlagsArgs {
            dom: dom("demo", UUID_DEMO, 1),
            params: vec![
                typed("cpu_shares", V::Ullong(1024)),
                typed("vcpu_quota", V::Llong(-1)),
            ],
            flags: 1,
        })?,
    )?;
    add(
        "remote-domain-create-xml-with-files-args",
        r,
        R::DomainCreateXmlWithFiles.number(),
        Body::Args,
        xdr(&remote::RemoteDomainCreateXmlWithFilesArgs {
            xml_desc: "<domain type='qemu'><name>demo</name><memory>262144</memory></domain>"
                .into(),
            flags: 0,
        })?,
    )?;
    add(
        "remote-domain-event-callback-lifecycle-msg",
        r,
        R::DomainEventCallbackLifecycle.number(),
        Body::Message,
        xdr(&lifecycle_event(1))?,
    )?;
    add(
        "qemu-domain-monitor-command-args",
        qemu::PROGRAM,
        qemu::Procedure::DomainMonitorCommand.number(),
        Body::Args,
        xdr(&qemu::QemuDomainMonitorCommandArgs {
            dom: dom("demo", UUID_DEMO, 1),
            cmd: r#"{"execute":"query-status"}"#.into(),
            flags: 0,
        })?,
    )?;
    add(
        "qemu-domain-monitor-event-msg",
        qemu::PROGRAM,
        qemu::Procedure::DomainMonitorEvent.number(),
        Body::Message,
        xdr(&qemu::QemuDomainMonitorEventMsg {
            callback_id: 3,
            dom: dom("demo", UUID_DEMO, 1),
            event: "STOP".into(),
            seconds: 1_765_000_000,
            micros: 123_456,
            details: Some("{}".into()),
        })?,
    )?;
    add(
        "keepalive-ping",
        keepalive::PROGRAM,
        keepalive::Procedure::Ping.number(),
        Body::Message,
        Vec::new(),
    )?;
    Ok(seeds)
}

// ---------------------------------------------------------------------------------------------
// libvirt_framer: `[chunk size, split point, stream...]`; the target's connection has calls with
// serials 1-4 to REMOTE_PROC_CONNECT_GET_VERSION (2 abandoned), a DOMAIN_SCREENSHOT stream call
// with serial 5 and domain callback id 1 routed.

fn libvirt_framer() -> Result<Seeds> {
    use remote::Procedure as R;
    use MessageStatus::{Continue, Error as Failed, Ok as Done};
    use MessageType::*;
    let r = remote::PROGRAM;
    let version = proc_no(R::ConnectGetVersion.number());
    let screenshot = proc_no(R::DomainScreenshot.number());
    let lifecycle = proc_no(R::DomainEventCallbackLifecycle.number());
    let ka = keepalive::PROGRAM;
    let ping = proc_no(keepalive::Procedure::Ping.number());
    let pong = proc_no(keepalive::Procedure::Pong.number());

    let mut error = Vec::new();
    no_domain_error().encode(&mut error)?;
    let version_ret = xdr(&remote::RemoteConnectGetVersionRet { hv_ver: 7_002_000 })?;
    let screenshot_ret = xdr(&remote::RemoteDomainScreenshotRet {
        mime: Some("image/x-portable-pixmap".into()),
    })?;
    let pixels: Vec<u8> = b"P6\n4 2\n255\n"
        .iter()
        .copied()
        .chain((0..24u8).map(|i| i.wrapping_mul(37)))
        .collect();

    // What the daemon sends the connection above.
    let replies = [
        packet(r, version, Reply, 1, Done, 0, &version_ret)?,
        packet(r, version, Reply, 2, Done, 0, &version_ret)?,
        packet(r, version, Reply, 3, Failed, 0, &error)?,
        packet(ka, ping, Message, 0, Done, 0, &[])?,
        packet(
            r,
            lifecycle,
            Message,
            0,
            Done,
            0,
            &xdr(&lifecycle_event(1))?,
        )?,
        packet(r, screenshot, Reply, 5, Done, 0, &screenshot_ret)?,
        packet(r, screenshot, Stream, 5, Continue, 0, &pixels)?,
        packet(r, screenshot, Stream, 5, Done, 0, &[])?,
        packet(r, version, Reply, 4, Done, 0, &version_ret)?,
    ]
    .concat();
    let stream_error = [
        packet(r, screenshot, Reply, 5, Done, 0, &screenshot_ret)?,
        packet(r, screenshot, Stream, 5, Continue, 0, &pixels[..16])?,
        packet(r, screenshot, Stream, 5, Failed, 0, &error)?,
        packet(ka, pong, Message, 0, Done, 0, &[])?,
    ]
    .concat();
    // What a client sends (the framer does not care about direction): CONNECT_OPEN, a domain
    // list, a CALL_WITH_FDS with its one carrier byte, a stream hole.
    let fds_call = {
        let args = xdr(&remote::RemoteDomainCreateXmlWithFilesArgs {
            xml_desc: "<domain type='qemu'><name>demo</name></domain>".into(),
            flags: 0,
        })?;
        let mut p = packet(
            r,
            proc_no(R::DomainCreateXmlWithFiles.number()),
            CallWithFds,
            3,
            Done,
            1,
            &args,
        )?;
        p.push(0); // the byte that carries the descriptor
        p
    };
    let hole = xdr(&libvirt_proto::generated::virnet::VirNetStreamHole {
        length: 1 << 20,
        flags: 0,
    })?;
    let client = [
        packet(
            r,
            proc_no(R::ConnectOpen.number()),
            Call,
            1,
            Done,
            0,
            &xdr(&remote::RemoteConnectOpenArgs {
                name: Some("qemu:///system".into()),
                flags: 0,
            })?,
        )?,
        packet(
            r,
            proc_no(R::ConnectListAllDomains.number()),
            Call,
            2,
            Done,
            0,
            &xdr(&remote::RemoteConnectListAllDomainsArgs {
                need_results: 1,
                flags: 0,
            })?,
        )?,
        fds_call,
        packet(
            r,
            proc_no(R::StorageVolUpload.number()),
            StreamHole,
            4,
            Continue,
            0,
            &hole,
        )?,
    ]
    .concat();
    let list_reply = packet(
        r,
        proc_no(R::ConnectListAllDomains.number()),
        Reply,
        1,
        Done,
        0,
        &xdr(&remote::RemoteConnectListAllDomainsRet {
            domains: vec![dom("demo", UUID_DEMO, 1), dom("test", UUID_TEST, -1)],
            ret: 2,
        })?,
    )?;

    let mut seeds = Seeds::new();
    let mut add = |name: &str, step: u8, split: u8, stream: Vec<u8>| {
        let mut input = vec![step, split];
        input.extend_from_slice(&stream);
        seeds.insert(name.to_string(), input);
    };
    add("replies-events-stream", 255, 100, replies);
    add("stream-error-pong", 13, 60, stream_error);
    add("client-calls-fds-hole", 255, 0, client);
    add("list-all-domains-reply", 7, 28, list_reply);
    Ok(seeds)
}

// ---------------------------------------------------------------------------------------------
// xdr_decode: plain bytes, decoded by the target as several shapes (`ListRet`, `Params`,
// `Misc`, `Vec<Option<String>>`); one seed per shape, spelled with equivalent wire forms.

fn xdr_decode() -> Result<Seeds> {
    use remote::RemoteTypedParamValue as V;
    let mut seeds = Seeds::new();
    // ListRet { domains: [{name, uuid[16], id}], ret }: libvirt's list-all-domains reply.
    seeds.insert(
        "list-ret".into(),
        xdr(&remote::RemoteConnectListAllDomainsRet {
            domains: vec![dom("demo", UUID_DEMO, 1), dom("test", UUID_TEST, -1)],
            ret: 2,
        })?,
    );
    // Params { params: [(name, union value)], flags }: typed parameters of the arms it knows
    // (1 int, 3 hyper, 5 double, 7 string).
    seeds.insert(
        "params".into(),
        xdr(&(
            vec![
                typed("cpu_shares", V::Int(1024)),
                typed("vcpu_quota", V::Llong(-1)),
                typed("ratio", V::Double(0.5)),
                typed("name", V::String("vda".into())),
            ],
            1u32,
        ))?,
    );
    // Misc { raw opaque, model [i8; 32], shorts [(u16, i16, u8, char)], maybe (u64, f32)?,
    // list: a two-node linked list (v, flag, next) }.
    let mut model = [0i8; 32];
    for (m, b) in model.iter_mut().zip(b"qemu64-v1") {
        *m = *b as i8;
    }
    seeds.insert(
        "misc".into(),
        xdr(&(
            xdr::Opaque::from(b"\x7fELF\x02".to_vec()),
            model,
            vec![(8080u16, -2i16, 255u8, 'x'), (1, 1, 0, '\u{e9}')],
            Some((u64::MAX, 1.5f32)),
            Some((1i8, true, Some((-1i8, false, None::<()>)))),
        ))?,
    );
    seeds.insert(
        "optional-strings".into(),
        xdr(&vec![Some("qemu:///system"), None, Some("")])?,
    );
    Ok(seeds)
}

// ---------------------------------------------------------------------------------------------
// schema_decode: `[type index, bytes...]` with the types of `xdr/tests/fixtures/dynamic.x` in
// the target's order; the bytes also go through the dissector of `dissect.x`.

/// The quoted names of the `const TYPES: &[&str] = &[...];` array in a target's source: the
/// types `schema_decode` picks by its first input byte (the fuzz crate is outside the workspace,
/// so its list is read, not shared).
fn types_in(src: &str) -> Result<Vec<String>> {
    let start = src
        .find("const TYPES: &[&str] = &[")
        .context("the schema_decode target declares no `const TYPES: &[&str] = &[`")?;
    let body = &src[start..];
    let body = &body[..body.find("];").context("the target's TYPES has no end")?];
    Ok(body
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect())
}

fn schema_decode(root: &Path) -> Result<Seeds> {
    use serde_json::json;
    use xdr::dynamic::{decode, encode, from_json};
    use xdr::schema::{parse, Schema};
    let load = |file: &str| -> Result<Schema> {
        let path = root.join("xdr/tests/fixtures").join(file);
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        Ok(Schema::new(vec![parse(file, &text)?])?)
    };
    let target = root.join("fuzz/fuzz_targets/schema_decode.rs");
    let types = types_in(
        &std::fs::read_to_string(&target).with_context(|| format!("{}", target.display()))?,
    )?;
    let forms = load("dynamic.x")?;
    let protocol = load("dissect.x")?;

    let numbers = json!({"i": -7, "u": 7, "h": -9_000_000_000i64, "uh": 9_000_000_000u64,
                         "f": 1.5, "d": -0.1, "b": true});
    let small = json!({"c": -1, "uc": 255, "s": -300, "us": 300, "model": [1, 2, 3, -128]});
    let wide = json!({"q": 1.0, "qs": [-2.0, "0x3fff0000000000000000000000000001"], "maybe": null});
    let node = json!({"value": 1, "next": {"value": 2, "next": null}});
    let inline = json!({"anon_enum": "TWO", "point": {"x": 3, "y": -4},
                        "choice": {"which": 1, "weight": 0.75}});
    let values = [
        (
            "everything",
            json!({
                "name": "demo", "nick": "d", "t": "010203fe0506", "data": "c0ffee",
                "small": "0102", "colors": ["RED", "BLUE", "BLACK"],
                "shapes": [{"kind": "RED", "radius": 7}, {"kind": "BLUE"},
                           {"kind": 99, "raw": "abcd"}],
                "params": [{"type": 1, "i": -5}, {"type": 2, "ui": 5}, {"type": 7, "s": "hi"}],
                "maybe": {"present": true, "value": 42},
                "ints": small, "nums": numbers, "fixed_nums": [numbers, numbers],
                "list": node, "inl": inline, "words": "ab", "w": wide,
            }),
        ),
        ("shape", json!({"kind": "GREEN", "radius": 3})),
        ("typed_param", json!({"type": 7, "s": "vda"})),
        ("flag_union", json!({"present": true, "value": -1})),
        ("node", node.clone()),
        ("inline_forms", inline.clone()),
        ("small_ints", small.clone()),
        ("numbers", numbers.clone()),
        ("maybe_name", json!("name")),
        ("tag", json!("0a0b0c0d0e0f")),
        ("wide", wide.clone()),
    ];
    let mut seeds = Seeds::new();
    for (ty, value) in values {
        let index = types
            .iter()
            .position(|t| *t == ty)
            .with_context(|| format!("{ty} is not a schema_decode type"))?;
        let v = from_json(&forms, ty, &value).with_context(|| format!("{ty}: {value}"))?;
        let bytes = encode(&forms, ty, &v)?;
        decode(&forms, ty, &bytes).with_context(|| format!("{ty}: does not decode"))?;
        let mut input = vec![index as u8];
        input.extend_from_slice(&bytes);
        seeds.insert(format!("type-{ty}"), input);
    }

    // A capture of the demo protocol for the dissector (the type byte picks no type it fits).
    let demo = |ty: &str, value: serde_json::Value| -> Result<Vec<u8>> {
        Ok(encode(&protocol, ty, &from_json(&protocol, ty, &value)?)?)
    };
    let program = 0x4445_4d4f; // DEMO_PROGRAM
    use MessageStatus::{Continue, Error as Failed, Ok as Done};
    use MessageType::*;
    let stream = [
        packet(program, 1, Call, 1, Done, 0, &[])?,
        packet(
            program,
            2,
            Call,
            2,
            Done,
            0,
            &demo("demo_get_args", json!({"key": "color", "flags": 0}))?,
        )?,
        packet(program, 1, Reply, 1, Done, 0, &[])?,
        packet(
            program,
            2,
            Reply,
            2,
            Done,
            0,
            &demo(
                "demo_get_ret",
                json!({"values": ["red", "green"], "cookie": "00c0ffee"}),
            )?,
        )?,
        packet(
            program,
            3,
            Message,
            0,
            Done,
            0,
            &demo("demo_changed_msg", json!({"key": "color", "generation": 2}))?,
        )?,
        packet(
            program,
            2,
            Reply,
            3,
            Failed,
            0,
            &demo(
                "virNetMessageError",
                json!({"code": 42, "domain": 10, "message": "no such key", "level": 2}),
            )?,
        )?,
        packet(
            program,
            4,
            CallWithFds,
            4,
            Done,
            1,
            &demo("demo_upload_args", json!({"flags": 0}))?,
        )?,
        packet(program, 4, Stream, 4, Continue, 0, b"some data")?,
        packet(
            program,
            4,
            StreamHole,
            4,
            Continue,
            0,
            &demo("virNetStreamHole", json!({"length": 4096, "flags": 0}))?,
        )?,
        packet(program, 4, Stream, 4, Done, 0, &[])?,
    ]
    .concat();
    let mut input = vec![0xff];
    input.extend_from_slice(&stream);
    seeds.insert("dissect-demo-stream".into(), input);
    Ok(seeds)
}

// ---------------------------------------------------------------------------------------------
// QMP: the lines QEMU 7.2 sends.

const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u7"}, "capabilities": ["oob"]}}"#;

/// qmp_framer: the first byte sets the frame limit (64 + its value) and is part of the stream.
fn qmp_framer() -> Seeds {
    let mut seeds = Seeds::new();
    // `{` (123): frames up to 187 bytes, enough for the greeting.
    seeds.insert(
        "greeting-return-event".into(),
        format!(
            "{GREETING}\r\n{{\"return\": {{}}, \"id\": 0}}\r\n\
             {{\"timestamp\": {{\"seconds\": 1765000000, \"microseconds\": 123456}}, \
             \"event\": \"STOP\"}}\r\n\
             {{\"return\": {{\"status\": \"paused\", \"singlestep\": false, \"running\": false}}, \
             \"id\": 1}}\r\n"
        )
        .into_bytes(),
    );
    seeds.insert(
        "error".into(),
        b"{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command nosuch has not been found\"}, \"id\": 2}\r\n"
            .to_vec(),
    );
    // The guest agent: a delimited sync answer (0xFF, then the id echoed) and a reply.
    let mut qga = b"{\"return\": 1}\n".to_vec();
    qga.push(0xff);
    qga.extend_from_slice(b"{\"return\": 1}\n{\"return\": {\"version\": \"7.2.15\", \"supported_commands\": [{\"enabled\": true, \"name\": \"guest-ping\", \"success-response\": true}]}}\n");
    seeds.insert("qga-sync-reply".into(), qga);
    seeds
}

/// qmp_session: `[split, server bytes...]`: the split point (modulo the length + 1) also sets
/// the frame limit (16 + 4 * split) and asks for OOB when even. The target queues ten
/// `query-status` commands (ids 0-9, 3 cancelled) before the greeting, so negotiation is id 10.
fn qmp_session() -> Seeds {
    let status = |id: u32| {
        format!(
            "{{\"return\": {{\"status\": \"running\", \"singlestep\": false, \"running\": true}}, \"id\": {id}}}\r\n"
        )
    };
    let mut server = format!("{GREETING}\r\n{{\"return\": {{}}, \"id\": 10}}\r\n");
    for id in [0, 1, 2] {
        server.push_str(&status(id));
    }
    server.push_str("{\"timestamp\": {\"seconds\": 1765000000, \"microseconds\": 5}, \"event\": \"RESUME\"}\r\n");
    server.push_str(&status(3));
    server.push_str("{\"error\": {\"class\": \"GenericError\", \"desc\": \"Guest has not initialized the display (yet)\"}, \"id\": 4}\r\n");
    for id in 5..10 {
        server.push_str(&status(id));
    }
    server.push_str("{\"timestamp\": {\"seconds\": 1765000001, \"microseconds\": 6}, \"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": \"host-qmp-quit\"}}\r\n");
    let mut seeds = Seeds::new();
    // 200: split inside the stream after the greeting line, frames up to 816 bytes, OOB wanted.
    let mut a = vec![200u8];
    a.extend_from_slice(server.as_bytes());
    seeds.insert("greeting-replies-events".into(), a);
    // 45: an odd split (no OOB), frames up to 196 bytes: the greeting fits, barely.
    let mut b = vec![45u8];
    b.extend_from_slice(server.as_bytes());
    seeds.insert("greeting-replies-events-no-oob".into(), b);
    seeds
}

// ---------------------------------------------------------------------------------------------
// cmdline_parse: argv (without the binary) joined with NUL bytes.

fn cmdline_parse() -> Result<Seeds> {
    use qemu_cmdline::devices::{Balloon, Block, Format, Net, NetBackend, Pci};
    use qemu_cmdline::{Display, Machine, Memory, QemuConfig, QemuVersion, Syntax};
    let mut vm = QemuConfig::new()
        .qmp("qmp0", "/run/vmwire/demo/qmp.sock")
        .device(Block::virtio(
            "disk0",
            "/var/lib/vmwire/images/demo,1.qcow2",
            Format::Qcow2,
        ))
        .device(Net::virtio("nic0", NetBackend::User))
        .device(Balloon {
            id: "balloon0".into(),
            deflate_on_oom: true,
            pci: Pci::default(),
        });
    vm.machine = Some(Machine::new("q35").accel("tcg"));
    vm.memory = Some(Memory {
        size_mib: 256,
        ..Memory::default()
    });
    vm.knobs.nodefaults = true;
    vm.knobs.display = Some(Display::None);

    let mut seeds = Seeds::new();
    let mut add = |name: &str, argv: Vec<String>| -> Result<()> {
        QemuConfig::parse(&argv).with_context(|| format!("{name}: does not parse"))?;
        seeds.insert(name.into(), argv.join("\0").into_bytes());
        Ok(())
    };
    add("q35-tcg-text", vm.build(&Syntax::TEXT)?)?;
    add(
        "q35-tcg-json-7.2",
        vm.build(&Syntax::json(QemuVersion::new(7, 2)))?,
    )?;
    // The first argument alone is also read as the argument of each option kind (no argv).
    seeds.insert(
        "option-argument-text".into(),
        b"virtio-blk-pci,id=disk0,drive=node0,bootindex=1,serial=a,,b".to_vec(),
    );
    seeds.insert(
        "option-argument-json".into(),
        br#"{"driver":"file","node-name":"disk0-file","filename":"/images/demo.qcow2","read-only":false}"#.to_vec(),
    );
    Ok(seeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_read_from_the_target_source() {
        let src = "const PROTOCOL: &str = \"x\";\nconst TYPES: &[&str] = &[\n    \"a\",\n    \"b_c\",\n];\nfn f() {}";
        assert_eq!(types_in(src).unwrap(), ["a", "b_c"]);
        assert!(types_in("const OTHER: &[&str] = &[\"a\"];").is_err());
    }
}
