//! Built-in device kinds. Each writes its options with [`Opt`] (so every value is escaped by the
//! one routine), declares and refers to ids, and reads itself back strictly: anything it did not
//! write makes its parser decline, and the option is kept as a [`Generic`] instead of being lost.

use crate::config::QemuConfig;
use crate::device::{BusKind, Device, IdRef, Namespace, ParseDevice};
use crate::error::{Error, Result};
use crate::opt::{check_id, check_node_name, Opt, Prop, PropReader};

fn id(what: &'static str, v: &str) -> Result<String> {
    check_id(what, v)?;
    Ok(v.to_owned())
}

fn missing(kind: &str, field: &'static str) -> Error {
    Error::Missing {
        kind: kind.to_owned(),
        field,
    }
}

fn nonempty(kind: &str, field: &'static str, v: &str) -> Result<()> {
    if v.is_empty() {
        return Err(missing(kind, field));
    }
    Ok(())
}

fn take<'a>(opts: &'a [Opt], i: usize, flag: &str, implied: Option<&str>) -> Option<&'a Opt> {
    let o = opts.get(i)?;
    (o.flag == flag && o.implied.as_deref() == implied).then_some(o)
}

fn fd_list(fds: &[i32]) -> String {
    fds.iter().map(i32::to_string).collect::<Vec<_>>().join(":")
}

fn parse_fd_list(s: &str) -> Option<Vec<i32>> {
    let v: Option<Vec<i32>> = s
        .split(':')
        .map(|x| x.parse().ok().filter(|n: &i32| n.to_string() == x))
        .collect();
    v.filter(|v| !v.is_empty())
}

/// Where a PCI device plugs in: a bus (`pcie.0`, a root port or bridge id) and a slot address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pci {
    /// The bus id (default: QEMU picks the root bus).
    pub bus: Option<String>,
    /// The `slot[.function]` address, e.g. `0x5` or `0x5.0x1`.
    pub addr: Option<String>,
}

impl Pci {
    /// On bus `bus`, address chosen by QEMU.
    pub fn on(bus: &str) -> Self {
        Pci {
            bus: Some(bus.into()),
            addr: None,
        }
    }
    fn emit(&self, o: Opt) -> Opt {
        o.prop_opt("bus", self.bus.clone())
            .prop_opt("addr", self.addr.clone())
    }
    fn read(r: &mut PropReader<'_>) -> Self {
        Pci {
            bus: r.str("bus"),
            addr: r.str("addr"),
        }
    }
    fn refs(&self) -> Vec<IdRef> {
        self.refs_as(BusKind::Pci)
    }
    fn refs_as(&self, kind: BusKind) -> Vec<IdRef> {
        self.bus
            .iter()
            .map(|b| (Namespace::Bus(kind), b.clone()))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// block

/// Image format of a [`Block`] device's top node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `raw`.
    Raw,
    /// `qcow2`.
    Qcow2,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
        }
    }
}

/// The guest-visible half of a [`Block`] device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frontend {
    /// `virtio-blk-pci`.
    VirtioBlk,
    /// `scsi-hd` on a SCSI controller's bus (see [`ScsiController`]).
    ScsiHd,
    /// `ide-hd` on an IDE bus (`ide.0`, ...).
    IdeHd,
}

impl Frontend {
    fn driver(self) -> &'static str {
        match self {
            Frontend::VirtioBlk => "virtio-blk-pci",
            Frontend::ScsiHd => "scsi-hd",
            Frontend::IdeHd => "ide-hd",
        }
    }
    fn from_driver(d: &str) -> Option<Self> {
        [Frontend::VirtioBlk, Frontend::ScsiHd, Frontend::IdeHd]
            .into_iter()
            .find(|f| f.driver() == d)
    }
}

/// The `-device` of a [`Block`] device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockDevice {
    /// qdev id.
    pub id: String,
    /// Which device model.
    pub kind: Frontend,
    /// Bus (a SCSI controller's `ID.0`, `ide.0`, a PCI bus) and for PCI models the address.
    pub pci: Pci,
    /// Serial number shown to the guest.
    pub serial: Option<String>,
    /// Boot order.
    pub bootindex: Option<u64>,
}

/// A disk: modern `-blockdev` nodes (a `file` protocol node under a `raw`/`qcow2` format node)
/// and, optionally, the `-device` the guest sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Host file (any characters: escaped on output).
    pub path: String,
    /// Node name of the protocol (`file`) node.
    pub file_node: String,
    /// Node name of the format node (what the device's `drive=` names).
    pub node: String,
    /// Format of the image.
    pub format: Format,
    /// Open read-only.
    pub read_only: bool,
    /// The guest device, if any.
    pub device: Option<BlockDevice>,
}

impl Block {
    /// A virtio-blk disk with id `id`, nodes `ID-file` and `ID`.
    pub fn virtio(id: &str, path: &str, format: Format) -> Self {
        Block {
            path: path.into(),
            file_node: format!("{id}-file"),
            node: id.into(),
            format,
            read_only: false,
            device: Some(BlockDevice {
                id: id.into(),
                kind: Frontend::VirtioBlk,
                pci: Pci::default(),
                serial: None,
                bootindex: None,
            }),
        }
    }
}

impl Device for Block {
    fn describe(&self) -> String {
        format!("block device `{}`", self.node)
    }
    fn opts(&self) -> Result<Vec<Opt>> {
        check_node_name(&self.file_node)?;
        check_node_name(&self.node)?;
        nonempty(&self.describe(), "path", &self.path)?;
        let mut v = vec![
            Opt::bare("-blockdev")
                .prop("driver", "file")
                .prop("node-name", self.file_node.clone())
                .prop("filename", self.path.clone())
                .flag_on("read-only", self.read_only),
            Opt::bare("-blockdev")
                .prop("driver", self.format.name())
                .prop("node-name", self.node.clone())
                .prop("file", self.file_node.clone())
                .flag_on("read-only", self.read_only),
        ];
        if let Some(d) = &self.device {
            let o = Opt::new("-device", d.kind.driver())
                .prop("id", id("device id", &d.id)?)
                .prop("drive", self.node.clone());
            v.push(
                d.pci
                    .emit(o)
                    .prop_opt("serial", d.serial.clone())
                    .prop_opt("bootindex", d.bootindex),
            );
        }
        Ok(v)
    }
    fn declares(&self) -> Vec<IdRef> {
        let mut v = vec![
            (Namespace::Node, self.file_node.clone()),
            (Namespace::Node, self.node.clone()),
        ];
        v.extend(
            self.device
                .iter()
                .map(|d| (Namespace::Device, d.id.clone())),
        );
        v
    }
    fn references(&self) -> Vec<IdRef> {
        let kind = |k: Frontend| match k {
            Frontend::VirtioBlk => BusKind::Pci,
            Frontend::ScsiHd => BusKind::Scsi,
            Frontend::IdeHd => BusKind::Ide,
        };
        self.device
            .iter()
            .flat_map(|d| d.pci.refs_as(kind(d.kind)))
            .collect()
    }
    fn check(&self, _: &QemuConfig) -> Result<()> {
        match &self.device {
            Some(d) if self.read_only && d.kind == Frontend::IdeHd => {
                Err(Error::Impossible(format!(
                    "{}: ide-hd cannot use a read-only node (QEMU refuses it)",
                    self.describe()
                )))
            }
            Some(d) if d.kind != Frontend::VirtioBlk && d.pci.addr.is_some() => {
                Err(Error::Impossible(format!(
                    "{}: {} is not a PCI device; it takes no addr",
                    self.describe(),
                    d.kind.driver()
                )))
            }
            _ => Ok(()),
        }
    }
}

impl ParseDevice for Block {
    fn parse(opts: &[Opt]) -> Option<(usize, Self)> {
        let f = take(opts, 0, "-blockdev", None)?;
        let mut r = PropReader::new(f);
        (r.str("driver")? == "file").then_some(())?;
        let file_node = r.str("node-name")?;
        let path = r.str("filename")?;
        let ro = r.bool("read-only").ok()?.unwrap_or(false);
        r.done().then_some(())?;
        let g = take(opts, 1, "-blockdev", None)?;
        let mut r = PropReader::new(g);
        let format = match r.str("driver")?.as_str() {
            "raw" => Format::Raw,
            "qcow2" => Format::Qcow2,
            _ => return None,
        };
        let node = r.str("node-name")?;
        (r.str("file")? == file_node).then_some(())?;
        (r.bool("read-only").ok()?.unwrap_or(false) == ro).then_some(())?;
        r.done().then_some(())?;
        let mut b = Block {
            path,
            file_node,
            node,
            format,
            read_only: ro,
            device: None,
        };
        let dev = opts.get(2).filter(|o| o.flag == "-device").and_then(|o| {
            let kind = Frontend::from_driver(o.implied.as_deref()?)?;
            let mut r = PropReader::new(o);
            let id = r.str("id")?;
            (r.str("drive")? == b.node).then_some(())?;
            let pci = Pci::read(&mut r);
            let serial = r.str("serial");
            let bootindex = r.num("bootindex").ok()?;
            r.done().then_some(BlockDevice {
                id,
                kind,
                pci,
                serial,
                bootindex,
            })
        });
        let n = if dev.is_some() { 3 } else { 2 };
        b.device = dev;
        Some((n, b))
    }
}

