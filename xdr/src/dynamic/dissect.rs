//! Dissect a captured libvirt RPC byte stream (one direction) into packets, decoding each body
//! with the schema: what `cargo xtask xdr dissect` prints.
//!
//! Everything comes from the `.x` files: the header is `virNetMessageHeader`, programs are the
//! `X_PROGRAM` constants, their procedures the members `X_PROC_NAME` of enum `x_procedure`, and a
//! procedure's bodies are the types `x_name_args` (call), `x_name_ret` (reply) and `x_name_msg`
//! (event, type MESSAGE) when defined (no type means an empty body), as libvirt names them.
//! Error replies and stream errors carry `virNetMessageError`; stream holes `virNetStreamHole`;
//! stream data is shown by length. Load every file of the protocol directory (including
//! `virnetprotocol.x`) into one [`Schema`].
//!
//! ```no_run
//! use xdr::dynamic::dissect::Dissector;
//! use xdr::schema::Schema;
//!
//! let dir = std::path::Path::new("../shared/libvirt-protocol/11.3.0");
//! let dissector = Dissector::new(Schema::load(&Dissector::spec_files(dir)?)?)?;
//! let capture = std::fs::read("client-to-server.bin")?;
//! for packet in dissector.packets(&capture) {
//!     println!("{}", serde_json::to_string(&packet?)?);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::{decode_prefix_with, decode_with, Value};
use crate::schema::{Definition, Schema};
use crate::{DecodeOptions, Error};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The length word plus the 24-byte header: the smallest packet.
pub const MIN_PACKET_LEN: u32 = 28;

/// libvirt's `VIR_NET_MESSAGE_MAX` when the schema does not define it.
const DEFAULT_MESSAGE_MAX: u32 = 33_554_432;
/// libvirt's `VIR_NET_MESSAGE_NUM_FDS_MAX` when the schema does not define it.
const DEFAULT_NUM_FDS_MAX: u32 = 32;

/// message types (`virNetMessageType`), by value.
const CALL: i32 = 0;
const REPLY: i32 = 1;
const MESSAGE: i32 = 2;
const STREAM: i32 = 3;
const CALL_WITH_FDS: i32 = 4;
const REPLY_WITH_FDS: i32 = 5;
const STREAM_HOLE: i32 = 6;
/// statuses (`virNetMessageStatus`), by value.
const STATUS_ERROR: i32 = 1;

/// A program found in the schema.
#[derive(Debug, Clone)]
pub struct Program {
    /// The program number (`REMOTE_PROGRAM`'s value).
    pub number: u32,
    /// Lowercase prefix of its names: `remote`, `qemu`, `lxc`, `admin`, `keepalive`.
    pub name: String,
    /// Procedure names (`REMOTE_PROC_CONNECT_OPEN`) by number.
    pub procedures: HashMap<i32, String>,
}

impl Program {
    /// The body type base of a procedure: `REMOTE_PROC_CONNECT_OPEN` -> `remote_connect_open`.
    pub fn type_base(&self, procedure: &str) -> Option<String> {
        let upper = self.name.to_ascii_uppercase();
        let rest = procedure.strip_prefix(&format!("{upper}_PROC_"))?;
        Some(format!("{}_{}", self.name, rest.to_ascii_lowercase()))
    }
}

/// A name if known, else the number.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Symbol {
    /// The symbolic name.
    Name(String),
    /// A value the schema has no name for.
    Number(i64),
}

/// One dissected packet, serialized as one JSON object (fields absent when not applicable).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Packet {
    /// Byte offset of the packet's length word in the stream.
    pub offset: usize,
    /// The length word (whole packet including the word itself).
    pub length: u32,
    /// Program name (`remote`, `qemu`, ...) or number.
    pub program: Symbol,
    /// Program version.
    pub version: u32,
    /// Procedure name (`REMOTE_PROC_CONNECT_OPEN`) or number.
    pub procedure: Symbol,
    /// Message type (`VIR_NET_CALL`, ...) or number.
    #[serde(rename = "type")]
    pub kind: Symbol,
    /// Serial.
    pub serial: u32,
    /// Status (`VIR_NET_OK`, `VIR_NET_ERROR`, `VIR_NET_CONTINUE`) or number.
    pub status: Symbol,
    /// Number of passed file descriptors (`*_WITH_FDS` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fds: Option<u32>,
    /// The body's type name (`remote_connect_open_args`), or `void` for a procedure without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_type: Option<String>,
    /// The decoded call arguments, reply or event payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// The `virNetMessageError` of an error reply or stream error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// The `virNetStreamHole` of a stream hole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hole: Option<Value>,
    /// Bytes of stream data (0 with status OK: end of stream).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_len: Option<usize>,
    /// Why the body could not be decoded (the packet is still framed and shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_error: Option<String>,
}

/// Splits libvirt byte streams into [`Packet`]s using a loaded schema.
#[derive(Debug, Clone)]
pub struct Dissector {
    schema: Schema,
    programs: Vec<Program>,
    message_max: u32,
    num_fds_max: u32,
    options: DecodeOptions,
}

