//! `stream` and `capture_audio`: the seed's other two verbs, on real sound devices.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_core::Stream;
use reelthyme_audio::{Capture, Captured, Player, Resampler, Truncation, g711};
use reelthyme_schema::{AudioFormat, Base64Audio, ClientEvent, ServerEvent};
use reelthyme_transport::{Error, ErrorKind, Result};

use crate::{Session, SessionEvents, SessionSender};

fn audio_error(error: reelthyme_audio::AudioError) -> Error {
    Error::other(ErrorKind::Config, error.to_string(), Some(Box::new(error)))
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

#[derive(Debug, Default)]
struct ResponseState {
    active: Option<String>,
    /// The session's output format.
    format: Option<AudioFormat>,
    /// Output formats responses chose for themselves (`response.create` with
    /// `audio.output.format`), until they are done.
    response_formats: Vec<(String, AudioFormat)>,
    /// The response a barge-in cut: its deltas still in flight are not played.
    interrupted: Option<String>,
    /// The G.711 upsampler holds the cut answer's tail: start the next one fresh.
    reset_upsampler: bool,
}

impl ResponseState {
    /// Marks the running response as cut, synchronously — before the device is flushed —
    /// so that none of its deltas still arriving is queued meanwhile. Returns it.
    fn cut(&mut self) -> Option<String> {
        self.reset_upsampler = true;
        let active = self.active.take();
        if active.is_some() {
            self.interrupted.clone_from(&active);
        }
        active
    }

    fn format_of(&self, response_id: &str) -> Option<AudioFormat> {
        self.response_formats
            .iter()
            .find(|(id, _)| id == response_id)
            .map(|(_, format)| format.clone())
            .or_else(|| self.format.clone())
    }
}

/// Controls playback: barge-in by hand, and what has been heard.
#[derive(Clone)]
pub struct AudioControl {
    player: Arc<Player>,
    sender: SessionSender,
    state: Arc<Mutex<ResponseState>>,
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
    /// and truncates the item being played at what the device actually played. Playback
    /// resumes with the next audio that arrives (the seed's stop was terminal).
    ///
    /// # Errors
    /// When the session has closed.
    pub async fn interrupt(&self) -> Result<Option<Truncation>> {
        let active = self.state.lock().expect("state lock").cut();
        self.barge_in(active).await
    }

    /// The rest of a barge-in, once the response is marked cut: flush the device, cancel
    /// that response (by id: a newer one must not be cancelled instead), truncate.
    async fn barge_in(&self, active: Option<String>) -> Result<Option<Truncation>> {
        // `Player::interrupt` waits (≤ 500 ms) for the device to honour the flush: keep it
        // off the async workers.
        let player = self.player.clone();
        let truncation = tokio::task::spawn_blocking(move || player.interrupt())
            .await
            .unwrap_or(None);
        let mut sender = self.sender.clone();
        if let Some(response_id) = active {
            sender
                .send(ClientEvent::response_cancel_id(response_id))
                .await?;
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
}

/// Server events with audio deltas taken out (they go to the speaker).
pub struct AudioEvents {
    events: SessionEvents,
    control: AudioControl,
    auto_barge_in: bool,
    upsampler: Option<Resampler>,
    /// A device failure already yielded (each is reported once).
    reported_device_error: bool,
}

impl std::fmt::Debug for AudioEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioEvents").finish_non_exhaustive()
    }
}

/// Splits a session: `response.output_audio.delta` is decoded and played on the default
/// output device, every other event comes out of the returned stream. The session's sender
/// stays available through [`Session::sender`] before calling this.
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
    let format = session.config().output_format().cloned();
    let (sender, events) = session.split();
    let state = Arc::new(Mutex::new(ResponseState {
        format,
        ..ResponseState::default()
    }));
    let control = AudioControl {
        player: Arc::new(player),
        sender,
        state,
    };
    let events = AudioEvents {
        events,
        control: control.clone(),
        auto_barge_in: options.auto_barge_in,
        upsampler: None,
        reported_device_error: false,
    };
    (events, control)
}

