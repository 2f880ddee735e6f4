//! Typed views of the top-level parts of a domain: `<vcpu>`, `<os>`, `<cpu>`, `<clock>`.

use serde::{Deserialize, Serialize};

use super::error::XmlError;
use super::tree::{Element, Node};
use super::types::{attr_bool, attr_enum, attr_num, attr_string, string_enum, yes_no};

/// Which attributes, text and child elements of an element a typed view models, recursively.
///
/// [`XmlPart::merge_into`] uses it to write a typed value over an existing element while
/// keeping everything the type does not model, at every level it models.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// Modelled attributes; `"*"` means every attribute.
    pub attrs: &'static [&'static str],
    /// Whether the element's own text is modelled.
    pub text: bool,
    /// Modelled child elements, each with its own schema.
    pub children: &'static [(&'static str, Schema)],
}

impl Schema {
    /// An element whose listed attributes are modelled, nothing else.
    pub const fn attrs(attrs: &'static [&'static str]) -> Schema {
        Schema {
            attrs,
            text: false,
            children: &[],
        }
    }

    /// An element whose listed attributes and text are modelled.
    pub const fn text(attrs: &'static [&'static str]) -> Schema {
        Schema {
            attrs,
            text: true,
            children: &[],
        }
    }
}

/// A typed view of one XML element: how to read it from the tree and write it back.
///
/// Reading ignores what the type does not model; writing produces only what it models.
/// [`merge_into`](Self::merge_into) puts a typed value back into an existing element while
/// keeping everything the type does not model.
pub trait XmlPart: Sized {
    /// The element name (`disk`, `os`, ...).
    const ELEMENT: &'static str;
    /// What the type models.
    const SCHEMA: Schema;

    /// Reads the typed value; fails when a modelled value does not fit its type.
    fn from_element(e: &Element) -> Result<Self, XmlError>;

    /// Writes the typed value as a fresh element.
    fn to_element(&self) -> Element;

    /// Writes the typed value over `old`: modelled attributes, text and child elements come
    /// from `self` (and are dropped when `self` has none); everything else in `old` (unknown
    /// attributes, unknown child elements, comments) stays where it was, also inside modelled
    /// child elements.
    fn merge_into(&self, old: &Element) -> Element {
        merge(old, self.to_element(), &Self::SCHEMA)
    }
}

/// See [`XmlPart::merge_into`].
pub(crate) fn merge(old: &Element, new: Element, schema: &Schema) -> Element {
    let mut out = Element::new(new.name.clone());
    for (k, v) in &old.attrs {
        if schema.attrs.contains(&"*") || schema.attrs.contains(&k.as_str()) {
            if let Some(nv) = new.attr(k) {
                out.attrs.push((k.clone(), nv.to_string()));
            }
        } else {
            out.attrs.push((k.clone(), v.clone()));
        }
    }
    for (k, v) in &new.attrs {
        if out.attr(k).is_none() {
            out.attrs.push((k.clone(), v.clone()));
        }
    }
    // New modelled children, consumed in order as old ones of the same name are met.
    let mut pending: Vec<Option<Element>> = new.elements().cloned().map(Some).collect();
    let new_text: Vec<Node> = new
        .children
        .iter()
        .filter(|n| matches!(n, Node::Text(_) | Node::CData(_)))
        .cloned()
        .collect();
    let mut text_done = false;
    for n in &old.children {
        match n {
            Node::Element(e) => match schema.children.iter().find(|(name, _)| *name == e.name) {
                None => out.children.push(n.clone()),
                Some((_, child_schema)) => {
                    let slot = pending
                        .iter_mut()
                        .find(|p| p.as_ref().is_some_and(|p| p.name == e.name));
                    match slot.and_then(Option::take) {
                        Some(replacement) => {
                            out.children
                                .push(Node::Element(merge(e, replacement, child_schema)))
                        }
                        None => {
                            if matches!(out.children.last(), Some(Node::Text(t)) if t.trim().is_empty())
                            {
                                out.children.pop();
                            }
                        }
                    }
                }
            },
            // A modelled text owns every text node of the element (the typed value read them
            // all, concatenated): the new text goes where the old text began, the rest goes.
            Node::Text(t) | Node::CData(t) if schema.text => {
                if !text_done && !t.trim().is_empty() {
                    out.children.extend(new_text.iter().cloned());
                    text_done = true;
                }
            }
            other => out.children.push(other.clone()),
        }
    }
    if schema.text && !text_done {
        // Old had only blank text (now dropped) or none: put the new text first.
        for (i, t) in new_text.into_iter().enumerate() {
            out.children.insert(i, t);
        }
    }
    for e in pending.into_iter().flatten() {
        out.append_element(e);
    }
    out
}

