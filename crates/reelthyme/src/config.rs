//! How to connect: [`Config`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reelthyme_schema::{ClientEvent, ServerEvent, ValidationErrors};
use reelthyme_transport::{BoxError, Endpoint, Error, Options, Result, Transport, WebSocket};

pub(crate) type Outgoing = Arc<dyn Fn(ClientEvent) -> Result<ClientEvent, BoxError> + Send + Sync>;
pub(crate) type Incoming = Arc<dyn Fn(ServerEvent) -> Option<ServerEvent> + Send + Sync>;
pub(crate) type OnError = Arc<dyn Fn(&Error) + Send + Sync>;

/// Validates an outgoing event; a refused event is an error for its sender, never a silent
/// drop. Use it as `Config::outgoing(reelthyme::validate)`.
///
/// # Errors
/// Every rule the event breaks, with JSON paths.
pub fn validate(event: ClientEvent) -> Result<ClientEvent, ValidationErrors> {
    reelthyme_schema::validate_client(&event).map(|()| event)
}

/// What a send does while the session has no live connection (its connection ended and no
/// new one is in place yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenDisconnected {
    /// Fail at once with the error that ended the connection (the default). Frames queued
    /// but never written are listed in that error ([`Error::unsent`]).
    #[default]
    Fail,
    /// Wait up to this long for a new connection ([`SessionSender::reconnect`]), then
    /// send on it; fail with the error that ended the old one if none comes in time.
    ///
    /// [`SessionSender::reconnect`]: crate::SessionSender::reconnect
    Wait(Duration),
}

/// How to connect: where (an [`Endpoint`]), over what ([`Transport`], WebSocket by
/// default), shared tuning ([`Options`]), the transforms, and what sends do while no
/// connection is live. Transforms compose in the order they are added. Behaviour that reacts
/// to events by sending is a [`Layer`](crate::Layer), added to the session.
#[derive(Clone)]
#[must_use]
pub struct Config {
    pub(crate) endpoint: Endpoint,
    pub(crate) options: Options,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) outgoing: Vec<Outgoing>,
    pub(crate) incoming: Vec<Incoming>,
    pub(crate) on_error: Option<OnError>,
    pub(crate) when_disconnected: WhenDisconnected,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("endpoint", &self.endpoint)
            .field("options", &self.options)
            .field("transport", &self.transport)
            .field("outgoing_transforms", &self.outgoing.len())
            .field("incoming_transforms", &self.incoming.len())
            .field("on_error", &self.on_error.is_some())
            .field("when_disconnected", &self.when_disconnected)
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
            when_disconnected: WhenDisconnected::default(),
        }
    }

    /// From the environment (see [`Endpoint::from_env`]).
    ///
    /// # Errors
    /// When `OPENAI_API_KEY` is not set.
    pub fn from_env() -> Result<Self> {
        Endpoint::from_env().map(Self::new)
    }

    /// Replaces the tuning every transport shares (queue sizes, timeouts, extra roots).
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Uses another transport, with its own settings: a tuned [`WebSocket`], WebRTC, the
    /// simulator's in-process connection, or your own [`Transport`].
    pub fn transport(mut self, transport: impl Transport + 'static) -> Self {
        self.transport = Arc::new(transport);
        self
    }

    /// What sends do while the session has no live connection (default
    /// [`WhenDisconnected::Fail`]).
    pub fn when_disconnected(mut self, policy: WhenDisconnected) -> Self {
        self.when_disconnected = policy;
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

    /// Adds an incoming transform, run on every parsed server event before the layers:
    /// return the event (changed or not) to keep it, `None` to drop it.
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
