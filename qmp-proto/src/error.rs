//! The crate's one error type.

/// Everything that can go wrong while framing, decoding or driving a QMP session.
///
/// Every variant says what happened and carries what is needed to act on it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A JSON object on the wire grew past the configured maximum; the framer skipped to the next
    /// line without storing it. Raise [`FramerConfig::max_frame_len`](crate::FramerConfig) if
    /// the peer legitimately sends bigger messages.
    #[error("QMP message ({start:?}) longer than the {max} byte limit (skipped to the next line)")]
    FrameTooLong {
        /// The configured limit.
        max: usize,
        /// What the message looked like by its first key.
        start: crate::FrameStart,
    },
    /// The reply to this command was longer than the configured maximum and was dropped unread
    /// (see [`SessionConfig::framer`](crate::SessionConfig)). Only the command is lost: the
    /// session goes on with the next message.
    #[error("the reply was longer than the {limit} byte limit and was dropped")]
    ResponseTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// Bytes that cannot start or continue a JSON object (the framer resynchronised at the next
    /// line).
    #[error("unexpected byte 0x{byte:02x} outside a JSON object at stream offset {offset}")]
    Garbage {
        /// The offending byte.
        byte: u8,
        /// Offset in the stream since the session started.
        offset: u64,
    },
    /// A complete frame was not valid JSON.
    #[error("invalid JSON from the peer: {reason}")]
    InvalidJson {
        /// serde_json's description.
        reason: String,
    },
    /// Valid JSON that is not any QMP message (greeting, return, error or event).
    #[error("unrecognised QMP message: {reason}: {snippet}")]
    Unrecognized {
        /// What was wrong with it.
        reason: &'static str,
        /// The start of the message, for the log.
        snippet: String,
    },
    /// The peer sent something other than the greeting first (events excepted).
    #[error("expected the QMP greeting, got {got}")]
    NoGreeting {
        /// What came instead.
        got: String,
    },
    /// `qmp_capabilities` was refused: the session cannot be used.
    #[error("capability negotiation failed: {class}: {desc}")]
    NegotiationFailed {
        /// The error class QEMU gave.
        class: String,
        /// QEMU's description.
        desc: String,
    },
    /// `exec-oob` needs the `oob` capability, which was not negotiated (ask for it in
    /// [`SessionConfig::want_oob`](crate::SessionConfig) and use a QEMU that offers it).
    #[error("out-of-band execution was not negotiated with this peer")]
    OobNotNegotiated,
    /// Command arguments must be a JSON object (or absent).
    #[error("arguments of `{command}` must be a JSON object, got {got}")]
    ArgumentsNotObject {
        /// The command.
        command: String,
        /// The JSON type that was given.
        got: &'static str,
    },
    /// A command's return value did not have the expected shape.
    #[error("unexpected return value of `{command}`: {reason}")]
    BadReturn {
        /// The command.
        command: String,
        /// serde_json's description.
        reason: String,
    },
    /// An event's data did not have the shape the schema gives it.
    #[error("event `{event}` has unexpected data: {reason}")]
    BadEvent {
        /// The event name.
        event: String,
        /// serde_json's description.
        reason: String,
    },
    /// The peer closed the stream (or the session was closed); the command cannot complete.
    #[error("the QMP connection is closed")]
    Closed,
}

/// Short, log-friendly start of a JSON text.
pub(crate) fn snippet(text: &str) -> String {
    const MAX: usize = 120;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}
