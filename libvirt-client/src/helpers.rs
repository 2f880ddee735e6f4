//! Typed helpers over the generated methods (what go-libvirt offers, and a bit more), on both
//! clients: versions, domains and their state, lifecycle, XML, QMP through libvirt, secrets,
//! storage pools, block IO tuning.

use libvirt_proto::generated::api::DomainState;
use libvirt_proto::generated::remote::{
    RemoteNonnullDomain, RemoteNonnullSecret, RemoteNonnullStoragePool, RemoteTypedParam,
    RemoteTypedParamValue,
};

use crate::Error;

/// A domain reference as the daemon returns it (name, UUID, id; id is -1 when inactive).
pub type Domain = RemoteNonnullDomain;
/// A secret reference.
pub type Secret = RemoteNonnullSecret;
/// A storage pool reference.
pub type StoragePool = RemoteNonnullStoragePool;

/// A libvirt version number (`major * 1_000_000 + minor * 1_000 + micro`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Micro (release).
    pub micro: u32,
}

impl Version {
    /// Split libvirt's packed form.
    pub fn from_packed(v: u64) -> Version {
        Version {
            major: u32::try_from(v / 1_000_000).unwrap_or(u32::MAX),
            minor: ((v / 1_000) % 1_000) as u32,
            micro: (v % 1_000) as u32,
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// A domain's state and the reason for it (`virDomainGetState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainStateInfo {
    /// The state (running, paused, shut off...).
    pub state: DomainState,
    /// The reason, whose meaning depends on the state (e.g. `virDomainPausedReason`).
    pub reason: i32,
}

/// Block IO limits of one disk (`virDomainGetBlockIoTune` / `SetBlockIoTune`): every
/// `VIR_DOMAIN_BLOCK_IOTUNE_*` parameter of libvirt 11.3, typed. `None` fields are left
/// unchanged when setting and absent when the daemon did not report them.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct BlockIoTune {
    /// `total_bytes_sec`: Total throughput limit, bytes per second.
    pub total_bytes_sec: Option<u64>,
    /// `read_bytes_sec`: Read throughput limit, bytes per second.
    pub read_bytes_sec: Option<u64>,
    /// `write_bytes_sec`: Write throughput limit, bytes per second.
    pub write_bytes_sec: Option<u64>,
    /// `total_iops_sec`: Total I/O operations per second.
    pub total_iops_sec: Option<u64>,
    /// `read_iops_sec`: Read I/O operations per second.
    pub read_iops_sec: Option<u64>,
    /// `write_iops_sec`: Write I/O operations per second.
    pub write_iops_sec: Option<u64>,
    /// `total_bytes_sec_max`: Burst limit above `total_bytes_sec`.
    pub total_bytes_sec_max: Option<u64>,
    /// `read_bytes_sec_max`: Burst limit above `read_bytes_sec`.
    pub read_bytes_sec_max: Option<u64>,
    /// `write_bytes_sec_max`: Burst limit above `write_bytes_sec`.
    pub write_bytes_sec_max: Option<u64>,
    /// `total_iops_sec_max`: Burst limit above `total_iops_sec`.
    pub total_iops_sec_max: Option<u64>,
    /// `read_iops_sec_max`: Burst limit above `read_iops_sec`.
    pub read_iops_sec_max: Option<u64>,
    /// `write_iops_sec_max`: Burst limit above `write_iops_sec`.
    pub write_iops_sec_max: Option<u64>,
    /// `total_bytes_sec_max_length`: How long, in seconds, a burst up to `total_bytes_sec_max` may last.
    pub total_bytes_sec_max_length: Option<u64>,
    /// `read_bytes_sec_max_length`: How long, in seconds, a burst up to `read_bytes_sec_max` may last.
    pub read_bytes_sec_max_length: Option<u64>,
    /// `write_bytes_sec_max_length`: How long, in seconds, a burst up to `write_bytes_sec_max` may last.
    pub write_bytes_sec_max_length: Option<u64>,
    /// `total_iops_sec_max_length`: How long, in seconds, a burst up to `total_iops_sec_max` may last.
    pub total_iops_sec_max_length: Option<u64>,
    /// `read_iops_sec_max_length`: How long, in seconds, a burst up to `read_iops_sec_max` may last.
    pub read_iops_sec_max_length: Option<u64>,
    /// `write_iops_sec_max_length`: How long, in seconds, a burst up to `write_iops_sec_max` may last.
    pub write_iops_sec_max_length: Option<u64>,
    /// `size_iops_sec`: Size of one I/O operation for the iops limits, bytes.
    pub size_iops_sec: Option<u64>,
    /// `group_name`: drives of one group share the quota.
    pub group_name: Option<String>,
    /// Parameters this type does not know (a newer daemon's, or of an unexpected type), as the
    /// daemon sent them; sent back as they are by [`to_params`](Self::to_params).
    pub other: Vec<RemoteTypedParam>,
}

impl BlockIoTune {
    /// The names of the `u64` parameters, in libvirt's order.
    pub const U64_PARAMS: [&'static str; 19] = [
        "total_bytes_sec",
        "read_bytes_sec",
        "write_bytes_sec",
        "total_iops_sec",
        "read_iops_sec",
        "write_iops_sec",
        "total_bytes_sec_max",
        "read_bytes_sec_max",
        "write_bytes_sec_max",
        "total_iops_sec_max",
        "read_iops_sec_max",
        "write_iops_sec_max",
        "total_bytes_sec_max_length",
        "read_bytes_sec_max_length",
        "write_bytes_sec_max_length",
        "total_iops_sec_max_length",
        "read_iops_sec_max_length",
        "write_iops_sec_max_length",
        "size_iops_sec",
    ];

