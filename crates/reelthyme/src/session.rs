//! `connect` and the [`Session`] it opens.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;
use futures_util::StreamExt;
use reelthyme_schema::{ClientEvent, ServerEvent, SessionConfig, beta};
use reelthyme_transport::{Connection, Dialect, Error, ErrorKind, FrameReceiver, Result};
use tracing::Instrument;

use crate::config::Config;
use crate::core::Core;
use crate::layer::Layer;
use crate::receiver::{SessionEvents, parse};
use crate::sender::SessionSender;

/// Opens a session and waits for the server's `session.created`; then, when the config
/// sets up the session ([`Config::initial_session`]: instructions, voice, tools …), sends
/// that `session.update` before anything else and waits for the server's answer, all within
/// the one connect deadline ([`Options::connect_timeout`](crate::Options)). So
/// [`Session::config`] is the configured session as soon as `connect` returns, and a
/// configuration the server refuses is an error here rather than an event later. The
/// `session.updated` that answered is applied to the conversation but not yielded by the
/// stream, which starts with `session.created` (as without a configuration). When the
/// config has [`Tool`](crate::Tool)s, their layer is the session's first.
///
/// # Errors
/// Typed failures of the handshake: [`ErrorKind::Auth`] for a refused key,
/// [`ErrorKind::InvalidRequest`] for a bad model or dialect, or a session configuration
/// the server answered with an `error` (its message kept), [`ErrorKind::Rejected`] when an
/// outgoing transform refused the configuration, [`ErrorKind::Connect`] and
/// [`ErrorKind::Timeout`] for the network; see [`Error::code`] for the server's code.
pub async fn connect(config: Config) -> Result<Session> {
    let deadline = tokio::time::Instant::now() + config.options.connect_timeout;
    let span = tracing::info_span!("realtime_session", url = %config.endpoint.url(), session_id = tracing::field::Empty);
    let (mut connection, first) = open(&config, &span).await?;
    let core = Core::new(config, span, &mut connection);
    // Readable from every sender at once, not only once the stream has yielded it.
    core.write(|conversation| conversation.apply_server(&first));
    configured(&core, &mut connection.receiver, deadline).await?;
    let events = SessionEvents::new(core.clone(), connection.receiver, first);
    let events = crate::tools::attach(events, &core.config);
    Ok(Session {
        sender: SessionSender::new(core),
        events,
    })
}

/// Opens a connection and reads its `session.created`, within one deadline (connecting,
/// then `session.created`, not one each).
pub(crate) async fn open(
    config: &Config,
    span: &tracing::Span,
) -> Result<(Connection, ServerEvent)> {
    open_with(config, span, config.initial_session()).await
}

/// [`open`], sending `session` first (a reconnect's: the session the server confirmed).
pub(crate) async fn open_with(
    config: &Config,
    span: &tracing::Span,
    session: Option<SessionConfig>,
) -> Result<(Connection, ServerEvent)> {
    let timeout = config.options.connect_timeout;
    tokio::time::timeout(timeout, handshake(config, span, session))
        .instrument(span.clone())
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::Timeout,
                format!(
                    "the session did not start within {} ms",
                    timeout.as_millis()
                ),
            )
        })?
}

async fn handshake(
    config: &Config,
    span: &tracing::Span,
    session: Option<SessionConfig>,
) -> Result<(Connection, ServerEvent)> {
    // The transport's task inherits the current span: its logs belong to this session.
    let mut connection = config
        .transport
        .connect(&config.endpoint, &config.options)
        .await?;
    // The first event says whether the server accepted the session: `session.created`, or
    // an `error` followed by a close.
    let first = match connection.receiver.next().await {
        Some(Ok(frame)) => parse(config.endpoint.dialect(), &frame)?,
        Some(Err(error)) => return Err(error),
        None => {
            return Err(Error::new(
                ErrorKind::Closed,
                "the server closed before session.created",
            ));
        }
    };
    match &first {
        ServerEvent::SessionCreated(created) => {
            if let Some(id) = &created.session.id {
                span.record("session_id", id.as_str());
            }
            tracing::info!(parent: span, "session created");
            // The configured session goes first, before any sender can queue anything:
            // on a reconnect too, so that the new server session is set up the same way.
            if let Some(session) = session {
                let text = prepare(config, ClientEvent::session_update(session))?;
                connection.sender.send(text).await?;
            }
            Ok((connection, first))
        }
        ServerEvent::Error(error) => {
            // The close that follows carries the kind; wait for it briefly.
            let detail = error.error.clone();
            Err(match connection.receiver.next().await {
                Some(Err(closing)) => closing,
                _ => Error::new(ErrorKind::InvalidRequest, detail.message.clone()),
            })
        }
        other => Err(Error::new(
            ErrorKind::Protocol,
            format!("expected session.created first, got {}", other.type_name()),
        )),
    }
}

