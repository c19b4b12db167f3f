//! The conversation as the server last described it: a pure, I/O-free model fed with the
//! events of one session, in the order they crossed the wire.
//!
//! Every layer above the wire (audio, the reconnect mirror, the response sequencer, tools,
//! metrics) needs the same facts — which response is running, which format its audio is
//! in, which items exist and in which order, what was said and heard — and each would
//! otherwise keep a partial copy of its own. [`Conversation`] is that one copy. It is fed
//! with [`Conversation::apply_server`] for every server event and
//! [`Conversation::apply_client`] for every client event the application sent, and it
//! answers queries; it never sends, sleeps or logs.
//!
//! The rules are in [`Conversation`]'s documentation.

use std::collections::{HashMap, VecDeque};

use crate::client::ClientEvent;
use crate::item::{AudioContent, ContentPart, Item, Role};
use crate::response::{Response, ResponseParams, Usage};
use crate::server::{ItemEvent, ServerEvent, TranscriptionError};
use crate::session::{AudioFormat, SessionConfig};

/// Items kept at most; the oldest is evicted for a new one.
pub const MAX_ITEMS: usize = 4096;
/// Responses kept at most; the oldest is evicted for a new one.
pub const MAX_RESPONSES: usize = 4096;
/// Content parts tracked per item; deltas for later indices are ignored.
pub const MAX_CONTENT_PARTS: usize = 64;
/// Bytes of text accumulated from deltas per content part (or function call); more is
/// dropped and counted. A `.done` event's full text is kept whole (it is bounded by the
/// transport's message size).
pub const MAX_TEXT_BYTES: usize = 256 * 1024;
/// Bytes of delta text accumulated over the whole conversation.
pub const MAX_TOTAL_TEXT_BYTES: usize = 16 * 1024 * 1024;
/// Waiting `conversation.item.create` requests, and waiting `response.create` requests,
/// kept at most each; the oldest is dropped.
pub const MAX_PENDING: usize = 64;
/// Committed input item ids remembered.
pub const MAX_COMMITTED: usize = 64;

/// What an event changed, for the layers to match on; the event itself has the ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Applied {
    /// `session.created`: a new conversation started.
    SessionCreated,
    /// `session.updated`: the session changed.
    SessionUpdated,
    /// An item entered the model (and, unless out-of-band, the conversation).
    ItemAdded,
    /// A known item was replaced by the server's newer version.
    ItemUpdated,
    /// An item is complete (`conversation.item.done`, `response.output_item.done`).
    ItemDone,
    /// `conversation.item.retrieved`: the server's full item replaced ours.
    ItemRetrieved,
    /// `conversation.item.truncated`.
    ItemTruncated,
    /// `conversation.item.deleted`.
    ItemDeleted,
    /// A content part started (`response.content_part.added`).
    ContentAdded,
    /// Text, transcript or audio of a content part grew.
    ContentDelta,
    /// A content part's text, transcript or audio is complete.
    ContentDone,
    /// An input transcription grew.
    TranscriptionDelta,
    /// An input transcription completed.
    TranscriptionCompleted,
    /// An input transcription failed.
    TranscriptionFailed,
    /// A function call's arguments grew.
    FunctionCallDelta,
    /// A function call became complete, for the first time (its arguments' `.done` or
    /// its item's `.done`, whichever came first): run the tool now. Reported once per call.
    FunctionCallReady,
    /// `response.created`.
    ResponseStarted,
    /// `response.done`.
    ResponseDone,
    /// `input_audio_buffer.speech_started`.
    SpeechStarted,
    /// `input_audio_buffer.speech_stopped`.
    SpeechStopped,
    /// `input_audio_buffer.committed`.
    BufferCommitted,
    /// `input_audio_buffer.cleared`.
    BufferCleared,
    /// An `error` named a waiting request (by its `event_id`), which was removed.
    RequestRejected,
    /// An `error` that names no waiting request.
    Error,
    /// `rate_limits.updated`.
    RateLimits,
    /// A known event this model keeps nothing of (or a repeat that changed nothing).
    Unchanged,
    /// The event was ignored, and why.
    Ignored(Ignored),
}

impl Applied {
    /// Whether the model changed.
    pub fn changed(self) -> bool {
        !matches!(self, Self::Unchanged | Self::Ignored(_) | Self::Error)
    }
}

/// Why an event was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ignored {
    /// An event type this version does not know.
    UnknownEvent,
    /// The event names an item the model does not hold.
    UnknownItem,
    /// The event names a response the model does not hold.
    UnknownResponse,
    /// The event lacks the id it would be filed under.
    MissingId,
    /// A limit (see the module docs) was reached.
    Limit,
}

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
    text: String,
    has_text: bool,
    text_done: bool,
    dropped_text: u64,
    audio_bytes: u64,
    bytes_per_second: u32,
    audio_done: bool,
    truncated_ms: Option<u64>,
    transcription: InputTranscription,
}

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
        &self.transcription
    }

    // Appends delta text within both limits; returns whether anything was kept.
    fn push_text(&mut self, delta: &str, budget: &mut usize) -> bool {
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
    fn set_text(&mut self, text: &str, budget: &mut usize) {
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
    call_id: Option<String>,
    name: Option<String>,
    arguments: String,
    dropped: u64,
    done: bool,
    // Whether `FunctionCallReady` was reported.
    reported: bool,
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
    id: String,
    item: Item,
    previous_item_id: Option<String>,
    response_id: Option<String>,
    output_index: Option<u32>,
    in_conversation: bool,
    done: bool,
    retrieved: bool,
    contents: Vec<ContentState>,
    function_call: Option<FunctionCall>,
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
        match &self.item {
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
        self.function_call.as_ref()
    }

    fn content_mut(&mut self, index: u32) -> Option<&mut ContentState> {
        content_at(&mut self.contents, index)
    }
}

// Part `index`, created (with the ones before it) on first use, within the limit.
fn content_at(contents: &mut Vec<ContentState>, index: u32) -> Option<&mut ContentState> {
    let index = index as usize;
    if index >= MAX_CONTENT_PARTS {
        return None;
    }
    if index >= contents.len() {
        contents.resize_with(index + 1, ContentState::default);
    }
    contents.get_mut(index)
}

/// A `response.create` the client sent, as the model keeps it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResponseRequest {
    event_id: Option<String>,
    params: Option<ResponseParams>,
}

impl ResponseRequest {
    /// The request's `event_id`.
    pub fn event_id(&self) -> Option<&str> {
        self.event_id.as_deref()
    }

