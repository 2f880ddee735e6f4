//! Parser and resolver for libvirt's `.x` protocol files (feature `schema`).
//!
//! [`parse`] turns one file into a [`Spec`]: the syntax tree as written, with every comment kept
//! and attached to the definition, enum member, or field it belongs to (libvirt keeps procedure
//! annotations such as `@generate`, `@acl`, `@readstream`, `@priority` and `insert@1` in comments;
//! see [`Comment::annotations`]). [`Schema`] puts several files together (remote_protocol.x uses
//! nothing from other files, qemu_protocol.x and lxc_protocol.x use remote's types), resolves every
//! constant and enum value to a number, and checks that every referenced type and constant exists.
//!
//! The `.x` files also use a few constants that libvirt defines in its C headers (rpcgen copies
//! them through to C). Their values are in [`C_CONSTANTS`].
//!
//! ```
//! use xdr::schema::{parse, Definition, Schema};
//!
//! let spec = parse(
//!     "example.x",
//!     "const MAX = 0x10;\n/* a name */\ntypedef string name_t<MAX>;\n",
//! )?;
//! assert!(matches!(spec.items[1].def, Definition::Typedef(_)));
//! let schema = Schema::new(vec![spec])?;
//! assert_eq!(schema.constant("MAX"), Some(16));
//! # Ok::<(), xdr::schema::Error>(())
//! ```

mod ast;
mod parser;

pub use ast::*;
pub use parser::parse;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// What can go wrong reading, parsing, or resolving `.x` files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text is not valid `.x` syntax.
    #[error("{file}:{line}:{column}: {message}")]
    Parse {
        /// The file name given to the parser.
        file: String,
        /// 1-based line.
        line: u32,
        /// 1-based column.
        column: u32,
        /// What was expected and what was found.
        message: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A name is used but defined nowhere (not in the loaded files nor in [`C_CONSTANTS`]).
    #[error("{file}:{pos}: unknown {kind} `{name}` (load the file that defines it)")]
    Unknown {
        /// `constant` or `type`.
        kind: &'static str,
        /// The unknown name.
        name: String,
        /// The file using it.
        file: String,
        /// Where it is used.
        pos: Pos,
    },
    /// A name is defined twice.
    #[error("{file}:{pos}: `{name}` is already defined in {first_file}:{first_pos}")]
    Duplicate {
        /// The name.
        name: String,
        /// The second definition's file.
        file: String,
        /// The second definition's position.
        pos: Pos,
        /// The first definition's file.
        first_file: String,
        /// The first definition's position.
        first_pos: Pos,
    },
    /// A constant's definition refers back to itself.
    #[error("{file}:{pos}: constant `{name}` is defined in terms of itself")]
    ConstantCycle {
        /// The constant.
        name: String,
        /// Its file.
        file: String,
        /// Its position.
        pos: Pos,
    },
}

/// A constant that libvirt's `.x` files use but that is defined in a C header, not in a `.x` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CConstant {
    /// The C name.
    pub name: &'static str,
    /// Its value.
    pub value: i64,
    /// The libvirt header defining it.
    pub header: &'static str,
}

