//! One simulated session over any transport ([`EventIo`]): the checks after the 101, the
//! engine and its clock, expiry, fault injection, recording, the beta dialect, and
//! backpressure — a reader/engine task here and a writer task ([`Writer`]), so a client that
//! sends without reading cannot deadlock it — then a close whose every wait is bounded.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reelthyme_transport::{AudioChunk, Media, MediaReceiver};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tokio::time::Instant;

use crate::admission::{Target, admit};
use crate::config::{FaultAction, Recorded};
use crate::engine::{AudioOut, Engine};
use crate::frames::{
    Ending, EventIo, Inbound, Outbound, RecordTo, ToWriter, Writer, WriterEnd, sleep_until,
};
use crate::handshake::Handshake;
use crate::state::{Shared, Sideband, expires_at};
use crate::track::Track;

/// The largest client message: the service's 15 MiB append (as base64) and room for its
/// JSON envelope. Larger ones get an `error` event and close 1009.
pub(crate) const MAX_MESSAGE: usize = reelthyme_schema::MAX_APPEND_BYTES + (64 << 10);
/// Server events handed to the writer and not yet written, in bytes. Bounded, so a client
/// that does not read holds the responses back (backpressure) instead of making the
/// simulator buffer them.
const WRITE_BUDGET: usize = 256 << 10;
/// Engine output waiting for the writer: past this many events, response steps wait.
const RELEASE_PAUSE: usize = 32;
/// Past this much waiting output, client frames wait too (only a client that keeps asking
/// without reading the answers gets here; the write timeout then ends it).
const READ_PAUSE_EVENTS: usize = 4096;
const READ_PAUSE_BYTES: usize = 16 << 20;
/// How long a closing session waits for its last frames and the client's close.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Server events a sideband may fall behind its call by before it is closed (1011): a slow
/// sideband neither holds the call back nor grows the simulator's memory.
const SIDEBAND_BACKLOG: usize = 1024;

/// A server event, serialized, waiting for the writer.
struct Pending {
    text: String,
    /// The event for the recorder, when there is one.
    json: Option<Value>,
}

/// Why a session ends.
enum End {
    /// Send a close (after the waiting events when `flush`), then wait briefly for the
    /// client to finish.
    Close {
        code: u16,
        reason: String,
        flush: bool,
    },
    /// The client closed: answer it.
    ClientClosed,
    /// Drop the connection now, without a close.
    Kill,
    /// Let the writer write what it has (ending with a kill), then drop the connection.
    KillAfterWrites,
    /// Stop reading and writing until the simulator shuts down, then drop the connection.
    Stalled,
    /// The client is gone.
    Gone,
}

impl End {
    fn close(code: u16, reason: impl Into<String>) -> Self {
        Self::Close {
            code,
            reason: reason.into(),
            flush: false,
        }
    }

    fn close_after_events(code: u16, reason: impl Into<String>) -> Self {
        Self::Close {
            code,
            reason: reason.into(),
            flush: true,
        }
    }
}

/// One session's loop state.
pub(crate) struct Session {
    handshake: Handshake,
    seed: u64,
    shared: Arc<Shared>,
    /// Events handed to the writer (what the `*_after` faults count).
    sent: usize,
    beta: bool,
    session_id: String,
    pending: VecDeque<Pending>,
    pending_bytes: usize,
    /// Client events of the `on_client` fault's type seen so far.
    triggers: usize,
    /// The faults this session gets (its number among the simulator's sessions decides).
    faults: crate::config::Faults,
    /// A delayed fault action and when it is due.
    delayed: Option<(Instant, FaultAction)>,
    /// Audio tracks beside the events (WebRTC): the engine's audio goes out on one, the
    /// other feeds the input buffer.
    media: Option<Media>,
    /// A session configuration to start with (a WebRTC call's `session` part).
    initial: Option<Value>,
    /// The call this session is (WebRTC): it ends with the session.
    call: Option<String>,
    /// Sideband sessions attached to this call: each gets every server event.
    sidebands: Vec<mpsc::Sender<String>>,
}

