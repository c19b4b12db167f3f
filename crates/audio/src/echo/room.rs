//! A simulated room for echo tests and benchmarks, and the figures they report.
//!
//! The assistant's audio (the far end) leaves the speaker and reaches the microphone
//! through an [`ImpulseResponse`] — a delay (the device's output and input latency, the
//! distance) and decaying reflections — and adds to the user's speech (the near end) and
//! noise. [`Room`] makes that microphone signal sample by sample, so the same code serves
//! a whole-file bench ([`bench()`]) and a test that plays into it period by period; the
//! impulse response can change at any time (someone moved the laptop), to test
//! re-convergence.

use std::time::{Duration, Instant};

/// A small deterministic generator (xorshift64*): rooms and noise are the same every run.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// An echo path: taps at sample delays with gains (sparse: a direct path and reflections).
#[derive(Debug, Clone, PartialEq)]
pub struct ImpulseResponse {
    taps: Vec<(usize, f32)>,
}

impl ImpulseResponse {
    /// A direct path of `gain` after `delay_ms`, then `reflections` reflections spread over
    /// `decay_ms`, their level falling exponentially to −60 dB at `decay_ms` (RT60), signs
    /// and times drawn from `seed`.
    pub fn synthetic(
        rate: u32,
        delay_ms: f32,
        decay_ms: f32,
        gain: f32,
        reflections: usize,
        seed: u64,
    ) -> Self {
        let mut rng = Rng::new(seed);
        let at = |ms: f32| (ms.max(0.0) * rate as f32 / 1000.0).round() as usize;
        let start = at(delay_ms);
        let mut taps = vec![(start, gain)];
        for _ in 0..reflections {
            let t = 1.0 + rng.unit() * (decay_ms - 1.0).max(0.0);
            let level = gain * 0.7 * 10f32.powf(-3.0 * t / decay_ms.max(1.0));
            let sign = if rng.next() & 1 == 0 { 1.0 } else { -1.0 };
            taps.push((start + at(t), sign * level * (0.3 + 0.7 * rng.unit())));
        }
        taps.sort_by_key(|&(delay, _)| delay);
        Self { taps }
    }

    /// The taps, as (delay in samples, gain), by delay.
    pub fn taps(&self) -> &[(usize, f32)] {
        &self.taps
    }

    /// The longest delay, in samples.
    pub fn len(&self) -> usize {
        self.taps.last().map_or(0, |&(delay, _)| delay + 1)
    }

    /// Whether there are no taps (no echo at all).
    pub fn is_empty(&self) -> bool {
        self.taps.is_empty()
    }
}

/// The room: far end through the echo path, plus near end, plus noise.
#[derive(Debug, Clone)]
pub struct Room {
    ir: ImpulseResponse,
    /// The far end's last samples, a ring of `history.len()` (a power of two).
    history: Vec<f32>,
    at: usize,
    noise: f32,
    rng: Rng,
}

impl Room {
    /// A room with this echo path and white noise of `noise_rms` (linear, full scale 1.0).
    pub fn new(ir: ImpulseResponse, noise_rms: f32) -> Self {
        let mut room = Self {
            ir: ImpulseResponse { taps: Vec::new() },
            history: vec![0.0; 1],
            at: 0,
            noise: noise_rms * 3f32.sqrt(),
            rng: Rng::new(7),
        };
        room.set_impulse(ir);
        room
    }

    /// Changes the echo path from the next sample on (the far end heard so far stays).
    pub fn set_impulse(&mut self, ir: ImpulseResponse) {
        let needed = ir.len().next_power_of_two().max(2);
        if needed > self.history.len() {
            let mut history = vec![0.0; needed];
            let old = self.history.len();
            // The sample `back` steps ago moves to where it is `back` steps before 0.
            for back in 0..old {
                history[(needed - back) % needed] = self.history[(self.at + old - back) % old];
            }
            self.history = history;
            self.at = 0;
        }
        self.ir = ir;
    }

