//! A small, lossless XML element tree: the backbone every typed view reads and writes.
//!
//! [`Element::parse`] reads one document with quick-xml's pull reader and keeps everything
//! inside the root element: element order, attribute order, text (whitespace included), CDATA
//! sections, comments and processing instructions. Namespaced names are kept verbatim
//! (`prefix:local`), `xmlns` declarations as ordinary attributes. [`Element::to_xml`] writes
//! the tree back; parsing that output gives an equal tree.
//!
//! Not kept: the XML declaration and comments or processing instructions outside the root
//! element. A DOCTYPE is refused (libvirt never sends one, and refusing it rules out entity
//! expansion attacks).

use std::borrow::Cow;

use quick_xml::events::Event;
use quick_xml::Reader;
use serde::{Deserialize, Serialize};

use super::error::XmlError;

/// Deepest element nesting [`Element::parse`] accepts (and [`Element::to_xml`] writes).
pub const MAX_DEPTH: usize = 256;

/// One node inside an element.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data, entities already resolved (`&amp;` is stored as `&`).
    Text(String),
    /// The content of a `<![CDATA[...]]>` section.
    CData(String),
    /// The content of a `<!--...-->` comment.
    Comment(String),
    /// The content of a `<?target data?>` processing instruction (`target data`).
    ProcessingInstruction(String),
}

/// An XML element: name, attributes in document order, and child nodes.
///
/// ```
/// use libvirt_client::xml::Element;
///
/// let e = Element::parse("<disk type='file'><source file='/a &amp; b'/><x:y xmlns:x='urn:x'/></disk>")?;
/// assert_eq!(e.attr("type"), Some("file"));
/// assert_eq!(e.child("source").and_then(|s| s.attr("file")), Some("/a & b"));
/// assert_eq!(Element::parse(&e.to_xml()?)?, e);
/// # Ok::<(), libvirt_client::xml::XmlError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Element {
    /// Qualified name as written (`domain`, `qemu:commandline`).
    pub name: String,
    /// Attributes in document order, values unescaped.
    pub attrs: Vec<(String, String)>,
    /// Child nodes in document order.
    pub children: Vec<Node>,
}

