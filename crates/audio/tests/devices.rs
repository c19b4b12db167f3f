//! The real cpal streams on ALSA's user-space `file`/`null` devices (no sound card needed):
//! what is played lands in a file, what is captured comes from one. These devices are not
//! paced in real time, so the tests count frames and never sleep for durations.
//!
//! ALSA reads its configuration once per process, before the first cpal host: the single
//! test below sets `ALSA_CONFIG_PATH` first and runs every scenario in order.

#![cfg(all(feature = "devices", target_os = "linux"))]

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reelthyme_audio::{Capture, Captured, Player, SampleFormat, Truncation};

fn alsa_setup(dir: &Path) -> (PathBuf, PathBuf) {
    let infile = dir.join("in.raw");
    let outfile = dir.join("out.raw");
    let config = reelthyme_audio::headless::alsa_file_devices(dir, &infile, &outfile).unwrap();
    // Silence to start with; scenarios write their own input.
    std::fs::write(&infile, vec![0_u8; 48_000 * 8]).unwrap();
    // SAFETY: set once, at the start of the only test in this binary, before any thread
    // that reads the environment (cpal, ALSA) exists.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("ALSA_CONFIG_PATH", config);
    }
    (infile, outfile)
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Normalised cross-correlation of `a` against `b` at the best lag in `0..max_lag`.
fn best_correlation(a: &[f32], b: &[f32], max_lag: usize) -> (usize, f64) {
    let mut best = (0, f64::MIN);
    for lag in 0..max_lag.min(a.len()) {
        let n = b.len().min(a.len() - lag);
        let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
        for i in 0..n {
            let (x, y) = (f64::from(a[i + lag]), f64::from(b[i]));
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
        let c = ab / (aa.sqrt() * bb.sqrt()).max(1e-12);
        if c > best.1 {
            best = (lag, c);
        }
    }
    best
}

/// 200 Hz rising to 2 kHz over a second: unlike a sine, it correlates at one lag only.
fn chirp(t: f64) -> f32 {
    let phase = 2.0 * std::f64::consts::PI * (200.0 * t + 900.0 * t * t);
    (phase.sin() * 0.5) as f32
}

fn tone(seconds: f64) -> Vec<i16> {
    (0..(seconds * 24_000.0) as usize)
        .map(|n| {
            let t = n as f64 / 24_000.0;
            ((t * 2.0 * std::f64::consts::PI * 440.0).sin() * 8_000.0 * (1.0 + (t * 3.0).sin())
                / 2.0) as i16
        })
        .collect()
}

/// A barge-in on `player`, waited for on this thread (the cut resolves within 500 ms;
/// 5 s bounds a wait on a broken feeder).
fn cut(player: &Player) -> Option<Truncation> {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut cut = player.cut();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let std::task::Poll::Ready(truncation) = std::pin::Pin::new(&mut cut).poll(&mut cx) {
            return truncation;
        }
        let now = Instant::now();
        assert!(now < deadline, "the cut never resolved");
        std::thread::park_timeout(deadline - now);
    }
}

