//! Per-turn latency on a clock the test controls: a scripted server sends the answer's
//! first audio a set delay after the user stopped speaking, a paced "device" pulls 10 ms
//! periods; time to first *played* audio must equal the delay within one device period,
//! and a barge-in's reaction is measured to the moment playback went silent.

#![cfg(feature = "audio")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reelthyme::audio_io::Player;
use reelthyme::{Metrics, StreamOptions, TurnStart};
use serde_json::json;

const RATE: u32 = 48_000;
const PERIOD: Duration = Duration::from_millis(10);

#[path = "support/scripted.rs"]
mod scripted;

/// Pulls a 10 ms period every 10 ms; remembers when audio was first played and when it
/// last was.
struct Device {
    first_audio: Arc<Mutex<Option<Instant>>>,
    last_audio: Arc<Mutex<Option<Instant>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Device {
    fn start(mut clock: reelthyme::audio_io::Clock) -> Self {
        let first_audio = Arc::new(Mutex::new(None));
        let last_audio = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (first, last, stop) = (first_audio.clone(), last_audio.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    let (_, audio) = clock.pull(PERIOD.as_millis() as usize * RATE as usize / 1000);
                    if audio > 0 {
                        first.lock().unwrap().get_or_insert(at);
                        *last.lock().unwrap() = Some(at);
                    }
                    next += PERIOD;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            })
        };
        Self {
            first_audio,
            last_audio,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn answer_start(resp: &str, item: &str) -> Vec<serde_json::Value> {
    let assistant = json!({"id": item, "object": "realtime.item", "type": "message",
        "status": "in_progress", "role": "assistant", "content": []});
    vec![
        json!({"type": "response.output_item.added", "event_id": "ev_oi", "response_id": resp,
            "output_index": 0, "item": assistant}),
        json!({"type": "conversation.item.added", "event_id": "ev_ia", "previous_item_id": "item_u1",
            "item": assistant}),
    ]
}

fn audio(resp: &str, item: &str, n: usize, seconds: f64) -> serde_json::Value {
    let samples = vec![4_000_i16; (seconds * 24_000.0) as usize];
    let audio = reelthyme::events::Base64Audio::from_pcm16(&samples);
    json!({"type": "response.output_audio.delta", "event_id": format!("ev_ad_{n}"),
        "response_id": resp, "item_id": item, "output_index": 0, "content_index": 0,
        "delta": audio.as_str()})
}

fn created(resp: &str) -> serde_json::Value {
    json!({"type": "response.created", "event_id": "ev_rc", "response": {
        "object": "realtime.response", "id": resp, "status": "in_progress", "output": [],
        "conversation_id": "conv_1", "output_modalities": ["audio"], "usage": null,
        "metadata": null}})
}

fn done(resp: &str, status: &str) -> serde_json::Value {
    json!({"type": "response.done", "event_id": "ev_rd", "response": {
        "object": "realtime.response", "id": resp, "status": status,
        "conversation_id": "conv_1", "output_modalities": ["audio"], "output": [],
        "usage": {"total_tokens": 30, "input_tokens": 10, "output_tokens": 20}}})
}

/// A user turn up to `response.created`; returns when the user stopped speaking.
fn user_turn(script: &scripted::Script) -> Instant {
    script.push(
        json!({"type": "input_audio_buffer.speech_started", "event_id": "ev_ss",
        "audio_start_ms": 100, "item_id": "item_u1"}),
    );
    let stopped = Instant::now();
    script.push(
        json!({"type": "input_audio_buffer.speech_stopped", "event_id": "ev_st",
        "audio_end_ms": 900, "item_id": "item_u1"}),
    );
    script.push(
        json!({"type": "input_audio_buffer.committed", "event_id": "ev_c",
        "previous_item_id": null, "item_id": "item_u1"}),
    );
    script.push(
        json!({"type": "conversation.item.added", "event_id": "ev_u",
        "previous_item_id": null, "item": {"id": "item_u1", "object": "realtime.item",
        "type": "message", "status": "completed", "role": "user",
        "content": [{"type": "input_audio", "transcript": null}]}}),
    );
    stopped
}

/// Polls the events in the background of `wait` (audio plays only while they are polled).
async fn polling<T>(
    events: &mut (
             impl futures_util::Stream<Item = reelthyme::Result<reelthyme::events::ServerEvent>> + Unpin
         ),
    wait: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(wait);
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            tokio::select! {
                out = &mut wait => return out,
                event = events.next() => { event.expect("the stream goes on").expect("no error"); }
            }
        }
    })
    .await
    .expect("in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_to_first_played_audio_is_the_scripted_delay_within_a_device_period() {
    let (server, script) = scripted::Server::new();
    let session = reelthyme::connect(server.config()).await.unwrap();
    let (player, clock) = Player::with_clock(RATE, 1).unwrap();
    let (events, control) = reelthyme::stream_to(session, player, StreamOptions::default());
    let (metrics, layer) = Metrics::new();
    let mut events = events.with_layer(layer.playback(&control));
    let mut turns = metrics.subscribe();
    let device = Device::start(clock);

    let delay = Duration::from_millis(300);
    let stopped = user_turn(&script);
    let script_run = async {
        tokio::time::sleep(Duration::from_millis(40)).await;
        script.push(created("resp_1"));
        for event in answer_start("resp_1", "item_a1") {
            script.push(event);
        }
        tokio::time::sleep_until((stopped + delay).into()).await;
        let sent_first = Instant::now();
        // Deltas of 50 ms, as the service sends them (a big one takes a debug build a
        // while to decode and resample: that is not the server's delay).
        for n in 0..20 {
            script.push(audio("resp_1", "item_a1", n, 0.05));
        }
        script.push(done("resp_1", "completed"));
        sent_first
    };
    let sent_first = polling(&mut events, script_run).await;
    let turn = polling(&mut events, turns.recv()).await.unwrap();
    let first_played = device
        .first_audio
        .lock()
        .unwrap()
        .expect("audio was played");
    drop(device);

    let scripted = sent_first - stopped;
    let ttfa = turn.time_to_first_audio.expect("time to first audio");
    let truth = first_played - stopped;
    eprintln!(
        "scripted delay {scripted:?}; time to first audio {ttfa:?} (the device's first audio period {truth:?}); \
         created {:?}, first delta {:?}, duration {:?}",
        turn.response_created, turn.first_delta, turn.response_duration
    );
    assert_eq!(turn.response_id, "resp_1");
    assert_eq!(turn.start, TurnStart::SpeechStopped);
    // Never before the audio arrived; at most one device period after it (plus the
    // player's 2 ms feeder period and 3 ms for the scheduler of a shared machine).
    assert!(
        ttfa + Duration::from_millis(1) >= scripted,
        "{ttfa:?} < {scripted:?}"
    );
    assert!(
        ttfa <= scripted + PERIOD + Duration::from_millis(5),
        "{ttfa:?} vs {scripted:?}"
    );
    // And the metric is the device's own truth within one period.
    let error = ttfa.abs_diff(truth);
    assert!(error <= PERIOD, "{ttfa:?} vs the device's {truth:?}");
    assert!(turn.response_created.unwrap() >= Duration::from_millis(40));
    assert!(turn.first_delta.unwrap() >= scripted - Duration::from_millis(1));
    assert_eq!(turn.usage.as_ref().and_then(|u| u.output_tokens), Some(20));
    assert_eq!(metrics.latest().as_deref(), Some(&*turn));
    // The turn in progress showed its time to first audio before the turn was over.
    let current = metrics.current().unwrap();
    assert_eq!(current.time_to_first_audio, Some(ttfa));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_barge_in_is_measured_to_the_moment_playback_went_silent() {
    let (server, script) = scripted::Server::new();
    let session = reelthyme::connect(server.config()).await.unwrap();
    let (player, clock) = Player::with_clock(RATE, 1).unwrap();
    let (events, control) = reelthyme::stream_to(session, player, StreamOptions::default());
    let (metrics, layer) = Metrics::new();
    let mut events = events.with_layer(layer.playback(&control));
    let mut turns = metrics.subscribe();
    let device = Device::start(clock);

    user_turn(&script);
    script.push(created("resp_1"));
    for event in answer_start("resp_1", "item_a1") {
        script.push(event);
    }
    script.push(audio("resp_1", "item_a1", 0, 3.0));
    // Half a second into the answer the user speaks; the server cancels the answer.
    polling(&mut events, tokio::time::sleep(Duration::from_millis(500))).await;
    let spoke = Instant::now();
    script.push(
        json!({"type": "input_audio_buffer.speech_started", "event_id": "ev_ss2",
        "audio_start_ms": 2000, "item_id": "item_u2"}),
    );
    script.push(done("resp_1", "cancelled"));
    let turn = polling(&mut events, turns.recv()).await.unwrap();
    polling(&mut events, tokio::time::sleep(Duration::from_millis(100))).await;
    let silent = device.last_audio.lock().unwrap().expect("audio was played");
    drop(device);
    let reaction = turn.barge_in_reaction.expect("a barge-in reaction");
    let truth = silent.saturating_duration_since(spoke);
    eprintln!(
        "barge-in reaction {reaction:?} (the device's last audio period began {truth:?} after)"
    );
    assert!(
        reaction <= PERIOD * 2 + Duration::from_millis(5),
        "{reaction:?}"
    );
    assert!(
        reaction + Duration::from_millis(1) >= truth,
        "{reaction:?} < {truth:?}"
    );
    assert!(turn.time_to_first_audio.is_some());
}
