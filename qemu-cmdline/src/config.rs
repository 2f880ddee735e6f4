//! The typed configuration: global options, knobs, QMP sockets and devices; `validate`, `build`
//! (argv) and `parse` (argv back to a configuration).

use crate::device::{BusKind, Device, IdRef, Namespace, Parsers};
use crate::devices::{Generic, MemoryBackend};
use crate::error::{Error, Result};
use crate::opt::{check_id, check_implied, check_key, escape_value, Opt, PropReader};
use crate::version::Syntax;
use std::collections::{BTreeMap, BTreeSet};

/// `-name guest=NAME[,debug-threads=on]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    /// The guest name (any characters).
    pub guest: String,
    /// Name QEMU's threads after their role.
    pub debug_threads: bool,
}

/// `-machine TYPE[,accel=...][,key=value...]`.
///
/// Equality ignores [`buses`](Self::buses): they are a validation aid, not part of the command
/// line ([`QemuConfig::parse`] fills in the known ones and those devices plug into).
#[derive(Clone, Debug, Eq)]
pub struct Machine {
    /// Machine type: `q35`, `pc`, `pc-q35-7.2`, `microvm`, `none`, ...
    pub kind: String,
    /// Accelerators in order of preference, e.g. `kvm:tcg`.
    pub accel: Option<String>,
    /// Further machine properties (`nvdimm=on`, `memory-backend=ID`, `kernel-irqchip=split`).
    pub options: Vec<(String, String)>,
    /// Buses the machine provides, for reference checking. Filled for known types by
    /// [`Machine::new`]; add your own for others.
    pub buses: Vec<(String, BusKind)>,
}

impl PartialEq for Machine {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.accel == other.accel && self.options == other.options
    }
}

impl Machine {
    /// A machine of type `kind`, with the buses QEMU gives `pc*`/`q35*` machines.
    pub fn new(kind: &str) -> Self {
        Machine {
            kind: kind.into(),
            accel: None,
            options: Vec::new(),
            buses: Self::known_buses(kind),
        }
    }

    /// Builder: set the accelerator.
    pub fn accel(mut self, accel: &str) -> Self {
        self.accel = Some(accel.into());
        self
    }

    /// Builder: add a machine property.
    pub fn option(mut self, key: &str, value: &str) -> Self {
        self.options.push((key.into(), value.into()));
        self
    }

    /// The value of a machine property, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Buses of the known machine types (`q35`: `pcie.0`, `ide.0`-`ide.5`; `pc`: `pci.0`,
    /// `ide.0`, `ide.1`; both: `isa.0`); none for other types.
    pub fn known_buses(kind: &str) -> Vec<(String, BusKind)> {
        let (pci, ides): (&str, u32) = if kind.starts_with("q35") || kind.starts_with("pc-q35") {
            ("pcie.0", 6)
        } else if kind == "pc" || kind.starts_with("pc-i440fx") {
            ("pci.0", 2)
        } else {
            return Vec::new();
        };
        let mut v = vec![
            (pci.to_owned(), BusKind::Pci),
            ("isa.0".to_owned(), BusKind::Isa),
        ];
        v.extend((0..ides).map(|i| (format!("ide.{i}"), BusKind::Ide)));
        v
    }
}

/// `-cpu MODEL[,key=value...]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cpu {
    /// CPU model (`host`, `max`, `qemu64`, `Skylake-Client`, ...).
    pub model: String,
    /// Properties (`pmu=off`, `x2apic=on`). QEMU splits these at every comma, so values may
    /// not contain one.
    pub features: Vec<(String, String)>,
}

/// `-smp`. Zero/absent fields are left to QEMU.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Smp {
    /// Boot CPUs.
    pub cpus: u64,
    /// Sockets.
    pub sockets: Option<u64>,
    /// Dies per socket.
    pub dies: Option<u64>,
    /// Cores per die.
    pub cores: Option<u64>,
    /// Threads per core.
    pub threads: Option<u64>,
    /// Hot-pluggable maximum.
    pub maxcpus: Option<u64>,
}

/// `-m size=NM[,slots=N,maxmem=NM]`. [`QemuConfig::validate`] applies QEMU's rules: `slots`
/// only with `maxmem`, `maxmem` at least `size` and above it when there are slots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// Boot memory in MiB.
    pub size_mib: u64,
    /// Hotplug slots (DIMMs, NVDIMMs).
    pub slots: Option<u64>,
    /// Maximum memory in MiB (with `slots`).
    pub maxmem_mib: Option<u64>,
}

/// Direct kernel boot: `-kernel`, `-initrd`, `-append`. QEMU takes these arguments whole, so
/// any characters pass (checked against QEMU 7.2 for Linux kernels; a *multiboot* kernel's
/// `-initrd` is a comma-separated module list, where commas do separate).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kernel {
    /// Kernel image.
    pub path: String,
    /// Initial ramdisk.
    pub initrd: Option<String>,
    /// Kernel command line.
    pub append: Option<String>,
}

