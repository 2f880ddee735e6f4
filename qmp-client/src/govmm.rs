//! Typed, validated VM-management helpers covering what Kata's `govmm` QMP layer offers
//! (its `Execute*` set), on top of [`Client`]. Arguments are checked before anything is sent
//! (a bad one is [`Error::InvalidArgument`]); arguments QEMU changed between versions are chosen
//! from the greeting's version.
//!
//! | govmm                                   | here                                              |
//! |-----------------------------------------|---------------------------------------------------|
//! | ExecuteQMPCapabilities                  | done by `connect`; [`Client::capabilities`]       |
//! | ExecuteStop / Cont / SystemPowerdown / Quit | [`Client::stop`] [`Client::cont`] [`Client::powerdown`] [`Client::quit`] |
//! | ExecuteBlockdevAdd(+WithCache, +WithDriverCache) / Del | [`Client::blockdev_add`] [`Client::blockdev_del`] |
//! | ExecuteDeviceAdd / SCSIDeviceAdd        | [`Client::blk_device_add`] [`Client::scsi_device_add`] |
//! | ExecuteNetdevAdd / AddByFds / Del, NetPCIDeviceAdd | [`Client::netdev_add`] [`Client::netdev_add_by_fds`] [`Client::netdev_del`] [`Client::net_device_add`] |
//! | ExecuteNetdevChardevAdd, NetCCWDeviceAdd | [`Client::netdev_add_vhost_user`] [`Client::net_ccw_device_add`] |
//! | ExecQueryCpus / ExecQueryCpusFast       | [`Client::query_cpus`]                            |
//! | ExecuteVFIODeviceAdd / PCIVFIODeviceAdd | [`Client::vfio_device_add`]                       |
//! | ExecutePCIVhostUserDevAdd               | [`Client::vhost_user_device_add`]                 |
//! | ExecuteCPUDeviceAdd, ExecQueryHotpluggableCPUs | [`Client::cpu_device_add`] [`Client::hotpluggable_cpus`] |
//! | ExecMemdevAdd / ExecHotplugMemory / NVDIMMDeviceAdd, ExecQueryMemoryDevices | [`Client::memdev_add`] [`Client::memory_device_add`] [`Client::memory_devices`] |
//! | ExecutePCIVSockAdd                      | [`Client::vsock_add`]                             |
//! | ExecuteCharDevUnixSocketAdd / ChardevDel, VirtSerialPortAdd | [`Client::chardev_add_unix_socket`] [`Client::chardev_del`] [`Client::virtio_serial_port_add`] |
//! | ExecuteDeviceDel                        | [`Client::device_del`] (and [`Client::device_del_and_wait`]) |
//! | ExecuteBalloon                          | [`Client::balloon`]                               |
//! | ExecSetMigrationCaps / SetMigrateArguments / MigrationIncoming / QueryMigration | [`Client::set_migration_capabilities`] [`Client::migrate`] (and [`Client::migrate_and_wait`]) [`Client::migrate_incoming`] [`Client::migration_progress`] |
//! | (migration parameters: max-bandwidth, downtime-limit, ...) | [`Client::set_migration_parameters`] [`Client::migration_parameters`] |
//! | ExecQueryQmpSchema / QueryStatus        | [`Client::qmp_schema`] [`Client::query_status`]   |
//! | ExecQomGet / ExecQomSet                 | [`Client::qom_get`] [`Client::qom_set`]           |
//! | ExecuteDumpGuestMemory                  | [`Client::dump_guest_memory`] [`Client::dump_guest_memory_within`] [`Client::dump_status`] |
//!
//! Block nodes sit on a regular file or a host block device ([`FileDriver`]) with a chosen AIO
//! backend ([`Blockdev::aio`]); memory backends take `pmem` and `align` for NVDIMMs
//! ([`Memdev`]); vhost-user devices take a bus and slot like govmm's.
//!
//! The blocking [`blocking::Client`](crate::blocking::Client) (feature `blocking`) has the same
//! methods with the same arguments, checks and version choices. What a helper sends is decided
//! once, in plain functions both drivers share; each driver's method only runs those commands
//! and reads the reply. The argument types here need only one of the two features.

#[cfg(feature = "async")]
use crate::Client;
use crate::{Error, EventFilter, Exec, Result};
use qmp_proto::generated::{commands as c, types as t};
use serde_json::{json, Map, Value};
#[cfg(unix)]
use std::os::fd::OwnedFd;
use std::time::Duration;

/// QEMU's limit on queue pairs of one net device (`MAX_QUEUE_NUM` in hw/net/virtio-net.c).
pub const MAX_NET_QUEUES: u32 = 1024;

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

/// QEMU's rule for `id`s and node names: a letter, then letters, digits, `-`, `.`, `_`
/// (node names at most 31 bytes).
pub fn check_id(what: &str, id: &str) -> Result<()> {
    let ok = id.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !ok {
        return Err(invalid(format!(
            "{what} {id:?}: must start with a letter and hold only letters, digits, '-', '.', '_'"
        )));
    }
    if what == "node name" && id.len() > 31 {
        return Err(invalid(format!("node name {id:?} is longer than 31 bytes")));
    }
    Ok(())
}

/// An s390 channel device number `cssid.ssid.devno`: `fe` (the virtual channel subsystem),
/// a subchannel set 0-3, and four hex digits.
pub fn check_devno(devno: &str) -> Result<()> {
    let parts: Vec<&str> = devno.split('.').collect();
    let ok = matches!(parts.as_slice(), [css, ssid, num]
        if css.eq_ignore_ascii_case("fe")
            && matches!(*ssid, "0" | "1" | "2" | "3")
            && num.len() == 4
            && num.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "devno {devno:?}: expected fe.N.XXXX (subchannel set N 0-3, XXXX hex)"
        )))
    }
}

/// A migration URI names its transport (`tcp:`, `unix:`, `fd:`, `exec:`, ...).
use crate::helpers::check_migration_uri;

/// A MAC address `xx:xx:xx:xx:xx:xx` (hex digits).
pub fn check_mac(mac: &str) -> Result<()> {
    let parts: Vec<&str> = mac.split(':').collect();
    if parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
    {
        Ok(())
    } else {
        Err(invalid(format!(
            "MAC address {mac:?} is not xx:xx:xx:xx:xx:xx"
        )))
    }
}

/// A PCI host address `DDDD:BB:SS.F` (domain optional).
pub fn check_pci_host(bdf: &str) -> Result<()> {
    let bad = || invalid(format!("PCI address {bdf:?} is not [DDDD:]BB:SS.F"));
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    let (rest, func) = bdf.rsplit_once('.').ok_or_else(bad)?;
    let parts: Vec<&str> = rest.split(':').collect();
    let ok = match parts.as_slice() {
        [d, b, s] => hex(d, 4) && hex(b, 2) && hex(s, 2),
        [b, s] => hex(b, 2) && hex(s, 2),
        _ => false,
    };
    if ok && func.len() == 1 && matches!(func.as_bytes()[0], b'0'..=b'7') {
        Ok(())
    } else {
        Err(bad())
    }
}

