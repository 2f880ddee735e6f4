//! The generated bindings: byte-exact encodings computed by hand from RFC 4506 and the `.x`
//! declarations, typed errors for bad input, and the procedure tables against libvirt's
//! annotations. (Random round trips of every type are in tests/generated_roundtrip.rs.)

use libvirt_proto::generated::{self, admin, api, keepalive, lxc, qemu, remote, virnet};
use libvirt_proto::program::{
    Call, Generate, Message, Priority, ProcedureKind, ProcedureMarker, StreamDirection,
    UnknownProcedure, UnknownValue,
};
use remote::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Encode, compare with the expected bytes, decode back, compare with the value.
fn exact<T>(value: &T, expected: &str)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = xdr::to_bytes(value).unwrap();
    assert_eq!(hex(&bytes), hex(&unhex(expected)), "encoding of {value:?}");
    let back: T = xdr::from_bytes(&bytes).unwrap();
    assert_eq!(&back, value);
}

#[test]
fn connect_open_args_bytes() {
    exact(
        &RemoteConnectOpenArgs {
            name: Some("test:///default".into()),
            flags: 0,
        },
        // optional-data present, length 15, "test:///default" + 1 pad byte, flags
        "00000001 0000000f 746573743a2f2f2f64656661756c7400 00000000",
    );
    exact(
        &RemoteConnectOpenArgs {
            name: None,
            flags: 3,
        },
        "00000000 00000003",
    );
}

#[test]
fn domain_get_info_ret_bytes() {
    // unsigned char state; unsigned hyper maxMem; unsigned hyper memory;
    // unsigned short nrVirtCpu; unsigned hyper cpuTime -- char/short are 4 bytes.
    exact(
        &RemoteDomainGetInfoRet {
            state: 1,
            max_mem: 0x1_0000_0000,
            memory: 1024,
            nr_virt_cpu: 2,
            cpu_time: 5,
        },
        "00000001 0000000100000000 0000000000000400 00000002 0000000000000005",
    );
}

#[test]
fn node_get_info_ret_char_array_is_four_bytes_per_char() {
    let mut model = [0i8; 32];
    model[0] = b'x' as i8;
    model[1] = -1;
    let v = RemoteNodeGetInfoRet {
        model,
        memory: 7,
        cpus: 1,
        mhz: 2,
        nodes: 3,
        sockets: 4,
        cores: 5,
        threads: 6,
    };
    let mut expected = String::from("00000078 ffffffff");
    expected.push_str(&"00000000".repeat(30));
    expected.push_str("0000000000000007 00000001 00000002 00000003 00000004 00000005 00000006");
    exact(&v, &expected);
    assert_eq!(xdr::to_bytes(&v).unwrap().len(), 32 * 4 + 8 + 6 * 4);
}

#[test]
fn nonnull_domain_and_typed_params_bytes() {
    exact(
        &RemoteNonnullDomain {
            name: "vm".into(),
            uuid: [0xab; 16],
            id: -1,
        },
        "00000002 766d0000 abababababababababababababababab ffffffff",
    );
    exact(
        &RemoteTypedParam {
            field: "x".into(),
            value: RemoteTypedParamValue::Ullong(7),
        },
        "00000001 78000000 00000004 0000000000000007",
    );
    exact(
        &RemoteTypedParam {
            field: "abcd".into(),
            value: RemoteTypedParamValue::String("hi".into()),
        },
        "00000004 61626364 00000007 00000002 68690000",
    );
    exact(
        &RemoteTypedParamValue::Double(1.5),
        "00000005 3ff8000000000000",
    );
    exact(
        &admin::AdminTypedParamValue::Boolean(1),
        "00000006 00000001",
    );
}

#[test]
fn enums_and_header_bytes() {
    exact(&RemoteAuthType::Polkit, "00000002");
    exact(
        &virnet::VirNetMessageHeader {
            prog: remote::PROGRAM,
            vers: remote::VERSION,
            proc: Procedure::ConnectOpen.number() as i32,
            r#type: virnet::VirNetMessageType::Call,
            serial: 7,
            status: virnet::VirNetMessageStatus::Ok,
        },
        "20008086 00000001 00000001 00000000 00000007 00000000",
    );
    exact(
        &RemoteConnectListDomainsRet { ids: vec![1, -2] },
        "00000002 00000001 fffffffe",
    );
    exact(
        &RemoteAuthListRet {
            types: vec![RemoteAuthType::None, RemoteAuthType::Sasl],
        },
        "00000002 00000000 00000001",
    );
}