/// `-rtc base=...[,clock=...][,driftfix=...]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rtc {
    /// `utc`, `localtime` or a date like `2006-06-17T16:01:21`.
    pub base: String,
    /// `host`, `rt` or `vm`.
    pub clock: Option<String>,
    /// `slew` or `none`.
    pub driftfix: Option<String>,
}

/// A QMP monitor on a unix socket QEMU listens on: `-chardev socket,...,server=on,wait=off`
/// and `-mon chardev=ID,mode=control`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QmpSocket {
    /// Chardev id.
    pub id: String,
    /// Socket path.
    pub path: String,
}

/// `-global driver=D,property=P,value=V` (the long form: every part escaped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Global {
    /// Device model.
    pub driver: String,
    /// Property.
    pub property: String,
    /// Value.
    pub value: String,
}

/// `-add-fd fd=N,set=S[,opaque=...]`: put an inherited fd into fd set `S`, usable as
/// `/dev/fdset/S` wherever QEMU opens a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddFd {
    /// The fd number as the child sees it (see [`crate::FdPlan`]).
    pub fd: i32,
    /// The fd set.
    pub set: u64,
    /// Free-form note shown by `query-fdsets`.
    pub opaque: Option<String>,
}

/// Display choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Display {
    /// `-display none`: no display, serial/monitor untouched.
    None,
    /// `-nographic`: no display, serial and monitor on stdio.
    Nographic,
}

/// Switches without values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Knobs {
    /// `-no-user-config`.
    pub no_user_config: bool,
    /// `-nodefaults`.
    pub nodefaults: bool,
    /// `-display none` or `-nographic`.
    pub display: Option<Display>,
    /// `-daemonize` (not supported by [`crate::Launcher`]).
    pub daemonize: bool,
    /// `-mem-path DIR`: back guest RAM with files in this directory (a hugetlbfs mount for
    /// hugepages). The modern equivalent is a [`crate::devices::MemoryBackend`] named by the
    /// machine option `memory-backend=`.
    pub hugepages: Option<String>,
    /// `-mem-prealloc`.
    pub mem_prealloc: bool,
    /// Lock guest memory (govmm's mlock/realtime): `-overcommit mem-lock=on`.
    pub mem_lock: bool,
    /// `-S`: do not start the CPUs.
    pub paused: bool,
}

/// A QEMU configuration. Build it, [`validate`](Self::validate) it, turn it into argv with
/// [`build`](Self::build); [`parse`](Self::parse) reads such argv back.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QemuConfig {
    /// `-name`.
    pub name: Option<Name>,
    /// `-uuid` (8-4-4-4-12 hex digits).
    pub uuid: Option<String>,
    /// `-machine`.
    pub machine: Option<Machine>,
    /// `-cpu`.
    pub cpu: Option<Cpu>,
    /// `-smp`.
    pub smp: Option<Smp>,
    /// `-m`.
    pub memory: Option<Memory>,
    /// `-kernel`/`-initrd`/`-append`.
    pub kernel: Option<Kernel>,
    /// `-bios`.
    pub bios: Option<String>,
    /// `-rtc`.
    pub rtc: Option<Rtc>,
    /// `-vga TYPE` (`none`, `std`, `virtio`, ...).
    pub vga: Option<String>,
    /// QMP sockets.
    pub qmp: Vec<QmpSocket>,
    /// `-global`s, any number.
    pub globals: Vec<Global>,
    /// Switches.
    pub knobs: Knobs,
    /// `-add-fd`s.
    pub add_fds: Vec<AddFd>,
    /// Devices, in order.
    pub devices: Vec<Box<dyn Device>>,
}

fn push(argv: &mut Vec<String>, flag: &str, arg: String) {
    argv.push(flag.to_owned());
    argv.push(arg);
}

fn raw(what: &str, v: &str) -> Result<String> {
    // options QEMU takes whole (no key=value parsing): only NUL is impossible
    escape_value(what, v)?;
    Ok(v.to_owned())
}

/// The most memory hotplug slots QEMU gives `pc` and `q35` machines (`ACPI_MAX_RAM_SLOTS`;
/// more: "unsupported amount of memory slots").
pub const MAX_PC_MEMORY_SLOTS: u64 = 256;

fn nonempty(kind: &str, field: &'static str, v: &str) -> Result<()> {
    if v.is_empty() {
        return Err(Error::Missing {
            kind: kind.to_owned(),
            field,
        });
    }
    Ok(())
}

fn mib(n: u64) -> String {
    format!("{n}M")
}

