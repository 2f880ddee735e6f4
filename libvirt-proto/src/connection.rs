//! The client connection state machine: no IO, no clock.
//!
//! Shape borrowed from `quinn-proto`: the driver feeds bytes ([`Connection::handle_input`]),
//! descriptors ([`Connection::handle_fds`]), the end of the byte stream
//! ([`Connection::handle_eof`]) and the time ([`Connection::handle_timeout`]); it drains bytes to
//! send ([`Connection::poll_transmit`]), application events ([`Connection::poll_event`]) and the
//! next deadline ([`Connection::poll_timeout`]).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::event::{callback_event_family, EventFamily, Reply, ServerMessage};
use crate::framer::Framer;
use crate::header::{
    Header, MessageStatus, MessageType, KEEPALIVE_PROC_PING, KEEPALIVE_PROC_PONG,
    KEEPALIVE_PROGRAM, KEEPALIVE_VERSION, LEGACY_PAYLOAD_MAX, PACKET_MAX,
};
use crate::keepalive::{Keepalive, KeepaliveConfig, Tick};
use crate::packet::{encode_packet_with, Packet};
use crate::program::{Call, ProcedureInfo};
use crate::remote_error::RemoteError;
use crate::stream::{decode_hole, encode_hole, LocalState, StreamItem, StreamState};
use crate::{CloseReason, Error, Event};

/// Identifies a call (and the stream it opened, if any): its serial number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u32);

impl CallId {
    /// The serial number on the wire.
    pub fn serial(self) -> u32 {
        self.0
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "serial {}", self.0)
    }
}

/// Which procedure of which program a call invokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcedureId {
    /// Program number (e.g. [`crate::event::REMOTE_PROGRAM`]).
    pub program: u32,
    /// Program version (1).
    pub version: u32,
    /// Procedure number.
    pub procedure: i32,
}

impl ProcedureId {
    /// A procedure of the remote program (`REMOTE_PROGRAM`, version 1).
    pub fn remote(procedure: i32) -> Self {
        Self {
            program: crate::event::REMOTE_PROGRAM,
            version: 1,
            procedure,
        }
    }
}

impl From<&ProcedureInfo> for ProcedureId {
    fn from(p: &ProcedureInfo) -> Self {
        Self {
            program: p.program,
            version: p.version,
            // Procedure numbers are small positive ints (`int proc` in the header).
            procedure: p.number as i32,
        }
    }
}

/// Per-call options for [`Connection::start_call_with`].
#[derive(Debug, Default)]
pub struct CallOptions {
    /// The procedure opens a stream (`@readstream` / `@writestream` in the `.x` files): stream
    /// state is created under the call's serial before the call is sent.
    pub stream: bool,
    /// Descriptors to pass (sends `CALL_WITH_FDS`); at most 32.
    pub fds: Vec<OwnedFd>,
    /// Fail the call with [`Error::TimedOut`] if no reply arrived by then (checked in
    /// [`Connection::handle_timeout`]); the late reply is discarded.
    pub deadline: Option<Instant>,
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest incoming packet accepted (length word included); at most libvirt's limit.
    pub max_packet: u32,
    /// Outgoing stream data is cut into packets of at most this many bytes. Default:
    /// `VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX` (262 120), what libvirtd itself uses.
    pub stream_chunk_size: usize,
    /// Incoming bytes buffered per stream before [`Connection::is_read_paused`] asks the driver
    /// to stop reading the socket (libvirt has no stream flow control on the wire; TCP-level
    /// backpressure is the only one). Default 4 MiB.
    pub stream_buffer_limit: usize,
    /// Server messages (events) queued before new ones are dropped and counted (see
    /// [`Event::MessagesDropped`]). Replies and stream items are never dropped. Default 4096.
    pub message_queue_limit: usize,
    /// Consecutive packets without fds are merged into one transmit up to this size. Default
    /// 256 KiB.
    pub transmit_coalesce: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_packet: PACKET_MAX,
            stream_chunk_size: LEGACY_PAYLOAD_MAX as usize,
            stream_buffer_limit: 4 << 20,
            message_queue_limit: 4096,
            transmit_coalesce: 256 << 10,
        }
    }
}

/// Bytes for the driver to write, and descriptors to pass after them.
#[derive(Debug)]
pub struct Transmit {
    /// Write all of these bytes.
    pub data: Bytes,
    /// Then, for each descriptor, send one `0` byte carrying it (`SCM_RIGHTS`), as libvirt's
    /// `virNetSocketSendFD` does. Empty for most transmits.
    pub fds: Vec<OwnedFd>,
}

