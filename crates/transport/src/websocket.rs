//! The WebSocket transport: one writer task and one reader task per connection, joined to
//! the caller by bounded queues.
//!
//! - Outgoing frames queue in a channel of [`Options::send_queue`] frames; when it is full
//!   `send` waits (backpressure), it never drops. The writer task alone writes the socket,
//!   so frames leave in the order they were queued.
//! - Incoming frames queue in a channel of [`Options::receive_queue`] items; when it is
//!   full the reader stops reading the socket, TCP flow control slows the server, and
//!   memory stays bounded however slow the consumer is.
//! - Keepalive: the writer pings every [`Options::ping_interval`]; the reader declares the
//!   peer dead when nothing (not even a pong) arrives for [`Options::dead_after`] while it
//!   is waiting on the socket.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_channel::{mpsc, oneshot};
use futures_core::Stream;
use futures_sink::Sink;
use futures_util::{SinkExt, StreamExt};
use reelthyme_schema::ErrorDetail;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::tls;

/// Tuning of a connection. The defaults suit OpenAI.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Frames that may wait to be written (default 256; a burst beyond waits, nothing drops).
    pub send_queue: usize,
    /// Events that may wait to be read (default 256; beyond, the socket is not read).
    pub receive_queue: usize,
    /// How long connecting (TCP, TLS, upgrade) may take (default 10 s).
    pub connect_timeout: Duration,
    /// How often to ping the server (default 15 s; OpenAI pings every 20 s).
    pub ping_interval: Duration,
    /// Silence after which the peer is dead (default 45 s).
    pub dead_after: Duration,
    /// DER certificates to trust besides the Mozilla roots (private CAs, test servers).
    pub extra_root_certificates: Vec<Vec<u8>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            send_queue: 256,
            receive_queue: 256,
            connect_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(15),
            dead_after: Duration::from_secs(45),
            extra_root_certificates: Vec::new(),
        }
    }
}

impl Options {
    /// Sets [`Options::send_queue`].
    #[must_use]
    pub fn send_queue(mut self, frames: usize) -> Self {
        self.send_queue = frames.max(1);
        self
    }

    /// Sets [`Options::receive_queue`].
    #[must_use]
    pub fn receive_queue(mut self, items: usize) -> Self {
        self.receive_queue = items.max(1);
        self
    }

    /// Sets [`Options::ping_interval`] and [`Options::dead_after`].
    #[must_use]
    pub fn keepalive(mut self, ping_interval: Duration, dead_after: Duration) -> Self {
        self.ping_interval = ping_interval;
        self.dead_after = dead_after;
        self
    }

    /// Sets [`Options::connect_timeout`].
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Trusts one more root certificate (DER).
    #[must_use]
    pub fn add_root_certificate(mut self, der: Vec<u8>) -> Self {
        self.extra_root_certificates.push(der);
        self
    }
}

enum Command {
    Text(String),
    Flush(oneshot::Sender<()>),
    Close(u16, String),
}

/// State shared by the halves: the error that ended the connection, for senders that
/// arrive after it.
#[derive(Debug, Default)]
struct Shared {
    /// Why the connection ended. The reader's verdict (with the close code and the
    /// server's error) wins over the writer's generic one.
    failure: Mutex<Option<Error>>,
}

impl Shared {
    fn fail(&self, error: &Error) {
        let mut failure = self.failure.lock().expect("failure lock");
        let replace = match &*failure {
            None => true,
            // The writer only knows the socket broke; the reader knows why.
            Some(existing) => existing.close_code().is_none() && error.close_code().is_some(),
        };
        if replace {
            *failure = Some(error.details());
        }
    }

    fn closed_error(&self) -> Error {
        match &*self.failure.lock().expect("failure lock") {
            Some(error) => error.details(),
            None => Error::new(ErrorKind::Closed, "the connection is closed"),
        }
    }
}

/// The sending half: cheap to clone, each clone can send from its own task.
#[derive(Debug, Clone)]
pub struct FrameSender {
    tx: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

impl FrameSender {
    /// Queues a text frame, waiting while the queue is full.
    ///
    /// # Errors
    /// When the connection has closed.
    pub async fn send(&mut self, text: String) -> Result<()> {
        self.tx
            .send(Command::Text(text))
            .await
            .map_err(|_| self.shared.closed_error())
    }

