//! Deterministic assistant audio: a voiced, syllable-like tone whose length follows the
//! transcript, at any sample rate.

use std::f64::consts::TAU;

/// Milliseconds of audio per transcript character (about 15 characters per second).
const MS_PER_CHAR: f64 = 65.0;

/// How many samples of synthesized "speech" `text` makes at `rate` Hz.
pub(crate) fn length(text: &str, rate: u32) -> usize {
    let chars = text.chars().count().max(4) as f64;
    (chars * MS_PER_CHAR / 1000.0 * f64::from(rate)) as usize
}

/// Samples `range` of the synthesized "speech" for `text` at `rate` Hz: made on demand, a
/// chunk at a time, so a long answer never sits in memory whole.
pub(crate) fn speak_range(text: &str, rate: u32, range: std::ops::Range<usize>) -> Vec<i16> {
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
}