// ---------------------------------------------------------------------------------------------
// net

/// The host side of a [`Net`] device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetBackend {
    /// User-mode networking (slirp), no host privileges needed.
    User,
    /// A tap or macvtap device opened by the caller and inherited as fds (one per queue); for
    /// macvtap, open `/dev/tapN`. `vhostfds` are open `/dev/vhost-net` fds, one per queue.
    TapFds {
        /// Tap fds as the child sees them (see [`crate::FdPlan`]).
        fds: Vec<i32>,
        /// Use vhost-net.
        vhost: bool,
        /// vhost-net fds as the child sees them.
        vhostfds: Vec<i32>,
    },
    /// A tap interface QEMU opens by name (needs privileges), no scripts.
    TapIfname {
        /// Interface name.
        ifname: String,
        /// Number of queues (multiqueue tap).
        queues: Option<u64>,
    },
    /// A vhost-user backend listening on a unix socket.
    VhostUser {
        /// Id of the chardev this adds.
        chardev_id: String,
        /// The backend's socket.
        socket_path: String,
        /// Number of queue pairs.
        queues: Option<u64>,
    },
}

impl NetBackend {
    /// A macvtap interface: open `/dev/tapN` (N = the macvtap's ifindex) once per queue, pass
    /// the fds with a [`crate::FdPlan`], and give their child numbers here. QEMU drives macvtap
    /// through the same `-netdev tap,fds=` as a tap; `vhostfds` are optional `/dev/vhost-net`
    /// fds, one per queue.
    pub fn macvtap(fds: Vec<i32>, vhostfds: Vec<i32>) -> Self {
        NetBackend::TapFds {
            fds,
            vhost: !vhostfds.is_empty(),
            vhostfds,
        }
    }
}

/// The guest NIC of a [`Net`] device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetDevice {
    /// qdev id.
    pub id: String,
    /// Model, e.g. `virtio-net-pci`, `e1000`.
    pub driver: String,
    /// MAC address.
    pub mac: Option<String>,
    /// Multiqueue: `mq=on` and `vectors=2*queues+2`.
    pub queues: Option<u64>,
    /// PCI placement.
    pub pci: Pci,
}

/// A network interface: `-netdev` (plus a chardev for vhost-user) and its `-device`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Net {
    /// `-netdev` id.
    pub netdev_id: String,
    /// Host side.
    pub backend: NetBackend,
    /// Guest side.
    pub device: Option<NetDevice>,
}

impl Net {
    /// A virtio-net-pci NIC `id` on backend `backend`, netdev id `ID-net`.
    pub fn virtio(id: &str, backend: NetBackend) -> Self {
        Net {
            netdev_id: format!("{id}-net"),
            backend,
            device: Some(NetDevice {
                id: id.into(),
                driver: "virtio-net-pci".into(),
                mac: None,
                queues: None,
                pci: Pci::default(),
            }),
        }
    }
}

/// QEMU's limit on queue pairs of one net device (`MAX_QUEUE_NUM` in hw/net/virtio-net.c).
pub const MAX_NET_QUEUES: u64 = 1024;

impl Device for Net {
    fn describe(&self) -> String {
        format!("net device `{}`", self.netdev_id)
    }
    fn opts(&self) -> Result<Vec<Opt>> {
        let nid = id("netdev id", &self.netdev_id)?;
        let mut v = Vec::new();
        let nd = match &self.backend {
            NetBackend::User => Opt::new("-netdev", "user").prop("id", nid),
            NetBackend::TapFds {
                fds,
                vhost,
                vhostfds,
            } => {
                if fds.is_empty() {
                    return Err(missing(&self.describe(), "tap fds"));
                }
                let o = Opt::new("-netdev", "tap")
                    .prop("id", nid)
                    .prop("fds", fd_list(fds))
                    .flag_on("vhost", *vhost);
                o.prop_opt(
                    "vhostfds",
                    (!vhostfds.is_empty()).then(|| fd_list(vhostfds)),
                )
            }
            NetBackend::TapIfname { ifname, queues } => {
                nonempty(&self.describe(), "ifname", ifname)?;
                Opt::new("-netdev", "tap")
                    .prop("id", nid)
                    .prop("ifname", ifname.clone())
                    .prop("script", "no")
                    .prop("downscript", "no")
                    .prop_opt("queues", *queues)
            }
            NetBackend::VhostUser {
                chardev_id,
                socket_path,
                queues,
            } => {
                nonempty(&self.describe(), "socket path", socket_path)?;
                v.push(
                    Opt::new("-chardev", "socket")
                        .prop("id", id("chardev id", chardev_id)?)
                        .prop("path", socket_path.clone()),
                );
                Opt::new("-netdev", "vhost-user")
                    .prop("id", nid)
                    .prop("chardev", chardev_id.clone())
                    .prop_opt("queues", *queues)
            }
        };
        v.push(nd);
        if let Some(d) = &self.device {
            check_id("device id", &d.id)?;
            let mut o = Opt::new("-device", d.driver.clone())
                .prop("id", d.id.clone())
                .prop("netdev", self.netdev_id.clone());
            o = o.prop_opt("mac", d.mac.clone());
            if let Some(q) = d.queues {
                o = o
                    .prop("mq", true)
                    .prop("vectors", q.saturating_mul(2).saturating_add(2));
            }
            v.push(d.pci.emit(o));
        }
        Ok(v)
    }
    fn declares(&self) -> Vec<IdRef> {
        let mut v = vec![(Namespace::Netdev, self.netdev_id.clone())];
        if let NetBackend::VhostUser { chardev_id, .. } = &self.backend {
            v.push((Namespace::Chardev, chardev_id.clone()));
        }
        v.extend(
            self.device
                .iter()
                .map(|d| (Namespace::Device, d.id.clone())),
        );
        v
    }
    fn references(&self) -> Vec<IdRef> {
        self.device.iter().flat_map(|d| d.pci.refs()).collect()
    }
    fn fds(&self) -> Vec<i32> {
        match &self.backend {
            NetBackend::TapFds { fds, vhostfds, .. } => {
                fds.iter().chain(vhostfds).copied().collect()
            }
            _ => Vec::new(),
        }
    }
    fn check(&self, config: &QemuConfig) -> Result<()> {
        let q = self.device.as_ref().and_then(|d| d.queues);
        if q == Some(0) {
            return Err(Error::Impossible(format!(
                "{}: multiqueue with 0 queues",
                self.describe()
            )));
        }
        if let Some(q) = q.filter(|q| *q > MAX_NET_QUEUES) {
            return Err(Error::Impossible(format!(
                "{}: {q} queues; QEMU allows at most {MAX_NET_QUEUES}",
                self.describe()
            )));
        }
        match (&self.backend, q) {
            (
                NetBackend::TapIfname {
                    queues: Some(b), ..
                },
                Some(d),
            )
            | (
                NetBackend::VhostUser {
                    queues: Some(b), ..
                },
                Some(d),
            ) if *b != d => {
                return Err(Error::Impossible(format!(
                    "{}: backend has {b} queues, device {d}",
                    self.describe()
                )));
            }
            (NetBackend::VhostUser { .. }, _) => require_shared_memory(config, &self.describe())?,
            _ => {}
        }
        if let NetBackend::TapFds {
            fds,
            vhost,
            vhostfds,
        } = &self.backend
        {
            if let Some(q) = q {
                if fds.len() as u64 != q {
                    return Err(Error::Impossible(format!(
                        "{}: {q} queues but {} tap fds",
                        self.describe(),
                        fds.len()
                    )));
                }
            }
            if !vhostfds.is_empty() && (vhostfds.len() != fds.len() || !vhost) {
                return Err(Error::Impossible(format!(
                    "{}: vhostfds need vhost=on and one fd per tap fd ({} tap, {} vhost)",
                    self.describe(),
                    fds.len(),
                    vhostfds.len()
                )));
            }
        }
        Ok(())
    }
}

