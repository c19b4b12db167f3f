//! The conversation mirror: the history as the user would read it, published to any task.
//!
//! Everything comes from the session's one copy of state, the pure
//! [`Conversation`](reelthyme_schema::state::Conversation): items in the server's order
//! (`previous_item_id`, so a user item whose transcript or `conversation.item.added`
//! arrives late still sits before the reply it prompted), transcripts, truncations and
//! deletions. The layer turns it into [`Entry`]s — the assistant's text cut to what was
//! heard when its audio was truncated — and publishes a new [`History`] on a watch each
//! time it changes. Entries that did not change are shared between versions, so a new
//! version costs one rebuilt entry and a list of pointers.
//!
//! No audio is kept unless asked ([`MirrorLayer::retain_audio`], bounded), so memory stays
//! flat over an hour-long voice session: the model counts audio, it does not store it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use reelthyme_schema::ServerEvent;
use reelthyme_schema::state::{Conversation, InputTranscription, ItemState};
use reelthyme_schema::{Item, Role};
use tokio::sync::watch;

/// What kind of item an [`Entry`] shows.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryKind {
    /// A message, with its role.
    Message(Role),
    /// A function call: the function's name and its `call_id`.
    FunctionCall {
        /// The function's name.
        name: String,
        /// Pairs it with its output.
        call_id: Option<String>,
    },
    /// A function call's output.
    FunctionCallOutput {
        /// The call it answers.
        call_id: String,
    },
    /// Any other item, by its type.
    Other(String),
}

/// One item of the history.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Entry {
    /// The item's id.
    pub id: String,
    /// What it is.
    pub kind: EntryKind,
    /// What the history says: a message's text or transcript — for an assistant answer
    /// cut by a barge-in, the part that was heard (estimated from the audio played, cut at
    /// a word) —, a call's arguments, an output's text.
    pub text: String,
    /// The whole text the server generated (differs from [`Entry::text`] after a truncation).
    pub generated: String,
    /// Where its audio was truncated (`audio_end_ms`), if it was.
    pub truncated_at_ms: Option<u64>,
    /// Whether the server said it is complete.
    pub complete: bool,
    /// Whether a user audio item is still waiting for its transcript.
    pub transcribing: bool,
    /// The response that produced it.
    pub response_id: Option<String>,
}

impl Entry {
    pub(crate) fn from_state(state: &ItemState) -> Self {
        // Messages are read from the model's parts: a finished item is kept compactly,
        // and rebuilding it for the history would keep a second copy of each.
        if let Some(role) = state.role() {
            return Self::message(state, EntryKind::Message(role.clone()));
        }
        let kind = match state.item() {
            Item::Message(m) => EntryKind::Message(m.role.clone()),
            Item::FunctionCall(call) => EntryKind::FunctionCall {
                name: call.name.clone(),
                call_id: call.call_id.clone(),
            },
            Item::FunctionCallOutput(output) => EntryKind::FunctionCallOutput {
                call_id: output.call_id.clone(),
            },
            other => EntryKind::Other(other.type_name().to_owned()),
        };
        let generated = match state.item() {
            Item::FunctionCall(_) => state
                .function_call()
                .map(|f| f.arguments().to_owned())
                .unwrap_or_default(),
            Item::FunctionCallOutput(output) => output.output.clone(),
            _ => return Self::message(state, kind),
        };
        Self {
            id: state.id().to_owned(),
            kind,
            text: generated.clone(),
            generated,
            truncated_at_ms: None,
            complete: state.is_done(),
            transcribing: false,
            response_id: state.response_id().map(str::to_owned),
        }
    }

    // A message (or any item with content parts): its text from the model's parts.
    fn message(state: &ItemState, kind: EntryKind) -> Self {
        let mut text = String::new();
        let mut generated = String::new();
        let mut truncated_at_ms = None;
        let mut transcribing = false;
        for content in state.contents() {
            let part = content.text().unwrap_or_default();
            generated.push_str(part);
            // A user audio part waits for its transcript until one arrives.
            transcribing |= state.role() == Some(&Role::User)
                && (matches!(content.transcription(), InputTranscription::InProgress)
                    || (content.text().is_none()
                        && matches!(content.transcription(), InputTranscription::None)));
            match content.truncated_at_ms() {
                Some(end) => {
                    truncated_at_ms = Some(end);
                    text.push_str(heard(part, end, content.audio_ms()));
                }
                None => text.push_str(part),
            }
        }
        Self {
            id: state.id().to_owned(),
            kind,
            text,
            generated,
            truncated_at_ms,
            complete: state.is_done(),
            transcribing,
            response_id: state.response_id().map(str::to_owned),
        }
    }
}

