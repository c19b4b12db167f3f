//! One session's protocol: its state, and the server events each client event produces.
//! No I/O: the connection feeds client frames and the clock in, and sends what comes out.
//!
//! Events are built as JSON values in the GA shape; every one of them parses into the
//! `reelthyme-schema` types and validates against the generated schemas (the test suite
//! records whole sessions and checks).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use reelthyme_schema::{
    AudioFormat, Base64Audio, ClientEvent, Item, MaxTokens, Modality, ResponseParams, SessionConfig,
    SessionKind, Tool, ToolChoice, ToolChoiceMode, TurnDetection, ValidationErrors, g711,
};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::config::{Match, Reply, SimConfig};
use crate::ids::Ids;
use crate::synth;
use crate::vad::{Vad, VadEvent, VadSettings};

/// Client event types the GA server accepts, as its `invalid_value` error lists them.
const ACCEPTED: &str = "'session.update', 'session.close', 'input_audio_buffer.append', \
    'session.input_audio_buffer.append', 'input_audio_buffer.commit', 'input_audio_buffer.clear', \
    'conversation.item.create', 'conversation.item.truncate', 'conversation.item.delete', \
    'conversation.item.retrieve', 'response.create', 'response.cancel'";

const DEFAULT_INSTRUCTIONS: &str =
    "You are reelthyme's simulated assistant. You answer deterministically.";

/// Conversation items kept; past it the oldest go, as the service's context truncation
/// drops them.
pub(crate) const MAX_ITEMS: usize = 1024;
/// Bytes of conversation (items as JSON, and their audio) kept, likewise.
const MAX_CONVERSATION_BYTES: usize = 64 << 20;
/// Responses running at once: the conversation's and the out-of-band ones.
pub(crate) const MAX_RESPONSES: usize = 16;
/// What `max_output_tokens: "inf"` allows: the service's largest number.
const DEFAULT_MAX_TOKENS: u64 = 4096;
/// Characters per token, for the simulator's token counts.
const CHARS_PER_TOKEN: u64 = 4;
/// The most synthesized audio one response speaks.
const MAX_REPLY_AUDIO: Duration = Duration::from_secs(5 * 60);
/// The most user text a default answer echoes back.
const MAX_ECHO_CHARS: usize = 1_000;
/// The most user text a reply is chosen from (rules, tool guesses).
const MAX_INPUT_CHARS: usize = 64 << 10;
/// The input audio buffer holds at most the service's one documented size, 15 MiB of
/// 16-bit audio; appends past it get an `error`.
const MAX_BUFFER_SAMPLES: usize = reelthyme_schema::MAX_APPEND_BYTES / 2;
/// The most events one `release` emits, so the connection can pace a backlog.
const RELEASE_BATCH: usize = 64;
/// The furthest ahead a response step is scheduled.
const MAX_STEP_DELAY: Duration = Duration::from_secs(365 * 24 * 3600);

