//! Server events: what the server sends to a client.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audio::Base64Audio;
use crate::extra::{Extra, nullable};
use crate::item::{ContentPart, Item};
use crate::response::{ErrorDetail, RateLimit, Response, TranscriptionUsage};
use crate::session::SessionConfig;
use crate::tagged::tagged_union;

tagged_union! {
    fast_from_json: audio_delta_fast;
    /// An event the server sends (GA protocol). Types this version does not know parse
    /// into [`ServerEvent::Unknown`], whole; unknown fields of known types are kept in each
    /// struct's `extra`.
    #[cfg_attr(test, derive(proptest_derive::Arbitrary))]
    pub enum ServerEvent {
        /// An error. Non-fatal unless the server closes the connection right after it.
        "error" => Error(ErrorEvent),
        /// The session started; the first event of every connection.
        "session.created" => SessionCreated(SessionEvent),
        /// The session changed after `session.update`; carries the whole session.
        "session.updated" => SessionUpdated(SessionEvent),
        /// A conversation was created (in the GA union, but not sent by GA servers).
        "conversation.created" => ConversationCreated(ConversationCreated),
        /// An item was added to the conversation (GA).
        "conversation.item.added" => ConversationItemAdded(ItemEvent),
        /// An item is complete (GA).
        "conversation.item.done" => ConversationItemDone(ItemEvent),
        /// An item was created (beta name; still in the GA union).
        "conversation.item.created" => ConversationItemCreated(ItemEvent),
        /// The answer to `conversation.item.retrieve`, with audio.
        "conversation.item.retrieved" => ConversationItemRetrieved(ItemEvent),
        /// An assistant item's audio was truncated.
        "conversation.item.truncated" => ConversationItemTruncated(ItemTruncated),
        /// An item was deleted.
        "conversation.item.deleted" => ConversationItemDeleted(ItemDeleted),
        /// A piece of an input transcription.
        "conversation.item.input_audio_transcription.delta" => InputAudioTranscriptionDelta(TranscriptionDelta),
        /// An input transcription finished.
        "conversation.item.input_audio_transcription.completed" => InputAudioTranscriptionCompleted(TranscriptionCompleted),
        /// A diarized segment of an input transcription.
        "conversation.item.input_audio_transcription.segment" => InputAudioTranscriptionSegment(TranscriptionSegment),
        /// An input transcription failed.
        "conversation.item.input_audio_transcription.failed" => InputAudioTranscriptionFailed(TranscriptionFailed),
        /// The input buffer was committed as a user item.
        "input_audio_buffer.committed" => InputAudioBufferCommitted(BufferCommitted),
        /// The input buffer was cleared.
        "input_audio_buffer.cleared" => InputAudioBufferCleared(ServerBare),
        /// Server VAD detected the start of speech.
        "input_audio_buffer.speech_started" => InputAudioBufferSpeechStarted(SpeechStarted),
        /// Server VAD detected the end of speech.
        "input_audio_buffer.speech_stopped" => InputAudioBufferSpeechStopped(SpeechStopped),
        /// The idle timeout fired.
        "input_audio_buffer.timeout_triggered" => InputAudioBufferTimeoutTriggered(TimeoutTriggered),
        /// A DTMF key on a SIP call (carries no `event_id`).
        "input_audio_buffer.dtmf_event_received" => InputAudioBufferDtmfEventReceived(DtmfEventReceived),
        /// The server started playing audio (WebRTC, SIP).
        "output_audio_buffer.started" => OutputAudioBufferStarted(OutputAudioBufferEvent),
        /// The server's audio buffer drained (WebRTC, SIP).
        "output_audio_buffer.stopped" => OutputAudioBufferStopped(OutputAudioBufferEvent),
        /// The server's audio buffer was cleared (WebRTC, SIP).
        "output_audio_buffer.cleared" => OutputAudioBufferCleared(OutputAudioBufferEvent),
        /// A response started.
        "response.created" => ResponseCreated(ResponseEvent),
        /// A response ended (completed, cancelled, incomplete or failed).
        "response.done" => ResponseDone(ResponseEvent),
        /// A response added an output item.
        "response.output_item.added" => ResponseOutputItemAdded(OutputItemEvent),
        /// An output item is complete.
        "response.output_item.done" => ResponseOutputItemDone(OutputItemEvent),
        /// A content part started.
        "response.content_part.added" => ResponseContentPartAdded(ContentPartEvent),
        /// A content part is complete.
        "response.content_part.done" => ResponseContentPartDone(ContentPartEvent),
        /// A piece of output text.
        "response.output_text.delta" => ResponseOutputTextDelta(TextDelta),
        /// Output text is complete.
        "response.output_text.done" => ResponseOutputTextDone(TextDone),
        /// A piece of output audio.
        "response.output_audio.delta" => ResponseOutputAudioDelta(AudioDelta),
        /// Output audio is complete.
        "response.output_audio.done" => ResponseOutputAudioDone(PartDone),
        /// A piece of the output audio's transcript.
        "response.output_audio_transcript.delta" => ResponseOutputAudioTranscriptDelta(TextDelta),
        /// The output audio's transcript is complete.
        "response.output_audio_transcript.done" => ResponseOutputAudioTranscriptDone(TranscriptDone),
        /// A piece of a function call's arguments.
        "response.function_call_arguments.delta" => ResponseFunctionCallArgumentsDelta(FunctionCallArgumentsDelta),
        /// A function call's arguments are complete: run the tool now.
        "response.function_call_arguments.done" => ResponseFunctionCallArgumentsDone(FunctionCallArgumentsDone),
        /// A piece of an MCP call's arguments.
        "response.mcp_call_arguments.delta" => ResponseMcpCallArgumentsDelta(McpCallArgumentsDelta),
        /// An MCP call's arguments are complete.
        "response.mcp_call_arguments.done" => ResponseMcpCallArgumentsDone(McpCallArgumentsDone),
        /// An MCP call started.
        "response.mcp_call.in_progress" => ResponseMcpCallInProgress(McpCallEvent),
        /// An MCP call finished.
        "response.mcp_call.completed" => ResponseMcpCallCompleted(McpCallEvent),
        /// An MCP call failed.
        "response.mcp_call.failed" => ResponseMcpCallFailed(McpCallEvent),
        /// Listing an MCP server's tools started.
        "mcp_list_tools.in_progress" => McpListToolsInProgress(McpListToolsEvent),
        /// Listing an MCP server's tools finished.
        "mcp_list_tools.completed" => McpListToolsCompleted(McpListToolsEvent),
        /// Listing an MCP server's tools failed.
        "mcp_list_tools.failed" => McpListToolsFailed(McpListToolsEvent),
        /// Rate limits after a response (GA sends it after `response.done`).
        "rate_limits.updated" => RateLimitsUpdated(RateLimitsUpdated),
    }
}

