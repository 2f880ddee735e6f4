//! Typed QEMU configuration to argv and back.
//!
//! Beside the protocol crates: this crate builds the command line a QEMU process starts with,
//! launches it, and hands the QMP socket to `qmp-client` (or anything speaking QMP). It does not
//! depend on the other crates of the stack.
//!
//! - Values are escaped by construction: every option goes through [`Opt`], whose one routine
//!   ([`opt::escape_value`]) doubles commas as QEMU's QemuOpts and keyval parsers expect;
//!   elements that cannot be escaped (implied first elements, keys, ids) are refused with a
//!   typed [`Error`].
//! - [`QemuConfig::validate`] rejects missing, malformed and duplicate ids, dangling references
//!   (device → bus, node, chardev, netdev, memdev, fsdev), devices on a bus of the wrong kind,
//!   and impossible combinations (maxcpus < cpus, an NVDIMM without slots, vhost-user without
//!   shared memory, ...). [`QemuConfig::build`] validates first: nothing is skipped silently.
//! - [`Syntax`] picks JSON syntax for `-blockdev`/`-object`/`-device`/`-netdev` where the target
//!   QEMU version reads it. Values read back from a text command line have no known type
//!   ([`Prop::Text`]); an option holding one stays in text syntax, which QEMU types itself.
//! - [`FdPlan`] passes fds at known numbers; [`Launcher`] spawns QEMU, waits until QMP answers
//!   and returns a [`QemuProcess`] guard that kills and reaps on drop.
//! - [`QemuConfig::parse`] reads argv back without changing a byte: `build(parse(a)) == a` for
//!   every argv `a` that [`QemuConfig::build`] writes (in the same [`Syntax`]; one exception
//!   on [`QemuConfig::parse`]). For configurations of typed kinds also `parse(build(c)) == c`;
//!   a [`devices::Generic`] option spelled exactly like a typed kind's is read back as that
//!   kind.
//! - New device kinds implement [`Device`] (and [`ParseDevice`]); the core does not change.
//!
//! # Building argv
//!
//! ```
//! use qemu_cmdline::devices::{Block, Format, Net, NetBackend};
//! use qemu_cmdline::{Display, Machine, Memory, QemuConfig, Syntax};
//!
//! let mut config = QemuConfig::new()
//!     .qmp("qmp0", "/run/vm/qmp.sock")
//!     .device(Block::virtio("disk0", "/images/a,b=c.qcow2", Format::Qcow2))
//!     .device(Net::virtio("nic0", NetBackend::User));
//! config.machine = Some(Machine::new("q35").accel("tcg"));
//! config.memory = Some(Memory { size_mib: 256, ..Memory::default() });
//! config.knobs.nodefaults = true;
//! config.knobs.display = Some(Display::None);
//!
//! let argv = config.build(&Syntax::TEXT)?;
//! // the comma in the path is doubled: it cannot start a new option
//! assert!(argv.contains(&"driver=file,node-name=disk0-file,filename=/images/a,,b=c.qcow2".to_string()));
//! // and the argv reads back into the same configuration
//! assert_eq!(QemuConfig::parse(&argv)?, config);
//! # Ok::<(), qemu_cmdline::Error>(())
//! ```
//!
//! # JSON syntax and typed errors
//!
//! ```
//! use qemu_cmdline::devices::{Balloon, Pci};
//! use qemu_cmdline::{Error, Namespace, QemuConfig, QemuVersion, Syntax};
//!
//! let config = QemuConfig::new()
//!     .device(Balloon { id: "balloon0".into(), deflate_on_oom: true, pci: Pci::default() });
//! let argv = config.build(&Syntax::json(QemuVersion::new(7, 2)))?;
//! assert_eq!(argv[1], r#"{"deflate-on-oom":true,"driver":"virtio-balloon-pci","id":"balloon0"}"#);
//!
//! // a reference to a bus nothing declares is an error, not a QEMU surprise
//! let bad = QemuConfig::new()
//!     .device(Balloon { id: "b".into(), deflate_on_oom: false, pci: Pci::on("bridge9") });
//! assert!(matches!(bad.validate(), Err(Error::DanglingReference { namespace: Namespace::Bus(_), .. })));
//! # Ok::<(), qemu_cmdline::Error>(())
//! ```
//!
//! # Launching with inherited fds
//!
//! ```no_run
//! use qemu_cmdline::devices::{Net, NetBackend};
//! use qemu_cmdline::{FdPlan, Launcher, Machine, QemuConfig};
//! use std::time::Duration;
//!
//! # fn open_tap() -> std::fs::File { unimplemented!() }
//! let mut fds = FdPlan::new();
//! let tap = fds.add(open_tap()); // the child sees it as fd 3
//! let mut config = QemuConfig::new()
//!     .qmp("qmp0", "/run/vm/qmp.sock")
//!     .device(Net::virtio("nic0", NetBackend::TapFds { fds: vec![tap], vhost: false, vhostfds: vec![] }));
//! config.machine = Some(Machine::new("q35").accel("kvm:tcg"));
//! config.knobs.paused = true;
//!
//! let qemu = Launcher::new("/usr/bin/qemu-system-x86_64", config)
//!     .fds(fds)
//!     .timeout(Duration::from_secs(5))
//!     .spawn()?; // QMP answered; on failure: exit status and stderr in the error
//! println!("QEMU {} listening on {:?}", qemu.pid(), qemu.qmp_paths());
//! // dropping `qemu` kills and reaps it; `qemu.detach()` lets it run on
//! # Ok::<(), qemu_cmdline::Error>(())
//! ```
//!
//! # A new device kind
//!
//! ```
//! use qemu_cmdline::{Device, IdRef, Namespace, Opt, QemuConfig, Result, Syntax};
//!
//! #[derive(Clone, Debug, PartialEq)]
//! struct Watchdog { id: String }
//!
//! impl Device for Watchdog {
//!     fn describe(&self) -> String { format!("watchdog `{}`", self.id) }
//!     fn opts(&self) -> Result<Vec<Opt>> {
//!         Ok(vec![Opt::new("-device", "i6300esb").prop("id", self.id.clone())])
//!     }
//!     fn declares(&self) -> Vec<IdRef> { vec![(Namespace::Device, self.id.clone())] }
//! }
//!
//! let argv = QemuConfig::new().device(Watchdog { id: "wd0".into() }).build(&Syntax::TEXT)?;
//! assert_eq!(argv, ["-device", "i6300esb,id=wd0"]);
//! # Ok::<(), qemu_cmdline::Error>(())
//! ```

mod config;
mod device;
pub mod devices;
mod error;
mod fds;
mod launch;
pub mod opt;
mod version;

pub use config::{
    AddFd, Cpu, Display, Global, Kernel, Knobs, Machine, Memory, Name, QemuConfig, QmpSocket, Rtc,
    Smp, MAX_PC_MEMORY_SLOTS,
};
pub use device::{BusKind, Device, DynDevice, IdRef, Namespace, ParseDevice, Parsers};
pub use error::{Error, Result};
pub use fds::{FdPlan, MAX_CHILD_FD};
pub use launch::{Launcher, QemuProcess};
pub use opt::{Opt, Prop};
pub use version::{QemuVersion, Syntax};
