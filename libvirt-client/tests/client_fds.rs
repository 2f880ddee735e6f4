//! File descriptor passing (`CALL_WITH_FDS` / `REPLY_WITH_FDS`) on both drivers.
//!
//! Against the REAL peer libvirtd (`qemu:///session` over its unix socket): a tiny TCG guest
//! with a VNC display (`<listen type='none'/>`: no network socket at all); the graphics
//! socket comes back with `open_graphics_fd`, or ours goes in with `open_graphics`, and the
//! VNC server greets on it (`RFB 003.008\n`). `create_xml_with_files` and `fd_associate` send
//! descriptors to the daemon. Over the peer's TCP transport, descriptor-carrying calls are
//! refused with a typed error before anything is sent.
//!
//! In process (a fake daemon on a socket pair, in addition to the real one): the exact wire
//! form both ways (packet, then one `0` byte per descriptor), and a reply announcing more
//! descriptors than arrived failing its call with `MissingFds`.
#![cfg(all(feature = "async", feature = "blocking"))]

mod common;

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use libvirt_client::libvirt_proto::generated::api::{DomainCreateFlags, ErrorNumber};
use libvirt_client::libvirt_proto::generated::remote::{procs, RemoteDomainFdAssociateArgs};
use libvirt_client::libvirt_proto::packet::encode_packet;
use libvirt_client::libvirt_proto::program::ProcedureMarker;
use libvirt_client::libvirt_proto::{Framer, Header, MessageStatus, MessageType, Packet};
use libvirt_client::transport::{AsyncTransport, BlockingTransport};
use libvirt_client::{blocking, Client, ClientOptions, Domain, Error};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

const RFB_GREETING: &[u8] = b"RFB 003.008\n";

// ---- the fake daemon's socket work (test-side, independent of the crate's own code) ----

