//! A small `virsh` look-alike on libvirt-client's async API: no libvirt.so, only the wire
//! protocol. Its output follows the real virsh's for the same commands (labels, columns,
//! spacing, the blank line after each command, `error: ...` on stderr and exit status 1) so the
//! two can be diffed.
//!
//! ```text
//! cargo run -q -p libvirt-client --example virsh -- -c test:///default list --all
//! ```
//!
//! Commands: `version [--daemon]`, `list [--all|--inactive] [--name|--uuid]`, `dominfo`,
//! `domstate [--reason]`, `dumpxml [--inactive|--security-info|--update-cpu|--migratable]`,
//! `start`, `suspend`, `resume`, `destroy`, `event [--domain D] [--event E|--all|--list]
//! [--loop] [--timeout SECS]`, `qemu-monitor-command [--hmp] [--pretty|--return-value] DOMAIN
//! CMD...`. Global options: `-c`/`--connect URI` (default: `LIBVIRT_DEFAULT_URI`, then
//! libvirt's own default), `-q`/`--quiet`, `-r`/`--readonly`, `-h`/`--help`.

use std::fmt;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use libvirt_client::events::{EventItem, Subscription};
use libvirt_client::libvirt_proto::generated::api::{DomainXMLFlags, ErrorNumber};
use libvirt_client::libvirt_proto::generated::api_qemu::DomainQemuMonitorCommandFlags;
use libvirt_client::libvirt_proto::generated::remote::{RemoteTypedParam, RemoteTypedParamValue};
use libvirt_client::uri::Uri;
use libvirt_client::{Client, ClientOptions, Domain, TypedEvent};

const USAGE: &str = "\
usage: virsh [-c URI] [-q] [-r] COMMAND [ARGS...]

commands:
  version [--daemon]
  list [--all | --inactive] [--name | --uuid]
  dominfo DOMAIN
  domstate DOMAIN [--reason]
  dumpxml DOMAIN [--inactive] [--security-info] [--update-cpu] [--migratable]
  start | suspend | resume | destroy DOMAIN
  event [--domain DOMAIN] (--event NAME | --all | --list) [--loop] [--timeout SECS]
  qemu-monitor-command DOMAIN [--hmp] [--pretty | --return-value] COMMAND...
";

/// A failure: the lines printed after `error: ` on stderr.
#[derive(Debug)]
struct Fail(Vec<String>);

impl Fail {
    fn msg(m: impl Into<String>) -> Fail {
        Fail(vec![m.into()])
    }

    /// `what` followed by the library's error (virsh prints the call's context, then the
    /// libvirt error).
    fn with(what: impl Into<String>) -> impl FnOnce(libvirt_client::Error) -> Fail {
        let what = what.into();
        move |e| Fail(vec![what, lib_message(&e)])
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

impl From<libvirt_client::Error> for Fail {
    fn from(e: libvirt_client::Error) -> Fail {
        Fail(vec![lib_message(&e)])
    }
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Fail {
        Fail::msg(format!("cannot write the output: {e}"))
    }
}

/// The daemon's own message when the call failed there (what virsh shows), else ours.
fn lib_message(e: &libvirt_client::Error) -> String {
    match e.remote().and_then(|r| r.message.clone()) {
        Some(m) => m,
        None => e.to_string(),
    }
}

/// Global options and the command line after them.
struct Cli {
    uri: Option<String>,
    quiet: bool,
    readonly: bool,
    command: Vec<String>,
}

fn parse_global(args: Vec<String>) -> Result<Option<Cli>, Fail> {
    let mut cli = Cli {
        uri: None,
        quiet: false,
        readonly: false,
        command: Vec::new(),
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-c" | "--connect" => {
                cli.uri = Some(
                    it.next()
                        .ok_or_else(|| Fail::msg(format!("option '{a}' requires an argument")))?,
                )
            }
            "-q" | "--quiet" => cli.quiet = true,
            "-r" | "--readonly" => cli.readonly = true,
            "-h" | "--help" => return Ok(None),
            _ if a.starts_with("--connect=") => cli.uri = Some(a["--connect=".len()..].to_owned()),
            _ if a.starts_with('-') => return Err(Fail::msg(format!("unsupported option '{a}'"))),
            _ => {
                cli.command.push(a);
                cli.command.extend(it);
                break;
            }
        }
    }
    Ok(Some(cli))
}

/// One command's arguments: boolean flags, valued options, positionals.
struct Args {
    cmd: String,
    flags: Vec<String>,
    opts: Vec<(String, String)>,
    positional: Vec<String>,
}