impl ParseDevice for Net {
    fn parse(opts: &[Opt]) -> Option<(usize, Self)> {
        let mut i = 0;
        let mut chardev = None;
        if let Some(c) = take(opts, 0, "-chardev", Some("socket")) {
            let mut r = PropReader::new(c);
            let cid = r.str("id")?;
            let path = r.str("path")?;
            r.done().then_some(())?;
            chardev = Some((cid, path));
            i = 1;
        }
        let o = opts.get(i).filter(|o| o.flag == "-netdev")?;
        let mut r = PropReader::new(o);
        let netdev_id = r.str("id")?;
        let backend = match (o.implied.as_deref()?, chardev) {
            ("user", None) => NetBackend::User,
            ("tap", None) if r.str("ifname").is_none() => {
                let fds = parse_fd_list(&r.str("fds")?)?;
                let vhost = r.bool("vhost").ok()?.unwrap_or(false);
                let vhostfds = match r.str("vhostfds") {
                    Some(s) => parse_fd_list(&s)?,
                    None => Vec::new(),
                };
                NetBackend::TapFds {
                    fds,
                    vhost,
                    vhostfds,
                }
            }
            ("tap", None) => {
                let mut r2 = PropReader::new(o);
                r2.str("id");
                let ifname = r2.str("ifname")?;
                (r2.str("script")? == "no" && r2.str("downscript")? == "no").then_some(())?;
                let queues = r2.num("queues").ok()?;
                r = r2;
                NetBackend::TapIfname { ifname, queues }
            }
            ("vhost-user", Some((cid, path))) => {
                (r.str("chardev")? == cid).then_some(())?;
                NetBackend::VhostUser {
                    chardev_id: cid,
                    socket_path: path,
                    queues: r.num("queues").ok()?,
                }
            }
            _ => return None,
        };
        r.done().then_some(())?;
        i += 1;
        let dev = opts.get(i).filter(|o| o.flag == "-device").and_then(|o| {
            let mut r = PropReader::new(o);
            let id = r.str("id")?;
            (r.str("netdev")? == netdev_id).then_some(())?;
            let mac = r.str("mac");
            let queues = match (r.bool("mq").ok()?, r.num("vectors").ok()?) {
                (Some(true), Some(v)) if v >= 4 && v % 2 == 0 => Some((v - 2) / 2),
                (None, None) => None,
                _ => return None,
            };
            let pci = Pci::read(&mut r);
            r.done().then_some(NetDevice {
                id,
                driver: o.implied.clone()?,
                mac,
                queues,
                pci,
            })
        });
        if dev.is_some() {
            i += 1;
        }
        Some((
            i,
            Net {
                netdev_id,
                backend,
                device: dev,
            },
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// shared filesystems

/// A 9p share: `-fsdev local` and `-device virtio-9p-pci`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Virtio9p {
    /// qdev id.
    pub id: String,
    /// `-fsdev` id.
    pub fsdev_id: String,
    /// Host directory.
    pub path: String,
    /// Tag the guest mounts.
    pub mount_tag: String,
    /// `none`, `mapped-xattr`, `mapped-file` or `passthrough`.
    pub security_model: String,
    /// Export read-only.
    pub readonly: bool,
    /// PCI placement.
    pub pci: Pci,
}

impl Device for Virtio9p {
    fn describe(&self) -> String {
        format!("9p share `{}`", self.id)
    }
    fn opts(&self) -> Result<Vec<Opt>> {
        nonempty(&self.describe(), "path", &self.path)?;
        nonempty(&self.describe(), "mount_tag", &self.mount_tag)?;
        nonempty(&self.describe(), "security_model", &self.security_model)?;
        Ok(vec![
            Opt::new("-fsdev", "local")
                .prop("id", id("fsdev id", &self.fsdev_id)?)
                .prop("path", self.path.clone())
                .prop("security_model", self.security_model.clone())
                .flag_on("readonly", self.readonly),
            self.pci.emit(
                Opt::new("-device", "virtio-9p-pci")
                    .prop("id", id("device id", &self.id)?)
                    .prop("fsdev", self.fsdev_id.clone())
                    .prop("mount_tag", self.mount_tag.clone()),
            ),
        ])
    }
    fn declares(&self) -> Vec<IdRef> {
        vec![
            (Namespace::Fsdev, self.fsdev_id.clone()),
            (Namespace::Device, self.id.clone()),
        ]
    }
    fn references(&self) -> Vec<IdRef> {
        self.pci.refs()
    }
}

impl ParseDevice for Virtio9p {
    fn parse(opts: &[Opt]) -> Option<(usize, Self)> {
        let mut r = PropReader::new(take(opts, 0, "-fsdev", Some("local"))?);
        let fsdev_id = r.str("id")?;
        let path = r.str("path")?;
        let security_model = r.str("security_model")?;
        let readonly = r.bool("readonly").ok()?.unwrap_or(false);
        r.done().then_some(())?;
        let mut r = PropReader::new(take(opts, 1, "-device", Some("virtio-9p-pci"))?);
        let id = r.str("id")?;
        (r.str("fsdev")? == fsdev_id).then_some(())?;
        let mount_tag = r.str("mount_tag")?;
        let pci = Pci::read(&mut r);
        r.done().then_some((
            2,
            Virtio9p {
                id,
                fsdev_id,
                path,
                mount_tag,
                security_model,
                readonly,
                pci,
            },
        ))
    }
}

/// A virtio-fs share served by virtiofsd on a unix socket: a socket chardev and
/// `-device vhost-user-fs-pci`. Needs shared guest memory (a shared [`MemoryBackend`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtioFs {
    /// qdev id.
    pub id: String,
    /// Id of the chardev this adds.
    pub chardev_id: String,
    /// virtiofsd's socket.
    pub socket_path: String,
    /// Tag the guest mounts.
    pub tag: String,
    /// Virtqueue size.
    pub queue_size: Option<u64>,
    /// PCI placement.
    pub pci: Pci,
}

impl Device for VirtioFs {
    fn describe(&self) -> String {
        format!("virtio-fs share `{}`", self.id)
    }
    fn opts(&self) -> Result<Vec<Opt>> {
        nonempty(&self.describe(), "socket path", &self.socket_path)?;
        nonempty(&self.describe(), "tag", &self.tag)?;
        Ok(vec![
            Opt::new("-chardev", "socket")
                .prop("id", id("chardev id", &self.chardev_id)?)
                .prop("path", self.socket_path.clone()),
            self.pci.emit(
                Opt::new("-device", "vhost-user-fs-pci")
                    .prop("id", id("device id", &self.id)?)
                    .prop("chardev", self.chardev_id.clone())
                    .prop("tag", self.tag.clone())
                    .prop_opt("queue-size", self.queue_size),
            ),
        ])
    }
    fn declares(&self) -> Vec<IdRef> {
        vec![
            (Namespace::Chardev, self.chardev_id.clone()),
            (Namespace::Device, self.id.clone()),
        ]
    }
    fn references(&self) -> Vec<IdRef> {
        self.pci.refs()
    }
    fn check(&self, config: &QemuConfig) -> Result<()> {
        require_shared_memory(config, &self.describe())
    }
}

impl ParseDevice for VirtioFs {
    fn parse(opts: &[Opt]) -> Option<(usize, Self)> {
        let mut r = PropReader::new(take(opts, 0, "-chardev", Some("socket"))?);
        let chardev_id = r.str("id")?;
        let socket_path = r.str("path")?;
        r.done().then_some(())?;
        let mut r = PropReader::new(take(opts, 1, "-device", Some("vhost-user-fs-pci"))?);
        let id = r.str("id")?;
        (r.str("chardev")? == chardev_id).then_some(())?;
        let tag = r.str("tag")?;
        let queue_size = r.num("queue-size").ok()?;
        let pci = Pci::read(&mut r);
        r.done().then_some((
            2,
            VirtioFs {
                id,
                chardev_id,
                socket_path,
                tag,
                queue_size,
                pci,
            },
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// character devices and their frontends

/// The host side of a [`Chardev`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChardevBackend {
    /// A unix socket; `server` listens (without waiting for a client).
    Socket {
        /// Socket path.
        path: String,
        /// Listen instead of connecting.
        server: bool,
    },
    /// An inherited socket fd (see [`crate::FdPlan`]): a listening socket when `server`,
    /// otherwise a connected one.
    SocketFd {
        /// The fd number as the child sees it.
        fd: i32,
        /// The fd listens; QEMU accepts clients on it (without waiting for one).
        server: bool,
    },
    /// A pseudo-terminal.
    Pty,
    /// Output appended to a file.
    File {
        /// File path.
        path: String,
    },
    /// Discards output.
    Null,
}

/// A character device (`-chardev`), for [`Serial`], [`VirtPort`] or anything naming a chardev.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chardev {
    /// Chardev id.
    pub id: String,
    /// Host side.
    pub backend: ChardevBackend,
}

impl Device for Chardev {
    fn describe(&self) -> String {
        format!("chardev `{}`", self.id)
    }
    fn opts(&self) -> Result<Vec<Opt>> {
        let cid = id("chardev id", &self.id)?;
        Ok(vec![match &self.backend {
            ChardevBackend::Socket { path, server } => {
                nonempty(&self.describe(), "path", path)?;
                let o = Opt::new("-chardev", "socket")
                    .prop("id", cid)
                    .prop("path", path.clone());
                if *server {
                    o.prop("server", true).prop("wait", false)
                } else {
                    o
                }
            }
            ChardevBackend::SocketFd { fd, server } => {
                let o = Opt::new("-chardev", "socket")
                    .prop("id", cid)
                    .prop("fd", fd.to_string());
                if *server {
                    o.prop("server", true).prop("wait", false)
                } else {
                    o
                }
            }
            ChardevBackend::Pty => Opt::new("-chardev", "pty").prop("id", cid),
            ChardevBackend::File { path } => {
                nonempty(&self.describe(), "path", path)?;
                Opt::new("-chardev", "file")
                    .prop("id", cid)
                    .prop("path", path.clone())
            }
            ChardevBackend::Null => Opt::new("-chardev", "null").prop("id", cid),
        }])
    }
    fn declares(&self) -> Vec<IdRef> {
        vec![(Namespace::Chardev, self.id.clone())]
    }
    fn fds(&self) -> Vec<i32> {
        match self.backend {
            ChardevBackend::SocketFd { fd, .. } => vec![fd],
            _ => Vec::new(),
        }
    }
}

impl ParseDevice for Chardev {
    fn parse(opts: &[Opt]) -> Option<(usize, Self)> {
        let o = opts.first().filter(|o| o.flag == "-chardev")?;
        let mut r = PropReader::new(o);
        let id = r.str("id")?;
        let backend = match o.implied.as_deref()? {
            "socket" => {
                let server = match (r.bool("server").ok()?, r.bool("wait").ok()?) {
                    (Some(true), Some(false)) => true,
                    (None, None) => false,
                    _ => return None,
                };
                match (r.str("path"), r.str("fd")) {
                    (Some(path), None) => ChardevBackend::Socket { path, server },
                    (None, Some(fd)) => ChardevBackend::SocketFd {
                        fd: fd.parse().ok().filter(|n: &i32| n.to_string() == fd)?,
                        server,
                    },
                    _ => return None,
                }
            }
            "pty" => ChardevBackend::Pty,
            "file" => ChardevBackend::File {
                path: r.str("path")?,
            },
            "null" => ChardevBackend::Null,
            _ => return None,
        };
        r.done().then_some((1, Chardev { id, backend }))
    }
}

/// An ISA serial port (`isa-serial`) on a chardev.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Serial {
    /// qdev id.
    pub id: String,
    /// The chardev it writes to.
    pub chardev: String,
}

impl Device for Serial {
    fn describe(&self) -> String {
        format!("serial port `{}`", self.id)
    }
    fn opts(&self) -> Result<Vec<Opt>> {
        Ok(vec![Opt::new("-device", "isa-serial")
            .prop("id", id("device id", &self.id)?)
            .prop("chardev", self.chardev.clone())])
    }
    fn declares(&self) -> Vec<IdRef> {
        vec![(Namespace::Device, self.id.clone())]
    }
    fn references(&self) -> Vec<IdRef> {
        vec![
            (Namespace::Chardev, self.chardev.clone()),
            (Namespace::Bus(BusKind::Isa), "isa.0".into()),
        ]
    }
}

impl ParseDevice for Serial {
    fn parse(opts: &[Opt]) -> Option<(usize, Self)> {
        let mut r = PropReader::new(take(opts, 0, "-device", Some("isa-serial"))?);
        let s = Serial {
            id: r.str("id")?,
            chardev: r.str("chardev")?,
        };
        r.done().then_some((1, s))
    }
}

/// A virtio-serial controller (`virtio-serial-pci`); its ports go on bus `ID.0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtioSerial {
    /// qdev id.
    pub id: String,
    /// PCI placement.
    pub pci: Pci,
}

impl Device for VirtioSerial {
    fn describe(&self) -> String {
        format!("virtio-serial controller `{}`", self.id)
    }
    fn opts(&self) -> Result<Vec<Opt>> {
        Ok(vec![self.pci.emit(
            Opt::new("-device", "virtio-serial-pci").prop("id", id("device id", &self.id)?),
        )])
    }
    fn declares(&self) -> Vec<IdRef> {
        vec![
            (Namespace::Device, self.id.clone()),
            (
                Namespace::Bus(BusKind::VirtioSerial),
                format!("{}.0", self.id),
            ),
        ]
    }
    fn references(&self) -> Vec<IdRef> {
        self.pci.refs()
    }
}

impl ParseDevice for VirtioSerial {
    fn parse(opts: &[Opt]) -> Option<(usize, Self)> {
        let mut r = PropReader::new(take(opts, 0, "-device", Some("virtio-serial-pci"))?);
        let id = r.str("id")?;
        let pci = Pci::read(&mut r);
        r.done().then_some((1, VirtioSerial { id, pci }))
    }
}

/// A port on a [`VirtioSerial`] bus: `virtserialport`, or `virtconsole` when `console`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtPort {
    /// qdev id.
    pub id: String,
    /// The chardev behind it.
    pub chardev: String,
    /// The virtio-serial bus (`CONTROLLER.0`).
    pub bus: String,
    /// Port name the guest sees (e.g. `org.qemu.guest_agent.0`).
    pub name: Option<String>,
    /// A console (`virtconsole`) rather than a plain port.
    pub console: bool,
}

impl Device for VirtPort {
    fn describe(&self) -> String {
        format!("virtio-serial port `{}`", self.id)
    }
    fn opts(&self) -> Result<Vec<Opt>> {
        let driver = if self.console {
            "virtconsole"
        } else {
            "virtserialport"
        };
        Ok(vec![Opt::new("-device", driver)
            .prop("id", id("device id", &self.id)?)
            .prop("chardev", self.chardev.clone())
            .prop("bus", self.bus.clone())
            .prop_opt("name", self.name.clone())])
    }
    fn declares(&self) -> Vec<IdRef> {
        vec![(Namespace::Device, self.id.clone())]
    }
    fn references(&self) -> Vec<IdRef> {
        vec![
            (Namespace::Chardev, self.chardev.clone()),
            (Namespace::Bus(BusKind::VirtioSerial), self.bus.clone()),
        ]
    }
}

impl ParseDevice for VirtPort {
    fn parse(opts: &[Opt]) -> Option<(usize, Self)> {
        let o = opts.first().filter(|o| o.flag == "-device")?;
        let console = match o.implied.as_deref()? {
            "virtconsole" => true,
            "virtserialport" => false,
            _ => return None,
        };
        let mut r = PropReader::new(o);
        let p = VirtPort {
            id: r.str("id")?,
            chardev: r.str("chardev")?,
            bus: r.str("bus")?,
            name: r.str("name"),
            console,
        };
        r.done().then_some((1, p))
    }
}

// ---------------------------------------------------------------------------------------------
// vhost-user, vfio

/// A vhost-user device (e.g. `vhost-user-blk-pci`, `vhost-user-scsi-pci`) served by a backend
/// process on a unix socket: a socket chardev and the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VhostUserDevice {
    /// qdev id.
    pub id: String,
    /// Device model, `vhost-user-*`.
    pub driver: String,
    /// Id of the chardev this adds.
    pub chardev_id: String,
    /// The backend's socket.
    pub socket_path: String,
    /// `num-queues`.
    pub num_queues: Option<u64>,
    /// PCI placement.
    pub pci: Pci,
}