impl AudioEvents {
    fn play(&mut self, response_id: &str, item_id: &str, audio: &Base64Audio) -> Result<()> {
        let format = {
            let mut state = self.control.state.lock().expect("state lock");
            if std::mem::take(&mut state.reset_upsampler) {
                self.upsampler = None;
            }
            state.format_of(response_id)
        };
        let samples = match format {
            Some(AudioFormat::Pcmu(_) | AudioFormat::Pcma(_)) => {
                let ulaw = matches!(format, Some(AudioFormat::Pcmu(_)));
                let bytes = audio.decode_bytes().map_err(|e| {
                    Error::other(
                        ErrorKind::Parse,
                        format!("an audio delta did not decode: {e}"),
                        Some(Box::new(e)),
                    )
                })?;
                let narrow: Vec<f32> = bytes
                    .iter()
                    .map(|&b| {
                        f32::from(if ulaw {
                            g711::ulaw_decode(b)
                        } else {
                            g711::alaw_decode(b)
                        }) / 32_768.0
                    })
                    .collect();
                let upsampler = match &mut self.upsampler {
                    Some(upsampler) => upsampler,
                    slot => slot.insert(Resampler::new(8_000, 24_000).map_err(audio_error)?),
                };
                let mut wide = Vec::new();
                upsampler.process(&narrow, &mut wide);
                let mut pcm = Vec::new();
                reelthyme_audio::f32_to_i16(&wide, &mut pcm);
                pcm
            }
            _ => audio.decode_pcm16().map_err(|e| {
                Error::other(
                    ErrorKind::Parse,
                    format!("an audio delta did not decode: {e}"),
                    Some(Box::new(e)),
                )
            })?,
        };
        self.control.player.play(item_id, &samples);
        Ok(())
    }
}

/// Whether the server cancels a running response by itself when it hears the user.
fn server_cancels(sender: &SessionSender) -> bool {
    use reelthyme_schema::TurnDetection;
    match sender.session().turn_detection() {
        Some(Some(TurnDetection::ServerVad(vad))) => vad.interrupt_response != Some(false),
        Some(Some(TurnDetection::SemanticVad(vad))) => vad.interrupt_response != Some(false),
        // Not stated: the server's default, server VAD that interrupts.
        None => true,
        // VAD off, or a kind this crate does not know: say nothing is cancelled for us.
        _ => false,
    }
}

impl AudioEvents {
    /// A device failure not yet yielded: the session goes on, playback does not.
    fn device_failure(&mut self) -> Option<Error> {
        if self.reported_device_error {
            return None;
        }
        let error = self.control.player.error()?;
        self.reported_device_error = true;
        Some(Error::other(
            ErrorKind::Device,
            format!("playback failed: {error}"),
            Some(Box::new(error)),
        ))
    }
}

impl Stream for AudioEvents {
    type Item = Result<ServerEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(error) = self.device_failure() {
                return Poll::Ready(Some(Err(error)));
            }
            let event = match Pin::new(&mut self.events).poll_next(cx) {
                Poll::Ready(Some(Ok(event))) => event,
                other => return other,
            };
            match &event {
                ServerEvent::ResponseOutputAudioDelta(delta) => {
                    let cut = self.control.state.lock().expect("state lock").interrupted
                        == Some(delta.response_id.clone());
                    // Audio of the answer the user interrupted, still arriving: not played.
                    if !cut {
                        let (response, item) = (delta.response_id.clone(), delta.item_id.clone());
                        let audio = delta.delta.clone();
                        if let Err(error) = self.play(&response, &item, &audio) {
                            return Poll::Ready(Some(Err(error)));
                        }
                    }
                    continue;
                }
                ServerEvent::ResponseOutputAudioDone(done) => {
                    let (cut, reset) = {
                        let mut state = self.control.state.lock().expect("state lock");
                        (
                            state.interrupted.as_deref() == Some(done.response_id.as_str()),
                            std::mem::take(&mut state.reset_upsampler),
                        )
                    };
                    if reset {
                        self.upsampler = None;
                    }
                    // The cut answer's tails (G.711's 8 → 24 kHz resampler, the player's)
                    // were dropped with it; a finished one's are its last milliseconds.
                    if !cut {
                        if let Some(upsampler) = &mut self.upsampler {
                            let mut tail = Vec::new();
                            upsampler.flush(&mut tail);
                            let mut pcm = Vec::new();
                            reelthyme_audio::f32_to_i16(&tail, &mut pcm);
                            self.control.player.play(&done.item_id, &pcm);
                        }
                        self.control.player.finish(&done.item_id);
                    }
                }
                ServerEvent::ResponseCreated(created) => {
                    let mut state = self.control.state.lock().expect("state lock");
                    let own_format = created
                        .response
                        .audio
                        .as_ref()
                        .and_then(|audio| audio.output.as_ref())
                        .and_then(|output| output.format.clone());
                    if let (Some(id), Some(format)) = (&created.response.id, own_format) {
                        state.response_formats.push((id.clone(), format));
                    }
                    state.active.clone_from(&created.response.id);
                }
                ServerEvent::ResponseDone(done) => {
                    let mut state = self.control.state.lock().expect("state lock");
                    if let Some(id) = &done.response.id {
                        state.response_formats.retain(|(r, _)| r != id);
                        if state.active.as_ref() == Some(id) {
                            state.active = None;
                        }
                    } else {
                        state.active = None;
                    }
                }
                ServerEvent::SessionUpdated(updated) => {
                    if let Some(format) = updated.session.output_format() {
                        self.control.state.lock().expect("state lock").format =
                            Some(format.clone());
                    }
                }
                ServerEvent::InputAudioBufferSpeechStarted(_) if self.auto_barge_in => {
                    // Cut now, so that no delta of this answer is queued from here on;
                    // the device flush and the events to the server follow.
                    let active = self.control.state.lock().expect("state lock").cut();
                    // With `interrupt_response` (the default) the server cancels the
                    // response itself; cancelling again only earns an error event.
                    let active = active.filter(|_| !server_cancels(&self.control.sender));
                    let control = self.control.clone();
                    tokio::spawn(async move {
                        if let Err(error) = control.barge_in(active).await {
                            tracing::warn!(%error, "barge-in could not reach the server");
                        }
                    });
                }
                _ => {}
            }
            return Poll::Ready(Some(Ok(event)));
        }
    }
}

