//! What the generated bindings implement: procedure metadata, the [`Call`] and [`Message`]
//! traits of the per-procedure marker types, and helpers for the generated enums and flags.
//!
//! Every program module in [`crate::generated`] (`remote`, `qemu`, `lxc`, `admin`, `keepalive`)
//! has `PROGRAM`, `VERSION`, a `Procedure` enum, a `PROCEDURES` table of [`ProcedureInfo`] rows
//! (ordered by number) and a `procs` module with one zero-sized marker type per procedure:
//!
//! ```
//! use libvirt_proto::generated::remote::{self, procs, RemoteDomainGetInfoRet};
//! use libvirt_proto::program::{Call, ProcedureKind, ProcedureMarker};
//!
//! // Types of a call, known at compile time.
//! fn ret_of<C: Call>(_: C) -> Option<C::Ret> { None }
//! let _: Option<RemoteDomainGetInfoRet> = ret_of(procs::DomainGetInfo);
//! assert_eq!(procs::DomainGetInfo::NAME, "REMOTE_PROC_DOMAIN_GET_INFO");
//! assert_eq!(procs::DomainGetInfo::PROGRAM, remote::PROGRAM);
//!
//! // The same facts at run time, from the number in a packet header.
//! let p = remote::Procedure::try_from(16).unwrap();
//! assert_eq!(p.name(), "REMOTE_PROC_DOMAIN_GET_INFO");
//! assert_eq!(p.info().ret, Some("remote_domain_get_info_ret"));
//! let events = remote::PROCEDURES.iter().filter(|p| p.kind == ProcedureKind::Message).count();
//! assert!(events > 50);
//! assert!(remote::Procedure::try_from(100_000).is_err());
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Which way a stream procedure moves data (libvirt's `@readstream` / `@writestream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamDirection {
    /// `@readstream`: the daemon sends stream data to the client (downloads, screenshots,
    /// console output).
    Read,
    /// `@writestream`: the client sends stream data to the daemon (uploads).
    Write,
}

/// libvirt's `@priority` annotation: whether the daemon may run the call on its high-priority
/// worker pool (calls that never block on a hypervisor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Priority {
    /// Low priority (the default when not annotated).
    #[default]
    Low,
    /// High priority.
    High,
}

/// libvirt's `@generate` annotation: which side's dispatch code libvirt generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Generate {
    /// `none`: hand-written on both sides.
    None,
    /// `client`: generated for the client only.
    Client,
    /// `server`: generated for the daemon only.
    Server,
    /// `both`: generated on both sides.
    Both,
}

/// How a procedure travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProcedureKind {
    /// A call: the client sends `args` as VIR_NET_CALL, the daemon answers with `ret` as
    /// VIR_NET_REPLY (or an error).
    Call,
    /// A message sent as VIR_NET_MESSAGE with no reply: a daemon event (the procedure has a
    /// `<proc>_msg` struct, libvirt's convention) or a keepalive PING/PONG (no body, both ways).
    Message,
}

/// One procedure of a program, with libvirt's annotations.
///
/// Type names are XDR names; the Rust type is the CamelCase of it in the program's module
/// (`remote_domain_get_info_ret` is `generated::remote::RemoteDomainGetInfoRet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcedureInfo {
    /// Program number (header `prog`).
    pub program: u32,
    /// Program version (header `vers`).
    pub version: u32,
    /// Program name (`remote`, `qemu`, `lxc`, `admin`, `keepalive`).
    pub program_name: &'static str,
    /// Procedure number (header `proc`).
    pub number: u32,
    /// The C name, e.g. `REMOTE_PROC_CONNECT_OPEN`.
    pub name: &'static str,
    /// Call or message.
    pub kind: ProcedureKind,
    /// The call's argument struct (`<proc>_args`), `None` when it takes none (void body).
    pub args: Option<&'static str>,
    /// The call's reply struct (`<proc>_ret`), `None` when the reply body is empty.
    pub ret: Option<&'static str>,
    /// A message's body struct (`<proc>_msg`), `None` for calls and empty messages.
    pub message: Option<&'static str>,
    /// Whether the call opens a stream, and which way data flows.
    pub stream: Option<StreamDirection>,
    /// The stream's position in the C API's parameter list (the annotation's number).
    pub stream_param: Option<u32>,
    /// `@sparseflag`: the flag that makes the stream carry holes (VIR_NET_STREAM_HOLE).
    pub sparse_flag: Option<&'static str>,
    /// `@priority`.
    pub priority: Priority,
    /// `@generate` (`None` when not annotated, as in the keepalive program).
    pub generate: Option<Generate>,
    /// `@acl` rules, as written (`domain:read`, `network:save:!FLAG|FLAG`, ...).
    pub acl: &'static [&'static str],
    /// `@aclfilter` rules, as written.
    pub acl_filter: &'static [&'static str],
}