impl Dissector {
    /// Every `*.x` file of a protocol directory, sorted.
    pub fn spec_files(dir: &Path) -> Result<Vec<PathBuf>, crate::schema::Error> {
        let io = |source| crate::schema::Error::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "x"))
            .collect();
        files.sort();
        Ok(files)
    }

    /// A dissector for the programs defined in `schema`, which must define `virNetMessageHeader`.
    pub fn new(schema: Schema) -> Result<Self, Error> {
        if schema.definition("virNetMessageHeader").is_none() {
            return Err(Error::Custom {
                msg: "the schema lacks virNetMessageHeader (load virnetprotocol.x)".into(),
                path: String::new(),
            });
        }
        let mut programs = Vec::new();
        for (cname, value) in schema.constants() {
            let Some(prefix) = cname.strip_suffix("_PROGRAM") else {
                continue;
            };
            let Ok(number) = u32::try_from(value) else {
                continue;
            };
            let name = prefix.to_ascii_lowercase();
            let mut procedures = HashMap::new();
            if let Some((_, item)) = schema.definition(&format!("{name}_procedure")) {
                if let Definition::Enum(e) = &item.def {
                    for (m, v) in schema.enum_values(e) {
                        if let Ok(v) = i32::try_from(v) {
                            procedures.insert(v, m);
                        }
                    }
                }
            }
            programs.push(Program {
                number,
                name,
                procedures,
            });
        }
        let message_max = schema
            .constant("VIR_NET_MESSAGE_MAX")
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(DEFAULT_MESSAGE_MAX);
        let num_fds_max = schema
            .constant("VIR_NET_MESSAGE_NUM_FDS_MAX")
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(DEFAULT_NUM_FDS_MAX);
        Ok(Dissector {
            schema,
            programs,
            message_max,
            num_fds_max,
            options: DecodeOptions::new(),
        })
    }

    /// Decode headers and bodies with `options` (default [`DecodeOptions::new`]), e.g.
    /// [`Padding::Lenient`](crate::Padding::Lenient) to accept the non-zero padding libvirt's C
    /// decoder ignores.
    pub fn with_options(mut self, options: DecodeOptions) -> Self {
        self.options = options;
        self
    }

    /// The schema in use.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The programs found in the schema.
    pub fn programs(&self) -> &[Program] {
        &self.programs
    }

    /// The packets of a byte stream, in order. A framing error (a length word out of range, a
    /// truncated last packet) is yielded once and ends the iteration; a body that does not
    /// decode is reported in [`Packet::decode_error`] and the stream goes on.
    pub fn packets<'a>(&'a self, stream: &'a [u8]) -> Packets<'a> {
        Packets {
            dissector: self,
            stream,
            offset: 0,
            index: 0,
            done: false,
        }
    }

    /// Decode one whole packet (starting with its length word; `offset` is only reported).
    pub fn packet(&self, offset: usize, bytes: &[u8]) -> Result<Packet, Error> {
        if bytes.len() < MIN_PACKET_LEN as usize {
            return Err(Error::UnexpectedEof {
                needed: MIN_PACKET_LEN as usize,
                remaining: bytes.len(),
                path: String::new(),
            });
        }
        let (header, used) = decode_prefix_with(
            &self.schema,
            "virNetMessageHeader",
            &bytes[4..],
            self.options,
        )?;
        let get = |f: &str| header.field(f).cloned();
        let num = |v: Option<Value>| match v {
            Some(Value::UInt(n)) => i64::from(n),
            Some(Value::Int(n)) => i64::from(n),
            Some(Value::Enum { value, .. }) => i64::from(value),
            _ => -1,
        };
        let sym = |v: Option<Value>| match v {
            Some(Value::Enum { name: Some(n), .. }) => Symbol::Name(n),
            other => Symbol::Number(num(other)),
        };
        let prog_no = num(get("prog"));
        let proc_no = num(get("proc"));
        let kind = num(get("type")) as i32;
        let status = num(get("status")) as i32;
        let program = self
            .programs
            .iter()
            .find(|p| i64::from(p.number) == prog_no);
        let proc_name = program.and_then(|p| p.procedures.get(&(proc_no as i32)).cloned());
        let mut packet = Packet {
            offset,
            length: bytes.len() as u32,
            program: program.map_or(Symbol::Number(prog_no), |p| Symbol::Name(p.name.clone())),
            version: num(get("vers")) as u32,
            procedure: proc_name
                .clone()
                .map_or(Symbol::Number(proc_no), Symbol::Name),
            kind: sym(get("type")),
            serial: num(get("serial")) as u32,
            status: sym(get("status")),
            fds: None,
            body_type: None,
            body: None,
            error: None,
            hole: None,
            data_len: None,
            decode_error: None,
        };
        let mut body = &bytes[4 + used..];
        if kind == CALL_WITH_FDS || kind == REPLY_WITH_FDS {
            if body.len() < 4 {
                packet.decode_error = Some("missing the fd count after the header".into());
                return Ok(packet);
            }
            let fds = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
            // As libvirt's virNetMessageDecodeNumFDs: a framing error, the stream cannot go on
            // (the fd carrier bytes after the packet are not to be trusted).
            if fds > self.num_fds_max {
                return Err(Error::LengthOverLimit {
                    len: fds.into(),
                    max: self.num_fds_max.into(),
                    path: "fd count".into(),
                });
            }
            packet.fds = Some(fds);
            body = &body[4..];
        }
        let base = program
            .zip(proc_name.as_deref())
            .and_then(|(p, n)| p.type_base(n));
        let decoded = match (kind, status) {
            // A client's abort: status ERROR with no body (libvirt's virNetClientStreamSendPacket).
            (STREAM, STATUS_ERROR) if body.is_empty() => {
                packet.data_len = Some(0);
                Ok(())
            }
            (STREAM, STATUS_ERROR) | (REPLY | REPLY_WITH_FDS, STATUS_ERROR) => {
                decode_with(&self.schema, "virNetMessageError", body, self.options)
                    .map(|v| packet.error = Some(v))
            }
            (STREAM, _) => {
                packet.data_len = Some(body.len());
                Ok(())
            }
            (STREAM_HOLE, _) => decode_with(&self.schema, "virNetStreamHole", body, self.options)
                .map(|v| packet.hole = Some(v)),
            (CALL | CALL_WITH_FDS | REPLY | REPLY_WITH_FDS | MESSAGE, _) => {
                let suffix = match kind {
                    CALL | CALL_WITH_FDS => "args",
                    MESSAGE => "msg",
                    _ => "ret",
                };
                match base {
                    None => Err(Error::Custom {
                        msg: format!(
                            "unknown procedure {proc_no} of program {prog_no:#x}: {} body bytes not decoded",
                            body.len()
                        ),
                        path: String::new(),
                    }),
                    Some(base) => {
                        let ty = format!("{base}_{suffix}");
                        if self.schema.definition(&ty).is_some() {
                            let r = decode_with(&self.schema, &ty, body, self.options);
                            let r = r.map(|v| packet.body = Some(v));
                            packet.body_type = Some(ty);
                            r
                        } else {
                            packet.body_type = Some("void".into());
                            if body.is_empty() {
                                Ok(())
                            } else {
                                Err(Error::TrailingBytes { count: body.len() })
                            }
                        }
                    }
                }
            }
            _ => Err(Error::InvalidValue {
                value: kind.to_string(),
                expected: "a virNetMessageType".into(),
                path: "type".into(),
            }),
        };
        if let Err(e) = decoded {
            packet.decode_error = Some(e.to_string());
        }
        Ok(packet)
    }
}

