//! The device extension point: anything that turns into a few QEMU options, declares ids and
//! refers to others. Built-in kinds live in [`crate::devices`]; a new kind is a new type
//! implementing [`Device`] (and [`ParseDevice`] to be read back), registered with
//! [`Parsers::register`] — the core does not change.

use crate::config::QemuConfig;
use crate::error::Result;
use crate::opt::Opt;
use std::any::Any;
use std::fmt;

/// The id namespaces QEMU keeps apart. A device may declare ids in some and refer to ids in
/// others; [`QemuConfig::validate`] checks both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Namespace {
    /// qdev ids (`-device id=`).
    Device,
    /// Block node names (`-blockdev node-name=`).
    Node,
    /// Character devices (`-chardev id=`).
    Chardev,
    /// Network backends (`-netdev id=`).
    Netdev,
    /// QOM objects (`-object id=`): memory backends, rng backends, iothreads, ...
    Object,
    /// 9p filesystem backends (`-fsdev id=`).
    Fsdev,
    /// Firmware configuration file names (`-fw_cfg name=`): QEMU refuses a name given twice
    /// ("duplicate fw_cfg file name").
    FwCfg,
    /// Buses devices plug into (`bus=`), by kind: `pcie.0` or a root port's id (PCI),
    /// `scsi0.0` (SCSI), `ide.0` (IDE), `vser0.0` (virtio-serial), `isa.0` (ISA).
    Bus(BusKind),
}

/// What plugs into a bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BusKind {
    /// PCI or PCI Express (root bus, bridges, root ports).
    Pci,
    /// SCSI (a controller's `ID.0`).
    Scsi,
    /// IDE (`ide.N`).
    Ide,
    /// virtio-serial ports (`ID.0`).
    VirtioSerial,
    /// ISA (`isa.0` on pc and q35).
    Isa,
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Namespace::Device => "device",
            Namespace::Node => "block node",
            Namespace::Chardev => "chardev",
            Namespace::Netdev => "netdev",
            Namespace::Object => "object",
            Namespace::Fsdev => "fsdev",
            Namespace::FwCfg => "fw_cfg file name",
            Namespace::Bus(BusKind::Pci) => "PCI bus",
            Namespace::Bus(BusKind::Scsi) => "SCSI bus",
            Namespace::Bus(BusKind::Ide) => "IDE bus",
            Namespace::Bus(BusKind::VirtioSerial) => "virtio-serial bus",
            Namespace::Bus(BusKind::Isa) => "ISA bus",
        })
    }
}

/// A reference into a namespace.
pub type IdRef = (Namespace, String);

/// Object-safe plumbing every [`Device`] gets for free from `Clone + PartialEq`.
pub trait DynDevice {
    /// Clone into a box.
    fn clone_box(&self) -> Box<dyn Device>;
    /// For downcasting.
    fn as_any(&self) -> &dyn Any;
    /// Equality across trait objects (same concrete type and equal).
    fn eq_dyn(&self, other: &dyn Device) -> bool;
}

impl<T: Device + Clone + PartialEq> DynDevice for T {
    fn clone_box(&self) -> Box<dyn Device> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn eq_dyn(&self, other: &dyn Device) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }
}

/// A device (in the broad sense: anything added with `-device`, `-blockdev`, `-netdev`,
/// `-object`, `-chardev`, `-fsdev`, `-fw_cfg`, usually several of them together).
pub trait Device: DynDevice + fmt::Debug + Send + Sync + 'static {
    /// A short description for errors, e.g. ``block device `disk0` ``.
    fn describe(&self) -> String;
    /// The options this device adds, in order. Ids are checked here (typed errors).
    fn opts(&self) -> Result<Vec<Opt>>;
    /// Ids this device declares.
    fn declares(&self) -> Vec<IdRef>;
    /// Ids of other things this device needs.
    fn references(&self) -> Vec<IdRef> {
        Vec::new()
    }
    /// File descriptor numbers (as the child sees them) this device uses.
    fn fds(&self) -> Vec<i32> {
        Vec::new()
    }
    /// Checks that need the whole configuration (e.g. NVDIMM needs memory slots).
    fn check(&self, _config: &QemuConfig) -> Result<()> {
        Ok(())
    }
}

impl Clone for Box<dyn Device> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

impl PartialEq for Box<dyn Device> {
    fn eq(&self, other: &Self) -> bool {
        self.as_ref().eq_dyn(other.as_ref())
    }
}

