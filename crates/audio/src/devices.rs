//! Microphone and speaker through cpal. Each stream lives on a thread of its own (cpal's
//! streams are not `Send`); the handles here are `Send` and talk to it through shared
//! state.
//!
//! - [`Player`]: 24 kHz mono PCM16 in, resampled to the device's rate and channel count; the
//!   callback counts the frames the device really consumed into a [`PlaybackTracker`], so a
//!   barge-in knows exactly what was heard.
//! - [`Capture`]: the device's native rate, format and channels in; mono 24 kHz PCM16 out,
//!   in chunks of a chosen duration, to a callback.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, mpsc};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SizedSample};

use crate::{AudioError, PlaybackTracker, Resampler, Truncation, downmix, f32_to_i16, i16_to_f32};

/// The rate the API speaks.
const API_RATE: u32 = 24_000;

/// The default longest playback backlog (see [`Player::set_max_backlog`]).
const DEFAULT_MAX_BACKLOG_SECONDS: u64 = 300;

/// How long a barge-in waits for the callback to honour its flush: a stopped device never
/// does.
const CUT_TIMEOUT: Duration = Duration::from_millis(500);

/// How often the feeder tops up the ring and completes barge-ins.
const FEEDER_PERIOD: Duration = Duration::from_millis(2);

fn device_error(what: &str, error: impl std::fmt::Display) -> AudioError {
    AudioError::Device(format!("{what}: {error}"))
}

/// A device's name, as `--input-device`/`--output-device` take it.
fn device_name(device: &cpal::Device) -> String {
    device
        .description()
        .map(|d| d.name().to_owned())
        .unwrap_or_else(|_| "<unnamed>".to_owned())
}

/// The names of the input (`input = true`) or output devices.
///
/// # Errors
/// When the host cannot list devices.
pub fn device_names(input: bool) -> Result<Vec<String>, AudioError> {
    let host = cpal::default_host();
    let devices = if input {
        host.input_devices()
    } else {
        host.output_devices()
    };
    Ok(devices
        .map_err(|e| device_error("listing devices", e))?
        .map(|d| device_name(&d))
        .collect())
}

fn find_device(input: bool, name: Option<&str>) -> Result<cpal::Device, AudioError> {
    let host = cpal::default_host();
    match name {
        None => if input {
            host.default_input_device()
        } else {
            host.default_output_device()
        }
        .ok_or_else(|| {
            AudioError::Device(format!(
                "no default {} device",
                if input { "input" } else { "output" }
            ))
        }),
        Some(name) => {
            let mut devices = if input {
                host.input_devices()
            } else {
                host.output_devices()
            }
            .map_err(|e| device_error("listing devices", e))?;
            devices
                .find(|d| device_name(d) == name)
                .ok_or_else(|| AudioError::Device(format!("no device named {name:?}")))
        }
    }
}

/// What a stream runs at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFormat {
    /// The device's name.
    pub name: String,
    /// Frames per second.
    pub rate: u32,
    /// Channels.
    pub channels: u16,
    /// The sample format, as cpal names it.
    pub sample_format: String,
}

/// What the audio callback shares with the rest: counters and the barge-in flush flag.
/// The callback takes no lock; samples reach it through a lock-free ring.
#[derive(Default)]
struct PlayerShared {
    /// Frames of audio the device consumed from the ring.
    played: AtomicU64,
    /// Frames the device consumed in all (audio and idle silence).
    consumed: AtomicU64,
    /// Bumped by `interrupt`; the callback empties the ring when it sees a new value.
    flush: AtomicU64,
    /// The last `flush` value the callback honoured.
    flushed: AtomicU64,
    /// `played` when the callback honoured the last flush: frames before it belong to the
    /// interrupted audio, frames after it to what was queued since.
    played_at_flush: AtomicU64,
    /// The most frames `pending` may hold (a device that stopped consuming must not make
    /// the queue grow for ever).
    max_pending: AtomicU64,
    /// Frames dropped by flushes.
    discarded: AtomicU64,
    /// Set when the `Player` is dropped: the feeder stops.
    closed: AtomicBool,
    error: Mutex<Option<AudioError>>,
}

