//! Echo control in the capture worker: the microphone against what the speaker was given
//! ([`EchoReference`]), frame by frame, at the device rate — before the resampling to
//! 24 kHz. AEC is backed by the half-duplex gate on its output while it converges (its
//! first 5 s of far-end speech, `CONVERGENCE_BLOCKS`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::EchoReference;
use crate::echo::{Echo, HalfDuplex};
use crate::{Resampler, Result};

/// The most the reference may lead the microphone (ms): the output and input latencies
/// together. Beyond it the oldest reference is dropped (a capture that started late), so
/// the echo canceller's delay estimator can find the echo. A worker that fell behind is
/// not lead: its queued microphone frames are matched first.
const MAX_LEAD_MS: usize = 250;

/// How a [`Capture`](super::Capture) keeps the assistant out of the microphone: the mode
/// and the player's reference.
#[derive(Debug)]
pub struct EchoPath {
    mode: Echo,
    reference: EchoReference,
    threshold_db: f32,
}

impl EchoPath {
    /// `mode` against `reference` ([`Player::echo_reference`](super::Player::echo_reference)).
    /// [`Echo::Aec`] without the `aec` feature runs as [`Echo::HalfDuplex`].
    pub fn new(mode: Echo, reference: EchoReference) -> Self {
        Self {
            mode: mode.effective(),
            reference,
            threshold_db: HalfDuplex::DEFAULT_THRESHOLD_DB,
        }
    }

    /// The half-duplex sensitivity: how far above the speaker's level the microphone must be
    /// to go through while the assistant is heard (default
    /// [`HalfDuplex::DEFAULT_THRESHOLD_DB`]; see [`HalfDuplex::new`]) — also of the gate
    /// that backs [`Echo::Aec`] while it converges.
    #[must_use]
    pub fn half_duplex_threshold_db(mut self, db: f32) -> Self {
        self.threshold_db = db;
        self
    }

    /// The mode that runs.
    pub fn mode(&self) -> Echo {
        self.mode
    }
}

/// What the capture handle reads of the stage: the measured suppression (f32 bits; NaN:
/// none yet).
#[derive(Debug)]
pub(super) struct EchoStats {
    suppression: AtomicU32,
}

impl EchoStats {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            suppression: AtomicU32::new(f32::NAN.to_bits()),
        })
    }

    pub(super) fn suppression_db(&self) -> Option<f32> {
        let db = f32::from_bits(self.suppression.load(Ordering::Relaxed));
        (!db.is_nan()).then_some(db)
    }

    #[cfg_attr(not(feature = "aec"), allow(dead_code))]
    fn set(&self, db: Option<f32>) {
        self.suppression
            .store(db.unwrap_or(f32::NAN).to_bits(), Ordering::Relaxed);
    }
}

/// How long AEC is backed by the half-duplex gate (10 ms blocks in which the assistant was
/// heard): AEC3's adaptive filter converges over the first seconds of far-end speech, and
/// until it has, the residual-echo suppressor — tuned transparent so that the user's voice
/// survives double talk (`echo/canceller.rs`) — lets bursts of echo through (up to about
/// −32 dBFS in `tests/echo_pacing.rs`, above the server VAD's −35; converged, the output
/// stays near the noise floor, −70).
#[cfg(feature = "aec")]
const CONVERGENCE_BLOCKS: u64 = 500;

enum Processor {
    /// The canceller, and while it converges the gate on its output.
    #[cfg(feature = "aec")]
    Aec(Box<crate::echo::EchoCanceller>, Option<HalfDuplex>),
    Gate(HalfDuplex),
}

