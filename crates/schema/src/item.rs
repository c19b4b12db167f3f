//! Conversation items and their content parts.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::audio::Base64Audio;
use crate::extra::{Extra, nullable};
use crate::tagged::tagged_union;

tagged_union! {
    /// A conversation item: a message, a function call or its output, an MCP item, or (in
    /// `response.create.response.input`) a reference to an existing item.
    #[cfg_attr(test, derive(proptest_derive::Arbitrary))]
    pub enum Item {
        /// A system, user or assistant message.
        "message" => Message(MessageItem),
        /// A call of a function tool by the model.
        "function_call" => FunctionCall(FunctionCallItem),
        /// The client's result of a function call.
        "function_call_output" => FunctionCallOutput(FunctionCallOutputItem),
        /// A call of an MCP tool.
        "mcp_call" => McpCall(McpItem),
        /// The tools an MCP server offers.
        "mcp_list_tools" => McpListTools(McpItem),
        /// The model asks to call an MCP tool that needs approval.
        "mcp_approval_request" => McpApprovalRequest(McpItem),
        /// The client's answer to an approval request.
        "mcp_approval_response" => McpApprovalResponse(McpItem),
        /// A reference to an item already in the conversation (`{"type": "item_reference", "id": …}`).
        "item_reference" => Reference(ItemReference),
    }
}

impl Item {
    /// A user message with one `input_text` part.
    pub fn user_text(text: impl Into<String>) -> Self {
        Self::message(Role::User, vec![ContentPart::input_text(text)])
    }

    /// A system message with one `input_text` part.
    pub fn system_text(text: impl Into<String>) -> Self {
        Self::message(Role::System, vec![ContentPart::input_text(text)])
    }

    /// An assistant message with one `output_text` part (to seed a conversation's history).
    pub fn assistant_text(text: impl Into<String>) -> Self {
        let part = ContentPart::OutputText(TextContent {
            text: Some(text.into()),
            extra: Extra::default(),
        });
        Self::message(Role::Assistant, vec![part])
    }

    /// A user message with one `input_audio` part of PCM16 samples.
    pub fn user_audio(samples: &[i16]) -> Self {
        let part = ContentPart::InputAudio(AudioContent {
            audio: Some(Base64Audio::from_pcm16(samples)),
            ..AudioContent::default()
        });
        Self::message(Role::User, vec![part])
    }

    /// A message with the given role and content.
    pub fn message(role: Role, content: Vec<ContentPart>) -> Self {
        Self::Message(MessageItem {
            id: None,
            object: None,
            status: None,
            role,
            content,
            extra: Extra::default(),
        })
    }

    /// The output of a function call, to send back with `conversation.item.create`.
    pub fn function_call_output(call_id: impl Into<String>, output: impl Into<String>) -> Self {
        Self::FunctionCallOutput(FunctionCallOutputItem {
            id: None,
            object: None,
            status: None,
            call_id: call_id.into(),
            output: output.into(),
            extra: Extra::default(),
        })
    }

    /// A reference to an existing item.
    pub fn reference(id: impl Into<String>) -> Self {
        Self::Reference(ItemReference {
            id: id.into(),
            extra: Extra::default(),
        })
    }

    /// The item's id, if it has one.
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Message(m) => m.id.as_deref(),
            Self::FunctionCall(f) => f.id.as_deref(),
            Self::FunctionCallOutput(f) => f.id.as_deref(),
            Self::McpCall(m)
            | Self::McpListTools(m)
            | Self::McpApprovalRequest(m)
            | Self::McpApprovalResponse(m) => m.id.as_deref(),
            Self::Reference(r) => Some(&r.id),
            Self::Unknown(u) => u.as_map().get("id").and_then(serde_json::Value::as_str),
        }
    }
}

/// A message item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct MessageItem {
    /// `item_…` (server-assigned when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `realtime.item`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Completion status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ItemStatus>,
    /// Who speaks.
    pub role: Role,
    /// The parts of the message.
    pub content: Vec<ContentPart>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl MessageItem {
    /// The message's text: text parts and audio transcripts, concatenated.
    pub fn text(&self) -> String {
        self.content.iter().filter_map(ContentPart::text).collect()
    }
}

