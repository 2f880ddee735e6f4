//! libvirt streams (volume upload/download, console, screenshot, channels) as byte streams:
//! tokio `AsyncRead`/`AsyncWrite` ([`AsyncVirStream`]) and std `Read`/`Write`
//! ([`BlockingVirStream`]).
//!
//! Reading: data arrives in order; a sparse stream's holes are read as zeros through
//! `Read`/`AsyncRead`, or seen as [`StreamItem::Hole`] through `recv_item`. The sender's end of
//! data reads as EOF (0 bytes). Writing: data is queued (with backpressure: one write takes
//! at most 1 MiB, and a writer waits while more than 1 MiB is queued for the socket); [`send_hole`](AsyncVirStream::send_hole)
//! sends a hole. `finish` ends the stream cleanly (and waits for the daemon's confirmation);
//! dropping an unfinished stream aborts it (libvirt's `virStreamAbort`).
//!
//! Errors: `recv_item`/`send_hole`/`finish` return [`Error`]; `Read`/`Write` return an
//! `io::Error` wrapping the typed [`Error`] (e.g. `Error::Proto(Closed(..))` when the
//! connection died), reachable with `io_error.get_ref()` and `downcast_ref::<Error>()`.

use std::io;
use std::sync::Arc;
use std::task::Context;

use bytes::Bytes;
use libvirt_proto::{CallId, StreamItem};

use crate::core::Shared;
use crate::Error;

/// Queued outgoing bytes above which stream writers wait.
const WRITE_HIGH_WATER: usize = 1 << 20;

/// Reading and writing logic shared by both drivers; `cx` is `None` for blocking callers,
/// which wait on the shared condition variable instead of a waker.
#[derive(Debug)]
struct Core {
    shared: Arc<Shared>,
    id: CallId,
    leftover: Bytes,
    zeros: u64,
    eof: bool,
    done: bool,
}

enum Step<T> {
    Ready(T),
    Wait,
}

/// A stream error as `io::Error` for `Read`/`Write`: the typed [`Error`] is kept inside
/// (`io_error.get_ref()` / `into_inner()` downcast to [`Error`]).
fn io_err(e: impl Into<Error>) -> io::Error {
    io::Error::other(e.into())
}

/// A stream operation's error, explained: once the connection has forgotten a failed stream
/// it answers "no such stream"; report why it failed instead (the daemon's error, or the
/// connection's end).
fn explain(st: &crate::core::State, id: CallId, e: libvirt_proto::Error) -> Error {
    if !matches!(e, libvirt_proto::Error::NoSuchStream { .. }) {
        return e.into();
    }
    if let Some(f) = st.streams.get(&id.0).and_then(|w| w.failed.clone()) {
        return f.into();
    }
    match st.conn.close_reason() {
        Some(r) => libvirt_proto::Error::Closed(r.clone()).into(),
        None => e.into(),
    }
}

impl Core {
    fn new(shared: Arc<Shared>, id: CallId) -> Self {
        Self {
            shared,
            id,
            leftover: Bytes::new(),
            zeros: 0,
            eof: false,
            done: false,
        }
    }

    /// The next raw item (`None` = EOF or the stream ended cleanly).
    fn try_item(&mut self, cx: Option<&Context<'_>>) -> Step<Result<Option<StreamItem>, Error>> {
        if self.eof {
            return Step::Ready(Ok(None));
        }
        let mut st = self.shared.lock();
        let r = st.conn.stream_recv(self.id);
        let out = match r {
            Ok(Some(StreamItem::Eof)) => {
                self.eof = true;
                Step::Ready(Ok(None))
            }
            Ok(Some(item)) => Step::Ready(Ok(Some(item))),
            Ok(None) => {
                if st.conn.is_closed() {
                    Step::Ready(Err(Error::Proto(libvirt_proto::Error::Closed(
                        st.conn.close_reason().cloned().expect("closed"),
                    ))))
                } else {
                    if let (Some(cx), Some(w)) = (cx, st.streams.get_mut(&self.id.0)) {
                        w.waker = Some(cx.waker().clone());
                    }
                    Step::Wait
                }
            }
            Err(libvirt_proto::Error::NoSuchStream { .. })
                if st.streams.get(&self.id.0).is_some_and(|w| w.finished) =>
            {
                self.eof = true;
                Step::Ready(Ok(None))
            }
            Err(e) => Step::Ready(Err(explain(&st, self.id, e))),
        };
        drop(st);
        // Reading may lift the read pause.
        self.shared.wake_writer();
        out
    }