/// A history entry in a set, found by its id.
#[derive(Debug)]
struct ById(Arc<Entry>);

impl std::borrow::Borrow<str> for ById {
    fn borrow(&self) -> &str {
        &self.0.id
    }
}

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for ById {}

impl std::hash::Hash for ById {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `str` hashes, so that lookups by `&str` find it.
        self.0.id.as_str().hash(state);
    }
}

/// The part of `transcript` heard when its audio of `total_ms` was cut at `end_ms`: in
/// proportion, back to the last word boundary (the whole of it when the length is unknown).
fn heard(transcript: &str, end_ms: u64, total_ms: Option<u64>) -> &str {
    let Some(total) = total_ms.filter(|&t| t > 0) else {
        return transcript;
    };
    if end_ms >= total {
        return transcript;
    }
    let chars = transcript.chars().count() as u64;
    let keep = usize::try_from(chars * end_ms / total).unwrap_or(usize::MAX);
    let cut = transcript
        .char_indices()
        .nth(keep)
        .map_or(transcript.len(), |(at, _)| at);
    let prefix = &transcript[..cut];
    match prefix.rfind(char::is_whitespace) {
        Some(at) if cut < transcript.len() => prefix[..at].trim_end(),
        _ => prefix,
    }
}

/// The history at one moment: its version (bumped by every change) and its entries, in
/// the server's order. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Bumped by every change.
    pub version: u64,
    /// The default conversation's items, in the server's order.
    pub entries: Arc<[Arc<Entry>]>,
}

/// Audio the mirror keeps when asked: per item, bounded in total.
#[derive(Debug, Default)]
struct Retained {
    items: HashMap<String, Vec<u8>>,
    order: VecDeque<String>,
    bytes: usize,
}

/// Reads the mirror from any task: the latest [`History`], and a wait for the next.
#[derive(Debug, Clone)]
pub struct Mirror {
    history: watch::Receiver<History>,
    audio: Arc<Mutex<Retained>>,
}

impl Mirror {
    /// A mirror and the layer that keeps it; add the layer to the session.
    pub fn new() -> (Self, MirrorLayer) {
        MirrorLayer::new()
    }

    /// The history now.
    pub fn history(&self) -> History {
        self.history.borrow().clone()
    }

    /// Waits for a history newer than the last one this handle read, and returns it.
    ///
    /// # Errors
    /// When the layer is gone (the session ended): [`ErrorKind::Closed`](crate::ErrorKind::Closed).
    pub async fn changed(&mut self) -> crate::Result<History> {
        self.history.changed().await.map_err(|_| {
            crate::Error::new(crate::ErrorKind::Closed, "the session's mirror is gone")
        })?;
        Ok(self.history.borrow_and_update().clone())
    }

    /// The output audio kept for `item_id` (the bytes of its deltas, in its response's
    /// output format), when [`MirrorLayer::retain_audio`] asked for it.
    pub fn audio(&self, item_id: &str) -> Option<Vec<u8>> {
        let retained = self
            .audio
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        retained.items.get(item_id).cloned()
    }
}

/// The layer of a [`Mirror`]. Put it before the audio layer
/// ([`Session::with_layer`](crate::Session::with_layer), then [`stream`](crate::stream))
/// when it should keep audio: the audio layer consumes the deltas.
pub struct MirrorLayer {
    publish: watch::Sender<History>,
    // Keyed by the entry's own id (no second copy of it).
    cache: HashSet<ById>,
    version: u64,
    audio: Arc<Mutex<Retained>>,
    retain_bytes: usize,
}

