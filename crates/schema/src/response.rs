//! Responses, `response.create` overrides, usage, rate limits and error details.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::extra::{Extra, nullable};
use crate::item::Item;
use crate::session::{AudioConfig, MaxTokens, Modality, Tool, ToolChoice};
use crate::tagged::tagged_union;

/// A response, as `response.created` and `response.done` carry it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Response {
    /// `resp_…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `realtime.response`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Where the response is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ResponseStatus>,
    /// Why it was cancelled, incomplete or failed.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<StatusDetails>")]
    pub status_details: Option<Option<StatusDetails>>,
    /// The items the response produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Vec<Item>>,
    /// The conversation it wrote to (none for out-of-band responses).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<String>")]
    pub conversation_id: Option<Option<String>>,
    /// The response's modality.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_modalities: Option<Vec<Modality>>,
    /// Its token limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<MaxTokens>,
    /// Its output audio settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioConfig>,
    /// Token usage (in `response.done`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<Usage>")]
    pub usage: Option<Option<Usage>>,
    /// The metadata given in `response.create`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<BTreeMap<String, String>>")]
    pub metadata: Option<Option<BTreeMap<String, String>>>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A response's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResponseStatus {
    /// Being produced.
    InProgress,
    /// Finished.
    Completed,
    /// Cancelled by the client or by a detected turn.
    Cancelled,
    /// Cut short (token limit, content filter).
    Incomplete,
    /// Failed; see `status_details.error`.
    Failed,
    /// A status this version does not know.
    #[serde(untagged)]
    Other(String),
}

/// Why a response ended as it did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct StatusDetails {
    /// The status these details explain.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `turn_detected`, `client_cancelled`, `max_output_tokens` or `content_filter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The error of a failed response.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<Value>")]
    #[cfg_attr(test, proptest(strategy = "crate::arb::nullable_json()"))]
    pub error: Option<Option<Value>>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Token usage of a response, or of an input transcription (`type: "tokens"`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Usage {
    /// Input plus output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    /// Input tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Input tokens by kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_token_details: Option<InputTokenDetails>,
    /// Output tokens by kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_token_details: Option<TokenCounts>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Input tokens by kind, with the cached share.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct InputTokenDetails {
    /// Text tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_tokens: Option<u64>,
    /// Audio tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
    /// Image tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tokens: Option<u64>,
    /// Tokens served from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    /// Cached tokens by kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens_details: Option<TokenCounts>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Tokens by kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TokenCounts {
    /// Text tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_tokens: Option<u64>,
    /// Audio tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
    /// Image tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tokens: Option<u64>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

tagged_union! {
    /// Usage of an input transcription.
    #[cfg_attr(test, derive(proptest_derive::Arbitrary))]
    pub enum TranscriptionUsage {
        /// Billed by tokens.
        "tokens" => Tokens(Usage),
        /// Billed by duration.
        "duration" => Duration(DurationUsage),
    }
}

/// Usage billed by audio duration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DurationUsage {
    /// Seconds of audio.
    #[cfg_attr(test, proptest(strategy = "crate::arb::float()"))]
    pub seconds: f64,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One entry of `rate_limits.updated`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct RateLimit {
    /// `requests` or `tokens`.
    pub name: String,
    /// The limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// What is left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
    /// Seconds until the limit resets (fractional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, proptest(strategy = "proptest::option::of(crate::arb::float())"))]
    pub reset_seconds: Option<f64>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The `error` object of an `error` event (and of a failed transcription).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ErrorDetail {
    /// Usually `invalid_request_error`; also `server_error`, `insufficient_quota`, ….
    #[serde(rename = "type")]
    pub kind: String,
    /// A machine-readable code (may be `null`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<String>")]
    pub code: Option<Option<String>>,
    /// What went wrong.
    pub message: String,
    /// The JSON path of the offending field, e.g. `session.audio.input.format.rate`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<String>")]
    pub param: Option<Option<String>>,
    /// The `event_id` of the client event that caused the error.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<String>")]
    pub event_id: Option<Option<String>>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ErrorDetail {
    /// The error code, if any.
    pub fn code(&self) -> Option<&str> {
        self.code.as_ref()?.as_deref()
    }

    /// The `param`, if any.
    pub fn param(&self) -> Option<&str> {
        self.param.as_ref()?.as_deref()
    }

    /// The client `event_id` that caused the error, if any.
    pub fn event_id(&self) -> Option<&str> {
        self.event_id.as_ref()?.as_deref()
    }
}

/// Per-response overrides in `response.create` (`response.create.response`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ResponseParams {
    /// `["audio"]` or `["text"]`: exactly one entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_modalities: Option<Vec<Modality>>,
    /// Instructions for this response only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Output audio settings (`audio.output.{format, voice}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioConfig>,
    /// Tools for this response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Tool choice for this response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Whether parallel tool calls are allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Reasoning settings.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<Value>")]
    #[cfg_attr(test, proptest(strategy = "crate::arb::nullable_json()"))]
    pub reasoning: Option<Option<Value>>,
    /// Token limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<MaxTokens>,
    /// `auto` (the default conversation) or `none` (out of band, written nowhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
    /// Up to 16 string pairs, returned on the response.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<BTreeMap<String, String>>")]
    pub metadata: Option<Option<BTreeMap<String, String>>>,
    /// A stored prompt reference.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<Value>")]
    #[cfg_attr(test, proptest(strategy = "crate::arb::nullable_json()"))]
    pub prompt: Option<Option<Value>>,
    /// The input to use instead of the conversation: items and item references.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Vec<Item>>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ResponseParams {
    /// Overrides for a text-only response (`output_modalities: ["text"]`).
    pub fn text() -> Self {
        Self {
            output_modalities: Some(vec![Modality::Text]),
            ..Self::default()
        }
    }

    /// Overrides for a spoken response (`output_modalities: ["audio"]`, with transcript).
    pub fn audio() -> Self {
        Self {
            output_modalities: Some(vec![Modality::Audio]),
            ..Self::default()
        }
    }
}
