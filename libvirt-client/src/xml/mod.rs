//! Typed libvirt domain XML that loses nothing.
//!
//! libvirt describes domains in XML (`virsh dumpxml`, `virDomainGetXMLDesc`, `virDomainDefineXML`).
//! This module reads and writes that XML without losing anything, and gives typed access to the
//! parts most programs need:
//!
//! - [`Element`]: a small lossless element tree read with quick-xml's pull reader (element and
//!   attribute order, text and whitespace, CDATA, comments, namespaced names all kept). It is the
//!   backbone: parse → write → parse gives an equal tree.
//! - [`Domain`]: a `<domain>` over that tree, with typed getters and setters for name, uuid,
//!   title, description, metadata (raw), memory with units, vCPUs, `<os>`, features, `<cpu>`,
//!   `<clock>`, lifecycle actions and the devices ([`Device`]: disk, interface, serial, console,
//!   channel, graphics, video, input, controller, memballoon, rng, hostdev, filesystem, tpm,
//!   watchdog; any other element is kept as [`Device::Other`]). Setters replace only what their
//!   type models ([`XmlPart::merge_into`]); unknown attributes and elements stay.
//! - [`DomainBuilder`]: builds a new definition in libvirt's element order.
//!
//! Every typed value derives serde's `Serialize`/`Deserialize` (a [`Domain`] serializes as its XML
//! text), so definitions can be stored in JSON or other formats. Open sets of values (lifecycle
//! actions, disk buses, ...) are enums with an `Other(String)` variant that keeps what this crate
//! does not know. Bad input is an [`XmlError`], never a panic.
//!
//! The module is behind the `xml` cargo feature (on by default; it adds quick-xml).
//!
//! ```
//! use libvirt_client::xml::{Device, Disk, DiskBus, Domain, DomainType, Memory, Os};
//!
//! // What `virsh dumpxml` returned, with something this crate does not model.
//! let xml = "<domain type='kvm'>
//!   <name>web</name>
//!   <memory unit='GiB'>2</memory>
//!   <vcpu current='1'>4</vcpu>
//!   <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
//!   <devices>
//!     <disk type='file' device='disk'><source file='/img/web.qcow2'/><target dev='vda' bus='virtio'/></disk>
//!   </devices>
//!   <seclabel type='dynamic' model='selinux'/>
//! </domain>";
//! let mut dom = Domain::from_xml(xml)?;
//! assert_eq!(dom.memory()?.and_then(Memory::to_kib), Some(2 * 1024 * 1024));
//! assert_eq!(dom.vcpu()?.and_then(|v| v.current), Some(1));
//! assert_eq!(dom.disks()?[0].target_bus, Some(DiskBus::Virtio));
//!
//! dom.add_device(&Device::Disk(Disk::file("/img/data.raw", "vdb", DiskBus::Virtio)));
//! let out = dom.to_xml()?;
//! assert!(out.contains("<seclabel type='dynamic' model='selinux'/>"));
//! assert_eq!(Domain::from_xml(&out)?.disks()?.len(), 2);
//!
//! // A new definition from typed parts.
//! let new = Domain::builder(DomainType::Qemu, "tiny")
//!     .memory(Memory::mib(64))
//!     .vcpus(1)
//!     .os(Os::hvm("x86_64", "pc"))
//!     .build();
//! assert_eq!(new.os()?.and_then(|o| o.machine).as_deref(), Some("pc"));
//! # Ok::<(), libvirt_client::xml::XmlError>(())
//! ```

mod devices;
mod domain;
mod error;
mod parts;
mod tree;
mod types;

pub use devices::{
    Address, CharDevice, Controller, Device, Disk, DiskBus, DiskDevice, DiskDriver, DiskSource,
    DiskType, Filesystem, Graphics, HostDev, Input, Interface, InterfaceSource, InterfaceType,
    MemBalloon, PciAddress, Rng, Tpm, Video, Watchdog,
};
pub use domain::{Domain, DomainBuilder};
pub use error::XmlError;
pub use parts::{
    BootDevice, Clock, ClockOffset, Cpu, CpuMode, CpuTopology, Loader, Nvram, Os, Schema, Timer,
    Vcpu, VcpuPlacement, XmlPart,
};
pub use tree::{Element, Node, MAX_DEPTH};
pub use types::{DomainType, LifecycleAction, Memory, MemoryUnit};
