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
//!   (device → bus, node, chardev, netdev, memdev, fsdev) and impossible combinations.
//! - [`Syntax`] picks JSON syntax for `-blockdev`/`-object`/`-device`/`-netdev` where the target
//!   QEMU version reads it.
//! - [`FdPlan`] passes fds at known numbers; [`Launcher`] spawns QEMU, waits for QMP and returns
//!   a [`QemuProcess`] guard that kills and reaps on drop.
//! - [`QemuConfig::parse`] reads argv back: `parse(build(c)) == c`.
//! - New device kinds implement [`Device`] (and [`ParseDevice`]); the core does not change.
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
    Smp,
};
pub use device::{BusKind, Device, DynDevice, IdRef, Namespace, ParseDevice, Parsers};
pub use error::{Error, Result};
pub use fds::FdPlan;
pub use launch::{Launcher, QemuProcess};
pub use opt::{Opt, Prop};
pub use version::{QemuVersion, Syntax};
