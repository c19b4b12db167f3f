//! Layers: behaviour that watches the session's events and reacts by sending.
//!
//! A layer sees every server event on its way to the application (after the incoming
//! transforms and the layers added before it), may change or consume it, and sees every
//! client event the session queued (from any sender). It reacts through a
//! [`LayerContext`]: events it sends go to the session's outbox, which the event stream
//! drains — in order, through the outgoing transforms, waiting for room in the send queue —
//! before it reads the next server event. Nothing spawns, and nothing a layer sends can be
//! reordered with what the layers after it see.
//!
//! Layers run on the task that polls the event stream: keep them fast and never block. Read
//! the conversation through [`LayerContext::conversation`], not through a
//! [`SessionSender`](crate::SessionSender) the layer holds: the events half holds the
//! conversation's read lock while layers run, and a second read of it from the same task can
//! wait behind a reconnect's write.

use std::collections::VecDeque;
use std::task::Context;

use reelthyme_schema::state::Conversation;
use reelthyme_schema::{ClientEvent, ServerEvent};
use reelthyme_transport::Error;

/// Behaviour on a session's events. Every method has a default that does nothing (passes
/// the event on), so a layer implements only what it needs.
///
/// ```
/// use reelthyme::{Layer, LayerContext};
/// use reelthyme::events::{ClientEvent, ServerEvent};
///
/// /// Asks for an answer whenever the user's speech is committed (a manual turn policy).
/// struct AnswerEveryTurn;
///
/// impl Layer for AnswerEveryTurn {
///     fn on_event(&mut self, event: ServerEvent, cx: &mut LayerContext<'_>) -> Option<ServerEvent> {
///         if let ServerEvent::InputAudioBufferCommitted(_) = &event {
///             cx.send(ClientEvent::response_create());
///         }
///         Some(event)
///     }
/// }
/// ```
pub trait Layer: Send + 'static {
    /// A server event, after the conversation has applied it. Return it (changed or not)
    /// to pass it on to the next layer and the application, `None` to consume it.
    fn on_event(&mut self, event: ServerEvent, cx: &mut LayerContext<'_>) -> Option<ServerEvent> {
        let _ = cx;
        Some(event)
    }

    /// A client event the session queued for sending (from any sender or layer, after
    /// the outgoing transforms). Raw JSON sent with `send_raw` is not shown. Delivered
    /// when the event stream is next polled, always before the next server event: a layer
    /// that must see the last events sent before the session closes needs one more poll.
    fn on_sent(&mut self, event: &ClientEvent, cx: &mut LayerContext<'_>) {
        let _ = (event, cx);
    }

    /// The layer's own work (timers, devices): called on every poll of the event stream,
    /// before it reads the next server event. To be polled again when something of its own
    /// is ready, register `task`'s waker with it.
    fn poll(&mut self, task: &mut Context<'_>, cx: &mut LayerContext<'_>) {
        let _ = (task, cx);
    }

    /// The session moved to a new connection; its `session.created` comes next (after a
    /// [`Config::reconnect`](crate::Config::reconnect) replay, then the new server's
    /// answers to it, and [`Layer::on_sent`] shows what the replay sent). State of the old
    /// connection (streams in progress, decoders) should be dropped here.
    fn on_connected(&mut self, cx: &mut LayerContext<'_>) {
        let _ = cx;
    }
}

/// What a layer can do while it handles something.
pub struct LayerContext<'a> {
    pub(crate) conversation: &'a Conversation,
    pub(crate) received_at: Option<std::time::Instant>,
    pub(crate) outbox: &'a mut VecDeque<ClientEvent>,
    pub(crate) reports: &'a mut VecDeque<Error>,
}

impl std::fmt::Debug for LayerContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerContext")
            .field("outbox", &self.outbox.len())
            .field("reports", &self.reports.len())
            .finish_non_exhaustive()
    }
}

impl LayerContext<'_> {
    /// Sends an event: queued in the session's outbox, sent (through the outgoing
    /// transforms) before the next server event is read, after what was queued before it.
    /// A transform's refusal or the connection's end is yielded from the event stream.
    pub fn send(&mut self, event: ClientEvent) {
        self.outbox.push_back(event);
    }

    /// Yields `error` from the event stream (before the next event): a failure of the
    /// layer's own (a device, a tool) that the application should see. Prefer a non-fatal
    /// kind ([`ErrorKind::Device`](crate::ErrorKind::Device) …) so that loops that skip
    /// them go on.
    pub fn report(&mut self, error: Error) {
        self.reports.push_back(error);
    }

    /// The conversation as applied so far (this event included): session, items,
    /// responses, transcripts.
    pub fn conversation(&self) -> &Conversation {
        self.conversation
    }

    /// In [`Layer::on_event`]: when the transport read the event's frame (before it waited
    /// in the receive queue) — what latency metrics measure from. `None` elsewhere, and
    /// for the `session.created` a connection opened with.
    pub fn received_at(&self) -> Option<std::time::Instant> {
        self.received_at
    }
}