/// `<vcpu placement='static' current='1' cpuset='0-3'>2</vcpu>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Vcpu {
    /// Maximum number of virtual CPUs (the element text).
    pub count: u32,
    /// `placement` (`static` or `auto`).
    pub placement: Option<VcpuPlacement>,
    /// `current`: vCPUs online at boot, when fewer than `count`.
    pub current: Option<u32>,
    /// `cpuset`: host CPUs the vCPUs may run on, in libvirt's list syntax.
    pub cpuset: Option<String>,
}

string_enum! {
    /// How vCPUs are placed on host CPUs.
    VcpuPlacement { Static => "static", Auto => "auto" }
}

impl Vcpu {
    /// `count` vCPUs, nothing else set.
    pub fn new(count: u32) -> Self {
        Vcpu {
            count,
            ..Default::default()
        }
    }
}

impl XmlPart for Vcpu {
    const ELEMENT: &'static str = "vcpu";
    const SCHEMA: Schema = Schema::text(&["placement", "current", "cpuset"]);

    fn from_element(e: &Element) -> Result<Self, XmlError> {
        let text = e.text();
        let count = text
            .trim()
            .parse()
            .map_err(|_| super::types::invalid("vcpu", &text, "expected a count"))?;
        Ok(Vcpu {
            count,
            placement: attr_enum(e, "placement"),
            current: attr_num(e, "current")?,
            cpuset: attr_string(e, "cpuset"),
        })
    }

    fn to_element(&self) -> Element {
        Element::new("vcpu")
            .with_opt_attr("placement", self.placement.as_ref())
            .with_opt_attr("cpuset", self.cpuset.as_ref())
            .with_opt_attr("current", self.current)
            .with_text(self.count.to_string())
    }
}

string_enum! {
    /// A `<boot dev='...'/>` device.
    BootDevice { Hd => "hd", Cdrom => "cdrom", Fd => "fd", Network => "network" }
}

/// `<loader readonly='yes' type='pflash'>/path</loader>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Loader {
    /// The firmware path (element text).
    pub path: Option<String>,
    /// `readonly`.
    pub readonly: Option<bool>,
    /// `type` (`rom`, `pflash`).
    pub kind: Option<String>,
    /// `secure`.
    pub secure: Option<bool>,
}

/// `<nvram template='...'>/path</nvram>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Nvram {
    /// The per-domain NVRAM file (element text).
    pub path: Option<String>,
    /// `template`: the file it is created from.
    pub template: Option<String>,
}

/// `<os>`: guest type, architecture, machine, boot order, direct kernel boot, firmware.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Os {
    /// The `<type>` text (`hvm`, `linux`, `exe`, `xen`).
    pub kind: Option<String>,
    /// `<type arch='...'>`.
    pub arch: Option<String>,
    /// `<type machine='...'>`.
    pub machine: Option<String>,
    /// `firmware` attribute of `<os>` (`bios`, `efi`).
    pub firmware: Option<String>,
    /// `<boot dev='...'/>` in order.
    pub boot: Vec<BootDevice>,
    /// `<kernel>`.
    pub kernel: Option<String>,
    /// `<initrd>`.
    pub initrd: Option<String>,
    /// `<cmdline>`.
    pub cmdline: Option<String>,
    /// `<loader>`.
    pub loader: Option<Loader>,
    /// `<nvram>`.
    pub nvram: Option<Nvram>,
}

impl Os {
    /// `<os><type arch=.. machine=..>hvm</type></os>`.
    pub fn hvm(arch: impl Into<String>, machine: impl Into<String>) -> Self {
        Os {
            kind: Some("hvm".into()),
            arch: Some(arch.into()),
            machine: Some(machine.into()),
            ..Default::default()
        }
    }
}

