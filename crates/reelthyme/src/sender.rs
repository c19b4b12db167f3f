//! [`SessionSender`]: the sending half, bound to the session rather than to one connection.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_sink::Sink;
use reelthyme_schema::state::Conversation;
use reelthyme_schema::{AudioFormat, ClientEvent, SessionConfig, beta};
use reelthyme_transport::{Dialect, Error, ErrorKind, FrameSender, Result};
use serde_json::Value;

use crate::config::WhenDisconnected;
use crate::core::{Core, Holding};
use crate::reconnect::{ReconnectEvents, may_retry};

type Pending = Pin<Box<dyn Future<Output = Result<()>> + Send + Sync>>;

/// The sending half. Clone it to send from several tasks; order is kept per sender and the
/// queue is bounded (a burst waits for room; nothing is dropped).
///
/// A sender targets the *session*, not one connection: when the session moves to a new
/// connection ([`SessionSender::reconnect`]), every clone sends on the new one. What a send
/// does while no connection is live is [`Config::when_disconnected`](crate::Config::when_disconnected).
pub struct SessionSender {
    core: Arc<Core>,
    /// Shared by the user's senders; when the last is dropped the connection closes. The
    /// events half's own sender (for the layers) has none: it never keeps a session open.
    user: Option<Arc<UserSenders>>,
    /// The live connection's sender as of `generation` (refreshed when it changes).
    cached: Option<(u64, FrameSender)>,
    /// A flush or close started through the `Sink` interface.
    pending: Option<Pending>,
}

impl Clone for SessionSender {
    fn clone(&self) -> Self {
        Self {
            core: self.core.clone(),
            user: self.user.clone(),
            cached: self.cached.clone(),
            pending: None,
        }
    }
}

/// The user's senders, as one: dropping the last one releases the connection, which then
/// closes politely once nothing else holds it (as dropping every `FrameSender` does).
struct UserSenders(Arc<Core>);

impl Drop for UserSenders {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl fmt::Debug for SessionSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionSender")
            .field("dialect", &self.core.config.endpoint.dialect())
            .field("generation", &self.core.generation())
            .finish_non_exhaustive()
    }
}

