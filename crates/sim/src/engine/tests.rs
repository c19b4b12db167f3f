//! Regressions from the reliability review (2026-11-24), on the whole engine.

use std::sync::Arc;
use std::time::Duration;

use reelthyme_schema::ClientEvent;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::response::{MAX_RESPONSES, Step};
use super::{Engine, MAX_ITEMS};
use crate::config::SimConfig;

fn engine(config: SimConfig) -> Engine {
    Engine::new(Arc::new(config), 1, "gpt-realtime", false, 0)
}

fn send(engine: &mut Engine, event: Value) -> Vec<Value> {
    engine.client_value(event, Instant::now());
    engine.take_out()
}

fn audio_samples(engine: &Engine) -> usize {
    engine
        .responses
        .iter()
        .map(|r| {
            r.steps
                .iter()
                .map(|(_, step)| match step {
                    Step::AudioDelta(range) => range.len(),
                    _ => 0,
                })
                .sum::<usize>()
        })
        .sum()
}

fn user_text(text: &str) -> Value {
    json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": text}]}})
}

// #1
#[test]
fn a_long_user_message_gets_a_bounded_answer() {
    let mut engine = engine(SimConfig::default());
    send(&mut engine, user_text(&"a".repeat(50_000)));
    send(&mut engine, json!({"type": "response.create"}));
    let samples = audio_samples(&engine);
    assert!(samples > 0);
    assert!(samples <= 5 * 60 * 24_000, "{samples} samples");
    // The audio is made chunk by chunk, not all up front.
    assert!(
        engine.responses[0]
            .steps
            .iter()
            .all(|(_, s)| !matches!(s, Step::TextDelta(t) if t.len() > 10_000))
    );
}

// #1: `max_output_tokens` is respected.
#[test]
fn max_output_tokens_cuts_the_answer_short() {
    let mut engine = engine(SimConfig::default().speed(1e6));
    send(&mut engine, user_text(&"word ".repeat(400)));
    send(
        &mut engine,
        json!({"type": "response.create", "response": {"max_output_tokens": 10, "output_modalities": ["text"]}}),
    );
    engine.release(Instant::now() + Duration::from_secs(3600));
    let out = engine.take_out();
    let done = out.iter().find(|e| e["type"] == "response.done").unwrap();
    assert_eq!(done["response"]["status"], "incomplete", "{done}");
    assert_eq!(
        done["response"]["status_details"]["reason"],
        "max_output_tokens"
    );
    let text = done["response"]["output"][0]["content"][0]["text"]
        .as_str()
        .unwrap();
    assert!(text.len() <= 40, "{text:?}");
}

// #3: whatever rate reaches the engine, nothing divides by zero or allocates without bound.
#[test]
fn any_rate_is_survived() {
    for rate in [0_u64, 1, 7, u64::from(u32::MAX)] {
        let mut engine = engine(SimConfig::default().speed(1e6));
        engine.apply_initial(&json!({"audio": {
            "input": {"format": {"type": "audio/pcm", "rate": rate},
                "transcription": {"model": "whisper-1"}},
            "output": {"format": {"type": "audio/pcm", "rate": rate}}}}));
        let loud: Vec<i16> = (0..24_000)
            .map(|i| if i % 2 == 0 { 9000 } else { -9000 })
            .collect();
        send(&mut engine, ClientEvent::audio_append(&loud).to_value());
        send(
            &mut engine,
            ClientEvent::audio_append(&[0; 24_000]).to_value(),
        );
        send(&mut engine, ClientEvent::audio_append(&loud).to_value());
        send(&mut engine, json!({"type": "input_audio_buffer.commit"}));
        send(&mut engine, json!({"type": "response.cancel"}));
        send(&mut engine, json!({"type": "response.create"}));
        assert!(audio_samples(&engine) <= 5 * 60 * 192_000, "rate {rate}");
        engine.release(Instant::now() + Duration::from_millis(50));
        let item = engine
            .items
            .iter()
            .rev()
            .find(|s| s.item["role"] == "assistant")
            .map(|s| s.id().to_owned());
        if let Some(item) = item {
            send(
                &mut engine,
                json!({"type": "conversation.item.truncate", "item_id": item,
                "content_index": 0, "audio_end_ms": 0}),
            );
        }
    }
}

// #4: no item, whatever its shape, makes `transcribe` or `truncate` index out of bounds.
#[test]
fn odd_items_are_transcribed_and_truncated_without_panicking() {
    let mut engine = engine(SimConfig::default());
    send(
        &mut engine,
        json!({"type": "session.update", "session": {"type": "realtime",
        "audio": {"input": {"transcription": {"model": "whisper-1"}, "turn_detection": null}}}}),
    );
    // The id the next commit would get: after the create's two events.
    let mut ids = engine.ids.clone();
    ids.next("event");
    ids.next("event");
    let next = ids.next("item");
    send(
        &mut engine,
        json!({"type": "conversation.item.create", "item": {"id": next,
        "type": "function_call_output", "call_id": "c", "output": "x"}}),
    );
    send(
        &mut engine,
        ClientEvent::audio_append(&[1000; 4800]).to_value(),
    );
    let out = send(&mut engine, json!({"type": "input_audio_buffer.commit"}));
    let committed = out
        .iter()
        .find(|e| e["type"] == "input_audio_buffer.committed")
        .unwrap();
    assert_ne!(committed["item_id"], next.as_str(), "a taken id was reused");
    assert!(
        out.iter()
            .any(|e| e["type"] == "conversation.item.input_audio_transcription.completed")
    );
}

