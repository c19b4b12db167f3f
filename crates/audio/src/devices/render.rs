//! The playback callback's work, shared by the cpal stream and [`Clock`], and the state it
//! shares with the rest of the player: atomics only, so that it never blocks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::Error;

/// What the audio callback shares with the rest: counters and the barge-in flush flag.
/// The callback takes no lock; samples reach it through a lock-free ring.
#[derive(Default)]
pub(super) struct PlayerShared {
    /// Frames of audio the device consumed from the ring.
    pub(super) played: AtomicU64,
    /// Frames the device consumed in all (audio and idle silence).
    pub(super) consumed: AtomicU64,
    /// Bumped by `Player::cut`; the callback empties the ring when it sees a new value.
    pub(super) flush: AtomicU64,
    /// The last `flush` value the callback honoured.
    pub(super) flushed: AtomicU64,
    /// `played` when the callback honoured the last flush: frames before it belong to the
    /// interrupted audio, frames after it to what was queued since.
    pub(super) played_at_flush: AtomicU64,
    /// The most frames `pending` may hold (a device that stopped consuming must not make
    /// the queue grow for ever).
    pub(super) max_pending: AtomicU64,
    /// Frames dropped by flushes.
    pub(super) discarded: AtomicU64,
    /// Set when the `Player` is dropped: the feeder stops.
    pub(super) closed: AtomicBool,
    /// Whether an [`EchoReference`](super::EchoReference) reads what the device is given.
    pub(super) reference_on: AtomicBool,
    /// Reference frames dropped because its reader fell a second behind.
    pub(super) reference_dropped: AtomicU64,
    /// The first error, reported by non-realtime threads only (the feeder reports the
    /// stream errors the error callback queues).
    pub(super) error: Mutex<Option<Error>>,
}

/// The output callback's work, shared by the cpal stream and [`Clock`]: honour a pending
/// flush, move ring samples (mono) onto every channel of `out`, silence when the ring is
/// empty, and count what was played and consumed; with an echo reference on, hand every
/// frame given to the device (silence included) to it, in order. No lock, no allocation.
pub(super) fn render<T: Copy>(
    out: &mut [T],
    channels: usize,
    ring: &mut rtrb::Consumer<f32>,
    reference: &mut rtrb::Producer<f32>,
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
    let echo = shared.reference_on.load(Ordering::Acquire);
    let mut played = 0;
    let mut dropped = 0;
    for frame in out.chunks_mut(channels.max(1)) {
        let sample = match ring.pop() {
            Ok(sample) => {
                played += 1;
                sample
            }
            Err(_) => 0.0,
        };
        if echo && reference.push(sample).is_err() {
            dropped += 1;
        }
        frame.fill(convert(sample));
    }
    if dropped > 0 {
        shared
            .reference_dropped
            .fetch_add(dropped, Ordering::AcqRel);
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
    reference: rtrb::Producer<f32>,
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
    pub(super) fn new(
        ring: rtrb::Consumer<f32>,
        reference: rtrb::Producer<f32>,
        shared: Arc<PlayerShared>,
        channels: u16,
    ) -> Self {
        Self {
            ring,
            reference,
            shared,
            channels: usize::from(channels.max(1)),
        }
    }

    /// Plays `frames` frames: returns them interleaved, and the number that were audio
    /// (the rest is silence).
    pub fn pull(&mut self, frames: usize) -> (Vec<f32>, u64) {
        let mut out = vec![0.0; frames * self.channels];
        let before = self.shared.played.load(Ordering::Acquire);
        render(
            &mut out,
            self.channels,
            &mut self.ring,
            &mut self.reference,
            &self.shared,
            |s| s,
        );
        (out, self.shared.played.load(Ordering::Acquire) - before)
    }
}
