//! Audio payloads: every `Base64Audio` decode path on untrusted text (they must agree with
//! each other and with `pcm16_duration_ms`), the encode paths on arbitrary bytes, and
//! G.711 µ-law/A-law both ways.

#![no_main]

use libfuzzer_sys::fuzz_target;
use reelthyme_schema::{AudioError, Base64Audio, g711};

const RATES: [u32; 6] = [24_000, 8_000, 16_000, 48_000, 1, u32::MAX];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let rate = RATES[usize::from(selector) % RATES.len()];

    // Decoding untrusted base64 text.
    if let Ok(text) = std::str::from_utf8(rest) {
        let audio = Base64Audio::from_base64(text);
        let len = audio.decoded_len();
        let bytes = audio.decode_bytes();
        assert_eq!(
            len.is_ok(),
            bytes.is_ok(),
            "decoded_len and decode_bytes disagree on {text:?}"
        );
        let duration = audio.pcm16_duration_ms(rate);
        let mut samples = vec![7_i16; usize::from(selector % 4)];
        let before = samples.clone();
        let into = audio.decode_pcm16_into(&mut samples);
        match &bytes {
            Ok(bytes) => {
                assert_eq!(len, Ok(bytes.len()));
                let expected_ms = (bytes.len() / 2) as f64 * 1000.0 / f64::from(rate);
                assert_eq!(duration, expected_ms, "duration of {text:?} at {rate} Hz");
                if bytes.len() % 2 == 0 {
                    into.expect("even valid base64 is PCM16");
                    let wire: Vec<i16> = bytes
                        .chunks_exact(2)
                        .map(|b| i16::from_le_bytes([b[0], b[1]]))
                        .collect();
                    assert_eq!(samples[before.len()..], wire[..]);
                    assert_eq!(audio.decode_pcm16().as_deref(), Ok(&wire[..]));
                } else {
                    assert_eq!(into, Err(AudioError::OddLength(bytes.len())));
                    assert_eq!(samples, before, "the buffer changed on error");
                }
            }
            Err(_) => {
                assert!(into.is_err(), "invalid base64 decoded as PCM16: {text:?}");
                assert_eq!(samples, before, "the buffer changed on error");
                assert!(duration.is_finite() && duration >= 0.0);
            }
        }
    }

    // Encoding arbitrary bytes and samples.
    let encoded = Base64Audio::from_bytes(rest);
    assert_eq!(encoded.decode_bytes().as_deref(), Ok(rest));
    assert_eq!(encoded.decoded_len(), Ok(rest.len()));
    let pcm: Vec<i16> = rest
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let encoded = Base64Audio::from_pcm16(&pcm);
    assert_eq!(encoded.decode_pcm16().as_deref(), Ok(&pcm[..]));
    let expected_ms = pcm.len() as f64 * 1000.0 / f64::from(rate);
    assert_eq!(encoded.pcm16_duration_ms(rate), expected_ms);

    // G.711: every byte decodes and re-encodes to itself (µ-law's negative zero aside);
    // every sample survives within the codec's step.
    for &byte in rest {
        if byte != 0x7f {
            assert_eq!(g711::ulaw_encode(g711::ulaw_decode(byte)), byte);
        }
        assert_eq!(g711::alaw_encode(g711::alaw_decode(byte)), byte);
    }
    for &sample in &pcm {
        for back in [
            g711::ulaw_decode(g711::ulaw_encode(sample)),
            g711::alaw_decode(g711::alaw_encode(sample)),
        ] {
            let error = (i32::from(sample) - i32::from(back)).abs();
            assert!(
                error <= i32::from(sample).abs() / 16 + 1024,
                "G.711 error {error} for {sample}"
            );
        }
    }
});
