//! The microphone, shaped like the player: the cpal callback only copies the device's
//! interleaved samples into a lock-free ring (or counts what did not fit), and a worker
//! thread downmixes, resamples to 24 kHz, cuts chunks and calls the user's function.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::{FromSample, SizedSample};

use super::echo::{EchoPath, EchoStage, EchoStats};
use super::{
    API_RATE, DeviceFormat, Direction, SampleFormat, device_error, open_default, stream_error,
    thread_died, thread_error,
};
use crate::echo::Echo;
use crate::{Error, Resampler, Result, downmix, f32_to_i16};

/// How often the worker empties the ring.
const WORKER_PERIOD: Duration = Duration::from_millis(2);

/// Seconds of device audio the ring holds: how far the worker may fall behind (a slow
/// `on_audio`, a busy machine) before audio is lost. Generous, because on an unpaced
/// device (ALSA's `file`/`null` in headless CI) the callback delivers a whole input file
/// within milliseconds and all of it must fit; the pages are only touched as the ring
/// fills, and [`RING_MAX_SAMPLES`] bounds it for devices with many channels.
pub(crate) const RING_SECONDS: usize = 20;

/// The most samples the ring holds (64 MiB of `f32`).
const RING_MAX_SAMPLES: usize = 16 * 1024 * 1024;

/// Stream errors the error callback hands to the worker (more are dropped: capture stops
/// at the first).
const STREAM_ERRORS: usize = 4;

/// What the input callback shares with the rest: atomics only.
#[derive(Default)]
struct CaptureShared {
    muted: AtomicBool,
    /// Device frames the callback could not store because the ring was full.
    overrun_frames: AtomicU64,
}

/// A running microphone capture.
pub struct Capture {
    format: DeviceFormat,
    shared: Arc<CaptureShared>,
    echo: Echo,
    echo_stats: Arc<EchoStats>,
    stop: Option<mpsc::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
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
    Error(Error),
    /// Audio was lost here: the callback found the ring full (`on_audio` or the machine fell
    /// 20 seconds behind the device; an unpaced device does at once). Capture goes on.
    Overrun {
        /// How much audio was lost since the last report.
        lost: Duration,
    },
}

/// The stream thread's answer: the format, and the ends of the rings the worker reads.
type Ready = Result<
    (
        DeviceFormat,
        rtrb::Consumer<f32>,
        rtrb::Consumer<cpal::Error>,
    ),
    Error,
>;

impl Capture {
    /// Opens the default input device, or the one named, at its native configuration, and
    /// calls `on_audio` with 24 kHz mono PCM16 chunks of `chunk_ms`, from a worker thread
    /// (not the audio thread: a slow `on_audio` delays chunks, and after 20 seconds of
    /// delay loses audio, reported as [`Captured::Overrun`]).
    ///
    /// # Errors
    /// When no device can be opened: [`ErrorKind::DeviceNotFound`](crate::ErrorKind),
    /// `DeviceBusy`, `PermissionDenied`, `UnsupportedFormat` or `StreamFailed`.
    pub fn start(
        device: Option<&str>,
        chunk_ms: u32,
        on_audio: impl FnMut(Captured) + Send + 'static,
    ) -> Result<Self> {
        Self::start_with_echo(device, chunk_ms, None, on_audio)
    }

