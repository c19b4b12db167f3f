//! N concurrent full-duplex sessions against the simulator on loopback.
//!
//! Each session is a `reelthyme::connect` session (the facade, WebSocket transport, VAD
//! off) that sends 40 ms of 24 kHz speech-like audio every 40 ms (clearing the input
//! buffer every 2 s so that the server's stays small) and asks for the next response as
//! soon as one is done, so the simulator streams `response.output_audio.delta`s at real
//! time for the whole run. Responses are out of band (`conversation: "none"`), so neither
//! side's history grows over the run (the conversation model's growth per turn is
//! measured on its own: `crates/schema/tests/conversation_memory.rs`). Every delta is decoded into samples, as a player would.
//!
//! The simulator runs with [`SimConfig::stamp_event_ids`]: each event id carries the
//! wall-clock time the simulator emitted it, and the client takes its own wall-clock time
//! when the event comes out of the session's stream (parsed, applied to the conversation):
//! the difference is the delay, in a histogram of 50 µs buckets. Both processes read the
//! same system clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use futures_util::StreamExt;
use reelthyme::{Config, Endpoint};
use reelthyme_schema::{ClientEvent, ResponseParams, ServerEvent};
use reelthyme_sim::{SimConfig, Simulator};

use crate::{figure, proc_stats};

/// The simulator as the scale run needs it: 20 ms deltas at real time, stamped ids, room
/// for every session.
pub fn sim_config() -> SimConfig {
    SimConfig::default()
        .audio_chunk(Duration::from_millis(20))
        .stamp_event_ids(true)
        .max_connections(100_000)
}

/// Starts the simulator of [`sim_config`] on an ephemeral loopback port.
///
/// # Errors
/// When the port cannot be bound.
pub async fn start_sim() -> std::io::Result<Simulator> {
    Simulator::start(sim_config()).await
}

/// What one run measures.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Concurrent sessions.
    pub sessions: usize,
    /// Time after the last session connected before measuring.
    pub warmup: Duration,
    /// The measured window.
    pub measure: Duration,
    /// Sessions connecting at once.
    pub connect_batch: usize,
}

const BUCKET_US: u64 = 50;
const BUCKETS: usize = 40_000; // 2 s; later ones land in the last bucket.

/// Delays of one run, lock-free (every session task records into it).
#[derive(Debug)]
struct Stats {
    measuring: AtomicBool,
    buckets: Vec<AtomicU64>,
    deltas: AtomicU64,
    unstamped: AtomicU64,
    appends: AtomicU64,
    errors: AtomicU64,
    responses: AtomicU64,
}

impl Stats {
    fn new() -> Self {
        Self {
            measuring: AtomicBool::new(false),
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            deltas: AtomicU64::new(0),
            unstamped: AtomicU64::new(0),
            appends: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            responses: AtomicU64::new(0),
        }
    }

    fn measuring(&self) -> bool {
        self.measuring.load(Ordering::Relaxed)
    }

    fn record_delta(&self, event_id: &str, received_us: u64) {
        if !self.measuring() {
            return;
        }
        self.deltas.fetch_add(1, Ordering::Relaxed);
        let Some(sent_us) = stamp_of(event_id) else {
            self.unstamped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let delay = received_us.saturating_sub(sent_us);
        let bucket = ((delay / BUCKET_US) as usize).min(BUCKETS - 1);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// The delay below which `q` of the samples fall, in ms (bucket upper bound).
    fn quantile_ms(&self, q: f64) -> Option<f64> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        quantile_ms(&counts, q)
    }
}

fn quantile_ms(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (index, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Some(((index as u64 + 1) * BUCKET_US) as f64 / 1000.0);
        }
    }
    None
}