/// A sample rate the engine can compute with: 0 (or any nonsense from an unvalidated
/// configuration) must not divide by zero or allocate without bound.
fn sane_rate(rate: u32) -> u32 {
    if rate == 0 {
        reelthyme_schema::PCM_SAMPLE_RATE
    } else {
        rate.clamp(8_000, 48_000)
    }
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

/// A conversation item with its audio, kept apart so events can omit it.
#[derive(Debug, Clone)]
struct Stored {
    item: Value,
    audio: Vec<i16>,
    rate: u32,
    /// The size of `item` as JSON, for the conversation's cap.
    json_bytes: usize,
}

impl Stored {
    fn new(item: Value, audio: Vec<i16>, rate: u32) -> Self {
        let json_bytes = item.to_string().len();
        Self {
            item,
            audio,
            rate: sane_rate(rate),
            json_bytes,
        }
    }

    fn id(&self) -> &str {
        self.item
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    fn bytes(&self) -> usize {
        self.json_bytes + self.audio.len() * 2
    }

    fn set_item(&mut self, item: Value) {
        self.json_bytes = item.to_string().len();
        self.item = item;
    }
}

/// Where a response's audio comes from, a chunk at a time.
#[derive(Debug)]
enum AudioSource {
    /// Synthesized from this text at this rate.
    Synth(Arc<str>, u32),
    /// The user's own audio (an echo).
    Echo(Arc<[i16]>),
}

impl AudioSource {
    fn samples(&self, range: std::ops::Range<usize>) -> Vec<i16> {
        match self {
            Self::Synth(text, rate) => synth::speak_range(text, *rate, range),
            Self::Echo(audio) => audio.get(range).map(<[i16]>::to_vec).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartKind {
    Text,
    Audio,
}

/// What a response will produce, released step by step on its clock.
#[derive(Debug)]
enum Step {
    Created,
    MessageAdded,
    FunctionAdded {
        call_id: String,
        name: String,
    },
    PartAdded(PartKind),
    TextDelta(String),
    /// These samples of the response's audio source.
    AudioDelta(std::ops::Range<usize>),
    ArgsDelta(String),
    PartDone,
    ItemDone,
    Done,
}

#[derive(Debug)]
struct OpenItem {
    id: String,
    output_index: usize,
    item: Value,
    part: Option<PartKind>,
    text: String,
    /// The audio so far, for truncation and the stored item (in-conversation items only:
    /// out-of-band ones are never stored).
    audio: Vec<i16>,
    has_audio: bool,
}

#[derive(Debug)]
struct Active {
    id: String,
    in_conversation: bool,
    started: Instant,
    steps: VecDeque<(Duration, Step)>,
    response: Value,
    output: Vec<Value>,
    open: Option<OpenItem>,
    failure: Option<(String, String)>,
    output_format: AudioFormat,
    input_tokens: u64,
    audio: Option<AudioSource>,
    /// Cut short by `max_output_tokens` (or the simulator's own caps).
    truncated: bool,
}

/// A session's state.
#[derive(Debug)]
pub(crate) struct Engine {
    ids: Ids,
    config: Arc<SimConfig>,
    pub(crate) session: SessionConfig,
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
    out: Vec<Value>,
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
        let session = if transcription {
            serde_json::from_value(json!({
                "type": "transcription", "object": "realtime.transcription_session", "id": session_id,
                "expires_at": expires_at,
                "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                    "transcription": {"model": "gpt-4o-transcribe", "language": "", "prompt": ""},
                    "noise_reduction": null,
                    "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                        "silence_duration_ms": 500}}},
                "include": null,
            }))
        } else {
            serde_json::from_value(json!({
                "type": "realtime", "object": "realtime.session", "id": session_id, "model": model,
                "output_modalities": ["audio"], "instructions": DEFAULT_INSTRUCTIONS,
                "tools": [], "tool_choice": "auto", "max_output_tokens": "inf", "tracing": null,
                "prompt": null, "expires_at": expires_at,
                "audio": {
                    "input": {"format": {"type": "audio/pcm", "rate": 24000}, "transcription": null,
                        "noise_reduction": null,
                        "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                            "silence_duration_ms": 200, "idle_timeout_ms": null, "create_response": true,
                            "interrupt_response": true}},
                    "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin", "speed": 1.0}},
                "include": null,
            }))
        }
        .expect("the default session parses");
        let transcripts = config.transcripts.iter().cloned().collect();
        Self {
            ids,
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
            out: Vec::new(),
        }
    }

    /// Applies a session configuration without an event (an ephemeral key's session).
    pub(crate) fn apply_initial(&mut self, session: &Value) {
        let mut current = serde_json::to_value(&self.session).expect("sessions serialise");
        let mut patch = session.clone();
        if let Value::Object(patch) = &mut patch {
            for server_owned in ["id", "object", "expires_at", "type"] {
                patch.remove(server_owned);
            }
        }
        merge(&mut current, patch);
        if let Ok(session) = serde_json::from_value(current) {
            self.session = session;
        }
    }

    pub(crate) fn session_id(&self) -> &str {
        self.session.id.as_deref().unwrap_or_default()
    }

    /// The events to send now.
    pub(crate) fn take_out(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.out)
    }

    fn emit(&mut self, kind: &str, mut fields: Value) {
        let mut event = Map::new();
        event.insert("type".into(), Value::String(kind.to_owned()));
        event.insert("event_id".into(), Value::String(self.ids.next("event")));
        if let Value::Object(fields) = &mut fields {
            event.append(fields);
        }
        self.out.push(Value::Object(event));
    }

    pub(crate) fn session_created(&mut self) {
        let session = serde_json::to_value(&self.session).expect("sessions serialise");
        self.emit("session.created", json!({ "session": session }));
    }

    pub(crate) fn error(
        &mut self,
        code: Option<&str>,
        message: &str,
        param: Option<&str>,
        event_id: Option<&str>,
    ) {
        self.emit(
            "error",
            json!({"error": {"type": "invalid_request_error", "code": code, "message": message,
                "param": param, "event_id": event_id}}),
        );
    }

    pub(crate) fn session_expired(&mut self) {
        let minutes = self.config.session_duration.as_secs() / 60;
        let message = format!("Your session hit the maximum duration of {minutes} minutes.");
        self.error(Some("session_expired"), &message, None, None);
    }

    /// A binary frame from the client.
    pub(crate) fn binary_frame(&mut self) {
        self.emit(
            "error",
            json!({"error": {"type": "invalid_request_error", "code": "invalid_event",
                "message": "Expected a text WebSocket message; binary frames are not supported.",
                "param": null, "event_id": null}}),
        );
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
            let message = format!("Invalid value: '{kind}'. Supported values are: {ACCEPTED}.");
            return self.error(Some("invalid_value"), &message, Some("type"), event_id);
        }
        if let Err(errors) = reelthyme_schema::validate_client_value(&value) {
            let (code, message, param) = api_error(&errors);
            return self.error(Some(&code), &message, param.as_deref(), event_id);
        }
        let event = ClientEvent::from_value(value).expect("a validated event parses");
        match event {
            ClientEvent::SessionUpdate(update) => self.session_update(update.session, event_id),
            ClientEvent::InputAudioBufferAppend(append) => {
                self.append(&append.audio, event_id, now)
            }
            ClientEvent::InputAudioBufferCommit(_) => self.manual_commit(event_id),
            ClientEvent::InputAudioBufferClear(_) => {
                self.buffer.clear();
                self.vad.reset(self.timeline);
                self.speech_item = None;
                self.emit("input_audio_buffer.cleared", json!({}));
            }
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
            ClientEvent::OutputAudioBufferClear(_) => self.error(
                Some("invalid_value"),
                "output_audio_buffer.clear is only supported for WebRTC and SIP sessions.",
                Some("type"),
                event_id,
            ),
            _ => {}
        }
    }

    // --- session ---------------------------------------------------------------------

    fn session_update(&mut self, update: SessionConfig, event_id: Option<&str>) {
        if update.kind.is_some() && update.kind != self.session.kind {
            let message = "Cannot change the session type of an existing session.";
            return self.error(
                Some("invalid_value"),
                message,
                Some("session.type"),
                event_id,
            );
        }
        if update.model.is_some() && update.model != self.session.model {
            let message = "Cannot change the model of an existing session.";
            return self.error(
                Some("invalid_value"),
                message,
                Some("session.model"),
                event_id,
            );
        }
        let new_voice = update
            .audio
            .as_ref()
            .and_then(|a| a.output.as_ref())
            .and_then(|o| o.voice.as_ref());
        let old_voice = self
            .session
            .audio
            .as_ref()
            .and_then(|a| a.output.as_ref())
            .and_then(|o| o.voice.as_ref());
        if self.audio_produced && new_voice.is_some() && new_voice != old_voice {
            let message = "Cannot update a conversation's voice if assistant audio is present.";
            return self.error(
                Some("cannot_update_voice"),
                message,
                Some("session.audio.output.voice"),
                event_id,
            );
        }
        let mut current = serde_json::to_value(&self.session).expect("sessions serialise");
        let mut patch = serde_json::to_value(&update).expect("sessions serialise");
        if let Value::Object(patch) = &mut patch {
            for server_owned in ["id", "object", "expires_at"] {
                patch.remove(server_owned);
            }
        }
        merge(&mut current, patch);
        match serde_json::from_value::<SessionConfig>(current) {
            Ok(session) => self.session = session,
            Err(e) => {
                return self.error(
                    Some("invalid_value"),
                    &e.to_string(),
                    Some("session"),
                    event_id,
                );
            }
        }
        let session = serde_json::to_value(&self.session).expect("sessions serialise");
        self.emit("session.updated", json!({ "session": session }));
    }

    fn input_format(&self) -> AudioFormat {
        self.session
            .input_format()
            .cloned()
            .unwrap_or_else(AudioFormat::pcm)
    }

    fn output_format(&self) -> AudioFormat {
        self.session
            .output_format()
            .cloned()
            .unwrap_or_else(AudioFormat::pcm)
    }

    fn input_rate(&self) -> u32 {
        sane_rate(self.input_format().sample_rate().unwrap_or(24_000))
    }

    fn vad_settings(&self) -> Option<(VadSettings, bool, bool)> {
        let rate = self.input_rate();
        match self.session.turn_detection() {
            Some(Some(TurnDetection::ServerVad(vad))) => Some((
                VadSettings {
                    threshold: vad.threshold.unwrap_or(0.5),
                    prefix_padding_ms: u64::from(vad.prefix_padding_ms.unwrap_or(300)),
                    silence_duration_ms: u64::from(vad.silence_duration_ms.unwrap_or(500)),
                    rate,
                },
                vad.create_response.unwrap_or(true),
                vad.interrupt_response.unwrap_or(true),
            )),
            Some(Some(TurnDetection::SemanticVad(vad))) => {
                let silence = match vad.eagerness.as_deref() {
                    Some("high") => 250,
                    Some("low") => 1_500,
                    _ => 600,
                };
                Some((
                    VadSettings {
                        threshold: 0.5,
                        prefix_padding_ms: 300,
                        silence_duration_ms: silence,
                        rate,
                    },
                    vad.create_response.unwrap_or(true),
                    vad.interrupt_response.unwrap_or(true),
                ))
            }
            Some(None) => None,
            // Absent means the server default: server VAD.
            _ => Some((
                VadSettings {
                    threshold: 0.5,
                    prefix_padding_ms: 300,
                    silence_duration_ms: 500,
                    rate,
                },
                true,
                true,
            )),
        }
    }

    // --- input audio -------------------------------------------------------------------

    fn decode_input(&self, audio: &Base64Audio) -> Result<Vec<i16>, String> {
        match self.input_format() {
            AudioFormat::Pcmu(_) => audio
                .decode_bytes()
                .map(|b| b.into_iter().map(g711::ulaw_decode).collect())
                .map_err(|e| e.to_string()),
            AudioFormat::Pcma(_) => audio
                .decode_bytes()
                .map(|b| b.into_iter().map(g711::alaw_decode).collect())
                .map_err(|e| e.to_string()),
            _ => audio.decode_pcm16().map_err(|e| e.to_string()),
        }
    }

    fn append(&mut self, audio: &Base64Audio, event_id: Option<&str>, now: Instant) {
        let samples = match self.decode_input(audio) {
            Ok(samples) => samples,
            Err(e) => {
                return self.error(
                    Some("invalid_value"),
                    &format!("Invalid audio: {e}"),
                    Some("audio"),
                    event_id,
                );
            }
        };
        if self.buffer.len().saturating_add(samples.len()) > MAX_BUFFER_SAMPLES {
            let message = format!(
                "The input audio buffer is full: it holds at most {} MiB of audio. Commit or clear it.",
                reelthyme_schema::MAX_APPEND_BYTES >> 20
            );
            return self.error(Some("invalid_value"), &message, Some("audio"), event_id);
        }
        self.buffer.extend_from_slice(&samples);
        self.timeline += samples.len() as u64;
        let Some((settings, create_response, interrupt)) = self.vad_settings() else {
            // Without VAD the detector keeps its place, so turning it on later reports
            // positions on the session's timeline.
            self.vad.reset(self.timeline);
            return;
        };
        let mut events = Vec::new();
        self.vad.feed(&samples, settings, &mut events);
        let rate = u64::from(settings.rate);
        let padding = settings.prefix_padding_ms.saturating_mul(rate) / 1000;
        for event in events {
            match event {
                VadEvent::Started { speech_start } => {
                    let item_id = self.new_item_id();
                    let start_ms = (speech_start.saturating_mul(1000) / rate)
                        .saturating_sub(settings.prefix_padding_ms);
                    // The turn's audio starts at the prefix padding before the speech.
                    self.trim_buffer_before(speech_start.saturating_sub(padding));
                    self.speech_item = Some(item_id.clone());
                    self.speech_start = speech_start;
                    self.emit(
                        "input_audio_buffer.speech_started",
                        json!({"audio_start_ms": start_ms, "item_id": item_id}),
                    );
                    if interrupt
                        && let Some(index) = self.responses.iter().position(|r| r.in_conversation)
                    {
                        self.cancel(index, "turn_detected");
                    }
                }
                VadEvent::Stopped { speech_end } => {
                    let item_id = match self.speech_item.take() {
                        Some(id) => id,
                        None => self.new_item_id(),
                    };
                    let end_ms = (speech_end.saturating_mul(1000) / rate)
                        .saturating_add(settings.silence_duration_ms);
                    self.emit(
                        "input_audio_buffer.speech_stopped",
                        json!({"audio_end_ms": end_ms, "item_id": item_id}),
                    );
                    // Commit what was buffered up to the end of the silence rule.
                    let buffer_start = self.timeline.saturating_sub(self.buffer.len() as u64);
                    let end_sample = speech_end
                        .saturating_add(settings.silence_duration_ms.saturating_mul(rate) / 1000);
                    let keep_from = usize::try_from(end_sample.saturating_sub(buffer_start))
                        .unwrap_or(usize::MAX)
                        .min(self.buffer.len());
                    let committed: Vec<i16> = self.buffer.drain(..keep_from).collect();
                    self.commit(item_id, committed);
                    if create_response
                        && !self.responses.iter().any(|r| r.in_conversation)
                        && self.responses.len() < MAX_RESPONSES
                    {
                        self.start_response(ResponseParams::default(), now);
                    }
                }
            }
        }
        if !self.vad.speaking() {
            // Silence before speech is kept only as far back as the prefix padding (and the
            // frames that confirm a start): a quiet microphone does not fill the buffer.
            let confirm = rate * 50 / 1000;
            let keep_from = self
                .timeline
                .saturating_sub(padding.saturating_add(confirm));
            self.trim_buffer_before(keep_from);
        }
    }

    /// Drops the buffered audio before `position` of the input timeline.
    fn trim_buffer_before(&mut self, position: u64) {
        let buffer_start = self.timeline.saturating_sub(self.buffer.len() as u64);
        let drop = usize::try_from(position.saturating_sub(buffer_start))
            .unwrap_or(usize::MAX)
            .min(self.buffer.len());
        if drop > 0 {
            self.buffer.drain(..drop);
        }
    }

    /// A fresh item id: not in the conversation, not announced by `speech_started`.
    fn new_item_id(&mut self) -> String {
        loop {
            let id = self.ids.next("item");
            if self.find(&id).is_none() && self.speech_item.as_deref() != Some(id.as_str()) {
                return id;
            }
        }
    }

    fn manual_commit(&mut self, event_id: Option<&str>) {
        let rate = self.input_rate();
        let ms = self.buffer.len() as f64 * 1000.0 / f64::from(rate);
        if ms < 100.0 {
            let message = format!(
                "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, \
                 but buffer only has {ms:.2}ms of audio."
            );
            return self.error(
                Some("input_audio_buffer_commit_empty"),
                &message,
                None,
                event_id,
            );
        }
        let item_id = match self.speech_item.take() {
            Some(id) => id,
            None => self.new_item_id(),
        };
        let samples = std::mem::take(&mut self.buffer);
        self.vad.reset(self.timeline);
        self.commit(item_id, samples);
    }

    fn last_item_id(&self) -> Value {
        self.items
            .last()
            .map_or(Value::Null, |s| Value::String(s.id().to_owned()))
    }

    fn commit(&mut self, item_id: String, samples: Vec<i16>) {
        // An id the client took meanwhile is not reused.
        let item_id = if self.find(&item_id).is_some() {
            self.new_item_id()
        } else {
            item_id
        };
        let previous = self.last_item_id();
        self.emit(
            "input_audio_buffer.committed",
            json!({"previous_item_id": previous, "item_id": item_id}),
        );
        let item = json!({"id": item_id, "type": "message", "status": "completed", "role": "user",
            "content": [{"type": "input_audio", "transcript": null}]});
        let rate = self.input_rate();
        let seconds = samples.len() as f64 / f64::from(rate);
        self.items.push(Stored::new(item.clone(), samples, rate));
        self.prune_conversation();
        let object = json!({"object": "realtime.item"});
        let mut announced = item;
        merge(&mut announced, object);
        self.emit(
            "conversation.item.added",
            json!({"previous_item_id": previous, "item": announced}),
        );
        self.emit(
            "conversation.item.done",
            json!({"previous_item_id": previous, "item": announced}),
        );
        self.transcribe(&item_id, seconds);
    }

    fn transcribe(&mut self, item_id: &str, seconds: f64) {
        let transcribing = self.session.kind == Some(SessionKind::Transcription)
            || self
                .session
                .audio
                .as_ref()
                .and_then(|a| a.input.as_ref())
                .and_then(|i| i.transcription.as_ref())
                .is_some_and(Option::is_some);
        if !transcribing {
            return;
        }
        let transcript = self
            .transcripts
            .pop_front()
            .unwrap_or_else(|| format!("{seconds:.2} seconds of audio"));
        for word in split_keep_spaces(&transcript) {
            self.emit(
                "conversation.item.input_audio_transcription.delta",
                json!({"item_id": item_id, "content_index": 0, "delta": word}),
            );
        }
        let audio_tokens = if seconds.is_finite() {
            (seconds * 10.0).ceil() as u64
        } else {
            0
        };
        let text_tokens = (transcript.len() as u64).div_ceil(4);
        self.emit(
            "conversation.item.input_audio_transcription.completed",
            json!({"item_id": item_id, "content_index": 0, "transcript": transcript,
                "usage": {"type": "tokens", "total_tokens": audio_tokens.saturating_add(text_tokens), "input_tokens": audio_tokens,
                    "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens},
                    "output_tokens": text_tokens}}),
        );
        if let Some(stored) = self.items.iter_mut().rev().find(|s| s.id() == item_id) {
            let mut item = stored.item.clone();
            if let Some(part) = item
                .get_mut("content")
                .and_then(Value::as_array_mut)
                .and_then(|parts| parts.first_mut())
            {
                set(part, "transcript", Value::String(transcript));
            }
            stored.set_item(item);
        }
    }

    // --- conversation ------------------------------------------------------------------

    fn find(&self, item_id: &str) -> Option<usize> {
        self.items.iter().position(|s| s.id() == item_id)
    }

    fn item_create(
        &mut self,
        item: Item,
        previous: Option<Option<String>>,
        event_id: Option<&str>,
    ) {
        if matches!(item, Item::Reference(_)) {
            let message = "item_reference can only be used in response.create input.";
            return self.error(Some("invalid_value"), message, Some("item.type"), event_id);
        }
        let index = match previous.flatten() {
            None => self.items.len(),
            Some(id) if id == "root" => 0,
            Some(id) => match self.find(&id) {
                Some(index) => index + 1,
                None => {
                    let message = format!("Previous item with item_id not found: {id}");
                    return self.error(
                        Some("item_not_found"),
                        &message,
                        Some("previous_item_id"),
                        event_id,
                    );
                }
            },
        };
        let mut value = serde_json::to_value(&item).expect("items serialise");
        if value
            .get("id")
            .and_then(Value::as_str)
            .is_some_and(|id| self.find(id).is_some() || self.speech_item.as_deref() == Some(id))
        {
            let message = format!("Item with id already exists: {}", value["id"]);
            return self.error(
                Some("duplicate_item_id"),
                &message,
                Some("item.id"),
                event_id,
            );
        }
        if value.get("id").is_none() {
            let id = self.new_item_id();
            set(&mut value, "id", Value::String(id));
        }
        set(&mut value, "object", Value::String("realtime.item".into()));
        if value.get("status").is_none() {
            set(&mut value, "status", Value::String("completed".into()));
        }
        // Audio is kept apart and left out of the events, as the API does.
        let mut audio = Vec::new();
        if let Some(Value::Array(parts)) = value.get_mut("content") {
            for part in parts {
                if let Some(text) = part.get("audio").and_then(Value::as_str) {
                    let decoded = Base64Audio::from_base64(text)
                        .decode_pcm16()
                        .unwrap_or_default();
                    audio.extend(decoded);
                    part.as_object_mut().map(|p| p.remove("audio"));
                    if part.get("transcript").is_none() {
                        set(part, "transcript", Value::Null);
                    }
                }
            }
        }
        let previous = if index == 0 {
            Value::Null
        } else {
            Value::String(self.items[index - 1].id().to_owned())
        };
        self.items
            .insert(index, Stored::new(value.clone(), audio, 24_000));
        self.prune_conversation();
        self.emit(
            "conversation.item.added",
            json!({"previous_item_id": previous, "item": value}),
        );
        self.emit(
            "conversation.item.done",
            json!({"previous_item_id": previous, "item": value}),
        );
    }

    fn item_retrieve(&mut self, item_id: &str, event_id: Option<&str>) {
        let Some(index) = self.find(item_id) else {
            let message = format!("Item with item_id not found: {item_id}");
            return self.error(
                Some("item_retrieve_invalid_item_id"),
                &message,
                Some("item_id"),
                event_id,
            );
        };
        let stored = &self.items[index];
        let mut item = stored.item.clone();
        if !stored.audio.is_empty() {
            let audio = if stored.rate == 24_000
                || !matches!(
                    self.output_format(),
                    AudioFormat::Pcmu(_) | AudioFormat::Pcma(_)
                ) {
                Base64Audio::from_pcm16(&stored.audio)
            } else {
                Base64Audio::from_bytes(&encode_g711(&self.output_format(), &stored.audio))
            };
            if let Some(part) = item
                .get_mut("content")
                .and_then(Value::as_array_mut)
                .and_then(|parts| parts.first_mut())
            {
                set(part, "audio", Value::String(audio.into_string()));
            }
        }
        self.emit("conversation.item.retrieved", json!({ "item": item }));
    }

    fn item_delete(&mut self, item_id: &str, event_id: Option<&str>) {
        let Some(index) = self.find(item_id) else {
            let message = format!("Item with item_id not found: {item_id}");
            return self.error(
                Some("item_delete_invalid_item_id"),
                &message,
                Some("item_id"),
                event_id,
            );
        };
        self.items.remove(index);
        self.emit("conversation.item.deleted", json!({ "item_id": item_id }));
    }

    fn item_truncate(
        &mut self,
        item_id: &str,
        content_index: u32,
        audio_end_ms: u64,
        event_id: Option<&str>,
    ) {
        let Some(index) = self.find(item_id) else {
            let message = format!("Item with item_id not found: {item_id}");
            return self.error(
                Some("item_truncate_invalid_item_id"),
                &message,
                Some("item_id"),
                event_id,
            );
        };
        // Audio still being generated counts as the item's audio so far.
        let live: Option<Vec<i16>> = self
            .responses
            .iter()
            .filter_map(|r| r.open.as_ref())
            .find(|open| open.id == item_id)
            .map(|open| open.audio.clone());
        let stored = &mut self.items[index];
        let is_assistant_audio = stored.item["role"] == "assistant"
            && stored.item["content"]
                .get(content_index as usize)
                .is_some_and(|p| matches!(p["type"].as_str(), Some("output_audio" | "audio")));
        if !is_assistant_audio {
            let message = "Only an assistant message's audio content can be truncated.";
            return self.error(
                Some("invalid_value"),
                message,
                Some("content_index"),
                event_id,
            );
        }
        let audio = live.unwrap_or_else(|| stored.audio.clone());
        let rate = u64::from(sane_rate(stored.rate));
        let duration_ms = (audio.len() as u64).saturating_mul(1000) / rate;
        if audio_end_ms > duration_ms {
            let message = format!(
                "Audio content of {duration_ms}ms is shorter than the requested audio_end_ms of {audio_end_ms}ms."
            );
            return self.error(
                Some("invalid_value"),
                &message,
                Some("audio_end_ms"),
                event_id,
            );
        }
        let keep = usize::try_from(audio_end_ms.saturating_mul(rate) / 1000).unwrap_or(usize::MAX);
        stored.audio = audio;
        stored.audio.truncate(keep);
        // The model must forget what the user did not hear: the transcript goes.
        let mut item = stored.item.clone();
        if let Some(part) = item
            .get_mut("content")
            .and_then(Value::as_array_mut)
            .and_then(|parts| parts.get_mut(content_index as usize))
        {
            set(part, "transcript", Value::String(String::new()));
        }
        stored.set_item(item);
        self.emit(
            "conversation.item.truncated",
            json!({"item_id": item_id, "content_index": content_index, "audio_end_ms": audio_end_ms}),
        );
    }

    // --- responses ---------------------------------------------------------------------

    fn response_create(&mut self, params: ResponseParams, event_id: Option<&str>, now: Instant) {
        if self.session.kind == Some(SessionKind::Transcription) {
            let message = "Responses are not supported in transcription sessions.";
            return self.error(Some("invalid_value"), message, Some("type"), event_id);
        }
        if self.responses.len() >= MAX_RESPONSES {
            let message = format!(
                "Too many responses in progress: at most {MAX_RESPONSES} run at once. Wait for one to finish."
            );
            return self.error(Some("too_many_active_responses"), &message, None, event_id);
        }
        let out_of_band = params.conversation.as_deref() == Some("none");
        if !out_of_band && let Some(active) = self.responses.iter().find(|r| r.in_conversation) {
            let message = format!(
                "Conversation already has an active response in progress: {}. Wait until the response is \
                     finished before creating a new one.",
                active.id
            );
            return self.error(
                Some("conversation_already_has_active_response"),
                &message,
                None,
                event_id,
            );
        }
        self.start_response(params, now);
    }

    fn response_cancel(&mut self, response_id: Option<&str>, event_id: Option<&str>) {
        let index = match response_id {
            Some(id) => self.responses.iter().position(|r| r.id == id),
            None => self.responses.iter().position(|r| r.in_conversation),
        };
        match index {
            Some(index) => self.cancel(index, "client_cancelled"),
            None => self.error(
                Some("response_cancel_not_active"),
                "Cancellation failed: no active response found",
                None,
                event_id,
            ),
        }
    }

    /// The text the assistant answers: of the last user message, or after a tool output.
    fn latest_input(&self, params: &ResponseParams) -> (String, Option<(String, String)>) {
        let given: Vec<Value> = params
            .input
            .iter()
            .flatten()
            .filter_map(|i| serde_json::to_value(i).ok())
            .collect();
        fn resolve<'a>(items: &'a [Stored], value: &'a Value) -> Option<&'a Value> {
            if value["type"] == "item_reference" {
                let id = value["id"].as_str()?;
                items.iter().find(|s| s.id() == id).map(|s| &s.item)
            } else {
                Some(value)
            }
        }
        let items: Vec<&Value> = match &params.input {
            Some(_) => given
                .iter()
                .filter_map(|v| resolve(&self.items, v))
                .collect(),
            None => self.items.iter().map(|s| &s.item).collect(),
        };
        if let Some(last) = items.last()
            && last["type"] == "function_call_output"
        {
            let call_id = last["call_id"].as_str().unwrap_or_default();
            let name = items
                .iter()
                .find(|i| i["type"] == "function_call" && i["call_id"] == call_id)
                .and_then(|i| i["name"].as_str())
                .unwrap_or("tool");
            let name = truncate_chars(name, 64).to_owned();
            let output = last["output"].as_str().unwrap_or_default();
            let output = truncate_chars(output, MAX_ECHO_CHARS).to_owned();
            return (String::new(), Some((name, output)));
        }
        let mut text = String::new();
        if let Some(message) = items
            .iter()
            .rev()
            .find(|i| i["type"] == "message" && i["role"] == "user")
        {
            for part in message["content"].as_array().into_iter().flatten() {
                let Some(piece) = part["text"]
                    .as_str()
                    .or_else(|| part["transcript"].as_str())
                else {
                    continue;
                };
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(truncate_chars(piece, MAX_INPUT_CHARS));
                if text.len() >= MAX_INPUT_CHARS {
                    break;
                }
            }
        }
        (truncate_chars(&text, MAX_INPUT_CHARS).to_owned(), None)
    }

    fn choose_reply(
        &self,
        params: &ResponseParams,
        tools: &[Tool],
        tool_choice: Option<&ToolChoice>,
    ) -> Reply {
        let (text, after_tool) = self.latest_input(params);
        for rule in &self.config.script {
            let matched = match &rule.when {
                Match::Any => true,
                Match::Contains(needle) => {
                    after_tool.is_none() && text.to_lowercase().contains(&needle.to_lowercase())
                }
                Match::AfterToolOutput => after_tool.is_some(),
            };
            if matched {
                return rule.reply.clone();
            }
        }
        if let Some((name, output)) = after_tool {
            return Reply::Text(format!("The {name} tool returned {output}."));
        }
        let functions: Vec<&reelthyme_schema::FunctionTool> = tools
            .iter()
            .filter_map(|t| {
                if let Tool::Function(f) = t {
                    Some(f)
                } else {
                    None
                }
            })
            .collect();
        let forced = match tool_choice {
            Some(ToolChoice::Mode(ToolChoiceMode::None)) => {
                return Reply::Text(default_answer(&text));
            }
            Some(ToolChoice::Mode(ToolChoiceMode::Required)) => functions.first().copied(),
            Some(ToolChoice::Specific(specific)) => functions
                .iter()
                .copied()
                .find(|f| Some(&f.name) == specific.name.as_ref().and_then(Option::as_ref)),
            _ => None,
        };
        let lower = text.to_lowercase();
        let chosen = forced.or_else(|| {
            functions.iter().copied().find(|f| {
                f.name
                    .split(['_', '-'])
                    .filter(|w| w.len() > 3)
                    .any(|w| lower.contains(&w.to_lowercase()))
            })
        });
        match chosen {
            Some(function) => Reply::FunctionCall {
                name: function.name.clone(),
                arguments: arguments_for(function.parameters.as_ref(), &text),
            },
            None => Reply::Text(default_answer(&text)),
        }
    }

    fn start_response(&mut self, params: ResponseParams, now: Instant) {
        let id = self.ids.next("resp");
        let in_conversation = params.conversation.as_deref() != Some("none");
        let modalities = params
            .output_modalities
            .clone()
            .or_else(|| self.session.output_modalities.clone())
            .unwrap_or_else(|| vec![Modality::Audio]);
        let audio_out = modalities.contains(&Modality::Audio);
        let tools = params
            .tools
            .clone()
            .or_else(|| self.session.tools.clone())
            .unwrap_or_default();
        let tool_choice = params
            .tool_choice
            .clone()
            .or_else(|| self.session.tool_choice.clone());
        let reply = self.choose_reply(&params, &tools, tool_choice.as_ref());
        let session_output = self
            .session
            .audio
            .as_ref()
            .and_then(|a| a.output.clone())
            .unwrap_or_default();
        let params_output = params
            .audio
            .as_ref()
            .and_then(|a| a.output.clone())
            .unwrap_or_default();
        let format = params_output
            .format
            .or(session_output.format)
            .unwrap_or_else(AudioFormat::pcm);
        let voice = params_output
            .voice
            .or(session_output.voice)
            .unwrap_or_else(|| "marin".into());
        let max_tokens = params
            .max_output_tokens
            .or(self.session.max_output_tokens)
            .unwrap_or(MaxTokens::Inf(reelthyme_schema::Infinite::Inf));
        let token_limit = match max_tokens {
            MaxTokens::Limit(n) => u64::from(n).clamp(1, DEFAULT_MAX_TOKENS),
            _ => DEFAULT_MAX_TOKENS,
        };
        let metadata = params.metadata.clone().flatten();
        let response = json!({
            "object": "realtime.response", "id": id, "status": "in_progress", "status_details": null,
            "output": [], "conversation_id": if in_conversation { Value::String(self.conversation_id.clone()) } else { Value::Null },
            "output_modalities": modalities, "max_output_tokens": max_tokens,
            "audio": {"output": {"format": format, "voice": voice}},
            "usage": null, "metadata": metadata,
        });
        let input_tokens = self
            .items
            .iter()
            .map(|s| s.json_bytes as u64 / 8 + s.audio.len() as u64 / 2_400)
            .sum::<u64>()
            + 20;
        let mut steps = VecDeque::new();
        let speed = self.config.speed;
        // `speed` is clamped where it is set; a step is never scheduled past a year.
        let pace = |d: Duration| {
            Duration::try_from_secs_f64(d.as_secs_f64() / speed)
                .unwrap_or(MAX_STEP_DELAY)
                .min(MAX_STEP_DELAY)
        };
        let mut at = Duration::ZERO;
        let advance = |at: Duration, d: Duration| at.saturating_add(pace(d)).min(MAX_STEP_DELAY);
        steps.push_back((at, Step::Created));
        let mut failure = None;
        let mut truncated = false;
        let mut audio = None;
        // The answer's text, cut at the token limit (and, for speech, at the audio cap).
        let max_chars = usize::try_from(token_limit * CHARS_PER_TOKEN).unwrap_or(usize::MAX);
        let mut limit = |text: String, max_chars: usize| -> String {
            if text.chars().count() > max_chars {
                truncated = true;
                truncate_chars(&text, max_chars).to_owned()
            } else {
                text
            }
        };
        match reply {
            Reply::Fail { code, message } => failure = Some((code, message)),
            Reply::FunctionCall { name, arguments } => {
                let call_id = self.ids.next("call");
                let arguments = limit(arguments, max_chars);
                steps.push_back((at, Step::FunctionAdded { call_id, name }));
                for piece in chunk_text(&arguments, 12) {
                    at = advance(at, Duration::from_millis(10));
                    steps.push_back((at, Step::ArgsDelta(piece)));
                }
                steps.push_back((at, Step::ItemDone));
            }
            Reply::Text(text) | Reply::Echo(text) if !audio_out => {
                let text = limit(text, max_chars);
                steps.push_back((at, Step::MessageAdded));
                steps.push_back((at, Step::PartAdded(PartKind::Text)));
                for word in split_keep_spaces(&text) {
                    at = advance(at, Duration::from_millis(10));
                    steps.push_back((at, Step::TextDelta(word)));
                }
                steps.push_back((at, Step::PartDone));
                steps.push_back((at, Step::ItemDone));
            }
            reply => {
                let (text, echo) = match reply {
                    Reply::Echo(text) => (text, true),
                    Reply::Text(text) => (text, false),
                    _ => unreachable!("handled above"),
                };
                let rate = sane_rate(format.sample_rate().unwrap_or(24_000));
                let max_samples =
                    (MAX_REPLY_AUDIO.as_secs() as usize).saturating_mul(rate as usize);
                // 65 ms of speech per character: the audio cap is a character cap too.
                let spoken_chars = (MAX_REPLY_AUDIO.as_millis() / 65) as usize;
                let text = limit(text, max_chars.min(spoken_chars));
                let echoed = echo
                    .then(|| {
                        self.items
                            .iter()
                            .rev()
                            .find(|s| !s.audio.is_empty() && s.item["role"] == "user")
                            .map(|s| Arc::<[i16]>::from(&s.audio[..s.audio.len().min(max_samples)]))
                    })
                    .flatten();
                let (source, total) = match echoed {
                    Some(samples) => {
                        let total = samples.len();
                        (AudioSource::Echo(samples), total)
                    }
                    None => (
                        AudioSource::Synth(Arc::from(text.as_str()), rate),
                        synth::length(&text, rate).min(max_samples),
                    ),
                };
                audio = Some(source);
                steps.push_back((at, Step::MessageAdded));
                steps.push_back((at, Step::PartAdded(PartKind::Audio)));
                let chunk =
                    ((self.config.audio_chunk.as_secs_f64() * f64::from(rate)) as usize).max(1);
                let chunks = total.div_ceil(chunk);
                let words = split_keep_spaces(&text);
                let mut next_word = 0;
                for k in 0..chunks {
                    let range = k * chunk..((k + 1) * chunk).min(total);
                    let due_words = ((k + 1) * words.len()).div_ceil(chunks.max(1));
                    while next_word < due_words.min(words.len()) {
                        steps.push_back((at, Step::TextDelta(words[next_word].clone())));
                        next_word += 1;
                    }
                    let seconds = range.len() as f64 / f64::from(rate);
                    steps.push_back((at, Step::AudioDelta(range)));
                    at = advance(at, Duration::from_secs_f64(seconds));
                }
                while next_word < words.len() {
                    steps.push_back((at, Step::TextDelta(words[next_word].clone())));
                    next_word += 1;
                }
                steps.push_back((at, Step::PartDone));
                steps.push_back((at, Step::ItemDone));
            }
        }
        steps.push_back((at, Step::Done));
        self.responses.push(Active {
            id,
            in_conversation,
            started: now,
            steps,
            response,
            output: Vec::new(),
            open: None,
            failure,
            output_format: format,
            input_tokens,
            audio,
            truncated,
        });
        self.release(now);
    }

    /// Drops the oldest items past the conversation's caps.
    fn prune_conversation(&mut self) {
        let mut bytes: usize = self.items.iter().map(Stored::bytes).sum();
        let mut drop = 0;
        while self.items.len() - drop > MAX_ITEMS
            || (bytes > MAX_CONVERSATION_BYTES && self.items.len() - drop > 1)
        {
            bytes -= self.items[drop].bytes();
            drop += 1;
        }
        if drop > 0 {
            self.items.drain(..drop);
        }
    }

    /// When the next response step is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.responses
            .iter()
            .filter_map(|r| r.steps.front().map(|(at, _)| due(r.started, *at)))
            .min()
    }

    /// Emits the response steps that are due, up to a batch (the connection comes back for
    /// the rest once it has written these).
    pub(crate) fn release(&mut self, now: Instant) {
        let mut index = 0;
        while index < self.responses.len() && self.out.len() < RELEASE_BATCH {
            let due = self.responses[index]
                .steps
                .front()
                .is_some_and(|(at, _)| due(self.responses[index].started, *at) <= now);
            if !due {
                index += 1;
                continue;
            }
            let (_, step) = self.responses[index]
                .steps
                .pop_front()
                .expect("checked above");
            if self.perform(index, step) {
                // The response finished and was removed; `index` now names the next one.
                continue;
            }
        }
    }

    /// Performs one step; returns whether the response is finished (and removed).
    fn perform(&mut self, index: usize, step: Step) -> bool {
        let response_id = self.responses[index].id.clone();
        let in_conversation = self.responses[index].in_conversation;
        match step {
            Step::Created => {
                let response = self.responses[index].response.clone();
                self.emit("response.created", json!({ "response": response }));
            }
            Step::MessageAdded | Step::FunctionAdded { .. } => {
                let id = self.ids.next("item");
                let item = match step {
                    Step::FunctionAdded { call_id, name } => {
                        json!({"id": id, "object": "realtime.item",
                        "type": "function_call", "status": "in_progress", "name": name, "call_id": call_id,
                        "arguments": ""})
                    }
                    _ => {
                        json!({"id": id, "object": "realtime.item", "type": "message", "status": "in_progress",
                        "role": "assistant", "content": []})
                    }
                };
                let output_index = self.responses[index].output.len();
                self.emit(
                    "response.output_item.added",
                    json!({"response_id": response_id, "output_index": output_index, "item": item}),
                );
                if in_conversation {
                    let previous = self.last_item_id();
                    let rate = self.responses[index]
                        .output_format
                        .sample_rate()
                        .unwrap_or(24_000);
                    self.items.push(Stored::new(item.clone(), Vec::new(), rate));
                    self.prune_conversation();
                    self.emit(
                        "conversation.item.added",
                        json!({"previous_item_id": previous, "item": item}),
                    );
                }
                self.responses[index].open = Some(OpenItem {
                    id,
                    output_index,
                    item,
                    part: None,
                    text: String::new(),
                    audio: Vec::new(),
                    has_audio: false,
                });
            }
            Step::PartAdded(kind) => {
                let part = match kind {
                    PartKind::Text => json!({"type": "text", "text": ""}),
                    PartKind::Audio => json!({"type": "audio", "transcript": ""}),
                };
                let open = self.responses[index]
                    .open
                    .as_mut()
                    .expect("a part opens in an item");
                open.part = Some(kind);
                let (item_id, output_index) = (open.id.clone(), open.output_index);
                self.emit(
                    "response.content_part.added",
                    json!({"response_id": response_id, "item_id": item_id, "output_index": output_index,
                        "content_index": 0, "part": part}),
                );
            }
            Step::TextDelta(delta) => {
                let open = self.responses[index]
                    .open
                    .as_mut()
                    .expect("deltas come in an item");
                open.text.push_str(&delta);
                let kind = if open.part == Some(PartKind::Audio) {
                    "response.output_audio_transcript.delta"
                } else {
                    "response.output_text.delta"
                };
                let (item_id, output_index) = (open.id.clone(), open.output_index);
                self.emit(
                    kind,
                    json!({"response_id": response_id, "item_id": item_id, "output_index": output_index,
                        "content_index": 0, "delta": delta}),
                );
            }
            Step::ArgsDelta(delta) => {
                let open = self.responses[index]
                    .open
                    .as_mut()
                    .expect("deltas come in an item");
                open.text.push_str(&delta);
                let (item_id, output_index) = (open.id.clone(), open.output_index);
                let call_id = open.item["call_id"].clone();
                self.emit(
                    "response.function_call_arguments.delta",
                    json!({"response_id": response_id, "item_id": item_id, "output_index": output_index,
                        "call_id": call_id, "delta": delta}),
                );
            }
            Step::AudioDelta(range) => {
                let samples = self.responses[index]
                    .audio
                    .as_ref()
                    .map(|source| source.samples(range))
                    .unwrap_or_default();
                let format = self.responses[index].output_format.clone();
                let open = self.responses[index]
                    .open
                    .as_mut()
                    .expect("deltas come in an item");
                if in_conversation {
                    open.audio.extend_from_slice(&samples);
                }
                open.has_audio = true;
                let (item_id, output_index) = (open.id.clone(), open.output_index);
                let delta = match format {
                    AudioFormat::Pcmu(_) | AudioFormat::Pcma(_) => {
                        Base64Audio::from_bytes(&encode_g711(&format, &samples))
                    }
                    _ => Base64Audio::from_pcm16(&samples),
                };
                self.audio_produced = true;
                self.emit(
                    "response.output_audio.delta",
                    json!({"response_id": response_id, "item_id": item_id, "output_index": output_index,
                        "content_index": 0, "delta": delta.as_str()}),
                );
            }
            Step::PartDone => self.close_part(index),
            Step::ItemDone => self.close_item(index, "completed"),
            Step::Done => {
                self.finish(index, "completed", None);
                return true;
            }
        }
        false
    }

    fn close_part(&mut self, index: usize) {
        let response_id = self.responses[index].id.clone();
        let Some(open) = self.responses[index].open.as_mut() else {
            return;
        };
        let Some(kind) = open.part.take() else { return };
        let (item_id, output_index, text) = (open.id.clone(), open.output_index, open.text.clone());
        let common = json!({"response_id": response_id, "item_id": item_id, "output_index": output_index, "content_index": 0});
        let part = match kind {
            PartKind::Text => {
                self.emit("response.output_text.done", with(&common, "text", &text));
                json!({"type": "text", "text": text})
            }
            PartKind::Audio => {
                self.emit("response.output_audio.done", common.clone());
                self.emit(
                    "response.output_audio_transcript.done",
                    with(&common, "transcript", &text),
                );
                json!({"type": "audio", "transcript": text})
            }
        };
        self.emit(
            "response.content_part.done",
            with_value(&common, "part", part),
        );
    }

    fn close_item(&mut self, index: usize, status: &str) {
        let response_id = self.responses[index].id.clone();
        let in_conversation = self.responses[index].in_conversation;
        let Some(open) = self.responses[index].open.take() else {
            return;
        };
        let mut item = open.item;
        set(&mut item, "status", Value::String(status.to_owned()));
        if item["type"] == "function_call" {
            set(&mut item, "arguments", Value::String(open.text.clone()));
            self.emit(
                "response.function_call_arguments.done",
                json!({"response_id": response_id, "item_id": open.id, "output_index": open.output_index,
                    "call_id": item["call_id"], "name": item["name"], "arguments": open.text}),
            );
        } else if !open.has_audio && !open.text.is_empty() {
            set(
                &mut item,
                "content",
                json!([{"type": "output_text", "text": open.text}]),
            );
        } else if open.has_audio || item["content"].as_array().is_some_and(Vec::is_empty) {
            set(
                &mut item,
                "content",
                json!([{"type": "output_audio", "transcript": open.text}]),
            );
        }
        if in_conversation && let Some(position) = self.find(&open.id) {
            let previous = if position == 0 {
                Value::Null
            } else {
                Value::String(self.items[position - 1].id().to_owned())
            };
            self.items[position].audio = open.audio;
            self.items[position].set_item(item.clone());
            self.emit(
                "conversation.item.done",
                json!({"previous_item_id": previous, "item": item}),
            );
        }
        self.emit(
            "response.output_item.done",
            json!({"response_id": response_id, "output_index": open.output_index, "item": item}),
        );
        self.responses[index].output.push(item);
    }

    /// Ends a response early: open parts and items are closed, then `response.done`.
    fn cancel(&mut self, index: usize, reason: &str) {
        self.close_part(index);
        self.close_item(index, "incomplete");
        self.finish(index, "cancelled", Some(reason));
    }

    fn finish(&mut self, index: usize, status: &str, reason: Option<&str>) {
        let active = self.responses.remove(index);
        let mut response = active.response;
        let (status, details) = match (&active.failure, reason) {
            (Some((code, message)), _) => (
                "failed",
                json!({"type": "failed", "error": {"type": "server_error", "code": code, "message": message}}),
            ),
            (None, Some(reason)) => (status, json!({"type": status, "reason": reason})),
            (None, None) if active.truncated => (
                "incomplete",
                json!({"type": "incomplete", "reason": "max_output_tokens"}),
            ),
            (None, None) => (status, Value::Null),
        };
        let (mut text_tokens, mut audio_tokens) = (0_u64, 0_u64);
        for item in &active.output {
            let text = item["content"][0]["text"]
                .as_str()
                .or(item["content"][0]["transcript"].as_str())
                .or(item["arguments"].as_str())
                .unwrap_or_default();
            text_tokens += (text.len() as u64).div_ceil(4);
        }
        if let Some(stored) = active
            .output
            .iter()
            .filter_map(|i| i["id"].as_str())
            .filter_map(|id| self.find(id))
            .next()
        {
            audio_tokens = self.items[stored].audio.len() as u64 * 10 / 24_000;
        }
        let output_tokens = text_tokens + audio_tokens;
        set(&mut response, "status", Value::String(status.to_owned()));
        set(&mut response, "status_details", details);
        set(&mut response, "output", Value::Array(active.output));
        set(
            &mut response,
            "usage",
            json!({
                "total_tokens": active.input_tokens + output_tokens, "input_tokens": active.input_tokens,
                "output_tokens": output_tokens,
                "input_token_details": {"text_tokens": active.input_tokens, "audio_tokens": 0, "image_tokens": 0,
                    "cached_tokens": 0, "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}},
                "output_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens},
            }),
        );
        self.emit("response.done", json!({ "response": response }));
        self.emit(
            "rate_limits.updated",
            json!({"rate_limits": [{"name": "tokens", "limit": 40000, "remaining": 40000_u64.saturating_sub(output_tokens),
                "reset_seconds": 0.001}]}),
        );
    }
}

