//! One session's protocol: its state, and the server events each client event produces.
//! No I/O: the connection feeds client frames and the clock in, and sends what comes out.
//!
//! Events are built as JSON values in the GA shape; every one of them parses into the
//! `reelthyme-schema` types and validates against the generated schemas (the test suite
//! records whole sessions and checks).
//!
//! This module dispatches client events; the jobs live beside it: `session` (configuration
//! and its defaults), `input` (the input buffer, VAD, commit, transcription),
//! `conversation` (the item store), `reply` (what the assistant says), `response` (planning
//! a response and performing its steps), `usage` (token counts), `api_error` (the API's
//! error wording) and `codec` (G.711).

mod api_error;
mod audio_out;
mod codec;
mod conversation;
mod input;
mod reply;
mod response;
mod session;
mod usage;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;

use reelthyme_schema::{ClientEvent, SessionConfig};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::config::SimConfig;
use crate::ids::Ids;
use crate::vad::Vad;

pub(crate) use api_error::api_error;
pub(crate) use audio_out::{AudioOut, TrackAudio};
#[cfg(test)]
use conversation::MAX_ITEMS;
pub(crate) use session::{DEFAULT_MODEL, default_session, with_initial};

use conversation::Stored;
use response::Active;

/// A sample rate the engine can compute with: 0 (or any nonsense from an unvalidated
/// configuration) must not divide by zero or allocate without bound.
fn sane_rate(rate: u32) -> u32 {
    if rate == 0 {
        reelthyme_schema::PCM_SAMPLE_RATE
    } else {
        rate.clamp(8_000, 48_000)
    }
}

/// Appends `.t<µs since the Unix epoch>` to an event id ([`SimConfig::stamp_event_ids`]).
fn stamp(event_id: &mut String) {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    use std::fmt::Write as _;
    let _ = write!(event_id, ".t{micros}");
}

/// Sets `key` on an object; other values are left alone (no `IndexMut` panics).
fn set(target: &mut Value, key: &str, value: Value) {
    if let Some(object) = target.as_object_mut() {
        object.insert(key.to_owned(), value);
    }
}

/// The first `max` characters of `text`.
fn truncate_chars(text: &str, max: usize) -> &str {
    text.char_indices()
        .nth(max)
        .map_or(text, |(at, _)| &text[..at])
}

