//! Sessions that survive: opt-in reconnect with continuity ([`Reconnect`]), and rotation
//! before the service's session cap.
//!
//! When a connection ends with a retryable error ([`Error::is_retryable`]: abnormal closes,
//! 5xx, timeouts, the session cap — never [`ErrorKind::Auth`] or
//! [`ErrorKind::InvalidRequest`]), the event stream opens a new one, with exponential
//! backoff and jitter, a bound on attempts and on total time. On the new server session it
//! re-sends the session the server last confirmed, then replays the finished items of the
//! conversation (`conversation.item.create`, each after the one before it, ids kept), then
//! delivers what was sent during the outage, then makes the connection live for every
//! sender. It reports on [`ReconnectEvents`]: [`ReconnectEvent::Reconnecting`] per attempt,
//! then [`ReconnectEvent::Reconnected`] (what was restored, honestly) or
//! [`ReconnectEvent::GaveUp`].
//!
//! The event stream drives the reconnect: keep polling it (as for audio). Nothing spawns.

use std::collections::VecDeque;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use reelthyme_schema::state::Conversation;
use reelthyme_schema::{ClientEvent, ContentPart, Item, ItemStatus, Role, SessionConfig};
use reelthyme_transport::{Error, ErrorKind};
use tokio::sync::broadcast;

use crate::mirror::{Entry, EntryKind};

/// How a session reconnects (opt-in: [`Config::reconnect`](crate::Config::reconnect)).
///
/// When a connection ends with a retryable error ([`Error::is_retryable`]: abnormal closes,
/// 5xx, timeouts, the session cap — never [`ErrorKind::Auth`] or
/// [`ErrorKind::InvalidRequest`], which stop at once with the typed error), the event
/// stream opens a new connection, with exponential backoff and jitter, within a bound on
/// attempts and on total time. On the new server session it re-sends the session the
/// server last confirmed, replays the finished items of the conversation
/// (`conversation.item.create`, each after the one before it, ids kept), sends again the
/// items the old server had not confirmed, delivers what was sent during the outage, and
/// only then makes the connection live for every sender. The reports are on
/// [`SessionSender::reconnect_events`](crate::SessionSender::reconnect_events). The event
/// stream drives all of it: keep polling it (as for audio); nothing runs in the
/// background. After `Reconnected` the stream yields the new `session.created`, then the
/// new server's answers to the replay (`session.updated`, `conversation.item.added` …).
///
/// # What the model remembers
///
/// The new server session starts empty; it is given, in order: user and system messages
/// as text (a user's spoken turn as its transcript — without transcription it cannot be
/// replayed and is listed in [`Reconnected::not_replayed`]); the assistant's answers as
/// `output_text` with the text that was *heard* (cut at a barge-in's truncation, as the
/// [`Mirror`](crate::Mirror) shows it), because an assistant item cannot carry audio back;
/// function calls with their arguments and their outputs, `call_id`s kept. It will not
/// remember: the sound of anything (voices, tone, audio it has not transcribed), items
/// that were not finished (the response in flight: [`Reconnected::lost_response`], lost
/// server-side — ask again if it matters), audio appended but not committed, and anything
/// other than messages and function calls (MCP items are listed as not replayed).
///
/// # Sends during an outage
///
/// While a reconnect (or a rotation) is under way, sends are held in a queue bounded in
/// events and bytes ([`Reconnect::queue`]) and `send` returns `Ok` (queued); they are
/// delivered, in order, after the replay. Input audio held longer than
/// [`Reconnect::max_audio_age`] is dropped — stale speech is worse than none — and counted
/// in [`Reconnected::dropped_appends`]. A send that finds the queue full gets an error
/// (the event was not queued). When the reconnect gives up, everything still held is
/// counted in [`ReconnectEvent::GaveUp`], and every later send and flush returns the
/// error: nothing is dropped silently. [`SessionSender::flush`](crate::SessionSender::flush)
/// waits (bounded) until the held events are delivered.
///
/// # Rotation
///
/// OpenAI closes a session after 60 minutes. With [`Reconnect::rotate_after`] (default 55
/// minutes) the session moves to a new connection before that, at the first quiet moment
/// (no response running or asked for, the user not speaking), with the same replay; sends
/// are held only while the new connection is set up (about 5 ms on loopback), and the old
/// connection delivers its last events before the stream moves on. A rotation that cannot
/// connect leaves the session where it was and is tried again later.
///
/// # An honest report
///
/// [`Reconnected::state_restored`] is true only when every finished item was replayed and
/// nothing was in flight. An item is finished when the server said it was done — or, for
/// an item no response wrote (the client's own, a committed input), once the server added
/// it.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use reelthyme::Reconnect;
///
/// let policy = Reconnect::default()
///     .attempts(8)
///     .backoff(Duration::from_millis(100), Duration::from_secs(5))
///     .max_elapsed(Duration::from_secs(60))
///     .rotate_after(Some(Duration::from_secs(55 * 60)));
/// # let _ = policy;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Reconnect {
    pub(crate) attempts: u32,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) max_elapsed: Duration,
    pub(crate) queue_events: usize,
    pub(crate) queue_bytes: usize,
    pub(crate) max_audio_age: Duration,
    pub(crate) rotate_after: Option<Duration>,
}