    /// Its parameters (`input` items without audio).
    pub fn params(&self) -> Option<&ResponseParams> {
        self.params.as_ref()
    }

    /// The output format it asked for.
    pub fn output_format(&self) -> Option<&AudioFormat> {
        self.params
            .as_ref()?
            .audio
            .as_ref()?
            .output
            .as_ref()?
            .format
            .as_ref()
    }

    /// Whether it asked for an out-of-band response (`conversation: "none"`).
    pub fn out_of_band(&self) -> bool {
        self.params
            .as_ref()
            .and_then(|p| p.conversation.as_deref())
            .is_some_and(|c| c == "none")
    }
}

/// A `conversation.item.create` the client sent, waiting for the server's echo.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRequest {
    event_id: Option<String>,
    previous_item_id: Option<Option<String>>,
    item: Item,
}

impl ItemRequest {
    /// The request's `event_id`.
    pub fn event_id(&self) -> Option<&str> {
        self.event_id.as_deref()
    }

    /// The `previous_item_id` asked for: `None` absent, `Some(None)` an explicit `null`.
    pub fn previous_item_id(&self) -> Option<Option<&str>> {
        self.previous_item_id.as_ref().map(Option::as_deref)
    }

    /// The item (audio removed).
    pub fn item(&self) -> &Item {
        &self.item
    }
}

/// A response and what the model knows about it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseState {
    id: String,
    response: Response,
    request: Option<ResponseRequest>,
    output: Vec<String>,
    done: bool,
    cancel_requested: bool,
}

impl ResponseState {
    /// The response's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The server's latest response object (`response.done`'s once done), without its
    /// `output` (see [`Self::output`]).
    pub fn response(&self) -> &Response {
        &self.response
    }

    /// The `response.create` it was matched to, if any (VAD responses have none).
    pub fn request(&self) -> Option<&ResponseRequest> {
        self.request.as_ref()
    }

    /// Its output item ids, by `output_index`.
    pub fn output(&self) -> &[String] {
        &self.output
    }

    /// Whether `response.done` arrived.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether the client sent `response.cancel` for it.
    pub fn cancel_requested(&self) -> bool {
        self.cancel_requested
    }

    /// The usage `response.done` reported.
    pub fn usage(&self) -> Option<&Usage> {
        self.response.usage.as_ref()?.as_ref()
    }

    /// Whether it writes outside the default conversation.
    pub fn out_of_band(&self) -> bool {
        matches!(self.response.conversation_id, Some(None))
            || self
                .request
                .as_ref()
                .is_some_and(ResponseRequest::out_of_band)
    }

    /// Its own output format: the server's echo, else its request's.
    pub fn own_output_format(&self) -> Option<&AudioFormat> {
        self.response
            .audio
            .as_ref()
            .and_then(|a| a.output.as_ref())
            .and_then(|o| o.format.as_ref())
            .or_else(|| self.request.as_ref()?.output_format())
    }
}

/// The input audio buffer, as far as events tell.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputBuffer {
    appended_us: u64,
    total_appended_us: u64,
    speech_started_ms: Option<u64>,
    speech_stopped_ms: Option<u64>,
    speech_item_id: Option<String>,
    speaking: bool,
    committed: VecDeque<String>,
    clears: u64,
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

/// The conversation of one session, as the server last described it: fed with
/// [`Self::apply_server`] for every server event and [`Self::apply_client`] for every client
/// event sent, in wire order; it never sends, sleeps or logs.
///
/// # Rules
///
/// **Session.** `session.created` starts a new conversation: everything known before it
/// is forgotten (a reconnect that replays the old items clones the model first).
/// `session.updated` replaces the session (the server sends it whole).
///
/// **Item order.** [`Conversation::items`] lists the items of the default conversation in
/// the server's order. An item event (`conversation.item.added`, `.done`, `.created`)
/// that names a known `previous_item_id` puts the item
/// right after it, moving it there if it was elsewhere; `previous_item_id: "root"`
/// (the client's spelling for "first") puts it first. A `previous_item_id` that is `null`,
/// absent or unknown (an item from before this model joined, or one it evicted) appends
/// the item at the end, which is what the server does for a `null`.
/// `response.output_item.added` appends the item too when its response writes to the
/// default conversation (the later `conversation.item.added` may still move it); items of
/// out-of-band responses (`conversation: "none"`, `conversation_id: null`) are kept and
/// found by [`Conversation::item`], but are not in [`Conversation::items`].
///
/// **Full items win.** Every event that carries a whole item replaces the stored item with
/// the server's (audio removed, see below). Events that finish something
/// (`conversation.item.done`, `conversation.item.retrieved`, `response.output_item.done`,
/// `response.done`'s output, `response.output_text.done`, `…transcript.done`,
/// `…function_call_arguments.done`, `…input_audio_transcription.completed`) also replace the
/// text accumulated from deltas with theirs. Events that start something
/// (`conversation.item.added`, `response.output_item.added`) fill in only what no delta has
/// given yet, so an `added` that arrives late does not erase text; one that arrives after the
/// item is done changes nothing.
///
/// **Unknown ids.** A delta, `.done`, truncation or deletion naming an item this model
/// does not hold is ignored ([`Applied::Ignored`] with [`Ignored::UnknownItem`]): nothing is
/// created for it, so a hostile server cannot grow a map with made-up ids. Events that
/// carry a whole item or response (`conversation.item.*`, `response.output_item.*`,
/// `response.done`) create it, within the limits below.
///
/// **Responses.** `response.created` starts a response and makes it the
/// [active](Conversation::active_response) one; `response.done` ends it and stores the
/// server's final response (status, usage). The active response is the most recently
/// created one not yet done; when it ends, the previous one still running (an out-of-band
/// response, or a second default one from an odd server) becomes active again.
/// `response.done` for an unknown id records the response, already done.
/// Events without a response id (`response.done` with no `response.id`) are ignored.
///
/// **Requests.** [`Conversation::apply_client`] records what the client asked for.
/// A `response.create` waits until a `response.created` claims it: the request whose
/// `metadata` equals the response's, else the oldest one. A `conversation.item.create`
/// waits until an item event names its `id`, else (for requests without an id) the oldest
/// one of the same kind (type; role, or `call_id`) is claimed by the next
/// `conversation.item.added` that no response, commit or retrieval explains. An `error`
/// whose `event_id` names a request removes it, and takes it back from a response that
/// claimed it by position ([`Applied::RequestRejected`]: the VAD auto-response that won
/// the race against a manual `response.create`). Matching by position is a guess until
/// then; give requests an `event_id` (and `metadata`) for exact matching.
///
/// **Audio.** No audio byte is stored. Output audio deltas and audio in full items are
/// counted (bytes, and milliseconds at the response's format); input appends are counted in
/// microseconds at the session's input format. The audio-delta path is one hash lookup
/// and an addition.
///
/// **Limits.** A conversation lives as long as a session (60 minutes on OpenAI), so per
/// item storage is fine; what a hostile server could grow without bound is capped:
/// [`MAX_ITEMS`] items and [`MAX_RESPONSES`] responses (the oldest evicted first, counted
/// by [`Conversation::evicted`]), [`MAX_CONTENT_PARTS`] parts per item (later indices
/// ignored), [`MAX_TEXT_BYTES`] of accumulated text per part and [`MAX_TOTAL_TEXT_BYTES`]
/// over the conversation (the excess dropped and counted), [`MAX_PENDING`] waiting requests
/// of each kind (the oldest dropped), and the last [`MAX_COMMITTED`] committed ids.
///
/// **Unknown event types** change nothing ([`Ignored::UnknownEvent`]). The model reads GA
/// events only; translate beta at the edge ([`crate::beta`]). No sequence of events
/// panics.
#[derive(Debug, Clone, Default)]
pub struct Conversation {
    session: Option<SessionConfig>,
    pending_session: Option<SessionConfig>,
    items: HashMap<String, ItemState>,
    // The default conversation's item ids, in the server's order.
    order: Vec<String>,
    // Every held item id, oldest first: what eviction removes first.
    arrival: VecDeque<String>,
    responses: HashMap<String, ResponseState>,
    response_order: VecDeque<String>,
    active: Option<String>,
    pending_items: VecDeque<ItemRequest>,
    pending_responses: VecDeque<ResponseRequest>,
    input: InputBuffer,
    rate_limits: Vec<crate::response::RateLimit>,
    text_budget: Budget,
    evicted: u64,
    dropped_requests: u64,
}

