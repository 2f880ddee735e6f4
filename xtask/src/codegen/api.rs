//! `api/libvirt-*-api.xml` -> typed enums and flag sets.
//!
//! Every `<enum>` element is grouped by its `type` attribute. A type is a flag set when its name
//! ends in `Flags` or `FlagsValues`, or when every member that is neither zero nor the `_LAST`
//! sentinel is written as a bit shift (`value_bitshift`): those become a `u32` newtype with
//! bit operations. Every other type becomes an `i32` newtype with associated constants. Both keep
//! values this libvirt version does not know. `_LAST` sentinels (a member named `*_LAST` whose
//! value is one more than every other member) are left out: they change between versions.

use super::names::{common_prefix, doc_escape, ident};
use anyhow::{anyhow, bail, Context, Result};
use quick_xml::events::Event;
use quick_xml::Reader;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

/// One API description file and the module generated from it.
pub struct ApiSpec {
    /// Rust module name.
    pub module: &'static str,
    /// The file inside `api/`.
    pub file: &'static str,
    /// One line for the module's doc.
    pub doc: &'static str,
}

/// The API description files.
pub const APIS: &[ApiSpec] = &[
    ApiSpec {
        module: "api",
        file: "libvirt-api.xml",
        doc: "Enums and flags of the public libvirt API (`libvirt-api.xml`): domain states, event ids, error codes and domains, and every `*Flags` type.",
    },
    ApiSpec {
        module: "api_qemu",
        file: "libvirt-qemu-api.xml",
        doc: "Enums and flags of the QEMU-specific API (`libvirt-qemu-api.xml`).",
    },
    ApiSpec {
        module: "api_lxc",
        file: "libvirt-lxc-api.xml",
        doc: "Enums and flags of the LXC-specific API (`libvirt-lxc-api.xml`).",
    },
    ApiSpec {
        module: "api_admin",
        file: "libvirt-admin-api.xml",
        doc: "Enums and flags of the admin API (`libvirt-admin-api.xml`).",
    },
];

#[derive(Debug, Clone)]
struct Member {
    name: String,
    raw: String,
    info: Option<String>,
    bitshift: bool,
    version: Option<String>,
}

/// One file's enums: every `<enum>` grouped by type in file order, and the `<info>` of each
/// `<typedef ... type='enum'>` (type name -> text).
struct Enums {
    groups: Vec<(String, Vec<Member>)>,
    typedef_info: HashMap<String, String>,
}