/// A PCI slot on a bus as `device_add` takes it (`addr`): `SLOT[.FUNCTION]`, the slot 0-0x1f
/// and the function 0-7 in hex, with or without `0x`.
pub fn check_pci_slot(addr: &str) -> Result<()> {
    let bad = || {
        invalid(format!(
            "PCI slot {addr:?} is not SLOT[.FUNCTION] (hex, slot ≤ 1f)"
        ))
    };
    let (slot, func) = match addr.split_once('.') {
        Some((s, f)) => (s, Some(f)),
        None => (addr, None),
    };
    let slot = slot.strip_prefix("0x").unwrap_or(slot);
    let slot_ok = (1..=2).contains(&slot.len())
        && slot.chars().all(|c| c.is_ascii_hexdigit())
        && u8::from_str_radix(slot, 16).is_ok_and(|n| n <= 0x1f);
    let func_ok = func.is_none_or(|f| f.len() == 1 && matches!(f.as_bytes()[0], b'0'..=b'7'));
    if slot_ok && func_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Host-side cache behaviour of a block node (`cache.direct`, `cache.no-flush`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cache {
    /// O_DIRECT on the host file (bypass the host page cache).
    pub direct: bool,
    /// Ignore guest flushes (unsafe; for throwaway disks).
    pub no_flush: bool,
}

/// A block node backed by a host file, for [`Client::blockdev_add`].
#[derive(Debug, Clone, PartialEq)]
pub struct Blockdev {
    /// The node name devices refer to.
    pub node_name: String,
    /// The host file.
    pub path: String,
    /// Image format: `raw`, `qcow2`, ...
    pub format: t::BlockdevDriver,
    /// Open read-only.
    pub read_only: bool,
    /// Cache options, applied to both the format and the file node (`None`: QEMU's defaults).
    pub cache: Option<Cache>,
    /// The protocol node under the format node: a regular file or a host block device.
    pub file_driver: FileDriver,
    /// The protocol node's AIO backend (`None`: QEMU's default, `threads`). `native` needs
    /// `cache.direct` ([`Error::InvalidArgument`] otherwise, as QEMU would refuse it);
    /// `io_uring` needs QEMU 5.0.
    pub aio: Option<t::BlockdevAioOptions>,
}

/// The protocol driver of a [`Blockdev`]'s bottom node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileDriver {
    /// `file`: a regular host file (QEMU refuses block and character devices).
    #[default]
    File,
    /// `host_device`: a host block device (`/dev/sdb`, `/dev/mapper/...`, a device node of a
    /// volume), as govmm's block devices on raw devices.
    HostDevice,
}

impl FileDriver {
    /// QEMU's driver name.
    pub fn as_str(self) -> &'static str {
        match self {
            FileDriver::File => "file",
            FileDriver::HostDevice => "host_device",
        }
    }
}

impl Blockdev {
    fn to_arguments(&self) -> Result<Value> {
        check_id("node name", &self.node_name)?;
        if self.path.is_empty() {
            return Err(invalid("blockdev path is empty"));
        }
        let mut file = json!({"driver": self.file_driver.as_str(), "filename": self.path});
        if let Some(aio) = &self.aio {
            if *aio == t::BlockdevAioOptions::Native && !self.cache.is_some_and(|c| c.direct) {
                return Err(invalid(
                    "aio=native needs cache.direct (QEMU refuses native AIO through the page cache)",
                ));
            }
            file["aio"] = json!(aio.as_str());
        }
        let mut fmt = json!({
            "driver": self.format.as_str(),
            "node-name": self.node_name,
            "read-only": self.read_only,
        });
        if let Some(cache) = self.cache {
            let c = json!({"direct": cache.direct, "no-flush": cache.no_flush});
            file["cache"] = c.clone();
            fmt["cache"] = c;
        }
        fmt["file"] = file;
        Ok(fmt)
    }
}

/// A block device (frontend) for [`Client::blk_device_add`].
#[derive(Debug, Clone, PartialEq)]
pub struct BlkDevice {
    /// Device id.
    pub id: String,
    /// The block node it shows to the guest.
    pub node_name: String,
    /// `virtio-blk-pci`, `virtio-blk-ccw`, `scsi-hd`, `ide-hd`, ...
    pub driver: String,
    /// Bus to plug into (`None`: QEMU picks).
    pub bus: Option<String>,
    /// PCI slot on that bus.
    pub addr: Option<String>,
    /// Allow other writers of the image (`share-rw`, QEMU ≥ 2.10; ignored before).
    pub share_rw: bool,
    /// Serial number shown to the guest.
    pub serial: Option<String>,
}

/// A network device for [`Client::net_device_add`].
#[derive(Debug, Clone, PartialEq)]
pub struct NetDevice {
    /// Device id.
    pub id: String,
    /// The netdev (backend) id.
    pub netdev: String,
    /// `virtio-net-pci`, `e1000`, ...
    pub driver: String,
    /// Guest MAC address.
    pub mac: Option<String>,
    /// Bus to plug into.
    pub bus: Option<String>,
    /// PCI slot on that bus.
    pub addr: Option<String>,
    /// Queue pairs (multi-queue virtio-net: sets `mq` and `vectors` = 2·queues + 2).
    pub queues: Option<u32>,
}

/// A memory backend for [`Client::memdev_add`]. `Default` gives an anonymous, private backend
/// of size 0 (not valid: set `id` and `size`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Memdev {
    /// Object id.
    pub id: String,
    /// Size in bytes (a positive multiple of 2 MiB, as DIMMs need).
    pub size: u64,
    /// Back it with this file (`memory-backend-file`); anonymous RAM otherwise.
    pub mem_path: Option<String>,
    /// Map it shared (needed by vhost-user).
    pub share: bool,
    /// The file is persistent memory (`pmem`: QEMU syncs writes as for real NVDIMM, as govmm
    /// sets it for NVDIMM backends on DAX files). Needs `mem_path` and QEMU 3.0; a QEMU built
    /// without libpmem refuses it.
    pub pmem: bool,
    /// Alignment of the mapping in bytes (`align`: e.g. 2 MiB for a device-DAX file). A power
    /// of two that divides `size`; needs `mem_path` and QEMU 2.12.
    pub align: Option<u64>,
}

/// The kind of memory device [`Client::memory_device_add`] plugs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryDeviceKind {
    /// `pc-dimm`.
    Dimm,
    /// `nvdimm` (the machine needs `nvdimm=on`).
    Nvdimm,
}

/// Settings for [`Client::dump_guest_memory`].
#[derive(Debug, Clone, PartialEq)]
pub struct Dump {
    /// Where QEMU writes: an absolute host path (sent as `file:PATH`), or one of QEMU's dump
    /// protocols as govmm passes them: `file:/absolute/path`, or `fd:NAME` for an fd handed to
    /// QEMU before with [`Client::get_fd`] under `NAME`.
    pub path: String,
    /// Walk the guest's page tables (`paging`); only for ELF.
    pub paging: bool,
    /// `elf`, `kdump-zlib`, ... (`None`: ELF).
    pub format: Option<t::DumpGuestMemoryFormat>,
}

/// One command a helper sends: its name, arguments and per-call settings (fds, timeout).
#[derive(Debug)]
pub(crate) struct Step {
    pub(crate) command: &'static str,
    pub(crate) args: Option<Value>,
    pub(crate) exec: Exec,
}

/// The commands a helper sends, in order; a driver runs them and stops at the first error.
pub(crate) type Plan = Vec<Step>;

fn one(command: &'static str, args: Value) -> Result<Plan> {
    Ok(vec![Step {
        command,
        args: Some(args),
        exec: Exec::default(),
    }])
}

/// `getfd` of `fd` as `name` (the step before a command that refers to the fd by name).
#[cfg(unix)]
fn getfd(name: &str, fd: OwnedFd) -> Result<Step> {
    Ok(Step {
        command: "getfd",
        args: Some(crate::helpers::getfd_args(name)?),
        exec: Exec::fds(vec![fd]),
    })
}

/// What each helper sends, decided once for both drivers: arguments checked and built, forms
/// chosen from the QEMU version of the greeting. The drivers' methods only run the plan and read
/// the reply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plans {
    major: u32,
    minor: u32,
}

impl Plans {
    pub(crate) fn new(greeting: &qmp_proto::Greeting) -> Self {
        let v = &greeting.version.qemu;
        Self {
            major: v.major,
            minor: v.minor,
        }
    }

