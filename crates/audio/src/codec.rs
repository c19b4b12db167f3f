//! The wire formats, written once: PCM16 little-endian, G.711 µ-law and A-law, picked from
//! a session's [`AudioFormat`]. Pure (no devices), for the simulator and the client alike.
//!
//! - Sample level ([`decode`], [`encode`]): samples at the format's own rate ([`rate_of`]),
//!   for code that works at that rate (the simulator).
//! - Streaming ([`Decoder`], [`Encoder`]): the client side, which always speaks 24 kHz mono
//!   PCM16 to devices; G.711 is resampled 8 ⇄ 24 kHz on the way, and the resampler's tail is
//!   given back by [`Decoder::flush`] / [`Encoder::finish`] so no audio is lost at the end.
//!
//! A missing format, or one this crate does not know, is PCM16 at 24 kHz: the API's default.

use reelthyme_schema::{AudioFormat, Base64Audio, PCM_SAMPLE_RATE, g711};

use crate::{Error, ErrorKind, Resampler, Result, f32_to_i16, i16_to_f32};

/// The rate the client side speaks: what [`Decoder`] produces and [`Encoder`] takes.
pub const API_RATE: u32 = PCM_SAMPLE_RATE;

/// How samples are put into bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// 16-bit little-endian PCM (`audio/pcm`).
    Pcm16,
    /// G.711 µ-law (`audio/pcmu`), one byte per sample.
    Ulaw,
    /// G.711 A-law (`audio/pcma`), one byte per sample.
    Alaw,
}

impl Codec {
    /// The codec of `format` (PCM16 when there is none or it is unknown).
    pub fn of(format: Option<&AudioFormat>) -> Self {
        match format {
            Some(AudioFormat::Pcmu(_)) => Self::Ulaw,
            Some(AudioFormat::Pcma(_)) => Self::Alaw,
            _ => Self::Pcm16,
        }
    }

    /// Bytes per sample on the wire.
    pub fn bytes_per_sample(self) -> usize {
        match self {
            Self::Pcm16 => 2,
            Self::Ulaw | Self::Alaw => 1,
        }
    }

    fn decode_into(self, bytes: &[u8], out: &mut Vec<i16>) -> Result<()> {
        match self {
            Self::Pcm16 => {
                if !bytes.len().is_multiple_of(2) {
                    return Err(Error::new(
                        ErrorKind::Decode,
                        format!("PCM16 audio has an odd number of bytes ({})", bytes.len()),
                    )
                    .with_source(reelthyme_schema::AudioError::OddLength(bytes.len())));
                }
                out.extend(
                    bytes
                        .chunks_exact(2)
                        .map(|b| i16::from_le_bytes([b[0], b[1]])),
                );
            }
            Self::Ulaw => out.extend(bytes.iter().map(|&b| g711::ulaw_decode(b))),
            Self::Alaw => out.extend(bytes.iter().map(|&b| g711::alaw_decode(b))),
        }
        Ok(())
    }

    fn encode_into(self, samples: &[i16], out: &mut Vec<u8>) {
        match self {
            Self::Pcm16 => out.extend(samples.iter().flat_map(|s| s.to_le_bytes())),
            Self::Ulaw => out.extend(samples.iter().map(|&s| g711::ulaw_encode(s))),
            Self::Alaw => out.extend(samples.iter().map(|&s| g711::alaw_encode(s))),
        }
    }
}

/// The sample rate of `format` on the wire: 8 kHz for G.711, the stated rate (24 kHz by
/// default) for PCM16, 24 kHz when there is no format or an unknown one.
pub fn rate_of(format: Option<&AudioFormat>) -> u32 {
    format
        .and_then(AudioFormat::sample_rate)
        .unwrap_or(API_RATE)
}

fn base64_error(error: reelthyme_schema::AudioError) -> Error {
    Error::new(ErrorKind::Decode, format!("audio did not decode: {error}")).with_source(error)
}

/// Decodes `audio` in `format` to samples at the format's rate ([`rate_of`]).
///
/// # Errors
/// [`ErrorKind::Decode`] for text that is not base64 or PCM16 of an odd length (the
/// schema's [`AudioError`](reelthyme_schema::AudioError) is the source).
pub fn decode(format: Option<&AudioFormat>, audio: &Base64Audio) -> Result<Vec<i16>> {
    match Codec::of(format) {
        // Straight from base64 into the samples, without a byte vector in between.
        Codec::Pcm16 => audio.decode_pcm16().map_err(base64_error),
        codec => decode_bytes(codec, &audio.decode_bytes().map_err(base64_error)?),
    }
}

