//! Streaming sample-rate conversion of mono `f32` audio, on rubato's FFT resampler (fixed
//! ratio, high quality: ≥ 90 dB SNR in band for device ⇄ 24 kHz conversions).
//!
//! Input arrives in pieces of any size; output is produced as whole internal chunks are
//! filled (10 ms of input each) and is aligned with the input: the resampler's own delay is
//! trimmed, so sample `n` of the output is time `n / to` of the input.

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _};

use crate::{Error, ErrorKind, Result};

/// A mono streaming resampler from one rate to another (a pass-through when they are equal).
pub struct Resampler {
    inner: Option<Fft<f32>>,
    from: u32,
    to: u32,
    chunk: usize,
    pending: Vec<f32>,
    scratch: Vec<f32>,
    /// Output frames still to drop: the resampler's delay.
    trim: usize,
    /// Input frames taken and output frames given, to flush exactly.
    consumed: u64,
    produced: u64,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz.
    ///
    /// # Errors
    /// [`ErrorKind::Rate`] for a zero rate or a ratio rubato cannot build.
    pub fn new(from: u32, to: u32) -> Result<Self> {
        if from == 0 || to == 0 {
            return Err(Error::new(
                ErrorKind::Rate,
                format!("sample rates must be positive ({from} → {to})"),
            ));
        }
        let chunk = (from as usize / 100).max(1);
        let inner = if from == to {
            None
        } else {
            Some(
                Fft::<f32>::new(from as usize, to as usize, chunk, 1, FixedSync::Input).map_err(
                    |e| Error::new(ErrorKind::Rate, format!("{from} → {to}: {e}")).with_source(e),
                )?,
            )
        };
        let trim = inner.as_ref().map_or(0, rubato::Resampler::output_delay);
        let scratch = vec![
            0.0;
            inner
                .as_ref()
                .map_or(0, rubato::Resampler::output_frames_max)
        ];
        Ok(Self {
            inner,
            from,
            to,
            chunk,
            pending: Vec::new(),
            scratch,
            trim,
            consumed: 0,
            produced: 0,
        })
    }

    /// The input rate.
    pub fn from_rate(&self) -> u32 {
        self.from
    }

    /// The output rate.
    pub fn to_rate(&self) -> u32 {
        self.to
    }

