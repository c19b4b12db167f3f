//! The frame pipe between a connection's users and the task that drives it: the seam every
//! transport is built on (the WebSocket here, a WebRTC data channel, the simulator's
//! in-process connection, your own). [`pipe`] gives the users' halves ([`FrameSender`],
//! [`FrameReceiver`]) and the transport's end ([`Link`]); the transport moves [`Command`]s
//! from [`Link::outbox`] to its wire and frames from its wire into [`Link::inbox`], then
//! calls [`Link::finish`] once. The contract it then keeps for every transport:
//!
//! - Outgoing frames queue in a bounded channel ([`Queues::send_queue`]); a full queue
//!   makes `send` wait, it never drops.
//! - Incoming frames queue in a channel bounded both in frames ([`Queues::receive_queue`])
//!   and in bytes ([`Queues::receive_bytes`]); when either is full the transport stops
//!   reading, so memory stays bounded whatever the peer or the consumer does. Each frame is
//!   stamped with the instant it arrived ([`Frame::received_at`]).
//! - When the connection ends, every frame a sender queued but the transport never wrote
//!   is collected, in order, into the error that ended it ([`Error::unsent`]): nothing
//!   accepted is lost without the caller being told which frames were not sent.
//! - One verdict per connection: the task settles why it ended (the reader's close code and
//!   the server's error win over a writer's generic failure) *before* any waiting sender is
//!   woken, so every sender and the event stream see the same, complete reason.

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use futures_channel::{mpsc, oneshot};
use futures_core::Stream;
use futures_sink::Sink;
use futures_util::SinkExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::error::{Error, ErrorKind, Result};

/// The bounds of a pipe (see [`Options::queues`](crate::Options::queues)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Queues {
    /// Frames that may wait to be written; a burst beyond waits, nothing drops.
    pub send_queue: usize,
    /// Frames that may wait to be read; beyond, the transport stops reading.
    pub receive_queue: usize,
    /// Bytes of frames that may wait to be read; beyond, the transport stops reading.
    pub receive_bytes: usize,
}

impl Queues {
    /// Bounds in frames and bytes (each at least 1).
    pub fn new(send_queue: usize, receive_queue: usize, receive_bytes: usize) -> Self {
        Self {
            send_queue: send_queue.max(1),
            receive_queue: receive_queue.max(1),
            receive_bytes: receive_bytes.max(1),
        }
    }
}

/// A text frame received, stamped with the instant the transport read it (before it waited
/// in the receive queue): what latency metrics measure from. Reads as a `str`.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    text: String,
    received_at: Instant,
}

impl Frame {
    /// A frame received now.
    pub fn new(text: impl Into<String>) -> Self {
        Self::at(text, Instant::now())
    }