impl Device for VhostUserDevice {
    fn describe(&self) -> String {
        format!("vhost-user device `{}`", self.id)
    }
    fn opts(&self) -> Result<Vec<Opt>> {
        nonempty(&self.describe(), "socket path", &self.socket_path)?;
        if !self.driver.starts_with("vhost-user-") {
            return Err(Error::Impossible(format!(
                "{}: driver {:?} is not a vhost-user-* model",
                self.describe(),
                self.driver
            )));
        }
        Ok(vec![
            Opt::new("-chardev", "socket")
                .prop("id", id("chardev id", &self.chardev_id)?)
                .prop("path", self.socket_path.clone()),
            self.pci.emit(
                Opt::new("-device", self.driver.clone())
                    .prop("id", id("device id", &self.id)?)
                    .prop("chardev", self.chardev_id.clone())
                    .prop_opt("num-queues", self.num_queues),
            ),
        ])
    }
    fn declares(&self) -> Vec<IdRef> {
        vec![
            (Namespace::Chardev, self.chardev_id.clone()),
            (Namespace::Device, self.id.clone()),
        ]
    }
    fn references(&self) -> Vec<IdRef> {
        self.pci.refs()
    }
    fn check(&self, config: &QemuConfig) -> Result<()> {
        require_shared_memory(config, &self.describe())
    }
}