#[test]
fn playback_and_capture_through_real_cpal_streams() {
    let dir = std::env::temp_dir().join(format!("reelthyme-audio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (infile, outfile) = alsa_setup(&dir);
    let started = Instant::now();

    // --- playback: 24 kHz mono in, the device's format out, frames counted per item ------
    let player = Player::start(None).unwrap();
    eprintln!("t={:?} player started", started.elapsed());
    let format = player.format().clone();
    assert_eq!(
        format.sample_format,
        SampleFormat::F32,
        "the test reads the output file as f32: {format:?}"
    );
    let audio = tone(1.0);
    player.play("item_a", &audio);
    player.finish("item_a");
    wait_until("the player to drain", || player.backlog_ms() == 0);
    eprintln!("t={:?} drained", started.elapsed());
    assert_eq!(player.played_ms("item_a"), Some(1000));
    drop(player);
    eprintln!("t={:?} dropped", started.elapsed());
    let written = read_f32(&outfile);
    let channels = usize::from(format.channels);
    // The device is not paced: it plays idle silence whenever the ring is momentarily
    // empty. Those frames are exact zeros; the tone's own samples practically never are.
    let left: Vec<f32> = written
        .chunks_exact(channels)
        .map(|f| f[0])
        .filter(|&s| s != 0.0)
        .collect();
    // Compare with the source resampled to the device rate (correlation, not bytes).
    let mut expected = Vec::new();
    let mut source = Vec::new();
    reelthyme_audio::i16_to_f32(&audio, &mut source);
    let mut resampler = reelthyme_audio::Resampler::new(24_000, format.rate).unwrap();
    resampler.process(&source, &mut expected);
    resampler.flush(&mut expected);
    let expected: Vec<f32> = expected.into_iter().filter(|&s| s != 0.0).collect();
    assert!(
        (left.len() as i64 - expected.len() as i64).abs() < 10,
        "{} frames played, {} expected",
        left.len(),
        expected.len()
    );
    let (lag, correlation) = best_correlation(&left, &expected, 8);
    assert!(
        correlation > 0.999,
        "played audio correlates {correlation:.5} at lag {lag}"
    );
    if channels > 1 {
        assert!(
            written
                .chunks_exact(channels)
                .all(|f| f.iter().all(|&s| s == f[0])),
            "mono is copied to every channel"
        );
    }

    // Barge-in timing needs a paced device: `reelthyme`'s tests/barge_in.rs drives the same
    // callback code on `Player::with_clock`. On this unpaced device an item may drain before
    // any interrupt could land, so only the drained case is checked here.
    let player = Player::start(None).unwrap();
    player.play("item_b", &tone(0.2));
    player.finish("item_b");
    wait_until("the player to drain", || player.backlog_ms() == 0);
    assert_eq!(cut(&player), None, "a drained item needs no truncation");
    drop(player);
    eprintln!("playback took {:?}", started.elapsed());
    // --- capture: the device's native format in, 24 kHz mono PCM16 chunks out -----------
    // A 48 kHz stereo f32 input file: 1 s of a tone on both channels, then silence.
    let rate = 48_000.0;
    let mut input = Vec::new();
    for n in 0..96_000 {
        let sample = if n < 48_000 {
            chirp(n as f64 / rate)
        } else {
            0.0
        };
        for _ in 0..2 {
            input.extend_from_slice(&sample.to_le_bytes());
        }
    }
    std::fs::write(&infile, &input).unwrap();
    let (tx, rx) = mpsc::channel();
    let capture = Capture::start(None, 40, move |captured| {
        let _ = tx.send(captured);
    })
    .unwrap();
    assert_eq!(
        (capture.format().rate, capture.format().channels),
        (48_000, 2),
        "{:?}",
        capture.format()
    );
    let mut chunks = Vec::new();
    let mut samples = 0;
    while samples < 36_000 {
        match rx
            .recv_timeout(Duration::from_secs(20))
            .expect("capture delivers")
        {
            Captured::Audio(chunk) => {
                samples += chunk.len();
                chunks.push(chunk);
            }
            Captured::Error(error) => panic!("{error}"),
            _ => {}
        }
    }
    capture.stop();
    eprintln!("capture took {:?} in all", started.elapsed());
    assert!(
        chunks[..chunks.len() - 1].iter().all(|c| c.len() == 960),
        "40 ms chunks at 24 kHz"
    );
    let captured: Vec<f32> = chunks
        .concat()
        .iter()
        .map(|&s| f32::from(s) / 32_768.0)
        .collect();
    let reference: Vec<f32> = (0..24_000).map(|n| chirp(n as f64 / 24_000.0)).collect();
    let (lag, correlation) = best_correlation(&captured, &reference[..20_000], 200);
    assert!(
        correlation > 0.999 && lag <= 2,
        "captured audio correlates {correlation:.5} at lag {lag}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
