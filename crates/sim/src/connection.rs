//! One WebSocket session: a reader/engine task and a writer task, faults, recording, the
//! beta dialect, backpressure, and a close handshake whose every wait is bounded.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::Instrument;

use crate::config::{BetaMode, FaultAction, Recorded};
use crate::engine::Engine;
use crate::handshake::{AuthKind, ConnectionInfo, Handshake, Route};
use crate::server::MAX_MESSAGE;
use crate::state::{Shared, expires_at};

type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// Server events handed to the writer and not yet written, in bytes. Bounded, so a client
/// that does not read holds the responses back (backpressure) instead of making the
/// simulator buffer them.
const WRITE_BUDGET: usize = 256 << 10;
/// Engine output waiting for the writer: past this many events, response steps wait.
const RELEASE_PAUSE: usize = 32;
/// Past this much waiting output, client frames wait too (only a client that keeps asking
/// without reading the answers gets here; the write timeout then ends it).
const READ_PAUSE_EVENTS: usize = 4096;
const READ_PAUSE_BYTES: usize = 16 << 20;
/// How long a closing session waits for its last frames and the client's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// A server event, serialized, waiting for the writer.
struct Pending {
    text: String,
    /// The event for the recorder, when there is one.
    json: Option<Value>,
}

/// What the writer task is asked to do, in order.
enum ToWriter {
    Event {
        text: String,
        json: Option<Value>,
        _budget: tokio::sync::OwnedSemaphorePermit,
    },
    /// An injected frame (fault injection), not counted as an event.
    Raw(Message),
    Close(u16, String),
    Kill,
    Stall,
}

/// How the writer task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriterEnd {
    /// Its channel closed.
    Drained,
    /// It wrote a close frame.
    Closed,
    Killed,
    Stalled,
    /// The socket failed, or a write blocked past the write timeout.
    Gone,
}

/// For recording the frames the writer writes.
struct RecordTo {
    recorder: crate::config::Recorder,
    session_id: String,
    beta: bool,
}

/// Writes what it is handed, each write bounded by `timeout`. It never reads, so a blocked
/// write does not stop the session from reading, answering pings or seeing shutdown.
async fn write_loop(
    mut sink: Sink,
    mut commands: tokio::sync::mpsc::UnboundedReceiver<ToWriter>,
    timeout: Duration,
    record: Option<RecordTo>,
) -> (WriterEnd, Sink) {
    async fn write(sink: &mut Sink, message: Message, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, sink.send(message)).await,
            Ok(Ok(()))
        )
    }
    while let Some(command) = commands.recv().await {
        match command {
            ToWriter::Event { text, json, .. } => {
                if !write(&mut sink, Message::text(text), timeout).await {
                    return (WriterEnd::Gone, sink);
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
            ToWriter::Raw(message) => {
                if !write(&mut sink, message, timeout).await {
                    return (WriterEnd::Gone, sink);
                }
            }
            ToWriter::Close(code, reason) => {
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                };
                let _ = write(&mut sink, Message::Close(Some(frame)), timeout).await;
                return (WriterEnd::Closed, sink);
            }
            ToWriter::Kill => return (WriterEnd::Killed, sink),
            ToWriter::Stall => return (WriterEnd::Stalled, sink),
        }
    }
    (WriterEnd::Drained, sink)
}

pub(crate) struct Connection {
    info: ConnectionInfo,
    route: Route,
    key: Option<String>,
    seed: u64,
    shared: Arc<Shared>,
    /// Events handed to the writer (what the `*_after` faults count).
    sent: usize,
    beta: bool,
    session_id: String,
    pending: VecDeque<Pending>,
    pending_bytes: usize,
    /// Client events of the `on_client` fault's type seen so far.
    triggers: usize,
    /// A delayed fault action and when it is due.
    delayed: Option<(Instant, FaultAction)>,
    /// Reading failed: the WebSocket stream has ended, the socket has not.
    fused: bool,
}

/// Why a connection ends.
enum End {
    /// Send a close frame (after the waiting events when `flush`), then wait briefly for the
    /// client's.
    Close {
        code: u16,
        reason: String,
        flush: bool,
    },
    /// The client sent a close frame: answer it with ours (tungstenite echoes its code).
    ClientClosed,
    /// Drop the connection now, without a close frame.
    Kill,
    /// Let the writer write what it has (ending with a kill), then drop the connection.
    KillAfterWrites,
    /// Stop reading and writing until the simulator shuts down, then drop the connection.
    Stalled,
    /// The socket is gone.
    Gone,
}