fn with(common: &Value, key: &str, text: &str) -> Value {
    with_value(common, key, Value::String(text.to_owned()))
}

fn with_value(common: &Value, key: &str, value: Value) -> Value {
    let mut out = common.clone();
    set(&mut out, key, value);
    out
}

fn encode_g711(format: &AudioFormat, samples: &[i16]) -> Vec<u8> {
    match format {
        AudioFormat::Pcma(_) => samples.iter().map(|&s| g711::alaw_encode(s)).collect(),
        _ => samples.iter().map(|&s| g711::ulaw_encode(s)).collect(),
    }
}

/// When a step `at` into a response that started at `started` is due.
fn due(started: Instant, at: Duration) -> Instant {
    started
        .checked_add(at)
        .or_else(|| started.checked_add(MAX_STEP_DELAY))
        .unwrap_or(started)
}

fn default_answer(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        "Hello! How can I help you today?".to_owned()
    } else if text.chars().count() > MAX_ECHO_CHARS {
        format!("You said: {}…", truncate_chars(text, MAX_ECHO_CHARS))
    } else {
        format!("You said: {text}")
    }
}

/// JSON arguments for a function from its parameter schema: required strings get the last
/// capitalised word of the user's text (a place name, usually), numbers 1, booleans true.
fn arguments_for(parameters: Option<&Value>, text: &str) -> String {
    let guess = text
        .split(|c: char| !c.is_alphanumeric())
        .rfind(|w| w.chars().next().is_some_and(char::is_uppercase))
        .map_or("unknown", |w| truncate_chars(w, 64));
    let mut args = Map::new();
    if let Some(parameters) = parameters {
        let required: Vec<&str> = parameters["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for name in required {
            let value = match parameters["properties"][name]["type"].as_str() {
                Some("number" | "integer") => json!(1),
                Some("boolean") => json!(true),
                Some("array") => json!([]),
                Some("object") => json!({}),
                _ => json!(guess),
            };
            args.insert(name.to_owned(), value);
        }
    }
    Value::Object(args).to_string()
}