/// A function call by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FunctionCallItem {
    /// `item_…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `realtime.item`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Completion status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ItemStatus>,
    /// Pairs the call with its `function_call_output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// The function's name.
    pub name: String,
    /// The arguments, as JSON text.
    pub arguments: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The client's result of a function call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FunctionCallOutputItem {
    /// `item_…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `realtime.item`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Completion status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ItemStatus>,
    /// The `call_id` of the call this answers.
    pub call_id: String,
    /// The result, as text (often JSON).
    pub output: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An MCP item: a call (`mcp_call`), a tool listing (`mcp_list_tools`), an approval request
/// or the client's approval response. Each kind uses the fields that apply to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct McpItem {
    /// `item_…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The MCP server's label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_label: Option<String>,
    /// The tool called (calls, approval requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The call's arguments, as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    /// The call's output.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<String>")]
    pub output: Option<Option<String>>,
    /// The call's error.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<serde_json::Value>")]
    #[cfg_attr(test, proptest(strategy = "crate::arb::nullable_json()"))]
    pub error: Option<Option<serde_json::Value>>,
    /// The approval request a call or response answers.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<String>")]
    pub approval_request_id: Option<Option<String>>,
    /// The client's decision (approval responses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approve: Option<bool>,
    /// Why (approval responses).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<String>")]
    pub reason: Option<Option<String>>,
    /// The tools an MCP server offers (tool listings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::option::of(proptest::collection::vec(crate::arb::json(), 0..2))"
        )
    )]
    pub tools: Option<Vec<serde_json::Value>>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A reference to an existing item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ItemReference {
    /// The referenced item's id.
    pub id: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A message's role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Role {
    /// Instructions.
    System,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// A role this version does not know.
    #[serde(untagged)]
    Other(String),
}

/// An item's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ItemStatus {
    /// Finished.
    Completed,
    /// Cut short (e.g. by an interruption).
    Incomplete,
    /// Still being produced.
    InProgress,
    /// A status this version does not know.
    #[serde(untagged)]
    Other(String),
}

tagged_union! {
    /// A content part of a message.
    ///
    /// GA is inconsistent about assistant parts: items say `output_text` / `output_audio`,
    /// while `response.content_part.*` (and some items) say `text` / `audio`. Both
    /// spellings parse, each into its own variant so that re-serialising keeps the spelling;
    /// [`ContentPart::text`] reads either.
    #[cfg_attr(test, derive(proptest_derive::Arbitrary))]
    pub enum ContentPart {
        /// User or system text.
        "input_text" => InputText(TextContent),
        /// User audio.
        "input_audio" => InputAudio(AudioContent),
        /// A user image (`data:` URL).
        "input_image" => InputImage(ImageContent),
        /// Assistant text (GA item spelling).
        "output_text" => OutputText(TextContent),
        /// Assistant audio (GA item spelling).
        "output_audio" => OutputAudio(AudioContent),
        /// Assistant text (content-part events, beta, and legacy items).
        "text" => Text(TextContent),
        /// Assistant audio (content-part events, beta, and legacy items).
        "audio" => Audio(AudioContent),
        /// A reference to another item (beta).
        "item_reference" => ItemReference(ItemReference),
    }
}

impl ContentPart {
    /// An `input_text` part.
    pub fn input_text(text: impl Into<String>) -> Self {
        Self::InputText(TextContent {
            text: Some(text.into()),
            extra: Extra::default(),
        })
    }

    /// The part's text, or its audio's transcript.
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::InputText(t) | Self::OutputText(t) | Self::Text(t) => t.text.as_deref(),
            Self::InputAudio(a) | Self::OutputAudio(a) | Self::Audio(a) => {
                a.transcript.as_ref()?.as_deref()
            }
            _ => None,
        }
    }

    /// The part's audio, if it carries any.
    pub fn audio(&self) -> Option<&Base64Audio> {
        match self {
            Self::InputAudio(a) | Self::OutputAudio(a) | Self::Audio(a) => a.audio.as_ref(),
            _ => None,
        }
    }
}

/// A text part.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TextContent {
    /// The text (the spec lets servers leave it out of a part that is just starting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An audio part.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AudioContent {
    /// The audio, when the event carries it (`conversation.item.retrieved`, client items).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<Base64Audio>,
    /// The transcript; `null` until input transcription finishes.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    #[schemars(with = "crate::extra::Nullable<String>")]
    pub transcript: Option<Option<String>>,
    /// The audio's format, on legacy (beta-era) assistant parts: `"pcm16"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An image part.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ImageContent {
    /// A `data:` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// `auto`, `low` or `high`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
