//! Typed views of the elements inside `<devices>`.

use serde::{Deserialize, Serialize};

use super::error::XmlError;
use super::parts::{Schema, XmlPart};
use super::tree::Element;
use super::types::{attr_bool, attr_enum, attr_num, attr_string, invalid, string_enum, yes_no};

/// A device address (`<address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>`).
///
/// Every address kind has its own attributes, so they are kept as written; [`pci`](Self::pci)
/// reads the PCI ones as numbers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Address {
    /// `type` (`pci`, `drive`, `usb`, `virtio-serial`, `ccw`, `isa`, ...).
    pub kind: Option<String>,
    /// The other attributes in document order.
    pub attrs: Vec<(String, String)>,
}

/// A PCI address as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PciAddress {
    /// PCI domain.
    pub domain: u32,
    /// Bus.
    pub bus: u8,
    /// Slot (0..=31).
    pub slot: u8,
    /// Function (0..=7).
    pub function: u8,
}

fn parse_c_uint(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

impl Address {
    /// A PCI address.
    pub fn pci(a: PciAddress) -> Self {
        Address {
            kind: Some("pci".into()),
            attrs: vec![
                ("domain".into(), format!("0x{:04x}", a.domain)),
                ("bus".into(), format!("0x{:02x}", a.bus)),
                ("slot".into(), format!("0x{:02x}", a.slot)),
                ("function".into(), format!("0x{:x}", a.function)),
            ],
        }
    }

    /// Attribute `name` (other than `type`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The PCI address, when this is `type='pci'`; fails when a number is malformed or out of
    /// range.
    pub fn as_pci(&self) -> Result<Option<PciAddress>, XmlError> {
        if self.kind.as_deref() != Some("pci") {
            return Ok(None);
        }
        let num = |name: &str, max: u64| -> Result<u64, XmlError> {
            let v = self.get(name).unwrap_or("0");
            parse_c_uint(v).filter(|n| *n <= max).ok_or_else(|| {
                invalid(
                    &format!("address@{name}"),
                    v,
                    &format!("expected a number up to {max:#x}"),
                )
            })
        };
        Ok(Some(PciAddress {
            domain: num("domain", 0xffff_ffff)? as u32,
            bus: num("bus", 0xff)? as u8,
            slot: num("slot", 0x1f)? as u8,
            function: num("function", 7)? as u8,
        }))
    }

    fn read(e: &Element) -> Address {
        Address {
            kind: attr_string(e, "type"),
            attrs: e
                .attrs
                .iter()
                .filter(|(k, _)| k != "type")
                .cloned()
                .collect(),
        }
    }

    fn write(&self) -> Element {
        let mut e = Element::new("address").with_opt_attr("type", self.kind.as_ref());
        e.attrs.extend(self.attrs.iter().cloned());
        e
    }
}

fn text_child(name: &str, v: &Option<String>) -> Option<Element> {
    v.as_ref().map(|v| Element::new(name).with_text(v.clone()))
}

string_enum! {
    /// `<disk type='...'>`: where the disk's data lives.
    DiskType { File => "file", Block => "block", Dir => "dir", Network => "network", Volume => "volume", Nvme => "nvme", VhostUser => "vhostuser" }
}

string_enum! {
    /// `<disk device='...'>`: what the guest sees.
    DiskDevice { Disk => "disk", Cdrom => "cdrom", Floppy => "floppy", Lun => "lun" }
}

string_enum! {
    /// `<target bus='...'>` of a disk.
    DiskBus { Virtio => "virtio", Ide => "ide", Scsi => "scsi", Sata => "sata", Usb => "usb", Fdc => "fdc", Xen => "xen", Sd => "sd" }
}

/// `<driver name='qemu' type='qcow2' cache='none' io='native' discard='unmap'/>` of a disk.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DiskDriver {
    /// `name` (`qemu`).
    pub name: Option<String>,
    /// `type`: the image format (`raw`, `qcow2`).
    pub format: Option<String>,
    /// `cache` (`none`, `writeback`, `writethrough`, `directsync`, `unsafe`).
    pub cache: Option<String>,
    /// `io` (`threads`, `native`, `io_uring`).
    pub io: Option<String>,
    /// `discard` (`unmap`, `ignore`).
    pub discard: Option<String>,
}

/// `<source .../>` of a disk: which of the fields is set depends on the disk type.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DiskSource {
    /// `file` (type `file`).
    pub file: Option<String>,
    /// `dev` (type `block`).
    pub dev: Option<String>,
    /// `dir` (type `dir`).
    pub dir: Option<String>,
    /// `pool` (type `volume`).
    pub pool: Option<String>,
    /// `volume` (type `volume`).
    pub volume: Option<String>,
    /// `protocol` (type `network`: `nbd`, `rbd`, `iscsi`, ...).
    pub protocol: Option<String>,
    /// `name` (type `network`).
    pub name: Option<String>,
}

/// `<disk>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Disk {
    /// `type`.
    pub kind: Option<DiskType>,
    /// `device`.
    pub device: Option<DiskDevice>,
    /// `<driver>`.
    pub driver: Option<DiskDriver>,
    /// `<source>`.
    pub source: Option<DiskSource>,
    /// `<target dev='...'>` (`vda`, `sda`, `hdc`).
    pub target_dev: Option<String>,
    /// `<target bus='...'>`.
    pub target_bus: Option<DiskBus>,
    /// `<readonly/>` present.
    pub readonly: bool,
    /// `<shareable/>` present.
    pub shareable: bool,
    /// `<serial>`.
    pub serial: Option<String>,
    /// `<boot order='...'/>`.
    pub boot_order: Option<u32>,
    /// `<address>`.
    pub address: Option<Address>,
}

