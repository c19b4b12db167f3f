//! What applying an event changed: [`Applied`], and why an event was ignored: [`Ignored`].

/// What an event changed, for the layers to match on; the event itself has the ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Applied {
    /// `session.created`: a new conversation started.
    SessionCreated,
    /// `session.updated`: the session changed.
    SessionUpdated,
    /// An item entered the model (and, unless out-of-band, the conversation).
    ItemAdded,
    /// A known item was replaced by the server's newer version.
    ItemUpdated,
    /// An item is complete (`conversation.item.done`, `response.output_item.done`).
    ItemDone,
    /// `conversation.item.retrieved`: the server's full item replaced ours.
    ItemRetrieved,
    /// `conversation.item.truncated`.
    ItemTruncated,
    /// `conversation.item.deleted`.
    ItemDeleted,
    /// A content part started (`response.content_part.added`).
    ContentAdded,
    /// Text, transcript or audio of a content part grew.
    ContentDelta,
    /// A content part's text, transcript or audio is complete.
    ContentDone,
    /// An input transcription grew.
    TranscriptionDelta,
    /// An input transcription completed.
    TranscriptionCompleted,
    /// An input transcription failed.
    TranscriptionFailed,
    /// A function call's arguments grew.
    FunctionCallDelta,
    /// A function call became complete, for the first time (its arguments' `.done` or
    /// its item's `.done`, whichever came first): run the tool now. Reported once per call.
    FunctionCallReady,
    /// `response.created`.
    ResponseStarted,
    /// `response.done`.
    ResponseDone,
    /// `input_audio_buffer.speech_started`.
    SpeechStarted,
    /// `input_audio_buffer.speech_stopped`.
    SpeechStopped,
    /// `input_audio_buffer.committed`.
    BufferCommitted,
    /// `input_audio_buffer.cleared`.
    BufferCleared,
    /// An `error` named a waiting request (by its `event_id`), which was removed.
    RequestRejected,
    /// An `error` that names no waiting request.
    Error,
    /// `rate_limits.updated`.
    RateLimits,
    /// A known event this model keeps nothing of (or a repeat that changed nothing).
    Unchanged,
    /// The event was ignored, and why.
    Ignored(Ignored),
}

impl Applied {
    /// Whether the model changed.
    pub fn changed(self) -> bool {
        !matches!(self, Self::Unchanged | Self::Ignored(_) | Self::Error)
    }
}

/// Why an event was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ignored {
    /// An event type this version does not know.
    UnknownEvent,
    /// The event names an item the model does not hold.
    UnknownItem,
    /// The event names a response the model does not hold.
    UnknownResponse,
    /// The event lacks the id it would be filed under.
    MissingId,
    /// A limit (see the module docs) was reached.
    Limit,
}