fn read_enums(path: &Path) -> Result<Enums> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut reader = Reader::from_str(&text);
    let mut groups: Vec<(String, Vec<Member>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut typedef_info = HashMap::new();
    // The enum typedef being read, and whether we are inside its <info>.
    let mut typedef: Option<String> = None;
    let mut in_info = false;
    loop {
        let ev = reader.read_event().map_err(|e| {
            anyhow!(
                "{}: XML error at byte {}: {e}",
                path.display(),
                reader.buffer_position()
            )
        })?;
        let e = match ev {
            Event::Eof => break,
            Event::Start(e) if e.name().as_ref() == b"typedef" => {
                let attr = |k: &[u8]| {
                    e.try_get_attribute(k)
                        .ok()
                        .flatten()
                        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
                };
                typedef = attr(b"name").filter(|_| attr(b"type").as_deref() == Some("enum"));
                continue;
            }
            Event::End(e) if e.name().as_ref() == b"typedef" => {
                typedef = None;
                continue;
            }
            Event::Start(e) if e.name().as_ref() == b"info" => {
                in_info = typedef.is_some();
                continue;
            }
            Event::End(e) if e.name().as_ref() == b"info" => {
                in_info = false;
                continue;
            }
            Event::CData(t) if in_info => {
                if let Some(name) = &typedef {
                    let info = String::from_utf8_lossy(&t.into_inner()).into_owned();
                    typedef_info.insert(name.clone(), info);
                }
                continue;
            }
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"enum" => e,
            _ => continue,
        };
        let mut attrs: HashMap<String, String> = HashMap::new();
        for a in e.attributes() {
            let a = a.map_err(|err| anyhow!("{}: bad attribute: {err}", path.display()))?;
            let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
            let value = a
                .unescape_value()
                .map_err(|err| anyhow!("{}: bad attribute value: {err}", path.display()))?
                .into_owned();
            attrs.insert(key, value);
        }
        let name = attrs
            .get("name")
            .cloned()
            .ok_or_else(|| anyhow!("{}: <enum> without name", path.display()))?;
        let ty = attrs
            .get("type")
            .cloned()
            .ok_or_else(|| anyhow!("{}: enum {name} has no type", path.display()))?;
        let raw = attrs
            .get("value")
            .cloned()
            .ok_or_else(|| anyhow!("{}: enum {name} has no value", path.display()))?;
        let m = Member {
            name,
            raw,
            info: attrs.get("info").cloned(),
            bitshift: attrs.contains_key("value_bitshift"),
            version: attrs.get("version").cloned(),
        };
        let i = *index.entry(ty.clone()).or_insert_with(|| {
            groups.push((ty, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(m);
    }
    Ok(Enums {
        groups,
        typedef_info,
    })
}

/// Generate every API module; returns (module name, code).
pub fn generate(dir: &Path) -> Result<Vec<(&'static str, String)>> {
    let mut files = Vec::new();
    for a in APIS {
        files.push((a, read_enums(&dir.join("api").join(a.file))?));
    }
    // Values may name other members, also in another file.
    let mut raw: HashMap<String, String> = HashMap::new();
    for (_, enums) in &files {
        for (_, members) in &enums.groups {
            for m in members {
                raw.insert(m.name.clone(), m.raw.clone());
            }
        }
    }
    let resolve = |name: &str| -> Result<i64> {
        let mut cur = name.to_string();
        for _ in 0..16 {
            let v = raw
                .get(&cur)
                .ok_or_else(|| anyhow!("unknown enum value {cur}"))?;
            if let Ok(n) = v.parse::<i64>() {
                return Ok(n);
            }
            if let Some(h) = v.strip_prefix("0x") {
                return i64::from_str_radix(h, 16).map_err(|e| anyhow!("{name}: {e}"));
            }
            cur = v.clone();
        }
        bail!("{name}: value chain too long")
    };
    let mut out = Vec::new();
    let mut seen_types: BTreeMap<String, &str> = BTreeMap::new();
    for (spec, enums) in &files {
        let mut code = String::new();
        for (ty, members) in &enums.groups {
            let rust = rust_type_name(ty);
            if let Some(prev) = seen_types.insert(rust.clone(), spec.file) {
                bail!("{ty}: Rust name {rust} already used by {prev}");
            }
            let mut resolved = Vec::new();
            for m in members {
                resolved.push((m.clone(), resolve(&m.name)?));
            }
            let info = enums.typedef_info.get(ty).map(String::as_str);
            emit(&mut code, ty, &rust, &resolved, spec.file, info)?;
        }
        out.push((spec.module, code));
    }
    Ok(out)
}

/// `virDomainState` -> `DomainState`.
fn rust_type_name(c: &str) -> String {
    let s = c.strip_prefix("vir").unwrap_or(c);
    let mut out = String::new();
    let mut cs = s.chars();
    if let Some(f) = cs.next() {
        out.extend(f.to_uppercase());
        out.push_str(cs.as_str());
    }
    out
}

fn is_flags(ty: &str, members: &[(Member, i64)]) -> bool {
    if ty.ends_with("Flags") || ty.ends_with("FlagsValues") {
        return true;
    }
    let relevant: Vec<&(Member, i64)> = members
        .iter()
        .filter(|(m, v)| *v != 0 && !is_sentinel(&m.name, *v, members))
        .collect();
    !relevant.is_empty() && relevant.iter().all(|(m, _)| m.bitshift)
}

fn is_sentinel(name: &str, value: i64, members: &[(Member, i64)]) -> bool {
    name.ends_with("_LAST")
        && members
            .iter()
            .filter(|(m, _)| m.name != name)
            .all(|(_, v)| *v < value)
}

fn member_doc(m: &Member, value: i64, flags: bool) -> String {
    let v = if flags {
        format!("{value:#x}")
    } else {
        value.to_string()
    };
    let mut s = format!("`{}` = {v}", m.name);
    if m.raw.parse::<i64>().is_err() && !m.raw.starts_with("0x") {
        write!(s, " (= `{}`)", m.raw).ok();
    }
    if let Some(info) = &m.info {
        let info = info.split_whitespace().collect::<Vec<_>>().join(" ");
        if !info.is_empty() {
            write!(s, ": {}", doc_escape(&info)).ok();
        }
    }
    if let Some(ver) = &m.version {
        write!(s, " (since {ver})").ok();
    }
    s
}

/// The typedef's `<info>` as doc lines (one paragraph), then an empty doc line.
fn type_doc(info: Option<&str>) -> String {
    let info = info
        .map(|i| i.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    if info.is_empty() {
        String::new()
    } else {
        format!("/// {}\n///\n", doc_escape(&info))
    }
}

fn emit(
    out: &mut String,
    ty: &str,
    rust: &str,
    all: &[(Member, i64)],
    file: &str,
    info: Option<&str>,
) -> Result<()> {
    // The XML lists members by name; emit them by value (aliases after the first of a value).
    let mut members: Vec<&(Member, i64)> = all
        .iter()
        .filter(|(m, v)| !is_sentinel(&m.name, *v, all))
        .collect();
    members.sort_by_key(|(_, v)| *v);
    if members.is_empty() {
        return Ok(());
    }
    let flags = is_flags(ty, all);
    let names: Vec<&str> = members.iter().map(|(m, _)| m.name.as_str()).collect();
    let prefix = match common_prefix(&names) {
        p if p.is_empty() && names.iter().all(|n| n.starts_with("VIR_")) => "VIR_".to_string(),
        p => p,
    };
    let const_name = |m: &Member| -> String {
        let short = m.name.strip_prefix(&prefix).unwrap_or(&m.name);
        let c = ident(&short.to_ascii_lowercase()).to_ascii_uppercase();
        c.replace("R#", "")
    };
    let mut seen = BTreeMap::new();
    for (m, _) in &members {
        let c = const_name(m);
        if let Some(prev) = seen.insert(c.clone(), m.name.clone()) {
            bail!("{ty}: {prev} and {} both map to {c}", m.name);
        }
    }
    if flags {
        for (m, v) in &members {
            if *v < 0 || *v > i64::from(u32::MAX) {
                bail!("{ty}: flag {} = {v} does not fit 32 bits", m.name);
            }
        }
        out.push_str(&type_doc(info));
        writeln!(
            out,
            "/// libvirt's `{ty}` flags ({file}): a set of bits; unknown bits are kept."
        )?;
        writeln!(
            out,
            "#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]"
        )?;
        writeln!(out, "pub struct {rust}(pub u32);\n")?;
        writeln!(out, "impl {rust} {{")?;
        for (m, v) in &members {
            writeln!(out, "    /// {}", member_doc(m, *v, true))?;
            writeln!(out, "    pub const {}: Self = Self({v:#x});", const_name(m))?;
        }
        writeln!(
            out,
            "    /// The named flags, by value (zero-valued names excluded)."
        )?;
        writeln!(
            out,
            "    pub const fn known() -> &'static [(&'static str, Self)] {{\n        &["
        )?;
        for (m, _) in members.iter().filter(|(_, v)| *v != 0) {
            writeln!(
                out,
                "            (\"{}\", Self::{}),",
                m.name,
                const_name(m)
            )?;
        }
        writeln!(out, "        ]\n    }}")?;
        writeln!(out, "}}\n")?;
        writeln!(out, "crate::program::impl_flags!({rust});\n")?;
    } else {
        for (m, v) in &members {
            if i32::try_from(*v).is_err() {
                bail!("{ty}: {} = {v} does not fit an int", m.name);
            }
        }
        out.push_str(&type_doc(info));
        writeln!(
            out,
            "/// libvirt's `{ty}` ({file}); values this version does not know are kept."
        )?;
        writeln!(
            out,
            "#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]"
        )?;
        writeln!(out, "pub struct {rust}(pub i32);\n")?;
        writeln!(out, "impl {rust} {{")?;
        for (m, v) in &members {
            writeln!(out, "    /// {}", member_doc(m, *v, false))?;
            writeln!(out, "    pub const {}: Self = Self({v});", const_name(m))?;
        }
        writeln!(
            out,
            "    /// Every named value, by value (aliases included)."
        )?;
        writeln!(
            out,
            "    pub const fn known() -> &'static [(&'static str, Self)] {{\n        &["
        )?;
        for (m, _) in &members {
            writeln!(
                out,
                "            (\"{}\", Self::{}),",
                m.name,
                const_name(m)
            )?;
        }
        writeln!(out, "        ]\n    }}")?;
        writeln!(out, "    /// The C name of this value (for aliases, the first by name), or `None` for a\n    /// value this libvirt version does not know.")?;
        writeln!(
            out,
            "    pub const fn name(self) -> Option<&'static str> {{\n        match self.0 {{"
        )?;
        let mut done = std::collections::BTreeSet::new();
        for (m, v) in &members {
            if done.insert(*v) {
                writeln!(out, "            {v} => Some(\"{}\"),", m.name)?;
            }
        }
        writeln!(out, "            _ => None,\n        }}\n    }}")?;
        writeln!(out, "}}\n")?;
        writeln!(out, "crate::program::impl_enum!({rust});\n")?;
    }
    Ok(())
}