impl Disk {
    /// A `file` disk backed by `path`, seen as `target_dev` on `bus`.
    pub fn file(path: impl Into<String>, target_dev: impl Into<String>, bus: DiskBus) -> Self {
        Disk {
            kind: Some(DiskType::File),
            device: Some(DiskDevice::Disk),
            source: Some(DiskSource {
                file: Some(path.into()),
                ..Default::default()
            }),
            target_dev: Some(target_dev.into()),
            target_bus: Some(bus),
            ..Default::default()
        }
    }
}

impl XmlPart for Disk {
    const ELEMENT: &'static str = "disk";
    const SCHEMA: Schema = Schema {
        attrs: &["type", "device"],
        text: false,
        children: &[
            (
                "driver",
                Schema::attrs(&["name", "type", "cache", "io", "discard"]),
            ),
            (
                "source",
                Schema::attrs(&["file", "dev", "dir", "pool", "volume", "protocol", "name"]),
            ),
            ("target", Schema::attrs(&["dev", "bus"])),
            ("readonly", Schema::attrs(&[])),
            ("shareable", Schema::attrs(&[])),
            ("serial", Schema::text(&[])),
            ("boot", Schema::attrs(&["order"])),
            ("address", ADDRESS),
        ],
    };

    fn from_element(e: &Element) -> Result<Self, XmlError> {
        let target = e.child("target");
        Ok(Disk {
            kind: attr_enum(e, "type"),
            device: attr_enum(e, "device"),
            driver: e.child("driver").map(|d| DiskDriver {
                name: attr_string(d, "name"),
                format: attr_string(d, "type"),
                cache: attr_string(d, "cache"),
                io: attr_string(d, "io"),
                discard: attr_string(d, "discard"),
            }),
            source: e.child("source").map(|s| DiskSource {
                file: attr_string(s, "file"),
                dev: attr_string(s, "dev"),
                dir: attr_string(s, "dir"),
                pool: attr_string(s, "pool"),
                volume: attr_string(s, "volume"),
                protocol: attr_string(s, "protocol"),
                name: attr_string(s, "name"),
            }),
            target_dev: target.and_then(|t| attr_string(t, "dev")),
            target_bus: target.and_then(|t| attr_enum(t, "bus")),
            readonly: e.child("readonly").is_some(),
            shareable: e.child("shareable").is_some(),
            serial: e.child_text("serial"),
            boot_order: match e.child("boot") {
                Some(b) => attr_num(b, "order")?,
                None => None,
            },
            address: e.child("address").map(Address::read),
        })
    }

    fn to_element(&self) -> Element {
        let driver = self.driver.as_ref().map(|d| {
            Element::new("driver")
                .with_opt_attr("name", d.name.as_ref())
                .with_opt_attr("type", d.format.as_ref())
                .with_opt_attr("cache", d.cache.as_ref())
                .with_opt_attr("io", d.io.as_ref())
                .with_opt_attr("discard", d.discard.as_ref())
        });
        let source = self.source.as_ref().map(|s| {
            Element::new("source")
                .with_opt_attr("protocol", s.protocol.as_ref())
                .with_opt_attr("name", s.name.as_ref())
                .with_opt_attr("file", s.file.as_ref())
                .with_opt_attr("dev", s.dev.as_ref())
                .with_opt_attr("dir", s.dir.as_ref())
                .with_opt_attr("pool", s.pool.as_ref())
                .with_opt_attr("volume", s.volume.as_ref())
        });
        let target = (self.target_dev.is_some() || self.target_bus.is_some()).then(|| {
            Element::new("target")
                .with_opt_attr("dev", self.target_dev.as_ref())
                .with_opt_attr("bus", self.target_bus.as_ref())
        });
        Element::new("disk")
            .with_opt_attr("type", self.kind.as_ref())
            .with_opt_attr("device", self.device.as_ref())
            .with_opt_child(driver)
            .with_opt_child(source)
            .with_opt_child(target)
            .with_opt_child(self.readonly.then(|| Element::new("readonly")))
            .with_opt_child(self.shareable.then(|| Element::new("shareable")))
            .with_opt_child(text_child("serial", &self.serial))
            .with_opt_child(
                self.boot_order
                    .map(|o| Element::new("boot").with_attr("order", o.to_string())),
            )
            .with_opt_child(self.address.as_ref().map(Address::write))
    }
}

string_enum! {
    /// `<interface type='...'>`.
    InterfaceType { Network => "network", Bridge => "bridge", User => "user", Ethernet => "ethernet", Direct => "direct", Hostdev => "hostdev", Vhostuser => "vhostuser", Mcast => "mcast", Server => "server", Client => "client", Udp => "udp", Null => "null", Vdpa => "vdpa" }
}

/// `<source .../>` of an interface.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InterfaceSource {
    /// `network` (type `network`).
    pub network: Option<String>,
    /// `bridge` (type `bridge`).
    pub bridge: Option<String>,
    /// `dev` (type `direct`).
    pub dev: Option<String>,
    /// `mode` (type `direct`: `vepa`, `bridge`, `private`, `passthrough`).
    pub mode: Option<String>,
}