/// The C-header constants used by libvirt 11.3.0's `.x` files (`VIR_UUID_BUFLEN` in
/// `typedef opaque remote_uuid[VIR_UUID_BUFLEN]`, the `VIR_SECURITY_*_BUFLEN` maxima, and the
/// `virTypedParameterType` values used as union case labels). The test suite checks each value
/// against libvirt's own API description (`api/libvirt-api.xml`) and checks that every name the
/// `.x` files use is either defined in them or listed here.
pub const C_CONSTANTS: &[CConstant] = &[
    CConstant {
        name: "VIR_UUID_BUFLEN",
        value: 16,
        header: "libvirt-host.h",
    },
    CConstant {
        name: "VIR_SECURITY_MODEL_BUFLEN",
        value: 256 + 1,
        header: "libvirt-host.h",
    },
    CConstant {
        name: "VIR_SECURITY_LABEL_BUFLEN",
        value: 4096 + 1,
        header: "libvirt-host.h",
    },
    CConstant {
        name: "VIR_SECURITY_DOI_BUFLEN",
        value: 256 + 1,
        header: "libvirt-host.h",
    },
    CConstant {
        name: "VIR_TYPED_PARAM_INT",
        value: 1,
        header: "libvirt-common.h",
    },
    CConstant {
        name: "VIR_TYPED_PARAM_UINT",
        value: 2,
        header: "libvirt-common.h",
    },
    CConstant {
        name: "VIR_TYPED_PARAM_LLONG",
        value: 3,
        header: "libvirt-common.h",
    },
    CConstant {
        name: "VIR_TYPED_PARAM_ULLONG",
        value: 4,
        header: "libvirt-common.h",
    },
    CConstant {
        name: "VIR_TYPED_PARAM_DOUBLE",
        value: 5,
        header: "libvirt-common.h",
    },
    CConstant {
        name: "VIR_TYPED_PARAM_BOOLEAN",
        value: 6,
        header: "libvirt-common.h",
    },
    CConstant {
        name: "VIR_TYPED_PARAM_STRING",
        value: 7,
        header: "libvirt-common.h",
    },
];

/// Where a resolved constant comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConstOrigin {
    /// A `const` definition in a `.x` file.
    Const {
        /// The file (index into [`Schema::specs`]).
        spec: usize,
    },
    /// A member of a named enum.
    EnumMember {
        /// The file (index into [`Schema::specs`]).
        spec: usize,
        /// The enum's name.
        enum_name: String,
    },
    /// An entry of [`C_CONSTANTS`].
    CHeader(&'static str),
}

/// A located top-level definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    spec: usize,
    item: usize,
}

/// Several parsed `.x` files with every name resolved.
#[derive(Debug, Clone)]
pub struct Schema {
    specs: Vec<Spec>,
    consts: BTreeMap<String, (i64, ConstOrigin)>,
    types: HashMap<String, Loc>,
}

impl Schema {
    /// Put parsed files together: check names are unique, resolve every constant and enum value,
    /// and check that every referenced type and constant exists.
    pub fn new(specs: Vec<Spec>) -> Result<Self, Error> {
        let mut types: HashMap<String, Loc> = HashMap::new();
        // Names of constants and enum members, before resolution.
        let mut raw: BTreeMap<String, RawConst> = BTreeMap::new();
        let mut first_def: HashMap<String, (usize, Pos)> = HashMap::new();
        let mut claim = |name: &str, spec: usize, pos: Pos| -> Result<(), Error> {
            if let Some((fs, fp)) = first_def.get(name) {
                return Err(Error::Duplicate {
                    name: name.to_string(),
                    file: specs[spec].file.clone(),
                    pos,
                    first_file: specs[*fs].file.clone(),
                    first_pos: *fp,
                });
            }
            first_def.insert(name.to_string(), (spec, pos));
            Ok(())
        };
        for (si, spec) in specs.iter().enumerate() {
            for (ii, item) in spec.items.iter().enumerate() {
                match &item.def {
                    Definition::PassThrough(_) => {}
                    Definition::Const(c) => {
                        claim(&c.name, si, item.pos)?;
                        raw.insert(
                            c.name.clone(),
                            RawConst {
                                expr: RawExpr::Value(c.value.clone()),
                                origin: ConstOrigin::Const { spec: si },
                                pos: item.pos,
                            },
                        );
                    }
                    def => {
                        let name = def.name().unwrap_or_default().to_string();
                        claim(&name, si, item.pos)?;
                        types.insert(name, Loc { spec: si, item: ii });
                    }
                }
                // Enum members, including those of anonymous enums nested anywhere.
                let mut enums = Vec::new();
                collect_enums(&item.def, &mut enums);
                for (enum_name, e) in enums {
                    let mut prev: Option<String> = None;
                    for m in &e.members {
                        claim(&m.name, si, m.pos)?;
                        let expr = match (&m.value, &prev) {
                            (Some(v), _) => RawExpr::Value(v.clone()),
                            (None, None) => RawExpr::Value(Value::Int(0)),
                            (None, Some(p)) => RawExpr::Next(p.clone()),
                        };
                        raw.insert(
                            m.name.clone(),
                            RawConst {
                                expr,
                                origin: ConstOrigin::EnumMember {
                                    spec: si,
                                    enum_name: enum_name.clone(),
                                },
                                pos: m.pos,
                            },
                        );
                        prev = Some(m.name.clone());
                    }
                }
            }
        }
        for c in C_CONSTANTS {
            raw.entry(c.name.to_string()).or_insert(RawConst {
                expr: RawExpr::Value(Value::Int(c.value)),
                origin: ConstOrigin::CHeader(c.header),
                pos: Pos::default(),
            });
        }

        let mut consts = BTreeMap::new();
        let names: Vec<String> = raw.keys().cloned().collect();
        for name in names {
            resolve_const(&specs, &raw, &name, &mut consts, &mut Vec::new())?;
        }
        let schema = Schema {
            specs,
            consts,
            types,
        };
        schema.check_references()?;
        Ok(schema)
    }

