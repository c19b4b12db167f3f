//! Where a response's audio goes: into `response.output_audio.delta` events (WebSocket), or
//! to a media track (WebRTC), where the server owns the output buffer and says when it
//! starts, stops and is cleared (`output_audio_buffer.*`, PROTOCOL.md §2.3).

use serde_json::json;

use super::{Engine, codec};

/// The sink a session's response audio goes to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum AudioOut {
    /// `response.output_audio.delta` events, base64 in the session's output format.
    #[default]
    Events,
    /// PCM samples for a media track ([`Engine::take_track`]), with
    /// `output_audio_buffer.started` / `stopped` / `cleared` events.
    // The WebRTC path (the next issue) builds sessions with it; until then only tests do.
    #[cfg_attr(not(test), allow(dead_code))]
    Track,
}

/// A response's audio for the media track, at the output format's rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrackAudio {
    pub(crate) response_id: String,
    pub(crate) item_id: String,
    pub(crate) rate: u32,
    pub(crate) samples: Vec<i16>,
}

impl Engine {
    /// Sends response audio to `out` (default [`AudioOut::Events`]).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn set_audio_out(&mut self, out: AudioOut) {
        self.audio_out = out;
    }

    /// The audio for the media track since the last call (always empty with
    /// [`AudioOut::Events`]).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn take_track(&mut self) -> Vec<TrackAudio> {
        std::mem::take(&mut self.track)
    }

    /// Puts out one chunk of response `index`'s audio, of item `item_id` at `output_index`.
    pub(super) fn speak(
        &mut self,
        index: usize,
        item_id: String,
        output_index: usize,
        samples: Vec<i16>,
    ) {
        let Some(active) = self.responses.get_mut(index) else {
            return;
        };
        let first = active.audio_samples == 0;
        active.audio_samples += samples.len();
        let response_id = active.id.clone();
        let format = active.output_format.clone();
        self.audio_produced = true;
        match self.audio_out {
            AudioOut::Events => {
                let delta = codec::encode(&format, &samples);
                self.emit_delta(
                    "response.output_audio.delta",
                    json!({"response_id": response_id, "item_id": item_id, "output_index": output_index,
                        "content_index": 0, "delta": delta.as_str()}),
                );
            }
            AudioOut::Track => {
                if first {
                    self.emit(
                        "output_audio_buffer.started",
                        json!({"response_id": response_id}),
                    );
                }
                self.track.push(TrackAudio {
                    response_id,
                    item_id,
                    rate: reelthyme_audio::codec::rate_of(Some(&format)),
                    samples,
                });
            }
        }
    }

    /// After `response.done` of a response that spoke `samples`: on a track, the buffer has
    /// played out (`stopped`), or was cut by an interruption (`cleared`).
    pub(super) fn audio_finished(&mut self, response_id: &str, samples: usize, interrupted: bool) {
        if self.audio_out != AudioOut::Track || samples == 0 {
            return;
        }
        let kind = if interrupted {
            "output_audio_buffer.cleared"
        } else {
            "output_audio_buffer.stopped"
        };
        self.emit(kind, json!({"response_id": response_id}));
    }

    /// `output_audio_buffer.clear`: only a track has a server-side buffer to clear.
    pub(super) fn output_buffer_clear(&mut self, event_id: Option<&str>) {
        if self.audio_out != AudioOut::Track {
            return self.error(
                Some("invalid_value"),
                "output_audio_buffer.clear is only supported for WebRTC and SIP sessions.",
                Some("type"),
                event_id,
            );
        }
        // The track holds nothing back in the simulator: what was handed to it is cleared.
        self.track.clear();
        let response_id = self
            .responses
            .iter()
            .find(|r| r.in_conversation)
            .map(|r| r.id.clone());
        self.emit(
            "output_audio_buffer.cleared",
            json!({"response_id": response_id}),
        );
    }
}
