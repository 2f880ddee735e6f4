//! `cargo xtask codegen-client [--check]`: the typed API of `libvirt-client`, generated.
//!
//! Input: the generated bindings of `libvirt-proto` (`libvirt-proto/src/generated/{remote,
//! qemu,lxc,admin}.rs`: procedure tables, marker types, the fields of every `*_args` / `*_ret`
//! / `*_msg` struct; `api*.rs`: the flag and enum types) and libvirt's API XML (which flags
//! type each C function's `flags` argument takes, and which enum or flags type its other
//! integer arguments take: `codeset` a `virKeycodeSet`, `types` `virDomainGuestInfoTypes`...,
//! named in the argument's documentation or through the `VIR_` constants it lists; the
//! migration procedures keep bare integers). Output: `libvirt-client/src/generated/`:
//! one file per program with a method per call on both clients, and `events.rs` with one
//! typed variant per event message.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::codegen::names::doc_escape;
use crate::util;

const OUT_DIR: &str = "libvirt-client/src/generated";
const PROTO_DIR: &str = "libvirt-proto/src/generated";

struct Program {
    module: &'static str,
    /// Method name prefix.
    prefix: &'static str,
    /// C function prefix candidates for `marker` (e.g. qemu: `virDomainQemu` + rest).
    api_file: &'static str,
}

const PROGRAMS: &[Program] = &[
    Program {
        module: "remote",
        prefix: "",
        api_file: "libvirt-api.xml",
    },
    Program {
        module: "qemu",
        prefix: "qemu_",
        api_file: "libvirt-qemu-api.xml",
    },
    Program {
        module: "lxc",
        prefix: "lxc_",
        api_file: "libvirt-lxc-api.xml",
    },
    Program {
        module: "admin",
        prefix: "admin_",
        api_file: "libvirt-admin-api.xml",
    },
];

#[derive(Debug, Clone)]
struct Row {
    name: String,
    number: u32,
    message: bool,
    stream: Option<String>,
    acl: Vec<String>,
}

#[derive(Debug, Clone)]
struct Marker {
    name: String,
    args: Option<String>,
    ret: Option<String>,
    body: Option<String>,
}

/// Parse the proto crate's generated module: rows, markers, struct fields.
struct ProtoModule {
    rows: Vec<Row>,
    markers: BTreeMap<String, Marker>,
    structs: HashMap<String, Vec<(String, String)>>,
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = s.find(start)? + start.len();
    let j = s[i..].find(end)? + i;
    Some(&s[i..j])
}

fn parse_proto(text: &str) -> Result<ProtoModule> {
    let mut rows = Vec::new();
    let table = between(
        text,
        "pub const PROCEDURES: &[crate::program::ProcedureInfo] = &[",
        "\n];",
    )
    .or_else(|| {
        between(
            text,
            "pub const PROCEDURES: &[crate::program::ProcedureInfo] = &[",
            "}];",
        )
    })
    .context("no PROCEDURES table")?;
    for chunk in table.split("crate::program::ProcedureInfo {").skip(1) {
        let l = chunk.split_whitespace().collect::<Vec<_>>().join(" ");
        let l = l.as_str();
        let name = between(l, ", name: \"", "\"")
            .context("row name")?
            .to_owned();
        let number: u32 = between(l, "number: ", ",").context("row number")?.parse()?;
        let message = l.contains("kind: crate::program::ProcedureKind::Message");
        let stream = if l.contains("stream: Some(crate::program::StreamDirection::Read)") {
            Some("Read".to_owned())
        } else if l.contains("stream: Some(crate::program::StreamDirection::Write)") {
            Some("Write".to_owned())
        } else {
            None
        };
        let acl = between(l, "acl: &[", "]")
            .unwrap_or("")
            .split(',')
            .map(|a| a.trim().trim_matches('"').to_owned())
            .filter(|a| !a.is_empty())
            .collect();
        rows.push(Row {
            name,
            number,
            message,
            stream,
            acl,
        });
    }
    let mut markers: BTreeMap<String, Marker> = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let l = line.trim();
        let ty_of = |prefix: &str, k: usize| -> Option<String> {
            let t = lines.get(i + k)?.trim().strip_prefix(prefix)?;
            let t = t.trim_end_matches(';').trim();
            if t == "()" {
                None
            } else {
                Some(t.trim_start_matches("super::").to_owned())
            }
        };
        if let Some(rest) = l.strip_prefix("impl crate::program::Call for ") {
            let m = rest.trim_end_matches(" {").to_owned();
            let e = markers.entry(m.clone()).or_insert(Marker {
                name: m,
                args: None,
                ret: None,
                body: None,
            });
            e.args = ty_of("type Args = ", 1);
            e.ret = ty_of("type Ret = ", 2);
        } else if let Some(rest) = l.strip_prefix("impl crate::program::Message for ") {
            let m = rest.trim_end_matches(" {").to_owned();
            let e = markers.entry(m.clone()).or_insert(Marker {
                name: m,
                args: None,
                ret: None,
                body: None,
            });
            e.body = ty_of("type Body = ", 1);
        }
    }
    // Marker name per row: the doc line above `pub struct X;` names the C procedure.
    let mut by_proc: HashMap<String, String> = HashMap::new();
    for w in lines.windows(3) {
        let doc = w[0].trim();
        let st = w[2].trim();
        if let (Some(d), Some(s)) = (
            doc.strip_prefix("/// `"),
            st.strip_prefix("pub struct ")
                .and_then(|s| s.strip_suffix(';')),
        ) {
            if let Some(name) = d.split('`').next() {
                by_proc.insert(name.to_owned(), s.to_owned());
            }
        }
    }
    let mut structs = HashMap::new();
    let mut cur: Option<(String, Vec<(String, String)>)> = None;
    for line in &lines {
        if let Some(rest) = line.strip_prefix("pub struct ") {
            if let Some(name) = rest.strip_suffix(" {") {
                cur = Some((name.to_owned(), Vec::new()));
                continue;
            }
        }
        if let Some((name, fields)) = &mut cur {
            if *line == "}" {
                structs.insert(name.clone(), std::mem::take(fields));
                cur = None;
                continue;
            }
            if let Some(f) = line.trim().strip_prefix("pub ") {
                if let Some((n, t)) = f.split_once(": ") {
                    let t = t.trim_end_matches(',');
                    fields.push((n.to_owned(), t.to_owned()));
                }
            }
        }
    }
    // Keep markers keyed by procedure name.
    let mut keyed = BTreeMap::new();
    for r in &rows {
        let m = by_proc
            .get(&r.name)
            .with_context(|| format!("no marker type for {}", r.name))?;
        let mk = markers
            .get(m)
            .with_context(|| format!("no Call/Message impl for {m}"))?;
        keyed.insert(r.name.clone(), mk.clone());
    }
    Ok(ProtoModule {
        rows,
        markers: keyed,
        structs,
    })
}

/// `DomainGetXmlDesc` -> `domain_get_xml_desc`.
fn snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Flag types (u32 newtypes) of an api module.
fn flag_types(text: &str) -> BTreeSet<String> {
    newtypes(text, "u32")
}

/// Enum types (i32 newtypes) of an api module.
fn enum_types(text: &str) -> BTreeSet<String> {
    newtypes(text, "i32")
}

fn newtypes(text: &str, inner: &str) -> BTreeSet<String> {
    let suffix = format!("(pub {inner});");
    text.lines()
        .filter_map(|l| {
            l.strip_prefix("pub struct ")?
                .strip_suffix(suffix.as_str())
                .map(str::to_owned)
        })
        .collect()
}

