//! The input audio buffer: appends (decoded from the session's format), server VAD in audio
//! time, commits (by VAD or by the client) and their transcription.

use std::time::Duration;

use reelthyme_schema::{Base64Audio, ResponseParams, SessionKind};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::reply::split_keep_spaces;
use super::response::MAX_RESPONSES;
use super::session::merge;
use super::{Engine, Stored, codec, set, usage};
use crate::vad::VadEvent;

/// The input audio buffer holds at most the service's one documented size, 15 MiB of
/// 16-bit audio; appends past it get an `error`.
const MAX_BUFFER_SAMPLES: usize = reelthyme_schema::MAX_APPEND_BYTES / 2;
/// The transcription's delta event, which carries the deltas' padding.
const TRANSCRIPTION_DELTA: &str = "conversation.item.input_audio_transcription.delta";
/// Transcriptions held back by a transcript delay at once; past it the oldest is delivered
/// early, so a client committing fast cannot grow the queue without bound.
const MAX_HELD_TRANSCRIPTIONS: usize = 256;
/// The longest a transcription is held back.
const MAX_TRANSCRIPT_DELAY: Duration = Duration::from_secs(365 * 24 * 3600);

impl Engine {
    /// `input_audio_buffer.clear`.
    pub(super) fn clear_buffer(&mut self) {
        self.buffer.clear();
        self.vad.reset(self.timeline);
        self.speech_item = None;
        self.emit("input_audio_buffer.cleared", json!({}));
    }

    fn decode_input(&self, audio: &Base64Audio) -> Result<Vec<i16>, String> {
        codec::decode(&self.input_format(), audio)
    }

    pub(super) fn append(&mut self, audio: &Base64Audio, event_id: Option<&str>, now: Instant) {
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
        self.append_samples(&samples, event_id, now);
    }

    /// Audio from the incoming media track (WebRTC), at `rate`: into the input buffer as
    /// an append's would go, at the input format's rate (over WebRTC the format fields do
    /// not apply to the track; the buffer keeps the session's rate for its arithmetic).
    pub(crate) fn track_input(&mut self, rate: u32, samples: &[i16], now: Instant) {
        let to = self.input_rate();
        if rate == to || rate == 0 {
            self.track_in = None;
            return self.append_samples(samples, None, now);
        }
        if self
            .track_in
            .as_ref()
            .is_none_or(|r| r.from_rate() != rate || r.to_rate() != to)
        {
            self.track_in = reelthyme_audio::Resampler::new(rate, to).ok();
        }
        let Some(resampler) = self.track_in.as_mut() else {
            return;
        };
        let mut input = Vec::with_capacity(samples.len());
        reelthyme_audio::i16_to_f32(samples, &mut input);
        let mut out = Vec::with_capacity(input.len());
        resampler.process(&input, &mut out);
        let mut converted = Vec::with_capacity(out.len());
        reelthyme_audio::f32_to_i16(&out, &mut converted);
        self.append_samples(&converted, None, now);
    }

    fn append_samples(&mut self, samples: &[i16], event_id: Option<&str>, now: Instant) {
        if self.buffer.len().saturating_add(samples.len()) > MAX_BUFFER_SAMPLES {
            let message = format!(
                "The input audio buffer is full: it holds at most {} MiB of audio. Commit or clear it.",
                reelthyme_schema::MAX_APPEND_BYTES >> 20
            );
            return self.error(Some("invalid_value"), &message, Some("audio"), event_id);
        }
        self.buffer.extend_from_slice(samples);
        self.timeline += samples.len() as u64;
        let Some((settings, create_response, interrupt)) = self.vad_settings() else {
            // Without VAD the detector keeps its place, so turning it on later reports
            // positions on the session's timeline.
            self.vad.reset(self.timeline);
            return;
        };
        let mut events = Vec::new();
        self.vad.feed(samples, settings, &mut events);
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
                    self.commit(item_id, committed, now);
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

    pub(super) fn manual_commit(&mut self, event_id: Option<&str>, now: Instant) {
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
        self.commit(item_id, samples, now);
    }

    fn commit(&mut self, item_id: String, samples: Vec<i16>, now: Instant) {
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
        self.transcribe(&item_id, seconds, now);
    }

    fn transcribe(&mut self, item_id: &str, seconds: f64, now: Instant) {
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
        // Log probabilities come only when the session asked for them with `include`.
        let logprobs = self
            .session
            .include
            .iter()
            .flatten()
            .flatten()
            .any(|field| field == "item.input_audio_transcription.logprobs");
        let words = split_keep_spaces(&transcript);
        let mut events = Vec::with_capacity(words.len() + 1);
        for word in &words {
            let mut delta = json!({"item_id": item_id, "content_index": 0, "delta": word});
            if logprobs {
                set(&mut delta, "logprobs", json!([logprob(word)]));
            }
            events.push((TRANSCRIPTION_DELTA, delta));
        }
        let usage = usage::transcription(seconds, &transcript);
        let mut completed = json!({"item_id": item_id, "content_index": 0,
            "transcript": transcript, "usage": usage});
        if logprobs {
            let all: Vec<Value> = words.iter().map(|word| logprob(word)).collect();
            set(&mut completed, "logprobs", Value::Array(all));
        }
        events.push((
            "conversation.item.input_audio_transcription.completed",
            completed,
        ));
        self.deliver_transcription(events, now);
        // The stored item has its transcript at once, delayed delivery or not: the reply is
        // chosen from what the user said, as the model hears the audio itself.
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
}

impl Engine {
    /// Emits a transcription's events now, or holds them back by the configured delay.
    fn deliver_transcription(&mut self, events: Vec<(&'static str, Value)>, now: Instant) {
        let delay = self.config.transcript_delay.min(MAX_TRANSCRIPT_DELAY);
        if delay.is_zero() {
            return self.emit_transcription(events);
        }
        if self.held_transcriptions.len() >= MAX_HELD_TRANSCRIPTIONS
            && let Some((_, oldest)) = self.held_transcriptions.pop_front()
        {
            self.emit_transcription(oldest);
        }
        let due = now.checked_add(delay).unwrap_or(now);
        self.held_transcriptions.push_back((due, events));
    }

    fn emit_transcription(&mut self, events: Vec<(&'static str, Value)>) {
        for (kind, fields) in events {
            if kind == TRANSCRIPTION_DELTA {
                self.emit_delta(kind, fields);
            } else {
                self.emit(kind, fields);
            }
        }
    }

    /// When the next held-back transcription is due (they are held in due order: the
    /// delay is the same for all).
    pub(super) fn next_transcription_due(&self) -> Option<Instant> {
        self.held_transcriptions.front().map(|(due, _)| *due)
    }

    /// Emits the held-back transcriptions that are due.
    pub(super) fn release_transcriptions(&mut self, now: Instant) {
        while self
            .held_transcriptions
            .front()
            .is_some_and(|(due, _)| *due <= now)
        {
            if let Some((_, events)) = self.held_transcriptions.pop_front() {
                self.emit_transcription(events);
            }
        }
    }
}

/// A transcript token's log probability, as the service lists them: the token, its bytes,
/// and a made-up but stable value (longer words are a little less certain).
fn logprob(token: &str) -> Value {
    let logprob = -0.001 * token.trim().chars().count() as f64;
    json!({"token": token, "logprob": logprob, "bytes": token.as_bytes()})
}