/// `<interface>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Interface {
    /// `type`.
    pub kind: Option<InterfaceType>,
    /// `<mac address='...'/>`.
    pub mac: Option<String>,
    /// `<source>`.
    pub source: Option<InterfaceSource>,
    /// `<model type='...'/>` (`virtio`, `e1000`, `rtl8139`).
    pub model: Option<String>,
    /// `<target dev='...'/>`: the host-side device name.
    pub target_dev: Option<String>,
    /// `<address>`.
    pub address: Option<Address>,
}

impl XmlPart for Interface {
    const ELEMENT: &'static str = "interface";
    const SCHEMA: Schema = Schema {
        attrs: &["type"],
        text: false,
        children: &[
            ("mac", Schema::attrs(&["address"])),
            (
                "source",
                Schema::attrs(&["network", "bridge", "dev", "mode"]),
            ),
            ("model", Schema::attrs(&["type"])),
            ("target", Schema::attrs(&["dev"])),
            ("address", ADDRESS),
        ],
    };

    fn from_element(e: &Element) -> Result<Self, XmlError> {
        Ok(Interface {
            kind: attr_enum(e, "type"),
            mac: e.child("mac").and_then(|m| attr_string(m, "address")),
            source: e.child("source").map(|s| InterfaceSource {
                network: attr_string(s, "network"),
                bridge: attr_string(s, "bridge"),
                dev: attr_string(s, "dev"),
                mode: attr_string(s, "mode"),
            }),
            model: e.child("model").and_then(|m| attr_string(m, "type")),
            target_dev: e.child("target").and_then(|t| attr_string(t, "dev")),
            address: e.child("address").map(Address::read),
        })
    }

    fn to_element(&self) -> Element {
        Element::new("interface")
            .with_opt_attr("type", self.kind.as_ref())
            .with_opt_child(
                self.mac
                    .as_ref()
                    .map(|m| Element::new("mac").with_attr("address", m.clone())),
            )
            .with_opt_child(self.source.as_ref().map(|s| {
                Element::new("source")
                    .with_opt_attr("network", s.network.as_ref())
                    .with_opt_attr("bridge", s.bridge.as_ref())
                    .with_opt_attr("dev", s.dev.as_ref())
                    .with_opt_attr("mode", s.mode.as_ref())
            }))
            .with_opt_child(
                self.target_dev
                    .as_ref()
                    .map(|t| Element::new("target").with_attr("dev", t.clone())),
            )
            .with_opt_child(
                self.model
                    .as_ref()
                    .map(|m| Element::new("model").with_attr("type", m.clone())),
            )
            .with_opt_child(self.address.as_ref().map(Address::write))
    }
}

/// `<serial>`, `<console>`, `<channel>` (and `<parallel>`): a character device.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CharDevice {
    /// `type` (`pty`, `file`, `unix`, `tcp`, `spicevmc`, `null`, ...).
    pub kind: Option<String>,
    /// `tty` attribute libvirt adds to running pty devices.
    pub tty: Option<String>,
    /// `<source path='...'>`.
    pub source_path: Option<String>,
    /// `<source mode='...'>` (`bind`, `connect`).
    pub source_mode: Option<String>,
    /// `<target type='...'>` (`isa-serial`, `serial`, `virtio`, `guestfwd`).
    pub target_type: Option<String>,
    /// `<target port='...'>`.
    pub target_port: Option<u32>,
    /// `<target name='...'>` (channels: `org.qemu.guest_agent.0`).
    pub target_name: Option<String>,
    /// `<address>`.
    pub address: Option<Address>,
}

impl CharDevice {
    /// A `pty` device with nothing else set.
    pub fn pty() -> Self {
        CharDevice {
            kind: Some("pty".into()),
            ..Default::default()
        }
    }

    fn read(e: &Element) -> Result<Self, XmlError> {
        let target = e.child("target");
        Ok(CharDevice {
            kind: attr_string(e, "type"),
            tty: attr_string(e, "tty"),
            source_path: e.child("source").and_then(|s| attr_string(s, "path")),
            source_mode: e.child("source").and_then(|s| attr_string(s, "mode")),
            target_type: target.and_then(|t| attr_string(t, "type")),
            target_port: match target {
                Some(t) => attr_num(t, "port")?,
                None => None,
            },
            target_name: target.and_then(|t| attr_string(t, "name")),
            address: e.child("address").map(Address::read),
        })
    }

    fn write(&self, name: &str) -> Element {
        let source = (self.source_path.is_some() || self.source_mode.is_some()).then(|| {
            Element::new("source")
                .with_opt_attr("mode", self.source_mode.as_ref())
                .with_opt_attr("path", self.source_path.as_ref())
        });
        let target = (self.target_type.is_some()
            || self.target_port.is_some()
            || self.target_name.is_some())
        .then(|| {
            Element::new("target")
                .with_opt_attr("type", self.target_type.as_ref())
                .with_opt_attr("name", self.target_name.as_ref())
                .with_opt_attr("port", self.target_port)
        });
        Element::new(name)
            .with_opt_attr("type", self.kind.as_ref())
            .with_opt_attr("tty", self.tty.as_ref())
            .with_opt_child(source)
            .with_opt_child(target)
            .with_opt_child(self.address.as_ref().map(Address::write))
    }
}

