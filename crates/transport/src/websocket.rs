//! The WebSocket transport: one task per connection, whose writer and reader halves run
//! concurrently, joined to the caller by the bounded frame pipe (`pipe.rs`).
//!
//! - The writer alone writes the socket, so frames leave in the order they were queued.
//!   A write during which the socket takes no byte for [`WebSocket::keepalive`]'s `dead_after` fails the
//!   connection: a server that stops reading cannot hold senders forever.
//! - The reader stops reading while the consumer's queue is full (in frames or in bytes),
//!   so TCP flow control slows the server and memory stays bounded.
//! - Keepalive: the writer pings every [`WebSocket::keepalive`] interval; the reader declares the
//!   peer dead when nothing (not even a pong) arrives for `dead_after`.
//! - Closing is a handshake both ways: `close()` writes a close frame and returns once the
//!   server answers it (bounded by [`Options::close_timeout`]); a server's close is
//!   answered.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Empty;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use reelthyme_schema::ErrorDetail;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tracing::Instrument;

use crate::connection::{Connecting, Connection, Transport};
use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::net::{self, Origin};
use crate::options::Options;
use crate::pipe::{CloseRequest, Command, End, Flushed, Frame, Inbox, Link, Outbox, pipe};

/// The read buffer of a connection (see the configuration in `upgrade`).
const READ_BUFFER: usize = 16 << 10;

/// The WebSocket [`Transport`], with its own settings: keepalive and the message size cap.
/// (What every transport shares — queues, timeouts, TLS roots — is in [`Options`].)
#[derive(Debug, Clone)]
#[must_use]
pub struct WebSocket {
    ping_interval: Duration,
    dead_after: Duration,
    max_message_size: usize,
}

impl Default for WebSocket {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(15),
            dead_after: Duration::from_secs(45),
            max_message_size: 8 << 20,
        }
    }
}

impl WebSocket {
    /// The defaults: a ping every 15 s (OpenAI pings every 20 s), the peer dead after 45 s
    /// of silence, messages up to 8 MiB.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pings the server every `ping_interval` (default 15 s) and declares it dead after
    /// `dead_after` (default 45 s) of silence — or of a write during which the socket takes
    /// no byte (a server that stopped reading).
    pub fn keepalive(mut self, ping_interval: Duration, dead_after: Duration) -> Self {
        self.ping_interval = ping_interval.max(Duration::from_millis(1));
        self.dead_after = dead_after.max(Duration::from_millis(1));
        self
    }

    /// The largest message accepted from the server, in bytes (default 8 MiB, at least
    /// 1 KiB). Real server events are a few KB; the largest, an item retrieved with its
    /// audio, is about 5 MiB for 90 s of speech. A larger message ends the connection with
    /// [`ErrorKind::Protocol`].
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes.max(1 << 10);
        self
    }

    /// The ping interval.
    pub fn ping_interval(&self) -> Duration {
        self.ping_interval
    }

    /// The silence after which the peer is dead.
    pub fn dead_after(&self) -> Duration {
        self.dead_after
    }

    /// Opens a WebSocket connection to `endpoint`.
    ///
    /// The upgrade is an HTTP/1.1 request made with hyper (see the `http` module for why),
    /// then the socket is handed to tungstenite.
    ///
    /// # Errors
    /// [`ErrorKind::Connect`] (with [`Error::http_status`] when the server answered the
    /// upgrade with another status), [`ErrorKind::Timeout`], [`ErrorKind::Config`].
    pub async fn open(&self, endpoint: &Endpoint, options: &Options) -> Result<Connection> {
        let url = endpoint.url();
        tracing::debug!(%url, "connecting");
        let socket = tokio::time::timeout(
            options.connect_timeout,
            upgrade(endpoint, options, self.max_message_size),
        )
        .await
        .map_err(|_| Error::new(ErrorKind::Timeout, format!("connecting to {url} timed out")))??;
        tracing::debug!("connected");
        let (sender, receiver, link) = pipe(options.queues(self.max_message_size));
        let timing = Timing {
            ping_interval: self.ping_interval,
            dead_after: self.dead_after,
            close_timeout: options.close_timeout,
        };
        tokio::spawn(run(socket, link, timing).instrument(tracing::Span::current()));
        Ok(Connection::new(sender, receiver))
    }
}

