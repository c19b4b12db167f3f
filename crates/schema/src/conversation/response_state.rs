//! What the model keeps of a response ([`ResponseState`]) and of the client's waiting
//! requests ([`ResponseRequest`], [`ItemRequest`]).

use crate::item::Item;
use crate::response::{Response, ResponseParams, Usage};
use crate::session::AudioFormat;

/// A `response.create` the client sent, as the model keeps it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResponseRequest {
    pub(super) event_id: Option<String>,
    pub(super) params: Option<ResponseParams>,
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
    pub(super) event_id: Option<String>,
    pub(super) previous_item_id: Option<Option<String>>,
    pub(super) item: Item,
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
    pub(super) id: String,
    pub(super) response: Response,
    pub(super) request: Option<ResponseRequest>,
    pub(super) output: Vec<String>,
    pub(super) done: bool,
    pub(super) cancel_requested: bool,
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
