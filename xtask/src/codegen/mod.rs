//! `cargo xtask codegen [--check] [--protocol-dir DIR]`: libvirt's `.x` files and API XML ->
//! `libvirt-proto/src/generated/*.rs`.
//!
//! Inputs are read from DIR, else `$VMWIRE_LIBVIRT_PROTOCOL`, else
//! `../shared/libvirt-protocol/11.3.0` next to the workspace root; they are never copied into the
//! repository. The output is formatted with rustfmt. `--check` regenerates in memory and fails,
//! naming the stale files, when the committed output differs.

mod api;
mod names;
mod rpc;

use crate::util;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const USAGE: &str = "usage: cargo xtask codegen [--check] [--protocol-dir DIR]";

/// Where the generated files go, relative to the workspace root.
const OUT_DIR: &str = "libvirt-proto/src/generated";

pub fn cmd(args: &[&str]) -> Result<()> {
    let mut check = false;
    let mut dir: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match *a {
            "--check" => check = true,
            "--protocol-dir" => {
                dir = Some(PathBuf::from(
                    it.next().context("--protocol-dir needs a directory")?,
                ))
            }
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    let dir = protocol_dir(dir)?;
    let files = generate_all(&dir)?;
    let out_dir = util::workspace_root().join(OUT_DIR);
    if check {
        let mut stale = Vec::new();
        for (name, text) in &files {
            let path = out_dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(old) if old == *text => {}
                Ok(_) => stale.push(format!("{OUT_DIR}/{name} (differs)")),
                Err(_) => stale.push(format!("{OUT_DIR}/{name} (missing)")),
            }
        }
        for extra in existing_rs(&out_dir)? {
            if !files.contains_key(&extra) {
                stale.push(format!("{OUT_DIR}/{extra} (not generated any more)"));
            }
        }
        if !stale.is_empty() {
            bail!(
                "generated code is stale; run `cargo xtask codegen`:\n  {}",
                stale.join("\n  ")
            );
        }
        println!(
            "codegen: {} files in {OUT_DIR} are up to date with {}",
            files.len(),
            dir.display()
        );
    } else {
        std::fs::create_dir_all(&out_dir)?;
        for extra in existing_rs(&out_dir)? {
            if !files.contains_key(&extra) {
                std::fs::remove_file(out_dir.join(&extra))?;
            }
        }
        for (name, text) in &files {
            let path = out_dir.join(name);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("codegen: wrote {OUT_DIR}/{name}");
            }
        }
        println!("codegen: {} files from {}", files.len(), dir.display());
    }
    Ok(())
}

fn existing_rs(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd {
            let name = e?.file_name().to_string_lossy().into_owned();
            if name.ends_with(".rs") {
                out.push(name);
            }
        }
    }
    Ok(out)
}

/// The protocol directory: the argument, `$VMWIRE_LIBVIRT_PROTOCOL`, or the shared default.
pub fn protocol_dir(arg: Option<PathBuf>) -> Result<PathBuf> {
    let dir = match arg {
        Some(d) => d,
        None => match std::env::var_os("VMWIRE_LIBVIRT_PROTOCOL") {
            Some(d) => PathBuf::from(d),
            None => util::workspace_root().join("../shared/libvirt-protocol/11.3.0"),
        },
    };
    if !dir.join("remote_protocol.x").is_file() || !dir.join("api").is_dir() {
        bail!(
            "{} does not hold libvirt's remote_protocol.x and api/: pass --protocol-dir DIR or set \
             VMWIRE_LIBVIRT_PROTOCOL to the libvirt 11.3.0 protocol directory",
            dir.display()
        );
    }
    Ok(dir)
}

/// Every generated file (name inside `generated/` -> formatted text).
fn generate_all(dir: &Path) -> Result<BTreeMap<String, String>> {
    let version = dir
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut files = BTreeMap::new();
    for m in rpc::MODULES {
        let (code, report) = rpc::generate(dir, m)
            .with_context(|| format!("generating {} from {}", m.module, m.file))?;
        for o in &report.orphans {
            eprintln!(
                "codegen: warning: {o} follows the <proc>_args/_ret/_msg convention but no procedure uses it"
            );
        }
        let inputs = if matches!(m.module, "qemu" | "lxc") {
            format!("{}/{} (which includes remote_protocol.x)", version, m.file)
        } else {
            format!("{}/{}", version, m.file)
        };
        let text = file_text(&inputs, m.doc, &code)?;
        files.insert(format!("{}.rs", m.module), text);
    }
    for (module, code) in api::generate(dir)? {
        let spec = api::APIS
            .iter()
            .find(|a| a.module == module)
            .expect("known module");
        let inputs = format!("{version}/api/{}", spec.file);
        let code = if code.is_empty() {
            "// This libvirt version's file defines no enums.\n".to_string()
        } else {
            code
        };
        files.insert(format!("{module}.rs"), file_text(&inputs, spec.doc, &code)?);
    }
    files.insert("mod.rs".into(), mod_rs(&version)?);
    Ok(files)
}

