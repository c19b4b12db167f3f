//! What the model knows about an item: [`ItemState`], its content parts ([`ContentState`],
//! [`InputTranscription`]) and its function call ([`FunctionCall`]).

use super::util::floor_char_boundary;
use super::{MAX_CONTENT_PARTS, MAX_TEXT_BYTES};
use crate::item::{Item, Role};
use crate::server::TranscriptionError;

/// The state of an input audio transcription.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub enum InputTranscription {
    /// No transcription event has arrived.
    #[default]
    None,
    /// Deltas arrived; not finished.
    InProgress,
    /// `…input_audio_transcription.completed`.
    Completed,
    /// `…input_audio_transcription.failed`, with the server's reason.
    Failed(TranscriptionError),
}

/// One content part of an item: its text or transcript, its audio counted, its truncation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContentState {
    pub(super) text: String,
    pub(super) has_text: bool,
    pub(super) text_done: bool,
    pub(super) dropped_text: u64,
    pub(super) audio_bytes: u64,
    pub(super) bytes_per_second: u32,
    pub(super) audio_done: bool,
    pub(super) truncated_ms: Option<u64>,
    // Boxed, and absent while `None`: a failure's reason is large and rare, and most parts
    // are never transcribed.
    pub(super) transcription: Option<Box<InputTranscription>>,
}

// What a part without a transcription event answers.
static NO_TRANSCRIPTION: InputTranscription = InputTranscription::None;

impl ContentState {
    /// The text (text parts) or transcript (audio parts): the latest full version the
    /// server sent, plus the deltas since. `None` until any arrived (user audio before its
    /// transcription). After a truncation this is what was generated, not what was heard
    /// (see [`Self::truncated_at_ms`]).
    pub fn text(&self) -> Option<&str> {
        self.has_text.then_some(self.text.as_str())
    }

    /// Whether the server said the text is complete.
    pub fn text_done(&self) -> bool {
        self.text_done
    }

    /// Bytes of delta text dropped at the limits.
    pub fn dropped_text_bytes(&self) -> u64 {
        self.dropped_text
    }

    /// Audio bytes counted (output deltas, or audio in a full item).
    pub fn audio_bytes(&self) -> u64 {
        self.audio_bytes
    }

    /// The audio counted, in milliseconds, when its format is known.
    pub fn audio_ms(&self) -> Option<u64> {
        (self.bytes_per_second > 0)
            .then(|| self.audio_bytes.saturating_mul(1000) / u64::from(self.bytes_per_second))
    }

    /// Whether `response.output_audio.done` arrived for this part.
    pub fn audio_done(&self) -> bool {
        self.audio_done
    }

    /// `conversation.item.truncated`'s `audio_end_ms`: the audio was cut there, and the
    /// server dropped the transcript, so [`Self::text`] is no longer what was heard.
    pub fn truncated_at_ms(&self) -> Option<u64> {
        self.truncated_ms
    }

    /// The input transcription's state (user audio parts).
    pub fn transcription(&self) -> &InputTranscription {
        self.transcription.as_deref().unwrap_or(&NO_TRANSCRIPTION)
    }

    pub(super) fn set_transcription(&mut self, state: InputTranscription) {
        self.transcription = match state {
            InputTranscription::None => None,
            state => Some(Box::new(state)),
        };
    }

    // Appends delta text within both limits; returns whether anything was kept.
    pub(super) fn push_text(&mut self, delta: &str, budget: &mut usize) -> bool {
        self.has_text = true;
        let room = MAX_TEXT_BYTES.saturating_sub(self.text.len()).min(*budget);
        let take = floor_char_boundary(delta, room);
        self.text.push_str(&delta[..take]);
        *budget -= take;
        self.dropped_text += (delta.len() - take) as u64;
        take > 0 || delta.is_empty()
    }

