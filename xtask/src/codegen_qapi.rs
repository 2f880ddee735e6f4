//! `cargo xtask codegen-qapi [--check] [QAPI-DIR]`: typed QMP commands, events and types from
//! QEMU's QAPI schema into `qmp-proto/src/generated/`.
//!
//! Input: `qapi/qapi-schema.json` and its includes under QAPI-DIR, `$VMWIRE_QEMU_QAPI`, or
//! `../shared/qemu-qapi/10.0.13` beside the workspace root (never copied into the repo).
//! Mapping, chosen for drift tolerance (the schema is 10.0's; peers may be older or newer):
//! - struct -> struct (base fields inlined; optional and target-conditional fields are
//!   `Option`; unknown fields ignored by serde);
//! - enum -> enum with an `Unknown(String)` variant for values this schema lacks;
//! - union -> its common (base) fields plus a `branch` map holding the variant's fields;
//!   alternate -> `serde_json::Value`;
//! - command -> a struct of its arguments implementing `qmp_proto::Command` (`gen: false`
//!   commands such as `device_add` take extra free-form properties);
//! - event -> a data struct, and a `TypedEvent` enum with `Unknown` for events not in the schema.
//!
//! `--check` regenerates in memory and fails when the committed files differ.

use crate::util;
use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub fn cmd(args: &[&str]) -> Result<()> {
    let mut check = false;
    let mut dir = None;
    for a in args {
        match *a {
            "--check" => check = true,
            d if !d.starts_with('-') && dir.is_none() => dir = Some(PathBuf::from(d)),
            _ => bail!("usage: cargo xtask codegen-qapi [--check] [QAPI-DIR]"),
        }
    }
    let dir = dir
        .or_else(|| std::env::var_os("VMWIRE_QEMU_QAPI").map(PathBuf::from))
        .unwrap_or_else(|| util::workspace_root().join("../shared/qemu-qapi/10.0.13"));
    let files = generate(&dir)?
        .into_iter()
        .map(|(name, text)| Ok((name, crate::codegen_client::rustfmt(&text)?)))
        .collect::<Result<BTreeMap<_, _>>>()?;
    let out_dir = util::workspace_root().join("qmp-proto/src/generated");
    let mut stale = Vec::new();
    for (name, text) in &files {
        let path = out_dir.join(name);
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        if old != *text {
            stale.push(name.clone());
            if !check {
                std::fs::create_dir_all(&out_dir)?;
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    if check {
        if !stale.is_empty() {
            bail!(
                "qmp-proto/src/generated is stale ({}): run `cargo xtask codegen-qapi`",
                stale.join(", ")
            );
        }
        println!("codegen-qapi: qmp-proto/src/generated is up to date");
    } else {
        println!(
            "codegen-qapi: wrote {} of {} files in {}",
            stale.len(),
            files.len(),
            out_dir.display()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reading the schema: QAPI files are JSON with single quotes and `#` comments; doc comments
// (`##` blocks) precede definitions.

/// One top-level expression with the doc block before it.
struct Expr {
    value: Map<String, Value>,
    doc: Doc,
}

#[derive(Default, Clone)]
struct Doc {
    /// First paragraph of the definition's description.
    summary: String,
    /// `@member: text` descriptions.
    members: HashMap<String, String>,
    /// The definition's `Since: X.Y`.
    since: Option<(u32, u32)>,
}

/// The first `since X.Y` (any case, optional colon) in `text`.
fn since_in(text: &str) -> Option<(u32, u32)> {
    let lower = text.to_ascii_lowercase();
    let mut rest = lower.as_str();
    while let Some(i) = rest.find("since") {
        rest = &rest[i + 5..];
        let v = rest.trim_start_matches(':').trim_start();
        let num: String = v
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut parts = num.split('.');
        if let (Some(Ok(a)), Some(Ok(b))) = (
            parts.next().map(str::parse::<u32>),
            parts.next().map(str::parse::<u32>),
        ) {
            return Some((a, b));
        }
    }
    None
}

fn parse_doc(lines: &[String]) -> Doc {
    let mut doc = Doc::default();
    let mut i = 0;
    // Skip the `@Name:` header line.
    while i < lines.len() && lines[i].trim().is_empty() {
        i += 1;
    }
    if i < lines.len()
        && lines[i].trim_start().starts_with('@')
        && lines[i].trim_end().ends_with(':')
    {
        i += 1;
    }
    while i < lines.len() && lines[i].trim().is_empty() {
        i += 1;
    }
    let mut summary = Vec::new();
    while i < lines.len() && !lines[i].trim().is_empty() && !lines[i].trim_start().starts_with('@')
    {
        summary.push(lines[i].trim().to_owned());
        i += 1;
    }
    doc.summary = summary.join(" ");
    doc.since = lines
        .iter()
        .filter(|l| l.trim_start().starts_with("Since"))
        .find_map(|l| since_in(l));
    let mut current: Option<(String, Vec<String>)> = None;
    for line in &lines[i..] {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix('@') {
            if let Some((name, text)) = rest.split_once(':') {
                if let Some((n, v)) = current.take() {
                    doc.members.insert(n, v.join(" "));
                }
                current = Some((name.trim().to_owned(), vec![text.trim().to_owned()]));
                continue;
            }
        }
        if t.is_empty() || !line.starts_with(' ') {
            if let Some((n, v)) = current.take() {
                doc.members.insert(n, v.join(" "));
            }
            continue;
        }
        if let Some((_, v)) = current.as_mut() {
            v.push(t.to_owned());
        }
    }
    if let Some((n, v)) = current.take() {
        doc.members.insert(n, v.join(" "));
    }
    doc
}

/// Tokenise one QAPI file into expressions.
fn parse_file(path: &Path) -> Result<Vec<Expr>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut json = String::new();
    let mut exprs = Vec::new();
    let mut depth = 0usize;
    let mut doc_lines: Vec<String> = Vec::new();
    let mut in_doc = false;
    let mut pending_doc: Option<Doc> = None;
    for (lineno, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if depth == 0 && trimmed.starts_with('#') {
            if trimmed.starts_with("##") {
                if in_doc {
                    pending_doc = Some(parse_doc(&doc_lines));
                    in_doc = false;
                } else {
                    in_doc = true;
                    doc_lines.clear();
                }
            } else if in_doc {
                let body = trimmed.strip_prefix('#').unwrap_or("");
                doc_lines.push(body.strip_prefix(' ').unwrap_or(body).to_owned());
            }
            continue;
        }
        let mut chars = line.chars().peekable();
        let mut in_str = false;
        while let Some(c) = chars.next() {
            if in_str {
                match c {
                    '\'' => {
                        in_str = false;
                        json.push('"');
                    }
                    '"' => json.push_str("\\\""),
                    '\\' => {
                        json.push('\\');
                        if let Some(n) = chars.next() {
                            json.push(n);
                        }
                    }
                    c => json.push(c),
                }
                continue;
            }
            match c {
                '#' => break,
                '\'' => {
                    in_str = true;
                    json.push('"');
                }
                '{' | '[' => {
                    depth += 1;
                    json.push(c);
                }
                '}' | ']' => {
                    depth = depth.checked_sub(1).with_context(|| {
                        format!("{}:{}: unbalanced brackets", path.display(), lineno + 1)
                    })?;
                    json.push(c);
                    if depth == 0 {
                        let v: Value = serde_json::from_str(&json).with_context(|| {
                            format!(
                                "{}:{}: not a QAPI expression: {json}",
                                path.display(),
                                lineno + 1
                            )
                        })?;
                        let Value::Object(value) = v else {
                            bail!(
                                "{}:{}: expression is not an object",
                                path.display(),
                                lineno + 1
                            )
                        };
                        exprs.push(Expr {
                            value,
                            doc: pending_doc.take().unwrap_or_default(),
                        });
                        json.clear();
                    }
                }
                c => json.push(c),
            }
        }
        json.push('\n');
        if in_str {
            bail!("{}:{}: unterminated string", path.display(), lineno + 1);
        }
    }
    if depth != 0 {
        bail!("{}: unterminated expression", path.display());
    }
    Ok(exprs)
}

/// The whole schema, includes followed once each in order.
fn load(dir: &Path) -> Result<Vec<Expr>> {
    let root = dir.join("qapi/qapi-schema.json");
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    fn walk(path: &Path, seen: &mut HashSet<PathBuf>, out: &mut Vec<Expr>) -> Result<()> {
        let canon = path
            .canonicalize()
            .with_context(|| format!("QAPI file {}", path.display()))?;
        if !seen.insert(canon) {
            return Ok(());
        }
        for e in parse_file(path)? {
            if let Some(inc) = e.value.get("include").and_then(Value::as_str) {
                let next = path.parent().expect("file has a parent").join(inc);
                walk(&next, seen, out)?;
            } else if !e.value.contains_key("pragma") {
                out.push(e);
            }
        }
        Ok(())
    }
    walk(&root, &mut seen, &mut out)?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Names

const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

fn field_ident(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    if KEYWORDS.contains(&s.as_str()) {
        if matches!(s.as_str(), "self" | "Self" | "super" | "crate") {
            s.push('_');
        } else {
            s.insert_str(0, "r#");
        }
    }
    s
}

fn camel(name: &str) -> String {
    let mut out = String::new();
    let mut upper = true;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if upper {
                out.push(c.to_ascii_uppercase());
                upper = false;
            } else {
                out.push(c);
            }
        } else {
            upper = true;
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        out.insert(0, 'V');
    }
    if out == "Self" {
        out.push('_');
    }
    out
}

/// `DEVICE_DELETED` -> `DeviceDeleted`.
fn event_ident(name: &str) -> String {
    camel(&name.to_ascii_lowercase())
}

fn type_ident(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        format!("T{s}")
    } else {
        s
    }
}

fn doc_text(s: &str) -> String {
    // Plain text: no markup surprises for rustdoc (links, html, code blocks).
    s.replace('\\', "\\\\")
        .replace('[', "\\[")
        .replace(']', "\\]")
        .replace('<', "\\<")
        .replace('>', "\\>")
        .replace('`', "")
}

fn doc_attr(out: &mut String, indent: &str, text: &str) {
    let text = doc_text(text.trim());
    let _ = writeln!(out, "{indent}#[doc = {:?}]", format!(" {text}"));
}

// ---------------------------------------------------------------------------------------------
// The model

#[derive(Clone)]
struct Member {
    name: String,
    ty: Value,
    optional: bool,
    conditional: bool,
    /// The member's own `(since X.Y)` is newer than its type's: older QEMU does not send it.
    added_later: bool,
    /// Its description, from the definition that declares it.
    doc: Option<String>,
}

/// Members with their docs, marking those added after their type.
fn documented(data: &Map<String, Value>, doc: &Doc) -> Vec<Member> {
    let mut ms = members(data);
    for m in &mut ms {
        m.doc = doc.members.get(&m.name).cloned();
        if let Some(added) = m.doc.as_deref().and_then(since_in) {
            m.added_later = doc.since.is_none_or(|type_since| added > type_since);
        }
    }
    ms
}

fn members(data: &Map<String, Value>) -> Vec<Member> {
    data.iter()
        .map(|(k, v)| {
            let (optional, name) = match k.strip_prefix('*') {
                Some(n) => (true, n.to_owned()),
                None => (false, k.clone()),
            };
            let (ty, conditional) = match v {
                Value::Object(o) => (
                    o.get("type").cloned().unwrap_or(Value::Null),
                    o.contains_key("if"),
                ),
                other => (other.clone(), false),
            };
            Member {
                name,
                ty,
                optional,
                conditional,
                added_later: false,
                doc: None,
            }
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Struct,
    Union,
    Enum,
    Alternate,
}

struct Schema {
    kinds: HashMap<String, Kind>,
    exprs: Vec<Expr>,
}

impl Schema {
    fn expr(&self, kind: &str, name: &str) -> Option<&Expr> {
        self.exprs
            .iter()
            .find(|e| e.value.get(kind).and_then(Value::as_str) == Some(name))
    }

    /// A struct's or union's own and inherited members (base first), with their docs.
    fn all_members(
        &self,
        data: &Map<String, Value>,
        doc: &Doc,
        base: Option<&Value>,
    ) -> Vec<Member> {
        let mut out = Vec::new();
        match base {
            Some(Value::String(b)) => {
                if let Some(e) = self.expr("struct", b).or_else(|| self.expr("union", b)) {
                    // A union's own members are its branches: only its base is common.
                    let d = if e.value.contains_key("union") {
                        Map::new()
                    } else {
                        e.value
                            .get("data")
                            .and_then(Value::as_object)
                            .cloned()
                            .unwrap_or_default()
                    };
                    out.extend(self.all_members(&d, &e.doc, e.value.get("base")));
                }
            }
            Some(Value::Object(o)) => out.extend(documented(o, doc)),
            _ => {}
        }
        out.extend(documented(data, doc));
        out
    }

    fn rust_type(&self, ty: &Value, boxed: bool) -> String {
        match ty {
            Value::Array(a) => {
                let inner = a.first().map_or_else(
                    || "::serde_json::Value".to_owned(),
                    |t| self.rust_type(t, false),
                );
                format!("::std::vec::Vec<{inner}>")
            }
            Value::String(s) => {
                let t = match s.as_str() {
                    "str" => "::std::string::String".to_owned(),
                    "int" | "int64" => "i64".to_owned(),
                    "int8" | "int16" | "int32" | "uint8" | "uint16" | "uint32" | "uint64" => {
                        s.replace("uint", "u").replace("int", "i")
                    }
                    "size" => "u64".to_owned(),
                    "number" => "f64".to_owned(),
                    "bool" => "bool".to_owned(),
                    "null" => "()".to_owned(),
                    "any" | "QType" => "::serde_json::Value".to_owned(),
                    other => match self.kinds.get(other) {
                        Some(Kind::Alternate) | None => "::serde_json::Value".to_owned(),
                        Some(_) => format!("crate::generated::types::{}", type_ident(other)),
                    },
                };
                if boxed {
                    format!("::std::boxed::Box<{t}>")
                } else {
                    t
                }
            }
            _ => "::serde_json::Value".to_owned(),
        }
    }

    /// Direct (non-array) struct/union members, for cycle detection.
    fn direct_refs(&self, name: &str) -> Vec<String> {
        let Some(e) = self
            .expr("struct", name)
            .or_else(|| self.expr("union", name))
        else {
            return Vec::new();
        };
        let data = e
            .value
            .get("data")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let ms = if e.value.contains_key("union") {
            self.all_members(&Map::new(), &e.doc, e.value.get("base"))
        } else {
            self.all_members(&data, &e.doc, e.value.get("base"))
        };
        ms.into_iter()
            .filter_map(|m| m.ty.as_str().map(str::to_owned))
            .filter(|t| matches!(self.kinds.get(t), Some(Kind::Struct | Kind::Union)))
            .collect()
    }

    fn reaches(&self, from: &str, target: &str) -> bool {
        let mut stack = vec![from.to_owned()];
        let mut seen = HashSet::new();
        while let Some(n) = stack.pop() {
            if n == target {
                return true;
            }
            if seen.insert(n.clone()) {
                stack.extend(self.direct_refs(&n));
            }
        }
        false
    }
}

/// Write `ms` as fields. With `tolerant` (types and event data, which older QEMU sends), a
/// required member added after its type is an `Option`: QEMU older than the member lacks it.
fn write_fields(out: &mut String, s: &Schema, owner: Option<&str>, ms: &[Member], tolerant: bool) {
    let mut used = HashSet::new();
    for m in ms {
        let mut ident = field_ident(&m.name);
        while !used.insert(ident.clone()) {
            ident.push('_');
        }
        let boxed = match (owner, m.ty.as_str()) {
            (Some(o), Some(t)) => {
                matches!(s.kinds.get(t), Some(Kind::Struct | Kind::Union)) && s.reaches(t, o)
            }
            _ => false,
        };
        let ty = s.rust_type(&m.ty, boxed);
        let mut text = m.doc.clone().unwrap_or_else(|| format!("`{}`", m.name));
        let late = tolerant && m.added_later && !m.optional && !m.conditional;
        if late {
            text.push_str(" (None from QEMU older than this member.)");
        }
        doc_attr(out, "    ", &text);
        let raw = ident.trim_start_matches("r#");
        if raw != m.name {
            let _ = writeln!(out, "    #[serde(rename = {:?})]", m.name);
        }
        if m.optional || m.conditional || late {
            let _ = writeln!(
                out,
                "    #[serde(default, skip_serializing_if = \"::std::option::Option::is_none\")]"
            );
            let _ = writeln!(out, "    pub {ident}: ::std::option::Option<{ty}>,");
        } else {
            let _ = writeln!(out, "    pub {ident}: {ty},");
        }
    }
}

fn header(input: &Path, what: &str) -> String {
    let shown = input.file_name().map_or_else(
        || input.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    format!(
        "// @generated by `cargo xtask codegen-qapi` (xtask/src/codegen_qapi.rs) from QEMU's QAPI\n\
         // schema qemu-qapi/{shown}/qapi/qapi-schema.json. Do not edit: regenerate.\n\
         //! {what}\n\n"
    )
}

const ALLOWS: &str =
    "#![allow(clippy::all, clippy::pedantic, non_camel_case_types, rustdoc::all)]\n\n";

fn generate(dir: &Path) -> Result<BTreeMap<String, String>> {
    let exprs = load(dir)?;
    let mut kinds = HashMap::new();
    for e in &exprs {
        for (k, kind) in [
            ("struct", Kind::Struct),
            ("union", Kind::Union),
            ("enum", Kind::Enum),
            ("alternate", Kind::Alternate),
        ] {
            if let Some(n) = e.value.get(k).and_then(Value::as_str) {
                kinds.insert(n.to_owned(), kind);
            }
        }
    }
    let s = Schema { kinds, exprs };
    let mut files = BTreeMap::new();

    // --- types
    let mut t = header(dir, "Types of the QAPI schema: structs, unions (common members plus a `branch` map) and\n//! enums (with `Unknown` for values the schema lacks).");
    t.push_str(ALLOWS);
    t.push_str("use serde::{Deserialize, Serialize};\n\n");
    let mut n_types = 0;
    for e in &s.exprs {
        let v = &e.value;
        if let Some(name) = v.get("enum").and_then(Value::as_str) {
            n_types += 1;
            let id = type_ident(name);
            let values: Vec<String> = v["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| {
                    d.as_str()
                        .map(str::to_owned)
                        .or_else(|| d.get("name").and_then(Value::as_str).map(str::to_owned))
                })
                .collect();
            doc_attr(
                &mut t,
                "",
                if e.doc.summary.is_empty() {
                    name
                } else {
                    &e.doc.summary
                },
            );
            let _ = writeln!(
                t,
                "#[derive(Debug, Clone, PartialEq, Eq, Hash)]\npub enum {id} {{"
            );
            let mut used = HashSet::new();
            let mut variants = Vec::new();
            for val in &values {
                let mut vid = camel(val);
                while !used.insert(vid.clone()) || vid == "Unknown" {
                    vid.push('_');
                }
                let text = e
                    .doc
                    .members
                    .get(val)
                    .cloned()
                    .unwrap_or_else(|| format!("`{val}`"));
                doc_attr(&mut t, "    ", &text);
                let _ = writeln!(t, "    {vid},");
                variants.push((vid, val.clone()));
            }
            t.push_str("    /// A value this schema does not know (newer QEMU), kept as sent.\n    Unknown(::std::string::String),\n}\n\n");
            let _ = writeln!(t, "impl {id} {{\n    /// The wire name.\n    pub fn as_str(&self) -> &str {{\n        match self {{");
            for (vid, val) in &variants {
                let _ = writeln!(t, "            Self::{vid} => {val:?},");
            }
            let _ = writeln!(t, "            Self::Unknown(s) => s,\n        }}\n    }}\n\n    /// Parse a wire name; unknown names are kept in `Unknown`.\n    pub fn from_wire(s: &str) -> Self {{\n        match s {{");
            for (vid, val) in &variants {
                let _ = writeln!(t, "            {val:?} => Self::{vid},");
            }
            let _ = writeln!(
                t,
                "            other => Self::Unknown(other.to_owned()),\n        }}\n    }}\n}}\n"
            );
            let _ = writeln!(t, "crate::qapi_enum_serde!({id});\n");
        } else if let Some(name) = v.get("struct").and_then(Value::as_str) {
            n_types += 1;
            let data = v
                .get("data")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let ms = s.all_members(&data, &e.doc, v.get("base"));
            doc_attr(
                &mut t,
                "",
                if e.doc.summary.is_empty() {
                    name
                } else {
                    &e.doc.summary
                },
            );
            let _ = writeln!(
                t,
                "#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]\npub struct {} {{",
                type_ident(name)
            );
            write_fields(&mut t, &s, Some(name), &ms, true);
            t.push_str("}\n\n");
        } else if let Some(name) = v.get("union").and_then(Value::as_str) {
            n_types += 1;
            let ms = s.all_members(&Map::new(), &e.doc, v.get("base"));
            doc_attr(
                &mut t,
                "",
                if e.doc.summary.is_empty() {
                    name
                } else {
                    &e.doc.summary
                },
            );
            let _ = writeln!(
                t,
                "#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]\npub struct {} {{",
                type_ident(name)
            );
            write_fields(&mut t, &s, Some(name), &ms, true);
            let disc = v
                .get("discriminator")
                .and_then(Value::as_str)
                .unwrap_or("type");
            let _ = writeln!(t, "    /// The members of the branch selected by `{disc}`, untyped.\n    #[serde(flatten)]\n    pub branch: ::serde_json::Map<::std::string::String, ::serde_json::Value>,\n}}\n");
        }
    }
    files.insert("types.rs".to_owned(), t);

    // --- commands
    let mut c = header(dir, "Every command of the QAPI schema as a struct of its arguments implementing\n//! [`Command`](crate::Command). Any command can also be sent untyped by name.");
    c.push_str(ALLOWS);
    c.push_str("use serde::Serialize;\n\n");
    let mut names = Vec::new();
    for e in &s.exprs {
        let v = &e.value;
        let Some(name) = v.get("command").and_then(Value::as_str) else {
            continue;
        };
        let id = camel(name);
        names.push((name.to_owned(), id.clone()));
        let free_form = v.get("gen") == Some(&Value::Bool(false));
        let summary = if e.doc.summary.is_empty() {
            format!("`{name}`")
        } else {
            e.doc.summary.clone()
        };
        doc_attr(&mut c, "", &format!("`{name}`: {summary}"));
        // A command whose arguments are one named type (`'boxed': true`, e.g. object-add's
        // ObjectOptions) always sends that type: it has required members (qom-type, id, ...), so
        // it is a required field and the command has no Default (which would send no
        // arguments at all).
        let defaultable = match v.get("data") {
            Some(Value::Object(d)) => members(d).iter().all(|m| m.optional || m.conditional),
            Some(Value::String(_)) => false,
            _ => true,
        };
        let default = if defaultable { ", Default" } else { "" };
        let _ = writeln!(c, "#[derive(Debug, Clone, PartialEq, Serialize{default})]");
        match v.get("data") {
            Some(Value::Object(d)) => {
                let ms = documented(d, &e.doc);
                let _ = writeln!(c, "pub struct {id} {{");
                write_fields(&mut c, &s, None, &ms, false);
            }
            Some(Value::String(t)) => {
                let ty = s.rust_type(&Value::String(t.clone()), false);
                let _ = writeln!(c, "pub struct {id} {{\n    /// The arguments (`{t}`).\n    #[serde(flatten)]\n    pub arguments: {ty},");
            }
            _ => {
                let _ = writeln!(c, "pub struct {id} {{");
            }
        }
        if free_form {
            let _ = writeln!(c, "    /// Further properties, passed as they are (this command takes free-form arguments).\n    #[serde(flatten)]\n    pub properties: ::serde_json::Map<::std::string::String, ::serde_json::Value>,");
        }
        c.push_str("}\n\n");
        let ret = match v.get("returns") {
            Some(r) => s.rust_type(r, false),
            None => "crate::Empty".to_owned(),
        };
        let _ = writeln!(c, "impl crate::Command for {id} {{\n    const NAME: &'static str = {name:?};\n    type Returns = {ret};\n}}\n");
    }
    let _ = writeln!(
        c,
        "/// Every command name in the schema, in schema order.\npub const ALL: &[&str] = &["
    );
    for (n, _) in &names {
        let _ = writeln!(c, "    {n:?},");
    }
    c.push_str("];\n");
    files.insert("commands.rs".to_owned(), c);

    // --- events
    let mut ev = header(dir, "Every event of the QAPI schema: a data struct each, and [`TypedEvent`] to decode an\n//! [`Event`](crate::Event), keeping events the schema lacks as they came.");
    ev.push_str(ALLOWS);
    ev.push_str("use serde::{Deserialize, Serialize};\n\n");
    let mut events = Vec::new();
    for e in &s.exprs {
        let v = &e.value;
        let Some(name) = v.get("event").and_then(Value::as_str) else {
            continue;
        };
        let id = event_ident(name);
        let summary = if e.doc.summary.is_empty() {
            format!("`{name}`")
        } else {
            e.doc.summary.clone()
        };
        let data_ty = match v.get("data") {
            Some(Value::String(t)) => s.rust_type(&Value::String(t.clone()), false),
            other => {
                let d = other
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                doc_attr(&mut ev, "", &format!("Data of `{name}`: {summary}"));
                let _ = writeln!(ev, "#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]\npub struct {id} {{");
                write_fields(&mut ev, &s, None, &documented(&d, &e.doc), true);
                ev.push_str("}\n\n");
                id.clone()
            }
        };
        events.push((name.to_owned(), id, data_ty, summary));
    }
    ev.push_str("/// An event decoded by name; events this schema lacks stay [`TypedEvent::Unknown`].\n#[derive(Debug, Clone, PartialEq)]\npub enum TypedEvent {\n");
    for (name, id, ty, summary) in &events {
        doc_attr(&mut ev, "    ", &format!("`{name}`: {summary}"));
        let _ = writeln!(ev, "    {id}({ty}),");
    }
    ev.push_str(
        "    /// An event not in this schema (newer QEMU).\n    Unknown(crate::Event),\n}\n\n",
    );
    ev.push_str("impl TypedEvent {\n    /// Decode `event`'s data by its name. Unknown members are ignored; data that does not fit the\n    /// schema is an error naming the event.\n    pub fn from_event(event: &crate::Event) -> ::std::result::Result<Self, crate::Error> {\n        fn data<T: serde::de::DeserializeOwned>(e: &crate::Event) -> ::std::result::Result<T, crate::Error> {\n            serde_json::from_value(e.data.clone()).map_err(|err| crate::Error::BadEvent { event: e.event.clone(), reason: err.to_string() })\n        }\n        Ok(match event.event.as_str() {\n");
    for (name, id, _, _) in &events {
        let _ = writeln!(ev, "            {name:?} => Self::{id}(data(event)?),");
    }
    ev.push_str("            _ => Self::Unknown(event.clone()),\n        })\n    }\n}\n\n/// Every event name in the schema, in schema order.\npub const ALL: &[&str] = &[\n");
    for (name, ..) in &events {
        let _ = writeln!(ev, "    {name:?},");
    }
    ev.push_str("];\n");
    files.insert("events.rs".to_owned(), ev);

    let mut m = header(
        dir,
        &format!(
            "Typed QMP from QEMU's QAPI schema: {n_types} types, {} commands, {} events.",
            names.len(),
            events.len()
        ),
    );
    m.push_str(
        "pub mod commands;\npub mod events;\npub mod types;\n\npub use events::TypedEvent;\n",
    );
    files.insert("mod.rs".to_owned(), m);
    Ok(files)
}