/// What libvirt's API XML says about functions' integer arguments.
#[derive(Default)]
struct ApiInfo {
    /// C function name (lower case) -> argument name -> its `info` text (`unsigned int` and
    /// `int` arguments only).
    args: HashMap<String, HashMap<String, String>>,
    /// `VIR_...` constant -> the enum/flags type declaring it (without `vir`).
    constants: HashMap<String, String>,
    /// C function name (lower case) -> its documentation (some list the valid flags there
    /// only, e.g. virInterfaceGetXMLDesc).
    docs: HashMap<String, String>,
    /// C function name (lower case) -> the name as written.
    names: HashMap<String, String>,
    /// C function name (lower case) -> its arguments' (name, C type).
    arg_types: HashMap<String, Vec<(String, String)>>,
}

impl ApiInfo {
    fn parse(xml: &str) -> ApiInfo {
        let mut out = ApiInfo::default();
        let mut rest = xml;
        while let Some(i) = rest.find("<function name='") {
            rest = &rest[i + 16..];
            let Some(j) = rest.find('\'') else { break };
            let name = rest[..j].to_ascii_lowercase();
            out.names.insert(name.clone(), rest[..j].to_owned());
            let end = rest.find("</function>").unwrap_or(rest.len());
            let mut body = &rest[..end];
            if let (Some(a), Some(b)) = (body.find("<info><![CDATA["), body.find("]]></info>")) {
                if a < b {
                    out.docs.insert(name.clone(), body[a + 15..b].to_owned());
                }
            }
            let mut args = HashMap::new();
            let mut arg_types = Vec::new();
            while let Some(k) = body.find("<arg name='") {
                body = &body[k + 11..];
                let Some(e) = body.find('\'') else { break };
                let arg = body[..e].to_owned();
                let after = &body[e..];
                if let Some(ty) = after
                    .strip_prefix("' type='")
                    .and_then(|t| t.split('\'').next())
                {
                    arg_types.push((arg.clone(), ty.to_owned()));
                }
                let int = after.starts_with("' type='unsigned int' info='")
                    || after.starts_with("' type='int' info='");
                if let (true, Some(k2)) = (int, after.find("info='")) {
                    let info = &after[k2 + 6..];
                    if let Some(e2) = info.find('\'') {
                        args.insert(arg, info[..e2].to_owned());
                    }
                }
            }
            out.args.insert(name.clone(), args);
            out.arg_types.insert(name, arg_types);
            rest = &rest[end..];
        }
        let mut rest = xml;
        while let Some(i) = rest.find("<enum name='") {
            rest = &rest[i + 12..];
            let Some(j) = rest.find('\'') else { break };
            let name = rest[..j].to_owned();
            let line_end = rest.find("/>").unwrap_or(rest.len());
            if let Some(t) = rest[..line_end].find(" type='vir") {
                let ty = &rest[t + 10..line_end];
                if let Some(e) = ty.find('\'') {
                    out.constants.insert(name, ty[..e].to_owned());
                }
            }
            rest = &rest[line_end..];
        }
        out
    }
}

/// Whether a generated api type is a set of flags (u32) or an enum (i32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypeKind {
    Flags,
    Enum,
}