/// The worker's echo stage: device-rate mono in, echo-controlled mono out at
/// [`EchoStage::rate`].
pub(super) struct EchoStage {
    reference: EchoReference,
    /// The reference at the capture's working rate, not yet matched with microphone frames.
    fifo: VecDeque<f32>,
    /// Reference frames owed: microphone frames that found no reference were matched
    /// with silence, and as many reference frames are skipped when they come, so that
    /// microphone frame n always meets the reference frame the device played at n.
    debt: usize,
    reference_resampler: Option<Resampler>,
    capture_resampler: Option<Resampler>,
    rate: u32,
    processor: Processor,
    #[cfg_attr(not(feature = "aec"), allow(dead_code))]
    stats: Arc<EchoStats>,
    /// Scratch: the reference as read, and at the working rate; the microphone at the
    /// working rate; the reference matched with it.
    reference_raw: Vec<f32>,
    reference_wide: Vec<f32>,
    capture: Vec<f32>,
    matched: Vec<f32>,
    /// Scratch: the canceller's output while the gate backs it.
    #[cfg(feature = "aec")]
    cancelled: Vec<f32>,
}

impl EchoStage {
    /// The stage for a microphone at `capture_rate`: echo cancellation at the capture's
    /// rate when AEC3 runs at it, else at 48 kHz; the gate at the capture's rate.
    pub(super) fn new(path: EchoPath, capture_rate: u32, stats: Arc<EchoStats>) -> Result<Self> {
        let (rate, processor) = match path.mode {
            #[cfg(feature = "aec")]
            Echo::Aec => {
                let rate = if crate::echo::AEC_RATES.contains(&capture_rate) {
                    capture_rate
                } else {
                    48_000
                };
                (
                    rate,
                    Processor::Aec(
                        Box::new(crate::echo::EchoCanceller::new(rate)?),
                        Some(HalfDuplex::new(rate, path.threshold_db)),
                    ),
                )
            }
            _ => (
                capture_rate,
                Processor::Gate(HalfDuplex::new(capture_rate, path.threshold_db)),
            ),
        };
        let resampler = |from: u32| -> Result<Option<Resampler>> {
            Ok(if from == rate {
                None
            } else {
                Some(Resampler::new(from, rate)?)
            })
        };
        Ok(Self {
            reference_resampler: resampler(path.reference.rate())?,
            capture_resampler: resampler(capture_rate)?,
            reference: path.reference,
            fifo: VecDeque::new(),
            debt: 0,
            rate,
            processor,
            stats,
            reference_raw: Vec::new(),
            reference_wide: Vec::new(),
            capture: Vec::new(),
            matched: Vec::new(),
            #[cfg(feature = "aec")]
            cancelled: Vec::new(),
        })
    }

    /// The rate of what [`EchoStage::process`] gives.
    pub(super) fn rate(&self) -> u32 {
        self.rate
    }

    /// Takes what the player handed the device since the last call. Call it after taking
    /// the microphone's frames: the reference of every frame the microphone delivered is
    /// then here (the device played before it recorded the echo).
    fn pull_reference(&mut self) {
        self.reference_raw.clear();
        self.reference.read(&mut self.reference_raw);
        let reference = match &mut self.reference_resampler {
            Some(resampler) => {
                self.reference_wide.clear();
                resampler.process(&self.reference_raw, &mut self.reference_wide);
                &self.reference_wide
            }
            None => &self.reference_raw,
        };
        let skip = self.debt.min(reference.len());
        self.debt -= skip;
        self.fifo.extend(&reference[skip..]);
    }

    /// Drops the oldest reference beyond [`MAX_LEAD_MS`] of lead. Only after the microphone
    /// frames taken with it were matched: a worker that fell behind has both the
    /// microphone's and the speaker's frames queued, and the reference of the queued
    /// microphone frames is not lead.
    fn cap_lead(&mut self) {
        let max = MAX_LEAD_MS * self.rate as usize / 1000;
        if self.fifo.len() > max {
            let excess = self.fifo.len() - max;
            self.fifo.drain(..excess);
        }
    }

    /// Echo-controls `mono` (microphone frames at the capture's rate), appending to `out`.
    pub(super) fn process(&mut self, mono: &[f32], out: &mut Vec<f32>) {
        self.capture.clear();
        match &mut self.capture_resampler {
            Some(resampler) => resampler.process(mono, &mut self.capture),
            None => self.capture.extend_from_slice(mono),
        }
        self.run(out);
    }

