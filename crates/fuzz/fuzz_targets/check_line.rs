//! `check::check_line`, the engine of `reelthyme events check`, on untrusted lines with
//! every combination of options (picked by the first byte).

#![no_main]

use libfuzzer_sys::fuzz_target;
use reelthyme_schema::Direction;
use reelthyme_schema::check::{CheckOptions, Dialect, check_line};

fuzz_target!(|data: &[u8]| {
    let Some((&bits, rest)) = data.split_first() else {
        return;
    };
    let Ok(line) = std::str::from_utf8(rest) else {
        return;
    };
    let options = CheckOptions {
        direction: [None, Some(Direction::Client), Some(Direction::Server)]
            [usize::from(bits & 3) % 3],
        dialect: [None, Some(Dialect::Ga), Some(Dialect::Beta)][usize::from(bits >> 2 & 3) % 3],
        roundtrip: bits & 0x10 != 0,
        drift: bits & 0x20 != 0,
    };
    let outcome = check_line(line, options);
    let _ = outcome.passed();
    for failure in &outcome.failures {
        let _ = failure.to_string();
    }
});