/// Known api types: name (without `vir`) -> (module, kind).
type ApiTypes = BTreeMap<String, (&'static str, TypeKind)>;

/// The C functions a procedure's marker may be named after: `vir{marker}`, and in the qemu,
/// lxc and admin programs that module's spelling.
fn module_functions(prog: &Program, marker: &str) -> Vec<String> {
    let mut candidates = vec![format!("vir{marker}")];
    match prog.module {
        "qemu" => candidates.push(format!(
            "virDomainQemu{}",
            marker.trim_start_matches("Domain")
        )),
        "lxc" => candidates.push(format!(
            "virDomainLxc{}",
            marker.trim_start_matches("Domain")
        )),
        "admin" => candidates.push(format!("virAdm{marker}")),
        _ => {}
    }
    candidates
}

/// A procedure that carries file descriptors (`CALL_WITH_FDS` / `REPLY_WITH_FDS`): libvirt's
/// `.x` files do not say which (its client code for them is hand-written), so they are listed.
struct FdProcedure {
    /// The procedure's C name.
    name: &'static str,
    /// The method of `libvirt-client/src/fds.rs` that calls it with its descriptors typed, if
    /// any.
    fds_method: Option<&'static str>,
}

/// Every procedure that carries file descriptors. A plain generated method would be a trap (it
/// sends no descriptors and drops those the daemon passes back), so:
///
/// - when `fds.rs` has a typed method for the procedure (`open_graphics_fd` returns the
///   `OwnedFd`, `create_xml_with_files` takes `&[BorrowedFd]`...), no method is generated and
///   the doc of the generated `impl` block names that method instead: every procedure stays a
///   typed method of the clients, once, and a correct one. The generator checks that `fds.rs`
///   has that method and that it calls the procedure;
/// - otherwise the generated method passes descriptors itself: it takes `files:
///   Vec<OwnedFd>` (sent, then closed) and returns the descriptors of the reply with the
///   reply, through `call_with_fds`.
///
/// The test `fd_apis_are_listed` checks every API function taking descriptors is listed.
const FD_PROCEDURES: &[FdProcedure] = &[
    FdProcedure {
        name: "REMOTE_PROC_DOMAIN_OPEN_GRAPHICS",
        fds_method: Some("open_graphics"),
    },
    FdProcedure {
        name: "REMOTE_PROC_DOMAIN_CREATE_XML_WITH_FILES",
        fds_method: Some("create_xml_with_files"),
    },
    FdProcedure {
        name: "REMOTE_PROC_DOMAIN_CREATE_WITH_FILES",
        fds_method: Some("create_with_files"),
    },
    FdProcedure {
        name: "REMOTE_PROC_DOMAIN_OPEN_GRAPHICS_FD",
        fds_method: Some("open_graphics_fd"),
    },
    FdProcedure {
        name: "REMOTE_PROC_DOMAIN_FD_ASSOCIATE",
        fds_method: Some("fd_associate"),
    },
    FdProcedure {
        name: "LXC_PROC_DOMAIN_OPEN_NAMESPACE",
        fds_method: Some("lxc_open_namespace"),
    },
    // virDomainQemuMonitorCommandWithFiles: descriptors go both ways; fds.rs has no method.
    FdProcedure {
        name: "QEMU_PROC_DOMAIN_MONITOR_COMMAND_WITH_FILES",
        fds_method: None,
    },
];

/// The `fds.rs` method standing in for a procedure (see [`FD_PROCEDURES`]).
struct FdStandIn {
    name: String,
    number: u32,
    method: &'static str,
}

/// Procedures whose public C function is not named after them (see [`api_function`]).
const FUNCTION_EXCEPTIONS: &[(&str, &str)] = &[
    // The callback-id form of the domain event (de)registration (libvirt 1.2.1+), which
    // virConnectDomainEventRegisterAny / DeregisterAny use when the daemon has it.
    (
        "REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY",
        "virConnectDomainEventRegisterAny",
    ),
    (
        "REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY",
        "virConnectDomainEventDeregisterAny",
    ),
    // libvirt-qemu spells these virConnectDomainQemu..., not virDomainQemu...
    (
        "QEMU_PROC_CONNECT_DOMAIN_MONITOR_EVENT_REGISTER",
        "virConnectDomainQemuMonitorEventRegister",
    ),
    (
        "QEMU_PROC_CONNECT_DOMAIN_MONITOR_EVENT_DEREGISTER",
        "virConnectDomainQemuMonitorEventDeregister",
    ),
];

/// The public C function (as spelled in the API XML, lower-cased key into [`ApiInfo`]) a
/// procedure implements, following libvirt's naming: `REMOTE_PROC_DOMAIN_GET_INFO` ->
/// `virDomainGetInfo`, `QEMU_PROC_DOMAIN_MONITOR_COMMAND` -> `virDomainQemuMonitorCommand`,
/// `LXC_PROC_DOMAIN_OPEN_NAMESPACE` -> `virDomainLxcOpenNamespace`, `ADMIN_PROC_X` ->
/// `virAdmX`; acronyms match whatever their case (`virDomainGetXMLDesc`), and
/// [`FUNCTION_EXCEPTIONS`] names the rest. `None` for procedures with no public function
/// (authentication, the migration steps of `libvirt_internal.h`, `CONNECT_SUPPORTS_FEATURE`).
fn api_function(prog: &Program, proc_name: &str, marker: &str, api: &ApiInfo) -> Option<String> {
    let candidates = match FUNCTION_EXCEPTIONS.iter().find(|(p, _)| *p == proc_name) {
        Some((_, f)) => vec![(*f).to_owned()],
        None => module_functions(prog, marker),
    };
    candidates
        .iter()
        .map(|c| c.to_ascii_lowercase())
        .find(|c| api.names.contains_key(c))
}

/// libvirt's description of a function (its `<info>`) as rustdoc paragraphs, one line each
/// (joined by `\n///\n/// `): lines of a paragraph are joined, except list items (`- `,
/// `* `, `1. `), which keep their own lines; indentation is dropped (no code blocks, hence no
/// doctests); bare URLs become autolinks and C names (`VIR_...`, `vir...`) code; brackets,
/// angle brackets, backticks, `*`, `#` and `&` are escaped so rustdoc reads no links, HTML or
/// emphasis into them.
fn rustdoc_paragraphs(info: &str) -> Vec<String> {
    let mut paragraphs = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let flush = |cur: &mut Vec<String>, paragraphs: &mut Vec<String>| {
        if !cur.is_empty() {
            paragraphs.push(cur.join("\n/// "));
            cur.clear();
        }
    };
    for line in info.lines() {
        let t = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if t.is_empty() {
            flush(&mut cur, &mut paragraphs);
            continue;
        }
        let item = t.starts_with("- ")
            || t.starts_with("* ")
            || t.split_once(". ")
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        let text = doc_escape(&t);
        match cur.last_mut() {
            Some(last) if !item => {
                last.push(' ');
                last.push_str(&text);
            }
            _ => {
                // A list item's marker stays a marker.
                let text = if item {
                    let (marker, rest) = t.split_once(' ').unwrap_or((&t, ""));
                    format!("{marker} {}", doc_escape(rest))
                } else {
                    text
                };
                cur.push(text);
            }
        }
    }
    flush(&mut cur, &mut paragraphs);
    paragraphs
}

/// Whether a C function registers or deregisters a callback for events the daemon sends as
/// messages (`virConnectDomainEventRegisterAny`, `virConnectRegisterCloseCallback`, ...): it
/// takes a callback (a `vir...Callback` or `vir...Func` type, `virFreeCallback` aside) or the
/// `callbackID` a registration returned.
fn registers_events(api: &ApiInfo, function: &str) -> bool {
    api.arg_types.get(function).is_some_and(|args| {
        args.iter().any(|(n, t)| {
            n == "callbackID"
                || (t != "virFreeCallback" && (t.ends_with("Callback") || t.ends_with("Func")))
        })
    })
}

/// The C functions a procedure's marker may document.
fn api_functions(prog: &Program, marker: &str) -> Vec<String> {
    let mut candidates = module_functions(prog, marker);
    // CONNECT_OPEN carries virConnectOpenAuth's flags.
    if !matches!(prog.module, "qemu" | "lxc" | "admin") && marker == "ConnectOpen" {
        candidates.push("virConnectOpenAuth".to_owned());
    }
    candidates
}

/// The typed api type an integer argument takes, from its documentation: the first known
/// type it names (`bitwise-OR of virDomainModificationImpact`, `one of
/// virStorageVolWipeAlgorithm`), else the type declaring the first `VIR_` constant it lists
/// (`VIR_INTERFACE_XML_INACTIVE`); with `constants_only`, only the latter. `flags` arguments
/// only take flag types; other arguments take a type through its constants only when they
/// list several, all of that type (`target`'s `VIR_NODE_SUSPEND_TARGET_MEM`, `_DISK`,
/// `_HYBRID`; `cpuNum`'s lone `VIR_NODE_CPU_STATS_ALL_CPUS` is a special value of a number).
fn arg_type(
    info: &str,
    arg: &str,
    api: &ApiInfo,
    types: &ApiTypes,
    constants_only: bool,
) -> Option<(String, TypeKind)> {
    let fits = |t: &str| {
        types
            .get(t)
            .filter(|(_, k)| arg != "flags" || *k == TypeKind::Flags)
            .map(|(m, k)| (format!("libvirt_proto::generated::{m}::{t}"), *k))
    };
    let words: Vec<&str> = info
        .split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
        .collect();
    words
        .iter()
        .filter(|_| !constants_only)
        .filter_map(|w| w.strip_prefix("vir"))
        .find_map(fits)
        .or_else(|| {
            let declaring: Vec<&String> = words
                .iter()
                .filter(|w| w.starts_with("VIR_"))
                .filter_map(|w| api.constants.get(*w))
                .collect();
            let one_type = declaring.len() > 1 && declaring.iter().all(|t| *t == declaring[0]);
            words
                .iter()
                .filter(|_| arg == "flags" || one_type)
                .filter(|w| w.starts_with("VIR_"))
                .filter_map(|w| api.constants.get(*w))
                .find_map(|t| fits(t))
        })
}

/// The documentation of C function `function`'s (lower case) integer argument that a
/// generated `*_args` field `field` carries: the argument of the same name (`r#type` is C's
/// `type`), else the one whose name differs only in case and underscores (`usage_type`,
/// `usageType`, when only one does).
fn c_arg_info<'a>(api: &'a ApiInfo, function: &str, field: &str) -> Option<&'a str> {
    let args = api.args.get(function)?;
    let name = field.strip_prefix("r#").unwrap_or(field);
    let squash = |s: &str| s.replace('_', "").to_ascii_lowercase();
    let info = args.get(name).or_else(|| {
        let mut same = args.iter().filter(|(a, _)| squash(a) == squash(name));
        let (_, one) = same.next()?;
        same.next().is_none().then_some(one)
    })?;
    Some(info.as_str())
}

/// The api types (without `vir`) a documentation text names as words (`virDomainMetadataType`).
fn named_types<'a>(info: &'a str, types: &ApiTypes) -> BTreeSet<&'a str> {
    info.split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
        .filter_map(|w| w.strip_prefix("vir"))
        .filter(|t| types.contains_key(*t))
        .collect()
}

/// The typed flags for a procedure's `flags` argument, from the C function's documentation
/// ("bitwise-OR of virDomainModificationImpact"), if it names a known flags type.
fn flags_type(
    prog: &Program,
    marker: &str,
    infos: &HashMap<String, String>,
    flags: &BTreeMap<String, &'static str>,
) -> Option<String> {
    for c in module_functions(prog, marker) {
        let Some(info) = infos.get(&c.to_ascii_lowercase()) else {
            continue;
        };
        for word in info.split(|ch: char| !ch.is_ascii_alphanumeric()) {
            if let Some(t) = word.strip_prefix("vir") {
                if let Some(module) = flags.get(t) {
                    return Some(format!("libvirt_proto::generated::{module}::{t}"));
                }
            }
        }
    }
    None
}

