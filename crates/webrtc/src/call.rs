//! A call once its data channel is open, on either side: one task whose writer and reader
//! halves drive the frame pipe over the data channel, beside the two audio tasks.
//!
//! - The writer alone sends on the channel, in order; a send waits while the channel holds
//!   [`WebRtc::send_buffer`] bytes unacknowledged (backpressure), at most
//!   [`WebRtc::dead_after`]. A flush waits until the channel holds nothing.
//! - The reader stops reading while the consumer's queue is full (webrtc-rs then holds the
//!   messages and SCTP's window holds the server back), watches the connection state (a
//!   `disconnected` longer than the grace, or `failed`, ends the connection) and the
//!   channel (closed by the peer: the connection ends cleanly).
//! - Closing: the frames queued before the close are sent and acknowledged (bounded by the
//!   close timeout), the channel is closed, the call hung up (the client's side), the peer
//!   connection closed. Whatever ends the connection, the peer connection is closed and
//!   both audio tasks end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reelthyme_transport::{
    CloseRequest, Command, Connection, End, Endpoint, Error, ErrorKind, Flushed, Frame, Inbox,
    Link, Media, Options, Outbox, Result, hangup, pipe,
};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState};

use crate::media::{self, LocalTrack};
use crate::peer::{Events, rtc_error};
use crate::settings::WebRtc;

/// The data channel the Realtime API reads and writes events on.
pub(crate) const CHANNEL: &str = "oai-events";

/// How long gathering may take before the offer goes with the candidates found so far
/// (host candidates take a millisecond; a STUN server that does not answer, much longer).
pub(crate) const GATHER_WAIT: Duration = Duration::from_secs(2);

/// How long closing the peer connection may take.
const PC_CLOSE: Duration = Duration::from_secs(2);

/// The end of a connection, fired by whichever part sees it first.
#[derive(Clone)]
pub(crate) struct Cancel(watch::Sender<bool>);

impl Cancel {
    fn new() -> Self {
        Self(watch::Sender::new(false))
    }

    fn fire(&self) {
        self.0.send_replace(true);
    }

    pub(crate) async fn fired(&self) {
        let _ = self.0.subscribe().wait_for(|fired| *fired).await;
    }
}

/// The connection's timing.
#[derive(Debug, Clone, Copy)]
struct Timing {
    grace: Duration,
    dead_after: Duration,
    close_timeout: Duration,
    max_message_size: usize,
}

impl WebRtc {
    /// Runs an open call: the pipe over the data channel, the audio tasks, the task that
    /// drives them; the user's ends as a [`Connection`].
    #[expect(
        clippy::too_many_arguments,
        reason = "the parts of one call, made on either side"
    )]
    pub(crate) fn launch(
        &self,
        pc: Arc<dyn PeerConnection>,
        channel: Arc<dyn DataChannel>,
        events: Events,
        local: Option<LocalTrack>,
        hangup: Option<Hangup>,
        side: Role,
        options: &Options,
    ) -> Connection {
        let (sender, receiver, link) = pipe(options.queues(self.max_message_size));
        let cancel = Cancel::new();
        let media = if let Some(local) = local {
            let (media, media_link) = Media::channel(self.media_queue);
            let span = tracing::Span::current();
            tokio::spawn(
                media::send(local, media_link.outgoing, cancel.clone()).instrument(span.clone()),
            );
            tokio::spawn(
                media::receive(
                    events.tracks,
                    media_link.incoming,
                    self.audio_rate,
                    cancel.clone(),
                )
                .instrument(span),
            );
            Some(media)
        } else {
            None
        };
        let timing = Timing {
            grace: self.disconnected_grace,
            dead_after: self.dead_after,
            close_timeout: options.close_timeout,
            max_message_size: self.max_message_size,
        };
        let live = Live {
            pc,
            channel,
            state: events.state,
            hangup,
            timing,
            closing: AtomicBool::new(false),
            side,
        };
        tokio::spawn(run(live, link, cancel).instrument(tracing::Span::current()));
        let connection = Connection::new(sender, receiver);
        match media {
            Some(media) => connection.with_media(media),
            None => connection,
        }
    }
}

/// Closes a peer connection, bounded.
pub(crate) async fn close_peer(pc: &Arc<dyn PeerConnection>) {
    if let Err(error) = tokio::time::timeout(PC_CLOSE, pc.close())
        .await
        .unwrap_or(Ok(()))
    {
        tracing::debug!(%error, "closing the peer connection failed");
    }
}

/// How to hang up a call the client started.
pub(crate) struct Hangup {
    pub(crate) endpoint: Endpoint,
    pub(crate) options: Options,
    pub(crate) call_id: String,
}

/// A connection once it is open.
struct Live {
    pc: Arc<dyn PeerConnection>,
    channel: Arc<dyn DataChannel>,
    state: watch::Receiver<RTCPeerConnectionState>,
    /// The client's side hangs up on close; the server's has nobody to tell.
    hangup: Option<Hangup>,
    timing: Timing,
    /// Set before this side closes the channel: the close that follows is its own.
    closing: AtomicBool,
    side: Role,
}