/// The producers' side: resampling, the overflow queue the feeder moves into the ring, and
/// the tracker (fed from the callback's counters when asked).
struct Producer {
    resampler: Resampler,
    scratch: Vec<f32>,
    pending: VecDeque<f32>,
    tracker: PlaybackTracker,
    /// `played` as last given to the tracker.
    seen: u64,
    /// Frames moved into the ring.
    sent: u64,
    /// Barge-ins waiting for the callback to honour their flush, oldest first: the
    /// tracker of the interrupted audio, which the frames played until the flush belong to.
    cuts: VecDeque<PendingCut>,
    /// Whether audio was dropped because the backlog was full (reported once).
    overflowed: bool,
}

/// A barge-in whose flush the callback has not honoured yet.
struct PendingCut {
    tracker: PlaybackTracker,
    epoch: u64,
    deadline: Instant,
    slot: Arc<CutSlot>,
}

impl Producer {
    /// Gives the frames the device played since the last call to the trackers: to each
    /// cut one up to its flush, to the current one after the last. A cut whose flush was
    /// honoured is complete: its truncation goes to its [`Cut`].
    ///
    /// One `played_at_flush` serves every pending cut: the feeder writes nothing into the
    /// ring while a flush is pending, so between two flushes honoured before this runs no
    /// audio was played, and the later boundary is the earlier one.
    fn sync(&mut self, shared: &PlayerShared) {
        while let Some(front) = self.cuts.front_mut() {
            let honoured = shared.flushed.load(Ordering::Acquire) >= front.epoch;
            let boundary = if honoured {
                shared.played_at_flush.load(Ordering::Acquire)
            } else {
                shared.played.load(Ordering::Acquire)
            };
            let boundary = boundary.max(self.seen);
            front.tracker.consumed(boundary - self.seen);
            self.seen = boundary;
            if !honoured {
                return;
            }
            if let Some(mut cut) = self.cuts.pop_front() {
                cut.slot.complete(cut.tracker.interrupt());
            }
        }
        let played = shared.played.load(Ordering::Acquire).max(self.seen);
        self.tracker.consumed(played - self.seen);
        self.seen = played;
        self.tracker.prune();
    }

    /// Completes the oldest cut if the device did not honour its flush in time: what was
    /// played until now is what was heard, and the feeder resumes (the ring's audio stays
    /// queued in the device). The stall is reported first, so a caller that sees the
    /// cut's result also sees the error.
    fn expire(&mut self, shared: &PlayerShared, now: Instant) {
        self.sync(shared);
        let Some(front) = self.cuts.front() else {
            return;
        };
        if now < front.deadline {
            return;
        }
        report(
            shared,
            AudioError::Device(
                "the output device did not respond to a barge-in within 500 ms: it is stalled or stopped"
                    .into(),
            ),
        );
        shared.flushed.fetch_max(front.epoch, Ordering::AcqRel);
        self.sync(shared);
    }

    /// The player is closing: every cut completes with what was played.
    fn close(&mut self, shared: &PlayerShared) {
        self.sync(shared);
        if let Some(last) = self.cuts.back() {
            shared.flushed.fetch_max(last.epoch, Ordering::AcqRel);
        }
        self.sync(shared);
    }
}

/// Where a barge-in's truncation is delivered, by whichever non-realtime thread sees its
/// flush honoured first (the feeder, every 2 ms, or a caller of `played_ms`) — never by the
/// audio callback, which takes no lock.
#[derive(Default)]
struct CutSlot {
    state: Mutex<CutState>,
    done: Condvar,
}

#[derive(Default)]
struct CutState {
    /// `Some` once complete (the truncation, if any, until it is taken).
    result: Option<Option<Truncation>>,
    waker: Option<Waker>,
}