impl SessionSender {
    /// The first of the user's senders.
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self {
            user: Some(Arc::new(UserSenders(core.clone()))),
            core,
            cached: None,
            pending: None,
        }
    }

    /// The events half's sender: it does not keep the session open.
    pub(crate) fn internal(core: Arc<Core>) -> Self {
        Self {
            core,
            user: None,
            cached: None,
            pending: None,
        }
    }

    /// Drops the cached connection handle (the events half's sender holds none between
    /// polls, so that it never keeps a connection open).
    pub(crate) fn forget(&mut self) {
        self.cached = None;
    }

    /// The session as the server last confirmed it (`session.created`, then each
    /// `session.updated` the events half has seen): formats, voice, turn detection…
    pub fn session(&self) -> SessionConfig {
        self.core
            .read(|conversation| conversation.session().cloned().unwrap_or_default())
    }

    /// The input audio format the server last confirmed (`None`: the default, PCM16 at
    /// 24 kHz).
    pub fn input_format(&self) -> Option<AudioFormat> {
        self.core.read(|conversation| {
            conversation
                .session()
                .and_then(SessionConfig::input_format)
                .cloned()
        })
    }

    /// The server's id for the live connection's call, when its transport set one up
    /// (WebRTC).
    pub fn call_id(&self) -> Option<String> {
        self.core.call_id()
    }

    #[cfg(feature = "audio")]
    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// Reads the conversation as the events half has applied it so far (items, responses,
    /// transcripts). Keep `read` short: the events half waits for it.
    pub fn conversation<R>(&self, read: impl FnOnce(&Conversation) -> R) -> R {
        self.core.read(read)
    }

    /// Runs the outgoing transforms and serialises.
    fn prepare(&self, mut event: ClientEvent) -> Result<(ClientEvent, String)> {
        for transform in &self.core.config.outgoing {
            event = transform(event).map_err(|e| {
                Error::other(
                    ErrorKind::Rejected,
                    format!("outgoing event refused: {e}"),
                    Some(e),
                )
            })?;
        }
        let text = match self.core.config.endpoint.dialect() {
            Dialect::Ga => event.to_json(),
            Dialect::Beta => beta::client_to_beta(&event).to_string(),
        };
        Ok((event, text))
    }

    /// The live connection's sender: the cached one while the generation holds.
    fn live(&mut self) -> Option<(u64, &mut FrameSender)> {
        let generation = self.core.generation();
        let fresh = matches!(&self.cached, Some((cached, frames)) if *cached == generation && !frames.is_closed());
        if !fresh {
            self.cached = self.core.current();
        }
        self.cached
            .as_mut()
            .map(|(generation, frames)| (*generation, frames))
    }

    /// Sends an event: the outgoing transforms run, then it waits for room in the queue.
    /// `Ok` means *queued*: if the connection ends before it is written, the error that
    /// ended it lists it ([`Error::unsent`]).
    ///
    /// # Errors
    /// [`ErrorKind::Rejected`] when a transform refused it (nothing was sent; the error's
    /// source is the transform's error, e.g. [`ValidationErrors`](reelthyme_schema::ValidationErrors));
    /// otherwise the error that ended the connection.
    pub async fn send(&mut self, event: ClientEvent) -> Result<()> {
        trace_out(&event);
        let (event, text) = self.prepare(event)?;
        self.queue(text, Some(event)).await
    }

    /// Sends raw JSON as it is (no transforms, no dialect translation; layers do not see
    /// it).
    ///
    /// # Errors
    /// When the connection has closed.
    pub async fn send_raw(&mut self, event: &Value) -> Result<()> {
        self.queue(event.to_string(), None).await
    }

    /// Queues a frame on the live connection, following the session to a new connection
    /// when the live one ends under it (the frame is never queued twice: a send that fails
    /// gets it back).
    async fn queue(&mut self, mut text: String, event: Option<ClientEvent>) -> Result<()> {
        let mut event = event;
        loop {
            // A reconnect is under way: held for the next connection (or refused).
            if self.core.holding() {
                match self.core.hold(text, event) {
                    Holding::Held => return Ok(()),
                    Holding::Refused(error) => return Err(error),
                    Holding::Open(back) => (text, event) = *back,
                }
            }
            let Some((generation, frames)) = self.live() else {
                let generation = self.core.generation();
                self.outage(generation).await?;
                continue;
            };
            // Room first, then the layers are told, then the frame is queued: no server
            // answer can overtake the notice.
            if std::future::poll_fn(|cx| Sink::<String>::poll_ready(Pin::new(&mut *frames), cx))
                .await
                .is_ok()
            {
                if let Some(event) = event.take() {
                    self.core.sent(event);
                }
                let frames = &mut self.cached.as_mut().expect("cached").1;
                match frames.send_or_return(text).await {
                    Ok(()) => return Ok(()),
                    Err((_, back)) => text = back,
                }
            }
            // The connection ended under this send: the session may have moved on.
            if self.core.generation() == generation {
                self.outage(generation).await?;
            }
        }
    }

    /// No live connection: hold sends for the reconnect, or wait for a new connection if
    /// the policy says so, else fail.
    async fn outage(&mut self, generation: u64) -> Result<()> {
        if let Some(error) = self.core.gave_up() {
            return Err(error);
        }
        if self.core.config.reconnect.is_some() {
            // The connection's own verdict says whether a reconnect follows.
            let verdict = self.verdict().await;
            if may_retry(&verdict) && self.core.begin_hold(generation) {
                return Ok(());
            }
            if self.core.generation() != generation {
                return Ok(());
            }
            return Err(verdict);
        }
        let error = self.core.ended_error();
        match self.core.config.when_disconnected {
            WhenDisconnected::Wait(timeout)
                if self.core.wait_for_newer(generation, timeout).await =>
            {
                Ok(())
            }
            _ => Err(match self.cached.as_ref() {
                // The live connection's own verdict, with its unsent frames, when there is one.
                Some((_, frames)) if frames.is_closed() => {
                    let mut frames = frames.clone();
                    frames.flush().await.err().unwrap_or(error)
                }
                _ => error,
            }),
        }
    }

    /// Why the live connection (as this sender knew it) ended.
    async fn verdict(&mut self) -> Error {
        match self.cached.as_ref() {
            Some((_, frames)) if frames.is_closed() => {
                let mut frames = frames.clone();
                frames
                    .flush()
                    .await
                    .err()
                    .unwrap_or_else(|| self.core.ended_error())
            }
            _ => self.core.ended_error(),
        }
    }

    /// Waits until everything sent so far on the live connection is written to it; while
    /// a reconnect holds sends, first until they are delivered (bounded by the reconnect's
    /// total time and the connect timeout).
    ///
    /// # Errors
    /// When the connection closed first, or the reconnect gave up (its error).
    pub async fn flush(&mut self) -> Result<()> {
        if let Some(policy) = &self.core.config.reconnect
            && self.core.holding()
        {
            let bound = policy.max_elapsed + self.core.config.options.connect_timeout;
            if !self.core.wait_unheld(bound).await {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    "the held events were not delivered: the session is still reconnecting",
                ));
            }
        }
        if let Some(error) = self.core.gave_up() {
            return Err(error);
        }
        match self.live() {
            Some((_, frames)) => frames.flush().await,
            None => Err(self.core.ended_error()),
        }
    }

    /// Closes the session after what is queued: the live connection closes (waiting for
    /// the server's answer, bounded), and no reconnect can follow.
    ///
    /// # Errors
    /// When it had already closed, or the server did not answer the close in time.
    pub async fn close(&mut self) -> Result<()> {
        match self.core.close() {
            Some(mut frames) => frames.close().await,
            None => Err(self.core.ended_error()),
        }
    }

    /// Moves the session to a new connection: opens one with the session's configuration,
    /// waits for its `session.created`, then makes it the live one — every clone of this
    /// sender sends on it from then on — and closes the old one. The event stream yields
    /// the rest of the old connection's events, then the new `session.created`, then the
    /// new connection's events. The server starts a new conversation: restoring the old
    /// one is the caller's (or a reconnect layer's) job.
    ///
    /// # Errors
    /// As [`connect`](crate::connect); the old connection, if still live, stays live.
    pub async fn reconnect(&self) -> Result<()> {
        self.core.begin_reconnect()?;
        match crate::session::open(&self.core.config, &self.core.span).await {
            // With a reconnect policy, what was held during an outage goes out first.
            Ok((connection, first)) if self.core.config.reconnect.is_some() => {
                match crate::supervisor::install_delivering(self.core.clone(), connection, first)
                    .await
                {
                    Ok((old, sent)) => {
                        close_replaced(old);
                        for event in sent {
                            self.core.sent(event);
                        }
                        tracing::info!(parent: &self.core.span, "moved to a new connection");
                        Ok(())
                    }
                    Err(error) => {
                        self.core.reconnect_failed();
                        Err(error)
                    }
                }
            }
            Ok((connection, first)) => {
                let old = self.core.install(connection, first);
                close_replaced(old);
                tracing::info!(parent: &self.core.span, "moved to a new connection");
                Ok(())
            }
            Err(error) => {
                self.core.reconnect_failed();
                Err(error)
            }
        }
    }

    /// The session's reconnect reports ([`Config::reconnect`](crate::Config::reconnect)):
    /// attempts, what each reconnect restored, a final failure.
    pub fn reconnect_events(&self) -> ReconnectEvents {
        ReconnectEvents {
            receiver: self.core.subscribe_reports(),
        }
    }

    /// Polls for room to send one event, through the `Sink` interface's rules: on the live
    /// connection as it is now (no waiting out an outage).
    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let core = self.core.clone();
        if core.holding() {
            // Held for the next connection (or refused in `start`).
            return Poll::Ready(Ok(()));
        }
        match self.live() {
            Some((_, frames)) => Sink::<String>::poll_ready(Pin::new(frames), cx),
            None => Poll::Ready(Err(core.ended_error())),
        }
    }

    /// Queues an event once [`SessionSender::poll_room`] said there is room.
    pub(crate) fn start(&mut self, event: ClientEvent) -> Result<()> {
        trace_out(&event);
        let (event, text) = self.prepare(event)?;
        let core = self.core.clone();
        let event = if core.holding() {
            match core.hold(text.clone(), Some(event)) {
                Holding::Held => return Ok(()),
                Holding::Refused(error) => return Err(error),
                Holding::Open(back) => back.1.expect("given"),
            }
        } else {
            event
        };
        let Some((_, frames)) = self.live() else {
            return Err(core.ended_error());
        };
        core.sent(event);
        Sink::<String>::start_send(Pin::new(frames), text)
    }

    pub(crate) fn poll_ready_to_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll_room(cx)
    }

    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let Some(pending) = self.pending.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let result = std::task::ready!(pending.as_mut().poll(cx));
        self.pending = None;
        Poll::Ready(result)
    }
}

impl Sink<ClientEvent> for SessionSender {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll_room(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, event: ClientEvent) -> Result<()> {
        self.start(event)
    }

    /// Completes when the events queued so far are written, as [`SessionSender::flush`].
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.pending.is_none() {
            let mut sender = self.clone();
            self.pending = Some(Box::pin(async move { sender.flush().await }));
        }
        self.poll_pending(cx)
    }

    /// Closes the *session* (for every clone), as [`SessionSender::close`].
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.pending.is_none() {
            let mut sender = self.clone();
            self.pending = Some(Box::pin(async move { sender.close().await }));
        }
        self.poll_pending(cx)
    }
}

/// Closes a connection a reconnect replaced, in the background: its remaining events still
/// reach the stream; the close is bounded (the transport's close timeout).
pub(crate) fn close_replaced(old: Option<FrameSender>) {
    if let Some(mut old) = old {
        tokio::spawn(async move {
            let _ = old.close().await;
        });
    }
}

/// Every event out, at TRACE: its type and id, never its payload (audio, keys in
/// tool arguments).
fn trace_out(event: &ClientEvent) {
    tracing::trace!(
        r#type = event.type_name(),
        event_id = event.event_id().unwrap_or_default(),
        "send"
    );
}
