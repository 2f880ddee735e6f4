//! The nom parser for libvirt's `.x` dialect of the XDR language (RFC 4506 section 6 plus rpcgen's
//! extensions: `%` pass-through lines, `char`/`short`/`unsigned` type names, constant names as
//! values, comments kept).

use super::ast::*;
use super::Error;
use nom::branch::alt;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::{char as ch, digit1, hex_digit1, oct_digit0};
use nom::combinator::{opt, recognize};
use nom::sequence::pair;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// Parse the text of one `.x` file. `file` names it in error messages.
pub fn parse(file: &str, src: &str) -> Result<Spec, Error> {
    let p = Parser::new(src);
    match p.spec(src) {
        Ok((_, (items, trailing_comments))) => Ok(Spec {
            file: file.to_string(),
            items,
            trailing_comments,
        }),
        Err(nom::Err::Error(e)) | Err(nom::Err::Failure(e)) => {
            let pos = p.pos(e.input);
            let found: String = e
                .input
                .chars()
                .take_while(|c| *c != '\n')
                .take(30)
                .collect();
            let found = if e.input.is_empty() {
                "end of file".to_string()
            } else {
                format!("`{}`", found.trim_end())
            };
            Err(Error::Parse {
                file: file.to_string(),
                line: pos.line,
                column: pos.column,
                message: format!("{}, found {found}", e.msg),
            })
        }
        Err(nom::Err::Incomplete(_)) => Err(Error::Parse {
            file: file.to_string(),
            line: 0,
            column: 0,
            message: "incomplete input".to_string(),
        }),
    }
}

/// The parser's error: where, and what was expected there.
#[derive(Debug)]
struct PErr<'a> {
    input: &'a str,
    msg: String,
}

impl<'a> nom::error::ParseError<&'a str> for PErr<'a> {
    fn from_error_kind(input: &'a str, kind: nom::error::ErrorKind) -> Self {
        PErr {
            input,
            msg: format!("unexpected input ({kind:?})"),
        }
    }
    fn append(_: &'a str, _: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

type R<'a, T> = nom::IResult<&'a str, T, PErr<'a>>;

fn fail<T>(input: &str, msg: impl Into<String>) -> R<'_, T> {
    Err(nom::Err::Failure(PErr {
        input,
        msg: msg.into(),
    }))
}

const KEYWORDS: &[&str] = &[
    "bool",
    "case",
    "const",
    "default",
    "double",
    "quadruple",
    "enum",
    "float",
    "hyper",
    "int",
    "opaque",
    "string",
    "struct",
    "switch",
    "typedef",
    "union",
    "unsigned",
    "void",
    "char",
    "short",
    "long",
];

struct Parser<'s> {
    src: &'s str,
    /// Start offset of every line.
    line_starts: Vec<usize>,
    /// Comments seen by the whitespace skipper and not yet attached, keyed by offset (so that a
    /// re-scan of the same whitespace records each comment once).
    pending: RefCell<BTreeMap<usize, Comment>>,
}

