//! The echo canceller: WebRTC's AEC3 (the `aec3` crate, pure Rust) in 10 ms frames.

use aec3::nodes::audio::AudioFormat;
use aec3::pipelines::linear::{self, LinearPipeline};

use crate::{Error, ErrorKind, Result};

/// The rates AEC3 runs at.
pub const AEC_RATES: [u32; 3] = [16_000, 32_000, 48_000];

/// Acoustic echo cancellation of one mono microphone against one mono reference (what the
/// speaker played), both at [`EchoCanceller::rate`]: WebRTC's AEC3 — delay estimation, an
/// adaptive linear filter and a residual-echo suppressor — with its high-pass filter and
/// nothing after it (no noise suppression or gain control: the server's VAD and the model
/// get the user's voice as it was, less the echo).
///
/// Feed it in step: each call gives the reference and the microphone of the same device
/// frames. It works in 10 ms frames and keeps what does not fill one for the next call,
/// so the output trails the input by less than 10 ms.
pub struct EchoCanceller {
    pipeline: LinearPipeline,
    rate: u32,
    frame: usize,
    reference: Vec<f32>,
    capture: Vec<f32>,
    processed: Vec<f32>,
    suppression: Suppression,
    failed: bool,
}

impl std::fmt::Debug for EchoCanceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoCanceller")
            .field("rate", &self.rate)
            .field("suppression_db", &self.suppression_db())
            .finish_non_exhaustive()
    }
}

impl EchoCanceller {
    /// A canceller at `rate` (16, 32 or 48 kHz).
    ///
    /// # Errors
    /// [`ErrorKind::Rate`] for another rate.
    pub fn new(rate: u32) -> Result<Self> {
        if !AEC_RATES.contains(&rate) {
            return Err(Error::new(
                ErrorKind::Rate,
                format!("echo cancellation runs at 16, 32 or 48 kHz, not {rate} Hz"),
            ));
        }
        let format = AudioFormat::ten_ms(rate, 1);
        let pipeline = linear::builder(format, format)
            .aec3_config(config())
            // The high-pass filter shifts the voice's phase (the server does not need it):
            // with it, the user's speech during double talk correlates 0.76 with the clean
            // speech instead of 0.91 (tests/echo_room.rs).
            .enable_high_pass_filter(false)
            .enable_noise_suppression(false)
            .enable_gain_controller2(false)
            .enable_post_filter(false)
            .build()
            .map_err(|e| Error::new(ErrorKind::Rate, format!("starting AEC3: {e:?}")))?;
        let frame = format.sample_count();
        Ok(Self {
            pipeline,
            rate,
            frame,
            reference: Vec::with_capacity(frame),
            capture: Vec::with_capacity(frame),
            processed: vec![0.0; frame],
            suppression: Suppression::default(),
            failed: false,
        })
    }

    /// The rate it runs at.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Cancels the echo of `reference` in `capture` (the same device frames; a shorter
    /// `reference` is silence after its end) and appends the output, 10 ms at a time.
    pub fn process(&mut self, reference: &[f32], capture: &[f32], out: &mut Vec<f32>) {
        for (n, &mic) in capture.iter().enumerate() {
            self.reference
                .push(reference.get(n).copied().unwrap_or(0.0));
            self.capture.push(mic);
            if self.capture.len() == self.frame {
                self.run_frame(out);
            }
        }
    }

    /// Processes what is left of a frame (padded with silence) and appends just that.
    pub fn flush(&mut self, out: &mut Vec<f32>) {
        let left = self.capture.len();
        if left == 0 {
            return;
        }
        self.reference.resize(self.frame, 0.0);
        self.capture.resize(self.frame, 0.0);
        let from = out.len();
        self.run_frame(out);
        out.truncate(from + left);
    }

    fn run_frame(&mut self, out: &mut Vec<f32>) {
        let produced = !self.failed
            && self.pipeline.handle_render_frame(&self.reference).is_ok()
            && matches!(
                self.pipeline
                    .process_capture_frame(&self.capture, &mut self.processed),
                Ok(true)
            );
        if produced {
            self.suppression
                .frame(&self.reference, &self.capture, &self.processed);
            out.extend_from_slice(&self.processed);
        } else {
            // AEC3 refused a frame (it never should with frames of the right size): the
            // microphone goes through as it is rather than not at all.
            if !self.failed {
                tracing::warn!("echo cancellation failed: the microphone goes through unprocessed");
            }
            self.failed = true;
            out.extend_from_slice(&self.capture);
        }
        self.reference.clear();
        self.capture.clear();
    }

    /// The echo suppression measured so far (dB: microphone power over output power while
    /// the far end plays and the output is mostly echo), `None` before the far end played.
    pub fn suppression_db(&self) -> Option<f32> {
        self.suppression.db()
    }
}

/// AEC3's configuration, tuned on the simulated room (`tests/echo_room.rs`, figures in
/// `benches/aec.rs`): the defaults suppress so hard during double talk that the user's
/// voice comes out at 0.71 correlation with the clean speech. The suppressor is made far more
/// transparent where the near end dominates (masking thresholds ×1000) and somewhat where
/// it does not (×10), and the near end is taken as dominant at a lower echo-to-near-end
/// ratio (1 instead of 0.25). ERLE stays over 50 dB on far-end-only audio.
fn config() -> aec3::api::EchoCanceller3Config {
    let mut config = aec3::api::EchoCanceller3Config::default();
    let suppressor = &mut config.suppressor;
    suppressor.dominant_nearend_detection.enr_threshold = 1.0;
    for (tuning, factor) in [
        (&mut suppressor.normal_tuning, 10.0),
        (&mut suppressor.nearend_tuning, 1000.0),
    ] {
        for mask in [&mut tuning.mask_lf, &mut tuning.mask_hf] {
            mask.enr_transparent *= factor;
            mask.enr_suppress *= factor;
        }
    }
    config
}

/// A running estimate of how much quieter the output is than the microphone while the far
/// end plays: the mean, in dB, over the last second or so of 10 ms frames where the far end
/// plays. While the user talks over the assistant it falls (their voice is kept): it says
/// what the microphone lost, which is the echo when only the assistant is heard.
#[derive(Debug, Default)]
struct Suppression {
    db: f64,
    frames: u64,
}

impl Suppression {
    fn frame(&mut self, reference: &[f32], mic: &[f32], out: &[f32]) {
        let power = |x: &[f32]| {
            x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len().max(1) as f64
        };
        // The far end plays (above −50 dBFS) and the microphone hears something.
        let (m, o) = (power(mic), power(out));
        if power(reference) < 1e-5 || m < 1e-9 {
            return;
        }
        let db = (10.0 * (m / o.max(1e-12)).log10()).min(80.0);
        self.frames += 1;
        let k = (1.0 / self.frames as f64).max(0.01);
        self.db += k * (db - self.db);
    }

    fn db(&self) -> Option<f32> {
        (self.frames > 0).then_some(self.db as f32)
    }
}
