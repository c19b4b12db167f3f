//! The answer's audio over WebRTC, end to end through the real cpal player on ALSA's
//! user-space file device: the simulator's track (Opus), decoded by the transport, played
//! by `reelthyme::stream` to the default output — whose samples must correlate with what
//! the simulator synthesized for that answer (taken from the same answer over a WebSocket,
//! where it arrives as `response.output_audio.delta`; the synthesis is deterministic).
//!
//! The file device is not paced: the output "file" is a FIFO read here at real time, so
//! the player runs at a device's pace and nothing grows on disk; at most `KEEP` seconds of
//! what was played are kept in memory.

#![cfg(all(feature = "audio", target_os = "linux"))]

use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, ServerEvent};
use reelthyme::{Config, Endpoint};
use reelthyme_sim::{Match, Recorder, Reply, SimConfig, Simulator};
use reelthyme_webrtc::WebRtc;
use serde_json::json;

const ANSWER: &str = "Sure, the weather in Paris is sunny and mild today.";
/// The device's rate and channels (what the file device opens with, as in `audio_e2e`).
const DEVICE_RATE: usize = 48_000;
const DEVICE_CHANNELS: usize = 2;
/// Seconds of played audio kept by the reader.
const KEEP: usize = 20;
const WAIT: Duration = Duration::from_secs(30);

