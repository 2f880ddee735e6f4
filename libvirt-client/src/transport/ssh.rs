//! The `ssh` transport: the system `ssh` program as a pipe to the remote daemon.
//!
//! Like libvirt's remote driver, the client runs
//! `ssh [-p PORT] [-l USER] [-i KEYFILE] -T -e none [-o BatchMode=yes] [-o StrictHostKeyChecking=no] -- HOST COMMAND`
//! (`command=` replaces the `ssh` program; `no_tty=1` adds BatchMode, `no_verify=1` relaxes host
//! key checking) where `COMMAND` runs, on the remote host, either libvirt's `virt-ssh-helper URI`
//! (which finds the right daemon itself) or `nc -U SOCKET` (`netcat=` names another netcat),
//! chosen by `proxy=`:
//!
//! - `proxy=native`: only `virt-ssh-helper` (`-r` for read-only connections);
//! - `proxy=netcat`: only netcat;
//! - `proxy=auto`: `virt-ssh-helper` when the remote host has it, else netcat.
//!
//! Without `proxy=`, a `socket=` parameter means netcat, a session URI means native, and
//! anything else auto; a `netcat=` parameter turns auto into netcat.

use crate::transport::CommandSpec;
use crate::uri::{LocalEnv, Proxy, Uri};
use crate::Error;

