//! An in-process connection to a simulator: the same handshake checks and session loop as
//! a WebSocket connection, on the transport crate's public frame pipe instead of a socket.
//! No port, no TCP, no framing: tests that use it run faster and cannot collide on ports,
//! and it proves that the seam carries a whole session.

use std::future::Future;
use std::sync::Arc;

use reelthyme_schema::ErrorDetail;
use reelthyme_transport::{
    CloseRequest, Command, Connecting, Connection, End, Endpoint, Error, ErrorKind, Frame, Inbox,
    Link, Options, Outbox, Transport, http, pipe,
};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::Instrument;

use crate::admission::{Target, admit};
use crate::frames::{Ending, EventIo, FrameTx, Inbound, Outbound};
use crate::handshake::Handshake;
use crate::session_loop::{MAX_MESSAGE, Session};
use crate::state::{IdSpace, Shared};

/// A [`Transport`] to a [`Simulator`](crate::Simulator) in the same process, from
/// [`Simulator::in_process`](crate::Simulator::in_process).
///
/// `connect` reads the endpoint as the server reads an upgrade request (path, query,
/// credentials, headers), so an endpoint that works against the simulator's URL works here:
/// a path the server does not serve is [`Error::http`] 404; a refused key, dialect, model
/// or call is the `error` and close the WebSocket path sends, as
/// [`Error::from_close`] (3000 or 4000, with the API's error). The session then runs the
/// simulator's own session loop on the pipe — its faults, recording, connection log, beta
/// dialect and backpressure included. A client `close()` ends it normally; the session's
/// close with a code other than 1000 ends the receiver with [`Error::from_close`]; a killed
/// or stalled session is an abnormal end (1006).
///
/// Sessions do not count against [`SimConfig::max_connections`](crate::SimConfig) (there is
/// no socket to refuse). A replaying simulator ([`Simulator::replay`](crate::Simulator::replay))
/// plays its recording in process too.
#[derive(Clone)]
pub struct InProcess {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcess").finish_non_exhaustive()
    }
}

impl InProcess {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    async fn open(
        &self,
        endpoint: &Endpoint,
        options: &Options,
    ) -> reelthyme_transport::Result<Connection> {
        let shared = &self.shared;
        if *shared.shutdown.borrow() {
            return Err(Error::new(
                ErrorKind::Connect,
                "the simulator has shut down",
            ));
        }
        let request = upgrade_request(endpoint)?;
        let handshake = Handshake::from_request(&request, shared).map_err(|refused| {
            let body = json!({"error": {"type": "invalid_request_error", "code": null,
                "message": refused.message, "param": null}});
            Error::http(refused.status.as_u16(), Some(&body.to_string()))
        })?;
        if let Some(entries) = shared.replay.clone() {
            // A recording is played to any client, as over the socket (no checks after the
            // handshake's).
            shared.remember(handshake.info.clone());
            let (sender, receiver, link) = pipe(options.queues(MAX_MESSAGE));
            tokio::spawn(drive(link, move |io, tx| async move {
                crate::replay::serve(io, tx, &entries).await
            }));
            return Ok(Connection::new(sender, receiver));
        }
        let target = Target::of(&handshake, shared);
        let refusal = admit(&handshake, &target, shared).err();
        let (sender, receiver, link) = pipe(options.queues(MAX_MESSAGE));
        let seed = shared.ids.next(IdSpace::Session);
        let span = tracing::info_span!(
            "sim_session",
            session_id = tracing::field::Empty,
            transport = "in-process"
        );
        shared.remember(handshake.info.clone());
        // A refused session still runs, as over a socket: it sends its `error` and close
        // (recorded like any other) to a pipe nobody reads.
        let session = Session::new(handshake, seed, shared.clone());
        tokio::spawn(drive(link, |io, tx| session.run(io, tx)).instrument(span));
        match refusal {
            None => Ok(Connection::new(sender, receiver)),
            Some(refusal) => {
                let detail = serde_json::from_value::<ErrorDetail>(refusal.detail()).ok();
                Err(Error::from_close(refusal.close, &refusal.reason(), detail))
            }
        }
    }
}

impl Transport for InProcess {
    fn connect<'a>(&'a self, endpoint: &'a Endpoint, options: &'a Options) -> Connecting<'a> {
        Box::pin(self.open(endpoint, options))
    }
}

/// The upgrade request `endpoint` describes: its URL and headers (credentials included).
fn upgrade_request(endpoint: &Endpoint) -> reelthyme_transport::Result<http::Request<()>> {
    let url = endpoint.url();
    let uri: http::Uri = url
        .parse()
        .map_err(|_| Error::new(ErrorKind::Config, format!("invalid URL {url}")))?;
    let mut request = http::Request::new(());
    *request.uri_mut() = uri;
    *request.headers_mut() = endpoint.auth_headers()?;
    Ok(request)
}