impl XmlPart for Os {
    const ELEMENT: &'static str = "os";
    const SCHEMA: Schema = Schema {
        attrs: &["firmware"],
        text: false,
        children: &[
            ("type", Schema::text(&["arch", "machine"])),
            ("boot", Schema::attrs(&["dev"])),
            ("kernel", Schema::text(&[])),
            ("initrd", Schema::text(&[])),
            ("cmdline", Schema::text(&[])),
            ("loader", Schema::text(&["readonly", "type", "secure"])),
            ("nvram", Schema::text(&["template"])),
        ],
    };

    fn from_element(e: &Element) -> Result<Self, XmlError> {
        let ty = e.child("type");
        let loader = match e.child("loader") {
            None => None,
            Some(l) => Some(Loader {
                path: Some(l.text()).filter(|t| !t.is_empty()),
                readonly: attr_bool(l, "readonly")?,
                kind: attr_string(l, "type"),
                secure: attr_bool(l, "secure")?,
            }),
        };
        Ok(Os {
            kind: ty.map(Element::text),
            arch: ty.and_then(|t| attr_string(t, "arch")),
            machine: ty.and_then(|t| attr_string(t, "machine")),
            firmware: attr_string(e, "firmware"),
            boot: e
                .children_named("boot")
                .filter_map(|b| attr_enum(b, "dev"))
                .collect(),
            kernel: e.child_text("kernel"),
            initrd: e.child_text("initrd"),
            cmdline: e.child_text("cmdline"),
            loader,
            nvram: e.child("nvram").map(|n| Nvram {
                path: Some(n.text()).filter(|t| !t.is_empty()),
                template: attr_string(n, "template"),
            }),
        })
    }

    fn to_element(&self) -> Element {
        let ty =
            (self.kind.is_some() || self.arch.is_some() || self.machine.is_some()).then(|| {
                Element::new("type")
                    .with_opt_attr("arch", self.arch.as_ref())
                    .with_opt_attr("machine", self.machine.as_ref())
                    .with_text(self.kind.clone().unwrap_or_default())
            });
        let text_el = |name: &str, v: &Option<String>| {
            v.as_ref().map(|v| Element::new(name).with_text(v.clone()))
        };
        let mut os = Element::new("os")
            .with_opt_attr("firmware", self.firmware.as_ref())
            .with_opt_child(ty)
            .with_opt_child(self.loader.as_ref().map(|l| {
                let e = Element::new("loader")
                    .with_opt_attr("readonly", l.readonly.map(yes_no))
                    .with_opt_attr("secure", l.secure.map(yes_no))
                    .with_opt_attr("type", l.kind.as_ref());
                match &l.path {
                    Some(p) => e.with_text(p.clone()),
                    None => e,
                }
            }))
            .with_opt_child(self.nvram.as_ref().map(|n| {
                let e = Element::new("nvram").with_opt_attr("template", n.template.as_ref());
                match &n.path {
                    Some(p) => e.with_text(p.clone()),
                    None => e,
                }
            }))
            .with_opt_child(text_el("kernel", &self.kernel))
            .with_opt_child(text_el("initrd", &self.initrd))
            .with_opt_child(text_el("cmdline", &self.cmdline));
        for b in &self.boot {
            os = os.with_child(Element::new("boot").with_attr("dev", b.as_str()));
        }
        os
    }
}

string_enum! {
    /// `<cpu mode='...'>`.
    CpuMode {
        Custom => "custom",
        HostModel => "host-model",
        HostPassthrough => "host-passthrough",
        Maximum => "maximum",
    }
}

/// `<topology sockets=.. dies=.. clusters=.. cores=.. threads=../>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CpuTopology {
    /// `sockets`.
    pub sockets: Option<u32>,
    /// `dies`.
    pub dies: Option<u32>,
    /// `cores`.
    pub cores: Option<u32>,
    /// `threads`.
    pub threads: Option<u32>,
}

/// `<cpu>`: mode, model and topology.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Cpu {
    /// `mode`.
    pub mode: Option<CpuMode>,
    /// `match` (`exact`, `minimum`, `strict`).
    pub match_: Option<String>,
    /// `check` (`none`, `partial`, `full`).
    pub check: Option<String>,
    /// `<model>` text (e.g. `qemu64`).
    pub model: Option<String>,
    /// `<model fallback='...'>`.
    pub model_fallback: Option<String>,
    /// `<vendor>`.
    pub vendor: Option<String>,
    /// `<topology>`.
    pub topology: Option<CpuTopology>,
}

