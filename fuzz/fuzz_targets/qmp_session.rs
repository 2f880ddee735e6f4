//! Arbitrary server bytes into a QMP session (framer + message decoder + state machine), split
//! at an input-chosen point, with commands queued and one cancelled, and a frame limit small
//! enough for the input to exceed (oversize replies and events): no panic, no hang, and every
//! command ends at most once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qmp_proto::{FramerConfig, Output, Session, SessionConfig};

fuzz_target!(|data: &[u8]| {
    let (cut, rest) = match data.split_first() {
        Some((c, r)) => (*c as usize % (r.len() + 1), r),
        None => return,
    };
    let mut s = Session::new(SessionConfig {
        want_oob: cut % 2 == 0,
        framer: FramerConfig { max_frame_len: 16 + cut * 4, ..Default::default() },
        ..Default::default()
    });
    let ids: Vec<_> = (0..10).filter_map(|_| s.execute("query-status", None).ok()).collect();
    s.cancel(ids[3]);
    s.handle_input(&rest[..cut]);
    while s.poll_transmit().is_some() {}
    s.handle_input(&rest[cut..]);
    s.handle_eof();
    let mut ended = std::collections::HashSet::new();
    while let Some(o) = s.poll_output() {
        if let Output::Reply { id, .. } | Output::Failed { id, .. } = o {
            assert!(ended.insert(id), "{id} ended twice");
        }
    }
});
