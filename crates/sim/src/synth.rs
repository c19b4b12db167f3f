//! Deterministic assistant audio whose length follows the transcript, at any sample rate:
//! a voiced, syllable-like tone (the default), or a recorded voice ([`Voice`],
//! `SimConfig::voice_samples`) looped and cut to the same length.

use std::f64::consts::TAU;
use std::sync::{Arc, Mutex, PoisonError};

/// Milliseconds of audio per transcript character (about 15 characters per second).
const MS_PER_CHAR: f64 = 65.0;

/// How many samples of synthesized "speech" `text` makes at `rate` Hz.
pub(crate) fn length(text: &str, rate: u32) -> usize {
    let chars = text.chars().count().max(4) as f64;
    (chars * MS_PER_CHAR / 1000.0 * f64::from(rate)) as usize
}

/// The answers kept rendered (most recently used first), shared by every session of the
/// process: a load test's sessions mostly say the same few things, and rendering (four
/// sines and a power per sample) was two thirds of the simulator's CPU at a few hundred
/// sessions. Bounded: [`CACHED_ANSWERS`] entries of at most [`CACHED_SECONDS`] each.
static RENDERED: Mutex<Vec<Rendered>> = Mutex::new(Vec::new());
const CACHED_ANSWERS: usize = 8;
const CACHED_SECONDS: usize = 10;

#[derive(Debug)]
struct Rendered {
    text: Arc<str>,
    rate: u32,
    samples: Arc<[i16]>,
}

/// The whole rendering of `text` at `rate`, from the cache (rendered and kept on a miss),
/// or `None` for an answer too long to keep.
fn rendered(text: &str, rate: u32) -> Option<Arc<[i16]>> {
    let len = length(text, rate);
    if len > CACHED_SECONDS * rate as usize {
        return None;
    }
    let lock = || RENDERED.lock().unwrap_or_else(PoisonError::into_inner);
    {
        let mut cache = lock();
        if let Some(index) = cache
            .iter()
            .position(|r| r.rate == rate && *r.text == *text)
        {
            let hit = cache.remove(index);
            let samples = hit.samples.clone();
            cache.insert(0, hit);
            return Some(samples);
        }
    }
    // Rendered outside the lock; two sessions missing at once both render, one is kept.
    let samples: Arc<[i16]> = render(text, rate, 0..len).into();
    let mut cache = lock();
    cache.insert(
        0,
        Rendered {
            text: text.into(),
            rate,
            samples: samples.clone(),
        },
    );
    cache.truncate(CACHED_ANSWERS);
    Some(samples)
}

/// Samples `range` of the synthesized "speech" for `text` at `rate` Hz: copied from the
/// shared rendering when the answer is short enough to keep ([`rendered`]), else made on
/// demand, a chunk at a time, so a long answer never sits in memory whole.
pub(crate) fn speak_range(text: &str, rate: u32, range: std::ops::Range<usize>) -> Vec<i16> {
    if range.end <= length(text, rate)
        && let Some(all) = rendered(text, rate)
        && let Some(samples) = all.get(range.clone())
    {
        return samples.to_vec();
    }
    render(text, rate, range)
}

/// A recorded voice the assistant speaks with instead of the synthesized one
/// (`SimConfig::voice_samples`): an answer's audio is the recording from its start, looped
/// and cut to the answer's length ([`length`], as for the synthesized voice, so the deltas,
/// the truncation and the usage are the same), at the output rate. Real speech is
/// broadband, where the synthesized voice is three harmonics: an echo canceller adapts to
/// it as it would to a text-to-speech voice.
#[derive(Clone)]
pub(crate) struct Voice {
    samples: Arc<[i16]>,
    rate: u32,
    /// The recording at the rates asked so far (at most [`VOICE_RATES`], most recent
    /// first), shared by every session of the simulator.
    at_rates: Arc<Mutex<Vec<AtRate>>>,
}

/// A [`Voice`]'s recording at one rate: `(rate, samples)`.
type AtRate = (u32, Arc<[i16]>);

/// The resampled renderings a [`Voice`] keeps (sessions use one or two output rates).
const VOICE_RATES: usize = 4;

impl std::fmt::Debug for Voice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Voice")
            .field("samples", &self.samples.len())
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

impl Voice {
    /// The recording `samples` (mono PCM16) at `rate` Hz; `None` when it is empty or the
    /// rate is zero (nothing to speak with).
    pub(crate) fn new(samples: Arc<[i16]>, rate: u32) -> Option<Self> {
        (!samples.is_empty() && rate > 0).then(|| Self {
            samples,
            rate,
            at_rates: Arc::default(),
        })
    }

    /// The whole recording at `rate` Hz (resampled once and kept), `None` when it cannot
    /// be resampled to that rate.
    fn at(&self, rate: u32) -> Option<Arc<[i16]>> {
        if rate == self.rate {
            return Some(self.samples.clone());
        }
        let lock = || self.at_rates.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, samples)) = lock().iter().find(|(r, _)| *r == rate) {
            return Some(samples.clone());
        }
        let mut resampler = reelthyme_audio::Resampler::new(self.rate, rate).ok()?;
        let mut pcm = Vec::with_capacity(self.samples.len());
        reelthyme_audio::i16_to_f32(&self.samples, &mut pcm);
        let mut out = Vec::new();
        resampler.process(&pcm, &mut out);
        resampler.flush(&mut out);
        let mut samples = Vec::with_capacity(out.len());
        reelthyme_audio::f32_to_i16(&out, &mut samples);
        if samples.is_empty() {
            return None;
        }
        let samples: Arc<[i16]> = samples.into();
        let mut kept = lock();
        kept.insert(0, (rate, samples.clone()));
        kept.truncate(VOICE_RATES);
        Some(samples)
    }

    /// Samples `range` of the answer `text` spoken at `rate` Hz: the recording, looped (the
    /// synthesized voice when the recording cannot be had at that rate).
    pub(crate) fn speak_range(
        &self,
        text: &str,
        rate: u32,
        range: std::ops::Range<usize>,
    ) -> Vec<i16> {
        match self.at(rate) {
            Some(all) => range.map(|n| all[n % all.len()]).collect(),
            None => speak_range(text, rate, range),
        }
    }
}