// #10d: the conversation and the out-of-band responses are capped.
#[test]
fn items_and_out_of_band_responses_are_capped() {
    let mut engine = engine(SimConfig::default());
    for n in 0..MAX_ITEMS + 10 {
        send(&mut engine, user_text(&format!("item {n}")));
    }
    assert_eq!(engine.items.len(), MAX_ITEMS);
    assert_eq!(
        engine.items.last().unwrap().item["content"][0]["text"],
        format!("item {}", MAX_ITEMS + 9)
    );
    let mut refused = 0;
    for _ in 0..MAX_RESPONSES + 5 {
        let out = send(
            &mut engine,
            json!({"type": "response.create", "response": {"conversation": "none"}}),
        );
        refused += out.iter().filter(|e| e["type"] == "error").count();
    }
    assert_eq!(engine.responses.len(), MAX_RESPONSES);
    assert_eq!(refused, 5);
}

// #10d: out-of-band answers are never stored, so their audio is not kept either.
#[test]
fn out_of_band_audio_is_streamed_not_kept() {
    let mut engine = engine(SimConfig::default().speed(1e6));
    send(&mut engine, user_text("hello there, how are you today?"));
    send(
        &mut engine,
        json!({"type": "response.create", "response": {"conversation": "none"}}),
    );
    let mut out = Vec::new();
    let mut kept = 0;
    for _ in 0..100 {
        engine.release(Instant::now() + Duration::from_secs(3600));
        kept = kept.max(
            engine
                .responses
                .iter()
                .filter_map(|r| r.open.as_ref())
                .map(|o| o.audio.len())
                .max()
                .unwrap_or(0),
        );
        out.extend(engine.take_out());
    }
    assert_eq!(kept, 0);
    assert!(
        out.iter()
            .any(|e| e["type"] == "response.output_audio.delta")
    );
    let done = out.iter().find(|e| e["type"] == "response.done").unwrap();
    assert_eq!(
        done["response"]["output"][0]["content"][0]["type"], "output_audio",
        "{done}"
    );
}

// #19j: VAD switched on after appends reports positions on the session's timeline.
#[test]
fn vad_turned_on_late_keeps_its_place_on_the_timeline() {
    let mut engine = engine(SimConfig::default());
    send(
        &mut engine,
        json!({"type": "session.update", "session": {"type": "realtime",
        "audio": {"input": {"turn_detection": null}}}}),
    );
    send(
        &mut engine,
        ClientEvent::audio_append(&[0; 48_000]).to_value(),
    ); // 2 s
    send(&mut engine, json!({"type": "input_audio_buffer.clear"}));
    send(
        &mut engine,
        ClientEvent::audio_append(&[0; 24_000]).to_value(),
    ); // 1 s
    send(
        &mut engine,
        json!({"type": "session.update", "session": {"type": "realtime",
        "audio": {"input": {"turn_detection": {"type": "server_vad", "prefix_padding_ms": 0,
            "silence_duration_ms": 200, "create_response": false}}}}}),
    );
    send(
        &mut engine,
        ClientEvent::audio_append(&[0; 24_000]).to_value(),
    ); // 1 s
    let loud: Vec<i16> = (0..12_000)
        .map(|i| if i % 2 == 0 { 9000 } else { -9000 })
        .collect();
    let mut out = send(&mut engine, ClientEvent::audio_append(&loud).to_value());
    out.extend(send(
        &mut engine,
        ClientEvent::audio_append(&[0; 12_000]).to_value(),
    ));
    let started = out
        .iter()
        .find(|e| e["type"] == "input_audio_buffer.speech_started")
        .unwrap();
    assert_eq!(started["audio_start_ms"], 4_000, "{started}");
    let stopped = out
        .iter()
        .find(|e| e["type"] == "input_audio_buffer.speech_stopped")
        .unwrap();
    assert_eq!(stopped["audio_end_ms"], 4_700, "{stopped}");
    let id = stopped["item_id"].as_str().unwrap();
    let item = engine.items.iter().find(|s| s.id() == id).unwrap();
    // The whole utterance and the silence rule, nothing of the next turn.
    assert_eq!(item.audio.len(), 12_000 + 4_800);
}

/// Every event until the responses are done, the clock run far ahead.
fn run_out(engine: &mut Engine) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..1000 {
        engine.release(Instant::now() + Duration::from_secs(3600));
        let batch = engine.take_out();
        if batch.is_empty() && engine.responses.is_empty() {
            break;
        }
        out.extend(batch);
    }
    out
}

fn position(events: &[Value], kind: &str) -> usize {
    events
        .iter()
        .position(|e| e["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {events:?}"))
}