impl CutSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, CutState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn complete(&self, truncation: Option<Truncation>) {
        let waker = {
            let mut state = self.lock();
            state.result = Some(truncation);
            state.waker.take()
        };
        self.done.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// A barge-in in progress ([`Player::cut`]): resolves to what to truncate as soon as the
/// audio callback has honoured the flush (within 2 ms: the feeder thread completes it), or
/// after 500 ms if the device never does (reported by [`Player::error`]).
///
/// The flush is already requested: dropping the `Cut` only forgoes the truncation.
#[must_use = "the flush is requested already; await the `Cut` for what to truncate"]
pub struct Cut {
    slot: Arc<CutSlot>,
}

impl std::fmt::Debug for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cut")
            .field("done", &self.slot.lock().result.is_some())
            .finish()
    }
}

impl Cut {
    /// Whether the cut is complete (polling would be ready).
    pub fn is_done(&self) -> bool {
        self.slot.lock().result.is_some()
    }

    /// Blocks until the cut completes (at most a little over 500 ms) and returns what to
    /// truncate.
    pub fn wait(self) -> Option<Truncation> {
        // The feeder completes every cut by its deadline; the margin covers a starved
        // feeder thread, never an unbounded wait.
        let give_up = Instant::now() + CUT_TIMEOUT * 4;
        let mut state = self.slot.lock();
        loop {
            if let Some(result) = state.result.as_mut() {
                return result.take();
            }
            let now = Instant::now();
            if now >= give_up {
                tracing::warn!("a barge-in was not completed in time: no truncation");
                return None;
            }
            state = self
                .slot
                .done
                .wait_timeout(state, give_up - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Future for Cut {
    type Output = Option<Truncation>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.slot.lock();
        if let Some(result) = state.result.as_mut() {
            return Poll::Ready(result.take());
        }
        match &state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

fn report(shared: &PlayerShared, error: AudioError) {
    let mut slot = shared.error.lock().unwrap_or_else(PoisonError::into_inner);
    if slot.is_none() {
        *slot = Some(error);
    }
}

/// The speaker. Dropping it stops the stream.
pub struct Player {
    shared: Arc<PlayerShared>,
    producer: Arc<Mutex<Producer>>,
    format: DeviceFormat,
    stop: Option<mpsc::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Player {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Player")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// Ring capacity: half a second at the device rate (the feeder tops it up every 2 ms).
fn ring_frames(rate: u32) -> usize {
    (rate as usize / 2).max(1024)
}

impl Player {
    /// Opens the default output device, or the one named, at its default configuration.
    ///
    /// # Errors
    /// [`AudioError::Device`] when no device can be opened.
    pub fn start(device: Option<&str>) -> Result<Self, AudioError> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let device = device.map(str::to_owned);
        let shared = Arc::new(PlayerShared::default());
        let stream_shared = shared.clone();
        let (ring_tx, ring_rx) = mpsc::channel();
        let stream_thread = std::thread::Builder::new()
            .name("reelthyme-playback".into())
            .spawn(
                move || match open_output(device.as_deref(), stream_shared) {
                    Ok((stream, format, ring)) => {
                        let _ = ring_tx.send(ring);
                        let _ = ready_tx.send(Ok(format));
                        let _ = stop_rx.recv();
                        drop(stream);
                    }
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                    }
                },
            )
            .map_err(|e| device_error("starting the playback thread", e))?;
        let format = ready_rx
            .recv()
            .map_err(|_| AudioError::Device("the playback thread died".into()))??;
        let ring = ring_rx
            .recv()
            .map_err(|_| AudioError::Device("the playback thread died".into()))?;
        Self::assemble(shared, ring, format, Some(stop_tx), Some(stream_thread))
    }

    /// A player on a device you drive with the returned [`Clock`] (see there).
    ///
    /// # Errors
    /// [`AudioError::Rate`] for an unusable rate.
    pub fn with_clock(rate: u32, channels: u16) -> Result<(Self, Clock), AudioError> {
        let shared = Arc::new(PlayerShared::default());
        let (ring, consumer) = rtrb::RingBuffer::new(ring_frames(rate));
        let format = DeviceFormat {
            name: "clock".into(),
            rate,
            channels,
            sample_format: "F32".into(),
        };
        let clock = Clock {
            ring: consumer,
            shared: shared.clone(),
            channels: usize::from(channels.max(1)),
        };
        Ok((Self::assemble(shared, ring, format, None, None)?, clock))
    }

    fn assemble(
        shared: Arc<PlayerShared>,
        mut ring: rtrb::Producer<f32>,
        format: DeviceFormat,
        stop: Option<mpsc::Sender<()>>,
        stream_thread: Option<JoinHandle<()>>,
    ) -> Result<Self, AudioError> {
        shared.max_pending.store(
            u64::from(format.rate) * DEFAULT_MAX_BACKLOG_SECONDS,
            Ordering::Release,
        );
        let producer = Arc::new(Mutex::new(Producer {
            resampler: Resampler::new(API_RATE, format.rate)?,
            scratch: Vec::new(),
            pending: VecDeque::new(),
            tracker: PlaybackTracker::new(format.rate),
            seen: 0,
            sent: 0,
            cuts: VecDeque::new(),
            overflowed: false,
        }));
        // The feeder moves queued audio into the ring as the device makes room, so the
        // callback never waits and producers never wait for the device.
        let feeder_producer = producer.clone();
        let feeder_shared = shared.clone();
        let feeder = std::thread::Builder::new()
            .name("reelthyme-playback-feeder".into())
            .spawn(move || {
                loop {
                    let closed = feeder_shared.closed.load(Ordering::Acquire);
                    {
                        let mut producer = feeder_producer.lock().expect("producer lock");
                        if closed {
                            producer.close(&feeder_shared);
                            return;
                        }
                        // Barge-ins complete here, off the audio thread.
                        producer.expire(&feeder_shared, Instant::now());
                        // While a barge-in flush is pending the callback will discard the
                        // ring: anything written now would be lost and miscounted.
                        let flushing = feeder_shared.flushed.load(Ordering::Acquire)
                            < feeder_shared.flush.load(Ordering::Acquire);
                        let room = if flushing {
                            0
                        } else {
                            ring.slots().min(producer.pending.len())
                        };
                        if room > 0
                            && let Ok(chunk) = ring.write_chunk_uninit(room)
                        {
                            let written = chunk.fill_from_iter(producer.pending.drain(..room));
                            producer.sent += written as u64;
                        }
                    }
                    std::thread::sleep(FEEDER_PERIOD);
                }
            })
            .map_err(|e| device_error("starting the playback feeder", e))?;
        let threads = stream_thread
            .into_iter()
            .chain(std::iter::once(feeder))
            .collect();
        Ok(Self {
            shared,
            producer,
            format,
            stop,
            threads,
        })
    }

    /// The device's format.
    pub fn format(&self) -> &DeviceFormat {
        &self.format
    }

    /// The longest backlog `play` keeps (default 300 s; audio beyond it is dropped and
    /// reported by [`Player::error`]). The server sends answers faster than real time, so
    /// the backlog must hold a whole answer; it only fills when the device stops consuming.
    pub fn set_max_backlog(&self, max: std::time::Duration) {
        let frames = max.as_secs_f64() * f64::from(self.format.rate);
        self.shared
            .max_pending
            .store(frames.max(1.0) as u64, Ordering::Release);
    }

    /// Queues 24 kHz mono PCM16 audio of an assistant item.
    pub fn play(&self, item_id: &str, samples: &[i16]) {
        let mut source = Vec::with_capacity(samples.len());
        i16_to_f32(samples, &mut source);
        let mut producer = self.producer.lock().expect("producer lock");
        let producer = &mut *producer;
        producer.scratch.clear();
        producer.resampler.process(&source, &mut producer.scratch);
        let max = self.shared.max_pending.load(Ordering::Acquire);
        if producer.pending.len() as u64 + producer.scratch.len() as u64 > max {
            if !std::mem::replace(&mut producer.overflowed, true) {
                tracing::warn!("playback backlog full: the output device is not consuming");
                self.report(AudioError::Device(format!(
                    "playback backlog over {} s: the output device is not consuming audio",
                    max / u64::from(self.format.rate.max(1))
                )));
            }
            return;
        }
        producer.pending.extend(producer.scratch.iter().copied());
        let frames = producer.scratch.len() as u64;
        producer.tracker.queued(
            item_id,
            frames,
            samples.len() as f64 * 1000.0 / f64::from(API_RATE),
        );
    }

    /// The item's audio is complete (`response.output_audio.done`): plays what the
    /// resampler still holds, so the answer's last milliseconds are not lost.
    pub fn finish(&self, item_id: &str) {
        let mut producer = self.producer.lock().expect("producer lock");
        let producer = &mut *producer;
        producer.scratch.clear();
        producer.resampler.flush(&mut producer.scratch);
        producer.pending.extend(producer.scratch.iter().copied());
        let frames = producer.scratch.len() as u64;
        producer.tracker.queued(item_id, frames, 0.0);
    }

    /// Barge-in: drops everything queued (in the ring too) and returns what to truncate
    /// (see [`PlaybackTracker::interrupt`]). Playback continues with what is played next.
    ///
    /// It waits (at most 500 ms: a stopped device never answers) for the audio callback to
    /// empty the ring, so that the count of frames played is final — without holding the
    /// lock `play` takes: audio queued meanwhile waits for the flush, then plays. A device
    /// that does not answer is reported by [`Player::error`]. [`Player::cut`] is the same
    /// without blocking.
    pub fn interrupt(&self) -> Option<Truncation> {
        self.cut().wait()
    }

    /// Barge-in without blocking: the flush is requested before this returns (nothing
    /// queued so far will play; audio queued from now on plays once the device has
    /// honoured it), and the returned [`Cut`] resolves to what to truncate — the same exact
    /// split of played frames as [`Player::interrupt`], within the same 500 ms bound.
    pub fn cut(&self) -> Cut {
        let slot = Arc::new(CutSlot::default());
        let mut producer = self.producer.lock().expect("producer lock");
        let producer = &mut *producer;
        producer.sync(&self.shared);
        producer.pending.clear();
        // The interrupted answer's resampler tail is dropped with it.
        producer.scratch.clear();
        producer.resampler.flush(&mut producer.scratch);
        producer.scratch.clear();
        let epoch = self.shared.flush.fetch_add(1, Ordering::AcqRel) + 1;
        let tracker = std::mem::replace(
            &mut producer.tracker,
            PlaybackTracker::new(self.format.rate),
        );
        producer.cuts.push_back(PendingCut {
            tracker,
            epoch,
            deadline: Instant::now() + CUT_TIMEOUT,
            slot: slot.clone(),
        });
        Cut { slot }
    }

    fn report(&self, error: AudioError) {
        report(&self.shared, error);
    }

    /// Milliseconds of `item_id` the device has played.
    pub fn played_ms(&self, item_id: &str) -> Option<u64> {
        let mut producer = self.producer.lock().expect("producer lock");
        producer.sync(&self.shared);
        producer.tracker.played_ms(item_id)
    }

    /// Milliseconds queued and not yet played.
    pub fn backlog_ms(&self) -> u64 {
        let producer = self.producer.lock().expect("producer lock");
        let done = self.shared.played.load(Ordering::Acquire)
            + self.shared.discarded.load(Ordering::Acquire);
        let in_ring = producer.sent.saturating_sub(done);
        (producer.pending.len() as u64 + in_ring) * 1000 / u64::from(self.format.rate)
    }

    /// Frames the device has consumed since the stream started (played or idle).
    pub fn frames_consumed(&self) -> u64 {
        self.shared.consumed.load(Ordering::Acquire)
    }

    /// The device error that stopped playback, if any.
    pub fn error(&self) -> Option<AudioError> {
        self.shared.error.lock().expect("error lock").clone()
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        drop(self.stop.take());
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

type Opened<T> = (cpal::Stream, DeviceFormat, T);

/// The output callback's work, shared by the cpal stream and [`Clock`]: honour a pending
/// flush, move ring samples (mono) onto every channel of `out`, silence when the ring is
/// empty, and count what was played and consumed. No lock, no allocation.
fn render<T: Copy>(
    out: &mut [T],
    channels: usize,
    ring: &mut rtrb::Consumer<f32>,
    shared: &PlayerShared,
    convert: impl Fn(f32) -> T,
) {
    let epoch = shared.flush.load(Ordering::Acquire);
    if shared.flushed.load(Ordering::Acquire) < epoch {
        let stale = ring.slots();
        if let Ok(chunk) = ring.read_chunk(stale) {
            chunk.commit_all();
        }
        shared.discarded.fetch_add(stale as u64, Ordering::AcqRel);
        shared
            .played_at_flush
            .store(shared.played.load(Ordering::Acquire), Ordering::Release);
        shared.flushed.fetch_max(epoch, Ordering::AcqRel);
    }
    let frames = out.len() / channels.max(1);
    let mut played = 0;
    for frame in out.chunks_mut(channels.max(1)) {
        let sample = match ring.pop() {
            Ok(sample) => {
                played += 1;
                sample
            }
            Err(_) => 0.0,
        };
        frame.fill(convert(sample));
    }
    shared.played.fetch_add(played, Ordering::AcqRel);
    shared.consumed.fetch_add(frames as u64, Ordering::AcqRel);
}

/// A device you drive yourself: each [`Clock::pull`] is one audio callback, running the
/// same code as a cpal stream's. For tests of timing (barge-in) that a real device, or
/// the unpaced ALSA file device, cannot time, and for bridges whose "device" is a network
/// peer that pulls audio at its own pace.
pub struct Clock {
    ring: rtrb::Consumer<f32>,
    shared: Arc<PlayerShared>,
    channels: usize,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl Clock {
    /// Plays `frames` frames: returns them interleaved, and the number that were audio
    /// (the rest is silence).
    pub fn pull(&mut self, frames: usize) -> (Vec<f32>, u64) {
        let mut out = vec![0.0; frames * self.channels];
        let before = self.shared.played.load(Ordering::Acquire);
        render(&mut out, self.channels, &mut self.ring, &self.shared, |s| s);
        (out, self.shared.played.load(Ordering::Acquire) - before)
    }
}

fn open_output(
    name: Option<&str>,
    shared: Arc<PlayerShared>,
) -> Result<Opened<rtrb::Producer<f32>>, AudioError> {
    let device = find_device(false, name)?;
    let supported = device
        .default_output_config()
        .map_err(|e| device_error("output configuration", e))?;
    let format = DeviceFormat {
        name: device_name(&device),
        rate: supported.sample_rate(),
        channels: supported.channels(),
        sample_format: format!("{:?}", supported.sample_format()),
    };
    let (ring, consumer) = rtrb::RingBuffer::new(ring_frames(format.rate));
    let config: cpal::StreamConfig = supported.config();
    let stream = match supported.sample_format() {
        cpal::SampleFormat::F32 => build_output::<f32>(&device, &config, consumer, shared),
        cpal::SampleFormat::I16 => build_output::<i16>(&device, &config, consumer, shared),
        cpal::SampleFormat::U16 => build_output::<u16>(&device, &config, consumer, shared),
        cpal::SampleFormat::I32 => build_output::<i32>(&device, &config, consumer, shared),
        cpal::SampleFormat::F64 => build_output::<f64>(&device, &config, consumer, shared),
        other => {
            return Err(AudioError::Device(format!(
                "unsupported output sample format {other:?}"
            )));
        }
    }?;
    stream
        .play()
        .map_err(|e| device_error("starting playback", e))?;
    tracing::info!(device = %format.name, rate = format.rate, channels = format.channels, "playback started");
    Ok((stream, format, ring))
}

fn build_output<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    mut ring: rtrb::Consumer<f32>,
    shared: Arc<PlayerShared>,
) -> Result<cpal::Stream, AudioError>
where
    T: SizedSample + FromSample<f32>,
{
    let channels = usize::from(config.channels).max(1);
    let errors = shared.clone();
    device
        .build_output_stream::<T, _, _>(
            *config,
            move |out: &mut [T], _| render(out, channels, &mut ring, &shared, T::from_sample),
            move |error| {
                tracing::warn!(%error, "playback stream error");
                *errors.error.lock().expect("error lock") = Some(device_error("playback", error));
            },
            None,
        )
        .map_err(|e| device_error("opening the output stream", e))
}

/// A running microphone capture.
pub struct Capture {
    format: DeviceFormat,
    muted: Arc<AtomicBool>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// What capture delivers to its callback.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Captured {
    /// A chunk of 24 kHz mono PCM16 (the last one, on stop, may be shorter).
    Audio(Vec<i16>),
    /// The device failed; capture has stopped.
    Error(AudioError),
}

impl Capture {
    /// Opens the default input device, or the one named, at its native configuration, and
    /// calls `on_audio` with 24 kHz mono PCM16 chunks of `chunk_ms` (from the audio thread:
    /// keep it short, e.g. a channel send).
    ///
    /// # Errors
    /// [`AudioError::Device`] when no device can be opened.
    pub fn start(
        device: Option<&str>,
        chunk_ms: u32,
        on_audio: impl FnMut(Captured) + Send + 'static,
    ) -> Result<Self, AudioError> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let muted = Arc::new(AtomicBool::new(false));
        let device = device.map(str::to_owned);
        let thread_muted = muted.clone();
        let thread = std::thread::Builder::new()
            .name("reelthyme-capture".into())
            .spawn(move || {
                let sink = Arc::new(Mutex::new(Chunker::new(chunk_ms, Box::new(on_audio))));
                match open_input(device.as_deref(), sink.clone(), thread_muted) {
                    Ok((stream, format, ())) => {
                        let _ = ready_tx.send(Ok(format));
                        let _ = stop_rx.recv();
                        drop(stream);
                        // Stopping flushes what is left, in order, after the last callback.
                        sink.lock().expect("capture lock").finish();
                    }
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                    }
                }
            })
            .map_err(|e| device_error("starting the capture thread", e))?;
        let format = ready_rx
            .recv()
            .map_err(|_| AudioError::Device("the capture thread died".into()))??;
        Ok(Self {
            format,
            muted,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The device's format.
    pub fn format(&self) -> &DeviceFormat {
        &self.format
    }

    /// Stops sending audio without closing the device.
    pub fn mute(&self) {
        self.muted.store(true, Ordering::Relaxed);
    }

    /// Sends audio again.
    pub fn unmute(&self) {
        self.muted.store(false, Ordering::Relaxed);
    }

    /// Whether capture is muted.
    pub fn is_muted(&self) -> bool {
        self.muted.load(Ordering::Relaxed)
    }

    /// Stops: the remainder is flushed to the callback and the device is released.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Turns device buffers into 24 kHz mono chunks.
struct Chunker {
    resampler: Option<Resampler>,
    chunk: usize,
    mono: Vec<f32>,
    resampled: Vec<f32>,
    pcm: Vec<i16>,
    on_audio: Box<dyn FnMut(Captured) + Send>,
    failed: bool,
}

impl Chunker {
    fn new(chunk_ms: u32, on_audio: Box<dyn FnMut(Captured) + Send>) -> Self {
        let chunk = (API_RATE as usize * chunk_ms.max(1) as usize / 1000).max(1);
        Self {
            resampler: None,
            chunk,
            mono: Vec::new(),
            resampled: Vec::new(),
            pcm: Vec::new(),
            on_audio,
            failed: false,
        }
    }

    fn push(&mut self, interleaved: &[f32], channels: usize, rate: u32) {
        if self.failed {
            return;
        }
        let resampler = match &mut self.resampler {
            Some(resampler) => resampler,
            slot @ None => match Resampler::new(rate, API_RATE) {
                Ok(resampler) => slot.insert(resampler),
                Err(error) => {
                    self.failed = true;
                    (self.on_audio)(Captured::Error(error));
                    return;
                }
            },
        };
        self.mono.clear();
        downmix(interleaved, channels, &mut self.mono);
        resampler.process(&self.mono, &mut self.resampled);
        self.emit(false);
    }

    fn emit(&mut self, all: bool) {
        let mut start = 0;
        while self.resampled.len() - start >= self.chunk || (all && start < self.resampled.len()) {
            let end = (start + self.chunk).min(self.resampled.len());
            self.pcm.clear();
            f32_to_i16(&self.resampled[start..end], &mut self.pcm);
            (self.on_audio)(Captured::Audio(self.pcm.clone()));
            start = end;
        }
        self.resampled.drain(..start);
    }

    fn finish(&mut self) {
        if let Some(resampler) = &mut self.resampler {
            resampler.flush(&mut self.resampled);
        }
        self.emit(true);
    }

    fn fail(&mut self, error: AudioError) {
        if !self.failed {
            self.failed = true;
            (self.on_audio)(Captured::Error(error));
        }
    }
}

fn open_input(
    name: Option<&str>,
    sink: Arc<Mutex<Chunker>>,
    muted: Arc<AtomicBool>,
) -> Result<Opened<()>, AudioError> {
    let device = find_device(true, name)?;
    let supported = device
        .default_input_config()
        .map_err(|e| device_error("input configuration", e))?;
    let format = DeviceFormat {
        name: device_name(&device),
        rate: supported.sample_rate(),
        channels: supported.channels(),
        sample_format: format!("{:?}", supported.sample_format()),
    };
    let config: cpal::StreamConfig = supported.config();
    let stream = match supported.sample_format() {
        cpal::SampleFormat::F32 => build_input::<f32>(&device, &config, sink, muted),
        cpal::SampleFormat::I16 => build_input::<i16>(&device, &config, sink, muted),
        cpal::SampleFormat::U16 => build_input::<u16>(&device, &config, sink, muted),
        cpal::SampleFormat::I32 => build_input::<i32>(&device, &config, sink, muted),
        cpal::SampleFormat::F64 => build_input::<f64>(&device, &config, sink, muted),
        other => {
            return Err(AudioError::Device(format!(
                "unsupported input sample format {other:?}"
            )));
        }
    }?;
    stream
        .play()
        .map_err(|e| device_error("starting capture", e))?;
    tracing::info!(device = %format.name, rate = format.rate, channels = format.channels, "capture started");
    Ok((stream, format, ()))
}

fn build_input<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    sink: Arc<Mutex<Chunker>>,
    muted: Arc<AtomicBool>,
) -> Result<cpal::Stream, AudioError>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let channels = usize::from(config.channels);
    let rate = config.sample_rate;
    let errors = sink.clone();
    let mut buffer: Vec<f32> = Vec::new();
    device
        .build_input_stream::<T, _, _>(
            *config,
            move |data: &[T], _| {
                if muted.load(Ordering::Relaxed) {
                    return;
                }
                buffer.clear();
                buffer.extend(data.iter().map(|&s| s.to_sample::<f32>()));
                sink.lock()
                    .expect("capture lock")
                    .push(&buffer, channels, rate);
            },
            move |error| {
                tracing::warn!(%error, "capture stream error");
                errors
                    .lock()
                    .expect("capture lock")
                    .fail(device_error("capture", error));
            },
            None,
        )
        .map_err(|e| device_error("opening the input stream", e))
}
