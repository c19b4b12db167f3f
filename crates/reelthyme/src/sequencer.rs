//! The response sequencer: `response.create` and `response.cancel` serialized against the
//! server's response state, so that VAD auto-responses, tool follow-ups and the
//! application's own requests never collide.
//!
//! The server runs one response at a time in the default conversation and refuses a second
//! with `conversation_already_has_active_response`. Every party that asks for a response
//! (the application, a tool layer, a turn policy) goes through one [`Sequencer`] handle:
//! [`Sequencer::request`] queues the request and returns a [`ResponseTicket`] that resolves
//! when *that* response is done. The [`SequencerLayer`] sends the next request only when
//! the conversation has no default response running or being asked for, no VAD
//! auto-response is due (a commit by server VAD with `create_response` on; the user
//! speaking), and no `response.create` sent around it (with a plain sender) is waiting for
//! its `response.created`. Out-of-band requests (`conversation: "none"`) run in parallel.
//!
//! What the client sees of the server always lags what the server did: a VAD commit can
//! start an auto-response while a request is on the wire. The server then refuses the
//! request; the layer consumes that `error` (the application never sees it) and sends the
//! request again once the auto-response is done. So the guarantee is on what the
//! application sees and on what it gets — every ticket ends with its own response — not
//! that the server never refuses; [`Sequencer::collisions`] counts the refusals absorbed.
//!
//! Requests are matched to their `response.created` exactly: each carries an `event_id`
//! and a `metadata` entry (`reelthyme_request`) that the server echoes on the response.
//! Requests leave only while the event stream is polled (as everything layers send).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use reelthyme_schema::state::Conversation;
use reelthyme_schema::{ClientEvent, Response, ResponseParams, ServerEvent, TurnDetection};
use reelthyme_transport::{Error, ErrorKind, Result};
use tokio::sync::oneshot;

/// The `metadata` key a sequenced request carries (the server echoes it on the response).
pub(crate) const METADATA_KEY: &str = "reelthyme_request";

/// The `event_id` prefix of the events the sequencer sends.
const EVENT_PREFIX: &str = "rtseq_";

/// How long a VAD commit holds requests back while its auto-response is due.
const DEFAULT_AUTO_GRACE: Duration = Duration::from_millis(1500);

/// How long a `response.create` sent around the sequencer holds requests back while its
/// `response.created` is due.
const DEFAULT_EXTERNAL_GRACE: Duration = Duration::from_millis(1500);

/// Refusals for an active response one request may absorb before it fails.
const MAX_ATTEMPTS: u32 = 16;

/// How a sequenced response ended.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ResponseOutcome {
    /// The server's `response.done`: status (completed, cancelled, incomplete, failed),
    /// output and usage.
    Done(Box<Response>),
    /// Cancelled ([`ResponseTicket::cancel`]) before it was sent: the server never saw it.
    Withdrawn,
}

impl ResponseOutcome {
    /// The final response, unless it was withdrawn.
    pub fn response(&self) -> Option<&Response> {
        match self {
            Self::Done(response) => Some(response),
            Self::Withdrawn => None,
        }
    }
}

type Reply = oneshot::Sender<Result<ResponseOutcome>>;

/// A request waiting in the queue, on the wire or running.
#[derive(Debug)]
struct Request {
    id: u64,
    params: ResponseParams,
    reply: Reply,
    attempts: u32,
    cancel: bool,
}

impl Request {
    fn out_of_band(&self) -> bool {
        self.params.conversation.as_deref() == Some("none")
    }

    fn finish(self, outcome: Result<ResponseOutcome>) {
        // A ticket that was dropped does not want the answer.
        let _ = self.reply.send(outcome);
    }
}

/// What handles hand to the layer.
#[derive(Debug, Default)]
struct Inbox {
    requests: VecDeque<Request>,
    cancels: Vec<u64>,
    waker: Option<Waker>,
    /// The layer is gone: requests fail at once.
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    inbox: Mutex<Inbox>,
    next_id: AtomicU64,
    collisions: AtomicU64,
}

