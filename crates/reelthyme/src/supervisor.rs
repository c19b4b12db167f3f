//! The reconnect supervisor: a state machine the event stream polls (nothing spawns) —
//! backoff, then an attempt (open, replay, deliver what was held, make it live), until one
//! succeeds, a failure is not retryable, or the bounds are reached.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use reelthyme_schema::{AudioFormat, ClientEvent, ServerEvent};
use reelthyme_transport::{Dialect, Error, ErrorKind, FrameSender, Result};

use crate::core::Core;
use crate::reconnect::{Held, Reconnect, ReconnectEvent, Reconnected, Replay, may_retry};

type Attempting = Pin<Box<dyn Future<Output = Result<Attempted>> + Send>>;

/// What a successful attempt did.
struct Attempted {
    /// The connection it replaced, to close (a rotation's; `None` after a loss).
    old: Option<FrameSender>,
    /// What it sent, for the conversation and the layers.
    sent: Vec<ClientEvent>,
    items_replayed: usize,
    resent: usize,
    /// Replay items the outgoing transforms refused.
    refused: Vec<String>,
    delivered: usize,
    dropped: (usize, u64),
    session_id: Option<String>,
}

enum Step {
    Backoff(Pin<Box<tokio::time::Sleep>>),
    Attempt(Attempting),
    /// The budget was spent before this outage began: give up with its cause.
    Spent(Option<Error>),
}

/// How a supervised reconnect ended.
pub(crate) enum Outcome {
    /// Live on a new connection: the report, and what was sent (for the sent feed).
    Reconnected(ReconnectEvent, Vec<ClientEvent>),
    /// Stopped: the error ends the stream.
    GaveUp(Error),
    /// A rotation could not open a new connection; the old one is still live.
    RotationFailed(Error),
}

pub(crate) struct Supervisor {
    core: Arc<Core>,
    policy: Reconnect,
    attempt: u32,
    started: Instant,
    replay: Arc<Replay>,
    /// Bytes per second of the old session's input audio (for the dropped audio's length).
    input_bps: u64,
    rotation: bool,
    step: Step,
}

impl Supervisor {
    /// Starts reconnecting after `cause` (or rotating, with `rotation`): the replay is the
    /// conversation as it is now; the old connection's unsent frames go first. `carried`
    /// is the previous outage's start and attempts when it ended recently: an outage that
    /// follows a reconnect within [`Reconnect::max_elapsed`] spends the same budget, so a
    /// server that accepts and then drops every connection is not retried forever.
    pub(crate) fn start(
        core: Arc<Core>,
        cause: Error,
        rotation: bool,
        carried: Option<(Instant, u32)>,
    ) -> Option<Self> {
        let policy = core.config.reconnect.clone()?;
        core.supervising();
        let (mut replay, input_bps) = core.read(|conversation| {
            let bps = conversation
                .session()
                .and_then(|s| s.input_format())
                .map_or(48_000, bytes_per_second);
            (Replay::of(conversation), bps)
        });
        replay.without_unsent(cause.unsent());
        let now = Instant::now();
        let unsent: Vec<Held> = cause
            .unsent()
            .iter()
            .map(|text| Held::frame(text.clone(), now))
            .collect();
        if !unsent.is_empty() {
            tracing::debug!(parent: &core.span, frames = unsent.len(), "resending what the old connection never wrote");
            core.hold_front(unsent);
        }
        let (started, attempt) = match carried {
            Some((started, attempts)) if started.elapsed() < policy.max_elapsed => {
                (started, attempts + 1)
            }
            _ => (now, 1),
        };
        let delay = if rotation {
            Duration::ZERO
        } else {
            policy.delay(attempt)
        };
        let spent = attempt > policy.attempts || started.elapsed() + delay > policy.max_elapsed;
        let step = if spent {
            tracing::warn!(parent: &core.span, attempts = attempt - 1, "reconnects keep failing: giving up");
            Step::Spent(Some(cause))
        } else {
            core.report(ReconnectEvent::Reconnecting {
                attempt,
                cause,
                delay,
            });
            Step::Backoff(Box::pin(tokio::time::sleep(delay)))
        };
        Some(Self {
            core,
            policy,
            // Those made, when none is left to make.
            attempt: if spent { attempt - 1 } else { attempt },
            started,
            replay: Arc::new(replay),
            input_bps,
            rotation,
            step,
        })
    }