struct Method {
    /// The async method's doc (libvirt's whole description).
    doc: String,
    /// The blocking method's doc (the description's first paragraph, pointing to the async
    /// method for the rest).
    blocking_doc: String,
    name: String,
    marker_path: String,
    params: Vec<(String, String)>,
    /// Expression building the args value.
    args_expr: String,
    ret_ty: String,
    /// The single field of the reply returned instead of the struct.
    ret_map: Option<String>,
    stream: bool,
    /// Passes descriptors both ways (`call_with_fds`).
    fds: bool,
    /// Its integer arguments (other than `flags`) typed from libvirt's docs, as listed in
    /// [`TYPED_ARGS_FILE`].
    typed_args: Vec<String>,
}

fn qualify(ty: &str, module: &str) -> String {
    // Types in the proto module are bare names or paths through `super::`.
    let t = ty.replace("super::", "libvirt_proto::generated::");
    let _ = module;
    t
}

fn methods(
    prog: &Program,
    m: &ProtoModule,
    infos: &HashMap<String, String>,
    flags: &BTreeMap<String, &'static str>,
    api: &ApiInfo,
    types: &ApiTypes,
    stand_ins: &mut Vec<FdStandIn>,
) -> Vec<Method> {
    let mut out = Vec::new();
    for r in &m.rows {
        if r.message {
            continue;
        }
        let fd = FD_PROCEDURES.iter().find(|f| f.name == r.name);
        if let Some(method) = fd.and_then(|f| f.fds_method) {
            stand_ins.push(FdStandIn {
                name: r.name.clone(),
                number: r.number,
                method,
            });
            continue;
        }
        let mk = &m.markers[&r.name];
        let modpath = format!("libvirt_proto::generated::{}", prog.module);
        let name = format!("{}{}", prog.prefix, snake(&mk.name));
        let mut params = Vec::new();
        let mut typed_list = Vec::new();
        let args_expr = match &mk.args {
            None => "()".to_owned(),
            Some(a) => match m.structs.get(a) {
                Some(fields) => {
                    let ft = flags_type(prog, &mk.name, infos, flags);
                    // Migration procedures keep their signatures (migrate.rs builds on them).
                    let typed_args = !mk.name.starts_with("DomainMigrate");
                    let fns = api_functions(prog, &mk.name);
                    let mut inits = Vec::new();
                    for (n, t) in fields {
                        if n == "flags" && t == "u32" {
                            if let Some(ft) = &ft {
                                params.push((n.clone(), ft.clone()));
                                inits.push(format!("{n}: {n}.bits()"));
                                continue;
                            }
                        }
                        let typed = (typed_args && (t == "u32" || t == "i32"))
                            .then(|| {
                                fns.iter().find_map(|f| {
                                    let f = f.to_ascii_lowercase();
                                    let info = c_arg_info(api, &f, n)?;
                                    // An argument naming several api types is left bare.
                                    if n != "flags" && named_types(info, types).len() > 1 {
                                        return None;
                                    }
                                    arg_type(info, n, api, types, false).or_else(|| {
                                        // Flags the argument says are a bitwise OR of, but
                                        // listed in the function's own documentation only.
                                        let ored = info.contains("-OR")
                                            && !info.contains("unused")
                                            && !info.contains("not used");
                                        let doc =
                                            api.docs.get(&f).filter(|_| n == "flags" && ored)?;
                                        arg_type(doc, n, api, types, true)
                                    })
                                })
                            })
                            .flatten();
                        if let Some((ty, kind)) = typed {
                            let value = match kind {
                                TypeKind::Flags => format!("{n}.bits()"),
                                TypeKind::Enum => format!("{n}.0"),
                            };
                            let native = if kind == TypeKind::Flags {
                                "u32"
                            } else {
                                "i32"
                            };
                            if n != "flags" {
                                typed_list.push(format!(
                                    "{}::{name}({n}: {t}) -> {}",
                                    prog.module,
                                    ty.trim_start_matches("libvirt_proto::generated::")
                                ));
                            }
                            params.push((n.clone(), ty));
                            inits.push(if t == native {
                                format!("{n}: {value}")
                            } else {
                                // The wire field's signedness differs from the C type's.
                                format!("{n}: {value} as {t}")
                            });
                            continue;
                        }
                        params.push((n.clone(), qualify(t, prog.module)));
                        inits.push(n.clone());
                    }
                    format!("{modpath}::{a} {{ {} }}", inits.join(", "))
                }
                None => {
                    params.push(("args".to_owned(), format!("{modpath}::{a}")));
                    "args".to_owned()
                }
            },
        };
        let (ret_ty, ret_map) = match &mk.ret {
            None => ("()".to_owned(), None),
            Some(rt) => match m.structs.get(rt) {
                Some(fields) if fields.len() == 1 => {
                    let (n, t) = &fields[0];
                    (qualify(t, prog.module), Some(n.clone()))
                }
                _ => (format!("{modpath}::{rt}"), None),
            },
        };
        let stream = r.stream.is_some();
        let function = api_function(prog, &r.name, &mk.name, api);
        let description = function
            .as_ref()
            .and_then(|f| api.docs.get(f))
            .map(|d| rustdoc_paragraphs(d))
            .unwrap_or_default();
        let mut doc = format!(
            "`{}` ({}): calls the daemon's procedure of that name",
            r.name, r.number
        );
        match &function {
            Some(f) => {
                let _ = write!(doc, " (libvirt's `{}`).", api.names[f]);
            }
            None => doc.push('.'),
        }
        if fd.is_some() {
            doc.push_str(
                "\n///\n/// Carries file descriptors: `files` are passed to the daemon (then closed; unix \
                 socket connections only, else [`crate::Error::FdPassingUnavailable`] before \
                 anything is sent) and the descriptors the daemon passes back come with the reply.",
            );
        }
        if let Some(dir) = &r.stream {
            let _ = write!(
                doc,
                "\n///\n/// Opens a stream ({}): returns it with the reply.",
                if crate::codegen::rpc::BOTH_WAYS_STREAMS.contains(&r.name.as_str()) {
                    "data flows both ways: read the guest's output from it and write input \
                     to it; libvirt annotates it `@readstream`, which the client does not enforce"
                } else if dir == "Read" {
                    "the daemon sends data"
                } else {
                    "the client sends data"
                }
            );
        }
        let (full, blocking) = match description.split_first() {
            None => (doc.clone(), doc),
            Some((first, rest)) => {
                let mut full = description.join("\n///\n/// ");
                let _ = write!(full, "\n///\n/// {doc}");
                let mut blocking = format!("{first}\n///\n/// {doc}");
                if !rest.is_empty() {
                    let _ = write!(
                        blocking,
                        "\n///\n/// libvirt's full description: [`crate::Client::{name}`]."
                    );
                }
                (full, blocking)
            }
        };
        out.push(Method {
            doc: full,
            blocking_doc: blocking,
            name,
            marker_path: format!("{modpath}::procs::{}", mk.name),
            params,
            args_expr,
            ret_ty,
            ret_map,
            stream,
            fds: fd.is_some(),
            typed_args: typed_list,
        });
    }
    out
}