    /// [`Capture::start`] with echo control: the microphone against what the player gave
    /// its device ([`EchoPath`]), at the device rate, before resampling to 24 kHz.
    ///
    /// # Errors
    /// As [`Capture::start`].
    pub fn start_with_echo(
        device: Option<&str>,
        chunk_ms: u32,
        echo: Option<EchoPath>,
        on_audio: impl FnMut(Captured) + Send + 'static,
    ) -> Result<Self> {
        let (ready_tx, ready_rx) = mpsc::channel::<Ready>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        // Dropped by the stream thread once no callback can run any more: the worker then
        // empties the ring and flushes.
        let (stopped_tx, stopped_rx) = mpsc::channel::<()>();
        let shared = Arc::new(CaptureShared::default());
        let device = device.map(str::to_owned);
        let stream_shared = shared.clone();
        let stream_thread = std::thread::Builder::new()
            .name("reelthyme-capture".into())
            .spawn(move || {
                let _stopped = stopped_tx;
                match open_input(device.as_deref(), stream_shared) {
                    Ok(opened) => {
                        let _ = ready_tx.send(Ok((opened.format, opened.ring, opened.errors)));
                        let _ = stop_rx.recv();
                        drop(opened.stream);
                    }
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                    }
                }
            })
            .map_err(|e| thread_error("starting the capture thread", e))?;
        let (format, ring, errors) = ready_rx.recv().map_err(|_| thread_died("capture"))??;
        // If the worker cannot start, dropping `stop_tx` on the way out stops the stream.
        let (echo, echo_stats, worker) = Self::worker(
            &format,
            ring,
            errors,
            &shared,
            chunk_ms,
            echo,
            Box::new(on_audio),
            stopped_rx,
        )?;
        Ok(Self {
            format,
            shared,
            echo,
            echo_stats,
            stop: Some(stop_tx),
            threads: vec![stream_thread, worker],
        })
    }

    /// A capture from a "microphone" you drive with the returned [`CaptureClock`]: each
    /// [`CaptureClock::push`] is one input callback (interleaved frames at `rate`), running
    /// the same code as a cpal stream's, and the same worker after it. Beside
    /// [`Player::with_clock`](super::Player::with_clock), for timing and echo tests.
    ///
    /// # Errors
    /// [`ErrorKind::Rate`](crate::ErrorKind) for an unusable rate.
    pub fn with_clock(
        rate: u32,
        channels: u16,
        chunk_ms: u32,
        echo: Option<EchoPath>,
        on_audio: impl FnMut(Captured) + Send + 'static,
    ) -> Result<(Self, CaptureClock)> {
        let format = DeviceFormat {
            name: "clock".into(),
            rate,
            channels,
            sample_format: SampleFormat::F32,
        };
        let channels = usize::from(channels.max(1));
        let frames = ((rate as usize).max(1) * RING_SECONDS).min(RING_MAX_SAMPLES / channels);
        let (ring_tx, ring) = rtrb::RingBuffer::new(frames.max(1) * channels);
        let (_errors_tx, errors) = rtrb::RingBuffer::new(STREAM_ERRORS);
        let shared = Arc::new(CaptureShared::default());
        // No stream thread: dropping the sender (on stop) tells the worker the last
        // callback has run.
        let (stopped_tx, stopped_rx) = mpsc::channel::<()>();
        let (echo, echo_stats, worker) = Self::worker(
            &format,
            ring,
            errors,
            &shared,
            chunk_ms,
            echo,
            Box::new(on_audio),
            stopped_rx,
        )?;
        let clock = CaptureClock {
            ring: ring_tx,
            shared: shared.clone(),
            channels,
        };
        Ok((
            Self {
                format,
                shared,
                echo,
                echo_stats,
                stop: Some(stopped_tx),
                threads: vec![worker],
            },
            clock,
        ))
    }

    /// Starts the worker thread (and its echo stage) for a stream of `format`.
    #[allow(clippy::too_many_arguments)]
    fn worker(
        format: &DeviceFormat,
        ring: rtrb::Consumer<f32>,
        errors: rtrb::Consumer<cpal::Error>,
        shared: &Arc<CaptureShared>,
        chunk_ms: u32,
        echo: Option<EchoPath>,
        on_audio: Box<dyn FnMut(Captured) + Send>,
        stopped: mpsc::Receiver<()>,
    ) -> Result<(Echo, Arc<EchoStats>, JoinHandle<()>)> {
        let stats = EchoStats::new();
        let mode = echo.as_ref().map_or(Echo::Off, EchoPath::mode);
        let echo = echo.filter(|path| path.mode() != Echo::Off);
        let (rate, stage_stats) = (format.rate, stats.clone());
        let channels = usize::from(format.channels.max(1));
        let shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("reelthyme-capture-worker".into())
            .spawn(move || {
                // The echo canceller is not `Send`: it is made where it runs.
                let stage = echo.and_then(|path| {
                    EchoStage::new(path, rate, stage_stats)
                        .map_err(|error| {
                            tracing::warn!(%error, "echo control could not start: capturing without it");
                        })
                        .ok()
                });
                Worker {
                    ring,
                    errors,
                    shared,
                    channels,
                    rate,
                    interleaved: Vec::new(),
                    chunker: Chunker::new(chunk_ms, on_audio, stage),
                    overruns_seen: 0,
                }
                .run(&stopped);
            })
            .map_err(|e| thread_error("starting the capture worker", e))?;
        Ok((mode, stats, thread))
    }

    /// The echo control that runs ([`Echo::Off`] without an [`EchoPath`]).
    pub fn echo(&self) -> Echo {
        self.echo
    }

    /// The echo suppression measured so far (dB, microphone over output power while the
    /// speaker plays), with [`Echo::Aec`]; `None` before the speaker played.
    pub fn echo_suppression_db(&self) -> Option<f32> {
        self.echo_stats.suppression_db()
    }

    /// The device's format.
    pub fn format(&self) -> &DeviceFormat {
        &self.format
    }

    /// Stops sending audio without closing the device.
    pub fn mute(&self) {
        self.shared.muted.store(true, Ordering::Relaxed);
    }

    /// Sends audio again.
    pub fn unmute(&self) {
        self.shared.muted.store(false, Ordering::Relaxed);
    }

    /// Whether capture is muted.
    pub fn is_muted(&self) -> bool {
        self.shared.muted.load(Ordering::Relaxed)
    }

    /// Device frames lost so far because the ring was full (see [`Captured::Overrun`]).
    pub fn overrun_frames(&self) -> u64 {
        self.shared.overrun_frames.load(Ordering::Relaxed)
    }

    /// Stops: the remainder is flushed to the callback and the device is released. When
    /// this returns, `on_audio` has been called for the last time and dropped.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        drop(self.stop.take());
        // The stream thread first (no callback runs after it), then the worker, which
        // empties the ring and flushes.
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The "microphone" of [`Capture::with_clock`]: each push is one input callback.
pub struct CaptureClock {
    ring: rtrb::Producer<f32>,
    shared: Arc<CaptureShared>,
    channels: usize,
}