/// Reads the FIFO the file device writes (f32 little-endian, interleaved) at real time,
/// keeping the first channel's samples from the first audible one on, at most `KEEP` s.
fn read_device(fifo: &Path, kept: Arc<Mutex<Vec<f32>>>) {
    let fifo = fifo.to_owned();
    std::thread::spawn(move || {
        // Blocks until the player opens the device.
        let Ok(mut file) = std::fs::File::open(&fifo) else {
            return;
        };
        let frame = DEVICE_CHANNELS * 4;
        // 10 ms per read.
        let mut buffer = vec![0_u8; DEVICE_RATE / 100 * frame];
        let started = Instant::now();
        let mut frames_read = 0_usize;
        loop {
            if file.read_exact(&mut buffer).is_err() {
                return;
            }
            frames_read += buffer.len() / frame;
            let mut kept = kept.lock().unwrap();
            for bytes in buffer.chunks_exact(frame) {
                let sample = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                if kept.len() < KEEP * DEVICE_RATE && (!kept.is_empty() || sample != 0.0) {
                    kept.push(sample);
                }
            }
            drop(kept);
            // A device's pace: no faster than real time.
            let due = Duration::from_secs_f64(frames_read as f64 / DEVICE_RATE as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    });
}

/// The first index whose magnitude exceeds `threshold`.
fn onset(samples: &[f32], threshold: f32) -> usize {
    samples
        .iter()
        .position(|s| s.abs() > threshold)
        .unwrap_or(0)
}

/// The best normalized correlation of `played` against `expected`, their onsets aligned
/// and then shifted by up to ±`search` samples (codec and resampler delays).
fn aligned_correlation(played: &[f32], expected: &[f32], search: isize) -> f64 {
    let (p0, e0) = (onset(played, 0.02) as isize, onset(expected, 0.02) as isize);
    let mut best = f64::MIN;
    for shift in -search..=search {
        let start = p0 + shift - e0;
        let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
        for (i, &y) in expected.iter().enumerate() {
            let j = start + i as isize;
            if j < 0 || j as usize >= played.len() {
                continue;
            }
            let x = f64::from(played[j as usize]);
            let y = f64::from(y);
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
        best = best.max(ab / (aa.sqrt() * bb.sqrt()).max(1e-12));
    }
    best
}

/// What the simulator synthesizes for `ANSWER`: the same turn over a WebSocket, its
/// deltas from the recorder, as 24 kHz samples.
async fn synthesized(sim: &Simulator, recorder: &Recorder) -> Vec<i16> {
    let endpoint = Endpoint::openai("gpt-realtime").base_url(&format!("{}/v1", sim.url()));
    let mut session = reelthyme::connect(Config::new(endpoint)).await.unwrap();
    session
        .send(ClientEvent::user_text("What is the weather?"))
        .await
        .unwrap();
    session.send(ClientEvent::response_create()).await.unwrap();
    let session_id = session.id().unwrap();
    tokio::time::timeout(WAIT, async {
        while let Some(event) = session.next().await {
            if let ServerEvent::ResponseDone(_) = event.unwrap() {
                return;
            }
        }
    })
    .await
    .expect("the WebSocket turn finished");
    session.close().await.unwrap();
    recorder
        .frames()
        .iter()
        .filter(|f| {
            f.from_server
                && f.session_id == session_id
                && f.json["type"] == "response.output_audio.delta"
        })
        .flat_map(|f| {
            reelthyme::events::Base64Audio::from_base64(f.json["delta"].as_str().unwrap())
                .decode_pcm16()
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn the_tracks_audio_plays_on_the_alsa_file_device_as_synthesized() {
    let dir = std::env::temp_dir().join(format!("reelthyme-rtc-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (infile, fifo) = (dir.join("in.raw"), dir.join("out.fifo"));
    std::fs::write(&infile, [0_u8; 4096]).unwrap();
    let _ = std::fs::remove_file(&fifo);
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let config = reelthyme::audio_io::headless::alsa_file_devices(&dir, &infile, &fifo).unwrap();
    // SAFETY: the only test in this binary, on a current-thread runtime: no other thread
    // reads the environment yet (ALSA reads it when cpal first opens a device, below).
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("ALSA_CONFIG_PATH", config);
    }
    let played = Arc::new(Mutex::new(Vec::new()));
    read_device(&fifo, played.clone());

    let recorder = Recorder::new();
    let sim = Simulator::start(
        SimConfig::default()
            .speed(20.0)
            .rule(Match::Any, Reply::Text(ANSWER.into()))
            .recorder(recorder.clone()),
    )
    .await
    .unwrap();
    let sent = synthesized(&sim, &recorder).await;
    assert!(sent.len() > 24_000, "{} samples synthesized", sent.len());

    // The same answer over WebRTC: on the track, to the speaker.
    let endpoint = Endpoint::openai("gpt-realtime")
        .base_url(&format!("http://{}/v1", sim.addr()))
        .api_key("sk-test");
    let transport = WebRtc::new().session(json!({"output_modalities": ["audio"]}));
    let session = tokio::time::timeout(
        WAIT,
        reelthyme::connect(Config::new(endpoint).transport(transport)),
    )
    .await
    .unwrap()
    .unwrap();
    let mut tx = session.sender();
    let (mut events, control) = reelthyme::stream(session).unwrap();
    tx.send(ClientEvent::user_text("What is the weather?"))
        .await
        .unwrap();
    tx.send(ClientEvent::response_create()).await.unwrap();
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Some(event) = events.next().await {
            let event = event.unwrap();
            seen.push(event.type_name().to_owned());
            if let ServerEvent::OutputAudioBufferStopped(_) = event {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the answer did not play out: {seen:?}"));
    assert!(
        !seen.iter().any(|t| t == "response.output_audio.delta"),
        "the audio came on the track: {seen:?}"
    );
    tokio::time::timeout(WAIT, async {
        while control.backlog_ms() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the player finished");
    // What the device took last is still in the FIFO's buffer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(events);
    drop(control);
    drop(tx);

    let mut source = Vec::new();
    reelthyme::audio_io::i16_to_f32(&sent, &mut source);
    let mut expected = Vec::new();
    let mut resampler = reelthyme::audio_io::Resampler::new(24_000, DEVICE_RATE as u32).unwrap();
    resampler.process(&source, &mut expected);
    resampler.flush(&mut expected);
    let played = played.lock().unwrap().clone();
    assert!(
        played.len() >= expected.len() * 9 / 10,
        "{} samples played for {} synthesized",
        played.len(),
        expected.len()
    );
    let correlation = aligned_correlation(&played, &expected, 480);
    eprintln!("played audio correlates {correlation:.4} with what the simulator synthesized");
    // Opus (VoIP mode) keeps the waveform to about 0.91 overall here (0.92–0.97 per
    // second): what was played is what was synthesized, through a lossy codec.
    assert!(
        correlation > 0.85,
        "played audio correlates {correlation:.4} with what the simulator synthesized"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