/// Which end of the call a running connection is: for the client, the server closing the
/// channel is the call ended by the server (an error); for the server, the client closing
/// it is the client's goodbye (clean).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Client,
    Server,
}

async fn run(live: Live, mut link: Link, cancel: Cancel) {
    let Link { outbox, inbox, .. } = &mut link;
    // Frames the channel cannot carry are refused one by one; the reader hands the
    // refusals to the consumer, in line with the events.
    let (refused, refusals) = mpsc::unbounded_channel();
    let (written, read) = tokio::join!(
        write(&live, outbox, &cancel, refused),
        read(&live, inbox, &cancel, refusals),
    );
    // Whatever ended it, the peer connection goes, and with it the tracks.
    close_peer(&live.pc).await;
    cancel.fire();
    let end = read.error.or(written.error);
    match &end {
        Some(error) => tracing::debug!(%error, "WebRTC connection ended"),
        None => tracing::debug!("WebRTC connection closed"),
    }
    link.finish(
        End::new(end)
            .in_flight(written.in_flight)
            .held(read.held)
            .close_requests(written.close_requests)
            .unanswered_flushes(written.unanswered)
            .close_answered(written.closed || read.closed_by_peer),
    )
    .await;
}

struct Written {
    error: Option<Error>,
    in_flight: Option<String>,
    close_requests: Vec<CloseRequest>,
    unanswered: Vec<Flushed>,
    /// Whether this side closed the call (channel, hangup).
    closed: bool,
}

/// Waits until the channel holds nothing unacknowledged; `false` if `limit` passed first.
async fn drained(channel: &Arc<dyn DataChannel>, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        match channel.outstanding_bytes().await {
            Ok(0) | Err(_) => return true,
            Ok(_) if Instant::now() >= deadline => return false,
            Ok(_) => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    }
}

async fn write(
    live: &Live,
    outbox: &mut Outbox,
    cancel: &Cancel,
    refused: mpsc::UnboundedSender<Error>,
) -> Written {
    let mut written = Written {
        error: None,
        in_flight: None,
        close_requests: Vec::new(),
        unanswered: Vec::new(),
        closed: false,
    };
    let timing = live.timing;
    loop {
        let command = tokio::select! {
            biased;
            () = cancel.fired() => return written,
            command = outbox.next_command() => command,
        };
        match command {
            Some(Command::Text(text)) => {
                let sent = tokio::select! {
                    biased;
                    () = cancel.fired() => {
                        written.in_flight = Some(text);
                        return written;
                    }
                    sent = tokio::time::timeout(timing.dead_after, live.channel.send_text(&text)) => sent,
                };
                match sent {
                    Ok(Ok(())) => {}
                    // Larger than the peer's `max-message-size`: that frame, not the
                    // connection, fails.
                    Ok(Err(webrtc::error::Error::ErrOutboundPacketTooLarge)) => {
                        let start: String = text.chars().take(60).collect();
                        let _ = refused.send(Error::new(
                            ErrorKind::Rejected,
                            format!(
                                "a frame of {} bytes is larger than the data channel carries; not sent: {start}…",
                                text.len()
                            ),
                        ));
                    }
                    Ok(Err(error)) => {
                        written.in_flight = Some(text);
                        written.error = Some(
                            rtc_error(ErrorKind::Closed, "the data channel refused a frame", error)
                                .with_close_code(1006),
                        );
                        cancel.fire();
                        return written;
                    }
                    Err(_) => {
                        written.in_flight = Some(text);
                        written.error = Some(Error::new(
                            ErrorKind::Timeout,
                            format!(
                                "the data channel took nothing for {} ms: the server is not reading",
                                timing.dead_after.as_millis()
                            ),
                        ));
                        cancel.fire();
                        return written;
                    }
                }
            }
            Some(Command::Flush(flushed)) => {
                let done = tokio::select! {
                    biased;
                    () = cancel.fired() => false,
                    done = drained(&live.channel, timing.dead_after) => done,
                };
                if done {
                    flushed.done();
                } else {
                    written.unanswered.push(flushed);
                }
            }
            Some(Command::Close(request)) => {
                written.close_requests.push(request);
                break;
            }
            // Every sender is gone: the user dropped the session. Close politely.
            None => break,
            Some(_) => {}
        }
    }
    outbox.stop();
    // The frames before the close reach the server, then the call ends: channel, hangup.
    if !drained(&live.channel, timing.close_timeout).await {
        tracing::debug!("closing with frames the server had not acknowledged");
    }
    live.closing.store(true, Ordering::SeqCst);
    let _ = live.channel.close().await;
    if let Some(Hangup {
        endpoint,
        options,
        call_id,
    }) = &live.hangup
    {
        match tokio::time::timeout(timing.close_timeout, hangup(endpoint, call_id, options)).await {
            Ok(Ok(())) => tracing::debug!(call_id, "hung up"),
            // Closing the peer connection ends the call too; the hangup only says so sooner.
            Ok(Err(error)) => tracing::debug!(%error, "the hangup failed"),
            Err(_) => tracing::debug!("the hangup timed out"),
        }
    }
    written.closed = true;
    cancel.fire();
    written
}

