//! The socket side: the handshake (URL, auth, subprotocols) and one task per connection
//! that feeds the engine and sends what it produces.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::upgrade::Upgraded;
use hyper::{Request as HttpRequest, Response as HttpResponse, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tracing::Instrument;

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
    /// Ephemeral keys minted by `POST /v1/realtime/client_secrets`.
    pub(crate) secrets: Mutex<HashMap<String, Secret>>,
    /// Open calls (`rtc_…`) and the signal that hangs them up.
    pub(crate) calls: Mutex<HashMap<String, watch::Sender<bool>>>,
    /// A recording to replay instead of simulating.
    pub(crate) replay: Option<Arc<Vec<crate::replay::Entry>>>,
}

/// An ephemeral key and the session configuration it carries.
#[derive(Debug, Clone)]
pub(crate) struct Secret {
    pub(crate) expires: Instant,
    pub(crate) session: Value,
}

impl Shared {
    /// The session of an unexpired ephemeral key.
    pub(crate) fn secret(&self, key: &str) -> Option<Secret> {
        let secrets = self.secrets.lock().expect("secrets lock");
        secrets
            .get(key)
            .filter(|s| s.expires > Instant::now())
            .cloned()
    }
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
    /// The credential, kept only to look up an ephemeral key's session.
    key: Option<String>,
}

pub(crate) type Body = Full<Bytes>;

/// A JSON error response, shaped like OpenAI's.
pub(crate) fn reject(status: StatusCode, code: Option<&str>, message: &str) -> HttpResponse<Body> {
    let body = json!({"error": {"type": "invalid_request_error", "code": code, "message": message, "param": null}});
    HttpResponse::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a static response builds")
}

/// Who a request is from: the kind of credential and the credential.
/// A request header as text, if present and valid UTF-8.
fn header_value<B>(request: &HttpRequest<B>, name: &str) -> Option<String> {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

pub(crate) fn credentials<B>(
    request: &HttpRequest<B>,
    protocols: &[String],
    query: &[(String, String)],
) -> (AuthKind, Option<String>) {
    let header = |name: &str| header_value(request, name);
    if let Some(bearer) =
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
    }
}

/// Whether a credential is accepted: a configured key (any, when none is configured), or an
/// ephemeral key this simulator minted that has not expired.
pub(crate) fn authorized(shared: &Shared, key: Option<&str>) -> bool {
    let config = &shared.config;
    match key {
        Some(key) if key.starts_with("ek_") && shared.secret(key).is_some() => true,
        Some(key) => config.api_keys.is_empty() || config.api_keys.iter().any(|k| k == key),
        None => config.api_keys.is_empty(),
    }
}

// The refusal is the HTTP response itself, built once on a rare path.
#[allow(clippy::result_large_err)]
fn handshake<B>(
    request: &HttpRequest<B>,
    shared: &Shared,
) -> Result<Handshake, HttpResponse<Body>> {
    let path = request.uri().path().to_owned();
    let Some(route) = route(&path) else {
        return Err(reject(
            StatusCode::NOT_FOUND,
            None,
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
            None,
            "api-version and deployment query parameters are required",
        ));
    }
    let header = |name: &str| header_value(request, name);
    let protocols: Vec<String> = header("sec-websocket-protocol")
        .map(|p| {
            p.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let (auth, key) = credentials(request, &protocols, &query);
    let authorized = authorized(shared, key.as_deref());
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
    Ok(Handshake { info, route, key })
}

pub(crate) fn websocket_config() -> WebSocketConfig {
    // A 15 MiB append is 20 MiB of base64: leave room for it, and for oversized ones that
    // deserve an `error` event rather than a dropped connection.
    WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20))
}

/// One TCP connection: HTTP/1.1, which is either a REST call or a WebSocket upgrade.
pub(crate) async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let service = service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, std::convert::Infallible>(route_request(request, shared).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(error) = connection.await {
        tracing::debug!(%error, "connection ended with an error");
    }
}

async fn route_request(request: HttpRequest<Incoming>, shared: Arc<Shared>) -> HttpResponse<Body> {
    let upgrade = request
        .headers()
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if upgrade {
        return websocket_upgrade(request, shared);
    }
    crate::rest::handle(request, shared).await
}

