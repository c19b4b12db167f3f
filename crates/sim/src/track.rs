//! The server's outgoing audio track: the engine's response audio ([`TrackAudio`]) handed
//! to a media track in 20 ms chunks, as fast as the track takes them (the transport paces
//! the track at real time), counting what each item has had sent so that a cut can
//! truncate it there.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures_channel::mpsc;
use futures_util::SinkExt;
use reelthyme_transport::AudioChunk;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::engine::TrackAudio;
use crate::state::lock;

/// One chunk on the track: 20 ms, what one Opus packet carries.
const CHUNK_MS: usize = 20;

/// What the sending task shares with the session.
#[derive(Debug, Default)]
struct State {
    queue: VecDeque<TrackAudio>,
    /// The item being sent, its samples sent so far and their rate.
    sent: Option<(String, usize, u32)>,
}

/// The sending end of a session's audio track.
#[derive(Debug)]
pub(crate) struct Track {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
    /// Whether everything pushed has been handed to the track.
    idle: watch::Receiver<bool>,
    idle_tx: Arc<watch::Sender<bool>>,
    task: JoinHandle<()>,
}

impl Track {
    /// Starts sending to `out` (a media track's sender).
    pub(crate) fn start(out: mpsc::Sender<AudioChunk>) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let wake = Arc::new(Notify::new());
        let (idle_tx, idle) = watch::channel(true);
        let idle_tx = Arc::new(idle_tx);
        let task = tokio::spawn(send_loop(state.clone(), wake.clone(), idle_tx.clone(), out));
        Self {
            state,
            wake,
            idle,
            idle_tx,
            task,
        }
    }

    /// Resolves once everything pushed so far has been handed to the track (at once when
    /// it has; never if the track ended with audio left).
    pub(crate) async fn drained(&mut self) {
        if self.idle.wait_for(|idle| *idle).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Queues response audio (its amount is bounded by the engine's response caps).
    pub(crate) fn push(&self, audio: Vec<TrackAudio>) {
        if audio.is_empty() {
            return;
        }
        {
            let mut state = lock(&self.state);
            state.queue.extend(audio);
            // Under the lock, as the sending task sets it: the flag never says idle with
            // audio queued.
            let _ = self.idle_tx.send(false);
        }
        self.wake.notify_one();
    }

    /// Stops sending `item_id`'s audio (and whatever is queued after it: the output buffer
    /// is cleared), and says how much of it the track carried, in milliseconds.
    pub(crate) fn cut(&self, item_id: &str) -> u64 {
        let mut state = lock(&self.state);
        state.queue.clear();
        match state.sent.take() {
            Some((item, samples, rate)) if item == item_id && rate > 0 => {
                (samples as u64).saturating_mul(1000) / u64::from(rate)
            }
            _ => 0,
        }
    }
}

impl Drop for Track {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn send_loop(
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
    idle: Arc<watch::Sender<bool>>,
    mut out: mpsc::Sender<AudioChunk>,
) {
    loop {
        let chunk = {
            let mut state = lock(&state);
            let chunk = next_chunk(&mut state);
            if chunk.is_none() {
                // Under the lock: a push cannot slip between the check and the flag.
                let _ = idle.send(true);
            }
            chunk
        };
        let Some(chunk) = chunk else {
            wake.notified().await;
            continue;
        };
        if out.send(chunk).await.is_err() {
            tracing::debug!("the outgoing audio track ended");
            return;
        }
    }
}

/// Takes the next 20 ms off the queue, counting it as sent.
fn next_chunk(state: &mut State) -> Option<AudioChunk> {
    loop {
        let front = state.queue.front_mut()?;
        if front.samples.is_empty() {
            state.queue.pop_front();
            continue;
        }
        let rate = front.rate.max(1);
        let take = (rate as usize * CHUNK_MS / 1000).clamp(1, front.samples.len());
        let samples: Vec<i16> = front.samples.drain(..take).collect();
        let item = front.item_id.clone();
        match &mut state.sent {
            Some((current, sent, _)) if *current == item => *sent += samples.len(),
            _ => state.sent = Some((item, samples.len(), rate)),
        }
        return Some(AudioChunk::new(rate, samples));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(item: &str, samples: usize) -> TrackAudio {
        TrackAudio {
            response_id: "resp_1".into(),
            item_id: item.into(),
            rate: 24_000,
            samples: vec![1; samples],
        }
    }

    #[test]
    fn chunks_are_20_ms_and_counted_per_item() {
        let mut state = State::default();
        state.queue.push_back(audio("item_a", 1_000));
        state.queue.push_back(audio("item_b", 480));
        let sizes: Vec<usize> = std::iter::from_fn(|| next_chunk(&mut state))
            .map(|c| c.samples.len())
            .collect();
        assert_eq!(sizes, [480, 480, 40, 480]);
        assert_eq!(state.sent, Some(("item_b".into(), 480, 24_000)));
    }

    #[tokio::test]
    async fn a_cut_clears_the_queue_and_says_what_was_sent() {
        let (tx, mut rx) = mpsc::channel(1);
        let track = Track::start(tx);
        track.push(vec![audio("item_a", 24_000)]);
        use futures_util::StreamExt;
        let mut heard = 0;
        for _ in 0..5 {
            heard += rx.next().await.unwrap().samples.len();
        }
        assert_eq!(heard, 2_400);
        // The channel holds one more chunk and the task one in hand: at most 3 chunks more
        // than was heard.
        let sent = track.cut("item_a");
        assert!((100..=160).contains(&sent), "{sent}");
        assert_eq!(track.cut("item_a"), 0);
        let mut after = 0;
        while let Ok(chunk) = rx.try_recv() {
            after += chunk.samples.len();
        }
        assert!(after <= 960, "{after}");
    }
}
