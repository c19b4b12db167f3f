//! The input audio buffer ([`InputBuffer`]): the client's appends, the server's speech,
//! commit and clear events, and input transcriptions.

use std::collections::VecDeque;

use super::audio::base64_decoded_len;
use super::{Applied, Conversation, Ignored, InputTranscription, MAX_COMMITTED};
use crate::client::InputAudioBufferAppend;
use crate::server::{
    BufferCommitted, SpeechStarted, SpeechStopped, TranscriptionCompleted, TranscriptionDelta,
    TranscriptionFailed,
};

/// The input audio buffer, as far as events tell.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputBuffer {
    pub(super) appended_us: u64,
    pub(super) total_appended_us: u64,
    pub(super) speech_started_ms: Option<u64>,
    pub(super) speech_stopped_ms: Option<u64>,
    pub(super) speech_item_id: Option<String>,
    pub(super) speaking: bool,
    pub(super) committed: VecDeque<String>,
    pub(super) clears: u64,
}

impl InputBuffer {
    /// Audio the client appended since the last commit or clear, in ms.
    pub fn appended_ms(&self) -> u64 {
        self.appended_us / 1000
    }

    /// All audio the client appended in this session, in ms.
    pub fn total_appended_ms(&self) -> u64 {
        self.total_appended_us / 1000
    }

    /// The last `speech_started`'s `audio_start_ms`.
    pub fn speech_started_ms(&self) -> Option<u64> {
        self.speech_started_ms
    }

    /// The last `speech_stopped`'s `audio_end_ms` (cleared by the next `speech_started`).
    pub fn speech_stopped_ms(&self) -> Option<u64> {
        self.speech_stopped_ms
    }

    /// The item the current (or last) speech becomes.
    pub fn speech_item_id(&self) -> Option<&str> {
        self.speech_item_id.as_deref()
    }

    /// Whether speech started and has not stopped.
    pub fn is_speaking(&self) -> bool {
        self.speaking
    }

    /// The last committed item ids, oldest first (at most [`MAX_COMMITTED`]).
    pub fn committed(&self) -> impl ExactSizeIterator<Item = &str> {
        self.committed.iter().map(String::as_str)
    }

    /// How many times the server cleared the buffer.
    pub fn clears(&self) -> u64 {
        self.clears
    }
}

impl Conversation {
    // `input_audio_buffer.append`: counted at the session's input format.
    pub(super) fn record_append(&mut self, append: &InputAudioBufferAppend) {
        let bytes = base64_decoded_len(append.audio.as_str());
        if let Some(bps) = self.input_bytes_per_second().filter(|&b| b > 0) {
            let us = bytes.saturating_mul(1_000_000) / u64::from(bps);
            self.input.appended_us = self.input.appended_us.saturating_add(us);
            self.input.total_appended_us = self.input.total_appended_us.saturating_add(us);
        }
    }

    // `conversation.item.input_audio_transcription.delta`.
    pub(super) fn transcription_delta(&mut self, delta: &TranscriptionDelta) -> Applied {
        let budget = &mut self.text_budget.0;
        let Some(item) = self.items.get_mut(delta.item_id.as_str()) else {
            return Applied::Ignored(Ignored::UnknownItem);
        };
        let Some(content) = item.content_mut(delta.content_index.unwrap_or(0)) else {
            return Applied::Ignored(Ignored::Limit);
        };
        if content.transcription == super::item_state::Transcription::None {
            content.set_transcription(InputTranscription::InProgress);
        }
        content.push_text(delta.delta.as_deref().unwrap_or_default(), budget);
        Applied::TranscriptionDelta
    }

    // `conversation.item.input_audio_transcription.completed`.
    pub(super) fn transcription_completed(&mut self, done: &TranscriptionCompleted) -> Applied {
        let budget = &mut self.text_budget.0;
        let Some(item) = self.items.get_mut(done.item_id.as_str()) else {
            return Applied::Ignored(Ignored::UnknownItem);
        };
        let Some(content) = item.content_mut(done.content_index) else {
            return Applied::Ignored(Ignored::Limit);
        };
        content.set_text(&done.transcript, budget);
        content.text_done = true;
        content.set_transcription(InputTranscription::Completed);
        Applied::TranscriptionCompleted
    }

    // `conversation.item.input_audio_transcription.failed`.
    pub(super) fn transcription_failed(&mut self, failed: &TranscriptionFailed) -> Applied {
        let Some(item) = self.items.get_mut(failed.item_id.as_str()) else {
            return Applied::Ignored(Ignored::UnknownItem);
        };
        let Some(content) = item.content_mut(failed.content_index) else {
            return Applied::Ignored(Ignored::Limit);
        };
        content.set_transcription(InputTranscription::Failed(failed.error.clone()));
        Applied::TranscriptionFailed
    }

    // `input_audio_buffer.speech_started`.
    pub(super) fn speech_started(&mut self, started: &SpeechStarted) -> Applied {
        self.input.speaking = true;
        self.input.speech_started_ms = Some(started.audio_start_ms);
        self.input.speech_stopped_ms = None;
        self.input.speech_item_id = Some(started.item_id.clone());
        Applied::SpeechStarted
    }

    // `input_audio_buffer.speech_stopped`.
    pub(super) fn speech_stopped(&mut self, stopped: &SpeechStopped) -> Applied {
        self.input.speaking = false;
        self.input.speech_stopped_ms = Some(stopped.audio_end_ms);
        self.input.speech_item_id = Some(stopped.item_id.clone());
        Applied::SpeechStopped
    }

    // `input_audio_buffer.committed`.
    pub(super) fn buffer_committed(&mut self, committed: &BufferCommitted) -> Applied {
        self.input.appended_us = 0;
        self.input.speaking = false;
        if self.input.committed.len() >= MAX_COMMITTED {
            self.input.committed.pop_front();
        }
        self.input.committed.push_back(committed.item_id.clone());
        Applied::BufferCommitted
    }

    // `input_audio_buffer.cleared`.
    pub(super) fn buffer_cleared(&mut self) -> Applied {
        self.input.appended_us = 0;
        self.input.speaking = false;
        self.input.clears += 1;
        Applied::BufferCleared
    }
}
