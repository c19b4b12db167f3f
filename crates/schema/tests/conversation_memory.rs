//! What a voice turn costs the `Conversation` model, in live heap bytes: an hour of turns
//! (a spoken user utterance, transcribed; a spoken answer with its transcript; the
//! response's usage), fed as a real session's events. The model keeps every item and
//! response for the session (up to its limits), so this is its growth per turn. A binary
//! of its own, because the counting allocator is global.

use std::alloc::System;

use reelthyme_schema::state::Conversation;
use reelthyme_schema::{Base64Audio, ClientEvent, Item, ServerEvent};
use serde_json::{Value, json};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

// Live heap bytes, counted by `stats_alloc` around the system allocator.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap bytes allocated and not yet freed.
fn live_bytes() -> isize {
    let stats = GLOBAL.stats();
    // (a reallocation is counted in these two already)
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize
}

fn server(value: Value) -> ServerEvent {
    ServerEvent::from_value(value).unwrap()
}

/// One turn's events, with ids shaped like the service's (`item_` + 22 characters).
fn turn(n: usize, delta: &Base64Audio) -> (Vec<ServerEvent>, Vec<ClientEvent>) {
    let user = format!("item_CVuser{n:016}");
    let assistant = format!("item_CVasst{n:016}");
    let resp = format!("resp_CVresp{n:016}");
    let previous = n.checked_sub(1).map(|p| format!("item_CVasst{p:016}"));
    let heard = format!("This is what the user said in turn {n}, more or less.");
    let said = format!("And this is the answer to turn {n}, spoken for five seconds.");
    let part = |text: &str| {
        json!({"response_id": resp, "item_id": assistant,
        "output_index": 0, "content_index": 0, "delta": text})
    };
    let mut events = vec![
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
        json!({"type": "conversation.item.done", "event_id": "e", "previous_item_id": previous,
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
            "output_index": 0, "item": {"id": assistant, "object": "realtime.item",
                "type": "message", "status": "in_progress", "role": "assistant",
                "content": []}}),
        json!({"type": "conversation.item.added", "event_id": "e", "previous_item_id": user,
            "item": {"id": assistant, "object": "realtime.item", "type": "message",
                "status": "in_progress", "role": "assistant", "content": []}}),
        json!({"type": "response.content_part.added", "event_id": "e", "response_id": resp,
            "item_id": assistant, "output_index": 0, "content_index": 0,
            "part": {"type": "audio", "transcript": ""}}),
    ];
    for (i, word) in said.split_inclusive(' ').enumerate() {
        events.push(json!({"type": "response.output_audio_transcript.delta", "event_id": "e"}));
        let last = events.last_mut().unwrap();
        last.as_object_mut()
            .unwrap()
            .extend(part(word).as_object().unwrap().clone());
        if i % 2 == 0 {
            let mut audio = part(delta.as_str());
            audio["type"] = json!("response.output_audio.delta");
            audio["event_id"] = json!("e");
            events.push(audio);
        }
    }
    let item_done = json!({"id": assistant, "object": "realtime.item", "type": "message",
        "status": "completed", "role": "assistant",
        "content": [{"type": "output_audio", "transcript": said}]});
    events.extend([
        json!({"type": "response.output_audio.done", "event_id": "e", "response_id": resp,
            "item_id": assistant, "output_index": 0, "content_index": 0}),
        json!({"type": "response.output_audio_transcript.done", "event_id": "e",
            "response_id": resp, "item_id": assistant, "output_index": 0,
            "content_index": 0, "transcript": said}),
        json!({"type": "response.content_part.done", "event_id": "e", "response_id": resp,
            "item_id": assistant, "output_index": 0, "content_index": 0,
            "part": {"type": "audio", "transcript": said}}),
        json!({"type": "response.output_item.done", "event_id": "e", "response_id": resp,
            "output_index": 0, "item": item_done}),
        json!({"type": "conversation.item.done", "event_id": "e", "previous_item_id": user,
            "item": item_done}),
        json!({"type": "response.done", "event_id": "e", "response": {
            "object": "realtime.response", "id": resp, "status": "completed",
            "conversation_id": "conv_1", "output_modalities": ["audio"], "metadata": null,
            "output": [item_done],
            "usage": {"total_tokens": 330, "input_tokens": 110, "output_tokens": 220,
                "input_token_details": {"text_tokens": 10, "audio_tokens": 100,
                    "cached_tokens": 0},
                "output_token_details": {"text_tokens": 20, "audio_tokens": 200}}}}),
    ]);
    let appends = (0..5)
        .map(|_| ClientEvent::audio_append(&[1_500_i16; 240]))
        .collect();
    (events.into_iter().map(server).collect(), appends)
}

/// 360 voice turns (an hour at 10 s a turn): after the first 36, each turn adds at most
/// `PER_TURN` live bytes to the model — its two items (ids, roles, transcripts) and its
/// response (status, usage), each kept once.
#[test]
fn a_voice_turn_costs_the_model_little_and_the_same_every_turn() {
    const TURNS: usize = 360;
    const PER_TURN: isize = 2_200;
    let delta = Base64Audio::from_pcm16(&[300_i16; 2_400]);
    // The events are made before counting: only the model's own allocations are measured.
    let turns: Vec<_> = (0..TURNS).map(|n| turn(n, &delta)).collect();
    let mut c = Conversation::new();
    c.apply_server(&server(
        json!({"type": "session.created", "event_id": "e", "session": {
        "type": "realtime", "id": "sess_1", "model": "gpt-realtime",
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}},
                  "output": {"format": {"type": "audio/pcm", "rate": 24000}}}}}),
    ));
    let mut at = Vec::new();
    for (n, (events, appends)) in turns.iter().enumerate() {
        if n % 36 == 0 {
            at.push(live_bytes());
        }
        for append in appends {
            c.apply_client(append);
        }
        for event in events {
            c.apply_server(event);
        }
    }
    at.push(live_bytes());
    c.check_invariants().unwrap();
    // What is kept is what was said, whole.
    assert_eq!(c.items().count(), 2 * TURNS);
    let last = c.items().last().unwrap();
    assert!(last.text().contains("turn 359, spoken"), "{}", last.text());
    let Item::Message(message) = last.item() else {
        panic!("{:?}", last.item())
    };
    assert_eq!(
        message.content[0].text(),
        Some("And this is the answer to turn 359, spoken for five seconds.")
    );
    let per_turn = (at[TURNS / 36] - at[1]) / (TURNS - 36) as isize;
    eprintln!(
        "the model's live bytes every 36 turns: {:?}; {per_turn} bytes a turn",
        at.iter().map(|b| b / 1024).collect::<Vec<_>>()
    );
    assert!(per_turn <= PER_TURN, "{per_turn} live bytes a turn");
}
