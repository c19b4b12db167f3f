//! The echo tests' room: a clocked speaker, the simulated room (`reelthyme_audio::echo::room`)
//! and a clocked microphone, one 10 ms period after another on a thread of their own.

// Each test crate that includes this uses part of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reelthyme::audio_io::echo::room::{Room, bench_rooms};
use reelthyme::audio_io::{CaptureClock, Clock, Resampler};

pub const RATE: u32 = 16_000;
pub const PERIOD: usize = 160; // 10 ms

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
    /// `pace`: the wall time between periods (10 ms: real time).
    pub fn start(mut speaker: Clock, mut mic: CaptureClock, pace: Duration) -> Self {
        let played = Arc::new(AtomicU64::new(0));
        let periods = Arc::new(AtomicU64::new(0));
        let voice = Arc::new(Mutex::new(Vec::<f32>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (played, periods, voice, stop) =
                (played.clone(), periods.clone(), voice.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut room = Room::new(bench_rooms(RATE).0, 0.0003);
                let mut sound = Vec::with_capacity(PERIOD);
                let mut near = Vec::with_capacity(PERIOD);
                while !stop.load(Ordering::Relaxed) {
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
