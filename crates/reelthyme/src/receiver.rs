//! [`SessionEvents`]: the receiving half, which also drives the session's layers.
//!
//! One poll does, in order: send what the layers queued (waiting for room: backpressure
//! reaches the layers, not a buffer), show the layers what was sent, run their own work,
//! yield what they reported, then read one server event, apply it to the conversation, run
//! it through the incoming transforms and the layers, and yield what is left of it. When
//! the connection ends while the session is moving to a new one, it goes on with the new
//! connection's events instead of ending.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_core::Stream;
use futures_util::StreamExt;
use reelthyme_schema::{ClientEvent, ServerEvent, beta};
use reelthyme_transport::{Dialect, Error, ErrorKind, FrameReceiver, Result};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::core::Core;
use crate::layer::{Layer, LayerContext};
use crate::reconnect::{ReconnectEvent, may_retry, rotation_cause, uncommitted_ms};
use crate::sender::SessionSender;
use crate::supervisor::{Outcome, Supervisor};

/// The receiving half: server events, parsed (and translated from beta), through the
/// incoming transforms and the layers.
pub struct SessionEvents {
    core: Arc<Core>,
    /// Sends what the layers queued.
    sender: SessionSender,
    receiver: FrameReceiver,
    generation: u64,
    /// `session.created`, read while connecting; whether the conversation has applied it.
    buffered: Option<(ServerEvent, bool)>,
    /// When the frame of the event being delivered was read.
    received_at: Option<Instant>,
    layers: Vec<Box<dyn Layer>>,
    outbox: VecDeque<ClientEvent>,
    reports: VecDeque<Error>,
    sent: broadcast::Receiver<Arc<ClientEvent>>,
    /// The old connection's verdict, kept while a reconnect is under way.
    stashed: Option<Error>,
    /// A supervised reconnect or rotation under way ([`Config::reconnect`](crate::Config::reconnect)).
    supervisor: Option<Supervisor>,
    /// `Reconnected`, published when the stream moves to the new connection.
    report: Option<ReconnectEvent>,
    /// When the live connection is due for rotation.
    rotation: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Rotation is due: it starts at the next quiet moment.
    rotation_due: bool,
    /// The reconnect gave up: the stream has ended.
    finished: bool,
    /// The last reconnect's budget (when its outage began, its attempts): an outage soon
    /// after it continues it.
    last_outage: Option<(std::time::Instant, u32)>,
}

impl fmt::Debug for SessionEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionEvents")
            .field("generation", &self.generation)
            .field("layers", &self.layers.len())
            .field("outbox", &self.outbox.len())
            .finish_non_exhaustive()
    }
}

/// How long a failed rotation waits before it is tried again.
const ROTATION_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

/// The rotation timer of a new connection, when the policy rotates.
fn rotation_timer(core: &Core) -> Option<Pin<Box<tokio::time::Sleep>>> {
    let after = core.config.reconnect.as_ref()?.rotate_after?;
    Some(Box::pin(tokio::time::sleep(after)))
}

pub(crate) fn parse(dialect: Dialect, text: &str) -> Result<ServerEvent> {
    let parsed = match dialect {
        Dialect::Ga => ServerEvent::from_json(text),
        Dialect::Beta => beta::parse_server(text),
    };
    parsed.map_err(|e| {
        Error::other(
            ErrorKind::Parse,
            format!("an event from the server did not parse: {e}"),
            Some(e.into()),
        )
    })
}

impl SessionEvents {
    pub(crate) fn new(core: Arc<Core>, receiver: FrameReceiver, first: ServerEvent) -> Self {
        let sent = core.subscribe_sent();
        Self {
            sender: SessionSender::internal(core.clone()),
            receiver,
            generation: 0,
            buffered: Some((first, true)),
            received_at: None,
            layers: Vec::new(),
            outbox: VecDeque::new(),
            reports: VecDeque::new(),
            sent,
            stashed: None,
            supervisor: None,
            report: None,
            rotation: rotation_timer(&core),
            rotation_due: false,
            finished: false,
            last_outage: None,
            core,
        }
    }