    /// A frame received at `instant`.
    pub fn at(text: impl Into<String>, instant: Instant) -> Self {
        Self {
            text: text.into(),
            received_at: instant,
        }
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// When the transport read it.
    pub fn received_at(&self) -> Instant {
        self.received_at
    }

    /// The text, owned.
    pub fn into_text(self) -> String {
        self.text
    }
}

impl Deref for Frame {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl AsRef<str> for Frame {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl PartialEq<str> for Frame {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<&str> for Frame {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Frames can be megabytes of base64 audio: show their start.
        let end = self
            .text
            .char_indices()
            .nth(120)
            .map_or(self.text.len(), |(i, _)| i);
        f.debug_struct("Frame")
            .field("text", &&self.text[..end])
            .field("len", &self.text.len())
            .finish()
    }
}

impl From<Frame> for String {
    fn from(frame: Frame) -> Self {
        frame.text
    }
}

/// What a sender asks of the transport, in the order they asked.
#[non_exhaustive]
pub enum Command {
    /// A text frame to write.
    Text(String),
    /// Answer ([`Flushed::done`]) once every frame queued before it is written.
    Flush(Flushed),
    /// End the connection (a close handshake where the transport has one) after the frames
    /// queued before it; keep it until the end, and hand it to [`End::close_requests`].
    Close(CloseRequest),
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => write!(f, "Text({} bytes)", text.len()),
            Self::Flush(_) => f.write_str("Flush"),
            Self::Close(_) => f.write_str("Close"),
        }
    }
}

/// A sender waiting for its frames to be written.
#[derive(Debug)]
pub struct Flushed(oneshot::Sender<()>);

impl Flushed {
    /// Every frame queued before the flush is written: wake the sender.
    pub fn done(self) {
        let _ = self.0.send(());
    }
}

/// A sender waiting for the connection to end after its close.
#[derive(Debug)]
pub struct CloseRequest(oneshot::Sender<Result<()>>);

/// A frame on its way to the consumer, with the share of the byte budget it holds.
struct Delivery {
    item: Result<Frame>,
    _permit: Option<OwnedSemaphorePermit>,
}

/// State shared by the ends of one pipe.
#[derive(Debug, Default)]
struct Shared {
    /// The settled reason the connection ended.
    failure: Mutex<Option<Error>>,
    /// Set once `failure` is final (by [`Link::finish`], or when the link is dropped
    /// without one). Closing the outbox wakes senders *before* the unsent frames are
    /// collected and the verdict recorded; a sender refused in between waits for this.
    settled: watch::Sender<bool>,
}

impl Shared {
    fn closed_error(&self) -> Error {
        match &*self.failure.lock().expect("failure lock") {
            Some(error) => error.details(),
            None => Error::new(ErrorKind::Closed, "the connection is closed"),
        }
    }

    /// The verdict for a sender the closed outbox refused: once it is settled (the
    /// transport settles it right after closing the outbox; it cannot outlive the link).
    async fn verdict(&self) -> Error {
        let _ = self.settled.subscribe().wait_for(|settled| *settled).await;
        self.closed_error()
    }
}

/// Creates a pipe: the users' two halves and the transport's end.
///
/// A transport hands the halves to its caller (as a [`Connection`](crate::Connection)) and
/// drives the [`Link`] from a task of its own until the connection ends.
pub fn pipe(queues: Queues) -> (FrameSender, FrameReceiver, Link) {
    let limits = Queues::new(
        queues.send_queue,
        queues.receive_queue,
        queues.receive_bytes,
    );
    let (command_tx, command_rx) = mpsc::channel(limits.send_queue);
    // futures' channel holds `buffer + senders` items; the link is the only sender.
    let (event_tx, event_rx) = mpsc::channel(limits.receive_queue - 1);
    let shared = Arc::new(Shared::default());
    let budget = Arc::new(Semaphore::new(limits.receive_bytes));
    (
        FrameSender {
            tx: command_tx,
            shared: shared.clone(),
            pending: None,
        },
        FrameReceiver { rx: event_rx },
        Link {
            outbox: Outbox {
                commands: command_rx,
                _settle: Settle(shared.clone()),
            },
            inbox: Inbox {
                events: event_tx,
                budget,
                receive_bytes: limits.receive_bytes,
                consumer_gone: false,
            },
            shared,
        },
    )
}

type Pending = Pin<Box<dyn Future<Output = Result<()>> + Send + Sync>>;

/// The sending half: cheap to clone, each clone can send from its own task.
pub struct FrameSender {
    tx: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    /// A flush or close started through the `Sink` interface.
    pending: Option<Pending>,
}

impl Clone for FrameSender {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
            pending: None,
        }
    }
}

impl fmt::Debug for FrameSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameSender")
            .field("closed", &self.tx.is_closed())
            .finish_non_exhaustive()
    }
}

impl FrameSender {
    /// Queues a text frame, waiting while the queue is full. `Ok` means *queued*: if the
    /// connection ends before the frame is written, the error that ended it lists it in
    /// [`Error::unsent`].
    ///
    /// # Errors
    /// When the connection has ended (the error says why).
    pub async fn send(&mut self, text: String) -> Result<()> {
        match self.tx.send(Command::Text(text)).await {
            Ok(()) => Ok(()),
            Err(_) => Err(self.shared.verdict().await),
        }
    }