/// The emission time the simulator put in an id: `….t<µs>`.
pub fn stamp_of(event_id: &str) -> Option<u64> {
    event_id.rsplit_once(".t")?.1.parse().ok()
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// 40 ms of speech-like audio at 24 kHz: two partials under a syllable-rate envelope.
fn speech_chunk(phase: usize) -> Vec<i16> {
    (0..960)
        .map(|i| {
            let t = (phase * 960 + i) as f64 / 24_000.0;
            let envelope = 0.55 + 0.45 * (t * 2.0 * std::f64::consts::PI * 4.0).sin();
            let voice = (t * 2.0 * std::f64::consts::PI * 180.0).sin() * 0.6
                + (t * 2.0 * std::f64::consts::PI * 720.0).sin() * 0.25;
            (voice * envelope * 12_000.0) as i16
        })
        .collect()
}

/// Runs the plan against the simulator at `url` (`ws://HOST:PORT`) and gives the figure
/// line: `scale sessions=N client_cpu_pct_per_session=… rss_kib_per_session=… p50_ms=…
/// p99_ms=… deltas=… …`.
///
/// # Errors
/// When a session cannot connect.
pub async fn run(url: &str, plan: Plan) -> Result<String> {
    let stats = Arc::new(Stats::new());
    let chunks: Arc<Vec<Vec<i16>>> = Arc::new((0..25).map(speech_chunk).collect());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let rss_before = proc_stats::rss_kib().unwrap_or(0);
    let connect_started = Instant::now();
    let mut tasks = Vec::with_capacity(plan.sessions);
    let mut remaining = plan.sessions;
    while remaining > 0 {
        let batch = remaining.min(plan.connect_batch.max(1));
        let sessions = futures_util::future::join_all((0..batch).map(|_| {
            let endpoint = Endpoint::openai("gpt-realtime")
                .base_url(&format!("{url}/v1"))
                .api_key("sk-bench");
            reelthyme::connect(Config::new(endpoint).vad_off())
        }))
        .await;
        for session in sessions {
            let session = session.context("connecting a session")?;
            let index = tasks.len();
            tasks.push(tokio::spawn(session_task(
                session,
                index,
                stats.clone(),
                chunks.clone(),
                stop_rx.clone(),
            )));
        }
        remaining -= batch;
    }
    let connect_s = connect_started.elapsed().as_secs_f64();
    tokio::time::sleep(plan.warmup).await;

    let cpu_start = proc_stats::cpu_seconds();
    let wall_start = Instant::now();
    stats.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(plan.measure).await;
    stats.measuring.store(false, Ordering::Relaxed);
    let wall = wall_start.elapsed().as_secs_f64();
    let cpu = cpu_start.zip(proc_stats::cpu_seconds()).map(|(a, b)| b - a);
    let rss_after = proc_stats::rss_kib().unwrap_or(0);

    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }

    let n = plan.sessions.max(1) as f64;
    let fmt = |v: Option<f64>| v.map_or_else(|| "none".to_owned(), |v| format!("{v:.3}"));
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed).to_string();
    let deltas = stats.deltas.load(Ordering::Relaxed) as f64;
    Ok(figure(
        "scale",
        &[
            ("sessions", plan.sessions.to_string()),
            ("client_cpu_pct", fmt(cpu.map(|c| 100.0 * c / wall))),
            (
                "client_cpu_pct_per_session",
                fmt(cpu.map(|c| 100.0 * c / wall / n)),
            ),
            ("rss_kib_before", rss_before.to_string()),
            ("rss_kib_after", rss_after.to_string()),
            (
                "rss_kib_per_session",
                format!("{:.1}", rss_after.saturating_sub(rss_before) as f64 / n),
            ),
            ("p50_ms", fmt(stats.quantile_ms(0.50))),
            ("p99_ms", fmt(stats.quantile_ms(0.99))),
            ("p999_ms", fmt(stats.quantile_ms(0.999))),
            ("deltas", load(&stats.deltas)),
            ("deltas_per_session_s", format!("{:.1}", deltas / n / wall)),
            ("unstamped", load(&stats.unstamped)),
            ("appends", load(&stats.appends)),
            ("responses", load(&stats.responses)),
            ("errors", load(&stats.errors)),
            ("connect_s", format!("{connect_s:.2}")),
            ("measure_s", format!("{wall:.2}")),
        ],
    ))
}

async fn session_task(
    session: reelthyme::Session,
    index: usize,
    stats: Arc<Stats>,
    chunks: Arc<Vec<Vec<i16>>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let (mut tx, mut events) = session.split();
    let next_response = || {
        ClientEvent::response_create_with(ResponseParams {
            conversation: Some("none".into()),
            ..ResponseParams::default()
        })
    };
    if tx.send(next_response()).await.is_err() {
        stats.errors.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(40));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent = index; // staggers the sessions' positions in the speech
    let mut samples: Vec<i16> = Vec::with_capacity(480);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let chunk = &chunks[sent % chunks.len()];
                sent += 1;
                let mut ok = tx.send(ClientEvent::audio_append(chunk)).await.is_ok();
                if sent.is_multiple_of(50) {
                    ok &= tx.send(ClientEvent::audio_clear()).await.is_ok();
                }
                if stats.measuring() {
                    stats.appends.fetch_add(1, Ordering::Relaxed);
                }
                if !ok {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            event = events.next() => match event {
                Some(Ok(ServerEvent::ResponseOutputAudioDelta(delta))) => {
                    stats.record_delta(&delta.event_id, now_us());
                    samples.clear();
                    if delta.delta.decode_pcm16_into(&mut samples).is_err() {
                        stats.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(ServerEvent::ResponseDone(_))) => {
                    if stats.measuring() {
                        stats.responses.fetch_add(1, Ordering::Relaxed);
                    }
                    if tx.send(next_response()).await.is_err() {
                        stats.errors.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            },
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_read_from_the_end_of_the_id() {
        assert_eq!(
            stamp_of("event_abc.t1700000000123456"),
            Some(1_700_000_000_123_456)
        );
        assert_eq!(stamp_of("event_abc"), None);
        assert_eq!(stamp_of("event_abc.tx"), None);
    }

    #[test]
    fn quantiles_are_bucket_upper_bounds() {
        let mut counts = vec![0_u64; 10];
        counts[0] = 98; // < 50 µs
        counts[3] = 2; // 150–200 µs
        assert_eq!(quantile_ms(&counts, 0.5), Some(0.05));
        assert_eq!(quantile_ms(&counts, 0.99), Some(0.2));
        assert_eq!(quantile_ms(&[0; 4], 0.5), None);
    }
}