    /// Waits until every frame queued before this call has been written to the socket.
    ///
    /// # Errors
    /// When the connection closed before they were.
    pub async fn flush(&mut self) -> Result<()> {
        let (done, written) = oneshot::channel();
        self.tx
            .send(Command::Flush(done))
            .await
            .map_err(|_| self.shared.closed_error())?;
        written.await.map_err(|_| self.shared.closed_error())
    }

    /// Closes the connection (code 1000) after the frames already queued.
    ///
    /// # Errors
    /// When the connection had already closed.
    pub async fn close(&mut self) -> Result<()> {
        self.tx
            .send(Command::Close(1000, String::new()))
            .await
            .map_err(|_| self.shared.closed_error())
    }
}

impl Sink<String> for FrameSender {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let shared = self.shared.clone();
        Pin::new(&mut self.tx)
            .poll_ready(cx)
            .map_err(|_| shared.closed_error())
    }

    fn start_send(mut self: Pin<&mut Self>, text: String) -> Result<()> {
        let shared = self.shared.clone();
        Pin::new(&mut self.tx)
            .start_send(Command::Text(text))
            .map_err(|_| shared.closed_error())
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<()>> {
        // Queued frames are the writer task's; `FrameSender::flush` waits for the socket.
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let shared = self.shared.clone();
        Pin::new(&mut self.tx)
            .poll_close(cx)
            .map_err(|_| shared.closed_error())
    }
}

/// The receiving half: text frames as they arrive, then — if the connection ended
/// abnormally — one `Err` describing why, then the end of the stream.
#[derive(Debug)]
pub struct FrameReceiver {
    rx: mpsc::Receiver<Result<String>>,
}

impl Stream for FrameReceiver {
    type Item = Result<String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.rx).poll_next(cx)
    }
}

/// An open connection.
#[derive(Debug)]
pub struct Connection {
    /// Where frames go.
    pub sender: FrameSender,
    /// Where frames come from.
    pub receiver: FrameReceiver,
}

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket connection to `endpoint`.
///
/// # Errors
/// [`ErrorKind::Connect`] (with [`Error::http_status`] when the server answered the
/// upgrade with another status), [`ErrorKind::Timeout`], [`ErrorKind::Config`].
pub async fn connect(endpoint: &Endpoint, options: &Options) -> Result<Connection> {
    let request = endpoint.request()?;
    let connector = Connector::Rustls(tls::client_config(&options.extra_root_certificates)?);
    // A 15 MiB append is 20 MiB of base64; server frames are small, but allow the same.
    let config = WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let url = endpoint.url();
    tracing::debug!(%url, "connecting");
    let handshake = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(config),
        true,
        Some(connector),
    );
    let (socket, response) = match tokio::time::timeout(options.connect_timeout, handshake).await {
        Err(_) => {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!("connecting to {url} timed out"),
            ));
        }
        Ok(Err(tungstenite::Error::Http(response))) => {
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned());
            return Err(Error::http(response.status().as_u16(), body.as_deref()));
        }
        Ok(Err(error)) => {
            return Err(Error::new(
                ErrorKind::Connect,
                format!("cannot connect to {url}: {error}"),
            )
            .with_source(error));
        }
        Ok(Ok(connected)) => connected,
    };
    tracing::debug!(status = response.status().as_u16(), "connected");
    Ok(spawn(socket, options))
}

fn spawn(socket: Socket, options: &Options) -> Connection {
    let (sink, stream) = socket.split();
    let (command_tx, command_rx) = mpsc::channel(options.send_queue);
    let (event_tx, event_rx) = mpsc::channel(options.receive_queue);
    let shared = Arc::new(Shared::default());
    let (stop_tx, stop_rx) = oneshot::channel();
    tokio::spawn(write(
        sink,
        command_rx,
        stop_rx,
        options.ping_interval,
        shared.clone(),
    ));
    tokio::spawn(read(
        stream,
        event_tx,
        stop_tx,
        options.dead_after,
        shared.clone(),
    ));
    Connection {
        sender: FrameSender {
            tx: command_tx,
            shared,
        },
        receiver: FrameReceiver { rx: event_rx },
    }
}

type SocketSink = futures_util::stream::SplitSink<Socket, Message>;
type SocketStream = futures_util::stream::SplitStream<Socket>;

