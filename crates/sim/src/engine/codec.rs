//! Samples to and from the session's audio formats: PCM16 as base64, or G.711 μ-law/A-law.

use reelthyme_schema::{AudioFormat, Base64Audio, g711};

/// The samples of an append in `format`.
pub(super) fn decode(format: &AudioFormat, audio: &Base64Audio) -> Result<Vec<i16>, String> {
    match format {
        AudioFormat::Pcmu(_) => audio
            .decode_bytes()
            .map(|b| b.into_iter().map(g711::ulaw_decode).collect())
            .map_err(|e| e.to_string()),
        AudioFormat::Pcma(_) => audio
            .decode_bytes()
            .map(|b| b.into_iter().map(g711::alaw_decode).collect())
            .map_err(|e| e.to_string()),
        _ => audio.decode_pcm16().map_err(|e| e.to_string()),
    }
}

/// `samples` as a base64 payload in `format`.
pub(super) fn encode(format: &AudioFormat, samples: &[i16]) -> Base64Audio {
    match format {
        AudioFormat::Pcma(_) => Base64Audio::from_bytes(
            &samples
                .iter()
                .map(|&s| g711::alaw_encode(s))
                .collect::<Vec<_>>(),
        ),
        AudioFormat::Pcmu(_) => Base64Audio::from_bytes(
            &samples
                .iter()
                .map(|&s| g711::ulaw_encode(s))
                .collect::<Vec<_>>(),
        ),
        _ => Base64Audio::from_pcm16(samples),
    }
}