/// Iterator over a stream's packets; see [`Dissector::packets`].
#[derive(Debug)]
pub struct Packets<'a> {
    dissector: &'a Dissector,
    stream: &'a [u8],
    offset: usize,
    index: usize,
    done: bool,
}

impl Iterator for Packets<'_> {
    type Item = Result<Packet, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.offset == self.stream.len() {
            return None;
        }
        let rest = &self.stream[self.offset..];
        let path = format!("packet[{}]", self.index);
        let fail = |e: Error| {
            let e = e.in_field(&path);
            Some(Err(e))
        };
        if rest.len() < 4 {
            self.done = true;
            return fail(Error::UnexpectedEof {
                needed: 4,
                remaining: rest.len(),
                path: "length".into(),
            });
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        // As libvirt's virNetMessageDecodeLength: the length word counts itself, the rest may
        // be up to VIR_NET_MESSAGE_MAX.
        let max = u64::from(self.dissector.message_max) + 4;
        if len < MIN_PACKET_LEN || u64::from(len) > max {
            self.done = true;
            return fail(Error::InvalidValue {
                value: len.to_string(),
                expected: format!("a packet length in {MIN_PACKET_LEN}..={max}"),
                path: "length".into(),
            });
        }
        if rest.len() < len as usize {
            self.done = true;
            return fail(Error::UnexpectedEof {
                needed: len as usize,
                remaining: rest.len(),
                path: String::new(),
            });
        }
        let packet = self.dissector.packet(self.offset, &rest[..len as usize]);
        self.offset += len as usize;
        self.index += 1;
        match packet {
            Ok(p) => {
                // Each passed fd travels with one byte of its own after the packet (libvirt's
                // virNetSocketSendFD); they belong to no packet.
                let carriers = p.fds.unwrap_or(0) as usize;
                let left = self.stream.len() - self.offset;
                if carriers > left {
                    self.done = true;
                    return fail(Error::UnexpectedEof {
                        needed: carriers,
                        remaining: left,
                        path: "fd carrier bytes".into(),
                    });
                }
                self.offset += carriers;
                Some(Ok(p))
            }
            Err(e) => {
                self.done = true;
                fail(e)
            }
        }
    }
}