    fn try_read(&mut self, cx: Option<&Context<'_>>, buf: &mut [u8]) -> Step<io::Result<usize>> {
        loop {
            if !self.leftover.is_empty() {
                let n = buf.len().min(self.leftover.len());
                buf[..n].copy_from_slice(&self.leftover.split_to(n));
                return Step::Ready(Ok(n));
            }
            if self.zeros > 0 {
                let n = buf
                    .len()
                    .min(usize::try_from(self.zeros).unwrap_or(usize::MAX));
                buf[..n].fill(0);
                self.zeros -= n as u64;
                return Step::Ready(Ok(n));
            }
            match self.try_item(cx) {
                Step::Wait => return Step::Wait,
                Step::Ready(Err(e)) => return Step::Ready(Err(io_err(e))),
                Step::Ready(Ok(None)) => return Step::Ready(Ok(0)),
                Step::Ready(Ok(Some(StreamItem::Data(d)))) => self.leftover = d,
                Step::Ready(Ok(Some(StreamItem::Hole { length, .. }))) => {
                    self.zeros = u64::try_from(length).unwrap_or(0)
                }
                Step::Ready(Ok(Some(StreamItem::Eof))) => return Step::Ready(Ok(0)),
            }
        }
    }

    fn try_write(&mut self, cx: Option<&Context<'_>>, buf: &[u8]) -> Step<io::Result<usize>> {
        let mut st = self.shared.lock();
        if st.conn.transmit_buffered() > WRITE_HIGH_WATER && !st.conn.is_closed() {
            if let (Some(cx), Some(w)) = (cx, st.streams.get_mut(&self.id.0)) {
                w.write_waker = Some(cx.waker().clone());
            }
            return Step::Wait;
        }
        // At most the high-water mark per write, so that one huge write cannot queue it all
        // in memory past the backpressure (writers loop, as `write_all` does).
        let buf = &buf[..buf.len().min(WRITE_HIGH_WATER)];
        let r = st
            .conn
            .stream_send(self.id, buf)
            .map_err(|e| explain(&st, self.id, e));
        drop(st);
        self.shared.wake_writer();
        Step::Ready(r.map(|()| buf.len()).map_err(io_err))
    }

    fn send_hole(&mut self, length: i64) -> Result<(), Error> {
        let mut st = self.shared.lock();
        let r = st
            .conn
            .stream_send_hole(self.id, length, 0)
            .map_err(|e| explain(&st, self.id, e));
        drop(st);
        self.shared.wake_writer();
        r
    }