    fn slot(&mut self, name: &str) -> Option<&mut Option<u64>> {
        Some(match name {
            "total_bytes_sec" => &mut self.total_bytes_sec,
            "read_bytes_sec" => &mut self.read_bytes_sec,
            "write_bytes_sec" => &mut self.write_bytes_sec,
            "total_iops_sec" => &mut self.total_iops_sec,
            "read_iops_sec" => &mut self.read_iops_sec,
            "write_iops_sec" => &mut self.write_iops_sec,
            "total_bytes_sec_max" => &mut self.total_bytes_sec_max,
            "read_bytes_sec_max" => &mut self.read_bytes_sec_max,
            "write_bytes_sec_max" => &mut self.write_bytes_sec_max,
            "total_iops_sec_max" => &mut self.total_iops_sec_max,
            "read_iops_sec_max" => &mut self.read_iops_sec_max,
            "write_iops_sec_max" => &mut self.write_iops_sec_max,
            "total_bytes_sec_max_length" => &mut self.total_bytes_sec_max_length,
            "read_bytes_sec_max_length" => &mut self.read_bytes_sec_max_length,
            "write_bytes_sec_max_length" => &mut self.write_bytes_sec_max_length,
            "total_iops_sec_max_length" => &mut self.total_iops_sec_max_length,
            "read_iops_sec_max_length" => &mut self.read_iops_sec_max_length,
            "write_iops_sec_max_length" => &mut self.write_iops_sec_max_length,
            "size_iops_sec" => &mut self.size_iops_sec,
            _ => return None,
        })
    }

    /// From the daemon's typed parameters.
    pub fn from_params(params: &[RemoteTypedParam]) -> BlockIoTune {
        let mut t = BlockIoTune::default();
        for p in params {
            match (&p.value, t.slot(&p.field)) {
                (RemoteTypedParamValue::Ullong(v), Some(s)) => *s = Some(*v),
                (RemoteTypedParamValue::String(v), None) if p.field == "group_name" => {
                    t.group_name = Some(v.clone())
                }
                _ => t.other.push(p.clone()),
            }
        }
        t
    }