impl ServerEvent {
    /// The server's `event_id` (absent only on `input_audio_buffer.dtmf_event_received`).
    pub fn event_id(&self) -> Option<&str> {
        self.field_str("event_id")
    }

    /// The `response_id` the event belongs to, if it belongs to a response.
    pub fn response_id(&self) -> Option<&str> {
        match self {
            Self::ResponseCreated(e) | Self::ResponseDone(e) => e.response.id.as_deref(),
            _ => self.field_str("response_id"),
        }
    }

    /// The `item_id` the event is about, if it is about an item.
    pub fn item_id(&self) -> Option<&str> {
        match self {
            Self::ConversationItemAdded(e)
            | Self::ConversationItemDone(e)
            | Self::ConversationItemCreated(e)
            | Self::ConversationItemRetrieved(e) => e.item.id(),
            Self::ResponseOutputItemAdded(e) | Self::ResponseOutputItemDone(e) => e.item.id(),
            _ => self.field_str("item_id"),
        }
    }

    /// The error, for `error` events.
    pub fn as_error(&self) -> Option<&ErrorDetail> {
        match self {
            Self::Error(e) => Some(&e.error),
            _ => None,
        }
    }

    // A top-level string field of the variants that have it, without serialising.
    fn field_str(&self, name: &str) -> Option<&str> {
        match (self, name) {
            (Self::InputAudioBufferDtmfEventReceived(e), "event_id") => e.event_id.as_deref(),
            (Self::Unknown(u), _) => u.as_map().get(name).and_then(Value::as_str),
            (Self::ResponseOutputAudioDelta(e), "response_id") => Some(&e.response_id),
            (Self::ResponseOutputAudioDelta(e), "item_id") => Some(&e.item_id),
            (
                Self::ResponseOutputTextDelta(e) | Self::ResponseOutputAudioTranscriptDelta(e),
                "response_id",
            ) => Some(&e.response_id),
            (
                Self::ResponseOutputTextDelta(e) | Self::ResponseOutputAudioTranscriptDelta(e),
                "item_id",
            ) => Some(&e.item_id),
            (Self::ResponseOutputTextDone(e), "response_id") => Some(&e.response_id),
            (Self::ResponseOutputTextDone(e), "item_id") => Some(&e.item_id),
            (Self::ResponseOutputAudioTranscriptDone(e), "response_id") => Some(&e.response_id),
            (Self::ResponseOutputAudioTranscriptDone(e), "item_id") => Some(&e.item_id),
            (Self::ResponseOutputAudioDone(e), "response_id") => Some(&e.response_id),
            (Self::ResponseOutputAudioDone(e), "item_id") => Some(&e.item_id),
            (
                Self::ResponseContentPartAdded(e) | Self::ResponseContentPartDone(e),
                "response_id",
            ) => Some(&e.response_id),
            (Self::ResponseContentPartAdded(e) | Self::ResponseContentPartDone(e), "item_id") => {
                Some(&e.item_id)
            }
            (Self::ResponseOutputItemAdded(e) | Self::ResponseOutputItemDone(e), "response_id") => {
                Some(&e.response_id)
            }
            (Self::ResponseFunctionCallArgumentsDelta(e), "response_id") => Some(&e.response_id),
            (Self::ResponseFunctionCallArgumentsDelta(e), "item_id") => Some(&e.item_id),
            (Self::ResponseFunctionCallArgumentsDone(e), "response_id") => Some(&e.response_id),
            (Self::ResponseFunctionCallArgumentsDone(e), "item_id") => Some(&e.item_id),
            (Self::ResponseMcpCallArgumentsDelta(e), "response_id") => Some(&e.response_id),
            (Self::ResponseMcpCallArgumentsDelta(e), "item_id") => Some(&e.item_id),
            (Self::ResponseMcpCallArgumentsDone(e), "response_id") => Some(&e.response_id),
            (Self::ResponseMcpCallArgumentsDone(e), "item_id") => Some(&e.item_id),
            (
                Self::ResponseMcpCallInProgress(e)
                | Self::ResponseMcpCallCompleted(e)
                | Self::ResponseMcpCallFailed(e),
                "item_id",
            ) => Some(&e.item_id),
            (
                Self::McpListToolsInProgress(e)
                | Self::McpListToolsCompleted(e)
                | Self::McpListToolsFailed(e),
                "item_id",
            ) => Some(&e.item_id),
            (
                Self::OutputAudioBufferStarted(e)
                | Self::OutputAudioBufferStopped(e)
                | Self::OutputAudioBufferCleared(e),
                "response_id",
            ) => Some(&e.response_id),
            (Self::ConversationItemTruncated(e), "item_id") => Some(&e.item_id),
            (Self::ConversationItemDeleted(e), "item_id") => Some(&e.item_id),
            (Self::InputAudioTranscriptionDelta(e), "item_id") => Some(&e.item_id),
            (Self::InputAudioTranscriptionCompleted(e), "item_id") => Some(&e.item_id),
            (Self::InputAudioTranscriptionSegment(e), "item_id") => Some(&e.item_id),
            (Self::InputAudioTranscriptionFailed(e), "item_id") => Some(&e.item_id),
            (Self::InputAudioBufferCommitted(e), "item_id") => Some(&e.item_id),
            (Self::InputAudioBufferSpeechStarted(e), "item_id") => Some(&e.item_id),
            (Self::InputAudioBufferSpeechStopped(e), "item_id") => Some(&e.item_id),
            (Self::InputAudioBufferTimeoutTriggered(e), "item_id") => Some(&e.item_id),
            (_, "event_id") => self.common_event_id(),
            _ => None,
        }
    }

