//! `Conversation::apply_server` on audio deltas (~25 a second in a live session) allocates
//! nothing once a part has started: it only counts. A binary of its own, because the
//! counting allocator is global.

use std::alloc::System;

use reelthyme_schema::state::{Applied, Conversation};
use reelthyme_schema::{Base64Audio, ServerEvent};
use serde_json::json;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

// Allocations (and reallocations), counted by `stats_alloc` around the system allocator.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn allocations() -> usize {
    let stats = GLOBAL.stats();
    stats.allocations + stats.reallocations
}

fn event(value: serde_json::Value) -> ServerEvent {
    ServerEvent::from_value(value).unwrap()
}

#[test]
fn audio_deltas_allocate_nothing_after_the_first() {
    let mut c = Conversation::new();
    c.apply_server(&event(
        json!({"type":"session.created","event_id":"e","session":{
        "type":"realtime","audio":{"output":{"format":{"type":"audio/pcm","rate":24000}}}}}),
    ));
    // Enough items and responses that the lookups are not trivially small.
    for i in 0..500 {
        c.apply_server(&event(
            json!({"type":"conversation.item.added","event_id":"e",
            "item":{"id":format!("u{i}"),"type":"message","role":"user",
            "content":[{"type":"input_text","text":"hi"}]}}),
        ));
    }
    c.apply_server(&event(json!({"type":"response.created","event_id":"e",
        "response":{"id":"resp_1","status":"in_progress"}})));
    c.apply_server(&event(
        json!({"type":"response.output_item.added","event_id":"e",
        "response_id":"resp_1","output_index":0,"item":{"id":"a1","type":"message",
        "role":"assistant","content":[]}}),
    ));
    // 40 ms of PCM16 at 24 kHz, as the server sends it.
    let delta = event(json!({"type":"response.output_audio.delta","event_id":"e",
        "response_id":"resp_1","item_id":"a1","output_index":0,"content_index":0,
        "delta":Base64Audio::from_pcm16(&[0; 960]).as_str()}));
    assert_eq!(c.apply_server(&delta), Applied::ContentDelta);

    const DELTAS: u64 = 100_000;
    let before = allocations();
    let started = std::time::Instant::now();
    for _ in 0..DELTAS {
        assert_eq!(c.apply_server(&delta), Applied::ContentDelta);
    }
    let elapsed = started.elapsed();
    let allocations = allocations() - before;
    assert_eq!(allocations, 0, "allocations on the audio-delta path");
    let content = c.item("a1").unwrap().content(0).unwrap();
    assert_eq!(content.audio_ms(), Some((DELTAS + 1) * 40));
    eprintln!(
        "apply_server(audio delta): {:.0} ns each",
        elapsed.as_nanos() as f64 / DELTAS as f64
    );
}