/// A function shown every captured chunk (24 kHz mono PCM16) before it is sent.
type Tap = Arc<dyn Fn(&[i16]) + Send + Sync>;

/// How [`capture_audio`] captures.
#[derive(Clone)]
#[non_exhaustive]
pub struct CaptureOptions {
    /// Milliseconds of audio per `input_audio_buffer.append` (default 40; the seed used 500).
    pub interval_ms: u32,
    /// The input device's name (default: the system default).
    pub device: Option<String>,
    /// The input format to send (default: follow the session's, as the server last
    /// confirmed it — PCM16 at 24 kHz, or G.711 encoded at 8 kHz).
    pub format: Option<AudioFormat>,
    tap: Option<Tap>,
}

impl std::fmt::Debug for CaptureOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureOptions")
            .field("interval_ms", &self.interval_ms)
            .field("device", &self.device)
            .field("format", &self.format)
            .field("tap", &self.tap.is_some())
            .finish()
    }
}

impl Default for CaptureOptions {
    fn default() -> Self {
        Self {
            interval_ms: 40,
            device: None,
            format: None,
            tap: None,
        }
    }
}

impl CaptureOptions {
    /// Milliseconds per append (default 40).
    #[must_use]
    pub fn interval_ms(mut self, ms: u32) -> Self {
        self.interval_ms = ms.max(1);
        self
    }

    /// Captures from the input device with this name (default: the system default).
    #[must_use]
    pub fn device(mut self, name: Option<String>) -> Self {
        self.device = name;
        self
    }

    /// Sends in this format whatever the session says (default: follow the session).
    #[must_use]
    pub fn format(mut self, format: AudioFormat) -> Self {
        self.format = Some(format);
        self
    }

    /// Shows every captured chunk (24 kHz mono PCM16, in order, before encoding) to `tap`:
    /// for level meters and recordings. It runs in the capture task: keep it short.
    #[must_use]
    pub fn tap(mut self, tap: impl Fn(&[i16]) + Send + Sync + 'static) -> Self {
        self.tap = Some(Arc::new(tap));
        self
    }
}

/// A running capture; stop it to flush the remainder and release the device.
#[derive(Debug)]
pub struct CaptureHandle {
    capture: Option<Capture>,
    task: Option<tokio::task::JoinHandle<Result<()>>>,
    dropped: Arc<AtomicU64>,
}

impl CaptureHandle {
    /// Stops sending audio, keeping the device open.
    pub fn mute(&self) {
        if let Some(capture) = &self.capture {
            capture.mute();
        }
    }

    /// Sends audio again.
    pub fn unmute(&self) {
        if let Some(capture) = &self.capture {
            capture.unmute();
        }
    }

    /// Chunks dropped because the session could not take them for longer than the capture
    /// queue holds (10 s of audio): stale speech is worse than none. Logged when it happens.
    pub fn dropped_chunks(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Stops: the last partial chunk is sent, then the device is released.
    ///
    /// # Errors
    /// The device's error, or the session's if appends could not be sent.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(capture) = self.capture.take() {
            // Joins the capture thread, which flushes into the channel and drops its end.
            tokio::task::spawn_blocking(move || capture.stop())
                .await
                .ok();
        }
        match self.task.take() {
            Some(task) => task
                .await
                .unwrap_or_else(|e| Err(Error::other(ErrorKind::Closed, e.to_string(), None))),
            None => Ok(()),
        }
    }
}

/// How captured audio is put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Pcm16,
    Ulaw,
    Alaw,
}

impl Encoding {
    fn of(format: Option<&AudioFormat>) -> Self {
        match format {
            Some(AudioFormat::Pcmu(_)) => Self::Ulaw,
            Some(AudioFormat::Pcma(_)) => Self::Alaw,
            _ => Self::Pcm16,
        }
    }
}

