//! Arbitrary bytes through the QMP framer (both modes) and message decoder: no panic, frames
//! within the limit, and the guest-agent session never panics either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qmp_proto::{Framer, FramerConfig, Message};

fuzz_target!(|data: &[u8]| {
    let max = 64 + data.first().copied().unwrap_or(0) as usize;
    for sync_byte in [false, true] {
        let mut f = Framer::new(FramerConfig { max_frame_len: max, sync_byte });
        for chunk in data.chunks(7) {
            f.push(chunk);
            while let Some(r) = f.next_frame() {
                if let Ok(frame) = r {
                    assert!(frame.len() <= max);
                    let _ = Message::decode(frame);
                }
            }
        }
    }
    let mut q = qmp_proto::qga::QgaSession::new(max);
    let _ = q.sync(1);
    q.handle_input(data);
    while q.poll_output().is_some() {}
});