    /// The echo of far-end sample `far` (and of the far end before it), alone.
    pub fn echo(&mut self, far: f32) -> f32 {
        let mask = self.history.len() - 1;
        self.at = (self.at + 1) & mask;
        self.history[self.at] = far;
        self.ir
            .taps
            .iter()
            .map(|&(delay, gain)| gain * self.history[(self.at + mask + 1 - delay) & mask])
            .sum()
    }

    /// One noise sample.
    pub fn noise(&mut self) -> f32 {
        (self.rng.unit() * 2.0 - 1.0) * self.noise
    }

    /// What the microphone hears while the speaker plays `far` and the user says `near`
    /// (a shorter `near` is silence after its end), appended to `mic`; the echo alone is
    /// appended to `echo` when given.
    pub fn capture(
        &mut self,
        far: &[f32],
        near: &[f32],
        mic: &mut Vec<f32>,
        mut echo: Option<&mut Vec<f32>>,
    ) {
        for (n, &sample) in far.iter().enumerate() {
            let e = self.echo(sample);
            if let Some(echo) = echo.as_deref_mut() {
                echo.push(e);
            }
            let noise = self.noise();
            mic.push(e + near.get(n).copied().unwrap_or(0.0) + noise);
        }
    }
}

/// Pearson correlation of two signals (over the shorter length); 0 when either is silent.
pub fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    if n == 0 {
        return 0.0;
    }
    let mean = |x: &[f32]| x[..n].iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a[..n].iter().zip(&b[..n]) {
        let (x, y) = (f64::from(x) - ma, f64::from(y) - mb);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa <= 0.0 || bb <= 0.0 {
        return 0.0;
    }
    ab / (aa * bb).sqrt()
}

/// The best [`correlation`] of `out` with `clean` delayed by 0 to `max_lag` samples (an
/// echo canceller may delay its output by a few samples of filter bank).
pub fn best_correlation(out: &[f32], clean: &[f32], max_lag: usize) -> f64 {
    (0..=max_lag)
        .map(|lag| correlation(&out[lag.min(out.len())..], clean))
        .fold(f64::MIN, f64::max)
}

/// What [`bench()`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// Echo return loss enhancement (dB) on far-end-only audio after convergence: microphone
    /// power over output power where the echo is audible.
    pub erle_db: f64,
    /// Milliseconds from the start until every later window of the far-end-only segment
    /// reaches [`CONVERGED_DB`]; `None` if it never did.
    pub convergence_ms: Option<u64>,
    /// Correlation of the output with the user's clean speech while both talk.
    pub double_talk_correlation: f64,
    /// Milliseconds after the room changed until every later window reaches
    /// [`CONVERGED_DB`] again; `None` if it never did.
    pub reconvergence_ms: Option<u64>,
    /// Processing time over audio time: the share of one core the processor needs.
    pub cpu_x_realtime: f64,
    /// ERLE (dB) of each [`WINDOW_MS`] window of audible echo, by start time (ms).
    pub windows: Vec<(u64, f64)>,
}

impl BenchReport {
    /// The one-line summary `cargo xtask bench` prints.
    pub fn line(&self, name: &str) -> String {
        let ms = |v: Option<u64>| v.map_or_else(|| "never".to_owned(), |v| v.to_string());
        format!(
            "{name} erle_db={:.1} convergence_ms={} double_talk_corr={:.3} reconvergence_ms={} cpu_x_realtime={:.4}",
            self.erle_db,
            ms(self.convergence_ms),
            self.double_talk_correlation,
            ms(self.reconvergence_ms),
            self.cpu_x_realtime
        )
    }
}

/// The ERLE a window must reach to count as converged.
pub const CONVERGED_DB: f64 = 25.0;
/// The ERLE windows' length.
pub const WINDOW_MS: u64 = 250;