impl End {
    fn close(code: u16, reason: impl Into<String>) -> Self {
        Self::Close {
            code,
            reason: reason.into(),
            flush: false,
        }
    }

    fn close_after_events(code: u16, reason: impl Into<String>) -> Self {
        Self::Close {
            code,
            reason: reason.into(),
            flush: true,
        }
    }
}

type Stream = futures_util::stream::SplitStream<Ws>;
type Sink = futures_util::stream::SplitSink<Ws, Message>;

/// The session's end of the writer task.
struct Writer {
    commands: tokio::sync::mpsc::UnboundedSender<ToWriter>,
    task: Option<tokio::task::JoinHandle<(WriterEnd, Sink)>>,
    budget: Arc<tokio::sync::Semaphore>,
    /// The socket's write half, back from the writer once it ended.
    sink: Option<Sink>,
}

impl Writer {
    fn send(&self, command: ToWriter) {
        // A writer that ended has said so through its task; nothing to do here.
        let _ = self.commands.send(command);
    }

    /// Resolves when the writer task ends (never again once it has).
    async fn ended(&mut self) -> WriterEnd {
        match &mut self.task {
            Some(task) => {
                let result = task.await;
                self.task = None;
                match result {
                    Ok((end, sink)) => {
                        self.sink = Some(sink);
                        end
                    }
                    Err(_) => WriterEnd::Gone,
                }
            }
            None => std::future::pending().await,
        }
    }

    fn abort(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.abort();
    }
}

impl Connection {
    pub(crate) fn new(handshake: Handshake, seed: u64, shared: Arc<Shared>) -> Self {
        let Handshake { info, route, key } = handshake;
        Self {
            info,
            route,
            key,
            seed,
            shared,
            sent: 0,
            beta: false,
            session_id: String::new(),
            pending: VecDeque::new(),
            pending_bytes: 0,
            triggers: 0,
            delayed: None,
            fused: false,
        }
    }

    fn record(&self, from_server: bool, json: Value) {
        if let Some(recorder) = &self.shared.config.recorder {
            recorder.push(Recorded {
                session_id: self.session_id.clone(),
                from_server,
                json,
                beta: self.beta,
            });
        }
    }