impl Transport for WebSocket {
    fn connect<'a>(&'a self, endpoint: &'a Endpoint, options: &'a Options) -> Connecting<'a> {
        Box::pin(self.open(endpoint, options))
    }
}

type Socket = WebSocketStream<Counted<TokioIo<Upgraded>>>;

/// Opens a WebSocket connection to `endpoint` with the default [`WebSocket`] settings.
///
/// # Errors
/// As [`WebSocket::open`].
pub async fn connect(endpoint: &Endpoint, options: &Options) -> Result<Connection> {
    WebSocket::default().open(endpoint, options).await
}

async fn upgrade(
    endpoint: &Endpoint,
    options: &Options,
    max_message_size: usize,
) -> Result<Socket> {
    let request = endpoint.request()?;
    let url = endpoint.url();
    let origin = Origin::of(request.uri())?;
    let key = request
        .headers()
        .get("sec-websocket-key")
        .map(|k| k.as_bytes().to_vec())
        .ok_or_else(|| Error::new(ErrorKind::Config, "the upgrade request has no key"))?;
    let (mut parts, ()) = request.into_parts();
    parts.uri = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .map_err(|e| Error::new(ErrorKind::Config, format!("invalid URL {url}")).with_source(e))?;
    parts.headers.insert(
        "host",
        origin
            .authority
            .parse()
            .map_err(|_| Error::new(ErrorKind::Config, format!("invalid host in {url}")))?,
    );
    let request = hyper::Request::from_parts(parts, Empty::<Bytes>::new());
    origin.warn_cleartext(endpoint.has_credentials());
    let io = origin.connect(&options.extra_root_certificates).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| Error::new(ErrorKind::Connect, "HTTP handshake failed").with_source(e))?;
    tokio::spawn(connection.with_upgrades());
    let response = sender.send_request(request).await.map_err(|e| {
        Error::new(
            ErrorKind::Connect,
            format!("the upgrade request to {url} failed: {e}"),
        )
        .with_source(e)
    })?;
    let status = response.status().as_u16();
    if status != 101 {
        let body = net::body(response, 64 << 10).await.unwrap_or_default();
        return Err(Error::http(status, std::str::from_utf8(&body).ok()));
    }
    let accept = response.headers().get("sec-websocket-accept");
    if accept.map(|a| a.as_bytes()) != Some(derive_accept_key(&key).as_bytes()) {
        return Err(Error::new(
            ErrorKind::Protocol,
            format!("{url} answered the upgrade without a valid Sec-WebSocket-Accept"),
        ));
    }
    let upgraded = hyper::upgrade::on(response).await.map_err(|e| {
        Error::new(
            ErrorKind::Connect,
            format!("the upgrade to {url} failed: {e}"),
        )
        .with_source(e)
    })?;
    // tungstenite zero-fills its whole read buffer before the first read, so its default
    // 128 KiB is resident in every connection; events are a few KB (a larger message
    // grows the buffer as it arrives), and 16 KiB keeps a session's memory small.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size));
    let io = Counted {
        inner: TokioIo::new(upgraded),
        written: Arc::new(AtomicU64::new(0)),
    };
    Ok(WebSocketStream::from_raw_socket(io, Role::Client, Some(config)).await)
}

#[derive(Debug, Clone, Copy)]
struct Timing {
    ping_interval: Duration,
    /// Silence from the server, or a socket write that does not complete, for this long
    /// means the peer is dead.
    dead_after: Duration,
    close_timeout: Duration,
}

/// The end of a connection, fired by whichever half sees it first.
#[derive(Clone)]
struct Cancel(watch::Sender<bool>);

impl Cancel {
    fn new() -> Self {
        Self(watch::Sender::new(false))
    }

    fn fire(&self) {
        self.0.send_replace(true);
    }

    async fn fired(&self) {
        let _ = self.0.subscribe().wait_for(|fired| *fired).await;
    }
}

/// Drives one connection: the writer and the reader run concurrently in this task, then
/// the pipe settles the verdict.
type SocketSink = futures_util::stream::SplitSink<Socket, Message>;
type SocketStream = futures_util::stream::SplitStream<Socket>;

