//! `connect` and the session it opens.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;
use futures_util::StreamExt;
use reelthyme_schema::{ClientEvent, ServerEvent, SessionConfig, ValidationErrors, beta};
use reelthyme_transport::{
    BoxError, Dialect, Endpoint, Error, ErrorKind, FrameReceiver, FrameSender, Options, Result,
    Transport, WebSocket,
};
use serde_json::Value;
use tracing::Instrument;

type Outgoing = Arc<dyn Fn(ClientEvent) -> Result<ClientEvent, BoxError> + Send + Sync>;
type Incoming = Arc<dyn Fn(ServerEvent) -> Option<ServerEvent> + Send + Sync>;
type OnError = Arc<dyn Fn(&Error) + Send + Sync>;

/// Validates an outgoing event: the seed's outgoing transform, done right — a refused event
/// is an error for its sender. Use it as `Config::outgoing(reelthyme::validate)`.
///
/// # Errors
/// Every rule the event breaks, with JSON paths.
pub fn validate(event: ClientEvent) -> Result<ClientEvent, ValidationErrors> {
    reelthyme_schema::validate_client(&event).map(|()| event)
}

/// How to connect: where (an [`Endpoint`]), connection tuning ([`Options`]), and the
/// transforms. Transforms compose as layers, in the order they are added.
#[derive(Clone)]
#[must_use]
pub struct Config {
    endpoint: Endpoint,
    options: Options,
    transport: Arc<dyn Transport>,
    outgoing: Vec<Outgoing>,
    incoming: Vec<Incoming>,
    on_error: Option<OnError>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("endpoint", &self.endpoint)
            .field("options", &self.options)
            .field("outgoing_layers", &self.outgoing.len())
            .field("incoming_layers", &self.incoming.len())
            .field("on_error", &self.on_error.is_some())
            .finish()
    }
}

impl Config {
    /// A configuration for `endpoint`, over WebSocket, with no transforms.
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            options: Options::default(),
            transport: Arc::new(WebSocket::default()),
            outgoing: Vec::new(),
            incoming: Vec::new(),
            on_error: None,
        }
    }

    /// From the environment (see [`Endpoint::from_env`]).
    ///
    /// # Errors
    /// When `OPENAI_API_KEY` is not set.
    pub fn from_env() -> Result<Self> {
        Endpoint::from_env().map(Self::new)
    }

    /// Replaces the connection tuning (queue sizes, keepalive, timeouts, extra roots).
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Uses another transport (WebRTC, or your own).
    pub fn transport(mut self, transport: impl Transport + 'static) -> Self {
        self.transport = Arc::new(transport);
        self
    }

    /// Adds an outgoing transform, run on every event before it is sent (e.g.
    /// [`validate`]). Its error is returned to the sender and the event is not sent.
    pub fn outgoing<E>(
        mut self,
        transform: impl Fn(ClientEvent) -> Result<ClientEvent, E> + Send + Sync + 'static,
    ) -> Self
    where
        E: Into<BoxError>,
    {
        self.outgoing
            .push(Arc::new(move |event| transform(event).map_err(Into::into)));
        self
    }

    /// Adds an incoming transform, run on every parsed server event: return the event
    /// (changed or not) to keep it, `None` to drop it.
    pub fn incoming(
        mut self,
        transform: impl Fn(ServerEvent) -> Option<ServerEvent> + Send + Sync + 'static,
    ) -> Self {
        self.incoming.push(Arc::new(transform));
        self
    }

    /// Handles incoming failures (frames that do not parse, protocol errors) instead of
    /// yielding them from the event stream. Without a handler they are yielded as `Err`.
    /// The connection's end (close, timeout) is always yielded.
    pub fn on_error(mut self, handler: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(handler));
        self
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

/// Opens a session and waits for the server's `session.created`.
///
/// # Errors
/// Typed failures of the handshake: [`ErrorKind::Auth`] for a refused key,
/// [`ErrorKind::InvalidRequest`] for a bad model or dialect, [`ErrorKind::Connect`] and
/// [`ErrorKind::Timeout`] for the network; see [`Error::code`] for the server's code.
pub async fn connect(config: Config) -> Result<Session> {
    let span = tracing::info_span!("realtime_session", url = %config.endpoint.url(), session_id = tracing::field::Empty);
    // One deadline for the whole of it (connecting, then `session.created`), not one each.
    let timeout = config.options.connect_timeout;
    tokio::time::timeout(timeout, open(config, span.clone()))
        .instrument(span)
        .await
        .map_err(|_| {
            Error::other(
                ErrorKind::Timeout,
                format!(
                    "the session did not start within {} ms",
                    timeout.as_millis()
                ),
                None,
            )
        })?
}