impl Element {
    /// A new element with no attributes and no children.
    pub fn new(name: impl Into<String>) -> Self {
        Element {
            name: name.into(),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Builder style: this element with attribute `name` set to `value`.
    #[must_use]
    pub fn with_attr(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set_attr(name, value);
        self
    }

    /// Builder style: this element with attribute `name` set when `value` is `Some`.
    #[must_use]
    pub fn with_opt_attr<V: ToString>(mut self, name: &str, value: Option<V>) -> Self {
        if let Some(v) = value {
            self.set_attr(name, v.to_string());
        }
        self
    }

    /// Builder style: this element with `child` appended.
    #[must_use]
    pub fn with_child(mut self, child: Element) -> Self {
        self.children.push(Node::Element(child));
        self
    }

    /// Builder style: this element with `child` appended when it is `Some`.
    #[must_use]
    pub fn with_opt_child(mut self, child: Option<Element>) -> Self {
        if let Some(c) = child {
            self.children.push(Node::Element(c));
        }
        self
    }

    /// Builder style: this element with a text node appended (nothing for an empty string).
    #[must_use]
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        let text = text.into();
        // An empty text node would not survive writing and parsing again.
        if !text.is_empty() {
            self.children.push(Node::Text(text));
        }
        self
    }

    /// The value of attribute `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets attribute `name`, replacing its value in place if present, appending it otherwise.
    pub fn set_attr(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        match self.attrs.iter_mut().find(|(k, _)| *k == name) {
            Some((_, v)) => *v = value,
            None => self.attrs.push((name, value)),
        }
    }

    /// Removes attribute `name`, returning its value.
    pub fn remove_attr(&mut self, name: &str) -> Option<String> {
        let i = self.attrs.iter().position(|(k, _)| k == name)?;
        Some(self.attrs.remove(i).1)
    }

    /// Child elements, in order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    /// Child elements, in order, mutably.
    pub fn elements_mut(&mut self) -> impl Iterator<Item = &mut Element> {
        self.children.iter_mut().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    /// Child elements called `name`, in order.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.elements().filter(move |e| e.name == name)
    }

    /// The first child element called `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }

    /// The first child element called `name`, mutably.
    pub fn child_mut(&mut self, name: &str) -> Option<&mut Element> {
        self.elements_mut().find(|e| e.name == name)
    }

    /// The first child element called `name`, appended (empty) first if there is none.
    pub fn child_or_insert(&mut self, name: &str) -> &mut Element {
        if self.child(name).is_none() {
            self.append_element(Element::new(name));
        }
        self.elements_mut()
            .find(|e| e.name == name)
            .expect("an element called `name` exists: it was just appended if absent")
    }

    /// Appends a child element. When the existing children are laid out one per line (as
    /// libvirt prints them), the new one gets the same indentation.
    pub fn append_element(&mut self, child: Element) {
        // Layout libvirt uses: "\n  " before each child, "\n" before the end tag.
        let indent = self.children.iter().rev().skip(1).find_map(|n| match n {
            Node::Text(t) if t.starts_with('\n') && t.trim().is_empty() => Some(t.clone()),
            _ => None,
        });
        match (indent, self.children.last()) {
            (Some(indent), Some(Node::Text(last))) if last.trim().is_empty() => {
                let closing = last.clone();
                self.children.pop();
                self.children.push(Node::Text(indent));
                self.children.push(Node::Element(child));
                self.children.push(Node::Text(closing));
            }
            _ => self.children.push(Node::Element(child)),
        }
    }

    /// Replaces the first child element called `name` with `child` (appending it when there is
    /// none) and removes any further elements called `name`.
    pub fn replace_child(&mut self, name: &str, child: Element) {
        let mut seen = false;
        let mut child = Some(child);
        self.children.retain_mut(|n| match n {
            Node::Element(e) if e.name == name => {
                if seen {
                    false
                } else {
                    seen = true;
                    *e = child.take().expect("taken once");
                    true
                }
            }
            _ => true,
        });
        if let Some(c) = child {
            self.append_element(c);
        }
    }

    /// Removes every child element called `name` (and the whitespace text node before each),
    /// returning how many were removed.
    pub fn remove_children_named(&mut self, name: &str) -> usize {
        self.remove_elements_where(|e| e.name == name)
    }

    /// Removes every child element for which `pred` is true (and the whitespace text node just
    /// before each), returning how many were removed.
    pub fn remove_elements_where(&mut self, mut pred: impl FnMut(&Element) -> bool) -> usize {
        let mut removed = 0;
        let mut out: Vec<Node> = Vec::with_capacity(self.children.len());
        for n in self.children.drain(..) {
            match &n {
                Node::Element(e) if pred(e) => {
                    removed += 1;
                    if matches!(out.last(), Some(Node::Text(t)) if t.trim().is_empty()) {
                        out.pop();
                    }
                }
                _ => out.push(n),
            }
        }
        // Keep a whitespace-only layout consistent: if the last node removed took the final
        // newline's predecessor, nothing else needs fixing (the closing text node stays).
        self.children = out;
        removed
    }

    /// The concatenated text and CDATA content directly inside this element.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            match n {
                Node::Text(t) | Node::CData(t) => s.push_str(t),
                _ => {}
            }
        }
        s
    }

    /// Replaces the text and CDATA content directly inside this element with `text` (child
    /// elements, comments and processing instructions are kept).
    pub fn set_text(&mut self, text: impl Into<String>) {
        self.children
            .retain(|n| !matches!(n, Node::Text(_) | Node::CData(_)));
        let text = text.into();
        if !text.is_empty() {
            self.children.insert(0, Node::Text(text));
        }
    }

    /// The text of the first child element called `name`.
    pub fn child_text(&self, name: &str) -> Option<String> {
        self.child(name).map(Element::text)
    }

    /// Parses a document and returns its root element.
    ///
    /// Everything inside the root element is kept: element and attribute order, text (whitespace
    /// included, entities resolved), CDATA sections, comments, processing instructions;
    /// namespaced names verbatim (`prefix:local`), `xmlns` declarations as ordinary attributes.
    /// Not kept: the XML declaration and comments or processing instructions outside the root. A
    /// DOCTYPE is refused (libvirt never sends one; refusing it rules out entity expansion), as
    /// are nesting deeper than [`MAX_DEPTH`] and characters XML 1.0 cannot carry.
    pub fn parse(xml: &str) -> Result<Element, XmlError> {
        parse_document(xml)
    }

    /// Writes the tree as XML text (no XML declaration), attributes in single quotes as libvirt
    /// writes them. Fails when a name, character or comment cannot be represented in XML.
    pub fn to_xml(&self) -> Result<String, XmlError> {
        let mut out = String::new();
        write_element(self, &mut out, 0)?;
        Ok(out)
    }

    /// A canonical copy for comparisons: attributes sorted by name, adjacent text and CDATA merged
    /// into one text node, whitespace-only text removed from elements that have child elements,
    /// comments and processing instructions dropped.
    #[must_use]
    pub fn canonical(&self) -> Element {
        let has_elements = self.elements().next().is_some();
        let mut attrs = self.attrs.clone();
        attrs.sort();
        let mut children: Vec<Node> = Vec::new();
        for n in &self.children {
            match n {
                Node::Element(e) => children.push(Node::Element(e.canonical())),
                Node::Text(t) | Node::CData(t) => match children.last_mut() {
                    Some(Node::Text(prev)) => prev.push_str(t),
                    _ => children.push(Node::Text(t.clone())),
                },
                Node::Comment(_) | Node::ProcessingInstruction(_) => {}
            }
        }
        if has_elements {
            children.retain(|n| !matches!(n, Node::Text(t) if t.trim().is_empty()));
        }
        children.retain(|n| !matches!(n, Node::Text(t) if t.is_empty()));
        Element {
            name: self.name.clone(),
            attrs,
            children,
        }
    }

    /// Whether two trees are equal up to attribute order, layout whitespace, CDATA-vs-text and
    /// comments (see [`canonical`](Self::canonical)).
    pub fn canonical_eq(&self, other: &Element) -> bool {
        self.canonical() == other.canonical()
    }

    /// A copy laid out one element per line with `indent` per level, as libvirt prints XML.
    /// Elements holding text keep their content untouched.
    #[must_use]
    pub fn indented(&self, indent: &str) -> Element {
        self.indented_at(indent, 0)
    }

    fn indented_at(&self, indent: &str, depth: usize) -> Element {
        let has_elements = self.elements().next().is_some();
        let has_text = self
            .children
            .iter()
            .any(|n| matches!(n, Node::Text(t) | Node::CData(t) if !t.trim().is_empty()));
        let mut out = Element {
            name: self.name.clone(),
            attrs: self.attrs.clone(),
            children: Vec::new(),
        };
        if !has_elements || has_text {
            out.children = self.children.clone();
            return out;
        }
        let inner = format!("\n{}", indent.repeat(depth + 1));
        for n in &self.children {
            match n {
                Node::Text(_) | Node::CData(_) => {}
                Node::Element(e) => {
                    out.children.push(Node::Text(inner.clone()));
                    out.children
                        .push(Node::Element(e.indented_at(indent, depth + 1)));
                }
                other => {
                    out.children.push(Node::Text(inner.clone()));
                    out.children.push(other.clone());
                }
            }
        }
        out.children
            .push(Node::Text(format!("\n{}", indent.repeat(depth))));
        out
    }
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn check_chars(s: &str, context: impl FnOnce() -> String) -> Result<(), XmlError> {
    match s.chars().find(|c| !is_xml_char(*c)) {
        None => Ok(()),
        Some(c) => Err(XmlError::InvalidChar {
            code: c as u32,
            context: context(),
        }),
    }
}

