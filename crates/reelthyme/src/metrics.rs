//! Latency per turn: end of user speech → `response.created` → first delta → first audio
//! actually *played* (from the frames the player's device consumed, not from when deltas
//! arrived), the response's duration, the barge-in reaction (speech heard → playback
//! silent) and the tokens used.
//!
//! Times are the transport's arrival stamps ([`LayerContext::received_at`](crate::LayerContext::received_at))
//! where the layer sees the event; first audio played is found by asking the player every
//! 2 ms while an answer's first audio is due, and dated back by what the device has played
//! of it since (so a late poll does not inflate it), never before its first delta. Each
//! finished turn is published on the [`Metrics`] handle (a broadcast of every turn and a
//! watch of the latest) and logged at INFO with target `reelthyme::metrics`, its numbers as
//! `tracing` fields.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;
use std::time::{Duration, Instant};

use reelthyme_schema::{ClientEvent, ResponseStatus, ServerEvent, Usage};
use tokio::sync::{broadcast, watch};

/// How often the player is asked whether an answer's first audio has been played.
const PROBE: Duration = Duration::from_millis(2);

/// How long after `response.done` a turn waits for its audio to be played before it is
/// published without it.
const PLAYBACK_WAIT: Duration = Duration::from_secs(30);

/// Turns measured at once at most (the oldest is published as it is beyond it).
const MAX_OPEN: usize = 32;

/// What a turn started from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TurnStart {
    /// `input_audio_buffer.speech_stopped`: the server heard the user stop.
    SpeechStopped,
    /// `input_audio_buffer.commit` sent, or `input_audio_buffer.committed` (push to talk).
    Commit,
    /// `response.create` sent (a text turn, a tool follow-up).
    Request,
    /// Nothing before `response.created` (durations from it are then from zero).
    ResponseCreated,
}

/// One turn's numbers. Durations are from the turn's start (`start`), except
/// `response_duration` and `barge_in_reaction`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TurnMetrics {
    /// The response measured.
    pub response_id: String,
    /// What the turn started from.
    pub start: TurnStart,
    /// When it started.
    pub started_at: Instant,
    /// Start → `response.created`.
    pub response_created: Option<Duration>,
    /// Start → the first output delta (audio, transcript or text).
    pub first_delta: Option<Duration>,
    /// Start → the first audio the device played: time to first audio. `None` without a
    /// player, or when none of it was played.
    pub time_to_first_audio: Option<Duration>,
    /// `response.created` → `response.done`.
    pub response_duration: Option<Duration>,
    /// `speech_started` heard while this answer played → playback silent.
    pub barge_in_reaction: Option<Duration>,
    /// The final status.
    pub status: Option<ResponseStatus>,
    /// The tokens `response.done` reported.
    pub usage: Option<Usage>,
}

/// Reads the metrics from any task.
#[derive(Debug, Clone)]
pub struct Metrics {
    turns: broadcast::Sender<Arc<TurnMetrics>>,
    latest: watch::Receiver<Option<Arc<TurnMetrics>>>,
    current: watch::Receiver<Option<Arc<TurnMetrics>>>,
}

impl Metrics {
    /// A handle and the layer that measures.
    pub fn new() -> (Self, MetricsLayer) {
        MetricsLayer::new()
    }

    /// Every turn finished from now on (a receiver that lags more than 64 turns is told
    /// how many it missed).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<TurnMetrics>> {
        self.turns.subscribe()
    }

    /// The latest finished turn.
    pub fn latest(&self) -> Option<Arc<TurnMetrics>> {
        self.latest.borrow().clone()
    }

    /// A watch of the latest finished turn.
    pub fn watch(&self) -> watch::Receiver<Option<Arc<TurnMetrics>>> {
        self.latest.clone()
    }

    /// The turn being measured, as far as it got (updated when its response starts and
    /// when its first audio is played): what a screen shows before the turn is over.
    pub fn current(&self) -> Option<Arc<TurnMetrics>> {
        self.current.borrow().clone()
    }
}

