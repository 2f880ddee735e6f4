//! File descriptor passing: the calls that carry descriptors (`CALL_WITH_FDS` /
//! `REPLY_WITH_FDS`), typed, on both clients.
//!
//! Only a unix socket connection carries descriptors (libvirt's rule); on any other transport
//! these methods fail with [`Error::FdPassingUnavailable`] before anything is sent. On the wire
//! a packet announces its descriptor count and each descriptor follows the packet as one `0`
//! byte sent with `SCM_RIGHTS` (libvirt's `virNetSocketSendFD`); both drivers send and receive
//! them that way. Descriptors given to these methods are borrowed: they are duplicated
//! (close-on-exec) and the duplicates close once sent, like libvirt's API which leaves the
//! caller's descriptors open. Received descriptors are [`OwnedFd`]s, so none leaks. A reply that
//! announces more descriptors than arrived fails its call with
//! [`libvirt_proto::Error::MissingFds`] (the connection closes: the stream lost sync).
//!
//! | method | procedure | descriptors |
//! |--------|-----------|-------------|
//! | `open_graphics_fd` | `REMOTE_PROC_DOMAIN_OPEN_GRAPHICS_FD` | one comes back: a socket connected to the domain's VNC/SPICE server |
//! | `open_graphics` | `REMOTE_PROC_DOMAIN_OPEN_GRAPHICS` | one is passed: a socket the daemon hands to the graphics server |
//! | `create_xml_with_files` | `REMOTE_PROC_DOMAIN_CREATE_XML_WITH_FILES` | passed to the new domain (LXC: its first fds) |
//! | `create_with_files` | `REMOTE_PROC_DOMAIN_CREATE_WITH_FILES` | the same for a defined domain |
//! | `fd_associate` | `REMOTE_PROC_DOMAIN_FD_ASSOCIATE` | a named group for `<source fdgroup=.../>` (libvirt ≥ 9.0) |
//! | `lxc_open_namespace` | `LXC_PROC_DOMAIN_OPEN_NAMESPACE` | come back: the container's namespaces (`virDomainLxcOpenNamespace`) |
//!
//! These procedures have no generated method of their own (it could not carry the
//! descriptors); `QEMU_PROC_DOMAIN_MONITOR_COMMAND_WITH_FILES` is generated with descriptors
//! in and out. [`crate::Client::call_with_fds`] reaches any other procedure with descriptors.
//!
//! ```no_run
//! use std::io::Read;
//! use libvirt_client::Client;
//!
//! # async fn demo() -> Result<(), libvirt_client::Error> {
//! let c = Client::connect("qemu:///session").await?;
//! let dom = c.lookup_domain("guest").await?;
//! let fd = c.open_graphics_fd(&dom, 0, Default::default()).await?;
//! let mut vnc = std::os::unix::net::UnixStream::from(fd);
//! let mut greeting = [0u8; 12];
//! vnc.read_exact(&mut greeting)?; // b"RFB 003.008\n"
//! # Ok(()) }
//! ```

use std::os::fd::{BorrowedFd, OwnedFd};

use libvirt_proto::generated::api::{
    DomainCreateFlags, DomainFDAssociateFlags, DomainOpenGraphicsFlags,
};
use libvirt_proto::generated::lxc;
use libvirt_proto::generated::remote::{self, procs};

use crate::uri::TransportKind;
use crate::{Domain, Error};

/// Why a transport cannot pass descriptors (`None`: it can).
pub(crate) fn refusal(can_pass: bool, kind: Option<TransportKind>) -> Option<String> {
    if can_pass {
        return None;
    }
    Some(match kind {
        Some(k) => k.to_string(),
        None => "caller-supplied stream".to_owned(),
    })
}

