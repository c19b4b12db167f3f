//! The speaker: producers resample into a queue, a feeder thread moves it into the lock-free
//! ring the callback (`render.rs`) plays from, and completes barge-ins ([`Cut`]) off the
//! audio thread.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::{FromSample, SizedSample};

use super::render::{PlayerShared, render};
use super::{
    API_RATE, Clock, DeviceFormat, Direction, SampleFormat, device_error, open_default,
    stream_error, thread_died, thread_error,
};
use crate::{Error, ErrorKind, PlaybackTracker, Resampler, Result, Truncation, i16_to_f32};

/// The default longest playback backlog (see [`Player::set_max_backlog`]).
const DEFAULT_MAX_BACKLOG_SECONDS: u64 = 300;

/// How long a barge-in waits for the callback to honour its flush: a stopped device never
/// does.
const CUT_TIMEOUT: Duration = Duration::from_millis(500);

/// How often the feeder tops up the ring and completes barge-ins.
const FEEDER_PERIOD: Duration = Duration::from_millis(2);

/// Stream errors the error callback hands to the feeder (more are dropped: the first few
/// say what happened).
const STREAM_ERRORS: usize = 4;

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
    /// Waiting for playback to drain ([`Player::drained`]).
    drain_waiters: Vec<Arc<Slot<()>>>,
    /// Whether audio was dropped because the backlog was full (reported once).
    overflowed: bool,
}

/// A barge-in whose flush the callback has not honoured yet.
struct PendingCut {
    tracker: PlaybackTracker,
    epoch: u64,
    deadline: Instant,
    slot: Arc<Slot<Option<Truncation>>>,
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
            Error::new(
                ErrorKind::Stalled,
                "the output device did not respond to a barge-in within 500 ms: it is stalled or stopped",
            ),
        );
        shared.flushed.fetch_max(front.epoch, Ordering::AcqRel);
        self.sync(shared);
    }

    /// The player is closing: every cut completes with what was played, every wait for
    /// draining ends.
    fn close(&mut self, shared: &PlayerShared) {
        self.sync(shared);
        if let Some(last) = self.cuts.back() {
            shared.flushed.fetch_max(last.epoch, Ordering::AcqRel);
        }
        self.sync(shared);
        for waiter in self.drain_waiters.drain(..) {
            waiter.complete(());
        }
    }

    /// Frames queued and not yet played: waiting in `pending`, or in the ring.
    fn backlog_frames(&self, shared: &PlayerShared) -> u64 {
        let done = shared.played.load(Ordering::Acquire) + shared.discarded.load(Ordering::Acquire);
        self.pending.len() as u64 + self.sent.saturating_sub(done)
    }

    /// Tells those waiting that playback drained, if it did.
    fn notify_drained(&mut self, shared: &PlayerShared) {
        if !self.drain_waiters.is_empty() && self.backlog_frames(shared) == 0 {
            for waiter in self.drain_waiters.drain(..) {
                waiter.complete(());
            }
        }
    }
}

/// Where a barge-in's truncation (or the news that playback drained) is delivered, by
/// whichever non-realtime thread sees it first (the feeder, every 2 ms, or a caller of
/// `played_ms`) — never by the audio callback, which takes no lock.
struct Slot<T> {
    state: Mutex<SlotState<T>>,
}

struct SlotState<T> {
    done: bool,
    /// The result, until it is taken.
    result: Option<T>,
    waker: Option<Waker>,
}