    /// When this outage began (or the one it continues), and the attempts made.
    pub(crate) fn budget(&self) -> (Instant, u32) {
        (self.started, self.attempt)
    }

    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Outcome> {
        loop {
            if self.core.is_closed() {
                return Poll::Ready(Outcome::GaveUp(Error::new(
                    ErrorKind::Closed,
                    "the session was closed while reconnecting",
                )));
            }
            match &mut self.step {
                Step::Spent(cause) => {
                    let error = cause.take().unwrap_or_else(|| {
                        Error::new(ErrorKind::Closed, "the reconnect budget is spent")
                    });
                    return Poll::Ready(Outcome::GaveUp(error));
                }
                Step::Backoff(sleep) => {
                    std::task::ready!(sleep.as_mut().poll(cx));
                    let core = self.core.clone();
                    let replay = self.replay.clone();
                    self.step = Step::Attempt(Box::pin(attempt(core, replay)));
                }
                Step::Attempt(attempting) => {
                    match std::task::ready!(attempting.as_mut().poll(cx)) {
                        Ok(done) => return Poll::Ready(self.reconnected(done)),
                        Err(error) => {
                            let delay = self.policy.delay(self.attempt + 1);
                            let out_of_time =
                                self.started.elapsed() + delay > self.policy.max_elapsed;
                            if !may_retry(&error)
                                || self.attempt >= self.policy.attempts
                                || out_of_time
                            {
                                tracing::warn!(parent: &self.core.span, attempts = self.attempt, %error, "reconnect stopped");
                                return Poll::Ready(if self.rotation {
                                    Outcome::RotationFailed(error)
                                } else {
                                    Outcome::GaveUp(error)
                                });
                            }
                            self.attempt += 1;
                            self.core.report(ReconnectEvent::Reconnecting {
                                attempt: self.attempt,
                                cause: error,
                                delay,
                            });
                            self.step = Step::Backoff(Box::pin(tokio::time::sleep(delay)));
                        }
                    }
                }
            }
        }
    }

    pub(crate) fn attempts(&self) -> u32 {
        self.attempt
    }

    fn reconnected(&self, done: Attempted) -> Outcome {
        crate::sender::close_replaced(done.old);
        let replay = &self.replay;
        let mut not_replayed = replay.not_replayed.clone();
        not_replayed.extend(done.refused.iter().cloned());
        let report = Reconnected {
            state_restored: replay.restores_all(done.dropped.0) && done.refused.is_empty(),
            items_replayed: done.items_replayed,
            lost_response: replay.lost_response.clone(),
            not_replayed,
            resent: done.resent,
            delivered: done.delivered,
            dropped_appends: done.dropped.0,
            dropped_audio_ms: done.dropped.1 * 1000 / self.input_bps.max(1),
            rotated: self.rotation,
            attempts: self.attempt,
            session_id: done.session_id,
        };
        Outcome::Reconnected(ReconnectEvent::Reconnected(report), done.sent)
    }
}

/// Bytes per second of a format: PCM16 at its rate, G.711 one byte per sample.
fn bytes_per_second(format: &AudioFormat) -> u64 {
    match format {
        AudioFormat::Pcm(_) => 2 * u64::from(format.sample_rate().unwrap_or(24_000)),
        _ => u64::from(format.sample_rate().unwrap_or(8_000)),
    }
}

