//! The syntax tree of one `.x` file, as written (names unresolved, comments kept).

use std::fmt;

/// Where something starts in its `.x` file (1-based line and column; columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// 1-based line number.
    pub line: u32,
    /// 1-based column (in characters).
    pub column: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One parsed `.x` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The file name given to the parser (used in error messages).
    pub file: String,
    /// Top-level definitions and pass-through lines, in file order.
    pub items: Vec<Item>,
    /// Comments after the last item (not attached to anything).
    pub trailing_comments: Vec<Comment>,
}

/// A top-level entry of a `.x` file with its comments.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// What it defines.
    pub def: Definition,
    /// The comments before it (leading) and on its opening line (trailing).
    pub comments: Comments,
    /// Where its first token is.
    pub pos: Pos,
}

/// A top-level definition.
#[derive(Debug, Clone, PartialEq)]
pub enum Definition {
    /// `const NAME = value;`
    Const(ConstDef),
    /// `enum NAME { ... };`
    Enum(EnumDef),
    /// `struct NAME { ... };`
    Struct(StructDef),
    /// `union NAME switch (...) { ... };`
    Union(UnionDef),
    /// `typedef declaration;`
    Typedef(Declaration),
    /// A `%` line, passed through to C by rpcgen; holds the text after the `%`.
    PassThrough(String),
}

impl Definition {
    /// The defined name (`None` for a pass-through line or a `typedef void`).
    pub fn name(&self) -> Option<&str> {
        match self {
            Definition::Const(c) => Some(&c.name),
            Definition::Enum(e) => Some(&e.name),
            Definition::Struct(s) => Some(&s.name),
            Definition::Union(u) => Some(&u.name),
            Definition::Typedef(d) => d.name(),
            Definition::PassThrough(_) => None,
        }
    }
}

/// `const NAME = value;` (rpcgen also accepts a constant name as the value).
#[derive(Debug, Clone, PartialEq)]
pub struct ConstDef {
    /// The constant's name.
    pub name: String,
    /// Its value as written.
    pub value: Value,
}

/// A number or a constant name, as written where XDR expects a value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// A literal, already converted from decimal, hex (`0x`), or octal (leading `0`), with its sign.
    Int(i64),
    /// A constant or enum member name, resolved by [`super::Schema`].
    Name(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(n) => write!(f, "{n}"),
            Value::Name(s) => f.write_str(s),
        }
    }
}

/// An enum's body: its members in order.
#[derive(Debug, Clone, PartialEq)]
pub struct EnumDef {
    /// The enum's name (empty for an anonymous enum used inline in a declaration).
    pub name: String,
    /// Members in declaration order.
    pub members: Vec<EnumMember>,
}

/// `NAME = value` inside an enum, with the comments libvirt uses for procedure annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct EnumMember {
    /// The member's name.
    pub name: String,
    /// Its value as written; `None` when omitted (then it is the previous member's value + 1,
    /// or 0 for the first, as rpcgen does).
    pub value: Option<Value>,
    /// Comments before the member and after it on the same line.
    pub comments: Comments,
    /// Where the member's name is.
    pub pos: Pos,
}

impl EnumMember {
    /// The annotations (`@generate: both`, `@acl: ...`, ...) in this member's comments.
    pub fn annotations(&self) -> Vec<Annotation> {
        self.comments.annotations()
    }
}

/// A struct's body.
#[derive(Debug, Clone, PartialEq)]
pub struct StructDef {
    /// The struct's name (empty for an anonymous struct used inline in a declaration).
    pub name: String,
    /// Fields in order (never `void`).
    pub fields: Vec<Field>,
}

/// One declaration inside a struct, union arm, or typedef, with its comments.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The declaration.
    pub decl: Declaration,
    /// Comments before it and after it on the same line (e.g. `/* insert@1 */`).
    pub comments: Comments,
    /// Where the declaration starts.
    pub pos: Pos,
}

/// A discriminated union.
#[derive(Debug, Clone, PartialEq)]
pub struct UnionDef {
    /// The union's name (empty for an anonymous union used inline in a declaration).
    pub name: String,
    /// The discriminant declaration (`int type`, `unsigned kind`, `some_enum e`, `bool b`).
    pub discriminant: Box<Field>,
    /// `case` arms in order.
    pub arms: Vec<UnionArm>,
    /// The `default:` arm, if any.
    pub default: Option<Box<Field>>,
}

/// `case A: case B: declaration;`
#[derive(Debug, Clone, PartialEq)]
pub struct UnionArm {
    /// The case labels (one or more).
    pub labels: Vec<Value>,
    /// The arm's declaration (possibly `void`).
    pub field: Field,
}

/// A declaration: `void`, or a name with a type and a shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Declaration {
    /// `void` (only valid in union arms; rpcgen also accepts `typedef void`... we do not).
    Void,
    /// A named declaration.
    Named {
        /// The declared name.
        name: String,
        /// The element type.
        ty: TypeSpec,
        /// Scalar, optional, fixed array, or variable array.
        shape: Shape,
    },
}

