//! Client events: what a client sends to the server.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::audio::Base64Audio;
use crate::extra::{Extra, nullable};
use crate::item::Item;
use crate::response::ResponseParams;
use crate::session::SessionConfig;
use crate::tagged::tagged_union;

tagged_union! {
    fast_to_json: append_fast;
    /// An event a client sends (GA protocol).
    ///
    /// Build the common ones with the constructors ([`ClientEvent::user_text`],
    /// [`ClientEvent::audio_append`], [`ClientEvent::response_create`], …) and set an
    /// `event_id` with [`ClientEvent::with_event_id`] to have the server name it in errors.
    #[cfg_attr(test, derive(proptest_derive::Arbitrary))]
    pub enum ClientEvent {
        /// Partial update of the session configuration.
        "session.update" => SessionUpdate(SessionUpdate),
        /// Append audio to the input buffer.
        "input_audio_buffer.append" => InputAudioBufferAppend(InputAudioBufferAppend),
        /// Commit the input buffer as a user item (manual turns).
        "input_audio_buffer.commit" => InputAudioBufferCommit(Bare),
        /// Drop the input buffer.
        "input_audio_buffer.clear" => InputAudioBufferClear(Bare),
        /// Add an item to the conversation.
        "conversation.item.create" => ConversationItemCreate(ConversationItemCreate),
        /// Ask for an item, with its audio.
        "conversation.item.retrieve" => ConversationItemRetrieve(ItemIdEvent),
        /// Cut an assistant item's audio at what the user heard.
        "conversation.item.truncate" => ConversationItemTruncate(ConversationItemTruncate),
        /// Delete an item.
        "conversation.item.delete" => ConversationItemDelete(ItemIdEvent),
        /// Start a response, with optional overrides.
        "response.create" => ResponseCreate(ResponseCreate),
        /// Cancel a running response.
        "response.cancel" => ResponseCancel(ResponseCancel),
        /// Stop audio the server is playing (WebRTC and SIP only).
        "output_audio_buffer.clear" => OutputAudioBufferClear(Bare),
    }
}

