//! The session core both halves share: which connection is live (and the one that replaces
//! it), the conversation as the events half has applied it, and the feed of sent events
//! that layers see.
//!
//! The live connection is a cell, not a field of each sender: every [`SessionSender`]
//! clone reads it (an atomic generation check, then a cached handle), so clones held by the
//! capture task, by tools and by user tasks keep working when the connection is swapped.
//!
//! [`SessionSender`]: crate::SessionSender

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_channel::mpsc;
use futures_util::task::AtomicWaker;
use reelthyme_schema::state::Conversation;
use reelthyme_schema::{ClientEvent, ServerEvent};
use reelthyme_transport::{
    AudioChunk, Connection, Error, ErrorKind, FrameReceiver, FrameSender, MediaReceiver, Result,
};
use tokio::sync::{Notify, broadcast};

use crate::config::Config;
use crate::reconnect::{Held, Hold, ReconnectEvent};

/// Sent events a lagging events half may fall behind by before it is told it missed some.
const SENT_FEED: usize = 512;

/// A connection ready to take over: its receiver, and the `session.created` already read.
pub(crate) struct Next {
    pub(crate) generation: u64,
    pub(crate) receiver: FrameReceiver,
    pub(crate) first: ServerEvent,
}

#[derive(Default)]
struct Live {
    generation: u64,
    /// The live connection's sender; `None` once it ended.
    frames: Option<FrameSender>,
    /// Why the last connection ended.
    ended: Option<Error>,
    /// A new connection the events half has not switched to yet.
    next: Option<Next>,
    reconnecting: bool,
    /// The user closed the session: no more connections.
    closed: bool,
    /// Sends held while a reconnect or a rotation is under way (`Some` while holding).
    hold: Option<Hold>,
    /// The reconnect gave up: why (every later send fails with it).
    gave_up: Option<Error>,
}

/// A connection made live: the one it replaced, and the appends the hold dropped (count,
/// bytes).
pub(crate) type Installed = (Option<FrameSender>, (usize, u64));

/// What [`Core::hold`] did with a send.
pub(crate) enum Holding {
    /// Held for the next connection.
    Held,
    /// Not holding: send it as usual (boxed: an event is large, and this is rare).
    Open(Box<(String, Option<ClientEvent>)>),
    /// Not held (the queue is full, or the reconnect gave up): the error says why.
    Refused(Error),
}

pub(crate) struct Core {
    pub(crate) config: Config,
    pub(crate) span: tracing::Span,
    generation: AtomicU64,
    live: Mutex<Live>,
    /// Woken when the live connection changes (senders waiting out an outage).
    changed: Notify,
    /// The events half, waiting for a new connection.
    events: AtomicWaker,
    conversation: RwLock<Conversation>,
    sent: broadcast::Sender<Arc<ClientEvent>>,
    /// Whether sends are held (mirrors `Live::hold`, for the senders' fast path).
    holding: AtomicBool,
    /// Reconnect reports.
    reports: broadcast::Sender<ReconnectEvent>,
    /// The live connection's audio tracks, when its transport carries them (WebRTC).
    media: Mutex<Tracks>,
    /// The player `stream` plays on: `capture_audio` cancels its echo.
    #[cfg(feature = "audio")]
    pub(crate) speaker: crate::audio::SpeakerSlot,
}

/// A connection's audio tracks and call id, as the session hands them out.
#[derive(Default)]
#[cfg_attr(not(feature = "audio"), allow(dead_code))]
struct Tracks {
    generation: u64,
    outgoing: Option<mpsc::Sender<AudioChunk>>,
    /// Until the audio layer takes it.
    incoming: Option<MediaReceiver>,
    call_id: Option<String>,
}

impl Tracks {
    fn of(generation: u64, connection: &mut Connection) -> Self {
        let (outgoing, incoming) = connection
            .media
            .take()
            .map(|media| media.into_parts())
            .unzip();
        Self {
            generation,
            outgoing,
            incoming,
            call_id: connection.call_id.clone(),
        }
    }
}

