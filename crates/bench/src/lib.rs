//! reelthyme's benchmark harnesses, run by `cargo xtask bench` (which pins them to a core,
//! runs the peers on the same bytes and writes `benchmarks/RESULTS.md`).
//!
//! - [`codec`]: typed decode of a 20 ms `response.output_audio.delta` into samples, and
//!   encode of `input_audio_buffer.append` from 20 ms of samples, in events/s.
//! - [`scale`]: N concurrent full-duplex sessions against the simulator on loopback:
//!   client CPU and RSS per session, and the delay from the simulator's emitting each
//!   audio delta to the client's receipt of it.
//! - [`audio_path`] (feature `audio`): capture callback → append on the wire, delta
//!   received → first sample handed to the device, `speech_started` received → playback
//!   silent, on clocked devices.
//!
//! Every harness prints its figures as lines of the form `NAME key=value …` (see
//! [`figure`]); the smoke test (`tests/smoke.rs`) runs each with tiny sizes and checks the
//! lines are there.

#![forbid(unsafe_code)]

#[cfg(feature = "audio")]
pub mod audio_path;
pub mod codec;
pub mod proc_stats;
pub mod scale;

use std::fmt::Write as _;

/// One figure line: `NAME key=value key=value` (values without spaces).
pub fn figure(name: &str, fields: &[(&str, String)]) -> String {
    let mut line = name.to_owned();
    for (key, value) in fields {
        let _ = write!(line, " {key}={value}");
    }
    line
}

/// Calls `work` in batches of 1,000 until `seconds` have passed, `rounds` times, and gives
/// the best round's calls per second (the least disturbed one: the machine is shared).
/// The peers (`benchmarks/peers/`) time themselves the same way.
pub fn best_rate(seconds: f64, rounds: u32, mut work: impl FnMut()) -> f64 {
    let mut best = 0.0_f64;
    for _ in 0..rounds.max(1) {
        let start = std::time::Instant::now();
        let mut calls = 0_u64;
        loop {
            for _ in 0..1000 {
                work();
            }
            calls += 1000;
            let elapsed = start.elapsed().as_secs_f64();
            if elapsed >= seconds {
                best = best.max(calls as f64 / elapsed);
                break;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figure_lines_are_name_then_pairs() {
        assert_eq!(
            figure("decode.reelthyme", &[("events_per_s", "12".into())]),
            "decode.reelthyme events_per_s=12"
        );
    }

    #[test]
    fn best_rate_counts_calls() {
        let mut calls = 0_u64;
        let rate = best_rate(0.0, 2, || calls += 1);
        assert_eq!(calls, 2000);
        assert!(rate > 0.0);
    }
}