/// A turn being measured.
#[derive(Debug)]
#[cfg_attr(not(feature = "audio"), allow(dead_code))]
struct Turn {
    metrics: TurnMetrics,
    created_at: Option<Instant>,
    first_audio_delta: Option<Instant>,
    /// The last probe that found none of its audio played.
    unplayed_at: Option<Instant>,
    done_at: Option<Instant>,
    played: bool,
    barge_started: Option<Instant>,
    /// Playback drained after it (the turn's audio is over).
    drain_seen: bool,
    #[cfg(feature = "audio")]
    drained: Option<reelthyme_audio::Drained>,
}

impl Turn {
    fn since(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.metrics.started_at)
    }
}

/// The layer of [`Metrics`]. It measures wherever it sits; after the audio layer (as
/// [`AudioEvents::with_layer`](crate::AudioEvents::with_layer) puts it) it does not see
/// audio deltas and dates the first one when the conversation shows it (within the same
/// poll, without the frame's arrival stamp).
pub struct MetricsLayer {
    turns: broadcast::Sender<Arc<TurnMetrics>>,
    latest: watch::Sender<Option<Arc<TurnMetrics>>>,
    current: watch::Sender<Option<Arc<TurnMetrics>>>,
    /// The start of the next turn, once the user has finished.
    pending_start: Option<(TurnStart, Instant)>,
    open: VecDeque<Turn>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    #[cfg(feature = "audio")]
    player: Option<Arc<reelthyme_audio::Player>>,
}

impl std::fmt::Debug for MetricsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsLayer")
            .field("open", &self.open.len())
            .finish_non_exhaustive()
    }
}

impl MetricsLayer {
    fn new() -> (Metrics, Self) {
        let (turns, _) = broadcast::channel(64);
        let (latest, latest_rx) = watch::channel(None);
        let (current, current_rx) = watch::channel(None);
        let handle = Metrics {
            turns: turns.clone(),
            latest: latest_rx,
            current: current_rx,
        };
        let layer = Self {
            turns,
            latest,
            current,
            pending_start: None,
            open: VecDeque::new(),
            timer: None,
            #[cfg(feature = "audio")]
            player: None,
        };
        (handle, layer)
    }

    /// Measures first audio played, and barge-in reactions, on the player `audio`
    /// controls (default: no player; those stay `None`).
    #[cfg(feature = "audio")]
    #[must_use]
    pub fn playback(mut self, audio: &crate::AudioControl) -> Self {
        self.player = Some(audio.player().clone());
        self
    }

    fn turn(&mut self, response_id: &str) -> Option<&mut Turn> {
        self.open
            .iter_mut()
            .find(|t| t.metrics.response_id == response_id)
    }

    fn has_player(&self) -> bool {
        #[cfg(feature = "audio")]
        {
            self.player.is_some()
        }
        #[cfg(not(feature = "audio"))]
        {
            false
        }
    }

    fn publish(&self, turn: Turn) {
        let m = turn.metrics;
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
        tracing::info!(
            target: "reelthyme::metrics",
            response_id = %m.response_id,
            start = ?m.start,
            response_created_ms = ms(m.response_created),
            first_delta_ms = ms(m.first_delta),
            time_to_first_audio_ms = ms(m.time_to_first_audio),
            response_duration_ms = ms(m.response_duration),
            barge_in_reaction_ms = ms(m.barge_in_reaction),
            input_tokens = m.usage.as_ref().and_then(|u| u.input_tokens),
            output_tokens = m.usage.as_ref().and_then(|u| u.output_tokens),
            "turn"
        );
        let m = Arc::new(m);
        // Nobody subscribed is fine.
        let _ = self.turns.send(m.clone());
        self.latest.send_replace(Some(m));
    }

    fn first_delta(&mut self, response_id: &str, at: Instant, audio: bool) {
        if let Some(turn) = self.turn(response_id) {
            if turn.metrics.first_delta.is_none() {
                turn.metrics.first_delta = Some(turn.since(at));
            }
            if audio && turn.first_audio_delta.is_none() {
                turn.first_audio_delta = Some(at);
            }
        }
    }

