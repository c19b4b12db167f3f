//! Latencies of the audio path on the controlled clocks (feature `audio`): a "microphone"
//! driven with [`CaptureClock::push`] (one 10 ms input callback every 10 ms) and a
//! "speaker" driven with [`Clock::pull`] (one 10 ms output callback every 10 ms), both
//! running the same callback code as a cpal stream, against the simulator on loopback.
//!
//! - `capture_to_wire`: the input callback that completes a 40 ms chunk → that chunk's
//!   `input_audio_buffer.append` on the wire. The wire is a loopback TCP relay between the
//!   client and the simulator that reads the client's WebSocket frames on its own thread
//!   and stamps each append when its last byte arrives.
//! - `delta_to_device`: a `response.output_audio.delta` read by the transport (the
//!   frame's `received_at`) → the output callback that took its first sample. Every delta
//!   (with the simulator pacing deltas at real time, a delta waits behind what is still
//!   playing of the one before), and `first_delta_to_device`: the first delta of each
//!   answer that arrived while the device had played everything before it (the path
//!   itself, with the wait for the next callback; answers are asked for 100 ms apart).
//! - `speech_started_to_silent`: an `input_audio_buffer.speech_started` read by the
//!   transport while an answer plays → the first output callback that played silence (the
//!   player's cut honoured). The user's voice goes through the microphone into the
//!   simulator's VAD; the simulator sends faster than real time, so the device always has
//!   audio queued and silence can only be the cut.
//!
//! Latencies are rounded to the callbacks: audio is handed to a device once per period,
//! so the period (10 ms) bounds what the device-side figures can resolve.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use reelthyme::audio_io::{CaptureClock, Clock, Player};
use reelthyme::events::{ClientEvent, ServerEvent};
use reelthyme::{CaptureOptions, Config, Echo, Endpoint, Layer, LayerContext, StreamOptions};
use reelthyme_sim::{Match, Reply, SimConfig, Simulator};

use crate::figure;

/// The device rate of both clocks: the session's own, so nothing is resampled and a
/// delta's samples are the device's frames one for one.
const RATE: u32 = 24_000;
/// Frames per callback: 10 ms.
const PERIOD_FRAMES: usize = 240;
const PERIOD: Duration = Duration::from_millis(10);
/// Callbacks per 40 ms append.
const PUSHES_PER_CHUNK: usize = 4;

/// What one run does.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// How long the full-duplex part (capture and playback) runs.
    pub duplex: Duration,
    /// How many barge-ins are timed.
    pub barge_ins: usize,
}

/// Runs the plan and gives the figure lines (`audio.capture_to_wire samples=… p50_ms=…
/// p99_ms=… max_ms=…`, `audio.delta_to_device …`, `audio.first_delta_to_device …`,
/// `audio.speech_started_to_silent …`).
///
/// # Errors
/// When the simulator or a session cannot start, or a phase does not complete in time.
pub async fn run(plan: Plan) -> Result<Vec<String>> {
    let mut lines = duplex(plan.duplex).await?;
    lines.push(barge_ins(plan.barge_ins).await?);
    Ok(lines)
}