impl Default for Reconnect {
    /// Six attempts, backoff from 200 ms doubling to at most 5 s (each delay jittered
    /// down by up to half), 60 s in all; 1024 events or 4 MiB held; input audio older than
    /// 2 s dropped; rotation after 55 minutes (the service caps sessions at 60).
    fn default() -> Self {
        Self {
            attempts: 6,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(60),
            queue_events: 1024,
            queue_bytes: 4 << 20,
            max_audio_age: Duration::from_secs(2),
            rotate_after: Some(Duration::from_secs(55 * 60)),
        }
    }
}

impl Reconnect {
    /// At most this many connection attempts per outage (default 6; at least 1).
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// The delay before the first attempt, doubling per attempt up to `max` (default
    /// 200 ms and 5 s). Each delay is jittered: a random point between half of it and it.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Gives up once an outage has lasted this long (default 60 s): no attempt starts
    /// after it, and each attempt is bounded by the connect timeout.
    pub fn max_elapsed(mut self, max: Duration) -> Self {
        self.max_elapsed = max;
        self
    }

    /// Holds at most this many events and bytes sent during an outage (default 1024 and
    /// 4 MiB); a send beyond them fails.
    pub fn queue(mut self, events: usize, bytes: usize) -> Self {
        self.queue_events = events.max(1);
        self.queue_bytes = bytes;
        self
    }

    /// Drops input audio (`input_audio_buffer.append`) held longer than this during an
    /// outage (default 2 s), counted in [`Reconnected::dropped_appends`].
    pub fn max_audio_age(mut self, age: Duration) -> Self {
        self.max_audio_age = age;
        self
    }

    /// Moves the session to a new connection (with the same replay) once it has lasted
    /// this long, at the first quiet moment — no response running or asked for, the user
    /// not speaking, no input audio waiting to be committed (default 55 minutes: OpenAI
    /// closes sessions at 60). `None`: never.
    pub fn rotate_after(mut self, after: Option<Duration>) -> Self {
        self.rotate_after = after;
        self
    }

    /// The delay before attempt `attempt` (from 1): exponential, capped, jittered.
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let doubling = 2_u32.saturating_pow(attempt.saturating_sub(1).min(31));
        let full = self
            .initial_backoff
            .saturating_mul(doubling)
            .min(self.max_backoff);
        // A random point in [full / 2, full].
        full / 2 + full.mul_f64(random_unit() / 2.0)
    }
}

/// A number in [0, 1) from the standard library's randomly keyed hasher (no dependency;
/// jitter needs no quality beyond "not the same for every client").
fn random_unit() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (hasher.finish() >> 11) as f64 / (1_u64 << 53) as f64
}

/// What a reconnect did, reported on [`ReconnectEvents`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ReconnectEvent {
    /// The connection was lost (or is being rotated): attempt `attempt` (from 1) starts
    /// after `delay`.
    Reconnecting {
        /// The attempt about to start, from 1.
        attempt: u32,
        /// Why: the error that ended the connection, or the previous attempt's failure
        /// ([`ErrorKind::SessionExpired`] with a message saying so for a rotation).
        cause: Error,
        /// The backoff before it.
        delay: Duration,
    },
    /// The session is live on a new connection.
    Reconnected(Reconnected),
    /// The reconnect stopped: `error` is why (a non-retryable failure such as
    /// [`ErrorKind::Auth`] stops at once; otherwise the last attempt's failure). The event
    /// stream ends with it.
    GaveUp {
        /// The attempts made.
        attempts: u32,
        /// The last failure.
        error: Error,
        /// Events sent during the outage that were never delivered.
        undelivered: usize,
    },
}