    /// Asks the player about every turn waiting for its first audio; publishes finished
    /// turns. Returns whether a turn still waits for first audio (probe again).
    fn probe(&mut self, task: &mut Context<'_>, cx: &crate::LayerContext<'_>) -> bool {
        let now = Instant::now();
        let has_player = self.has_player();
        // The first audio delta, as the conversation shows it, for a layer after the
        // audio layer.
        for turn in &mut self.open {
            if turn.first_audio_delta.is_none()
                && cx
                    .conversation()
                    .audio_parts(&turn.metrics.response_id)
                    .next()
                    .is_some()
            {
                turn.first_audio_delta = Some(now);
                if turn.metrics.first_delta.is_none() {
                    turn.metrics.first_delta = Some(turn.since(now));
                }
            }
        }
        #[cfg(feature = "audio")]
        let waiting = self.probe_player(task, cx, now);
        #[cfg(not(feature = "audio"))]
        let waiting = {
            let _ = task;
            false
        };
        // Finished: done, and its playback over (or nothing to wait for).
        let mut index = 0;
        while index < self.open.len() {
            let turn = &self.open[index];
            let finished = turn.done_at.is_some_and(|done| {
                !has_player
                    || turn.first_audio_delta.is_none()
                    || turn.drain_seen
                    || now.saturating_duration_since(done) > PLAYBACK_WAIT
            });
            if finished && let Some(turn) = self.open.remove(index) {
                self.publish(turn);
            } else {
                index += 1;
            }
        }
        waiting
    }

    /// Asks the player whether each turn's first audio was played, and whether playback
    /// drained; returns whether a turn still waits for its first audio.
    #[cfg(feature = "audio")]
    fn probe_player(
        &mut self,
        task: &mut Context<'_>,
        cx: &crate::LayerContext<'_>,
        now: Instant,
    ) -> bool {
        let mut waiting = false;
        if let Some(player) = &self.player {
            for turn in &mut self.open {
                if turn.played || turn.first_audio_delta.is_none() {
                    continue;
                }
                let played = cx
                    .conversation()
                    .audio_parts(&turn.metrics.response_id)
                    .filter_map(|(item, _, _)| player.played_ms(item.id()))
                    .max()
                    .unwrap_or(0);
                if played > 0 {
                    turn.played = true;
                    // Played between the last probe that found nothing and now: dated
                    // back by what was played since (a late probe does not inflate it),
                    // never before that probe nor before the audio arrived.
                    let floor = turn
                        .first_audio_delta
                        .into_iter()
                        .chain(turn.unplayed_at)
                        .max()
                        .unwrap_or(now);
                    let at = now
                        .checked_sub(Duration::from_millis(played))
                        .map_or(floor, |at| at.max(floor));
                    turn.metrics.time_to_first_audio = Some(turn.since(at));
                    self.current
                        .send_replace(Some(Arc::new(turn.metrics.clone())));
                } else if turn.barge_started.is_none() {
                    turn.unplayed_at = Some(now);
                    waiting = true;
                }
            }
            for turn in &mut self.open {
                // Once done, the turn waits for its audio to be over (a barge-in may come).
                if turn.done_at.is_some()
                    && turn.first_audio_delta.is_some()
                    && turn.drained.is_none()
                    && !turn.drain_seen
                {
                    turn.drained = Some(player.drained());
                }
                if let Some(drained) = &mut turn.drained
                    && Pin::new(drained).poll(task).is_ready()
                {
                    turn.drained = None;
                    if let Some(started) = turn.barge_started {
                        turn.metrics.barge_in_reaction =
                            Some(now.saturating_duration_since(started));
                    }
                    // Drained: whatever was not played by now will not be.
                    turn.played = true;
                    turn.drain_seen = true;
                }
            }
        }
        waiting
    }
}