/// Decodes raw wire bytes of `codec` to samples.
///
/// # Errors
/// [`ErrorKind::Decode`] for PCM16 of an odd length.
pub fn decode_bytes(codec: Codec, bytes: &[u8]) -> Result<Vec<i16>> {
    let mut out = Vec::with_capacity(bytes.len() / codec.bytes_per_sample());
    codec.decode_into(bytes, &mut out)?;
    Ok(out)
}

/// Encodes samples (at the format's rate, [`rate_of`]) as `format`'s wire bytes.
pub fn encode(format: Option<&AudioFormat>, samples: &[i16]) -> Vec<u8> {
    let codec = Codec::of(format);
    let mut out = Vec::with_capacity(samples.len() * codec.bytes_per_sample());
    codec.encode_into(samples, &mut out);
    out
}

/// [`encode`], as base64 for an event.
pub fn encode_base64(format: Option<&AudioFormat>, samples: &[i16]) -> Base64Audio {
    match Codec::of(format) {
        Codec::Pcm16 => Base64Audio::from_pcm16(samples),
        _ => Base64Audio::from_bytes(&encode(format, samples)),
    }
}

/// A resampler between the wire rate and 24 kHz, when they differ.
fn resampler_for(from: u32, to: u32) -> Result<Option<Resampler>> {
    if from == to {
        return Ok(None);
    }
    Resampler::new(from, to).map(Some)
}

/// Turns a stream of audio deltas in one format into 24 kHz mono PCM16.
///
/// Resampling (G.711's 8 kHz) holds a few milliseconds back; [`Decoder::flush`] gives them
/// at the end of the stream (`response.output_audio.done`), [`Decoder::reset`] drops them
/// (a barge-in cut the stream).
pub struct Decoder {
    codec: Codec,
    resampler: Option<Resampler>,
    narrow: Vec<i16>,
    scratch: Vec<f32>,
    wide: Vec<f32>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("codec", &self.codec)
            .field("resampler", &self.resampler)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// A decoder for `format` (PCM16 at 24 kHz when `None`).
    ///
    /// # Errors
    /// [`ErrorKind::Rate`] for a PCM16 format whose rate cannot be resampled (zero).
    pub fn for_format(format: Option<&AudioFormat>) -> Result<Self> {
        Ok(Self {
            codec: Codec::of(format),
            resampler: resampler_for(rate_of(format), API_RATE)?,
            narrow: Vec::new(),
            scratch: Vec::new(),
            wide: Vec::new(),
        })
    }

    /// The codec decoded.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Decodes one delta to 24 kHz samples (fewer than it carries while the resampler
    /// fills; [`Decoder::flush`] gives the rest).
    ///
    /// # Errors
    /// [`ErrorKind::Decode`] for text that is not base64 or PCM16 of an odd length, with
    /// the schema's error as the source. The decoder is unchanged and can go on.
    pub fn decode(&mut self, audio: &Base64Audio) -> Result<Vec<i16>> {
        if self.codec == Codec::Pcm16 && self.resampler.is_none() {
            return audio.decode_pcm16().map_err(base64_error);
        }
        let bytes = audio.decode_bytes().map_err(base64_error)?;
        self.decode_bytes(&bytes)
    }

    /// [`Decoder::decode`] on raw wire bytes.
    ///
    /// # Errors
    /// [`ErrorKind::Decode`] for PCM16 of an odd length.
    pub fn decode_bytes(&mut self, bytes: &[u8]) -> Result<Vec<i16>> {
        self.narrow.clear();
        self.codec.decode_into(bytes, &mut self.narrow)?;
        let Some(resampler) = &mut self.resampler else {
            return Ok(std::mem::take(&mut self.narrow));
        };
        self.scratch.clear();
        i16_to_f32(&self.narrow, &mut self.scratch);
        self.wide.clear();
        resampler.process(&self.scratch, &mut self.wide);
        let mut out = Vec::with_capacity(self.wide.len());
        f32_to_i16(&self.wide, &mut out);
        Ok(out)
    }

    /// The end of the stream: what the resampler still holds, so that everything decoded
    /// adds up to exactly the input's duration at 24 kHz. The decoder starts afresh.
    pub fn flush(&mut self) -> Vec<i16> {
        let Some(resampler) = &mut self.resampler else {
            return Vec::new();
        };
        self.wide.clear();
        resampler.flush(&mut self.wide);
        let mut out = Vec::with_capacity(self.wide.len());
        f32_to_i16(&self.wide, &mut out);
        out
    }