impl Clone for ReconnectEvent {
    fn clone(&self) -> Self {
        match self {
            Self::Reconnecting {
                attempt,
                cause,
                delay,
            } => Self::Reconnecting {
                attempt: *attempt,
                cause: cause.details(),
                delay: *delay,
            },
            Self::Reconnected(done) => Self::Reconnected(done.clone()),
            Self::GaveUp {
                attempts,
                error,
                undelivered,
            } => Self::GaveUp {
                attempts: *attempts,
                error: error.details(),
                undelivered: *undelivered,
            },
        }
    }
}

impl fmt::Display for ReconnectEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Reconnecting { attempt, cause, .. } => {
                write!(f, "reconnecting (attempt {attempt}): {cause}")
            }
            Self::Reconnected(done) if done.rotated => write!(
                f,
                "moved to a new session: {} items replayed",
                done.items_replayed
            ),
            Self::Reconnected(done) => {
                write!(f, "reconnected: {} items replayed", done.items_replayed)?;
                if done.resent > 0 {
                    write!(f, ", {} sent again", done.resent)?;
                }
                if done.lost_response.is_some() {
                    write!(f, ", the answer in progress was lost")?;
                }
                if !done.state_restored {
                    write!(f, " (not everything was restored)")?;
                }
                Ok(())
            }
            Self::GaveUp {
                attempts, error, ..
            } => write!(f, "gave up reconnecting after {attempts} attempts: {error}"),
        }
    }
}

/// What a successful reconnect restored, and what it could not.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reconnected {
    /// True only when every finished item was replayed, nothing was in flight (no
    /// response running or asked for, no item sent but unconfirmed, no audio waiting to be
    /// committed) and nothing held was dropped.
    pub state_restored: bool,
    /// The items replayed, in order.
    pub items_replayed: usize,
    /// The response that was running, or asked for, when the connection was lost: lost
    /// server-side, not asked for again.
    pub lost_response: Option<LostResponse>,
    /// Finished items that could not be replayed (a spoken turn without a transcript, an
    /// MCP item), by id.
    pub not_replayed: Vec<String>,
    /// Items sent before the end that the old server had not confirmed (it may or may
    /// not have seen them; the new one has not): sent again, after the replay.
    pub resent: usize,
    /// Held events (and frames the old connection never wrote) delivered on the new one.
    pub delivered: usize,
    /// Input audio appends dropped because they were held too long.
    pub dropped_appends: usize,
    /// Their length, in milliseconds of the session's input format.
    pub dropped_audio_ms: u64,
    /// A planned rotation before the session cap, not a failure.
    pub rotated: bool,
    /// The attempts it took.
    pub attempts: u32,
    /// The new server session's id.
    pub session_id: Option<String>,
}

/// A response lost with its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LostResponse {
    /// Its id; `None` when it was asked for and had not started.
    pub response_id: Option<String>,
    /// The items it had begun (not replayed).
    pub items: Vec<String>,
}

/// The session's reconnect reports, from any task: a bounded broadcast (a receiver that
/// falls more than 64 behind is told how many it missed). Published at their place in
/// the event stream: `Reconnected` just before the new connection's `session.created` is
/// yielded, `GaveUp` just before the stream's last error.
#[derive(Debug)]
pub struct ReconnectEvents {
    pub(crate) receiver: broadcast::Receiver<ReconnectEvent>,
}

impl ReconnectEvents {
    /// The next report; `None` once the session is gone.
    pub async fn recv(&mut self) -> Option<ReconnectEvent> {
        loop {
            match self.receiver.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "reconnect reports missed");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The next report if one is waiting.
    pub fn try_recv(&mut self) -> Option<ReconnectEvent> {
        loop {
            match self.receiver.try_recv() {
                Ok(event) => return Some(event),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => return None,
            }
        }
    }
}

/// A send held during an outage.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) text: String,
    /// The event, when the layers have not been told of it yet.
    pub(crate) event: Option<ClientEvent>,
    pub(crate) at: Instant,
    /// The audio bytes of an `input_audio_buffer.append` (`None`: not an append).
    pub(crate) append: Option<u64>,
}

impl Held {
    /// A frame without its event (the old connection's unsent ones).
    pub(crate) fn frame(text: String, at: Instant) -> Self {
        let append = text
            .contains("\"type\":\"input_audio_buffer.append\"")
            .then(|| {
                // The `audio` string's length, without parsing the frame.
                let audio = text
                    .split_once("\"audio\":\"")
                    .and_then(|(_, rest)| rest.split_once('"'))
                    .map_or("", |(audio, _)| audio);
                decoded_len(audio)
            });
        Self {
            text,
            event: None,
            at,
            append,
        }
    }

