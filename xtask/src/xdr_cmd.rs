//! `cargo xtask xdr`: the schema-driven XDR codec and libvirt stream dissector on the command
//! line (built on `xdr::dynamic`).
//!
//! - `xdr decode --spec FILE.x --type NAME`: raw XDR on stdin, one JSON value on stdout.
//! - `xdr encode --spec FILE.x --type NAME`: that JSON on stdin, the XDR bytes on stdout.
//! - `xdr dissect [--spec-dir DIR]`: a raw libvirt byte stream (one direction) on stdin, one JSON
//!   line per packet on stdout.
//!
//! `--lenient-padding` (decode, dissect) skips non-zero padding bytes after strings and opaques
//! the way libvirt's C decoder does instead of rejecting them; `encode` of such output writes zero
//! padding, so it no longer gives back the input bytes. `--lossy-utf8` (decode, dissect) prints
//! strings that are not UTF-8 with U+FFFD in place of each invalid sequence instead of failing
//! (libvirt's C decoder takes any bytes); those strings then do not encode back to their bytes.
//!
//! `--spec` also loads the `.x` files FILE.x includes (`%#include "remote_protocol.h"` loads
//! `remote_protocol.x` from the same folder). The spec dir is DIR, else
//! `$VMWIRE_LIBVIRT_PROTOCOL`, else `../shared/libvirt-protocol/11.3.0` next to the workspace.
//! Errors are one line on stderr with a non-zero exit; stdout carries only the result.