/// Words with their following spaces, so the pieces concatenate back to the text.
fn split_keep_spaces(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c == ' ' && !current.trim().is_empty() {
            current.push(c);
            pieces.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

fn chunk_text(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// Deep merge for `session.update`: objects merge, everything else (arrays, `null`) replaces.
fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                match target.get_mut(&key) {
                    // A tagged object whose `type` changes is a different object: replace it.
                    Some(existing)
                        if existing.is_object()
                            && value.is_object()
                            && (value.get("type").is_none()
                                || existing.get("type") == value.get("type")) =>
                    {
                        merge(existing, value);
                    }
                    _ => {
                        target.insert(key, value);
                    }
                }
            }
        }
        (target, patch) => *target = patch,
    }
}

/// The API's error code, message and `param` for a failed validation, as the real server
/// words them (`unknown_parameter`, `integer_below_min_value`, …).
pub(crate) fn api_error(errors: &ValidationErrors) -> (String, String, Option<String>) {
    let error = &errors.0[0];
    let param = dotted(&error.path);
    let code = match error.rule.as_str() {
        "additionalProperties" => {
            let field = error.message.split('\'').nth(1).unwrap_or_default();
            let param = if param.is_empty() {
                field.to_owned()
            } else {
                format!("{param}.{field}")
            };
            let message = format!("Unknown parameter: '{param}'.");
            return ("unknown_parameter".into(), message, Some(param));
        }
        "minimum" | "exclusiveMinimum" => "integer_below_min_value",
        "maximum" | "exclusiveMaximum" => "integer_above_max_value",
        "required" | "sessionType" => {
            let field = error.message.split('"').nth(1).unwrap_or("type");
            let param = if error.rule == "sessionType" {
                "session.type".to_owned()
            } else if param.is_empty() {
                field.to_owned()
            } else {
                format!("{param}.{field}")
            };
            return (
                "missing_required_parameter".into(),
                format!("Missing required parameter: '{param}'."),
                Some(param),
            );
        }
        "type" => "invalid_type",
        _ => "invalid_value",
    };
    let message = format!("Invalid '{param}': {}", error.message);
    (code.into(), message, Some(param).filter(|p| !p.is_empty()))
}