    /// Queues a text frame as [`FrameSender::send`] does, but when the connection has
    /// ended gives the frame back with the error: a session-level sender can then offer it
    /// to the next connection instead of losing it.
    ///
    /// # Errors
    /// When the connection has ended: the error that ended it, and the frame.
    pub async fn send_or_return(
        &mut self,
        text: String,
    ) -> std::result::Result<(), (Error, String)> {
        if std::future::poll_fn(|cx| self.tx.poll_ready(cx))
            .await
            .is_err()
        {
            return Err((self.shared.verdict().await, text));
        }
        // `poll_ready` reserved this sender's slot: `try_send` takes it, or gives the frame
        // back if the connection ended in between.
        match self.tx.try_send(Command::Text(text)) {
            Ok(()) => Ok(()),
            Err(refused) => {
                let text = match refused.into_inner() {
                    Command::Text(text) => text,
                    _ => String::new(),
                };
                Err((self.shared.verdict().await, text))
            }
        }
    }

    /// Whether the connection has ended (nothing more can be queued).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Waits until every frame this sender queued before the call is written to the socket.
    ///
    /// # Errors
    /// When the connection ended before they were.
    pub async fn flush(&mut self) -> Result<()> {
        flush(self.tx.clone(), self.shared.clone()).await
    }

    /// Closes the connection with code 1000 after the frames already queued, and waits
    /// until the peer has answered the close (bounded by the transport's close timeout).
    /// Frames other senders queue after it are not sent; they are listed in the error
    /// those senders get.
    ///
    /// # Errors
    /// When the connection had already ended, or the peer did not answer the close in time
    /// ([`ErrorKind::Timeout`]).
    pub async fn close(&mut self) -> Result<()> {
        close(self.tx.clone(), self.shared.clone()).await
    }

    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let Some(pending) = self.pending.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let result = std::task::ready!(pending.as_mut().poll(cx));
        self.pending = None;
        Poll::Ready(result)
    }
}

async fn flush(mut tx: mpsc::Sender<Command>, shared: Arc<Shared>) -> Result<()> {
    let (done, written) = oneshot::channel();
    if tx.send(Command::Flush(Flushed(done))).await.is_err() {
        return Err(shared.verdict().await);
    }
    // A flush dropped unanswered: the frames were not all written.
    match written.await {
        Ok(()) => Ok(()),
        Err(_) => Err(shared.verdict().await),
    }
}

async fn close(mut tx: mpsc::Sender<Command>, shared: Arc<Shared>) -> Result<()> {
    let (done, ended) = oneshot::channel();
    if tx.send(Command::Close(CloseRequest(done))).await.is_err() {
        return Err(shared.verdict().await);
    }
    match ended.await {
        Ok(answer) => answer,
        Err(_) => Err(shared.verdict().await),
    }
}

impl Sink<String> for FrameSender {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let shared = self.shared.clone();
        self.tx.poll_ready(cx).map_err(|_| shared.closed_error())
    }

    fn start_send(mut self: Pin<&mut Self>, text: String) -> Result<()> {
        let shared = self.shared.clone();
        self.tx
            .start_send(Command::Text(text))
            .map_err(|_| shared.closed_error())
    }

    /// Completes when the frames queued so far are written to the socket, as
    /// [`FrameSender::flush`] does.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.pending.is_none() {
            self.pending = Some(Box::pin(flush(self.tx.clone(), self.shared.clone())));
        }
        self.poll_pending(cx)
    }

    /// Closes the *connection* (for every clone), as [`FrameSender::close`] does.
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.pending.is_none() {
            self.pending = Some(Box::pin(close(self.tx.clone(), self.shared.clone())));
        }
        self.poll_pending(cx)
    }
}