    fn common_event_id(&self) -> Option<&str> {
        Some(match self {
            Self::Error(e) => &e.event_id,
            Self::SessionCreated(e) | Self::SessionUpdated(e) => &e.event_id,
            Self::ConversationCreated(e) => &e.event_id,
            Self::ConversationItemAdded(e)
            | Self::ConversationItemDone(e)
            | Self::ConversationItemCreated(e)
            | Self::ConversationItemRetrieved(e) => &e.event_id,
            Self::ConversationItemTruncated(e) => &e.event_id,
            Self::ConversationItemDeleted(e) => &e.event_id,
            Self::InputAudioTranscriptionDelta(e) => &e.event_id,
            Self::InputAudioTranscriptionCompleted(e) => &e.event_id,
            Self::InputAudioTranscriptionSegment(e) => &e.event_id,
            Self::InputAudioTranscriptionFailed(e) => &e.event_id,
            Self::InputAudioBufferCommitted(e) => &e.event_id,
            Self::InputAudioBufferCleared(e) => &e.event_id,
            Self::InputAudioBufferSpeechStarted(e) => &e.event_id,
            Self::InputAudioBufferSpeechStopped(e) => &e.event_id,
            Self::InputAudioBufferTimeoutTriggered(e) => &e.event_id,
            Self::OutputAudioBufferStarted(e)
            | Self::OutputAudioBufferStopped(e)
            | Self::OutputAudioBufferCleared(e) => &e.event_id,
            Self::ResponseCreated(e) | Self::ResponseDone(e) => &e.event_id,
            Self::ResponseOutputItemAdded(e) | Self::ResponseOutputItemDone(e) => &e.event_id,
            Self::ResponseContentPartAdded(e) | Self::ResponseContentPartDone(e) => &e.event_id,
            Self::ResponseOutputTextDelta(e) | Self::ResponseOutputAudioTranscriptDelta(e) => {
                &e.event_id
            }
            Self::ResponseOutputTextDone(e) => &e.event_id,
            Self::ResponseOutputAudioDelta(e) => &e.event_id,
            Self::ResponseOutputAudioDone(e) => &e.event_id,
            Self::ResponseOutputAudioTranscriptDone(e) => &e.event_id,
            Self::ResponseFunctionCallArgumentsDelta(e) => &e.event_id,
            Self::ResponseFunctionCallArgumentsDone(e) => &e.event_id,
            Self::ResponseMcpCallArgumentsDelta(e) => &e.event_id,
            Self::ResponseMcpCallArgumentsDone(e) => &e.event_id,
            Self::ResponseMcpCallInProgress(e)
            | Self::ResponseMcpCallCompleted(e)
            | Self::ResponseMcpCallFailed(e) => &e.event_id,
            Self::McpListToolsInProgress(e)
            | Self::McpListToolsCompleted(e)
            | Self::McpListToolsFailed(e) => &e.event_id,
            Self::RateLimitsUpdated(e) => &e.event_id,
            Self::InputAudioBufferDtmfEventReceived(_) | Self::Unknown(_) => return None,
        })
    }
}