/// One attempt: open (the confirmed session sent first), replay the items, deliver what is
/// held, and make the connection live once nothing is held any more.
async fn attempt(core: Arc<Core>, replay: Arc<Replay>) -> Result<Attempted> {
    let session = replay
        .session
        .clone()
        .or_else(|| core.config.initial_session());
    let (connection, first) =
        crate::session::open_with(&core.config, &core.span, session.clone()).await?;
    let session_id = match &first {
        ServerEvent::SessionCreated(created) => created.session.id.clone(),
        _ => None,
    };
    let sent: Vec<ClientEvent> = session
        .into_iter()
        .map(ClientEvent::session_update)
        .collect();
    // Bounded without a timer of its own: a connection that stops taking frames fails
    // within the transport's `dead_after`.
    let mut done = deliver(core, &replay, connection, first, sent).await?;
    done.session_id = session_id;
    Ok(done)
}

/// Makes a connection opened by hand ([`SessionSender::reconnect`]) live: what is held is
/// delivered on it first. Returns the connection it replaced, and what it sent (for the
/// sent feed).
///
/// [`SessionSender::reconnect`]: crate::SessionSender::reconnect
pub(crate) async fn install_delivering(
    core: Arc<Core>,
    connection: reelthyme_transport::Connection,
    first: ServerEvent,
) -> Result<(Option<FrameSender>, Vec<ClientEvent>)> {
    let done = deliver(core, &Replay::default(), connection, first, Vec::new()).await?;
    Ok((done.old, done.sent))
}

/// Replays the items on the new connection, delivers what is held, and installs it.
async fn deliver(
    core: Arc<Core>,
    replay: &Replay,
    mut connection: reelthyme_transport::Connection,
    mut first: ServerEvent,
    mut sent: Vec<ClientEvent>,
) -> Result<Attempted> {
    let mut items_replayed = 0;
    let mut resent = 0;
    let mut refused = Vec::new();
    let mut delivered = 0;
    let replayed = replay.events();
    let count = replayed.len();
    for (index, event) in replayed
        .into_iter()
        .chain(replay.resend.iter().cloned())
        .enumerate()
    {
        let text = match crate::session::prepare(&core.config, event.clone()) {
            Ok(text) => text,
            Err(error) => {
                if let ClientEvent::ConversationItemCreate(create) = &event {
                    refused.extend(create.item.id().map(str::to_owned));
                }
                tracing::warn!(parent: &core.span, %error, "a replayed item was refused");
                continue;
            }
        };
        connection.sender.send(text).await?;
        if index < count {
            items_replayed += 1;
        } else {
            resent += 1;
        }
        sent.push(event);
    }
    // What this attempt took from the hold, until the connection is live: if it fails,
    // the server session that got them is gone, and they go back for the next one.
    let mut taken: Vec<Held> = Vec::new();
    loop {
        while let Some(held) = core.take_held() {
            let event = held.event.clone().or_else(|| parse_sent(&core, &held.text));
            let sending = connection.sender.send_or_return(held.text.clone()).await;
            taken.push(held);
            match sending {
                Ok(()) => {
                    delivered += 1;
                    sent.extend(event);
                }
                Err((error, _)) => {
                    core.hold_front(taken);
                    return Err(error);
                }
            }
        }
        match core.install_when_drained(connection, first) {
            Ok((old, dropped)) => {
                return Ok(Attempted {
                    old,
                    sent,
                    items_replayed,
                    resent,
                    refused,
                    delivered,
                    dropped,
                    session_id: None,
                });
            }
            Err(back) => (connection, first) = *back,
        }
    }
}

/// A frame sent without its event (raw, or given back by the old connection), as the
/// event the layers are shown.
fn parse_sent(core: &Core, text: &str) -> Option<ClientEvent> {
    match core.config.endpoint.dialect() {
        Dialect::Ga => ClientEvent::from_json(text).ok(),
        Dialect::Beta => None,
    }
}