/// Quote `s` for a POSIX shell: returned as is when it holds no shell-special character,
/// else in single quotes (with each `'` written as `'\''`). The empty string becomes `''`.
pub fn shell_escape(s: &str) -> String {
    const SPECIAL: &[char] = &[
        ' ', '\t', '\n', '\r', '!', '"', '#', '$', '&', '\'', '(', ')', '*', ';', '<', '>', '?',
        '[', '\\', ']', '^', '`', '{', '|', '}', '~',
    ];
    if !s.is_empty() && !s.contains(SPECIAL) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// The text to splice into the remote command so that, after the remote login shell has
/// parsed `sh -c '...'` and `sh` parses the script again, the word `s` arrives intact.
fn spliced(s: &str) -> String {
    // Close the outer single quote, insert the word quoted for the outer shell (which yields
    // the word quoted for the inner `sh`), and reopen the quote.
    format!("'{}'", shell_escape(&shell_escape(s)))
}

/// The command run on the remote host (one argument to ssh, parsed there by the login shell).
///
/// `socket` is the remote daemon socket for netcat; `helper_uri` the URI given to
/// `virt-ssh-helper`.
pub fn remote_command(
    proxy: Proxy,
    netcat: Option<&str>,
    socket: &str,
    helper_uri: &str,
    read_only: bool,
) -> Result<String, Error> {
    let proxy = match (proxy, netcat) {
        (Proxy::Auto, Some(_)) => Proxy::Netcat,
        (Proxy::Native, Some(nc)) => {
            return Err(Error::InvalidParam {
                name: "netcat".to_owned(),
                value: nc.to_owned(),
                reason: "netcat= cannot be used with proxy=native".to_owned(),
            })
        }
        (p, _) => p,
    };
    let nc = spliced(netcat.unwrap_or("nc"));
    // Debian's and SUSE's netcat need `-q0` to exit when stdin closes; detect whether this
    // netcat has `-q` (it then complains that the option needs an argument).
    let nc_cmd = format!(
        "if {nc} -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; then ARG=-q0; \
         else ARG=; fi; {nc} $ARG -U {}",
        spliced(socket)
    );
    let helper = format!(
        "virt-ssh-helper {}{}",
        if read_only { "-r " } else { "" },
        spliced(helper_uri)
    );
    Ok(match proxy {
        Proxy::Netcat => format!("sh -c '{nc_cmd}'"),
        Proxy::Native => format!("sh -c '{helper}'"),
        Proxy::Auto => format!(
            "sh -c 'if which virt-ssh-helper >/dev/null 2>&1; then {helper}; else {nc_cmd}; fi'"
        ),
    })
}

/// The ssh command line for an `ssh` URI.
pub fn ssh_command(uri: &Uri, read_only: bool, env: &LocalEnv) -> Result<CommandSpec, Error> {
    let r = uri.remote();
    let socket = uri.unix_socket_in(env, read_only, |_| false)?.path;
    let proxy = r.proxy.unwrap_or(if r.socket.is_some() {
        Proxy::Netcat
    } else if uri.wants_session_daemon(env.euid_is_root) {
        Proxy::Native
    } else {
        Proxy::Auto
    });
    let remote = remote_command(
        proxy,
        r.netcat.as_deref(),
        &socket.to_string_lossy(),
        &uri.ssh_helper_uri(),
        read_only,
    )?;
    let mut args = Vec::new();
    if let Some(p) = uri.port() {
        args.extend(["-p".to_owned(), p.to_string()]);
    }
    if let Some(u) = uri.user() {
        args.extend(["-l".to_owned(), u.to_owned()]);
    }
    if let Some(k) = &r.keyfile {
        args.extend(["-i".to_owned(), k.to_string_lossy().into_owned()]);
    }
    args.extend(["-T", "-e", "none"].map(String::from));
    if r.no_tty {
        args.extend(["-o", "BatchMode=yes"].map(String::from));
    }
    if r.no_verify {
        args.extend(["-o", "StrictHostKeyChecking=no"].map(String::from));
    }
    args.push("--".to_owned());
    args.push(uri.host_or_localhost().to_owned());
    args.push(remote);
    Ok(CommandSpec {
        program: r.command.clone().unwrap_or_else(|| "ssh".to_owned()),
        args,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;

    fn env(root: bool) -> LocalEnv {
        LocalEnv::new(root, PathBuf::from("/run/user/1000/libvirt"))
    }

    fn cmd(uri: &str, ro: bool, root: bool) -> CommandSpec {
        ssh_command(&Uri::parse(uri).unwrap(), ro, &env(root)).unwrap()
    }

    #[test]
    fn escape() {
        assert_eq!(shell_escape("nc"), "nc");
        assert_eq!(shell_escape("/usr/bin/nc"), "/usr/bin/nc");
        assert_eq!(shell_escape(""), "''");
        assert_eq!(shell_escape("a b"), "'a b'");
        assert_eq!(shell_escape("it's"), "'it'\\''s'");
    }

    #[test]
    fn full_command_line() {
        let c = cmd(
            "qemu+ssh://root@node:2222/system?keyfile=/k&no_tty=1&no_verify=1&netcat=/opt/nc&socket=/s",
            false,
            false,
        );
        assert_eq!(c.program, "ssh");
        assert_eq!(
            c.args[..13],
            [
                "-p",
                "2222",
                "-l",
                "root",
                "-i",
                "/k",
                "-T",
                "-e",
                "none",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no"
            ]
        );
        assert_eq!(c.args[13..15], ["--", "node"]);
        assert_eq!(
            c.args[15],
            "sh -c 'if '/opt/nc' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; \
             then ARG=-q0; else ARG=; fi; '/opt/nc' $ARG -U '/s''"
        );
        assert_eq!(c.args.len(), 16);
    }

    #[test]
    fn minimal_and_command_override() {
        let c = cmd("qemu+ssh://node/system?command=/opt/ssh", false, false);
        assert_eq!(c.program, "/opt/ssh");
        assert_eq!(c.args[..5], ["-T", "-e", "none", "--", "node"]);
        // system URI without socket: auto proxy, helper first, netcat on the legacy socket
        assert!(c.args[5].starts_with("sh -c 'if which virt-ssh-helper"));
        assert!(c.args[5].contains("virt-ssh-helper 'qemu:///system'"));
        assert!(c.args[5].contains("-U '/var/run/libvirt/libvirt-sock'"));
        let c = cmd("qemu+ssh:///system", false, false);
        assert_eq!(c.args[3..5], ["--", "localhost"]);
    }

    #[test]
    fn proxy_choice() {
        // session (non-root) => native helper
        let c = cmd("qemu+ssh://h/session", true, false);
        assert_eq!(
            c.args.last().unwrap(),
            "sh -c 'virt-ssh-helper -r 'qemu:///session''"
        );
        // read-only system => -ro socket for netcat
        let c = cmd("qemu+ssh://h/system?proxy=netcat", true, false);
        assert!(c
            .args
            .last()
            .unwrap()
            .contains("-U '/var/run/libvirt/libvirt-sock-ro'"));
        // the helper URI keeps mode/socket and passes other params
        let c = cmd(
            "qemu+ssh://h/system?proxy=native&mode=legacy&x=1",
            false,
            false,
        );
        assert_eq!(
            run_with_fakes(c.args.last().unwrap()),
            "helper:<qemu:///system?mode=legacy&x=1>"
        );
        let c = cmd("qemu+ssh://h/system?proxy=auto", true, false);
        assert_eq!(
            run_with_fakes(c.args.last().unwrap()),
            "helper:<-r><qemu:///system>"
        );
        let e = ssh_command(
            &Uri::parse("qemu+ssh://h/system?proxy=native&netcat=nc").unwrap(),
            false,
            &env(false),
        );
        assert!(matches!(e, Err(Error::InvalidParam { .. })));
        let e = ssh_command(
            &Uri::parse("qemu+ssh://h/system?mode=direct").unwrap(),
            false,
            &env(false),
        );
        assert!(matches!(e, Err(Error::Unsupported { .. })));
    }

    /// Run a remote command through `sh -c` (standing in for the remote login shell) with a
    /// fake `virt-ssh-helper` on PATH that prints its arguments.
    fn run_with_fakes(script: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("virt-ssh-helper");
        std::fs::write(
            &helper,
            "#!/bin/sh\nprintf helper:\nfor a in \"$@\"; do printf '<%s>' \"$a\"; done\n",
        )
        .unwrap();
        let mut perm = std::fs::metadata(&helper).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&helper, perm).unwrap();
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("PATH", path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The remote command survives two rounds of shell parsing with awkward paths: run it
    /// through `sh -c` (standing in for the remote login shell) with a fake `nc` that prints
    /// its arguments.
    #[test]
    fn remote_command_quoting_survives_the_shells() {
        let dir = tempfile::tempdir().unwrap();
        let nc = dir.path().join("my nc's");
        std::fs::write(
            &nc,
            "#!/bin/sh\nfor a in \"$@\"; do printf '<%s>' \"$a\"; done\n",
        )
        .unwrap();
        let mut perm = std::fs::metadata(&nc).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&nc, perm).unwrap();
        let script = remote_command(
            Proxy::Netcat,
            Some(nc.to_str().unwrap()),
            "/tmp/a b/it's;$x",
            "unused",
            false,
        )
        .unwrap();
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        // `-q` probe output goes to grep; the real call gets the socket as one word
        assert!(
            stdout.ends_with("<-U></tmp/a b/it's;$x>"),
            "{stdout:?} from {script}"
        );
    }
}