// The text budget left; a newtype so that `Default` starts it full.
#[derive(Debug, Clone)]
struct Budget(usize);

impl Default for Budget {
    fn default() -> Self {
        Self(MAX_TOTAL_TEXT_BYTES)
    }
}

impl Conversation {
    /// An empty conversation, before `session.created`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The session as the server last confirmed it (`session.created`, then each
    /// `session.updated`).
    pub fn session(&self) -> Option<&SessionConfig> {
        self.session.as_ref()
    }

    /// The last `session.update` the client sent that the server has not confirmed yet.
    pub fn pending_session_update(&self) -> Option<&SessionConfig> {
        self.pending_session.as_ref()
    }

    /// The default conversation's items, in the server's order.
    pub fn items(&self) -> impl DoubleEndedIterator<Item = &ItemState> {
        // Every ordered id is held (an invariant every mutation keeps); `filter_map` only
        // keeps this from panicking if that were ever broken.
        self.order.iter().filter_map(|id| self.items.get(id))
    }

    /// The default conversation's item ids, in the server's order.
    pub fn item_ids(&self) -> &[String] {
        &self.order
    }

    /// Any item the model holds, out-of-band ones included.
    pub fn item(&self, id: &str) -> Option<&ItemState> {
        self.items.get(id)
    }

    /// How many items the model holds, out-of-band ones included.
    pub fn item_count(&self) -> usize {
        self.items.len()
    }

    /// The text or transcript of one content part of an item.
    pub fn transcript(&self, item_id: &str, content_index: u32) -> Option<&str> {
        self.item(item_id)?.content(content_index)?.text()
    }

    /// The function call item whose `call_id` is this.
    pub fn function_call(&self, call_id: &str) -> Option<&ItemState> {
        self.order
            .iter()
            .rev()
            .filter_map(|id| self.items.get(id))
            .chain(self.items.values().filter(|i| !i.in_conversation))
            .find(|i| {
                i.function_call
                    .as_ref()
                    .and_then(FunctionCall::call_id)
                    .is_some_and(|c| c == call_id)
            })
    }

    /// The `function_call_output` item answering the call `call_id`, once the server has
    /// it (the latest, if several).
    pub fn function_call_output(&self, call_id: &str) -> Option<&ItemState> {
        self.order
            .iter()
            .rev()
            .filter_map(|id| self.items.get(id))
            .find(|i| matches!(&i.item, Item::FunctionCallOutput(o) if o.call_id == call_id))
    }

    /// The responses, oldest first.
    pub fn responses(&self) -> impl DoubleEndedIterator<Item = &ResponseState> {
        self.response_order
            .iter()
            .filter_map(|id| self.responses.get(id))
    }

    /// A response by id.
    pub fn response(&self, id: &str) -> Option<&ResponseState> {
        self.responses.get(id)
    }

    /// The response created and not yet done (the latest, if several run).
    pub fn active_response(&self) -> Option<&ResponseState> {
        self.responses.get(self.active.as_deref()?)
    }