impl ParseDevice for VhostUserDevice {
    fn parse(opts: &[Opt]) -> Option<(usize, Self)> {
        let mut r = PropReader::new(take(opts, 0, "-chardev", Some("socket"))?);
        let chardev_id = r.str("id")?;
        let socket_path = r.str("path")?;
        r.done().then_some(())?;
        let o = opts.get(1).filter(|o| o.flag == "-device")?;
        let driver = o
            .implied
            .clone()
            .filter(|d| d.starts_with("vhost-user-") && d != "vhost-user-fs-pci")?;
        let mut r = PropReader::new(o);
        let id = r.str("id")?;
        (r.str("chardev")? == chardev_id).then_some(())?;
        let num_queues = r.num("num-queues").ok()?;
        let pci = Pci::read(&mut r);
        r.done().then_some((
            2,
            VhostUserDevice {
                id,
                driver,
                chardev_id,
                socket_path,
                num_queues,
                pci,
            },
        ))
    }
}

/// A host PCI device passed through with VFIO (`vfio-pci`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vfio {
    /// qdev id.
    pub id: String,
    /// Host address, `DDDD:BB:SS.F`.
    pub host: String,
    /// PCI placement in the guest.
    pub pci: Pci,
}

impl Device for Vfio {
    fn describe(&self) -> String {
        format!("vfio device `{}`", self.id)
    }
    fn opts(&self) -> Result<Vec<Opt>> {
        nonempty(&self.describe(), "host", &self.host)?;
        Ok(vec![self.pci.emit(
            Opt::new("-device", "vfio-pci")
                .prop("id", id("device id", &self.id)?)
                .prop("host", self.host.clone()),
        )])
    }
    fn declares(&self) -> Vec<IdRef> {
        vec![(Namespace::Device, self.id.clone())]
    }
    fn references(&self) -> Vec<IdRef> {
        self.pci.refs()
    }
}

impl ParseDevice for Vfio {
    fn parse(opts: &[Opt]) -> Option<(usize, Self)> {
        let mut r = PropReader::new(take(opts, 0, "-device", Some("vfio-pci"))?);
        let id = r.str("id")?;
        let host = r.str("host")?;
        let pci = Pci::read(&mut r);
        r.done().then_some((1, Vfio { id, host, pci }))
    }
}

// ---------------------------------------------------------------------------------------------
// buses and controllers

/// What a device that is also the PCI bus behind it declares: its qdev id, and the bus of that
/// name (a [`PciBridge`], [`PciePciBridge`] or [`PcieRootPort`]).
fn declares_pci_bus(id: &str) -> Vec<IdRef> {
    vec![
        (Namespace::Device, id.to_owned()),
        (Namespace::Bus(BusKind::Pci), id.to_owned()),
    ]
}

/// A PCI-to-PCI bridge (`pci-bridge`); devices plug into bus `ID`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciBridge {
    /// qdev id, also the bus name.
    pub id: String,
    /// Chassis number (unique, non-zero).
    pub chassis_nr: u64,
    /// Placement.
    pub pci: Pci,
}

impl Device for PciBridge {
    fn describe(&self) -> String {
        format!("pci-bridge `{}`", self.id)
    }
    fn opts(&self) -> Result<Vec<Opt>> {
        if self.chassis_nr == 0 || self.chassis_nr > 255 {
            return Err(Error::Impossible(format!(
                "{}: chassis_nr must be 1..=255",
                self.describe()
            )));
        }
        Ok(vec![self.pci.emit(
            Opt::new("-device", "pci-bridge")
                .prop("id", id("device id", &self.id)?)
                .prop("chassis_nr", self.chassis_nr),
        )])
    }
    fn declares(&self) -> Vec<IdRef> {
        declares_pci_bus(&self.id)
    }
    fn references(&self) -> Vec<IdRef> {
        self.pci.refs()
    }
}

impl ParseDevice for PciBridge {
    fn parse(opts: &[Opt]) -> Option<(usize, Self)> {
        let mut r = PropReader::new(take(opts, 0, "-device", Some("pci-bridge"))?);
        let id = r.str("id")?;
        let chassis_nr = r.num("chassis_nr").ok()??;
        let pci = Pci::read(&mut r);
        r.done().then_some((
            1,
            PciBridge {
                id,
                chassis_nr,
                pci,
            },
        ))
    }
}

/// A PCI Express to PCI bridge (`pcie-pci-bridge`): conventional PCI devices plug into bus
/// `ID` behind it. It goes on a PCIe bus (a [`PcieRootPort`] or the root bus); QEMU 7.2 also
/// takes it on `pc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciePciBridge {
    /// qdev id, also the bus name.
    pub id: String,
    /// `msi=on|off`; `None` leaves QEMU's `auto`.
    pub msi: Option<bool>,
    /// Placement.
    pub pci: Pci,
}

impl Device for PciePciBridge {
    fn describe(&self) -> String {
        format!("pcie-pci-bridge `{}`", self.id)
    }
    fn opts(&self) -> Result<Vec<Opt>> {
        // msi is an OnOffAuto: a string in JSON syntax, not a boolean
        let msi = self.msi.map(|on| if on { "on" } else { "off" });
        Ok(vec![self.pci.emit(
            Opt::new("-device", "pcie-pci-bridge")
                .prop("id", id("device id", &self.id)?)
                .prop_opt("msi", msi),
        )])
    }
    fn declares(&self) -> Vec<IdRef> {
        declares_pci_bus(&self.id)
    }
    fn references(&self) -> Vec<IdRef> {
        self.pci.refs()
    }
}

impl ParseDevice for PciePciBridge {
    fn parse(opts: &[Opt]) -> Option<(usize, Self)> {
        let mut r = PropReader::new(take(opts, 0, "-device", Some("pcie-pci-bridge"))?);
        let id = r.str("id")?;
        let msi = match r.str("msi").as_deref() {
            Some("on") => Some(true),
            Some("off") => Some(false),
            Some(_) => return None,
            None => None,
        };
        let pci = Pci::read(&mut r);
        r.done().then_some((1, PciePciBridge { id, msi, pci }))
    }
}

/// A PCI Express root port (`pcie-root-port`, q35); one device plugs into bus `ID`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcieRootPort {
    /// qdev id, also the bus name.
    pub id: String,
    /// Chassis number.
    pub chassis: u64,
    /// Slot number (unique per chassis).
    pub slot: u64,
    /// Port number.
    pub port: Option<u64>,
    /// Placement.
    pub pci: Pci,
}

impl Device for PcieRootPort {
    fn describe(&self) -> String {
        format!("pcie-root-port `{}`", self.id)
    }
    fn opts(&self) -> Result<Vec<Opt>> {
        Ok(vec![self.pci.emit(
            Opt::new("-device", "pcie-root-port")
                .prop("id", id("device id", &self.id)?)
                .prop("chassis", self.chassis)
                .prop("slot", self.slot)
                .prop_opt("port", self.port),
        )])
    }
    fn declares(&self) -> Vec<IdRef> {
        declares_pci_bus(&self.id)
    }
    fn references(&self) -> Vec<IdRef> {
        self.pci.refs()
    }
    /// q35 only; and QEMU keeps one slot per (chassis, slot) pair: a second root port on a
    /// taken pair fails with "Can't add chassis slot, error -16" (EBUSY).
    fn check(&self, config: &QemuConfig) -> Result<()> {
        require_q35(config, &self.describe())?;
        let first = config
            .devices
            .iter()
            .filter_map(|d| d.as_any().downcast_ref::<PcieRootPort>())
            .find(|p| p.chassis == self.chassis && p.slot == self.slot);
        match first {
            Some(p) if !std::ptr::eq(p, self) => Err(Error::Impossible(format!(
                "{}: chassis {} slot {} is already taken by {} (QEMU: \"Can't add chassis slot\")",
                self.describe(),
                self.chassis,
                self.slot,
                p.describe()
            ))),
            _ => Ok(()),
        }
    }
}