impl Args {
    /// Parse `words` for `cmd`, which knows the boolean `flags` and the valued `opts`
    /// (`--opt VALUE` or `--opt=VALUE`). `--` ends the options.
    fn parse(cmd: &str, words: &[String], flags: &[&str], opts: &[&str]) -> Result<Args, Fail> {
        let mut a = Args {
            cmd: cmd.to_owned(),
            flags: Vec::new(),
            opts: Vec::new(),
            positional: Vec::new(),
        };
        let mut it = words.iter();
        while let Some(w) = it.next() {
            if w == "--" {
                a.positional.extend(it.cloned());
                break;
            }
            let Some(name) = w.strip_prefix("--") else {
                a.positional.push(w.clone());
                continue;
            };
            let (name, inline) = match name.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (name, None),
            };
            if flags.contains(&name) && inline.is_none() {
                a.flags.push(name.to_owned());
            } else if opts.contains(&name) {
                let v = match inline {
                    Some(v) => v,
                    None => it.next().cloned().ok_or_else(|| {
                        Fail::msg(format!("option --{name} requires an argument"))
                    })?,
                };
                a.opts.push((name.to_owned(), v));
            } else {
                return Err(Fail::msg(format!(
                    "command '{cmd}' doesn't support option --{name}"
                )));
            }
        }
        Ok(a)
    }

    fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    fn opt(&self, name: &str) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The domain: `--domain NAME` or the first positional.
    fn domain(&mut self) -> Result<String, Fail> {
        if let Some(d) = self.opt("domain") {
            return Ok(d.to_owned());
        }
        if self.positional.is_empty() {
            return Err(Fail::msg(format!(
                "command '{}' requires <domain> option",
                self.cmd
            )));
        }
        Ok(self.positional.remove(0))
    }

    fn no_more_positionals(&self) -> Result<(), Fail> {
        match self.positional.first() {
            Some(p) => Err(Fail::msg(format!("unexpected data '{p}'"))),
            None => Ok(()),
        }
    }

    fn exclusive(&self, a: &str, b: &str) -> Result<(), Fail> {
        if self.flag(a) && self.flag(b) {
            return Err(Fail::msg(format!(
                "Options --{a} and --{b} are mutually exclusive"
            )));
        }
        Ok(())
    }
}

/// Where the output goes; a failed write (closed pipe) is an error, not a panic.
struct Out {
    w: std::io::Stdout,
}

impl Out {
    fn line(&mut self, s: impl fmt::Display) -> Result<(), Fail> {
        let mut w = self.w.lock();
        writeln!(w, "{s}")?;
        w.flush()?;
        Ok(())
    }