    /// Drops what the resampler holds (the stream was cut): the next delta starts afresh.
    pub fn reset(&mut self) {
        if let Some(resampler) = &mut self.resampler {
            self.wide.clear();
            resampler.flush(&mut self.wide);
            self.wide.clear();
        }
    }
}

/// Turns 24 kHz mono PCM16 chunks (a microphone's) into one format's wire bytes.
///
/// Resampling to G.711's 8 kHz holds a few milliseconds back; [`Encoder::finish`] gives
/// them at the end of the stream.
pub struct Encoder {
    codec: Codec,
    resampler: Option<Resampler>,
    scratch: Vec<f32>,
    narrow: Vec<f32>,
    samples: Vec<i16>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("codec", &self.codec)
            .field("resampler", &self.resampler)
            .finish_non_exhaustive()
    }
}

impl Encoder {
    /// An encoder for `format` (PCM16 at 24 kHz when `None`).
    ///
    /// # Errors
    /// [`ErrorKind::Rate`] for a PCM16 format whose rate cannot be resampled (zero).
    pub fn for_format(format: Option<&AudioFormat>) -> Result<Self> {
        Ok(Self {
            codec: Codec::of(format),
            resampler: resampler_for(API_RATE, rate_of(format))?,
            scratch: Vec::new(),
            narrow: Vec::new(),
            samples: Vec::new(),
        })
    }

    /// The codec encoded.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Encodes a chunk of 24 kHz samples (for G.711, fewer bytes than a third of it
    /// while the resampler fills; [`Encoder::finish`] gives the rest).
    pub fn encode(&mut self, samples: &[i16]) -> Vec<u8> {
        let Some(resampler) = &mut self.resampler else {
            let mut out = Vec::with_capacity(samples.len() * self.codec.bytes_per_sample());
            self.codec.encode_into(samples, &mut out);
            return out;
        };
        self.scratch.clear();
        i16_to_f32(samples, &mut self.scratch);
        self.narrow.clear();
        resampler.process(&self.scratch, &mut self.narrow);
        self.narrowed()
    }

    /// [`Encoder::encode`], as base64 for `input_audio_buffer.append`.
    pub fn encode_base64(&mut self, samples: &[i16]) -> Base64Audio {
        if self.resampler.is_none() && self.codec == Codec::Pcm16 {
            return Base64Audio::from_pcm16(samples);
        }
        Base64Audio::from_bytes(&self.encode(samples))
    }

    /// The end of the stream: what the resampler still holds (empty when nothing is), so
    /// that everything encoded adds up to exactly the input's duration. The encoder starts
    /// afresh.
    pub fn finish(&mut self) -> Vec<u8> {
        let Some(resampler) = &mut self.resampler else {
            return Vec::new();
        };
        self.narrow.clear();
        resampler.flush(&mut self.narrow);
        self.narrowed()
    }

    /// [`Encoder::finish`], as base64 ([`Base64Audio::is_empty`] when there is no tail).
    pub fn finish_base64(&mut self) -> Base64Audio {
        let bytes = self.finish();
        if bytes.is_empty() {
            Base64Audio::default()
        } else {
            Base64Audio::from_bytes(&bytes)
        }
    }