impl std::fmt::Debug for CaptureClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureClock")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl CaptureClock {
    /// Delivers interleaved frames, as a device's input callback would (what does not fit
    /// in the ring is counted as an overrun).
    pub fn push(&mut self, interleaved: &[f32]) {
        store(interleaved, self.channels, &mut self.ring, &self.shared);
    }
}

/// The capture worker: ring → chunks, off the audio thread.
struct Worker {
    ring: rtrb::Consumer<f32>,
    errors: rtrb::Consumer<cpal::Error>,
    shared: Arc<CaptureShared>,
    channels: usize,
    rate: u32,
    interleaved: Vec<f32>,
    chunker: Chunker,
    overruns_seen: u64,
}

impl Worker {
    fn run(mut self, stopped: &mpsc::Receiver<()>) {
        loop {
            let last = !matches!(
                stopped.recv_timeout(WORKER_PERIOD),
                Err(mpsc::RecvTimeoutError::Timeout)
            );
            self.drain();
            if last {
                // Stopping flushes what is left, in order, after the last callback.
                self.chunker.finish();
                return;
            }
        }
    }

    /// Everything the callback stored since the last call, then errors and overruns.
    fn drain(&mut self) {
        // Frames counted as lost before the ring is read were lost after everything it
        // holds now (they did not fit behind it): reported after that audio, the gap is
        // never placed too early.
        let overruns = self.shared.overrun_frames.load(Ordering::Relaxed);
        let available = self.ring.slots();
        if available > 0
            && let Ok(chunk) = self.ring.read_chunk(available)
        {
            let (a, b) = chunk.as_slices();
            self.interleaved.clear();
            self.interleaved.extend_from_slice(a);
            self.interleaved.extend_from_slice(b);
            chunk.commit_all();
            self.chunker
                .push(&self.interleaved, self.channels, self.rate);
        }
        if overruns > self.overruns_seen {
            let lost = overruns - self.overruns_seen;
            // Reported in band, to the consumer, which decides whether to tell anyone (an
            // unpaced device overruns all the time); a log line per report would flood.
            tracing::debug!(frames = lost, "capture overrun: audio was lost");
            self.overruns_seen = overruns;
            self.chunker.overrun(Duration::from_secs_f64(
                lost as f64 / f64::from(self.rate.max(1)),
            ));
        }
        if let Ok(error) = self.errors.pop() {
            tracing::warn!(%error, "capture stream error");
            self.chunker.fail(stream_error("capture", error));
        }
    }
}