#[test]
fn unknown_enum_value_is_a_typed_error() {
    let err = xdr::from_bytes::<RemoteAuthType>(&unhex("00000009")).unwrap_err();
    match err {
        xdr::Error::InvalidValue {
            value, expected, ..
        } => {
            assert!(value.contains('9'), "{value}");
            assert!(expected.contains("remote_auth_type"), "{expected}");
        }
        other => panic!("expected InvalidValue, got {other:?}"),
    }
    // Inside a struct the path names the field.
    let err = xdr::from_bytes::<RemoteAuthListRet>(&unhex("00000001 00000003")).unwrap_err();
    assert!(
        matches!(&err, xdr::Error::InvalidValue { path, .. } if path.contains("types")),
        "{err:?}"
    );
    assert_eq!(
        RemoteAuthType::try_from(5),
        Err(UnknownValue {
            type_name: "remote_auth_type",
            value: 5
        })
    );
    assert_eq!(RemoteAuthType::try_from(1), Ok(RemoteAuthType::Sasl));
}

#[test]
fn bad_union_discriminant_is_a_typed_error() {
    let err = xdr::from_bytes::<RemoteTypedParamValue>(&unhex("00000008 00000000")).unwrap_err();
    assert!(
        matches!(&err, xdr::Error::InvalidValue { value, expected, .. }
            if value.contains('8') && expected.contains("remote_typed_param_value")),
        "{err:?}"
    );
    // Within a struct, with the path of the field.
    let err =
        xdr::from_bytes::<RemoteTypedParam>(&unhex("00000001 78000000 00000000")).unwrap_err();
    assert!(
        matches!(&err, xdr::Error::InvalidValue { path, .. } if path.contains("value")),
        "{err:?}"
    );
    // A valid discriminant whose arm is missing: truncated input.
    let err = xdr::from_bytes::<RemoteTypedParamValue>(&unhex("00000001")).unwrap_err();
    assert!(matches!(err, xdr::Error::UnexpectedEof { .. }), "{err:?}");
}

#[test]
fn over_limit_array_fails_on_encode_and_decode() {
    let too_many = RemoteConnectListDomainsRet {
        ids: vec![0; REMOTE_DOMAIN_LIST_MAX as usize + 1],
    };
    let err = xdr::to_bytes(&too_many).unwrap_err();
    assert!(
        matches!(
            err,
            xdr::Error::LengthOverLimit {
                len: 16385,
                max: 16384,
                ..
            }
        ),
        "{err:?}"
    );
    // The same on decode, with every element present so only the limit can object.
    let mut bytes = 16385u32.to_be_bytes().to_vec();
    bytes.extend(std::iter::repeat_n(0u8, 16385 * 4));
    let err = xdr::from_bytes::<RemoteConnectListDomainsRet>(&bytes).unwrap_err();
    assert!(
        matches!(&err, xdr::Error::LengthOverLimit { len: 16385, max: 16384, path } if path.contains("ids")),
        "{err:?}"
    );
    // Exactly at the limit is fine.
    let at_limit = RemoteConnectListDomainsRet {
        ids: vec![0; REMOTE_DOMAIN_LIST_MAX as usize],
    };
    let bytes = xdr::to_bytes(&at_limit).unwrap();
    assert_eq!(
        xdr::from_bytes::<RemoteConnectListDomainsRet>(&bytes).unwrap(),
        at_limit
    );
}