/// A session's state.
#[derive(Debug)]
pub(crate) struct Engine {
    ids: Ids,
    /// The deltas' padding, from a sequence of its own so that ids do not depend on it.
    obfuscator: Ids,
    config: Arc<SimConfig>,
    session: SessionConfig,
    conversation_id: String,
    items: Vec<Stored>,
    buffer: Vec<i16>,
    timeline: u64,
    vad: Vad,
    speech_item: Option<String>,
    speech_start: u64,
    responses: Vec<Active>,
    audio_produced: bool,
    transcripts: VecDeque<String>,
    /// Transcription events held back by `SimConfig::transcript_delay`, with when each
    /// transcription is due.
    held_transcriptions: VecDeque<(Instant, Vec<(&'static str, Value)>)>,
    out: Vec<Value>,
    audio_out: AudioOut,
    /// Audio for the media track, with [`AudioOut::Track`].
    track: Vec<TrackAudio>,
    /// The item whose audio went to the track last.
    track_item: Option<String>,
    /// The response whose audio went to the track last.
    track_response: Option<String>,
    /// Whether `output_audio_buffer.stopped` waits for the track to drain.
    defer_stops: bool,
    /// Finished responses whose `stopped` waits for the track.
    pending_stops: Vec<String>,
    /// Items whose track audio was cut, for the connection ([`Engine::take_cuts`]).
    cuts: Vec<String>,
    /// The incoming track's audio to the input format's rate, when they differ.
    track_in: Option<reelthyme_audio::Resampler>,
}

impl Engine {
    pub(crate) fn new(
        config: Arc<SimConfig>,
        seed: u64,
        model: &str,
        transcription: bool,
        expires_at: i64,
    ) -> Self {
        let mut ids = Ids::new(seed);
        let session_id = ids.next("sess");
        let conversation_id = ids.next("conv");
        let kind = if transcription {
            reelthyme_schema::SessionKind::Transcription
        } else {
            reelthyme_schema::SessionKind::Realtime
        };
        let mut session = default_session(kind, model, expires_at);
        session.id = Some(session_id);
        let transcripts = config.transcripts.iter().cloned().collect();
        Self {
            ids,
            obfuscator: Ids::new(seed ^ 0x0bf5_c47e),
            config,
            session,
            conversation_id,
            items: Vec::new(),
            buffer: Vec::new(),
            timeline: 0,
            vad: Vad::default(),
            speech_item: None,
            speech_start: 0,
            responses: Vec::new(),
            audio_produced: false,
            transcripts,
            held_transcriptions: VecDeque::new(),
            out: Vec::new(),
            audio_out: AudioOut::Events,
            track: Vec::new(),
            track_item: None,
            track_response: None,
            defer_stops: false,
            pending_stops: Vec::new(),
            cuts: Vec::new(),
            track_in: None,
        }
    }

    pub(crate) fn session_id(&self) -> &str {
        self.session.id.as_deref().unwrap_or_default()
    }

    /// The events to send now.
    pub(crate) fn take_out(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.out)
    }

    /// Emits a `*.delta` event with the `obfuscation` the service adds to every one: random
    /// padding that rounds the delta's length up to a multiple of 16, so sizes on the wire
    /// say less about the content.
    fn emit_delta(&mut self, kind: &str, mut fields: Value) {
        let length = fields
            .get("delta")
            .and_then(Value::as_str)
            .map_or(0, str::len);
        let padding = self.obfuscator.token(16 - length % 16);
        set(&mut fields, "obfuscation", Value::String(padding));
        self.emit(kind, fields);
    }

    fn emit(&mut self, kind: &str, mut fields: Value) {
        let mut event = Map::new();
        event.insert("type".into(), Value::String(kind.to_owned()));
        let mut event_id = self.ids.next("event");
        if self.config.stamp_event_ids {
            stamp(&mut event_id);
        }
        event.insert("event_id".into(), Value::String(event_id));
        if let Value::Object(fields) = &mut fields {
            event.append(fields);
        }
        self.out.push(Value::Object(event));
    }

    /// A text frame from the client, already in GA shape.
    pub(crate) fn client_text(&mut self, text: &str, now: Instant) {
        let value: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(e) => {
                let message = format!("Invalid JSON: {e}");
                return self.error(Some("invalid_json"), &message, None, None);
            }
        };
        self.client_value(value, now);
    }

    pub(crate) fn client_value(&mut self, value: Value, now: Instant) {
        let event_id = value
            .get("event_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let event_id = event_id.as_deref();
        let Some(kind) = value.get("type").and_then(Value::as_str) else {
            return self.error(
                Some("invalid_event"),
                "The 'type' field is missing.",
                None,
                event_id,
            );
        };
        if !ClientEvent::TYPES.contains(&kind) {
            return self.unknown_type(kind, event_id);
        }
        if let Err(errors) = reelthyme_schema::validate_client_value(&value) {
            let (code, message, param) = api_error(&errors);
            return self.error(Some(&code), &message, param.as_deref(), event_id);
        }
        // Validation accepted it, so it parses; were the two ever to disagree, the client
        // gets an error rather than the session a panic.
        let event = match ClientEvent::from_value(value) {
            Ok(event) => event,
            Err(e) => {
                return self.error(Some("invalid_value"), &e.to_string(), None, event_id);
            }
        };
        match event {
            ClientEvent::SessionUpdate(update) => self.session_update(update.session, event_id),
            ClientEvent::InputAudioBufferAppend(append) => {
                self.append(&append.audio, event_id, now)
            }
            ClientEvent::InputAudioBufferCommit(_) => self.manual_commit(event_id, now),
            ClientEvent::InputAudioBufferClear(_) => self.clear_buffer(),
            ClientEvent::ConversationItemCreate(create) => {
                self.item_create(create.item, create.previous_item_id, event_id);
            }
            ClientEvent::ConversationItemRetrieve(e) => self.item_retrieve(&e.item_id, event_id),
            ClientEvent::ConversationItemDelete(e) => self.item_delete(&e.item_id, event_id),
            ClientEvent::ConversationItemTruncate(e) => {
                self.item_truncate(&e.item_id, e.content_index, e.audio_end_ms, event_id);
            }
            ClientEvent::ResponseCreate(create) => {
                self.response_create(create.response.unwrap_or_default(), event_id, now);
            }
            ClientEvent::ResponseCancel(cancel) => {
                self.response_cancel(cancel.response_id.as_deref(), event_id)
            }
            ClientEvent::OutputAudioBufferClear(_) => self.output_buffer_clear(event_id),
            _ => {}
        }
    }
}
