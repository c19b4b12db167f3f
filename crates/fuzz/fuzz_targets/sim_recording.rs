//! The simulator's recording reader (`reelthyme_sim::read_recording`, what `reelthyme
//! replay FILE` feeds the server) on untrusted bytes: no panic, and what it reads writes
//! back (`Entry::to_line`) to a recording that reads the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use reelthyme_sim::{read_recording, recording_header};

fuzz_target!(|data: &[u8]| {
    let Ok(entries) = read_recording(data) else {
        return;
    };
    let mut again = recording_header("fuzz");
    for entry in &entries {
        again.push('\n');
        again.push_str(&entry.to_line());
    }
    let back = read_recording(again.as_bytes()).expect("a written recording reads");
    assert_eq!(back, entries);
});