impl Shared {
    fn inbox(&self) -> std::sync::MutexGuard<'_, Inbox> {
        // Every update is a push or a take: a panic cannot leave it inconsistent.
        self.inbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Asks for responses through the [`SequencerLayer`]: cheap to clone, usable from any
/// task and from other layers (`request` does not wait).
#[derive(Debug, Clone)]
pub struct Sequencer {
    shared: Arc<Shared>,
}

impl Sequencer {
    /// A sequencer and the layer that does its sending; add the layer to the session
    /// ([`Session::with_layer`](crate::Session::with_layer)).
    pub fn new() -> (Self, SequencerLayer) {
        SequencerLayer::new()
    }

    /// Queues `response.create` with `params` and returns its ticket. Requests for the
    /// default conversation are sent one at a time, in the order asked, each once the
    /// server has no response running there; out-of-band ones (`conversation: "none"`)
    /// are sent at once. The request's `metadata` gets a `reelthyme_request` entry (unless
    /// it already has 16).
    pub fn request(&self, params: ResponseParams) -> ResponseTicket {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let request = Request {
            id,
            params,
            reply,
            attempts: 0,
            cancel: false,
        };
        let waker = {
            let mut inbox = self.shared.inbox();
            if inbox.closed {
                drop(inbox);
                request.finish(Err(gone()));
                None
            } else {
                inbox.requests.push_back(request);
                inbox.waker.take()
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        ResponseTicket {
            id,
            answer,
            shared: self.shared.clone(),
        }
    }

    /// [`Sequencer::request`] with the session's defaults.
    pub fn request_default(&self) -> ResponseTicket {
        self.request(ResponseParams::default())
    }

    /// How many times the server refused a request because a response was already
    /// running (a VAD auto-response that started while the request was on the wire); each
    /// was consumed and the request sent again.
    pub fn collisions(&self) -> u64 {
        self.shared.collisions.load(Ordering::Relaxed)
    }
}

/// A request's place in the sequence: a future of how its response ended.
///
/// Dropping it does not cancel the request (see [`ResponseTicket::cancel`]).
#[derive(Debug)]
#[must_use = "the request is queued either way; await the ticket to know when its response is done"]
pub struct ResponseTicket {
    id: u64,
    answer: oneshot::Receiver<Result<ResponseOutcome>>,
    shared: Arc<Shared>,
}

impl ResponseTicket {
    /// Cancels the request: withdrawn if not sent yet ([`ResponseOutcome::Withdrawn`]),
    /// otherwise `response.cancel` is sent for its response once it has started (never
    /// for one that is not running, which the server would refuse). The ticket still
    /// resolves, with the cancelled response.
    pub fn cancel(&self) {
        let waker = {
            let mut inbox = self.shared.inbox();
            inbox.cancels.push(self.id);
            inbox.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Future for ResponseTicket {
    type Output = Result<ResponseOutcome>;

    /// # Errors
    /// The server refused the request (other than for a running response, which is
    /// retried): [`ErrorKind::InvalidRequest`] with its message; the connection changed or
    /// the session ended before the response was done: [`ErrorKind::Closed`].
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.answer).poll(cx) {
            Poll::Ready(Ok(outcome)) => Poll::Ready(outcome),
            Poll::Ready(Err(_)) => Poll::Ready(Err(gone())),
            Poll::Pending => Poll::Pending,
        }
    }
}

fn gone() -> Error {
    Error::new(
        ErrorKind::Closed,
        "the session ended before the response was done",
    )
}

/// A request sent, waiting for its `response.created`.
#[derive(Debug)]
struct OnTheWire {
    request: Request,
    event_id: String,
    tagged: bool,
}

/// The layer of a [`Sequencer`]: holds its requests until the server can take them.
/// Create both with [`Sequencer::new`].
pub struct SequencerLayer {
    shared: Arc<Shared>,
    queue: VecDeque<Request>,
    /// The default-conversation request on the wire (one at most).
    sent: Option<OnTheWire>,
    /// Out-of-band requests on the wire.
    sent_out_of_band: Vec<OnTheWire>,
    /// Our responses running, by response id.
    running: HashMap<String, Request>,
    /// A VAD commit's auto-response is due until then.
    auto_until: Option<tokio::time::Instant>,
    /// A `response.create` sent around the sequencer awaits its `response.created` until then.
    external_until: Option<tokio::time::Instant>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    auto_grace: Duration,
    external_grace: Duration,
    sends: u64,
}

impl std::fmt::Debug for SequencerLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SequencerLayer")
            .field("queued", &self.queue.len())
            .field("on_the_wire", &self.sent.is_some())
            .field("running", &self.running.len())
            .finish_non_exhaustive()
    }
}

impl Drop for SequencerLayer {
    fn drop(&mut self) {
        // Tickets of a session that is gone fail (their senders drop); later requests
        // fail at once.
        self.shared.inbox().closed = true;
    }
}

impl SequencerLayer {
    fn new() -> (Sequencer, Self) {
        let shared = Arc::new(Shared::default());
        let layer = Self {
            shared: shared.clone(),
            queue: VecDeque::new(),
            sent: None,
            sent_out_of_band: Vec::new(),
            running: HashMap::new(),
            auto_until: None,
            external_until: None,
            timer: None,
            auto_grace: DEFAULT_AUTO_GRACE,
            external_grace: DEFAULT_EXTERNAL_GRACE,
            sends: 0,
        };
        (Sequencer { shared }, layer)
    }

