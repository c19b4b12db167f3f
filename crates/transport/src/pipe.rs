//! The frame pipe between a connection's users and the task that drives its socket.
//!
//! Transport-neutral: the WebSocket task is one end of it today; a WebRTC data channel can
//! be another. Its contract:
//!
//! - Outgoing frames queue in a bounded channel ([`Limits::send_queue`]); a full queue
//!   makes `send` wait, it never drops.
//! - Incoming frames queue in a channel bounded both in frames ([`Limits::receive_queue`])
//!   and in bytes ([`Limits::receive_bytes`]); when either is full the transport stops
//!   reading, so memory stays bounded whatever the peer or the consumer does.
//! - When the connection ends, every frame a sender queued but the transport never wrote
//!   is collected, in order, into the error that ended it ([`Error::unsent`]): nothing
//!   accepted is lost without the caller being told which frames were not sent.
//! - One verdict per connection: the task settles why it ended (the reader's close code and
//!   the server's error win over a writer's generic failure) *before* any waiting sender is
//!   woken, so every sender and the event stream see the same, complete reason.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_channel::{mpsc, oneshot};
use futures_core::Stream;
use futures_sink::Sink;
use futures_util::SinkExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, ErrorKind, Result};

/// The bounds of a pipe.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) send_queue: usize,
    pub(crate) receive_queue: usize,
    pub(crate) receive_bytes: usize,
}

/// What a sender asks of the transport.
pub(crate) enum Command {
    Text(String),
    /// Answer once every frame queued before it is written.
    Flush(oneshot::Sender<()>),
    /// Write a close frame, then answer once the connection has ended (the peer answered
    /// the close, or the close timed out).
    Close(u16, String, Option<oneshot::Sender<Result<()>>>),
}

/// A frame on its way to the consumer, with the share of the byte budget it holds.
struct Delivery {
    item: Result<String>,
    _permit: Option<OwnedSemaphorePermit>,
}

/// State shared by the ends of one pipe.
#[derive(Debug, Default)]
struct Shared {
    /// The settled reason the connection ended; set before senders are woken.
    failure: Mutex<Option<Error>>,
}

impl Shared {
    fn closed_error(&self) -> Error {
        match &*self.failure.lock().expect("failure lock") {
            Some(error) => error.details(),
            None => Error::new(ErrorKind::Closed, "the connection is closed"),
        }
    }
}

/// Creates a pipe: the users' two halves and the transport's end.
pub(crate) fn pipe(limits: Limits) -> (FrameSender, FrameReceiver, Link) {
    let (command_tx, command_rx) = mpsc::channel(limits.send_queue.max(1));
    // futures' channel holds `buffer + senders` items; the link is the only sender.
    let (event_tx, event_rx) = mpsc::channel(limits.receive_queue.max(1) - 1);
    let shared = Arc::new(Shared::default());
    let budget = Arc::new(Semaphore::new(limits.receive_bytes.max(1)));
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
            },
            inbox: Inbox {
                events: event_tx,
                budget,
                receive_bytes: limits.receive_bytes.max(1),
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
        self.tx
            .send(Command::Text(text))
            .await
            .map_err(|_| self.shared.closed_error())
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
    tx.send(Command::Flush(done))
        .await
        .map_err(|_| shared.closed_error())?;
    written.await.map_err(|_| shared.closed_error())
}

async fn close(mut tx: mpsc::Sender<Command>, shared: Arc<Shared>) -> Result<()> {
    let (done, ended) = oneshot::channel();
    tx.send(Command::Close(1000, String::new(), Some(done)))
        .await
        .map_err(|_| shared.closed_error())?;
    ended.await.map_err(|_| shared.closed_error())?
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

/// The receiving half: text frames as they arrive, then — if the connection ended
/// abnormally, or ended with frames unsent — one `Err` saying why, then the end.
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
    type Item = Result<String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Dropping the delivery returns its bytes to the budget.
        Pin::new(&mut self.rx)
            .poll_next(cx)
            .map(|delivery| delivery.map(|d| d.item))
    }
}

/// How a connection ended, as its transport saw it.
pub(crate) struct End {
    /// Why it ended; `None` for a clean close.
    pub(crate) error: Option<Error>,
    /// A frame whose write had started but not completed: it may or may not have reached
    /// the peer, and is reported unsent, first.
    pub(crate) in_flight: Option<String>,
    /// Items read but not yet delivered to the consumer.
    pub(crate) held: Vec<Result<String>>,
    /// `close()` calls waiting for the end.
    pub(crate) close_acks: Vec<oneshot::Sender<Result<()>>>,
    /// `flush()` calls that cannot complete.
    pub(crate) unanswered_flushes: Vec<oneshot::Sender<()>>,
    /// Whether the peer answered (or sent) a close frame.
    pub(crate) close_answered: bool,
}

/// The transport's end of a pipe: the sending users' commands (`outbox`) and the
/// consumer's queue (`inbox`), which a transport drives from two concurrent halves.
pub(crate) struct Link {
    pub(crate) outbox: Outbox,
    pub(crate) inbox: Inbox,
    shared: Arc<Shared>,
}

/// What the senders queued.
pub(crate) struct Outbox {
    commands: mpsc::Receiver<Command>,
}

impl Outbox {
    /// The next command, `None` once every sender is gone.
    pub(crate) async fn next_command(&mut self) -> Option<Command> {
        futures_util::StreamExt::next(&mut self.commands).await
    }

    /// Stops taking commands: what is still queued will be reported unsent.
    pub(crate) fn stop(&mut self) {
        self.commands.close();
    }
}

/// Room reserved in the consumer's queue for one item (cancel-safe to wait for).
pub(crate) struct Slot(Option<OwnedSemaphorePermit>);

/// The consumer's queue.
pub(crate) struct Inbox {
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
    pub(crate) async fn ready(&mut self, bytes: usize) -> Option<Slot> {
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

    /// Queues an item into the room `slot` reserved.
    pub(crate) fn push(&mut self, slot: Slot, item: Result<String>) {
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

    async fn deliver(&mut self, item: Result<String>) {
        let bytes = item.as_ref().map_or(1, String::len);
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
    pub(crate) async fn finish(mut self, end: End) {
        let End {
            error,
            in_flight,
            held,
            mut close_acks,
            unanswered_flushes,
            close_answered,
        } = end;
        let commands = &mut self.outbox.commands;
        commands.close();
        let mut unsent: Vec<String> = in_flight.into_iter().collect();
        while let Ok(command) = commands.try_recv() {
            match command {
                Command::Text(text) => unsent.push(text),
                // Dropping it tells the flusher the frames were not all written.
                Command::Flush(_) => {}
                Command::Close(_, _, Some(ack)) => close_acks.push(ack),
                Command::Close(_, _, None) => {}
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
                    error.with_close_code(1000)
                } else {
                    error
                })
            }
        }
        .map(Error::into_terminal);
        if let Some(error) = &verdict {
            *self.shared.failure.lock().expect("failure lock") = Some(error.details());
        }
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