/// A program: number, version, and procedures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramInfo {
    /// `remote`, `qemu`, `lxc`, `admin` or `keepalive`.
    pub name: &'static str,
    /// Program number (header `prog`).
    pub number: u32,
    /// Protocol version (header `vers`).
    pub version: u32,
    /// Every procedure, ordered by number.
    pub procedures: &'static [ProcedureInfo],
}

impl ProgramInfo {
    /// The procedure with this number.
    pub fn procedure(&self, number: u32) -> Option<&'static ProcedureInfo> {
        self.procedures
            .binary_search_by_key(&number, |p| p.number)
            .ok()
            .map(|i| &self.procedures[i])
    }
}

/// Implemented by every per-procedure marker type (`generated::<program>::procs::*`).
pub trait ProcedureMarker {
    /// The procedure's row in its program's table.
    const INFO: &'static ProcedureInfo;
    /// Program number.
    const PROGRAM: u32 = Self::INFO.program;
    /// Program version.
    const VERSION: u32 = Self::INFO.version;
    /// Procedure number.
    const PROCEDURE: u32 = Self::INFO.number;
    /// The C name, e.g. `REMOTE_PROC_CONNECT_OPEN`.
    const NAME: &'static str = Self::INFO.name;
    /// Whether the call opens a stream, and which way.
    const STREAM: Option<StreamDirection> = Self::INFO.stream;
}

/// A call (VIR_NET_CALL answered by VIR_NET_REPLY): argument and reply body types (`()` for
/// an empty body).
pub trait Call: ProcedureMarker {
    /// The argument body.
    type Args: Serialize + DeserializeOwned;
    /// The reply body.
    type Ret: Serialize + DeserializeOwned;
}

/// A message (VIR_NET_MESSAGE, no reply): a daemon event or keepalive PING/PONG.
pub trait Message: ProcedureMarker {
    /// The message body (`()` for keepalive).
    type Body: Serialize + DeserializeOwned;
}

/// Which body of a procedure a packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Body {
    /// A call's arguments (VIR_NET_CALL).
    Args,
    /// A call's successful reply (VIR_NET_REPLY with status OK).
    Ret,
    /// A message's body (VIR_NET_MESSAGE: events, keepalive).
    Message,
}

/// A body decoded with its generated type by `generated::decode_body` (or a program module's
/// `decode_body`): printable with `Debug`, and encodable back to the XDR it came from.
///
/// XDR encodings are canonical, so for bytes that decode with the default (strict padding)
/// options, [`encode`](DecodedBody::encode) gives back exactly those bytes:
///
/// ```
/// use libvirt_proto::generated::{decode_body, remote};
/// use libvirt_proto::program::Body;
///
/// let args = xdr::to_bytes(&remote::RemoteConnectOpenArgs {
///     name: Some("qemu:///system".into()),
///     flags: 0,
/// })
/// .unwrap();
/// let open = remote::Procedure::ConnectOpen.number();
/// let value = decode_body(remote::PROGRAM, open, Body::Args, &args).unwrap().unwrap();
/// assert!(format!("{value:?}").starts_with("RemoteConnectOpenArgs"));
/// assert_eq!(value.encode().unwrap(), args);
/// ```
pub trait DecodedBody: std::fmt::Debug + Send {
    /// The value as XDR (what [`xdr::to_bytes`] writes for its type).
    fn encode(&self) -> Result<Vec<u8>, xdr::Error>;
}

impl<T: std::fmt::Debug + Send + Serialize> DecodedBody for T {
    fn encode(&self) -> Result<Vec<u8>, xdr::Error> {
        xdr::to_bytes(self)
    }
}

/// A procedure number a program does not define.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("program {program:#x} has no procedure {procedure}")]
pub struct UnknownProcedure {
    /// The program number.
    pub program: u32,
    /// The unknown procedure number.
    pub procedure: u32,
}

/// A value that a (closed) XDR enum does not define.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{value} is not a value of the XDR enum {type_name}")]
pub struct UnknownValue {
    /// The XDR enum's name.
    pub type_name: &'static str,
    /// The value.
    pub value: i64,
}

