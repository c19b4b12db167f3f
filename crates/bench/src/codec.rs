//! Event decode and encode throughput on one core, on the bytes in `benchmarks/fixtures/`
//! (the peers read the same files).
//!
//! - `decode.reelthyme`: `ServerEvent::from_json` of a 20 ms `response.output_audio.delta`,
//!   then `decode_pcm16_into` a reused sample buffer (what the audio layer does).
//! - `decode.serde_value`: the generic serde path in the same run (a JSON tree, then the
//!   typed event, then a fresh sample vector): the in-process baseline.
//! - `encode.reelthyme`: `ClientEvent::audio_append(&samples).to_json()` from 20 ms of
//!   samples (what `capture_audio` does).
//! - `encode.serde_value`: `serde_json::json!` of the same event, then `to_string`.

use std::hint::black_box;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use reelthyme_schema::{Base64Audio, ClientEvent, ServerEvent};

use crate::{best_rate, figure};

/// 20 ms at 24 kHz.
pub const SAMPLES: usize = 480;

/// The files in `benchmarks/fixtures/`.
pub const DELTA_FILE: &str = "output_audio_delta_20ms.json";
/// 20 ms of speech-like PCM16 LE at 24 kHz: what the delta carries, and what is encoded.
pub const SAMPLES_FILE: &str = "speech_20ms.s16le";
/// The `input_audio_buffer.append` every encoder must produce from the samples.
pub const APPEND_FILE: &str = "input_audio_append_20ms.json";

/// The same bytes for every harness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fixtures {
    /// A `response.output_audio.delta` as the service sends it (ids, `obfuscation`).
    pub delta_json: String,
    /// The samples that delta carries.
    pub samples: Vec<i16>,
    /// `{"type":"input_audio_buffer.append","audio":"…"}` of those samples.
    pub append_json: String,
}

impl Fixtures {
    /// What the committed fixture files hold (and how they were made).
    pub fn generate() -> Self {
        let samples: Vec<i16> = (0..SAMPLES)
            .map(|i| {
                ((i as f64 * 0.07).sin() * 12_000.0 + (i as f64 * 0.31).sin() * 3_000.0) as i16
            })
            .collect();
        let audio = Base64Audio::from_pcm16(&samples);
        let delta_json = format!(
            r#"{{"type":"response.output_audio.delta","event_id":"event_CCXHxcMy86rrKhBLDdqCh","response_id":"resp_CCXHw0UJld10EzIUXQCNh","item_id":"item_CCXHwGjjDUfOXbiySlK7i","output_index":0,"content_index":0,"delta":"{}","obfuscation":"aLxx0jTEci"}}"#,
            audio.as_str()
        );
        let append_json = format!(
            r#"{{"type":"input_audio_buffer.append","audio":"{}"}}"#,
            audio.as_str()
        );
        Self {
            delta_json,
            samples,
            append_json,
        }
    }

    /// Reads the fixture files from `dir`.
    ///
    /// # Errors
    /// A missing or malformed file.
    pub fn load(dir: &Path) -> Result<Self> {
        let read =
            |name: &str| std::fs::read(dir.join(name)).with_context(|| format!("reading {}", name));
        let raw = read(SAMPLES_FILE)?;
        ensure!(raw.len() % 2 == 0, "{SAMPLES_FILE} has an odd length");
        let samples = raw
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        Ok(Self {
            delta_json: String::from_utf8(read(DELTA_FILE)?)?.trim_end().to_owned(),
            samples,
            append_json: String::from_utf8(read(APPEND_FILE)?)?.trim_end().to_owned(),
        })
    }

    /// Writes the fixture files into `dir`.
    ///
    /// # Errors
    /// When a file cannot be written.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let bytes: Vec<u8> = self.samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        std::fs::write(dir.join(SAMPLES_FILE), bytes)?;
        std::fs::write(dir.join(DELTA_FILE), format!("{}\n", self.delta_json))?;
        std::fs::write(dir.join(APPEND_FILE), format!("{}\n", self.append_json))?;
        Ok(())
    }
}

/// Checks that our decode and encode do the work the peers are checked against.
///
/// # Errors
/// When the typed decode does not give the samples or the encode differs from the fixture.
pub fn check(fixtures: &Fixtures) -> Result<()> {
    let ServerEvent::ResponseOutputAudioDelta(delta) =
        ServerEvent::from_json(&fixtures.delta_json)?
    else {
        bail!("the delta fixture does not parse as response.output_audio.delta");
    };
    ensure!(
        delta.delta.decode_pcm16()? == fixtures.samples,
        "the delta fixture does not carry the samples fixture"
    );
    ensure!(
        ClientEvent::audio_append(&fixtures.samples).to_json() == fixtures.append_json,
        "the append differs from the fixture"
    );
    Ok(())
}

/// Runs the four measurements and gives their figure lines.
///
/// # Errors
/// As [`check`].
pub fn run(fixtures: &Fixtures, seconds: f64, rounds: u32) -> Result<Vec<String>> {
    check(fixtures)?;
    let json = fixtures.delta_json.as_str();
    let mut samples: Vec<i16> = Vec::with_capacity(SAMPLES);
    let mut failures = 0_u64;
    let decode = best_rate(seconds, rounds, || {
        match ServerEvent::from_json(black_box(json)) {
            Ok(ServerEvent::ResponseOutputAudioDelta(delta)) => {
                samples.clear();
                if delta.delta.decode_pcm16_into(&mut samples).is_err() {
                    failures += 1;
                }
            }
            _ => failures += 1,
        }
        black_box(&samples);
    });
    let serde_decode = best_rate(seconds, rounds, || {
        let parsed = serde_json::from_str::<serde_json::Value>(black_box(json))
            .map_err(anyhow::Error::from)
            .and_then(|value| Ok(ServerEvent::from_value(value)?));
        match parsed {
            Ok(ServerEvent::ResponseOutputAudioDelta(delta)) => {
                black_box(delta.delta.decode_pcm16().ok());
            }
            _ => failures += 1,
        }
    });
    let input = fixtures.samples.as_slice();
    let encode = best_rate(seconds, rounds, || {
        black_box(ClientEvent::audio_append(black_box(input)).to_json());
    });
    let serde_encode = best_rate(seconds, rounds, || {
        let audio = Base64Audio::from_pcm16(black_box(input));
        let value =
            serde_json::json!({"type": "input_audio_buffer.append", "audio": audio.as_str()});
        black_box(value.to_string());
    });
    ensure!(failures == 0, "{failures} decodes failed");
    let rate = |r: f64| format!("{r:.0}");
    Ok(vec![
        figure("decode.reelthyme", &[("events_per_s", rate(decode))]),
        figure(
            "decode.serde_value",
            &[("events_per_s", rate(serde_decode))],
        ),
        figure("encode.reelthyme", &[("events_per_s", rate(encode))]),
        figure(
            "encode.serde_value",
            &[("events_per_s", rate(serde_encode))],
        ),
        figure(
            "codec.fixture",
            &[
                ("delta_bytes", json.len().to_string()),
                ("append_bytes", fixtures.append_json.len().to_string()),
            ],
        ),
    ])
}