use crate::util;
use anyhow::{anyhow, bail, Context, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use xdr::dynamic::{self, dissect::Dissector};
use xdr::schema::Schema;
use xdr::{DecodeOptions, Padding, Utf8};

const USAGE: &str =
    "usage: cargo xtask xdr decode --spec FILE.x --type NAME [--lenient-padding] [--lossy-utf8]   (XDR on stdin -> JSON)
       cargo xtask xdr encode --spec FILE.x --type NAME                                     (JSON on stdin -> XDR)
       cargo xtask xdr dissect [--spec-dir DIR] [--lenient-padding] [--lossy-utf8]          (libvirt stream on stdin -> JSON lines)
--lenient-padding: accept non-zero padding bytes (as libvirt's C decoder does); re-encoding then
writes zero padding, so the bytes do not come back exactly
--lossy-utf8: print strings that are not UTF-8 with U+FFFD replacements instead of failing; such
strings do not encode back to their bytes";

/// The flags without a value (options of decode and dissect).
const LENIENT: &str = "--lenient-padding";
const LOSSY: &str = "--lossy-utf8";

pub fn cmd(args: &[&str]) -> Result<()> {
    one_line(run(args))
}

/// Errors must be one line: join the chain and any multi-line message.
fn one_line(r: Result<()>) -> Result<()> {
    r.map_err(|e| anyhow!("{}", format!("{e:#}").replace('\n', " ")))
}

fn run(args: &[&str]) -> Result<()> {
    let lenient = args.contains(&LENIENT);
    let lossy = args.contains(&LOSSY);
    let args: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| *a != LENIENT && *a != LOSSY)
        .collect();
    let (words, flags) = split_flags(&args)?;
    let options = DecodeOptions::new()
        .with_padding(if lenient {
            Padding::Lenient
        } else {
            Padding::Strict
        })
        .with_utf8(if lossy { Utf8::Lossy } else { Utf8::Strict });
    match words.as_slice() {
        ["decode"] | ["encode"] => {
            let spec = flag(&flags, "--spec")?;
            let ty = flag(&flags, "--type")?;
            only_flags(&flags, &["--spec", "--type"])?;
            if words[0] == "encode" {
                if let Some(f) = [(lenient, LENIENT), (lossy, LOSSY)]
                    .into_iter()
                    .find_map(|(on, f)| on.then_some(f))
                {
                    bail!("{f} is an option of decode and dissect\n{USAGE}");
                }
            }
            let schema = load_spec(Path::new(spec))?;
            let input = read_stdin()?;
            let out = if words[0] == "decode" {
                let mut s = decode_to_json_with(&schema, ty, &input, options)?;
                s.push('\n');
                s.into_bytes()
            } else {
                encode_from_json(&schema, ty, &input)?
            };
            write_stdout(&out)
        }
        ["dissect"] => {
            only_flags(&flags, &["--spec-dir"])?;
            let dir = spec_dir(
                flags
                    .iter()
                    .find(|(k, _)| *k == "--spec-dir")
                    .map(|(_, v)| *v),
            )?;
            let dissector = load_dissector(&dir)?.with_options(options);
            let input = read_stdin()?;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let mut failure = None;
            for packet in dissector.packets(&input) {
                match packet {
                    Ok(p) => {
                        serde_json::to_writer(&mut out, &p)?;
                        out.write_all(b"\n")?;
                    }
                    Err(e) => failure = Some(e),
                }
            }
            out.flush()?;
            match failure {
                Some(e) => bail!("{e}"),
                None => Ok(()),
            }
        }
        _ => bail!("{USAGE}"),
    }
}

/// Decode `input` as `ty` with `options` (`--lenient-padding`, `--lossy-utf8`) and render the JSON text
/// (declaration order kept).
pub fn decode_to_json_with(
    schema: &Schema,
    ty: &str,
    input: &[u8],
    options: DecodeOptions,
) -> Result<String> {
    let value = dynamic::decode_with(schema, ty, input, options)?;
    Ok(serde_json::to_string(&value)?)
}

/// Parse JSON text and encode it as `ty`.
pub fn encode_from_json(schema: &Schema, ty: &str, json: &[u8]) -> Result<Vec<u8>> {
    let json: serde_json::Value =
        serde_json::from_slice(json).context("stdin is not one JSON value")?;
    let value = dynamic::from_json(schema, ty, &json)?;
    Ok(dynamic::encode(schema, ty, &value)?)
}

/// Load FILE.x and the `.x` files it includes.
pub fn load_spec(path: &Path) -> Result<Schema> {
    Schema::load_with_includes(path).with_context(|| format!("loading {}", path.display()))
}

/// The protocol directory: the flag, `$VMWIRE_LIBVIRT_PROTOCOL`, or the shared default.
pub fn spec_dir(flag: Option<&str>) -> Result<PathBuf> {
    let dir = match flag {
        Some(d) => PathBuf::from(d),
        None => match std::env::var_os("VMWIRE_LIBVIRT_PROTOCOL") {
            Some(d) => PathBuf::from(d),
            None => util::workspace_root().join("../shared/libvirt-protocol/11.3.0"),
        },
    };
    if !dir.is_dir() {
        bail!(
            "protocol directory {} not found; pass --spec-dir DIR or set VMWIRE_LIBVIRT_PROTOCOL",
            dir.display()
        );
    }
    Ok(dir)
}

/// A dissector over every `.x` file of `dir`.
pub fn load_dissector(dir: &Path) -> Result<Dissector> {
    let files = Dissector::spec_files(dir)?;
    if files.is_empty() {
        bail!("no .x files in {}", dir.display());
    }
    let schema = Schema::load(&files).with_context(|| format!("loading {}", dir.display()))?;
    Ok(Dissector::new(schema)?)
}

type Flags<'a> = Vec<(&'a str, &'a str)>;

fn split_flags<'a>(args: &[&'a str]) -> Result<(Vec<&'a str>, Flags<'a>)> {
    let mut words = Vec::new();
    let mut flags = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some((k, v)) = a.split_once('=').filter(|_| a.starts_with("--")) {
            flags.push((k, v));
        } else if a.starts_with("--") {
            let v = it
                .next()
                .with_context(|| format!("{a} needs a value\n{USAGE}"))?;
            flags.push((*a, *v));
        } else {
            words.push(*a);
        }
    }
    Ok((words, flags))
}

fn flag<'a>(flags: &Flags<'a>, name: &str) -> Result<&'a str> {
    flags
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| *v)
        .with_context(|| format!("missing {name}\n{USAGE}"))
}

fn only_flags(flags: &Flags<'_>, allowed: &[&str]) -> Result<()> {
    match flags.iter().find(|(k, _)| !allowed.contains(k)) {
        Some((k, _)) => bail!("unknown option {k}\n{USAGE}"),
        None => Ok(()),
    }
}

fn read_stdin() -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut buf)
        .context("reading stdin")?;
    Ok(buf)
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}