struct Read {
    error: Option<Error>,
    held: Vec<Result<Frame>>,
    closed_by_peer: bool,
}

async fn read(
    live: &Live,
    inbox: &mut Inbox,
    cancel: &Cancel,
    mut refusals: mpsc::UnboundedReceiver<Error>,
) -> Read {
    let timing = live.timing;
    let mut state = live.state.clone();
    let mut held = Vec::new();
    let mut closed_by_peer = false;
    let mut grace: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    // The last event, when it was an `error`: it says why a close that follows came.
    let mut last_error: Option<String> = None;
    let error = loop {
        let item = tokio::select! {
            biased;
            () = cancel.fired() => break None,
            Some(refusal) = refusals.recv() => Err(refusal),
            changed = state.changed() => {
                if changed.is_err() {
                    break Some(lost("the peer connection ended"));
                }
                let now = *state.borrow_and_update();
                match now {
                    RTCPeerConnectionState::Connected => grace = None,
                    RTCPeerConnectionState::Disconnected if grace.is_none() => {
                        tracing::debug!(
                            grace_ms = timing.grace.as_millis() as u64,
                            "disconnected: waiting for the path to come back"
                        );
                        grace = Some(Box::pin(tokio::time::sleep(timing.grace)));
                    }
                    RTCPeerConnectionState::Failed => {
                        break Some(lost("the WebRTC connection failed (ICE or DTLS)"));
                    }
                    RTCPeerConnectionState::Closed => {
                        break Some(lost("the peer connection closed"));
                    }
                    _ => {}
                }
                continue;
            }
            () = async {
                match grace.as_mut() {
                    Some(sleep) => sleep.await,
                    None => std::future::pending().await,
                }
            } => {
                break Some(lost(&format!(
                    "the WebRTC connection stayed disconnected for {} ms",
                    timing.grace.as_millis()
                )));
            }
            event = live.channel.poll() => match event {
                Some(DataChannelEvent::OnMessage(message)) => {
                    let received_at = Instant::now();
                    if message.data.len() > timing.max_message_size {
                        break Some(Error::new(
                            ErrorKind::Protocol,
                            format!(
                                "the server sent a message over the size limit ({} > {} bytes)",
                                message.data.len(),
                                timing.max_message_size
                            ),
                        ));
                    }
                    if !message.is_string {
                        Err(Error::new(
                            ErrorKind::Protocol,
                            format!("the server sent a binary message ({} bytes)", message.data.len()),
                        ))
                    } else {
                        match String::from_utf8(message.data.to_vec()) {
                            Ok(text) => {
                                last_error = text.contains("\"error\"").then(|| text.clone());
                                Ok(Frame::at(text, received_at))
                            }
                            Err(_) => Err(Error::new(
                                ErrorKind::Protocol,
                                "the server sent a text message that is not UTF-8",
                            )),
                        }
                    }
                }
                // The channel closed: this side's own close is clean; the server's is the
                // call ended by the server (see the crate docs).
                Some(DataChannelEvent::OnClose) | None => {
                    closed_by_peer = true;
                    if live.side == Role::Server || live.closing.load(Ordering::SeqCst) {
                        break None;
                    }
                    break Some(ended_by_server(last_error.as_deref()));
                }
                Some(_) => continue,
            },
        };
        // Room in the consumer's queue; a full queue stops reading here.
        let bytes = item.as_ref().map_or(1, |frame| frame.len());
        tokio::select! {
            biased;
            () = cancel.fired() => {
                held.push(item);
                break None;
            }
            slot = inbox.ready(bytes) => {
                if let Some(slot) = slot {
                    inbox.push(slot, item);
                }
            }
        }
    };
    cancel.fire();
    // A refusal the writer made as the connection ended still reaches the consumer.
    while let Ok(refusal) = refusals.try_recv() {
        held.push(Err(refusal));
    }
    Read {
        error,
        held,
        closed_by_peer,
    }
}

/// The server closed the channel without this side asking: the call ended by the server.
/// A data channel has no close code, so it maps as a WebSocket closing with 1000 does after
/// the `error` event that preceded it (`session_expired` → `SessionExpired`, quota codes →
/// `Quota`, others `Closed`), and without one as `Closed` with code 1000 — an error all the
/// same: the client never hears "normal", and the session must not look as if it were still
/// open.
fn ended_by_server(last_error: Option<&str>) -> Error {
    let detail = last_error
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
        .filter(|event| event.get("type").is_some_and(|t| t == "error"))
        .and_then(|event| serde_json::from_value(event.get("error")?.clone()).ok());
    match detail {
        Some(detail) => Error::from_close(1000, "", Some(detail)),
        None => Error::new(
            ErrorKind::Closed,
            "the server ended the call (it closed the data channel)",
        )
        .with_close_code(1000),
    }
}

/// The connection was lost (a transport without close codes maps this to 1006, as a
/// WebSocket that broke without a close handshake): retryable.
fn lost(message: &str) -> Error {
    Error::new(ErrorKind::Closed, message.to_owned()).with_close_code(1006)
}