async fn open(config: Config, span: tracing::Span) -> Result<Session> {
    // The transport's task inherits the current span: its logs belong to this session.
    let connection = config
        .transport
        .connect(&config.endpoint, &config.options)
        .await?;
    let dialect = config.endpoint.dialect();
    let confirmed = Arc::new(RwLock::new(SessionConfig::default()));
    let sender = SessionSender {
        frames: connection.sender,
        outgoing: config.outgoing.into(),
        dialect,
        confirmed: confirmed.clone(),
    };
    let mut events = SessionEvents {
        frames: connection.receiver,
        incoming: config.incoming.into(),
        on_error: config.on_error,
        dialect,
        buffered: None,
        span: span.clone(),
        confirmed,
    };
    // The first event says whether the server accepted the session: `session.created`, or
    // an `error` followed by a close (PROTOCOL.md §1.4).
    let first = events.frames.next().await;
    let session = match first {
        Some(Ok(text)) => {
            let event = events.parse(&text)?;
            match &event {
                ServerEvent::SessionCreated(created) => {
                    let session = created.session.clone();
                    if let Some(id) = &session.id {
                        span.record("session_id", id.as_str());
                    }
                    tracing::info!(parent: &span, "session created");
                    *events.confirmed.write().expect("session lock") = session.clone();
                    events.buffered = Some(event);
                    session
                }
                ServerEvent::Error(error) => {
                    // The close that follows carries the kind; wait for it briefly.
                    let detail = error.error.clone();
                    return Err(match events.frames.next().await {
                        Some(Err(closing)) => closing,
                        _ => Error::other(ErrorKind::InvalidRequest, detail.message.clone(), None),
                    });
                }
                other => {
                    return Err(Error::other(
                        ErrorKind::Protocol,
                        format!("expected session.created first, got {}", other.type_name()),
                        None,
                    ));
                }
            }
        }
        Some(Err(error)) => return Err(error),
        None => {
            return Err(Error::other(
                ErrorKind::Closed,
                "the server closed before session.created",
                None,
            ));
        }
    };
    Ok(Session {
        sender,
        events,
        session,
    })
}

/// An open session: a [`Sink`] of [`ClientEvent`]s and a [`Stream`] of server events.
/// [`Session::split`] separates the halves for different tasks; [`Session::sender`] gives
/// more senders. Dropping every half closes the connection.
#[derive(Debug)]
pub struct Session {
    sender: SessionSender,
    events: SessionEvents,
    session: SessionConfig,
}

impl Session {
    /// The session as `session.created` described it (id, model, audio formats …).
    pub fn config(&self) -> &SessionConfig {
        &self.session
    }

    /// The server's session id (`sess_…`).
    pub fn id(&self) -> Option<&str> {
        self.session.id.as_deref()
    }

    /// Another sender (cheap; each can be moved to its own task).
    pub fn sender(&self) -> SessionSender {
        self.sender.clone()
    }

    /// The two halves.
    pub fn split(self) -> (SessionSender, SessionEvents) {
        (self.sender, self.events)
    }

    /// Sends an event (see [`SessionSender::send`]).
    ///
    /// # Errors
    /// As [`SessionSender::send`].
    pub async fn send(&mut self, event: ClientEvent) -> Result<()> {
        self.sender.send(event).await
    }

    /// Closes the session after the events already queued.
    ///
    /// # Errors
    /// When it had already closed.
    pub async fn close(mut self) -> Result<()> {
        self.sender.close().await
    }
}

impl Stream for Session {
    type Item = Result<ServerEvent>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.events).poll_next(cx)
    }
}

impl Sink<ClientEvent> for Session {
    type Error = Error;
    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.sender).poll_ready(cx)
    }
    fn start_send(mut self: Pin<&mut Self>, event: ClientEvent) -> Result<()> {
        Pin::new(&mut self.sender).start_send(event)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.sender).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.sender).poll_close(cx)
    }
}

/// The sending half. Clone it to send from several tasks; order is kept per sender and the
/// queue is bounded (a burst waits for room; nothing is dropped).
#[derive(Clone)]
pub struct SessionSender {
    frames: FrameSender,
    outgoing: Arc<[Outgoing]>,
    dialect: Dialect,
    /// The session as the server last confirmed it (`session.created`, `session.updated`),
    /// kept by the events half.
    confirmed: Arc<RwLock<SessionConfig>>,
}

impl fmt::Debug for SessionSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionSender")
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

impl SessionSender {
    /// The session as the server last confirmed it (`session.created`, then each
    /// `session.updated` the events half has yielded): formats, voice, turn detection…
    pub fn session(&self) -> SessionConfig {
        self.confirmed.read().expect("session lock").clone()
    }