/// One `recvmsg`: bytes and any descriptors riding on them.
fn recv_some(s: &UnixStream, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> usize {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(32))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = rustix::net::recvmsg(
        s,
        &mut [IoSliceMut::new(buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .expect("recvmsg");
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(r) = m {
            fds.extend(r);
        }
    }
    msg.bytes
}

/// Send one byte, with `fd` attached when given.
fn send_byte(s: &UnixStream, fd: Option<BorrowedFd<'_>>) {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let rights: Vec<BorrowedFd<'_>> = fd.into_iter().collect();
    if !rights.is_empty() {
        assert!(control.push(SendAncillaryMessage::ScmRights(&rights)));
    }
    let n = rustix::net::sendmsg(s, &[IoSlice::new(&[0])], &mut control, SendFlags::empty())
        .expect("sendmsg");
    assert_eq!(n, 1);
}

/// Read the client's packets until one with `procedure` arrives (answering the others with
/// empty OK replies); returns it with the descriptors that came with it and the raw bytes
/// that followed its body on the wire (the carrier bytes).
fn serve_until(s: &UnixStream, procedure: i32) -> (Packet, Vec<OwnedFd>) {
    let mut framer = Framer::new();
    let mut fds = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        while let Some(p) = framer.next_packet().expect("client packet") {
            if p.header.procedure == procedure {
                return (p, fds);
            }
            reply(s, &p.header, MessageType::Reply, 0, &[]);
        }
        let n = recv_some(s, &mut buf, &mut fds);
        assert!(n > 0, "client closed before procedure {procedure}");
        framer.push(&buf[..n]);
    }
}

fn reply(s: &UnixStream, call: &Header, kind: MessageType, num_fds: u32, body: &[u8]) {
    let h = Header {
        kind,
        status: MessageStatus::Ok,
        ..*call
    };
    let mut out = Vec::new();
    encode_packet(&h, num_fds, body, &mut out).unwrap();
    (&*s).write_all(&out).unwrap();
}

fn fd_associate_args() -> RemoteDomainFdAssociateArgs {
    RemoteDomainFdAssociateArgs {
        dom: Domain {
            name: "fake".into(),
            uuid: [7; 16],
            id: -1,
        },
        name: "grp".into(),
        flags: 0,
    }
}

/// The fake daemon's half of the round trip: checks the call's wire form, writes through the
/// descriptor it received, answers with two descriptors (pipe write ends).
fn fake_round_trip(server: UnixStream, replies: (OwnedFd, OwnedFd)) {
    let (call, fds) = serve_until(&server, procs::DomainFdAssociate::PROCEDURE as i32);
    assert_eq!(call.header.kind, MessageType::CallWithFds);
    assert_eq!(call.num_fds, 1);
    assert_eq!(fds.len(), 1, "the descriptor rode on the carrier byte");
    std::fs::File::from(fds.into_iter().next().unwrap())
        .write_all(b"via passed fd")
        .unwrap();
    reply(&server, &call.header, MessageType::ReplyWithFds, 2, &[]);
    send_byte(&server, Some(replies.0.as_fd()));
    send_byte(&server, Some(replies.1.as_fd()));
    // Keep the socket open until the client is done.
    let mut rest = [0u8; 64];
    let _ = recv_some(&server, &mut rest, &mut Vec::new());
}

fn check_round_trip(sent: &mut UnixStream, got: Vec<OwnedFd>, back: &mut UnixStream) {
    let mut msg = [0u8; 13];
    sent.read_exact(&mut msg).unwrap();
    assert_eq!(&msg, b"via passed fd");
    assert_eq!(got.len(), 2);
    for (i, fd) in got.into_iter().enumerate() {
        std::fs::File::from(fd)
            .write_all(&[b'0' + i as u8])
            .unwrap();
    }
    let mut two = [0u8; 2];
    back.read_exact(&mut two).unwrap();
    assert_eq!(&two, b"01");
}

/// A connected pair standing in for a pipe: (reading end, writing end).
fn pipe_pair() -> (UnixStream, UnixStream) {
    UnixStream::pair().unwrap()
}

/// Both ways of reading: sleeping in the kernel, and polling without blocking first
/// (`busy_poll`), which receives the descriptors through its own non-blocking `recvmsg`.
fn read_modes() -> [ClientOptions; 2] {
    [
        ClientOptions::default(),
        ClientOptions::default().busy_poll(Some(Duration::from_secs(1))),
    ]
}

#[tokio::test]
async fn in_process_round_trip_async() {
    for options in read_modes() {
        round_trip_async(options).await;
    }
}

async fn round_trip_async(options: ClientOptions) {
    let (client_sock, server) = UnixStream::pair().unwrap();
    let (mut back_r, back_w) = pipe_pair();
    let replies = (
        OwnedFd::from(back_w.try_clone().unwrap()),
        OwnedFd::from(back_w),
    );
    let srv = std::thread::spawn(move || fake_round_trip(server, replies));
    client_sock.set_nonblocking(true).unwrap();
    let t = AsyncTransport::from_unix(tokio::net::UnixStream::from_std(client_sock).unwrap());
    assert!(t.can_pass_fds());
    let c = Client::from_transport(t, options, None).unwrap();
    let (mut sent_r, sent_w) = pipe_pair();
    let ((), got) = c
        .call_with_fds::<procs::DomainFdAssociate>(&fd_associate_args(), vec![sent_w.into()])
        .await
        .unwrap();
    check_round_trip(&mut sent_r, got, &mut back_r);
    drop(c);
    // The driver's tasks end (closing the socket) on this runtime: join off it.
    tokio::task::spawn_blocking(move || srv.join().unwrap())
        .await
        .unwrap();
}

#[test]
fn in_process_round_trip_blocking() {
    for options in read_modes() {
        round_trip_blocking(options);
    }
}

fn round_trip_blocking(options: ClientOptions) {
    let (client_sock, server) = UnixStream::pair().unwrap();
    let (mut back_r, back_w) = pipe_pair();
    let replies = (
        OwnedFd::from(back_w.try_clone().unwrap()),
        OwnedFd::from(back_w),
    );
    let srv = std::thread::spawn(move || fake_round_trip(server, replies));
    let t = BlockingTransport::from_unix(client_sock);
    assert!(t.can_pass_fds());
    let c = blocking::Client::from_transport(t, options, None).unwrap();
    let (mut sent_r, sent_w) = pipe_pair();
    let ((), got) = c
        .call_with_fds::<procs::DomainFdAssociate>(&fd_associate_args(), vec![sent_w.into()])
        .unwrap();
    check_round_trip(&mut sent_r, got, &mut back_r);
    drop(c);
    srv.join().unwrap();
}

/// The fake daemon announces two descriptors but attaches only one (the second carrier byte
/// comes bare).
fn fake_short_of_fds(server: UnixStream) {
    let (call, _) = serve_until(&server, procs::DomainOpenGraphicsFd::PROCEDURE as i32);
    let (_r, w) = pipe_pair();
    reply(&server, &call.header, MessageType::ReplyWithFds, 2, &[]);
    send_byte(&server, Some(w.as_fd()));
    send_byte(&server, None);
    let mut rest = [0u8; 64];
    let _ = recv_some(&server, &mut rest, &mut Vec::new());
}

fn assert_missing_fds(r: Result<OwnedFd, Error>) {
    match r {
        Err(Error::Proto(libvirt_client::libvirt_proto::Error::MissingFds {
            expected,
            available,
            ..
        })) => assert_eq!((expected, available), (2, 1)),
        other => panic!("expected MissingFds, got {other:?}"),
    }
}

#[tokio::test]
async fn reply_short_of_fds_is_typed_async() {
    let (client_sock, server) = UnixStream::pair().unwrap();
    let srv = std::thread::spawn(move || fake_short_of_fds(server));
    client_sock.set_nonblocking(true).unwrap();
    let t = AsyncTransport::from_unix(tokio::net::UnixStream::from_std(client_sock).unwrap());
    let c = Client::from_transport(t, ClientOptions::default(), None).unwrap();
    let dom = fd_associate_args().dom;
    assert_missing_fds(c.open_graphics_fd(&dom, 0, Default::default()).await);
    // The stream lost sync: the connection is closed.
    assert!(!c.is_open());
    drop(c);
    tokio::task::spawn_blocking(move || srv.join().unwrap())
        .await
        .unwrap();
}

#[test]
fn reply_short_of_fds_is_typed_blocking() {
    let (client_sock, server) = UnixStream::pair().unwrap();
    let srv = std::thread::spawn(move || fake_short_of_fds(server));
    let t = BlockingTransport::from_unix(client_sock);
    let c = blocking::Client::from_transport(t, ClientOptions::default(), None).unwrap();
    let dom = fd_associate_args().dom;
    assert_missing_fds(c.open_graphics_fd(&dom, 0, Default::default()));
    assert!(!c.is_open());
    drop(c);
    srv.join().unwrap();
}

// ---- the real daemon ----

fn assert_refused(r: Result<Domain, Error>) {
    match r {
        Err(Error::FdPassingUnavailable { transport, count }) => {
            assert_eq!((transport.as_str(), count), ("tcp", 1))
        }
        other => panic!("expected FdPassingUnavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn tcp_transport_refuses_fds() {
    let uri = common::uri("test_tcp");
    let (_r, w) = pipe_pair();
    let c = Client::connect(&uri).await.unwrap();
    let stats = c.stats();
    assert_refused(
        c.create_xml_with_files("<domain/>", &[w.as_fd()], DomainCreateFlags::default())
            .await,
    );
    // Nothing was sent, and the connection is still fine.
    assert_eq!(c.stats().packets_sent, stats.packets_sent);
    c.version().await.unwrap();

    let b = blocking::Client::connect(&uri).unwrap();
    assert_refused(b.create_xml_with_files(
        "<domain/>",
        &[w.as_fd()],
        DomainCreateFlags::default(),
    ));
    b.version().unwrap();
}

/// Destroys (and undefines, if defined) the domain however the test ends.
struct DomainGuard {
    uri: String,
    name: String,
}

impl Drop for DomainGuard {
    fn drop(&mut self) {
        let virsh = common::endpoints()["virsh"]
            .as_str()
            .unwrap_or("virsh")
            .to_owned();
        for cmd in ["destroy", "undefine"] {
            let _ = std::process::Command::new(&virsh)
                .args(["-c", &self.uri, cmd, &self.name])
                .output();
        }
    }
}

/// A diskless TCG guest whose only display is VNC with no listening socket: the graphics
/// server is reachable only through passed descriptors.
fn vnc_domain_xml(name: &str) -> String {
    format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='pc'>hvm</type></os>\
         <devices><emulator>{}</emulator>\
         <graphics type='vnc'><listen type='none'/></graphics>\
         <memballoon model='none'/></devices></domain>",
        common::endpoints()["qemu"]["binary"]
            .as_str()
            .unwrap_or("/usr/bin/qemu-system-x86_64"),
    )
}

fn read_greeting(mut s: UnixStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut g = vec![0u8; RFB_GREETING.len()];
    s.read_exact(&mut g).expect("the VNC server's greeting");
    g
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vnc_socket_through_passed_fds_on_both_drivers() {
    let uri = common::uri("qemu_unix");
    let c = Client::connect(&uri).await.unwrap();
    assert!(c.features().fd_passing, "the daemon supports fd passing");
    let name = common::unique_name("fds");
    let _guard = DomainGuard {
        uri: uri.clone(),
        name: name.clone(),
    };
    let dom = c
        .domain_create_xml(vnc_domain_xml(&name), DomainCreateFlags::default())
        .await
        .unwrap();

    // REPLY_WITH_FDS: the daemon's end of a new VNC client connection comes back.
    let fd = c
        .open_graphics_fd(&dom, 0, Default::default())
        .await
        .unwrap();
    assert_eq!(read_greeting(UnixStream::from(fd)), RFB_GREETING);

    let b = {
        let uri = uri.clone();
        tokio::task::spawn_blocking(move || blocking::Client::connect(&uri).unwrap())
            .await
            .unwrap()
    };
    let (b, fd) = {
        let dom = dom.clone();
        tokio::task::spawn_blocking(move || {
            let fd = b.open_graphics_fd(&dom, 0, Default::default()).unwrap();
            (b, fd)
        })
        .await
        .unwrap()
    };
    assert_eq!(read_greeting(UnixStream::from(fd)), RFB_GREETING);

    // CALL_WITH_FDS: our end of a socket pair goes to the VNC server, which greets on it.
    let (ours, theirs) = UnixStream::pair().unwrap();
    c.open_graphics(&dom, 0, theirs.as_fd(), Default::default())
        .await
        .unwrap();
    drop(theirs);
    assert_eq!(read_greeting(ours), RFB_GREETING);

    let b = {
        let dom = dom.clone();
        tokio::task::spawn_blocking(move || {
            let (ours, theirs) = UnixStream::pair().unwrap();
            b.open_graphics(&dom, 0, theirs.as_fd(), Default::default())
                .unwrap();
            drop(theirs);
            assert_eq!(read_greeting(ours), RFB_GREETING);
            b
        })
        .await
        .unwrap()
    };

    // A second graphics device does not exist: the daemon's own error, the connection fine.
    let e = c
        .open_graphics_fd(&dom, 1, Default::default())
        .await
        .unwrap_err();
    assert!(e.remote().is_some(), "{e}");
    c.destroy(&dom).await.unwrap();
    drop(b);
}

fn assert_remote(r: Result<impl std::fmt::Debug, Error>, code: ErrorNumber, needle: &str) {
    let e = r.expect_err("the daemon refuses");
    assert_eq!(e.remote_code(), Some(code), "{e}");
    assert!(e.to_string().contains(needle), "{e}");
}

/// `CALL_WITH_FDS` procedures that start or decorate a domain, on both drivers.
///
/// libvirt 9.0's QEMU driver implements neither `virDomainCreateXMLWithFiles` nor
/// `virDomainCreateWithFiles` (only the LXC driver does): the daemon answers with its typed
/// `VIR_ERR_NO_SUPPORT`, after having read the call and its descriptors (the connection stays
/// in sync for the next calls). `virDomainFDAssociate` (new in 9.0) is implemented: it accepts
/// our descriptor, and the daemon's own check that descriptors arrived (`nfds ... must not be
/// zero`) fires when we send none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_with_files_and_fd_associate() {
    let uri = common::uri("qemu_unix");
    let c = Client::connect(&uri).await.unwrap();
    let name = common::unique_name("fdfiles");
    let _guard = DomainGuard {
        uri: uri.clone(),
        name: name.clone(),
    };
    let (_r, w) = pipe_pair();
    let xml = vnc_domain_xml(&name);
    assert_remote(
        c.create_xml_with_files(&xml, &[w.as_fd()], DomainCreateFlags::default())
            .await,
        ErrorNumber::ERR_NO_SUPPORT,
        "virDomainCreateXMLWithFiles",
    );
    let dom = c.define_xml(&xml).await.unwrap();
    assert_remote(
        c.create_with_files(&dom, &[w.as_fd()], DomainCreateFlags::default())
            .await,
        ErrorNumber::ERR_NO_SUPPORT,
        "virDomainCreateWithFiles",
    );
    c.fd_associate(&dom, "vmwire", &[w.as_fd()], Default::default())
        .await
        .unwrap();
    assert_remote(
        c.fd_associate(&dom, "vmwire", &[], Default::default())
            .await,
        ErrorNumber::ERR_INVALID_ARG,
        "nfds",
    );

    let dom2 = dom.clone();
    let xml2 = xml.clone();
    tokio::task::spawn_blocking(move || {
        let b = blocking::Client::connect(&uri).unwrap();
        b.fd_associate(
            &dom2,
            "vmwire-b",
            &[w.as_fd(), w.as_fd()],
            Default::default(),
        )
        .unwrap();
        assert_remote(
            b.create_xml_with_files(&xml2, &[w.as_fd()], DomainCreateFlags::default()),
            ErrorNumber::ERR_NO_SUPPORT,
            "virDomainCreateXMLWithFiles",
        );
        // Still in sync after descriptor-carrying calls.
        b.version().unwrap();
    })
    .await
    .unwrap();
    c.undefine(&dom, Default::default()).await.unwrap();
}

/// The fake daemon's half of `lxc_open_namespace`: the call carries no descriptors, the reply
/// brings `fds` (as libvirt's LXC driver brings the container's namespace descriptors).
fn fake_lxc_namespaces(server: UnixStream, fds: Vec<OwnedFd>) {
    use libvirt_client::libvirt_proto::generated::lxc;
    let (call, got) = serve_until(&server, lxc::procs::DomainOpenNamespace::PROCEDURE as i32);
    assert_eq!(call.header.program, lxc::PROGRAM);
    assert_eq!(call.header.kind, MessageType::Call);
    assert!(got.is_empty());
    let args: lxc::LxcDomainOpenNamespaceArgs = xdr::from_bytes(&call.body).unwrap();
    assert_eq!(args.dom.name, "ct");
    reply(
        &server,
        &call.header,
        MessageType::ReplyWithFds,
        fds.len() as u32,
        &[],
    );
    for fd in &fds {
        send_byte(&server, Some(fd.as_fd()));
    }
    let mut rest = [0u8; 64];
    let _ = recv_some(&server, &mut rest, &mut Vec::new());
}

/// Every namespace descriptor the reply brings reaches the caller, working, on both clients.
#[test]
fn lxc_open_namespace_returns_the_descriptors() {
    let ct = Domain {
        name: "ct".into(),
        uuid: [1; 16],
        id: 3,
    };
    let check = |got: Vec<OwnedFd>, mut ends: Vec<UnixStream>| {
        assert_eq!(got.len(), ends.len());
        for (i, (fd, end)) in got.into_iter().zip(ends.iter_mut()).enumerate() {
            std::fs::File::from(fd)
                .write_all(&[b'a' + i as u8])
                .unwrap();
            let mut b = [0u8; 1];
            end.read_exact(&mut b).unwrap();
            assert_eq!(b[0], b'a' + i as u8);
        }
    };
    let pairs = |n: usize| -> (Vec<OwnedFd>, Vec<UnixStream>) {
        (0..n)
            .map(|_| {
                let (r, w) = pipe_pair();
                (OwnedFd::from(w), r)
            })
            .unzip()
    };
    // blocking
    let (client_sock, server) = UnixStream::pair().unwrap();
    let (send, ends) = pairs(3);
    let srv = std::thread::spawn(move || fake_lxc_namespaces(server, send));
    let c = blocking::Client::from_transport(
        BlockingTransport::from_unix(client_sock),
        ClientOptions::default(),
        None,
    )
    .unwrap();
    check(c.lxc_open_namespace(&ct, 0).unwrap(), ends);
    drop(c);
    srv.join().unwrap();
    // async
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (client_sock, server) = UnixStream::pair().unwrap();
    let (send, ends) = pairs(2);
    let srv = std::thread::spawn(move || fake_lxc_namespaces(server, send));
    rt.block_on(async {
        client_sock.set_nonblocking(true).unwrap();
        let t = AsyncTransport::from_unix(tokio::net::UnixStream::from_std(client_sock).unwrap());
        let c = Client::from_transport(t, ClientOptions::default(), None).unwrap();
        check(c.lxc_open_namespace(&ct, 0).await.unwrap(), ends);
    });
    drop(rt);
    srv.join().unwrap();
}
