//! Typed events of the OpenAI Realtime API, with validation. No I/O.
//!
//! This crate is the vocabulary every other part of reelthyme speaks, and it stands alone:
//! telephony bridges, proxies and servers can use it without a transport or an async runtime.
//!
//! - [`ClientEvent`] and [`ServerEvent`]: every GA event, with a lossless
//!   [`Unknown`](ServerEvent::Unknown) catch-all. Unknown fields are kept in each struct's
//!   `extra`, so re-serialising what was parsed gives back the same JSON.
//! - [`SessionConfig`], [`Item`], [`ContentPart`], [`Response`] and friends.
//! - [`Base64Audio`]: PCM16 ⇄ base64 without intermediate copies.
//! - [`validate`]: JSON Schema (generated from these types, see [`schema_files`]) plus the rules
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

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod audio;
pub mod beta;
pub use beta::Dialect;
pub mod check;
mod client;
mod conversation;
mod extra;
pub mod g711;
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
    TranscriptionDelta, TranscriptionError, TranscriptionFailed, TranscriptionSegment,
};
pub use session::{
    AudioConfig, AudioFormat, AudioInput, AudioOutput, CustomVoice, FunctionTool, G711Format,
    Infinite, MaxTokens, McpTool, Modality, NoiseReduction, PcmFormat, SemanticVad, ServerVad,
    SessionConfig, SessionKind, SpecificTool, Tool, ToolChoice, ToolChoiceMode, Transcription,
    TurnDetection, Voice,
};
/// The conversation as the server last described it: [`state::Conversation`], a pure model
/// fed with a session's events that every layer reads instead of keeping its own copy.
///
/// (A module of its own because [`Conversation`] already names the `conversation.created`
/// payload.)
pub mod state {
    pub use crate::conversation::{
        Applied, ContentState, Conversation, FunctionCall, Ignored, InputBuffer,
        InputTranscription, ItemRequest, ItemState, MAX_COMMITTED, MAX_CONTENT_PARTS, MAX_ITEMS,
        MAX_PENDING, MAX_RESPONSES, MAX_TEXT_BYTES, MAX_TOTAL_TEXT_BYTES, ResponseRequest,
        ResponseState,
    };
}
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

#[cfg(test)]
mod roundtrip {
    //! serialize → parse → serialize is the identity, for generated events of every variant.

    use std::collections::BTreeSet;
    use std::fmt::Debug;

    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::*;

    /// Runs `cases` generated values through both parsers (the fast text path and serde's
    /// generic one) and returns the `type`s seen.
    fn check_identity<T>(
        cases: u32,
        from_json: fn(&str) -> Result<T, serde_json::Error>,
        name: fn(&T) -> String,
    ) -> BTreeSet<String>
    where
        T: Arbitrary + Serialize + DeserializeOwned + Debug,
    {
        let seen = std::cell::RefCell::new(BTreeSet::new());
        let mut runner = TestRunner::new(Config {
            cases,
            ..Config::default()
        });
        runner
            .run(&any::<T>(), |event| {
                let first = serde_json::to_string(&event).unwrap();
                let fast =
                    from_json(&first).map_err(|e| TestCaseError::fail(format!("{e}: {first}")))?;
                prop_assert_eq!(&serde_json::to_string(&fast).unwrap(), &first);
                let generic: T =
                    serde_json::from_str(&first).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&serde_json::to_string(&generic).unwrap(), &first);
                seen.borrow_mut().insert(name(&event));
                Ok(())
            })
            .unwrap();
        seen.into_inner()
    }

    /// The derived strategies of these wide enums are deep types; unoptimised builds need
    /// more stack than a test thread's default to build them.
    fn with_big_stack<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
        std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn client_events_round_trip() {
        let seen = with_big_stack(|| {
            check_identity::<ClientEvent>(512, ClientEvent::from_json, |e| e.type_name().to_owned())
        });
        for tag in ClientEvent::TYPES {
            assert!(seen.contains(*tag), "no {tag} generated");
        }
    }

    #[test]
    fn server_events_round_trip() {
        let seen = with_big_stack(|| {
            check_identity::<ServerEvent>(1024, ServerEvent::from_json, |e| {
                e.type_name().to_owned()
            })
        });
        for tag in ServerEvent::TYPES {
            assert!(seen.contains(*tag), "no {tag} generated");
        }
    }

    #[test]
    fn generated_client_events_match_their_own_schema_shape() {
        // Every generated event serialises to something the schema recognises as the same
        // type: the schema's `type` const and the enum's tag agree.
        let schema = schemas::client_events();
        let defs = schema["$defs"].as_object().unwrap();
        for tag in ClientEvent::TYPES {
            let name = format!("ClientEvent{}", tagged::camel_case(tag));
            assert_eq!(defs[&name]["properties"]["type"]["const"], *tag);
        }
    }
}

// README.md's examples are tested as doctests too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