    /// A send with its event.
    pub(crate) fn event(text: String, event: ClientEvent, at: Instant) -> Self {
        let append = match &event {
            ClientEvent::InputAudioBufferAppend(append) => Some(decoded_len(append.audio.as_str())),
            _ => None,
        };
        Self {
            text,
            event: Some(event),
            at,
            append,
        }
    }
}

/// The bytes a base64 string decodes to.
fn decoded_len(base64: &str) -> u64 {
    let padding = base64.bytes().rev().take_while(|&b| b == b'=').count();
    ((base64.len() / 4 * 3).saturating_sub(padding)) as u64
}

/// The outage queue: bounded in events and bytes; stale appends dropped and counted.
#[derive(Debug, Default)]
pub(crate) struct Hold {
    queue: VecDeque<Held>,
    bytes: usize,
    pub(crate) dropped_appends: usize,
    pub(crate) dropped_bytes: u64,
}

impl Hold {
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Drops appends held longer than `age`.
    fn prune(&mut self, age: Duration, now: Instant) {
        let before = self.queue.len();
        let mut dropped_bytes = 0_u64;
        self.queue.retain(|held| match held.append {
            Some(audio) if now.saturating_duration_since(held.at) > age => {
                dropped_bytes += audio;
                false
            }
            _ => true,
        });
        let dropped = before - self.queue.len();
        if dropped > 0 {
            self.dropped_appends += dropped;
            self.dropped_bytes += dropped_bytes;
            self.bytes = self.queue.iter().map(|h| h.text.len()).sum();
        }
    }

    /// Holds a send; `false` when the queue is full (events or bytes).
    pub(crate) fn push(&mut self, held: Held, policy: &Reconnect) -> bool {
        self.prune(policy.max_audio_age, held.at);
        if self.queue.len() >= policy.queue_events
            || self.bytes + held.text.len() > policy.queue_bytes
        {
            return false;
        }
        self.bytes += held.text.len();
        self.queue.push_back(held);
        true
    }

    /// Puts frames back in front (in order): the old connection's unsent ones, or one
    /// whose delivery failed.
    pub(crate) fn push_front(&mut self, frames: impl DoubleEndedIterator<Item = Held>) {
        for held in frames.rev() {
            self.bytes += held.text.len();
            self.queue.push_front(held);
        }
    }

    pub(crate) fn pop(&mut self, policy: &Reconnect) -> Option<Held> {
        self.prune(policy.max_audio_age, Instant::now());
        let held = self.queue.pop_front()?;
        self.bytes -= held.text.len();
        Some(held)
    }
}

/// Whether a connection that ended so may be followed by a reconnect: retryable, and not
/// a normal close (the server ended the session on purpose). An end a transport without
/// close codes maps to 1000 with nothing said before it (WebRTC: the server closed the
/// data channel — a dropped call looks just like a hangup there) is retried; a typed one
/// (after the server's `error`, e.g. `session_expired`) is not.
pub(crate) fn may_retry(error: &Error) -> bool {
    error.is_retryable()
        && match error.close_code() {
            Some(1000) => error.kind() == ErrorKind::Closed && !error.is_normal_close(),
            _ => true,
        }
}

/// What the new server session is given, from the old conversation.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    /// The session the server last confirmed, as a `session.update`.
    pub(crate) session: Option<SessionConfig>,
    pub(crate) items: Vec<Item>,
    pub(crate) not_replayed: Vec<String>,
    pub(crate) lost_response: Option<LostResponse>,
    /// Item requests the old server had not confirmed, to send again.
    pub(crate) resend: Vec<ClientEvent>,
    /// Input audio appended and not committed (lost with the old server's buffer).
    pub(crate) uncommitted_ms: u64,
}

