//! Fuzz `qemu_cmdline::QemuConfig::parse` (argv = the input split at NUL bytes) and
//! `Opt::parse`: never a panic; whatever parses and builds is a fixed point of build ∘ parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qemu_cmdline::{Opt, QemuConfig, QemuVersion, Syntax};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let argv: Vec<&str> = text.split('\0').collect();
    if let Some(first) = argv.first() {
        for flag in ["-device", "-blockdev", "-object", "-netdev", "-chardev", "-machine"] {
            let _ = Opt::parse(flag, first);
        }
    }
    let Ok(config) = QemuConfig::parse(&argv) else { return };
    for syntax in [Syntax::TEXT, Syntax::json(QemuVersion::new(7, 2))] {
        if let Ok(built) = config.build(&syntax) {
            let again = QemuConfig::parse(&built).expect("what build writes, parse reads");
            assert_eq!(again.build(&syntax).expect("and builds again"), built);
        }
    }
});