async fn write(
    mut sink: SocketSink,
    mut commands: mpsc::Receiver<Command>,
    mut stop: oneshot::Receiver<()>,
    ping_interval: Duration,
    shared: Arc<Shared>,
) {
    let mut ping = tokio::time::interval(ping_interval.max(Duration::from_millis(1)));
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    // Every socket operation races the reader's stop signal: on a dead network a write can
    // block for as long as TCP retransmits (minutes), and the reader's keepalive verdict
    // must end it, so that queued senders learn the connection is gone.
    let result: Result<(), tungstenite::Error> = async {
        loop {
            let message = tokio::select! {
                command = commands.next() => match command {
                    Some(Command::Text(text)) => Message::text(text),
                    Some(Command::Flush(done)) => {
                        tokio::select! {
                            flushed = sink.flush() => flushed?,
                            _ = &mut stop => return Ok(()),
                        }
                        let _ = done.send(());
                        continue;
                    }
                    Some(Command::Close(code, reason)) => {
                        let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
                        tokio::select! {
                            sent = sink.send(Message::Close(Some(frame))) => sent?,
                            _ = &mut stop => {}
                        }
                        return Ok(());
                    }
                    // Every sender is gone: the user dropped the session. Close politely.
                    None => {
                        let frame = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                        tokio::select! {
                            sent = sink.send(Message::Close(Some(frame))) => sent?,
                            _ = &mut stop => {}
                        }
                        return Ok(());
                    }
                },
                _ = ping.tick() => Message::Ping(Default::default()),
                // The reader saw the connection end; anything still queued cannot be sent.
                _ = &mut stop => return Ok(()),
            };
            tokio::select! {
                sent = sink.send(message) => sent?,
                _ = &mut stop => return Ok(()),
            }
        }
    }
    .await;
    if let Err(error) = result {
        tracing::debug!(%error, "writer stopped");
        shared.fail(&Error::new(
            ErrorKind::Closed,
            format!("the connection failed: {error}"),
        ));
    }
    commands.close();
}

async fn read(
    mut stream: SocketStream,
    mut events: mpsc::Sender<Result<String>>,
    stop: oneshot::Sender<()>,
    dead_after: Duration,
    shared: Arc<Shared>,
) {
    // The last `error` event, to explain a close that follows it.
    let mut last_error: Option<ErrorDetail> = None;
    let mut receiver_gone = false;
    let end: Option<Error> = loop {
        let frame = match tokio::time::timeout(dead_after, stream.next()).await {
            Err(_) => {
                break Some(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "no data from the server for {} ms: the connection is dead",
                        dead_after.as_millis()
                    ),
                ));
            }
            Ok(frame) => frame,
        };
        match frame {
            Some(Ok(Message::Text(text))) => {
                let text = text.as_str();
                // Only an `error` right before the close explains it: any other event
                // means the earlier error was not fatal.
                last_error = if text.contains("\"error\"") {
                    error_detail(text)
                } else {
                    None
                };
                // When the receiving half is gone, keep reading (and dropping) frames so
                // the writer can finish what is queued and the close handshake completes.
                if !receiver_gone && events.send(Ok(text.to_owned())).await.is_err() {
                    receiver_gone = true;
                }
            }
            Some(Ok(Message::Binary(bytes))) => {
                let error = Error::new(
                    ErrorKind::Protocol,
                    format!("the server sent a binary frame ({} bytes)", bytes.len()),
                );
                if !receiver_gone && events.send(Err(error)).await.is_err() {
                    receiver_gone = true;
                }
            }
            Some(Ok(Message::Close(frame))) => {
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
            Some(Ok(_)) => {} // ping, pong: tungstenite answers pings itself
            Some(Err(error)) => {
                break Some(
                    Error::new(ErrorKind::Closed, format!("the connection failed: {error}"))
                        .with_source(error),
                );
            }
            None => {
                break Some(Error::new(
                    ErrorKind::Closed,
                    "the connection ended without a close frame",
                ));
            }
        }
    };
    if let Some(error) = end {
        shared.fail(&error);
        let _ = events.send(Err(error)).await;
    }
    let _ = stop.send(());
}

fn error_detail(text: &str) -> Option<ErrorDetail> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    if value.get("type")? != "error" {
        return None;
    }
    serde_json::from_value(value.get("error")?.clone()).ok()
}

/// A way to reach a Realtime server: WebSocket today, WebRTC's data channel next. Both
/// carry the same JSON events as text frames.
pub trait Transport: Send + Sync {
    /// Opens a connection.
    fn connect<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        options: &'a Options,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<Connection>> + Send + 'a>>;
}

/// The WebSocket [`Transport`].
#[derive(Debug, Clone, Copy, Default)]
pub struct WebSocket;

impl Transport for WebSocket {
    fn connect<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        options: &'a Options,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<Connection>> + Send + 'a>> {
        Box::pin(connect(endpoint, options))
    }
}
