//! The session's audio formats, through `reelthyme_audio::codec` (written once for the
//! client and the simulator): only the wording of a decode failure is the API's own.

use reelthyme_audio::codec;
use reelthyme_schema::{AudioFormat, Base64Audio};

/// The samples of an append in `format`, at the format's rate; a failure is worded as the
/// payload's own error (bad base64, an odd number of PCM16 bytes).
pub(super) fn decode(format: &AudioFormat, audio: &Base64Audio) -> Result<Vec<i16>, String> {
    codec::decode(Some(format), audio).map_err(|error| {
        std::error::Error::source(&error).map_or_else(|| error.to_string(), ToString::to_string)
    })
}

/// `samples` (at the format's rate) as a base64 payload in `format`.
pub(super) fn encode(format: &AudioFormat, samples: &[i16]) -> Base64Audio {
    codec::encode_base64(Some(format), samples)
}