    fn narrowed(&mut self) -> Vec<u8> {
        self.samples.clear();
        f32_to_i16(&self.narrow, &mut self.samples);
        let mut out = Vec::with_capacity(self.samples.len() * self.codec.bytes_per_sample());
        self.codec.encode_into(&self.samples, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn formats() -> [(Option<AudioFormat>, Codec, u32); 4] {
        let pcmu = AudioFormat::Pcmu(reelthyme_schema::G711Format::default());
        let pcma = AudioFormat::Pcma(reelthyme_schema::G711Format::default());
        [
            (None, Codec::Pcm16, 24_000),
            (Some(AudioFormat::pcm()), Codec::Pcm16, 24_000),
            (Some(pcmu), Codec::Ulaw, 8_000),
            (Some(pcma), Codec::Alaw, 8_000),
        ]
    }

    fn tone(rate: u32, seconds: f64) -> Vec<i16> {
        (0..(seconds * f64::from(rate)) as usize)
            .map(|n| {
                ((n as f64 * 440.0 * std::f64::consts::TAU / f64::from(rate)).sin() * 9_000.0)
                    as i16
            })
            .collect()
    }

    #[test]
    fn dispatch_and_rates() {
        for (format, codec, rate) in formats() {
            assert_eq!(Codec::of(format.as_ref()), codec);
            assert_eq!(rate_of(format.as_ref()), rate);
        }
    }

    #[test]
    fn sample_level_round_trips_in_every_format() {
        let samples = tone(8_000, 0.1);
        for (format, codec, _) in formats() {
            let bytes = encode(format.as_ref(), &samples);
            assert_eq!(bytes.len(), samples.len() * codec.bytes_per_sample());
            let audio = encode_base64(format.as_ref(), &samples);
            assert_eq!(audio.decode_bytes().unwrap(), bytes);
            let back = decode(format.as_ref(), &audio).unwrap();
            assert_eq!(back.len(), samples.len());
            if codec == Codec::Pcm16 {
                assert_eq!(back, samples, "PCM16 is lossless");
            } else {
                for (&a, &b) in samples.iter().zip(&back) {
                    let step = (f64::from(a).abs() / 16.0 + 16.0) as i32;
                    assert!((i32::from(a) - i32::from(b)).abs() <= step, "{a} → {b}");
                }
            }
        }
    }

    #[test]
    fn pcm16_is_little_endian_and_agrees_with_the_schema() {
        assert_eq!(encode(None, &[0x0102, -2]), [0x02, 0x01, 0xfe, 0xff]);
        let audio = Base64Audio::from_pcm16(&[7, -7, 300]);
        assert_eq!(decode(None, &audio).unwrap(), [7, -7, 300]);
        assert_eq!(encode_base64(None, &[7, -7, 300]), audio);
    }

    #[test]
    fn bad_payloads_are_typed_errors_with_their_source() {
        for (format, _, _) in formats() {
            let error = decode(format.as_ref(), &Base64Audio::from_base64("AA*A")).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Decode);
            assert!(std::error::Error::source(&error).is_some());
            let mut decoder = Decoder::for_format(format.as_ref()).unwrap();
            let error = decoder
                .decode(&Base64Audio::from_base64("not base64"))
                .unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Decode);
        }
        let odd = Base64Audio::from_bytes(&[1, 2, 3]);
        let error = Decoder::for_format(None).unwrap().decode(&odd).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Decode);
        assert!(error.to_string().contains("odd"), "{error}");
        assert_eq!(decode_bytes(Codec::Ulaw, &[1, 2, 3]).unwrap().len(), 3);
    }

    /// Deltas of awkward sizes through the streaming decoder: 24 kHz out, exactly three
    /// samples per G.711 byte once flushed, the same audio as decoding it whole.
    #[test]
    fn streaming_decode_is_exact_after_flush_for_odd_chunks() {
        for (format, codec, rate) in formats() {
            let samples = tone(rate, 0.5);
            let bytes = encode(format.as_ref(), &samples);
            let mut decoder = Decoder::for_format(format.as_ref()).unwrap();
            assert_eq!(decoder.codec(), codec);
            let step = 37 * codec.bytes_per_sample();
            let mut out = Vec::new();
            for piece in bytes.chunks(step) {
                out.extend(decoder.decode(&Base64Audio::from_bytes(piece)).unwrap());
            }
            let tail = decoder.flush();
            if codec == Codec::Pcm16 {
                assert!(tail.is_empty());
                assert_eq!(out, samples);
            } else {
                assert!(!tail.is_empty(), "the resampler holds a tail");
                out.extend(tail);
                assert_eq!(out.len(), samples.len() * 3);
                // The same as one delta (the resampler is chunk-size independent).
                let mut whole = Decoder::for_format(format.as_ref()).unwrap();
                let mut once = whole.decode(&Base64Audio::from_bytes(&bytes)).unwrap();
                once.extend(whole.flush());
                assert_eq!(out, once);
            }
            // Flushing started afresh: a second stream is exact too.
            let mut again = decoder.decode(&Base64Audio::from_bytes(&bytes)).unwrap();
            again.extend(decoder.flush());
            assert_eq!(again.len(), out.len());
        }
    }

    #[test]
    fn reset_drops_the_tail() {
        let (format, _, _) = formats()[2].clone();
        let mut decoder = Decoder::for_format(format.as_ref()).unwrap();
        let bytes = encode(format.as_ref(), &tone(8_000, 0.05));
        let first = decoder.decode(&Base64Audio::from_bytes(&bytes)).unwrap();
        decoder.reset();
        assert!(decoder.flush().is_empty(), "nothing is held after a reset");
        // After the reset the stream starts over: the same input, the same output.
        let second = decoder.decode(&Base64Audio::from_bytes(&bytes)).unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn streaming_encode_is_exact_after_finish_and_decodes_back() {
        let samples = tone(24_000, 0.5);
        for (format, codec, rate) in formats() {
            let mut encoder = Encoder::for_format(format.as_ref()).unwrap();
            assert_eq!(encoder.codec(), codec);
            let mut wire = Vec::new();
            for chunk in samples.chunks(331) {
                wire.extend(encoder.encode(chunk));
            }
            let tail = encoder.finish_base64();
            assert_eq!(tail.is_empty(), codec == Codec::Pcm16);
            wire.extend(tail.decode_bytes().unwrap());
            let wire_samples = wire.len() / codec.bytes_per_sample();
            assert_eq!(
                wire_samples as u64,
                samples.len() as u64 * u64::from(rate) / 24_000
            );
            // Back to 24 kHz: the tone survives (G.711 plus two resamplings).
            let mut decoder = Decoder::for_format(format.as_ref()).unwrap();
            let mut back = decoder.decode_bytes(&wire).unwrap();
            back.extend(decoder.flush());
            assert_eq!(back.len(), samples.len());
            let body = 1_200..samples.len() - 1_200;
            let error: f64 = body
                .clone()
                .map(|i| (f64::from(samples[i]) - f64::from(back[i])).powi(2))
                .sum::<f64>()
                / body.len() as f64;
            let power: f64 = body
                .clone()
                .map(|i| f64::from(samples[i]).powi(2))
                .sum::<f64>()
                / body.len() as f64;
            let snr = 10.0 * (power / error.max(1e-9)).log10();
            assert!(snr > 30.0, "{codec:?}: {snr:.1} dB");
            // Base64 and bytes agree.
            let mut again = Encoder::for_format(format.as_ref()).unwrap();
            assert_eq!(
                again.encode_base64(&samples[..480]).decode_bytes().unwrap(),
                Encoder::for_format(format.as_ref())
                    .unwrap()
                    .encode(&samples[..480])
            );
        }
    }

    #[test]
    fn a_zero_pcm_rate_is_an_error_not_a_panic() {
        let format = AudioFormat::Pcm(reelthyme_schema::PcmFormat {
            rate: Some(0),
            ..Default::default()
        });
        assert_eq!(
            Decoder::for_format(Some(&format)).unwrap_err().kind(),
            ErrorKind::Rate
        );
        assert_eq!(
            Encoder::for_format(Some(&format)).unwrap_err().kind(),
            ErrorKind::Rate
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Untrusted text never panics: every format either decodes it or says why.
        #[test]
        fn any_text_decodes_or_is_a_decode_error(text in ".{0,64}") {
            let audio = Base64Audio::from_base64(text);
            for (format, _, _) in formats() {
                match decode(format.as_ref(), &audio) {
                    Ok(_) => prop_assert!(audio.decoded_len().is_ok()),
                    Err(error) => prop_assert_eq!(error.kind(), ErrorKind::Decode),
                }
                let mut decoder = Decoder::for_format(format.as_ref()).unwrap();
                if let Err(error) = decoder.decode(&audio) {
                    prop_assert_eq!(error.kind(), ErrorKind::Decode);
                }
            }
        }

        /// Any bytes, cut anywhere: G.711 decoding never fails and adds up to three 24 kHz
        /// samples per byte; PCM16 of an even length decodes to the same samples however cut.
        #[test]
        fn any_cut_of_any_bytes_adds_up(
            bytes in proptest::collection::vec(any::<u8>(), 0..2_000),
            cuts in proptest::collection::vec(1_usize..300, 1..8),
        ) {
            for (format, codec, _) in formats() {
                let mut bytes = bytes.clone();
                if codec == Codec::Pcm16 {
                    bytes.truncate(bytes.len() / 2 * 2);
                }
                let mut decoder = Decoder::for_format(format.as_ref()).unwrap();
                let mut out = Vec::new();
                let mut rest = &bytes[..];
                let mut i = 0;
                while !rest.is_empty() {
                    let n = (cuts[i % cuts.len()] * codec.bytes_per_sample()).min(rest.len());
                    out.extend(decoder.decode_bytes(&rest[..n]).unwrap());
                    rest = &rest[n..];
                    i += 1;
                }
                out.extend(decoder.flush());
                let per_byte = if codec == Codec::Pcm16 { 1 } else { 6 };
                prop_assert_eq!(out.len() * 2, bytes.len() * per_byte);
                if codec == Codec::Pcm16 {
                    prop_assert_eq!(out, decode_bytes(codec, &bytes).unwrap());
                }
            }
        }
    }
}
