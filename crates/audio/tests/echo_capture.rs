//! Echo control on the capture path itself: a clocked player plays the assistant into the
//! simulated room, the room's microphone signal goes into a clocked capture (the same
//! callback and worker code as a device's), and the capture's 24 kHz chunks are what a
//! session would send. With AEC the echo is gone and the user's voice is kept; half duplex
//! silences the echo and lets the user through; off, the echo is all there.

#![cfg(feature = "devices")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reelthyme_audio::echo::Echo;
use reelthyme_audio::echo::room::{Room, bench_rooms, best_correlation};
use reelthyme_audio::{Capture, Captured, EchoPath, Player, Resampler};

const RATE: u32 = 48_000;
const PERIOD: usize = 480;

fn fixture(name: &str) -> Vec<i16> {
    reelthyme_testkit::read_wav(&reelthyme_testkit::audio(name)).samples
}

fn to_f32(pcm: &[i16]) -> Vec<f32> {
    let mut out = Vec::new();
    reelthyme_audio::i16_to_f32(pcm, &mut out);
    out
}

/// The user's speech at 48 kHz, and at 24 kHz (what a clean capture would send).
fn user() -> (Vec<f32>, Vec<f32>) {
    let clean = to_f32(&fixture("weather_24k.wav"));
    let mut resampler = Resampler::new(24_000, RATE).unwrap();
    let mut wide = Vec::new();
    resampler.process(&clean, &mut wide);
    resampler.flush(&mut wide);
    (wide, clean)
}

/// 12 s: the assistant speaks throughout (two sentences, looped); the user speaks from 8 s.
/// The user's voice reaches the microphone at `user_gain` times the fixture's level.
/// Returns the captured 24 kHz audio.
fn run(echo: Echo, user_gain: f32) -> Vec<f32> {
    let (player, mut clock) = Player::with_clock(RATE, 1).unwrap();
    let path = EchoPath::new(echo, player.echo_reference().unwrap());
    let got = Arc::new(Mutex::new(Vec::<f32>::new()));
    let sink = got.clone();
    let (capture, mut mic) = Capture::with_clock(RATE, 1, 40, Some(path), move |c| {
        if let Captured::Audio(pcm) = c {
            sink.lock().unwrap().extend(to_f32(&pcm));
        }
    })
    .unwrap();
    let mut assistant = fixture("interrupt_24k.wav")[12_000..106_800].to_vec();
    assistant.extend(&fixture("booking_24k.wav")[12_000..64_560]);
    for _ in 0..3 {
        player.play("answer", &assistant);
    }
    let (near, _) = user();
    let mut room = Room::new(bench_rooms(RATE).0, 0.0003);
    let periods = 12 * RATE as usize / PERIOD;
    let user_from = 8 * RATE as usize;
    let mut sound = Vec::new();
    let mut before_user = None;
    for p in 0..periods {
        if p * PERIOD == user_from {
            before_user = Some(capture.echo_suppression_db());
        }
        let (far, _) = clock.pull(PERIOD);
        let at = p * PERIOD;
        let voice: Vec<f32> = (at..at + PERIOD)
            .map(|n| {
                n.checked_sub(user_from)
                    .and_then(|k| near.get(k))
                    .map_or(0.0, |v| v * user_gain)
            })
            .collect();
        sound.clear();
        room.capture(&far, &voice, &mut sound, None);
        mic.push(&sound);
        // Stay within a second of the worker (the reference ring holds one).
        if p % 10 == 9 {
            let deadline = Instant::now() + Duration::from_secs(10);
            while got.lock().unwrap().len() * 2 + RATE as usize / 5 < at {
                assert!(Instant::now() < deadline, "the capture worker stopped");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    assert_eq!(capture.echo(), echo.effective());
    if echo == Echo::Aec {
        // What the talk screen shows, measured while only the assistant was heard.
        let db = before_user.flatten().expect("a measured suppression");
        assert!(db > 25.0, "suppression on screen: {db} dB");
    }
    capture.stop();
    got.lock().unwrap().clone()
}

fn power(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len().max(1) as f64
}

#[test]
fn the_capture_path_cancels_the_echo_and_keeps_the_user() {
    let off = run(Echo::Off, 1.0);
    let aec = run(Echo::Aec, 1.0);
    let s = |t: f64| (t * 24_000.0) as usize;
    // Far end only, after convergence and after the half-duplex gate that backs AEC for
    // its first 5 s of far-end speech: the canceller alone, 5.5 s to 8 s.
    let erle = 10.0 * (power(&off[s(5.5)..s(8.0)]) / power(&aec[s(5.5)..s(8.0)])).log10();
    eprintln!("capture path: ERLE {erle:.1} dB");
    assert!(erle >= 25.0, "ERLE {erle:.1} dB");
    // The user, while the assistant goes on talking: 8.5 s to 10.55 s.
    let (_, clean) = user();
    let speech = s(8.5)..s(10.55);
    let heard = &clean[s(0.5)..s(2.55)];
    let corr = best_correlation(&aec[speech.clone()], heard, 240);
    let raw = best_correlation(&off[speech], heard, 240);
    eprintln!("capture path: double talk correlation {corr:.3} (echo off: {raw:.3})");
    assert!(corr >= 0.9, "{corr:.3}");
    assert!(raw < corr);
}

#[test]
fn half_duplex_silences_the_echo_and_lets_the_user_through() {
    // The user close to the microphone: three times the level of the room test, where the
    // echo is as loud as the user (half duplex cannot tell them apart there).
    let gated = run(Echo::HalfDuplex, 3.0);
    let s = |t: f64| (t * 24_000.0) as usize;
    let silent = gated[s(1.0)..s(8.0)].iter().filter(|v| **v == 0.0).count();
    assert!(silent as f64 > 0.95 * (s(8.0) - s(1.0)) as f64, "{silent}");
    // The user is louder at the microphone than the speaker's echo: most of the speech
    // goes through.
    let passed = power(&gated[s(8.5)..s(10.55)]);
    let (_, clean) = user();
    let spoken = 9.0 * power(&clean[s(0.5)..s(2.55)]);
    assert!(passed > 0.5 * spoken, "{passed} of {spoken}");
}