    /// A response's audio, in output order: each part with audio counted, with its item
    /// and content index (what a player plays, and what a truncation names).
    pub fn audio_parts(
        &self,
        response_id: &str,
    ) -> impl Iterator<Item = (&ItemState, u32, &ContentState)> {
        self.responses
            .get(response_id)
            .into_iter()
            .flat_map(|r| r.output.iter())
            .filter_map(|id| self.items.get(id))
            .flat_map(|item| {
                item.contents
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.audio_bytes > 0)
                    .map(move |(i, c)| (item, u32::try_from(i).unwrap_or(u32::MAX), c))
            })
    }

    /// The output audio format of a response: its own (from `response.created`, else its
    /// request's), else the session's. For an unknown response, the session's.
    pub fn output_format(&self, response_id: &str) -> Option<&AudioFormat> {
        format_of(&self.responses, self.session.as_ref(), response_id)
    }

    /// `response.create` requests no `response.created` has claimed yet, oldest first.
    pub fn pending_responses(&self) -> impl ExactSizeIterator<Item = &ResponseRequest> {
        self.pending_responses.iter()
    }

    /// `conversation.item.create` requests not yet echoed, oldest first.
    pub fn pending_items(&self) -> impl ExactSizeIterator<Item = &ItemRequest> {
        self.pending_items.iter()
    }

    /// The input audio buffer.
    pub fn input_buffer(&self) -> &InputBuffer {
        &self.input
    }

    /// The last `rate_limits.updated`.
    pub fn rate_limits(&self) -> &[crate::response::RateLimit] {
        &self.rate_limits
    }

    /// Items and responses evicted at the limits.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Waiting requests dropped at [`MAX_PENDING`].
    pub fn dropped_requests(&self) -> u64 {
        self.dropped_requests
    }

    /// Records what the client asked for (call it for each event sent).
    pub fn apply_client(&mut self, event: &ClientEvent) {
        match event {
            ClientEvent::SessionUpdate(update) => {
                self.pending_session = Some(update.session.clone());
            }
            ClientEvent::InputAudioBufferAppend(append) => {
                let bytes = base64_decoded_len(append.audio.as_str());
                if let Some(bps) = self.input_bytes_per_second().filter(|&b| b > 0) {
                    let us = bytes.saturating_mul(1_000_000) / u64::from(bps);
                    self.input.appended_us = self.input.appended_us.saturating_add(us);
                    self.input.total_appended_us = self.input.total_appended_us.saturating_add(us);
                }
            }
            ClientEvent::InputAudioBufferClear(_) => self.input.appended_us = 0,
            ClientEvent::ConversationItemCreate(create) => {
                push_bounded(
                    &mut self.pending_items,
                    ItemRequest {
                        event_id: create.event_id.clone(),
                        previous_item_id: create.previous_item_id.clone(),
                        item: without_audio(&create.item).0,
                    },
                    &mut self.dropped_requests,
                );
            }
            ClientEvent::ResponseCreate(create) => {
                let params = create.response.as_ref().map(|p| {
                    let mut p = p.clone();
                    if let Some(input) = &mut p.input {
                        for item in input.iter_mut() {
                            *item = without_audio(item).0;
                        }
                    }
                    p
                });
                push_bounded(
                    &mut self.pending_responses,
                    ResponseRequest {
                        event_id: create.event_id.clone(),
                        params,
                    },
                    &mut self.dropped_requests,
                );
            }
            ClientEvent::ResponseCancel(cancel) => {
                let id = cancel.response_id.as_deref().or(self.active.as_deref());
                if let Some(response) = id.and_then(|id| self.responses.get_mut(id)) {
                    response.cancel_requested = true;
                }
            }
            _ => {}
        }
    }

    /// Applies one server event and says what changed.
    pub fn apply_server(&mut self, event: &ServerEvent) -> Applied {
        match event {
            // The hot path first: counting, two lookups, no allocation after a part's
            // first delta.
            ServerEvent::ResponseOutputAudioDelta(delta) => {
                let bytes = base64_decoded_len(delta.delta.as_str());
                let Some(item) = self.items.get_mut(delta.item_id.as_str()) else {
                    return Applied::Ignored(Ignored::UnknownItem);
                };
                let Some(content) = item.content_mut(delta.content_index) else {
                    return Applied::Ignored(Ignored::Limit);
                };
                if content.bytes_per_second == 0 {
                    // Once per part: the format does not change within a response.
                    content.bytes_per_second = format_bytes_per_second(format_of(
                        &self.responses,
                        self.session.as_ref(),
                        &delta.response_id,
                    ));
                }
                content.audio_bytes = content.audio_bytes.saturating_add(bytes);
                Applied::ContentDelta
            }
            ServerEvent::ResponseOutputTextDelta(delta)
            | ServerEvent::ResponseOutputAudioTranscriptDelta(delta) => {
                let budget = &mut self.text_budget.0;
                let Some(item) = self.items.get_mut(delta.item_id.as_str()) else {
                    return Applied::Ignored(Ignored::UnknownItem);
                };
                let Some(content) = item.content_mut(delta.content_index) else {
                    return Applied::Ignored(Ignored::Limit);
                };
                if content.push_text(&delta.delta, budget) {
                    Applied::ContentDelta
                } else {
                    Applied::Ignored(Ignored::Limit)
                }
            }
            ServerEvent::ResponseOutputTextDone(done) => {
                self.content_done(&done.item_id, done.content_index, Some(&done.text), false)
            }
            ServerEvent::ResponseOutputAudioTranscriptDone(done) => self.content_done(
                &done.item_id,
                done.content_index,
                Some(&done.transcript),
                false,
            ),
            ServerEvent::ResponseOutputAudioDone(done) => {
                self.content_done(&done.item_id, done.content_index, None, true)
            }
            ServerEvent::ResponseContentPartAdded(part)
            | ServerEvent::ResponseContentPartDone(part) => {
                let added = matches!(event, ServerEvent::ResponseContentPartAdded(_));
                let bps = self.part_bytes_per_second(&part.response_id);
                let budget = &mut self.text_budget.0;
                let Some(item) = self.items.get_mut(part.item_id.as_str()) else {
                    return Applied::Ignored(Ignored::UnknownItem);
                };
                let Some(content) = item.content_mut(part.content_index) else {
                    return Applied::Ignored(Ignored::Limit);
                };
                if content.bytes_per_second == 0 && is_audio(&part.part) {
                    content.bytes_per_second = bps;
                }
                if let Some(text) = part.part.text() {
                    if !added {
                        content.set_text(text, budget);
                        content.text_done = true;
                    } else if !content.has_text {
                        content.set_text(text, budget);
                    }
                }
                if added {
                    Applied::ContentAdded
                } else {
                    Applied::ContentDone
                }
            }
            ServerEvent::ResponseFunctionCallArgumentsDelta(delta) => {
                let budget = &mut self.text_budget.0;
                let Some(item) = self.items.get_mut(delta.item_id.as_str()) else {
                    return Applied::Ignored(Ignored::UnknownItem);
                };
                let call = item.function_call.get_or_insert_with(FunctionCall::default);
                if call.call_id.is_none() {
                    call.call_id = Some(delta.call_id.clone());
                }
                let room = MAX_TEXT_BYTES
                    .saturating_sub(call.arguments.len())
                    .min(*budget);
                let take = floor_char_boundary(&delta.delta, room);
                call.arguments.push_str(&delta.delta[..take]);
                *budget -= take;
                call.dropped += (delta.delta.len() - take) as u64;
                if take == delta.delta.len() {
                    Applied::FunctionCallDelta
                } else {
                    Applied::Ignored(Ignored::Limit)
                }
            }
            ServerEvent::ResponseFunctionCallArgumentsDone(done) => {
                let budget = &mut self.text_budget.0;
                let Some(item) = self.items.get_mut(done.item_id.as_str()) else {
                    return Applied::Ignored(Ignored::UnknownItem);
                };
                let call = item.function_call.get_or_insert_with(FunctionCall::default);
                *budget = budget.saturating_add(call.arguments.len());
                call.arguments.clone_from(&done.arguments);
                *budget = budget.saturating_sub(call.arguments.len());
                call.call_id = Some(done.call_id.clone());
                if let Some(name) = &done.name {
                    call.name = Some(name.clone());
                }
                let first = !call.reported;
                call.done = true;
                call.reported = true;
                if first {
                    Applied::FunctionCallReady
                } else {
                    Applied::Unchanged
                }
            }
            ServerEvent::SessionCreated(created) => {
                *self = Self {
                    session: Some(created.session.clone()),
                    ..Self::default()
                };
                Applied::SessionCreated
            }
            ServerEvent::SessionUpdated(updated) => {
                self.session = Some(updated.session.clone());
                self.pending_session = None;
                Applied::SessionUpdated
            }
            ServerEvent::ConversationItemAdded(e) | ServerEvent::ConversationItemCreated(e) => {
                self.item_event(e, Finality::Start)
            }
            ServerEvent::ConversationItemDone(e) => self.item_event(e, Finality::Done),
            ServerEvent::ConversationItemRetrieved(e) => self.item_event(e, Finality::Retrieved),
            ServerEvent::ConversationItemTruncated(truncated) => {
                let Some(item) = self.items.get_mut(truncated.item_id.as_str()) else {
                    return Applied::Ignored(Ignored::UnknownItem);
                };
                let Some(content) = item.content_mut(truncated.content_index) else {
                    return Applied::Ignored(Ignored::Limit);
                };
                content.truncated_ms = Some(truncated.audio_end_ms);
                Applied::ItemTruncated
            }
            ServerEvent::ConversationItemDeleted(deleted) => {
                if self.remove_item(&deleted.item_id) {
                    Applied::ItemDeleted
                } else {
                    Applied::Ignored(Ignored::UnknownItem)
                }
            }
            ServerEvent::InputAudioTranscriptionDelta(delta) => {
                let budget = &mut self.text_budget.0;
                let Some(item) = self.items.get_mut(delta.item_id.as_str()) else {
                    return Applied::Ignored(Ignored::UnknownItem);
                };
                let Some(content) = item.content_mut(delta.content_index.unwrap_or(0)) else {
                    return Applied::Ignored(Ignored::Limit);
                };
                if matches!(content.transcription, InputTranscription::None) {
                    content.transcription = InputTranscription::InProgress;
                }
                content.push_text(delta.delta.as_deref().unwrap_or_default(), budget);
                Applied::TranscriptionDelta
            }
            ServerEvent::InputAudioTranscriptionCompleted(done) => {
                let budget = &mut self.text_budget.0;
                let Some(item) = self.items.get_mut(done.item_id.as_str()) else {
                    return Applied::Ignored(Ignored::UnknownItem);
                };
                let Some(content) = item.content_mut(done.content_index) else {
                    return Applied::Ignored(Ignored::Limit);
                };
                content.set_text(&done.transcript, budget);
                content.text_done = true;
                content.transcription = InputTranscription::Completed;
                Applied::TranscriptionCompleted
            }
            ServerEvent::InputAudioTranscriptionFailed(failed) => {
                let Some(item) = self.items.get_mut(failed.item_id.as_str()) else {
                    return Applied::Ignored(Ignored::UnknownItem);
                };
                let Some(content) = item.content_mut(failed.content_index) else {
                    return Applied::Ignored(Ignored::Limit);
                };
                content.transcription = InputTranscription::Failed(failed.error.clone());
                Applied::TranscriptionFailed
            }
            ServerEvent::InputAudioBufferSpeechStarted(started) => {
                self.input.speaking = true;
                self.input.speech_started_ms = Some(started.audio_start_ms);
                self.input.speech_stopped_ms = None;
                self.input.speech_item_id = Some(started.item_id.clone());
                Applied::SpeechStarted
            }
            ServerEvent::InputAudioBufferSpeechStopped(stopped) => {
                self.input.speaking = false;
                self.input.speech_stopped_ms = Some(stopped.audio_end_ms);
                self.input.speech_item_id = Some(stopped.item_id.clone());
                Applied::SpeechStopped
            }
            ServerEvent::InputAudioBufferCommitted(committed) => {
                self.input.appended_us = 0;
                self.input.speaking = false;
                if self.input.committed.len() >= MAX_COMMITTED {
                    self.input.committed.pop_front();
                }
                self.input.committed.push_back(committed.item_id.clone());
                Applied::BufferCommitted
            }
            ServerEvent::InputAudioBufferCleared(_) => {
                self.input.appended_us = 0;
                self.input.speaking = false;
                self.input.clears += 1;
                Applied::BufferCleared
            }
            ServerEvent::ResponseCreated(created) => self.response_created(&created.response),
            ServerEvent::ResponseDone(done) => self.response_done(&done.response),
            ServerEvent::ResponseOutputItemAdded(e) | ServerEvent::ResponseOutputItemDone(e) => {
                let finality = if matches!(event, ServerEvent::ResponseOutputItemAdded(_)) {
                    Finality::Start
                } else {
                    Finality::Done
                };
                self.output_item(&e.response_id, e.output_index, &e.item, finality)
            }
            ServerEvent::Error(error) => {
                let Some(id) = error.error.event_id() else {
                    return Applied::Error;
                };
                let before = self.pending_responses.len() + self.pending_items.len();
                self.pending_responses
                    .retain(|r| r.event_id.as_deref() != Some(id));
                self.pending_items
                    .retain(|r| r.event_id.as_deref() != Some(id));
                let mut rejected = self.pending_responses.len() + self.pending_items.len() < before;
                // A response that claimed the refused request by position (a VAD
                // response that won the race) did not come from it.
                for response in self.responses.values_mut() {
                    if response
                        .request
                        .as_ref()
                        .and_then(|r| r.event_id.as_deref())
                        == Some(id)
                    {
                        response.request = None;
                        rejected = true;
                    }
                }
                if rejected {
                    Applied::RequestRejected
                } else {
                    Applied::Error
                }
            }
            ServerEvent::RateLimitsUpdated(limits) => {
                self.rate_limits.clone_from(&limits.rate_limits);
                Applied::RateLimits
            }
            ServerEvent::Unknown(_) => Applied::Ignored(Ignored::UnknownEvent),
            _ => Applied::Unchanged,
        }
    }

    // The bytes per second of the session's input audio (PCM16 when it says none).
    fn input_bytes_per_second(&self) -> Option<u32> {
        self.session
            .as_ref()
            .and_then(SessionConfig::input_format)
            .map_or(Some(2 * crate::audio::PCM_SAMPLE_RATE), bytes_per_second)
    }

    // The bytes per second of a response's output audio (0 when unknown).
    fn part_bytes_per_second(&self, response_id: &str) -> u32 {
        format_bytes_per_second(self.output_format(response_id))
    }

    fn content_done(
        &mut self,
        item_id: &str,
        index: u32,
        text: Option<&str>,
        audio: bool,
    ) -> Applied {
        let budget = &mut self.text_budget.0;
        let Some(item) = self.items.get_mut(item_id) else {
            return Applied::Ignored(Ignored::UnknownItem);
        };
        let Some(content) = item.content_mut(index) else {
            return Applied::Ignored(Ignored::Limit);
        };
        if let Some(text) = text {
            content.set_text(text, budget);
            content.text_done = true;
        }
        if audio {
            content.audio_done = true;
        }
        Applied::ContentDone
    }

    // `conversation.item.added` / `.created` / `.done` / `.retrieved`.
    fn item_event(&mut self, event: &ItemEvent, finality: Finality) -> Applied {
        let Some(id) = event.item.id() else {
            return Applied::Ignored(Ignored::MissingId);
        };
        if matches!(event.item, Item::Reference(_)) {
            return Applied::Ignored(Ignored::MissingId);
        }
        let known = self.items.contains_key(id);
        // A client request this echo answers: by id, else the oldest without an id when
        // nothing else explains a new item.
        let request = self.claim_item_request(id, &event.item, known, finality);
        let previous = match &event.previous_item_id {
            Some(previous) => Some(previous.clone()),
            None => request.and_then(|r| r.previous_item_id),
        };
        let applied = self.upsert_item(id, &event.item, finality, true, false);
        if matches!(applied, Applied::Ignored(_)) {
            return applied;
        }
        if let Some(previous) = previous {
            if let Some(state) = self.items.get_mut(id) {
                state.previous_item_id.clone_from(&previous);
            }
            self.place(id, previous.as_deref());
        }
        if finality == Finality::Retrieved {
            Applied::ItemRetrieved
        } else {
            applied
        }
    }

    fn claim_item_request(
        &mut self,
        id: &str,
        echo: &Item,
        known: bool,
        finality: Finality,
    ) -> Option<ItemRequest> {
        if let Some(at) = self
            .pending_items
            .iter()
            .position(|r| r.item.id() == Some(id))
        {
            return self.pending_items.remove(at);
        }
        // A response's output (even one whose `conversation.item.added` comes before its
        // `response.output_item.added`), a committed buffer or a retrieval is not an echo;
        // requiring the same kind of item keeps an early assistant item from claiming a
        // user message.
        if known || finality == Finality::Retrieved || self.input.committed.iter().any(|c| c == id)
        {
            return None;
        }
        let at = self
            .pending_items
            .iter()
            .position(|r| r.item.id().is_none() && resembles(&r.item, echo))?;
        self.pending_items.remove(at)
    }

    // Moves (or, when new, places) `id` after `previous` in the order.
    fn place(&mut self, id: &str, previous: Option<&str>) {
        let Some(from) = self.order.iter().position(|o| o == id) else {
            return;
        };
        let target = match previous {
            Some("root") if !self.items.contains_key("root") => Some(0),
            Some(previous) if previous != id => self
                .order
                .iter()
                .position(|o| o == previous)
                .map(|at| at + 1),
            _ => None,
        };
        let Some(target) = target else {
            // Null, absent or unknown: a new item stays appended; a known one stays put.
            return;
        };
        if target == from || target == from + 1 {
            return;
        }
        let moved = self.order.remove(from);
        let target = if target > from { target - 1 } else { target };
        self.order.insert(target, moved);
    }

    // Adds or replaces an item from a full item; `in_conversation` says whether the event
    // puts it in the default conversation, `from_response` whether a response produced it
    // (only those report `FunctionCallReady`: a function call the client replays is not a
    // call to run).
    fn upsert_item(
        &mut self,
        id: &str,
        item: &Item,
        finality: Finality,
        in_conversation: bool,
        from_response: bool,
    ) -> Applied {
        let (stripped, mut audio) = without_audio(item);
        if !audio.is_empty() {
            // Audio in a full item is in the session's input format (user audio) or its
            // response's output format.
            let fallback = match item {
                Item::Message(m) if m.role == Role::User => self.input_bytes_per_second(),
                _ => {
                    let response = self.items.get(id).and_then(|s| s.response_id.as_deref());
                    Some(self.part_bytes_per_second(response.unwrap_or_default()))
                }
            }
            .filter(|&b| b > 0);
            for part in &mut audio {
                part.2 = part.2.or(fallback);
            }
        }
        let budget = &mut self.text_budget.0;
        let applied = if let Some(state) = self.items.get_mut(id) {
            // An `added` that arrives after the item is done is older news: the done
            // item stays.
            let stale = finality == Finality::Start && state.done;
            let changed = !stale && state.item != stripped;
            if changed {
                state.item = stripped;
            }
            if in_conversation && !state.in_conversation {
                state.in_conversation = true;
                self.order.push(id.to_owned());
            }
            if !stale {
                absorb(state, &audio, finality, budget);
            }
            match finality {
                Finality::Done if !state.done => {
                    state.done = true;
                    Applied::ItemDone
                }
                Finality::Retrieved => {
                    state.retrieved = true;
                    state.done = true;
                    Applied::ItemRetrieved
                }
                _ if changed => Applied::ItemUpdated,
                _ => Applied::Unchanged,
            }
        } else {
            if self.items.len() >= MAX_ITEMS {
                self.evict_item();
            }
            let mut state = ItemState {
                id: id.to_owned(),
                item: stripped,
                previous_item_id: None,
                response_id: None,
                output_index: None,
                in_conversation,
                done: finality != Finality::Start,
                retrieved: finality == Finality::Retrieved,
                contents: Vec::new(),
                function_call: None,
            };
            absorb(&mut state, &audio, finality, &mut self.text_budget.0);
            self.items.insert(id.to_owned(), state);
            self.arrival.push_back(id.to_owned());
            if in_conversation {
                self.order.push(id.to_owned());
            }
            Applied::ItemAdded
        };
        // A function call item's `.done` completes the call if its arguments' `.done`
        // did not.
        if let Some(state) = self.items.get_mut(id)
            && let Item::FunctionCall(call) = &state.item
        {
            let complete = finality != Finality::Start
                || call.status == Some(crate::item::ItemStatus::Completed);
            let fc = state
                .function_call
                .get_or_insert_with(FunctionCall::default);
            if fc.call_id.is_none() {
                fc.call_id.clone_from(&call.call_id);
            }
            fc.name = Some(call.name.clone());
            if complete || (fc.arguments.is_empty() && !call.arguments.is_empty()) {
                let budget = &mut self.text_budget.0;
                *budget = budget.saturating_add(fc.arguments.len());
                fc.arguments.clone_from(&call.arguments);
                *budget = budget.saturating_sub(fc.arguments.len());
            }
            fc.done |= complete;
            if complete && from_response && !fc.reported {
                fc.reported = true;
                return Applied::FunctionCallReady;
            }
        }
        applied
    }

    fn output_item(
        &mut self,
        response_id: &str,
        output_index: u32,
        item: &Item,
        finality: Finality,
    ) -> Applied {
        let Some(id) = item.id() else {
            return Applied::Ignored(Ignored::MissingId);
        };
        let response = self.responses.get(response_id);
        let in_conversation = response.is_some_and(|r| !r.out_of_band());
        let applied = self.upsert_item(id, item, finality, in_conversation, true);
        if matches!(applied, Applied::Ignored(_)) {
            return applied;
        }
        if let Some(state) = self.items.get_mut(id) {
            state.response_id = Some(response_id.to_owned());
            state.output_index = Some(output_index);
        }
        if let Some(response) = self.responses.get_mut(response_id)
            && !response.output.iter().any(|o| o == id)
        {
            let at = response.output.len().min(output_index as usize);
            response.output.insert(at, id.to_owned());
        }
        applied
    }

    fn response_created(&mut self, response: &Response) -> Applied {
        let Some(id) = response.id.as_deref() else {
            return Applied::Ignored(Ignored::MissingId);
        };
        let stored = without_output(response);
        if let Some(state) = self.responses.get_mut(id) {
            // A repeated `response.created`: newer facts, same request.
            if !state.done {
                state.response = stored;
            }
            return Applied::Unchanged;
        }
        let request = self.claim_response_request(response);
        self.insert_response(ResponseState {
            id: id.to_owned(),
            response: stored,
            request,
            output: Vec::new(),
            done: false,
            cancel_requested: false,
        });
        self.active = Some(id.to_owned());
        Applied::ResponseStarted
    }

    fn claim_response_request(&mut self, response: &Response) -> Option<ResponseRequest> {
        let metadata = response.metadata.as_ref().and_then(Option::as_ref);
        let at = metadata
            .and_then(|m| {
                self.pending_responses.iter().position(|r| {
                    r.params
                        .as_ref()
                        .and_then(|p| p.metadata.as_ref())
                        .and_then(Option::as_ref)
                        == Some(m)
                })
            })
            .unwrap_or(0);
        self.pending_responses.remove(at)
    }

    fn response_done(&mut self, response: &Response) -> Applied {
        let Some(id) = response.id.as_deref() else {
            return Applied::Ignored(Ignored::MissingId);
        };
        if !self.responses.contains_key(id) {
            let request = self.claim_response_request(response);
            self.insert_response(ResponseState {
                id: id.to_owned(),
                response: Response::default(),
                request,
                output: Vec::new(),
                done: true,
                cancel_requested: false,
            });
        }
        let Some(state) = self.responses.get_mut(id) else {
            return Applied::Ignored(Ignored::Limit);
        };
        let mut done = without_output(response);
        // A `response.done` without the audio config keeps `response.created`'s: the
        // format a response's audio was in does not change when it ends.
        if done.audio.is_none() {
            done.audio = state.response.audio.take();
        }
        state.response = done;
        state.done = true;
        // The final output items are the server's full versions.
        if let Some(output) = &response.output {
            for (index, item) in output.iter().enumerate() {
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                self.output_item(id, index, item, Finality::Done);
            }
        }
        if self.active.as_deref() == Some(id) {
            self.active = self
                .response_order
                .iter()
                .rev()
                .find(|r| self.responses.get(*r).is_some_and(|s| !s.done))
                .cloned();
        }
        Applied::ResponseDone
    }

    fn insert_response(&mut self, state: ResponseState) {
        if self.responses.len() >= MAX_RESPONSES
            && let Some(old) = self.response_order.pop_front()
        {
            self.responses.remove(&old);
            self.evicted += 1;
            if self.active.as_deref() == Some(old.as_str()) {
                self.active = None;
            }
        }
        self.response_order.push_back(state.id.clone());
        self.responses.insert(state.id.clone(), state);
    }

    fn evict_item(&mut self) {
        while let Some(old) = self.arrival.pop_front() {
            if self.items.contains_key(&old) {
                self.remove_item(&old);
                self.evicted += 1;
                return;
            }
        }
    }

    fn remove_item(&mut self, id: &str) -> bool {
        let Some(state) = self.items.remove(id) else {
            return false;
        };
        let freed: usize = state.contents.iter().map(|c| c.text.len()).sum::<usize>()
            + state
                .function_call
                .as_ref()
                .map_or(0, |f| f.arguments.len());
        self.text_budget.0 = self
            .text_budget
            .0
            .saturating_add(freed)
            .min(MAX_TOTAL_TEXT_BYTES);
        if state.in_conversation {
            self.order.retain(|o| o != id);
        }
        if let Some(at) = self.arrival.iter().position(|a| a == id) {
            self.arrival.remove(at);
        }
        true
    }

    /// Checks the model's invariants, which every `apply_*` keeps: each ordered item is
    /// held and ordered once, each held item of the conversation is ordered, the active
    /// response is held and not done, and the limits hold. For tests, yours included.
    ///
    /// # Errors
    /// The first broken invariant, described.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for id in &self.order {
            if !seen.insert(id) {
                return Err(format!("item {id} twice in the order"));
            }
            match self.items.get(id) {
                Some(item) if item.in_conversation => {}
                Some(_) => return Err(format!("out-of-band item {id} in the order")),
                None => return Err(format!("ordered item {id} not held")),
            }
        }
        for (id, item) in &self.items {
            if item.id != *id {
                return Err(format!("item filed under {id} is {}", item.id));
            }
            if item.in_conversation && !seen.contains(id) {
                return Err(format!("item {id} in the conversation but not ordered"));
            }
            if item.contents.len() > MAX_CONTENT_PARTS {
                return Err(format!("item {id} has too many parts"));
            }
        }
        if self.items.len() > MAX_ITEMS || self.responses.len() > MAX_RESPONSES {
            return Err("over the limits".into());
        }
        if self.response_order.len() != self.responses.len() {
            return Err("response order and map differ".into());
        }
        if let Some(active) = &self.active {
            match self.responses.get(active) {
                Some(r) if !r.done => {}
                Some(_) => return Err(format!("active response {active} is done")),
                None => return Err(format!("active response {active} not held")),
            }
        }
        if self.pending_items.len() > MAX_PENDING || self.pending_responses.len() > MAX_PENDING {
            return Err("too many pending requests".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finality {
    // `added` / `created`: fills in what is missing.
    Start,
    // `done`: replaces.
    Done,
    // `retrieved`: replaces, and is the server's complete view.
    Retrieved,
}

// Takes a full item's content into the state: text where the rules say, audio counted.
fn absorb(
    state: &mut ItemState,
    audio: &[(u32, u64, Option<u32>)],
    finality: Finality,
    budget: &mut usize,
) {
    for &(index, bytes, bps) in audio {
        if let Some(content) = content_at(&mut state.contents, index) {
            // A full item's audio is the whole of it: it replaces the count.
            content.audio_bytes = bytes;
            if let Some(bps) = bps {
                content.bytes_per_second = bps;
            }
        }
    }
    let Item::Message(message) = &state.item else {
        return;
    };
    for (index, part) in message.content.iter().enumerate().take(MAX_CONTENT_PARTS) {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        let Some(content) = content_at(&mut state.contents, index) else {
            break;
        };
        if let Some(text) = part.text() {
            if finality != Finality::Start {
                // The server dropped a truncated part's transcript; keep what was
                // generated (the part is marked truncated) rather than an empty string.
                if !(content.truncated_ms.is_some() && text.is_empty()) {
                    content.set_text(text, budget);
                }
                content.text_done = true;
            } else if !content.has_text {
                content.set_text(text, budget);
            }
        }
    }
}

// A copy of the item without audio bytes, and the audio it held: (content index, bytes,
// bytes per second when the part names its format).
fn without_audio(item: &Item) -> (Item, Vec<(u32, u64, Option<u32>)>) {
    let Item::Message(message) = item else {
        return (item.clone(), Vec::new());
    };
    let mut audio = Vec::new();
    let content = message
        .content
        .iter()
        .enumerate()
        .map(|(index, part)| {
            let mut strip = |a: &AudioContent| {
                if let Some(data) = &a.audio {
                    // Legacy parts name their format; GA ones leave it to the session.
                    let bps = match a.format.as_deref() {
                        Some("g711_ulaw" | "g711_alaw") => Some(8_000),
                        Some("pcm16") => Some(2 * crate::audio::PCM_SAMPLE_RATE),
                        _ => None,
                    };
                    audio.push((
                        u32::try_from(index).unwrap_or(u32::MAX),
                        base64_decoded_len(data.as_str()),
                        bps,
                    ));
                }
                AudioContent {
                    audio: None,
                    transcript: a.transcript.clone(),
                    format: a.format.clone(),
                    extra: a.extra.clone(),
                }
            };
            match part {
                ContentPart::InputAudio(a) => ContentPart::InputAudio(strip(a)),
                ContentPart::OutputAudio(a) => ContentPart::OutputAudio(strip(a)),
                ContentPart::Audio(a) => ContentPart::Audio(strip(a)),
                other => other.clone(),
            }
        })
        .collect();
    let stripped = crate::item::MessageItem {
        id: message.id.clone(),
        object: message.object.clone(),
        status: message.status.clone(),
        role: message.role.clone(),
        content,
        extra: message.extra.clone(),
    };
    (Item::Message(stripped), audio)
}

// The response without its output items (kept as items) and their audio.
fn without_output(response: &Response) -> Response {
    Response {
        id: response.id.clone(),
        object: response.object.clone(),
        status: response.status.clone(),
        status_details: response.status_details.clone(),
        output: None,
        conversation_id: response.conversation_id.clone(),
        output_modalities: response.output_modalities.clone(),
        max_output_tokens: response.max_output_tokens,
        audio: response.audio.clone(),
        usage: response.usage.clone(),
        metadata: response.metadata.clone(),
        extra: response.extra.clone(),
    }
}

// Whether an echoed item can be the answer to a request for `requested`: the same type,
// the same role for messages, the same `call_id` for outputs.
fn resembles(requested: &Item, echo: &Item) -> bool {
    match (requested, echo) {
        (Item::Message(a), Item::Message(b)) => a.role == b.role,
        (Item::FunctionCall(a), Item::FunctionCall(b)) => a.call_id == b.call_id,
        (Item::FunctionCallOutput(a), Item::FunctionCallOutput(b)) => a.call_id == b.call_id,
        (a, b) => a.type_name() == b.type_name(),
    }
}

fn is_audio(part: &ContentPart) -> bool {
    matches!(
        part,
        ContentPart::Audio(_) | ContentPart::OutputAudio(_) | ContentPart::InputAudio(_)
    )
}

// A response's output format, else the session's (free of `self`, so that the audio path
// can read it while it holds an item mutably).
fn format_of<'a>(
    responses: &'a HashMap<String, ResponseState>,
    session: Option<&'a SessionConfig>,
    response_id: &str,
) -> Option<&'a AudioFormat> {
    responses
        .get(response_id)
        .and_then(ResponseState::own_output_format)
        .or_else(|| session?.output_format())
}