    // Replaces the text with a full version; the budget gets the old text back, and the
    // new one is charged even past the budget (it is bounded by the message size).
    pub(super) fn set_text(&mut self, text: &str, budget: &mut usize) {
        *budget = budget.saturating_add(self.text.len());
        self.text.clear();
        self.text.push_str(text);
        *budget = budget.saturating_sub(self.text.len());
        self.has_text = true;
    }
}

/// A function call's state, accumulated from its item and argument events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FunctionCall {
    pub(super) call_id: Option<String>,
    pub(super) name: Option<String>,
    pub(super) arguments: String,
    pub(super) dropped: u64,
    pub(super) done: bool,
    // Whether `FunctionCallReady` was reported.
    pub(super) reported: bool,
}

impl FunctionCall {
    /// Pairs the call with its `function_call_output`.
    pub fn call_id(&self) -> Option<&str> {
        self.call_id.as_deref()
    }

    /// The function's name.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The arguments (JSON text), whole once [`Self::is_done`].
    pub fn arguments(&self) -> &str {
        &self.arguments
    }

    /// Whether the arguments are complete.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Bytes of argument deltas dropped at the limits.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped
    }
}

/// An item and what the model knows about it.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemState {
    pub(super) id: String,
    // Boxed (as is the function call): an item is large inline and the map of items
    // holds every one of them, with room to grow.
    pub(super) item: Box<Item>,
    pub(super) previous_item_id: Option<String>,
    pub(super) response_id: Option<String>,
    pub(super) output_index: Option<u32>,
    pub(super) in_conversation: bool,
    pub(super) done: bool,
    pub(super) retrieved: bool,
    pub(super) contents: Vec<ContentState>,
    pub(super) function_call: Option<Box<FunctionCall>>,
}

impl ItemState {
    /// The item's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The latest full item the server sent (or the client's, before the server's echo),
    /// with audio removed. Text in it may be older than [`Self::content`]'s.
    pub fn item(&self) -> &Item {
        &self.item
    }

    /// The message's role, for messages.
    pub fn role(&self) -> Option<&Role> {
        match &*self.item {
            Item::Message(m) => Some(&m.role),
            _ => None,
        }
    }

    /// The `previous_item_id` the server last gave for it.
    pub fn previous_item_id(&self) -> Option<&str> {
        self.previous_item_id.as_deref()
    }

    /// The response that produced it.
    pub fn response_id(&self) -> Option<&str> {
        self.response_id.as_deref()
    }

    /// Its index in its response's output.
    pub fn output_index(&self) -> Option<u32> {
        self.output_index
    }

    /// Whether it is in the default conversation (not an out-of-band response's output).
    pub fn in_conversation(&self) -> bool {
        self.in_conversation
    }

    /// Whether a `.done` event (or a retrieval) said it is complete.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether `conversation.item.retrieved` described it.
    pub fn is_retrieved(&self) -> bool {
        self.retrieved
    }

    /// The state of content part `index`.
    pub fn content(&self, index: u32) -> Option<&ContentState> {
        self.contents.get(index as usize)
    }

    /// Every content part's state, by index.
    pub fn contents(&self) -> &[ContentState] {
        &self.contents
    }

    /// The text of all parts, joined (a message's text or transcripts).
    pub fn text(&self) -> String {
        self.contents
            .iter()
            .filter_map(ContentState::text)
            .collect()
    }

    /// The function call, for `function_call` items.
    pub fn function_call(&self) -> Option<&FunctionCall> {
        self.function_call.as_deref()
    }

    pub(super) fn content_mut(&mut self, index: u32) -> Option<&mut ContentState> {
        content_at(&mut self.contents, index)
    }
}

// Part `index`, created (with the ones before it) on first use, within the limit.
pub(super) fn content_at(
    contents: &mut Vec<ContentState>,
    index: u32,
) -> Option<&mut ContentState> {
    let index = index as usize;
    if index >= MAX_CONTENT_PARTS {
        return None;
    }
    if index >= contents.len() {
        contents.resize_with(index + 1, ContentState::default);
    }
    contents.get_mut(index)
}