/// A pragmatic XML name check: non-empty, no whitespace or markup characters, not starting with
/// a digit, `-` or `.`.
fn check_name(name: &str) -> Result<(), XmlError> {
    let bad_start = name
        .chars()
        .next()
        .is_none_or(|c| c.is_ascii_digit() || c == '-' || c == '.');
    let bad_char = name.chars().any(|c| {
        c.is_whitespace()
            || !is_xml_char(c)
            || matches!(c, '<' | '>' | '&' | '\'' | '"' | '=' | '/' | '?' | '!')
    });
    if bad_start || bad_char {
        return Err(XmlError::InvalidName {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// What XML allows inside `<!--...-->` (the same rule for reading and writing, so whatever
/// parses also writes).
fn check_comment(t: &str) -> Result<(), String> {
    if t.contains("--") || t.ends_with('-') {
        return Err("a comment cannot contain `--` or end with `-`".into());
    }
    Ok(())
}

/// What XML allows inside `<?...?>`: a target name right after `<?` (not `xml` in any case),
/// then optional whitespace and data, no `?>`.
fn check_pi(t: &str) -> Result<(), String> {
    let target = t.split(char::is_whitespace).next().unwrap_or("");
    if t.contains("?>") || check_name(target).is_err() || target.eq_ignore_ascii_case("xml") {
        return Err(format!(
            "{:?} is not a valid processing instruction (`target data`)",
            truncate(t)
        ));
    }
    Ok(())
}

fn syntax(reader_pos: u64, e: impl std::fmt::Display) -> XmlError {
    XmlError::Syntax {
        position: reader_pos,
        reason: e.to_string(),
    }
}

fn utf8(bytes: &[u8], pos: u64) -> Result<&str, XmlError> {
    std::str::from_utf8(bytes).map_err(|e| syntax(pos, e))
}

fn start_element(e: &quick_xml::events::BytesStart<'_>, pos: u64) -> Result<Element, XmlError> {
    let name = utf8(e.name().as_ref(), pos)?.to_string();
    check_name(&name)?;
    let mut el = Element::new(name);
    for a in e.attributes().with_checks(true) {
        let a = a.map_err(|err| syntax(pos, err))?;
        let key = utf8(a.key.as_ref(), pos)?.to_string();
        check_name(&key)?;
        let value = a
            .unescape_value()
            .map_err(|err| syntax(pos, err))?
            .into_owned();
        check_chars(&value, || format!("attribute {key} of <{}>", el.name))?;
        el.attrs.push((key, value));
    }
    Ok(el)
}

fn parse_document(xml: &str) -> Result<Element, XmlError> {
    let mut reader = Reader::from_str(xml);
    {
        let cfg = reader.config_mut();
        cfg.trim_text(false);
        cfg.check_end_names = true;
        cfg.check_comments = true;
        cfg.expand_empty_elements = false;
    }
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let pos = reader.buffer_position();
        let ev = reader
            .read_event()
            .map_err(|e| syntax(reader.error_position(), e))?;
        // Where a node goes: into the innermost open element, or outside the root.
        match ev {
            Event::Start(e) => {
                if root.is_some() && stack.is_empty() {
                    return Err(XmlError::OutsideRoot {
                        position: pos,
                        reason: "a second root element".into(),
                    });
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep { limit: MAX_DEPTH });
                }
                stack.push(start_element(&e, pos)?);
            }
            Event::Empty(e) => {
                if root.is_some() && stack.is_empty() {
                    return Err(XmlError::OutsideRoot {
                        position: pos,
                        reason: "a second root element".into(),
                    });
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep { limit: MAX_DEPTH });
                }
                let el = start_element(&e, pos)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(el)),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                // quick-xml checks that the end name matches (check_end_names).
                let el = stack
                    .pop()
                    .ok_or_else(|| syntax(pos, "end tag without start tag"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(el)),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let text: Cow<'_, str> = t.unescape().map_err(|e| syntax(pos, e))?;
                match stack.last_mut() {
                    Some(parent) => {
                        check_chars(&text, || format!("text in <{}>", parent.name))?;
                        match parent.children.last_mut() {
                            Some(Node::Text(prev)) => prev.push_str(&text),
                            _ => parent.children.push(Node::Text(text.into_owned())),
                        }
                    }
                    None if text.trim().is_empty() => {}
                    None => {
                        return Err(XmlError::OutsideRoot {
                            position: pos,
                            reason: format!("text {:?}", truncate(&text)),
                        })
                    }
                }
            }
            Event::CData(c) => {
                let s = utf8(&c, pos)?.to_string();
                match stack.last_mut() {
                    Some(parent) => {
                        check_chars(&s, || format!("CDATA in <{}>", parent.name))?;
                        parent.children.push(Node::CData(s));
                    }
                    None => {
                        return Err(XmlError::OutsideRoot {
                            position: pos,
                            reason: "a CDATA section".into(),
                        })
                    }
                }
            }
            Event::Comment(c) => {
                let s = utf8(&c, pos)?.to_string();
                check_chars(&s, || "a comment".into())?;
                check_comment(&s).map_err(|e| syntax(pos, e))?;
                if let Some(parent) = stack.last_mut() {
                    parent.children.push(Node::Comment(s));
                }
            }
            Event::PI(p) => {
                let s = utf8(&p, pos)?.to_string();
                check_chars(&s, || "a processing instruction".into())?;
                check_pi(&s).map_err(|e| syntax(pos, e))?;
                if let Some(parent) = stack.last_mut() {
                    parent.children.push(Node::ProcessingInstruction(s));
                }
            }
            Event::Decl(_) => {
                if root.is_some() || !stack.is_empty() {
                    return Err(syntax(
                        pos,
                        "XML declaration after the start of the document",
                    ));
                }
            }
            Event::DocType(_) => {
                return Err(XmlError::OutsideRoot {
                    position: pos,
                    reason: "a DOCTYPE (not supported: libvirt XML has none)".into(),
                })
            }
            Event::Eof => {
                if let Some(open) = stack.last() {
                    return Err(XmlError::UnexpectedEof {
                        position: pos,
                        reason: format!("element <{}> is not closed", open.name),
                    });
                }
                return root.ok_or(XmlError::UnexpectedEof {
                    position: pos,
                    reason: "no root element".into(),
                });
            }
        }
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

fn escape_into(out: &mut String, s: &str, attr: bool) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            '\'' if attr => out.push_str("&apos;"),
            '"' if attr => out.push_str("&quot;"),
            '\n' if attr => out.push_str("&#10;"),
            '\t' if attr => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
}

fn write_element(e: &Element, out: &mut String, depth: usize) -> Result<(), XmlError> {
    if depth >= MAX_DEPTH {
        return Err(XmlError::TooDeep { limit: MAX_DEPTH });
    }
    check_name(&e.name)?;
    out.push('<');
    out.push_str(&e.name);
    for (i, (k, v)) in e.attrs.iter().enumerate() {
        check_name(k)?;
        if e.attrs[..i].iter().any(|(k2, _)| k2 == k) {
            return Err(XmlError::Unrepresentable {
                what: "element",
                reason: format!("attribute {k} appears twice on <{}>", e.name),
            });
        }
        check_chars(v, || format!("attribute {k} of <{}>", e.name))?;
        out.push(' ');
        out.push_str(k);
        out.push_str("='");
        escape_into(out, v, true);
        out.push('\'');
    }
    if e.children.is_empty() {
        out.push_str("/>");
        return Ok(());
    }
    out.push('>');
    for n in &e.children {
        match n {
            Node::Element(c) => write_element(c, out, depth + 1)?,
            Node::Text(t) => {
                check_chars(t, || format!("text in <{}>", e.name))?;
                escape_into(out, t, false);
            }
            Node::CData(t) => {
                check_chars(t, || format!("CDATA in <{}>", e.name))?;
                out.push_str("<![CDATA[");
                // "]]>" cannot appear inside one section: split it across two.
                out.push_str(&t.replace("]]>", "]]]]><![CDATA[>"));
                out.push_str("]]>");
            }
            Node::Comment(t) => {
                check_chars(t, || "a comment".into())?;
                if let Err(reason) = check_comment(t) {
                    return Err(XmlError::Unrepresentable {
                        what: "comment",
                        reason,
                    });
                }
                out.push_str("<!--");
                out.push_str(t);
                out.push_str("-->");
            }
            Node::ProcessingInstruction(t) => {
                check_chars(t, || "a processing instruction".into())?;
                if let Err(reason) = check_pi(t) {
                    return Err(XmlError::Unrepresentable {
                        what: "processing instruction",
                        reason,
                    });
                }
                out.push_str("<?");
                out.push_str(t);
                out.push_str("?>");
            }
        }
    }
    out.push_str("</");
    out.push_str(&e.name);
    out.push('>');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_everything_inside_root() {
        let xml = "<a x='1' y=\"2\">\n  <b:c xmlns:b='urn:b' b:k='v'>t&amp;&lt;&#x41;</b:c>\
                   <!-- note --><?pi data?><![CDATA[<raw> & ]]>tail</a>";
        let e = Element::parse(xml).unwrap();
        assert_eq!(
            e.attrs,
            vec![("x".into(), "1".into()), ("y".into(), "2".into())]
        );
        let c = e.child("b:c").unwrap();
        assert_eq!(c.attr("xmlns:b"), Some("urn:b"));
        assert_eq!(c.text(), "t&<A");
        assert!(e.children.contains(&Node::Comment(" note ".into())));
        assert!(e
            .children
            .contains(&Node::ProcessingInstruction("pi data".into())));
        assert!(e.children.contains(&Node::CData("<raw> & ".into())));
        let out = e.to_xml().unwrap();
        assert_eq!(Element::parse(&out).unwrap(), e);
    }

    #[test]
    fn cdata_with_terminator_survives() {
        let e = Element::new("a")
            .with_child(Element::new("b"))
            .with_text("x");
        let mut e2 = e.clone();
        e2.children.push(Node::CData("a]]>b".into()));
        let back = Element::parse(&e2.to_xml().unwrap()).unwrap();
        assert_eq!(back.text(), "xa]]>b");
    }

    #[test]
    fn malformed_inputs_are_typed_errors() {
        for bad in [
            "",
            "   ",
            "<a>",
            "<a></b>",
            "</a>",
            "<a x='1' x='2'/>",
            "<a x=1/>",
            "<a>&nosuch;</a>",
            "<a/><b/>",
            "text<a/>",
            "<a/>tail",
            "<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>",
            "<a>&#0;</a>",
            "<a>\u{1}</a>",
            "<a b='\u{FFFF}'/>",
            "<a><!-- x -- y --></a>",
            "<a><!--x---></a>",
            // Processing instructions the writer could not write back (fuzz findings).
            "<a><?\t?></a>",
            "<a><? pi data?></a>",
            "<a><?XmL v?></a>",
            "<a",
            "<a><![CDATA[x</a>",
        ] {
            assert!(Element::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn too_deep_is_refused() {
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert_eq!(
            Element::parse(&deep),
            Err(XmlError::TooDeep { limit: MAX_DEPTH })
        );
        let ok = "<a>".repeat(MAX_DEPTH) + &"</a>".repeat(MAX_DEPTH);
        assert!(Element::parse(&ok).is_ok());
    }

    #[test]
    fn writer_refuses_unrepresentable() {
        assert!(matches!(
            Element::new("a b").to_xml(),
            Err(XmlError::InvalidName { .. })
        ));
        assert!(matches!(
            Element::new("a").with_text("\u{0}").to_xml(),
            Err(XmlError::InvalidChar { code: 0, .. })
        ));
        let mut c = Element::new("a");
        c.children.push(Node::Comment("x--y".into()));
        assert!(matches!(c.to_xml(), Err(XmlError::Unrepresentable { .. })));
        let dup = Element {
            name: "a".into(),
            attrs: vec![("k".into(), "1".into()), ("k".into(), "2".into())],
            children: vec![],
        };
        assert!(dup.to_xml().is_err());
    }

    #[test]
    fn escaping_round_trips_awkward_strings() {
        let s = "a'b\"c<d>e&f\r\n\tg]]>h  ";
        let e = Element::new("x").with_attr("v", s).with_text(s);
        let back = Element::parse(&e.to_xml().unwrap()).unwrap();
        assert_eq!(back.attr("v"), Some(s));
        assert_eq!(back.text(), s);
    }

    #[test]
    fn canonical_ignores_layout_and_attr_order() {
        let a = Element::parse("<a y='2' x='1'>\n  <b>t</b>\n</a>").unwrap();
        let b = Element::parse("<a x='1' y='2'><b><![CDATA[t]]></b><!--c--></a>").unwrap();
        assert!(a.canonical_eq(&b));
        let c = Element::parse("<a x='1' y='2'><b>t </b></a>").unwrap();
        assert!(!a.canonical_eq(&c));
    }

    #[test]
    fn append_keeps_libvirt_layout() {
        let mut e = Element::parse("<devices>\n    <a/>\n  </devices>").unwrap();
        e.append_element(Element::new("b"));
        assert_eq!(
            e.to_xml().unwrap(),
            "<devices>\n    <a/>\n    <b/>\n  </devices>"
        );
        assert_eq!(e.remove_children_named("a"), 1);
        assert_eq!(e.to_xml().unwrap(), "<devices>\n    <b/>\n  </devices>");
    }

    #[test]
    fn indented_matches_libvirt_style() {
        let e = Element::new("a")
            .with_child(Element::new("b").with_text("t"))
            .with_child(Element::new("c"));
        assert_eq!(
            e.indented("  ").to_xml().unwrap(),
            "<a>\n  <b>t</b>\n  <c/>\n</a>"
        );
    }
}