impl Replay {
    /// The replay of `conversation`: its finished items as the [`Mirror`](crate::Mirror)
    /// shows them, the confirmed session, and what was in flight.
    pub(crate) fn of(conversation: &Conversation) -> Self {
        let mut replay = Self {
            session: conversation.session().map(as_update),
            ..Self::default()
        };
        let active = conversation.active_response();
        let mut lost_items = Vec::new();
        for state in conversation.items() {
            // Finished items of the response in flight are replayed too (a function call
            // the tools may answer must exist on the new session); its unfinished ones
            // are lost with it. An item no response wrote (the client's, an input) is
            // finished once the server added it: nothing more of it is coming.
            if !state.is_done() && state.response_id().is_some() {
                if state.response_id().is_some() {
                    lost_items.push(state.id().to_owned());
                } else {
                    replay.not_replayed.push(state.id().to_owned());
                }
                continue;
            }
            match replayed(&Entry::from_state(state), state.item()) {
                Some(item) => replay.items.push(item),
                None => replay.not_replayed.push(state.id().to_owned()),
            }
        }
        let asked = conversation.pending_responses().len() > 0;
        if active.is_some() || asked || !lost_items.is_empty() {
            replay.lost_response = Some(LostResponse {
                response_id: active.map(|r| r.id().to_owned()),
                items: lost_items,
            });
        }
        replay.resend = conversation
            .pending_items()
            .map(|request| {
                ClientEvent::ConversationItemCreate(reelthyme_schema::ConversationItemCreate {
                    event_id: request.event_id().map(str::to_owned),
                    previous_item_id: request
                        .previous_item_id()
                        .map(|previous| previous.map(str::to_owned)),
                    item: request.item().clone(),
                    extra: reelthyme_schema::Extra::default(),
                })
            })
            .collect();
        replay.uncommitted_ms = uncommitted_ms(conversation);
        replay
    }

    /// The events that replay the items, in order: each after the one before it (the
    /// first at the start of the conversation).
    pub(crate) fn events(&self) -> Vec<ClientEvent> {
        let mut previous = "root".to_owned();
        self.items
            .iter()
            .map(|item| {
                let mut event = ClientEvent::item_create(item.clone());
                if let ClientEvent::ConversationItemCreate(create) = &mut event {
                    create.previous_item_id = Some(Some(previous.clone()));
                }
                if let Some(id) = item.id() {
                    id.clone_into(&mut previous);
                }
                event
            })
            .collect()
    }

    /// Leaves out of [`Replay::resend`] the requests the old connection never wrote: they
    /// are resent from its unsent frames (in their place), not twice.
    pub(crate) fn without_unsent(&mut self, unsent: &[String]) {
        if unsent.is_empty() {
            return;
        }
        let unsent: Vec<ClientEvent> = unsent
            .iter()
            .filter_map(|text| ClientEvent::from_json(text).ok())
            .collect();
        self.resend.retain(|request| {
            !unsent
                .iter()
                .any(|frame| match (frame.event_id(), request.event_id()) {
                    (Some(a), Some(b)) => a == b,
                    _ => frame == request,
                })
        });
    }

    /// Whether everything would be restored, given what the outage dropped.
    pub(crate) fn restores_all(&self, dropped_appends: usize) -> bool {
        self.not_replayed.is_empty()
            && self.lost_response.is_none()
            && self.uncommitted_ms == 0
            && dropped_appends == 0
    }
}

/// Input audio the old server held that mattered: speech in progress, or (without turn
/// detection) anything appended and not committed. Silence waiting in a VAD session's
/// buffer does not count.
pub(crate) fn uncommitted_ms(conversation: &Conversation) -> u64 {
    let input = conversation.input_buffer();
    let vad_off = conversation
        .session()
        .is_some_and(|s| s.turn_detection() == Some(None));
    if input.is_speaking() || vad_off {
        input.appended_ms()
    } else {
        0
    }
}

/// A confirmed session as an update: without what only the server sets.
fn as_update(session: &SessionConfig) -> SessionConfig {
    let mut update = session.clone();
    update.object = None;
    update.id = None;
    update.expires_at = None;
    update.model = None;
    update.extra = reelthyme_schema::Extra::default();
    update
}

/// The item that replays an entry, with its id; `None` when it cannot be replayed.
fn replayed(entry: &Entry, original: &Item) -> Option<Item> {
    let id = Some(entry.id.clone());
    let status = Some(ItemStatus::Completed);
    match (&entry.kind, original) {
        (EntryKind::Message(role), _) => {
            if entry.text.is_empty() {
                return None;
            }
            let part = match role {
                Role::Assistant => ContentPart::OutputText(reelthyme_schema::TextContent {
                    text: Some(entry.text.clone()),
                    extra: reelthyme_schema::Extra::default(),
                }),
                _ => ContentPart::input_text(entry.text.clone()),
            };
            let Item::Message(mut message) = Item::message(role.clone(), vec![part]) else {
                return None;
            };
            message.id = id;
            message.status = status;
            Some(Item::Message(message))
        }
        (EntryKind::FunctionCall { .. }, Item::FunctionCall(call)) => {
            let mut call = call.clone();
            call.id = id;
            call.object = None;
            call.status = status;
            call.arguments.clone_from(&entry.text);
            Some(Item::FunctionCall(call))
        }
        (EntryKind::FunctionCallOutput { .. }, Item::FunctionCallOutput(output)) => {
            let mut output = output.clone();
            output.id = id;
            output.object = None;
            output.status = status;
            Some(Item::FunctionCallOutput(output))
        }
        _ => None,
    }
}

