//! What the model keeps of a response ([`ResponseState`]) and of the client's waiting
//! requests ([`ResponseRequest`], [`ItemRequest`]).

use std::sync::OnceLock;

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
    pub(super) id: super::Id,
    pub(super) response: Stored,
    // Boxed: a request is most of a kilobyte inline, and most responses (VAD's) have none.
    pub(super) request: Option<Box<ResponseRequest>>,
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
    ///
    /// A finished response keeps this object compactly (as its JSON text) and rebuilds it
    /// on the first call, once; [`Self::output`], [`Self::is_done`],
    /// [`Self::out_of_band`] and [`Self::own_output_format`] never need it.
    pub fn response(&self) -> &Response {
        self.response.get()
    }

    /// The `response.create` it was matched to, if any (VAD responses have none).
    pub fn request(&self) -> Option<&ResponseRequest> {
        self.request.as_deref()
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
        self.response().usage.as_ref()?.as_ref()
    }

    /// Whether it writes outside the default conversation.
    pub fn out_of_band(&self) -> bool {
        self.response.writes_nowhere()
            || self
                .request
                .as_deref()
                .is_some_and(ResponseRequest::out_of_band)
    }

    /// Its own output format: the server's echo, else its request's.
    pub fn own_output_format(&self) -> Option<&AudioFormat> {
        self.response
            .format()
            .or_else(|| self.request.as_ref()?.output_format())
    }
}

/// How a response object is kept: whole (boxed) while the response runs, compact once it
/// is done. A finished response is history: a kilobyte of struct (mostly empty options)
/// per turn for an hour is what made the model grow, where its JSON is a few hundred
/// bytes. What the queries read on the audio and sequencing paths (its format, whether it
/// writes to no conversation) is kept beside it.
#[derive(Debug, Clone)]
pub(super) enum Stored {
    Live(Box<Response>),
    Done(Box<Finished>),
}

#[derive(Debug, Clone)]
pub(super) struct Finished {
    json: Box<str>,
    format: Option<AudioFormat>,
    writes_nowhere: bool,
    // The object rebuilt from `json`, on the first `response()`.
    whole: OnceLock<Box<Response>>,
}

impl Stored {
    pub(super) fn live(response: Response) -> Self {
        Self::Live(Box::new(response))
    }

    // A finished response's object, compacted; kept whole if it cannot be (it always can:
    // the crate's types round-trip).
    pub(super) fn done(response: Response) -> Self {
        let Ok(json) = serde_json::to_string(&response) else {
            return Self::live(response);
        };
        Self::Done(Box::new(Finished {
            json: json.into_boxed_str(),
            format: audio_format(&response).cloned(),
            writes_nowhere: matches!(response.conversation_id, Some(None)),
            whole: OnceLock::new(),
        }))
    }

    pub(super) fn get(&self) -> &Response {
        match self {
            Self::Live(response) => response,
            Self::Done(finished) => finished
                .whole
                .get_or_init(|| Box::new(serde_json::from_str(&finished.json).unwrap_or_default())),
        }
    }

    fn format(&self) -> Option<&AudioFormat> {
        match self {
            Self::Live(response) => audio_format(response),
            Self::Done(finished) => finished.format.as_ref(),
        }
    }

    fn writes_nowhere(&self) -> bool {
        match self {
            Self::Live(response) => matches!(response.conversation_id, Some(None)),
            Self::Done(finished) => finished.writes_nowhere,
        }
    }
}

// Equal when they describe the same object (whether it was rebuilt does not matter).
impl PartialEq for Stored {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Done(a), Self::Done(b)) => a.json == b.json,
            _ => self.get() == other.get(),
        }
    }
}

fn audio_format(response: &Response) -> Option<&AudioFormat> {
    response
        .audio
        .as_ref()
        .and_then(|a| a.output.as_ref())
        .and_then(|o| o.format.as_ref())
}
