//! The error type of the [`xml`](crate::xml) module.

/// Everything that can go wrong reading, checking or writing libvirt XML.
///
/// Parsing never panics: malformed input, unknown entities, characters XML cannot carry and
/// values that do not fit a typed field all end up here, with the position or element path a
/// user needs to find the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XmlError {
    /// The text is not well-formed XML (bad syntax, mismatched end tag, bad attribute, unknown
    /// entity, ...).
    #[error("malformed XML at byte {position}: {reason}")]
    Syntax {
        /// Byte offset in the input where the problem was detected.
        position: u64,
        /// What the XML reader reported.
        reason: String,
    },

    /// The input ended before every element was closed, or held no element at all.
    #[error("XML ended unexpectedly at byte {position}: {reason}")]
    UnexpectedEof {
        /// Byte offset of the end of the input.
        position: u64,
        /// What was still open or missing.
        reason: String,
    },

    /// Something other than whitespace, comments or processing instructions appears outside the
    /// single root element (a second root, stray text, a DOCTYPE).
    #[error("unexpected content outside the root element at byte {position}: {reason}")]
    OutsideRoot {
        /// Byte offset in the input.
        position: u64,
        /// What was found.
        reason: String,
    },

    /// Elements are nested deeper than [`MAX_DEPTH`](crate::xml::MAX_DEPTH).
    #[error("XML nests elements deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },

    /// A character that XML 1.0 cannot represent (NUL, most C0 controls, U+FFFE, U+FFFF),
    /// found while parsing or while writing a tree.
    #[error("character U+{code:04X} is not allowed in XML ({context})")]
    InvalidChar {
        /// The code point.
        code: u32,
        /// Where it was found (element, attribute or node kind).
        context: String,
    },

    /// An element or attribute name is not a valid XML name.
    #[error("invalid XML name {name:?}")]
    InvalidName {
        /// The offending name.
        name: String,
    },

    /// A comment, CDATA section or processing instruction holds text its syntax cannot carry
    /// (e.g. `--` inside a comment).
    #[error("cannot write {what}: {reason}")]
    Unrepresentable {
        /// Node kind.
        what: &'static str,
        /// Why.
        reason: String,
    },

    /// The root element is not the one expected (e.g. `<network>` given where `<domain>` is
    /// needed).
    #[error("expected root element <{expected}>, found <{found}>")]
    WrongRoot {
        /// Expected element name.
        expected: String,
        /// Name found.
        found: String,
    },

    /// An attribute or element text does not fit the typed field that models it.
    #[error("invalid value {value:?} at {path}: {reason}")]
    InvalidValue {
        /// Where: element path, with `@attr` for attributes (e.g. `domain/memory@unit`).
        path: String,
        /// The value found.
        value: String,
        /// What would be accepted.
        reason: String,
    },
}
