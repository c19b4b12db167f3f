//! Half duplex: while the assistant is heard, the microphone passes only above an
//! echo-relative level.

/// Gates the microphone against the far end, in 10 ms blocks: while the far end played in
/// the last 300 ms (its level is the loudest block of those, covering the echo's delay and
/// tail),
/// a block goes through only when the microphone is louder than the far end's level times
/// the sensitivity ratio — a user talking over the assistant — and then for 100 ms more (so
/// words are not chopped); otherwise it becomes silence (the server's audio clock keeps
/// running). When the far end is silent everything goes through.
#[derive(Debug, Clone)]
pub struct HalfDuplex {
    block: usize,
    ratio: f32,
    /// The far end's level in each of the last [`FAR_BLOCKS`] blocks (a ring).
    far_levels: [f32; FAR_BLOCKS],
    far_at: usize,
    open_blocks: u32,
    reference: Vec<f32>,
    capture: Vec<f32>,
    gated_blocks: u64,
    heard_blocks: u64,
}

/// Blocks of far-end level the gate remembers (300 ms).
const FAR_BLOCKS: usize = 30;
/// Blocks kept open after the microphone was loud enough.
const HOLD_BLOCKS: u32 = 10;
/// A far end quieter than this (−60 dBFS RMS) is not heard.
const FAR_FLOOR: f32 = 1e-3;

impl HalfDuplex {
    /// The default threshold: the microphone must be 6 dB (twice) louder than what the
    /// speaker plays — a laptop's echo reaches the microphone at about the speaker's level.
    pub const DEFAULT_THRESHOLD_DB: f32 = 6.0;

    /// A gate at `rate` that lets the microphone through while the far end plays only when
    /// it is `threshold_db` above the far end's level (0 dB: louder than what the speaker
    /// plays; [`HalfDuplex::DEFAULT_THRESHOLD_DB`] by default — raise it for speakers loud at
    /// the microphone, lower it for a quiet user).
    pub fn new(rate: u32, threshold_db: f32) -> Self {
        let block = (rate as usize / 100).max(1);
        Self {
            block,
            ratio: 10f32.powf(threshold_db / 20.0),
            far_levels: [0.0; FAR_BLOCKS],
            far_at: 0,
            open_blocks: 0,
            reference: Vec::with_capacity(block),
            capture: Vec::with_capacity(block),
            gated_blocks: 0,
            heard_blocks: 0,
        }
    }

    /// Gates `capture` against `reference` (the same frames; a shorter `reference` is
    /// silence after its end), appending whole blocks to `out`.
    pub fn process(&mut self, reference: &[f32], capture: &[f32], out: &mut Vec<f32>) {
        for (n, &mic) in capture.iter().enumerate() {
            self.reference
                .push(reference.get(n).copied().unwrap_or(0.0));
            self.capture.push(mic);
            if self.capture.len() == self.block {
                self.run_block(out);
            }
        }
    }

    /// The partial block left, gated like a whole one.
    pub fn flush(&mut self, out: &mut Vec<f32>) {
        if !self.capture.is_empty() {
            self.run_block(out);
        }
    }

    /// Blocks silenced so far.
    pub fn gated_blocks(&self) -> u64 {
        self.gated_blocks
    }

    /// Blocks processed while the far end was heard (it played in the last 300 ms).
    pub fn heard_blocks(&self) -> u64 {
        self.heard_blocks
    }

    fn run_block(&mut self, out: &mut Vec<f32>) {
        let rms = |x: &[f32]| (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt();
        self.far_at = (self.far_at + 1) % FAR_BLOCKS;
        self.far_levels[self.far_at] = rms(&self.reference);
        let far_level = self.far_levels.iter().copied().fold(0.0, f32::max);
        let heard = far_level >= FAR_FLOOR;
        self.heard_blocks += u64::from(heard);
        let pass = if !heard {
            true
        } else if rms(&self.capture) > far_level * self.ratio {
            self.open_blocks = HOLD_BLOCKS;
            true
        } else if self.open_blocks > 0 {
            self.open_blocks -= 1;
            true
        } else {
            false
        };
        if pass {
            out.extend_from_slice(&self.capture);
        } else {
            self.gated_blocks += 1;
            out.extend(std::iter::repeat_n(0.0, self.capture.len()));
        }
        self.reference.clear();
        self.capture.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize, level: f32) -> Vec<f32> {
        (0..n).map(|i| level * (i as f32 * 0.07).sin()).collect()
    }

    #[test]
    fn echo_is_silenced_and_a_louder_voice_goes_through() {
        let mut gate = HalfDuplex::new(16_000, 0.0);
        let far = tone(16_000, 0.3);
        let echo: Vec<f32> = far.iter().map(|v| v * 0.4).collect();
        let mut out = Vec::new();
        gate.process(&far, &echo, &mut out);
        assert_eq!(out.len(), 16_000);
        assert!(out.iter().all(|&v| v == 0.0), "echo went through");
        assert_eq!(gate.heard_blocks(), 100);
        // The user, twice as loud as the speaker, over the assistant.
        let voice: Vec<f32> = tone(1_600, 0.6)
            .iter()
            .zip(&echo)
            .map(|(a, b)| a + b)
            .collect();
        let mut out = Vec::new();
        gate.process(&far[..1_600], &voice, &mut out);
        assert_eq!(out, voice);
        // Nothing plays: everything goes through, once the far end is 300 ms past.
        let mut out = Vec::new();
        let quiet = tone(16_000, 0.01);
        gate.process(&[], &quiet, &mut out);
        assert_eq!(&out[8_000..], &quiet[8_000..]);
        assert!(gate.gated_blocks() >= 100);
        // Heard while a played block is among the last 30: 100 + 10 (the voice) + 29.
        assert_eq!(gate.heard_blocks(), 139);
    }
}