const CHAR_SCHEMA: Schema = Schema {
    attrs: &["type", "tty"],
    text: false,
    children: &[
        ("source", Schema::attrs(&["path", "mode"])),
        ("target", Schema::attrs(&["type", "port", "name"])),
        ("address", ADDRESS),
    ],
};

/// An `<address>` is modelled whole: every attribute is kept in [`Address::attrs`].
const ADDRESS: Schema = Schema::attrs(&["*"]);

/// `<graphics>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Graphics {
    /// `type` (`vnc`, `spice`, `sdl`, `rdp`, `dbus`, `egl-headless`).
    pub kind: Option<String>,
    /// `port` (`-1` for autoport).
    pub port: Option<i32>,
    /// `autoport`.
    pub autoport: Option<bool>,
    /// `listen` attribute.
    pub listen: Option<String>,
}

/// `<video>` (its `<model>` child).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Video {
    /// `<model type='...'>` (`vga`, `cirrus`, `virtio`, `qxl`, `none`).
    pub model: Option<String>,
    /// `<model vram='...'>` in KiB.
    pub vram: Option<u32>,
    /// `<model heads='...'>`.
    pub heads: Option<u32>,
    /// `<model primary='yes'>`.
    pub primary: Option<bool>,
    /// `<address>`.
    pub address: Option<Address>,
}

/// `<input>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Input {
    /// `type` (`mouse`, `keyboard`, `tablet`, `passthrough`, `evdev`).
    pub kind: Option<String>,
    /// `bus` (`ps2`, `usb`, `virtio`, `xen`).
    pub bus: Option<String>,
    /// `<address>`.
    pub address: Option<Address>,
}

/// `<controller>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Controller {
    /// `type` (`pci`, `usb`, `ide`, `sata`, `scsi`, `virtio-serial`, ...).
    pub kind: Option<String>,
    /// `index`.
    pub index: Option<u32>,
    /// `model` (`pci-root`, `pcie-root`, `piix3-uhci`, `virtio-scsi`, ...).
    pub model: Option<String>,
    /// `<address>`.
    pub address: Option<Address>,
}

/// `<memballoon>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemBalloon {
    /// `model` (`virtio`, `none`, `xen`).
    pub model: Option<String>,
    /// `autodeflate` (written `on`/`off` as libvirt does).
    pub autodeflate: Option<bool>,
    /// `<stats period='...'/>` in seconds.
    pub stats_period: Option<u32>,
    /// `<address>`.
    pub address: Option<Address>,
}

/// `<rng>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rng {
    /// `model` (`virtio`).
    pub model: Option<String>,
    /// `<backend model='...'>` (`random`, `egd`, `builtin`).
    pub backend_model: Option<String>,
    /// `<backend>` text (the host source, e.g. `/dev/urandom`).
    pub backend: Option<String>,
    /// `<address>`.
    pub address: Option<Address>,
}

/// `<hostdev>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostDev {
    /// `mode` (`subsystem`, `capabilities`).
    pub mode: Option<String>,
    /// `type` (`pci`, `usb`, `scsi`, `scsi_host`, `mdev`).
    pub kind: Option<String>,
    /// `managed`.
    pub managed: Option<bool>,
    /// `<source><address .../></source>`: the host device's address.
    pub source_address: Option<Address>,
    /// `<address>`: the address in the guest.
    pub address: Option<Address>,
}

/// `<filesystem>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Filesystem {
    /// `type` (`mount`, `file`, `block`, `ram`, ...).
    pub kind: Option<String>,
    /// `accessmode` (`passthrough`, `mapped`, `squash`).
    pub access_mode: Option<String>,
    /// `<driver type='...'>` (`path`, `virtiofs`, `loop`).
    pub driver_type: Option<String>,
    /// `<source dir='...'>` (or `file`/`dev`, whichever is set).
    pub source: Option<String>,
    /// `<target dir='...'>`: the mount tag.
    pub target_dir: Option<String>,
    /// `<readonly/>` present.
    pub readonly: bool,
    /// `<address>`.
    pub address: Option<Address>,
}

/// `<tpm>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tpm {
    /// `model` (`tpm-tis`, `tpm-crb`, `spapr-tpm-proxy`).
    pub model: Option<String>,
    /// `<backend type='...'>` (`passthrough`, `emulator`, `external`).
    pub backend_type: Option<String>,
    /// `<backend version='...'>` (`1.2`, `2.0`).
    pub backend_version: Option<String>,
}

/// `<watchdog>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Watchdog {
    /// `model` (`i6300esb`, `ib700`, `itco`, `diag288`).
    pub model: Option<String>,
    /// `action` (`reset`, `shutdown`, `poweroff`, `pause`, `none`, `dump`, `inject-nmi`).
    pub action: Option<String>,
    /// `<address>`.
    pub address: Option<Address>,
}

macro_rules! simple_part {
    ($ty:ident, $el:literal, $schema:expr) => {
        impl XmlPart for $ty {
            const ELEMENT: &'static str = $el;
            const SCHEMA: Schema = $schema;
            fn from_element(e: &Element) -> Result<Self, XmlError> {
                $ty::read(e)
            }
            fn to_element(&self) -> Element {
                self.write()
            }
        }
    };
}

fn address_of(e: &Element) -> Option<Address> {
    e.child("address").map(Address::read)
}

