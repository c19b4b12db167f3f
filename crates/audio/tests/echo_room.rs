//! The echo bench as a test: the assistant's speech through two simulated rooms (the second
//! from 15 s on), the user's speech over it at 10 s, noise throughout — and AEC3 in the
//! middle, at the rates a capture device runs at. The thresholds: ERLE ≥ 25 dB on
//! far-end-only audio after convergence, the user's speech kept (correlation ≥ 0.9 with the
//! clean speech while both talk), re-convergence within 2 s of the room changing. And the
//! room itself is real: without cancellation the echo is all there (ERLE ≈ 0 dB).

#![cfg(feature = "aec")]

use reelthyme_audio::Resampler;
use reelthyme_audio::echo::EchoCanceller;
use reelthyme_audio::echo::room::{BenchReport, bench};

/// A 24 kHz mono fixture at `rate`, as f32.
fn speech(name: &str, rate: u32) -> Vec<f32> {
    let wav = reelthyme_testkit::read_wav(&reelthyme_testkit::audio(name));
    assert_eq!((wav.rate, wav.channels), (24_000, 1));
    let mut pcm = Vec::new();
    reelthyme_audio::i16_to_f32(&wav.samples, &mut pcm);
    if rate == 24_000 {
        return pcm;
    }
    let mut resampler = Resampler::new(24_000, rate).unwrap();
    let mut out = Vec::new();
    resampler.process(&pcm, &mut out);
    resampler.flush(&mut out);
    out
}

/// The assistant: two sentences, their speech only, back to back (the bench loops them),
/// so that the echo is audible throughout the far-end-only segments.
fn assistant(rate: u32) -> Vec<f32> {
    let at = |s: f64| (s * f64::from(rate)) as usize;
    let interrupt = speech("interrupt_24k.wav", rate);
    let booking = speech("booking_24k.wav", rate);
    let mut far = interrupt[at(0.5)..at(4.45)].to_vec();
    far.extend(&booking[at(0.5)..at(2.69)]);
    far
}

/// The user: "What is the weather like in Paris today?", speech from 0.50 s to 2.55 s.
fn user(rate: u32) -> (Vec<f32>, (f64, f64)) {
    (speech("weather_24k.wav", rate), (0.5, 2.55))
}

fn run_aec(rate: u32) -> BenchReport {
    let (near, span) = user(rate);
    let mut aec = EchoCanceller::new(rate).unwrap();
    let report = bench(rate, &assistant(rate), &near, span, |far, mic, out| {
        aec.process(far, mic, out);
    });
    eprintln!("{}", report.line(&format!("aec@{rate}")));
    report
}

fn assert_done_when(report: &BenchReport) {
    assert!(report.erle_db >= 25.0, "ERLE {:.1} dB", report.erle_db);
    assert!(
        report.convergence_ms.is_some(),
        "never converged: {:?}",
        report.windows
    );
    assert!(
        report.double_talk_correlation >= 0.9,
        "double talk correlation {:.3}",
        report.double_talk_correlation
    );
    let again = report.reconvergence_ms.expect("never re-converged");
    assert!(again <= 2_000, "re-converged after {again} ms");
}

#[test]
fn aec3_meets_the_thresholds_at_16_khz() {
    assert_done_when(&run_aec(16_000));
}

#[test]
fn aec3_meets_the_thresholds_at_48_khz() {
    assert_done_when(&run_aec(48_000));
}

#[test]
fn without_cancellation_the_room_echoes() {
    let rate = 16_000;
    let (near, span) = user(rate);
    let report = bench(rate, &assistant(rate), &near, span, |_, mic, out| {
        out.extend_from_slice(mic);
    });
    eprintln!("{}", report.line("off"));
    assert!(report.erle_db.abs() < 1.0, "{}", report.erle_db);
    assert_eq!(report.convergence_ms, None);
    // The user is there, under the echo: correlated, but far from clean.
    assert!(
        report.double_talk_correlation < 0.9,
        "{}",
        report.double_talk_correlation
    );
}