/// Turns 24 kHz chunks into appends in one encoding; G.711 needs a 24 → 8 kHz resampler
/// whose tail belongs to the stream it was fed.
struct Encoder {
    encoding: Encoding,
    narrow: Option<Resampler>,
}

impl Encoder {
    fn new(encoding: Encoding) -> Result<Self> {
        let narrow = match encoding {
            Encoding::Pcm16 => None,
            _ => Some(Resampler::new(24_000, 8_000).map_err(audio_error)?),
        };
        Ok(Self { encoding, narrow })
    }

    fn encode(&mut self, chunk: &[i16]) -> ClientEvent {
        match &mut self.narrow {
            None => ClientEvent::audio_append(chunk),
            Some(resampler) => {
                let mut wide = Vec::new();
                reelthyme_audio::i16_to_f32(chunk, &mut wide);
                let mut narrowed = Vec::new();
                resampler.process(&wide, &mut narrowed);
                g711_append(&narrowed, self.encoding == Encoding::Ulaw)
            }
        }
    }

    /// What the resampler still holds: the last audio of this encoding.
    fn finish(&mut self) -> Option<ClientEvent> {
        let resampler = self.narrow.as_mut()?;
        let mut tail = Vec::new();
        resampler.flush(&mut tail);
        (!tail.is_empty()).then(|| g711_append(&tail, self.encoding == Encoding::Ulaw))
    }
}

/// Chunks that may wait between the device and the session: 10 s at 40 ms.
const CAPTURE_QUEUE: usize = 250;

/// Streams the microphone into the session as `input_audio_buffer.append` events every
/// `interval_ms`, resampled from the device's native format to the session's input format
/// (followed as the server confirms it: PCM16 at 24 kHz, or G.711 at 8 kHz) unless
/// [`CaptureOptions::format`] fixes one. Appends wait for room in the send queue; if the
/// session cannot take audio for longer than 10 s, newly captured chunks are dropped and
/// counted ([`CaptureHandle::dropped_chunks`]) rather than queued without bound.
///
/// # Errors
/// When no input device can be opened.
pub fn capture_audio(sender: &SessionSender, options: CaptureOptions) -> Result<CaptureHandle> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Captured>(CAPTURE_QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    let lost = dropped.clone();
    let capture = Capture::start(
        options.device.as_deref(),
        options.interval_ms,
        move |captured| {
            // Never block the audio thread: a full queue drops the chunk, counted.
            if let Err(tokio::sync::mpsc::error::TrySendError::Full(_)) = tx.try_send(captured)
                && lost.fetch_add(1, Ordering::Relaxed) == 0
            {
                tracing::warn!("the session is not taking audio: dropping captured chunks");
            }
        },
    )
    .map_err(audio_error)?;
    let mut sender = sender.clone();
    let fixed = options.format;
    let tap = options.tap;
    let task = tokio::spawn(async move {
        let wanted = |sender: &SessionSender| match &fixed {
            Some(format) => Encoding::of(Some(format)),
            None => Encoding::of(sender.input_format().as_ref()),
        };
        let mut encoder = Encoder::new(wanted(&sender))?;
        while let Some(captured) = rx.recv().await {
            let chunk = match captured {
                Captured::Audio(chunk) => chunk,
                Captured::Error(error) => return Err(audio_error(error)),
                _ => continue,
            };
            if let Some(tap) = &tap {
                tap(&chunk);
            }
            let encoding = wanted(&sender);
            if encoding != encoder.encoding {
                // The session changed format: finish the old stream, start the new one.
                if let Some(tail) = encoder.finish() {
                    sender.send(tail).await?;
                }
                encoder = Encoder::new(encoding)?;
            }
            sender.send(encoder.encode(&chunk)).await?;
        }
        // Capture stopped: what the 24 → 8 kHz resampler still holds is the last audio.
        if let Some(tail) = encoder.finish() {
            sender.send(tail).await?;
        }
        Ok(())
    });
    Ok(CaptureHandle {
        capture: Some(capture),
        task: Some(task),
        dropped,
    })
}

/// An append of 8 kHz samples encoded as G.711 (µ-law or A-law).
fn g711_append(samples: &[f32], ulaw: bool) -> ClientEvent {
    let mut pcm = Vec::new();
    reelthyme_audio::f32_to_i16(samples, &mut pcm);
    let encode = if ulaw {
        g711::ulaw_encode
    } else {
        g711::alaw_encode
    };
    let bytes: Vec<u8> = pcm.into_iter().map(encode).collect();
    ClientEvent::audio_append_base64(Base64Audio::from_bytes(&bytes))
}