/// Duplicate the caller's descriptors (close-on-exec) for sending.
fn dup_all(fds: &[BorrowedFd<'_>]) -> Result<Vec<OwnedFd>, Error> {
    fds.iter()
        .map(|fd| fd.try_clone_to_owned().map_err(Error::Io))
        .collect()
}

/// Exactly one descriptor, as libvirt's client demands of `OPEN_GRAPHICS_FD`'s reply.
fn one_fd(mut fds: Vec<OwnedFd>, procedure: &'static str) -> Result<OwnedFd, Error> {
    if fds.len() != 1 {
        return Err(Error::UnexpectedReply {
            procedure,
            reason: format!(
                "expected exactly one file descriptor with the reply, got {}",
                fds.len()
            ),
        });
    }
    Ok(fds.remove(0))
}

/// The methods, written once for both clients (`$aw` is `.await` or nothing).
macro_rules! fd_methods {
    ($client:ty, [$($async_:ident)?], [$($aw:tt)*]) => {
        impl $client {
            /// A socket connected to graphics device `idx` (VNC or SPICE) of a running domain
            /// (`virDomainOpenGraphicsFD`): the daemon makes a socket pair, gives one end to the
            /// graphics server and passes the other back. Flags: `VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH`.
            pub $($async_)? fn open_graphics_fd(
                &self,
                dom: &Domain,
                idx: u32,
                flags: DomainOpenGraphicsFlags,
            ) -> Result<OwnedFd, Error> {
                let ((), fds) = self
                    .call_with_fds::<procs::DomainOpenGraphicsFd>(
                        &remote::RemoteDomainOpenGraphicsFdArgs {
                            dom: dom.clone(),
                            idx,
                            flags: flags.bits(),
                        },
                        Vec::new(),
                    )
                    $($aw)* ?;
                one_fd(fds, "REMOTE_PROC_DOMAIN_OPEN_GRAPHICS_FD")
            }

            /// Hand a connected socket of ours to graphics device `idx` of a running domain
            /// (`virDomainOpenGraphics`); the graphics server then talks on it (our end stays
            /// ours; the daemon gets a duplicate).
            pub $($async_)? fn open_graphics(
                &self,
                dom: &Domain,
                idx: u32,
                fd: BorrowedFd<'_>,
                flags: DomainOpenGraphicsFlags,
            ) -> Result<(), Error> {
                let ((), _) = self
                    .call_with_fds::<procs::DomainOpenGraphics>(
                        &remote::RemoteDomainOpenGraphicsArgs {
                            dom: dom.clone(),
                            idx,
                            flags: flags.bits(),
                        },
                        dup_all(&[fd])?,
                    )
                    $($aw)* ?;
                Ok(())
            }

            /// Create and start a transient domain from XML, passing it `files`
            /// (`virDomainCreateXMLWithFiles`; the LXC driver gives them to the container's
            /// init, other drivers may refuse).
            pub $($async_)? fn create_xml_with_files(
                &self,
                xml: &str,
                files: &[BorrowedFd<'_>],
                flags: DomainCreateFlags,
            ) -> Result<Domain, Error> {
                let (r, _) = self
                    .call_with_fds::<procs::DomainCreateXmlWithFiles>(
                        &remote::RemoteDomainCreateXmlWithFilesArgs {
                            xml_desc: xml.to_owned(),
                            flags: flags.bits(),
                        },
                        dup_all(files)?,
                    )
                    $($aw)* ?;
                Ok(r.dom)
            }

            /// Start a defined domain, passing it `files` (`virDomainCreateWithFiles`).
            pub $($async_)? fn create_with_files(
                &self,
                dom: &Domain,
                files: &[BorrowedFd<'_>],
                flags: DomainCreateFlags,
            ) -> Result<Domain, Error> {
                let (r, _) = self
                    .call_with_fds::<procs::DomainCreateWithFiles>(
                        &remote::RemoteDomainCreateWithFilesArgs {
                            dom: dom.clone(),
                            flags: flags.bits(),
                        },
                        dup_all(files)?,
                    )
                    $($aw)* ?;
                Ok(r.dom)
            }

            /// The namespaces of a running LXC container (`virDomainLxcOpenNamespace`): one
            /// descriptor per namespace the daemon opens, for `setns(2)`.
            pub $($async_)? fn lxc_open_namespace(
                &self,
                dom: &Domain,
                flags: u32,
            ) -> Result<Vec<OwnedFd>, Error> {
                let ((), fds) = self
                    .call_with_fds::<lxc::procs::DomainOpenNamespace>(
                        &lxc::LxcDomainOpenNamespaceArgs {
                            dom: dom.clone(),
                            flags,
                        },
                        Vec::new(),
                    )
                    $($aw)* ?;
                Ok(fds)
            }

            /// Associate descriptors with a domain under `name`, for disks declared with
            /// `<source ... fdgroup='name'/>` (`virDomainFDAssociate`, libvirt ≥ 9.0).
            pub $($async_)? fn fd_associate(
                &self,
                dom: &Domain,
                name: &str,
                fds: &[BorrowedFd<'_>],
                flags: DomainFDAssociateFlags,
            ) -> Result<(), Error> {
                let ((), _) = self
                    .call_with_fds::<procs::DomainFdAssociate>(
                        &remote::RemoteDomainFdAssociateArgs {
                            dom: dom.clone(),
                            name: name.to_owned(),
                            flags: flags.bits(),
                        },
                        dup_all(fds)?,
                    )
                    $($aw)* ?;
                Ok(())
            }
        }
    };
}

#[cfg(feature = "async")]
fd_methods!(crate::Client, [async], [.await]);
#[cfg(feature = "blocking")]
fd_methods!(crate::blocking::Client, [], []);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_descriptor() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(one_fd(vec![OwnedFd::from(a)], "P").is_ok());
        assert!(matches!(
            one_fd(Vec::new(), "P"),
            Err(Error::UnexpectedReply { procedure: "P", .. })
        ));
        let two = vec![OwnedFd::from(b.try_clone().unwrap()), OwnedFd::from(b)];
        assert!(matches!(
            one_fd(two, "P"),
            Err(Error::UnexpectedReply { .. })
        ));
    }

    #[test]
    fn refusal_names_the_transport() {
        assert_eq!(refusal(true, Some(TransportKind::Unix)), None);
        assert_eq!(
            refusal(false, Some(TransportKind::Tcp)).as_deref(),
            Some("tcp")
        );
        assert_eq!(
            refusal(false, None).as_deref(),
            Some("caller-supplied stream")
        );
    }
}
