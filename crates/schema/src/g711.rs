//! G.711 µ-law and A-law (ITU-T G.711), the `audio/pcmu` and `audio/pcma` formats:
//! one byte per sample at 8 kHz. Pure functions, for the simulator, the audio crate and
//! users bridging telephony audio.

const BIAS: i32 = 0x84;
const CLIP: i32 = 32_635;

/// Encodes one 16-bit sample as µ-law.
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut pcm = i32::from(sample);
    let sign = if pcm < 0 { 0x80 } else { 0 };
    if pcm < 0 {
        pcm = -pcm;
    }
    pcm = pcm.min(CLIP) + BIAS;
    let exponent = (7 - (pcm.leading_zeros() as i32 - 17)).clamp(0, 7);
    let mantissa = (pcm >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

/// Decodes one µ-law byte.
pub fn ulaw_decode(byte: u8) -> i16 {
    let byte = !byte;
    let sign = byte & 0x80;
    let exponent = i32::from((byte >> 4) & 0x07);
    let mantissa = i32::from(byte & 0x0f);
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

/// Encodes one 16-bit sample as A-law.
pub fn alaw_encode(sample: i16) -> u8 {
    let pcm = i32::from(sample);
    let (sign, magnitude) = if pcm >= 0 {
        (0xd5_u8, pcm)
    } else {
        (0x55_u8, -pcm - 1)
    };
    let magnitude = magnitude.min(0x7fff) >> 3;
    let encoded = if magnitude < 32 {
        magnitude >> 1
    } else {
        let exponent = 31 - magnitude.leading_zeros() as i32 - 4;
        (exponent << 4) | ((magnitude >> exponent) & 0x0f)
    };
    (encoded as u8) ^ sign
}

/// Decodes one A-law byte.
pub fn alaw_decode(byte: u8) -> i16 {
    let byte = byte ^ 0x55;
    let exponent = i32::from((byte & 0x70) >> 4);
    let mantissa = i32::from(byte & 0x0f);
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if byte & 0x80 != 0 {
        magnitude
    } else {
        -magnitude
    }) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worst_error(encode: fn(i16) -> u8, decode: fn(u8) -> i16) -> f64 {
        let mut worst = 0.0_f64;
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let back = decode(encode(s));
            // G.711 keeps about 12-13 bits near zero and a relative error of ≤ 1/16 (+ step) above.
            let err =
                f64::from((i32::from(s) - i32::from(back)).abs()) / (f64::from(s).abs() + 128.0);
            worst = worst.max(err);
        }
        worst
    }

    #[test]
    fn round_trips_within_the_codec_step() {
        assert!(worst_error(ulaw_encode, ulaw_decode) < 0.07);
        assert!(worst_error(alaw_encode, alaw_decode) < 0.07);
    }

    #[test]
    fn decoding_every_byte_then_encoding_is_the_identity() {
        for byte in 0..=255_u8 {
            // µ-law has two zeros (0x7f and 0xff); both decode to 0, which encodes as 0xff.
            if byte != 0x7f {
                assert_eq!(ulaw_encode(ulaw_decode(byte)), byte, "µ-law {byte:#x}");
            }
            assert_eq!(alaw_encode(alaw_decode(byte)), byte, "A-law {byte:#x}");
        }
    }

    #[test]
    fn known_values() {
        assert_eq!(ulaw_encode(0), 0xff);
        assert_eq!(alaw_encode(0), 0xd5);
        assert_eq!(ulaw_decode(0x00), -32_124);
        assert_eq!(alaw_decode(0xd5), 8);
    }
}
