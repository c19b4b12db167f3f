//! Token counts, as the service reports them in `response.done`, transcriptions and
//! `rate_limits.updated`: made up, but consistent (text by length, audio by duration at
//! its own sample rate, whatever the format).

use serde_json::{Value, json};

use super::{Stored, sane_rate};

/// Characters per text token.
pub(super) const CHARS_PER_TOKEN: u64 = 4;
/// Audio tokens per second of audio.
const AUDIO_TOKENS_PER_SECOND: u64 = 10;
/// Tokens every response's input counts besides the conversation (instructions, framing).
const BASE_INPUT_TOKENS: u64 = 20;
/// The `tokens` rate limit `rate_limits.updated` reports.
const TOKEN_LIMIT: u64 = 40_000;

/// The tokens of `text`.
pub(super) fn text_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(CHARS_PER_TOKEN)
}

/// The tokens of `samples` of audio at `rate` Hz (8 kHz G.711 counts by its duration, as
/// 24 kHz PCM does).
pub(super) fn audio_tokens(samples: usize, rate: u32) -> u64 {
    (samples as u64).saturating_mul(AUDIO_TOKENS_PER_SECOND) / u64::from(sane_rate(rate))
}

/// What a response's input counts: the conversation's items as text and audio.
#[derive(Debug, Clone, Copy, Default)]
pub(in crate::engine) struct InputTokens {
    pub(in crate::engine) text: u64,
    pub(in crate::engine) audio: u64,
}

impl InputTokens {
    pub(super) fn of(items: &[Stored]) -> Self {
        let mut tokens = Self {
            text: BASE_INPUT_TOKENS,
            audio: 0,
        };
        for stored in items {
            tokens.text = tokens.text.saturating_add(stored.json_bytes as u64 / 8);
            tokens.audio = tokens
                .audio
                .saturating_add(audio_tokens(stored.audio.len(), stored.rate));
        }
        tokens
    }

    fn total(self) -> u64 {
        self.text.saturating_add(self.audio)
    }
}

/// A response's `usage`.
pub(super) fn response(input: InputTokens, text_out: u64, audio_out: u64) -> Value {
    let output = text_out.saturating_add(audio_out);
    json!({
        "total_tokens": input.total().saturating_add(output), "input_tokens": input.total(),
        "output_tokens": output,
        "input_token_details": {"text_tokens": input.text, "audio_tokens": input.audio, "image_tokens": 0,
            "cached_tokens": 0, "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}},
        "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out},
    })
}

/// A transcription's `usage`: `seconds` of audio in, `transcript` out.
pub(super) fn transcription(seconds: f64, transcript: &str) -> Value {
    let audio = if seconds.is_finite() && seconds > 0.0 {
        (seconds * AUDIO_TOKENS_PER_SECOND as f64).ceil() as u64
    } else {
        0
    };
    let text = text_tokens(transcript);
    json!({"type": "tokens", "total_tokens": audio.saturating_add(text), "input_tokens": audio,
        "input_token_details": {"text_tokens": 0, "audio_tokens": audio},
        "output_tokens": text})
}

/// `rate_limits.updated`'s list after a response of `output_tokens`.
pub(super) fn rate_limits(output_tokens: u64) -> Value {
    json!([{"name": "tokens", "limit": TOKEN_LIMIT,
        "remaining": TOKEN_LIMIT.saturating_sub(output_tokens), "reset_seconds": 0.001}])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_tokens_follow_the_duration_not_the_format() {
        // One second at 24 kHz PCM and one second of 8 kHz G.711 count the same.
        assert_eq!(audio_tokens(24_000, 24_000), 10);
        assert_eq!(audio_tokens(8_000, 8_000), 10);
        assert_eq!(audio_tokens(12_000, 24_000), 5);
        // A nonsense rate does not divide by zero.
        assert_eq!(audio_tokens(24_000, 0), 10);
    }

    #[test]
    fn a_response_usage_adds_up() {
        let usage = response(
            InputTokens {
                text: 30,
                audio: 10,
            },
            5,
            7,
        );
        assert_eq!(usage["input_tokens"], 40);
        assert_eq!(usage["output_tokens"], 12);
        assert_eq!(usage["total_tokens"], 52);
        assert_eq!(usage["input_token_details"]["audio_tokens"], 10);
    }
}