fn parse_mib(s: &str) -> Option<u64> {
    let n = s.strip_suffix('M')?;
    let v: u64 = n.parse().ok()?;
    (v.to_string() == n).then_some(v)
}

fn check_uuid(u: &str) -> Result<()> {
    let ok = u.len() == 36
        && u.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    if ok {
        return Ok(());
    }
    Err(Error::Unrepresentable {
        what: "uuid".into(),
        value: u.into(),
        reason: "is not 8-4-4-4-12 hex digits",
    })
}

impl QemuConfig {
    /// An empty configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builder: add a device.
    pub fn device(mut self, d: impl Device) -> Self {
        self.devices.push(Box::new(d));
        self
    }

    /// Builder: add a QMP socket.
    pub fn qmp(mut self, id: &str, path: &str) -> Self {
        self.qmp.push(QmpSocket {
            id: id.into(),
            path: path.into(),
        });
        self
    }

    /// The memory backend named by the machine option `memory-backend=`, if any.
    pub fn main_memory_backend(&self) -> Option<&MemoryBackend> {
        let id = self.machine.as_ref()?.get("memory-backend")?;
        self.devices
            .iter()
            .filter_map(|d| d.as_any().downcast_ref::<MemoryBackend>())
            .find(|m| m.id == id)
    }

