//! The workspace's test fixtures, inside the repository so that a fresh clone tests itself.
//!
//! - `fixtures/protocol/openapi_examples.jsonl`: the 160 example events of OpenAI's published
//!   Realtime spec, one JSON object a line (see `fixtures/protocol/README.md`).
//! - `fixtures/audio/*.wav`: synthetic speech with known speech spans
//!   (`fixtures/audio/README.md` says how they were made and how to make them again).
//!
//! Test crates take this as a path-only dev-dependency, which `cargo package` strips.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

/// The directory holding the fixtures.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The spec's example events (`openapi_examples.jsonl`).
pub fn spec_examples() -> PathBuf {
    fixtures_dir().join("protocol/openapi_examples.jsonl")
}

/// A speech fixture by file name, e.g. `audio("weather_24k.wav")`.
pub fn audio(name: &str) -> PathBuf {
    fixtures_dir().join("audio").join(name)
}

/// A 16-bit PCM WAV file as read by [`read_wav`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    /// Interleaved samples.
    pub samples: Vec<i16>,
    /// Frames per second.
    pub rate: u32,
    /// Interleaved channels.
    pub channels: u16,
}

/// Reads a 16-bit PCM WAV file (the fixtures' format).
///
/// # Panics
/// When the file cannot be read or is not a 16-bit PCM WAV: fixtures are part of the tests.
pub fn read_wav(path: &Path) -> Wav {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WAVE",
        "{} is not a WAV file",
        path.display()
    );
    let (mut rate, mut channels, mut at) = (0, 0, 12);
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        let body = &bytes[at + 8..(at + 8 + size).min(bytes.len())];
        if id == b"fmt " {
            assert!(body.len() >= 16, "{}: short fmt chunk", path.display());
            let bits = u16::from_le_bytes([body[14], body[15]]);
            assert_eq!(bits, 16, "{}: {bits}-bit samples", path.display());
            channels = u16::from_le_bytes([body[2], body[3]]);
            rate = u32::from_le_bytes(body[4..8].try_into().expect("4 bytes"));
        } else if id == b"data" {
            let samples = body
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
            assert!(rate > 0 && channels > 0, "{}: no fmt chunk", path.display());
            return Wav {
                samples,
                rate,
                channels,
            };
        }
        at += 8 + size + (size & 1);
    }
    panic!("{}: no data chunk", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_is_there_and_reads() {
        let lines = std::fs::read_to_string(spec_examples()).unwrap();
        assert_eq!(lines.lines().count(), 160);
        let stereo = read_wav(&audio("weather_48k_stereo.wav"));
        assert_eq!((stereo.rate, stereo.channels), (48_000, 2));
        let mono = read_wav(&audio("weather_24k.wav"));
        assert_eq!((mono.rate, mono.channels), (24_000, 1));
        // 0.5 s lead + about 2.55 s of speech + 1.0 s tail.
        let seconds = mono.samples.len() as f64 / 24_000.0;
        assert!((seconds - 4.05).abs() < 0.05, "{seconds} s");
    }
}