async fn run(socket: Socket, mut link: Link, timing: Timing) {
    let written = socket.get_ref().written.clone();
    let (mut sink, mut stream) = socket.split();
    let cancel = Cancel::new();
    let Link { outbox, inbox, .. } = &mut link;
    let (written, read) = tokio::join!(
        write(&mut sink, written, outbox, &cancel, timing),
        read(&mut stream, inbox, &cancel, timing.dead_after),
    );
    // Let a close reply tungstenite queued (the server closed first) reach the socket.
    if read.close_received
        && let Ok(mut socket) = stream.reunite(sink)
    {
        let _ = tokio::time::timeout(Duration::from_millis(100), socket.close(None)).await;
    }
    // The reader knows why the server ended it (close code, the error before it); the
    // writer only that the socket broke.
    let end = read.error.or(written.error);
    if let Some(error) = &end {
        tracing::debug!(%error, "connection ended");
    } else {
        tracing::debug!("connection closed");
    }
    link.finish(
        End::new(end)
            .in_flight(written.in_flight)
            .held(read.held)
            .close_requests(written.close_requests)
            .unanswered_flushes(written.unanswered)
            .close_answered(read.close_received),
    )
    .await;
}

struct Written {
    error: Option<Error>,
    /// A text frame whose write had started but not completed when the connection ended.
    in_flight: Option<String>,
    close_requests: Vec<CloseRequest>,
    /// Flushes that cannot complete; answered once the verdict is recorded.
    unanswered: Vec<Flushed>,
}

async fn write(
    sink: &mut SocketSink,
    written: Arc<AtomicU64>,
    outbox: &mut Outbox,
    cancel: &Cancel,
    timing: Timing,
) -> Written {
    let mut ping = tokio::time::interval(timing.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let mut close_requests = Vec::new();
    let mut unanswered = Vec::new();
    let mut in_flight = None;
    let guard = Guard {
        cancel,
        limit: timing.dead_after,
        written,
    };
    // Every socket operation is bounded: against a peer that stopped reading, a write
    // blocks for as long as TCP keeps the connection (forever, with zero-window probes).
    let result: Result<(), Error> = async {
        loop {
            let command = tokio::select! {
                biased;
                () = cancel.fired() => return Ok(()),
                command = outbox.next_command() => command,
                _ = ping.tick() => {
                    guard.run(sink.send(Message::Ping(Bytes::new()))).await?;
                    continue;
                }
            };
            match command {
                Some(Command::Text(text)) => {
                    // `Utf8Bytes` shares the text, so keeping it for the report is free.
                    let payload = Utf8Bytes::from(text);
                    let written = guard.run(sink.send(Message::Text(payload.clone()))).await;
                    if !matches!(written, Ok(Outcome::Done)) {
                        in_flight = Some(payload.as_str().to_owned());
                    }
                    written?;
                    continue;
                }
                Some(Command::Flush(done)) => {
                    match guard.run(sink.flush()).await {
                        Ok(Outcome::Done) => done.done(),
                        // Answered (with the verdict) once the end is settled.
                        _ => unanswered.push(done),
                    }
                    continue;
                }
                Some(Command::Close(request)) => close_requests.push(request),
                // Every sender is gone: the user dropped the session. Close politely.
                None => {}
            }
            outbox.stop();
            let frame = CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            };
            guard.run(sink.send(Message::Close(Some(frame)))).await?;
            // The connection ends when the server answers; bounded.
            if tokio::time::timeout(timing.close_timeout, cancel.fired())
                .await
                .is_err()
            {
                tracing::debug!("the server did not answer the close");
            }
            return Ok(());
        }
    }
    .await;
    cancel.fire();
    Written {
        error: result.err(),
        in_flight,
        close_requests,
        unanswered,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    /// The connection ended first.
    Cancelled,
}

/// Bounds socket operations by a time limit and by the connection's end.
struct Guard<'a> {
    cancel: &'a Cancel,
    limit: Duration,
    written: Arc<AtomicU64>,
}