    /// Read and parse the given files, then [`Schema::new`].
    pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<Self, Error> {
        let specs = paths
            .iter()
            .map(|p| parse_file(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(specs)
    }

    /// Read a file and, first, the `.x` files it includes: a pass-through line
    /// `%#include "NAME.h"` whose `NAME.x` exists in the same directory (as qemu_protocol.x
    /// includes remote_protocol.h), recursively.
    pub fn load_with_includes(path: &Path) -> Result<Self, Error> {
        let mut order: Vec<PathBuf> = Vec::new();
        let mut specs: Vec<Spec> = Vec::new();
        fn visit(
            path: &Path,
            order: &mut Vec<PathBuf>,
            specs: &mut Vec<Spec>,
            depth: usize,
        ) -> Result<(), Error> {
            if order.iter().any(|p| p == path) || depth > 16 {
                return Ok(());
            }
            let spec = parse_file(path)?;
            let dir = path.parent().unwrap_or(Path::new("."));
            for inc in spec.includes() {
                if let Some(stem) = inc.strip_suffix(".h") {
                    let candidate = dir.join(format!("{stem}.x"));
                    if candidate.is_file() {
                        visit(&candidate, order, specs, depth + 1)?;
                    }
                }
            }
            order.push(path.to_path_buf());
            specs.push(spec);
            Ok(())
        }
        visit(path, &mut order, &mut specs, 0)?;
        Self::new(specs)
    }

    /// The files, in the order given.
    pub fn specs(&self) -> &[Spec] {
        &self.specs
    }

    /// The value of a constant or enum member (from any loaded file or [`C_CONSTANTS`]).
    pub fn constant(&self, name: &str) -> Option<i64> {
        self.consts.get(name).map(|(v, _)| *v)
    }

    /// Where a constant or enum member comes from.
    pub fn constant_origin(&self, name: &str) -> Option<&ConstOrigin> {
        self.consts.get(name).map(|(_, o)| o)
    }

    /// Every resolved constant and enum member, by name.
    pub fn constants(&self) -> impl Iterator<Item = (&str, i64)> + '_ {
        self.consts.iter().map(|(k, (v, _))| (k.as_str(), *v))
    }

    /// The number a [`Value`] stands for. Every value inside a `Schema` resolves (checked by
    /// [`Schema::new`]); `None` only for a value from elsewhere naming an unknown constant.
    pub fn value(&self, v: &Value) -> Option<i64> {
        match v {
            Value::Int(n) => Some(*n),
            Value::Name(n) => self.constant(n),
        }
    }

    /// The top-level type definition (enum, struct, union, typedef) with this name, and the index
    /// of its file in [`Schema::specs`].
    pub fn definition(&self, name: &str) -> Option<(usize, &Item)> {
        self.types
            .get(name)
            .map(|l| (l.spec, &self.specs[l.spec].items[l.item]))
    }

    /// An enum's members with their resolved values, in declaration order.
    pub fn enum_values(&self, e: &EnumDef) -> Vec<(String, i64)> {
        e.members
            .iter()
            .map(|m| (m.name.clone(), self.constant(&m.name).unwrap_or_default()))
            .collect()
    }

    /// Follow typedefs from a type name down to the declaration that is not a plain alias of a
    /// named type: returns the last typedef's declaration (with its shape), or `None` when the
    /// name is an enum/struct/union or unknown.
    pub fn typedef_target(&self, name: &str) -> Option<&Declaration> {
        let mut cur = name;
        let mut last = None;
        for _ in 0..64 {
            match self.definition(cur) {
                Some((
                    _,
                    Item {
                        def: Definition::Typedef(d),
                        ..
                    },
                )) => {
                    last = Some(d);
                    match d {
                        Declaration::Named {
                            ty: TypeSpec::Named(n),
                            shape: Shape::Scalar,
                            ..
                        } => cur = n,
                        _ => return last,
                    }
                }
                _ => return last,
            }
        }
        last
    }

    fn check_references(&self) -> Result<(), Error> {
        for spec in &self.specs {
            for item in &spec.items {
                let mut ctx = RefCheck {
                    schema: self,
                    file: &spec.file,
                };
                match &item.def {
                    Definition::Const(_) | Definition::PassThrough(_) => {}
                    Definition::Typedef(d) => ctx.decl(d, item.pos)?,
                    Definition::Enum(e) => ctx.enum_def(e)?,
                    Definition::Struct(s) => ctx.struct_def(s)?,
                    Definition::Union(u) => ctx.union_def(u)?,
                }
            }
        }
        Ok(())
    }
}

impl Spec {
    /// The file names of `%#include "..."` / `%#include <...>` pass-through lines.
    pub fn includes(&self) -> Vec<&str> {
        self.items
            .iter()
            .filter_map(|i| match &i.def {
                Definition::PassThrough(line) => {
                    let rest = line.trim().strip_prefix('#')?.trim_start();
                    let rest = rest.strip_prefix("include")?.trim();
                    let inner = rest
                        .strip_prefix('"')
                        .and_then(|r| r.strip_suffix('"'))
                        .or_else(|| rest.strip_prefix('<').and_then(|r| r.strip_suffix('>')))?;
                    Some(inner)
                }
                _ => None,
            })
            .collect()
    }
}

/// Read and parse one file; errors name the file as given.
pub fn parse_file(path: &Path) -> Result<Spec, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&path.display().to_string(), &text)
}

