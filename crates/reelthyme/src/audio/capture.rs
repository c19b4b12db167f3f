//! `capture_audio`: the microphone into the session.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::SinkExt;
use reelthyme_audio::echo::{Echo, HalfDuplex};
use reelthyme_audio::{Capture, CaptureClock, Captured, Codec, EchoPath, Encoder};
use reelthyme_schema::{AudioFormat, Base64Audio, ClientEvent};
use reelthyme_transport::{AudioChunk, Error, ErrorKind, Result};

use super::audio_error;
use crate::SessionSender;

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
    /// How the assistant's voice is kept out of the microphone when the session also
    /// plays through [`stream`](crate::stream) (default [`Echo::Aec`]; without the `aec`
    /// feature, [`Echo::HalfDuplex`]).
    pub echo: Echo,
    /// With [`Echo::HalfDuplex`], how far above the speaker's level the microphone must be
    /// to go through while the assistant is heard (dB, default 6).
    pub half_duplex_threshold_db: f32,
    tap: Option<Tap>,
}

impl std::fmt::Debug for CaptureOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureOptions")
            .field("interval_ms", &self.interval_ms)
            .field("device", &self.device)
            .field("format", &self.format)
            .field("echo", &self.echo)
            .field("half_duplex_threshold_db", &self.half_duplex_threshold_db)
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
            echo: Echo::default(),
            half_duplex_threshold_db: HalfDuplex::DEFAULT_THRESHOLD_DB,
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

    /// Echo control against the session's speaker (default [`Echo::Aec`]).
    #[must_use]
    pub fn echo(mut self, echo: Echo) -> Self {
        self.echo = echo;
        self
    }

    /// The half-duplex sensitivity (dB above the speaker's level; default 6).
    #[must_use]
    pub fn half_duplex_threshold_db(mut self, db: f32) -> Self {
        self.half_duplex_threshold_db = db;
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
    overrun_ms: Arc<AtomicU64>,
    /// Why capture stopped by itself, once it has.
    failure: Arc<Mutex<Option<Error>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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

    /// The echo control that runs: [`Echo::Off`] when asked, or when the session plays
    /// through no [`stream`](crate::stream) player (or another capture took its reference).
    pub fn echo(&self) -> Echo {
        self.capture.as_ref().map_or(Echo::Off, Capture::echo)
    }

    /// The echo suppression measured so far (dB), with [`Echo::Aec`], once the speaker has
    /// played.
    pub fn echo_suppression_db(&self) -> Option<f32> {
        self.capture.as_ref()?.echo_suppression_db()
    }

    /// Chunks dropped because the session could not take them for longer than the capture
    /// queue holds (10 s of audio): stale speech is worse than none. Logged when it happens.
    pub fn dropped_chunks(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Milliseconds of microphone audio the device delivered faster than it could be
    /// taken in (the capture worker fell 20 s behind): lost before chunking. Logged when it
    /// happens.
    pub fn overrun_ms(&self) -> u64 {
        self.overrun_ms.load(Ordering::Relaxed)
    }

    /// Why capture stopped by itself while running — the device failed
    /// ([`ErrorKind::Device`]) or the session could not take appends — if it has (poll it
    /// from a UI tick; [`CaptureHandle::stop`] returns the same error with its source).
    pub fn error(&self) -> Option<Error> {
        lock(&self.failure).as_ref().map(Error::details)
    }

    /// Whether capture has stopped sending (by itself, or after `stop`).
    pub fn is_finished(&self) -> bool {
        self.task
            .as_ref()
            .is_none_or(tokio::task::JoinHandle::is_finished)
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

/// Chunks that may wait between the device and the session: 10 s at 40 ms.
const CAPTURE_QUEUE: usize = 250;

/// Streams the microphone into the session as `input_audio_buffer.append` events every
/// `interval_ms`, resampled from the device's native format to the session's input format
/// (followed as the server confirms it: PCM16 at 24 kHz, or G.711 at 8 kHz) unless
/// [`CaptureOptions::format`] fixes one. Appends wait for room in the send queue; if the
/// session cannot take audio for longer than 10 s, newly captured chunks are dropped and
/// counted ([`CaptureHandle::dropped_chunks`]) rather than queued without bound.
///
///
/// When the session plays through [`stream`](crate::stream) (call it first), the
/// assistant's voice is kept out of the microphone as [`CaptureOptions::echo`] says: by
/// default, echo cancellation against exactly what the speaker was given.
///
/// # Errors
/// When no input device can be opened.
pub fn capture_audio(sender: &SessionSender, options: CaptureOptions) -> Result<CaptureHandle> {
    let (device, interval) = (options.device.clone(), options.interval_ms);
    start(sender, options, |echo, on_audio| {
        Capture::start_with_echo(device.as_deref(), interval, echo, on_audio)
    })
}

/// [`capture_audio`] from a "microphone" you drive ([`CaptureClock::push`], interleaved
/// frames at `rate`): the same worker, echo control and session path as a device's. For
/// tests of timing and echo, beside [`stream_to`](crate::stream_to) with a clocked player,
/// and for bridges that receive a peer's audio at its own pace.
///
/// # Errors
/// For an unusable rate.
pub fn capture_audio_with_clock(
    sender: &SessionSender,
    options: CaptureOptions,
    rate: u32,
    channels: u16,
) -> Result<(CaptureHandle, CaptureClock)> {
    let mut clock = None;
    let interval = options.interval_ms;
    let handle = start(sender, options, |echo, on_audio| {
        let (capture, made) = Capture::with_clock(rate, channels, interval, echo, on_audio)?;
        clock = Some(made);
        Ok(capture)
    })?;
    let clock = clock.ok_or_else(|| Error::other(ErrorKind::Config, "no capture clock", None))?;
    Ok((handle, clock))
}

type OnAudio = Box<dyn FnMut(Captured) + Send + 'static>;

fn start(
    sender: &SessionSender,
    options: CaptureOptions,
    open: impl FnOnce(Option<EchoPath>, OnAudio) -> reelthyme_audio::Result<Capture>,
) -> Result<CaptureHandle> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Captured>(CAPTURE_QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    let lost = dropped.clone();
    let echo = match options.echo {
        Echo::Off => None,
        mode => match sender.core().speaker.echo_reference() {
            Some(reference) => Some(
                EchoPath::new(mode, reference)
                    .half_duplex_threshold_db(options.half_duplex_threshold_db),
            ),
            None => {
                tracing::debug!(
                    "no speaker to cancel the echo of (stream first, once per session): capturing without echo control"
                );
                None
            }
        },
    };
    let capture = open(
        echo,
        Box::new(move |captured| {
            // Never block the audio thread: a full queue drops the chunk, counted.
            if let Err(tokio::sync::mpsc::error::TrySendError::Full(_)) = tx.try_send(captured)
                && lost.fetch_add(1, Ordering::Relaxed) == 0
            {
                tracing::warn!("the session is not taking audio: dropping captured chunks");
            }
        }),
    )
    .map_err(audio_error)?;
    let overrun_ms = Arc::new(AtomicU64::new(0));
    let overrun = overrun_ms.clone();
    let mut sender = sender.clone();
    let fixed = options.format;
    let tap = options.tap;
    let failure = Arc::new(Mutex::new(None::<Error>));
    let failed = failure.clone();
    // Chunks → appends, until the device stops or the session fails.
    let work = async move {
        let wanted = |sender: &SessionSender| fixed.clone().or_else(|| sender.input_format());
        let mut encoder = Encoder::for_format(wanted(&sender).as_ref()).map_err(audio_error)?;
        while let Some(captured) = rx.recv().await {
            let chunk = match captured {
                Captured::Audio(chunk) => chunk,
                Captured::Error(error) => return Err(audio_error(error)),
                Captured::Overrun { lost } => {
                    let ms = u64::try_from(lost.as_millis()).unwrap_or(u64::MAX);
                    if overrun.fetch_add(ms, Ordering::Relaxed) == 0 {
                        tracing::warn!(lost_ms = ms, "the microphone's audio is being lost");
                    }
                    continue;
                }
                _ => continue,
            };
            if let Some(tap) = &tap {
                tap(&chunk);
            }
            let format = wanted(&sender);
            if Codec::of(format.as_ref()) != encoder.codec() {
                // The session changed format: finish the old stream, start the new one.
                if let Some(tail) = tail(&mut encoder) {
                    sender.send(tail).await?;
                }
                encoder = Encoder::for_format(format.as_ref()).map_err(audio_error)?;
            }
            // Over an audio track (WebRTC) the microphone goes on the track, not in appends.
            if let Some(mut track) = sender.core().audio_track() {
                track
                    .send(AudioChunk::new(24_000, chunk))
                    .await
                    .map_err(|_| {
                        Error::other(ErrorKind::Closed, "the audio track has ended", None)
                    })?;
                continue;
            }
            let append = ClientEvent::audio_append_base64(encoder.encode_base64(&chunk));
            sender.send(append).await?;
        }
        // Capture stopped: what the 24 → 8 kHz resampler still holds is the last audio.
        if let Some(tail) = tail(&mut encoder) {
            sender.send(tail).await?;
        }
        Ok(())
    };
    let task = tokio::spawn(async move {
        let result = work.await;
        if let Err(error) = &result {
            *lock(&failed) = Some(error.details());
        }
        result
    });
    Ok(CaptureHandle {
        capture: Some(capture),
        task: Some(task),
        dropped,
        overrun_ms,
        failure,
    })
}

/// An append of what the encoder still holds (G.711's resampler tail), if anything.
fn tail(encoder: &mut Encoder) -> Option<ClientEvent> {
    let bytes = encoder.finish();
    (!bytes.is_empty()).then(|| ClientEvent::audio_append_base64(Base64Audio::from_bytes(&bytes)))
}