/// `error`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ErrorEvent {
    /// The server's id for this event.
    pub event_id: String,
    /// What went wrong.
    pub error: ErrorDetail,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `session.created` / `session.updated`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SessionEvent {
    /// The server's id for this event.
    pub event_id: String,
    /// The whole session.
    pub session: SessionConfig,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `conversation.created`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ConversationCreated {
    /// The server's id for this event.
    pub event_id: String,
    /// The conversation.
    pub conversation: Conversation,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A conversation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Conversation {
    /// `conv_…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `realtime.conversation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `conversation.item.added` / `.done` / `.created` / `.retrieved`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ItemEvent {
    /// The server's id for this event.
    pub event_id: String,
    /// The item before it (often an explicit `null`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<String>")]
    pub previous_item_id: Option<Option<String>>,
    /// The item.
    pub item: Item,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `conversation.item.truncated`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ItemTruncated {
    /// The server's id for this event.
    pub event_id: String,
    /// The truncated item.
    pub item_id: String,
    /// The truncated part.
    pub content_index: u32,
    /// Where the audio now ends.
    pub audio_end_ms: u64,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `conversation.item.deleted`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ItemDeleted {
    /// The server's id for this event.
    pub event_id: String,
    /// The deleted item.
    pub item_id: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `conversation.item.input_audio_transcription.delta`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TranscriptionDelta {
    /// The server's id for this event.
    pub event_id: String,
    /// The user item being transcribed.
    pub item_id: String,
    /// Its audio part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_index: Option<u32>,
    /// The new text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<String>,
    /// Log probabilities, when requested with `include`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<Vec<Value>>")]
    #[cfg_attr(test, proptest(strategy = "crate::arb::nullable_json_list()"))]
    pub logprobs: Option<Option<Vec<Value>>>,
    /// Random padding against length side channels (undocumented, sent on deltas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obfuscation: Option<String>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `conversation.item.input_audio_transcription.completed`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TranscriptionCompleted {
    /// The server's id for this event.
    pub event_id: String,
    /// The user item.
    pub item_id: String,
    /// Its audio part.
    pub content_index: u32,
    /// The transcript.
    pub transcript: String,
    /// Usage (absent from beta-era servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TranscriptionUsage>,
    /// Log probabilities, when requested with `include`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<Vec<Value>>")]
    #[cfg_attr(test, proptest(strategy = "crate::arb::nullable_json_list()"))]
    pub logprobs: Option<Option<Vec<Value>>>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `conversation.item.input_audio_transcription.segment`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TranscriptionSegment {
    /// The server's id for this event.
    pub event_id: String,
    /// The user item.
    pub item_id: String,
    /// Its audio part.
    pub content_index: u32,
    /// The segment's text.
    pub text: String,
    /// The segment's id.
    pub id: String,
    /// Who spoke.
    pub speaker: String,
    /// Start, in seconds.
    #[cfg_attr(test, proptest(strategy = "crate::arb::float()"))]
    pub start: f64,
    /// End, in seconds.
    #[cfg_attr(test, proptest(strategy = "crate::arb::float()"))]
    pub end: f64,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `conversation.item.input_audio_transcription.failed`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TranscriptionFailed {
    /// The server's id for this event.
    pub event_id: String,
    /// The user item.
    pub item_id: String,
    /// Its audio part.
    pub content_index: u32,
    /// Why it failed (every field optional, unlike `error` events).
    pub error: TranscriptionError,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The `error` of a failed transcription.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TranscriptionError {
    /// E.g. `transcription_error`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// E.g. `audio_unintelligible`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<String>")]
    pub code: Option<Option<String>>,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The offending parameter.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<String>")]
    pub param: Option<Option<String>>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `input_audio_buffer.committed`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct BufferCommitted {
    /// The server's id for this event.
    pub event_id: String,
    /// The item before the new user item (may be `null`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<String>")]
    pub previous_item_id: Option<Option<String>>,
    /// The user item the buffer became.
    pub item_id: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A server event with no payload (`input_audio_buffer.cleared`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ServerBare {
    /// The server's id for this event.
    pub event_id: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `input_audio_buffer.speech_started`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SpeechStarted {
    /// The server's id for this event.
    pub event_id: String,
    /// Where speech started, in ms of the session's input audio (prefix padding included).
    pub audio_start_ms: u64,
    /// The user item this speech will become.
    pub item_id: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `input_audio_buffer.speech_stopped`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SpeechStopped {
    /// The server's id for this event.
    pub event_id: String,
    /// Where speech stopped, in ms of the session's input audio.
    pub audio_end_ms: u64,
    /// The user item.
    pub item_id: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `input_audio_buffer.timeout_triggered`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TimeoutTriggered {
    /// The server's id for this event.
    pub event_id: String,
    /// Start of the idle span, in ms.
    pub audio_start_ms: u64,
    /// End of the idle span, in ms.
    pub audio_end_ms: u64,
    /// The (empty) user item.
    pub item_id: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `input_audio_buffer.dtmf_event_received` (SIP).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DtmfEventReceived {
    /// Absent on the wire today; kept if a server adds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The key: `0`–`9`, `*`, `#`, `A`–`D`.
    pub event: String,
    /// Unix seconds.
    pub received_at: i64,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `output_audio_buffer.started` / `.stopped` / `.cleared`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OutputAudioBufferEvent {
    /// The server's id for this event.
    pub event_id: String,
    /// The response whose audio it is.
    pub response_id: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `response.created` / `response.done`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ResponseEvent {
    /// The server's id for this event.
    pub event_id: String,
    /// The response.
    pub response: Response,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `response.output_item.added` / `.done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OutputItemEvent {
    /// The server's id for this event.
    pub event_id: String,
    /// The response.
    pub response_id: String,
    /// The item's index in the response's output.
    pub output_index: u32,
    /// The item.
    pub item: Item,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `response.content_part.added` / `.done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ContentPartEvent {
    /// The server's id for this event.
    pub event_id: String,
    /// The response.
    pub response_id: String,
    /// The item.
    pub item_id: String,
    /// The item's index in the response's output.
    pub output_index: u32,
    /// The part's index in the item's content.
    pub content_index: u32,
    /// The part (`text` / `audio`, even in GA).
    pub part: ContentPart,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `response.output_text.delta` / `response.output_audio_transcript.delta`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TextDelta {
    /// The server's id for this event.
    pub event_id: String,
    /// The response.
    pub response_id: String,
    /// The item.
    pub item_id: String,
    /// The item's index in the response's output.
    pub output_index: u32,
    /// The part's index in the item's content.
    pub content_index: u32,
    /// The new text.
    pub delta: String,
    /// Random padding against length side channels (undocumented, sent on deltas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obfuscation: Option<String>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `response.output_text.done`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TextDone {
    /// The server's id for this event.
    pub event_id: String,
    /// The response.
    pub response_id: String,
    /// The item.
    pub item_id: String,
    /// The item's index in the response's output.
    pub output_index: u32,
    /// The part's index in the item's content.
    pub content_index: u32,
    /// The whole text.
    pub text: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `response.output_audio_transcript.done`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TranscriptDone {
    /// The server's id for this event.
    pub event_id: String,
    /// The response.
    pub response_id: String,
    /// The item.
    pub item_id: String,
    /// The item's index in the response's output.
    pub output_index: u32,
    /// The part's index in the item's content.
    pub content_index: u32,
    /// The whole transcript.
    pub transcript: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `response.output_audio.delta`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AudioDelta {
    /// The server's id for this event.
    pub event_id: String,
    /// The response.
    pub response_id: String,
    /// The item.
    pub item_id: String,
    /// The item's index in the response's output.
    pub output_index: u32,
    /// The part's index in the item's content.
    pub content_index: u32,
    /// Base64 audio in the session's output format.
    pub delta: Base64Audio,
    /// Random padding against length side channels (undocumented, sent on deltas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obfuscation: Option<String>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `ServerEvent::from_json`'s fast path for `response.output_audio.delta`, most of what a
/// voice session receives: the compact shape servers write (`type` first, then the known
/// fields in any order, strings without escapes), read without serde; `None` for
/// anything else (whitespace, escapes, unknown or repeated fields, other numbers), which
/// the general parse then reads — so the result is always the general parse's.
pub(crate) fn audio_delta_fast(json: &str) -> Option<ServerEvent> {
    use crate::json::{Compact, once};
    let mut c = Compact::new(json);
    c.literal(r#"{"type":"response.output_audio.delta""#)?;
    let (mut event_id, mut response_id, mut item_id) = (None, None, None);
    let (mut output_index, mut content_index) = (None, None);
    let (mut delta, mut obfuscation) = (None, None);
    loop {
        match c.byte()? {
            b',' => {}
            b'}' => break,
            _ => return None,
        }
        let key = c.string()?;
        c.literal(":")?;
        match key {
            "event_id" => once(&mut event_id, c.string()?)?,
            "response_id" => once(&mut response_id, c.string()?)?,
            "item_id" => once(&mut item_id, c.string()?)?,
            "output_index" => once(&mut output_index, c.u32()?)?,
            "content_index" => once(&mut content_index, c.u32()?)?,
            "delta" => once(&mut delta, c.string()?)?,
            "obfuscation" => once(&mut obfuscation, c.string()?)?,
            _ => return None,
        }
    }
    if !c.at_end() {
        return None;
    }
    Some(ServerEvent::ResponseOutputAudioDelta(AudioDelta {
        event_id: event_id?.to_owned(),
        response_id: response_id?.to_owned(),
        item_id: item_id?.to_owned(),
        output_index: output_index?,
        content_index: content_index?,
        delta: Base64Audio::from_base64(delta?),
        obfuscation: obfuscation.map(str::to_owned),
        extra: Extra::default(),
    }))
}

/// `response.output_audio.done`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct PartDone {
    /// The server's id for this event.
    pub event_id: String,
    /// The response.
    pub response_id: String,
    /// The item.
    pub item_id: String,
    /// The item's index in the response's output.
    pub output_index: u32,
    /// The part's index in the item's content.
    pub content_index: u32,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `response.function_call_arguments.delta`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FunctionCallArgumentsDelta {
    /// The server's id for this event.
    pub event_id: String,
    /// The response.
    pub response_id: String,
    /// The function call item.
    pub item_id: String,
    /// The item's index in the response's output.
    pub output_index: u32,
    /// Pairs the call with its output.
    pub call_id: String,
    /// The new arguments text.
    pub delta: String,
    /// Random padding against length side channels (undocumented, sent on deltas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obfuscation: Option<String>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `response.function_call_arguments.done`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FunctionCallArgumentsDone {
    /// The server's id for this event.
    pub event_id: String,
    /// The response.
    pub response_id: String,
    /// The function call item.
    pub item_id: String,
    /// The item's index in the response's output.
    pub output_index: u32,
    /// Pairs the call with its output.
    pub call_id: String,
    /// The function's name (required in GA; beta servers left it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The whole arguments, as JSON text.
    pub arguments: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `response.mcp_call_arguments.delta`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct McpCallArgumentsDelta {
    /// The server's id for this event.
    pub event_id: String,
    /// The response.
    pub response_id: String,
    /// The MCP call item.
    pub item_id: String,
    /// The item's index in the response's output.
    pub output_index: u32,
    /// The new arguments text.
    pub delta: String,
    /// Random padding against length side channels (undocumented, sent on deltas).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<String>")]
    pub obfuscation: Option<Option<String>>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `response.mcp_call_arguments.done`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct McpCallArgumentsDone {
    /// The server's id for this event.
    pub event_id: String,
    /// The response.
    pub response_id: String,
    /// The MCP call item.
    pub item_id: String,
    /// The item's index in the response's output.
    pub output_index: u32,
    /// The whole arguments, as JSON text.
    pub arguments: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `response.mcp_call.in_progress` / `.completed` / `.failed`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct McpCallEvent {
    /// The server's id for this event.
    pub event_id: String,
    /// The MCP call item.
    pub item_id: String,
    /// The item's index in the response's output.
    pub output_index: u32,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `mcp_list_tools.in_progress` / `.completed` / `.failed`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct McpListToolsEvent {
    /// The server's id for this event.
    pub event_id: String,
    /// The `mcp_list_tools` item.
    pub item_id: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `rate_limits.updated`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct RateLimitsUpdated {
    /// The server's id for this event.
    pub event_id: String,
    /// The limits (GA sends only `tokens`).
    pub rate_limits: Vec<RateLimit>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
