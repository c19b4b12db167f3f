//! The echo tests' room: a clocked speaker, the simulated room (`reelthyme_audio::echo::room`)
//! and a clocked microphone, one 10 ms period after another on a thread of their own —
//! faster than real time, but never further ahead of the capture than a device could be.

// Each test crate that includes this uses part of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reelthyme::audio_io::echo::room::{Room, bench_rooms};
use reelthyme::audio_io::{CaptureClock, Clock, Resampler};

pub const RATE: u32 = 16_000;
pub const PERIOD: usize = 160; // 10 ms
/// How far the microphone may run ahead of what the capture delivered (ms). A device
/// cannot get further ahead of its worker than the worker's scheduling slack; a room on
/// its own thread at 20× real time can (a second of audio is 50 ms of wall time), past
/// the player's one-second echo reference ring, whose overflow the echo stage cannot
/// match (`reelthyme-audio`'s `devices/echo.rs`).
pub const MAX_AHEAD_MS: u64 = 100;

/// The capture's progress, counted by its tap ([`CaptureOptions::tap`](reelthyme::CaptureOptions::tap)):
/// the room stays within [`MAX_AHEAD_MS`] of it.
#[derive(Clone, Default)]
pub struct Progress {
    captured: Arc<AtomicU64>,
    most_ahead_ms: Arc<AtomicU64>,
}

impl Progress {
    /// The tap that counts the capture's 24 kHz samples.
    pub fn tap(&self) -> impl Fn(&[i16]) + Send + Sync + 'static {
        let captured = self.captured.clone();
        move |chunk| {
            captured.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
    }

    /// The capture's audio so far (ms).
    fn captured_ms(&self) -> u64 {
        self.captured.load(Ordering::Relaxed) / 24
    }

    /// The furthest the microphone was ahead of the capture (ms).
    pub fn most_ahead_ms(&self) -> u64 {
        self.most_ahead_ms.load(Ordering::Relaxed)
    }
}

/// The speaker, the room and the microphone, one 10 ms period after another on a thread
/// of their own; the user's voice is added when the test says so.
pub struct EchoRoom {
    pub voice: Arc<Mutex<Vec<f32>>>,
    played: Arc<AtomicU64>,
    periods: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EchoRoom {
    /// `pace`: the wall time between periods (10 ms: real time); `progress`: the capture's,
    /// which the microphone stays near (a capture that stops counting is waited for at most
    /// 50 ms a period).
    pub fn start(
        mut speaker: Clock,
        mut mic: CaptureClock,
        pace: Duration,
        progress: &Progress,
    ) -> Self {
        let played = Arc::new(AtomicU64::new(0));
        let periods = Arc::new(AtomicU64::new(0));
        let voice = Arc::new(Mutex::new(Vec::<f32>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (played, periods, voice, stop) =
                (played.clone(), periods.clone(), voice.clone(), stop.clone());
            let progress = progress.clone();
            std::thread::spawn(move || {
                let mut room = Room::new(bench_rooms(RATE).0, 0.0003);
                let mut sound = Vec::with_capacity(PERIOD);
                let mut near = Vec::with_capacity(PERIOD);
                let mut pushed_ms: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    let ahead = || pushed_ms.saturating_sub(progress.captured_ms());
                    progress.most_ahead_ms.fetch_max(ahead(), Ordering::Relaxed);
                    let wait = std::time::Instant::now();
                    while ahead() > MAX_AHEAD_MS && wait.elapsed() < Duration::from_millis(50) {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    let (far, audio) = speaker.pull(PERIOD);
                    played.fetch_add(audio, Ordering::Relaxed);
                    near.clear();
                    {
                        let mut voice = voice.lock().unwrap();
                        let n = voice.len().min(PERIOD);
                        near.extend(voice.drain(..n));
                    }
                    sound.clear();
                    room.capture(&far, &near, &mut sound, None);
                    mic.push(&sound);
                    pushed_ms += 10;
                    periods.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(pace);
                }
            })
        };
        Self {
            played,
            periods,
            voice,
            stop,
            thread: Some(thread),
        }
    }

    pub fn played(&self) -> u64 {
        self.played.load(Ordering::Relaxed)
    }

    /// Waits until the room has run `ms` more milliseconds of audio.
    pub async fn run_for(&self, ms: u64) {
        let until = self.periods.load(Ordering::Relaxed) + ms / 10;
        while self.periods.load(Ordering::Relaxed) < until {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

impl Drop for EchoRoom {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The user: "What is the weather like in Paris today?", at the room's rate.
pub fn user_speech() -> Vec<f32> {
    let wav = reelthyme_testkit::read_wav(&reelthyme_testkit::audio("weather_24k.wav"));
    let mut pcm = Vec::new();
    reelthyme::audio_io::i16_to_f32(&wav.samples, &mut pcm);
    let mut resampler = Resampler::new(wav.rate, RATE).unwrap();
    let mut out = Vec::new();
    resampler.process(&pcm, &mut out);
    resampler.flush(&mut out);
    out
}

/// The assistant's recorded voice, for `SimConfig::voice_samples` (24 kHz mono): "Actually,
/// wait. Stop. Tell me a joke instead. Please book a table for two at seven o'clock." — two
/// other recordings than the user's, their speech spans only (the fixtures' README), so a
/// looped answer has the pauses of speech but no second of silence. Broadband, as a real
/// text-to-speech voice is, where the simulator's own voice is three harmonics.
pub fn assistant_voice() -> (Vec<i16>, u32) {
    let speech = |name: &str, from: f64, to: f64| {
        let wav = reelthyme_testkit::read_wav(&reelthyme_testkit::audio(name));
        assert_eq!((wav.rate, wav.channels), (24_000, 1));
        let at = |t: f64| (t * 24_000.0) as usize;
        wav.samples[at(from)..at(to)].to_vec()
    };
    let mut voice = speech("interrupt_24k.wav", 0.5, 4.45);
    voice.extend(speech("booking_24k.wav", 0.5, 2.69));
    (voice, 24_000)
}