    fn raw(&mut self, s: &str) -> Result<(), Fail> {
        let mut w = self.w.lock();
        w.write_all(s.as_bytes())?;
        w.flush()?;
        Ok(())
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "error: cannot start the async runtime: {e}"
            );
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(fail) => {
            let mut err = std::io::stderr().lock();
            for line in &fail.0 {
                let _ = writeln!(err, "error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Vec<String>) -> Result<(), Fail> {
    let Some(cli) = parse_global(args)? else {
        return Out {
            w: std::io::stdout(),
        }
        .raw(USAGE);
    };
    let Some((cmd, rest)) = cli.command.split_first() else {
        return Err(Fail::msg("no command given (see --help)"));
    };
    let known = [
        "version",
        "list",
        "dominfo",
        "domstate",
        "dumpxml",
        "start",
        "suspend",
        "resume",
        "destroy",
        "event",
        "qemu-monitor-command",
        "help",
    ];
    if !known.contains(&cmd.as_str()) {
        return Err(Fail::msg(format!("unknown command: '{cmd}'")));
    }
    let mut out = Out {
        w: std::io::stdout(),
    };
    if cmd == "help" {
        return out.raw(USAGE);
    }
    let uri = match cli.uri {
        Some(u) => u,
        None => Uri::default_uri()
            .map_err(Fail::with("failed to connect to the hypervisor"))?
            .to_string(),
    };
    let client = Client::connect_with(&uri, ClientOptions::default().read_only(cli.readonly))
        .await
        .map_err(Fail::with("failed to connect to the hypervisor"))?;
    let quiet = cli.quiet;
    let result = command(&client, cmd, rest, quiet, &mut out).await;
    let _ = client.close().await;
    // virsh ends every command it ran with an empty line on stdout, failed or not (not with -q).
    if !quiet {
        out.raw("\n")?;
    }
    result
}

async fn command(
    c: &Client,
    cmd: &str,
    words: &[String],
    quiet: bool,
    out: &mut Out,
) -> Result<(), Fail> {
    match cmd {
        "version" => {
            let a = Args::parse(cmd, words, &["daemon"], &[])?;
            a.no_more_positionals()?;
            version(c, a.flag("daemon"), out).await
        }
        "list" => {
            let a = Args::parse(
                cmd,
                words,
                &["all", "inactive", "name", "uuid", "table"],
                &[],
            )?;
            a.no_more_positionals()?;
            a.exclusive("all", "inactive")?;
            a.exclusive("table", "name")?;
            a.exclusive("table", "uuid")?;
            list(c, &a, quiet, out).await
        }
        "dominfo" => {
            let mut a = Args::parse(cmd, words, &[], &["domain"])?;
            let name = a.domain()?;
            a.no_more_positionals()?;
            dominfo(c, &name, out).await
        }
        "domstate" => {
            let mut a = Args::parse(cmd, words, &["reason"], &["domain"])?;
            let name = a.domain()?;
            a.no_more_positionals()?;
            let dom = lookup(c, &name).await?;
            let st = c.domain_state(&dom).await?;
            if a.flag("reason") {
                out.line(format!(
                    "{} ({})",
                    state_name(st.state.0),
                    reason_name(st.state.0, st.reason)
                ))
            } else {
                out.line(state_name(st.state.0))
            }
        }
        "dumpxml" => {
            let mut a = Args::parse(
                cmd,
                words,
                &["inactive", "security-info", "update-cpu", "migratable"],
                &["domain"],
            )?;
            let name = a.domain()?;
            a.no_more_positionals()?;
            let mut flags = 0;
            for (f, v) in [
                ("security-info", DomainXMLFlags::SECURE),
                ("inactive", DomainXMLFlags::INACTIVE),
                ("update-cpu", DomainXMLFlags::UPDATE_CPU),
                ("migratable", DomainXMLFlags::MIGRATABLE),
            ] {
                if a.flag(f) {
                    flags |= v.0;
                }
            }
            let dom = lookup(c, &name).await?;
            let xml = c.domain_xml(&dom, DomainXMLFlags(flags)).await?;
            // The daemon's XML ends with a newline; virsh prints it as is.
            out.raw(&xml)
        }
        "start" | "suspend" | "resume" | "destroy" => {
            let mut a = Args::parse(cmd, words, &[], &["domain"])?;
            let name = a.domain()?;
            a.no_more_positionals()?;
            lifecycle(c, cmd, &name, out).await
        }
        "event" => {
            let a = Args::parse(
                cmd,
                words,
                &["all", "loop", "list"],
                &["domain", "event", "timeout"],
            )?;
            a.no_more_positionals()?;
            event(c, &a, out).await
        }
        "qemu-monitor-command" => {
            let mut a = Args::parse(cmd, words, &["hmp", "pretty", "return-value"], &["domain"])?;
            let name = a.domain()?;
            a.exclusive("hmp", "pretty")?;
            a.exclusive("hmp", "return-value")?;
            if a.positional.is_empty() {
                return Err(Fail::msg(
                    "command 'qemu-monitor-command' requires <cmd> option",
                ));
            }
            let text = a.positional.join(" ");
            let dom = lookup(c, &name).await?;
            let flags = if a.flag("hmp") {
                DomainQemuMonitorCommandFlags::HMP
            } else {
                DomainQemuMonitorCommandFlags::DEFAULT
            };
            let reply = c.qemu_domain_monitor_command(dom, text, flags).await?;
            if a.flag("pretty") || a.flag("return-value") {
                let mut v: serde_json::Value = serde_json::from_str(&reply).map_err(|e| {
                    Fail::msg(format!("the monitor's reply is not JSON ({e}): {reply}"))
                })?;
                if a.flag("return-value") {
                    v = v
                        .get("return")
                        .cloned()
                        .ok_or_else(|| Fail::msg(format!("'return' member missing: {reply}")))?;
                }
                let s = match (&v, a.flag("pretty")) {
                    (serde_json::Value::String(s), false) => s.clone(),
                    (_, true) => serde_json::to_string_pretty(&v).unwrap_or_default(),
                    (_, false) => v.to_string(),
                };
                out.line(s)
            } else {
                // As the monitor answered (HMP text keeps its own line ends).
                out.raw(&reply)?;
                out.raw("\n")
            }
        }
        _ => Err(Fail::msg(format!("unknown command: '{cmd}'"))),
    }
}

async fn lookup(c: &Client, name: &str) -> Result<Domain, Fail> {
    // virsh accepts an id, a UUID or a name, in that order.
    if let Ok(id) = name.parse::<i32>() {
        if id >= 0 {
            if let Ok(d) = c.domain_lookup_by_id(id).await {
                return Ok(d);
            }
        }
    }
    if let Some(uuid) = parse_uuid(name) {
        if let Ok(d) = c.domain_lookup_by_uuid(uuid).await {
            return Ok(d);
        }
    }
    c.lookup_domain(name)
        .await
        .map_err(|e| match e.remote_code() {
            Some(ErrorNumber::ERR_NO_DOMAIN) => Fail::msg(format!("failed to get domain '{name}'")),
            _ => Fail::with(format!("failed to get domain '{name}'"))(e),
        })
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn format_uuid(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A C string from the wire (`char<N>` arrays, NUL-terminated).
fn c_string(chars: &[i8]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .map(|c| *c as u8)
        .take_while(|b| *b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

async fn version(c: &Client, daemon: bool, out: &mut Out) -> Result<(), Fail> {
    let kind = c
        .connect_get_type()
        .await
        .map_err(Fail::with("failed to get hypervisor type"))?;
    let lib = c
        .lib_version()
        .await
        .map_err(Fail::with("failed to get the library version"))?;
    let hv = c
        .version()
        .await
        .map_err(Fail::with("failed to get the hypervisor version"))?;
    let ours = env!("CARGO_PKG_VERSION");
    // No libvirt library is linked: the first two lines name this crate instead, and "Using
    // API" reports the daemon's libvirt, whose API the calls reach.
    out.line(format!("Compiled against library: libvirt-client {ours}"))?;
    out.line(format!("Using library: libvirt-client {ours}"))?;
    out.line(format!("Using API: {kind} {lib}"))?;
    out.line(format!("Running hypervisor: {kind} {hv}"))?;
    if daemon {
        out.line(format!("Running against daemon: {lib}"))?;
    }
    Ok(())
}

/// virsh's table: a leading space, columns padded to their widest cell and separated by three
/// spaces (the last one not padded), a dashed line as wide as the padded row plus two.
fn table(header: Option<&[&str]>, rows: &[Vec<String>]) -> String {
    let ncols = header
        .map(|h| h.len())
        .or(rows.first().map(Vec::len))
        .unwrap_or(0);
    let mut width = vec![0usize; ncols];
    let all = header
        .map(|h| h.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .into_iter()
        .chain(rows.iter().cloned());
    for row in all.clone() {
        for (w, cell) in width.iter_mut().zip(&row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let fmt_row = |row: &[String]| {
        let mut line = String::from(" ");
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = width[i].saturating_sub(cell.chars().count()) + 3;
                line.push_str(&" ".repeat(pad));
            }
        }
        line.push('\n');
        line
    };
    let mut s = String::new();
    if let Some(h) = header {
        s.push_str(&fmt_row(
            &h.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        ));
        s.push_str(&"-".repeat(width.iter().sum::<usize>() + 3 * ncols));
        s.push('\n');
    }
    for row in rows {
        s.push_str(&fmt_row(row));
    }
    s
}

async fn list(c: &Client, a: &Args, quiet: bool, out: &mut Out) -> Result<(), Fail> {
    let mut doms = c
        .domains()
        .await
        .map_err(Fail::with("Failed to list domains"))?;
    // Active ones first by id, then the inactive ones by name (virsh's order).
    doms.sort_by(|x, y| match (x.id >= 0, y.id >= 0) {
        (true, true) => x.id.cmp(&y.id),
        (false, false) => x.name.cmp(&y.name),
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
    });
    doms.retain(|d| {
        if a.flag("all") {
            true
        } else if a.flag("inactive") {
            d.id < 0
        } else {
            d.id >= 0
        }
    });
    if a.flag("name") || a.flag("uuid") {
        for d in &doms {
            let line = match (a.flag("uuid"), a.flag("name")) {
                (true, true) => format!("{} {}", format_uuid(&d.uuid), d.name),
                (true, false) => format_uuid(&d.uuid),
                _ => d.name.clone(),
            };
            out.line(line)?;
        }
        return Ok(());
    }
    let mut rows = Vec::new();
    for d in &doms {
        let state = match c.domain_state(d).await {
            Ok(s) => state_name(s.state.0).to_owned(),
            // Gone between the listing and this call.
            Err(_) => continue,
        };
        let id = if d.id >= 0 {
            d.id.to_string()
        } else {
            "-".to_owned()
        };
        rows.push(vec![id, d.name.clone(), state]);
    }
    let header: &[&str] = &["Id", "Name", "State"];
    out.raw(&table((!quiet).then_some(header), &rows))
}

async fn dominfo(c: &Client, name: &str, out: &mut Out) -> Result<(), Fail> {
    let dom = lookup(c, name).await?;
    let mut lines: Vec<(&str, String)> = Vec::new();
    lines.push((
        "Id:",
        if dom.id >= 0 {
            dom.id.to_string()
        } else {
            "-".to_owned()
        },
    ));
    lines.push(("Name:", dom.name.clone()));
    lines.push(("UUID:", format_uuid(&dom.uuid)));
    if let Ok(os) = c.domain_get_os_type(dom.clone()).await {
        lines.push(("OS Type:", os));
    }
    if let Ok(info) = c.domain_get_info(dom.clone()).await {
        lines.push(("State:", state_name(i32::from(info.state)).to_owned()));
        lines.push(("CPU(s):", info.nr_virt_cpu.to_string()));
        if info.cpu_time != 0 {
            lines.push((
                "CPU time:",
                format!("{:.1}s", info.cpu_time as f64 / 1_000_000_000.0),
            ));
        }
        lines.push((
            "Max memory:",
            if info.max_mem == u64::MAX {
                "no limit".to_owned()
            } else {
                format!("{} KiB", info.max_mem)
            },
        ));
        lines.push(("Used memory:", format!("{} KiB", info.memory)));
    }
    let yes_no = |r: Result<i32, libvirt_client::Error>| match r {
        Ok(0) => "no",
        Ok(_) => "yes",
        Err(_) => "unknown",
    };
    lines.push((
        "Persistent:",
        yes_no(c.domain_is_persistent(dom.clone()).await).to_owned(),
    ));
    if let Ok(auto) = c.domain_get_autostart(dom.clone()).await {
        lines.push((
            "Autostart:",
            if auto != 0 { "enable" } else { "disable" }.to_owned(),
        ));
    }
    lines.push((
        "Managed save:",
        yes_no(c.domain_has_managed_save_image(dom.clone(), 0).await).to_owned(),
    ));
    // Drivers without security models answer "not supported": the lines are then left out.
    if let Ok(model) = c.node_get_security_model().await {
        let m = c_string(&model.model);
        if !m.is_empty() {
            lines.push(("Security model:", m));
            lines.push(("Security DOI:", c_string(&model.doi)));
            if let Ok(label) = c.domain_get_security_label(dom.clone()).await {
                let l = c_string(&label.label);
                if !l.is_empty() {
                    let mode = if label.enforcing != 0 {
                        "enforcing"
                    } else {
                        "permissive"
                    };
                    lines.push(("Security label:", format!("{l} ({mode})")));
                }
            }
        }
    }
    for (label, value) in lines {
        out.line(format!("{label:<15} {value}"))?;
    }
    Ok(())
}

async fn lifecycle(c: &Client, cmd: &str, name: &str, out: &mut Out) -> Result<(), Fail> {
    let dom = lookup(c, name).await?;
    let (result, done) = match cmd {
        "start" => {
            if dom.id >= 0 {
                return Err(Fail::msg("Domain is already active"));
            }
            (c.start(&dom).await, "started")
        }
        "suspend" => (c.suspend(&dom).await, "suspended"),
        "resume" => (c.resume(&dom).await, "resumed"),
        _ => (c.destroy(&dom).await, "destroyed"),
    };
    result.map_err(Fail::with(format!("Failed to {cmd} domain '{}'", dom.name)))?;
    out.line(format!("Domain '{}' {done}", dom.name))
}

/// Domain event names, in virsh's `event --list` order.
const EVENT_NAMES: &[&str] = &[
    "lifecycle",
    "reboot",
    "rtc-change",
    "watchdog",
    "io-error",
    "graphics",
    "io-error-reason",
    "control-error",
    "block-job",
    "disk-change",
    "tray-change",
    "pm-wakeup",
    "pm-suspend",
    "balloon-change",
    "pm-suspend-disk",
    "device-removed",
    "block-job-2",
    "tunable",
    "agent-lifecycle",
    "device-added",
    "migration-iteration",
    "job-completed",
    "device-removal-failed",
    "metadata-change",
    "block-threshold",
    "memory-failure",
    "memory-device-size-change",
];

async fn event(c: &Client, a: &Args, out: &mut Out) -> Result<(), Fail> {
    if a.flag("list") {
        for n in EVENT_NAMES {
            out.line(n)?;
        }
        return Ok(());
    }
    let only = a.opt("event");
    if let Some(e) = only {
        if !EVENT_NAMES.contains(&e) {
            return Err(Fail::msg(format!("unknown event type {e}")));
        }
    } else if !a.flag("all") {
        return Err(Fail::msg(
            "one of --list, --all, or --event <type> is required",
        ));
    }
    let timeout = match a.opt("timeout") {
        None => None,
        Some(t) => match t.parse::<u64>() {
            Ok(s) if s > 0 => Some(Duration::from_secs(s)),
            _ => return Err(Fail::msg(format!("invalid timeout '{t}'"))),
        },
    };
    let dom = match a.opt("domain") {
        Some(n) => Some(lookup(c, n).await?),
        None => None,
    };
    let mut events = c
        .subscribe(Subscription::domain(dom))
        .await
        .map_err(Fail::with("failed to register events"))?;
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut count = 0u64;
    let timed_out = loop {
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d, events.next()).await {
                Ok(n) => n,
                Err(_) => break true,
            },
            None => events.next().await,
        };
        let item = match next {
            Some(item) => item.map_err(Fail::with("event stream failed"))?,
            None => return Err(Fail::msg("the connection ended")),
        };
        match item {
            EventItem::Event(ev) => {
                let Some((name, text)) = describe(&ev) else {
                    continue;
                };
                if only.is_some_and(|o| o != name) {
                    continue;
                }
                out.raw(&text)?;
                count += 1;
                if !a.flag("loop") {
                    break false;
                }
            }
            EventItem::Lagged(n) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "warning: {n} events were dropped (slow reader)"
                );
            }
            EventItem::Closed(reason) => {
                return Err(Fail::msg(format!("the connection closed: {reason:?}")))
            }
            _ => {}
        }
    };
    if timed_out {
        out.line("event loop timed out")?;
    }
    out.line(format!("events received: {count}"))
}

fn pick(names: &[&'static str], i: i32) -> &'static str {
    usize::try_from(i)
        .ok()
        .and_then(|i| names.get(i).copied())
        .unwrap_or("unknown")
}

fn state_name(s: i32) -> &'static str {
    match s {
        1 => "running",
        2 => "idle",
        3 => "paused",
        4 => "in shutdown",
        5 => "shut off",
        6 => "crashed",
        7 => "pmsuspended",
        _ => "no state",
    }
}

fn reason_name(state: i32, reason: i32) -> &'static str {
    let names: &[&str] = match state {
        1 => &[
            "unknown",
            "booted",
            "migrated",
            "restored",
            "from snapshot",
            "unpaused",
            "migration canceled",
            "save canceled",
            "event wakeup",
            "crashed",
            "post-copy",
            "post-copy failed",
        ],
        3 => &[
            "unknown",
            "user",
            "migrating",
            "saving",
            "dumping",
            "I/O error",
            "watchdog",
            "from snapshot",
            "shutting down",
            "creating snapshot",
            "crashed",
            "starting up",
            "post-copy",
            "post-copy failed",
            "api error",
        ],
        4 => &["unknown", "user"],
        5 => &[
            "unknown",
            "shutdown",
            "destroyed",
            "crashed",
            "migrated",
            "saved",
            "failed",
            "from snapshot",
            "daemon",
        ],
        6 => &["unknown", "panicked"],
        _ => &["unknown"],
    };
    pick(names, reason)
}

fn lifecycle_text(event: i32, detail: i32) -> (&'static str, &'static str) {
    let (name, details): (&str, &[&str]) = match event {
        0 => ("Defined", &["Added", "Updated", "Renamed", "Snapshot"]),
        1 => ("Undefined", &["Removed", "Renamed"]),
        2 => (
            "Started",
            &["Booted", "Migrated", "Restored", "Snapshot", "Event wakeup"],
        ),
        3 => (
            "Suspended",
            &[
                "Paused",
                "Migrated",
                "I/O Error",
                "Watchdog",
                "Restored",
                "Snapshot",
                "API error",
                "Post-copy",
                "Post-copy Error",
            ],
        ),
        4 => (
            "Resumed",
            &[
                "Unpaused",
                "Migrated",
                "Snapshot",
                "Post-copy",
                "Post-copy Error",
            ],
        ),
        5 => (
            "Stopped",
            &[
                "Shutdown",
                "Destroyed",
                "Crashed",
                "Migrated",
                "Saved",
                "Failed",
                "Snapshot",
            ],
        ),
        6 => (
            "Shutdown",
            &[
                "Finished",
                "Finished after guest request",
                "Finished after host request",
            ],
        ),
        7 => ("PMSuspended", &["Memory", "Disk"]),
        8 => ("Crashed", &["Panicked", "Crashloaded"]),
        _ => ("unknown", &[]),
    };
    (name, pick(details, detail))
}

fn param_text(params: &[RemoteTypedParam]) -> String {
    params
        .iter()
        .map(|p| {
            let v = match &p.value {
                RemoteTypedParamValue::Int(v) => v.to_string(),
                RemoteTypedParamValue::Uint(v) => v.to_string(),
                RemoteTypedParamValue::Llong(v) => v.to_string(),
                RemoteTypedParamValue::Ullong(v) => v.to_string(),
                RemoteTypedParamValue::Double(v) => v.to_string(),
                RemoteTypedParamValue::Boolean(v) => (*v != 0).to_string(),
                RemoteTypedParamValue::String(v) => v.clone(),
            };
            format!("\t{}: {v}\n", p.field)
        })
        .collect()
}

/// An event as virsh prints it: its `event --list` name and the text (newline-terminated).
/// `None` for events of other families (this command subscribes to domain events only).
fn describe(ev: &TypedEvent) -> Option<(&'static str, String)> {
    let head = |name: &str, dom: &Domain| format!("event '{name}' for domain '{}'", dom.name);
    Some(match ev {
        TypedEvent::DomainEventCallbackLifecycle(e) => {
            let (what, detail) = lifecycle_text(e.msg.event, e.msg.detail);
            (
                "lifecycle",
                format!("{}: {what} {detail}\n", head("lifecycle", &e.msg.dom)),
            )
        }
        TypedEvent::DomainEventCallbackReboot(e) => {
            ("reboot", format!("{}\n", head("reboot", &e.msg.dom)))
        }
        TypedEvent::DomainEventCallbackRtcChange(e) => (
            "rtc-change",
            format!("{}: {}\n", head("rtc-change", &e.msg.dom), e.msg.offset),
        ),
        TypedEvent::DomainEventCallbackWatchdog(e) => {
            let actions = [
                "no action",
                "pause",
                "reset",
                "poweroff",
                "shutdown",
                "debug",
                "inject-nmi",
            ];
            (
                "watchdog",
                format!(
                    "{}: {}\n",
                    head("watchdog", &e.msg.dom),
                    pick(&actions, e.msg.action)
                ),
            )
        }
        TypedEvent::DomainEventCallbackIoError(e) => (
            "io-error",
            format!(
                "{}: {} ({}) {}\n",
                head("io-error", &e.msg.dom),
                e.msg.src_path,
                e.msg.dev_alias,
                pick(&["no action", "pause", "report"], e.msg.action)
            ),
        ),
        TypedEvent::DomainEventCallbackIoErrorReason(e) => (
            "io-error-reason",
            format!(
                "{}: {} ({}) {} due to {}\n",
                head("io-error-reason", &e.msg.dom),
                e.msg.src_path,
                e.msg.dev_alias,
                pick(&["no action", "pause", "report"], e.msg.action),
                e.msg.reason
            ),
        ),
        TypedEvent::DomainEventCallbackGraphics(e) => {
            ("graphics", format!("{}\n", head("graphics", &e.msg.dom)))
        }
        TypedEvent::DomainEventCallbackControlError(e) => (
            "control-error",
            format!("{}\n", head("control-error", &e.msg.dom)),
        ),
        TypedEvent::DomainEventCallbackBlockJob(e) => {
            let kinds = [
                "unknown",
                "Block Pull",
                "Block Copy",
                "Block Commit",
                "Active Block Commit",
                "Backup",
            ];
            let status = ["completed", "failed", "canceled", "ready"];
            (
                "block-job",
                format!(
                    "{}: {} for {} {}\n",
                    head("block-job", &e.msg.dom),
                    pick(&kinds, e.msg.r#type),
                    e.msg.path,
                    pick(&status, e.msg.status)
                ),
            )
        }
        TypedEvent::DomainEventBlockJob2(e) => {
            let kinds = [
                "unknown",
                "Block Pull",
                "Block Copy",
                "Block Commit",
                "Active Block Commit",
                "Backup",
            ];
            let status = ["completed", "failed", "canceled", "ready"];
            (
                "block-job-2",
                format!(
                    "{}: {} for {} {}\n",
                    head("block-job-2", &e.dom),
                    pick(&kinds, e.r#type),
                    e.dst,
                    pick(&status, e.status)
                ),
            )
        }
        TypedEvent::DomainEventCallbackDiskChange(e) => (
            "disk-change",
            format!(
                "{} disk {}: {} -> {}: {}\n",
                head("disk-change", &e.msg.dom),
                e.msg.dev_alias,
                e.msg.old_src_path.as_deref().unwrap_or(""),
                e.msg.new_src_path.as_deref().unwrap_or(""),
                pick(&["missing on start", "dropped"], e.msg.reason)
            ),
        ),
        TypedEvent::DomainEventCallbackTrayChange(e) => (
            "tray-change",
            format!(
                "{} disk {}: {}\n",
                head("tray-change", &e.msg.dom),
                e.msg.dev_alias,
                pick(&["opened", "closed"], e.msg.reason)
            ),
        ),
        TypedEvent::DomainEventCallbackPmwakeup(e) => {
            ("pm-wakeup", format!("{}\n", head("pm-wakeup", &e.msg.dom)))
        }
        TypedEvent::DomainEventCallbackPmsuspend(e) => (
            "pm-suspend",
            format!("{}\n", head("pm-suspend", &e.msg.dom)),
        ),
        TypedEvent::DomainEventCallbackPmsuspendDisk(e) => (
            "pm-suspend-disk",
            format!("{}\n", head("pm-suspend-disk", &e.msg.dom)),
        ),
        TypedEvent::DomainEventCallbackBalloonChange(e) => (
            "balloon-change",
            format!(
                "{}: {}KiB\n",
                head("balloon-change", &e.msg.dom),
                e.msg.actual
            ),
        ),
        TypedEvent::DomainEventCallbackDeviceRemoved(e) => (
            "device-removed",
            format!(
                "{}: {}\n",
                head("device-removed", &e.msg.dom),
                e.msg.dev_alias
            ),
        ),
        TypedEvent::DomainEventCallbackDeviceAdded(e) => (
            "device-added",
            format!("{}: {}\n", head("device-added", &e.dom), e.dev_alias),
        ),
        TypedEvent::DomainEventCallbackDeviceRemovalFailed(e) => (
            "device-removal-failed",
            format!(
                "{}: {}\n",
                head("device-removal-failed", &e.dom),
                e.dev_alias
            ),
        ),
        TypedEvent::DomainEventCallbackTunable(e) => (
            "tunable",
            format!("{}:\n{}", head("tunable", &e.dom), param_text(&e.params)),
        ),
        TypedEvent::DomainEventCallbackJobCompleted(e) => (
            "job-completed",
            format!(
                "{}:\n{}",
                head("job-completed", &e.dom),
                param_text(&e.params)
            ),
        ),
        TypedEvent::DomainEventCallbackAgentLifecycle(e) => (
            "agent-lifecycle",
            format!(
                "{}: state: '{}' reason: '{}'\n",
                head("agent-lifecycle", &e.dom),
                pick(&["unknown", "connected", "disconnected"], e.state),
                pick(&["unknown", "domain started", "channel event"], e.reason)
            ),
        ),
        TypedEvent::DomainEventCallbackMigrationIteration(e) => (
            "migration-iteration",
            format!(
                "{}: iteration: '{}'\n",
                head("migration-iteration", &e.dom),
                e.iteration
            ),
        ),
        TypedEvent::DomainEventCallbackMetadataChange(e) => (
            "metadata-change",
            format!(
                "{}: type {}, uri {}\n",
                head("metadata-change", &e.dom),
                pick(&["description", "title", "element"], e.r#type),
                e.nsuri.as_deref().unwrap_or("(null)")
            ),
        ),
        TypedEvent::DomainEventBlockThreshold(e) => (
            "block-threshold",
            format!(
                "{}: dev: {}({}) {} {}\n",
                head("block-threshold", &e.dom),
                e.dev,
                e.path.as_deref().unwrap_or(""),
                e.threshold,
                e.excess
            ),
        ),
        TypedEvent::DomainEventMemoryFailure(e) => (
            "memory-failure",
            format!("{}\n", head("memory-failure", &e.dom)),
        ),
        TypedEvent::DomainEventMemoryDeviceSizeChange(e) => (
            "memory-device-size-change",
            format!(
                "{}:\nalias: {}\nsize: {}\n",
                head("memory-device-size-change", &e.dom),
                e.alias,
                e.size
            ),
        ),
        _ => return None,
    })
}