fn header(inputs: &str) -> String {
    format!(
        "// @generated by `cargo xtask codegen` (xtask/src/codegen) from libvirt {inputs}.\n\
         // Do not edit: change the generator or its input and run `cargo xtask codegen`.\n\n"
    )
}

fn file_text(inputs: &str, doc: &str, code: &str) -> Result<String> {
    let mut s = header(inputs);
    s.push_str(&format!("//! {doc}\n\n"));
    s.push_str(code);
    rustfmt(&s)
}

fn mod_rs(version: &str) -> Result<String> {
    let mut s = header(&format!("{version} (all .x files and api/*.xml)"));
    s.push_str(
        "//! Bindings generated from libvirt's protocol definitions: one module per `.x` file with its\n\
         //! types, and for each program its `Procedure` enum, `PROCEDURES` table and `procs` marker\n\
         //! types (see [`crate::program`]); one module per API XML file with typed enums and flags.\n\n",
    );
    let mut mods: Vec<&str> = rpc::MODULES.iter().map(|m| m.module).collect();
    mods.extend(api::APIS.iter().map(|a| a.module));
    mods.sort();
    for m in &mods {
        let doc = rpc::MODULES
            .iter()
            .find(|x| x.module == *m)
            .map(|x| x.doc)
            .or_else(|| api::APIS.iter().find(|x| x.module == *m).map(|x| x.doc))
            .unwrap_or_default();
        s.push_str(&format!("#[doc = {doc:?}]\npub mod {m};\n"));
    }
    s.push_str("\n/// Every program, in the order remote, qemu, lxc, admin, keepalive.\n");
    s.push_str("pub const PROGRAMS: &[&crate::program::ProgramInfo] = &[\n");
    for m in ["remote", "qemu", "lxc", "admin", "keepalive"] {
        s.push_str(&format!("    &{m}::PROGRAM_INFO,\n"));
    }
    s.push_str("];\n\n");
    s.push_str(
        "/// The program with this number.\n\
         pub fn program(number: u32) -> Option<&'static crate::program::ProgramInfo> {\n\
         \x20   PROGRAMS.iter().copied().find(|p| p.number == number)\n\
         }\n\n\
         /// Decodes `bytes` as the given body of a procedure with its generated type (see each\n\
         /// program's `decode_body`); `None` for an unknown program or procedure.\n\
         pub fn decode_body(program: u32, procedure: u32, body: crate::program::Body, bytes: &[u8]) -> Option<Result<Box<dyn std::fmt::Debug + Send>, xdr::Error>> {\n\
         \x20   let p = i32::try_from(procedure).ok()?;\n\
         \x20   Some(match program {\n\
         \x20       remote::PROGRAM => remote::decode_body(remote::Procedure::from_value(p)?, body, bytes),\n\
         \x20       qemu::PROGRAM => qemu::decode_body(qemu::Procedure::from_value(p)?, body, bytes),\n\
         \x20       lxc::PROGRAM => lxc::decode_body(lxc::Procedure::from_value(p)?, body, bytes),\n\
         \x20       admin::PROGRAM => admin::decode_body(admin::Procedure::from_value(p)?, body, bytes),\n\
         \x20       keepalive::PROGRAM => keepalive::decode_body(keepalive::Procedure::from_value(p)?, body, bytes),\n\
         \x20       _ => return None,\n\
         \x20   })\n\
         }\n\n\
         /// The procedure with these program and procedure numbers.\n\
         pub fn procedure(program: u32, procedure: u32) -> Option<&'static crate::program::ProcedureInfo> {\n\
         \x20   self::program(program)?.procedure(procedure)\n\
         }\n",
    );
    rustfmt(&s)
}

fn rustfmt(text: &str) -> Result<String> {
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2021"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running rustfmt (install it with `rustup component add rustfmt`)")?;
    let mut stdin = child.stdin.take().context("rustfmt stdin")?;
    let input = text.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("rustfmt writer thread panicked"))??;
    if !out.status.success() {
        let dump = std::env::temp_dir().join("xtask-codegen-unformatted.rs");
        std::fs::write(&dump, text).ok();
        bail!(
            "rustfmt failed on generated code (saved to {}):\n{}",
            dump.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout).context("rustfmt output is not UTF-8")
}
