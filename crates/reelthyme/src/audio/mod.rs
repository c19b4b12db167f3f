//! `stream` and `capture_audio`: the other two verbs, on real sound devices. Playback and
//! barge-in are a [`Layer`](crate::Layer) ([`AudioLayer`]); `stream` adds it to a session.

mod capture;
mod playback;

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_core::Stream;
use reelthyme_audio::{EchoReference, Player, Truncation};
use reelthyme_schema::{ClientEvent, ServerEvent};
use reelthyme_transport::{Error, ErrorKind, Result};

pub use capture::{CaptureHandle, CaptureOptions, capture_audio, capture_audio_with_clock};
pub use playback::AudioLayer;
pub use reelthyme_audio::echo::Echo;

use crate::{Layer, Session, SessionEvents, SessionSender};

/// The session error for an audio failure: a device's is [`ErrorKind::Device`] (the
/// session goes on without it), an unusable rate or format [`ErrorKind::Config`], a
/// payload that does not decode [`ErrorKind::Parse`].
pub(crate) fn audio_error(error: reelthyme_audio::Error) -> Error {
    use reelthyme_audio::ErrorKind as Audio;
    let kind = match error.kind() {
        kind if kind.is_device() => ErrorKind::Device,
        Audio::Decode => ErrorKind::Parse,
        _ => ErrorKind::Config,
    };
    Error::other(kind, error.to_string(), Some(Box::new(error)))
}

/// How [`stream`] plays.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StreamOptions {
    /// The output device's name (default: the system default).
    pub device: Option<String>,
    /// Stop playback, cancel the response and truncate what was not heard when the server
    /// detects the user speaking (default true).
    pub auto_barge_in: bool,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            device: None,
            auto_barge_in: true,
        }
    }
}

impl StreamOptions {
    /// Plays on the output device with this name (default: the system default).
    #[must_use]
    pub fn device(mut self, name: Option<String>) -> Self {
        self.device = name;
        self
    }

    /// Whether speech interrupts playback automatically (default true).
    #[must_use]
    pub fn auto_barge_in(mut self, on: bool) -> Self {
        self.auto_barge_in = on;
        self
    }
}

/// Which answer a barge-in cut; shared by the layer and the [`AudioControl`]s.
#[derive(Debug, Default)]
pub(crate) struct CutState {
    /// The response a barge-in cut: its deltas still in flight are not played.
    pub(crate) interrupted: Option<String>,
    /// The decoder holds the cut answer's tail: start the next one fresh.
    pub(crate) reset_decoder: bool,
}

impl CutState {
    /// Marks `active` (the running response, as the conversation has it) as cut, and
    /// returns it unless it was cut already.
    pub(crate) fn cut(&mut self, active: Option<String>) -> Option<String> {
        self.reset_decoder = true;
        let active = active.filter(|id| self.interrupted.as_deref() != Some(id));
        if active.is_some() {
            self.interrupted.clone_from(&active);
        }
        active
    }
}

pub(crate) type SharedCut = Arc<Mutex<CutState>>;

/// The session's speaker, as `stream` registered it: `capture_audio` takes its echo
/// reference (what the device was given) to cancel the assistant's echo.
#[derive(Debug, Default)]
pub(crate) struct SpeakerSlot(Mutex<Option<std::sync::Weak<Player>>>);

impl SpeakerSlot {
    pub(crate) fn set(&self, player: &Arc<Player>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::downgrade(player));
    }

    /// The player's echo reference, if a player is registered and its reference not taken.
    pub(crate) fn echo_reference(&self) -> Option<EchoReference> {
        let player = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()?
            .upgrade()?;
        player.echo_reference()
    }
}

pub(crate) fn lock(cut: &SharedCut) -> std::sync::MutexGuard<'_, CutState> {
    cut.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Controls playback: barge-in by hand, and what has been heard.
#[derive(Clone)]
pub struct AudioControl {
    player: Arc<Player>,
    sender: SessionSender,
    cut: SharedCut,
}

impl std::fmt::Debug for AudioControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioControl")
            .field("player", &self.player)
            .finish_non_exhaustive()
    }
}