fn emit_methods(
    out: &mut String,
    module: &str,
    ms: &[Method],
    stand_ins: &[FdStandIn],
    asynchronous: bool,
) {
    let (client, stream_ty, aw) = if asynchronous {
        ("crate::Client", "crate::stream::AsyncVirStream", ".await")
    } else {
        (
            "crate::blocking::Client",
            "crate::stream::BlockingVirStream",
            "",
        )
    };
    let _ = writeln!(
        out,
        "/// Every call of the {module} program, one generated method per procedure."
    );
    if !stand_ins.is_empty() {
        let _ = writeln!(
            out,
            "///\n/// The procedures that carry file descriptors are not generated here (a plain call \
             would send none and drop those the daemon passes back); their typed methods are \
             in [`crate::fds`]:"
        );
        let _ = writeln!(out, "///");
        for f in stand_ins {
            let _ = writeln!(
                out,
                "/// - `{}` ({}): [`{m}`]({client}::{m})",
                f.name,
                f.number,
                m = f.method
            );
        }
    }
    let _ = writeln!(out, "impl {client} {{");
    for m in ms {
        let params: String = m
            .params
            .iter()
            .map(|(n, t)| format!(", {n}: {t}"))
            .collect();
        let kw = if asynchronous { "async fn" } else { "fn" };
        let doc = if asynchronous {
            &m.doc
        } else {
            &m.blocking_doc
        };
        let _ = writeln!(out, "/// {doc}");
        if m.fds {
            let fds = "Vec<std::os::fd::OwnedFd>";
            let _ = writeln!(
                out,
                "pub {kw} {}(&self{params}, files: {fds}) -> Result<({}, {fds}), crate::Error> {{",
                m.name, m.ret_ty
            );
            let field = m
                .ret_map
                .as_deref()
                .map(|f| format!(".{f}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "self.call_with_fds::<{}>(&{}, files){aw}.map(|(r, fds)| (r{field}, fds))\n}}",
                m.marker_path, m.args_expr
            );
        } else if m.stream && m.ret_ty == "()" {
            let _ = writeln!(
                out,
                "pub {kw} {}(&self{params}) -> Result<{stream_ty}, crate::Error> {{",
                m.name
            );
            let _ = writeln!(
                out,
                "self.call_stream::<{}>(&{}){aw}.map(|((), s)| s)\n}}",
                m.marker_path, m.args_expr
            );
        } else if m.stream {
            let _ = writeln!(
                out,
                "pub {kw} {}(&self{params}) -> Result<({}, {stream_ty}), crate::Error> {{",
                m.name, m.ret_ty
            );
            let map = match &m.ret_map {
                Some(f) => format!(".map(|(r, s)| (r.{f}, s))"),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "self.call_stream::<{}>(&{}){aw}{map}\n}}",
                m.marker_path, m.args_expr
            );
        } else {
            let _ = writeln!(
                out,
                "pub {kw} {}(&self{params}) -> Result<{}, crate::Error> {{",
                m.name, m.ret_ty
            );
            let map = match &m.ret_map {
                Some(f) => format!(".map(|r| r.{f})"),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "self.call::<{}>(&{}){aw}{map}\n}}",
                m.marker_path, m.args_expr
            );
        }
    }
    let _ = writeln!(out, "}}\n");
}

fn header(inputs: &str) -> String {
    format!(
        "// @generated by `cargo xtask codegen-client` (xtask/src/codegen_client.rs) from {inputs}.\n\
         // Do not edit: change the generator or its input and run `cargo xtask codegen-client`.\n\n"
    )
}

fn generate(root: &Path, protocol_dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    let mut flags: BTreeMap<String, &'static str> = BTreeMap::new();
    let mut types: ApiTypes = BTreeMap::new();
    for module in ["api", "api_qemu", "api_lxc", "api_admin"] {
        let text = std::fs::read_to_string(root.join(PROTO_DIR).join(format!("{module}.rs")))?;
        for f in flag_types(&text) {
            flags.entry(f.clone()).or_insert(module);
            types.entry(f).or_insert((module, TypeKind::Flags));
        }
        for e in enum_types(&text) {
            types.entry(e).or_insert((module, TypeKind::Enum));
        }
    }
    let mut events: Vec<(String, String, u32, String, String)> = Vec::new();
    let mut typed_list = Vec::new();
    for prog in PROGRAMS {
        let text =
            std::fs::read_to_string(root.join(PROTO_DIR).join(format!("{}.rs", prog.module)))
                .with_context(|| format!("reading {PROTO_DIR}/{}.rs", prog.module))?;
        let m = parse_proto(&text)?;
        let xml = std::fs::read_to_string(protocol_dir.join("api").join(prog.api_file))
            .with_context(|| format!("reading {}", prog.api_file))?;
        let api = ApiInfo::parse(&xml);
        let infos: HashMap<String, String> = api
            .args
            .iter()
            .filter_map(|(f, a)| Some((f.clone(), a.get("flags")?.clone())))
            .collect();
        let mut stand_ins = Vec::new();
        let ms = methods(prog, &m, &infos, &flags, &api, &types, &mut stand_ins);
        typed_list.extend(ms.iter().flat_map(|m| m.typed_args.iter().cloned()));
        check_stand_ins(root, &m, &stand_ins)?;
        let mut s = header(&format!(
            "{PROTO_DIR}/{}.rs and api/{}",
            prog.module, prog.api_file
        ));
        let _ = writeln!(
            s,
            "//! Every call of the {} program as a method of both clients.\n",
            prog.module
        );
        let _ = writeln!(
            s,
            "#![allow(clippy::too_many_arguments)]\n\n#[allow(unused_imports)]\nuse libvirt_proto::generated::{}::*;\n",
            prog.module
        );
        s.push_str("#[cfg(feature = \"async\")]\n");
        emit_methods(&mut s, prog.module, &ms, &stand_ins, true);
        s.push_str("#[cfg(feature = \"blocking\")]\n");
        emit_methods(&mut s, prog.module, &ms, &stand_ins, false);
        files.insert(format!("{}.rs", prog.module), rustfmt(&s)?);
        if prog.module == "remote" {
            files.insert(
                format!("../../tests/generated/{READ_ONLY_FILE}"),
                rustfmt(&read_only_calls(&m, &event_registrations(prog, &m, &api)))?,
            );
        }
        if prog.module == "remote" || prog.module == "qemu" {
            for r in &m.rows {
                let mk = &m.markers[&r.name];
                if let (true, Some(body)) = (r.message, &mk.body) {
                    let variant = if prog.module == "qemu" {
                        format!("Qemu{}", mk.name)
                    } else {
                        mk.name.clone()
                    };
                    events.push((
                        variant,
                        prog.module.to_owned(),
                        r.number,
                        body.clone(),
                        r.name.clone(),
                    ));
                }
            }
        }
    }
    let mut s = header(&format!("{PROTO_DIR}/remote.rs and qemu.rs"));
    s.push_str("//! Every event message of the remote and qemu programs as a typed value.\n\n");
    s.push_str("/// A decoded event: one variant per event message (`VIR_NET_MESSAGE` procedure) of the remote and qemu programs, carrying the procedure's `*_msg` struct.\n");
    s.push_str("#[derive(Debug, Clone, PartialEq)]\n#[non_exhaustive]\npub enum TypedEvent {\n");
    for (v, module, number, body, name) in &events {
        let _ = writeln!(
            s,
            "/// `{name}` ({number}).\n{v}(libvirt_proto::generated::{module}::{body}),"
        );
    }
    s.push_str("}\n\nimpl TypedEvent {\n/// Decode a server message; `Ok(None)` for a procedure that is not an event of these programs.\npub fn decode(m: &libvirt_proto::ServerMessage) -> Result<Option<TypedEvent>, libvirt_proto::Error> {\nSelf::decode_with(m, xdr::DecodeOptions::new())\n}\n\n/// [`TypedEvent::decode`] with [`xdr::DecodeOptions`] (e.g. [`xdr::Utf8::Lossy`]).\npub fn decode_with(m: &libvirt_proto::ServerMessage, options: xdr::DecodeOptions) -> Result<Option<TypedEvent>, libvirt_proto::Error> {\n");
    s.push_str("Ok(Some(match (m.program, m.procedure) {\n");
    for (v, module, number, _, _) in &events {
        let _ = writeln!(
            s,
            "(libvirt_proto::generated::{module}::PROGRAM, {number}) => TypedEvent::{v}(m.decode_with(options)?),"
        );
    }
    s.push_str("_ => return Ok(None),\n}))\n}\n\n/// The C name of the event's procedure.\npub fn procedure_name(&self) -> &'static str {\nmatch self {\n");
    for (v, _, _, _, name) in &events {
        let _ = writeln!(s, "TypedEvent::{v}(_) => \"{name}\",");
    }
    s.push_str("}\n}\n}\n");
    files.insert("events.rs".to_owned(), rustfmt(&s)?);
    files.insert(TYPED_ARGS_FILE.to_owned(), typed_args_list(typed_list));
    let mut m = header("the list of generated files");
    m.push_str("//! Generated typed API: a method per procedure, typed events.\n\n");
    m.push_str("mod admin;\npub mod events;\nmod lxc;\nmod qemu;\nmod remote;\n");
    files.insert("mod.rs".to_owned(), rustfmt(&m)?);
    Ok(files)
}