/// A device that can be read back from the options it writes.
pub trait ParseDevice: Device + Sized {
    /// If `opts` starts with exactly what this kind writes, the number of options consumed and
    /// the device; otherwise `None` (the parser then tries other kinds, and finally keeps the
    /// option as a [`crate::devices::Generic`]). A claim counts only if the device's
    /// [`Device::opts`] write exactly the options it took (so parsing never changes the argv);
    /// otherwise the kind is asked again with fewer options, then the next kind is tried.
    fn parse(opts: &[Opt]) -> Option<(usize, Self)>;
}

type ParseFn = fn(&[Opt]) -> Option<(usize, Box<dyn Device>)>;

fn parse_boxed<T: ParseDevice>(opts: &[Opt]) -> Option<(usize, Box<dyn Device>)> {
    T::parse(opts).map(|(n, d)| (n, Box::new(d) as Box<dyn Device>))
}

/// The device kinds the parser knows, tried in order.
#[derive(Clone)]
pub struct Parsers {
    list: Vec<ParseFn>,
}

impl fmt::Debug for Parsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Parsers({} kinds)", self.list.len())
    }
}

impl Parsers {
    /// No kinds at all: every option parses as a [`crate::devices::Generic`].
    pub fn empty() -> Self {
        Parsers { list: Vec::new() }
    }

    /// Add a kind, tried before the ones already registered.
    pub fn register<T: ParseDevice>(&mut self) -> &mut Self {
        self.list.insert(0, parse_boxed::<T>);
        self
    }

    /// The first kind that claims a prefix of `opts` *and writes exactly that prefix back*
    /// (see [`writes_back`]): so parsing never changes the argv. A kind whose claim would write
    /// something else (other property order, other JSON types, a default left out) is asked
    /// again with the options before the last one it took (a [`crate::devices::Block`] then
    /// claims its nodes without a following `-device` it would rewrite), then the next kind is
    /// tried.
    pub(crate) fn parse_one(&self, opts: &[Opt]) -> Option<(usize, Box<dyn Device>)> {
        self.list.iter().find_map(|f| {
            let mut len = opts.len();
            while len > 0 {
                let (n, d) = f(&opts[..len])?;
                if n == 0 || n > len {
                    return None;
                }
                if writes_back(d.as_ref(), &opts[..n]) {
                    return Some((n, d));
                }
                len = n - 1;
            }
            None
        })
    }
}

/// Whether `d` writes exactly the options `read`, as they were written: options read from text
/// syntax (their values are [`crate::Prop::Text`]) must render to the same text, property order
/// included; options read from JSON to the same JSON (same keys, same JSON types).
pub(crate) fn writes_back(d: &dyn Device, read: &[Opt]) -> bool {
    let Ok(written) = d.opts() else {
        return false;
    };
    written.len() == read.len()
        && written.iter().zip(read).all(|(w, r)| {
            if w.flag != r.flag || w.implied != r.implied {
                return false;
            }
            let same =
                |a: Result<String>, b: Result<String>| matches!((a, b), (Ok(a), Ok(b)) if a == b);
            if r.props.iter().any(|(_, p)| p.is_untyped()) || r.props.is_empty() {
                same(w.render_text(), r.render_text())
            } else {
                same(w.render_json(), r.render_json()) && w.props.len() == r.props.len()
            }
        })
}

impl Default for Parsers {
    /// Every built-in kind of [`crate::devices`].
    fn default() -> Self {
        use crate::devices::*;
        let mut p = Parsers::empty();
        // registered in reverse priority: later registrations are tried first
        p.register::<Chardev>()
            .register::<MemoryBackend>()
            .register::<FwCfg>()
            .register::<Nvdimm>()
            .register::<Pvpanic>()
            .register::<Iommu>()
            .register::<Balloon>()
            .register::<Rng>()
            .register::<Vsock>()
            .register::<ScsiController>()
            .register::<PcieRootPort>()
            .register::<PciBridge>()
            .register::<PciePciBridge>()
            .register::<Vfio>()
            .register::<VhostUserDevice>()
            .register::<VirtPort>()
            .register::<VirtioSerial>()
            .register::<Serial>()
            .register::<VirtioFs>()
            .register::<Virtio9p>()
            .register::<Net>()
            .register::<Block>();
        p
    }
}