/// Turns device buffers into 24 kHz mono chunks (echo-controlled first, with a stage).
struct Chunker {
    resampler: Option<Resampler>,
    echo: Option<EchoStage>,
    chunk: usize,
    mono: Vec<f32>,
    echoed: Vec<f32>,
    resampled: Vec<f32>,
    on_audio: Box<dyn FnMut(Captured) + Send>,
    failed: bool,
}

impl Chunker {
    fn new(
        chunk_ms: u32,
        on_audio: Box<dyn FnMut(Captured) + Send>,
        echo: Option<EchoStage>,
    ) -> Self {
        let chunk = (API_RATE as usize * chunk_ms.max(1) as usize / 1000).max(1);
        Self {
            resampler: None,
            echo,
            chunk,
            mono: Vec::new(),
            echoed: Vec::new(),
            resampled: Vec::new(),
            on_audio,
            failed: false,
        }
    }

    fn push(&mut self, interleaved: &[f32], channels: usize, rate: u32) {
        if self.failed {
            return;
        }
        let rate = self.echo.as_ref().map_or(rate, EchoStage::rate);
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
        match &mut self.echo {
            Some(echo) => {
                self.echoed.clear();
                echo.process(&self.mono, &mut self.echoed);
                resampler.process(&self.echoed, &mut self.resampled);
            }
            None => resampler.process(&self.mono, &mut self.resampled),
        }
        self.emit(false);
    }

    fn emit(&mut self, all: bool) {
        let mut start = 0;
        while self.resampled.len() - start >= self.chunk || (all && start < self.resampled.len()) {
            let end = (start + self.chunk).min(self.resampled.len());
            let mut pcm = Vec::with_capacity(end - start);
            f32_to_i16(&self.resampled[start..end], &mut pcm);
            (self.on_audio)(Captured::Audio(pcm));
            start = end;
        }
        self.resampled.drain(..start);
    }

    fn finish(&mut self) {
        if let Some(resampler) = &mut self.resampler {
            if let Some(echo) = &mut self.echo {
                self.echoed.clear();
                echo.flush(&mut self.echoed);
                resampler.process(&self.echoed, &mut self.resampled);
            }
            resampler.flush(&mut self.resampled);
        }
        self.emit(true);
    }

    fn overrun(&mut self, lost: Duration) {
        if !self.failed {
            (self.on_audio)(Captured::Overrun { lost });
        }
    }

    fn fail(&mut self, error: Error) {
        if !self.failed {
            self.failed = true;
            (self.on_audio)(Captured::Error(error));
        }
    }
}

/// An input stream, running: what the worker reads.
struct OpenedInput {
    stream: cpal::Stream,
    format: DeviceFormat,
    ring: rtrb::Consumer<f32>,
    errors: rtrb::Consumer<cpal::Error>,
}