/// The generated list of integer arguments (other than `flags`) typed from libvirt's docs.
const TYPED_ARGS_FILE: &str = "typed_args.txt";

fn typed_args_list(mut typed: Vec<String>) -> String {
    typed.sort();
    typed.dedup();
    let mut s = String::from(
        "# @generated by `cargo xtask codegen-client` (xtask/src/codegen_client.rs); do not edit.\n\
         # Integer arguments (other than `flags`) of the generated methods that take a typed\n\
         # libvirt_proto api enum or flag set, because their C function's documentation names\n\
         # exactly one: program::method(argument: wire type) -> type. Both clients, sorted.\n",
    );
    for t in typed {
        s.push_str(&t);
        s.push('\n');
    }
    s
}

/// `fds.rs` has each method standing in for a generated one, and it calls that procedure.
fn check_stand_ins(root: &Path, m: &ProtoModule, stand_ins: &[FdStandIn]) -> Result<()> {
    if stand_ins.is_empty() {
        return Ok(());
    }
    let path = root.join("libvirt-client/src/fds.rs");
    let fds =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    for f in stand_ins {
        let marker = format!("procs::{}>", m.markers[&f.name].name);
        let method = format!("fn {}(", f.method);
        if !fds.contains(&method) || !fds.contains(&marker) {
            bail!(
                "{}: FD_PROCEDURES names `{}` of libvirt-client/src/fds.rs, which has no `{method}` \
                 calling `{marker}`; fix the table or fds.rs",
                f.name,
                f.method
            );
        }
    }
    Ok(())
}

const READ_ONLY_FILE: &str = "read_only_calls.rs";

/// Whether a procedure only reads, judged by its `@acl` rules: every unconditional rule (and
/// every rule that applies when no flag is set, `!FLAG`) needs `read`, `getattr` or a
/// `search_*` permission. Events are left out by their kind, not their names: the messages
/// the daemon sends, and the calls (de)registering for them (`registers_events`: their C
/// function takes a callback), which change what the daemon sends on the connection;
/// `REMOTE_PROC_DOMAIN_GET_PERF_EVENTS` is a plain read. So are opening and closing the
/// connection, and authentication, and streams.
fn is_read_only(r: &Row, event_registration: &BTreeSet<String>) -> bool {
    if r.acl.is_empty() || r.message || r.stream.is_some() {
        return false;
    }
    if event_registration.contains(&r.name) {
        return false;
    }
    let skip = ["CONNECT_OPEN", "CONNECT_CLOSE", "AUTH_"];
    if skip.iter().any(|k| r.name.contains(k)) {
        return false;
    }
    r.acl.iter().all(|rule| {
        let parts: Vec<&str> = rule.split(':').collect();
        let perm = parts.get(1).copied().unwrap_or("");
        let applies = match parts.get(2) {
            None => true,
            Some(cond) => cond.starts_with('!'),
        };
        !applies || perm == "read" || perm == "getattr" || perm.starts_with("search_")
    })
}

/// The procedures of a program that (de)register for events (see [`registers_events`]).
fn event_registrations(prog: &Program, m: &ProtoModule, api: &ApiInfo) -> BTreeSet<String> {
    m.rows
        .iter()
        .filter(|r| {
            api_function(prog, &r.name, &m.markers[&r.name].name, api)
                .is_some_and(|f| registers_events(api, &f))
        })
        .map(|r| r.name.clone())
        .collect()
}

/// The test that calls every read-only procedure of the remote program once.
fn read_only_calls(m: &ProtoModule, event_registration: &BTreeSet<String>) -> String {
    let mut s = header(&format!("{PROTO_DIR}/remote.rs (PROCEDURES @acl rules)"));
    s.push_str(
        "//! Calls every read-only procedure of the remote program once (see `is_read_only` in the\n\
         //! generator), with fixture objects for object arguments and defaults elsewhere.\n\n\
         #![allow(clippy::needless_update)]\n\n\
         use libvirt_client::libvirt_proto::generated::remote::{self, procs};\n\n",
    );
    let ro: Vec<&Row> = m
        .rows
        .iter()
        .filter(|r| is_read_only(r, event_registration))
        .collect();
    s.push_str("/// The read-only procedures (C names).\npub const READ_ONLY: &[&str] = &[\n");
    for r in &ro {
        let _ = writeln!(s, "\"{}\",", r.name);
    }
    s.push_str("];\n\n/// Call each once; collect (name, outcome).\npub async fn call_all(c: &libvirt_client::Client, f: &super::Fixtures) -> Vec<(&'static str, Result<(), libvirt_client::Error>)> {\nlet mut out = Vec::new();\n");
    for r in &ro {
        let mk = &m.markers[&r.name];
        let args = match &mk.args {
            None => "()".to_owned(),
            Some(a) => match m.structs.get(a) {
                Some(fields) => {
                    let mut inits = Vec::new();
                    for (n, t) in fields {
                        let e = match (n.as_str(), t.as_str()) {
                            (_, "RemoteNonnullDomain") => "f.dom.clone()",
                            (_, "RemoteDomain") => "Some(f.dom.clone())",
                            (_, "RemoteNonnullNetwork") => "f.net.clone()",
                            (_, "RemoteNonnullStoragePool") => "f.pool.clone()",
                            (_, "RemoteNonnullInterface") => "f.iface.clone()",
                            (_, "RemoteNonnullNodeDevice") => "f.dev.clone()",
                            ("need_results", _) => "1",
                            (n, "i32" | "u32")
                                if n.starts_with("max") && !n.starts_with("maxlen") =>
                            {
                                "16"
                            }
                            _ => continue,
                        };
                        inits.push(format!("{n}: {e}"));
                    }
                    inits.push("..Default::default()".to_owned());
                    format!("remote::{a} {{ {} }}", inits.join(", "))
                }
                None => "Default::default()".to_owned(),
            },
        };
        let _ = writeln!(
            s,
            "out.push((\"{}\", c.call::<procs::{}>(&{args}).await.map(|_| ())));",
            r.name, mk.name
        );
    }
    s.push_str("out\n}\n");
    s
}