/// The receiving half: text frames as they arrive (stamped with their arrival), then — if
/// the connection ended abnormally, or ended with frames unsent — one `Err` saying why, then
/// the end.
#[derive(Debug)]
pub struct FrameReceiver {
    rx: mpsc::Receiver<Delivery>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery").finish_non_exhaustive()
    }
}

impl Stream for FrameReceiver {
    type Item = Result<Frame>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Dropping the delivery returns its bytes to the budget.
        Pin::new(&mut self.rx)
            .poll_next(cx)
            .map(|delivery| delivery.map(|d| d.item))
    }
}

/// How a connection ended, as its transport saw it: what [`Link::finish`] needs to settle
/// the verdict. Built with [`End::new`] and the setters.
#[derive(Debug, Default)]
#[must_use]
pub struct End {
    error: Option<Error>,
    in_flight: Option<String>,
    held: Vec<Result<Frame>>,
    close_requests: Vec<CloseRequest>,
    unanswered_flushes: Vec<Flushed>,
    close_answered: bool,
}

impl End {
    /// Why it ended; `None` for a clean close.
    pub fn new(error: Option<Error>) -> Self {
        Self {
            error,
            ..Self::default()
        }
    }

    /// A frame whose write had started but not completed: it may or may not have reached
    /// the peer, and is reported unsent, first.
    pub fn in_flight(mut self, text: Option<String>) -> Self {
        self.in_flight = text;
        self
    }

    /// Items read but not yet delivered to the consumer (they are delivered before the
    /// verdict).
    pub fn held(mut self, items: Vec<Result<Frame>>) -> Self {
        self.held = items;
        self
    }

    /// `close()` calls waiting for the end.
    pub fn close_requests(mut self, requests: Vec<CloseRequest>) -> Self {
        self.close_requests = requests;
        self
    }

    /// `flush()` calls that could not complete (their senders get the verdict).
    pub fn unanswered_flushes(mut self, flushes: Vec<Flushed>) -> Self {
        self.unanswered_flushes = flushes;
        self
    }

    /// Whether the peer answered (or started) the close: a clean end of the transport's
    /// close handshake (default `false`: a `close()` then times out).
    pub fn close_answered(mut self, answered: bool) -> Self {
        self.close_answered = answered;
        self
    }
}

/// The transport's end of a pipe: the sending users' commands ([`Link::outbox`]) and the
/// consumer's queue ([`Link::inbox`]), which a transport may drive from two concurrent
/// halves, then [`Link::finish`].
pub struct Link {
    /// What the senders queued.
    pub outbox: Outbox,
    /// Where received frames go.
    pub inbox: Inbox,
    shared: Arc<Shared>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link").finish_non_exhaustive()
    }
}

/// What the senders queued, in order.
#[derive(Debug)]
pub struct Outbox {
    commands: mpsc::Receiver<Command>,
    _settle: Settle,
}

/// Settles the pipe's end when the outbox goes (after [`Link::finish`], or without one when
/// the transport dropped it): no sender waits for a verdict that cannot come.
#[derive(Debug)]
struct Settle(Arc<Shared>);

impl Drop for Settle {
    fn drop(&mut self) {
        self.0.settled.send_replace(true);
    }
}

impl Outbox {
    /// The next command, `None` once every sender is gone (the users dropped the
    /// connection: close it politely). Cancel-safe.
    pub async fn next_command(&mut self) -> Option<Command> {
        futures_util::StreamExt::next(&mut self.commands).await
    }

    /// Stops taking commands (after a close): what is still queued will be reported unsent.
    pub fn stop(&mut self) {
        self.commands.close();
    }
}

/// Room reserved in the consumer's queue for one item (cancel-safe to wait for).
#[derive(Debug)]
pub struct Slot(Option<OwnedSemaphorePermit>);

/// The consumer's queue, bounded in frames and bytes.
#[derive(Debug)]
pub struct Inbox {
    events: mpsc::Sender<Delivery>,
    budget: Arc<Semaphore>,
    receive_bytes: usize,
    consumer_gone: bool,
}