#[derive(Debug)]
enum RawExpr {
    Value(Value),
    /// The value of the named member plus one (an enum member without `= value`).
    Next(String),
}

#[derive(Debug)]
struct RawConst {
    expr: RawExpr,
    origin: ConstOrigin,
    pos: Pos,
}

fn origin_file<'a>(specs: &'a [Spec], o: &ConstOrigin) -> &'a str {
    match o {
        ConstOrigin::Const { spec } | ConstOrigin::EnumMember { spec, .. } => &specs[*spec].file,
        ConstOrigin::CHeader(h) => h,
    }
}

fn resolve_const(
    specs: &[Spec],
    raw: &BTreeMap<String, RawConst>,
    name: &str,
    done: &mut BTreeMap<String, (i64, ConstOrigin)>,
    stack: &mut Vec<String>,
) -> Result<i64, Error> {
    if let Some((v, _)) = done.get(name) {
        return Ok(*v);
    }
    let rc = &raw[name];
    if stack.iter().any(|s| s == name) {
        return Err(Error::ConstantCycle {
            name: name.to_string(),
            file: origin_file(specs, &rc.origin).to_string(),
            pos: rc.pos,
        });
    }
    stack.push(name.to_string());
    let lookup = |dep: &str,
                  done: &mut BTreeMap<String, (i64, ConstOrigin)>,
                  stack: &mut Vec<String>|
     -> Result<i64, Error> {
        if raw.contains_key(dep) {
            resolve_const(specs, raw, dep, done, stack)
        } else {
            Err(Error::Unknown {
                kind: "constant",
                name: dep.to_string(),
                file: origin_file(specs, &rc.origin).to_string(),
                pos: rc.pos,
            })
        }
    };
    let v = match &rc.expr {
        RawExpr::Value(Value::Int(n)) => *n,
        RawExpr::Value(Value::Name(dep)) => lookup(dep, done, stack)?,
        RawExpr::Next(prev) => lookup(prev, done, stack)? + 1,
    };
    stack.pop();
    done.insert(name.to_string(), (v, rc.origin.clone()));
    Ok(v)
}

