//! The session core both halves share: which connection is live (and the one that replaces
//! it), the conversation as the events half has applied it, and the feed of sent events
//! that layers see.
//!
//! The live connection is a cell, not a field of each sender: every [`SessionSender`]
//! clone reads it (an atomic generation check, then a cached handle), so clones held by the
//! capture task, by tools and by user tasks keep working when the connection is swapped.
//!
//! [`SessionSender`]: crate::SessionSender

use std::sync::atomic::{AtomicU64, Ordering};
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
    /// The live connection's audio tracks, when its transport carries them (WebRTC).
    media: Mutex<Tracks>,
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
            media: Mutex::new(media),
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

    /// Every user sender is gone: let the connection go (its transport closes it once the
    /// last handle drops), and open no new one.
    pub(crate) fn release(&self) {
        let mut live = self.live();
        live.closed = true;
        live.frames = None;
        live.next = None;
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