impl AudioControl {
    /// Barge-in: stops and flushes playback, cancels the response if it is still running,
    /// and truncates the item being played at what the device actually played (over an
    /// audio track — WebRTC — clears the server's output buffer instead: the server
    /// truncates). Playback
    /// resumes with the next audio that arrives. Works whether or not the event stream is
    /// being polled (it sends with its own sender).
    ///
    /// # Errors
    /// When the session has closed.
    pub async fn interrupt(&self) -> Result<Option<Truncation>> {
        let active = self
            .sender
            .conversation(|c| c.active_response().map(|r| r.id().to_owned()));
        let active = lock(&self.cut).cut(active);
        // The flush is requested now; the cut resolves when the device honoured it.
        let truncation = self.player.cut().await;
        let mut sender = self.sender.clone();
        if let Some(response_id) = active {
            sender
                .send(ClientEvent::response_cancel_id(response_id))
                .await?;
        }
        if self.sender.core().has_tracks() {
            // Over tracks the server holds the output buffer and truncates by itself once
            // it is cleared.
            sender
                .send(ClientEvent::OutputAudioBufferClear(Default::default()))
                .await?;
            return Ok(truncation);
        }
        if let Some(truncation) = &truncation {
            sender
                .send(ClientEvent::truncate(
                    &truncation.item_id,
                    truncation.audio_end_ms,
                ))
                .await?;
        }
        Ok(truncation)
    }

    /// Milliseconds of `item_id`'s audio the device has played.
    pub fn played_ms(&self, item_id: &str) -> Option<u64> {
        self.player.played_ms(item_id)
    }

    /// Milliseconds of audio queued and not yet played.
    pub fn backlog_ms(&self) -> u64 {
        self.player.backlog_ms()
    }

    /// Resolves once the device has played everything queued so far (at once when
    /// nothing is queued; also when the player goes away). Audio keeps arriving only while
    /// the event stream is polled: await this between turns, not instead of polling.
    pub fn drained(&self) -> reelthyme_audio::Drained {
        self.player.drained()
    }

    /// What the speaker is given from now on, for echo cancellation of a capture of your
    /// own ([`reelthyme_audio::Capture::start_with_echo`]); `None` once taken — by this or
    /// by [`capture_audio`], which takes it to cancel the echo itself.
    pub fn echo_reference(&self) -> Option<EchoReference> {
        self.player.echo_reference()
    }

    /// A sender for the session (for [`capture_audio`], tools, …).
    pub fn sender(&self) -> SessionSender {
        self.sender.clone()
    }

    /// The player, for layers that measure playback (metrics).
    pub(crate) fn player(&self) -> &Arc<Player> {
        &self.player
    }
}

/// Server events with audio deltas taken out (they go to the speaker): the session's
/// events through its layers, the audio layer among them.
pub struct AudioEvents {
    events: SessionEvents,
}

impl std::fmt::Debug for AudioEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioEvents")
            .field("events", &self.events)
            .finish()
    }
}

impl AudioEvents {
    /// Adds a layer after the audio layer: it sees what the audio layer passes on (no
    /// audio deltas).
    #[must_use]
    pub fn with_layer(self, layer: impl Layer) -> Self {
        Self {
            events: self.events.with_layer(layer),
        }
    }

    /// The session's event stream (the audio layer stays in it).
    pub fn into_inner(self) -> SessionEvents {
        self.events
    }
}

impl Stream for AudioEvents {
    type Item = Result<ServerEvent>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.events).poll_next(cx)
    }
}

/// Splits a session: `response.output_audio.delta` is decoded and played on the default
/// output device, every other event comes out of the returned stream. Senders:
/// [`AudioControl::sender`] (or [`Session::sender`] before calling this).
///
/// # Errors
/// When no output device can be opened.
pub fn stream(session: Session) -> Result<(AudioEvents, AudioControl)> {
    stream_with(session, StreamOptions::default())
}

/// [`stream`] with options.
///
/// # Errors
/// When the output device cannot be opened.
pub fn stream_with(
    session: Session,
    options: StreamOptions,
) -> Result<(AudioEvents, AudioControl)> {
    let player = Player::start(options.device.as_deref()).map_err(audio_error)?;
    Ok(stream_to(session, player, options))
}

/// [`stream`] to a player of your own: another device, or a
/// [`Player::with_clock`](reelthyme_audio::Player::with_clock) you drive (tests of timing,
/// bridges that pull audio at a network peer's pace).
pub fn stream_to(
    session: Session,
    player: Player,
    options: StreamOptions,
) -> (AudioEvents, AudioControl) {
    let (layer, control) = AudioLayer::new(player, &session.sender(), &options);
    let (_, events) = session.with_layer(layer).split();
    (AudioEvents { events }, control)
}