/// What the input callbacks own.
struct Input {
    ring: rtrb::Producer<f32>,
    errors: rtrb::Producer<cpal::Error>,
    shared: Arc<CaptureShared>,
}

fn open_input(name: Option<&str>, shared: Arc<CaptureShared>) -> Result<OpenedInput> {
    let (device, config, format) = open_default(Direction::Input, name)?;
    let channels = usize::from(format.channels.max(1));
    // A whole number of frames, so that a frame never straddles the ring's end.
    let frames = ((format.rate as usize).max(1) * RING_SECONDS).min(RING_MAX_SAMPLES / channels);
    let capacity = frames.max(1) * channels;
    let (ring_tx, ring) = rtrb::RingBuffer::new(capacity);
    let (errors_tx, errors) = rtrb::RingBuffer::new(STREAM_ERRORS);
    let input = Input {
        ring: ring_tx,
        errors: errors_tx,
        shared,
    };
    let stream = match format.sample_format {
        SampleFormat::F32 => build_input::<f32>(&device, &config, input),
        SampleFormat::I16 => build_input::<i16>(&device, &config, input),
        SampleFormat::U16 => build_input::<u16>(&device, &config, input),
        SampleFormat::I32 => build_input::<i32>(&device, &config, input),
        SampleFormat::F64 => build_input::<f64>(&device, &config, input),
    }?;
    stream
        .play()
        .map_err(|e| device_error("starting capture", e))?;
    tracing::info!(device = %format.name, rate = format.rate, channels = format.channels, "capture started");
    Ok(OpenedInput {
        stream,
        format,
        ring,
        errors,
    })
}

/// The input callback's work: copy whole frames into the ring, count the frames that did
/// not fit. No lock, no allocation, no resampling.
fn store<T>(data: &[T], channels: usize, ring: &mut rtrb::Producer<f32>, shared: &CaptureShared)
where
    T: SizedSample,
    f32: FromSample<T>,
{
    if shared.muted.load(Ordering::Relaxed) {
        return;
    }
    let frames = data.len() / channels;
    let fits = (ring.slots() / channels).min(frames);
    if fits > 0
        && let Ok(chunk) = ring.write_chunk_uninit(fits * channels)
    {
        chunk.fill_from_iter(
            data[..fits * channels]
                .iter()
                .map(|&s| s.to_sample::<f32>()),
        );
    }
    if fits < frames {
        shared
            .overrun_frames
            .fetch_add((frames - fits) as u64, Ordering::Relaxed);
    }
}

