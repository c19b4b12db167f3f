//! Opus for WebRTC audio tracks (feature `opus`): mono PCM16 at the caller's rate in and
//! out, Opus at 48 kHz in 20 ms frames on the wire (what the Realtime API negotiates:
//! `opus/48000/2`, one packet per RTP packet).
//!
//! The encoder resamples to 48 kHz with the crate's [`Resampler`] and cuts the stream into
//! 20 ms frames, keeping the remainder for the next call; the decoder decodes each packet
//! at 48 kHz and resamples to the caller's rate. libopus comes from the `opus` crate, which
//! builds its bundled copy (with cmake).

use crate::resample::Resampler;
use crate::{Error, ErrorKind, Result, f32_to_i16, i16_to_f32};

/// The rate Opus runs at on a WebRTC track.
pub const OPUS_RATE: u32 = 48_000;

/// Samples in one 20 ms frame at [`OPUS_RATE`]: what each packet carries.
pub const OPUS_FRAME_SAMPLES: usize = 960;

/// The largest packet the encoder writes (libopus's recommended bound; a 20 ms mono voice
/// packet is a few hundred bytes at most).
const MAX_PACKET: usize = 4000;

/// The longest frame a packet can hold: 120 ms at 48 kHz.
const MAX_FRAME_SAMPLES: usize = 5760;

fn opus_error(what: &str, error: ::opus::Error) -> Error {
    Error::new(ErrorKind::Decode, format!("Opus {what}: {error}")).with_source(error)
}

/// Mono PCM16 at any rate → Opus packets of 20 ms at 48 kHz.
pub struct OpusEncoder {
    encoder: ::opus::Encoder,
    resampler: Resampler,
    /// 48 kHz samples waiting for a whole frame.
    pending: Vec<i16>,
    floats: Vec<f32>,
    resampled: Vec<f32>,
    converted: Vec<i16>,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("rate", &self.resampler.from_rate())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl OpusEncoder {
    /// An encoder of voice (`VOIP` mode) taking mono samples at `rate` Hz.
    ///
    /// # Errors
    /// [`ErrorKind::Rate`] for a rate the resampler cannot convert to 48 kHz, or when
    /// libopus refuses to start.
    pub fn new(rate: u32) -> Result<Self> {
        let resampler = Resampler::new(rate, OPUS_RATE)?;
        let encoder =
            ::opus::Encoder::new(OPUS_RATE, ::opus::Channels::Mono, ::opus::Application::Voip)
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Rate,
                        format!("cannot start an Opus encoder: {e}"),
                    )
                    .with_source(e)
                })?;
        Ok(Self {
            encoder,
            resampler,
            pending: Vec::with_capacity(OPUS_FRAME_SAMPLES * 2),
            floats: Vec::new(),
            resampled: Vec::new(),
            converted: Vec::new(),
        })
    }

    /// The input rate.
    pub fn rate(&self) -> u32 {
        self.resampler.from_rate()
    }

    /// Encodes `samples`, returning the packets of every 20 ms frame now complete (none
    /// while less than a frame has accumulated; the rest waits for the next call).
    ///
    /// # Errors
    /// [`ErrorKind::Decode`] if libopus fails to encode a frame (it does not for valid
    /// frames; the frame is lost).
    pub fn encode(&mut self, samples: &[i16]) -> Result<Vec<Vec<u8>>> {
        self.floats.clear();
        i16_to_f32(samples, &mut self.floats);
        self.resampled.clear();
        self.resampler.process(&self.floats, &mut self.resampled);
        self.take_resampled();
        self.drain_frames()
    }

    /// Encodes what is still inside (the resampler's tail and a partial frame, padded with
    /// silence to 20 ms): the end of an utterance. The encoder can be reused.
    ///
    /// # Errors
    /// As [`OpusEncoder::encode`].
    pub fn flush(&mut self) -> Result<Vec<Vec<u8>>> {
        self.resampled.clear();
        self.resampler.flush(&mut self.resampled);
        self.take_resampled();
        if !self.pending.len().is_multiple_of(OPUS_FRAME_SAMPLES) {
            let padded = self.pending.len().next_multiple_of(OPUS_FRAME_SAMPLES);
            self.pending.resize(padded, 0);
        }
        self.drain_frames()
    }

    fn take_resampled(&mut self) {
        self.converted.clear();
        f32_to_i16(&self.resampled, &mut self.converted);
        self.pending.extend_from_slice(&self.converted);
    }

    fn drain_frames(&mut self) -> Result<Vec<Vec<u8>>> {
        let frames = self.pending.len() / OPUS_FRAME_SAMPLES;
        let mut packets = Vec::with_capacity(frames);
        let mut failure = None;
        for frame in self.pending.chunks_exact(OPUS_FRAME_SAMPLES) {
            match self.encoder.encode_vec(frame, MAX_PACKET) {
                Ok(packet) => packets.push(packet),
                Err(error) => failure = Some(opus_error("encoding failed", error)),
            }
        }
        self.pending.drain(..frames * OPUS_FRAME_SAMPLES);
        match failure {
            Some(error) => Err(error),
            None => Ok(packets),
        }
    }
}