/// The synthesis itself: samples `range` of `text` at `rate` Hz.
fn render(text: &str, rate: u32, range: std::ops::Range<usize>) -> Vec<i16> {
    let rate = f64::from(rate.max(1));
    let syllable = 0.2; // seconds
    range
        .map(|n| {
            let t = n as f64 / rate;
            let index = (t / syllable) as usize;
            // A pitch per syllable, from the text, so different answers sound different.
            let byte = text
                .as_bytes()
                .get(index % text.len().max(1))
                .copied()
                .unwrap_or(b'a');
            let f0 = 110.0 + f64::from(byte % 32) * 4.0;
            let phase = (t % syllable) / syllable;
            let envelope = (phase * std::f64::consts::PI).sin().powf(0.6);
            let voice = (TAU * f0 * t).sin() * 0.6
                + (TAU * 2.0 * f0 * t).sin() * 0.25
                + (TAU * 3.0 * f0 * t).sin() * 0.1;
            (voice * envelope * 12_000.0) as i16
        })
        .collect()
}

/// All of the synthesized "speech" for `text` at `rate` Hz.
#[cfg(test)]
pub(crate) fn speak(text: &str, rate: u32) -> Vec<i16> {
    speak_range(text, rate, 0..length(text, rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_follows_the_text_and_rate() {
        assert_eq!(
            speak("hello world!", 24_000).len(),
            (12.0 * 0.065 * 24_000.0) as usize
        );
        assert_eq!(
            speak("hello world!", 8_000).len(),
            (12.0 * 0.065 * 8_000.0) as usize
        );
        assert_eq!(speak("hi", 24_000), speak("hi", 24_000));
        assert!(speak("hello", 24_000).iter().any(|&s| s.abs() > 5_000));
        // Made in pieces, it is the same audio.
        let whole = speak("hello world!", 24_000);
        let pieces = [0..1000, 1000..5000, 5000..whole.len()]
            .map(|r| speak_range("hello world!", 24_000, r))
            .concat();
        assert_eq!(pieces, whole);
    }

    #[test]
    fn the_shared_rendering_is_the_synthesis_and_stays_bounded() {
        let text = "the shared rendering test";
        let len = length(text, 16_000);
        for range in [0..len, 0..10, 1234..5678, len - 3..len, 10..10] {
            assert_eq!(
                speak_range(text, 16_000, range.clone()),
                render(text, 16_000, range.clone()),
                "{range:?}"
            );
        }
        // Past the end (never asked by the engine) it is still the synthesis.
        assert_eq!(
            speak_range(text, 16_000, len - 2..len + 5),
            render(text, 16_000, len - 2..len + 5)
        );
        assert!(rendered(text, 16_000).is_some());
        // Too long to keep: made on demand.
        let long = "x".repeat(CACHED_SECONDS * 1000 / 65 + 10);
        assert!(rendered(&long, 8_000).is_none());
        assert_eq!(
            speak_range(&long, 8_000, 0..100),
            render(&long, 8_000, 0..100)
        );
        // Many answers: the cache keeps the most recent few.
        for k in 0..3 * CACHED_ANSWERS {
            rendered(&format!("answer {k}"), 8_000);
        }
        let cache = RENDERED.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(cache.len() <= CACHED_ANSWERS);
    }

    #[test]
    fn a_recorded_voice_is_looped_and_cut_to_the_answer() {
        assert!(Voice::new(Arc::from(Vec::new()), 24_000).is_none());
        assert!(Voice::new(Arc::from(vec![1, 2, 3]), 0).is_none());
        let recording: Vec<i16> = (0..1000).map(|n| (n * 7 % 2000 - 1000) as i16).collect();
        let voice = Voice::new(Arc::from(recording.clone()), 24_000).unwrap();
        let text = "a recorded answer";
        let len = length(text, 24_000);
        let whole = voice.speak_range(text, 24_000, 0..len);
        assert_eq!(whole.len(), len);
        // At the recording's rate: the recording itself, from its start, looped.
        for (n, &s) in whole.iter().enumerate() {
            assert_eq!(s, recording[n % recording.len()], "{n}");
        }
        // Made in pieces (as the deltas are), it is the same audio.
        let pieces = [0..999, 999..1001, 1001..len]
            .map(|r| voice.speak_range(text, 24_000, r))
            .concat();
        assert_eq!(pieces, whole);
        // At another rate: resampled once (a third as long at 8 kHz), looped the same way.
        let low = voice.speak_range(text, 8_000, 0..length(text, 8_000));
        assert_eq!(low.len(), length(text, 8_000));
        let period = voice.at(8_000).unwrap().len();
        assert!(period.abs_diff(recording.len() / 3) <= 1, "{period}");
        assert_eq!(low[..period], low[period..2 * period]);
        assert!(voice.at_rates.lock().unwrap().len() == 1);
        // Shared by clones (every session of a simulator holds one).
        assert!(Arc::ptr_eq(
            &voice.clone().at(8_000).unwrap(),
            &voice.at(8_000).unwrap()
        ));
    }
}