    /// How long a server-VAD commit holds requests back while its auto-response is due
    /// (default 1.5 s; the auto-response's `response.created` ends the wait at once).
    #[must_use]
    pub fn auto_response_grace(mut self, grace: Duration) -> Self {
        self.auto_grace = grace;
        self
    }

    /// How long a `response.create` sent with a plain sender holds requests back while its
    /// `response.created` is due (default 1.5 s).
    #[must_use]
    pub fn external_grace(mut self, grace: Duration) -> Self {
        self.external_grace = grace;
        self
    }

    /// Takes what the handles queued; applies cancellations.
    fn take_inbox(&mut self, cx: &mut crate::LayerContext<'_>) {
        let (requests, cancels) = {
            let mut inbox = self.shared.inbox();
            (
                std::mem::take(&mut inbox.requests),
                std::mem::take(&mut inbox.cancels),
            )
        };
        self.queue.extend(requests);
        for id in cancels {
            self.cancel(id, cx);
        }
    }

    fn cancel(&mut self, id: u64, cx: &mut crate::LayerContext<'_>) {
        if let Some(at) = self.queue.iter().position(|r| r.id == id) {
            if let Some(request) = self.queue.remove(at) {
                request.finish(Ok(ResponseOutcome::Withdrawn));
            }
            return;
        }
        let wire = self
            .sent
            .iter_mut()
            .chain(self.sent_out_of_band.iter_mut())
            .find(|w| w.request.id == id);
        if let Some(wire) = wire {
            // Cancelled once it has started: before, there is nothing to cancel.
            wire.request.cancel = true;
            return;
        }
        let running = self.running.iter().find(|(_, r)| r.id == id);
        if let Some((response_id, _)) = running {
            let response_id = response_id.clone();
            self.send_cancel(&response_id, cx);
        }
    }

    fn send_cancel(&mut self, response_id: &str, cx: &mut crate::LayerContext<'_>) {
        let running = cx
            .conversation()
            .response(response_id)
            .is_some_and(|r| !r.is_done() && !r.cancel_requested());
        if running {
            self.sends += 1;
            cx.send(
                ClientEvent::response_cancel_id(response_id)
                    .with_event_id(format!("{EVENT_PREFIX}cancel_{}", self.sends)),
            );
        }
    }

    /// Whether the default conversation can take a request now.
    fn default_idle(&self, conversation: &Conversation, now: tokio::time::Instant) -> bool {
        if self.sent.is_some() {
            return false;
        }
        if self.auto_until.is_some_and(|until| now < until)
            || self.external_until.is_some_and(|until| now < until)
        {
            return false;
        }
        if auto_responses(conversation) && conversation.input_buffer().is_speaking() {
            // The user is talking: the server answers when they stop.
            return false;
        }
        !default_running(conversation)
    }