pub(crate) fn rustfmt(text: &str) -> Result<String> {
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2021"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running rustfmt")?;
    let mut stdin = child.stdin.take().context("rustfmt stdin")?;
    let input = text.to_owned();
    let w = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output()?;
    w.join()
        .map_err(|_| anyhow::anyhow!("rustfmt writer panicked"))??;
    if !out.status.success() {
        let dump = std::env::temp_dir().join("xtask-codegen-client-unformatted.rs");
        std::fs::write(&dump, text).ok();
        bail!(
            "rustfmt failed (input saved to {}): {}",
            dump.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

pub fn cmd(args: &[&str]) -> Result<()> {
    let check = match args {
        [] => false,
        ["--check"] => true,
        _ => bail!("usage: cargo xtask codegen-client [--check]"),
    };
    let root = util::workspace_root();
    let protocol_dir = crate::codegen::protocol_dir(None)?;
    let files = generate(&root, &protocol_dir)?;
    let out_dir = root.join(OUT_DIR);
    let mut stale = Vec::new();
    for (name, text) in &files {
        let path = out_dir.join(name);
        let old = std::fs::read_to_string(&path).ok();
        if old.as_deref() != Some(text.as_str()) {
            if check {
                stale.push(name.clone());
            } else {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&path, text)?;
                println!("codegen-client: wrote {OUT_DIR}/{name}");
            }
        }
    }
    if !stale.is_empty() {
        bail!(
            "generated client code is stale ({}); run `cargo xtask codegen-client`",
            stale.join(", ")
        );
    }
    println!(
        "codegen-client: {} files in {OUT_DIR} up to date",
        files.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The remote program's rows as the generator makes them now (not as committed).
    fn remote_module(protocol_dir: &Path) -> ProtoModule {
        let spec = crate::codegen::rpc::MODULES
            .iter()
            .find(|m| m.module == "remote")
            .unwrap();
        let (code, _) = crate::codegen::rpc::generate(protocol_dir, spec).unwrap();
        parse_proto(&rustfmt(&code).unwrap()).unwrap()
    }

    /// Integer arguments other than `flags` take the api enum their C argument's
    /// documentation names (`r#type` is C's `type`), a lone special
    /// constant does not type a number, and the generated list and methods agree.
    #[test]
    fn integer_arguments_take_named_api_enums() {
        let dir = crate::codegen::protocol_dir(None).unwrap();
        let xml = std::fs::read_to_string(dir.join("api").join("libvirt-api.xml")).unwrap();
        let api = ApiInfo::parse(&xml);
        let info = |f: &str, n: &str| c_arg_info(&api, &f.to_ascii_lowercase(), n);
        assert_eq!(
            info("virDomainSetMetadata", "r#type"),
            Some("type of metadata, from virDomainMetadataType")
        );
        assert_eq!(
            info("virSecretLookupByUsage", "usage_type"),
            Some("the type of secret usage")
        );
        assert_eq!(info("virDomainSetMetadata", "nope"), None);

        let root = util::workspace_root();
        let mut types = ApiTypes::new();
        let text = std::fs::read_to_string(root.join(PROTO_DIR).join("api.rs")).unwrap();
        for f in flag_types(&text) {
            types.insert(f, ("api", TypeKind::Flags));
        }
        for e in enum_types(&text) {
            types.insert(e, ("api", TypeKind::Enum));
        }
        let ty = |f: &str, n: &str| {
            arg_type(info(f, n).unwrap(), n, &api, &types, false).map(|(t, k)| {
                let t = t.trim_start_matches("libvirt_proto::generated::api::");
                (t.to_owned(), k)
            })
        };
        let e = |t: &str| Some((t.to_owned(), TypeKind::Enum));
        assert_eq!(
            ty("virDomainSetMetadata", "r#type"),
            e("DomainMetadataType")
        );
        assert_eq!(
            ty("virDomainGetMetadata", "r#type"),
            e("DomainMetadataType")
        );
        assert_eq!(
            ty("virNetworkSetMetadata", "r#type"),
            e("NetworkMetadataType")
        );
        assert_eq!(
            ty("virDomainSetLifecycleAction", "r#type"),
            e("DomainLifecycle")
        );
        assert_eq!(
            ty("virDomainGraphicsReload", "r#type"),
            e("DomainGraphicsReloadType")
        );
        // Several constants of one type name it; one special value of a number does not.
        assert_eq!(
            ty("virNodeSuspendForDuration", "target"),
            e("NodeSuspendTarget")
        );
        assert_eq!(ty("virNodeGetCPUStats", "cpu_num"), None);
        assert_eq!(ty("virNodeGetMemoryStats", "cell_num"), None);
        assert_eq!(ty("virDomainSetVcpu", "state"), None);
        // Documentation naming two api types types nothing.
        assert_eq!(
            named_types("one of virDomainMetadataType or virDomainLifecycle", &types).len(),
            2
        );

        let files = generate(&root, &dir).unwrap();
        let list = &files[TYPED_ARGS_FILE];
        let lines: Vec<&str> = list.lines().filter(|l| !l.starts_with('#')).collect();
        let mut sorted = lines.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(lines, sorted);
        for l in [
            "remote::domain_set_metadata(r#type: i32) -> api::DomainMetadataType",
            "remote::domain_get_metadata(r#type: i32) -> api::DomainMetadataType",
            "remote::domain_set_lifecycle_action(r#type: u32) -> api::DomainLifecycle",
            "remote::network_update(section: u32) -> api::NetworkUpdateSection",
        ] {
            assert!(lines.contains(&l), "{l} missing from {TYPED_ARGS_FILE}");
        }
        assert!(!list.contains("cpu_num") && !list.contains("(flags:"));
        let remote = &files["remote.rs"];
        assert!(remote.contains(
            "r#type: libvirt_proto::generated::api::DomainMetadataType,\n        metadata: RemoteString,"
        ));
        assert!(remote.contains("r#type: r#type.0,"));
        // The wire field is unsigned, the enum signed: a bit-preserving cast both ways.
        assert!(remote.contains("r#type: r#type.0 as u32,"));
    }

    /// libvirt prose becomes rustdoc that reads no links, HTML, emphasis or code blocks.
    #[test]
    fn rustdoc_paragraphs_escape_libvirt_prose() {
        let p = rustdoc_paragraphs(
            "Lists <disk> [a] *x\n  of VIR_DOMAIN_AFFECT_LIVE (see virDomainGetInfo()).\n\n\
             # not a heading, see https://libvirt.org/uri.html.\n\n\
             - one\n- two `x`\n\n        indented",
        );
        assert_eq!(
            p,
            [
                "Lists &lt;disk&gt; \\[a\\] \\*x of `VIR_DOMAIN_AFFECT_LIVE` (see `virDomainGetInfo()`).",
                "\\# not a heading, see <https://libvirt.org/uri.html>.",
                "- one\n/// - two \\`x\\`",
                "indented",
            ]
        );
    }

    /// Procedures map to the public C functions by libvirt's naming, with the exceptions.
    #[test]
    fn procedures_map_to_api_functions() {
        let dir = crate::codegen::protocol_dir(None).unwrap();
        let api =
            |f: &str| ApiInfo::parse(&std::fs::read_to_string(dir.join("api").join(f)).unwrap());
        let (remote, qemu, admin) = (
            api("libvirt-api.xml"),
            api("libvirt-qemu-api.xml"),
            api("libvirt-admin-api.xml"),
        );
        let f = |prog: usize, api: &ApiInfo, p: &str, m: &str| {
            api_function(&PROGRAMS[prog], p, m, api).map(|f| api.names[&f].clone())
        };
        assert_eq!(
            f(0, &remote, "REMOTE_PROC_DOMAIN_GET_INFO", "DomainGetInfo").as_deref(),
            Some("virDomainGetInfo")
        );
        assert_eq!(
            f(
                0,
                &remote,
                "REMOTE_PROC_DOMAIN_GET_XML_DESC",
                "DomainGetXmlDesc"
            )
            .as_deref(),
            Some("virDomainGetXMLDesc")
        );
        assert_eq!(
            f(
                0,
                &remote,
                "REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY",
                "ConnectDomainEventCallbackRegisterAny"
            )
            .as_deref(),
            Some("virConnectDomainEventRegisterAny")
        );
        assert_eq!(
            f(
                0,
                &remote,
                "REMOTE_PROC_DOMAIN_MIGRATE_PREPARE3",
                "DomainMigratePrepare3"
            ),
            None
        );
        assert_eq!(
            f(
                1,
                &qemu,
                "QEMU_PROC_DOMAIN_MONITOR_COMMAND",
                "DomainMonitorCommand"
            )
            .as_deref(),
            Some("virDomainQemuMonitorCommand")
        );
        assert_eq!(
            f(
                3,
                &admin,
                "ADMIN_PROC_CONNECT_LIST_SERVERS",
                "ConnectListServers"
            )
            .as_deref(),
            Some("virAdmConnectListServers")
        );
    }

    /// The committed client methods carry libvirt's descriptions.
    #[test]
    fn generated_methods_carry_libvirt_docs() {
        let root = util::workspace_root().join(OUT_DIR);
        let remote = std::fs::read_to_string(root.join("remote.rs")).unwrap();
        assert!(remote.contains(
            "/// Extract information about a domain. Note that if the connection used to get the domain is limited only a partial set of the information can be extracted.\n    ///\n    /// `REMOTE_PROC_DOMAIN_GET_INFO` (16): calls the daemon's procedure of that name (libvirt's `virDomainGetInfo`).\n    pub async fn domain_get_info("
        ));
        assert!(
            remote.contains(
                "libvirt's full description: [`crate::Client::domain_get_all_domain_stats`]"
            ) || remote.contains(
                "libvirt's full description: [`crate::Client::connect_get_all_domain_stats`]"
            )
        );
        let qemu = std::fs::read_to_string(root.join("qemu.rs")).unwrap();
        assert!(qemu.contains("(libvirt's `virDomainQemuMonitorCommand`)"));
        assert!(!remote.contains("```"), "no code blocks from libvirt prose");
    }

    /// Every procedure of an API function passing or returning descriptors is in
    /// `FD_PROCEDURES`, every row there is a procedure, and the committed methods follow it.
    #[test]
    fn fd_apis_are_listed() {
        let dir = crate::codegen::protocol_dir(None).unwrap();
        let root = util::workspace_root();
        let mut found = BTreeSet::new();
        for prog in PROGRAMS {
            let text =
                std::fs::read_to_string(root.join(PROTO_DIR).join(format!("{}.rs", prog.module)))
                    .unwrap();
            let m = parse_proto(&text).unwrap();
            let xml = std::fs::read_to_string(dir.join("api").join(prog.api_file)).unwrap();
            let api = ApiInfo::parse(&xml);
            for r in &m.rows {
                let Some(f) = api_function(prog, &r.name, &m.markers[&r.name].name, &api) else {
                    continue;
                };
                let fd_arg = api.arg_types[&f].iter().any(|(n, t)| {
                    let n = n.to_ascii_lowercase();
                    t.starts_with("int")
                        && (n == "fd" || n.ends_with("fds") || n.ends_with("files"))
                        || n.ends_with("fdlist")
                });
                if fd_arg || api.names[&f].ends_with("FD") {
                    found.insert(r.name.clone());
                }
            }
        }
        let listed: BTreeSet<String> = FD_PROCEDURES.iter().map(|f| f.name.to_owned()).collect();
        assert_eq!(found, listed);
        let remote = std::fs::read_to_string(root.join(OUT_DIR).join("remote.rs")).unwrap();
        for gone in [
            "fn domain_open_graphics_fd(",
            "fn domain_open_graphics(",
            "fn domain_fd_associate(",
        ] {
            assert!(!remote.contains(gone), "{gone}");
        }
        assert!(remote.contains("[`open_graphics_fd`](crate::Client::open_graphics_fd)"));
        let lxc = std::fs::read_to_string(root.join(OUT_DIR).join("lxc.rs")).unwrap();
        assert!(!lxc.contains("fn lxc_domain_open_namespace("));
        let qemu = std::fs::read_to_string(root.join(OUT_DIR).join("qemu.rs")).unwrap();
        assert!(qemu.contains("self.call_with_fds::<libvirt_proto::generated::qemu::procs::DomainMonitorCommandWithFiles>"));
    }

    /// Events are left out of the read-only list by kind, not by name:
    /// `REMOTE_PROC_DOMAIN_GET_PERF_EVENTS` is in it, every (de)registration is not.
    #[test]
    fn read_only_leaves_out_event_registration_by_kind() {
        let dir = crate::codegen::protocol_dir(None).unwrap();
        let m = remote_module(&dir);
        let xml = std::fs::read_to_string(dir.join("api/libvirt-api.xml")).unwrap();
        let api = ApiInfo::parse(&xml);
        let reg = event_registrations(&PROGRAMS[0], &m, &api);
        let want: BTreeSet<String> = [105, 106, 167, 168, 313, 314, 316, 317]
            .into_iter()
            .chain([360, 361, 368, 369, 374, 375, 380, 381])
            .map(|n| m.rows.iter().find(|r| r.number == n).unwrap().name.clone())
            .collect();
        assert_eq!(reg, want);
        let ro: Vec<&str> = m
            .rows
            .iter()
            .filter(|r| is_read_only(r, &reg))
            .map(|r| r.name.as_str())
            .collect();
        assert!(ro.contains(&"REMOTE_PROC_DOMAIN_GET_PERF_EVENTS"));
        assert!(ro.contains(&"REMOTE_PROC_DOMAIN_GET_INFO"));
        assert!(!ro.contains(&"REMOTE_PROC_DOMAIN_SET_PERF_EVENTS"));
        assert!(ro.iter().all(|n| !n.contains("REGISTER")), "{ro:?}");
        let qemu_xml = std::fs::read_to_string(dir.join("api/libvirt-qemu-api.xml")).unwrap();
        let qemu_api = ApiInfo::parse(&qemu_xml);
        assert!(registers_events(
            &qemu_api,
            "virconnectdomainqemumonitoreventregister"
        ));
    }

    /// Every procedure of a public API function taking a `virStreamPtr` (but `virStream*`
    /// themselves, which travel as stream packets) is marked streaming, and so are the
    /// unannotated ones of `STREAM_OVERRIDES`.
    #[test]
    fn stream_apis_are_streaming() {
        let dir = crate::codegen::protocol_dir(None).unwrap();
        let m = remote_module(&dir);
        let rows = &m.rows;
        let xml = std::fs::read_to_string(dir.join("api/libvirt-api.xml")).unwrap();
        let mut functions = Vec::new();
        for f in xml.split("<function name='").skip(1) {
            let name = f.split('\'').next().unwrap();
            let body = &f[..f.find("</function>").unwrap_or(f.len())];
            if body.contains("type='virStreamPtr'") && !name.starts_with("virStream") {
                functions.push(name.to_owned());
            }
        }
        assert!(functions.len() >= 5, "{functions:?}");
        let prog = &PROGRAMS[0];
        for f in &functions {
            let procs: Vec<&Row> = rows
                .iter()
                .filter(|r| {
                    api_functions(prog, &m.markers[&r.name].name)
                        .iter()
                        .any(|c| c.eq_ignore_ascii_case(f))
                })
                .collect();
            assert!(!procs.is_empty(), "no procedure for {f}");
            for r in procs {
                assert!(r.stream.is_some(), "{} ({f}) is not streaming", r.name);
            }
        }
        for o in crate::codegen::rpc::STREAM_OVERRIDES {
            let r = rows.iter().find(|r| r.name == o.name).unwrap();
            let want = if o.direction == "read" {
                "Read"
            } else {
                "Write"
            };
            assert_eq!(r.stream.as_deref(), Some(want), "{}", o.name);
        }
        // The internal virDomainMigratePrepareTunnel* functions (not in the API XML) all take
        // the stream the source writes the migration data to.
        let tunnels: Vec<&Row> = rows
            .iter()
            .filter(|r| r.name.contains("_PREPARE_TUNNEL"))
            .collect();
        assert_eq!(tunnels.len(), 3, "148, 215, 304");
        for r in tunnels {
            assert_eq!(r.stream.as_deref(), Some("Write"), "{}", r.name);
        }
    }
}