/// The configured `session.update` as the wire gets it: through the outgoing transforms,
/// in the endpoint's dialect (what [`SessionSender::send`] does).
pub(crate) fn prepare(config: &Config, mut event: ClientEvent) -> Result<String> {
    for transform in &config.outgoing {
        event = transform(event).map_err(|e| {
            Error::other(
                ErrorKind::Rejected,
                format!("the configured session was refused: {e}"),
                Some(e),
            )
        })?;
    }
    Ok(match config.endpoint.dialect() {
        Dialect::Ga => event.to_json(),
        Dialect::Beta => beta::client_to_beta(&event).to_string(),
    })
}

/// Waits (until `deadline`) for the server's answer to the configured session, when one
/// was sent: `session.updated`, or an `error`, which becomes the connect's error. What it
/// reads is applied to the conversation: the update as sent, then the answer.
async fn configured(
    core: &Core,
    receiver: &mut FrameReceiver,
    deadline: tokio::time::Instant,
) -> Result<()> {
    let Some(session) = core.config.initial_session() else {
        return Ok(());
    };
    core.write(|conversation| conversation.apply_client(&ClientEvent::session_update(session)));
    let dialect = core.config.endpoint.dialect();
    let answer = async {
        loop {
            let event = match receiver.next().await {
                Some(Ok(frame)) => parse(dialect, &frame)?,
                Some(Err(error)) => return Err(error),
                None => {
                    return Err(Error::new(
                        ErrorKind::Closed,
                        "the server closed before answering the session configuration",
                    ));
                }
            };
            core.write(|conversation| conversation.apply_server(&event));
            match event {
                ServerEvent::SessionUpdated(_) => return Ok(()),
                ServerEvent::Error(error) => {
                    let detail = &error.error;
                    // The code is shown by `Display` (and kept for `Error::code`).
                    return Err(Error::new(
                        ErrorKind::InvalidRequest,
                        format!(
                            "the server refused the session configuration: {}",
                            detail.message
                        ),
                    )
                    .with_api_error(detail.clone()));
                }
                // Nothing else is expected before the answer; the conversation has it.
                other => {
                    tracing::debug!(
                        parent: &core.span,
                        r#type = other.type_name(),
                        "an event before the session configuration's answer"
                    );
                }
            }
        }
    };
    tokio::time::timeout_at(deadline, answer)
        .instrument(core.span.clone())
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::Timeout,
                "the server did not answer the session configuration within the connect deadline",
            )
        })?
}

/// An open session: a [`Sink`] of [`ClientEvent`]s and a [`Stream`] of server events.
/// [`Session::split`] separates the halves for different tasks; [`Session::sender`] gives
/// more senders; [`Session::with_layer`] adds behaviour. Dropping every half closes the
/// connection.
#[derive(Debug)]
pub struct Session {
    sender: SessionSender,
    events: SessionEvents,
}

impl Session {
    /// The session as the server last confirmed it (`session.created`, then the
    /// `session.updated`s the stream has yielded): id, model, audio formats …
    pub fn config(&self) -> SessionConfig {
        self.sender.session()
    }

    /// The server's session id (`sess_…`).
    pub fn id(&self) -> Option<String> {
        self.config().id
    }

    /// The server's id for the call, when the transport set one up (WebRTC): what a
    /// sideband WebSocket attaches to (`Endpoint::call_id`) and what `hangup` takes.
    pub fn call_id(&self) -> Option<String> {
        self.sender.call_id()
    }

    /// The session's reconnect reports ([`Config::reconnect`](crate::Config::reconnect)), as
    /// [`SessionSender::reconnect_events`].
    pub fn reconnect_events(&self) -> crate::ReconnectEvents {
        self.sender.reconnect_events()
    }

    /// Another sender (cheap; each can be moved to its own task).
    pub fn sender(&self) -> SessionSender {
        self.sender.clone()
    }

    /// Adds a layer after those already added: it sees the events they pass on.
    #[must_use]
    pub fn with_layer(mut self, layer: impl Layer) -> Self {
        self.events = self.events.with_layer(layer);
        self
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

// Both halves move between tasks.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn send<T: Send>() {}
    send_sync::<SessionSender>();
    send::<SessionEvents>();
    send::<Session>();
};