    /// Sends what can be sent.
    fn pump(&mut self, cx: &mut crate::LayerContext<'_>) {
        self.take_inbox(cx);
        let now = tokio::time::Instant::now();
        // Out-of-band requests do not wait for anything.
        let mut index = 0;
        while index < self.queue.len() {
            if self.queue[index].out_of_band() {
                if let Some(request) = self.queue.remove(index) {
                    let wire = self.send(request, cx);
                    self.sent_out_of_band.push(wire);
                }
            } else {
                index += 1;
            }
        }
        if !self.queue.is_empty()
            && self.default_idle(cx.conversation(), now)
            && let Some(request) = self.queue.pop_front()
        {
            self.sent = Some(self.send(request, cx));
        }
    }

    fn send(&mut self, mut request: Request, cx: &mut crate::LayerContext<'_>) -> OnTheWire {
        self.sends += 1;
        request.attempts += 1;
        let event_id = format!("{EVENT_PREFIX}{}_{}", request.id, request.attempts);
        let mut params = request.params.clone();
        let tag = request.id.to_string();
        let metadata = params
            .metadata
            .get_or_insert(None)
            .get_or_insert_with(BTreeMap::new);
        let tagged = if metadata.len() < 16 || metadata.contains_key(METADATA_KEY) {
            metadata.insert(METADATA_KEY.to_owned(), tag);
            true
        } else {
            false
        };
        tracing::debug!(
            request = request.id,
            attempt = request.attempts,
            out_of_band = request.out_of_band(),
            "response.create sequenced"
        );
        cx.send(ClientEvent::response_create_with(params).with_event_id(event_id.clone()));
        OnTheWire {
            request,
            event_id,
            tagged,
        }
    }

    /// A `response.created`: ours (by its metadata tag, else by the request the
    /// conversation matched it to) or someone else's.
    fn created(&mut self, response: &Response, cx: &mut crate::LayerContext<'_>) {
        let Some(id) = response.id.as_deref() else {
            return;
        };
        let tag = response
            .metadata
            .as_ref()
            .and_then(Option::as_ref)
            .and_then(|m| m.get(METADATA_KEY));
        let claimed = cx
            .conversation()
            .response(id)
            .and_then(|r| r.request())
            .and_then(|r| r.event_id())
            .map(str::to_owned);
        let is_ours = |wire: &OnTheWire| {
            if wire.tagged {
                tag == Some(&wire.request.id.to_string())
            } else {
                claimed.as_deref() == Some(wire.event_id.as_str())
            }
        };
        let wire = if self.sent.as_ref().is_some_and(is_ours) {
            self.sent.take()
        } else if let Some(at) = self.sent_out_of_band.iter().position(is_ours) {
            Some(self.sent_out_of_band.swap_remove(at))
        } else {
            None
        };
        match wire {
            Some(wire) => {
                let cancel = wire.request.cancel;
                self.running.insert(id.to_owned(), wire.request);
                if cancel {
                    self.send_cancel(id, cx);
                }
            }
            None => {
                // A VAD auto-response, or a request sent around the sequencer: what was
                // due has come.
                self.auto_until = None;
                self.external_until = None;
            }
        }
    }

    /// An `error` that names one of our requests; returns whether to consume it.
    fn refused(&mut self, error: &reelthyme_schema::ErrorDetail) -> bool {
        let Some(event_id) = error.event_id() else {
            return false;
        };
        if !event_id.starts_with(EVENT_PREFIX) {
            return false;
        }
        let wire = if self.sent.as_ref().is_some_and(|w| w.event_id == event_id) {
            self.sent.take()
        } else if let Some(at) = self
            .sent_out_of_band
            .iter()
            .position(|w| w.event_id == event_id)
        {
            Some(self.sent_out_of_band.swap_remove(at))
        } else {
            // A cancel of ours that lost a race with the response's end: nothing to say.
            return error.code() == Some("response_cancel_not_active");
        };
        let Some(wire) = wire else {
            return false;
        };
        let request = wire.request;
        if error.code() == Some("conversation_already_has_active_response")
            && request.attempts < MAX_ATTEMPTS
        {
            self.shared.collisions.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                request = request.id,
                "the server had a response running: the request waits for it"
            );
            if request.cancel {
                request.finish(Ok(ResponseOutcome::Withdrawn));
            } else {
                self.queue.push_front(request);
            }
            return true;
        }
        request.finish(Err(Error::new(
            ErrorKind::InvalidRequest,
            format!(
                "the server refused the response: {} ({})",
                error.message,
                error.code().unwrap_or("no code")
            ),
        )));
        false
    }

