//! The socket side: the handshake (URL, auth, subprotocols) and one task per connection
//! that feeds the engine and sends what it produces.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::config::{BetaMode, Recorded, SimConfig};
use crate::engine::Engine;

/// How a client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthKind {
    /// `Authorization: Bearer …`.
    Bearer,
    /// Azure's `api-key` header.
    ApiKeyHeader,
    /// Browser subprotocol `openai-insecure-api-key.…`.
    Subprotocol,
    /// Azure's `?api-key=` query fallback.
    Query,
    /// No credentials.
    None,
}

/// What a connection asked for, as the simulator saw it (secrets left out), for tests that
/// check what reached the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The request path, e.g. `/v1/realtime`.
    pub path: String,
    /// The query parameters, in order (an `api-key` value is replaced by `***`).
    pub query: Vec<(String, String)>,
    /// How the client authenticated.
    pub auth: AuthKind,
    /// Whether the credential was accepted.
    pub authorized: bool,
    /// Whether the client asked for the beta dialect.
    pub beta: bool,
    /// The subprotocol the simulator selected.
    pub subprotocol: Option<String>,
    /// Request headers other than credentials (names lower-case).
    pub headers: Vec<(String, String)>,
}

impl ConnectionInfo {
    /// The value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a header (lower-case name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub(crate) struct Shared {
    pub(crate) config: Arc<SimConfig>,
    pub(crate) sessions: AtomicU64,
    pub(crate) connections: Mutex<Vec<ConnectionInfo>>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// OpenAI (and compatible servers).
    Ga,
    /// Azure GA: `?model=` names a deployment, which can be anything.
    AzureGa,
    /// Azure's legacy preview API: beta dialect, `api-version` and `deployment`.
    AzureLegacy,
}

fn route(path: &str) -> Option<Route> {
    match path.trim_end_matches('/') {
        "/v1/realtime" | "/realtime" => Some(Route::Ga),
        "/openai/v1/realtime" => Some(Route::AzureGa),
        "/openai/realtime" => Some(Route::AzureLegacy),
        _ => None,
    }
}

fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Handshake {
    info: ConnectionInfo,
    route: Route,
}

fn reject(status: StatusCode, message: &str) -> ErrorResponse {
    let body = json!({"error": {"type": "invalid_request_error", "code": null, "message": message, "param": null}});
    let mut response = ErrorResponse::new(Some(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

// The error type is what tungstenite's callback must return.
#[allow(clippy::result_large_err)]
fn handshake(
    request: &Request,
    mut response: Response,
    config: &SimConfig,
) -> Result<(Response, Handshake), ErrorResponse> {
    let path = request.uri().path().to_owned();
    let Some(route) = route(&path) else {
        return Err(reject(
            StatusCode::NOT_FOUND,
            &format!("Invalid URL (GET {path})"),
        ));
    };
    let mut query = parse_query(request.uri().query());
    if route == Route::AzureLegacy
        && !(query.iter().any(|(k, _)| k == "api-version")
            && query.iter().any(|(k, _)| k == "deployment"))
    {
        return Err(reject(
            StatusCode::BAD_REQUEST,
            "api-version and deployment query parameters are required",
        ));
    }
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let protocols: Vec<String> = header("sec-websocket-protocol")
        .map(|p| {
            p.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let (auth, key) = if let Some(bearer) =
        header("authorization").and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned))
    {
        (AuthKind::Bearer, Some(bearer))
    } else if let Some(key) = header("api-key") {
        (AuthKind::ApiKeyHeader, Some(key))
    } else if let Some(key) = protocols
        .iter()
        .find_map(|p| p.strip_prefix("openai-insecure-api-key."))
    {
        (AuthKind::Subprotocol, Some(key.to_owned()))
    } else if let Some((_, key)) = query.iter().find(|(k, _)| k == "api-key") {
        (AuthKind::Query, Some(key.clone()))
    } else {
        (AuthKind::None, None)
    };
    let authorized = match &key {
        Some(key) => config.api_keys.is_empty() || config.api_keys.iter().any(|k| k == key),
        None => config.api_keys.is_empty(),
    };
    for (k, v) in &mut query {
        if k == "api-key" {
            *v = "***".into();
        }
    }
    let beta = header("openai-beta").is_some_and(|v| v.contains("realtime=v1"))
        || protocols.iter().any(|p| p == "openai-beta.realtime-v1")
        || route == Route::AzureLegacy;
    // Select `realtime` when offered (browsers), else the first non-credential protocol.
    let subprotocol = protocols
        .iter()
        .find(|p| *p == "realtime")
        .or_else(|| {
            protocols
                .iter()
                .find(|p| !p.starts_with("openai-insecure-api-key."))
        })
        .cloned();
    if let Some(chosen) = &subprotocol
        && let Ok(value) = HeaderValue::from_str(chosen)
    {
        response
            .headers_mut()
            .insert("sec-websocket-protocol", value);
    }
    let headers = request
        .headers()
        .iter()
        .filter(|(name, _)| {
            !matches!(
                name.as_str(),
                "authorization" | "api-key" | "sec-websocket-protocol" | "sec-websocket-key"
            )
        })
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let info = ConnectionInfo {
        path,
        query,
        auth,
        authorized,
        beta,
        subprotocol,
        headers,
    };
    Ok((response, Handshake { info, route }))
}

pub(crate) fn websocket_config() -> WebSocketConfig {
    // A 15 MiB append is 20 MiB of base64: leave room for it, and for oversized ones that
    // deserve an `error` event rather than a dropped connection.
    WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20))
}

// tungstenite's handshake callback returns its large `ErrorResponse` by value.
#[allow(clippy::result_large_err)]
pub(crate) async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let config = shared.config.clone();
    let mut outcome = None;
    let callback = |request: &Request, response: Response| {
        handshake(request, response, &config).map(|(response, handshake)| {
            outcome = Some(handshake);
            response
        })
    };
    let ws = match tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        callback,
        Some(websocket_config()),
    )
    .await
    {
        Ok(ws) => ws,
        Err(error) => {
            tracing::debug!(%error, "handshake failed");
            return;
        }
    };
    let Some(Handshake { info, route }) = outcome else {
        return;
    };
    shared
        .connections
        .lock()
        .expect("connections lock")
        .push(info.clone());
    let seed = shared.sessions.fetch_add(1, Ordering::Relaxed) + 1;
    Connection::new(ws, info, route, seed, shared).run().await;
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