/// One line of latencies in ms.
fn latency_line(name: &str, mut samples: Vec<f64>, extra: &[(&str, String)]) -> String {
    samples.sort_by(f64::total_cmp);
    let q = |q: f64| -> String {
        if samples.is_empty() {
            return "none".into();
        }
        let rank = ((samples.len() as f64) * q).ceil().max(1.0) as usize;
        format!("{:.3}", samples[rank.min(samples.len()) - 1])
    };
    let mut fields = vec![
        ("samples", samples.len().to_string()),
        ("p50_ms", q(0.5)),
        ("p99_ms", q(0.99)),
        ("max_ms", q(1.0)),
        ("period_ms", format!("{}", PERIOD.as_millis())),
    ];
    fields.extend(extra.iter().cloned());
    figure(name, &fields)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What the timing layer saw, with the transport's read times.
#[derive(Debug, Default)]
struct Seen {
    /// Every audio delta: when it was read, its samples, whether it opened its response.
    deltas: Vec<(Instant, u64, bool)>,
    speech_started: Vec<Instant>,
    last_response: Option<String>,
}

/// First layer of the session (before the audio layer, which consumes the deltas).
struct Timing(Arc<Mutex<Seen>>);

impl Layer for Timing {
    fn on_event(&mut self, event: ServerEvent, cx: &mut LayerContext<'_>) -> Option<ServerEvent> {
        let at = cx.received_at().unwrap_or_else(Instant::now);
        let mut seen = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &event {
            ServerEvent::ResponseOutputAudioDelta(delta) => {
                let samples = delta.delta.decoded_len().unwrap_or(0) as u64 / 2;
                let first = seen.last_response.as_deref() != Some(delta.response_id.as_str());
                if first {
                    seen.last_response = Some(delta.response_id.clone());
                }
                seen.deltas.push((at, samples, first));
            }
            ServerEvent::InputAudioBufferSpeechStarted(_) => seen.speech_started.push(at),
            _ => {}
        }
        Some(event)
    }
}

/// One output callback: when it ran, frames of audio played before and after it.
type Pull = (Instant, u64, u64);

/// The "speaker": a 10 ms pull every 10 ms on its own thread, each one recorded.
struct Speaker {
    pulls: Arc<Mutex<Vec<Pull>>>,
    played: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Speaker {
    fn start(mut clock: Clock) -> Self {
        let pulls = Arc::new(Mutex::new(Vec::new()));
        let played = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (pulls, played, stop) = (pulls.clone(), played.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut next = Instant::now();
                let mut total = 0;
                while !stop.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    let (_, audio) = clock.pull(PERIOD_FRAMES);
                    let before = total;
                    total += audio;
                    played.store(total, Ordering::Relaxed);
                    pulls
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((at, before, total));
                    next += PERIOD;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            })
        };
        Self {
            pulls,
            played,
            stop,
            thread: Some(thread),
        }
    }

    fn pulls(&self) -> Vec<Pull> {
        self.pulls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The "microphone": a 10 ms push every 10 ms (silence, or voice while `voice` has frames
/// left), each push's time recorded.
struct Microphone {
    pushes: Arc<Mutex<Vec<Instant>>>,
    voice_frames: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Microphone {
    fn start(mut clock: CaptureClock) -> Self {
        let pushes = Arc::new(Mutex::new(Vec::new()));
        let voice_frames = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (pushes, voice, stop) = (pushes.clone(), voice_frames.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut next = Instant::now();
                let mut n = 0_u64;
                let mut buffer = vec![0.0_f32; PERIOD_FRAMES];
                while !stop.load(Ordering::Relaxed) {
                    let speaking = voice.load(Ordering::Relaxed) > 0;
                    for (i, sample) in buffer.iter_mut().enumerate() {
                        let t = (n as usize * PERIOD_FRAMES + i) as f64 / f64::from(RATE);
                        *sample = if speaking {
                            ((t * 2.0 * std::f64::consts::PI * 190.0).sin() * 0.3) as f32
                        } else {
                            0.0
                        };
                    }
                    if speaking {
                        let _ = voice.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                            Some(v.saturating_sub(PERIOD_FRAMES as u64))
                        });
                    }
                    let at = Instant::now();
                    clock.push(&buffer);
                    pushes
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(at);
                    n += 1;
                    next += PERIOD;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            })
        };
        Self {
            pushes,
            voice_frames,
            stop,
            thread: Some(thread),
        }
    }

    fn speak(&self, seconds: f64) {
        self.voice_frames
            .store((seconds * f64::from(RATE)) as u64, Ordering::Relaxed);
    }

    fn stop(mut self) -> Vec<Instant> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.pushes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Microphone {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A loopback TCP relay to `target` that stamps every client WebSocket frame carrying an
/// `input_audio_buffer.append` when its last byte arrives. Its threads end with the
/// connections.
struct WireTap {
    port: u16,
    appends: Arc<Mutex<Vec<Instant>>>,
}

impl WireTap {
    fn start(target: &str) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let appends = Arc::new(Mutex::new(Vec::new()));
        let target = target.to_owned();
        let stamps = appends.clone();
        std::thread::spawn(move || {
            // One connection: the measured session.
            let Ok((client, _)) = listener.accept() else {
                return;
            };
            let Ok(server) = TcpStream::connect(&target) else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (Ok(mut client_read), Ok(mut server_write)) =
                (client.try_clone(), server.try_clone())
            else {
                return;
            };
            let (mut server_read, mut client_write) = (server, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut server_read, &mut client_write);
                let _ = client_write.shutdown(std::net::Shutdown::Write);
            });
            let mut scanner = FrameScanner::default();
            let mut buffer = vec![0_u8; 64 * 1024];
            loop {
                let n = match client_read.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let at = Instant::now();
                let found = scanner.feed(&buffer[..n]);
                if found > 0 {
                    let mut stamps = stamps
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    stamps.extend(std::iter::repeat_n(at, found));
                }
                if server_write.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
            let _ = server_write.shutdown(std::net::Shutdown::Write);
        });
        Ok(Self { port, appends })
    }

    fn appends(&self) -> Vec<Instant> {
        self.appends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Reads a client's byte stream: the HTTP upgrade request, then masked WebSocket frames;
/// counts the complete text frames that are `input_audio_buffer.append`s.
#[derive(Debug, Default)]
pub struct FrameScanner {
    upgraded: bool,
    pending: Vec<u8>,
}

impl FrameScanner {
    /// Takes the next bytes; gives how many append frames they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> usize {
        self.pending.extend_from_slice(bytes);
        if !self.upgraded {
            let Some(end) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                return 0;
            };
            self.pending.drain(..end + 4);
            self.upgraded = true;
        }
        let mut found = 0;
        loop {
            let Some((header, len, mask)) = frame_header(&self.pending) else {
                return found;
            };
            let Some(total) = header.checked_add(len).filter(|t| *t <= self.pending.len()) else {
                return found;
            };
            let opcode = self.pending[0] & 0x0f;
            if opcode == 1 {
                let probe: Vec<u8> = self.pending[header..total]
                    .iter()
                    .take(80)
                    .enumerate()
                    .map(|(i, b)| b ^ mask.map_or(0, |m| m[i % 4]))
                    .collect();
                if probe
                    .windows(b"input_audio_buffer.append".len())
                    .any(|w| w == b"input_audio_buffer.append")
                {
                    found += 1;
                }
            }
            self.pending.drain(..total);
        }
    }
}

/// A frame's header length, payload length and mask, once the header is complete.
fn frame_header(bytes: &[u8]) -> Option<(usize, usize, Option<[u8; 4]>)> {
    let second = *bytes.get(1)?;
    let masked = second & 0x80 != 0;
    let (mut header, len) = match second & 0x7f {
        126 => (
            4,
            u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]) as usize,
        ),
        127 => {
            let raw: [u8; 8] = bytes.get(2..10)?.try_into().ok()?;
            (10, usize::try_from(u64::from_be_bytes(raw)).ok()?)
        }
        n => (2, usize::from(n)),
    };
    let mask = if masked {
        let key: [u8; 4] = bytes.get(header..header + 4)?.try_into().ok()?;
        header += 4;
        Some(key)
    } else {
        None
    };
    Some((header, len, mask))
}