impl XmlPart for Cpu {
    const ELEMENT: &'static str = "cpu";
    const SCHEMA: Schema = Schema {
        attrs: &["mode", "match", "check"],
        text: false,
        children: &[
            ("model", Schema::text(&["fallback"])),
            ("vendor", Schema::text(&[])),
            (
                "topology",
                Schema::attrs(&["sockets", "dies", "cores", "threads"]),
            ),
        ],
    };

    fn from_element(e: &Element) -> Result<Self, XmlError> {
        let topology = match e.child("topology") {
            None => None,
            Some(t) => Some(CpuTopology {
                sockets: attr_num(t, "sockets")?,
                dies: attr_num(t, "dies")?,
                cores: attr_num(t, "cores")?,
                threads: attr_num(t, "threads")?,
            }),
        };
        Ok(Cpu {
            mode: attr_enum(e, "mode"),
            match_: attr_string(e, "match"),
            check: attr_string(e, "check"),
            model: e.child_text("model"),
            model_fallback: e.child("model").and_then(|m| attr_string(m, "fallback")),
            vendor: e.child_text("vendor"),
            topology,
        })
    }

    fn to_element(&self) -> Element {
        let model = (self.model.is_some() || self.model_fallback.is_some()).then(|| {
            Element::new("model")
                .with_opt_attr("fallback", self.model_fallback.as_ref())
                .with_text(self.model.clone().unwrap_or_default())
        });
        Element::new("cpu")
            .with_opt_attr("mode", self.mode.as_ref())
            .with_opt_attr("match", self.match_.as_ref())
            .with_opt_attr("check", self.check.as_ref())
            .with_opt_child(model)
            .with_opt_child(
                self.vendor
                    .as_ref()
                    .map(|v| Element::new("vendor").with_text(v.clone())),
            )
            .with_opt_child(self.topology.map(|t| {
                Element::new("topology")
                    .with_opt_attr("sockets", t.sockets)
                    .with_opt_attr("dies", t.dies)
                    .with_opt_attr("cores", t.cores)
                    .with_opt_attr("threads", t.threads)
            }))
    }
}

string_enum! {
    /// `<clock offset='...'>`.
    ClockOffset { Utc => "utc", LocalTime => "localtime", Timezone => "timezone", Variable => "variable", Absolute => "absolute" }
}

/// `<timer name='rtc' tickpolicy='catchup' present='yes'/>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Timer {
    /// `name` (`rtc`, `pit`, `hpet`, `kvmclock`, ...).
    pub name: String,
    /// `present`.
    pub present: Option<bool>,
    /// `tickpolicy` (`delay`, `catchup`, `merge`, `discard`).
    pub tickpolicy: Option<String>,
}

/// `<clock>`: offset and timers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Clock {
    /// `offset`.
    pub offset: Option<ClockOffset>,
    /// `timezone` (with `offset='timezone'`).
    pub timezone: Option<String>,
    /// `<timer>` children in order.
    pub timers: Vec<Timer>,
}

impl XmlPart for Clock {
    const ELEMENT: &'static str = "clock";
    const SCHEMA: Schema = Schema {
        attrs: &["offset", "timezone"],
        text: false,
        children: &[("timer", Schema::attrs(&["name", "present", "tickpolicy"]))],
    };

    fn from_element(e: &Element) -> Result<Self, XmlError> {
        let mut timers = Vec::new();
        for t in e.children_named("timer") {
            timers.push(Timer {
                name: t.attr("name").unwrap_or_default().to_string(),
                present: attr_bool(t, "present")?,
                tickpolicy: attr_string(t, "tickpolicy"),
            });
        }
        Ok(Clock {
            offset: attr_enum(e, "offset"),
            timezone: attr_string(e, "timezone"),
            timers,
        })
    }

