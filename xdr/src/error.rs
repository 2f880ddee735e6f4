//! The crate's one error type.

use std::fmt;

/// Everything that can go wrong while encoding or decoding XDR.
///
/// Decode errors name the field where they happened in `path`: the root struct's name, then field
/// names and sequence indices, e.g. `remote_domain_get_info_ret.maxMem` or
/// `remote_connect_list_all_domains_ret.domains[3].name`. The path is built only when an error
/// travels back up through the decoder, so the success path pays nothing for it. `path` is empty
/// when the error happened at the top level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ended before the value did (truncated message).
    #[error(
        "unexpected end of input{}: needed {needed} more bytes, {remaining} remaining",
        At(path)
    )]
    UnexpectedEof {
        /// Bytes the next item needs.
        needed: usize,
        /// Bytes left in the input.
        remaining: usize,
        /// Field being decoded.
        path: String,
    },
    /// `from_bytes` decoded a whole value but input was left over.
    #[error("{count} trailing bytes after the decoded value")]
    TrailingBytes {
        /// Number of bytes not consumed.
        count: usize,
    },
    /// A length or count exceeds the declared maximum (`string<N>`, `opaque<N>`, `T x<N>`), or
    /// 2^32-1 on encode.
    #[error("length {len} exceeds the declared maximum {max}{}", At(path))]
    LengthOverLimit {
        /// The length found (decode) or given (encode).
        len: u64,
        /// The declared maximum.
        max: u64,
        /// Field being encoded or decoded.
        path: String,
    },
    /// A length prefix claims more data than the input has left (hostile or truncated input).
    /// Checked before anything is allocated.
    #[error(
        "length {len}{} needs more than the {remaining} bytes left in the input",
        At(path)
    )]
    LengthOverInput {
        /// The length prefix found (bytes for opaque/string, elements for arrays).
        len: u64,
        /// Bytes left in the input after the length prefix.
        remaining: usize,
        /// Field being decoded.
        path: String,
    },
    /// An XDR bool (or optional-data flag) was neither 0 nor 1.
    #[error("invalid bool {value}{} (must be 0 or 1)", At(path))]
    InvalidBool {
        /// The word found.
        value: u32,
        /// Field being decoded.
        path: String,
    },
    /// A string was not valid UTF-8.
    #[error("string is not valid UTF-8{}", At(path))]
    InvalidUtf8 {
        /// Field being decoded.
        path: String,
    },
    /// The 1 to 3 padding bytes after an opaque or string were not zero (checked under
    /// [`crate::Padding::Strict`], the default; [`crate::Padding::Lenient`] skips them).
    #[error("non-zero padding bytes{}", At(path))]
    NonZeroPadding {
        /// Field being decoded.
        path: String,
    },
    /// A 4-byte integer does not fit the Rust type (`i8`, `i16`, `u8`, `u16`, `char`).
    #[error("integer {value} out of range for {target}{}", At(path))]
    IntegerOutOfRange {
        /// The value found.
        value: i64,
        /// The Rust type it had to fit.
        target: &'static str,
        /// Field being decoded.
        path: String,
    },
    /// A value the type does not accept, e.g. an unknown enum value or union discriminant (from
    /// `serde::de::Error::invalid_value`).
    #[error("invalid value {value}{}, expected {expected}", At(path))]
    InvalidValue {
        /// What was found.
        value: String,
        /// What the type accepts.
        expected: String,
        /// Field being decoded.
        path: String,
    },
    /// Nesting (structs, arrays, optional-data, unions) deeper than the decoder's depth limit,
    /// e.g. a hostile optional-data linked list.
    #[error("nesting deeper than {max} levels{}", At(path))]
    DepthLimitExceeded {
        /// The limit in force (see [`crate::Deserializer::with_max_depth`]).
        max: u32,
        /// Field being decoded.
        path: String,
    },
    /// Any other error, raised by a `Serialize`/`Deserialize` implementation.
    #[error("{msg}{}", At(path))]
    Custom {
        /// The message.
        msg: String,
        /// Field being encoded or decoded.
        path: String,
    },
    /// The serde data model feature has no XDR mapping (maps, unknown-length sequences,
    /// `deserialize_any`, 128-bit integers, ...).
    #[error("unsupported by XDR: {what}")]
    Unsupported {
        /// What was attempted.
        what: &'static str,
    },
}

/// Renders ` at `path`` or nothing for an empty path.
struct At<'a>(&'a String);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, " at `{}`", self.0)
        }
    }
}

impl Error {
    /// The field path this error carries, if its variant has one.
    pub fn path(&self) -> Option<&str> {
        self.path_ref().map(String::as_str)
    }

    fn path_ref(&self) -> Option<&String> {
        match self {
            Error::UnexpectedEof { path, .. }
            | Error::LengthOverLimit { path, .. }
            | Error::LengthOverInput { path, .. }
            | Error::InvalidBool { path, .. }
            | Error::InvalidUtf8 { path }
            | Error::NonZeroPadding { path }
            | Error::IntegerOutOfRange { path, .. }
            | Error::InvalidValue { path, .. }
            | Error::DepthLimitExceeded { path, .. }
            | Error::Custom { path, .. } => Some(path),
            Error::TrailingBytes { .. } | Error::Unsupported { .. } => None,
        }
    }

    fn path_mut(&mut self) -> Option<&mut String> {
        match self {
            Error::UnexpectedEof { path, .. }
            | Error::LengthOverLimit { path, .. }
            | Error::LengthOverInput { path, .. }
            | Error::InvalidBool { path, .. }
            | Error::InvalidUtf8 { path }
            | Error::NonZeroPadding { path }
            | Error::IntegerOutOfRange { path, .. }
            | Error::InvalidValue { path, .. }
            | Error::DepthLimitExceeded { path, .. }
            | Error::Custom { path, .. } => Some(path),
            Error::TrailingBytes { .. } | Error::Unsupported { .. } => None,
        }
    }

    /// Prefix the path with a field or struct name (cold: only on the error path).
    #[cold]
    pub(crate) fn in_field(mut self, name: &str) -> Self {
        if let Some(path) = self.path_mut() {
            let sep = if path.is_empty() || path.starts_with('[') {
                ""
            } else {
                "."
            };
            *path = format!("{name}{sep}{path}");
        }
        self
    }

    /// Prefix the path with a sequence index (cold: only on the error path).
    #[cold]
    pub(crate) fn in_index(mut self, index: usize) -> Self {
        if let Some(path) = self.path_mut() {
            let sep = if path.is_empty() || path.starts_with('[') {
                ""
            } else {
                "."
            };
            *path = format!("[{index}]{sep}{path}");
        }
        self
    }
}

impl serde::ser::Error for Error {
    #[cold]
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::Custom {
            msg: msg.to_string(),
            path: String::new(),
        }
    }
}

impl serde::de::Error for Error {
    #[cold]
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::Custom {
            msg: msg.to_string(),
            path: String::new(),
        }
    }

    #[cold]
    fn invalid_value(unexp: serde::de::Unexpected<'_>, exp: &dyn serde::de::Expected) -> Self {
        Error::InvalidValue {
            value: unexp.to_string(),
            expected: exp.to_string(),
            path: String::new(),
        }
    }
}
