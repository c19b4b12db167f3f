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

mod audio;
mod content;
mod input;
mod item_state;
mod items;
mod outcome;
mod response_state;
mod responses;
mod util;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use self::audio::format_of;
pub use self::input::InputBuffer;
pub use self::item_state::{ContentState, FunctionCall, InputTranscription, ItemState};
pub use self::outcome::{Applied, Ignored};
pub use self::response_state::{ItemRequest, ResponseRequest, ResponseState};
use crate::client::ClientEvent;
use crate::server::ServerEvent;
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

// An item or response id as the model keeps it: one allocation, shared by the map's key,
// the state, the eviction queue and the items that name it (`previous_item_id`,
// `response_id`).
type Id = Arc<str>;

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
    // Boxed: the map keeps room to grow (up to twice its items), and an item is ~130
    // bytes inline, so boxes cost less than the empty slots would.
    items: HashMap<Id, Box<ItemState>>,
    // The default conversation's item ids, in the server's order.
    order: Vec<String>,
    // Every held item id, oldest first: what eviction removes first.
    arrival: VecDeque<Id>,
    responses: HashMap<Id, ResponseState>,
    response_order: VecDeque<Id>,
    active: Option<Id>,
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
        self.order.iter().filter_map(|id| self.item(id))
    }

    /// The default conversation's item ids, in the server's order.
    pub fn item_ids(&self) -> &[String] {
        &self.order
    }

    /// Any item the model holds, out-of-band ones included.
    pub fn item(&self, id: &str) -> Option<&ItemState> {
        self.items.get(id).map(|item| &**item)
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
            .filter_map(|id| self.item(id))
            .chain(
                self.items
                    .values()
                    .map(|item| &**item)
                    .filter(|i| !i.in_conversation),
            )
            .find(|i| {
                i.function_call
                    .as_deref()
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
            .filter_map(|id| self.item(id))
            .find(|i| i.output_call_id() == Some(call_id))
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
            .filter_map(|id| self.item(id))
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
            ClientEvent::InputAudioBufferAppend(append) => self.record_append(append),
            ClientEvent::InputAudioBufferClear(_) => self.input.appended_us = 0,
            ClientEvent::ConversationItemCreate(create) => self.record_item_request(create),
            ClientEvent::ResponseCreate(create) => self.record_response_request(create),
            ClientEvent::ResponseCancel(cancel) => self.record_cancel(cancel),
            _ => {}
        }
    }

    /// Applies one server event and says what changed.
    pub fn apply_server(&mut self, event: &ServerEvent) -> Applied {
        match event {
            // The hot path first: counting, two lookups, no allocation after a part's
            // first delta.
            ServerEvent::ResponseOutputAudioDelta(delta) => self.audio_delta(delta),
            ServerEvent::ResponseOutputTextDelta(delta)
            | ServerEvent::ResponseOutputAudioTranscriptDelta(delta) => self.text_delta(delta),
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
                self.content_part(part, added)
            }
            ServerEvent::ResponseFunctionCallArgumentsDelta(delta) => self.arguments_delta(delta),
            ServerEvent::ResponseFunctionCallArgumentsDone(done) => self.arguments_done(done),
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
            ServerEvent::ConversationItemTruncated(truncated) => self.item_truncated(truncated),
            ServerEvent::ConversationItemDeleted(deleted) => self.item_deleted(deleted),
            ServerEvent::InputAudioTranscriptionDelta(delta) => self.transcription_delta(delta),
            ServerEvent::InputAudioTranscriptionCompleted(done) => {
                self.transcription_completed(done)
            }
            ServerEvent::InputAudioTranscriptionFailed(failed) => self.transcription_failed(failed),
            ServerEvent::InputAudioBufferSpeechStarted(started) => self.speech_started(started),
            ServerEvent::InputAudioBufferSpeechStopped(stopped) => self.speech_stopped(stopped),
            ServerEvent::InputAudioBufferCommitted(committed) => self.buffer_committed(committed),
            ServerEvent::InputAudioBufferCleared(_) => self.buffer_cleared(),
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
            ServerEvent::Error(error) => self.error(error),
            ServerEvent::RateLimitsUpdated(limits) => {
                self.rate_limits.clone_from(&limits.rate_limits);
                Applied::RateLimits
            }
            ServerEvent::Unknown(_) => Applied::Ignored(Ignored::UnknownEvent),
            _ => Applied::Unchanged,
        }
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
            if !seen.insert(id.as_str()) {
                return Err(format!("item {id} twice in the order"));
            }
            match self.items.get(id.as_str()) {
                Some(item) if item.in_conversation => {}
                Some(_) => return Err(format!("out-of-band item {id} in the order")),
                None => return Err(format!("ordered item {id} not held")),
            }
        }
        for (id, item) in &self.items {
            if item.id != *id {
                return Err(format!("item filed under {id} is {}", item.id));
            }
            if item.in_conversation && !seen.contains(&**id) {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{ContentState, Conversation, ItemState, ResponseState};
    use crate::response::Response;
    use crate::server::ServerEvent;

    fn apply(c: &mut Conversation, event: serde_json::Value) {
        c.apply_server(&ServerEvent::from_value(event).unwrap());
    }

    // A finished response is kept compactly; what it exposes is what it was.
    #[test]
    fn a_finished_response_answers_as_it_was_stored() {
        let mut c = Conversation::new();
        apply(
            &mut c,
            json!({"type":"response.created","event_id":"e","response":{
            "id":"resp_1","object":"realtime.response","status":"in_progress",
            "conversation_id":null,"audio":{"output":{"format":{"type":"audio/pcmu"}}}}}),
        );
        let done = json!({"id":"resp_1","object":"realtime.response","status":"completed",
            "conversation_id":null,"output_modalities":["audio"],"max_output_tokens":"inf",
            "metadata":{"k":"v"},"some_new_field":[1,2],
            "output":[{"id":"a1","type":"message","role":"assistant","content":[]}],
            "usage":{"total_tokens":30,"input_tokens":10,"output_tokens":20,
                "input_token_details":{"audio_tokens":4}}});
        apply(
            &mut c,
            json!({"type":"response.done","event_id":"e","response":done}),
        );
        let state = c.response("resp_1").unwrap();
        assert!(state.is_done() && state.out_of_band());
        assert_eq!(state.output(), ["a1"]);
        assert_eq!(
            c.output_format("resp_1"),
            Some(&crate::session::AudioFormat::Pcmu(Default::default()))
        );
        let copy = c.clone();
        // The server's object, without its output, with `response.created`'s audio.
        let mut expected: Response = serde_json::from_value(done).unwrap();
        expected.output = None;
        expected.audio =
            serde_json::from_value(json!({"output":{"format":{"type":"audio/pcmu"}}})).unwrap();
        assert_eq!(state.response(), &expected);
        assert_eq!(state.usage().unwrap().output_tokens, Some(20));
        // Rebuilt or not, two copies are equal.
        assert_eq!(copy.response("resp_1"), c.response("resp_1"));
        assert_eq!(copy.response("resp_1").unwrap().response(), &expected);
    }

    // A finished item is kept without its id and the texts its parts hold; what it
    // answers is the server's item, whole, rebuilt or cloned.
    #[test]
    fn a_finished_item_answers_as_the_server_sent_it() {
        let mut c = Conversation::new();
        let message = json!({"id":"a1","object":"realtime.item","type":"message",
            "status":"completed","role":"assistant","content":[
                {"type":"output_audio","transcript":"Hello there."},
                {"type":"output_text","text":"Second part"}]});
        let call = json!({"id":"f1","object":"realtime.item","type":"function_call",
            "status":"completed","call_id":"call_1","name":"get_weather",
            "arguments":"{\"city\":\"Paris\"}"});
        for item in [&message, &call] {
            apply(
                &mut c,
                json!({"type":"conversation.item.done","event_id":"e","item":item}),
            );
        }
        let copy = c.clone();
        for (id, item) in [("a1", &message), ("f1", &call)] {
            let state = c.item(id).unwrap();
            assert!(matches!(state.item, super::item_state::StoredItem::Done(_)));
            let expected: crate::item::Item = serde_json::from_value(item.clone()).unwrap();
            assert_eq!(state.item(), &expected);
            assert_eq!(copy.item(id).unwrap().item(), &expected);
            assert_eq!(copy.item(id), c.item(id));
        }
        assert_eq!(
            c.item("a1").unwrap().role(),
            Some(&crate::item::Role::Assistant)
        );
        assert_eq!(
            c.item("f1").unwrap().function_call().unwrap().arguments(),
            "{\"city\":\"Paris\"}"
        );
        // The same item again changes nothing; a different one replaces it.
        let again = json!({"type":"conversation.item.done","event_id":"e","item":message});
        assert_eq!(
            c.apply_server(&ServerEvent::from_value(again).unwrap()),
            super::Applied::Unchanged
        );
        let mut changed = message.clone();
        changed["content"][1]["text"] = json!("Changed");
        apply(
            &mut c,
            json!({"type":"conversation.item.done","event_id":"e","item":changed}),
        );
        let expected: crate::item::Item = serde_json::from_value(changed).unwrap();
        assert_eq!(c.item("a1").unwrap().item(), &expected);
        assert_eq!(c.transcript("a1", 1), Some("Changed"));
    }

    // What one turn costs inline: every item and response stays in a map for the session,
    // so these are per-turn bytes (the boxed response object and item are on the heap,
    // once each).
    #[test]
    fn per_turn_states_stay_small_inline() {
        assert!(
            size_of::<ResponseState>() <= 96,
            "{}",
            size_of::<ResponseState>()
        );
        assert!(size_of::<ItemState>() <= 160, "{}", size_of::<ItemState>());
        assert!(
            size_of::<ContentState>() <= 80,
            "{}",
            size_of::<ContentState>()
        );
    }
}