impl Core {
    /// The core of a session on `connection`, whose media and call id it keeps; the frame
    /// halves stay with the caller.
    pub(crate) fn new(
        config: Config,
        span: tracing::Span,
        connection: &mut Connection,
    ) -> Arc<Self> {
        let frames = connection.sender.clone();
        let media = Tracks::of(0, connection);
        Arc::new(Self {
            config,
            span,
            generation: AtomicU64::new(0),
            live: Mutex::new(Live {
                frames: Some(frames),
                ..Live::default()
            }),
            changed: Notify::new(),
            events: AtomicWaker::new(),
            conversation: RwLock::new(Conversation::default()),
            sent: broadcast::channel(SENT_FEED).0,
            holding: AtomicBool::new(false),
            reports: broadcast::channel(64).0,
            media: Mutex::new(media),
            #[cfg(feature = "audio")]
            speaker: Default::default(),
        })
    }

    fn tracks(&self) -> std::sync::MutexGuard<'_, Tracks> {
        self.media
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The live connection's outgoing audio track, if its transport carries audio as tracks.
    #[cfg(feature = "audio")]
    pub(crate) fn audio_track(&self) -> Option<mpsc::Sender<AudioChunk>> {
        self.tracks().outgoing.clone()
    }

    /// The live connection's incoming audio track, once per connection, with its generation.
    #[cfg(feature = "audio")]
    pub(crate) fn take_incoming_audio(&self) -> Option<(u64, MediaReceiver)> {
        let mut tracks = self.tracks();
        let generation = tracks.generation;
        tracks
            .incoming
            .take()
            .map(|incoming| (generation, incoming))
    }

    /// Whether the live connection carries audio as tracks.
    #[cfg(feature = "audio")]
    pub(crate) fn has_tracks(&self) -> bool {
        self.tracks().outgoing.is_some()
    }