/// Counters, for diagnostics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets decoded from the server.
    pub packets_received: u64,
    /// Packets queued for sending.
    pub packets_sent: u64,
    /// Late replies to abandoned or timed-out calls, discarded.
    pub discarded_replies: u64,
    /// Stream packets (and REPLY-type abort confirmations) for streams no longer open (after
    /// abort, abandon or failure), discarded like libvirt's client does.
    pub discarded_stream_packets: u64,
    /// Keepalive packets of unknown procedure, ignored like libvirt does.
    pub ignored_keepalive: u64,
    /// Server messages dropped because the queue was full.
    pub messages_dropped: u64,
    /// PINGs sent.
    pub pings_sent: u64,
    /// PONGs sent (answers to the server's PINGs).
    pub pongs_sent: u64,
}

#[derive(Debug)]
struct PendingCall {
    target: ProcedureId,
    stream: bool,
    deadline: Option<Instant>,
    /// Set by [`Connection::route_reply_callback`]: route the callback id of the successful
    /// reply to this token.
    route: Option<(EventFamily, u64)>,
}

/// The sans-IO libvirt RPC client connection. See the crate docs for an example.
#[derive(Debug)]
pub struct Connection {
    config: Config,
    framer: Framer,
    next_serial: u32,
    pending: HashMap<u32, PendingCall>,
    deadlines: BTreeSet<(Instant, u32)>,
    /// Serials whose late replies / stream packets are discarded.
    abandoned: HashSet<u32>,
    /// Streams we aborted: their packets (and a REPLY-type abort confirmation) are discarded
    /// until the server's terminal packet for them arrives.
    aborted_streams: HashSet<u32>,
    streams: HashMap<u32, StreamState>,
    routes: HashMap<(EventFamily, i32), u64>,
    events: VecDeque<Event>,
    queued_messages: usize,
    dropped_unreported: u64,
    transmit: VecDeque<Transmit>,
    building: Vec<u8>,
    transmit_bytes: usize,
    rx_fds: VecDeque<OwnedFd>,
    keepalive: Option<Keepalive>,
    closed: Option<CloseReason>,
    stats: Stats,
}

impl Default for Connection {
    fn default() -> Self {
        Self::new(Config::default())
    }
}

impl Connection {
    /// A fresh connection (the transport is assumed open; authentication and `CONNECT_OPEN`
    /// are ordinary calls).
    pub fn new(config: Config) -> Self {
        Self {
            framer: Framer::with_max_packet(config.max_packet),
            config,
            next_serial: 1,
            pending: HashMap::new(),
            deadlines: BTreeSet::new(),
            abandoned: HashSet::new(),
            aborted_streams: HashSet::new(),
            streams: HashMap::new(),
            routes: HashMap::new(),
            events: VecDeque::new(),
            queued_messages: 0,
            dropped_unreported: 0,
            transmit: VecDeque::new(),
            building: Vec::new(),
            transmit_bytes: 0,
            rx_fds: VecDeque::new(),
            keepalive: None,
            closed: None,
            stats: Stats::default(),
        }
    }

    // ----- calls ---------------------------------------------------------------------------

    /// Start a call whose XDR-encoded arguments are `args`; returns its id (serial). The
    /// outcome arrives as [`Event::Reply`].
    pub fn start_call(&mut self, target: ProcedureId, args: &[u8]) -> Result<CallId, Error> {
        self.start_call_with(target, CallOptions::default(), |out| {
            out.extend_from_slice(args);
            Ok(())
        })
    }

    /// Start a call of a generated procedure (a marker from `generated::<program>::procs`,
    /// e.g. `procs::ConnectGetVersion`): program, version, number and whether it opens a
    /// stream come from the generated table; `args` is its `Args` type (`()` for none). Decode
    /// the reply with `reply.decode::<C::Ret>()`.
    pub fn start<C: Call>(&mut self, procedure: C, args: &C::Args) -> Result<CallId, Error> {
        self.start_with_options(procedure, args, CallOptions::default())
    }

    /// [`start`](Self::start) with options (descriptors, deadline). `options.stream` is set
    /// automatically for stream procedures.
    pub fn start_with_options<C: Call>(
        &mut self,
        _procedure: C,
        args: &C::Args,
        mut options: CallOptions,
    ) -> Result<CallId, Error> {
        let target = ProcedureId::from(C::INFO);
        options.stream |= C::STREAM.is_some();
        self.start_call_with(target, options, |out| {
            xdr::to_writer_vec(args, out).map_err(|e| Error::encode(C::NAME, e))
        })
    }

