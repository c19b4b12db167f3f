//! The session configuration: what `session.update` sends and `session.created` /
//! `session.updated` return (GA shape; the beta dialect converts to and from it).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::extra::{Extra, nullable};
use crate::tagged::tagged_union;

/// A session's configuration. Every field is optional because `session.update` is a partial
/// update: a field that is present replaces the server's value, an absent one keeps it.
/// Fields of type `Option<Option<T>>` can also be cleared with an explicit `null`
/// (`Some(None)`), e.g. `turn_detection` to turn VAD off.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SessionConfig {
    /// `realtime` or `transcription`. Required in every GA `session.update`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<SessionKind>,
    /// `realtime.session` or `realtime.transcription_session` (server-sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// `sess_…` (server-sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Unix seconds when the session ends (server-sent; about creation + 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// The model; cannot change after the session starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `["audio"]` (audio plus transcript, the default) or `["text"]`: exactly one entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_modalities: Option<Vec<Modality>>,
    /// System instructions; `""` clears them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Input and output audio settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioConfig>,
    /// Extra outputs, e.g. `item.input_audio_transcription.logprobs`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<Vec<String>>")]
    pub include: Option<Option<Vec<String>>>,
    /// Tracing configuration (`"auto"` or an object), or `null` to turn it off.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<Value>")]
    #[cfg_attr(test, proptest(strategy = "crate::arb::nullable_json()"))]
    pub tracing: Option<Option<Value>>,
    /// Tools the model may call; `[]` removes them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// How the model chooses tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Whether the model may call several tools at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Reasoning settings for reasoning models.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<Value>")]
    #[cfg_attr(test, proptest(strategy = "crate::arb::nullable_json()"))]
    pub reasoning: Option<Option<Value>>,
    /// Output token limit per response: a count or `"inf"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<MaxTokens>,
    /// How the conversation is truncated when it outgrows the context: `"auto"`,
    /// `"disabled"` or a `retention_ratio` object.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::extra::present"
    )]
    #[cfg_attr(test, proptest(strategy = "proptest::option::of(crate::arb::json())"))]
    pub truncation: Option<Value>,
    /// A stored prompt reference, or `null`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<Value>")]
    #[cfg_attr(test, proptest(strategy = "crate::arb::nullable_json()"))]
    pub prompt: Option<Option<Value>>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl SessionConfig {
    /// A realtime (speech-to-speech) session update, `session.type = "realtime"`.
    pub fn realtime() -> Self {
        Self {
            kind: Some(SessionKind::Realtime),
            ..Self::default()
        }
    }

    /// A transcription-only session update, `session.type = "transcription"`.
    pub fn transcription() -> Self {
        Self {
            kind: Some(SessionKind::Transcription),
            ..Self::default()
        }
    }

    /// The input audio settings, created empty if absent.
    pub fn audio_input_mut(&mut self) -> &mut AudioInput {
        self.audio
            .get_or_insert_with(Default::default)
            .input
            .get_or_insert_with(Default::default)
    }

    /// The output audio settings, created empty if absent.
    pub fn audio_output_mut(&mut self) -> &mut AudioOutput {
        self.audio
            .get_or_insert_with(Default::default)
            .output
            .get_or_insert_with(Default::default)
    }

    /// The input audio format, if set.
    pub fn input_format(&self) -> Option<&AudioFormat> {
        self.audio.as_ref()?.input.as_ref()?.format.as_ref()
    }

    /// The output audio format, if set.
    pub fn output_format(&self) -> Option<&AudioFormat> {
        self.audio.as_ref()?.output.as_ref()?.format.as_ref()
    }

    /// The turn detection setting: `None` when absent, `Some(None)` when VAD is off.
    pub fn turn_detection(&self) -> Option<Option<&TurnDetection>> {
        let input = self.audio.as_ref()?.input.as_ref()?;
        input.turn_detection.as_ref().map(Option::as_ref)
    }
}

/// `session.type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SessionKind {
    /// Speech-to-speech (or text) conversation.
    Realtime,
    /// Transcription only.
    Transcription,
    /// A kind this version does not know.
    #[serde(untagged)]
    Other(String),
}