    /// Resamples `input`, appending what is ready to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.consumed += input.len() as u64;
        let Some(inner) = self.inner.as_mut() else {
            out.extend_from_slice(input);
            self.produced += input.len() as u64;
            return;
        };
        self.pending.extend_from_slice(input);
        let mut start = 0;
        while self.pending.len() - start >= self.chunk {
            let piece = &self.pending[start..start + self.chunk];
            start += self.chunk;
            Self::run(
                inner,
                piece,
                None,
                &mut self.scratch,
                &mut self.trim,
                &mut self.produced,
                out,
            );
        }
        self.pending.drain(..start);
    }

    /// Emits what is still inside (the partial chunk and the resampler's delay), so that
    /// the output is as long as the input at the new rate. The resampler can be reused.
    pub fn flush(&mut self, out: &mut Vec<f32>) {
        let Some(inner) = self.inner.as_mut() else {
            return;
        };
        let expected =
            (self.consumed as f64 * f64::from(self.to) / f64::from(self.from)).round() as u64;
        let mut guard = 0;
        while self.produced < expected && guard < 64 {
            let partial = std::mem::take(&mut self.pending);
            let piece_len = partial.len();
            let mut piece = partial;
            piece.resize(self.chunk, 0.0);
            let before = out.len();
            Self::run(
                inner,
                &piece,
                Some(piece_len),
                &mut self.scratch,
                &mut self.trim,
                &mut self.produced,
                out,
            );
            let overshoot = self.produced.saturating_sub(expected) as usize;
            if overshoot > 0 {
                out.truncate(out.len().max(before + overshoot) - overshoot);
                self.produced = expected;
            }
            guard += 1;
        }
        inner.reset();
        self.trim = inner.output_delay();
        self.pending.clear();
        self.consumed = 0;
        self.produced = 0;
    }

    fn run(
        inner: &mut Fft<f32>,
        piece: &[f32],
        partial: Option<usize>,
        scratch: &mut [f32],
        trim: &mut usize,
        produced: &mut u64,
        out: &mut Vec<f32>,
    ) {
        let frames_out = inner.output_frames_next();
        let input = InterleavedSlice::new(piece, 1, piece.len())
            .expect("one channel of `piece.len()` frames");
        let mut output = InterleavedSlice::new_mut(&mut scratch[..frames_out], 1, frames_out)
            .expect("the scratch buffer holds output_frames_max");
        let indexing = partial.map(|n| rubato::Indexing::new().partial_len(n));
        let (_, written) = inner
            .process_into_buffer(&input, &mut output, indexing.as_ref())
            .expect("buffers are sized from the resampler's own figures");
        let skip = (*trim).min(written);
        *trim -= skip;
        out.extend_from_slice(&scratch[skip..written]);
        *produced += (written - skip) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: u32, seconds: f64) -> Vec<f32> {
        (0..(seconds * f64::from(rate)) as usize)
            .map(|n| {
                (2.0 * std::f64::consts::PI * freq * n as f64 / f64::from(rate)).sin() as f32 * 0.5
            })
            .collect()
    }

    /// SNR of `signal` against an ideal sine fitted at `freq` (least squares), in dB,
    /// skipping the edges.
    fn snr_db(signal: &[f32], freq: f64, rate: u32) -> f64 {
        let edge = signal.len() / 10;
        let body = &signal[edge..signal.len() - edge];
        let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
        let (mut ss, mut sc, mut cc, mut ys, mut yc) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (i, &y) in body.iter().enumerate() {
            let t = (i + edge) as f64;
            let (s, c) = ((w * t).sin(), (w * t).cos());
            ss += s * s;
            sc += s * c;
            cc += c * c;
            ys += f64::from(y) * s;
            yc += f64::from(y) * c;
        }
        let det = ss * cc - sc * sc;
        let (a, b) = ((ys * cc - yc * sc) / det, (yc * ss - ys * sc) / det);
        let (mut signal_power, mut noise_power) = (0.0, 0.0);
        for (i, &y) in body.iter().enumerate() {
            let t = (i + edge) as f64;
            let fit = a * (w * t).sin() + b * (w * t).cos();
            signal_power += fit * fit;
            noise_power += (f64::from(y) - fit).powi(2);
        }
        10.0 * (signal_power / noise_power).log10()
    }

    fn run(resampler: &mut Resampler, input: &[f32], piece: usize) -> Vec<f32> {
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            resampler.process(chunk, &mut out);
        }
        resampler.flush(&mut out);
        out
    }

    #[test]
    fn a_sine_through_48k_24k_48k_keeps_90_db_in_band() {
        for freq in [300.0, 1_000.0, 3_400.0, 8_000.0] {
            let input = sine(freq, 48_000, 1.0);
            let down = run(&mut Resampler::new(48_000, 24_000).unwrap(), &input, 441);
            let up = run(&mut Resampler::new(24_000, 48_000).unwrap(), &down, 333);
            assert_eq!(down.len(), 24_000);
            assert_eq!(up.len(), 48_000);
            let snr = snr_db(&up, freq, 48_000);
            eprintln!("48k -> 24k -> 48k, {freq} Hz: SNR {snr:.1} dB");
            assert!(snr >= 90.0, "{freq} Hz: {snr:.1} dB");
        }
    }

    #[test]
    fn output_is_aligned_with_the_input() {
        // An impulse at 0.5 s stays at 0.5 s after 44.1k → 24k.
        let mut input = vec![0.0_f32; 44_100];
        input[22_050] = 1.0;
        let out = run(&mut Resampler::new(44_100, 24_000).unwrap(), &input, 1_000);
        let peak = out
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap()
            .0;
        assert!((peak as i64 - 12_000).abs() <= 1, "peak at {peak}");
        assert_eq!(out.len(), 24_000);
    }

    #[test]
    fn equal_rates_pass_through_and_zero_is_refused() {
        let mut same = Resampler::new(24_000, 24_000).unwrap();
        let mut out = Vec::new();
        same.process(&[0.1, 0.2], &mut out);
        assert_eq!(out, [0.1, 0.2]);
        assert!(Resampler::new(0, 24_000).is_err());
    }
}