/// vhost-user backends map guest RAM: it must come from a shared memory backend named by
/// `-machine memory-backend=`.
fn require_shared_memory(config: &QemuConfig, who: &str) -> Result<()> {
    match config.main_memory_backend() {
        Some(m) if m.share => Ok(()),
        Some(m) => Err(Error::Impossible(format!(
            "{who} needs shared guest memory, but memory backend `{}` has share off",
            m.id
        ))),
        None => Err(Error::Impossible(format!(
            "{who} needs shared guest memory: add a MemoryBackend with share=true and the \
             machine option memory-backend=ID"
        ))),
    }
}

fn require_q35(config: &QemuConfig, who: &str) -> Result<()> {
    let m = config
        .machine
        .as_ref()
        .map(|m| m.kind.as_str())
        .unwrap_or("");
    if m.starts_with("q35") || m.starts_with("pc-q35") {
        return Ok(());
    }
    Err(Error::Impossible(format!(
        "{who} needs a q35 machine, not {m:?}"
    )))
}

impl ParseDevice for PcieRootPort {
    fn parse(opts: &[Opt]) -> Option<(usize, Self)> {
        let mut r = PropReader::new(take(opts, 0, "-device", Some("pcie-root-port"))?);
        let id = r.str("id")?;
        let chassis = r.num("chassis").ok()??;
        let slot = r.num("slot").ok()??;
        let port = r.num("port").ok()?;
        let pci = Pci::read(&mut r);
        r.done().then_some((
            1,
            PcieRootPort {
                id,
                chassis,
                slot,
                port,
                pci,
            },
        ))
    }
}

/// A virtio SCSI controller (`virtio-scsi-pci`); disks go on bus `ID.0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScsiController {
    /// qdev id.
    pub id: String,
    /// An iothread object to run on.
    pub iothread: Option<String>,
    /// Request queues.
    pub num_queues: Option<u64>,
    /// Placement.
    pub pci: Pci,
}

impl Device for ScsiController {
    fn describe(&self) -> String {
        format!("scsi controller `{}`", self.id)
    }
    fn opts(&self) -> Result<Vec<Opt>> {
        Ok(vec![self.pci.emit(
            Opt::new("-device", "virtio-scsi-pci")
                .prop("id", id("device id", &self.id)?)
                .prop_opt("iothread", self.iothread.clone())
                .prop_opt("num_queues", self.num_queues),
        )])
    }
    fn declares(&self) -> Vec<IdRef> {
        vec![
            (Namespace::Device, self.id.clone()),
            (Namespace::Bus(BusKind::Scsi), format!("{}.0", self.id)),
        ]
    }
    fn references(&self) -> Vec<IdRef> {
        let mut v = self.pci.refs();
        v.extend(self.iothread.iter().map(|t| (Namespace::Object, t.clone())));
        v
    }
}

impl ParseDevice for ScsiController {
    fn parse(opts: &[Opt]) -> Option<(usize, Self)> {
        let mut r = PropReader::new(take(opts, 0, "-device", Some("virtio-scsi-pci"))?);
        let id = r.str("id")?;
        let iothread = r.str("iothread");
        let num_queues = r.num("num_queues").ok()?;
        let pci = Pci::read(&mut r);
        r.done().then_some((
            1,
            ScsiController {
                id,
                iothread,
                num_queues,
                pci,
            },
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// small devices

/// A virtio vsock device (`vhost-vsock-pci`), needs `/dev/vhost-vsock` on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vsock {
    /// qdev id.
    pub id: String,
    /// Guest context id (3 or more).
    pub guest_cid: u64,
    /// An inherited open `/dev/vhost-vsock` fd, as the child sees it.
    pub vhostfd: Option<i32>,
    /// Placement.
    pub pci: Pci,
}

impl Device for Vsock {
    fn describe(&self) -> String {
        format!("vsock `{}`", self.id)
    }
    fn opts(&self) -> Result<Vec<Opt>> {
        if self.guest_cid < 3 || self.guest_cid > u64::from(u32::MAX) {
            return Err(Error::Impossible(format!(
                "{}: guest-cid must be 3..=4294967295",
                self.describe()
            )));
        }
        Ok(vec![self.pci.emit(
            Opt::new("-device", "vhost-vsock-pci")
                .prop("id", id("device id", &self.id)?)
                .prop("guest-cid", self.guest_cid)
                .prop_opt("vhostfd", self.vhostfd.map(|f| f.to_string())),
        )])
    }
    fn declares(&self) -> Vec<IdRef> {
        vec![(Namespace::Device, self.id.clone())]
    }
    fn references(&self) -> Vec<IdRef> {
        self.pci.refs()
    }
    fn fds(&self) -> Vec<i32> {
        self.vhostfd.into_iter().collect()
    }
}

impl ParseDevice for Vsock {
    fn parse(opts: &[Opt]) -> Option<(usize, Self)> {
        let mut r = PropReader::new(take(opts, 0, "-device", Some("vhost-vsock-pci"))?);
        let id = r.str("id")?;
        let guest_cid = r.num("guest-cid").ok()??;
        let vhostfd = match r.str("vhostfd") {
            Some(s) => Some(s.parse::<i32>().ok().filter(|f| f.to_string() == s)?),
            None => None,
        };
        let pci = Pci::read(&mut r);
        r.done().then_some((
            1,
            Vsock {
                id,
                guest_cid,
                vhostfd,
                pci,
            },
        ))
    }
}

/// A virtio RNG (`virtio-rng-pci`) with its backend object (`rng-random` reading a file, or
/// `rng-builtin`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    /// qdev id.
    pub id: String,
    /// Backend object id.
    pub object_id: String,
    /// `Some(path)`: `rng-random` reading it; `None`: `rng-builtin`.
    pub filename: Option<String>,
    /// Rate limit: bytes per `period` ms.
    pub max_bytes: Option<u64>,
    /// Rate limit period in ms.
    pub period: Option<u64>,
    /// Placement.
    pub pci: Pci,
}

impl Device for Rng {
    fn describe(&self) -> String {
        format!("rng `{}`", self.id)
    }
    fn opts(&self) -> Result<Vec<Opt>> {
        let oid = id("object id", &self.object_id)?;
        let backend = match &self.filename {
            Some(f) => Opt::new("-object", "rng-random")
                .prop("id", oid)
                .prop("filename", f.clone()),
            None => Opt::new("-object", "rng-builtin").prop("id", oid),
        };
        Ok(vec![
            backend,
            self.pci.emit(
                Opt::new("-device", "virtio-rng-pci")
                    .prop("id", id("device id", &self.id)?)
                    .prop("rng", self.object_id.clone())
                    .prop_opt("max-bytes", self.max_bytes)
                    .prop_opt("period", self.period),
            ),
        ])
    }
    fn declares(&self) -> Vec<IdRef> {
        vec![
            (Namespace::Object, self.object_id.clone()),
            (Namespace::Device, self.id.clone()),
        ]
    }
    fn references(&self) -> Vec<IdRef> {
        self.pci.refs()
    }
}

impl ParseDevice for Rng {
    fn parse(opts: &[Opt]) -> Option<(usize, Self)> {
        let o = opts.first().filter(|o| o.flag == "-object")?;
        let mut r = PropReader::new(o);
        let object_id = r.str("id")?;
        let filename = match o.implied.as_deref()? {
            "rng-random" => Some(r.str("filename")?),
            "rng-builtin" => None,
            _ => return None,
        };
        r.done().then_some(())?;
        let mut r = PropReader::new(take(opts, 1, "-device", Some("virtio-rng-pci"))?);
        let id = r.str("id")?;
        (r.str("rng")? == object_id).then_some(())?;
        let max_bytes = r.num("max-bytes").ok()?;
        let period = r.num("period").ok()?;
        let pci = Pci::read(&mut r);
        r.done().then_some((
            2,
            Rng {
                id,
                object_id,
                filename,
                max_bytes,
                period,
                pci,
            },
        ))
    }
}

/// A memory balloon (`virtio-balloon-pci`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Balloon {
    /// qdev id.
    pub id: String,
    /// Let the guest deflate on OOM.
    pub deflate_on_oom: bool,
    /// Placement.
    pub pci: Pci,
}

impl Device for Balloon {
    fn describe(&self) -> String {
        format!("balloon `{}`", self.id)
    }
    fn opts(&self) -> Result<Vec<Opt>> {
        Ok(vec![self.pci.emit(
            Opt::new("-device", "virtio-balloon-pci")
                .prop("id", id("device id", &self.id)?)
                .flag_on("deflate-on-oom", self.deflate_on_oom),
        )])
    }
    fn declares(&self) -> Vec<IdRef> {
        vec![(Namespace::Device, self.id.clone())]
    }
    fn references(&self) -> Vec<IdRef> {
        self.pci.refs()
    }
}

impl ParseDevice for Balloon {
    fn parse(opts: &[Opt]) -> Option<(usize, Self)> {
        let mut r = PropReader::new(take(opts, 0, "-device", Some("virtio-balloon-pci"))?);
        let id = r.str("id")?;
        let deflate_on_oom = r.bool("deflate-on-oom").ok()?.unwrap_or(false);
        let pci = Pci::read(&mut r);
        r.done().then_some((
            1,
            Balloon {
                id,
                deflate_on_oom,
                pci,
            },
        ))
    }
}

/// Which IOMMU an [`Iommu`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IommuModel {
    /// `intel-iommu` (q35 only).
    Intel {
        /// `caching-mode=on` (needed for VFIO behind it).
        caching_mode: bool,
        /// `intremap=on` (needs `kernel-irqchip=split` under KVM).
        intremap: bool,
    },
    /// `virtio-iommu-pci`.
    Virtio(Pci),
}