    /// Adds a layer after those already added: it sees what they pass on.
    #[must_use]
    pub fn with_layer(mut self, layer: impl Layer) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// The frames as raw JSON (no parsing, no transforms, no layers), for logging or
    /// proxying; the current connection's only.
    pub fn into_raw(self) -> impl Stream<Item = Result<Value>> + Send {
        // `session.created` was read while connecting: it comes first here too.
        let first = self.buffered.map(|(event, _)| Ok(event.to_value()));
        let rest = self.receiver.map(|frame| {
            frame.and_then(|frame| {
                serde_json::from_str(&frame).map_err(|e| {
                    Error::other(
                        ErrorKind::Protocol,
                        format!("a frame is not JSON: {e}"),
                        Some(e.into()),
                    )
                })
            })
        });
        futures_util::stream::iter(first).chain(rest)
    }

    /// Runs `f` on every layer with a context.
    fn each_layer(&mut self, f: impl FnMut(&mut dyn Layer, &mut LayerContext<'_>)) {
        self.each_layer_at(None, f);
    }

    /// Runs `f` on every layer with a context for an event read at `received_at`.
    fn each_layer_at(
        &mut self,
        received_at: Option<Instant>,
        mut f: impl FnMut(&mut dyn Layer, &mut LayerContext<'_>),
    ) {
        let Self {
            core,
            layers,
            outbox,
            reports,
            ..
        } = self;
        if layers.is_empty() {
            return;
        }
        core.read(|conversation| {
            let mut cx = LayerContext {
                conversation,
                received_at,
                outbox,
                reports,
            };
            for layer in layers.iter_mut() {
                f(layer.as_mut(), &mut cx);
            }
        });
    }

    /// Sends what the layers queued, in order; `Pending` while the send queue is full.
    fn drain_outbox(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let drained = self.drain(cx);
        if drained.is_ready() {
            self.sender.forget();
        }
        drained
    }

    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while !self.outbox.is_empty() {
            match self.sender.poll_ready_to_send(cx) {
                Poll::Pending => return Poll::Pending,
                // The connection ended: the events stay queued for the next one, if any;
                // the stream reports the end itself.
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(())) => {
                    let event = self.outbox.pop_front().expect("not empty");
                    if let Err(error) = self.sender.start(event) {
                        self.reports.push_back(error);
                    }
                }
            }
        }
        Poll::Ready(())
    }