#[test]
fn track_audio_goes_to_the_sink_with_output_buffer_events() {
    use super::AudioOut;
    let mut engine = engine(SimConfig::default().speed(1e6));
    engine.set_audio_out(AudioOut::Track);
    send(&mut engine, user_text("hello there"));
    let mut events = send(&mut engine, json!({"type": "response.create"}));
    events.extend(run_out(&mut engine));
    assert!(
        !events
            .iter()
            .any(|e| e["type"] == "response.output_audio.delta"),
        "audio went out as events"
    );
    let part = position(&events, "response.content_part.added");
    let started = position(&events, "output_audio_buffer.started");
    let done = position(&events, "response.done");
    let stopped = position(&events, "output_audio_buffer.stopped");
    assert!(
        part < started && started < done && done < stopped,
        "{events:?}"
    );
    let response_id = &events[done]["response"]["id"];
    assert_eq!(&events[started]["response_id"], response_id);
    let track = engine.take_track();
    assert!(!track.is_empty());
    assert!(track.iter().all(|chunk| chunk.rate == 24_000
        && &chunk.response_id == response_id
        && !chunk.samples.is_empty()));
    // The usage counts what the track played.
    let samples: usize = track.iter().map(|chunk| chunk.samples.len()).sum();
    assert_eq!(
        events[done]["response"]["usage"]["output_token_details"]["audio_tokens"],
        samples as u64 * 10 / 24_000
    );
    for event in &events {
        reelthyme_schema::ServerEvent::from_value(event.clone())
            .unwrap_or_else(|e| panic!("{e}: {event}"));
    }
    // Only a track has a buffer to clear.
    let cleared = send(&mut engine, json!({"type": "output_audio_buffer.clear"}));
    assert_eq!(
        cleared[0]["type"], "output_audio_buffer.cleared",
        "{cleared:?}"
    );
    let mut events_engine = self::engine(SimConfig::default());
    let refused = send(
        &mut events_engine,
        json!({"type": "output_audio_buffer.clear"}),
    );
    assert_eq!(refused[0]["type"], "error");
}

#[test]
fn g711_audio_tokens_count_the_duration_at_8_khz() {
    let mut engine = engine(SimConfig::default().speed(1e6));
    send(
        &mut engine,
        json!({"type": "session.update", "session": {"type": "realtime",
            "audio": {"output": {"format": {"type": "audio/pcmu"}}}}}),
    );
    send(
        &mut engine,
        user_text("say something long enough to be heard"),
    );
    let mut events = send(&mut engine, json!({"type": "response.create"}));
    events.extend(run_out(&mut engine));
    let bytes: usize = events
        .iter()
        .filter(|e| e["type"] == "response.output_audio.delta")
        .map(|e| {
            reelthyme_schema::Base64Audio::from_base64(e["delta"].as_str().unwrap())
                .decode_bytes()
                .unwrap()
                .len()
        })
        .sum();
    assert!(bytes > 8_000, "{bytes} bytes of G.711");
    let done = &events[position(&events, "response.done")];
    // One byte per sample at 8 kHz: 10 tokens a second, not a third of that.
    assert_eq!(
        done["response"]["usage"]["output_token_details"]["audio_tokens"],
        bytes as u64 * 10 / 8_000
    );
}

// Transcriptions held back by a transcript delay are bounded, and come out in commit order
// when due (the oldest early once the bound is reached).
#[test]
fn held_transcriptions_are_bounded_and_ordered() {
    let config = SimConfig::default().transcript_delay(Duration::from_secs(60));
    let mut engine = engine(config);
    let now = Instant::now();
    engine.client_value(
        json!({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
            "transcription": {"model": "gpt-4o-mini-transcribe"}, "turn_detection": null}}}}),
        now,
    );
    engine.take_out();
    let commits = 300;
    let mut early = Vec::new();
    for _ in 0..commits {
        engine.client_value(
            ClientEvent::audio_append(&[1_000i16; 4_800]).to_value(),
            now,
        );
        engine.client_value(json!({"type": "input_audio_buffer.commit"}), now);
        early.extend(engine.take_out());
    }
    let completed = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["type"] == "conversation.item.input_audio_transcription.completed")
            .map(|e| e["item_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let committed: Vec<String> = early
        .iter()
        .filter(|e| e["type"] == "input_audio_buffer.committed")
        .map(|e| e["item_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(committed.len(), commits);
    let delivered_early = completed(&early);
    assert_eq!(delivered_early.len(), commits - 256);
    assert!(engine.held_transcriptions.len() <= 256);
    assert_eq!(engine.next_due(), now.checked_add(Duration::from_secs(60)));
    // Nothing more before the delay; everything after it, in order.
    engine.release(now + Duration::from_secs(59));
    assert!(completed(&engine.take_out()).is_empty());
    engine.release(now + Duration::from_secs(60));
    let mut all = delivered_early;
    all.extend(completed(&engine.take_out()));
    assert_eq!(all, committed);
    assert_eq!(engine.next_due(), None);
}