    fn start_finish(&mut self) -> Result<(), Error> {
        let r = self.shared.lock().conn.stream_finish(self.id);
        self.shared.wake_writer();
        match r {
            Ok(()) => Ok(()),
            // Finished already (e.g. a second shutdown call).
            Err(libvirt_proto::Error::StreamState { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Finish confirmed (`true`), still waiting, or failed.
    fn try_finished(&mut self, cx: Option<&Context<'_>>) -> Step<Result<(), Error>> {
        let mut st = self.shared.lock();
        let finished = st.streams.get(&self.id.0).is_some_and(|w| w.finished);
        if finished {
            st.streams.remove(&self.id.0);
            // Drop anything still queued; the clean end is reported by stream_recv.
            while let Ok(Some(_)) = st.conn.stream_recv(self.id) {}
            self.done = true;
            return Step::Ready(Ok(()));
        }
        match st.conn.stream_recv(self.id) {
            Ok(Some(_)) => {
                // Data after our finish: ignore (the daemon may still flush), keep waiting.
                drop(st);
                self.try_finished(cx)
            }
            Ok(None) if !st.conn.is_closed() => {
                if let (Some(cx), Some(w)) = (cx, st.streams.get_mut(&self.id.0)) {
                    w.waker = Some(cx.waker().clone());
                }
                Step::Wait
            }
            Ok(None) => Step::Ready(Err(Error::Proto(libvirt_proto::Error::Closed(
                st.conn.close_reason().cloned().expect("closed"),
            )))),
            Err(e) => {
                self.done = true;
                let e = explain(&st, self.id, e);
                st.streams.remove(&self.id.0);
                Step::Ready(Err(e))
            }
        }
    }

    fn abort(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let mut st = self.shared.lock();
        st.streams.remove(&self.id.0);
        let _ = st.conn.stream_abort(self.id);
        drop(st);
        self.shared.wake_writer();
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        self.abort();
    }
}

#[cfg(feature = "async")]
pub use self::asynch::AsyncVirStream;

#[cfg(feature = "async")]
mod asynch {
    use super::*;
    use crate::Client;
    use std::pin::Pin;
    use std::task::Poll;
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    /// A libvirt stream on the async client: `AsyncRead + AsyncWrite`.
    ///
    /// `poll_shutdown` finishes the stream (sends the clean end and waits for the daemon's
    /// confirmation); dropping it unfinished aborts it.
    #[derive(Debug)]
    pub struct AsyncVirStream {
        core: Core,
        finishing: bool,
        // Keeps the connection open while the stream lives.
        _client: Client,
    }

    impl AsyncVirStream {
        pub(crate) fn new(client: Client, id: CallId) -> Self {
            Self {
                core: Core::new(client.shared().clone(), id),
                finishing: false,
                _client: client,
            }
        }

        /// The stream's id (the serial of the call that opened it).
        pub fn id(&self) -> CallId {
            self.core.id
        }

        /// The next raw item: data or a hole (`None`: end of data). Do not mix with
        /// `AsyncRead` on the same stream.
        pub async fn recv_item(&mut self) -> Result<Option<StreamItem>, Error> {
            std::future::poll_fn(|cx| match self.core.try_item(Some(cx)) {
                Step::Ready(r) => Poll::Ready(r),
                Step::Wait => Poll::Pending,
            })
            .await
        }

        /// Send a hole of `length` bytes (sparse uploads).
        pub async fn send_hole(&mut self, length: i64) -> Result<(), Error> {
            std::future::poll_fn(|cx| {
                let st = self.core.shared.lock();
                if st.conn.transmit_buffered() > WRITE_HIGH_WATER && !st.conn.is_closed() {
                    drop(st);
                    let mut st = self.core.shared.lock();
                    if let Some(w) = st.streams.get_mut(&self.core.id.0) {
                        w.write_waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                Poll::Ready(())
            })
            .await;
            self.core.send_hole(length)
        }

        /// Send all of `data`.
        pub async fn send(&mut self, data: &[u8]) -> Result<(), Error> {
            use tokio::io::AsyncWriteExt;
            self.write_all(data).await.map_err(|e| {
                let reason = e.to_string();
                // The typed error inside (e.g. the connection's end), else a stream error.
                match e.into_inner().map(|b| b.downcast::<Error>()) {
                    Some(Ok(typed)) => *typed,
                    _ => Error::Stream { reason },
                }
            })
        }

        /// End the stream cleanly and wait for the daemon's confirmation.
        pub async fn finish(mut self) -> Result<(), Error> {
            self.core.start_finish()?;
            std::future::poll_fn(|cx| match self.core.try_finished(Some(cx)) {
                Step::Ready(r) => Poll::Ready(r),
                Step::Wait => Poll::Pending,
            })
            .await
        }

        /// Abort the stream (`virStreamAbort`).
        pub fn abort(mut self) {
            self.core.abort();
        }
    }

    impl AsyncRead for AsyncVirStream {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let dst = buf.initialize_unfilled();
            match self.core.try_read(Some(cx), dst) {
                Step::Wait => Poll::Pending,
                Step::Ready(Ok(n)) => {
                    buf.advance(n);
                    Poll::Ready(Ok(()))
                }
                Step::Ready(Err(e)) => Poll::Ready(Err(e)),
            }
        }
    }

    impl AsyncWrite for AsyncVirStream {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            match self.core.try_write(Some(cx), buf) {
                Step::Wait => Poll::Pending,
                Step::Ready(r) => Poll::Ready(r),
            }
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            if !self.finishing {
                self.finishing = true;
                if let Err(e) = self.core.start_finish() {
                    return Poll::Ready(Err(io_err(e)));
                }
            }
            match self.core.try_finished(Some(cx)) {
                Step::Wait => Poll::Pending,
                Step::Ready(r) => Poll::Ready(r.map_err(io_err)),
            }
        }
    }
}

#[cfg(feature = "blocking")]
pub use self::blocking::BlockingVirStream;

#[cfg(feature = "blocking")]
mod blocking {
    use super::*;
    use crate::blocking::Client;

    /// A libvirt stream on the blocking client: std `Read + Write`.
    ///
    /// [`finish`](Self::finish) ends it cleanly; dropping it unfinished aborts it.
    #[derive(Debug)]
    pub struct BlockingVirStream {
        core: Core,
        _client: Client,
    }

    impl BlockingVirStream {
        pub(crate) fn new(client: Client, id: CallId) -> Self {
            Self {
                core: Core::new(client.shared().clone(), id),
                _client: client,
            }
        }

        fn wait<T>(&mut self, mut f: impl FnMut(&mut Core) -> Step<T>) -> T {
            loop {
                if let Step::Ready(r) = f(&mut self.core) {
                    return r;
                }
                let st = self.core.shared.lock();
                // Re-check under the lock would need the step again; a short timed wait
                // bounds any missed wakeup.
                let _ = self
                    .core
                    .shared
                    .cv
                    .wait_timeout(st, std::time::Duration::from_millis(50));
            }
        }

        /// The stream's id.
        pub fn id(&self) -> CallId {
            self.core.id
        }

        /// The next raw item: data or a hole (`None`: end of data).
        pub fn recv_item(&mut self) -> Result<Option<StreamItem>, Error> {
            self.wait(|c| c.try_item(None))
        }

        /// Send a hole of `length` bytes.
        pub fn send_hole(&mut self, length: i64) -> Result<(), Error> {
            self.core.send_hole(length)
        }

        /// End the stream cleanly and wait for the daemon's confirmation.
        pub fn finish(mut self) -> Result<(), Error> {
            self.core.start_finish()?;
            self.wait(|c| c.try_finished(None))
        }

        /// Abort the stream.
        pub fn abort(mut self) {
            self.core.abort();
        }
    }

    impl io::Read for BlockingVirStream {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.wait(|c| c.try_read(None, buf))
        }
    }

    impl io::Write for BlockingVirStream {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.wait(|c| c.try_write(None, buf))
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}