    /// The typed parameters for `SetBlockIoTune`: the `Some` fields, then [`other`](Self::other).
    pub fn to_params(&self) -> Vec<RemoteTypedParam> {
        let mut c = self.clone();
        let mut out = Vec::new();
        for name in Self::U64_PARAMS {
            if let Some(Some(v)) = c.slot(name).map(|s| *s) {
                out.push(RemoteTypedParam {
                    field: name.to_owned(),
                    value: RemoteTypedParamValue::Ullong(v),
                });
            }
        }
        if let Some(g) = &self.group_name {
            out.push(RemoteTypedParam {
                field: "group_name".to_owned(),
                value: RemoteTypedParamValue::String(g.clone()),
            });
        }
        out.extend(self.other.iter().cloned());
        out
    }
}

fn parse_qmp(text: &str) -> Result<serde_json::Value, Error> {
    serde_json::from_str(text).map_err(|e| Error::UnexpectedReply {
        procedure: "QEMU_PROC_DOMAIN_MONITOR_COMMAND",
        reason: format!("the monitor's answer is not JSON ({e}): {text}"),
    })
}

/// The helper methods, written once for both clients (`$aw` is `.await` or nothing).
macro_rules! helpers {
    ($client:ty, [$($async_:ident)?], [$($aw:tt)*]) => {
        impl $client {
            /// The hypervisor's version (`virConnectGetVersion`), e.g. QEMU's.
            pub $($async_)? fn version(&self) -> Result<Version, Error> {
                Ok(Version::from_packed(self.connect_get_version() $($aw)* ?))
            }

            /// The daemon's libvirt version (`virConnectGetLibVersion`).
            pub $($async_)? fn lib_version(&self) -> Result<Version, Error> {
                Ok(Version::from_packed(self.connect_get_lib_version() $($aw)* ?))
            }

            /// Every domain (active and inactive), as `virConnectListAllDomains(0)`.
            pub $($async_)? fn domains(&self) -> Result<Vec<Domain>, Error> {
                Ok(self
                    .connect_list_all_domains(1, Default::default()) $($aw)* ?
                    .domains)
            }

            /// The domain called `name`.
            pub $($async_)? fn lookup_domain(&self, name: &str) -> Result<Domain, Error> {
                self.domain_lookup_by_name(name.to_owned()) $($aw)*
            }

            /// A domain's state and reason.
            pub $($async_)? fn domain_state(&self, dom: &Domain) -> Result<DomainStateInfo, Error> {
                let r = self.domain_get_state(dom.clone(), 0) $($aw)* ?;
                Ok(DomainStateInfo {
                    state: DomainState(r.state),
                    reason: r.reason,
                })
            }

            /// A domain's XML (`virDomainGetXMLDesc`).
            pub $($async_)? fn domain_xml(
                &self,
                dom: &Domain,
                flags: libvirt_proto::generated::api::DomainXMLFlags,
            ) -> Result<String, Error> {
                self.domain_get_xml_desc(dom.clone(), flags) $($aw)*
            }

            /// Define (or redefine) a persistent domain from XML.
            pub $($async_)? fn define_xml(&self, xml: &str) -> Result<Domain, Error> {
                self.domain_define_xml_flags(xml.to_owned(), Default::default()) $($aw)*
            }

            /// Start a defined domain (`virDomainCreate`).
            pub $($async_)? fn start(&self, dom: &Domain) -> Result<(), Error> {
                self.domain_create(dom.clone()) $($aw)*
            }

            /// Stop a domain immediately (`virDomainDestroy`).
            pub $($async_)? fn destroy(&self, dom: &Domain) -> Result<(), Error> {
                self.domain_destroy(dom.clone()) $($aw)*
            }

            /// Remove a domain's persistent definition (`virDomainUndefineFlags`).
            pub $($async_)? fn undefine(
                &self,
                dom: &Domain,
                flags: libvirt_proto::generated::api::DomainUndefineFlagsValues,
            ) -> Result<(), Error> {
                self.domain_undefine_flags(dom.clone(), flags) $($aw)*
            }

            /// Ask the guest to shut down (`virDomainShutdownFlags`).
            pub $($async_)? fn shutdown(
                &self,
                dom: &Domain,
                flags: libvirt_proto::generated::api::DomainShutdownFlagValues,
            ) -> Result<(), Error> {
                self.domain_shutdown_flags(dom.clone(), flags) $($aw)*
            }

            /// Ask the guest to reboot (`virDomainReboot`).
            pub $($async_)? fn reboot(
                &self,
                dom: &Domain,
                flags: libvirt_proto::generated::api::DomainRebootFlagValues,
            ) -> Result<(), Error> {
                self.domain_reboot(dom.clone(), flags) $($aw)*
            }

            /// Reset the guest like a power-cycle of its CPU (`virDomainReset`).
            pub $($async_)? fn reset(&self, dom: &Domain) -> Result<(), Error> {
                self.domain_reset(dom.clone(), 0) $($aw)*
            }

            /// Pause a domain's vCPUs (`virDomainSuspend`).
            pub $($async_)? fn suspend(&self, dom: &Domain) -> Result<(), Error> {
                self.domain_suspend(dom.clone()) $($aw)*
            }

            /// Resume a paused domain (`virDomainResume`).
            pub $($async_)? fn resume(&self, dom: &Domain) -> Result<(), Error> {
                self.domain_resume(dom.clone()) $($aw)*
            }

            /// Run a QMP command through libvirt's QEMU program
            /// (`virDomainQemuMonitorCommand`) and parse the answer, e.g.
            /// `{"execute":"query-status"}` -> `{"return":{"status":"running",...},"id":...}`.
            pub $($async_)? fn qmp(
                &self,
                dom: &Domain,
                command: &serde_json::Value,
            ) -> Result<serde_json::Value, Error> {
                let text = self
                    .qemu_domain_monitor_command(dom.clone(), command.to_string(), Default::default())
                    $($aw)* ?;
                parse_qmp(&text)
            }

            /// Every secret.
            pub $($async_)? fn secrets(&self) -> Result<Vec<Secret>, Error> {
                Ok(self
                    .connect_list_all_secrets(1, Default::default()) $($aw)* ?
                    .secrets)
            }

            /// A secret's value.
            pub $($async_)? fn secret_value(&self, secret: &Secret) -> Result<Vec<u8>, Error> {
                Ok(self.secret_get_value(secret.clone(), 0) $($aw)* ?.to_vec())
            }

            /// Set a secret's value.
            pub $($async_)? fn set_secret_value(&self, secret: &Secret, value: &[u8]) -> Result<(), Error> {
                self.secret_set_value(secret.clone(), value.to_vec().into(), 0) $($aw)*
            }

            /// Every storage pool.
            pub $($async_)? fn storage_pools(&self) -> Result<Vec<StoragePool>, Error> {
                Ok(self
                    .connect_list_all_storage_pools(1, Default::default()) $($aw)* ?
                    .pools)
            }

            /// A disk's block IO limits (live values).
            pub $($async_)? fn block_io_tune(&self, dom: &Domain, disk: &str) -> Result<BlockIoTune, Error> {
                // First ask how many parameters there are, then fetch them (libvirt's protocol).
                let n = self
                    .domain_get_block_io_tune(dom.clone(), Some(disk.to_owned()), 0, Default::default())
                    $($aw)* ?
                    .nparams;
                let r = self
                    .domain_get_block_io_tune(dom.clone(), Some(disk.to_owned()), n, Default::default())
                    $($aw)* ?;
                Ok(BlockIoTune::from_params(&r.params))
            }

            /// Set a disk's block IO limits (the `Some` fields), live.
            pub $($async_)? fn set_block_io_tune(
                &self,
                dom: &Domain,
                disk: &str,
                tune: &BlockIoTune,
            ) -> Result<(), Error> {
                self.domain_set_block_io_tune(dom.clone(), disk.to_owned(), tune.to_params(), Default::default())
                    $($aw)*
            }
        }
    };
}

#[cfg(feature = "async")]
helpers!(crate::Client, [async], [.await]);
#[cfg(feature = "blocking")]
helpers!(crate::blocking::Client, [], []);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_split() {
        let v = Version::from_packed(9_000_000);
        assert_eq!((v.major, v.minor, v.micro), (9, 0, 0));
        assert_eq!(Version::from_packed(7_002_013).to_string(), "7.2.13");
    }

    #[test]
    fn block_io_tune_params_round_trip() {
        let mut t = BlockIoTune {
            total_bytes_sec: Some(1000),
            read_iops_sec: Some(7),
            write_bytes_sec_max_length: Some(30),
            group_name: Some("g".into()),
            ..Default::default()
        };
        t.other.push(RemoteTypedParam {
            field: "future_knob".into(),
            value: RemoteTypedParamValue::Int(-3),
        });
        let params = t.to_params();
        assert_eq!(params.len(), 5);
        let back = BlockIoTune::from_params(&params);
        assert_eq!(back, t);
        // Every name has its own slot.
        let mut all = BlockIoTune::default();
        for (i, name) in BlockIoTune::U64_PARAMS.iter().enumerate() {
            *all.slot(name).expect(name) = Some(i as u64);
        }
        let back = BlockIoTune::from_params(&all.to_params());
        assert!(back.other.is_empty());
        assert_eq!(back, all);
    }

    #[test]
    fn qmp_answer_must_be_json() {
        assert!(parse_qmp("{\"return\":{}}").is_ok());
        assert!(matches!(
            parse_qmp("not json"),
            Err(Error::UnexpectedReply { .. })
        ));
    }
}