/// `/session/tools/0/name` → `session.tools[0].name`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        if segment.chars().all(|c| c.is_ascii_digit()) && !segment.is_empty() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment.replace("~1", "/").replace("~0", "~"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_concatenate_back() {
        let text = "You said: hello  there world";
        assert_eq!(split_keep_spaces(text).concat(), text);
        assert_eq!(chunk_text("{\"a\":1}", 3).concat(), "{\"a\":1}");
    }

    #[test]
    fn paths_are_dotted_like_the_api() {
        assert_eq!(
            dotted("/session/audio/input/format/rate"),
            "session.audio.input.format.rate"
        );
        assert_eq!(dotted("/session/tools/0/name"), "session.tools[0].name");
        assert_eq!(dotted(""), "");
    }

    #[test]
    fn arguments_follow_the_schema() {
        let schema = json!({"type": "object", "properties": {"location": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["location", "days"]});
        let args: Value = serde_json::from_str(&arguments_for(
            Some(&schema),
            "What's the weather in Paris today?",
        ))
        .unwrap();
        assert_eq!(args, json!({"location": "Paris", "days": 1}));
    }

    #[test]
    fn merge_replaces_arrays_and_nulls_but_merges_objects() {
        let mut a =
            json!({"audio": {"input": {"format": 1, "turn_detection": {"x": 1}}}, "tools": [1, 2]});
        merge(
            &mut a,
            json!({"audio": {"input": {"turn_detection": null}}, "tools": []}),
        );
        assert_eq!(
            a,
            json!({"audio": {"input": {"format": 1, "turn_detection": null}}, "tools": []})
        );
        let mut b = json!({"format": {"type": "audio/pcm", "rate": 24000}});
        merge(&mut b, json!({"format": {"type": "audio/pcmu"}}));
        assert_eq!(b, json!({"format": {"type": "audio/pcmu"}}));
    }
}

#[cfg(test)]
mod reliability {
    //! Regressions from the reliability review (2026-11-24).

    use super::*;

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
}