/// The error a rotation reports as its cause.
pub(crate) fn rotation_cause(after: Duration) -> Error {
    Error::new(
        ErrorKind::SessionExpired,
        format!(
            "rotating the session after {} s, before the server's cap",
            after.as_secs()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_below_each_step() {
        let policy =
            Reconnect::default().backoff(Duration::from_millis(100), Duration::from_millis(700));
        for (attempt, full) in [(1, 100), (2, 200), (3, 400), (4, 700), (40, 700)] {
            let full = Duration::from_millis(full);
            for _ in 0..20 {
                let delay = policy.delay(attempt);
                assert!(delay >= full / 2 && delay <= full, "{attempt}: {delay:?}");
            }
        }
        // Jittered: not every delay the same.
        let delays: std::collections::HashSet<_> = (0..20).map(|_| policy.delay(3)).collect();
        assert!(delays.len() > 1);
    }

    fn held(text: &str, append: bool, at: Instant) -> Held {
        Held {
            text: text.to_owned(),
            event: None,
            at,
            append: append.then_some(3),
        }
    }

    #[test]
    fn a_frame_knows_its_audio_length() {
        let event = ClientEvent::audio_append(&[0_i16; 960]);
        let frame = Held::frame(event.to_json(), Instant::now());
        assert_eq!(frame.append, Some(1920));
        assert_eq!(
            Held::event(event.to_json(), event, Instant::now()).append,
            Some(1920)
        );
        let item = ClientEvent::user_text("input_audio_buffer.append");
        assert_eq!(Held::frame(item.to_json(), Instant::now()).append, None);
    }

    #[test]
    fn the_hold_is_bounded_and_drops_stale_audio_only() {
        let policy = Reconnect::default()
            .queue(3, 100)
            .max_audio_age(Duration::from_secs(2));
        let mut hold = Hold::default();
        let old = Instant::now();
        assert!(hold.push(held("append-1", true, old), &policy));
        assert!(hold.push(held("item", false, old), &policy));
        assert!(hold.push(held("append-2", true, old), &policy));
        // Full by count: refused.
        let later = old + Duration::from_millis(500);
        assert!(!hold.push(held("x", false, later), &policy));
        // Full by bytes.
        let mut small = Hold::default();
        assert!(!small.push(held(&"y".repeat(101), false, old), &policy));
        // Three seconds on, the appends are stale: dropped and counted, the item kept.
        let stale = old + Duration::from_secs(3);
        assert!(hold.push(held("append-3", true, stale), &policy));
        assert_eq!(hold.dropped_appends, 2);
        assert_eq!(hold.len(), 2);
        let texts: Vec<_> = std::iter::from_fn(|| {
            let mut policy = policy.clone();
            // Nothing more goes stale while draining here.
            policy.max_audio_age = Duration::MAX;
            hold.pop(&policy)
        })
        .map(|h| h.text)
        .collect();
        assert_eq!(texts, ["item", "append-3"]);
    }

    #[test]
    fn a_normal_close_and_refusals_are_not_retried() {
        assert!(may_retry(&Error::from_close(1006, "", None)));
        assert!(may_retry(&Error::from_close(1011, "", None)));
        assert!(!may_retry(&Error::from_close(1000, "", None)));
        // A transport without close codes (WebRTC): the server closed the channel.
        let ended =
            Error::new(ErrorKind::Closed, "the server ended the call").with_close_code(1000);
        assert!(may_retry(&ended));
        // …but not when the server said why first: an expired session is not redialled.
        let detail = serde_json::from_value(serde_json::json!({
            "type": "invalid_request_error", "code": "session_expired", "message": "expired"
        }))
        .unwrap();
        let expired = Error::from_close(1000, "", Some(detail));
        assert_eq!(expired.kind(), ErrorKind::SessionExpired);
        assert!(!may_retry(&expired));
        assert!(!may_retry(&Error::from_close(3000, "", None)));
        assert!(!may_retry(&Error::from_close(4000, "", None)));
        assert!(may_retry(&Error::http(503, None)));
        assert!(!may_retry(&Error::http(401, None)));
    }
}