impl Session {
    pub(crate) fn new(handshake: Handshake, seed: u64, shared: Arc<Shared>) -> Self {
        // The low 56 bits of a session seed are its number (`IdAllocator`).
        let faults = shared.config.faults.for_session(seed & ((1 << 56) - 1));
        Self {
            handshake,
            seed,
            shared,
            sent: 0,
            beta: false,
            session_id: String::new(),
            pending: VecDeque::new(),
            pending_bytes: 0,
            triggers: 0,
            faults,
            delayed: None,
            media: None,
            initial: None,
            call: None,
            sidebands: Vec::new(),
        }
    }

    /// With audio tracks: response audio goes out on the track (`AudioOut::Track`) and
    /// the incoming track feeds the input buffer.
    #[cfg_attr(not(feature = "webrtc"), allow(dead_code))]
    pub(crate) fn with_media(mut self, media: Option<Media>) -> Self {
        self.media = media;
        self
    }

    /// Starting with this session configuration, over the key's (default: none).
    #[cfg_attr(not(feature = "webrtc"), allow(dead_code))]
    pub(crate) fn with_initial(mut self, session: Option<Value>) -> Self {
        self.initial = session;
        self
    }

    /// As the session of call `call_id`, which is hung up when the session ends (default:
    /// none).
    #[cfg_attr(not(feature = "webrtc"), allow(dead_code))]
    pub(crate) fn with_call(mut self, call_id: Option<String>) -> Self {
        self.call = call_id;
        self
    }

    fn record(&self, from_server: bool, json: Value) {
        if let Some(recorder) = &self.shared.config.recorder {
            recorder.push(Recorded {
                session_id: self.session_id.clone(),
                from_server,
                json,
                beta: self.beta,
            });
        }
    }

    /// Runs the session on `io` (reading) and `tx` (writing) until it ends, then finishes
    /// the transport.
    pub(crate) async fn run<I: EventIo>(mut self, mut io: I, tx: I::Tx) -> I::Output {
        let config = self.shared.config.clone();
        let target = Target::of(&self.handshake, &self.shared);
        let mut engine = Engine::new(
            config.clone(),
            self.seed,
            target.model_or_default(),
            target.transcription,
            expires_at(config.session_duration),
        );
        if let Some(secret) = &target.secret {
            engine.apply_initial(&secret.session);
        }
        if let Some(initial) = &self.initial {
            engine.apply_initial(initial);
        }
        let media = self.media.take();
        if media.is_some() {
            engine.set_audio_out(AudioOut::Track);
        }
        self.session_id = engine.session_id().to_owned();
        tracing::Span::current().record("session_id", self.session_id.as_str());
        self.beta = target.beta;
        let record = config.recorder.clone().map(|recorder| RecordTo {
            recorder,
            session_id: self.session_id.clone(),
            beta: self.beta,
        });
        let mut writer = Writer::spawn(tx, WRITE_BUDGET, config.write_timeout, record);

        let end = if let Some((code, reason)) = &self.faults.close_before_session_created {
            End::close(*code, reason.clone())
        } else if self.faults.kill_after == Some(0) {
            writer.send(ToWriter::Kill);
            End::KillAfterWrites
        } else {
            match admit(&self.handshake, &target, &self.shared) {
                Err(refusal) => {
                    engine.error(refusal.code, &refusal.message, refusal.param, None);
                    self.collect(&mut engine);
                    End::close_after_events(refusal.close, refusal.reason())
                }
                Ok(hangup) if let Some(to_call) = self.sideband_target(&target) => {
                    self.relay(&mut io, &mut writer, hangup, to_call).await
                }
                Ok(hangup) => {
                    engine.session_created();
                    let media = media.map(Media::into_parts);
                    let (track, incoming) = match media {
                        Some((out, incoming)) => (Some(Track::start(out)), Some(incoming)),
                        None => (None, None),
                    };
                    if track.is_some() {
                        engine.defer_stops();
                    }
                    let mut audio = Audio { track, incoming };
                    let inbox = self.call.as_deref().and_then(|c| self.shared.take_inbox(c));
                    self.serve(&mut engine, &mut io, &mut writer, hangup, &mut audio, inbox)
                        .await
                }
            }
        };
        if let Some(call) = self.call.take() {
            // The call ends with its session: sideband sessions close, hangup says 404.
            self.shared.hang_up(&call);
        }
        self.finish(end, io, writer).await
    }

