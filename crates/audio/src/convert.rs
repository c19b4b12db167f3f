//! Sample conversions: `i16` ⇄ `f32`, channel down- and up-mixing.

/// `i16` → `f32` in [-1, 1).
pub fn i16_to_f32(samples: &[i16], out: &mut Vec<f32>) {
    out.extend(samples.iter().map(|&s| f32::from(s) / 32_768.0));
}

/// `f32` → `i16`, clamped (no wrap-around on overs).
pub fn f32_to_i16(samples: &[f32], out: &mut Vec<i16>) {
    out.extend(
        samples
            .iter()
            .map(|&s| (s * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16),
    );
}

/// Interleaved frames of `channels` channels → mono, averaging the channels.
pub fn downmix(interleaved: &[f32], channels: usize, out: &mut Vec<f32>) {
    if channels <= 1 {
        out.extend_from_slice(interleaved);
        return;
    }
    let scale = 1.0 / channels as f32;
    out.extend(
        interleaved
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() * scale),
    );
}

/// Mono → interleaved frames of `channels` channels (the same sample on each).
pub fn upmix(mono: &[f32], channels: usize, out: &mut Vec<f32>) {
    if channels <= 1 {
        out.extend_from_slice(mono);
        return;
    }
    for &sample in mono {
        out.extend(std::iter::repeat_n(sample, channels));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip_and_clamp() {
        let mut f = Vec::new();
        i16_to_f32(&[i16::MIN, -1, 0, 1, i16::MAX], &mut f);
        let mut back = Vec::new();
        f32_to_i16(&f, &mut back);
        assert_eq!(back, [i16::MIN, -1, 0, 1, i16::MAX]);
        back.clear();
        f32_to_i16(&[2.0, -2.0], &mut back);
        assert_eq!(back, [i16::MAX, i16::MIN]);
    }

    #[test]
    fn mixing() {
        let mut mono = Vec::new();
        downmix(&[1.0, 0.0, 0.5, 0.5], 2, &mut mono);
        assert_eq!(mono, [0.5, 0.5]);
        let mut stereo = Vec::new();
        upmix(&[0.25, -0.25], 2, &mut stereo);
        assert_eq!(stereo, [0.25, 0.25, -0.25, -0.25]);
    }
}