impl Graphics {
    fn read(e: &Element) -> Result<Self, XmlError> {
        Ok(Graphics {
            kind: attr_string(e, "type"),
            port: attr_num(e, "port")?,
            autoport: attr_bool(e, "autoport")?,
            listen: attr_string(e, "listen"),
        })
    }
    fn write(&self) -> Element {
        Element::new("graphics")
            .with_opt_attr("type", self.kind.as_ref())
            .with_opt_attr("port", self.port)
            .with_opt_attr("autoport", self.autoport.map(yes_no))
            .with_opt_attr("listen", self.listen.as_ref())
    }
}
simple_part!(
    Graphics,
    "graphics",
    Schema::attrs(&["type", "port", "autoport", "listen"])
);

impl Video {
    fn read(e: &Element) -> Result<Self, XmlError> {
        let m = e.child("model");
        Ok(Video {
            model: m.and_then(|m| attr_string(m, "type")),
            vram: match m {
                Some(m) => attr_num(m, "vram")?,
                None => None,
            },
            heads: match m {
                Some(m) => attr_num(m, "heads")?,
                None => None,
            },
            primary: match m {
                Some(m) => attr_bool(m, "primary")?,
                None => None,
            },
            address: address_of(e),
        })
    }
    fn write(&self) -> Element {
        let model = (self.model.is_some()
            || self.vram.is_some()
            || self.heads.is_some()
            || self.primary.is_some())
        .then(|| {
            Element::new("model")
                .with_opt_attr("type", self.model.as_ref())
                .with_opt_attr("vram", self.vram)
                .with_opt_attr("heads", self.heads)
                .with_opt_attr("primary", self.primary.map(yes_no))
        });
        Element::new("video")
            .with_opt_child(model)
            .with_opt_child(self.address.as_ref().map(Address::write))
    }
}
simple_part!(
    Video,
    "video",
    Schema {
        attrs: &[],
        text: false,
        children: &[
            (
                "model",
                Schema::attrs(&["type", "vram", "heads", "primary"])
            ),
            ("address", ADDRESS)
        ]
    }
);

impl Input {
    fn read(e: &Element) -> Result<Self, XmlError> {
        Ok(Input {
            kind: attr_string(e, "type"),
            bus: attr_string(e, "bus"),
            address: address_of(e),
        })
    }
    fn write(&self) -> Element {
        Element::new("input")
            .with_opt_attr("type", self.kind.as_ref())
            .with_opt_attr("bus", self.bus.as_ref())
            .with_opt_child(self.address.as_ref().map(Address::write))
    }
}
simple_part!(
    Input,
    "input",
    Schema {
        attrs: &["type", "bus"],
        text: false,
        children: &[("address", ADDRESS)]
    }
);

impl Controller {
    fn read(e: &Element) -> Result<Self, XmlError> {
        Ok(Controller {
            kind: attr_string(e, "type"),
            index: attr_num(e, "index")?,
            model: attr_string(e, "model"),
            address: address_of(e),
        })
    }
    fn write(&self) -> Element {
        Element::new("controller")
            .with_opt_attr("type", self.kind.as_ref())
            .with_opt_attr("index", self.index)
            .with_opt_attr("model", self.model.as_ref())
            .with_opt_child(self.address.as_ref().map(Address::write))
    }
}
simple_part!(
    Controller,
    "controller",
    Schema {
        attrs: &["type", "index", "model"],
        text: false,
        children: &[("address", ADDRESS)]
    }
);

impl MemBalloon {
    fn read(e: &Element) -> Result<Self, XmlError> {
        Ok(MemBalloon {
            model: attr_string(e, "model"),
            autodeflate: attr_bool(e, "autodeflate")?,
            stats_period: match e.child("stats") {
                Some(s) => attr_num(s, "period")?,
                None => None,
            },
            address: address_of(e),
        })
    }
    fn write(&self) -> Element {
        Element::new("memballoon")
            .with_opt_attr("model", self.model.as_ref())
            .with_opt_attr(
                "autodeflate",
                self.autodeflate.map(|b| if b { "on" } else { "off" }),
            )
            .with_opt_child(
                self.stats_period
                    .map(|p| Element::new("stats").with_attr("period", p.to_string())),
            )
            .with_opt_child(self.address.as_ref().map(Address::write))
    }
}
simple_part!(
    MemBalloon,
    "memballoon",
    Schema {
        attrs: &["model", "autodeflate"],
        text: false,
        children: &[("stats", Schema::attrs(&["period"])), ("address", ADDRESS)]
    }
);

impl Rng {
    fn read(e: &Element) -> Result<Self, XmlError> {
        let b = e.child("backend");
        Ok(Rng {
            model: attr_string(e, "model"),
            backend_model: b.and_then(|b| attr_string(b, "model")),
            backend: b.map(Element::text).filter(|t| !t.is_empty()),
            address: address_of(e),
        })
    }
    fn write(&self) -> Element {
        let backend = (self.backend_model.is_some() || self.backend.is_some()).then(|| {
            let b = Element::new("backend").with_opt_attr("model", self.backend_model.as_ref());
            match &self.backend {
                Some(t) => b.with_text(t.clone()),
                None => b,
            }
        });
        Element::new("rng")
            .with_opt_attr("model", self.model.as_ref())
            .with_opt_child(backend)
            .with_opt_child(self.address.as_ref().map(Address::write))
    }
}
simple_part!(
    Rng,
    "rng",
    Schema {
        attrs: &["model"],
        text: false,
        children: &[("backend", Schema::text(&["model"])), ("address", ADDRESS)]
    }
);