impl Inbox {
    /// Waits for room for an item of `bytes` bytes (in frames and in bytes). Cancel-safe:
    /// dropping the wait loses nothing. `None` when the consumer is gone: the item is then
    /// dropped, and the transport keeps reading so that queued sends and the close
    /// handshake complete.
    pub async fn ready(&mut self, bytes: usize) -> Option<Slot> {
        if self.consumer_gone {
            return None;
        }
        // A frame larger than the whole budget (the transport's size cap prevents it)
        // takes all of it.
        let bytes = u32::try_from(bytes.clamp(1, self.receive_bytes)).unwrap_or(u32::MAX);
        let permit = self.budget.clone().acquire_many_owned(bytes).await.ok();
        if std::future::poll_fn(|cx| self.events.poll_ready(cx))
            .await
            .is_err()
        {
            self.consumer_gone = true;
            return None;
        }
        Some(Slot(permit))
    }

    /// Queues an item into the room `slot` reserved. An `Err` item is a failure of one
    /// frame that the consumer should see (a binary frame, say); the connection's end is
    /// [`End`]'s, not an item.
    pub fn push(&mut self, slot: Slot, item: Result<Frame>) {
        if self
            .events
            .start_send(Delivery {
                item,
                _permit: slot.0,
            })
            .is_err()
        {
            self.consumer_gone = true;
        }
    }

    /// Waits for room, then queues the item (`ready` + `push`).
    pub async fn deliver(&mut self, item: Result<Frame>) {
        let bytes = item.as_ref().map_or(1, |frame| frame.len());
        if let Some(slot) = self.ready(bytes).await {
            self.push(slot, item);
        }
    }
}

impl Link {
    /// Settles the end of the connection: collects what was queued but never written,
    /// records the verdict (so that senders woken from now on see it), answers the pending
    /// close and flush requests, then delivers the held items and the verdict to the
    /// consumer.
    ///
    /// Call it once, when the transport has stopped reading and writing.
    pub async fn finish(mut self, end: End) {
        let End {
            error,
            in_flight,
            held,
            close_requests,
            unanswered_flushes,
            close_answered,
        } = end;
        let mut close_acks: Vec<_> = close_requests.into_iter().map(|r| r.0).collect();
        let commands = &mut self.outbox.commands;
        commands.close();
        let mut unsent: Vec<String> = in_flight.into_iter().collect();
        while let Ok(command) = commands.try_recv() {
            match command {
                Command::Text(text) => unsent.push(text),
                // Dropping it tells the flusher the frames were not all written.
                Command::Flush(_) => {}
                Command::Close(request) => close_acks.push(request.0),
            }
        }
        let verdict = match error {
            Some(error) => Some(error.with_unsent(unsent)),
            None if unsent.is_empty() => None,
            // A clean close, but with frames still queued: they must be reported.
            None => {
                let error = Error::new(
                    ErrorKind::Closed,
                    format!(
                        "the connection closed normally with {} queued frame(s) unsent",
                        unsent.len()
                    ),
                )
                .with_unsent(unsent);
                Some(if close_answered {
                    error.with_close_code(1000).with_normal_close()
                } else {
                    error
                })
            }
        }
        .map(Error::into_terminal);
        if let Some(error) = &verdict {
            *self.shared.failure.lock().expect("failure lock") = Some(error.details());
        }
        self.shared.settled.send_replace(true);
        drop(unanswered_flushes);
        for ack in close_acks {
            let answer = match &verdict {
                Some(error) => Err(error.details()),
                // The close went out but the peer never answered it.
                None if !close_answered => Err(Error::new(
                    ErrorKind::Timeout,
                    "the server did not answer the close in time",
                )),
                None => Ok(()),
            };
            let _ = ack.send(answer);
        }
        for item in held {
            self.inbox.deliver(item).await;
        }
        if let Some(error) = verdict {
            self.inbox.deliver(Err(error)).await;
        }
    }
}