fn collect_enums<'a>(def: &'a Definition, out: &mut Vec<(String, &'a EnumDef)>) {
    fn in_type<'a>(ty: &'a TypeSpec, owner: &str, out: &mut Vec<(String, &'a EnumDef)>) {
        match ty {
            TypeSpec::Enum(e) => out.push((owner.to_string(), e)),
            TypeSpec::Struct(s) => s.fields.iter().for_each(|f| in_decl(&f.decl, owner, out)),
            TypeSpec::Union(u) => in_union(u, owner, out),
            _ => {}
        }
    }
    fn in_decl<'a>(d: &'a Declaration, owner: &str, out: &mut Vec<(String, &'a EnumDef)>) {
        if let Declaration::Named { ty, .. } = d {
            in_type(ty, owner, out);
        }
    }
    fn in_union<'a>(u: &'a UnionDef, owner: &str, out: &mut Vec<(String, &'a EnumDef)>) {
        in_decl(&u.discriminant.decl, owner, out);
        u.arms
            .iter()
            .for_each(|a| in_decl(&a.field.decl, owner, out));
        if let Some(d) = &u.default {
            in_decl(&d.decl, owner, out);
        }
    }
    match def {
        Definition::Enum(e) => out.push((e.name.clone(), e)),
        Definition::Struct(s) => s.fields.iter().for_each(|f| in_decl(&f.decl, &s.name, out)),
        Definition::Union(u) => in_union(u, &u.name, out),
        Definition::Typedef(d) => in_decl(d, d.name().unwrap_or_default(), out),
        Definition::Const(_) | Definition::PassThrough(_) => {}
    }
}

struct RefCheck<'a> {
    schema: &'a Schema,
    file: &'a str,
}

impl RefCheck<'_> {
    fn unknown(&self, kind: &'static str, name: &str, pos: Pos) -> Error {
        Error::Unknown {
            kind,
            name: name.to_string(),
            file: self.file.to_string(),
            pos,
        }
    }

    fn value(&self, v: &Value, pos: Pos) -> Result<(), Error> {
        match v {
            Value::Name(n) if self.schema.constant(n).is_none() => {
                Err(self.unknown("constant", n, pos))
            }
            _ => Ok(()),
        }
    }

    fn decl(&mut self, d: &Declaration, pos: Pos) -> Result<(), Error> {
        let Declaration::Named { ty, shape, .. } = d else {
            return Ok(());
        };
        match shape {
            Shape::Fixed(v) | Shape::Variable(Some(v)) => self.value(v, pos)?,
            Shape::Scalar | Shape::Optional | Shape::Variable(None) => {}
        }
        match ty {
            TypeSpec::Named(n) if self.schema.definition(n).is_none() => {
                Err(self.unknown("type", n, pos))
            }
            TypeSpec::Enum(e) => self.enum_def(e),
            TypeSpec::Struct(s) => self.struct_def(s),
            TypeSpec::Union(u) => self.union_def(u),
            _ => Ok(()),
        }
    }

    fn enum_def(&mut self, _e: &EnumDef) -> Result<(), Error> {
        // Member values were resolved by `resolve_const`.
        Ok(())
    }

    fn struct_def(&mut self, s: &StructDef) -> Result<(), Error> {
        for f in &s.fields {
            self.decl(&f.decl, f.pos)?;
        }
        Ok(())
    }

    fn union_def(&mut self, u: &UnionDef) -> Result<(), Error> {
        self.decl(&u.discriminant.decl, u.discriminant.pos)?;
        for arm in &u.arms {
            for l in &arm.labels {
                self.value(l, arm.field.pos)?;
            }
            self.decl(&arm.field.decl, arm.field.pos)?;
        }
        if let Some(d) = &u.default {
            self.decl(&d.decl, d.pos)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