// Bytes per second of output audio in `format` (PCM16 when none is known; 0 for formats
// this crate does not know).
fn format_bytes_per_second(format: Option<&AudioFormat>) -> u32 {
    format
        .map_or(Some(2 * crate::audio::PCM_SAMPLE_RATE), bytes_per_second)
        .unwrap_or(0)
}

// Bytes per second of a format; `None` for formats this crate does not know.
fn bytes_per_second(format: &AudioFormat) -> Option<u32> {
    match format {
        AudioFormat::Pcm(_) => format.sample_rate().map(|r| r.saturating_mul(2)),
        AudioFormat::Pcmu(_) | AudioFormat::Pcma(_) => Some(8_000),
        AudioFormat::Unknown(_) => None,
    }
}

// The length base64 text decodes to, from its length and padding, without reading it:
// O(1) on the audio path. Invalid text gives what its length suggests.
fn base64_decoded_len(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let padding = bytes
        .iter()
        .rev()
        .take(2)
        .take_while(|&&b| b == b'=')
        .count();
    ((bytes.len() / 4 * 3).saturating_sub(padding)) as u64
}

// The largest prefix length of `text` that is at most `max` bytes and a char boundary.
fn floor_char_boundary(text: &str, max: usize) -> usize {
    if max >= text.len() {
        return text.len();
    }
    (0..=max)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

fn push_bounded<T>(queue: &mut VecDeque<T>, value: T, dropped: &mut u64) {
    if queue.len() >= MAX_PENDING {
        queue.pop_front();
        *dropped += 1;
    }
    queue.push_back(value);
}
