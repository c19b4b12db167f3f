//! Audio payloads: base64 text of 16-bit little-endian PCM (or G.711 bytes) as it travels in
//! `input_audio_buffer.append.audio` and `response.output_audio.delta.delta`.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The largest `input_audio_buffer.append` payload the API accepts: 15 MiB. Validation
/// applies it to the audio as sent (base64), the conservative reading.
pub const MAX_APPEND_BYTES: usize = 15 * 1024 * 1024;

/// The sample rate of `audio/pcm`, the only one the API accepts.
pub const PCM_SAMPLE_RATE: u32 = 24_000;

/// Why an audio payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AudioError {
    /// The text is not standard base64 with padding.
    #[error("audio is not valid standard base64 (with padding)")]
    InvalidBase64,
    /// PCM16 needs an even number of bytes.
    #[error("PCM16 audio has an odd number of bytes ({0})")]
    OddLength(usize),
}

/// Base64 audio as carried on the wire. Decoding is lazy: an event can be parsed, routed and
/// re-serialised without touching its audio.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
#[schemars(with = "String")]
pub struct Base64Audio(String);

impl Base64Audio {
    /// Wraps base64 text as received (not checked; see [`Self::decoded_len`]).
    pub fn from_base64(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// Encodes 16-bit PCM samples (little-endian on the wire, whatever the host's order).
    pub fn from_pcm16(samples: &[i16]) -> Self {
        #[cfg(target_endian = "little")]
        let bytes: &[u8] = bytemuck::cast_slice(samples);
        #[cfg(target_endian = "big")]
        let owned: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        #[cfg(target_endian = "big")]
        let bytes: &[u8] = &owned;
        Self::from_bytes(bytes)
    }

    /// Encodes raw bytes (PCM16 LE, or G.711 µ-law/A-law).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(base64_simd::STANDARD.encode_to_string(bytes))
    }

    /// The base64 text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The base64 text, by value.
    pub fn into_string(self) -> String {
        self.0
    }

    /// Whether there is no audio.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many bytes the audio decodes to, checking that the text is valid base64.
    ///
    /// # Errors
    /// [`AudioError::InvalidBase64`].
    pub fn decoded_len(&self) -> Result<usize, AudioError> {
        let len = base64_simd::STANDARD
            .decoded_length(self.0.as_bytes())
            .map_err(|_| AudioError::InvalidBase64)?;
        // `decoded_length` only looks at the length and padding; check the alphabet too,
        // without allocating.
        base64_simd::STANDARD
            .check(self.0.as_bytes())
            .map_err(|_| AudioError::InvalidBase64)?;
        Ok(len)
    }

    /// Decodes to raw bytes.
    ///
    /// # Errors
    /// [`AudioError::InvalidBase64`].
    pub fn decode_bytes(&self) -> Result<Vec<u8>, AudioError> {
        base64_simd::STANDARD
            .decode_to_vec(self.0.as_bytes())
            .map_err(|_| AudioError::InvalidBase64)
    }

    /// Decodes PCM16 to samples.
    ///
    /// # Errors
    /// [`AudioError::InvalidBase64`], [`AudioError::OddLength`].
    pub fn decode_pcm16(&self) -> Result<Vec<i16>, AudioError> {
        let mut samples = Vec::new();
        self.decode_pcm16_into(&mut samples)?;
        Ok(samples)
    }