    /// The input audio format the server last confirmed (`None`: the default, PCM16 at
    /// 24 kHz).
    pub fn input_format(&self) -> Option<reelthyme_schema::AudioFormat> {
        self.confirmed
            .read()
            .expect("session lock")
            .input_format()
            .cloned()
    }

    /// Runs the outgoing transforms and serialises (in the sender's task).
    fn prepare(&self, mut event: ClientEvent) -> Result<String> {
        for transform in self.outgoing.iter() {
            event = transform(event).map_err(|e| {
                Error::other(
                    ErrorKind::Rejected,
                    format!("outgoing event refused: {e}"),
                    Some(e),
                )
            })?;
        }
        Ok(match self.dialect {
            Dialect::Ga => event.to_json(),
            _ => beta::client_to_beta(&event).to_string(),
        })
    }

    /// Sends an event: the outgoing transforms run, then it waits for room in the queue.
    ///
    /// # Errors
    /// [`ErrorKind::Rejected`] when a transform refused it (nothing was sent; the error's
    /// source is the transform's error, e.g. [`ValidationErrors`]); otherwise the error that
    /// closed the connection.
    pub async fn send(&mut self, event: ClientEvent) -> Result<()> {
        trace_out(&event);
        let text = self.prepare(event)?;
        self.frames.send(text).await
    }

    /// Sends raw JSON as it is (no transforms, no dialect translation).
    ///
    /// # Errors
    /// When the connection has closed.
    pub async fn send_raw(&mut self, event: &Value) -> Result<()> {
        self.frames.send(event.to_string()).await
    }

    /// Waits until everything sent so far is written to the socket.
    ///
    /// # Errors
    /// When the connection closed first.
    pub async fn flush(&mut self) -> Result<()> {
        self.frames.flush().await
    }

    /// Closes the session after what is queued.
    ///
    /// # Errors
    /// When it had already closed.
    pub async fn close(&mut self) -> Result<()> {
        self.frames.close().await
    }
}

impl Sink<ClientEvent> for SessionSender {
    type Error = Error;
    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.frames).poll_ready(cx)
    }
    fn start_send(mut self: Pin<&mut Self>, event: ClientEvent) -> Result<()> {
        trace_out(&event);
        let text = self.prepare(event)?;
        Pin::new(&mut self.frames).start_send(text)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.frames).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.frames).poll_close(cx)
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

/// The receiving half: server events, parsed (and translated from beta), through the
/// incoming transforms.
pub struct SessionEvents {
    frames: FrameReceiver,
    incoming: Arc<[Incoming]>,
    on_error: Option<OnError>,
    dialect: Dialect,
    buffered: Option<ServerEvent>,
    span: tracing::Span,
    confirmed: Arc<RwLock<SessionConfig>>,
}

impl fmt::Debug for SessionEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionEvents")
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

impl SessionEvents {
    fn parse(&self, text: &str) -> Result<ServerEvent> {
        let parsed = match self.dialect {
            Dialect::Ga => ServerEvent::from_json(text),
            _ => beta::parse_server(text),
        };
        parsed.map_err(|e| {
            Error::other(
                ErrorKind::Parse,
                format!("an event from the server did not parse: {e}"),
                Some(e.into()),
            )
        })
    }

    /// The frames as raw JSON (no parsing, no transforms), for logging or proxying.
    pub fn into_raw(self) -> impl Stream<Item = Result<Value>> + Send {
        // `session.created` was read by `connect`: it comes first here too.
        let first = self.buffered.map(|event| Ok(event.to_value()));
        let rest = self.frames.map(|frame| {
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
}

impl Stream for SessionEvents {
    type Item = Result<ServerEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(event) = self.buffered.take()
            && let Some(event) = self
                .incoming
                .iter()
                .try_fold(event, |event, transform| transform(event))
        {
            return Poll::Ready(Some(Ok(event)));
        }
        loop {
            let frame = match Pin::new(&mut self.frames).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(frame)) => frame,
            };
            let result = frame.and_then(|frame| self.parse(&frame));
            let event = match result {
                Ok(event) => event,
                Err(error) => {
                    let _entered = self.span.enter();
                    // A bad frame is recoverable; the connection's end never is.
                    match (&self.on_error, !error.is_fatal()) {
                        (Some(handler), true) => {
                            handler(&error);
                            continue;
                        }
                        _ => return Poll::Ready(Some(Err(error))),
                    }
                }
            };
            tracing::trace!(
                parent: &self.span,
                r#type = event.type_name(),
                event_id = event.event_id(),
                "received"
            );
            if let ServerEvent::SessionUpdated(updated) = &event {
                *self.confirmed.write().expect("session lock") = updated.session.clone();
            }
            if let Some(event) = self
                .incoming
                .iter()
                .try_fold(event, |event, transform| transform(event))
            {
                return Poll::Ready(Some(Ok(event)));
            }
        }
    }
}
