//! How to connect: [`Config`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reelthyme_schema::{
    AudioFormat, ClientEvent, Modality, ServerEvent, SessionConfig, SessionKind, Transcription,
    TurnDetection, ValidationErrors, Voice,
};
use reelthyme_transport::{BoxError, Endpoint, Error, Options, Result, Transport, WebSocket};

use crate::reconnect::Reconnect;
use crate::sequencer::Sequencer;
use crate::tools::Tool;

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
/// default), shared tuning ([`Options`]), the transforms, what sends do while no
/// connection is live, and the session itself: instructions, voice, turn detection,
/// formats and [`Tool`]s, sent as one `session.update` before anything else. Transforms
/// compose in the order they are added. Behaviour that reacts to events by sending is a
/// [`Layer`](crate::Layer), added to the session.
///
/// ```
/// use reelthyme::{Config, Endpoint};
///
/// let config = Config::new(Endpoint::openai("gpt-realtime"))
///     .instructions("You are a helpful assistant.")
///     .voice("marin")
///     .vad_off();
/// assert_eq!(config.initial_session().unwrap().instructions.as_deref(), Some("You are a helpful assistant."));
/// ```
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
    /// The session as configured here (`None`: nothing set, no `session.update` sent).
    pub(crate) session: Option<SessionConfig>,
    pub(crate) tools: Vec<Tool>,
    pub(crate) sequencer: Option<Sequencer>,
    /// Reconnects by themselves (`None`: a lost connection ends the session).
    pub(crate) reconnect: Option<Reconnect>,
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
            .field("session", &self.session)
            .field("tools", &self.tools)
            .field("sequencer", &self.sequencer.is_some())
            .field("reconnect", &self.reconnect)
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
            session: None,
            tools: Vec::new(),
            sequencer: None,
            reconnect: None,
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

    /// Reconnects by itself when the connection is lost to a retryable failure, and
    /// rotates to a new connection before the session cap, replaying the conversation
    /// (default: off — a lost connection ends the session). See [`Reconnect`] for the
    /// policy and what the model remembers; the reports are on
    /// [`SessionSender::reconnect_events`](crate::SessionSender::reconnect_events).
    /// While a reconnect is under way sends are held (this replaces
    /// [`Config::when_disconnected`]).
    pub fn reconnect(mut self, policy: Reconnect) -> Self {
        self.reconnect = Some(policy);
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

    /// The session settings sent first: the whole `session.update` (default: none, the
    /// server's defaults). The setters below change this value, so call `session` first
    /// when you combine them. A session without `type` is sent as `realtime`.
    pub fn session(mut self, session: SessionConfig) -> Self {
        self.session = Some(session);
        self
    }

    fn session_mut(&mut self) -> &mut SessionConfig {
        self.session.get_or_insert_with(SessionConfig::realtime)
    }

    /// The system instructions (default: the server's, which are generic).
    pub fn instructions(mut self, instructions: impl Into<String>) -> Self {
        self.session_mut().instructions = Some(instructions.into());
        self
    }

    /// The voice the answers are spoken in, e.g. `"marin"` (default: the server's,
    /// `alloy` on OpenAI). It cannot change once the model has spoken.
    pub fn voice(mut self, voice: impl Into<Voice>) -> Self {
        self.session_mut().audio_output_mut().voice = Some(voice.into());
        self
    }

    /// Answers in text instead of speech (default: speech, with its transcript).
    pub fn text_output(mut self) -> Self {
        self.session_mut().output_modalities = Some(vec![Modality::Text]);
        self
    }

    /// Transcribes what the user says with this model, e.g. `"gpt-4o-mini-transcribe"`
    /// (default: no transcription; the model hears the audio either way).
    pub fn transcription(mut self, model: impl Into<String>) -> Self {
        self.session_mut().audio_input_mut().transcription = Some(Some(Transcription {
            model: Some(model.into()),
            ..Transcription::default()
        }));
        self
    }

    /// How the server detects turns (default: the server's, server VAD that answers each
    /// turn and cancels the answer when the user speaks over it).
    pub fn turn_detection(mut self, detection: TurnDetection) -> Self {
        self.session_mut().audio_input_mut().turn_detection = Some(Some(detection));
        self
    }

    /// Turns voice activity detection off (default: on, see [`Config::turn_detection`]):
    /// the application commits the input buffer and asks for each answer itself.
    pub fn vad_off(mut self) -> Self {
        self.session_mut().audio_input_mut().turn_detection = Some(None);
        self
    }

    /// The format of the audio the application sends (default: PCM16 at 24 kHz).
    /// `capture_audio` follows it.
    pub fn input_format(mut self, format: AudioFormat) -> Self {
        self.session_mut().audio_input_mut().format = Some(format);
        self
    }

    /// The format of the audio the server answers in (default: PCM16 at 24 kHz).
    /// Playback follows it.
    pub fn output_format(mut self, format: AudioFormat) -> Self {
        self.session_mut().audio_output_mut().format = Some(format);
        self
    }

    /// Adds a function tool (default: none): its definition goes into the session, and
    /// the model's calls of it run its handler and send the result back (see [`Tool`]).
    /// A tool with the name of one added before replaces it.
    pub fn tool(mut self, tool: Tool) -> Self {
        self.tools.retain(|t| t.tool_name() != tool.tool_name());
        self.tools.push(tool);
        self
    }

    /// Asks for the tools' follow-up responses through this [`Sequencer`] (default: none;
    /// the tool layer sends its `response.create` itself once no response is running or
    /// asked for). Add the sequencer's layer to the session.
    pub fn sequencer(mut self, sequencer: Sequencer) -> Self {
        self.sequencer = Some(sequencer);
        self
    }

    /// The `session.update` [`connect`](crate::connect) sends first: the configured
    /// session, with the tools' definitions added to its own tools. `None` when nothing
    /// is configured (then nothing is sent).
    pub fn initial_session(&self) -> Option<SessionConfig> {
        if self.session.is_none() && self.tools.is_empty() {
            return None;
        }
        let mut session = self.session.clone().unwrap_or_else(SessionConfig::realtime);
        if session.kind.is_none() {
            session.kind = Some(SessionKind::Realtime);
        }
        if !self.tools.is_empty() {
            let tools = session.tools.get_or_insert_with(Vec::new);
            for tool in &self.tools {
                tools.retain(|t| {
                    !matches!(t, reelthyme_schema::Tool::Function(f) if f.name == tool.tool_name())
                });
                tools.push(tool.definition());
            }
        }
        Some(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::new(Endpoint::openai("gpt-realtime"))
    }

    #[test]
    fn nothing_configured_sends_nothing() {
        assert_eq!(config().initial_session(), None);
    }

    #[test]
    fn setters_fill_one_realtime_session() {
        let session = config()
            .voice("marin")
            .vad_off()
            .output_format(AudioFormat::pcm())
            .text_output()
            .initial_session()
            .unwrap();
        assert_eq!(session.kind, Some(SessionKind::Realtime));
        assert_eq!(session.turn_detection(), Some(None));
        assert_eq!(session.output_format(), Some(&AudioFormat::pcm()));
        assert_eq!(session.output_modalities, Some(vec![Modality::Text]));
        let voice = session.audio.and_then(|a| a.output).and_then(|o| o.voice);
        assert_eq!(voice, Some(Voice::from("marin")));
    }

    #[test]
    fn a_given_session_keeps_its_type_and_setters_refine_it() {
        let session = config()
            .session(SessionConfig::transcription())
            .instructions("x")
            .initial_session()
            .unwrap();
        assert_eq!(session.kind, Some(SessionKind::Transcription));
        assert_eq!(session.instructions.as_deref(), Some("x"));
        let untyped = config()
            .session(SessionConfig::default())
            .initial_session()
            .unwrap();
        assert_eq!(untyped.kind, Some(SessionKind::Realtime));
    }
}