/// Debug, conversions and `Display` for the generated `i32` newtypes of libvirt API enums.
macro_rules! impl_enum {
    ($t:ident) => {
        impl ::std::fmt::Debug for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                match self.name() {
                    Some(n) => write!(f, "{}({})", n, self.0),
                    None => write!(f, "{}(unknown {})", stringify!($t), self.0),
                }
            }
        }
        impl ::std::fmt::Display for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}", self.0),
                }
            }
        }
        impl From<i32> for $t {
            fn from(v: i32) -> Self {
                Self(v)
            }
        }
        impl From<$t> for i32 {
            fn from(v: $t) -> i32 {
                v.0
            }
        }
    };
}
pub(crate) use impl_enum;

/// Bit operations, Debug, iteration and conversions for the generated `u32` flag sets.
macro_rules! impl_flags {
    ($t:ident) => {
        impl $t {
            /// No flags.
            pub const fn empty() -> Self {
                Self(0)
            }
            /// The raw bits.
            pub const fn bits(self) -> u32 {
                self.0
            }
            /// True when no bit is set.
            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }
            /// True when every bit of `other` is set in `self`.
            pub const fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }
            /// True when `self` and `other` share a bit.
            pub const fn intersects(self, other: Self) -> bool {
                self.0 & other.0 != 0
            }
            /// Both sets of bits.
            pub const fn union(self, other: Self) -> Self {
                Self(self.0 | other.0)
            }
            /// The bits no named flag of this libvirt version covers.
            pub const fn unknown_bits(self) -> u32 {
                let known = Self::known();
                let mut all = 0u32;
                let mut i = 0;
                while i < known.len() {
                    all |= known[i].1 .0;
                    i += 1;
                }
                self.0 & !all
            }
            /// The C names of the named flags fully contained in `self`, by value.
            pub fn names(self) -> impl Iterator<Item = &'static str> {
                Self::known()
                    .iter()
                    .filter(move |(_, f)| self.contains(*f))
                    .map(|(n, _)| *n)
            }
        }
        impl ::std::fmt::Debug for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}(", stringify!($t))?;
                let mut first = true;
                for n in self.names() {
                    if !first {
                        f.write_str(" | ")?;
                    }
                    f.write_str(n)?;
                    first = false;
                }
                let unknown = self.unknown_bits();
                if unknown != 0 || first {
                    if !first {
                        f.write_str(" | ")?;
                    }
                    write!(f, "{:#x}", if first { self.0 } else { unknown })?;
                }
                f.write_str(")")
            }
        }
        impl ::std::ops::BitOr for $t {
            type Output = Self;
            fn bitor(self, o: Self) -> Self {
                Self(self.0 | o.0)
            }
        }
        impl ::std::ops::BitOrAssign for $t {
            fn bitor_assign(&mut self, o: Self) {
                self.0 |= o.0;
            }
        }
        impl ::std::ops::BitAnd for $t {
            type Output = Self;
            fn bitand(self, o: Self) -> Self {
                Self(self.0 & o.0)
            }
        }
        impl ::std::ops::BitAndAssign for $t {
            fn bitand_assign(&mut self, o: Self) {
                self.0 &= o.0;
            }
        }
        impl ::std::ops::BitXor for $t {
            type Output = Self;
            fn bitxor(self, o: Self) -> Self {
                Self(self.0 ^ o.0)
            }
        }
        impl ::std::ops::Not for $t {
            type Output = Self;
            fn not(self) -> Self {
                Self(!self.0)
            }
        }
        impl From<u32> for $t {
            fn from(v: u32) -> Self {
                Self(v)
            }
        }
        impl From<$t> for u32 {
            fn from(v: $t) -> u32 {
                v.0
            }
        }
    };
}
pub(crate) use impl_flags;