    /// Arms the timer for the earliest wait, so that `poll` runs when it ends.
    fn arm(&mut self, task: &mut Context<'_>) {
        let now = tokio::time::Instant::now();
        let deadline = [self.auto_until, self.external_until]
            .into_iter()
            .flatten()
            .filter(|&at| at > now)
            .min();
        let Some(deadline) = deadline.filter(|_| !self.queue.is_empty()) else {
            self.timer = None;
            return;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        // Pending until the deadline; the waker is registered.
        let _ = timer.as_mut().poll(task);
    }
}

/// Whether the server answers committed speech by itself (server or semantic VAD with
/// `create_response` not off; the server's default when the session does not say).
fn auto_responses(conversation: &Conversation) -> bool {
    match conversation.session().and_then(|s| s.turn_detection()) {
        Some(Some(TurnDetection::ServerVad(vad))) => vad.create_response != Some(false),
        Some(Some(TurnDetection::SemanticVad(vad))) => vad.create_response != Some(false),
        None => true,
        _ => false,
    }
}

/// Whether a response of the default conversation is running or asked for.
fn default_running(conversation: &Conversation) -> bool {
    let Some(active) = conversation.active_response() else {
        return false;
    };
    if !active.out_of_band() {
        return true;
    }
    // The active one is out of band: an older default one may still run under it.
    conversation
        .responses()
        .rev()
        .any(|r| !r.is_done() && !r.out_of_band())
}

impl crate::Layer for SequencerLayer {
    fn on_event(
        &mut self,
        event: ServerEvent,
        cx: &mut crate::LayerContext<'_>,
    ) -> Option<ServerEvent> {
        let mut consume = false;
        match &event {
            ServerEvent::ResponseCreated(created) => self.created(&created.response, cx),
            ServerEvent::ResponseDone(done) => {
                if let Some(request) = done
                    .response
                    .id
                    .as_deref()
                    .and_then(|id| self.running.remove(id))
                {
                    request.finish(Ok(ResponseOutcome::Done(Box::new(done.response.clone()))));
                }
            }
            ServerEvent::InputAudioBufferCommitted(_) if auto_responses(cx.conversation()) => {
                // Server VAD's commit: its auto-response comes next.
                self.auto_until = Some(tokio::time::Instant::now() + self.auto_grace);
            }
            ServerEvent::Error(error) => consume = self.refused(&error.error),
            _ => {}
        }
        self.pump(cx);
        (!consume).then_some(event)
    }

    fn on_sent(&mut self, event: &ClientEvent, _cx: &mut crate::LayerContext<'_>) {
        if let ClientEvent::ResponseCreate(create) = event {
            let ours = create
                .event_id
                .as_deref()
                .is_some_and(|id| id.starts_with(EVENT_PREFIX));
            let out_of_band = create
                .response
                .as_ref()
                .and_then(|p| p.conversation.as_deref())
                == Some("none");
            if !ours && !out_of_band {
                self.external_until = Some(tokio::time::Instant::now() + self.external_grace);
            }
        }
    }

    fn poll(&mut self, task: &mut Context<'_>, cx: &mut crate::LayerContext<'_>) {
        self.shared.inbox().waker = Some(task.waker().clone());
        self.pump(cx);
        self.arm(task);
    }

    fn on_connected(&mut self, _cx: &mut crate::LayerContext<'_>) {
        // The new server session knows nothing of the old one's responses.
        let error = || {
            Error::new(
                ErrorKind::Closed,
                "the connection changed before the response was done",
            )
        };
        for wire in self
            .sent
            .take()
            .into_iter()
            .chain(self.sent_out_of_band.drain(..))
        {
            wire.request.finish(Err(error()));
        }
        for (_, request) in self.running.drain() {
            request.finish(Err(error()));
        }
        self.auto_until = None;
        self.external_until = None;
    }
}
