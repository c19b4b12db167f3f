//! What the model knows about an item: [`ItemState`], its content parts ([`ContentState`],
//! [`InputTranscription`]) and its function call ([`FunctionCall`]).

use std::sync::OnceLock;

use super::util::floor_char_boundary;
use super::{MAX_CONTENT_PARTS, MAX_TEXT_BYTES};
use crate::extra::Unknown;
use crate::item::{ContentPart, Item, Role};
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
    // A failure's reason is large and rare: only it is boxed.
    pub(super) transcription: Transcription,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(super) enum Transcription {
    #[default]
    None,
    InProgress,
    Completed,
    Failed(Box<InputTranscription>),
}

// What the states without a payload answer.
static NO_TRANSCRIPTION: InputTranscription = InputTranscription::None;
static TRANSCRIBING: InputTranscription = InputTranscription::InProgress;
static TRANSCRIBED: InputTranscription = InputTranscription::Completed;

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
        match &self.transcription {
            Transcription::None => &NO_TRANSCRIPTION,
            Transcription::InProgress => &TRANSCRIBING,
            Transcription::Completed => &TRANSCRIBED,
            Transcription::Failed(failed) => failed,
        }
    }

    pub(super) fn set_transcription(&mut self, state: InputTranscription) {
        self.transcription = match state {
            InputTranscription::None => Transcription::None,
            InputTranscription::InProgress => Transcription::InProgress,
            InputTranscription::Completed => Transcription::Completed,
            state => Transcription::Failed(Box::new(state)),
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
    pub(super) id: super::Id,
    // What kind of item it is, read without rebuilding a finished item.
    pub(super) kind: Kind,
    // The server's item: whole while it can still change, compact once done.
    pub(super) item: StoredItem,
    pub(super) previous_item_id: Option<super::Id>,
    pub(super) response_id: Option<super::Id>,
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
    ///
    /// A finished item is kept compactly — without its id, and without the texts (and a
    /// call's arguments) the model holds anyway, which [`Self::content`] and
    /// [`Self::function_call`] answer — and rebuilt on the first call, once. Where the
    /// model's text changed after the item was done (a later `.done` event), the rebuilt
    /// item carries the model's text. [`Self::role`], [`Self::function_call`] and the
    /// other queries never need it.
    pub fn item(&self) -> &Item {
        match &self.item {
            StoredItem::Live(item) => item,
            StoredItem::Done(done) => done.whole.get_or_init(|| {
                Box::new(done.rebuild(&self.id, &self.contents, self.function_call.as_deref()))
            }),
        }
    }

    /// The message's role, for messages.
    pub fn role(&self) -> Option<&Role> {
        match &self.kind {
            Kind::Message(role) => Some(role),
            _ => None,
        }
    }

    /// The `call_id` a `function_call_output` item answers.
    pub fn output_call_id(&self) -> Option<&str> {
        match &self.kind {
            Kind::Output(call_id) => Some(call_id),
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
        self.item.forget_rebuilt();
        content_at(&mut self.contents, index)
    }

    pub(super) fn function_call_mut(&mut self) -> &mut FunctionCall {
        self.item.forget_rebuilt();
        self.function_call.get_or_insert_with(Box::default)
    }

    // Keeps the server's item (audio already removed): compactly when the item is done.
    pub(super) fn store(&mut self, item: Item) {
        self.kind = Kind::of(&item);
        self.item = if self.done {
            StoredItem::done(
                item,
                &self.id,
                &self.contents,
                self.function_call.as_deref(),
            )
        } else {
            StoredItem::Live(Box::new(item))
        };
    }

    // Whether `item` (audio removed) differs from the stored one, without rebuilding it.
    pub(super) fn differs(&self, item: &Item) -> bool {
        match &self.item {
            StoredItem::Live(stored) => **stored != *item,
            StoredItem::Done(_) => {
                StoredItem::done(
                    item.clone(),
                    &self.id,
                    &self.contents,
                    self.function_call.as_deref(),
                ) != self.item
            }
        }
    }
}

/// What kind an item is, kept beside a compact one so that queries on the audio, mirror
/// and tool paths never rebuild it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    Message(Role),
    FunctionCall,
    Output(Box<str>),
    Other,
}

impl Kind {
    pub(super) fn of(item: &Item) -> Self {
        match item {
            Item::Message(m) => Self::Message(m.role.clone()),
            Item::FunctionCall(_) => Self::FunctionCall,
            Item::FunctionCallOutput(o) => Self::Output(o.call_id.as_str().into()),
            _ => Self::Other,
        }
    }
}

/// How the server's item is kept: whole (boxed) while it can change, compact once done. A
/// finished item is history, kept for the session: its struct is a few hundred bytes of
/// mostly empty options, and its transcript, arguments and id are already held beside it
/// (by the content states, the function call and the map), so it is kept as JSON without
/// them.
#[derive(Debug, Clone)]
pub(super) enum StoredItem {
    Live(Box<Item>),
    Done(Box<FinishedItem>),
}

#[derive(Debug)]
pub(super) struct FinishedItem {
    // The item as JSON, without what the flags below say was taken out.
    json: Box<str>,
    // Bit `i`: content part `i`'s text was the model's (`ContentState::text`), taken out.
    texts_taken: u64,
    // Whether the id (the key it is held under) was taken out.
    id_taken: bool,
    // Whether a function call's arguments were the model's (`FunctionCall::arguments`).
    arguments_taken: bool,
    // The item rebuilt, on the first `ItemState::item`.
    whole: OnceLock<Box<Item>>,
}

impl Clone for FinishedItem {
    fn clone(&self) -> Self {
        Self {
            whole: self.whole.clone(),
            ..self.clone_compact()
        }
    }
}

impl FinishedItem {
    fn clone_compact(&self) -> Self {
        Self {
            json: self.json.clone(),
            texts_taken: self.texts_taken,
            id_taken: self.id_taken,
            arguments_taken: self.arguments_taken,
            whole: OnceLock::new(),
        }
    }

    fn rebuild(&self, id: &str, contents: &[ContentState], call: Option<&FunctionCall>) -> Item {
        let mut item: Item = serde_json::from_str(&self.json)
            .unwrap_or_else(|_| Item::Unknown(Unknown(serde_json::Map::new())));
        if self.id_taken
            && let Some(slot) = id_slot(&mut item)
        {
            *slot = Some(id.to_owned());
        }
        match &mut item {
            Item::Message(message) => {
                for (index, part) in message.content.iter_mut().enumerate().take(64) {
                    if self.texts_taken & (1 << index) != 0
                        && let Some(text) = text_slot(part)
                    {
                        let model = contents.get(index).and_then(ContentState::text);
                        model.unwrap_or_default().clone_into(text);
                    }
                }
            }
            Item::FunctionCall(function) if self.arguments_taken => {
                call.map(FunctionCall::arguments)
                    .unwrap_or_default()
                    .clone_into(&mut function.arguments);
            }
            _ => {}
        }
        item
    }
}

impl StoredItem {
    fn done(
        mut item: Item,
        id: &str,
        contents: &[ContentState],
        call: Option<&FunctionCall>,
    ) -> Self {
        let id_taken = id_slot(&mut item).is_some_and(|slot| {
            let same = slot.as_deref() == Some(id);
            if same {
                *slot = None;
            }
            same
        });
        let mut texts_taken = 0;
        let mut arguments_taken = false;
        match &mut item {
            Item::Message(message) => {
                for (index, part) in message.content.iter_mut().enumerate().take(64) {
                    let model = contents.get(index).and_then(ContentState::text);
                    if let Some(text) = text_slot(part)
                        && model == Some(text.as_str())
                    {
                        text.clear();
                        texts_taken |= 1 << index;
                    }
                }
            }
            Item::FunctionCall(function)
                if call.is_some_and(|c| c.arguments == function.arguments) =>
            {
                function.arguments.clear();
                arguments_taken = true;
            }
            _ => {}
        }
        let Ok(json) = serde_json::to_string(&item) else {
            return Self::Live(Box::new(item));
        };
        Self::Done(Box::new(FinishedItem {
            json: json.into_boxed_str(),
            texts_taken,
            id_taken,
            arguments_taken,
            whole: OnceLock::new(),
        }))
    }

    // A rebuilt item may carry text the model has since changed: it is rebuilt again.
    pub(super) fn forget_rebuilt(&mut self) {
        if let Self::Done(done) = self
            && done.whole.get().is_some()
        {
            done.whole = OnceLock::new();
        }
    }
}

// Equal when they keep the same item (whether it was rebuilt does not matter).
impl PartialEq for StoredItem {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Live(a), Self::Live(b)) => a == b,
            (Self::Done(a), Self::Done(b)) => {
                a.json == b.json
                    && a.texts_taken == b.texts_taken
                    && a.id_taken == b.id_taken
                    && a.arguments_taken == b.arguments_taken
            }
            _ => false,
        }
    }
}

// Where an item keeps its id, for the kinds that keep it in a field.
fn id_slot(item: &mut Item) -> Option<&mut Option<String>> {
    match item {
        Item::Message(m) => Some(&mut m.id),
        Item::FunctionCall(f) => Some(&mut f.id),
        Item::FunctionCallOutput(f) => Some(&mut f.id),
        _ => None,
    }
}

// Where a content part keeps its text or transcript, when it has one.
fn text_slot(part: &mut ContentPart) -> Option<&mut String> {
    match part {
        ContentPart::InputText(t) | ContentPart::OutputText(t) | ContentPart::Text(t) => {
            t.text.as_mut()
        }
        ContentPart::InputAudio(a) | ContentPart::OutputAudio(a) | ContentPart::Audio(a) => {
            a.transcript.as_mut()?.as_mut()
        }
        _ => None,
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
        // Exactly: most items have one part, and a Vec's first allocation holds four.
        contents.reserve_exact(index + 1 - contents.len());
        contents.resize_with(index + 1, ContentState::default);
    }
    contents.get_mut(index)
}