impl HostDev {
    fn read(e: &Element) -> Result<Self, XmlError> {
        Ok(HostDev {
            mode: attr_string(e, "mode"),
            kind: attr_string(e, "type"),
            managed: attr_bool(e, "managed")?,
            source_address: e.child("source").and_then(address_of),
            address: address_of(e),
        })
    }
    fn write(&self) -> Element {
        Element::new("hostdev")
            .with_opt_attr("mode", self.mode.as_ref())
            .with_opt_attr("type", self.kind.as_ref())
            .with_opt_attr("managed", self.managed.map(yes_no))
            .with_opt_child(
                self.source_address
                    .as_ref()
                    .map(|a| Element::new("source").with_child(a.write())),
            )
            .with_opt_child(self.address.as_ref().map(Address::write))
    }
}
simple_part!(
    HostDev,
    "hostdev",
    Schema {
        attrs: &["mode", "type", "managed"],
        text: false,
        children: &[
            (
                "source",
                Schema {
                    attrs: &[],
                    text: false,
                    children: &[("address", ADDRESS)]
                }
            ),
            ("address", ADDRESS)
        ]
    }
);

impl Filesystem {
    fn read(e: &Element) -> Result<Self, XmlError> {
        let src = e.child("source");
        Ok(Filesystem {
            kind: attr_string(e, "type"),
            access_mode: attr_string(e, "accessmode"),
            driver_type: e.child("driver").and_then(|d| attr_string(d, "type")),
            source: src.and_then(|s| {
                ["dir", "file", "dev", "name", "socket"]
                    .iter()
                    .find_map(|k| attr_string(s, k))
            }),
            target_dir: e.child("target").and_then(|t| attr_string(t, "dir")),
            readonly: e.child("readonly").is_some(),
            address: address_of(e),
        })
    }
    fn write(&self) -> Element {
        let src_attr = match self.kind.as_deref() {
            Some("file") => "file",
            Some("block") => "dev",
            Some("template") => "name",
            _ => "dir",
        };
        Element::new("filesystem")
            .with_opt_attr("type", self.kind.as_ref())
            .with_opt_attr("accessmode", self.access_mode.as_ref())
            .with_opt_child(
                self.driver_type
                    .as_ref()
                    .map(|d| Element::new("driver").with_attr("type", d.clone())),
            )
            .with_opt_child(
                self.source
                    .as_ref()
                    .map(|s| Element::new("source").with_attr(src_attr, s.clone())),
            )
            .with_opt_child(
                self.target_dir
                    .as_ref()
                    .map(|t| Element::new("target").with_attr("dir", t.clone())),
            )
            .with_opt_child(self.readonly.then(|| Element::new("readonly")))
            .with_opt_child(self.address.as_ref().map(Address::write))
    }
}
simple_part!(
    Filesystem,
    "filesystem",
    Schema {
        attrs: &["type", "accessmode"],
        text: false,
        children: &[
            ("driver", Schema::attrs(&["type"])),
            (
                "source",
                Schema::attrs(&["dir", "file", "dev", "name", "socket"])
            ),
            ("target", Schema::attrs(&["dir"])),
            ("readonly", Schema::attrs(&[])),
            ("address", ADDRESS),
        ]
    }
);

impl Tpm {
    fn read(e: &Element) -> Result<Self, XmlError> {
        let b = e.child("backend");
        Ok(Tpm {
            model: attr_string(e, "model"),
            backend_type: b.and_then(|b| attr_string(b, "type")),
            backend_version: b.and_then(|b| attr_string(b, "version")),
        })
    }
    fn write(&self) -> Element {
        let backend = (self.backend_type.is_some() || self.backend_version.is_some()).then(|| {
            Element::new("backend")
                .with_opt_attr("type", self.backend_type.as_ref())
                .with_opt_attr("version", self.backend_version.as_ref())
        });
        Element::new("tpm")
            .with_opt_attr("model", self.model.as_ref())
            .with_opt_child(backend)
    }
}
simple_part!(
    Tpm,
    "tpm",
    Schema {
        attrs: &["model"],
        text: false,
        children: &[("backend", Schema::attrs(&["type", "version"]))]
    }
);

impl Watchdog {
    fn read(e: &Element) -> Result<Self, XmlError> {
        Ok(Watchdog {
            model: attr_string(e, "model"),
            action: attr_string(e, "action"),
            address: address_of(e),
        })
    }
    fn write(&self) -> Element {
        Element::new("watchdog")
            .with_opt_attr("model", self.model.as_ref())
            .with_opt_attr("action", self.action.as_ref())
            .with_opt_child(self.address.as_ref().map(Address::write))
    }
}
simple_part!(
    Watchdog,
    "watchdog",
    Schema {
        attrs: &["model", "action"],
        text: false,
        children: &[("address", ADDRESS)]
    }
);

/// One element inside `<devices>`, typed when this crate models its kind.
// Devices are read and written a handful at a time, never in hot loops: a flat enum is simpler to
// match on than boxed variants.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    /// `<emulator>`: the path of the hypervisor binary.
    Emulator(String),
    /// `<disk>`.
    Disk(Disk),
    /// `<interface>`.
    Interface(Interface),
    /// `<serial>`.
    Serial(CharDevice),
    /// `<console>`.
    Console(CharDevice),
    /// `<channel>`.
    Channel(CharDevice),
    /// `<parallel>`.
    Parallel(CharDevice),
    /// `<graphics>`.
    Graphics(Graphics),
    /// `<video>`.
    Video(Video),
    /// `<input>`.
    Input(Input),
    /// `<controller>`.
    Controller(Controller),
    /// `<memballoon>`.
    MemBalloon(MemBalloon),
    /// `<rng>`.
    Rng(Rng),
    /// `<hostdev>`.
    HostDev(HostDev),
    /// `<filesystem>`.
    Filesystem(Filesystem),
    /// `<tpm>`.
    Tpm(Tpm),
    /// `<watchdog>`.
    Watchdog(Watchdog),
    /// Any other device element, kept whole.
    Other(Element),
}