    pub(crate) async fn run(mut self, ws: Ws) {
        let config = self.shared.config.clone();
        let (sink, mut stream) = ws.split();
        let query = |name: &str| self.info.query_param(name).map(str::to_owned);
        let model = query("model").or_else(|| {
            if self.route == Route::AzureLegacy {
                query("deployment")
            } else {
                None
            }
        });
        // An ephemeral key carries a session configuration, which applies by default.
        let secret = self
            .key
            .as_deref()
            .filter(|k| k.starts_with("ek_"))
            .and_then(|k| self.shared.secret(k));
        let secret_type = secret
            .as_ref()
            .and_then(|s| s.session.get("type"))
            .and_then(Value::as_str);
        let transcription = query("intent").as_deref() == Some("transcription")
            || secret_type == Some("transcription");
        let secret_model = secret
            .as_ref()
            .and_then(|s| s.session.get("model"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let call_id = query("call_id");
        let mut engine = Engine::new(
            config.clone(),
            self.seed,
            model
                .as_deref()
                .or(secret_model.as_deref())
                .unwrap_or(crate::engine::DEFAULT_MODEL),
            transcription,
            expires_at(config.session_duration),
        );
        if let Some(secret) = &secret {
            engine.apply_initial(&secret.session);
        }
        self.session_id = engine.session_id().to_owned();
        tracing::Span::current().record("session_id", self.session_id.as_str());
        self.beta =
            self.info.beta && (self.route == Route::AzureLegacy || config.beta != BetaMode::Reject);

        let (commands, receiver) = tokio::sync::mpsc::unbounded_channel();
        let record = config.recorder.clone().map(|recorder| RecordTo {
            recorder,
            session_id: self.session_id.clone(),
            beta: self.beta,
        });
        let mut writer = Writer {
            commands,
            task: Some(tokio::spawn(
                write_loop(sink, receiver, config.write_timeout, record).in_current_span(),
            )),
            budget: Arc::new(tokio::sync::Semaphore::new(WRITE_BUDGET)),
            sink: None,
        };

        let end = if let Some((code, reason)) = &config.faults.close_before_session_created {
            End::close(*code, reason.clone())
        } else if config.faults.kill_after == Some(0) {
            writer.send(ToWriter::Kill);
            End::KillAfterWrites
        } else {
            match self.admit(
                &mut engine,
                model.as_deref(),
                secret.is_some(),
                call_id,
                transcription,
            ) {
                Err(end) => {
                    self.collect(&mut engine);
                    end
                }
                Ok(hangup) => {
                    engine.session_created();
                    self.serve(&mut engine, &mut stream, &mut writer, hangup)
                        .await
                }
            }
        };
        self.finish(end, stream, &mut writer).await;
    }

    /// The checks the real server makes after the 101; a failure is an `error` event and
    /// a close whose reason is `invalid_request_error.<code>` (PROTOCOL.md §1.4).
    fn admit(
        &mut self,
        engine: &mut Engine,
        model: Option<&str>,
        has_secret: bool,
        call_id: Option<String>,
        transcription: bool,
    ) -> Result<Option<watch::Receiver<bool>>, End> {
        let config = self.shared.config.clone();
        let refuse = |engine: &mut Engine, close: u16, code: Option<&str>, message: &str, param| {
            engine.error(code, message, param, None);
            let reason = code.map_or("invalid_request_error".to_owned(), |c| {
                format!("invalid_request_error.{c}")
            });
            End::close_after_events(close, reason)
        };
        if !self.info.authorized {
            return Err(match self.info.auth {
                AuthKind::None => {
                    let message = "Missing bearer or basic authentication in header";
                    refuse(engine, 3000, None, message, None)
                }
                _ => {
                    let message = "Incorrect API key provided.";
                    refuse(engine, 3000, Some("invalid_api_key"), message, None)
                }
            });
        }
        if self.info.beta && self.route != Route::AzureLegacy && config.beta == BetaMode::Reject {
            let message = "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.";
            return Err(refuse(
                engine,
                4000,
                Some("beta_api_shape_disabled"),
                message,
                None,
            ));
        }
        let targets = [
            model.is_some() || has_secret,
            call_id.is_some(),
            transcription,
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if targets == 0 {
            let message = "You must provide a model parameter.";
            return Err(refuse(
                engine,
                4000,
                Some("missing_model"),
                message,
                Some("model"),
            ));
        }
        if let Some(model) = model
            && self.route == Route::Ga
            && !config.model_allowed(model)
        {
            let message = format!("Invalid model: '{model}'.");
            return Err(refuse(
                engine,
                4000,
                Some("invalid_model"),
                &message,
                Some("model"),
            ));
        }
        let hangup = call_id.as_deref().and_then(|call| self.shared.call(call));
        if let (Some(call), None) = (&call_id, &hangup) {
            let message = format!("Call not found: {call}");
            return Err(refuse(
                engine,
                4000,
                Some("invalid_value"),
                &message,
                Some("call_id"),
            ));
        }
        Ok(hangup)
    }

    /// The session: reads client frames, runs the engine's clock, and hands what the engine
    /// produces to the writer, within the write budget.
    async fn serve(
        &mut self,
        engine: &mut Engine,
        stream: &mut Stream,
        writer: &mut Writer,
        mut hangup: Option<watch::Receiver<bool>>,
    ) -> End {
        let config = self.shared.config.clone();
        // A duration too long for the clock means the session never expires.
        let expiry = Instant::now().checked_add(config.session_duration);
        let mut shutdown = self.shared.shutdown.clone();
        loop {
            self.collect(engine);
            let reading =
                self.pending.len() < READ_PAUSE_EVENTS && self.pending_bytes < READ_PAUSE_BYTES;
            let releasing = self.pending.len() < RELEASE_PAUSE;
            let next = [
                releasing.then(|| engine.next_due()).flatten(),
                expiry,
                self.delayed.as_ref().map(|(at, _)| *at),
            ]
            .into_iter()
            .flatten()
            .min();
            let cost = self
                .pending
                .front()
                .map_or(1, |p| p.text.len().clamp(1, WRITE_BUDGET)) as u32;
            let budget = writer.budget.clone();
            tokio::select! {
                _ = shutdown.changed() => return End::close(1001, "server shutting down"),
                end = writer.ended() => return match end {
                    WriterEnd::Stalled => End::Stalled,
                    WriterEnd::Killed => End::Kill,
                    _ => End::Gone,
                },
                permit = budget.acquire_many_owned(cost), if !self.pending.is_empty() => {
                    let Ok(permit) = permit else { return End::Gone };
                    if let Err(end) = self.hand_off(writer, permit) {
                        return end;
                    }
                }
                frame = stream.next(), if reading => {
                    let now = Instant::now();
                    match frame {
                        Some(Ok(Message::Text(text))) => {
                            let kind = self.on_text(engine, text.as_str(), now);
                            if let Err(end) = self.on_client_fault(kind.as_deref(), now, writer) {
                                return end;
                            }
                        }
                        Some(Ok(Message::Binary(_))) => engine.binary_frame(),
                        Some(Ok(Message::Close(_))) => return End::ClientClosed,
                        Some(Ok(_)) => {}
                        None => return End::Gone,
                        Some(Err(error)) => return self.read_failed(engine, &error),
                    }
                }
                () = sleep_until(next) => {
                    let now = Instant::now();
                    if expiry.is_some_and(|expiry| now >= expiry) {
                        engine.session_expired();
                        self.collect(engine);
                        return End::close_after_events(1001, "Your session hit the maximum duration.");
                    }
                    if let Some((at, _)) = &self.delayed && *at <= now {
                        let (_, action) = self.delayed.take().expect("checked above");
                        if let Err(end) = self.act(action, now, writer) {
                            return end;
                        }
                    }
                    if releasing {
                        engine.release(now);
                    }
                }
                Some(()) = call_ended(&mut hangup) => return End::close(1000, "the call was hung up"),
            }
        }
    }

    /// A frame that could not be read: the ones with a close code get an answer.
    fn read_failed(
        &mut self,
        engine: &mut Engine,
        error: &tokio_tungstenite::tungstenite::Error,
    ) -> End {
        use tokio_tungstenite::tungstenite::Error;
        // The stream ends after an error; the rest of the frame is still on the socket.
        self.fused = true;
        match error {
            Error::Capacity(_) => {
                let message = format!(
                    "The message is too large: the limit is {MAX_MESSAGE} bytes (15 MiB of base64 audio per append)."
                );
                engine.error(Some("invalid_request_error"), &message, None, None);
                self.collect(engine);
                End::close_after_events(1009, "message too large")
            }
            Error::Utf8(_) => End::close(1007, "invalid UTF-8 in a text frame"),
            Error::Protocol(
                tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            ) => End::Gone,
            Error::Protocol(_) => End::close(1002, "protocol error"),
            _ => End::Gone,
        }
    }

    /// Moves the engine's events to the queue for the writer, serialized.
    fn collect(&mut self, engine: &mut Engine) {
        let recording = self.shared.config.recorder.is_some();
        for event in engine.take_out() {
            let event = if self.beta {
                match reelthyme_schema::beta::server_value_to_beta(event) {
                    Some(event) => event,
                    None => continue,
                }
            } else {
                event
            };
            let text = event.to_string();
            self.pending_bytes += text.len();
            self.pending.push_back(Pending {
                text,
                json: recording.then_some(event),
            });
        }
    }

    /// Hands the next event to the writer, with the configured faults.
    fn hand_off(
        &mut self,
        writer: &Writer,
        budget: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<(), End> {
        let faults = &self.shared.config.faults;
        if faults.malformed_after == Some(self.sent) {
            writer.send(ToWriter::Raw(Message::text(
                "{\"type\": \"response.done\", oops",
            )));
        }
        if faults.binary_after == Some(self.sent) {
            writer.send(ToWriter::Raw(Message::Binary(Bytes::from_static(
                b"\x00\x01binary",
            ))));
        }
        if faults.stall_after == Some(self.sent) {
            tracing::info!("stalling (fault injection)");
            writer.send(ToWriter::Stall);
            return Err(End::Stalled);
        }
        if let Some((after, code, reason)) = &faults.close_after
            && *after == self.sent
        {
            return Err(End::close(*code, reason.clone()));
        }
        let Some(Pending { text, json }) = self.pending.pop_front() else {
            return Ok(());
        };
        self.pending_bytes -= text.len();
        writer.send(ToWriter::Event {
            text,
            json,
            _budget: budget,
        });
        self.sent += 1;
        if faults.kill_after == Some(self.sent) {
            tracing::info!("killing the connection (fault injection)");
            writer.send(ToWriter::Kill);
            return Err(End::KillAfterWrites);
        }
        Ok(())
    }

    /// Counts client events for the `on_client` fault, and acts on the chosen one.
    fn on_client_fault(
        &mut self,
        kind: Option<&str>,
        now: Instant,
        writer: &Writer,
    ) -> Result<(), End> {
        let Some((trigger, n, action)) = &self.shared.config.faults.on_client else {
            return Ok(());
        };
        if kind != Some(trigger.as_str()) {
            return Ok(());
        }
        self.triggers += 1;
        if self.triggers != *n {
            return Ok(());
        }
        let action = action.clone();
        self.act(action, now, writer)
    }

    fn act(&mut self, action: FaultAction, now: Instant, writer: &Writer) -> Result<(), End> {
        tracing::info!(?action, "fault injection");
        match action {
            FaultAction::Close(code, reason) => Err(End::close(code, reason)),
            FaultAction::Kill => Err(End::Kill),
            FaultAction::Stall => {
                writer.send(ToWriter::Stall);
                Err(End::Stalled)
            }
            FaultAction::Delayed(delay, action) => {
                let at = now.checked_add(delay).unwrap_or(now);
                self.delayed = Some((at, *action));
                Ok(())
            }
        }
    }

    fn on_text(&mut self, engine: &mut Engine, text: &str, now: Instant) -> Option<String> {
        match serde_json::from_str::<Value>(text) {
            Ok(value) => {
                let kind = value.get("type").and_then(Value::as_str).map(str::to_owned);
                self.record(false, value.clone());
                let value = if self.beta {
                    reelthyme_schema::beta::client_to_ga(value)
                } else {
                    value
                };
                engine.client_value(value, now);
                kind
            }
            Err(_) => {
                self.record(false, Value::String(text.to_owned()));
                engine.client_text(text, now);
                None
            }
        }
    }

    /// Ends the connection as `end` says, every wait bounded.
    async fn finish(mut self, end: End, mut stream: Stream, writer: &mut Writer) {
        let deadline = Instant::now() + CLOSE_WAIT;
        match end {
            End::Close {
                code,
                reason,
                flush,
            } => {
                let _ = tokio::time::timeout_at(deadline, async {
                    while flush && !self.pending.is_empty() {
                        let cost = self
                            .pending
                            .front()
                            .map_or(1, |p| p.text.len().clamp(1, WRITE_BUDGET))
                            as u32;
                        let Ok(permit) = writer.budget.clone().acquire_many_owned(cost).await
                        else {
                            return;
                        };
                        if self.hand_off(writer, permit).is_err() {
                            return;
                        }
                    }
                    writer.send(ToWriter::Close(code, reason));
                    writer.ended().await;
                })
                .await;
                if self.fused {
                    // The frame that failed is still arriving: read it away, so the client
                    // finishes sending and reads the close instead of a reset.
                    if let Some(sink) = writer.sink.take()
                        && let Ok(mut ws) = stream.reunite(sink)
                    {
                        use tokio::io::AsyncReadExt;
                        let mut buf = vec![0_u8; 64 << 10];
                        let io = ws.get_mut();
                        while let Ok(Ok(n)) =
                            tokio::time::timeout_at(deadline, io.read(&mut buf)).await
                        {
                            if n == 0 {
                                break;
                            }
                        }
                    }
                } else {
                    // The client's close frame completes the handshake.
                    let _ = tokio::time::timeout_at(deadline, async {
                        while let Some(Ok(message)) = stream.next().await {
                            if message.is_close() {
                                break;
                            }
                        }
                    })
                    .await;
                }
            }
            End::ClientClosed => {
                // tungstenite has queued the reply (echoing the client's code). The writer's
                // queue is dropped (nothing may follow a close), then the sink flushes the
                // reply however full the socket is; reading on then ends the stream.
                let (closed, _) = tokio::sync::mpsc::unbounded_channel();
                drop(std::mem::replace(&mut writer.commands, closed));
                let _ = tokio::time::timeout_at(deadline, writer.ended()).await;
                if let Some(sink) = writer.sink.as_mut() {
                    let _ = tokio::time::timeout_at(deadline, sink.close()).await;
                }
                let _ = tokio::time::timeout_at(deadline, async {
                    while stream.next().await.is_some() {}
                })
                .await;
            }
            End::KillAfterWrites => {
                let _ = tokio::time::timeout_at(deadline, writer.ended()).await;
            }
            End::Stalled => {
                let mut shutdown = self.shared.shutdown.clone();
                let _ = shutdown.changed().await;
            }
            End::Kill | End::Gone => {}
        }
        writer.abort();
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves when the call a sideband session attaches to is hung up; never without a call.
async fn call_ended(hangup: &mut Option<watch::Receiver<bool>>) -> Option<()> {
    match hangup {
        Some(signal) => signal.changed().await.ok(),
        None => std::future::pending().await,
    }
}