    /// Decodes PCM16 and appends the samples to `out`, straight from base64 into the
    /// sample buffer (no intermediate byte vector). On error `out` is left as it was.
    ///
    /// # Errors
    /// [`AudioError::InvalidBase64`], [`AudioError::OddLength`].
    pub fn decode_pcm16_into(&self, out: &mut Vec<i16>) -> Result<(), AudioError> {
        let src = self.0.as_bytes();
        let len = base64_simd::STANDARD
            .decoded_length(src)
            .map_err(|_| AudioError::InvalidBase64)?;
        if len % 2 != 0 {
            return Err(AudioError::OddLength(len));
        }
        let start = out.len();
        out.resize(start + len / 2, 0);
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut out[start..]);
        if base64_simd::STANDARD
            .decode(src, base64_simd::Out::from_slice(bytes))
            .is_err()
        {
            out.truncate(start);
            return Err(AudioError::InvalidBase64);
        }
        #[cfg(target_endian = "big")]
        for sample in &mut out[start..] {
            *sample = i16::from_le(*sample);
        }
        Ok(())
    }

    /// The duration of PCM16 audio at `rate` Hz, in milliseconds (from the text's length).
    ///
    /// The text is not checked (see [`Self::decoded_len`]): for valid base64 this is exact;
    /// for anything else it is what the length suggests, never more than the text could
    /// hold and never negative. (A `rate` of 0 gives infinity, or NaN for no audio.)
    pub fn pcm16_duration_ms(&self, rate: u32) -> f64 {
        // Valid base64 ends with at most two `=`; more, or padding without a whole
        // quantum before it (`"=="`, `"A="`), must not underflow.
        let padding = self
            .0
            .bytes()
            .rev()
            .take(2)
            .take_while(|&b| b == b'=')
            .count();
        let bytes = (self.0.len() / 4 * 3).saturating_sub(padding);
        (bytes / 2) as f64 * 1000.0 / f64::from(rate)
    }
}

impl fmt::Debug for Base64Audio {
    // Audio is noise in logs: show its size, not its bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Base64Audio({} base64 chars)", self.0.len())
    }
}

impl From<String> for Base64Audio {
    fn from(text: String) -> Self {
        Self(text)
    }
}

#[cfg(test)]
impl proptest::arbitrary::Arbitrary for Base64Audio {
    type Parameters = ();
    type Strategy = proptest::strategy::BoxedStrategy<Self>;
    fn arbitrary_with((): ()) -> Self::Strategy {
        use proptest::prelude::*;
        proptest::collection::vec(any::<i16>(), 0..64)
            .prop_map(|s| Self::from_pcm16(&s))
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm16_round_trips_through_base64() {
        let samples: Vec<i16> = (0..480).map(|i| (i * 137 % 65536 - 32768) as i16).collect();
        let audio = Base64Audio::from_pcm16(&samples);
        assert_eq!(audio.decoded_len().unwrap(), 960);
        assert_eq!(audio.decode_pcm16().unwrap(), samples);
        assert_eq!(audio.pcm16_duration_ms(24_000), 20.0);
    }

    #[test]
    fn wire_order_is_little_endian() {
        let audio = Base64Audio::from_pcm16(&[0x0102, -2]);
        assert_eq!(audio.decode_bytes().unwrap(), [0x02, 0x01, 0xfe, 0xff]);
    }

    #[test]
    fn decoding_appends_and_leaves_the_buffer_alone_on_error() {
        let mut out = vec![7_i16];
        Base64Audio::from_pcm16(&[1, 2])
            .decode_pcm16_into(&mut out)
            .unwrap();
        assert_eq!(out, [7, 1, 2]);
        let bad = Base64Audio::from_base64("AAAAAAA*");
        assert_eq!(
            bad.decode_pcm16_into(&mut out),
            Err(AudioError::InvalidBase64)
        );
        assert_eq!(out, [7, 1, 2]);
    }

    #[test]
    fn rejects_what_is_not_padded_standard_base64() {
        for text in ["Base64EncodedAudioData", "AAE", "AA-_", "AAE=AAE="] {
            assert_eq!(
                Base64Audio::from_base64(text).decoded_len(),
                Err(AudioError::InvalidBase64),
                "{text}"
            );
        }
        assert_eq!(
            Base64Audio::from_bytes(&[1, 2, 3]).decode_pcm16(),
            Err(AudioError::OddLength(3))
        );
    }

    #[test]
    fn debug_hides_the_payload() {
        let audio = Base64Audio::from_pcm16(&[1; 10]);
        assert_eq!(format!("{audio:?}"), "Base64Audio(28 base64 chars)");
    }
}