    fn to_element(&self) -> Element {
        let mut c = Element::new("clock")
            .with_opt_attr("offset", self.offset.as_ref())
            .with_opt_attr("timezone", self.timezone.as_ref());
        for t in &self.timers {
            c = c.with_child(
                Element::new("timer")
                    .with_attr("name", t.name.clone())
                    .with_opt_attr("tickpolicy", t.tickpolicy.as_ref())
                    .with_opt_attr("present", t.present.map(yes_no)),
            );
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_unknown_and_drops_cleared() {
        let old = Element::parse(
            "<vcpu placement='static' current='1' x:weird='1' xmlns:x='urn:x'><!--c-->2</vcpu>",
        )
        .unwrap();
        let v = Vcpu {
            count: 4,
            placement: Some(VcpuPlacement::Auto),
            current: None,
            cpuset: None,
        };
        let merged = v.merge_into(&old);
        assert_eq!(
            merged.to_xml().unwrap(),
            "<vcpu placement='auto' x:weird='1' xmlns:x='urn:x'><!--c-->4</vcpu>"
        );
        assert_eq!(Vcpu::from_element(&merged).unwrap(), v);
    }

    #[test]
    fn merged_text_replaces_every_text_node() {
        // Mixed content (found by the domain_xml fuzz target): the typed value read all text
        // nodes, so writing it back must leave exactly its text, whatever the old layout.
        let old = Element::parse("<vcpu>1<x/>\n <!--c-->2 <y/> </vcpu>").unwrap();
        let v = Vcpu::from_element(&old);
        assert!(v.is_err(), "'1\n 2  ' is not a count: {v:?}");
        let v = Vcpu {
            count: 3,
            placement: None,
            current: None,
            cpuset: None,
        };
        let merged = v.merge_into(&old);
        assert_eq!(merged.to_xml().unwrap(), "<vcpu>3<x/><!--c--><y/></vcpu>");
        assert_eq!(Vcpu::from_element(&merged).unwrap(), v);
        let blank = Element::parse("<vcpu> <x/> </vcpu>").unwrap();
        assert_eq!(v.merge_into(&blank).to_xml().unwrap(), "<vcpu>3<x/></vcpu>");
    }

    #[test]
    fn os_round_trips_and_keeps_unknown_children() {
        let old = Element::parse(
            "<os firmware='efi'><type arch='x86_64' machine='pc-q35-7.2'>hvm</type>\
             <loader readonly='yes' type='pflash'>/fw.bin</loader><nvram template='/t'>/n</nvram>\
             <boot dev='hd'/><boot dev='cdrom'/><bootmenu enable='yes'/><smbios mode='sysinfo'/></os>",
        )
        .unwrap();
        let os = Os::from_element(&old).unwrap();
        assert_eq!(os.machine.as_deref(), Some("pc-q35-7.2"));
        assert_eq!(os.boot, vec![BootDevice::Hd, BootDevice::Cdrom]);
        assert_eq!(os.loader.as_ref().unwrap().readonly, Some(true));
        assert_eq!(os.nvram.as_ref().unwrap().template.as_deref(), Some("/t"));
        let mut changed = os.clone();
        changed.boot = vec![BootDevice::Network];
        changed.kernel = Some("/vmlinuz".into());
        let merged = changed.merge_into(&old);
        assert!(merged.child("bootmenu").is_some() && merged.child("smbios").is_some());
        assert_eq!(Os::from_element(&merged).unwrap(), changed);
        assert_eq!(Os::from_element(&os.to_element()).unwrap(), os);
    }

    #[test]
    fn cpu_and_clock() {
        let e = Element::parse(
            "<cpu mode='custom' match='exact' check='none'><model fallback='forbid'>qemu64</model>\
             <topology sockets='1' dies='1' cores='2' threads='1'/><feature policy='require' name='x2apic'/></cpu>",
        )
        .unwrap();
        let cpu = Cpu::from_element(&e).unwrap();
        assert_eq!(cpu.mode, Some(CpuMode::Custom));
        assert_eq!(cpu.topology.unwrap().cores, Some(2));
        assert_eq!(Cpu::from_element(&cpu.to_element()).unwrap(), cpu);
        assert!(cpu.merge_into(&e).child("feature").is_some());
        let bad = Element::parse("<cpu><topology cores='two'/></cpu>").unwrap();
        assert!(matches!(
            Cpu::from_element(&bad),
            Err(XmlError::InvalidValue { .. })
        ));
        let c = Element::parse("<clock offset='utc'><timer name='rtc' tickpolicy='catchup'/><timer name='hpet' present='no'/></clock>").unwrap();
        let clock = Clock::from_element(&c).unwrap();
        assert_eq!(clock.timers[1].present, Some(false));
        assert_eq!(Clock::from_element(&clock.to_element()).unwrap(), clock);
    }
}