/// The first pull that took frame `index` (0-based, of audio frames).
fn pull_of(pulls: &[Pull], index: u64) -> Option<Instant> {
    let at = pulls.partition_point(|p| p.2 <= index);
    pulls.get(at).map(|p| p.0)
}

/// Capture and playback at once on one session (VAD off): the capture's appends timed on
/// the wire, every delta timed to the device.
async fn duplex(seconds: Duration) -> Result<Vec<String>> {
    let sim = Simulator::start(SimConfig::default().audio_chunk(Duration::from_millis(20)))
        .await
        .context("starting the simulator")?;
    let target = sim
        .url()
        .strip_prefix("ws://")
        .context("a ws:// simulator")?
        .to_owned();
    let tap = WireTap::start(&target)?;
    let endpoint = Endpoint::openai("gpt-realtime")
        .base_url(&format!("ws://127.0.0.1:{}/v1", tap.port))
        .api_key("sk-bench");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let session = reelthyme::connect(Config::new(endpoint).vad_off())
        .await
        .context("connecting through the tap")?
        .with_layer(Timing(seen.clone()));
    let mut tx = session.sender();
    let (player, speaker_clock) = Player::with_clock(RATE, 1)?;
    let (mut events, _control) = reelthyme::stream_to(session, player, StreamOptions::default());
    let (capture, mic_clock) = reelthyme::capture_audio_with_clock(
        &tx,
        CaptureOptions::default().echo(Echo::Off),
        RATE,
        1,
    )?;
    let speaker = Speaker::start(speaker_clock);
    let mic = Microphone::start(mic_clock);
    tx.send(ClientEvent::response_create()).await?;
    let end = Instant::now() + seconds;
    // The next answer is asked for 100 ms after one is done, so that it starts on a
    // device that has played everything (its first delta is timed from idle).
    let mut ask_at = None;
    while Instant::now() < end {
        if ask_at.is_some_and(|at| Instant::now() >= at) {
            ask_at = None;
            tx.send(ClientEvent::response_create()).await?;
        }
        match tokio::time::timeout(Duration::from_millis(10), events.next()).await {
            Ok(Some(Ok(ServerEvent::ResponseDone(_)))) => {
                ask_at = Some(Instant::now() + Duration::from_millis(100));
            }
            Ok(Some(Ok(ServerEvent::Error(error)))) => {
                bail!("the simulator said {:?}", error.error)
            }
            Ok(Some(Err(error))) => bail!("the session failed: {error}"),
            Ok(None) => bail!("the session ended"),
            _ => {}
        }
    }
    let pushes = mic.stop();
    // The last appends leave: poll a little longer.
    let settle = Instant::now() + Duration::from_millis(300);
    while Instant::now() < settle {
        let _ = tokio::time::timeout(Duration::from_millis(20), events.next()).await;
    }
    let appends = tap.appends();
    let pulls = speaker.pulls();
    drop(speaker);
    drop(capture);

    // Chunk k is complete with push 4k+3; its append is the k-th on the wire.
    let chunks = pushes.len() / PUSHES_PER_CHUNK;
    let mut capture_ms = Vec::new();
    let mut early = 0;
    for (k, wire) in appends.iter().enumerate().take(chunks) {
        let pushed = pushes[k * PUSHES_PER_CHUNK + PUSHES_PER_CHUNK - 1];
        match wire.checked_duration_since(pushed) {
            Some(d) => capture_ms.push(ms(d)),
            None => early += 1,
        }
    }
    let seen = std::mem::take(
        &mut *seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let played = pulls.last().map_or(0, |p| p.2);
    let mut all = Vec::new();
    let mut first = Vec::new();
    let mut offset = 0_u64;
    let mut unplayed = 0;
    for (received, samples, opens) in &seen.deltas {
        // Idle at receipt: the last callback before it had played every earlier sample.
        let before = pulls.partition_point(|p| p.0 < *received);
        let idle = before > 0 && pulls[before - 1].2 == offset;
        match pull_of(&pulls, offset).and_then(|at| at.checked_duration_since(*received)) {
            Some(d) if offset < played => {
                all.push(ms(d));
                if *opens && idle {
                    first.push(ms(d));
                }
            }
            _ => unplayed += 1,
        }
        offset += samples;
    }
    Ok(vec![
        latency_line(
            "audio.capture_to_wire",
            capture_ms,
            &[
                ("chunk_ms", "40".into()),
                ("appends", appends.len().to_string()),
                ("chunks", chunks.to_string()),
                ("early", early.to_string()),
            ],
        ),
        latency_line(
            "audio.delta_to_device",
            all,
            &[
                ("deltas", seen.deltas.len().to_string()),
                ("unplayed", unplayed.to_string()),
                ("delta_samples", offset.to_string()),
                ("played_frames", played.to_string()),
            ],
        ),
        latency_line("audio.first_delta_to_device", first, &[]),
    ])
}

/// `rounds` answers interrupted by the user's voice, each timed from `speech_started` to
/// the first silent output callback.
async fn barge_ins(rounds: usize) -> Result<String> {
    let story = "Once upon a time there was a very long story that went on and on. ".repeat(8);
    let sim = Simulator::start(
        SimConfig::default()
            .speed(3.0)
            .audio_chunk(Duration::from_millis(20))
            .rule(Match::Contains("story".into()), Reply::Text(story)),
    )
    .await
    .context("starting the simulator")?;
    let endpoint = Endpoint::openai("gpt-realtime")
        .base_url(&format!("{}/v1", sim.url()))
        .api_key("sk-bench");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let session = reelthyme::connect(Config::new(endpoint))
        .await
        .context("connecting")?
        .with_layer(Timing(seen.clone()));
    let mut tx = session.sender();
    // Server VAD that interrupts but does not answer: the harness paces the turns.
    let vad = serde_json::json!({"type": "session.update", "session": {"type": "realtime",
        "audio": {"input": {"turn_detection": {"type": "server_vad", "create_response": false,
            "interrupt_response": true}}}}});
    tx.send(ClientEvent::from_value(vad)?).await?;
    let (player, speaker_clock) = Player::with_clock(RATE, 1)?;
    let (mut events, _control) = reelthyme::stream_to(session, player, StreamOptions::default());
    let (capture, mic_clock) = reelthyme::capture_audio_with_clock(
        &tx,
        CaptureOptions::default().echo(Echo::Off),
        RATE,
        1,
    )?;
    let speaker = Speaker::start(speaker_clock);
    let mic = Microphone::start(mic_clock);
    let mut latencies = Vec::new();
    let mut idle = 0;
    for _ in 0..rounds {
        let heard_before = speaker.played.load(Ordering::Relaxed);
        let started_before = seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .speech_started
            .len();
        tx.send(ClientEvent::user_text("Tell me a story")).await?;
        tx.send(ClientEvent::response_create()).await?;
        let mut spoke = false;
        let mut stopped = false;
        let mut done = false;
        tokio::time::timeout(Duration::from_secs(30), async {
            while !(done && stopped) {
                // 300 ms of the answer heard: the user talks over it for 600 ms.
                if !spoke
                    && speaker.played.load(Ordering::Relaxed)
                        >= heard_before + u64::from(RATE) * 3 / 10
                {
                    spoke = true;
                    mic.speak(0.6);
                }
                match tokio::time::timeout(Duration::from_millis(5), events.next()).await {
                    Ok(Some(Ok(ServerEvent::ResponseDone(_)))) => done = true,
                    Ok(Some(Ok(ServerEvent::InputAudioBufferSpeechStopped(_)))) => stopped = true,
                    Ok(Some(Err(error))) => bail!("the session failed: {error}"),
                    Ok(None) => bail!("the session ended"),
                    _ => {}
                }
            }
            Ok(())
        })
        .await
        .context("a barge-in round did not finish in 30 s")??;
        // The cut was honoured by now; read the callbacks after the speech start.
        let Some(&started) = seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .speech_started
            .get(started_before)
        else {
            bail!("no speech_started in a barge-in round");
        };
        let pulls = speaker.pulls();
        let at = pulls.partition_point(|p| p.0 < started);
        let playing = at > 0 && pulls[at - 1].2 > pulls[at - 1].1;
        match pulls[at..].iter().find(|p| p.2 == p.1) {
            Some(silent) if playing => latencies.push(ms(silent.0.duration_since(started))),
            _ => idle += 1,
        }
    }
    drop(mic);
    drop(speaker);
    drop(capture);
    Ok(latency_line(
        "audio.speech_started_to_silent",
        latencies,
        &[("rounds", rounds.to_string()), ("idle", idle.to_string())],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked_text(payload: &[u8], key: [u8; 4]) -> Vec<u8> {
        let mut frame = vec![0x81];
        if payload.len() < 126 {
            frame.push(0x80 | payload.len() as u8);
        } else {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        frame
    }

    #[test]
    fn the_scanner_counts_append_frames_split_anywhere() {
        let append = format!(
            r#"{{"type":"input_audio_buffer.append","audio":"{}"}}"#,
            "A".repeat(300)
        );
        let mut bytes = b"GET /v1/realtime HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        bytes.extend(masked_text(append.as_bytes(), [1, 2, 3, 4]));
        bytes.extend(masked_text(br#"{"type":"response.create"}"#, [9, 8, 7, 6]));
        bytes.extend(masked_text(append.as_bytes(), [5, 6, 7, 8]));
        for split in [1, 7, 40, 333, bytes.len()] {
            let mut scanner = FrameScanner::default();
            let found: usize = bytes.chunks(split).map(|c| scanner.feed(c)).sum();
            assert_eq!(found, 2, "split {split}");
        }
        // A frame is counted when its last byte arrives, not before.
        let mut scanner = FrameScanner::default();
        assert_eq!(scanner.feed(&bytes[..bytes.len() - 1]), 1);
        assert_eq!(scanner.feed(&bytes[bytes.len() - 1..]), 1);
    }

    #[test]
    fn a_frame_is_found_in_the_first_pull_that_reaches_it() {
        let t0 = Instant::now();
        let pulls = vec![
            (t0, 0, 0),
            (t0 + PERIOD, 0, 240),
            (t0 + PERIOD * 2, 240, 480),
        ];
        assert_eq!(pull_of(&pulls, 0), Some(t0 + PERIOD));
        assert_eq!(pull_of(&pulls, 239), Some(t0 + PERIOD));
        assert_eq!(pull_of(&pulls, 240), Some(t0 + PERIOD * 2));
        assert_eq!(pull_of(&pulls, 480), None);
    }

    #[test]
    fn latency_lines_give_quantiles_of_the_samples() {
        let line = latency_line("x", (1..=100).map(f64::from).collect(), &[]);
        assert!(
            line.starts_with("x samples=100 p50_ms=50.000 p99_ms=99.000 max_ms=100.000"),
            "{line}"
        );
        assert!(latency_line("y", vec![], &[]).contains("p50_ms=none"));
    }
}
