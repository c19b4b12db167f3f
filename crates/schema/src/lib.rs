//! Typed events of the OpenAI Realtime API, with validation. No I/O.
//!
//! This crate is the vocabulary every other part of reelthyme speaks, and it stands alone:
//! telephony bridges, proxies and servers can use it without a transport or an async runtime.
//!
//! - [`ClientEvent`] and [`ServerEvent`]: every GA event, with a lossless
//!   [`Unknown`](ServerEvent::Unknown) catch-all. Unknown fields are kept in each struct's
//!   `extra`, so re-serialising what was parsed gives back the same JSON.
//! - [`Session`], [`Item`], [`ContentPart`], [`Response`] and friends.
//! - [`Base64Audio`]: PCM16 ⇄ base64 without intermediate copies.
//! - [`validate`]: JSON Schema (generated from these types, see [`schemas`]) plus the rules
//!   a schema cannot state; errors name the JSON path and the rule.
//! - [`beta`]: the retired `realtime=v1` dialect, normalised into the GA types.
//!
//! # Example
//! ```
//! use reelthyme_schema::{ClientEvent, ServerEvent, validate_client};
//!
//! let hello = ClientEvent::user_text("Hello!");
//! validate_client(&hello).unwrap();
//! assert_eq!(hello.type_name(), "conversation.item.create");
//!
//! let json = r#"{"type":"response.output_audio.delta","event_id":"event_1","response_id":"resp_1",
//!     "item_id":"item_1","output_index":0,"content_index":0,"delta":"AAD/fw=="}"#;
//! let ServerEvent::ResponseOutputAudioDelta(delta) = ServerEvent::from_json(json).unwrap() else {
//!     unreachable!()
//! };
//! assert_eq!(delta.delta.decode_pcm16().unwrap(), [0, i16::MAX]);
//! ```

mod audio;
pub mod beta;
pub mod check;
mod client;
mod extra;
mod item;
mod json;
mod response;
mod schemas;
mod server;
mod session;
mod tagged;
mod validate;

#[cfg(test)]
mod arb;

pub use audio::{AudioError, Base64Audio, MAX_APPEND_BYTES, PCM_SAMPLE_RATE};
pub use client::{
    Bare, ClientEvent, ConversationItemCreate, ConversationItemTruncate, InputAudioBufferAppend,
    ItemIdEvent, ResponseCancel, ResponseCreate, SessionUpdate,
};
pub use extra::{Extra, Unknown};
pub use item::{
    AudioContent, ContentPart, FunctionCallItem, FunctionCallOutputItem, ImageContent, Item,
    ItemReference, ItemStatus, McpItem, MessageItem, Role, TextContent,
};
pub use json::json_equal;
pub use response::{
    DurationUsage, ErrorDetail, InputTokenDetails, RateLimit, Response, ResponseParams,
    ResponseStatus, StatusDetails, TokenCounts, TranscriptionUsage, Usage,
};
pub use schemas::{SchemaFile, schema_files};
pub use server::{
    AudioDelta, BufferCommitted, ContentPartEvent, Conversation, ConversationCreated,
    DtmfEventReceived, ErrorEvent, FunctionCallArgumentsDelta, FunctionCallArgumentsDone,
    ItemDeleted, ItemEvent, ItemTruncated, McpCallArgumentsDelta, McpCallArgumentsDone,
    McpCallEvent, McpListToolsEvent, OutputAudioBufferEvent, OutputItemEvent, PartDone,
    RateLimitsUpdated, ResponseEvent, ServerBare, ServerEvent, SessionEvent, SpeechStarted,
    SpeechStopped, TextDelta, TextDone, TimeoutTriggered, TranscriptDone, TranscriptionCompleted,
    TranscriptionDelta, TranscriptionFailed, TranscriptionSegment,
};
pub use session::{
    AudioConfig, AudioFormat, AudioInput, AudioOutput, CustomVoice, FunctionTool, G711Format,
    Infinite, MaxTokens, McpTool, Modality, NoiseReduction, PcmFormat, SemanticVad, ServerVad,
    Session, SessionKind, SpecificTool, Tool, ToolChoice, ToolChoiceMode, Transcription,
    TurnDetection, Voice,
};
pub use validate::{
    Direction, Report, ValidationError, ValidationErrors, validate_client, validate_client_report,
    validate_client_value, validate_server_value,
};

/// Validates a client event: the seed's outgoing transform, ready for `Config::outgoing`.
///
/// # Errors
/// Every rule the event breaks, each with its JSON path.
pub fn validate(event: &ClientEvent) -> Result<(), ValidationErrors> {
    validate_client(event)
}