    fn at_least(self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// `blockdev-add`: flat with `node-name` from 2.8, wrapped in `options` with `id` before;
    /// cache options need 2.9.
    pub(crate) fn blockdev_add(self, dev: &Blockdev) -> Result<Plan> {
        let mut args = dev.to_arguments()?;
        if dev.cache.is_some() && !self.at_least(2, 9) {
            return Err(invalid(
                "blockdev cache options need QEMU 2.9 or later (blockdev-add was experimental before)",
            ));
        }
        if dev.aio == Some(t::BlockdevAioOptions::IoUring) && !self.at_least(5, 0) {
            return Err(invalid("aio=io_uring needs QEMU 5.0 or later"));
        }
        if !self.at_least(2, 8) {
            if let Some(obj) = args.as_object_mut() {
                if let Some(name) = obj.remove("node-name") {
                    obj.insert("id".into(), name);
                }
            }
            args = json!({ "options": args });
        }
        one("blockdev-add", args)
    }

    /// `blockdev-del` from 2.9, `x-blockdev-del` by `node-name` on 2.8, by `id` before.
    pub(crate) fn blockdev_del(self, node_name: &str) -> Result<Plan> {
        check_id("node name", node_name)?;
        if self.at_least(2, 9) {
            one("blockdev-del", json!({ "node-name": node_name }))
        } else if self.at_least(2, 8) {
            one("x-blockdev-del", json!({ "node-name": node_name }))
        } else {
            one("x-blockdev-del", json!({ "id": node_name }))
        }
    }

    pub(crate) fn blk_device_add(self, dev: &BlkDevice) -> Result<Plan> {
        check_id("device id", &dev.id)?;
        check_id("node name", &dev.node_name)?;
        if dev.driver.is_empty() {
            return Err(invalid("block device driver is empty"));
        }
        let mut a = json!({"driver": dev.driver, "id": dev.id, "drive": dev.node_name});
        put_opt(&mut a, "bus", &dev.bus);
        put_opt(&mut a, "addr", &dev.addr);
        put_opt(&mut a, "serial", &dev.serial);
        if dev.share_rw && self.at_least(2, 10) {
            a["share-rw"] = json!(true);
        }
        one("device_add", a)
    }

    pub(crate) fn scsi_device_add(
        self,
        id: &str,
        node_name: &str,
        bus: &str,
        scsi_id: Option<u32>,
        lun: Option<u32>,
    ) -> Result<Plan> {
        check_id("device id", id)?;
        check_id("node name", node_name)?;
        if lun.is_some_and(|l| l > 16383) || scsi_id.is_some_and(|s| s > 255) {
            return Err(invalid("SCSI id must be ≤ 255 and LUN ≤ 16383"));
        }
        let mut a = json!({"driver": "scsi-hd", "id": id, "drive": node_name, "bus": bus});
        if let Some(s) = scsi_id {
            a["scsi-id"] = json!(s);
        }
        if let Some(l) = lun {
            a["lun"] = json!(l);
        }
        one("device_add", a)
    }

    pub(crate) fn device_del(self, id: &str) -> Result<Plan> {
        check_id("device id", id)?;
        one("device_del", json!({ "id": id }))
    }

    pub(crate) fn netdev_add(
        self,
        id: &str,
        kind: &str,
        props: Map<String, Value>,
    ) -> Result<Plan> {
        check_id("netdev id", id)?;
        if kind.is_empty() {
            return Err(invalid("netdev type is empty"));
        }
        let mut a = Value::Object(props);
        a["id"] = json!(id);
        a["type"] = json!(kind);
        one("netdev_add", a)
    }

    /// Every fd goes with its own `getfd` first, then `netdev_add` names them.
    #[cfg(unix)]
    pub(crate) fn netdev_add_by_fds(
        self,
        id: &str,
        fds: Vec<OwnedFd>,
        vhost_fds: Vec<OwnedFd>,
    ) -> Result<Plan> {
        check_id("netdev id", id)?;
        if fds.is_empty() {
            return Err(invalid("netdev_add_by_fds needs at least one tap fd"));
        }
        if !vhost_fds.is_empty() && vhost_fds.len() != fds.len() {
            return Err(invalid(format!(
                "{} vhost fds for {} tap fds: give one per queue or none",
                vhost_fds.len(),
                fds.len()
            )));
        }
        let mut plan = Vec::new();
        let mut names = Vec::new();
        for (i, fd) in fds.into_iter().enumerate() {
            let name = format!("fd-{id}-{i}");
            plan.push(getfd(&name, fd)?);
            names.push(name);
        }
        let mut vnames = Vec::new();
        for (i, fd) in vhost_fds.into_iter().enumerate() {
            let name = format!("vhostfd-{id}-{i}");
            plan.push(getfd(&name, fd)?);
            vnames.push(name);
        }
        let mut a = json!({"type": "tap", "id": id, "fds": names.join(":")});
        if !vnames.is_empty() {
            a["vhost"] = json!(true);
            a["vhostfds"] = json!(vnames.join(":"));
        }
        plan.extend(one("netdev_add", a)?);
        Ok(plan)
    }

    pub(crate) fn netdev_del(self, id: &str) -> Result<Plan> {
        check_id("netdev id", id)?;
        one("netdev_del", json!({ "id": id }))
    }

    pub(crate) fn netdev_add_vhost_user(
        self,
        id: &str,
        chardev: &str,
        queues: Option<u32>,
    ) -> Result<Plan> {
        check_id("netdev id", id)?;
        check_id("chardev id", chardev)?;
        let mut a = json!({"type": "vhost-user", "id": id, "chardev": chardev});
        match queues {
            Some(0) => return Err(invalid("queues must be at least 1")),
            Some(q) if q > MAX_NET_QUEUES => {
                return Err(invalid(format!(
                    "{q} queues; QEMU allows at most {MAX_NET_QUEUES}"
                )))
            }
            Some(q) => a["queues"] = json!(q),
            None => {}
        }
        one("netdev_add", a)
    }

    pub(crate) fn net_ccw_device_add(
        self,
        id: &str,
        netdev: &str,
        devno: &str,
        mac: Option<&str>,
    ) -> Result<Plan> {
        check_id("device id", id)?;
        check_id("netdev id", netdev)?;
        check_devno(devno)?;
        let mut a = json!({"driver": "virtio-net-ccw", "id": id, "netdev": netdev, "devno": devno});
        if let Some(mac) = mac {
            check_mac(mac)?;
            a["mac"] = json!(mac);
        }
        one("device_add", a)
    }

    /// `query-cpus-fast` from 2.12 (it does not interrupt the vCPUs), `query-cpus` before.
    pub(crate) fn query_cpus(self) -> Result<Plan> {
        let command = if self.at_least(2, 12) {
            <c::QueryCpusFast as qmp_proto::Command>::NAME
        } else {
            "query-cpus"
        };
        Ok(vec![Step {
            command,
            args: None,
            exec: Exec::default(),
        }])
    }

    /// The reply of [`query_cpus`](Self::query_cpus)'s command, as `query-cpus-fast`'s type
    /// (`query-cpus`'s fields mapped).
    pub(crate) fn cpus_reply(self, v: Value) -> Result<Vec<t::CpuInfoFast>> {
        if self.at_least(2, 12) {
            return Ok(<c::QueryCpusFast as qmp_proto::Command>::decode_return(v)?);
        }
        let bad = |why: String| {
            Error::Protocol(qmp_proto::Error::BadReturn {
                command: "query-cpus".into(),
                reason: why,
            })
        };
        let list = v
            .as_array()
            .ok_or_else(|| bad(format!("expected an array, got {v}")))?;
        list.iter()
            .map(|cpu| {
                let mut m = Map::new();
                for (old, new) in [
                    ("CPU", "cpu-index"),
                    ("qom_path", "qom-path"),
                    ("thread_id", "thread-id"),
                    ("props", "props"),
                ] {
                    if let Some(x) = cpu.get(old) {
                        m.insert(new.into(), x.clone());
                    }
                }
                serde_json::from_value(Value::Object(m)).map_err(|e| bad(e.to_string()))
            })
            .collect()
    }

    pub(crate) fn net_device_add(self, dev: &NetDevice) -> Result<Plan> {
        check_id("device id", &dev.id)?;
        check_id("netdev id", &dev.netdev)?;
        if let Some(mac) = &dev.mac {
            check_mac(mac)?;
        }
        let mut a = json!({"driver": dev.driver, "id": dev.id, "netdev": dev.netdev});
        put_opt(&mut a, "mac", &dev.mac);
        put_opt(&mut a, "bus", &dev.bus);
        put_opt(&mut a, "addr", &dev.addr);
        match dev.queues {
            Some(0) => return Err(invalid("queues must be at least 1")),
            Some(q) if q > MAX_NET_QUEUES => {
                return Err(invalid(format!(
                    "{q} queues; QEMU allows at most {MAX_NET_QUEUES}"
                )))
            }
            Some(q) if q > 1 => {
                a["mq"] = json!(true);
                a["vectors"] = json!(2 * q + 2);
            }
            _ => {}
        }
        one("device_add", a)
    }

    pub(crate) fn vfio_device_add(
        self,
        id: &str,
        driver: &str,
        host: &str,
        bus: Option<&str>,
        addr: Option<&str>,
    ) -> Result<Plan> {
        check_id("device id", id)?;
        if !driver.starts_with("vfio-") {
            return Err(invalid(format!("{driver:?} is not a vfio driver")));
        }
        let mut a = json!({"driver": driver, "id": id});
        if host.starts_with("/sys/") {
            a["sysfsdev"] = json!(host);
        } else {
            check_pci_host(host)?;
            a["host"] = json!(host);
        }
        put_opt(&mut a, "bus", &bus.map(str::to_owned));
        put_opt(&mut a, "addr", &addr.map(str::to_owned));
        one("device_add", a)
    }

    pub(crate) fn vhost_user_device_add(
        self,
        id: &str,
        driver: &str,
        chardev: &str,
        tag: Option<&str>,
        bus: Option<&str>,
        addr: Option<&str>,
    ) -> Result<Plan> {
        check_id("device id", id)?;
        check_id("chardev id", chardev)?;
        if !driver.starts_with("vhost-user-") {
            return Err(invalid(format!("{driver:?} is not a vhost-user driver")));
        }
        if let Some(bus) = bus {
            check_id("bus", bus)?;
        }
        if let Some(addr) = addr {
            check_pci_slot(addr)?;
        }
        let mut a = json!({"driver": driver, "id": id, "chardev": chardev});
        put_opt(&mut a, "bus", &bus.map(str::to_owned));
        put_opt(&mut a, "addr", &addr.map(str::to_owned));
        match (driver.starts_with("vhost-user-fs"), tag) {
            (true, Some(t)) if !t.is_empty() && t.len() <= 36 => a["tag"] = json!(t),
            (true, _) => return Err(invalid("vhost-user-fs needs a tag of 1 to 36 bytes")),
            (false, Some(_)) => return Err(invalid(format!("{driver} takes no tag"))),
            (false, None) => {}
        }
        one("device_add", a)
    }

    pub(crate) fn cpu_device_add(self, id: &str, slot: &t::HotpluggableCPU) -> Result<Plan> {
        check_id("device id", id)?;
        if slot.qom_path.is_some() {
            return Err(invalid(format!(
                "CPU slot {:?} is already plugged",
                slot.props
            )));
        }
        let mut a = serde_json::to_value(&slot.props)
            .map_err(|e| invalid(format!("CPU slot properties: {e}")))?;
        a["driver"] = json!(slot.r#type);
        a["id"] = json!(id);
        one("device_add", a)
    }

    /// `object-add` of a memory backend; its properties go in `props` before QEMU 6.0.
    pub(crate) fn memdev_add(self, m: &Memdev) -> Result<Plan> {
        check_id("object id", &m.id)?;
        if m.size == 0 || m.size % (2 << 20) != 0 {
            return Err(invalid(format!(
                "memory size {} is not a positive multiple of 2 MiB",
                m.size
            )));
        }
        if m.mem_path.is_none() && (m.pmem || m.align.is_some()) {
            return Err(invalid(
                "pmem and align are properties of a file backend: set mem_path",
            ));
        }
        if let Some(align) = m.align {
            if !align.is_power_of_two() || m.size % align != 0 {
                return Err(invalid(format!(
                    "align {align} is not a power of two dividing the size {}",
                    m.size
                )));
            }
            if !self.at_least(2, 12) {
                return Err(invalid("memory backend align needs QEMU 2.12 or later"));
            }
        }
        if m.pmem && !self.at_least(3, 0) {
            return Err(invalid("memory backend pmem needs QEMU 3.0 or later"));
        }
        let mut a = json!({"id": m.id, "size": m.size, "share": m.share});
        match &m.mem_path {
            Some(p) => {
                a["qom-type"] = json!("memory-backend-file");
                a["mem-path"] = json!(p);
                if m.pmem {
                    a["pmem"] = json!(true);
                }
                if let Some(align) = m.align {
                    a["align"] = json!(align);
                }
            }
            None => a["qom-type"] = json!("memory-backend-ram"),
        }
        if !self.at_least(6, 0) {
            let obj = a.as_object_mut().expect("built as an object");
            let mut props = Map::new();
            for k in ["size", "share", "mem-path", "pmem", "align"] {
                if let Some(v) = obj.remove(k) {
                    props.insert(k.into(), v);
                }
            }
            obj.insert("props".into(), Value::Object(props));
        }
        one("object-add", a)
    }

    pub(crate) fn object_del(self, id: &str) -> Result<Plan> {
        check_id("object id", id)?;
        one("object-del", json!({ "id": id }))
    }

    pub(crate) fn memory_device_add(
        self,
        id: &str,
        kind: MemoryDeviceKind,
        memdev: &str,
    ) -> Result<Plan> {
        check_id("device id", id)?;
        check_id("memdev id", memdev)?;
        let driver = match kind {
            MemoryDeviceKind::Dimm => "pc-dimm",
            MemoryDeviceKind::Nvdimm => "nvdimm",
        };
        one(
            "device_add",
            json!({"driver": driver, "id": id, "memdev": memdev}),
        )
    }

    /// `getfd` of the vhost fd first when one is given, then `device_add`.
    #[cfg(unix)]
    pub(crate) fn vsock_add(
        self,
        id: &str,
        guest_cid: u64,
        vhostfd: Option<OwnedFd>,
        bus: Option<&str>,
    ) -> Result<Plan> {
        check_id("device id", id)?;
        if !(3..u64::from(u32::MAX)).contains(&guest_cid) {
            return Err(invalid(format!(
                "vsock guest-cid {guest_cid} is reserved or out of range"
            )));
        }
        let mut plan = Vec::new();
        let mut a = json!({"driver": "vhost-vsock-pci", "id": id, "guest-cid": guest_cid});
        if let Some(fd) = vhostfd {
            let name = format!("vsockfd-{id}");
            plan.push(getfd(&name, fd)?);
            a["vhostfd"] = json!(name);
        }
        put_opt(&mut a, "bus", &bus.map(str::to_owned));
        plan.extend(one("device_add", a)?);
        Ok(plan)
    }

    pub(crate) fn chardev_add_unix_socket(
        self,
        id: &str,
        path: &str,
        server: bool,
    ) -> Result<Plan> {
        check_id("chardev id", id)?;
        if path.is_empty() || path.len() > 107 {
            return Err(invalid(format!(
                "unix socket path {path:?} is empty or longer than 107 bytes"
            )));
        }
        let mut data = json!({
            "addr": {"type": "unix", "data": {"path": path}},
            "server": server,
        });
        if server {
            data["wait"] = json!(false);
        }
        one(
            "chardev-add",
            json!({"id": id, "backend": {"type": "socket", "data": data}}),
        )
    }

    pub(crate) fn chardev_del(self, id: &str) -> Result<Plan> {
        check_id("chardev id", id)?;
        one("chardev-remove", json!({ "id": id }))
    }

    pub(crate) fn virtio_serial_port_add(
        self,
        id: &str,
        chardev: &str,
        name: &str,
        bus: Option<&str>,
    ) -> Result<Plan> {
        check_id("device id", id)?;
        check_id("chardev id", chardev)?;
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(invalid(format!(
                "port name {name:?} is empty or has spaces"
            )));
        }
        let mut a = json!({"driver": "virtserialport", "id": id, "chardev": chardev, "name": name});
        put_opt(&mut a, "bus", &bus.map(str::to_owned));
        one("device_add", a)
    }

    pub(crate) fn balloon(self, bytes: u64) -> Result<Plan> {
        if bytes == 0 || bytes > i64::MAX as u64 {
            return Err(invalid(format!("balloon target {bytes} is out of range")));
        }
        one("balloon", json!({ "value": bytes }))
    }

    pub(crate) fn set_migration_capabilities(
        self,
        caps: &[(t::MigrationCapability, bool)],
    ) -> Result<Plan> {
        if caps.is_empty() {
            return Err(invalid("no migration capabilities given"));
        }
        let list: Vec<Value> = caps
            .iter()
            .map(|(c, on)| json!({"capability": c.as_str(), "state": on}))
            .collect();
        one("migrate-set-capabilities", json!({ "capabilities": list }))
    }

    /// `migrate-set-parameters`; before 2.8 `downtime-limit` goes as `migrate_set_downtime`
    /// (seconds) first.
    pub(crate) fn set_migration_parameters(self, mut params: Map<String, Value>) -> Result<Plan> {
        if params.is_empty() {
            return Err(invalid("no migration parameters given"));
        }
        let mut plan = Vec::new();
        if !self.at_least(2, 8) {
            if let Some(ms) = params.remove("downtime-limit") {
                let ms = ms
                    .as_u64()
                    .ok_or_else(|| invalid("downtime-limit must be milliseconds"))?;
                plan.extend(one(
                    "migrate_set_downtime",
                    json!({"value": ms as f64 / 1000.0}),
                )?);
            }
            if params.is_empty() {
                return Ok(plan);
            }
        }
        plan.extend(one("migrate-set-parameters", Value::Object(params))?);
        Ok(plan)
    }

    pub(crate) fn migrate(self, uri: &str) -> Result<Plan> {
        check_migration_uri(uri)?;
        one("migrate", json!({ "uri": uri }))
    }

    pub(crate) fn migrate_incoming(self, uri: &str) -> Result<Plan> {
        check_migration_uri(uri)?;
        one("migrate-incoming", json!({ "uri": uri }))
    }

    /// `dump-guest-memory`, detached from QEMU 2.6 on (the command returns at once and
    /// DUMP_COMPLETED, the returned filter, says when it is over); before 2.6 it runs
    /// synchronously, within `timeout` instead of the default command timeout.
    pub(crate) fn dump_guest_memory(
        self,
        dump: &Dump,
        timeout: Duration,
    ) -> Result<(Step, Option<EventFilter>)> {
        let protocol = dump_protocol(&dump.path)?;
        let elf = matches!(dump.format, None | Some(t::DumpGuestMemoryFormat::Elf));
        if dump.paging && !elf {
            return Err(invalid("paging is only possible with the ELF format"));
        }
        let mut a = json!({"paging": dump.paging, "protocol": protocol});
        if let Some(f) = &dump.format {
            a["format"] = json!(f.as_str());
        }
        let (exec, done) = if self.at_least(2, 6) {
            a["detach"] = json!(true);
            (Exec::default(), Some(EventFilter::name("DUMP_COMPLETED")))
        } else {
            (Exec::timeout(timeout), None)
        };
        let step = Step {
            command: "dump-guest-memory",
            args: Some(a),
            exec,
        };
        Ok((step, done))
    }
}

/// A dump's destination as QEMU's `protocol`: an absolute path becomes `file:PATH`; `file:`
/// needs an absolute path, `fd:` an fd name; nothing else is a dump protocol.
fn dump_protocol(path: &str) -> Result<String> {
    if path.starts_with('/') {
        return Ok(format!("file:{path}"));
    }
    if let Some(file) = path.strip_prefix("file:") {
        if file.starts_with('/') {
            return Ok(path.to_owned());
        }
    } else if let Some(name) = path.strip_prefix("fd:") {
        if !name.is_empty() && !name.contains(char::is_whitespace) {
            return Ok(path.to_owned());
        }
        return Err(invalid(format!(
            "dump target {path:?}: fd: needs the name an fd was passed under with getfd"
        )));
    }
    Err(invalid(format!(
        "dump path {path:?} must be absolute, file:/absolute/path or fd:NAME"
    )))
}

/// A detached dump's DUMP_COMPLETED: its `error` (set when the dump failed) as QEMU's error of
/// `dump-guest-memory`.
pub(crate) fn dump_completed(event: &qmp_proto::Event) -> Result<()> {
    match event.data.get("error").and_then(Value::as_str) {
        None => Ok(()),
        Some(desc) => Err(Error::Qmp {
            command: "dump-guest-memory".into(),
            error: qmp_proto::QmpError {
                class: qmp_proto::ErrorClass::GenericError,
                desc: desc.to_owned(),
            },
        }),
    }
}

/// `quit`'s outcome: QEMU may close the connection before it replies, which counts as success.
pub(crate) fn quit_reply<T>(r: Result<T>) -> Result<()> {
    match r {
        Ok(_) | Err(Error::Closed { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The helper methods, written once for both drivers: `govmm_methods!(async; .await)` for the
/// async [`Client`], `govmm_methods!(;)` for [`blocking::Client`](crate::blocking::Client). Each
/// runs what [`Plans`] decided, or a typed command, and reads the reply; nothing else.
macro_rules! govmm_methods {
    ($($async:ident)?; $($await:tt)*) => {
        fn govmm_plans(&self) -> Plans {
            Plans::new(self.greeting())
        }

        /// Run a plan's commands in order; the last one's value.
        $($async)? fn run_plan(&self, plan: Result<Plan>) -> Result<Value> {
            let mut last = Value::Null;
            for step in plan? {
                last = self.execute_with(step.command, step.args, step.exec) $($await)* ?;
            }
            Ok(last)
        }

        /// The capabilities QEMU offered in its greeting (negotiation itself is done by
        /// `connect`, which is what govmm's `ExecuteQMPCapabilities` does).
        pub fn capabilities(&self) -> &[String] {
            &self.greeting().capabilities
        }

        /// `stop`: pause the guest's vCPUs.
        pub $($async)? fn stop(&self) -> Result<()> {
            self.call(&c::Stop {}) $($await)* .map(drop)
        }

        /// `cont`: resume the guest's vCPUs.
        pub $($async)? fn cont(&self) -> Result<()> {
            self.call(&c::Cont {}) $($await)* .map(drop)
        }

        /// `system_powerdown`: press the ACPI power button (see
        /// [`system_powerdown_and_wait`](Self::system_powerdown_and_wait) to wait for the
        /// shutdown).
        pub $($async)? fn powerdown(&self) -> Result<()> {
            self.call(&c::SystemPowerdown {}) $($await)* .map(drop)
        }

        /// `quit`: end QEMU at once. QEMU may close the connection before it replies; that
        /// counts as success.
        pub $($async)? fn quit(&self) -> Result<()> {
            quit_reply(self.call(&c::Quit {}) $($await)*)
        }

        /// `query-status`, typed.
        pub $($async)? fn query_status(&self) -> Result<t::StatusInfo> {
            self.call(&c::QueryStatus {}) $($await)*
        }

        /// `query-qmp-schema`: the peer's own schema (what it really accepts).
        pub $($async)? fn qmp_schema(&self) -> Result<Vec<t::SchemaInfo>> {
            self.call(&c::QueryQmpSchema {}) $($await)*
        }

        /// `blockdev-add` of a format node over a file node, with cache options.
        ///
        /// Older QEMUs, as govmm handles them: from 2.8 on the arguments are flat and the node
        /// is named by `node-name`; before 2.8 they are wrapped in `options` and the name goes
        /// in `id` (QEMU then also creates a block backend of that name). Cache options need
        /// QEMU 2.9 ([`Error::InvalidArgument`] before).
        pub $($async)? fn blockdev_add(&self, dev: &Blockdev) -> Result<()> {
            self.run_plan(self.govmm_plans().blockdev_add(dev)) $($await)* .map(drop)
        }

        /// `blockdev-del` (before QEMU 2.9 `x-blockdev-del`, which takes the name as `id`
        /// before 2.8: see [`blockdev_add`](Self::blockdev_add)).
        pub $($async)? fn blockdev_del(&self, node_name: &str) -> Result<()> {
            self.run_plan(self.govmm_plans().blockdev_del(node_name)) $($await)* .map(drop)
        }

        /// `device_add` of a block device over a node.
        pub $($async)? fn blk_device_add(&self, dev: &BlkDevice) -> Result<()> {
            self.run_plan(self.govmm_plans().blk_device_add(dev)) $($await)* .map(drop)
        }

        /// `device_add` of a `scsi-hd` at `scsi_id`/`lun` on a SCSI controller's `bus`
        /// (e.g. `scsi0.0`).
        pub $($async)? fn scsi_device_add(
            &self,
            id: &str,
            node_name: &str,
            bus: &str,
            scsi_id: Option<u32>,
            lun: Option<u32>,
        ) -> Result<()> {
            let plan = self.govmm_plans().scsi_device_add(id, node_name, bus, scsi_id, lun);
            self.run_plan(plan) $($await)* .map(drop)
        }

        /// `device_del` (returns once QEMU accepted it; the device goes when the guest lets
        /// go: [`device_del_and_wait`](Self::device_del_and_wait) waits for that).
        pub $($async)? fn device_del(&self, id: &str) -> Result<()> {
            self.run_plan(self.govmm_plans().device_del(id)) $($await)* .map(drop)
        }

        /// `netdev_add` of any backend type (`user`, `socket`, `tap`, ...) with its properties.
        pub $($async)? fn netdev_add(
            &self,
            id: &str,
            kind: &str,
            props: Map<String, Value>,
        ) -> Result<()> {
            self.run_plan(self.govmm_plans().netdev_add(id, kind, props)) $($await)* .map(drop)
        }

        /// A tap netdev over already-open tap fds (one per queue), with optional vhost-net fds
        /// (as many as `fds`): each fd goes to QEMU with `getfd` first.
        #[cfg(unix)]
        pub $($async)? fn netdev_add_by_fds(
            &self,
            id: &str,
            fds: Vec<OwnedFd>,
            vhost_fds: Vec<OwnedFd>,
        ) -> Result<()> {
            let plan = self.govmm_plans().netdev_add_by_fds(id, fds, vhost_fds);
            self.run_plan(plan) $($await)* .map(drop)
        }

        /// `netdev_del`.
        pub $($async)? fn netdev_del(&self, id: &str) -> Result<()> {
            self.run_plan(self.govmm_plans().netdev_del(id)) $($await)* .map(drop)
        }

        /// A vhost-user netdev over an existing chardev (govmm's `ExecuteNetdevChardevAdd`),
        /// with `queues` queue pairs (`None`: QEMU's default of 1).
        pub $($async)? fn netdev_add_vhost_user(
            &self,
            id: &str,
            chardev: &str,
            queues: Option<u32>,
        ) -> Result<()> {
            let plan = self.govmm_plans().netdev_add_vhost_user(id, chardev, queues);
            self.run_plan(plan) $($await)* .map(drop)
        }

        /// `device_add` of an s390 channel-attached NIC (`virtio-net-ccw`) over a netdev, at
        /// `devno` (`fe.0.0001`: channel subsystem `fe`, subchannel set 0-3, device number in
        /// hex), as govmm's `ExecuteNetCCWDeviceAdd`. Only an s390x QEMU has the device.
        pub $($async)? fn net_ccw_device_add(
            &self,
            id: &str,
            netdev: &str,
            devno: &str,
            mac: Option<&str>,
        ) -> Result<()> {
            let plan = self.govmm_plans().net_ccw_device_add(id, netdev, devno, mac);
            self.run_plan(plan) $($await)* .map(drop)
        }

        /// The vCPUs (govmm's `ExecQueryCpus`/`ExecQueryCpusFast`): `query-cpus-fast` (QEMU
        /// 2.12 and later, which does not interrupt the vCPUs); on older QEMU, `query-cpus`
        /// with its fields mapped to the same type.
        pub $($async)? fn query_cpus(&self) -> Result<Vec<t::CpuInfoFast>> {
            let plans = self.govmm_plans();
            plans.cpus_reply(self.run_plan(plans.query_cpus()) $($await)* ?)
        }

        /// `device_add` of a network device over a netdev.
        pub $($async)? fn net_device_add(&self, dev: &NetDevice) -> Result<()> {
            self.run_plan(self.govmm_plans().net_device_add(dev)) $($await)* .map(drop)
        }

        /// `device_add` of a VFIO device: `host` is a PCI address (`0000:01:00.0`) or a sysfs
        /// path (`/sys/bus/mdev/devices/<uuid>` for mediated devices). `driver` is
        /// `vfio-pci` (`vfio-ccw`, `vfio-ap` on s390).
        pub $($async)? fn vfio_device_add(
            &self,
            id: &str,
            driver: &str,
            host: &str,
            bus: Option<&str>,
            addr: Option<&str>,
        ) -> Result<()> {
            let plan = self.govmm_plans().vfio_device_add(id, driver, host, bus, addr);
            self.run_plan(plan) $($await)* .map(drop)
        }

        /// `device_add` of a vhost-user device over a unix-socket chardev: `driver` is
        /// `vhost-user-blk-pci`, `vhost-user-scsi-pci`, `vhost-user-fs-pci` (needs `tag`) or
        /// `virtio-net-pci` over a vhost-user netdev (use
        /// [`net_device_add`](Self::net_device_add) for that). `bus` and `addr` plug it into a
        /// given slot (`addr`: `SLOT[.FUNCTION]` in hex, e.g. `0x3` or `1f.2`) of a PCI bus or
        /// bridge, as govmm's `ExecutePCIVhostUserDevAdd`; `None`: QEMU picks.
        pub $($async)? fn vhost_user_device_add(
            &self,
            id: &str,
            driver: &str,
            chardev: &str,
            tag: Option<&str>,
            bus: Option<&str>,
            addr: Option<&str>,
        ) -> Result<()> {
            let plan = self
                .govmm_plans()
                .vhost_user_device_add(id, driver, chardev, tag, bus, addr);
            self.run_plan(plan) $($await)* .map(drop)
        }

        /// `query-hotpluggable-cpus`, typed.
        pub $($async)? fn hotpluggable_cpus(&self) -> Result<Vec<t::HotpluggableCPU>> {
            self.call(&c::QueryHotpluggableCpus {}) $($await)*
        }

        /// Plug a vCPU into a free slot from [`hotpluggable_cpus`](Self::hotpluggable_cpus)
        /// (one without `qom_path`), with its socket/core/thread/die ids.
        pub $($async)? fn cpu_device_add(&self, id: &str, slot: &t::HotpluggableCPU) -> Result<()> {
            self.run_plan(self.govmm_plans().cpu_device_add(id, slot)) $($await)* .map(drop)
        }

        /// `object-add` of a RAM or file memory backend (QEMU before 6.0 takes the backend's
        /// properties in a `props` member: sent that way there).
        pub $($async)? fn memdev_add(&self, m: &Memdev) -> Result<()> {
            self.run_plan(self.govmm_plans().memdev_add(m)) $($await)* .map(drop)
        }

        /// `object-del`.
        pub $($async)? fn object_del(&self, id: &str) -> Result<()> {
            self.run_plan(self.govmm_plans().object_del(id)) $($await)* .map(drop)
        }

        /// `device_add` of a DIMM or NVDIMM over a memory backend.
        pub $($async)? fn memory_device_add(
            &self,
            id: &str,
            kind: MemoryDeviceKind,
            memdev: &str,
        ) -> Result<()> {
            let plan = self.govmm_plans().memory_device_add(id, kind, memdev);
            self.run_plan(plan) $($await)* .map(drop)
        }

        /// `query-memory-devices`, typed.
        pub $($async)? fn memory_devices(&self) -> Result<Vec<t::MemoryDeviceInfo>> {
            self.call(&c::QueryMemoryDevices {}) $($await)*
        }

        /// `device_add` of a `vhost-vsock-pci` with the guest's context id (3 ..= u32::MAX - 1;
        /// 0-2 are reserved). `vhostfd`, if given, is an open `/dev/vhost-vsock` passed first.
        #[cfg(unix)]
        pub $($async)? fn vsock_add(
            &self,
            id: &str,
            guest_cid: u64,
            vhostfd: Option<OwnedFd>,
            bus: Option<&str>,
        ) -> Result<()> {
            let plan = self.govmm_plans().vsock_add(id, guest_cid, vhostfd, bus);
            self.run_plan(plan) $($await)* .map(drop)
        }

        /// `chardev-add` of a unix socket chardev (`server`: QEMU listens, without waiting).
        pub $($async)? fn chardev_add_unix_socket(
            &self,
            id: &str,
            path: &str,
            server: bool,
        ) -> Result<()> {
            let plan = self.govmm_plans().chardev_add_unix_socket(id, path, server);
            self.run_plan(plan) $($await)* .map(drop)
        }

        /// `chardev-remove`.
        pub $($async)? fn chardev_del(&self, id: &str) -> Result<()> {
            self.run_plan(self.govmm_plans().chardev_del(id)) $($await)* .map(drop)
        }

        /// `device_add` of a `virtserialport` named `name` on a virtio-serial controller's bus
        /// (e.g. `vser0.0`), over `chardev`.
        pub $($async)? fn virtio_serial_port_add(
            &self,
            id: &str,
            chardev: &str,
            name: &str,
            bus: Option<&str>,
        ) -> Result<()> {
            let plan = self.govmm_plans().virtio_serial_port_add(id, chardev, name, bus);
            self.run_plan(plan) $($await)* .map(drop)
        }

        /// `balloon`: ask the guest to shrink to `bytes` (needs a balloon device).
        pub $($async)? fn balloon(&self, bytes: u64) -> Result<()> {
            self.run_plan(self.govmm_plans().balloon(bytes)) $($await)* .map(drop)
        }

        /// `query-balloon`: the guest's current size in bytes.
        pub $($async)? fn balloon_actual(&self) -> Result<u64> {
            self.call(&c::QueryBalloon {}) $($await)* .map(|b| b.actual as u64)
        }

        /// `migrate-set-capabilities`.
        pub $($async)? fn set_migration_capabilities(
            &self,
            caps: &[(t::MigrationCapability, bool)],
        ) -> Result<()> {
            let plan = self.govmm_plans().set_migration_capabilities(caps);
            self.run_plan(plan) $($await)* .map(drop)
        }

        /// `query-migrate-capabilities`, typed.
        pub $($async)? fn migration_capabilities(&self) -> Result<Vec<t::MigrationCapabilityStatus>> {
            self.call(&c::QueryMigrateCapabilities {}) $($await)*
        }

        /// `migrate-set-parameters` with the members to change (e.g. `max-bandwidth`,
        /// `downtime-limit`). QEMU before 2.8 lacks `downtime-limit`: it is sent there as
        /// `migrate_set_downtime` (seconds).
        pub $($async)? fn set_migration_parameters(&self, params: Map<String, Value>) -> Result<()> {
            let plan = self.govmm_plans().set_migration_parameters(params);
            self.run_plan(plan) $($await)* .map(drop)
        }

        /// `query-migrate-parameters`, typed.
        pub $($async)? fn migration_parameters(&self) -> Result<t::MigrationParameters> {
            self.call(&c::QueryMigrateParameters {}) $($await)*
        }

        /// `migrate` to `uri` (govmm's `ExecSetMigrateArguments`); returns once QEMU started
        /// the migration. Follow it with [`migration_progress`](Self::migration_progress), or
        /// use [`migrate_and_wait`](Self::migrate_and_wait).
        pub $($async)? fn migrate(&self, uri: &str) -> Result<()> {
            self.run_plan(self.govmm_plans().migrate(uri)) $($await)* .map(drop)
        }

        /// `migrate-incoming` (QEMU started with `-incoming defer`).
        pub $($async)? fn migrate_incoming(&self, uri: &str) -> Result<()> {
            self.run_plan(self.govmm_plans().migrate_incoming(uri)) $($await)* .map(drop)
        }

        /// `qom-get`.
        pub $($async)? fn qom_get(&self, path: &str, property: &str) -> Result<Value> {
            self.call(&c::QomGet {
                path: path.into(),
                property: property.into(),
            }) $($await)*
        }

        /// `qom-set`.
        pub $($async)? fn qom_set(&self, path: &str, property: &str, value: Value) -> Result<()> {
            self.call(&c::QomSet {
                path: path.into(),
                property: property.into(),
                value,
            }) $($await)* .map(drop)
        }

        /// `dump-guest-memory`, returning when the dump is written: as long as that takes (a
        /// big guest's dump outlasts the default command timeout), until QEMU reports it over
        /// or the connection ends. See [`dump_guest_memory_within`](Self::dump_guest_memory_within)
        /// for a bound.
        pub $($async)? fn dump_guest_memory(&self, dump: &Dump) -> Result<()> {
            self.dump_guest_memory_within(dump, Duration::MAX) $($await)*
        }

        /// `dump-guest-memory` with `detach` (QEMU 2.6 and later), then wait up to `timeout`
        /// for DUMP_COMPLETED; a dump QEMU reports failed is [`Error::Qmp`] with its reason.
        /// Out of time, [`Error::EventTimeout`]: QEMU has no way to cancel a dump, it goes on
        /// writing (follow it with [`dump_status`](Self::dump_status)); a new dump is refused
        /// until it ends. Before QEMU 2.6 the dump runs synchronously with `timeout` as the
        /// command's timeout.
        pub $($async)? fn dump_guest_memory_within(&self, dump: &Dump, timeout: Duration) -> Result<()> {
            let (step, done) = self.govmm_plans().dump_guest_memory(dump, timeout)?;
            match done {
                Some(filter) => {
                    let (_, event) = self
                        .execute_then_wait_event(step.command, step.args, filter, timeout)
                        $($await)* ?;
                    dump_completed(&event)
                }
                None => self.execute_with(step.command, step.args, step.exec) $($await)* .map(drop),
            }
        }

        /// `query-dump`: the state and progress (bytes written of the total) of the latest dump.
        pub $($async)? fn dump_status(&self) -> Result<t::DumpQueryResult> {
            self.call(&c::QueryDump {}) $($await)*
        }
    };
}

#[cfg(feature = "async")]
impl Client {
    govmm_methods!(async; .await);
}

#[cfg(feature = "blocking")]
impl crate::blocking::Client {
    govmm_methods!(;);
}

fn put_opt(a: &mut Value, key: &str, v: &Option<String>) {
    if let Some(v) = v {
        a[key] = json!(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(check_id("device id", "vblk0").is_ok());
        assert!(check_id("device id", "a.b-c_d").is_ok());
        for bad in ["", "0abc", "a b", "a/b", "-x"] {
            assert!(
                matches!(check_id("device id", bad), Err(Error::InvalidArgument(_))),
                "{bad:?}"
            );
        }
        assert!(check_id("node name", &"n".repeat(31)).is_ok());
        assert!(check_id("node name", &"n".repeat(32)).is_err());
    }

    #[test]
    fn macs_and_pci_addresses() {
        assert!(check_mac("52:54:00:12:34:56").is_ok());
        for bad in [
            "52:54:00:12:34",
            "52-54-00-12-34-56",
            "zz:54:00:12:34:56",
            "",
        ] {
            assert!(check_mac(bad).is_err(), "{bad:?}");
        }
        assert!(check_pci_host("0000:01:00.0").is_ok());
        assert!(check_pci_host("01:1f.7").is_ok());
        for bad in ["0000:01:00", "0000:01:00.8", "1:00.0", "0000:01:0g.0", ""] {
            assert!(check_pci_host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn blockdev_arguments_carry_cache_to_both_nodes() {
        let b = Blockdev {
            node_name: "disk0".into(),
            path: "/tmp/x.qcow2".into(),
            format: t::BlockdevDriver::Qcow2,
            read_only: true,
            cache: Some(Cache {
                direct: true,
                no_flush: false,
            }),
            file_driver: FileDriver::File,
            aio: None,
        };
        let a = b.to_arguments().unwrap();
        assert_eq!(a["file"]["driver"], "file");
        assert!(a["file"].get("aio").is_none());
        assert_eq!(a["driver"], "qcow2");
        assert_eq!(a["read-only"], true);
        assert_eq!(a["cache"]["direct"], true);
        assert_eq!(a["file"]["cache"]["no-flush"], false);
        assert_eq!(a["file"]["filename"], "/tmp/x.qcow2");
        let bad = Blockdev {
            node_name: "has space".into(),
            ..b.clone()
        };
        assert!(bad.to_arguments().is_err());
        let empty = Blockdev {
            path: String::new(),
            ..b.clone()
        };
        assert!(empty.to_arguments().is_err());

        // host_device and aio go on the protocol node only.
        let dev = Blockdev {
            file_driver: FileDriver::HostDevice,
            aio: Some(t::BlockdevAioOptions::Native),
            ..b.clone()
        };
        let a = dev.to_arguments().unwrap();
        assert_eq!(a["file"]["driver"], "host_device");
        assert_eq!(a["file"]["aio"], "native");
        assert!(a.get("aio").is_none());
        // native without O_DIRECT: refused before sending, as QEMU would.
        for cache in [None, Some(Cache::default())] {
            let bad = Blockdev {
                cache,
                ..dev.clone()
            };
            assert!(matches!(
                bad.to_arguments(),
                Err(Error::InvalidArgument(m)) if m.contains("cache.direct")
            ));
        }
        let uring = Blockdev {
            aio: Some(t::BlockdevAioOptions::IoUring),
            cache: None,
            ..b
        };
        assert_eq!(uring.to_arguments().unwrap()["file"]["aio"], "io_uring");
        assert!(plans(5, 0).blockdev_add(&uring).is_ok());
        assert!(matches!(
            plans(4, 2).blockdev_add(&uring),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn pci_slots() {
        for ok in ["3", "0x3", "1f", "1f.7", "0x05.1", "00"] {
            assert!(check_pci_slot(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "", "20", "0x20", "1.8", "1.", "+1", "g", "123", "01:02.0", "1.00",
        ] {
            assert!(check_pci_slot(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn vhost_user_bus_and_addr() {
        assert_eq!(
            commands(plans(7, 2).vhost_user_device_add(
                "vb0",
                "vhost-user-blk-pci",
                "ch0",
                None,
                Some("br1"),
                Some("0x3")
            )),
            [(
                "device_add",
                json!({"driver": "vhost-user-blk-pci", "id": "vb0", "chardev": "ch0",
                    "bus": "br1", "addr": "0x3"})
            )]
        );
        let plain = commands(plans(7, 2).vhost_user_device_add(
            "fs0",
            "vhost-user-fs-pci",
            "ch0",
            Some("tag0"),
            None,
            None,
        ));
        assert!(plain[0].1.get("bus").is_none() && plain[0].1.get("addr").is_none());
        for (bus, addr) in [
            (Some("a b"), None),
            (None, Some("0x40")),
            (None, Some("3.9")),
        ] {
            assert!(matches!(
                plans(7, 2).vhost_user_device_add(
                    "vb0",
                    "vhost-user-blk-pci",
                    "ch0",
                    None,
                    bus,
                    addr
                ),
                Err(Error::InvalidArgument(_))
            ));
        }
    }

    #[test]
    fn memdev_pmem_and_align() {
        let nv = Memdev {
            id: "nvm0".into(),
            size: 4 << 20,
            mem_path: Some("/var/tmp/nv".into()),
            share: true,
            pmem: true,
            align: Some(2 << 20),
        };
        let a = commands(plans(7, 2).memdev_add(&nv));
        assert_eq!(
            a,
            [(
                "object-add",
                json!({"qom-type": "memory-backend-file", "id": "nvm0", "size": 4 << 20,
                    "share": true, "mem-path": "/var/tmp/nv", "pmem": true, "align": 2 << 20})
            )]
        );
        // Before 6.0 in `props`, with the rest.
        let a = commands(plans(5, 2).memdev_add(&nv));
        assert_eq!(a[0].1["props"]["pmem"], true);
        assert_eq!(a[0].1["props"]["align"], 2 << 20);
        assert!(a[0].1.get("pmem").is_none());
        // Off: not sent at all.
        let plain = Memdev {
            pmem: false,
            align: None,
            ..nv.clone()
        };
        let a = commands(plans(7, 2).memdev_add(&plain));
        assert!(a[0].1.get("pmem").is_none() && a[0].1.get("align").is_none());
        let bad = |m: Memdev, p: Plans| matches!(p.memdev_add(&m), Err(Error::InvalidArgument(_)));
        let ram = Memdev {
            mem_path: None,
            ..nv.clone()
        };
        assert!(bad(ram.clone(), plans(7, 2)));
        assert!(bad(Memdev { pmem: false, ..ram }, plans(7, 2)));
        for align in [0, 3 << 20, 8 << 20] {
            assert!(
                bad(
                    Memdev {
                        align: Some(align),
                        ..nv.clone()
                    },
                    plans(7, 2)
                ),
                "{align}"
            );
        }
        assert!(bad(nv.clone(), plans(2, 12)));
        assert!(!bad(
            Memdev {
                align: None,
                ..nv.clone()
            },
            plans(3, 0)
        ));
        assert!(bad(Memdev { pmem: false, ..nv }, plans(2, 11)));
    }

    fn plans(major: u32, minor: u32) -> Plans {
        Plans { major, minor }
    }

    fn commands(plan: Result<Plan>) -> Vec<(&'static str, Value)> {
        plan.unwrap()
            .into_iter()
            .map(|s| (s.command, s.args.unwrap_or(Value::Null)))
            .collect()
    }

    /// The plans both drivers run: forms chosen by version, several steps where govmm sends
    /// several commands, nothing planned for a bad argument.
    #[test]
    fn plans_choose_forms_and_steps() {
        assert_eq!(
            commands(plans(7, 2).blockdev_del("d0")),
            [("blockdev-del", json!({"node-name": "d0"}))]
        );
        assert_eq!(
            commands(plans(2, 7).blockdev_del("d0")),
            [("x-blockdev-del", json!({"id": "d0"}))]
        );
        assert_eq!(commands(plans(2, 11).query_cpus())[0].0, "query-cpus");
        assert_eq!(commands(plans(2, 12).query_cpus())[0].0, "query-cpus-fast");
        let downtime = Map::from_iter([("downtime-limit".to_owned(), json!(1500))]);
        assert_eq!(
            commands(plans(2, 7).set_migration_parameters(downtime.clone())),
            [("migrate_set_downtime", json!({"value": 1.5}))]
        );
        assert_eq!(
            commands(plans(7, 2).set_migration_parameters(downtime)),
            [("migrate-set-parameters", json!({"downtime-limit": 1500}))]
        );
        assert!(matches!(
            plans(7, 2).set_migration_parameters(Map::new()),
            Err(Error::InvalidArgument(_))
        ));
        #[cfg(unix)]
        {
            let fd = || -> OwnedFd { std::os::unix::net::UnixStream::pair().unwrap().0.into() };
            let plan = plans(7, 2)
                .netdev_add_by_fds("tap0", vec![fd(), fd()], vec![fd(), fd()])
                .unwrap();
            let names: Vec<&str> = plan.iter().map(|s| s.command).collect();
            assert_eq!(names, ["getfd", "getfd", "getfd", "getfd", "netdev_add"]);
            assert!(plan[..4].iter().all(|s| s.exec.fds.len() == 1));
            assert_eq!(
                plan[4].args,
                Some(
                    json!({"type": "tap", "id": "tap0", "fds": "fd-tap0-0:fd-tap0-1",
                    "vhost": true, "vhostfds": "vhostfd-tap0-0:vhostfd-tap0-1"})
                )
            );
            assert!(plans(7, 2)
                .netdev_add_by_fds("tap0", vec![fd()], vec![fd(), fd()])
                .is_err());
        }
    }

    #[test]
    fn dump_protocols_and_forms() {
        let dump = |path: &str| Dump {
            path: path.into(),
            paging: false,
            format: None,
        };
        let wait = Duration::from_secs(5);
        for (given, sent) in [
            ("/var/tmp/a.core", "file:/var/tmp/a.core"),
            ("file:/var/tmp/a.core", "file:/var/tmp/a.core"),
            ("fd:dumpfd", "fd:dumpfd"),
        ] {
            let (step, done) = plans(7, 2).dump_guest_memory(&dump(given), wait).unwrap();
            let args = step.args.unwrap();
            assert_eq!(args["protocol"], sent);
            assert_eq!(args["detach"], true);
            assert_eq!(step.exec.timeout, None);
            assert_eq!(done, Some(EventFilter::name("DUMP_COMPLETED")));
        }
        for bad in [
            "a.core",
            "file:a.core",
            "fd:",
            "fd:a b",
            "tcp:1.2.3.4:5",
            "",
        ] {
            assert!(
                matches!(
                    plans(7, 2).dump_guest_memory(&dump(bad), wait),
                    Err(Error::InvalidArgument(_))
                ),
                "{bad:?}"
            );
        }
        let paged = Dump {
            paging: true,
            format: Some(t::DumpGuestMemoryFormat::KdumpZlib),
            ..dump("/a")
        };
        assert!(plans(7, 2).dump_guest_memory(&paged, wait).is_err());
        // Before 2.6: synchronous, with the caller's timeout.
        let (step, done) = plans(2, 5).dump_guest_memory(&dump("/a"), wait).unwrap();
        assert!(step.args.unwrap().get("detach").is_none());
        assert_eq!((step.exec.timeout, done), (Some(wait), None));

        let ev = |data: Value| qmp_proto::Event {
            event: "DUMP_COMPLETED".into(),
            data,
            timestamp: qmp_proto::Timestamp {
                seconds: 1,
                microseconds: 0,
            },
        };
        let result = json!({"status": "completed", "completed": 10, "total": 10});
        assert!(dump_completed(&ev(json!({ "result": result }))).is_ok());
        let failed = ev(
            json!({"result": {"status": "failed", "completed": 1, "total": 10},
            "error": "disk full"}),
        );
        assert!(matches!(
            dump_completed(&failed),
            Err(Error::Qmp { error, .. }) if error.desc == "disk full"
        ));
    }
}