impl std::fmt::Debug for MirrorLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MirrorLayer")
            .field("version", &self.version)
            .field("entries", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl MirrorLayer {
    fn new() -> (Mirror, Self) {
        let (publish, history) = watch::channel(History::default());
        let audio = Arc::new(Mutex::new(Retained::default()));
        let mirror = Mirror {
            history,
            audio: audio.clone(),
        };
        let layer = Self {
            publish,
            cache: HashSet::new(),
            version: 0,
            audio,
            retain_bytes: 0,
        };
        (mirror, layer)
    }

    /// Keeps the output audio of the latest items, at most `max_bytes` in all (the oldest
    /// items dropped first); default 0: no audio is kept.
    #[must_use]
    pub fn retain_audio(mut self, max_bytes: usize) -> Self {
        self.retain_bytes = max_bytes;
        self
    }

    fn keep_audio(&self, item_id: &str, delta: &reelthyme_schema::Base64Audio) {
        let Ok(bytes) = delta.decode_bytes() else {
            return;
        };
        let mut retained = self
            .audio
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !retained.items.contains_key(item_id) {
            retained.order.push_back(item_id.to_owned());
        }
        retained.bytes += bytes.len();
        retained
            .items
            .entry(item_id.to_owned())
            .or_default()
            .extend_from_slice(&bytes);
        while retained.bytes > self.retain_bytes {
            let Some(oldest) = retained.order.pop_front() else {
                break;
            };
            if let Some(dropped) = retained.items.remove(&oldest) {
                retained.bytes -= dropped.len();
            }
        }
    }

    /// Rebuilds the entries of `changed` (all when `None`), then the list; publishes.
    fn refresh(&mut self, conversation: &Conversation, changed: Option<&[&str]>) {
        match changed {
            Some(ids) => {
                for id in ids {
                    match conversation.item(id) {
                        Some(state) => {
                            self.cache.replace(ById(Arc::new(Entry::from_state(state))));
                        }
                        None => {
                            self.cache.remove(*id);
                        }
                    }
                }
            }
            None => self.cache.clear(),
        }
        // Built at its exact size, then shared: a history is published on every change,
        // and growing a list to a new size each time fragments the heap over an hour.
        let mut entries = Vec::with_capacity(conversation.item_ids().len());
        for state in conversation.items() {
            let entry = match self.cache.get(state.id()) {
                Some(ById(entry)) => entry.clone(),
                None => {
                    let entry = Arc::new(Entry::from_state(state));
                    self.cache.insert(ById(entry.clone()));
                    entry
                }
            };
            entries.push(entry);
        }
        let entries: Arc<[Arc<Entry>]> = entries.into();
        if self.cache.len() > entries.len() {
            // Deleted or evicted items leave the cache too.
            self.cache.retain(|ById(entry)| {
                conversation
                    .item(&entry.id)
                    .is_some_and(ItemState::in_conversation)
            });
        }
        self.version += 1;
        self.publish.send_replace(History {
            version: self.version,
            entries,
        });
    }
}

impl crate::Layer for MirrorLayer {
    fn on_event(
        &mut self,
        event: ServerEvent,
        cx: &mut crate::LayerContext<'_>,
    ) -> Option<ServerEvent> {
        let conversation = cx.conversation();
        match &event {
            ServerEvent::ResponseOutputAudioDelta(delta) if self.retain_bytes > 0 => {
                self.keep_audio(&delta.item_id, &delta.delta);
            }
            ServerEvent::SessionCreated(_) => {
                self.refresh(conversation, None);
                if let Ok(mut retained) = self.audio.lock() {
                    *retained = Retained::default();
                }
            }
            ServerEvent::ResponseDone(done) => {
                let ids: Vec<&str> = done
                    .response
                    .id
                    .as_deref()
                    .and_then(|id| conversation.response(id))
                    .map(|r| r.output().iter().map(String::as_str).collect())
                    .unwrap_or_default();
                self.refresh(conversation, Some(&ids));
            }
            ServerEvent::ConversationItemAdded(_)
            | ServerEvent::ConversationItemCreated(_)
            | ServerEvent::ConversationItemDone(_)
            | ServerEvent::ConversationItemRetrieved(_)
            | ServerEvent::ConversationItemTruncated(_)
            | ServerEvent::ConversationItemDeleted(_)
            | ServerEvent::ResponseOutputItemAdded(_)
            | ServerEvent::ResponseOutputItemDone(_)
            | ServerEvent::ResponseOutputTextDelta(_)
            | ServerEvent::ResponseOutputTextDone(_)
            | ServerEvent::ResponseOutputAudioTranscriptDelta(_)
            | ServerEvent::ResponseOutputAudioTranscriptDone(_)
            | ServerEvent::ResponseOutputAudioDone(_)
            | ServerEvent::ResponseContentPartAdded(_)
            | ServerEvent::ResponseContentPartDone(_)
            | ServerEvent::ResponseFunctionCallArgumentsDelta(_)
            | ServerEvent::ResponseFunctionCallArgumentsDone(_)
            | ServerEvent::InputAudioTranscriptionDelta(_)
            | ServerEvent::InputAudioTranscriptionCompleted(_)
            | ServerEvent::InputAudioTranscriptionFailed(_) => {
                let id = event.item_id().map(str::to_owned);
                let ids: Vec<&str> = id.as_deref().into_iter().collect();
                self.refresh(conversation, Some(&ids));
            }
            _ => {}
        }
        Some(event)
    }
}
