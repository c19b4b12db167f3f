//! Server VAD simulated on the PCM energy, in audio time (so it works whether appends are
//! paced or not): 10 ms frames, speech when a frame's RMS is above a level set by
//! `threshold`.

/// Consecutive speech frames that confirm a start (30 ms), so clicks are ignored.
const CONFIRM_FRAMES: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct VadSettings {
    pub(crate) threshold: f64,
    pub(crate) prefix_padding_ms: u64,
    pub(crate) silence_duration_ms: u64,
    /// Sample rate of the input (24 000 for PCM, 8 000 for G.711): frames are 10 ms.
    pub(crate) rate: u32,
}

/// What the VAD saw in the audio just fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VadEvent {
    /// Speech began at this sample of the session's input timeline.
    Started { speech_start: u64 },
    /// Speech ended at this sample (the first silent one); the silence rule has elapsed.
    Stopped { speech_end: u64 },
}

#[derive(Debug, Default)]
pub(crate) struct Vad {
    /// Samples not yet making a whole frame.
    pending: Vec<i16>,
    /// Timeline position of `pending[0]`.
    position: u64,
    speaking: bool,
    run_start: Option<u64>,
    run_frames: usize,
    silence_start: Option<u64>,
}

impl Vad {
    /// Level (RMS, full scale = 1.0) above which a frame is speech: threshold 0.5 gives
    /// −35 dBFS, 0 gives −60, 1 gives −10.
    fn level(threshold: f64) -> f64 {
        let db = -60.0 + 50.0 * threshold.clamp(0.0, 1.0);
        10f64.powf(db / 20.0)
    }

    /// Whether speech is going on (started and not yet stopped).
    pub(crate) fn speaking(&self) -> bool {
        self.speaking
    }

    /// Starts over at `position` (after a commit or clear, the timeline goes on).
    pub(crate) fn reset(&mut self, position: u64) {
        *self = Self {
            position,
            ..Self::default()
        };
    }

    pub(crate) fn feed(&mut self, samples: &[i16], settings: VadSettings, out: &mut Vec<VadEvent>) {
        self.pending.extend_from_slice(samples);
        let level = Self::level(settings.threshold);
        let frame_len = (settings.rate / 100).max(1) as usize;
        let silence_frames = (settings.silence_duration_ms as usize).div_ceil(10).max(1);
        let mut consumed = 0;
        while self.pending.len() - consumed >= frame_len {
            let frame = &self.pending[consumed..consumed + frame_len];
            let energy: f64 = frame
                .iter()
                .map(|&s| (f64::from(s) / 32768.0).powi(2))
                .sum::<f64>()
                / frame_len as f64;
            let loud = energy.sqrt() > level;
            let at = self.position + consumed as u64;
            consumed += frame_len;
            if !self.speaking {
                if loud {
                    let start = *self.run_start.get_or_insert(at);
                    self.run_frames += 1;
                    if self.run_frames >= CONFIRM_FRAMES {
                        self.speaking = true;
                        self.silence_start = None;
                        out.push(VadEvent::Started {
                            speech_start: start,
                        });
                    }
                } else {
                    self.run_start = None;
                    self.run_frames = 0;
                }
            } else if loud {
                self.silence_start = None;
            } else {
                let silence_start = *self.silence_start.get_or_insert(at);
                let silent_frames = ((at - silence_start) as usize) / frame_len + 1;
                if silent_frames >= silence_frames {
                    self.speaking = false;
                    self.run_start = None;
                    self.run_frames = 0;
                    self.silence_start = None;
                    out.push(VadEvent::Stopped {
                        speech_end: silence_start,
                    });
                }
            }
        }
        self.pending.drain(..consumed);
        self.position += consumed as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: VadSettings = VadSettings {
        threshold: 0.5,
        prefix_padding_ms: 300,
        silence_duration_ms: 500,
        rate: 24_000,
    };

    #[test]
    fn finds_a_burst_in_silence_to_the_frame() {
        let mut signal = vec![0_i16; 24_000];
        signal.extend((0..36_000).map(|i| ((i as f64 * 0.05).sin() * 8000.0) as i16));
        signal.extend(vec![0_i16; 24_000]);
        let mut vad = Vad::default();
        let mut events = Vec::new();
        // Fed in odd-sized pieces, as appends arrive.
        for chunk in signal.chunks(1_000) {
            vad.feed(chunk, SETTINGS, &mut events);
        }
        assert_eq!(
            events,
            [
                VadEvent::Started {
                    speech_start: 24_000
                },
                VadEvent::Stopped { speech_end: 60_000 }
            ]
        );
    }

    #[test]
    fn short_clicks_and_short_pauses_do_not_count() {
        let mut signal = vec![0_i16; 4_800];
        signal.extend(vec![20_000_i16; 240]); // a 10 ms click
        signal.extend(vec![0_i16; 4_800]);
        let loud: Vec<i16> = (0..4_800)
            .map(|i| if i % 2 == 0 { 9000 } else { -9000 })
            .collect();
        signal.extend(&loud);
        signal.extend(vec![0_i16; 2_400]); // a 100 ms pause, shorter than the 500 ms rule
        signal.extend(&loud);
        let mut vad = Vad::default();
        let mut events = Vec::new();
        vad.feed(&signal, SETTINGS, &mut events);
        assert_eq!(
            events,
            [VadEvent::Started {
                speech_start: 9_840
            }]
        );
    }
}