    /// Shows the conversation and the layers what was queued for sending.
    fn apply_sent(&mut self) {
        loop {
            match self.sent.try_recv() {
                Ok(event) => {
                    self.core
                        .write(|conversation| conversation.apply_client(&event));
                    self.each_layer(|layer, cx| layer.on_sent(&event, cx));
                }
                Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                    tracing::warn!(
                        parent: &self.core.span,
                        missed,
                        "the event stream fell behind the senders: layers missed sent events"
                    );
                }
                Err(_) => return,
            }
        }
    }

    /// The conversation applies the event, then the transforms and the layers see it.
    fn deliver(
        &mut self,
        event: ServerEvent,
        applied: bool,
        received_at: Option<Instant>,
    ) -> Option<ServerEvent> {
        tracing::trace!(
            parent: &self.core.span,
            r#type = event.type_name(),
            event_id = event.event_id(),
            "received"
        );
        if !applied {
            self.core
                .write(|conversation| conversation.apply_server(&event));
        }
        let event = self
            .core
            .config
            .incoming
            .iter()
            .try_fold(event, |event, transform| transform(event))?;
        let mut slot = Some(event);
        self.each_layer_at(received_at, |layer, cx| {
            // A layer that consumed the event ends its way: the later ones do not see it.
            if let Some(event) = slot.take() {
                slot = layer.on_event(event, cx);
            }
        });
        slot
    }

    /// Moves to the connection that replaced this one, if there is one.
    fn switch(&mut self) -> bool {
        let Some(next) = self.core.take_next(self.generation) else {
            return false;
        };
        if let Some(error) = self.stashed.take() {
            tracing::debug!(parent: &self.core.span, %error, "the old connection ended");
        }
        self.receiver = next.receiver;
        self.generation = next.generation;
        self.buffered = Some((next.first, true));
        self.rotation = rotation_timer(&self.core);
        self.rotation_due = false;
        if let Some(report) = self.report.take() {
            self.core.report(report);
        }
        self.each_layer(|layer, cx| layer.on_connected(cx));
        true
    }

    /// Polls the supervised reconnect; `Ready(Some)` is the stream's last item (it gave
    /// up), `Ready(None)` means go on reading.
    fn poll_supervisor(&mut self, cx: &mut Context<'_>) -> Poll<Option<Error>> {
        let Some(supervisor) = self.supervisor.as_mut() else {
            return Poll::Ready(None);
        };
        let outcome = std::task::ready!(supervisor.poll(cx));
        let attempts = supervisor.attempts();
        let budget = supervisor.budget();
        self.supervisor = None;
        match outcome {
            Outcome::Reconnected(report, sent) => {
                if !matches!(&report, ReconnectEvent::Reconnected(r) if r.rotated) {
                    self.last_outage = Some(budget);
                }
                // The new conversation (reset by its `session.created`) and the layers see
                // what went out on it.
                for event in sent {
                    self.core.sent(event);
                }
                let rotated = matches!(&report, ReconnectEvent::Reconnected(r) if r.rotated);
                self.stashed = None;
                self.report = Some(report);
                // After a loss the stream moves on at once; a rotation's old connection
                // still delivers its last events (its close is under way) first.
                if !rotated {
                    self.switch();
                }
                Poll::Ready(None)
            }
            Outcome::RotationFailed(error) => {
                tracing::warn!(parent: &self.core.span, %error, "rotation failed; the session stays on its connection");
                // What was held goes out on the old connection, in order, before anything
                // the layers send next.
                let held = self.core.end_hold();
                for held in held.into_iter().rev() {
                    let event = held
                        .event
                        .or_else(|| ClientEvent::from_json(&held.text).ok());
                    match event {
                        Some(event) => self.outbox.push_front(event),
                        None => self.reports.push_back(Error::new(
                            ErrorKind::Rejected,
                            "an event held during a failed rotation could not be sent again",
                        )),
                    }
                }
                self.core.reconnect_failed();
                self.rotation = Some(Box::pin(tokio::time::sleep(ROTATION_RETRY)));
                self.rotation_due = false;
                Poll::Ready(None)
            }
            Outcome::GaveUp(error) => {
                let undelivered = self.core.give_up(&error);
                if undelivered > 0 {
                    tracing::warn!(parent: &self.core.span, undelivered, "events held during the outage were not delivered");
                }
                self.core.report(ReconnectEvent::GaveUp {
                    attempts,
                    error: error.details(),
                    undelivered,
                });
                self.finished = true;
                Poll::Ready(Some(error))
            }
        }
    }

    /// Starts a rotation if one is due and the moment is quiet.
    fn maybe_rotate(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(timer) = self.rotation.as_mut()
            && timer.as_mut().poll(cx).is_ready()
        {
            self.rotation = None;
            self.rotation_due = true;
        }
        if !self.rotation_due || !self.outbox.is_empty() || self.core.is_reconnecting() {
            return false;
        }
        let quiet = self.core.read(|c| {
            c.active_response().is_none()
                && c.pending_responses().len() == 0
                && c.pending_items().len() == 0
                && !c.input_buffer().is_speaking()
                && uncommitted_ms(c) == 0
        });
        if !quiet || !self.core.begin_hold(self.generation) {
            return false;
        }
        self.rotation_due = false;
        let after = self
            .core
            .config
            .reconnect
            .as_ref()
            .and_then(|r| r.rotate_after)
            .unwrap_or_default();
        self.supervisor = Supervisor::start(self.core.clone(), rotation_cause(after), true, None);
        self.supervisor.is_some()
    }

    /// The next parsed event, across connection swaps.
    fn next_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<(ServerEvent, bool)>>> {
        loop {
            if let Some(buffered) = self.buffered.take() {
                self.received_at = None;
                return Poll::Ready(Some(Ok(buffered)));
            }
            if self.finished {
                return Poll::Ready(None);
            }
            if self.supervisor.is_some() {
                match self.poll_supervisor(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(error)) => return Poll::Ready(Some(Err(error))),
                    Poll::Ready(None) => continue,
                }
            }
            if self.maybe_rotate(cx) {
                continue;
            }
            let end = match Pin::new(&mut self.receiver).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    self.received_at = Some(frame.received_at());
                    match parse(self.core.config.endpoint.dialect(), &frame) {
                        Ok(event) => return Poll::Ready(Some(Ok((event, false)))),
                        Err(error) => match self.recoverable(error) {
                            Some(error) => return Poll::Ready(Some(Err(error))),
                            None => continue,
                        },
                    }
                }
                Poll::Ready(Some(Err(error))) if !error.is_fatal() => {
                    match self.recoverable(error) {
                        Some(error) => return Poll::Ready(Some(Err(error))),
                        None => continue,
                    }
                }
                Poll::Ready(Some(Err(error))) => Some(error),
                Poll::Ready(None) => None,
            };
            // This connection is over.
            self.core
                .connection_ended(self.generation, end.as_ref().or(self.stashed.as_ref()));
            if self.switch() {
                continue;
            }
            if let Some(error) = end {
                self.stashed = Some(error);
            }
            // A supervised reconnect, when the policy is on and the end is retryable.
            if self.core.config.reconnect.is_some()
                && !self.core.is_reconnecting()
                && self.stashed.as_ref().is_some_and(may_retry)
                && self.core.begin_hold(self.generation)
                && let Some(cause) = self.stashed.take()
            {
                self.supervisor =
                    Supervisor::start(self.core.clone(), cause, false, self.last_outage);
                continue;
            }
            if self.core.is_reconnecting() {
                self.core.register_events(cx.waker());
                if self.switch() {
                    continue;
                }
                return Poll::Pending;
            }
            if !self.outbox.is_empty() {
                tracing::warn!(
                    parent: &self.core.span,
                    events = self.outbox.len(),
                    "the session ended with events the layers queued unsent"
                );
                self.outbox.clear();
            }
            return Poll::Ready(self.stashed.take().map(Err));
        }
    }

    /// A failure of one frame: the error handler's, or the stream's.
    fn recoverable(&self, error: Error) -> Option<Error> {
        match &self.core.config.on_error {
            Some(handler) => {
                let _entered = self.core.span.enter();
                handler(&error);
                None
            }
            None => Some(error),
        }
    }
}

impl Stream for SessionEvents {
    type Item = Result<ServerEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.drain_outbox(cx).is_pending() {
                return Poll::Pending;
            }
            this.apply_sent();
            this.each_layer(|layer, layer_cx| layer.poll(cx, layer_cx));
            if this.drain_outbox(cx).is_pending() {
                return Poll::Pending;
            }
            if let Some(report) = this.reports.pop_front() {
                return Poll::Ready(Some(Err(report)));
            }
            let (event, applied) = match this.next_event(cx) {
                Poll::Ready(Some(Ok(next))) => next,
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            let received_at = this.received_at;
            if let Some(event) = this.deliver(event, applied, received_at) {
                // What the layers sent in answer leaves now, not at the next poll.
                let _ = this.drain_outbox(cx);
                return Poll::Ready(Some(Ok(event)));
            }
        }
    }
}