/// An IOMMU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iommu {
    /// qdev id.
    pub id: String,
    /// The model.
    pub model: IommuModel,
}

impl Device for Iommu {
    fn describe(&self) -> String {
        format!("iommu `{}`", self.id)
    }
    fn opts(&self) -> Result<Vec<Opt>> {
        let did = id("device id", &self.id)?;
        Ok(vec![match &self.model {
            IommuModel::Intel {
                caching_mode,
                intremap,
            } => Opt::new("-device", "intel-iommu")
                .prop("id", did)
                .flag_on("caching-mode", *caching_mode)
                .flag_on("intremap", *intremap),
            IommuModel::Virtio(pci) => {
                pci.emit(Opt::new("-device", "virtio-iommu-pci").prop("id", did))
            }
        }])
    }
    fn declares(&self) -> Vec<IdRef> {
        vec![(Namespace::Device, self.id.clone())]
    }
    fn references(&self) -> Vec<IdRef> {
        match &self.model {
            IommuModel::Virtio(p) => p.refs(),
            IommuModel::Intel { .. } => Vec::new(),
        }
    }
    fn check(&self, config: &QemuConfig) -> Result<()> {
        match self.model {
            IommuModel::Intel { .. } => require_q35(config, &self.describe()),
            IommuModel::Virtio(_) => Ok(()),
        }
    }
}

impl ParseDevice for Iommu {
    fn parse(opts: &[Opt]) -> Option<(usize, Self)> {
        let o = opts.first().filter(|o| o.flag == "-device")?;
        let mut r = PropReader::new(o);
        let id = r.str("id")?;
        let model = match o.implied.as_deref()? {
            "intel-iommu" => IommuModel::Intel {
                caching_mode: r.bool("caching-mode").ok()?.unwrap_or(false),
                intremap: r.bool("intremap").ok()?.unwrap_or(false),
            },
            "virtio-iommu-pci" => IommuModel::Virtio(Pci::read(&mut r)),
            _ => return None,
        };
        r.done().then_some((1, Iommu { id, model }))
    }
}

/// A pvpanic ISA device (`pvpanic`), lets the guest report a panic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pvpanic {
    /// qdev id.
    pub id: String,
    /// I/O port (default 0x505).
    pub ioport: Option<u64>,
}

impl Device for Pvpanic {
    fn describe(&self) -> String {
        format!("pvpanic `{}`", self.id)
    }
    fn opts(&self) -> Result<Vec<Opt>> {
        Ok(vec![Opt::new("-device", "pvpanic")
            .prop("id", id("device id", &self.id)?)
            .prop_opt("ioport", self.ioport)])
    }
    fn declares(&self) -> Vec<IdRef> {
        vec![(Namespace::Device, self.id.clone())]
    }
    fn references(&self) -> Vec<IdRef> {
        vec![(Namespace::Bus(BusKind::Isa), "isa.0".into())]
    }
}

impl ParseDevice for Pvpanic {
    fn parse(opts: &[Opt]) -> Option<(usize, Self)> {
        let mut r = PropReader::new(take(opts, 0, "-device", Some("pvpanic"))?);
        let p = Pvpanic {
            id: r.str("id")?,
            ioport: r.num("ioport").ok()?,
        };
        r.done().then_some((1, p))
    }
}

/// What a [`FwCfg`] item holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FwCfgSource {
    /// The contents of a host file.
    File(String),
    /// A literal string.
    String(String),
}

/// A firmware configuration item (`-fw_cfg name=opt/...,file=|string=`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FwCfg {
    /// Item name; must start with `opt/` and be under 56 bytes.
    pub name: String,
    /// Its contents.
    pub source: FwCfgSource,
}

impl Device for FwCfg {
    fn describe(&self) -> String {
        format!("fw_cfg item {:?}", self.name)
    }
    fn opts(&self) -> Result<Vec<Opt>> {
        if !self.name.starts_with("opt/") || self.name.len() > 55 {
            return Err(Error::Unrepresentable {
                what: "fw_cfg name".into(),
                value: self.name.clone(),
                reason: "must start with \"opt/\" and be at most 55 bytes",
            });
        }
        let o = Opt::bare("-fw_cfg").prop("name", self.name.clone());
        Ok(vec![match &self.source {
            FwCfgSource::File(p) => {
                nonempty(&self.describe(), "file", p)?;
                o.prop("file", p.clone())
            }
            FwCfgSource::String(s) => o.prop("string", s.clone()),
        }])
    }
    fn declares(&self) -> Vec<IdRef> {
        vec![(Namespace::FwCfg, self.name.clone())]
    }
}

impl ParseDevice for FwCfg {
    fn parse(opts: &[Opt]) -> Option<(usize, Self)> {
        let mut r = PropReader::new(take(opts, 0, "-fw_cfg", None)?);
        let name = r.str("name")?;
        let source = match (r.str("file"), r.str("string")) {
            (Some(f), None) => FwCfgSource::File(f),
            (None, Some(s)) => FwCfgSource::String(s),
            _ => return None,
        };
        r.done().then_some((1, FwCfg { name, source }))
    }
}

// ---------------------------------------------------------------------------------------------
// memory

/// What backs a [`MemoryBackend`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    /// Anonymous memory (`memory-backend-ram`).
    Ram,
    /// A file or hugetlbfs directory (`memory-backend-file`, `mem-path=`).
    File {
        /// File or directory path.
        mem_path: String,
    },
    /// A memfd (`memory-backend-memfd`), optionally on hugetlbfs.
    Memfd {
        /// `hugetlb=on`.
        hugetlb: bool,
    },
}

/// A memory backend object (`-object memory-backend-*`), for NVDIMMs, NUMA nodes,
/// `-machine memory-backend=` or vhost-user (with `share`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryBackend {
    /// Object id.
    pub id: String,
    /// Backing kind.
    pub kind: MemoryKind,
    /// Size in bytes.
    pub size: u64,
    /// Map shared (needed by vhost-user backends).
    pub share: bool,
    /// Preallocate.
    pub prealloc: bool,
}

impl MemoryBackend {
    fn qom_type(&self) -> &'static str {
        match self.kind {
            MemoryKind::Ram => "memory-backend-ram",
            MemoryKind::File { .. } => "memory-backend-file",
            MemoryKind::Memfd { .. } => "memory-backend-memfd",
        }
    }
}

impl Device for MemoryBackend {
    fn describe(&self) -> String {
        format!("memory backend `{}`", self.id)
    }
    fn opts(&self) -> Result<Vec<Opt>> {
        if self.size == 0 {
            return Err(missing(&self.describe(), "size"));
        }
        let mut o = Opt::new("-object", self.qom_type())
            .prop("id", id("object id", &self.id)?)
            .prop("size", self.size);
        match &self.kind {
            MemoryKind::Ram => {}
            MemoryKind::File { mem_path } => {
                nonempty(&self.describe(), "mem_path", mem_path)?;
                o = o.prop("mem-path", mem_path.clone());
            }
            MemoryKind::Memfd { hugetlb } => o = o.flag_on("hugetlb", *hugetlb),
        }
        Ok(vec![o
            .flag_on("share", self.share)
            .flag_on("prealloc", self.prealloc)])
    }
    fn declares(&self) -> Vec<IdRef> {
        vec![(Namespace::Object, self.id.clone())]
    }
}