/// An output modality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Modality {
    /// Text only.
    Text,
    /// Audio with its transcript.
    Audio,
    /// A modality this version does not know.
    #[serde(untagged)]
    Other(String),
}

/// Audio settings of a session (`session.audio`) or response (`response.audio`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AudioConfig {
    /// Input audio (sessions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<AudioInput>,
    /// Output audio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<AudioOutput>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `session.audio.input`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AudioInput {
    /// The format of `input_audio_buffer.append` audio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<AudioFormat>,
    /// Input transcription, or `null` for none.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<Transcription>")]
    pub transcription: Option<Option<Transcription>>,
    /// Noise reduction, or `null` for none.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<NoiseReduction>")]
    pub noise_reduction: Option<Option<NoiseReduction>>,
    /// Voice activity detection, or `null` for manual turns (`input_audio_buffer.commit`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<TurnDetection>")]
    pub turn_detection: Option<Option<TurnDetection>>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `session.audio.output`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AudioOutput {
    /// The format of `response.output_audio.delta` audio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<AudioFormat>,
    /// The voice; can only change before the session's first audio output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<Voice>,
    /// Speaking speed, 0.25 to 1.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.25, max = 1.5))]
    #[cfg_attr(test, proptest(strategy = "proptest::option::of(crate::arb::float())"))]
    pub speed: Option<f64>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

tagged_union! {
    /// An audio format (`{"type": "audio/pcm", "rate": 24000}` and friends).
    #[cfg_attr(test, derive(proptest_derive::Arbitrary))]
    pub enum AudioFormat {
        /// 16-bit little-endian mono PCM at 24 kHz.
        "audio/pcm" => Pcm(PcmFormat),
        /// G.711 µ-law, 8 kHz mono.
        "audio/pcmu" => Pcmu(G711Format),
        /// G.711 A-law, 8 kHz mono.
        "audio/pcma" => Pcma(G711Format),
    }
}

impl AudioFormat {
    /// `{"type": "audio/pcm", "rate": 24000}`.
    pub fn pcm() -> Self {
        Self::Pcm(PcmFormat {
            rate: Some(crate::audio::PCM_SAMPLE_RATE),
            extra: Extra::default(),
        })
    }

    /// The sample rate the format implies (24 kHz for PCM, 8 kHz for G.711).
    pub fn sample_rate(&self) -> Option<u32> {
        match self {
            Self::Pcm(pcm) => Some(pcm.rate.unwrap_or(crate::audio::PCM_SAMPLE_RATE)),
            Self::Pcmu(_) | Self::Pcma(_) => Some(8_000),
            Self::Unknown(_) => None,
        }
    }
}

/// `audio/pcm` parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct PcmFormat {
    /// Always 24000: the API rejects other rates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 24000, max = 24000))]
    pub rate: Option<u32>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// G.711 parameters (none are defined).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct G711Format {
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Input transcription settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Transcription {
    /// E.g. `gpt-4o-mini-transcribe`, `whisper-1` (on Azure: a deployment name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// ISO-639-1 language of the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// A prompt to guide transcription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Several expected languages, for models that take more than one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub languages: Option<Vec<String>>,
    /// Words and names to favour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<Vec<String>>,
    /// Latency versus accuracy, for models that take it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::extra::present"
    )]
    #[cfg_attr(test, proptest(strategy = "proptest::option::of(crate::arb::json())"))]
    pub delay: Option<Value>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Noise reduction settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct NoiseReduction {
    /// `near_field` or `far_field`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

tagged_union! {
    /// Voice activity detection.
    #[cfg_attr(test, derive(proptest_derive::Arbitrary))]
    pub enum TurnDetection {
        /// Energy-based VAD.
        "server_vad" => ServerVad(ServerVad),
        /// Model-based end-of-turn detection.
        "semantic_vad" => SemanticVad(SemanticVad),
    }
}

/// `server_vad` settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ServerVad {
    /// Activation threshold, 0.0 to 1.0 (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    #[cfg_attr(test, proptest(strategy = "proptest::option::of(crate::arb::float())"))]
    pub threshold: Option<f64>,
    /// Audio kept before detected speech, in ms (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_padding_ms: Option<u32>,
    /// Silence that ends speech, in ms (default 500; the GA server reports 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence_duration_ms: Option<u32>,
    /// Milliseconds of silence after which the server prompts the model, or `null`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<u32>")]
    pub idle_timeout_ms: Option<Option<u32>>,
    /// Whether a response starts when speech stops (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_response: Option<bool>,
    /// Whether speech interrupts a running response (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupt_response: Option<bool>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `semantic_vad` settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SemanticVad {
    /// `low`, `medium`, `high` or `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eagerness: Option<String>,
    /// Whether a response starts when the turn ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_response: Option<bool>,
    /// Whether speech interrupts a running response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupt_response: Option<bool>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A voice: a built-in name (`marin`, `alloy`, …) or a custom voice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(untagged)]
pub enum Voice {
    /// A built-in voice.
    Named(String),
    /// A custom voice, `{"id": "voice_…"}`.
    Custom(CustomVoice),
}

impl From<&str> for Voice {
    fn from(name: &str) -> Self {
        Self::Named(name.to_owned())
    }
}

/// A custom voice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CustomVoice {
    /// `voice_…`.
    pub id: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

tagged_union! {
    /// A tool the model may call.
    #[cfg_attr(test, derive(proptest_derive::Arbitrary))]
    pub enum Tool {
        /// A function the client executes.
        "function" => Function(FunctionTool),
        /// A remote MCP server the API calls.
        "mcp" => Mcp(McpTool),
    }
}

impl Tool {
    /// A function tool with a JSON Schema for its arguments.
    pub fn function(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: Value,
    ) -> Self {
        Self::Function(FunctionTool {
            name: name.into(),
            description: Some(description.into()),
            parameters: Some(parameters),
            extra: Extra::default(),
        })
    }
}

/// A function tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FunctionTool {
    /// The function's name.
    pub name: String,
    /// When and how to call it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::extra::present"
    )]
    #[cfg_attr(test, proptest(strategy = "proptest::option::of(crate::arb::json())"))]
    pub parameters: Option<Value>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An MCP tool: a remote MCP server (or a connector) the API calls itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct McpTool {
    /// The server's label (required by the API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_label: Option<String>,
    /// The server's URL (or use `connector_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_url: Option<String>,
    /// A built-in connector instead of a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_id: Option<String>,
    /// What the server is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_description: Option<String>,
    /// An OAuth token for the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<String>,
    /// HTTP headers for the server, or `null`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<std::collections::BTreeMap<String, String>>")]
    pub headers: Option<Option<std::collections::BTreeMap<String, String>>>,
    /// Which tools may be used: a list of names or a filter object, or `null`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<Value>")]
    #[cfg_attr(test, proptest(strategy = "crate::arb::nullable_json()"))]
    pub allowed_tools: Option<Option<Value>>,
    /// Which calls need approval: `"always"`, `"never"` or a filter object, or `null`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<Value>")]
    #[cfg_attr(test, proptest(strategy = "crate::arb::nullable_json()"))]
    pub require_approval: Option<Option<Value>>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// How the model chooses tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(untagged)]
pub enum ToolChoice {
    /// `auto`, `none` or `required`.
    Mode(ToolChoiceMode),
    /// A specific function or MCP tool.
    Specific(SpecificTool),
}

impl ToolChoice {
    /// Forces a call of the named function.
    pub fn function(name: impl Into<String>) -> Self {
        Self::Specific(SpecificTool {
            kind: "function".to_owned(),
            name: Some(Some(name.into())),
            server_label: None,
            extra: Extra::default(),
        })
    }
}

/// `tool_choice` as a keyword.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ToolChoiceMode {
    /// The model decides.
    Auto,
    /// No tools.
    None,
    /// Some tool must be called.
    Required,
}

/// `tool_choice` naming a tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SpecificTool {
    /// `function` or `mcp`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function or MCP tool name (`null` for any tool of an MCP server).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<String>")]
    pub name: Option<Option<String>>,
    /// The MCP server's label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_label: Option<String>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A token limit: a count, or `"inf"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(untagged)]
pub enum MaxTokens {
    /// At most this many tokens (1 to 4096).
    Limit(u32),
    /// No limit beyond the model's.
    Inf(Infinite),
}

/// The literal `"inf"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Infinite {
    /// `"inf"`.
    #[serde(rename = "inf")]
    Inf,
}