/// Opus packets (48 kHz, mono or stereo) → mono PCM16 at the caller's rate.
pub struct OpusDecoder {
    decoder: ::opus::Decoder,
    resampler: Resampler,
    frame: Vec<i16>,
    floats: Vec<f32>,
    resampled: Vec<f32>,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder")
            .field("rate", &self.resampler.to_rate())
            .finish_non_exhaustive()
    }
}

impl OpusDecoder {
    /// A decoder giving mono samples at `rate` Hz (a stereo stream is downmixed by libopus).
    ///
    /// # Errors
    /// [`ErrorKind::Rate`] for a rate the resampler cannot convert from 48 kHz, or when
    /// libopus refuses to start.
    pub fn new(rate: u32) -> Result<Self> {
        let resampler = Resampler::new(OPUS_RATE, rate)?;
        let decoder = ::opus::Decoder::new(OPUS_RATE, ::opus::Channels::Mono).map_err(|e| {
            Error::new(
                ErrorKind::Rate,
                format!("cannot start an Opus decoder: {e}"),
            )
            .with_source(e)
        })?;
        Ok(Self {
            decoder,
            resampler,
            frame: vec![0; MAX_FRAME_SAMPLES],
            floats: Vec::new(),
            resampled: Vec::new(),
        })
    }

    /// The output rate.
    pub fn rate(&self) -> u32 {
        self.resampler.to_rate()
    }

    /// Decodes one packet, appending its samples (at [`OpusDecoder::rate`]) to `out`. The
    /// resampler holds up to 10 ms back until the next packet or [`OpusDecoder::flush`].
    ///
    /// # Errors
    /// [`ErrorKind::Decode`] for a packet that is not Opus (nothing is appended; the
    /// decoder goes on with the next one).
    pub fn decode(&mut self, packet: &[u8], out: &mut Vec<i16>) -> Result<()> {
        if packet.is_empty() {
            return self.conceal(out);
        }
        let decoded = self
            .decoder
            .decode(packet, &mut self.frame, false)
            .map_err(|e| opus_error("packet did not decode", e))?;
        self.emit(decoded, out);
        Ok(())
    }

    /// Fills 20 ms of a lost packet with libopus's concealment, appending it to `out`.
    ///
    /// # Errors
    /// [`ErrorKind::Decode`] if libopus cannot conceal (before any packet, say).
    pub fn conceal(&mut self, out: &mut Vec<i16>) -> Result<()> {
        let decoded = self
            .decoder
            .decode(&[], &mut self.frame[..OPUS_FRAME_SAMPLES], false)
            .map_err(|e| opus_error("concealment failed", e))?;
        self.emit(decoded, out);
        Ok(())
    }

    /// Appends what the resampler still holds (the end of the stream).
    pub fn flush(&mut self, out: &mut Vec<i16>) {
        self.resampled.clear();
        self.resampler.flush(&mut self.resampled);
        f32_to_i16(&self.resampled, out);
    }