impl ParseDevice for MemoryBackend {
    fn parse(opts: &[Opt]) -> Option<(usize, Self)> {
        let o = opts.first().filter(|o| o.flag == "-object")?;
        let mut r = PropReader::new(o);
        let id = r.str("id")?;
        let size = r.num("size").ok()??;
        let kind = match o.implied.as_deref()? {
            "memory-backend-ram" => MemoryKind::Ram,
            "memory-backend-file" => MemoryKind::File {
                mem_path: r.str("mem-path")?,
            },
            "memory-backend-memfd" => MemoryKind::Memfd {
                hugetlb: r.bool("hugetlb").ok()?.unwrap_or(false),
            },
            _ => return None,
        };
        let share = r.bool("share").ok()?.unwrap_or(false);
        let prealloc = r.bool("prealloc").ok()?.unwrap_or(false);
        r.done().then_some((
            1,
            MemoryBackend {
                id,
                kind,
                size,
                share,
                prealloc,
            },
        ))
    }
}

/// An NVDIMM (`-device nvdimm`) backed by a [`MemoryBackend`]. Needs memory slots and maxmem
/// ([`crate::Memory`]) and the machine option `nvdimm=on`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nvdimm {
    /// qdev id.
    pub id: String,
    /// The memory backend object id.
    pub memdev: String,
    /// Label area size in bytes.
    pub label_size: Option<u64>,
}

impl Device for Nvdimm {
    fn describe(&self) -> String {
        format!("nvdimm `{}`", self.id)
    }
    fn opts(&self) -> Result<Vec<Opt>> {
        Ok(vec![Opt::new("-device", "nvdimm")
            .prop("id", id("device id", &self.id)?)
            .prop("memdev", self.memdev.clone())
            .prop_opt("label-size", self.label_size)])
    }
    fn declares(&self) -> Vec<IdRef> {
        vec![(Namespace::Device, self.id.clone())]
    }
    fn references(&self) -> Vec<IdRef> {
        vec![(Namespace::Object, self.memdev.clone())]
    }
    fn check(&self, config: &QemuConfig) -> Result<()> {
        let mem = config.memory.as_ref();
        if mem.and_then(|m| m.slots).unwrap_or(0) == 0 || mem.and_then(|m| m.maxmem_mib).is_none() {
            return Err(Error::Impossible(format!(
                "{} needs memory slots and maxmem (Memory::slots, Memory::maxmem_mib)",
                self.describe()
            )));
        }
        let on = config
            .machine
            .as_ref()
            .is_some_and(|m| m.options.iter().any(|(k, v)| k == "nvdimm" && v == "on"));
        if !on {
            return Err(Error::Impossible(format!(
                "{} needs the machine option nvdimm=on",
                self.describe()
            )));
        }
        Ok(())
    }
}

impl ParseDevice for Nvdimm {
    fn parse(opts: &[Opt]) -> Option<(usize, Self)> {
        let mut r = PropReader::new(take(opts, 0, "-device", Some("nvdimm"))?);
        let n = Nvdimm {
            id: r.str("id")?,
            memdev: r.str("memdev")?,
            label_size: r.num("label-size").ok()?,
        };
        r.done().then_some((1, n))
    }
}

// ---------------------------------------------------------------------------------------------
// generic

/// Any single `-device`, `-object`, `-netdev`, `-blockdev`, `-chardev` or `-fsdev` given as raw
/// properties (still escaped on output). The parser keeps options no typed kind claims as this.
///
/// Equality ignores property order, and compares values as QEMU's text syntax sees them.
///
/// Read back from a text command line, its values are [`Prop::Text`] (their QEMU types
/// unknown), so it is written in text syntax even under a JSON [`crate::Syntax`]: QEMU accepts
/// that where it would refuse `"poll-max-ns": "32"`.
///
/// Validation checks the references a generic option makes through the properties whose meaning
/// is the same on every QEMU type (see [`Generic::REFERENCE_KEYS`]): a `-device ...,drive=d0`
/// with no `-blockdev node-name=d0` is a dangling reference, as for the typed kinds. `bus=` is
/// not checked on generic devices (its kind depends on the driver).
#[derive(Clone, Debug)]
pub struct Generic {
    /// The option.
    pub opt: Opt,
}

impl Generic {
    /// Property names that name another option's id, with the namespace they name: `drive`
    /// (block node), `netdev`, `chardev`, `fsdev`, and `memdev`/`iothread`/`rng` (QOM objects);
    /// on `-blockdev` also `file` when given as a node name.
    pub const REFERENCE_KEYS: &'static [(&'static str, Namespace)] = &[
        ("drive", Namespace::Node),
        ("netdev", Namespace::Netdev),
        ("chardev", Namespace::Chardev),
        ("fsdev", Namespace::Fsdev),
        ("memdev", Namespace::Object),
        ("iothread", Namespace::Object),
        ("rng", Namespace::Object),
    ];

    /// A generic `-object QOM_TYPE,id=ID,props...`.
    pub fn object(qom_type: &str, id: &str, props: Vec<(String, Prop)>) -> Self {
        let mut opt = Opt::new("-object", qom_type).prop("id", id);
        opt.props.extend(props);
        Generic { opt }
    }

    /// A generic `-device DRIVER,id=ID,props...`.
    pub fn device(driver: &str, id: &str, props: Vec<(String, Prop)>) -> Self {
        let mut opt = Opt::new("-device", driver).prop("id", id);
        opt.props.extend(props);
        Generic { opt }
    }

    fn namespace(&self) -> Option<(Namespace, &'static str)> {
        Some(match self.opt.flag.as_str() {
            "-device" => (Namespace::Device, "id"),
            "-object" => (Namespace::Object, "id"),
            "-netdev" => (Namespace::Netdev, "id"),
            "-chardev" => (Namespace::Chardev, "id"),
            "-fsdev" => (Namespace::Fsdev, "id"),
            "-blockdev" => (Namespace::Node, "node-name"),
            _ => return None,
        })
    }

    fn sorted(&self) -> Vec<(&str, String)> {
        let mut v: Vec<_> = self
            .opt
            .props
            .iter()
            .map(|(k, p)| (k.as_str(), p.text()))
            .collect();
        v.sort();
        v
    }
}

impl PartialEq for Generic {
    fn eq(&self, other: &Self) -> bool {
        self.opt.flag == other.opt.flag
            && self.opt.implied == other.opt.implied
            && self.sorted() == other.sorted()
    }
}

impl Device for Generic {
    fn describe(&self) -> String {
        let id = self
            .namespace()
            .and_then(|(_, k)| self.opt.get(k))
            .map(Prop::text)
            .unwrap_or_default();
        format!(
            "{} {} `{id}`",
            self.opt.flag,
            self.opt.implied.as_deref().unwrap_or("")
        )
    }
    fn opts(&self) -> Result<Vec<Opt>> {
        let (_, key) = self.namespace().ok_or_else(|| Error::Unrepresentable {
            what: "generic option flag".into(),
            value: self.opt.flag.clone(),
            reason: "only -device, -object, -netdev, -blockdev, -chardev and -fsdev can be generic",
        })?;
        match self.opt.get(key) {
            Some(v) if key == "node-name" => check_node_name(&v.text())?,
            Some(v) => check_id("id", &v.text())?,
            None if self.opt.flag == "-device" => {}
            None => return Err(missing(&self.describe(), "id")),
        }
        Ok(vec![self.opt.clone()])
    }
    fn declares(&self) -> Vec<IdRef> {
        self.namespace()
            .and_then(|(ns, k)| self.opt.get(k).map(|v| vec![(ns, v.text())]))
            .unwrap_or_default()
    }
    fn references(&self) -> Vec<IdRef> {
        let mut v: Vec<IdRef> = Self::REFERENCE_KEYS
            .iter()
            .filter_map(|(k, ns)| self.opt.get(k).map(|p| (*ns, p.text())))
            .collect();
        if self.opt.flag == "-blockdev" {
            if let Some(p) = self.opt.get("file") {
                v.push((Namespace::Node, p.text()));
            }
        }
        v
    }
}

impl ParseDevice for Generic {
    fn parse(opts: &[Opt]) -> Option<(usize, Self)> {
        let g = Generic {
            opt: opts.first()?.clone(),
        };
        g.namespace()?;
        Some((1, g))
    }
}