    /// The server's id for the live connection's call (WebRTC).
    pub(crate) fn call_id(&self) -> Option<String> {
        self.tracks().call_id.clone()
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        // A panic while holding this lock cannot leave it inconsistent (every update is
        // one assignment), so a poisoned lock is still good.
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The generation of the live connection (bumped by every swap).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The live connection's sender, if one is live.
    pub(crate) fn current(&self) -> Option<(u64, FrameSender)> {
        let live = self.live();
        live.frames.clone().map(|frames| (live.generation, frames))
    }

    /// Why there is no live connection.
    pub(crate) fn ended_error(&self) -> Error {
        let live = self.live();
        if let Some(error) = &live.gave_up {
            return error.details();
        }
        match &live.ended {
            Some(error) => error.details(),
            None if live.closed => Error::new(ErrorKind::Closed, "the session is closed"),
            None => Error::new(ErrorKind::Closed, "the connection is closed"),
        }
    }

    /// The events half saw connection `generation` end.
    pub(crate) fn connection_ended(&self, generation: u64, error: Option<&Error>) {
        let mut live = self.live();
        // Once per connection: the first report is its verdict.
        if live.generation == generation && live.frames.is_some() {
            live.frames = None;
            live.ended = Some(error.map_or_else(
                || Error::new(ErrorKind::Closed, "the connection closed"),
                Error::details,
            ));
            drop(live);
            self.changed.notify_waiters();
        }
    }

    /// The connection that replaced `generation`, once.
    pub(crate) fn take_next(&self, generation: u64) -> Option<Next> {
        let mut live = self.live();
        match &live.next {
            Some(next) if next.generation > generation => live.next.take(),
            _ => None,
        }
    }

    pub(crate) fn is_reconnecting(&self) -> bool {
        self.live().reconnecting
    }

    pub(crate) fn register_events(&self, waker: &std::task::Waker) {
        self.events.register(waker);
    }

    /// Marks a reconnect as started.
    pub(crate) fn begin_reconnect(&self) -> Result<()> {
        let mut live = self.live();
        if live.closed {
            return Err(Error::new(ErrorKind::Closed, "the session is closed"));
        }
        if live.reconnecting {
            return Err(Error::new(
                ErrorKind::Config,
                "a reconnect is already under way",
            ));
        }
        live.reconnecting = true;
        Ok(())
    }

    /// A reconnect failed: whoever waits for it learns so.
    pub(crate) fn reconnect_failed(&self) {
        self.live().reconnecting = false;
        self.changed.notify_waiters();
        self.events.wake();
    }

    /// Makes a new connection the live one; returns the old sender (to close).
    pub(crate) fn install(
        &self,
        mut connection: Connection,
        first: ServerEvent,
    ) -> Option<FrameSender> {
        // The new server session is the one every sender sees from now on (its formats
        // drive capture), even while the stream still yields the old connection's last
        // events; the stream does not apply it again.
        self.write(|conversation| conversation.apply_server(&first));
        let mut live = self.live();
        live.generation += 1;
        let generation = live.generation;
        *self.tracks() = Tracks::of(generation, &mut connection);
        let old = live.frames.replace(connection.sender);
        live.next = Some(Next {
            generation,
            receiver: connection.receiver,
            first,
        });
        live.reconnecting = false;
        live.ended = None;
        self.generation.store(generation, Ordering::Release);
        drop(live);
        self.changed.notify_waiters();
        self.events.wake();
        old
    }

    /// Makes a new connection live once nothing is held: `Err` gives it back when sends
    /// are still held (deliver them first). Ends the hold.
    /// Also returns the appends the hold dropped, and their bytes.
    pub(crate) fn install_when_drained(
        &self,
        connection: Connection,
        first: ServerEvent,
    ) -> std::result::Result<Installed, Box<(Connection, ServerEvent)>> {
        let dropped = {
            let mut live = self.live();
            if live.hold.as_ref().is_some_and(|hold| hold.len() > 0) {
                return Err(Box::new((connection, first)));
            }
            let hold = live.hold.take();
            self.holding.store(false, Ordering::Release);
            hold.map_or((0, 0), |hold| (hold.dropped_appends, hold.dropped_bytes))
        };
        Ok((self.install(connection, first), dropped))
    }

    /// Starts holding sends, unless the session is closed, gave up, or has moved past
    /// connection `generation` already. Returns whether sends are held.
    pub(crate) fn begin_hold(&self, generation: u64) -> bool {
        let mut live = self.live();
        if live.closed || live.gave_up.is_some() || live.generation != generation {
            return live.hold.is_some();
        }
        if live.hold.is_none() {
            live.hold = Some(Hold::default());
            self.holding.store(true, Ordering::Release);
        }
        true
    }

    /// Whether sends are held.
    pub(crate) fn holding(&self) -> bool {
        self.holding.load(Ordering::Acquire)
    }

    /// Holds a send while a reconnect is under way.
    pub(crate) fn hold(&self, text: String, event: Option<ClientEvent>) -> Holding {
        let Some(policy) = &self.config.reconnect else {
            return Holding::Open(Box::new((text, event)));
        };
        let mut live = self.live();
        if let Some(error) = &live.gave_up {
            return Holding::Refused(error.details());
        }
        let Some(hold) = live.hold.as_mut() else {
            return Holding::Open(Box::new((text, event)));
        };
        let now = std::time::Instant::now();
        let held = match event {
            Some(event) => Held::event(text, event, now),
            None => Held::frame(text, now),
        };
        if hold.push(held, policy) {
            Holding::Held
        } else {
            Holding::Refused(Error::new(
                ErrorKind::Rejected,
                format!(
                    "the session is reconnecting and {} events are held already (the most \
                     it holds): this one was not sent",
                    hold.len()
                ),
            ))
        }
    }

    /// The next held send, if any.
    pub(crate) fn take_held(&self) -> Option<Held> {
        let policy = self.config.reconnect.as_ref()?;
        self.live().hold.as_mut()?.pop(policy)
    }

    /// Puts frames back in front of the held sends (in order).
    pub(crate) fn hold_front(&self, frames: Vec<Held>) {
        if let Some(hold) = self.live().hold.as_mut() {
            hold.push_front(frames.into_iter());
        }
    }

    /// Ends holding without a new connection (a rotation that failed while the old one
    /// is still live): the held sends, to deliver on it.
    pub(crate) fn end_hold(&self) -> Vec<Held> {
        let mut live = self.live();
        let mut held = Vec::new();
        if let (Some(hold), Some(policy)) = (live.hold.as_mut(), self.config.reconnect.as_ref()) {
            while let Some(next) = hold.pop(policy) {
                held.push(next);
            }
        }
        live.hold = None;
        self.holding.store(false, Ordering::Release);
        drop(live);
        self.changed.notify_waiters();
        held
    }

    /// The reconnect gave up with `error`: whatever is held is not delivered (its count is
    /// returned), and every later send fails with `error`.
    pub(crate) fn give_up(&self, error: &Error) -> usize {
        let mut live = self.live();
        let undelivered = live.hold.take().map_or(0, |hold| hold.len());
        self.holding.store(false, Ordering::Release);
        live.gave_up = Some(error.details());
        live.reconnecting = false;
        drop(live);
        self.changed.notify_waiters();
        undelivered
    }

    /// Why the reconnect gave up, if it did.
    pub(crate) fn gave_up(&self) -> Option<Error> {
        self.live().gave_up.as_ref().map(Error::details)
    }

    /// Marks a supervised reconnect as under way (a manual one is refused meanwhile).
    pub(crate) fn supervising(&self) {
        self.live().reconnecting = true;
    }

    /// Whether the session was closed by the user.
    pub(crate) fn is_closed(&self) -> bool {
        self.live().closed
    }

    /// Publishes a reconnect report.
    pub(crate) fn report(&self, event: ReconnectEvent) {
        tracing::info!(parent: &self.span, "{event}");
        // Nobody listening is fine.
        let _ = self.reports.send(event);
    }

    pub(crate) fn subscribe_reports(&self) -> broadcast::Receiver<ReconnectEvent> {
        self.reports.subscribe()
    }

    /// Waits until nothing is held (delivered, or given up), or `timeout` passed.
    pub(crate) async fn wait_unheld(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if !self.holding() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// Every user sender is gone: let the connection go (its transport closes it once the
    /// last handle drops), and open no new one.
    pub(crate) fn release(&self) {
        let mut live = self.live();
        live.closed = true;
        live.frames = None;
        live.next = None;
        live.hold = None;
        self.holding.store(false, Ordering::Release);
        drop(live);
        self.changed.notify_waiters();
    }

    /// The user closed the session.
    pub(crate) fn close(&self) -> Option<FrameSender> {
        let mut live = self.live();
        live.closed = true;
        live.frames.clone()
    }

    /// Waits until the live connection is newer than `generation`, or a reconnect failed,
    /// or `timeout` passed. Returns whether a newer one is live.
    pub(crate) async fn wait_for_newer(&self, generation: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            {
                let live = self.live();
                if live.generation > generation && live.frames.is_some() {
                    return true;
                }
                if live.closed {
                    return false;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// Tells the layers an event was queued for sending.
    pub(crate) fn sent(&self, event: ClientEvent) {
        // No receiver (the events half is gone) is fine: nobody is watching.
        let _ = self.sent.send(Arc::new(event));
    }

    pub(crate) fn subscribe_sent(&self) -> broadcast::Receiver<Arc<ClientEvent>> {
        self.sent.subscribe()
    }

    /// Reads the conversation.
    pub(crate) fn read<R>(&self, read: impl FnOnce(&Conversation) -> R) -> R {
        read(
            &self
                .conversation
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Updates the conversation.
    pub(crate) fn write<R>(&self, write: impl FnOnce(&mut Conversation) -> R) -> R {
        write(
            &mut self
                .conversation
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}