/// Wrappers the generated union code uses to apply `xdr::limit`, `xdr::opaque_fixed` and
/// `xdr::array_fixed` to a union arm (serde attributes only exist on fields). Not API.
#[doc(hidden)]
pub mod __private {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Checks decode(encode(x)) == x (and that decoding takes every byte) for `cases` random
    /// values of `T`; the error names the type, the value and what went wrong.
    #[cfg(feature = "arbitrary")]
    pub fn roundtrip<T>(name: &str, cases: u32) -> Result<(), String>
    where
        T: proptest::arbitrary::Arbitrary
            + Serialize
            + serde::de::DeserializeOwned
            + PartialEq
            + std::fmt::Debug,
    {
        use proptest::test_runner::{Config, TestCaseError, TestRunner};
        let config = Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        runner
            .run(&proptest::arbitrary::any::<T>(), |value| {
                let bytes = xdr::to_bytes(&value)
                    .map_err(|e| TestCaseError::fail(format!("encode: {e}")))?;
                if bytes.len() % 4 != 0 {
                    return Err(TestCaseError::fail(format!(
                        "encoding is {} bytes, not a multiple of 4",
                        bytes.len()
                    )));
                }
                let back: T = xdr::from_bytes(&bytes)
                    .map_err(|e| TestCaseError::fail(format!("decode: {e}")))?;
                if back != value {
                    return Err(TestCaseError::fail(format!(
                        "decoded {back:?} differs from {value:?}"
                    )));
                }
                Ok(())
            })
            .map_err(|e| format!("{name}: {e}"))
    }

    /// Any string (every Unicode scalar value, NUL and controls included) of at most 8 chars
    /// and at most `max_bytes` bytes of UTF-8: the strategy of generated `string<N>` fields.
    #[cfg(feature = "arbitrary")]
    pub fn arb_string(max_bytes: u32) -> proptest::strategy::BoxedStrategy<String> {
        use proptest::prelude::*;
        proptest::collection::vec(any::<char>(), 0..=8)
            .prop_map(move |chars| {
                let mut s = String::new();
                for c in chars {
                    if s.len() + c.len_utf8() > max_bytes as usize {
                        break;
                    }
                    s.push(c);
                }
                s
            })
            .boxed()
    }

    /// Serializes `&T` with `xdr::limit::serialize::<N>`.
    pub struct LimitRef<'a, T: ?Sized, const N: u32>(pub &'a T);
    impl<T: Serialize + ?Sized, const N: u32> Serialize for LimitRef<'_, T, N> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            xdr::limit::serialize::<N, T, S>(self.0, s)
        }
    }

    /// Deserializes a `T` with `xdr::limit::deserialize::<N>`.
    pub struct Limit<T, const N: u32>(pub T);
    impl<'de, T: Deserialize<'de>, const N: u32> Deserialize<'de> for Limit<T, N> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            xdr::limit::deserialize::<N, T, D>(d).map(Limit)
        }
    }

    /// Serializes `&T` with `xdr::limit::serialize_items::<N, M>`.
    pub struct LimitItemsRef<'a, T: ?Sized, const N: u32, const M: u32>(pub &'a T);
    impl<T: Serialize + ?Sized, const N: u32, const M: u32> Serialize for LimitItemsRef<'_, T, N, M> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            xdr::limit::serialize_items::<N, M, T, S>(self.0, s)
        }
    }

    /// Deserializes a `T` with `xdr::limit::deserialize_items::<N, M>`.
    pub struct LimitItems<T, const N: u32, const M: u32>(pub T);
    impl<'de, T: Deserialize<'de>, const N: u32, const M: u32> Deserialize<'de>
        for LimitItems<T, N, M>
    {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            xdr::limit::deserialize_items::<N, M, T, D>(d).map(LimitItems)
        }
    }

    /// Serializes `&[u8; N]` as fixed opaque.
    pub struct OpaqueFixedRef<'a, const N: usize>(pub &'a [u8; N]);
    impl<const N: usize> Serialize for OpaqueFixedRef<'_, N> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            xdr::opaque_fixed::serialize(self.0, s)
        }
    }

    /// Deserializes `[u8; N]` as fixed opaque.
    pub struct OpaqueFixed<const N: usize>(pub [u8; N]);
    impl<'de, const N: usize> Deserialize<'de> for OpaqueFixed<N> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            xdr::opaque_fixed::deserialize(d).map(OpaqueFixed)
        }
    }

    /// Serializes `&[T; N]` as a fixed array.
    pub struct ArrayFixedRef<'a, T, const N: usize>(pub &'a [T; N]);
    impl<T: Serialize, const N: usize> Serialize for ArrayFixedRef<'_, T, N> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            xdr::array_fixed::serialize(self.0, s)
        }
    }

    /// Deserializes `[T; N]` as a fixed array.
    pub struct ArrayFixed<T, const N: usize>(pub [T; N]);
    impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for ArrayFixed<T, N> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            xdr::array_fixed::deserialize(d).map(ArrayFixed)
        }
    }
}