fn websocket_upgrade(
    mut request: HttpRequest<Incoming>,
    shared: Arc<Shared>,
) -> HttpResponse<Body> {
    let Some(key) = request
        .headers()
        .get("sec-websocket-key")
        .map(|k| derive_accept_key(k.as_bytes()))
    else {
        return reject(StatusCode::BAD_REQUEST, None, "missing Sec-WebSocket-Key");
    };
    if request
        .headers()
        .get("sec-websocket-version")
        .and_then(|v| v.to_str().ok())
        != Some("13")
    {
        return reject(
            StatusCode::BAD_REQUEST,
            None,
            "unsupported Sec-WebSocket-Version",
        );
    }
    let handshake = match handshake(&request, &shared) {
        Ok(handshake) => handshake,
        Err(response) => return response,
    };
    let mut response = HttpResponse::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", key);
    if let Some(protocol) = &handshake.info.subprotocol {
        response = response.header("sec-websocket-protocol", protocol.as_str());
    }
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => return tracing::debug!(%error, "upgrade failed"),
        };
        let ws = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(websocket_config()),
        )
        .await;
        if let Some(entries) = &shared.replay {
            shared
                .connections
                .lock()
                .expect("connections lock")
                .push(handshake.info.clone());
            return crate::replay::serve(ws, entries).await;
        }
        shared
            .connections
            .lock()
            .expect("connections lock")
            .push(handshake.info.clone());
        let seed = shared.sessions.fetch_add(1, Ordering::Relaxed) + 1;
        let span = tracing::info_span!("sim_session", session_id = tracing::field::Empty);
        Connection::new(ws, handshake, seed, shared)
            .run()
            .instrument(span)
            .await;
    });
    response
        .body(Full::new(Bytes::new()))
        .expect("a 101 response builds")
}

type Ws = WebSocketStream<TokioIo<Upgraded>>;

struct Connection {
    ws: Ws,
    info: ConnectionInfo,
    route: Route,
    key: Option<String>,
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
    fn new(ws: Ws, handshake: Handshake, seed: u64, shared: Arc<Shared>) -> Self {
        let Handshake { info, route, key } = handshake;
        Self {
            ws,
            info,
            route,
            key,
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
        let expires_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()) as i64
            + config.session_duration.as_secs() as i64;
        let mut engine = Engine::new(
            config.clone(),
            self.seed,
            model
                .as_deref()
                .or(secret_model.as_deref())
                .unwrap_or("gpt-realtime"),
            transcription,
            expires_at,
        );
        if let Some(secret) = &secret {
            engine.apply_initial(&secret.session);
        }
        self.session_id = engine.session_id().to_owned();
        tracing::Span::current().record("session_id", self.session_id.as_str());

        // Failures after the 101, exactly as the real server signals them.
        if !self.info.authorized {
            return match self.info.auth {
                AuthKind::None => {
                    let message = "Missing bearer or basic authentication in header";
                    self.refuse(&mut engine, 3000, None, message, None).await
                }
                _ => {
                    let message = "Incorrect API key provided.";
                    self.refuse(&mut engine, 3000, Some("invalid_api_key"), message, None)
                        .await
                }
            };
        }
        if self.info.beta && self.route != Route::AzureLegacy && config.beta == BetaMode::Reject {
            let message = "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.";
            return self
                .refuse(
                    &mut engine,
                    4000,
                    Some("beta_api_shape_disabled"),
                    message,
                    None,
                )
                .await;
        }
        self.beta = self.info.beta;
        let targets = [
            model.is_some() || secret.is_some(),
            call_id.is_some(),
            transcription,
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if targets == 0 {
            let message = "You must provide a model parameter.";
            return self
                .refuse(
                    &mut engine,
                    4000,
                    Some("missing_model"),
                    message,
                    Some("model"),
                )
                .await;
        }
        if let Some(model) = &model
            && self.route == Route::Ga
            && !config.model_allowed(model)
        {
            let message = format!("Invalid model: '{model}'.");
            return self
                .refuse(
                    &mut engine,
                    4000,
                    Some("invalid_model"),
                    &message,
                    Some("model"),
                )
                .await;
        }
        let mut hangup = call_id.as_ref().and_then(|call| {
            self.shared
                .calls
                .lock()
                .expect("calls lock")
                .get(call)
                .map(watch::Sender::subscribe)
        });
        if let (Some(call), None) = (&call_id, &hangup) {
            let message = format!("Call not found: {call}");
            return self
                .refuse(
                    &mut engine,
                    4000,
                    Some("invalid_value"),
                    &message,
                    Some("call_id"),
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
                Some(()) = call_ended(&mut hangup) => break End::Close(1000, "the call was hung up".into()),
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

    /// Refuses the session: an `error` event, then a close whose reason is
    /// `invalid_request_error.<code>` (PROTOCOL.md §1.4).
    async fn refuse(
        mut self,
        engine: &mut Engine,
        close: u16,
        code: Option<&str>,
        message: &str,
        param: Option<&str>,
    ) {
        engine.error(code, message, param, None);
        let reason = code.map_or("invalid_request_error".to_owned(), |c| {
            format!("invalid_request_error.{c}")
        });
        if self.flush(engine).await.is_ok() {
            self.close(close, reason).await;
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

/// Resolves when the call a sideband session attaches to is hung up; never without a call.
async fn call_ended(hangup: &mut Option<watch::Receiver<bool>>) -> Option<()> {
    match hangup {
        Some(signal) => signal.changed().await.ok(),
        None => std::future::pending().await,
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