impl crate::Layer for MetricsLayer {
    fn on_event(
        &mut self,
        event: ServerEvent,
        cx: &mut crate::LayerContext<'_>,
    ) -> Option<ServerEvent> {
        let at = cx.received_at().unwrap_or_else(Instant::now);
        match &event {
            ServerEvent::InputAudioBufferSpeechStopped(_) => {
                self.pending_start = Some((TurnStart::SpeechStopped, at));
            }
            ServerEvent::InputAudioBufferCommitted(_) if self.pending_start.is_none() => {
                self.pending_start = Some((TurnStart::Commit, at));
            }
            ServerEvent::InputAudioBufferSpeechStarted(_) => {
                self.pending_start = None;
                #[cfg(feature = "audio")]
                if let Some(player) = &self.player
                    && player.backlog_ms() > 0
                {
                    // The answer playing is the oldest one with audio not yet over.
                    let drained = player.drained();
                    if let Some(turn) = self
                        .open
                        .iter_mut()
                        .find(|t| t.first_audio_delta.is_some() && t.barge_started.is_none())
                    {
                        turn.barge_started = Some(at);
                        turn.drained = Some(drained);
                    }
                }
            }
            ServerEvent::ResponseCreated(created) => {
                if let Some(id) = created.response.id.as_deref() {
                    let out_of_band = cx
                        .conversation()
                        .response(id)
                        .is_some_and(|r| r.out_of_band());
                    let (start, started_at) = if out_of_band {
                        (TurnStart::ResponseCreated, at)
                    } else {
                        self.pending_start
                            .take()
                            .unwrap_or((TurnStart::ResponseCreated, at))
                    };
                    if self.open.len() >= MAX_OPEN
                        && let Some(oldest) = self.open.pop_front()
                    {
                        self.publish(oldest);
                    }
                    self.open.push_back(Turn {
                        metrics: TurnMetrics {
                            response_id: id.to_owned(),
                            start,
                            started_at,
                            response_created: Some(at.saturating_duration_since(started_at)),
                            first_delta: None,
                            time_to_first_audio: None,
                            response_duration: None,
                            barge_in_reaction: None,
                            status: None,
                            usage: None,
                        },
                        created_at: Some(at),
                        first_audio_delta: None,
                        unplayed_at: None,
                        done_at: None,
                        played: false,
                        barge_started: None,
                        drain_seen: false,
                        #[cfg(feature = "audio")]
                        drained: None,
                    });
                    if let Some(turn) = self.open.back() {
                        self.current
                            .send_replace(Some(Arc::new(turn.metrics.clone())));
                    }
                }
            }
            ServerEvent::ResponseOutputAudioDelta(delta) => {
                self.first_delta(&delta.response_id, at, true);
            }
            ServerEvent::ResponseOutputTextDelta(delta)
            | ServerEvent::ResponseOutputAudioTranscriptDelta(delta) => {
                self.first_delta(&delta.response_id, at, false);
            }
            ServerEvent::ResponseDone(done) => {
                if let Some(id) = done.response.id.as_deref()
                    && let Some(turn) = self.turn(id)
                {
                    turn.done_at = Some(at);
                    turn.metrics.response_duration =
                        turn.created_at.map(|c| at.saturating_duration_since(c));
                    turn.metrics.status.clone_from(&done.response.status);
                    turn.metrics.usage = done.response.usage.clone().flatten();
                }
            }
            _ => {}
        }
        Some(event)
    }

    fn on_sent(&mut self, event: &ClientEvent, _cx: &mut crate::LayerContext<'_>) {
        match event {
            ClientEvent::InputAudioBufferCommit(_) => {
                self.pending_start = Some((TurnStart::Commit, Instant::now()));
            }
            ClientEvent::ResponseCreate(_) if self.pending_start.is_none() => {
                self.pending_start = Some((TurnStart::Request, Instant::now()));
            }
            _ => {}
        }
    }

    fn poll(&mut self, task: &mut Context<'_>, cx: &mut crate::LayerContext<'_>) {
        let waiting = self.probe(task, cx);
        let done_waiting = self.open.iter().any(|t| t.done_at.is_some());
        if waiting || done_waiting {
            let next = tokio::time::Instant::now() + if waiting { PROBE } else { PLAYBACK_WAIT };
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(next)));
            if timer.is_elapsed() || timer.deadline() > next {
                timer.as_mut().reset(next);
            }
            let _ = timer.as_mut().poll(task);
        } else {
            self.timer = None;
        }
    }

    fn on_connected(&mut self, _cx: &mut crate::LayerContext<'_>) {
        // The old connection's turns end here, as they are.
        while let Some(turn) = self.open.pop_front() {
            self.publish(turn);
        }
        self.pending_start = None;
    }
}