impl Declaration {
    /// The declared name (`None` for `void`).
    pub fn name(&self) -> Option<&str> {
        match self {
            Declaration::Void => None,
            Declaration::Named { name, .. } => Some(name),
        }
    }
}

/// How a declared name relates to its type.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// `T name`
    Scalar,
    /// `T *name` (optional-data)
    Optional,
    /// `T name[N]` (for `opaque`: fixed opaque of N bytes)
    Fixed(Value),
    /// `T name<N>` or `T name<>` (for `opaque`: variable opaque; for `string`: a string)
    Variable(Option<Value>),
}

/// A type specifier.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeSpec {
    /// `int`
    Int,
    /// `unsigned int` or `unsigned`
    UInt,
    /// `hyper`
    Hyper,
    /// `unsigned hyper`
    UHyper,
    /// `char` (4 bytes on the wire, like int)
    Char,
    /// `unsigned char` (4 bytes on the wire)
    UChar,
    /// `short` (4 bytes on the wire)
    Short,
    /// `unsigned short` (4 bytes on the wire)
    UShort,
    /// `float`
    Float,
    /// `double`
    Double,
    /// `quadruple`
    Quadruple,
    /// `bool`
    Bool,
    /// `string` (only with the `<>` shape)
    String,
    /// `opaque` (only with the `[]` or `<>` shapes)
    Opaque,
    /// A named type (typedef, enum, struct, or union), with or without a `struct`/`enum`/`union`
    /// keyword before it.
    Named(String),
    /// An anonymous enum written inline.
    Enum(Box<EnumDef>),
    /// An anonymous struct written inline.
    Struct(Box<StructDef>),
    /// An anonymous union written inline.
    Union(Box<UnionDef>),
}

/// One comment as written (without the `/*` `*/` or `//` delimiters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// The text between the delimiters, unchanged.
    pub text: String,
    /// Where the comment starts.
    pub pos: Pos,
    /// The line the comment ends on.
    pub end_line: u32,
}

impl Comment {
    /// The comment's lines with the decoration (leading `*`, `/**`, surrounding blanks) removed;
    /// empty lines at the start and end dropped.
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .text
            .lines()
            .map(|l| {
                let t = l.trim();
                let t = t.trim_start_matches('*');
                let t = t.strip_prefix(' ').unwrap_or(t);
                t.trim_end().to_string()
            })
            .collect();
        while out.first().is_some_and(|l| l.is_empty()) {
            out.remove(0);
        }
        while out.last().is_some_and(|l| l.is_empty()) {
            out.pop();
        }
        out
    }

    /// The annotations in this comment. A line whose text starts with `@key:` gives
    /// `(key, rest)`; `insert@N` and `alloc@...` anywhere give `("insert", "N")` / `("alloc", ...)`.
    pub fn annotations(&self) -> Vec<Annotation> {
        let mut out = Vec::new();
        for line in self.lines() {
            let t = line.trim();
            if let Some(rest) = t.strip_prefix('@') {
                if let Some((key, value)) = rest.split_once(':') {
                    let key = key.trim();
                    if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        out.push(Annotation {
                            key: key.to_string(),
                            value: value.trim().to_string(),
                        });
                        continue;
                    }
                }
            }
            for word in t.split_whitespace() {
                for key in ["insert", "alloc"] {
                    if let Some(rest) = word.strip_prefix(key).and_then(|r| r.strip_prefix('@')) {
                        if rest.starts_with(|c: char| c.is_ascii_digit()) {
                            out.push(Annotation {
                                key: key.to_string(),
                                value: rest.to_string(),
                            });
                        }
                    }
                }
            }
        }
        out
    }
}

/// A `@key: value` annotation from a libvirt `.x` comment (e.g. `@acl: domain:read`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Annotation {
    /// The key without `@` (`generate`, `acl`, `aclfilter`, `readstream`, `writestream`,
    /// `sparseflag`, `priority`, `insert`, `alloc`, ...).
    pub key: String,
    /// The text after the colon (or after `insert@`), trimmed.
    pub value: String,
}

/// The comments attached to an item.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Comments {
    /// Comments between the previous item and this one (and inside this one's tokens), in order.
    pub leading: Vec<Comment>,
    /// Comments after this item on the line where it ends (or, for a struct/enum/union, on the
    /// line of its opening `{`).
    pub trailing: Vec<Comment>,
}

impl Comments {
    /// True when there are no comments at all.
    pub fn is_empty(&self) -> bool {
        self.leading.is_empty() && self.trailing.is_empty()
    }

    /// All annotations of the leading then trailing comments.
    pub fn annotations(&self) -> Vec<Annotation> {
        self.leading
            .iter()
            .chain(&self.trailing)
            .flat_map(Comment::annotations)
            .collect()
    }

    /// The leading comment that directly precedes the item at line `item_line` (no blank line
    /// in between), if any: the one that reads as the item's documentation.
    pub fn doc_comment(&self, item_line: u32) -> Option<&Comment> {
        self.leading
            .iter()
            .rev()
            .find(|c| c.pos.line <= item_line)
            .filter(|c| c.end_line + 1 >= item_line)
    }
}