/// Runs a session (or a replay) on the pipe's link, then settles the pipe's verdict.
async fn drive<F, R>(mut link: Link, run: F)
where
    F: FnOnce(PipeIo, PipeTx) -> R,
    R: Future<Output = PipeEnd>,
{
    // The halves go to the session's reader and writer and come back for `finish`.
    let out = Arc::new(Mutex::new(PipeOut {
        inbox: Some(link.inbox),
        last_error: None,
        close: None,
    }));
    let io = PipeIo {
        outbox: link.outbox,
        out: out.clone(),
        close_requests: Vec::new(),
    };
    let (outbox, inbox, end) = run(io, PipeTx { out }).await;
    let Some(inbox) = inbox else {
        // Unreachable (the writer hands the inbox back even when stopped); the pipe then
        // ends without a verdict rather than the task panicking.
        return;
    };
    link.outbox = outbox;
    link.inbox = inbox;
    link.finish(end).await;
}

/// The pipe's halves back from a session, and how it ended.
type PipeEnd = (Outbox, Option<Inbox>, End);

/// The client's queue and what the writer learned writing to it.
struct PipeOut {
    inbox: Option<Inbox>,
    /// The last `error` event, to explain a close that follows it (as the WebSocket
    /// transport's reader does).
    last_error: Option<ErrorDetail>,
    /// The close the session sent.
    close: Option<(u16, String)>,
}

/// The session's writing half: frames into the client's queue, waiting while it is full.
struct PipeTx {
    out: Arc<Mutex<PipeOut>>,
}

impl FrameTx for PipeTx {
    async fn send(&mut self, frame: Outbound) -> bool {
        let mut out = self.out.lock().await;
        let out = &mut *out;
        let item = match frame {
            Outbound::Text(text) => {
                // Only an `error` right before the close explains it.
                out.last_error = if text.contains("\"error\"") {
                    error_detail(&text)
                } else {
                    None
                };
                Ok(Frame::new(text))
            }
            Outbound::Binary(bytes) => Err(Error::new(
                ErrorKind::Protocol,
                format!("the server sent a binary frame ({} bytes)", bytes.len()),
            )),
            Outbound::Close(code, reason) => {
                out.close = Some((code, reason));
                return true;
            }
        };
        let Some(inbox) = out.inbox.as_mut() else {
            return false;
        };
        let bytes = item.as_ref().map_or(1, |frame| frame.len());
        // `None`: the client dropped its receiver; the frame is dropped, and the session
        // goes on for its sender (as a socket nobody reads from would, until it is full).
        if let Some(slot) = inbox.ready(bytes).await {
            inbox.push(slot, item);
        }
        true
    }
}

/// The session's reading half: the client's commands.
struct PipeIo {
    outbox: Outbox,
    out: Arc<Mutex<PipeOut>>,
    close_requests: Vec<CloseRequest>,
}

impl EventIo for PipeIo {
    type Text = String;
    type Tx = PipeTx;
    type Output = PipeEnd;

    async fn recv(&mut self) -> Inbound<String> {
        loop {
            match self.outbox.next_command().await {
                Some(Command::Text(text)) if text.len() > MAX_MESSAGE => return Inbound::TooLarge,
                Some(Command::Text(text)) => return Inbound::Text(text),
                // The frames before it have reached the session: they are written.
                Some(Command::Flush(flushed)) => flushed.done(),
                Some(Command::Close(request)) => {
                    self.close_requests.push(request);
                    self.outbox.stop();
                    return Inbound::Closed;
                }
                Some(_) => {}
                None => return Inbound::Gone,
            }
        }
    }

    async fn conclude(
        self,
        _tx: Option<PipeTx>,
        ending: Ending,
        _deadline: Instant,
    ) -> Self::Output {
        // The writer has been stopped: its hold on the queue is released.
        let (inbox, last_error, close) = {
            let mut out = self.out.lock().await;
            (out.inbox.take(), out.last_error.take(), out.close.take())
        };
        let dropped = || {
            Error::new(
                ErrorKind::Closed,
                "the connection ended without a close frame",
            )
            .with_close_code(1006)
        };
        let (error, answered) = match (ending, close) {
            (Ending::Closed, Some((1000, _))) => (None, true),
            (Ending::Closed, Some((code, reason))) => {
                (Some(Error::from_close(code, &reason, last_error)), true)
            }
            (Ending::PeerClosed, _) => (None, true),
            (Ending::Closed | Ending::Dropped, _) => (Some(dropped()), false),
        };
        let end = End::new(error)
            .close_requests(self.close_requests)
            .close_answered(answered);
        (self.outbox, inbox, end)
    }
}

fn error_detail(text: &str) -> Option<ErrorDetail> {
    let value: Value = serde_json::from_str(text).ok()?;
    if value.get("type")? != "error" {
        return None;
    }
    serde_json::from_value(value.get("error")?.clone()).ok()
}