/// `remote_nonnull_string names<REMOTE_DOMAIN_LIST_MAX>`: the count has its maximum and so has
/// each name (`string<REMOTE_STRING_MAX>`), on encode and decode, naming the item.
#[test]
fn over_limit_item_of_a_string_array_fails() {
    let max = REMOTE_STRING_MAX as usize;
    let long = RemoteConnectListDefinedDomainsRet {
        names: vec!["a".into(), "b".repeat(max + 1)],
    };
    let err = xdr::to_bytes(&long).unwrap_err();
    assert!(
        matches!(&err, xdr::Error::LengthOverLimit { len, max: m, path }
            if *len == max as u64 + 1 && *m == max as u64 && path.contains("names[1]")),
        "{err:?}"
    );
    // The same bytes as a peer would send them: refused on decode.
    let mut bytes = 2u32.to_be_bytes().to_vec();
    bytes.extend(xdr::to_bytes(&"a").unwrap());
    bytes.extend(((max + 1) as u32).to_be_bytes());
    bytes.extend(std::iter::repeat_n(b'b', max + 4));
    let err = xdr::from_bytes::<RemoteConnectListDefinedDomainsRet>(&bytes).unwrap_err();
    assert!(
        matches!(&err, xdr::Error::LengthOverLimit { len, path, .. }
            if *len == max as u64 + 1 && path.contains("names[1]")),
        "{err:?}"
    );
    // Exactly at the limit is fine.
    let at = RemoteConnectListDefinedDomainsRet {
        names: vec!["b".repeat(max)],
    };
    let bytes = xdr::to_bytes(&at).unwrap();
    assert_eq!(
        xdr::from_bytes::<RemoteConnectListDefinedDomainsRet>(&bytes).unwrap(),
        at
    );
}

