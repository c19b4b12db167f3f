//! An hour of voice conversation, sped up, through the audio layer, the mirror, the
//! sequencer and the metrics: memory stays flat. A test binary of its own (`[[test]]`
//! `voice_hour`): resident memory is the process's, so no other test may allocate beside
//! it, and the counting allocator that measures live heap bytes is global.

use std::alloc::System;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use reelthyme::Mirror;
use reelthyme::audio_io::Player;
use reelthyme::events::{Base64Audio, ClientEvent, ServerEvent};
use serde_json::{Value, json};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[path = "support/scripted.rs"]
mod scripted;

// Live heap bytes, counted by `stats_alloc` around the system allocator.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap bytes allocated and not yet freed.
fn live_bytes() -> isize {
    let stats = GLOBAL.stats();
    // (a reallocation is counted in these two already)
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize
}

/// Resident memory, from `/proc/self/statm` (pages of 4 KiB).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Waits until the speaker has played everything queued (bounded).
async fn drained(control: &reelthyme::AudioControl) {
    tokio::time::timeout(Duration::from_secs(10), control.drained())
        .await
        .expect("the speaker plays what is queued");
}

fn mib(bytes: u64) -> f64 {
    (bytes as f64 / 104_857.6).round() / 10.0
}

/// One turn of the server's, as the frames it sends: the user's speech committed and
/// transcribed, then a spoken answer — five seconds in 50 deltas of 100 ms — with its
/// transcript, and its usage.
fn server_turn(turn: usize, delta: &Base64Audio) -> Vec<String> {
    let (user, assistant, resp) = (
        format!("item_u{turn}"),
        format!("item_a{turn}"),
        format!("resp_{turn}"),
    );
    let previous = turn.checked_sub(1).map(|t| format!("item_a{t}"));
    let heard = format!("This is what the user said in turn {turn}, more or less.");
    let said = format!("And this is the answer to turn {turn}, spoken for five seconds.");
    let assistant_item = json!({"id": assistant, "object": "realtime.item", "type": "message",
        "status": "in_progress", "role": "assistant", "content": []});
    let part = |kind: &str| {
        json!({"type": kind, "event_id": "e", "response_id": resp, "item_id": assistant,
            "output_index": 0, "content_index": 0})
    };
    let mut audio = part("response.output_audio.delta");
    audio["delta"] = json!(delta.as_str());
    let mut transcript = part("response.output_audio_transcript.done");
    transcript["transcript"] = json!(said);
    let before: Vec<Value> = vec![
        json!({"type": "input_audio_buffer.speech_started", "event_id": "e",
            "audio_start_ms": 0, "item_id": user}),
        json!({"type": "input_audio_buffer.speech_stopped", "event_id": "e",
            "audio_end_ms": 5000, "item_id": user}),
        json!({"type": "input_audio_buffer.committed", "event_id": "e",
            "previous_item_id": previous, "item_id": user}),
        json!({"type": "conversation.item.added", "event_id": "e", "previous_item_id": previous,
            "item": {"id": user, "object": "realtime.item", "type": "message",
                "status": "completed", "role": "user",
                "content": [{"type": "input_audio", "transcript": null}]}}),
        json!({"type": "conversation.item.input_audio_transcription.completed",
            "event_id": "e", "item_id": user, "content_index": 0, "transcript": heard,
            "usage": {"type": "duration", "seconds": 5.0}}),
        json!({"type": "response.created", "event_id": "e", "response": {
            "object": "realtime.response", "id": resp, "status": "in_progress", "output": [],
            "conversation_id": "conv_1", "output_modalities": ["audio"], "usage": null,
            "metadata": null}}),
        json!({"type": "response.output_item.added", "event_id": "e", "response_id": resp,
            "output_index": 0, "item": assistant_item}),
        json!({"type": "conversation.item.added", "event_id": "e", "previous_item_id": user,
            "item": assistant_item}),
    ];
    let after = [
        transcript,
        part("response.output_audio.done"),
        json!({"type": "response.done", "event_id": "e", "response": {
            "object": "realtime.response", "id": resp, "status": "completed",
            "conversation_id": "conv_1", "output_modalities": ["audio"],
            "output": [{"id": assistant, "object": "realtime.item", "type": "message",
                "status": "completed", "role": "assistant",
                "content": [{"type": "output_audio", "transcript": said}]}],
            "usage": {"total_tokens": 30, "input_tokens": 10, "output_tokens": 20}}}),
    ];
    let audio = audio.to_string();
    before
        .iter()
        .map(Value::to_string)
        .chain(std::iter::repeat_n(audio, 50))
        .chain(after.iter().map(Value::to_string))
        .collect()
}