fn build_input<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    input: Input,
) -> Result<cpal::Stream>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let channels = usize::from(config.channels).max(1);
    let Input {
        mut ring,
        errors: mut errors_tx,
        shared,
    } = input;
    device
        .build_input_stream::<T, _, _>(
            *config,
            move |data: &[T], _| store(data, channels, &mut ring, &shared),
            // No lock and no allocation here either: the worker logs and reports it.
            move |error| {
                let _ = errors_tx.push(error);
            },
            None,
        )
        .map_err(|e| device_error("opening the input stream", e))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn the_callback_stores_whole_frames_and_counts_what_did_not_fit() {
        let shared = CaptureShared::default();
        let (mut ring, mut out) = rtrb::RingBuffer::<f32>::new(9);
        // Four stereo frames fit, not five: the odd free slot stays unused.
        store(&[1_i16, 2, 3, 4, 5, 6], 2, &mut ring, &shared);
        store(&[7_i16, 8, 9, 10], 2, &mut ring, &shared);
        assert_eq!(out.slots(), 8);
        assert_eq!(shared.overrun_frames.load(Ordering::Relaxed), 1);
        let first = out.pop().unwrap();
        assert!((first - 1.0 / 32_768.0).abs() < 1e-9, "{first}");
        // Muted: nothing is stored and nothing counts as lost.
        shared.muted.store(true, Ordering::Relaxed);
        store(&[0_i16; 4], 2, &mut ring, &shared);
        assert_eq!(out.slots(), 7);
        assert_eq!(shared.overrun_frames.load(Ordering::Relaxed), 1);
    }

    /// A worker on 48 kHz stereo, the ends the test writes to, and what it delivered.
    type Rig = (
        Worker,
        rtrb::Producer<f32>,
        rtrb::Producer<cpal::Error>,
        Arc<Mutex<Vec<Captured>>>,
    );

    fn worker(chunk_ms: u32) -> Rig {
        let (ring_tx, ring) = rtrb::RingBuffer::new(48_000);
        let (errors_tx, errors) = rtrb::RingBuffer::new(STREAM_ERRORS);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let worker = Worker {
            ring,
            errors,
            shared: Arc::new(CaptureShared::default()),
            channels: 2,
            rate: 48_000,
            interleaved: Vec::new(),
            chunker: Chunker::new(
                chunk_ms,
                Box::new(move |c| sink.lock().unwrap().push(c)),
                None,
            ),
            overruns_seen: 0,
        };
        (worker, ring_tx, errors_tx, seen)
    }

    fn lengths(seen: &Mutex<Vec<Captured>>) -> Vec<usize> {
        seen.lock()
            .unwrap()
            .iter()
            .filter_map(|c| match c {
                Captured::Audio(pcm) => Some(pcm.len()),
                _ => None,
            })
            .collect()
    }

    /// 48 kHz stereo in, 40 ms chunks of 24 kHz mono out, whatever the buffer sizes; the
    /// last partial chunk on stop; the total exact.
    #[test]
    fn the_worker_cuts_exact_chunks_and_flushes_the_rest_on_stop() {
        let (mut worker, mut ring, _errors, seen) = worker(40);
        let mut written = 0;
        for piece in [1_000, 333, 4_410, 7] {
            for _ in 0..piece {
                ring.push(0.25).unwrap();
                ring.push(0.25).unwrap();
            }
            written += piece;
            worker.drain();
        }
        let (stopped_tx, stopped_rx) = mpsc::channel();
        drop(stopped_tx);
        worker.run(&stopped_rx);
        let lengths = lengths(&seen);
        assert!(
            lengths[..lengths.len() - 1].iter().all(|&n| n == 960),
            "{lengths:?}"
        );
        assert!(*lengths.last().unwrap() < 960);
        assert_eq!(lengths.iter().sum::<usize>(), written / 2);
    }

    #[test]
    fn overruns_are_reported_in_band_and_errors_stop_delivery() {
        let (mut worker, mut ring, mut errors, seen) = worker(10);
        worker.shared.overrun_frames.store(4_800, Ordering::Relaxed);
        for _ in 0..960 {
            ring.push(0.1).unwrap();
        }
        worker.drain();
        assert!(
            seen.lock().unwrap().contains(&Captured::Overrun {
                lost: Duration::from_millis(100)
            }),
            "{:?}",
            seen.lock().unwrap()
        );
        // Reported once: the count is remembered.
        worker.drain();
        let overruns = |seen: &Mutex<Vec<Captured>>| {
            seen.lock()
                .unwrap()
                .iter()
                .filter(|c| matches!(c, Captured::Overrun { .. }))
                .count()
        };
        assert_eq!(overruns(&seen), 1);
        errors
            .push(cpal::Error::new(cpal::ErrorKind::DeviceNotAvailable))
            .unwrap();
        worker.drain();
        assert!(matches!(
            seen.lock().unwrap().last(),
            Some(Captured::Error(_))
        ));
        let before = lengths(&seen).len();
        for _ in 0..4_800 {
            ring.push(0.1).unwrap();
        }
        worker.drain();
        assert_eq!(lengths(&seen).len(), before, "audio after the error");
    }
}
