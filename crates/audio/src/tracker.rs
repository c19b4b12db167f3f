//! Exactly how much of each assistant item the user has heard: the player reports the
//! frames the device actually consumed, and the tracker turns them into the `audio_end_ms`
//! that `conversation.item.truncate` needs. Wall-clock estimates overshoot (they count
//! audio still sitting in buffers); frame counts do not.

use std::collections::VecDeque;

/// The truncation barge-in should send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// The assistant item that was playing.
    pub item_id: String,
    /// Milliseconds of its audio that were played, from the item's start, clamped to the
    /// audio received.
    pub audio_end_ms: u64,
}

#[derive(Debug)]
struct Segment {
    item_id: String,
    /// Device frames queued for this item.
    queued: u64,
    /// Device frames of it the device consumed.
    played: u64,
    /// Milliseconds of source audio received for it.
    received_ms: f64,
}

/// Frames queued and played, per assistant item, in playback order.
#[derive(Debug)]
pub struct PlaybackTracker {
    rate: u32,
    segments: VecDeque<Segment>,
    /// Frames consumed that belonged to no item (silence the device played while idle).
    idle: u64,
}

impl PlaybackTracker {
    /// A tracker for a device running at `rate` frames per second.
    pub fn new(rate: u32) -> Self {
        Self {
            rate: rate.max(1),
            segments: VecDeque::new(),
            idle: 0,
        }
    }

    /// `frames` device frames of `item_id`'s audio were queued, carrying `source_ms` of
    /// the audio the server sent (the two differ by resampling edges only).
    pub fn queued(&mut self, item_id: &str, frames: u64, source_ms: f64) {
        match self.segments.back_mut() {
            Some(last) if last.item_id == item_id => {
                last.queued += frames;
                last.received_ms += source_ms;
            }
            _ => self.segments.push_back(Segment {
                item_id: item_id.to_owned(),
                queued: frames,
                played: 0,
                received_ms: source_ms,
            }),
        }
    }

    /// The device consumed `frames` frames (from the audio callback).
    pub fn consumed(&mut self, mut frames: u64) {
        for segment in &mut self.segments {
            let left = segment.queued - segment.played;
            let take = left.min(frames);
            segment.played += take;
            frames -= take;
            if frames == 0 {
                return;
            }
        }
        self.idle += frames;
    }

    /// Frames queued but not yet played.
    pub fn backlog(&self) -> u64 {
        self.segments.iter().map(|s| s.queued - s.played).sum()
    }

    /// Milliseconds of `item_id` played so far.
    pub fn played_ms(&self, item_id: &str) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| s.item_id == item_id)
            .map(|s| self.ms(s))
    }

    fn ms(&self, segment: &Segment) -> u64 {
        let played = segment.played as f64 * 1000.0 / f64::from(self.rate);
        played.min(segment.received_ms).floor() as u64
    }

    /// Forgets items whose audio has been played completely and that are not the latest.
    pub fn prune(&mut self) {
        while self.segments.len() > 1 && self.segments.front().is_some_and(|s| s.played == s.queued)
        {
            self.segments.pop_front();
        }
    }

    /// Barge-in: stops tracking everything queued and says what to truncate — the item the
    /// device was in the middle of. `None` when nothing of it was played yet (a truncate at
    /// 0 ms would only erase an answer the user has not heard begin) or when playback had
    /// already drained (the user heard it all).
    pub fn interrupt(&mut self) -> Option<Truncation> {
        let playing = self
            .segments
            .iter()
            .find(|s| s.played < s.queued)
            .map(|s| Truncation {
                item_id: s.item_id.clone(),
                audio_end_ms: self.ms(s),
            });
        self.segments.clear();
        playing.filter(|t| t.audio_end_ms > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn played_frames_become_milliseconds_per_item() {
        let mut tracker = PlaybackTracker::new(48_000);
        tracker.queued("item_a", 48_000, 1000.0);
        tracker.queued("item_b", 24_000, 500.0);
        tracker.consumed(60_000);
        assert_eq!(tracker.played_ms("item_a"), Some(1000));
        assert_eq!(tracker.played_ms("item_b"), Some(250));
        assert_eq!(tracker.backlog(), 12_000);
        assert_eq!(
            tracker.interrupt(),
            Some(Truncation {
                item_id: "item_b".into(),
                audio_end_ms: 250
            })
        );
        assert_eq!(tracker.backlog(), 0);
    }

    #[test]
    fn nothing_played_or_everything_played_means_no_truncation() {
        let mut tracker = PlaybackTracker::new(24_000);
        tracker.queued("item_a", 2_400, 100.0);
        assert_eq!(tracker.interrupt(), None, "nothing played yet");
        tracker.queued("item_a", 2_400, 100.0);
        tracker.consumed(10_000);
        assert_eq!(tracker.interrupt(), None, "playback had drained");
    }

    #[test]
    fn truncation_is_clamped_to_the_audio_received() {
        // Resampling edges can queue a frame or two more than the source carried.
        let mut tracker = PlaybackTracker::new(48_000);
        tracker.queued("item_a", 48_010, 1000.0);
        tracker.consumed(48_005);
        assert_eq!(
            tracker.interrupt(),
            Some(Truncation {
                item_id: "item_a".into(),
                audio_end_ms: 1000
            })
        );
    }

    #[test]
    fn chunks_of_the_same_item_accumulate_and_prune_keeps_the_latest() {
        let mut tracker = PlaybackTracker::new(1_000);
        tracker.queued("a", 100, 100.0);
        tracker.queued("a", 100, 100.0);
        tracker.queued("b", 100, 100.0);
        tracker.consumed(250);
        tracker.prune();
        assert_eq!(tracker.played_ms("a"), None);
        assert_eq!(tracker.played_ms("b"), Some(50));
    }
}