    /// Moves the engine's track audio to the track, and truncates what was cut at what
    /// the track had carried.
    fn feed_track(&mut self, engine: &mut Engine, audio: &Audio) {
        let Some(track) = &audio.track else { return };
        track.push(engine.take_track());
        let cuts = engine.take_cuts();
        if cuts.is_empty() {
            return;
        }
        for item in cuts {
            let sent_ms = track.cut(&item);
            engine.truncate_sent(&item, sent_ms);
        }
        self.collect(engine);
    }

    /// The session: reads client frames, runs the engine's clock, and hands what the engine
    /// produces to the writer, within the write budget.
    async fn serve<I: EventIo>(
        &mut self,
        engine: &mut Engine,
        io: &mut I,
        writer: &mut Writer<I::Tx>,
        mut hangup: Option<watch::Receiver<bool>>,
        audio: &mut Audio,
        mut inbox: Option<mpsc::Receiver<Sideband>>,
    ) -> End {
        let config = self.shared.config.clone();
        // A duration too long for the clock means the session never expires.
        let expiry = Instant::now().checked_add(config.session_duration);
        let mut shutdown = self.shared.shutdown.clone();
        loop {
            self.collect(engine);
            self.feed_track(engine, audio);
            let reading =
                self.pending.len() < READ_PAUSE_EVENTS && self.pending_bytes < READ_PAUSE_BYTES;
            let releasing = self.pending.len() < RELEASE_PAUSE;
            let next = [
                releasing.then(|| engine.next_due()).flatten(),
                expiry,
                self.delayed.as_ref().map(|(at, _)| *at),
            ]
            .into_iter()
            .flatten()
            .min();
            let cost = self.next_cost();
            let budget = writer.budget.clone();
            tokio::select! {
                _ = shutdown.changed() => return End::close(1001, "server shutting down"),
                end = writer.ended() => return match end {
                    WriterEnd::Stalled => End::Stalled,
                    WriterEnd::Killed => End::Kill,
                    _ => End::Gone,
                },
                permit = budget.acquire_many_owned(cost), if !self.pending.is_empty() => {
                    let Ok(permit) = permit else { return End::Gone };
                    if let Err(end) = self.hand_off(writer, permit) {
                        return end;
                    }
                }
                frame = io.recv(), if reading => {
                    let now = Instant::now();
                    match frame {
                        Inbound::Text(text) => {
                            let kind = self.on_text(engine, text.as_ref(), now);
                            if let Err(end) = self.on_client_fault(kind.as_deref(), now, writer) {
                                return end;
                            }
                        }
                        Inbound::Binary => engine.binary_frame(),
                        Inbound::Closed => return End::ClientClosed,
                        Inbound::TooLarge => {
                            let message = format!(
                                "The message is too large: the limit is {MAX_MESSAGE} bytes (15 MiB of base64 audio per append)."
                            );
                            engine.error(Some("invalid_request_error"), &message, None, None);
                            self.collect(engine);
                            return End::close_after_events(1009, "message too large");
                        }
                        Inbound::Broken(code, reason) => return End::close(code, reason),
                        Inbound::Gone => return End::Gone,
                    }
                }
                () = sleep_until(next) => {
                    let now = Instant::now();
                    if expiry.is_some_and(|expiry| now >= expiry) {
                        engine.session_expired();
                        self.collect(engine);
                        return End::close_after_events(1001, "Your session hit the maximum duration.");
                    }
                    if self.delayed.as_ref().is_some_and(|(at, _)| *at <= now)
                        && let Some((_, action)) = self.delayed.take()
                        && let Err(end) = self.act(action, now, writer)
                    {
                        return end;
                    }
                    if releasing {
                        engine.release(now);
                    }
                }
                Some(()) = call_ended(&mut hangup) => return End::close(1000, "the call was hung up"),
                () = drained(&mut audio.track), if engine.awaits_drain() => engine.track_drained(),
                chunk = next_chunk(&mut audio.incoming), if reading => match chunk {
                    Some(chunk) => engine.track_input(chunk.rate, &chunk.samples, Instant::now()),
                    // The client's track ended; the events go on.
                    None => audio.incoming = None,
                },
                message = next_sideband(&mut inbox), if reading => match message {
                    Some(Sideband::Attach { events }) => {
                        // Its own `session.created` (the session as it is now), then what
                        // the call's client sees.
                        let created = engine.session_created_event().to_string();
                        if events.try_send(created).is_ok() {
                            tracing::debug!("a sideband session attached");
                            self.sidebands.push(events);
                        }
                    }
                    // As if the call's client had sent it: the results go to both.
                    Some(Sideband::Text(text)) => {
                        self.on_text(engine, &text, Instant::now());
                    }
                    None => inbox = None,
                },
            }
        }
    }