/// `session.update`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SessionUpdate {
    /// Client-chosen id, echoed in errors this event causes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The fields to change; `session.type` is required.
    pub session: SessionConfig,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `input_audio_buffer.append`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct InputAudioBufferAppend {
    /// Client-chosen id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Base64 audio in the session's input format; at most 15 MiB decoded.
    pub audio: Base64Audio,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `ClientEvent::to_json`'s fast path for `input_audio_buffer.append`, most of what a voice
/// session sends: written straight into one buffer of the right size, byte for byte what
/// serde writes (`type`, `event_id` when set, `audio`); `None` when there are extra
/// fields or the audio text would need escapes (it is not base64), which serde then writes.
pub(crate) fn append_fast(event: &ClientEvent) -> Option<String> {
    let ClientEvent::InputAudioBufferAppend(append) = event else {
        return None;
    };
    let audio = append.audio.as_str();
    if !append.extra.is_empty() || crate::json::plain_len(audio.as_bytes()) != audio.len() {
        return None;
    }
    let id_len = append.event_id.as_ref().map_or(0, |id| id.len() + 16);
    let mut out = String::with_capacity(audio.len() + id_len + 48);
    out.push_str(r#"{"type":"input_audio_buffer.append""#);
    if let Some(id) = &append.event_id {
        out.push_str(r#","event_id":"#);
        if crate::json::plain_len(id.as_bytes()) == id.len() {
            out.push('"');
            out.push_str(id);
            out.push('"');
        } else {
            out.push_str(&serde_json::to_string(id).ok()?);
        }
    }
    out.push_str(r#","audio":""#);
    out.push_str(audio);
    out.push_str(r#""}"#);
    Some(out)
}

/// A client event with no payload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Bare {
    /// Client-chosen id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `conversation.item.create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ConversationItemCreate {
    /// Client-chosen id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Insert after this item (`"root"`: at the beginning; absent or `null`: at the end).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<String>")]
    pub previous_item_id: Option<Option<String>>,
    /// The item.
    pub item: Item,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An event naming one item: `conversation.item.retrieve` / `.delete`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ItemIdEvent {
    /// Client-chosen id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The item.
    pub item_id: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `conversation.item.truncate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ConversationItemTruncate {
    /// Client-chosen id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The assistant item being played.
    pub item_id: String,
    /// The audio part's index (0).
    pub content_index: u32,
    /// Milliseconds of that item's audio the user heard, from the item's start.
    pub audio_end_ms: u64,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `response.create`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ResponseCreate {
    /// Client-chosen id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Overrides for this response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseParams>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `response.cancel`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ResponseCancel {
    /// Client-chosen id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The response to cancel (default: the one running in the default conversation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ClientEvent {
    /// `conversation.item.create` with a user text message.
    pub fn user_text(text: impl Into<String>) -> Self {
        Self::item_create(Item::user_text(text))
    }

    /// `conversation.item.create` with any item, appended at the end.
    pub fn item_create(item: Item) -> Self {
        Self::ConversationItemCreate(ConversationItemCreate {
            event_id: None,
            previous_item_id: None,
            item,
            extra: Extra::default(),
        })
    }

    /// `conversation.item.create` with the output of a function call. Follow it with
    /// [`ClientEvent::response_create`] to let the model use the result.
    pub fn function_call_output(call_id: impl Into<String>, output: impl Into<String>) -> Self {
        Self::item_create(Item::function_call_output(call_id, output))
    }

    /// `input_audio_buffer.append` of 16-bit PCM samples (24 kHz mono for `audio/pcm`).
    pub fn audio_append(samples: &[i16]) -> Self {
        Self::audio_append_base64(Base64Audio::from_pcm16(samples))
    }

    /// `input_audio_buffer.append` of already encoded audio (e.g. G.711 bytes).
    pub fn audio_append_base64(audio: Base64Audio) -> Self {
        Self::InputAudioBufferAppend(InputAudioBufferAppend {
            event_id: None,
            audio,
            extra: Extra::default(),
        })
    }

    /// `input_audio_buffer.commit`.
    pub fn audio_commit() -> Self {
        Self::InputAudioBufferCommit(Bare::default())
    }

    /// `input_audio_buffer.clear`.
    pub fn audio_clear() -> Self {
        Self::InputAudioBufferClear(Bare::default())
    }

    /// `response.create` with the session's settings.
    pub fn response_create() -> Self {
        Self::ResponseCreate(ResponseCreate::default())
    }

    /// `response.create` with per-response overrides.
    pub fn response_create_with(params: ResponseParams) -> Self {
        Self::ResponseCreate(ResponseCreate {
            response: Some(params),
            ..ResponseCreate::default()
        })
    }

    /// `response.cancel` of the running response.
    pub fn response_cancel() -> Self {
        Self::ResponseCancel(ResponseCancel::default())
    }

    /// `response.cancel` of one response by id: cancelling "the running one" could hit a
    /// newer response than the caller meant.
    pub fn response_cancel_id(response_id: impl Into<String>) -> Self {
        Self::ResponseCancel(ResponseCancel {
            response_id: Some(response_id.into()),
            ..ResponseCancel::default()
        })
    }

    /// `conversation.item.truncate` of an assistant item's audio (`content_index` 0) at the
    /// milliseconds the user actually heard.
    pub fn truncate(item_id: impl Into<String>, audio_end_ms: u64) -> Self {
        Self::ConversationItemTruncate(ConversationItemTruncate {
            event_id: None,
            item_id: item_id.into(),
            content_index: 0,
            audio_end_ms,
            extra: Extra::default(),
        })
    }

    /// `conversation.item.delete`.
    pub fn item_delete(item_id: impl Into<String>) -> Self {
        Self::ConversationItemDelete(ItemIdEvent {
            event_id: None,
            item_id: item_id.into(),
            extra: Extra::default(),
        })
    }

    /// `conversation.item.retrieve`.
    pub fn item_retrieve(item_id: impl Into<String>) -> Self {
        Self::ConversationItemRetrieve(ItemIdEvent {
            event_id: None,
            item_id: item_id.into(),
            extra: Extra::default(),
        })
    }

    /// `session.update`. GA requires `session.type`: start from [`SessionConfig::realtime`] or
    /// [`SessionConfig::transcription`].
    pub fn session_update(session: SessionConfig) -> Self {
        Self::SessionUpdate(SessionUpdate {
            event_id: None,
            session,
            extra: Extra::default(),
        })
    }

    /// The client-chosen `event_id`, if set.
    pub fn event_id(&self) -> Option<&str> {
        match self {
            Self::SessionUpdate(e) => e.event_id.as_deref(),
            Self::InputAudioBufferAppend(e) => e.event_id.as_deref(),
            Self::InputAudioBufferCommit(e)
            | Self::InputAudioBufferClear(e)
            | Self::OutputAudioBufferClear(e) => e.event_id.as_deref(),
            Self::ConversationItemCreate(e) => e.event_id.as_deref(),
            Self::ConversationItemRetrieve(e) | Self::ConversationItemDelete(e) => {
                e.event_id.as_deref()
            }
            Self::ConversationItemTruncate(e) => e.event_id.as_deref(),
            Self::ResponseCreate(e) => e.event_id.as_deref(),
            Self::ResponseCancel(e) => e.event_id.as_deref(),
            Self::Unknown(u) => u
                .as_map()
                .get("event_id")
                .and_then(serde_json::Value::as_str),
        }
    }

    /// Sets the `event_id` (the server echoes it in `error.event_id`).
    #[must_use]
    pub fn with_event_id(mut self, id: impl Into<String>) -> Self {
        let id = Some(id.into());
        match &mut self {
            Self::SessionUpdate(e) => e.event_id = id,
            Self::InputAudioBufferAppend(e) => e.event_id = id,
            Self::InputAudioBufferCommit(e)
            | Self::InputAudioBufferClear(e)
            | Self::OutputAudioBufferClear(e) => {
                e.event_id = id;
            }
            Self::ConversationItemCreate(e) => e.event_id = id,
            Self::ConversationItemRetrieve(e) | Self::ConversationItemDelete(e) => e.event_id = id,
            Self::ConversationItemTruncate(e) => e.event_id = id,
            Self::ResponseCreate(e) => e.event_id = id,
            Self::ResponseCancel(e) => e.event_id = id,
            Self::Unknown(u) => {
                u.0.insert("event_id".to_owned(), id.into());
            }
        }
        self
    }
}
