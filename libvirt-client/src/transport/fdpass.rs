//! `SCM_RIGHTS` descriptor passing on a unix stream socket, the way libvirt does it.
//!
//! libvirt (`virNetSocketSendFD` / `virSocketSendFD`) writes a packet's bytes first, then sends
//! each of its descriptors with its own `sendmsg` of one `0` byte carrying that descriptor; the
//! receiver (`virNetSocketRecvFD`) takes them one `recvmsg` at a time after the packet. The
//! kernel never merges a unix stream read across a message carrying descriptors, so a reader
//! that always uses `recvmsg` with room for the control data gets every descriptor together
//! with the carrier byte that brought it; `libvirt_proto`'s framer drops the carrier bytes and
//! attaches the descriptors (fed with `Connection::handle_fds`) to the packet that announced
//! them.
//!
//! Every read of such a socket must go through [`recv`]: a plain `read` would make the kernel
//! discard (close) the descriptors riding on the bytes it returns. Received descriptors are
//! `OwnedFd`s opened close-on-exec, so none leaks. Built on rustix' safe wrappers: no `unsafe`.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// Most descriptors one packet may carry (`VIR_NET_MESSAGE_NUM_FDS_MAX`).
const MAX_FDS: usize = libvirt_proto::header::NUM_FDS_MAX as usize;

/// Read bytes into `buf`, appending any descriptors that came with them to `fds`. `Ok(0)` is
/// end of file. Fails (and closes whatever arrived) when the kernel had to truncate the control
/// data, since descriptors were then lost.
pub(crate) fn recv(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    recv_flags(sock, buf, fds, RecvFlags::empty())
}

/// [`recv`] with extra flags (`MSG_DONTWAIT` for a read that must not block).
pub(crate) fn recv_flags(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    flags: RecvFlags,
) -> io::Result<usize> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = rustix::net::recvmsg(
        sock,
        &mut iov,
        &mut control,
        RecvFlags::CMSG_CLOEXEC | flags,
    )?;
    let before = fds.len();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = m {
            fds.extend(rights);
        }
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        fds.truncate(before);
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the daemon sent more file descriptors than fit in one message (control data \
             truncated; descriptors lost)",
        ));
    }
    Ok(msg.bytes)
}

/// Read what has arrived without waiting (`WouldBlock` when nothing has), directly on the
/// socket: through [`recv_flags`] (so descriptors are kept) when `unix`, a plain `recv`
/// otherwise; retried on `EINTR`. Used by both drivers' busy polling. On a socket tokio watches,
/// reading behind its back is safe: readiness it still holds costs its next read one `EAGAIN`,
/// and new data raises a new event.
pub(crate) fn recv_now(
    sock: BorrowedFd<'_>,
    unix: bool,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    loop {
        let r = if unix {
            recv_flags(sock, buf, fds, RecvFlags::DONTWAIT)
        } else {
            rustix::net::recv(sock, &mut *buf, RecvFlags::DONTWAIT)
                .map(|(n, _)| n)
                .map_err(io::Error::from)
        };
        match r {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Send each descriptor with one `0` byte, as libvirt's `virSocketSendFD` does; call after the
/// packet's bytes are written. A non-blocking socket may fail with `WouldBlock` after some
/// descriptors were sent: `sent` counts them so the caller can resume.
pub(crate) fn send(sock: BorrowedFd<'_>, fds: &[OwnedFd], sent: &mut usize) -> io::Result<()> {
    while let Some(fd) = fds.get(*sent) {
        send_one(sock, fd.as_fd())?;
        *sent += 1;
    }
    Ok(())
}

fn send_one(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let rights = [fd];
    if !control.push(SendAncillaryMessage::ScmRights(&rights)) {
        return Err(io::Error::other(
            "control buffer too small for one descriptor",
        ));
    }
    let n = rustix::net::sendmsg(
        sock,
        &[IoSlice::new(&[0])],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    if n != 1 {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "the descriptor's carrier byte was not sent",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn descriptors_ride_on_carrier_bytes() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut pr, mut pw) = UnixStream::pair().unwrap();
        (&a).write_all(b"packet").unwrap();
        let fds = vec![
            OwnedFd::from(pw.try_clone().unwrap()),
            OwnedFd::from(pw.try_clone().unwrap()),
        ];
        let mut sent = 0;
        send(a.as_fd(), &fds, &mut sent).unwrap();
        assert_eq!(sent, 2);
        drop(fds);
        let mut got = Vec::new();
        let mut bytes = Vec::new();
        let mut buf = [0u8; 64];
        while bytes.len() < 8 {
            let n = recv(b.as_fd(), &mut buf, &mut got).unwrap();
            assert!(n > 0);
            bytes.extend_from_slice(&buf[..n]);
        }
        assert_eq!(bytes, b"packet\0\0");
        assert_eq!(got.len(), 2);
        // The received descriptors are the pipe's write end.
        let mut w = std::fs::File::from(got.pop().unwrap());
        w.write_all(b"x").unwrap();
        pw.write_all(b"y").unwrap();
        let mut two = [0u8; 2];
        pr.read_exact(&mut two).unwrap();
        assert_eq!(&two, b"xy");
    }

    #[test]
    fn plain_bytes_bring_no_descriptors() {
        let (a, b) = UnixStream::pair().unwrap();
        (&a).write_all(b"abc").unwrap();
        drop(a);
        let mut got = Vec::new();
        let mut buf = [0u8; 8];
        assert_eq!(recv(b.as_fd(), &mut buf, &mut got).unwrap(), 3);
        assert!(got.is_empty());
        assert_eq!(recv(b.as_fd(), &mut buf, &mut got).unwrap(), 0);
    }
}