#[test]
fn over_limit_string_and_opaque_fail() {
    // remote_string (optional remote_nonnull_string<REMOTE_STRING_MAX>): the limit applies
    // inside Some.
    let mut bytes = unhex("00000001");
    bytes.extend((REMOTE_STRING_MAX + 1).to_be_bytes());
    bytes.extend(std::iter::repeat_n(b'a', REMOTE_STRING_MAX as usize + 4));
    bytes.extend(unhex("00000000"));
    let err = xdr::from_bytes::<RemoteConnectOpenArgs>(&bytes).unwrap_err();
    assert!(
        matches!(&err, xdr::Error::LengthOverLimit { max, path, .. }
            if *max == u64::from(REMOTE_STRING_MAX) && path.contains("name")),
        "{err:?}"
    );
    // opaque cpumap<REMOTE_CPUMAP_MAX>
    let v = RemoteDomainPinVcpuArgs {
        dom: RemoteNonnullDomain::default(),
        vcpu: 0,
        cpumap: vec![0u8; REMOTE_CPUMAP_MAX as usize + 1].into(),
    };
    let err = xdr::to_bytes(&v).unwrap_err();
    assert!(
        matches!(
            err,
            xdr::Error::LengthOverLimit {
                len: 2049,
                max: 2048,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn invalid_optional_flag_and_trailing_bytes() {
    let err = xdr::from_bytes::<RemoteConnectOpenArgs>(&unhex("00000002 00000000")).unwrap_err();
    assert!(
        matches!(err, xdr::Error::InvalidBool { value: 2, .. }),
        "{err:?}"
    );
    let err =
        xdr::from_bytes::<RemoteConnectOpenArgs>(&unhex("00000000 00000000 00000000")).unwrap_err();
    assert!(
        matches!(err, xdr::Error::TrailingBytes { count: 4 }),
        "{err:?}"
    );
}

#[test]
fn procedure_enums_and_tables_agree() {
    for program in generated::PROGRAMS {
        let procs = program.procedures;
        assert!(!procs.is_empty(), "{}", program.name);
        let prefix = format!("{}_PROC_", program.name.to_uppercase());
        for (i, p) in procs.iter().enumerate() {
            assert_eq!(
                p.number as usize,
                i + 1,
                "{} numbers are 1..=N",
                program.name
            );
            assert_eq!(p.program, program.number);
            assert_eq!(p.version, program.version);
            assert_eq!(p.program_name, program.name);
            assert!(p.name.starts_with(&prefix), "{}", p.name);
            assert_eq!(program.procedure(p.number), Some(p));
            assert_eq!(generated::procedure(program.number, p.number), Some(p));
            match p.kind {
                ProcedureKind::Call => assert!(p.message.is_none(), "{}", p.name),
                ProcedureKind::Message => {
                    assert!(p.args.is_none() && p.ret.is_none(), "{}", p.name);
                    assert!(p.stream.is_none(), "{}", p.name);
                }
            }
            assert_eq!(p.stream.is_some(), p.stream_param.is_some(), "{}", p.name);
        }
        assert_eq!(program.procedure(procs.len() as u32 + 1), None);
        assert_eq!(program.procedure(0), None);
    }
    assert_eq!(generated::procedure(0x1234, 1), None);

    for p in remote::Procedure::ALL {
        assert_eq!(remote::Procedure::try_from(p.number()), Ok(*p));
        assert_eq!(p.info().name, p.name());
        assert_eq!(p.info().number, p.number());
        // Every remote procedure is annotated with @generate and at least one @acl.
        assert!(p.info().generate.is_some(), "{}", p.name());
        assert!(!p.info().acl.is_empty(), "{}", p.name());
    }
    assert_eq!(remote::PROCEDURES.len(), remote::Procedure::ALL.len());
    assert_eq!(
        remote::Procedure::try_from(0u32),
        Err(UnknownProcedure {
            program: remote::PROGRAM,
            procedure: 0
        })
    );
    assert_eq!(
        remote::Procedure::try_from(u32::MAX),
        Err(UnknownProcedure {
            program: remote::PROGRAM,
            procedure: u32::MAX
        })
    );
}

#[test]
fn program_numbers() {
    assert_eq!(remote::PROGRAM, 0x2000_8086);
    assert_eq!(qemu::PROGRAM, 0x2000_8087);
    assert_eq!(lxc::PROGRAM, 0x0006_8000);
    assert_eq!(admin::PROGRAM, 0x0690_0690);
    assert_eq!(keepalive::PROGRAM, 0x6b65_6570);
    for p in generated::PROGRAMS {
        assert_eq!(p.version, 1);
        assert_eq!(generated::program(p.number), Some(*p));
    }
    assert_eq!(virnet::VIR_NET_MESSAGE_MAX, 33_554_432);
    assert_eq!(virnet::VIR_NET_MESSAGE_STRING_MAX, 4_194_304);
}

#[test]
fn known_procedures_carry_libvirt_annotations() {
    let open = remote::Procedure::ConnectOpen.info();
    assert_eq!(open.number, 1);
    assert_eq!(open.name, "REMOTE_PROC_CONNECT_OPEN");
    assert_eq!(open.kind, ProcedureKind::Call);
    assert_eq!(open.args, Some("remote_connect_open_args"));
    assert_eq!(open.ret, None);
    assert_eq!(open.priority, Priority::High);
    assert_eq!(open.generate, Some(Generate::None));
    assert_eq!(open.acl, &["connect:getattr"]);

    let info = remote::Procedure::DomainGetInfo.info();
    assert_eq!(
        (info.args, info.ret),
        (
            Some("remote_domain_get_info_args"),
            Some("remote_domain_get_info_ret")
        )
    );
    assert_eq!(info.priority, Priority::Low);

    let list = remote::Procedure::ConnectListAllDomains.info();
    assert_eq!(list.acl_filter, &["domain:getattr"]);

    let up = remote::Procedure::StorageVolUpload.info();
    assert_eq!(up.stream, Some(StreamDirection::Write));
    assert_eq!(up.stream_param, Some(1));
    assert_eq!(up.sparse_flag, Some("VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM"));
    let down = remote::Procedure::StorageVolDownload.info();
    assert_eq!(down.stream, Some(StreamDirection::Read));
    assert_eq!(
        remote::Procedure::DomainScreenshot.info().stream,
        Some(StreamDirection::Read)
    );
    assert_eq!(
        remote::Procedure::DomainOpenConsole.info().stream,
        Some(StreamDirection::Read)
    );
    let streams = remote::PROCEDURES
        .iter()
        .filter(|p| p.stream.is_some())
        .count();
    assert_eq!(
        streams, 8,
        "remote_protocol.x has 7 @readstream/@writestream procedures, and the unannotated \
         REMOTE_PROC_DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS streams too"
    );
    let tunnel = remote::Procedure::DomainMigratePrepareTunnel3Params.info();
    assert_eq!(tunnel.stream, Some(StreamDirection::Write));
    assert_eq!(tunnel.stream_param, Some(1));
    assert_eq!(
        remote::Procedure::DomainOpenChannel.info().stream,
        Some(StreamDirection::Read),
        "libvirt's annotation; console and channel streams carry data both ways"
    );

    // Events: the daemon sends them as VIR_NET_MESSAGE with a `_msg` body.
    let life = remote::Procedure::DomainEventCallbackLifecycle.info();
    assert_eq!(life.kind, ProcedureKind::Message);
    assert_eq!(
        life.message,
        Some("remote_domain_event_callback_lifecycle_msg")
    );
    let legacy = remote::Procedure::DomainEventLifecycle.info();
    assert_eq!(legacy.message, Some("remote_domain_event_lifecycle_msg"));
    // Registering for events is a call.
    let reg = remote::Procedure::ConnectDomainEventCallbackRegisterAny.info();
    assert_eq!(reg.kind, ProcedureKind::Call);
    let events: Vec<&str> = remote::PROCEDURES
        .iter()
        .filter(|p| p.kind == ProcedureKind::Message)
        .map(|p| p.name)
        .collect();
    assert!(events.len() > 50, "{events:?}");
    assert!(events.iter().all(|n| n.contains("_EVENT_")), "{events:?}");

    let mon = qemu::Procedure::DomainMonitorEvent.info();
    assert_eq!(mon.kind, ProcedureKind::Message);
    assert_eq!(mon.message, Some("qemu_domain_monitor_event_msg"));
    assert_eq!(
        qemu::Procedure::DomainMonitorCommand.info().ret,
        Some("qemu_domain_monitor_command_ret")
    );
    assert_eq!(
        lxc::Procedure::DomainOpenNamespace.info().args,
        Some("lxc_domain_open_namespace_args")
    );
    for p in keepalive::PROCEDURES {
        assert_eq!(p.kind, ProcedureKind::Message);
        assert_eq!(p.message, None);
    }
    assert_eq!(keepalive::Procedure::Ping.number(), 1);
    assert_eq!(keepalive::Procedure::Pong.name(), "KEEPALIVE_PROC_PONG");
}

fn call_types<C: Call>(
    _: C,
) -> (
    std::marker::PhantomData<C::Args>,
    std::marker::PhantomData<C::Ret>,
) {
    (std::marker::PhantomData, std::marker::PhantomData)
}

fn body_type<M: Message>(_: M) -> std::marker::PhantomData<M::Body> {
    std::marker::PhantomData
}

#[test]
fn marker_types() {
    use remote::procs;
    let (_, _): (
        std::marker::PhantomData<RemoteDomainGetInfoArgs>,
        std::marker::PhantomData<RemoteDomainGetInfoRet>,
    ) = call_types(procs::DomainGetInfo);
    let (_, _): (std::marker::PhantomData<()>, std::marker::PhantomData<()>) =
        call_types(procs::ConnectClose);
    let _: std::marker::PhantomData<RemoteDomainEventCallbackLifecycleMsg> =
        body_type(procs::DomainEventCallbackLifecycle);
    let _: std::marker::PhantomData<()> = body_type(keepalive::procs::Ping);
    assert_eq!(procs::ConnectOpen::PROCEDURE, 1);
    assert_eq!(procs::ConnectOpen::PROGRAM, remote::PROGRAM);
    assert_eq!(procs::ConnectOpen::VERSION, 1);
    assert_eq!(procs::ConnectOpen::NAME, "REMOTE_PROC_CONNECT_OPEN");
    assert_eq!(procs::ConnectOpen::STREAM, None);
    assert_eq!(
        procs::StorageVolUpload::STREAM,
        Some(StreamDirection::Write)
    );
    assert_eq!(qemu::procs::DomainMonitorCommand::PROGRAM, qemu::PROGRAM);
}

#[test]
fn api_enums_keep_unknown_values() {
    assert_eq!(api::DomainState::RUNNING, api::DomainState(1));
    assert_eq!(api::DomainState::RUNNING.name(), Some("VIR_DOMAIN_RUNNING"));
    assert_eq!(api::DomainState(1000).name(), None);
    assert_eq!(
        format!("{:?}", api::DomainState(1000)),
        "DomainState(unknown 1000)"
    );
    assert_eq!(
        format!("{:?}", api::DomainState::PAUSED),
        "VIR_DOMAIN_PAUSED(3)"
    );
    assert_eq!(api::ErrorNumber::ERR_NO_DOMAIN.0, 42);
    assert_eq!(api::ErrorDomain::QEMU.0, 10);
    assert_eq!(api::DomainEventID::LIFECYCLE.0, 0);
    assert_eq!(api::CPUCompareResult::ERROR.0, -1);
    let values: Vec<i32> = api::DomainState::known().iter().map(|(_, v)| v.0).collect();
    assert_eq!(values, vec![0, 1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn api_flags_are_bit_sets() {
    use api::DomainCreateFlags as F;
    let f = F::START_PAUSED | F::START_AUTODESTROY;
    assert!(f.contains(F::START_PAUSED));
    assert!(!f.contains(F::START_BYPASS_CACHE));
    assert_eq!(f.bits(), 0x3);
    assert_eq!(
        f.names().collect::<Vec<_>>(),
        vec!["VIR_DOMAIN_START_PAUSED", "VIR_DOMAIN_START_AUTODESTROY"]
    );
    let with_unknown = f | F(0x8000_0000);
    assert_eq!(with_unknown.unknown_bits(), 0x8000_0000);
    assert_eq!(
        format!("{with_unknown:?}"),
        "DomainCreateFlags(VIR_DOMAIN_START_PAUSED | VIR_DOMAIN_START_AUTODESTROY | 0x80000000)"
    );
    assert_eq!(format!("{:?}", F::empty()), "DomainCreateFlags(0x0)");
    // A flag defined by another enum's value, and bit 31.
    use api::ConnectGetAllDomainStatsFlags as S;
    assert_eq!(S::ACTIVE.bits(), 1);
    assert_eq!(S::ENFORCE_STATS.bits(), 0x8000_0000);
    // Types named *Types whose members are bit shifts are flag sets too.
    assert_eq!(
        (api::DomainStatsTypes::STATE | api::DomainStatsTypes::CPU_TOTAL).bits(),
        0x3
    );
    assert_eq!(api_qemu_flag(), 0x1, "virDomainQemuMonitorCommandFlags HMP");
}

fn api_qemu_flag() -> u32 {
    generated::api_qemu::DomainQemuMonitorCommandFlags::HMP.bits()
}

#[test]
fn decode_body_dispatches_to_the_generated_type() {
    use libvirt_proto::program::Body;
    let args = xdr::to_bytes(&RemoteConnectOpenArgs {
        name: Some("test:///default".into()),
        flags: 0,
    })
    .unwrap();
    let v = generated::decode_body(remote::PROGRAM, 1, Body::Args, &args)
        .expect("known procedure")
        .unwrap();
    assert_eq!(
        format!("{v:?}"),
        "RemoteConnectOpenArgs { name: Some(\"test:///default\"), flags: 0 }"
    );
    // What decodes encodes back to the same bytes.
    assert_eq!(v.encode().unwrap(), args);
    // CONNECT_OPEN's reply is empty: no bytes decode, any byte is trailing.
    assert!(generated::decode_body(remote::PROGRAM, 1, Body::Ret, &[])
        .unwrap()
        .is_ok());
    assert!(matches!(
        generated::decode_body(remote::PROGRAM, 1, Body::Ret, &[0, 0, 0, 0]),
        Some(Err(xdr::Error::TrailingBytes { count: 4 }))
    ));
    // A call has no message body; an event has no args.
    assert!(
        generated::decode_body(remote::PROGRAM, 1, Body::Message, &[])
            .unwrap()
            .is_err()
    );
    let ping = keepalive::Procedure::Ping.number();
    assert!(
        generated::decode_body(keepalive::PROGRAM, ping, Body::Message, &[])
            .unwrap()
            .is_ok()
    );
    // Unknown program or procedure.
    assert!(generated::decode_body(remote::PROGRAM, 100_000, Body::Args, &[]).is_none());
    assert!(generated::decode_body(7, 1, Body::Args, &[]).is_none());
    // Truncated input is a typed error, not a panic.
    assert!(matches!(
        generated::decode_body(remote::PROGRAM, 1, Body::Args, &args[..5]),
        Some(Err(xdr::Error::UnexpectedEof { .. }))
    ));
}
