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
    pub(crate) fn set_audio_out(&mut self, out: AudioOut) {
        self.audio_out = out;
    }

    /// The audio for the media track since the last call (always empty with
    /// [`AudioOut::Events`]).
    pub(crate) fn take_track(&mut self) -> Vec<TrackAudio> {
        std::mem::take(&mut self.track)
    }

    /// Holds `output_audio_buffer.stopped` back until [`Engine::track_drained`] (default:
    /// sent after `response.done`, as if the track played at once).
    pub(crate) fn defer_stops(&mut self) {
        self.defer_stops = true;
    }

    /// Whether a `stopped` waits for the track to drain.
    pub(crate) fn awaits_drain(&self) -> bool {
        !self.pending_stops.is_empty()
    }

    /// The track has carried everything it was given: the finished responses' buffers
    /// have played out.
    pub(crate) fn track_drained(&mut self) {
        for response_id in std::mem::take(&mut self.pending_stops) {
            self.emit(
                "output_audio_buffer.stopped",
                json!({"response_id": response_id}),
            );
        }
    }

    /// The items whose audio on the track was cut (a VAD interruption, or
    /// `output_audio_buffer.clear`) since the last call: the connection stops sending
    /// their audio and truncates them with [`Engine::truncate_sent`].
    pub(crate) fn take_cuts(&mut self) -> Vec<String> {
        std::mem::take(&mut self.cuts)
    }

    /// Truncates a cut item at the audio the track had carried of it (the server cannot
    /// know what was played, only what it sent), as `conversation.item.truncate` would:
    /// the transcript goes and `conversation.item.truncated` tells the client.
    pub(crate) fn truncate_sent(&mut self, item_id: &str, sent_ms: u64) {
        let Some(index) = self.find(item_id) else {
            return;
        };
        let stored = &self.items[index];
        let live = self
            .responses
            .iter()
            .filter_map(|r| r.open.as_ref())
            .find(|open| open.id == item_id)
            .map_or(stored.audio.len(), |open| open.audio.len());
        let rate = u64::from(super::sane_rate(stored.rate));
        let duration_ms = (live as u64).saturating_mul(1000) / rate;
        self.item_truncate(item_id, 0, sent_ms.min(duration_ms), None);
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
        if self.audio_out == AudioOut::Track {
            self.track_item = Some(item_id.clone());
            self.track_response = Some(response_id.clone());
        }
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
            if let Some(item) = self.track_item.take() {
                self.cuts.push(item);
            }
            "output_audio_buffer.cleared"
        } else {
            // Played out: nothing of it is left to cut.
            self.track_item = None;
            if self.defer_stops {
                // The connection says when the track has carried it all.
                self.pending_stops.push(response_id.to_owned());
                return;
            }
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
        // A buffer cleared before it played out does not also stop.
        self.pending_stops.clear();
        if let Some(item) = self.track_item.take() {
            self.cuts.push(item);
        }
        // The buffer belongs to the response speaking, else to the last one that spoke; a
        // session that never spoke has nothing to clear (and no id to name).
        let response_id = self
            .responses
            .iter()
            .find(|r| r.in_conversation)
            .map(|r| r.id.clone())
            .or_else(|| self.track_response.clone());
        if let Some(response_id) = response_id {
            self.emit(
                "output_audio_buffer.cleared",
                json!({"response_id": response_id}),
            );
        }
    }
}