/// 360 turns (an hour at 10 s a turn): 5 s of user speech appended by the client and
/// transcribed, and a 5 s spoken answer played on a clock device that plays as fast as it
/// is fed (no real-time wait anywhere). After a warm-up of 36 turns (the first six
/// minutes: the allocator's arenas, the maps' first growth), resident memory stays within
/// ±10 % of what it was then, while each turn moves 480 KiB of audio in and out; and the
/// live heap grows by what the history keeps of a turn (its two items and a response, in
/// the model and the mirror), a couple of kilobytes, never the audio.
///
/// On one runtime thread, so that the allocator's per-thread arenas (glibc gives each
/// thread that allocates one, and each fragments by itself) add no noise of their own: on
/// two worker threads the same hour measures +4 to +7 % from run to run, here +5 to +6 %.
#[tokio::test(flavor = "current_thread")]
async fn an_hour_of_voice_keeps_memory_flat() {
    const TURNS: usize = 360;
    const WARM_UP: usize = 36;
    let (server, script) = scripted::Server::new();
    let session = reelthyme::connect(server.config()).await.unwrap();
    let (mirror, mirror_layer) = Mirror::new();
    let (sequencer, sequencer_layer) = reelthyme::Sequencer::new();
    let mut tx = session.sender();
    let session = session.with_layer(mirror_layer).with_layer(sequencer_layer);
    let (player, mut clock) = Player::with_clock(24_000, 1).unwrap();
    let (events, control) =
        reelthyme::stream_to(session, player, reelthyme::StreamOptions::default());
    let (metrics, metrics_layer) = reelthyme::Metrics::new();
    let mut events = events.with_layer(metrics_layer.playback(&control));
    // The device: plays whatever is queued at once, and naps only when nothing is.
    let stop = Arc::new(AtomicBool::new(false));
    let device = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if clock.pull(12_000).1 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    // 100 ms of speech each way, encoded once (the encoding is not what is measured).
    let chunk = vec![1_500_i16; 2_400];
    let delta = Base64Audio::from_pcm16(&chunk);
    let append = ClientEvent::audio_append(&chunk);
    let (mut baseline, mut live_baseline) = (0, 0);
    let mut every = Vec::new();
    for turn in 0..TURNS {
        for _ in 0..50 {
            tx.send(append.clone()).await.unwrap();
        }
        for frame in server_turn(turn, &delta) {
            script.push_text(frame);
        }
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let event = events.next().await.unwrap().unwrap();
                if matches!(event, ServerEvent::ResponseDone(_)) {
                    return;
                }
            }
        })
        .await
        .expect("the turn ends");
        // The scripted server's log of what it was sent is the test's, not the client's.
        server.sent.lock().unwrap().clear();
        if turn == WARM_UP {
            // Measured with nothing queued for the speaker: up to 5 s of answer (480 KB)
            // may still wait to be played when the turn's last event arrives.
            drained(&control).await;
            baseline = rss_bytes();
            live_baseline = live_bytes();
        }
        if turn % WARM_UP == 0 {
            every.push(mib(rss_bytes()));
        }
    }
    // The last answer plays out and its metrics arrive.
    tokio::time::timeout(Duration::from_secs(10), async {
        while metrics
            .latest()
            .is_none_or(|m| m.response_id != format!("resp_{}", TURNS - 1))
        {
            let _ = tokio::time::timeout(Duration::from_millis(20), events.next()).await;
        }
    })
    .await
    .expect("the last turn's metrics");
    drained(&control).await;
    let (end, live_end) = (rss_bytes(), live_bytes());
    stop.store(true, Ordering::Relaxed);
    device.join().unwrap();
    let history = mirror.history();
    let growth = (end as f64 - baseline as f64) * 100.0 / baseline as f64;
    let live_per_turn = (live_end - live_baseline) / (TURNS - WARM_UP) as isize;
    eprintln!(
        "an hour of voice: RSS {:.1} MiB after 6 minutes, {:.1} MiB after 60 ({growth:+.1} %); \
         every 6 minutes: {every:?} MiB; live heap {live_per_turn} bytes a turn; \
         {} items in the history; {} sequencer collisions",
        mib(baseline),
        mib(end),
        history.entries.len(),
        sequencer.collisions()
    );
    // The whole hour is there, in order, and every answer was played.
    assert_eq!(history.entries.len(), 2 * TURNS);
    assert!(history.entries[2 * TURNS - 1].text.contains("turn 359"));
    assert_eq!(sequencer.collisions(), 0);
    assert!(
        growth.abs() <= 10.0,
        "RSS went from {baseline} to {end} bytes ({growth:+.1} %)"
    );
    // Retaining the audio would be 480 KiB a turn; the history measures 2.5 KB a turn, but
    // what is in flight when the heap is sampled (queued audio, channel buffers) moved one
    // CI run to 3.4 KB: the bound is 4 KiB, two orders under retaining audio.
    assert!(
        (0..4 * 1024).contains(&live_per_turn),
        "{live_per_turn} live bytes a turn"
    );
}