/// The bench's timeline, in seconds: far end only until [`DOUBLE_TALK_AT`], the user
/// speaking from then (for as long as `near` lasts), far end only again, and a new room at
/// [`ROOM_CHANGE_AT`] until [`BENCH_SECONDS`].
pub const DOUBLE_TALK_AT: f64 = 10.0;
/// When the room changes (seconds).
pub const ROOM_CHANGE_AT: f64 = 15.0;
/// The bench's length (seconds).
pub const BENCH_SECONDS: f64 = 20.0;

/// The two rooms of the bench at `rate`: a laptop (40 ms to the microphone, 60 ms decay)
/// and, after the change, a different one (65 ms, 80 ms decay, other reflections).
pub fn bench_rooms(rate: u32) -> (ImpulseResponse, ImpulseResponse) {
    (
        ImpulseResponse::synthetic(rate, 40.0, 60.0, 0.5, 120, 1),
        ImpulseResponse::synthetic(rate, 65.0, 80.0, 0.6, 160, 2),
    )
}

/// Runs the echo bench at `rate`: `far` (the assistant, looped to [`BENCH_SECONDS`]) into
/// the [`bench_rooms`], `near` (the user, speech from `near_speech.0` to `.1` seconds into
/// it) from [`DOUBLE_TALK_AT`], through `process` in 10 ms periods — reference (what the
/// speaker played) and microphone in, output appended — and measures.
pub fn bench(
    rate: u32,
    far: &[f32],
    near: &[f32],
    near_speech: (f64, f64),
    mut process: impl FnMut(&[f32], &[f32], &mut Vec<f32>),
) -> BenchReport {
    let total = (BENCH_SECONDS * f64::from(rate)) as usize;
    let at = |s: f64| (s * f64::from(rate)) as usize;
    let far: Vec<f32> = if far.is_empty() {
        vec![0.0; total]
    } else {
        far.iter().copied().cycle().take(total).collect()
    };
    let mut user = vec![0.0; total];
    for (n, &s) in near.iter().enumerate() {
        if let Some(slot) = user.get_mut(at(DOUBLE_TALK_AT) + n) {
            *slot = s;
        }
    }
    let (first, second) = bench_rooms(rate);
    let mut room = Room::new(first, 0.0003);
    let mut second = Some(second);
    let period = (rate / 100) as usize;
    let (mut mic, mut echo, mut out) = (Vec::new(), Vec::new(), Vec::new());
    let mut busy = Duration::ZERO;
    let mut start = 0;
    while start < total {
        let end = (start + period).min(total);
        if start >= at(ROOM_CHANGE_AT)
            && let Some(ir) = second.take()
        {
            room.set_impulse(ir);
        }
        let from = mic.len();
        room.capture(
            &far[start..end],
            &user[start..end],
            &mut mic,
            Some(&mut echo),
        );
        let began = Instant::now();
        process(&far[start..end], &mic[from..], &mut out);
        busy += began.elapsed();
        start = end;
    }
    out.resize(total, 0.0);

    // ERLE per window, over the periods where the echo is audible and the user silent.
    let window = (WINDOW_MS as usize * rate as usize / 1000).max(period);
    let talking = |n: usize| {
        user[n.saturating_sub(period)..(n + period).min(total)]
            .iter()
            .any(|s| s.abs() > 1e-4)
    };
    let mut windows = Vec::new();
    let mut w = 0;
    while w + window <= total {
        let (mut p_mic, mut p_out, mut audible) = (0.0f64, 0.0f64, 0);
        for p in (w..w + window).step_by(period) {
            let e: f64 = echo[p..p + period]
                .iter()
                .map(|&v| f64::from(v).powi(2))
                .sum();
            if e / period as f64 > 1e-5 && !talking(p) {
                audible += 1;
                p_mic += mic[p..p + period]
                    .iter()
                    .map(|&v| f64::from(v).powi(2))
                    .sum::<f64>();
                p_out += out[p..p + period]
                    .iter()
                    .map(|&v| f64::from(v).powi(2))
                    .sum::<f64>();
            }
        }
        if audible * 2 >= window / period {
            windows.push((
                (w * 1000 / rate as usize) as u64,
                10.0 * (p_mic / p_out.max(1e-12)).log10(),
            ));
        }
        w += window;
    }
    let settled = |from_ms: u64, to_ms: u64| {
        let span: Vec<_> = windows
            .iter()
            .filter(|(t, _)| *t >= from_ms && *t + WINDOW_MS <= to_ms)
            .collect();
        (0..span.len())
            .find(|&i| span[i..].iter().all(|(_, db)| *db >= CONVERGED_DB))
            .map(|i| span[i].0)
    };
    let dt_ms = (DOUBLE_TALK_AT * 1000.0) as u64;
    let change_ms = (ROOM_CHANGE_AT * 1000.0) as u64;
    let convergence_ms = settled(0, dt_ms);
    let reconvergence_ms =
        settled(change_ms, (BENCH_SECONDS * 1000.0) as u64).map(|t| t - change_ms);
    let after = convergence_ms.unwrap_or(0);
    let (mut p_mic, mut p_out) = (0.0f64, 0.0f64);
    let converged: Vec<_> = windows
        .iter()
        .filter(|(t, _)| (*t >= after && *t + WINDOW_MS <= dt_ms) || (*t >= change_ms + 2_000))
        .collect();
    for &&(_, db) in &converged {
        p_mic += 10f64.powf(db / 10.0);
        p_out += 1.0;
    }
    let erle_db = if converged.is_empty() {
        0.0
    } else {
        // The mean of the windows' ratios, in dB.
        10.0 * (p_mic / p_out).log10()
    };
    let speech = at(DOUBLE_TALK_AT + near_speech.0)..at(DOUBLE_TALK_AT + near_speech.1).min(total);
    let double_talk_correlation = best_correlation(&out[speech.clone()], &user[speech], period);
    BenchReport {
        erle_db,
        convergence_ms,
        double_talk_correlation,
        reconvergence_ms,
        cpu_x_realtime: busy.as_secs_f64() / BENCH_SECONDS,
        windows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_room_delays_and_sums_its_taps() {
        let ir = ImpulseResponse {
            taps: vec![(2, 0.5), (4, -0.25)],
        };
        let mut room = Room::new(ir, 0.0);
        let mut mic = Vec::new();
        room.capture(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0], &[0.0, 0.1], &mut mic, None);
        assert_eq!(mic, vec![0.0, 0.1, 0.5, 0.0, -0.25, 0.0]);
    }

    #[test]
    fn a_longer_room_keeps_what_was_played() {
        let mut room = Room::new(
            ImpulseResponse {
                taps: vec![(1, 1.0)],
            },
            0.0,
        );
        let mut mic = Vec::new();
        room.capture(&[0.0, 0.0, 1.0], &[], &mut mic, None);
        room.set_impulse(ImpulseResponse {
            taps: vec![(3, 1.0)],
        });
        room.capture(&[0.0, 0.0, 0.0], &[], &mut mic, None);
        // The 1.0 played at sample 2 reaches the microphone through the path of the moment
        // it arrives: the second room's, three samples later.
        assert_eq!(mic, vec![0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn correlation_is_scale_free_and_finds_a_lag() {
        let a: Vec<f32> = (0..1000)
            .map(|n| ((n * 7919) % 113) as f32 - 56.0)
            .collect();
        let scaled: Vec<f32> = a.iter().map(|v| v * 0.1).collect();
        assert!((correlation(&scaled, &a) - 1.0).abs() < 1e-9);
        let mut late = vec![0.0; 5];
        late.extend(&a);
        assert!(correlation(&late, &a) < 0.5);
        assert!((best_correlation(&late, &a, 8) - 1.0).abs() < 1e-9);
    }
}