struct Connection {
    ws: Ws,
    info: ConnectionInfo,
    route: Route,
    seed: u64,
    shared: Arc<Shared>,
    sent: usize,
    beta: bool,
    session_id: String,
}

/// Why a connection ends.
enum End {
    Close(u16, String),
    Gone,
}

impl Connection {
    fn new(ws: Ws, info: ConnectionInfo, route: Route, seed: u64, shared: Arc<Shared>) -> Self {
        Self {
            ws,
            info,
            route,
            seed,
            shared,
            sent: 0,
            beta: false,
            session_id: String::new(),
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

    async fn run(mut self) {
        let config = self.shared.config.clone();
        let query = |name: &str| self.info.query_param(name).map(str::to_owned);
        let model = query("model").or_else(|| {
            if self.route == Route::AzureLegacy {
                query("deployment")
            } else {
                None
            }
        });
        let transcription = query("intent").as_deref() == Some("transcription");
        let call_id = query("call_id");
        let expires_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()) as i64
            + config.session_duration.as_secs() as i64;
        let mut engine = Engine::new(
            config.clone(),
            self.seed,
            model.as_deref().unwrap_or("gpt-realtime"),
            transcription,
            expires_at,
        );
        self.session_id = engine.session_id().to_owned();
        let span = tracing::info_span!("sim_session", session_id = %self.session_id);
        let _guard = span.enter();

        // Failures after the 101, exactly as the real server signals them.
        if !self.info.authorized {
            let (code, message) = match self.info.auth {
                AuthKind::None => (
                    None,
                    "Missing bearer or basic authentication in header".to_owned(),
                ),
                _ => (
                    Some("invalid_api_key"),
                    "Incorrect API key provided.".to_owned(),
                ),
            };
            engine.error(code, &message, None, None);
            let reason = code.map_or("invalid_request_error".to_owned(), |c| {
                format!("invalid_request_error.{c}")
            });
            return self.fail(&mut engine, 3000, reason).await;
        }
        if self.info.beta && self.route != Route::AzureLegacy && config.beta == BetaMode::Reject {
            engine.error(
                Some("beta_api_shape_disabled"),
                "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.",
                None,
                None,
            );
            return self
                .fail(
                    &mut engine,
                    4000,
                    "invalid_request_error.beta_api_shape_disabled".into(),
                )
                .await;
        }
        self.beta = self.info.beta;
        let targets = [model.is_some(), call_id.is_some(), transcription]
            .iter()
            .filter(|x| **x)
            .count();
        if targets == 0 {
            engine.error(
                Some("missing_model"),
                "You must provide a model parameter.",
                Some("model"),
                None,
            );
            return self
                .fail(
                    &mut engine,
                    4000,
                    "invalid_request_error.missing_model".into(),
                )
                .await;
        }
        if let Some(model) = &model
            && self.route == Route::Ga
            && !config.model_allowed(model)
        {
            let message = format!("Invalid model: '{model}'.");
            engine.error(Some("invalid_model"), &message, Some("model"), None);
            return self
                .fail(
                    &mut engine,
                    4000,
                    "invalid_request_error.invalid_model".into(),
                )
                .await;
        }

        engine.session_created();
        let expiry = Instant::now() + config.session_duration;
        let mut shutdown = self.shared.shutdown.clone();
        let end = loop {
            if let Err(end) = self.flush(&mut engine).await {
                break end;
            }
            let next = engine.next_due().unwrap_or(expiry).min(expiry);
            tokio::select! {
                frame = self.ws.next() => match frame {
                    Some(Ok(Message::Text(text))) => self.on_text(&mut engine, text.as_str()),
                    Some(Ok(Message::Binary(_))) => engine.binary_frame(),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break End::Gone,
                    Some(Ok(_)) => {}
                },
                () = tokio::time::sleep_until(next) => {
                    let now = Instant::now();
                    if now >= expiry {
                        engine.session_expired();
                        let _ = self.flush(&mut engine).await;
                        break End::Close(1001, "Your session hit the maximum duration.".into());
                    }
                    engine.release(now);
                }
                _ = shutdown.changed() => break End::Close(1001, "server shutting down".into()),
            }
        };
        if let End::Close(code, reason) = end {
            self.close(code, reason).await;
        }
    }

    fn on_text(&mut self, engine: &mut Engine, text: &str) {
        let now = Instant::now();
        match serde_json::from_str::<Value>(text) {
            Ok(value) => {
                self.record(false, value.clone());
                let value = if self.beta {
                    reelthyme_schema::beta::client_to_ga(value)
                } else {
                    value
                };
                engine.client_value(value, now);
            }
            Err(_) => {
                self.record(false, Value::String(text.to_owned()));
                engine.client_text(text, now);
            }
        }
    }

    /// Sends the engine's events, with the configured faults.
    async fn flush(&mut self, engine: &mut Engine) -> Result<(), End> {
        let faults = self.shared.config.faults.clone();
        for event in engine.take_out() {
            let event = if self.beta {
                match reelthyme_schema::beta::server_value_to_beta(event) {
                    Some(event) => event,
                    None => continue,
                }
            } else {
                event
            };
            if faults.malformed_after == Some(self.sent) {
                self.send(Message::text("{\"type\": \"response.done\", oops"))
                    .await?;
            }
            if faults.binary_after == Some(self.sent) {
                self.send(Message::Binary(Bytes::from_static(b"\x00\x01binary")))
                    .await?;
            }
            if faults.stall_after == Some(self.sent) {
                tracing::info!("stalling (fault injection)");
                let mut shutdown = self.shared.shutdown.clone();
                let _ = shutdown.changed().await;
                return Err(End::Gone);
            }
            if let Some((after, code, reason)) = &faults.close_after
                && *after == self.sent
            {
                return Err(End::Close(*code, reason.clone()));
            }
            let text = event.to_string();
            self.record(true, event);
            self.send(Message::text(text)).await?;
            self.sent += 1;
        }
        Ok(())
    }

    async fn send(&mut self, message: Message) -> Result<(), End> {
        self.ws.send(message).await.map_err(|_| End::Gone)
    }

    async fn fail(mut self, engine: &mut Engine, code: u16, reason: String) {
        if self.flush(engine).await.is_ok() {
            self.close(code, reason).await;
        }
    }

    async fn close(mut self, code: u16, reason: String) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        let _ = self.ws.send(Message::Close(Some(frame))).await;
        // Wait briefly for the client's close reply so the close handshake completes.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(message)) = self.ws.next().await {
                if message.is_close() {
                    break;
                }
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        assert_eq!(
            parse_query(Some("model=gpt-realtime&intent=transcription&x=a%20b+c")),
            [
                ("model".into(), "gpt-realtime".into()),
                ("intent".into(), "transcription".into()),
                ("x".into(), "a b c".into())
            ]
        );
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn routes() {
        assert_eq!(route("/v1/realtime"), Some(Route::Ga));
        assert_eq!(route("/openai/v1/realtime"), Some(Route::AzureGa));
        assert_eq!(route("/openai/realtime"), Some(Route::AzureLegacy));
        assert_eq!(route("/v1/chat"), None);
    }
}