impl Device {
    /// The element name this device is written as.
    pub fn element_name(&self) -> &str {
        match self {
            Device::Emulator(_) => "emulator",
            Device::Disk(_) => Disk::ELEMENT,
            Device::Interface(_) => Interface::ELEMENT,
            Device::Serial(_) => "serial",
            Device::Console(_) => "console",
            Device::Channel(_) => "channel",
            Device::Parallel(_) => "parallel",
            Device::Graphics(_) => Graphics::ELEMENT,
            Device::Video(_) => Video::ELEMENT,
            Device::Input(_) => Input::ELEMENT,
            Device::Controller(_) => Controller::ELEMENT,
            Device::MemBalloon(_) => MemBalloon::ELEMENT,
            Device::Rng(_) => Rng::ELEMENT,
            Device::HostDev(_) => HostDev::ELEMENT,
            Device::Filesystem(_) => Filesystem::ELEMENT,
            Device::Tpm(_) => Tpm::ELEMENT,
            Device::Watchdog(_) => Watchdog::ELEMENT,
            Device::Other(e) => &e.name,
        }
    }

    /// Reads a device from its element; unknown kinds become [`Device::Other`].
    pub fn from_element(e: &Element) -> Result<Device, XmlError> {
        Ok(match e.name.as_str() {
            "emulator" => Device::Emulator(e.text()),
            "disk" => Device::Disk(Disk::from_element(e)?),
            "interface" => Device::Interface(Interface::from_element(e)?),
            "serial" => Device::Serial(CharDevice::read(e)?),
            "console" => Device::Console(CharDevice::read(e)?),
            "channel" => Device::Channel(CharDevice::read(e)?),
            "parallel" => Device::Parallel(CharDevice::read(e)?),
            "graphics" => Device::Graphics(Graphics::from_element(e)?),
            "video" => Device::Video(Video::from_element(e)?),
            "input" => Device::Input(Input::from_element(e)?),
            "controller" => Device::Controller(Controller::from_element(e)?),
            "memballoon" => Device::MemBalloon(MemBalloon::from_element(e)?),
            "rng" => Device::Rng(Rng::from_element(e)?),
            "hostdev" => Device::HostDev(HostDev::from_element(e)?),
            "filesystem" => Device::Filesystem(Filesystem::from_element(e)?),
            "tpm" => Device::Tpm(Tpm::from_element(e)?),
            "watchdog" => Device::Watchdog(Watchdog::from_element(e)?),
            _ => Device::Other(e.clone()),
        })
    }

    /// Writes the device as a fresh element.
    pub fn to_element(&self) -> Element {
        match self {
            Device::Emulator(p) => Element::new("emulator").with_text(p.clone()),
            Device::Disk(d) => d.to_element(),
            Device::Interface(d) => d.to_element(),
            Device::Serial(c) => c.write("serial"),
            Device::Console(c) => c.write("console"),
            Device::Channel(c) => c.write("channel"),
            Device::Parallel(c) => c.write("parallel"),
            Device::Graphics(d) => d.to_element(),
            Device::Video(d) => d.to_element(),
            Device::Input(d) => d.to_element(),
            Device::Controller(d) => d.to_element(),
            Device::MemBalloon(d) => d.to_element(),
            Device::Rng(d) => d.to_element(),
            Device::HostDev(d) => d.to_element(),
            Device::Filesystem(d) => d.to_element(),
            Device::Tpm(d) => d.to_element(),
            Device::Watchdog(d) => d.to_element(),
            Device::Other(e) => e.clone(),
        }
    }

