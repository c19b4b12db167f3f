//! What the session loop needs of a transport, and the writer task it runs on one: text
//! frames in, text frames out, a close with a code and reason, and the peer going away.
//! The WebSocket (`server.rs`) and the in-process pipe (`in_process.rs`) implement it; a
//! WebRTC data channel can too.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::{Recorded, Recorder};

/// What the client did, as the session loop sees it.
#[derive(Debug)]
pub(crate) enum Inbound<T> {
    /// A text frame.
    Text(T),
    /// A binary frame (the API takes text only: an `error` answers it).
    Binary,
    /// The client closed (a close frame, or the pipe's `close()`).
    Closed,
    /// A message over [`crate::session_loop::MAX_MESSAGE`]: an `error`, then close 1009.
    TooLarge,
    /// A frame the transport could not read: close with this code and reason.
    Broken(u16, &'static str),
    /// The client is gone without a close.
    Gone,
}

/// What the writer sends.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A text frame.
    Text(String),
    /// A binary frame (fault injection only).
    Binary(Bytes),
    /// The close, with its code and reason.
    Close(u16, String),
}

/// How the session loop left the transport, for [`EventIo::conclude`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The session sent (or tried to send) its close.
    Closed,
    /// The client closed first.
    PeerClosed,
    /// Dropped without a close: killed, stalled, or the client vanished.
    Dropped,
}

/// The writing half of a transport, run on the writer task.
pub(crate) trait FrameTx: Send + 'static {
    /// Writes one frame; `false` when the transport is gone.
    fn send(&mut self, frame: Outbound) -> impl Future<Output = bool> + Send;
}

/// The reading half of a transport, kept by the session loop, which finishes the transport
/// when the session ends.
pub(crate) trait EventIo: Send + 'static {
    /// A text frame as the transport holds it.
    type Text: AsRef<str> + Send;
    /// The writing half.
    type Tx: FrameTx;
    /// What finishing the transport gives back.
    type Output: Send;

    /// The client's next frame. Cancel-safe: the loop waits on it beside its clocks.
    fn recv(&mut self) -> impl Future<Output = Inbound<Self::Text>> + Send;

    /// Completes the transport's side of the end by `deadline` (a close handshake, the
    /// verdict), with the writing half back when the writer ended in time.
    fn conclude(
        self,
        tx: Option<Self::Tx>,
        ending: Ending,
        deadline: Instant,
    ) -> impl Future<Output = Self::Output> + Send;
}

/// What the writer task is asked to do, in order.
pub(crate) enum ToWriter {
    Event {
        text: String,
        json: Option<Value>,
        _budget: OwnedSemaphorePermit,
    },
    /// An injected frame (fault injection), not counted as an event.
    Raw(Outbound),
    Close(u16, String),
    Kill,
    Stall,
}

/// How the writer task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriterEnd {
    /// Its channel closed.
    Drained,
    /// It wrote a close frame.
    Closed,
    Killed,
    Stalled,
    /// The transport failed, or a write blocked past the write timeout.
    Gone,
}

/// For recording the frames the writer writes.
pub(crate) struct RecordTo {
    pub(crate) recorder: Recorder,
    pub(crate) session_id: String,
    pub(crate) beta: bool,
}

/// Writes what it is handed, each write bounded by `timeout`. It never reads, so a blocked
/// write does not stop the session from reading, answering pings or seeing shutdown.
async fn write_loop<T: FrameTx>(
    mut tx: T,
    mut commands: mpsc::UnboundedReceiver<ToWriter>,
    timeout: Duration,
    record: Option<RecordTo>,
) -> (WriterEnd, T) {
    async fn write<T: FrameTx>(tx: &mut T, frame: Outbound, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, tx.send(frame)).await,
            Ok(true)
        )
    }
    while let Some(command) = commands.recv().await {
        match command {
            ToWriter::Event { text, json, .. } => {
                if !write(&mut tx, Outbound::Text(text), timeout).await {
                    return (WriterEnd::Gone, tx);
                }
                if let (Some(record), Some(json)) = (&record, json) {
                    record.recorder.push(Recorded {
                        session_id: record.session_id.clone(),
                        from_server: true,
                        json,
                        beta: record.beta,
                    });
                }
            }
            ToWriter::Raw(frame) => {
                if !write(&mut tx, frame, timeout).await {
                    return (WriterEnd::Gone, tx);
                }
            }
            ToWriter::Close(code, reason) => {
                let _ = write(&mut tx, Outbound::Close(code, reason), timeout).await;
                return (WriterEnd::Closed, tx);
            }
            ToWriter::Kill => return (WriterEnd::Killed, tx),
            ToWriter::Stall => return (WriterEnd::Stalled, tx),
        }
    }
    (WriterEnd::Drained, tx)
}

/// The session's end of the writer task.
pub(crate) struct Writer<T> {
    commands: mpsc::UnboundedSender<ToWriter>,
    task: Option<JoinHandle<(WriterEnd, T)>>,
    pub(crate) budget: Arc<Semaphore>,
    /// The writing half, back from the writer once it ended.
    pub(crate) tx: Option<T>,
}

impl<T: FrameTx> Writer<T> {
    /// Starts the writer task on `tx` (in the current span), with `budget` bytes of events
    /// in flight at most.
    pub(crate) fn spawn(tx: T, budget: usize, timeout: Duration, record: Option<RecordTo>) -> Self {
        let (commands, receiver) = mpsc::unbounded_channel();
        Self {
            commands,
            task: Some(tokio::spawn(
                write_loop(tx, receiver, timeout, record).in_current_span(),
            )),
            budget: Arc::new(Semaphore::new(budget)),
            tx: None,
        }
    }

    pub(crate) fn send(&self, command: ToWriter) {
        // A writer that ended has said so through its task; nothing to do here.
        let _ = self.commands.send(command);
    }

    /// Drops what is still queued: nothing may follow a close. The writer then ends.
    pub(crate) fn discard_queue(&mut self) {
        let (closed, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.commands, closed));
    }

    /// Resolves when the writer task ends (never again once it has).
    pub(crate) async fn ended(&mut self) -> WriterEnd {
        match &mut self.task {
            Some(task) => {
                let result = task.await;
                self.task = None;
                match result {
                    Ok((end, tx)) => {
                        self.tx = Some(tx);
                        end
                    }
                    Err(_) => WriterEnd::Gone,
                }
            }
            None => std::future::pending().await,
        }
    }

    pub(crate) fn abort(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl<T> Drop for Writer<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Sleeps until `at`; forever without one.
pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