    /// Start a call whose arguments are any serde value (normally a generated `*_args` type,
    /// or `()` for procedures without arguments), XDR-encoded straight into the send buffer.
    pub fn start_call_args<T: serde::Serialize + ?Sized>(
        &mut self,
        target: ProcedureId,
        args: &T,
    ) -> Result<CallId, Error> {
        self.start_call_with(target, CallOptions::default(), |out| {
            xdr::to_writer_vec(args, out).map_err(|e| {
                Error::encode(format!("arguments of procedure {}", target.procedure), e)
            })
        })
    }

    /// Start a call, encoding the arguments straight into the send buffer with `encode`
    /// (e.g. `|out| xdr::to_writer_vec(&args, out)` mapped to [`Error`]).
    pub fn start_call_with(
        &mut self,
        target: ProcedureId,
        options: CallOptions,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), Error>,
    ) -> Result<CallId, Error> {
        if let Some(r) = &self.closed {
            return Err(Error::Closed(r.clone()));
        }
        let serial = self.alloc_serial()?;
        let fds = options.fds;
        let kind = if fds.is_empty() {
            MessageType::Call
        } else {
            MessageType::CallWithFds
        };
        let header = Header {
            program: target.program,
            version: target.version,
            procedure: target.procedure,
            kind,
            serial,
            status: MessageStatus::Ok,
        };
        self.queue_packet_with(&header, fds, encode)?;
        self.next_serial = serial.wrapping_add(1);
        self.pending.insert(
            serial,
            PendingCall {
                target,
                stream: options.stream,
                deadline: options.deadline,
                route: None,
            },
        );
        if let Some(d) = options.deadline {
            self.deadlines.insert((d, serial));
        }
        if options.stream {
            self.streams.insert(serial, StreamState::new(target));
        }
        Ok(CallId(serial))
    }

    /// Give up on a call: no [`Event::Reply`] will be emitted for it and its late reply is
    /// discarded; nothing else is disturbed. If it opened a stream, the stream is aborted.
    /// Unknown or finished ids are ignored.
    pub fn abandon(&mut self, id: CallId) {
        if let Some(p) = self.pending.remove(&id.0) {
            if let Some(d) = p.deadline {
                self.deadlines.remove(&(d, id.0));
            }
            self.abandoned.insert(id.0);
        }
        if self.streams.contains_key(&id.0) {
            let _ = self.stream_abort(id);
        }
    }

    /// Number of calls waiting for their reply.
    pub fn pending_calls(&self) -> usize {
        self.pending.len()
    }

    /// Replies the daemon still owes: pending calls plus abandoned ones whose late reply has
    /// not arrived yet. A driver closing the connection can wait for this to reach zero so
    /// the daemon is not mid-call when the client goes (libvirtd 9.0 can crash when a client
    /// disconnects during an event (de)registration).
    pub fn awaiting_replies(&self) -> usize {
        self.pending.len() + self.abandoned.len()
    }

    fn alloc_serial(&self) -> Result<u32, Error> {
        let mut s = self.next_serial;
        for _ in 0..=u32::MAX {
            if s != 0
                && !self.pending.contains_key(&s)
                && !self.streams.contains_key(&s)
                && !self.abandoned.contains(&s)
                && !self.aborted_streams.contains(&s)
            {
                return Ok(s);
            }
            s = s.wrapping_add(1);
        }
        Err(Error::SerialsExhausted)
    }

    // ----- output ----------------------------------------------------------------------------

    fn queue_packet_with(
        &mut self,
        header: &Header,
        fds: Vec<OwnedFd>,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let num_fds = u32::try_from(fds.len()).unwrap_or(u32::MAX);
        if fds.is_empty() {
            let before = self.building.len();
            encode_packet_with(header, 0, &mut self.building, encode)?;
            self.transmit_bytes += self.building.len() - before;
            if self.building.len() >= self.config.transmit_coalesce {
                self.flush_building();
            }
        } else {
            let mut data = Vec::new();
            encode_packet_with(header, num_fds, &mut data, encode)?;
            self.flush_building();
            self.transmit_bytes += data.len();
            self.transmit.push_back(Transmit {
                data: data.into(),
                fds,
            });
        }
        self.stats.packets_sent += 1;
        Ok(())
    }

    fn queue_packet(&mut self, header: &Header, body: &[u8]) -> Result<(), Error> {
        self.queue_packet_with(header, Vec::new(), |out| {
            out.extend_from_slice(body);
            Ok(())
        })
    }

    fn flush_building(&mut self) {
        if !self.building.is_empty() {
            let data = std::mem::take(&mut self.building);
            self.transmit.push_back(Transmit {
                data: data.into(),
                fds: Vec::new(),
            });
        }
    }

    /// The next bytes (and descriptors) to write, in order. Call until `None` after every
    /// input, call start, stream operation or timeout.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.transmit.is_empty() {
            self.flush_building();
        }
        let t = self.transmit.pop_front()?;
        self.transmit_bytes -= t.data.len();
        Some(t)
    }

    /// Give back a transmit the driver could not write (entirely) now, such as the unwritten
    /// rest of `data` after a partial non-blocking write: it goes out before anything else.
    /// Give several back in reverse order. Dropped when the connection is closed.
    pub fn requeue_transmit(&mut self, t: Transmit) {
        if self.closed.is_some() || (t.data.is_empty() && t.fds.is_empty()) {
            return;
        }
        self.transmit_bytes += t.data.len();
        self.transmit.push_front(t);
    }

    /// Bytes queued for sending and not yet taken by [`poll_transmit`](Self::poll_transmit).
    pub fn transmit_buffered(&self) -> usize {
        self.transmit_bytes
    }

    // ----- input -----------------------------------------------------------------------------

    /// Feed bytes read from the transport. Returns an error when the input is fatal for the
    /// connection (framing or protocol violation); the connection is then closed and every
    /// pending call and stream has been failed (see [`poll_event`](Self::poll_event)).
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), Error> {
        if let Some(r) = &self.closed {
            return Err(Error::Closed(r.clone()));
        }
        self.framer.push(data);
        self.process_input()
    }

    /// Like [`handle_input`](Self::handle_input) but takes ownership of a read buffer
    /// (zero-copy when no partial packet is pending).
    pub fn receive(&mut self, data: BytesMut) -> Result<(), Error> {
        if let Some(r) = &self.closed {
            return Err(Error::Closed(r.clone()));
        }
        self.framer.push_bytes(data);
        self.process_input()
    }

    /// Descriptors received (`SCM_RIGHTS`) with the bytes passed to the next `handle_input`;
    /// call before feeding those bytes. They are attached, in order, to `REPLY_WITH_FDS`
    /// replies.
    pub fn handle_fds(&mut self, fds: impl IntoIterator<Item = OwnedFd>) {
        self.rx_fds.extend(fds);
    }

    /// The transport reached end of file: everything pending fails with
    /// [`CloseReason::Eof`].
    pub fn handle_eof(&mut self) {
        self.close_with(CloseReason::Eof);
    }

    /// The transport failed: everything pending fails with [`CloseReason::Io`].
    pub fn handle_io_error(&mut self, error: impl fmt::Display) {
        self.close_with(CloseReason::Io(error.to_string()));
    }

    /// Close locally: everything pending fails with [`CloseReason::Local`]; queued output is
    /// dropped. (To close politely, complete a `CONNECT_CLOSE` call first.)
    pub fn close(&mut self) {
        self.close_with(CloseReason::Local);
    }

    /// Whether the connection is closed, and why.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.closed.as_ref()
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// Bytes buffered of a partial incoming packet.
    pub fn input_buffered(&self) -> usize {
        self.framer.buffered()
    }

    fn process_input(&mut self) -> Result<(), Error> {
        loop {
            let packet = match self.framer.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.close_with(CloseReason::Protocol(e.to_string()));
                    return Err(e);
                }
            };
            self.stats.packets_received += 1;
            if let Some(k) = &mut self.keepalive {
                k.note_activity();
            }
            if let Err(e) = self.dispatch(packet) {
                self.close_with(CloseReason::Protocol(e.to_string()));
                return Err(e);
            }
        }
    }

    fn take_fds(&mut self, packet: &Packet) -> Result<Vec<OwnedFd>, Error> {
        let n = packet.num_fds as usize;
        if self.rx_fds.len() < n {
            return Err(Error::MissingFds {
                serial: packet.header.serial,
                expected: packet.num_fds,
                available: self.rx_fds.len(),
            });
        }
        Ok(self.rx_fds.drain(..n).collect())
    }

    fn dispatch(&mut self, packet: Packet) -> Result<(), Error> {
        let h = packet.header;
        if h.program == KEEPALIVE_PROGRAM
            && h.version == KEEPALIVE_VERSION
            && h.kind == MessageType::Message
        {
            match h.procedure {
                KEEPALIVE_PROC_PING => {
                    self.queue_keepalive(KEEPALIVE_PROC_PONG)?;
                    self.stats.pongs_sent += 1;
                }
                KEEPALIVE_PROC_PONG => {}
                _ => self.stats.ignored_keepalive += 1,
            }
            return Ok(());
        }
        match h.kind {
            MessageType::Reply | MessageType::ReplyWithFds => self.dispatch_reply(packet),
            MessageType::Message => {
                self.dispatch_message(packet);
                Ok(())
            }
            MessageType::Stream | MessageType::StreamHole => self.dispatch_stream(packet),
            MessageType::Call | MessageType::CallWithFds => Err(Error::UnexpectedPacket {
                header: h,
                reason: "the server sent a call",
            }),
        }
    }

    fn dispatch_reply(&mut self, packet: Packet) -> Result<(), Error> {
        let h = packet.header;
        let fds = self.take_fds(&packet)?;
        if h.status == MessageStatus::Continue {
            return Err(Error::UnexpectedPacket {
                header: h,
                reason: "a reply cannot have status CONTINUE",
            });
        }
        let Some(call) = self.pending.get(&h.serial) else {
            if self.abandoned.remove(&h.serial) {
                self.stats.discarded_replies += 1;
                return Ok(());
            }
            if let Some(st) = self.streams.get(&h.serial) {
                // libvirtd answers a failed stream finish (or abort) with a REPLY carrying the
                // stream's serial (`daemonStreamHandleFinish` / `daemonStreamHandleAbort`).
                if st.target.program != h.program || st.target.version != h.version {
                    return Err(Error::UnexpectedPacket {
                        header: h,
                        reason: "reply program/version differ from the stream's",
                    });
                }
                if st.end.is_some() {
                    self.stats.discarded_stream_packets += 1;
                } else {
                    self.stream_terminal(h.serial, h.status, &packet.body);
                }
                return Ok(());
            }
            if self.aborted_streams.remove(&h.serial) {
                self.stats.discarded_stream_packets += 1;
                return Ok(());
            }
            return Err(Error::UnexpectedPacket {
                header: h,
                reason: "no call is waiting for a reply with this serial",
            });
        };
        if call.target.program != h.program || call.target.version != h.version {
            return Err(Error::UnexpectedPacket {
                header: h,
                reason: "reply program/version differ from the call's",
            });
        }
        let call = self.pending.remove(&h.serial).expect("checked above");
        if let Some(d) = call.deadline {
            self.deadlines.remove(&(d, h.serial));
        }
        let id = CallId(h.serial);
        if let (Some((family, token)), MessageStatus::Ok, Some(b)) =
            (call.route, h.status, packet.body.get(..4))
        {
            let cb = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            self.routes.insert((family, cb), token);
        }
        let result = match h.status {
            MessageStatus::Ok => Ok(Reply {
                header: h,
                body: packet.body,
                fds,
            }),
            _ => Err(match RemoteError::decode(&packet.body) {
                Ok(e) => Error::Remote(Box::new(e)),
                Err(e) => e,
            }),
        };
        if call.stream {
            if let Err(e) = &result {
                self.fail_stream(h.serial, e.clone());
            }
        }
        self.events.push_back(Event::Reply { id, result });
        Ok(())
    }

    fn dispatch_message(&mut self, packet: Packet) {
        let h = packet.header;
        let family = callback_event_family(h.program, h.procedure);
        let callback_id = match (family, packet.body.get(..4)) {
            (Some(_), Some(b)) => Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            _ => None,
        };
        let route = match (family, callback_id) {
            (Some(f), Some(id)) => self.routes.get(&(f, id)).copied(),
            _ => None,
        };
        if self.queued_messages >= self.config.message_queue_limit {
            self.dropped_unreported += 1;
            self.stats.messages_dropped += 1;
            return;
        }
        if self.dropped_unreported > 0 {
            self.events.push_back(Event::MessagesDropped {
                count: std::mem::take(&mut self.dropped_unreported),
            });
        }
        self.queued_messages += 1;
        self.events.push_back(Event::Message(ServerMessage {
            program: h.program,
            version: h.version,
            procedure: h.procedure,
            callback_id,
            route,
            body: packet.body,
        }));
    }

    fn dispatch_stream(&mut self, packet: Packet) -> Result<(), Error> {
        let h = packet.header;
        let serial = h.serial;
        let Some(st) = self.streams.get_mut(&serial) else {
            // Like libvirt's client: packets for a stream we shut down are expected; drop them.
            if h.status != MessageStatus::Continue {
                self.aborted_streams.remove(&serial);
            }
            self.stats.discarded_stream_packets += 1;
            return Ok(());
        };
        if st.target.program != h.program || st.target.version != h.version {
            return Err(Error::UnexpectedPacket {
                header: h,
                reason: "stream packet program/version differ from the call's",
            });
        }
        if st.end.is_some() {
            self.stats.discarded_stream_packets += 1;
            return Ok(());
        }
        let id = CallId(serial);
        match (h.kind, h.status) {
            (MessageType::Stream, MessageStatus::Continue) => {
                let item = if packet.body.is_empty() {
                    StreamItem::Eof
                } else {
                    StreamItem::Data(packet.body)
                };
                if st.push(item) {
                    self.events.push_back(Event::StreamReadable { id });
                }
            }
            (_, MessageStatus::Continue) => match decode_hole(&packet.body) {
                Ok((length, flags)) => {
                    if st.push(StreamItem::Hole { length, flags }) {
                        self.events.push_back(Event::StreamReadable { id });
                    }
                }
                Err(e) => {
                    // Like a local abort: tell the server, discard what follows, report.
                    self.queue_stream_control(serial, MessageStatus::Error)?;
                    self.aborted_streams.insert(serial);
                    self.fail_stream(serial, e);
                }
            },
            (_, status) => self.stream_terminal(serial, status, &packet.body),
        }
        Ok(())
    }

    /// The server ended an open stream: OK is the finish confirmation (or the server ending the
    /// stream on its own), ERROR carries a remote error.
    fn stream_terminal(&mut self, serial: u32, status: MessageStatus, body: &[u8]) {
        if status == MessageStatus::Ok {
            if let Some(st) = self.streams.get_mut(&serial) {
                st.end = Some(None);
                self.events
                    .push_back(Event::StreamFinished { id: CallId(serial) });
                self.reap_stream(serial);
            }
        } else {
            let err = match RemoteError::decode(body) {
                Ok(e) => Error::Remote(Box::new(e)),
                Err(e) => e,
            };
            self.fail_stream(serial, err);
        }
    }

    fn fail_stream(&mut self, serial: u32, error: Error) {
        if let Some(st) = self.streams.get_mut(&serial) {
            if st.end.is_none() {
                st.end = Some(Some(error.clone()));
                self.events.push_back(Event::StreamFailed {
                    id: CallId(serial),
                    error,
                });
                self.reap_stream(serial);
            }
        }
    }

    /// Drop a finished stream once its queue is drained.
    fn reap_stream(&mut self, serial: u32) {
        if let Some(st) = self.streams.get(&serial) {
            if st.end.is_some() && st.rx.is_empty() {
                self.streams.remove(&serial);
            }
        }
    }

    fn close_with(&mut self, reason: CloseReason) {
        if self.closed.is_some() {
            return;
        }
        self.closed = Some(reason.clone());
        let err = Error::Closed(reason.clone());
        let mut serials: Vec<u32> = self.pending.keys().copied().collect();
        serials.sort_unstable();
        for s in serials {
            self.pending.remove(&s);
            self.events.push_back(Event::Reply {
                id: CallId(s),
                result: Err(err.clone()),
            });
        }
        let mut serials: Vec<u32> = self.streams.keys().copied().collect();
        serials.sort_unstable();
        for s in serials {
            self.fail_stream(s, err.clone());
        }
        self.deadlines.clear();
        self.abandoned.clear();
        self.aborted_streams.clear();
        self.transmit.clear();
        self.building.clear();
        self.transmit_bytes = 0;
        self.rx_fds.clear();
        self.keepalive = None;
        self.events.push_back(Event::Closed(reason));
    }

    // ----- events ----------------------------------------------------------------------------

    /// The next application event, in wire order.
    pub fn poll_event(&mut self) -> Option<Event> {
        let e = self.events.pop_front()?;
        if matches!(e, Event::Message(_)) {
            self.queued_messages -= 1;
        }
        Some(e)
    }

    /// Route callback-id events of `family` carrying `callback_id` (the id the server returned
    /// from the family's `*_CALLBACK_REGISTER_ANY` call) to `token`: their
    /// [`ServerMessage::route`] is `Some(token)`.
    pub fn route_callback(&mut self, family: EventFamily, callback_id: i32, token: u64) {
        self.routes.insert((family, callback_id), token);
    }

    /// Call `id` registers a callback of `family` (a `*_REGISTER_ANY` procedure, whose reply
    /// body starts with the `int callbackID`): when its successful reply arrives, that
    /// callback id is routed to `token` at once, so that events the server sends right after
    /// the reply are routed even before the application has looked at the reply. Returns
    /// false (and does nothing) when `id` is not a pending call.
    pub fn route_reply_callback(&mut self, id: CallId, family: EventFamily, token: u64) -> bool {
        match self.pending.get_mut(&id.0) {
            Some(p) => {
                p.route = Some((family, token));
                true
            }
            None => false,
        }
    }

    /// Stop routing a callback id (after its `*_CALLBACK_DEREGISTER_ANY`).
    pub fn unroute_callback(&mut self, family: EventFamily, callback_id: i32) {
        self.routes.remove(&(family, callback_id));
    }

    // ----- time ------------------------------------------------------------------------------

    /// Opt in to keepalive (after the server confirmed `CONNECT_SUPPORTS_FEATURE` for
    /// `VIR_DRV_FEATURE_PROGRAM_KEEPALIVE`); `now` starts the first interval. PINGs from the
    /// server are answered whether or not this is called.
    pub fn enable_keepalive(&mut self, config: KeepaliveConfig, now: Instant) {
        if self.closed.is_none() && !config.interval.is_zero() {
            self.keepalive = Some(Keepalive::new(config, now));
        }
    }

    /// Stop sending keepalive PINGs.
    pub fn disable_keepalive(&mut self) {
        self.keepalive = None;
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        let ka = self.keepalive.as_ref().map(|k| k.deadline());
        let call = self.deadlines.first().map(|(d, _)| *d);
        match (ka, call) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Advance timers to `now`: per-call deadlines and keepalive (may queue a PING or close the
    /// connection with [`CloseReason::KeepaliveTimeout`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        while let Some(&(d, serial)) = self.deadlines.first() {
            if d > now {
                break;
            }
            self.deadlines.pop_first();
            if self.pending.remove(&serial).is_some() {
                self.abandoned.insert(serial);
                self.events.push_back(Event::Reply {
                    id: CallId(serial),
                    result: Err(Error::TimedOut { serial }),
                });
                if self.streams.contains_key(&serial) {
                    let _ = self.stream_abort(CallId(serial));
                }
            }
        }
        let tick = match &mut self.keepalive {
            Some(k) => (k.tick(now), k.config),
            None => return,
        };
        match tick {
            (Tick::Nothing, _) => {}
            (Tick::SendPing, _) => {
                if self.queue_keepalive(KEEPALIVE_PROC_PING).is_ok() {
                    self.stats.pings_sent += 1;
                }
            }
            (Tick::Dead, cfg) => self.close_with(CloseReason::KeepaliveTimeout {
                count: cfg.count,
                interval: cfg.interval,
            }),
        }
    }

    fn queue_keepalive(&mut self, procedure: i32) -> Result<(), Error> {
        let h = Header {
            program: KEEPALIVE_PROGRAM,
            version: KEEPALIVE_VERSION,
            procedure,
            kind: MessageType::Message,
            serial: 0,
            status: MessageStatus::Ok,
        };
        self.queue_packet(&h, &[])
    }

    // ----- streams -----------------------------------------------------------------------------

    fn open_stream(&mut self, id: CallId) -> Result<&mut StreamState, Error> {
        if let Some(r) = &self.closed {
            return Err(Error::Closed(r.clone()));
        }
        match self.streams.get_mut(&id.0) {
            Some(st) if st.end.is_none() => Ok(st),
            _ => Err(Error::NoSuchStream { serial: id.0 }),
        }
    }

    fn stream_header(
        st: &StreamState,
        serial: u32,
        kind: MessageType,
        status: MessageStatus,
    ) -> Header {
        Header {
            program: st.target.program,
            version: st.target.version,
            procedure: st.target.procedure,
            kind,
            serial,
            status,
        }
    }

    fn queue_stream_control(&mut self, serial: u32, status: MessageStatus) -> Result<(), Error> {
        let target = match self.streams.get(&serial) {
            Some(st) => st.target,
            None => return Err(Error::NoSuchStream { serial }),
        };
        let h = Header {
            program: target.program,
            version: target.version,
            procedure: target.procedure,
            kind: MessageType::Stream,
            serial,
            status,
        };
        self.queue_packet(&h, &[])
    }

    /// Queue stream data, cut into packets of at most `Config::stream_chunk_size` bytes. Empty
    /// data sends nothing (an empty data packet means EOF to libvirt).
    pub fn stream_send(&mut self, id: CallId, data: &[u8]) -> Result<(), Error> {
        let chunk = self.config.stream_chunk_size.max(1);
        let st = self.open_stream(id)?;
        if st.local != LocalState::Open {
            return Err(Error::StreamState {
                serial: id.0,
                reason: "cannot send after stream_finish",
            });
        }
        let h = Self::stream_header(st, id.0, MessageType::Stream, MessageStatus::Continue);
        for piece in data.chunks(chunk) {
            self.queue_packet(&h, piece)?;
        }
        Ok(())
    }

    /// Queue a hole of `length` bytes (`VIR_NET_STREAM_HOLE`) for sparse uploads.
    pub fn stream_send_hole(&mut self, id: CallId, length: i64, flags: u32) -> Result<(), Error> {
        let st = self.open_stream(id)?;
        if st.local != LocalState::Open {
            return Err(Error::StreamState {
                serial: id.0,
                reason: "cannot send a hole after stream_finish",
            });
        }
        let h = Self::stream_header(st, id.0, MessageType::StreamHole, MessageStatus::Continue);
        self.queue_packet_with(&h, Vec::new(), |out| encode_hole(length, flags, out))
    }

    /// Finish the stream cleanly: sends `VIR_NET_OK`; the server's confirmation produces
    /// [`Event::StreamFinished`] (or [`Event::StreamFailed`] if finishing failed there).
    pub fn stream_finish(&mut self, id: CallId) -> Result<(), Error> {
        let st = self.open_stream(id)?;
        if st.local != LocalState::Open {
            return Err(Error::StreamState {
                serial: id.0,
                reason: "stream_finish already called",
            });
        }
        st.local = LocalState::FinishSent;
        self.queue_stream_control(id.0, MessageStatus::Ok)
    }

    /// Abort the stream: sends `VIR_NET_ERROR` (libvirt's client abort), forgets the stream
    /// and discards whatever the server still sends for it. No event follows.
    pub fn stream_abort(&mut self, id: CallId) -> Result<(), Error> {
        self.open_stream(id)?;
        self.queue_stream_control(id.0, MessageStatus::Error)?;
        self.streams.remove(&id.0);
        self.aborted_streams.insert(id.0);
        Ok(())
    }

    /// The next incoming stream item. `Ok(None)`: nothing queued now (wait for
    /// [`Event::StreamReadable`]). After the stream ended, queued items are still returned, then
    /// `Err` with the failure (or [`Error::NoSuchStream`] after a clean finish).
    pub fn stream_recv(&mut self, id: CallId) -> Result<Option<StreamItem>, Error> {
        let Some(st) = self.streams.get_mut(&id.0) else {
            return Err(Error::NoSuchStream { serial: id.0 });
        };
        if let Some(item) = st.pop() {
            // A clean end is forgotten with its last item; a failure is reported next.
            if matches!(st.end, Some(None)) && st.rx.is_empty() {
                self.streams.remove(&id.0);
            }
            return Ok(Some(item));
        }
        match &st.end {
            None => Ok(None),
            Some(end) => {
                let end = end.clone();
                self.streams.remove(&id.0);
                Err(end.unwrap_or(Error::NoSuchStream { serial: id.0 }))
            }
        }
    }

    /// Incoming bytes queued (not yet read) on a stream; 0 for unknown streams.
    pub fn stream_buffered(&self, id: CallId) -> usize {
        self.streams.get(&id.0).map_or(0, |s| s.rx_bytes)
    }

    /// Whether the driver should stop reading the transport because a stream's incoming queue
    /// is over `Config::stream_buffer_limit` (resume once the application reads it). This is
    /// the backpressure signal; it also delays replies and events, so consumers of streams must
    /// keep reading.
    pub fn is_read_paused(&self) -> bool {
        let limit = self.config.stream_buffer_limit;
        self.streams.values().any(|s| s.rx_bytes > limit)
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The keepalive settings in force, if enabled.
    pub fn keepalive(&self) -> Option<KeepaliveConfig> {
        self.keepalive.as_ref().map(|k| k.config)
    }

    /// The interval, if keepalive is enabled.
    pub fn keepalive_interval(&self) -> Option<Duration> {
        self.keepalive().map(|k| k.interval)
    }
}

#[cfg(test)]
mod tests;
