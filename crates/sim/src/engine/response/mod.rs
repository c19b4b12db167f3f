//! Responses: each is planned up front as a queue of steps on its own clock
//! (`plan`), then released step by step as the clock reaches them (`perform`).

mod perform;
mod plan;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use reelthyme_schema::{AudioFormat, ResponseParams, SessionKind};
use serde_json::Value;
use tokio::time::Instant;

use super::Engine;
use crate::synth;

/// Responses running at once: the conversation's and the out-of-band ones.
pub(crate) const MAX_RESPONSES: usize = 16;
/// The most events one `release` emits, so the connection can pace a backlog.
const RELEASE_BATCH: usize = 64;
/// The furthest ahead a response step is scheduled.
const MAX_STEP_DELAY: Duration = Duration::from_secs(365 * 24 * 3600);

/// Where a response's audio comes from, a chunk at a time.
#[derive(Debug)]
pub(super) enum AudioSource {
    /// Synthesized from this text at this rate.
    Synth(Arc<str>, u32),
    /// The user's own audio (an echo).
    Echo(Arc<[i16]>),
    /// This text spoken with a recorded voice at this rate (`SimConfig::voice_samples`).
    Voice(synth::Voice, Arc<str>, u32),
}

impl AudioSource {
    pub(super) fn samples(&self, range: std::ops::Range<usize>) -> Vec<i16> {
        match self {
            Self::Synth(text, rate) => synth::speak_range(text, *rate, range),
            Self::Echo(audio) => audio.get(range).map(<[i16]>::to_vec).unwrap_or_default(),
            Self::Voice(voice, text, rate) => voice.speak_range(text, *rate, range),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PartKind {
    Text,
    Audio,
}

/// What a response will produce, released step by step on its clock.
#[derive(Debug)]
pub(in crate::engine) enum Step {
    Created,
    MessageAdded,
    FunctionAdded {
        call_id: String,
        name: String,
    },
    McpApprovalAdded {
        server_label: String,
        name: String,
        arguments: String,
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
pub(in crate::engine) struct OpenItem {
    pub(in crate::engine) id: String,
    pub(in crate::engine) output_index: usize,
    pub(in crate::engine) item: Value,
    pub(in crate::engine) part: Option<PartKind>,
    pub(in crate::engine) text: String,
    /// The audio so far, for truncation and the stored item (in-conversation items only:
    /// out-of-band ones are never stored).
    pub(in crate::engine) audio: Vec<i16>,
    pub(in crate::engine) has_audio: bool,
}

#[derive(Debug)]
pub(in crate::engine) struct Active {
    pub(in crate::engine) id: String,
    pub(in crate::engine) in_conversation: bool,
    pub(in crate::engine) started: Instant,
    pub(in crate::engine) steps: VecDeque<(Duration, Step)>,
    pub(in crate::engine) response: Value,
    pub(in crate::engine) output: Vec<Value>,
    pub(in crate::engine) open: Option<OpenItem>,
    pub(in crate::engine) failure: Option<(String, String)>,
    pub(in crate::engine) output_format: AudioFormat,
    pub(in crate::engine) input_tokens: super::usage::InputTokens,
    /// The samples of audio spoken so far, for the usage.
    pub(in crate::engine) audio_samples: usize,
    pub(in crate::engine) audio: Option<AudioSource>,
    /// Cut short by `max_output_tokens` (or the simulator's own caps).
    pub(in crate::engine) truncated: bool,
}

impl Engine {
    pub(in crate::engine) fn response_create(
        &mut self,
        params: ResponseParams,
        event_id: Option<&str>,
        now: Instant,
    ) {
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

    pub(in crate::engine) fn response_cancel(
        &mut self,
        response_id: Option<&str>,
        event_id: Option<&str>,
    ) {
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

    /// When the next response step (or held-back transcription) is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.responses
            .iter()
            .filter_map(|r| r.steps.front().map(|(at, _)| due(r.started, *at)))
            .chain(self.next_transcription_due())
            .min()
    }

    /// Emits the response steps that are due, up to a batch (the connection comes back for
    /// the rest once it has written these).
    pub(crate) fn release(&mut self, now: Instant) {
        self.release_transcriptions(now);
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
            let Some((_, step)) = self.responses[index].steps.pop_front() else {
                index += 1;
                continue;
            };
            if self.perform(index, step) {
                // The response finished and was removed; `index` now names the next one.
                continue;
            }
        }
    }
}

/// When a step `at` into a response that started at `started` is due.
fn due(started: Instant, at: Duration) -> Instant {
    started
        .checked_add(at)
        .or_else(|| started.checked_add(MAX_STEP_DELAY))
        .unwrap_or(started)
}