impl<T: Default> Slot<T> {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(SlotState {
                done: false,
                result: None,
                waker: None,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_done(&self) -> bool {
        self.lock().done
    }

    fn complete(&self, result: T) {
        let waker = {
            let mut state = self.lock();
            if state.done {
                return;
            }
            state.done = true;
            state.result = Some(result);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn poll(&self, cx: &Context<'_>) -> Poll<T> {
        let mut state = self.lock();
        if state.done {
            return Poll::Ready(state.result.take().unwrap_or_default());
        }
        match &state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// A barge-in in progress ([`Player::cut`]): resolves to what to truncate as soon as the
/// audio callback has honoured the flush (within 2 ms: the feeder thread completes it), or
/// after 500 ms if the device never does (reported by [`Player::error`]).
///
/// The flush is already requested: dropping the `Cut` only forgoes the truncation.
#[must_use = "the flush is requested already; await the `Cut` for what to truncate"]
pub struct Cut {
    slot: Arc<Slot<Option<Truncation>>>,
}

impl std::fmt::Debug for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cut")
            .field("done", &self.slot.is_done())
            .finish()
    }
}

impl Cut {
    /// Whether the cut is complete (polling would be ready).
    pub fn is_done(&self) -> bool {
        self.slot.is_done()
    }
}

impl Future for Cut {
    type Output = Option<Truncation>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.slot.poll(cx)
    }
}

/// Playback drained ([`Player::drained`]): resolves once everything queued has been
/// played (or flushed by a barge-in), or when the player is dropped. A device that stopped
/// consuming never drains: wait with a timeout, or watch [`Player::error`].
#[must_use = "a future does nothing unless polled"]
pub struct Drained {
    slot: Arc<Slot<()>>,
}

impl std::fmt::Debug for Drained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drained")
            .field("done", &self.slot.is_done())
            .finish()
    }
}

impl Future for Drained {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.slot.poll(cx)
    }
}

fn report(shared: &PlayerShared, error: Error) {
    let mut slot = shared.error.lock().unwrap_or_else(PoisonError::into_inner);
    if slot.is_none() {
        *slot = Some(error);
    }
}

/// The speaker. Dropping it stops the stream.
pub struct Player {
    shared: Arc<PlayerShared>,
    producer: Arc<Mutex<Producer>>,
    /// What the callback hands the device, until [`Player::echo_reference`] takes it.
    reference: Mutex<Option<rtrb::Consumer<f32>>>,
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

/// The echo reference ring: a second at the device rate (the capture worker reads it every
/// 2 ms).
fn reference_frames(rate: u32) -> usize {
    (rate as usize).max(1024)
}

/// What the speaker was given, frame by frame, for echo cancellation: every frame the
/// player's callback hands the device from the moment this was taken (audio and idle
/// silence alike, mono, at the device's rate), in order, through a lock-free ring the
/// callback writes to. Read by the capture worker ([`Capture`](super::Capture) with an
/// [`EchoPath`](super::EchoPath)); dropping it stops the callback's copying.
pub struct EchoReference {
    frames: rtrb::Consumer<f32>,
    rate: u32,
    shared: Arc<PlayerShared>,
}

impl std::fmt::Debug for EchoReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoReference")
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

impl EchoReference {
    /// The device's rate.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Appends every frame the device was given since the last call.
    pub fn read(&mut self, out: &mut Vec<f32>) {
        let available = self.frames.slots();
        if available > 0
            && let Ok(chunk) = self.frames.read_chunk(available)
        {
            let (a, b) = chunk.as_slices();
            out.extend_from_slice(a);
            out.extend_from_slice(b);
            chunk.commit_all();
        }
    }