    fn emit(&mut self, decoded: usize, out: &mut Vec<i16>) {
        let decoded = decoded.min(self.frame.len());
        self.floats.clear();
        i16_to_f32(&self.frame[..decoded], &mut self.floats);
        self.resampled.clear();
        self.resampler.process(&self.floats, &mut self.resampled);
        f32_to_i16(&self.resampled, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 440 Hz tone at `rate`.
    fn tone(rate: u32, millis: u32) -> Vec<i16> {
        let n = (rate * millis / 1000) as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
            })
            .collect()
    }

    /// Signal-to-noise ratio of `decoded` against `original`, after finding the codec's
    /// delay (the best alignment within 20 ms).
    fn snr_db(original: &[i16], decoded: &[i16], rate: u32) -> f64 {
        let max_lag = (rate / 50) as usize;
        let skip = (rate / 10) as usize; // the codec's start-up
        let len = original
            .len()
            .min(decoded.len())
            .saturating_sub(max_lag + skip);
        let mut best = f64::MIN;
        for lag in 0..max_lag {
            let (mut signal, mut noise) = (0.0f64, 0.0f64);
            for i in skip..skip + len {
                let s = f64::from(original[i]);
                let d = f64::from(decoded[i + lag]);
                signal += s * s;
                noise += (s - d) * (s - d);
            }
            best = best.max(10.0 * (signal / noise.max(1.0)).log10());
        }
        best
    }

    #[test]
    fn frames_are_20_ms_and_the_remainder_waits() {
        let mut encoder = OpusEncoder::new(OPUS_RATE).unwrap();
        // 30 ms: one frame now, 10 ms kept.
        assert_eq!(encoder.encode(&tone(OPUS_RATE, 30)).unwrap().len(), 1);
        // 10 more: the kept 10 ms complete a second frame.
        assert_eq!(encoder.encode(&tone(OPUS_RATE, 10)).unwrap().len(), 1);
        assert!(encoder.encode(&tone(OPUS_RATE, 5)).unwrap().is_empty());
        // The 5 ms left is padded into one last frame.
        assert_eq!(encoder.flush().unwrap().len(), 1);
        assert!(encoder.flush().unwrap().is_empty());
    }

    #[test]
    fn a_24_khz_round_trip_keeps_the_signal() {
        let input = tone(24_000, 1000);
        let mut encoder = OpusEncoder::new(24_000).unwrap();
        let mut decoder = OpusDecoder::new(24_000).unwrap();
        let mut packets = Vec::new();
        for chunk in input.chunks(480) {
            packets.extend(encoder.encode(chunk).unwrap());
        }
        packets.extend(encoder.flush().unwrap());
        // 1 s of audio is 50 frames (the resampler's tail may add one).
        assert!((50..=51).contains(&packets.len()), "{}", packets.len());
        let mut output = Vec::new();
        for packet in &packets {
            assert!(packet.len() < 400, "a 20 ms voice packet is small");
            decoder.decode(packet, &mut output).unwrap();
        }
        decoder.flush(&mut output);
        assert!(
            output.len() >= input.len(),
            "{} < {}",
            output.len(),
            input.len()
        );
        let snr = snr_db(&input, &output, 24_000);
        assert!(snr > 30.0, "SNR {snr:.1} dB");
    }

    #[test]
    fn garbage_is_a_decode_error_and_the_decoder_goes_on() {
        let mut encoder = OpusEncoder::new(OPUS_RATE).unwrap();
        let mut decoder = OpusDecoder::new(OPUS_RATE).unwrap();
        let mut out = Vec::new();
        // A TOC byte announcing more frames than the packet holds.
        let error = decoder.decode(&[0xff, 0xff, 0xff], &mut out).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Decode);
        assert!(out.is_empty());
        let packet = encoder.encode(&tone(OPUS_RATE, 20)).unwrap().remove(0);
        decoder.decode(&packet, &mut out).unwrap();
        assert_eq!(out.len(), OPUS_FRAME_SAMPLES);
        decoder.conceal(&mut out).unwrap();
        assert_eq!(out.len(), 2 * OPUS_FRAME_SAMPLES);
    }

    #[test]
    fn unusable_rates_are_refused() {
        assert_eq!(OpusEncoder::new(0).unwrap_err().kind(), ErrorKind::Rate);
        assert_eq!(OpusDecoder::new(0).unwrap_err().kind(), ErrorKind::Rate);
    }
}