impl<'s> Parser<'s> {
    fn new(src: &'s str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Parser {
            src,
            line_starts,
            pending: RefCell::new(BTreeMap::new()),
        }
    }

    fn offset(&self, rest: &str) -> usize {
        self.src.len() - rest.len()
    }

    fn pos_at(&self, off: usize) -> Pos {
        let line = match self.line_starts.binary_search(&off) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let column = self.src[start..off].chars().count() + 1;
        Pos {
            line: line as u32 + 1,
            column: column as u32,
        }
    }

    fn pos(&self, rest: &str) -> Pos {
        self.pos_at(self.offset(rest))
    }

    /// Skip blanks and comments, recording the comments as pending.
    fn ws<'a>(&self, mut i: &'a str) -> R<'a, ()> {
        loop {
            let t = i.trim_start();
            if let Some(body) = t.strip_prefix("/*") {
                let Some(end) = body.find("*/") else {
                    return fail(t, "unterminated comment");
                };
                let start = self.offset(t);
                let rest = &body[end + 2..];
                let c = Comment {
                    text: body[..end].to_string(),
                    pos: self.pos_at(start),
                    end_line: self.pos(rest).line,
                };
                self.pending.borrow_mut().insert(start, c);
                i = rest;
            } else if let Some(body) = t.strip_prefix("//") {
                let start = self.offset(t);
                let end = body.find('\n').unwrap_or(body.len());
                let c = Comment {
                    text: body[..end].to_string(),
                    pos: self.pos_at(start),
                    end_line: self.pos_at(start).line,
                };
                self.pending.borrow_mut().insert(start, c);
                i = &body[end..];
            } else {
                return Ok((t, ()));
            }
        }
    }

    /// A comment that starts on the current line after only blanks (consumed, not pending).
    fn same_line_comments<'a>(&self, mut i: &'a str) -> (&'a str, Vec<Comment>) {
        let mut out = Vec::new();
        loop {
            let t = i.trim_start_matches([' ', '\t']);
            if let Some(body) = t.strip_prefix("/*") {
                let Some(end) = body.find("*/") else {
                    return (i, out);
                };
                let rest = &body[end + 2..];
                self.pending.borrow_mut().remove(&self.offset(t));
                out.push(Comment {
                    text: body[..end].to_string(),
                    pos: self.pos(t),
                    end_line: self.pos(rest).line,
                });
                i = rest;
            } else if let Some(body) = t.strip_prefix("//") {
                let end = body.find('\n').unwrap_or(body.len());
                self.pending.borrow_mut().remove(&self.offset(t));
                out.push(Comment {
                    text: body[..end].to_string(),
                    pos: self.pos(t),
                    end_line: self.pos(t).line,
                });
                i = &body[end..];
            } else {
                return (i, out);
            }
        }
    }

    /// Take the pending comments that start in `[from, to)`.
    fn take_comments(&self, from: usize, to: usize) -> Vec<Comment> {
        let mut map = self.pending.borrow_mut();
        let keys: Vec<usize> = map.range(from..to).map(|(k, _)| *k).collect();
        keys.into_iter().filter_map(|k| map.remove(&k)).collect()
    }

    /// A symbol after optional blanks/comments.
    fn sym<'a>(&self, i: &'a str, s: &'static str) -> R<'a, ()> {
        let (i, _) = self.ws(i)?;
        let (i, _) = tag(s)(i)?;
        Ok((i, ()))
    }

    /// Like `sym` but a hard error naming what was expected.
    fn expect<'a>(&self, i: &'a str, s: &'static str) -> R<'a, ()> {
        match self.sym(i, s) {
            Ok(r) => Ok(r),
            Err(nom::Err::Error(_)) => {
                let (t, _) = self.ws(i)?;
                fail(t, format!("expected `{s}`"))
            }
            Err(e) => Err(e),
        }
    }

    /// A raw word (identifier or keyword) after blanks/comments.
    fn word<'a>(&self, i: &'a str) -> R<'a, &'a str> {
        let (i, _) = self.ws(i)?;
        recognize(pair(
            take_while1(|c: char| c.is_ascii_alphabetic() || c == '_'),
            take_while(|c: char| c.is_ascii_alphanumeric() || c == '_'),
        ))(i)
    }

    fn keyword<'a>(&self, i: &'a str, k: &'static str) -> R<'a, ()> {
        let (rest, w) = self.word(i)?;
        if w == k {
            Ok((rest, ()))
        } else {
            Err(nom::Err::Error(PErr {
                input: i,
                msg: format!("expected `{k}`"),
            }))
        }
    }

    /// An identifier (not a keyword); a hard error naming `what` otherwise.
    fn ident<'a>(&self, i: &'a str, what: &str) -> R<'a, String> {
        let (t, _) = self.ws(i)?;
        match self.word(t) {
            Ok((rest, w)) if !KEYWORDS.contains(&w) => Ok((rest, w.to_string())),
            Ok((_, w)) => fail(t, format!("expected {what}, `{w}` is a keyword")),
            Err(_) => fail(t, format!("expected {what}")),
        }
    }

    /// A signed integer literal: decimal, hex (`0x`), or octal (leading `0`).
    fn number<'a>(&self, i: &'a str) -> R<'a, i64> {
        let (i, _) = self.ws(i)?;
        let start = i;
        let (i, neg) = opt(ch('-'))(i)?;
        let (i, _) = self.ws(i)?;
        let (rest, (digits, radix)) = alt((
            |i| {
                let (i, _) = alt((tag("0x"), tag("0X")))(i)?;
                let (i, d) = hex_digit1(i)?;
                Ok((i, (d, 16)))
            },
            |i| {
                let (i, _) = ch('0')(i)?;
                let (i, d) = oct_digit0(i)?;
                Ok((i, (d, 8)))
            },
            |i| {
                let (i, d) = digit1(i)?;
                Ok((i, (d, 10)))
            },
        ))(i)?;
        if rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            return fail(start, "malformed number");
        }
        let magnitude = if digits.is_empty() {
            0
        } else {
            match i128::from_str_radix(digits, radix) {
                Ok(v) => v,
                Err(_) => return fail(start, "number out of range"),
            }
        };
        let v = if neg.is_some() { -magnitude } else { magnitude };
        match i64::try_from(v) {
            Ok(v) => Ok((rest, v)),
            Err(_) => fail(start, "number out of range for a 64-bit constant"),
        }
    }

    /// A value: a number or a constant name.
    fn value<'a>(&self, i: &'a str, what: &str) -> R<'a, Value> {
        let (t, _) = self.ws(i)?;
        if t.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
            let (rest, n) = self.number(t)?;
            return Ok((rest, Value::Int(n)));
        }
        let (rest, name) = self.ident(t, what)?;
        Ok((rest, Value::Name(name)))
    }

    // ---- the grammar ----

    fn spec<'a>(&self, mut i: &'a str) -> R<'a, (Vec<Item>, Vec<Comment>)> {
        let mut items = Vec::new();
        loop {
            let before = self.offset(i);
            // Pass-through lines start with `%` at the start of a line (after blanks).
            let (t, _) = self.ws(i)?;
            if t.is_empty() {
                let trailing = self.take_comments(before, self.src.len());
                return Ok((t, (items, trailing)));
            }
            let pos = self.pos(t);
            if let Some(body) = t.strip_prefix('%') {
                let end = body.find('\n').unwrap_or(body.len());
                let rest = &body[end..];
                let leading = self.take_comments(before, self.offset(t));
                items.push(Item {
                    def: Definition::PassThrough(body[..end].trim_end_matches('\r').to_string()),
                    comments: Comments {
                        leading,
                        trailing: Vec::new(),
                    },
                    pos,
                });
                i = rest;
                continue;
            }
            let (rest, (def, opening)) = self.definition(t)?;
            let (rest, _) = self.expect(rest, ";")?;
            let (rest, mut trailing) = self.same_line_comments(rest);
            let mut leading = self.take_comments(before, self.offset(rest));
            // A comment on the line of the opening `{` documents the whole definition.
            trailing.splice(0..0, opening);
            leading.retain(|c| !trailing.contains(c));
            items.push(Item {
                def,
                comments: Comments { leading, trailing },
                pos,
            });
            i = rest;
        }
    }

    /// One definition without its `;`; also returns the comments on the line of its `{`.
    fn definition<'a>(&self, i: &'a str) -> R<'a, (Definition, Vec<Comment>)> {
        let (rest, w) = match self.word(i) {
            Ok(r) => r,
            Err(_) => {
                return fail(
                    i,
                    "expected a definition (const, enum, struct, union, typedef) or a `%` line",
                )
            }
        };
        match w {
            "const" => {
                let (rest, name) = self.ident(rest, "a constant name")?;
                let (rest, _) = self.expect(rest, "=")?;
                let (rest, value) = self.value(rest, "a constant value")?;
                Ok((rest, (Definition::Const(ConstDef { name, value }), vec![])))
            }
            "enum" => {
                let (rest, name) = self.ident(rest, "an enum name")?;
                let (rest, (members, opening)) = self.enum_body(rest)?;
                Ok((rest, (Definition::Enum(EnumDef { name, members }), opening)))
            }
            "struct" => {
                let (rest, name) = self.ident(rest, "a struct name")?;
                let (rest, (fields, opening)) = self.struct_body(rest)?;
                Ok((
                    rest,
                    (Definition::Struct(StructDef { name, fields }), opening),
                ))
            }
            "union" => {
                let (rest, name) = self.ident(rest, "a union name")?;
                let (rest, (mut u, opening)) = self.union_body(rest)?;
                u.name = name;
                Ok((rest, (Definition::Union(u), opening)))
            }
            "typedef" => {
                let (rest, decl) = self.declaration(rest)?;
                if decl == Declaration::Void {
                    return fail(i, "`typedef void` declares nothing");
                }
                Ok((rest, (Definition::Typedef(decl), vec![])))
            }
            _ => fail(
                i,
                "expected a definition (const, enum, struct, union, typedef) or a `%` line",
            ),
        }
    }

    /// `{ A = 1, B = 2 }`
    fn enum_body<'a>(&self, i: &'a str) -> R<'a, (Vec<EnumMember>, Vec<Comment>)> {
        let (i, _) = self.expect(i, "{")?;
        let (mut i, opening) = self.same_line_comments(i);
        let mut members = Vec::new();
        loop {
            let before = self.offset(i);
            let (t, _) = self.ws(i)?;
            if let Some(after) = t.strip_prefix('}') {
                if members.is_empty() {
                    return fail(t, "an enum needs at least one member");
                }
                // Comments before `}` stay pending: the enclosing item takes them.
                return Ok((after, (members, opening)));
            }
            let pos = self.pos(t);
            let (rest, name) = self.ident(t, "an enum member name or `}`")?;
            let (rest, value) = match self.sym(rest, "=") {
                Ok((rest, _)) => {
                    let (rest, v) = self.value(rest, "an enum value")?;
                    (rest, Some(v))
                }
                Err(nom::Err::Error(_)) => (rest, None),
                Err(e) => return Err(e),
            };
            let (rest, more) = match self.sym(rest, ",") {
                Ok((rest, _)) => (rest, true),
                Err(nom::Err::Error(_)) => (rest, false),
                Err(e) => return Err(e),
            };
            let (rest, trailing) = self.same_line_comments(rest);
            let leading = self.take_comments(before, self.offset(rest));
            members.push(EnumMember {
                name,
                value,
                comments: Comments { leading, trailing },
                pos,
            });
            i = rest;
            if !more {
                let (rest, _) = self.expect(i, "}")?;
                return Ok((rest, (members, opening)));
            }
        }
    }

    /// `{ decl; decl; }`
    fn struct_body<'a>(&self, i: &'a str) -> R<'a, (Vec<Field>, Vec<Comment>)> {
        let (i, _) = self.expect(i, "{")?;
        let (mut i, opening) = self.same_line_comments(i);
        let mut fields = Vec::new();
        loop {
            let (t, _) = self.ws(i)?;
            if let Some(after) = t.strip_prefix('}') {
                if fields.is_empty() {
                    return fail(t, "a struct needs at least one field");
                }
                return Ok((after, (fields, opening)));
            }
            let (rest, field) = self.field(i)?;
            if field.decl == Declaration::Void {
                return fail(t, "`void` is not allowed as a struct field");
            }
            fields.push(field);
            i = rest;
        }
    }

    /// A declaration, its `;` and its comments.
    fn field<'a>(&self, i: &'a str) -> R<'a, Field> {
        let before = self.offset(i);
        let (t, _) = self.ws(i)?;
        let pos = self.pos(t);
        let (rest, decl) = self.declaration(t)?;
        let (rest, _) = self.expect(rest, ";")?;
        let (rest, trailing) = self.same_line_comments(rest);
        let leading = self.take_comments(before, self.offset(rest));
        Ok((
            rest,
            Field {
                decl,
                comments: Comments { leading, trailing },
                pos,
            },
        ))
    }

    /// `switch (decl) { case V: decl; ... default: decl; }`; the name is filled by the caller.
    fn union_body<'a>(&self, i: &'a str) -> R<'a, (UnionDef, Vec<Comment>)> {
        let (i, _) = match self.keyword(i, "switch") {
            Ok(r) => r,
            Err(_) => {
                let (t, _) = self.ws(i)?;
                return fail(t, "expected `switch`");
            }
        };
        let (i, _) = self.expect(i, "(")?;
        let before = self.offset(i);
        let (t, _) = self.ws(i)?;
        let dpos = self.pos(t);
        let (i, ddecl) = self.declaration(t)?;
        match &ddecl {
            Declaration::Named {
                shape: Shape::Scalar,
                ty:
                    TypeSpec::Int
                    | TypeSpec::UInt
                    | TypeSpec::Bool
                    | TypeSpec::Named(_)
                    | TypeSpec::Enum(_)
                    | TypeSpec::Char
                    | TypeSpec::UChar
                    | TypeSpec::Short
                    | TypeSpec::UShort,
                ..
            } => {}
            _ => {
                return fail(
                    t,
                    "a union discriminant must be a scalar int, unsigned int, enum, or bool",
                )
            }
        }
        let (i, _) = self.expect(i, ")")?;
        let discriminant = Field {
            decl: ddecl,
            comments: Comments {
                leading: self.take_comments(before, self.offset(i)),
                trailing: vec![],
            },
            pos: dpos,
        };
        let (i, _) = self.expect(i, "{")?;
        let (mut i, opening) = self.same_line_comments(i);
        let mut arms = Vec::new();
        let mut default = None;
        loop {
            let before = self.offset(i);
            let (t, _) = self.ws(i)?;
            if let Some(after) = t.strip_prefix('}') {
                if arms.is_empty() && default.is_none() {
                    return fail(t, "a union needs at least one arm");
                }
                return Ok((
                    after,
                    (
                        UnionDef {
                            name: String::new(),
                            discriminant: Box::new(discriminant),
                            arms,
                            default,
                        },
                        opening,
                    ),
                ));
            }
            if default.is_some() {
                return fail(t, "expected `}` after the `default` arm");
            }
            let (_, w) = self
                .word(t)
                .or_else(|_| fail(t, "expected `case`, `default` or `}`"))?;
            if w == "default" {
                let (rest, _) = self.keyword(t, "default")?;
                let (rest, _) = self.expect(rest, ":")?;
                let (rest, mut field) = self.field(rest)?;
                let mut lead = self.take_comments(before, self.offset(rest));
                lead.append(&mut field.comments.leading);
                field.comments.leading = lead;
                default = Some(Box::new(field));
                i = rest;
            } else if w == "case" {
                let mut labels = Vec::new();
                let mut rest = t;
                while let Ok((r, _)) = self.keyword(rest, "case") {
                    let (r, v) = self.value(r, "a case label")?;
                    let (r, _) = self.expect(r, ":")?;
                    labels.push(v);
                    rest = r;
                }
                let (rest, mut field) = self.field(rest)?;
                let mut lead = self.take_comments(before, self.offset(rest));
                lead.append(&mut field.comments.leading);
                field.comments.leading = lead;
                arms.push(UnionArm { labels, field });
                i = rest;
            } else {
                return fail(t, "expected `case`, `default` or `}`");
            }
        }
    }

    /// `void`, `T name`, `T *name`, `T name[N]`, `T name<N>`, `T name<>`.
    fn declaration<'a>(&self, i: &'a str) -> R<'a, Declaration> {
        let (t, _) = self.ws(i)?;
        if let Ok((rest, _)) = self.keyword(t, "void") {
            return Ok((rest, Declaration::Void));
        }
        let (rest, ty) = self.type_spec(t)?;
        let (rest, star) = match self.sym(rest, "*") {
            Ok((r, _)) => (r, true),
            Err(nom::Err::Error(_)) => (rest, false),
            Err(e) => return Err(e),
        };
        let (rest, name) = self.ident(rest, "a declared name")?;
        let (rest, shape) = if star {
            (rest, Shape::Optional)
        } else if let Ok((r, _)) = self.sym(rest, "[") {
            let (r, v) = self.value(r, "an array size")?;
            let (r, _) = self.expect(r, "]")?;
            (r, Shape::Fixed(v))
        } else if let Ok((r, _)) = self.sym(rest, "<") {
            if let Ok((r, _)) = self.sym(r, ">") {
                (r, Shape::Variable(None))
            } else {
                let (r, v) = self.value(r, "a maximum size or `>`")?;
                let (r, _) = self.expect(r, ">")?;
                (r, Shape::Variable(Some(v)))
            }
        } else {
            (rest, Shape::Scalar)
        };
        match (&ty, &shape) {
            (TypeSpec::String, Shape::Variable(_)) => {}
            (TypeSpec::String, _) => {
                return fail(
                    t,
                    "`string` must be declared as `string name<N>` or `string name<>`",
                )
            }
            (TypeSpec::Opaque, Shape::Fixed(_) | Shape::Variable(_)) => {}
            (TypeSpec::Opaque, _) => {
                return fail(
                    t,
                    "`opaque` must be declared as `opaque name[N]` or `opaque name<N>`",
                )
            }
            _ => {}
        }
        Ok((rest, Declaration::Named { name, ty, shape }))
    }

    fn type_spec<'a>(&self, i: &'a str) -> R<'a, TypeSpec> {
        let (t, _) = self.ws(i)?;
        let Ok((rest, w)) = self.word(t) else {
            return fail(t, "expected a type");
        };
        let ty = match w {
            "int" => TypeSpec::Int,
            "hyper" => TypeSpec::Hyper,
            "char" => TypeSpec::Char,
            "short" => TypeSpec::Short,
            "float" => TypeSpec::Float,
            "double" => TypeSpec::Double,
            "quadruple" => TypeSpec::Quadruple,
            "bool" => TypeSpec::Bool,
            "string" => TypeSpec::String,
            "opaque" => TypeSpec::Opaque,
            "long" => return fail(t, "`long` is not an XDR type (use int or hyper)"),
            "unsigned" => {
                let after = rest;
                return match self.word(after) {
                    Ok((r, "int")) => Ok((r, TypeSpec::UInt)),
                    Ok((r, "hyper")) => Ok((r, TypeSpec::UHyper)),
                    Ok((r, "char")) => Ok((r, TypeSpec::UChar)),
                    Ok((r, "short")) => Ok((r, TypeSpec::UShort)),
                    Ok((_, "long")) => fail(t, "`unsigned long` is not an XDR type"),
                    // `unsigned name` is rpcgen's `unsigned int name`.
                    _ => Ok((after, TypeSpec::UInt)),
                };
            }
            "enum" | "struct" | "union" => {
                let (r2, _) = self.ws(rest)?;
                if r2.starts_with('{') {
                    return match w {
                        "enum" => {
                            let (r, (members, _)) = self.enum_body(r2)?;
                            Ok((
                                r,
                                TypeSpec::Enum(Box::new(EnumDef {
                                    name: String::new(),
                                    members,
                                })),
                            ))
                        }
                        "struct" => {
                            let (r, (fields, _)) = self.struct_body(r2)?;
                            Ok((
                                r,
                                TypeSpec::Struct(Box::new(StructDef {
                                    name: String::new(),
                                    fields,
                                })),
                            ))
                        }
                        _ => {
                            let (r, (u, _)) = self.union_body(r2)?;
                            Ok((r, TypeSpec::Union(Box::new(u))))
                        }
                    };
                }
                if w == "union" && self.keyword(r2, "switch").is_ok() {
                    let (r, (u, _)) = self.union_body(r2)?;
                    return Ok((r, TypeSpec::Union(Box::new(u))));
                }
                let (r, name) = self.ident(rest, "a type name")?;
                return Ok((r, TypeSpec::Named(name)));
            }
            w if KEYWORDS.contains(&w) => {
                return fail(t, format!("expected a type, found keyword `{w}`"))
            }
            w => TypeSpec::Named(w.to_string()),
        };
        Ok((rest, ty))
    }
}