    /// Every fd number (as the child sees it) the configuration refers to.
    pub fn fds(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self.add_fds.iter().map(|a| a.fd).collect();
        v.extend(self.devices.iter().flat_map(|d| d.fds()));
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Check the whole configuration: ids well-formed and unique per namespace, every reference
    /// resolved, no impossible combination, and every option value representable (the argv is
    /// rendered once and dropped, so nothing [`build`](Self::build) would refuse passes here).
    /// [`build`](Self::build) calls this first.
    pub fn validate(&self) -> Result<()> {
        self.check_graph()?;
        self.render(&Syntax::TEXT).map(drop)
    }

    /// Ids, references and combinations (everything of `validate` but the rendering).
    fn check_graph(&self) -> Result<()> {
        let mut declared: BTreeMap<IdRef, String> = BTreeMap::new();
        let mut declare = |r: IdRef, who: String| -> Result<()> {
            if let Some(first) = declared.get(&r) {
                return Err(Error::DuplicateId {
                    namespace: r.0,
                    id: r.1,
                    first: first.clone(),
                    second: who,
                });
            }
            declared.insert(r, who);
            Ok(())
        };
        // no -machine: QEMU's default machine (pc) and its buses
        let (kind, buses) = match &self.machine {
            Some(m) => (m.kind.as_str(), m.buses.clone()),
            None => ("pc (default)", Machine::known_buses("pc")),
        };
        for (b, k) in buses {
            declare((Namespace::Bus(k), b), format!("machine {kind}"))?;
        }
        for q in &self.qmp {
            check_id("chardev id", &q.id)?;
            nonempty(&format!("QMP socket `{}`", q.id), "path", &q.path)?;
            declare(
                (Namespace::Chardev, q.id.clone()),
                format!("QMP socket `{}`", q.id),
            )?;
        }
        for d in &self.devices {
            for r in d.declares() {
                declare(r, d.describe())?;
            }
        }
        for d in &self.devices {
            for r in d.references() {
                if declared.contains_key(&r) {
                    continue;
                }
                if let Namespace::Bus(want) = r.0 {
                    let other = declared
                        .keys()
                        .find(|(ns, id)| matches!(ns, Namespace::Bus(_)) && *id == r.1);
                    if let Some((have, _)) = other {
                        return Err(Error::Impossible(format!(
                            "{} plugs into {} `{}`, which is a {have}, not a {}",
                            d.describe(),
                            Namespace::Bus(want),
                            r.1,
                            Namespace::Bus(want)
                        )));
                    }
                }
                return Err(Error::DanglingReference {
                    from: d.describe(),
                    namespace: r.0,
                    id: r.1,
                });
            }
            d.check(self)?;
        }
        if let Some(smp) = &self.smp {
            if smp.cpus == 0 {
                return Err(Error::Impossible("smp: cpus must be at least 1".into()));
            }
            if let Some(max) = smp.maxcpus {
                if max < smp.cpus {
                    return Err(Error::Impossible(format!(
                        "smp: maxcpus {max} < cpus {}",
                        smp.cpus
                    )));
                }
            }
            let topo = [smp.sockets, smp.dies, smp.cores, smp.threads];
            if topo.iter().all(Option::is_some) {
                let product = topo
                    .iter()
                    .try_fold(1u64, |p, t| p.checked_mul(t.unwrap_or(1)))
                    .ok_or_else(|| {
                        Error::Impossible(
                            "smp: sockets*dies*cores*threads overflows 64 bits".into(),
                        )
                    })?;
                let max = smp.maxcpus.unwrap_or(smp.cpus);
                if product != max {
                    return Err(Error::Impossible(format!(
                        "smp: sockets*dies*cores*threads = {product} but maxcpus (or cpus) = {max}"
                    )));
                }
            }
        }
        if let Some(m) = &self.memory {
            self.check_memory(m)?;
        }
        self.check_paths()?;
        if let Some(id) = self.machine.as_ref().and_then(|m| m.get("memory-backend")) {
            let Some(b) = self.main_memory_backend() else {
                return Err(Error::DanglingReference {
                    from: "machine option memory-backend".into(),
                    namespace: Namespace::Object,
                    id: id.to_owned(),
                });
            };
            if self.knobs.hugepages.is_some() {
                return Err(Error::Impossible(format!(
                    "-mem-path (hugepages) cannot be combined with -machine memory-backend={id}: \
                     give the backend its mem-path instead"
                )));
            }
            let want = self
                .memory
                .as_ref()
                .and_then(|m| m.size_mib.checked_mul(1 << 20));
            if want != Some(b.size) {
                return Err(Error::Impossible(format!(
                    "memory backend `{}` is {} bytes but -m is {:?} MiB: they must match",
                    b.id,
                    b.size,
                    self.memory.as_ref().map(|m| m.size_mib)
                )));
            }
        }
        if self.knobs.daemonize && self.knobs.display == Some(Display::Nographic) {
            return Err(Error::Impossible(
                "-daemonize cannot be combined with -nographic".into(),
            ));
        }
        let mut sets = BTreeSet::new();
        for a in &self.add_fds {
            if a.fd < 3 {
                return Err(Error::FdPlan(format!(
                    "-add-fd fd={} would pass stdin/stdout/stderr",
                    a.fd
                )));
            }
            if !sets.insert(a.fd) {
                return Err(Error::FdPlan(format!("fd {} added to fd sets twice", a.fd)));
            }
        }
        Ok(())
    }

    /// `-m`, with QEMU 7.2's rules (`set_memory_options` in softmmu/vl.c and the pc machine's
    /// slot limit): size at least 1 MiB; `slots` (even 0) only with `maxmem`; `maxmem` at
    /// least `size`; with slots > 0, `maxmem` above `size` ("memory slots were specified but
    /// maximum memory size ... is equal to the initial memory size"); `maxmem` alone is fine.
    /// On `pc`/`q35` machines at most [`MAX_PC_MEMORY_SLOTS`] slots.
    fn check_memory(&self, m: &Memory) -> Result<()> {
        if m.size_mib == 0 {
            return Err(Error::Impossible(
                "memory: size must be at least 1 MiB".into(),
            ));
        }
        match (m.slots, m.maxmem_mib) {
            (Some(_), None) => {
                return Err(Error::Impossible(
                    "memory: slots need maxmem (QEMU: \"slots specified but no max-size\")".into(),
                ))
            }
            (_, Some(max)) if max < m.size_mib => {
                return Err(Error::Impossible(format!(
                    "memory: maxmem {max} MiB < size {} MiB",
                    m.size_mib
                )))
            }
            (Some(slots), Some(max)) if slots > 0 && max == m.size_mib => {
                return Err(Error::Impossible(format!(
                    "memory: {slots} slots but maxmem = size = {max} MiB leaves nothing to \
                     plug: raise maxmem above size or drop the slots"
                )))
            }
            _ => {}
        }
        let kind = self.machine.as_ref().map_or("pc", |k| k.kind.as_str());
        let pc = !Machine::known_buses(kind).is_empty();
        if let Some(slots) = m.slots.filter(|s| pc && *s > MAX_PC_MEMORY_SLOTS) {
            return Err(Error::Impossible(format!(
                "memory: {slots} slots; machine {kind} takes at most {MAX_PC_MEMORY_SLOTS}"
            )));
        }
        Ok(())
    }

    /// Files and values QEMU needs non-empty: `-kernel`, `-initrd`, `-bios`, `-mem-path`, the
    /// parts of `-rtc`, `-vga`. (QEMU 7.2 fails on each: "could not open kernel file ''",
    /// "could not load PC BIOS ''", "can't open backing store  for guest RAM", "invalid
    /// datetime format".)
    fn check_paths(&self) -> Result<()> {
        if let Some(k) = &self.kernel {
            nonempty("-kernel", "path", &k.path)?;
            if let Some(i) = &k.initrd {
                nonempty("-initrd", "path", i)?;
            }
        }
        if let Some(b) = &self.bios {
            nonempty("-bios", "path", b)?;
        }
        if let Some(p) = &self.knobs.hugepages {
            nonempty("-mem-path", "path", p)?;
        }
        if let Some(r) = &self.rtc {
            nonempty("-rtc", "base", &r.base)?;
            if let Some(c) = &r.clock {
                nonempty("-rtc", "clock", c)?;
            }
            if let Some(d) = &r.driftfix {
                nonempty("-rtc", "driftfix", d)?;
            }
        }
        if let Some(v) = &self.vga {
            nonempty("-vga", "type", v)?;
        }
        Ok(())
    }

    /// Validate, then write the argv (without the binary) in `syntax`.
    pub fn build(&self, syntax: &Syntax) -> Result<Vec<String>> {
        self.check_graph()?;
        // validate()'s text rendering is the argv itself when text is what was asked for.
        let text = self.render(&Syntax::TEXT)?;
        if *syntax == Syntax::TEXT {
            Ok(text)
        } else {
            self.render(syntax)
        }
    }

    /// The argv in `syntax`, assuming [`check_graph`](Self::check_graph) passed.
    fn render(&self, syntax: &Syntax) -> Result<Vec<String>> {
        let mut a = Vec::new();
        let text = |o: Opt| o.render_text();
        if let Some(n) = &self.name {
            push(
                &mut a,
                "-name",
                text(
                    Opt::bare("-name")
                        .prop("guest", n.guest.clone())
                        .flag_on("debug-threads", n.debug_threads),
                )?,
            );
        }
        if let Some(u) = &self.uuid {
            check_uuid(u)?;
            push(&mut a, "-uuid", u.clone());
        }
        if let Some(m) = &self.machine {
            let mut o = Opt::new("-machine", m.kind.clone()).prop_opt("accel", m.accel.clone());
            for (k, v) in &m.options {
                o = o.prop(k, v.clone());
            }
            push(&mut a, "-machine", text(o)?);
        }
        if let Some(c) = &self.cpu {
            check_implied("cpu model", &c.model)?;
            let mut s = c.model.clone();
            for (k, v) in &c.features {
                check_key("-cpu", k)?;
                check_implied(&format!("value of cpu feature {k}"), v)?;
                s.push_str(&format!(",{k}={v}"));
            }
            push(&mut a, "-cpu", s);
        }
        if let Some(s) = &self.smp {
            let o = Opt::bare("-smp")
                .prop("cpus", s.cpus)
                .prop_opt("sockets", s.sockets)
                .prop_opt("dies", s.dies)
                .prop_opt("cores", s.cores)
                .prop_opt("threads", s.threads)
                .prop_opt("maxcpus", s.maxcpus);
            push(&mut a, "-smp", text(o)?);
        }
        if let Some(m) = &self.memory {
            let o = Opt::bare("-m")
                .prop("size", mib(m.size_mib))
                .prop_opt("slots", m.slots)
                .prop_opt("maxmem", m.maxmem_mib.map(mib));
            push(&mut a, "-m", text(o)?);
        }
        if self.knobs.mem_lock {
            push(&mut a, "-overcommit", "mem-lock=on".into());
        }
        if let Some(p) = &self.knobs.hugepages {
            push(&mut a, "-mem-path", raw("-mem-path", p)?);
        }
        if self.knobs.mem_prealloc {
            a.push("-mem-prealloc".into());
        }
        if let Some(k) = &self.kernel {
            push(&mut a, "-kernel", raw("-kernel", &k.path)?);
            if let Some(i) = &k.initrd {
                push(&mut a, "-initrd", raw("-initrd", i)?);
            }
            if let Some(ap) = &k.append {
                push(&mut a, "-append", raw("-append", ap)?);
            }
        }
        if let Some(b) = &self.bios {
            push(&mut a, "-bios", raw("-bios", b)?);
        }
        if let Some(r) = &self.rtc {
            let o = Opt::bare("-rtc")
                .prop("base", r.base.clone())
                .prop_opt("clock", r.clock.clone())
                .prop_opt("driftfix", r.driftfix.clone());
            push(&mut a, "-rtc", text(o)?);
        }
        if let Some(v) = &self.vga {
            check_implied("-vga type", v)?;
            push(&mut a, "-vga", v.clone());
        }
        let k = &self.knobs;
        for (on, flag) in [
            (k.no_user_config, "-no-user-config"),
            (k.nodefaults, "-nodefaults"),
            (k.daemonize, "-daemonize"),
            (k.paused, "-S"),
        ] {
            if on {
                a.push(flag.into());
            }
        }
        match k.display {
            Some(Display::None) => push(&mut a, "-display", "none".into()),
            Some(Display::Nographic) => a.push("-nographic".into()),
            None => {}
        }
        for q in &self.qmp {
            let o = Opt::new("-chardev", "socket")
                .prop("id", q.id.clone())
                .prop("path", q.path.clone())
                .prop("server", true)
                .prop("wait", false);
            push(&mut a, "-chardev", text(o)?);
            push(
                &mut a,
                "-mon",
                text(
                    Opt::bare("-mon")
                        .prop("chardev", q.id.clone())
                        .prop("mode", "control"),
                )?,
            );
        }
        for g in &self.globals {
            let o = Opt::bare("-global")
                .prop("driver", g.driver.clone())
                .prop("property", g.property.clone())
                .prop("value", g.value.clone());
            push(&mut a, "-global", text(o)?);
        }
        for f in &self.add_fds {
            let o = Opt::bare("-add-fd")
                .prop("fd", f.fd.to_string())
                .prop("set", f.set)
                .prop_opt("opaque", f.opaque.clone());
            push(&mut a, "-add-fd", text(o)?);
        }
        for d in &self.devices {
            for o in d.opts()? {
                let arg = o.render(syntax)?;
                push(&mut a, &o.flag.clone(), arg);
            }
        }
        Ok(a)
    }

    /// Read argv (without the binary) back into a configuration, with the built-in device kinds.
    ///
    /// # What parse guarantees
    ///
    /// - **The argv, exactly**: for every configuration `c` and syntax `s` where `c.build(s)`
    ///   succeeds, `parse(build(c, s))` succeeds and builds (in `s`) the same argv, byte for
    ///   byte. A typed kind claims options only where it would write them back identically
    ///   (property order, values, and for JSON arguments the JSON types); anything else stays a
    ///   [`Generic`]. One exception: a [`Generic`] holding [`crate::Prop::Text`] values (read
    ///   from text syntax) is written in text syntax even under a JSON syntax; when it spells a
    ///   typed kind, parse reads that kind, which the JSON syntax writes as JSON: the argument
    ///   differs in syntax only, and QEMU reads both alike.
    /// - **The configuration, for typed kinds**: `parse(build(c)) == c` when `c`'s devices are
    ///   built-in typed kinds (or registered ones, with [`parse_with`](Self::parse_with)) and
    ///   generic options that spell none of them. Otherwise the configuration read back can
    ///   differ from `c` while its argv is the same:
    ///   - a [`Generic`] option (or run of them) spelled exactly like a typed kind writes it is
    ///     read back as that kind: `Generic` `-device virtio-balloon-pci,id=b` becomes a
    ///     [`crate::devices::Balloon`], a generic `-object memory-backend-ram,...` a
    ///     [`MemoryBackend`];
    ///   - options of neighbouring devices that together spell one typed kind are read back as
    ///     that kind: a [`crate::devices::Block`] without device followed by a `-device
    ///     virtio-blk-pci,id=..,drive=NODE` becomes one `Block` with its device; a client
    ///     socket [`crate::devices::Chardev`] followed by a vhost-user `-device` on it a
    ///     [`crate::devices::VhostUserDevice`] (likewise [`crate::devices::Net`],
    ///     [`crate::devices::Rng`], ...);
    ///   - a machine option `accel` given first ([`Machine::option`]) is read back as
    ///     [`Machine::accel`] (the field is written first); an `accel` option elsewhere stays
    ///     an option;
    ///   - values of generic options read from text are [`crate::Prop::Text`] (equal, as
    ///     [`crate::Prop`]s compare, to the typed values they spell).
    /// - [`Machine::buses`] are not on the command line: parse gives the machine the buses
    ///   [`Machine::known_buses`] knows for its type, plus every bus a device plugs into that
    ///   nothing else declares (it can only have been the machine's when the argv was built;
    ///   so a parsed configuration validates whenever the built one did). With no `-machine`
    ///   there is nothing to add them to: [`validate`](Self::validate) assumes QEMU's `pc`.
    pub fn parse<S: AsRef<str>>(argv: &[S]) -> Result<Self> {
        Self::parse_with(argv, &Parsers::default())
    }

    /// Read argv back, recognising devices with `parsers` (add your own kinds there). Options no
    /// kind claims are kept as [`Generic`]; options outside what [`build`](Self::build) writes
    /// are an error, never skipped.
    pub fn parse_with<S: AsRef<str>>(argv: &[S], parsers: &Parsers) -> Result<Self> {
        let mut c = QemuConfig::new();
        let mut dev_opts: Vec<(usize, Opt)> = Vec::new();
        let mut i = 0;
        let perr = |index: usize, arg: &str, reason: String| Error::Parse {
            index,
            arg: arg.to_owned(),
            reason,
        };
        while i < argv.len() {
            let flag = argv[i].as_ref();
            let idx = i;
            let takes_arg = !matches!(
                flag,
                "-mem-prealloc"
                    | "-no-user-config"
                    | "-nodefaults"
                    | "-daemonize"
                    | "-S"
                    | "-nographic"
            );
            let arg = if takes_arg {
                i += 1;
                argv.get(i)
                    .map(|s| s.as_ref())
                    .ok_or_else(|| perr(idx, flag, "missing argument".into()))?
            } else {
                ""
            };
            i += 1;
            let opt = |f: &str| Opt::parse(f, arg).map_err(|e| perr(idx + 1, arg, e));
            let bad = |what: &str| {
                perr(
                    idx + 1,
                    arg,
                    format!("unexpected {what} (not written by this crate)"),
                )
            };
            macro_rules! once {
                ($field:expr, $v:expr) => {{
                    if $field.is_some() {
                        return Err(perr(idx, flag, "given twice".into()));
                    }
                    $field = Some($v);
                }};
            }
            match flag {
                "-name" => {
                    let o = opt("-name")?;
                    let mut r = PropReader::new(&o);
                    let guest = r.str("guest").ok_or_else(|| bad("-name without guest="))?;
                    let debug_threads = r
                        .bool("debug-threads")
                        .map_err(|_| bad("debug-threads value"))?
                        .unwrap_or(false);
                    if !r.done() {
                        return Err(bad("-name property"));
                    }
                    once!(
                        c.name,
                        Name {
                            guest,
                            debug_threads
                        }
                    );
                }
                "-uuid" => once!(c.uuid, arg.to_owned()),
                "-machine" => {
                    let o = opt("-machine")?;
                    let kind = o
                        .implied
                        .clone()
                        .ok_or_else(|| bad("-machine without type"))?;
                    let mut m = Machine::new(&kind);
                    // `accel` is the field only where build writes the field: first
                    for (i, (k, v)) in o.props.iter().enumerate() {
                        if k == "accel" && i == 0 {
                            m.accel = Some(v.text());
                        } else {
                            m.options.push((k.clone(), v.text()));
                        }
                    }
                    once!(c.machine, m);
                }
                "-cpu" => {
                    let mut parts = arg.split(',');
                    let model = parts.next().unwrap_or_default().to_owned();
                    let mut features = Vec::new();
                    for p in parts {
                        let (k, v) = p
                            .split_once('=')
                            .ok_or_else(|| bad("-cpu feature without ="))?;
                        features.push((k.to_owned(), v.to_owned()));
                    }
                    once!(c.cpu, Cpu { model, features });
                }
                "-smp" => {
                    let o = opt("-smp")?;
                    let mut r = PropReader::new(&o);
                    let mut n = |k: &str| r.num(k).map_err(|_| bad("-smp value"));
                    let s = Smp {
                        cpus: n("cpus")?.ok_or_else(|| bad("-smp without cpus="))?,
                        sockets: n("sockets")?,
                        dies: n("dies")?,
                        cores: n("cores")?,
                        threads: n("threads")?,
                        maxcpus: n("maxcpus")?,
                    };
                    if !r.done() {
                        return Err(bad("-smp property"));
                    }
                    once!(c.smp, s);
                }
                "-m" => {
                    let o = opt("-m")?;
                    let mut r = PropReader::new(&o);
                    let size_mib = r
                        .str("size")
                        .and_then(|s| parse_mib(&s))
                        .ok_or_else(|| bad("-m size"))?;
                    let slots = r.num("slots").map_err(|_| bad("-m slots"))?;
                    let maxmem_mib = match r.str("maxmem") {
                        Some(s) => Some(parse_mib(&s).ok_or_else(|| bad("-m maxmem"))?),
                        None => None,
                    };
                    if !r.done() {
                        return Err(bad("-m property"));
                    }
                    once!(
                        c.memory,
                        Memory {
                            size_mib,
                            slots,
                            maxmem_mib
                        }
                    );
                }
                "-overcommit" if arg == "mem-lock=on" => c.knobs.mem_lock = true,
                "-mem-path" => once!(c.knobs.hugepages, arg.to_owned()),
                "-mem-prealloc" => c.knobs.mem_prealloc = true,
                "-kernel" => {
                    let k = c.kernel.get_or_insert_with(Kernel::default);
                    if !k.path.is_empty() {
                        return Err(perr(idx, flag, "given twice".into()));
                    }
                    k.path = arg.to_owned();
                }
                "-initrd" => once!(
                    c.kernel.get_or_insert_with(Kernel::default).initrd,
                    arg.to_owned()
                ),
                "-append" => once!(
                    c.kernel.get_or_insert_with(Kernel::default).append,
                    arg.to_owned()
                ),
                "-bios" => once!(c.bios, arg.to_owned()),
                "-rtc" => {
                    let o = opt("-rtc")?;
                    let mut r = PropReader::new(&o);
                    let rtc = Rtc {
                        base: r.str("base").ok_or_else(|| bad("-rtc without base="))?,
                        clock: r.str("clock"),
                        driftfix: r.str("driftfix"),
                    };
                    if !r.done() {
                        return Err(bad("-rtc property"));
                    }
                    once!(c.rtc, rtc);
                }
                "-vga" => once!(c.vga, arg.to_owned()),
                "-no-user-config" => c.knobs.no_user_config = true,
                "-nodefaults" => c.knobs.nodefaults = true,
                "-daemonize" => c.knobs.daemonize = true,
                "-S" => c.knobs.paused = true,
                "-nographic" => once!(c.knobs.display, Display::Nographic),
                "-display" if arg == "none" => once!(c.knobs.display, Display::None),
                "-mon" => {
                    let o = opt("-mon")?;
                    let mut r = PropReader::new(&o);
                    let id = r
                        .str("chardev")
                        .ok_or_else(|| bad("-mon without chardev="))?;
                    if r.str("mode").as_deref() != Some("control") || !r.done() {
                        return Err(bad("-mon form"));
                    }
                    // the chardev just before it is the QMP socket
                    let Some((_, ch)) = dev_opts.pop() else {
                        return Err(bad("-mon without a preceding -chardev"));
                    };
                    let mut r = PropReader::new(&ch);
                    let ok = ch.flag == "-chardev"
                        && ch.implied.as_deref() == Some("socket")
                        && r.str("id").as_deref() == Some(id.as_str())
                        && r.bool("server").ok() == Some(Some(true))
                        && r.bool("wait").ok() == Some(Some(false));
                    let path = r.str("path");
                    match path {
                        Some(path) if ok && r.done() => c.qmp.push(QmpSocket { id, path }),
                        _ => return Err(bad("-mon not preceded by its listening socket chardev")),
                    }
                }
                "-global" => {
                    let o = opt("-global")?;
                    let mut r = PropReader::new(&o);
                    let g = match (r.str("driver"), r.str("property"), r.str("value")) {
                        (Some(driver), Some(property), Some(value)) if r.done() => Global {
                            driver,
                            property,
                            value,
                        },
                        _ => return Err(bad("-global form (write driver=,property=,value=)")),
                    };
                    c.globals.push(g);
                }
                "-add-fd" => {
                    let o = opt("-add-fd")?;
                    let mut r = PropReader::new(&o);
                    let fd = r
                        .str("fd")
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| bad("-add-fd fd"))?;
                    let set = r
                        .num("set")
                        .ok()
                        .flatten()
                        .ok_or_else(|| bad("-add-fd set"))?;
                    let opaque = r.str("opaque");
                    if !r.done() {
                        return Err(bad("-add-fd property"));
                    }
                    c.add_fds.push(AddFd { fd, set, opaque });
                }
                "-device" | "-object" | "-netdev" | "-blockdev" | "-chardev" | "-fsdev"
                | "-fw_cfg" => {
                    dev_opts.push((idx, opt(flag)?));
                }
                _ => {
                    return Err(perr(
                        idx,
                        flag,
                        "unknown option (not written by this crate)".into(),
                    ))
                }
            }
        }
        if let Some(k) = &c.kernel {
            if k.path.is_empty() {
                return Err(perr(0, "-initrd/-append", "given without -kernel".into()));
            }
        }
        let opts: Vec<Opt> = dev_opts.iter().map(|(_, o)| o.clone()).collect();
        let mut j = 0;
        while j < opts.len() {
            if let Some((n, d)) = parsers.parse_one(&opts[j..]) {
                c.devices.push(d);
                j += n;
            } else {
                let g = Generic {
                    opt: opts[j].clone(),
                };
                if g.declares().is_empty() && opts[j].flag != "-device" {
                    let (idx, o) = &dev_opts[j];
                    return Err(perr(idx + 1, &o.to_string(), "option without id".into()));
                }
                c.devices.push(Box::new(g));
                j += 1;
            }
        }
        c.infer_machine_buses();
        Ok(c)
    }

    /// [`Machine::buses`] are not on the command line. Besides the known ones
    /// ([`Machine::new`]), a bus that devices plug into and nothing declares (no device, no
    /// known machine bus, of any kind) can only have been one of the machine's when the argv
    /// was built (validation requires it): it is added to the machine's buses with the kind the
    /// device expects, so the parsed configuration validates as the built one did.
    fn infer_machine_buses(&mut self) {
        let QemuConfig {
            machine: Some(m),
            devices,
            ..
        } = self
        else {
            return;
        };
        let mut names: BTreeSet<String> = m.buses.iter().map(|(b, _)| b.clone()).collect();
        names.extend(
            devices
                .iter()
                .flat_map(|d| d.declares())
                .filter(|(ns, _)| matches!(ns, Namespace::Bus(_)))
                .map(|(_, b)| b),
        );
        for d in devices.iter() {
            for (ns, b) in d.references() {
                if let Namespace::Bus(kind) = ns {
                    if names.insert(b.clone()) {
                        m.buses.push((b, kind));
                    }
                }
            }
        }
    }
}