    /// The microphone in `self.capture` against as much reference, to `out`.
    fn run(&mut self, out: &mut Vec<f32>) {
        self.pull_reference();
        let take = self.capture.len().min(self.fifo.len());
        self.matched.clear();
        self.matched.extend(self.fifo.drain(..take));
        self.debt += self.capture.len() - take;
        self.cap_lead();
        match &mut self.processor {
            #[cfg(feature = "aec")]
            Processor::Aec(aec, backup) => {
                match backup {
                    Some(gate) => {
                        self.cancelled.clear();
                        aec.process(&self.matched, &self.capture, &mut self.cancelled);
                        // The output trails the input by less than a 10 ms frame: the gate
                        // takes the far end's level over 300 ms, so the frames' reference
                        // serves.
                        gate.process(&self.matched, &self.cancelled, out);
                        if gate.heard_blocks() >= CONVERGENCE_BLOCKS {
                            gate.flush(out);
                            *backup = None;
                        }
                    }
                    None => aec.process(&self.matched, &self.capture, out),
                }
                self.stats.set(aec.suppression_db());
            }
            Processor::Gate(gate) => gate.process(&self.matched, &self.capture, out),
        }
    }

    /// The partial frame left at the end.
    pub(super) fn flush(&mut self, out: &mut Vec<f32>) {
        if let Some(resampler) = &mut self.capture_resampler {
            self.capture.clear();
            resampler.flush(&mut self.capture);
            self.run(out);
        }
        match &mut self.processor {
            #[cfg(feature = "aec")]
            Processor::Aec(aec, backup) => match backup {
                Some(gate) => {
                    self.cancelled.clear();
                    aec.flush(&mut self.cancelled);
                    // The gate remembers the far end's last 300 ms.
                    gate.process(&[], &self.cancelled, out);
                    gate.flush(out);
                }
                None => aec.flush(out),
            },
            Processor::Gate(gate) => gate.flush(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::Player;

    /// A worker that stalls 400 ms finds 400 ms of microphone and of reference queued: each
    /// microphone frame still meets the reference frame played with it, and only lead
    /// beyond 250 ms is dropped.
    #[test]
    fn queued_microphone_frames_keep_their_reference_and_only_lead_is_capped() {
        let rate = 16_000;
        let (player, mut clock) = Player::with_clock(rate, 1).unwrap();
        let path = EchoPath::new(Echo::HalfDuplex, player.echo_reference().unwrap());
        let mut stage = EchoStage::new(path, rate, EchoStats::new()).unwrap();
        let ramp: Vec<i16> = (0..24_000).map(|n| (n % 20_000) as i16 + 100).collect();
        player.play("answer", &ramp);
        let mut out = Vec::new();
        // Until the ramp plays, the worker keeps up.
        while clock.pull(160).1 == 0 {
            stage.process(&[0.0; 160], &mut out);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        stage.process(&[0.0; 160], &mut out);
        assert!(stage.fifo.is_empty());
        // 400 ms played (the reference), the worker stalled meanwhile.
        let mut played = Vec::new();
        for _ in 0..40 {
            played.extend(clock.pull(160).0);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(played.iter().filter(|v| **v != 0.0).count() > 6_000);
        stage.process(&vec![0.0; 6_400], &mut out);
        assert_eq!(stage.matched, played, "the reference of the queued frames");
        assert_eq!(stage.debt, 0);
        // Then 400 ms of reference with no microphone (a capture started late): the lead
        // is capped at 250 ms, the newest kept.
        let mut lead = Vec::new();
        for _ in 0..40 {
            lead.extend(clock.pull(160).0);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        stage.process(&[0.0; 160], &mut out);
        assert_eq!(stage.fifo.len(), 4_000);
        assert_eq!(
            stage.fifo.iter().copied().collect::<Vec<_>>(),
            lead[2_400..]
        );
    }
}