    /// Writes the device over `old` (an element of the same kind), keeping what the type does
    /// not model (see [`XmlPart::merge_into`]). When `old` is of another kind, the result is
    /// [`to_element`](Self::to_element).
    pub fn merge_into(&self, old: &Element) -> Element {
        if old.name != self.element_name() {
            return self.to_element();
        }
        use super::parts::merge;
        match self {
            Device::Emulator(_) => merge(old, self.to_element(), &Schema::text(&[])),
            Device::Disk(d) => d.merge_into(old),
            Device::Interface(d) => d.merge_into(old),
            Device::Serial(_) | Device::Console(_) | Device::Channel(_) | Device::Parallel(_) => {
                merge(old, self.to_element(), &CHAR_SCHEMA)
            }
            Device::Graphics(d) => d.merge_into(old),
            Device::Video(d) => d.merge_into(old),
            Device::Input(d) => d.merge_into(old),
            Device::Controller(d) => d.merge_into(old),
            Device::MemBalloon(d) => d.merge_into(old),
            Device::Rng(d) => d.merge_into(old),
            Device::HostDev(d) => d.merge_into(old),
            Device::Filesystem(d) => d.merge_into(old),
            Device::Tpm(d) => d.merge_into(old),
            Device::Watchdog(d) => d.merge_into(old),
            Device::Other(e) => e.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEVICES: &str = "<devices>\
        <emulator>/usr/bin/qemu-system-x86_64</emulator>\
        <disk type='file' device='cdrom'><driver name='qemu' type='raw' cache='none'/>\
          <source file='/iso/a b.iso' startupPolicy='optional'/><target dev='sda' bus='sata'/><readonly/>\
          <serial>S1</serial><boot order='1'/><address type='drive' controller='0' bus='0' target='0' unit='0'/></disk>\
        <disk type='volume' device='disk'><source pool='default' volume='v1'/><target dev='vdb' bus='virtio'/></disk>\
        <interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><model type='virtio'/>\
          <target dev='vnet0'/><address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/></interface>\
        <serial type='pty'><source path='/dev/pts/3'/><target type='isa-serial' port='0'><model name='isa-serial'/></target></serial>\
        <console type='pty' tty='/dev/pts/3'><source path='/dev/pts/3'/><target type='serial' port='0'/></console>\
        <channel type='unix'><source mode='bind' path='/run/ga.sock'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>\
        <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics>\
        <video><model type='vga' vram='16384' heads='1' primary='yes'/></video>\
        <input type='tablet' bus='usb'/>\
        <controller type='usb' index='0' model='piix3-uhci'/>\
        <memballoon model='virtio' autodeflate='on'><stats period='10'/></memballoon>\
        <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>\
        <hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x06' slot='0x02' function='0x0'/></source></hostdev>\
        <filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/><source dir='/srv'/><target dir='tag'/><readonly/></filesystem>\
        <tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>\
        <watchdog model='i6300esb' action='reset'/>\
        <panic model='isa'/>\
        </devices>";

    #[test]
    fn every_modelled_device_reads_and_rewrites() {
        let devices = Element::parse(DEVICES).unwrap();
        let typed: Vec<Device> = devices
            .elements()
            .map(|e| Device::from_element(e).unwrap())
            .collect();
        assert_eq!(typed.len(), 18);
        let Device::Disk(cd) = &typed[1] else {
            panic!("{:?}", typed[1])
        };
        assert_eq!(cd.device, Some(DiskDevice::Cdrom));
        assert_eq!(
            cd.source.as_ref().unwrap().file.as_deref(),
            Some("/iso/a b.iso")
        );
        assert_eq!(cd.driver.as_ref().unwrap().cache.as_deref(), Some("none"));
        assert!(cd.readonly);
        assert_eq!(cd.boot_order, Some(1));
        assert_eq!(cd.address.as_ref().unwrap().get("unit"), Some("0"));
        let Device::Interface(nic) = &typed[3] else {
            panic!()
        };
        assert_eq!(
            nic.address
                .as_ref()
                .unwrap()
                .as_pci()
                .unwrap()
                .unwrap()
                .slot,
            3
        );
        let Device::Channel(ch) = &typed[6] else {
            panic!()
        };
        assert_eq!(ch.target_name.as_deref(), Some("org.qemu.guest_agent.0"));
        assert!(matches!(&typed[17], Device::Other(e) if e.name == "panic"));
        for (d, e) in typed.iter().zip(devices.elements()) {
            // Typed -> element -> typed is stable.
            assert_eq!(
                &Device::from_element(&d.to_element()).unwrap(),
                d,
                "{}",
                e.name
            );
            // Merging the typed value back changes nothing.
            assert!(
                d.merge_into(e).canonical_eq(e),
                "{}: {:?}",
                e.name,
                d.merge_into(e).to_xml()
            );
        }
    }

    #[test]
    fn merge_keeps_unknown_device_content() {
        let old = Element::parse(
            "<disk type='file' device='disk' model='virtio-transitional'><driver name='qemu'/>\
             <source file='/a'><seclabel relabel='no'/></source><target dev='vda' bus='virtio'/>\
             <iotune><total_bytes_sec>1000</total_bytes_sec></iotune></disk>",
        )
        .unwrap();
        let Device::Disk(mut d) = Device::from_element(&old).unwrap() else {
            panic!()
        };
        d.source = Some(DiskSource {
            dev: Some("/dev/sdb".into()),
            ..Default::default()
        });
        d.kind = Some(DiskType::Block);
        let merged = Device::Disk(d.clone()).merge_into(&old);
        assert_eq!(merged.attr("model"), Some("virtio-transitional"));
        assert!(merged.child("iotune").is_some());
        assert_eq!(merged.child("source").unwrap().attr("file"), None);
        assert_eq!(Disk::from_element(&merged).unwrap(), d);
    }

    #[test]
    fn bad_numbers_are_typed_errors() {
        for bad in [
            "<disk><boot order='first'/></disk>",
            "<graphics port='x'/>",
            "<controller index='-1'/>",
            "<memballoon autodeflate='maybe'/>",
            "<serial><target port='p'/></serial>",
        ] {
            let e = Element::parse(bad).unwrap();
            assert!(
                matches!(Device::from_element(&e), Err(XmlError::InvalidValue { .. })),
                "{bad}"
            );
        }
        let a = Address {
            kind: Some("pci".into()),
            attrs: vec![("slot".into(), "0x40".into())],
        };
        assert!(a.as_pci().is_err());
        let p = PciAddress {
            domain: 0,
            bus: 1,
            slot: 2,
            function: 3,
        };
        assert_eq!(Address::pci(p).as_pci().unwrap(), Some(p));
    }
}