    /// Frames the callback could not hand over because this fell a second behind.
    pub fn dropped_frames(&self) -> u64 {
        self.shared.reference_dropped.load(Ordering::Acquire)
    }
}

impl Drop for EchoReference {
    fn drop(&mut self) {
        self.shared.reference_on.store(false, Ordering::Release);
    }
}

impl Player {
    /// Opens the default output device, or the one named, at its default configuration.
    ///
    /// # Errors
    /// When no device can be opened: [`ErrorKind::DeviceNotFound`], `DeviceBusy`,
    /// `PermissionDenied`, `UnsupportedFormat` or `StreamFailed`.
    pub fn start(device: Option<&str>) -> Result<Self> {
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
                    Ok(opened) => {
                        let _ = ring_tx.send((opened.ring, opened.reference, opened.errors));
                        let _ = ready_tx.send(Ok(opened.format));
                        let _ = stop_rx.recv();
                        drop(opened.stream);
                    }
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                    }
                },
            )
            .map_err(|e| thread_error("starting the playback thread", e))?;
        let format = ready_rx.recv().map_err(|_| thread_died("playback"))??;
        let (ring, reference, errors) = ring_rx.recv().map_err(|_| thread_died("playback"))?;
        Self::assemble(
            shared,
            ring,
            reference,
            format,
            Some(Stream {
                stop: stop_tx,
                thread: stream_thread,
                errors,
            }),
        )
    }

    /// A player on a device you drive with the returned [`Clock`] (see there).
    ///
    /// # Errors
    /// [`ErrorKind::Rate`] for an unusable rate.
    pub fn with_clock(rate: u32, channels: u16) -> Result<(Self, Clock)> {
        let shared = Arc::new(PlayerShared::default());
        let (ring, consumer) = rtrb::RingBuffer::new(ring_frames(rate));
        let (reference_tx, reference) = rtrb::RingBuffer::new(reference_frames(rate));
        let format = DeviceFormat {
            name: "clock".into(),
            rate,
            channels,
            sample_format: SampleFormat::F32,
        };
        let clock = Clock::new(consumer, reference_tx, shared.clone(), channels);
        Ok((
            Self::assemble(shared, ring, reference, format, None)?,
            clock,
        ))
    }

    fn assemble(
        shared: Arc<PlayerShared>,
        mut ring: rtrb::Producer<f32>,
        reference: rtrb::Consumer<f32>,
        format: DeviceFormat,
        stream: Option<Stream>,
    ) -> Result<Self> {
        let (stop, stream_thread, mut errors) = match stream {
            Some(Stream {
                stop,
                thread,
                errors,
            }) => (Some(stop), Some(thread), Some(errors)),
            None => (None, None, None),
        };
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
            drain_waiters: Vec::new(),
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
                        // Stream errors and barge-ins are reported and completed here, off
                        // the audio thread.
                        while let Some(Ok(error)) = errors.as_mut().map(rtrb::Consumer::pop) {
                            tracing::warn!(%error, "playback stream error");
                            *feeder_shared
                                .error
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner) =
                                Some(stream_error("playback", error));
                        }
                        producer.expire(&feeder_shared, Instant::now());
                        producer.notify_drained(&feeder_shared);
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
            .map_err(|e| thread_error("starting the playback feeder", e))?;
        let threads = stream_thread
            .into_iter()
            .chain(std::iter::once(feeder))
            .collect();
        Ok(Self {
            shared,
            producer,
            reference: Mutex::new(Some(reference)),
            format,
            stop,
            threads,
        })
    }

    /// What the device is given from now on, for echo cancellation (see
    /// [`EchoReference`]); `None` once taken (one reader per player).
    pub fn echo_reference(&self) -> Option<EchoReference> {
        let frames = self
            .reference
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        self.shared.reference_on.store(true, Ordering::Release);
        Some(EchoReference {
            frames,
            rate: self.format.rate,
            shared: self.shared.clone(),
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
                self.report(Error::new(
                    ErrorKind::Stalled,
                    format!(
                        "playback backlog over {} s: the output device is not consuming audio",
                        max / u64::from(self.format.rate.max(1))
                    ),
                ));
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

    /// Barge-in, without blocking: drops everything queued (in the ring too; nothing
    /// queued so far will play, audio queued from now on plays once the device has honoured
    /// the flush) and returns a [`Cut`] that resolves to what to truncate (see
    /// [`PlaybackTracker::interrupt`]) once the audio callback has emptied the ring, so that
    /// the count of frames played is final. It resolves within 500 ms (a stopped device
    /// never answers; that is reported by [`Player::error`]) and never holds the lock
    /// `play` takes.
    pub fn cut(&self) -> Cut {
        let slot = Slot::new();
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

    fn report(&self, error: Error) {
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
        producer.backlog_frames(&self.shared) * 1000 / u64::from(self.format.rate)
    }

    /// Resolves once everything queued so far has been played ([`Player::backlog_ms`] is
    /// 0), woken by the feeder thread within 2 ms of it; at once when nothing is queued.
    /// Audio queued meanwhile counts too: it resolves when the device has nothing left.
    pub fn drained(&self) -> Drained {
        let slot = Slot::new();
        let mut producer = self.producer.lock().expect("producer lock");
        if producer.backlog_frames(&self.shared) == 0 {
            slot.complete(());
        } else {
            producer.drain_waiters.push(slot.clone());
        }
        Drained { slot }
    }

    /// Frames the device has consumed since the stream started (played or idle).
    pub fn frames_consumed(&self) -> u64 {
        self.shared.consumed.load(Ordering::Acquire)
    }

    /// The device error that stopped playback, if any.
    pub fn error(&self) -> Option<Error> {
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

/// The cpal stream of a [`Player`], on its own thread.
struct Stream {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
    errors: rtrb::Consumer<cpal::Error>,
}

/// An output stream, playing: what the player feeds and reads back.
struct OpenedOutput {
    stream: cpal::Stream,
    format: DeviceFormat,
    ring: rtrb::Producer<f32>,
    reference: rtrb::Consumer<f32>,
    errors: rtrb::Consumer<cpal::Error>,
}

fn open_output(name: Option<&str>, shared: Arc<PlayerShared>) -> Result<OpenedOutput> {
    let (device, config, format) = open_default(Direction::Output, name)?;
    let (ring, consumer) = rtrb::RingBuffer::new(ring_frames(format.rate));
    let (reference_tx, reference) = rtrb::RingBuffer::new(reference_frames(format.rate));
    let (errors_tx, errors) = rtrb::RingBuffer::new(STREAM_ERRORS);
    let output = Output {
        ring: consumer,
        reference: reference_tx,
        shared,
        errors: errors_tx,
    };
    let stream = match format.sample_format {
        SampleFormat::F32 => build_output::<f32>(&device, &config, output),
        SampleFormat::I16 => build_output::<i16>(&device, &config, output),
        SampleFormat::U16 => build_output::<u16>(&device, &config, output),
        SampleFormat::I32 => build_output::<i32>(&device, &config, output),
        SampleFormat::F64 => build_output::<f64>(&device, &config, output),
    }?;
    stream
        .play()
        .map_err(|e| device_error("starting playback", e))?;
    tracing::info!(device = %format.name, rate = format.rate, channels = format.channels, "playback started");
    Ok(OpenedOutput {
        stream,
        format,
        ring,
        reference,
        errors,
    })
}

/// What the output callbacks own.
struct Output {
    ring: rtrb::Consumer<f32>,
    reference: rtrb::Producer<f32>,
    shared: Arc<PlayerShared>,
    errors: rtrb::Producer<cpal::Error>,
}

fn build_output<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    output: Output,
) -> Result<cpal::Stream>
where
    T: SizedSample + FromSample<f32>,
{
    let channels = usize::from(config.channels).max(1);
    let Output {
        mut ring,
        mut reference,
        shared,
        errors: mut errors_tx,
    } = output;
    device
        .build_output_stream::<T, _, _>(
            *config,
            move |out: &mut [T], _| {
                render(
                    out,
                    channels,
                    &mut ring,
                    &mut reference,
                    &shared,
                    T::from_sample,
                );
            },
            // No lock and no allocation here either: the feeder logs and reports it.
            move |error| {
                let _ = errors_tx.push(error);
            },
            None,
        )
        .map_err(|e| device_error("opening the output stream", e))
}
