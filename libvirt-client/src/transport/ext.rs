//! The `ext` transport: an external program whose stdin and stdout carry the protocol.
//!
//! As in libvirt, `command=` names the program itself (it is executed directly with no
//! arguments and no shell): wrap anything more complex in a script.

use crate::transport::CommandSpec;
use crate::uri::Uri;
use crate::Error;

/// The command for an `ext` URI; `command=` is required.
pub fn ext_command(uri: &Uri) -> Result<CommandSpec, Error> {
    match uri.remote().command.as_deref() {
        Some(c) if !c.is_empty() => Ok(CommandSpec {
            program: c.to_owned(),
            args: Vec::new(),
        }),
        other => Err(Error::InvalidParam {
            name: "command".to_owned(),
            value: other.unwrap_or_default().to_owned(),
            reason: "the ext transport needs command=PROGRAM (a program run without arguments)"
                .to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_is_the_program() {
        let u = Uri::parse("qemu+ext:///system?command=%2Fusr%2Flocal%2Fbin%2Ftunnel%20x").unwrap();
        let c = ext_command(&u).unwrap();
        assert_eq!(c.program, "/usr/local/bin/tunnel x");
        assert!(c.args.is_empty());
        assert_eq!(u.remote_name(), "qemu:///system");
        assert!(ext_command(&Uri::parse("qemu+ext:///system").unwrap()).is_err());
        assert!(ext_command(&Uri::parse("qemu+ext:///system?command=").unwrap()).is_err());
    }
}