    /// Where a sideband session of `target` attaches: the session of a call this simulator
    /// runs (a call without one — `Simulator::open_call` — gets a session of its own).
    fn sideband_target(&self, target: &Target) -> Option<mpsc::Sender<Sideband>> {
        // The call's own session names its call too.
        if self.call.is_some() {
            return None;
        }
        target
            .call_id
            .as_deref()
            .and_then(|call| self.shared.sideband(call))
    }

    /// A sideband session attached to a running call: the call's server events (after a
    /// `session.created` of its own) go out here, and the client events read here go to the
    /// call's session, which answers both. The sideband ends when the call does (1000);
    /// closing it leaves the call running.
    async fn relay<I: EventIo>(
        &mut self,
        io: &mut I,
        writer: &mut Writer<I::Tx>,
        mut hangup: Option<watch::Receiver<bool>>,
        to_call: mpsc::Sender<Sideband>,
    ) -> End {
        let hung_up = || End::close(1000, "the call was hung up");
        let (events_tx, mut events) = mpsc::channel(SIDEBAND_BACKLOG);
        if to_call
            .send(Sideband::Attach { events: events_tx })
            .await
            .is_err()
        {
            return hung_up();
        }
        let mut shutdown = self.shared.shutdown.clone();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return End::close(1001, "server shutting down"),
                end = writer.ended() => return match end {
                    WriterEnd::Stalled => End::Stalled,
                    WriterEnd::Killed => End::Kill,
                    _ => End::Gone,
                },
                Some(()) = call_ended(&mut hangup) => return hung_up(),
                event = events.recv() => {
                    let Some(text) = event else {
                        // Dropped by the call: it ended, or this sideband fell behind.
                        return if hangup.as_ref().is_some_and(|h| *h.borrow()) {
                            hung_up()
                        } else {
                            End::close(1011, "the sideband fell behind its call")
                        };
                    };
                    let cost = text.len().clamp(1, WRITE_BUDGET) as u32;
                    let Ok(budget) = writer.budget.clone().acquire_many_owned(cost).await else {
                        return End::Gone;
                    };
                    writer.send(ToWriter::Event { text, json: None, _budget: budget });
                    self.sent += 1;
                }
                frame = io.recv() => match frame {
                    Inbound::Text(text) => {
                        let text = text.as_ref().to_owned();
                        if to_call.send(Sideband::Text(text)).await.is_err() {
                            return hung_up();
                        }
                    }
                    // The call's session answers text only; nothing to forward.
                    Inbound::Binary => tracing::debug!("a binary frame on a sideband is ignored"),
                    Inbound::Closed => return End::ClientClosed,
                    Inbound::TooLarge => return End::close(1009, "message too large"),
                    Inbound::Broken(code, reason) => return End::close(code, reason),
                    Inbound::Gone => return End::Gone,
                },
            }
        }
    }

    /// The budget the next waiting event takes.
    fn next_cost(&self) -> u32 {
        self.pending
            .front()
            .map_or(1, |p| p.text.len().clamp(1, WRITE_BUDGET)) as u32
    }

    /// Moves the engine's events to the queue for the writer, serialized.
    fn collect(&mut self, engine: &mut Engine) {
        let recording = self.shared.config.recorder.is_some();
        for event in engine.take_out() {
            let event = if self.beta {
                match reelthyme_schema::beta::server_value_to_beta(event) {
                    Some(event) => event,
                    None => continue,
                }
            } else {
                event
            };
            let text = event.to_string();
            // Every attached sideband sees the call's events; one that fell behind is let go.
            self.sidebands
                .retain(|sideband| match sideband.try_send(text.clone()) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        tracing::debug!("a sideband fell behind its call: closing it");
                        false
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                });
            self.pending_bytes += text.len();
            self.pending.push_back(Pending {
                text,
                json: recording.then_some(event),
            });
        }
    }

    /// Hands the next event to the writer, with the configured faults.
    fn hand_off<T: crate::frames::FrameTx>(
        &mut self,
        writer: &Writer<T>,
        budget: OwnedSemaphorePermit,
    ) -> Result<(), End> {
        let faults = &self.faults;
        if faults.malformed_after == Some(self.sent) {
            writer.send(ToWriter::Raw(Outbound::Text(
                "{\"type\": \"response.done\", oops".to_owned(),
            )));
        }
        if faults.binary_after == Some(self.sent) {
            writer.send(ToWriter::Raw(Outbound::Binary(Bytes::from_static(
                b"\x00\x01binary",
            ))));
        }
        if faults.stall_after == Some(self.sent) {
            tracing::info!("stalling (fault injection)");
            writer.send(ToWriter::Stall);
            return Err(End::Stalled);
        }
        if let Some((after, code, reason)) = &faults.close_after
            && *after == self.sent
        {
            return Err(End::close(*code, reason.clone()));
        }
        let Some(Pending { text, json }) = self.pending.pop_front() else {
            return Ok(());
        };
        self.pending_bytes -= text.len();
        writer.send(ToWriter::Event {
            text,
            json,
            _budget: budget,
        });
        self.sent += 1;
        if faults.kill_after == Some(self.sent) {
            tracing::info!("killing the connection (fault injection)");
            writer.send(ToWriter::Kill);
            return Err(End::KillAfterWrites);
        }
        Ok(())
    }

    /// Counts client events for the `on_client` fault, and acts on the chosen one.
    fn on_client_fault<T: crate::frames::FrameTx>(
        &mut self,
        kind: Option<&str>,
        now: Instant,
        writer: &Writer<T>,
    ) -> Result<(), End> {
        let Some((trigger, n, action)) = &self.faults.on_client else {
            return Ok(());
        };
        if kind != Some(trigger.as_str()) {
            return Ok(());
        }
        self.triggers += 1;
        if self.triggers != *n {
            return Ok(());
        }
        let action = action.clone();
        self.act(action, now, writer)
    }

    fn act<T: crate::frames::FrameTx>(
        &mut self,
        action: FaultAction,
        now: Instant,
        writer: &Writer<T>,
    ) -> Result<(), End> {
        tracing::info!(?action, "fault injection");
        match action {
            FaultAction::Close(code, reason) => Err(End::close(code, reason)),
            FaultAction::Kill => Err(End::Kill),
            FaultAction::Stall => {
                writer.send(ToWriter::Stall);
                Err(End::Stalled)
            }
            FaultAction::Delayed(delay, action) => {
                let at = now.checked_add(delay).unwrap_or(now);
                self.delayed = Some((at, *action));
                Ok(())
            }
        }
    }

    fn on_text(&mut self, engine: &mut Engine, text: &str, now: Instant) -> Option<String> {
        match serde_json::from_str::<Value>(text) {
            Ok(value) => {
                let kind = value.get("type").and_then(Value::as_str).map(str::to_owned);
                self.record(false, value.clone());
                let value = if self.beta {
                    reelthyme_schema::beta::client_to_ga(value)
                } else {
                    value
                };
                engine.client_value(value, now);
                kind
            }
            Err(_) => {
                self.record(false, Value::String(text.to_owned()));
                engine.client_text(text, now);
                None
            }
        }
    }

    /// Ends the session as `end` says, every wait bounded (but a stall's, which lasts until
    /// the simulator shuts down), then lets the transport finish.
    async fn finish<I: EventIo>(mut self, end: End, io: I, mut writer: Writer<I::Tx>) -> I::Output {
        let deadline = Instant::now() + CLOSE_WAIT;
        let ending = match end {
            End::Close {
                code,
                reason,
                flush,
            } => {
                let _ = tokio::time::timeout_at(deadline, async {
                    while flush && !self.pending.is_empty() {
                        let cost = self.next_cost();
                        let Ok(permit) = writer.budget.clone().acquire_many_owned(cost).await
                        else {
                            return;
                        };
                        if self.hand_off(&writer, permit).is_err() {
                            return;
                        }
                    }
                    writer.send(ToWriter::Close(code, reason));
                    writer.ended().await;
                })
                .await;
                Ending::Closed
            }
            End::ClientClosed => {
                // Nothing may follow the client's close but the answer to it.
                writer.discard_queue();
                let _ = tokio::time::timeout_at(deadline, writer.ended()).await;
                Ending::PeerClosed
            }
            End::KillAfterWrites => {
                let _ = tokio::time::timeout_at(deadline, writer.ended()).await;
                Ending::Dropped
            }
            End::Stalled => {
                let mut shutdown = self.shared.shutdown.clone();
                let _ = shutdown.changed().await;
                Ending::Dropped
            }
            End::Kill | End::Gone => Ending::Dropped,
        };
        // A writer still blocked is stopped before the transport finishes.
        writer.abort();
        let tx = writer.tx.take();
        io.conclude(tx, ending, deadline).await
    }
}

/// A session's audio tracks, when it has them.
struct Audio {
    track: Option<Track>,
    incoming: Option<MediaReceiver>,
}

/// Resolves when the outgoing track has carried all it was given; never without one.
async fn drained(track: &mut Option<Track>) {
    match track {
        Some(track) => track.drained().await,
        None => std::future::pending().await,
    }
}

/// The incoming track's next chunk (`None` when it ended); never without a track.
async fn next_chunk(incoming: &mut Option<MediaReceiver>) -> Option<AudioChunk> {
    match incoming {
        Some(incoming) => incoming.next().await,
        None => std::future::pending().await,
    }
}

/// The next message from the call's sidebands (`None` when none can come); never without
/// an inbox.
async fn next_sideband(inbox: &mut Option<mpsc::Receiver<Sideband>>) -> Option<Sideband> {
    match inbox {
        Some(inbox) => inbox.recv().await,
        None => std::future::pending().await,
    }
}

/// Resolves when the call a sideband session attaches to is hung up; never without a call.
async fn call_ended(hangup: &mut Option<watch::Receiver<bool>>) -> Option<()> {
    match hangup {
        Some(signal) => signal.changed().await.ok(),
        None => std::future::pending().await,
    }
}