impl Guard<'_> {
    /// Runs one socket operation. It fails only when the socket accepts no byte for the
    /// whole limit (a slow link writing a big frame is not a dead one).
    async fn run<T>(
        &self,
        operation: impl Future<Output = Result<T, tungstenite::Error>>,
    ) -> Result<Outcome, Error> {
        let mut operation = std::pin::pin!(operation);
        let mut seen = self.written.load(Ordering::Relaxed);
        loop {
            tokio::select! {
                biased;
                () = self.cancel.fired() => return Ok(Outcome::Cancelled),
                done = &mut operation => return match done {
                    // The socket broke without a close handshake: an abnormal closure.
                    Err(error) => Err(Error::new(
                        ErrorKind::Closed,
                        format!("the connection failed: {error}"),
                    )
                    .with_close_code(1006)
                    .with_source(error)),
                    Ok(_) => Ok(Outcome::Done),
                },
                () = tokio::time::sleep(self.limit) => {
                    let now = self.written.load(Ordering::Relaxed);
                    if now == seen {
                        return Err(Error::new(
                            ErrorKind::Timeout,
                            format!(
                                "the socket took no data for {} ms: the server is not reading",
                                self.limit.as_millis()
                            ),
                        ));
                    }
                    seen = now;
                }
            }
        }
    }
}

/// The socket, counting the bytes written to it (the writer's proof of progress).
struct Counted<T> {
    inner: T,
    written: Arc<AtomicU64>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, data))?;
        self.written.fetch_add(written as u64, Ordering::Relaxed);
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

struct Read {
    error: Option<Error>,
    /// Items read but not yet delivered when the connection ended.
    held: Vec<Result<Frame>>,
    close_received: bool,
}

async fn read(
    stream: &mut SocketStream,
    inbox: &mut Inbox,
    cancel: &Cancel,
    dead_after: Duration,
) -> Read {
    // The last `error` event, to explain a close that follows it.
    let mut last_error: Option<ErrorDetail> = None;
    let mut held = Vec::new();
    let mut close_received = false;
    let error = loop {
        let frame = tokio::select! {
            biased;
            () = cancel.fired() => break None,
            frame = tokio::time::timeout(dead_after, stream.next()) => frame,
        };
        let item = match frame {
            Err(_) => {
                break Some(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "no data from the server for {} ms: the connection is dead",
                        dead_after.as_millis()
                    ),
                ));
            }
            Ok(Some(Ok(Message::Text(text)))) => {
                let received_at = std::time::Instant::now();
                let text = text.as_str();
                // Only an `error` right before the close explains it: any other event
                // means the earlier error was not fatal.
                last_error = if text.contains("\"error\"") {
                    error_detail(text)
                } else {
                    None
                };
                Ok(Frame::at(text, received_at))
            }
            Ok(Some(Ok(Message::Binary(bytes)))) => Err(Error::new(
                ErrorKind::Protocol,
                format!("the server sent a binary frame ({} bytes)", bytes.len()),
            )),
            Ok(Some(Ok(Message::Close(frame)))) => {
                close_received = true;
                let (code, reason) = frame.map_or((1005, String::new()), |f| {
                    (u16::from(f.code), f.reason.to_string())
                });
                tracing::debug!(code, %reason, "server closed");
                // 1000 is a normal closure whatever came before it; failures close otherwise.
                break if code == 1000 {
                    None
                } else {
                    Some(Error::from_close(code, &reason, last_error.take()))
                };
            }
            Ok(Some(Ok(_))) => continue, // ping, pong: tungstenite answers pings itself
            Ok(Some(Err(tungstenite::Error::Capacity(error)))) => {
                break Some(Error::new(
                    ErrorKind::Protocol,
                    format!("the server sent a frame over the size limit: {error}"),
                ));
            }
            Ok(Some(Err(error))) => {
                break Some(
                    Error::new(ErrorKind::Closed, format!("the connection failed: {error}"))
                        .with_close_code(1006)
                        .with_source(error),
                );
            }
            Ok(None) => {
                break Some(
                    Error::new(
                        ErrorKind::Closed,
                        "the connection ended without a close frame",
                    )
                    .with_close_code(1006),
                );
            }
        };
        // Room in the consumer's queue, in frames and bytes; a full queue stops reading
        // here, and TCP holds the server back.
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
    Read {
        error,
        held,
        close_received,
    }
}

fn error_detail(text: &str) -> Option<ErrorDetail> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    if value.get("type")? != "error" {
        return None;
    }
    serde_json::from_value(value.get("error")?.clone()).ok()
}
