//! The REST calls around a realtime session: minting ephemeral keys for browsers and
//! mobile clients (`POST /v1/realtime/client_secrets`) and hanging up WebRTC/SIP calls
//! (`POST /v1/realtime/calls/{call_id}/hangup`). HTTP/1.1 by hyper, over the same rustls
//! configuration as the WebSocket.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use reelthyme_schema::SessionConfig;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::http::{HeaderMap, Uri};

use crate::endpoint::{ApiKey, Endpoint};
use crate::error::{Error, ErrorKind, Result};
use crate::net::{self, Origin};
use crate::options::Options;

/// What an ephemeral key allows: how long it lives and the session it starts.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ClientSecretRequest {
    /// Seconds the key lives, 10 to 7200 (the API's default is 600).
    pub expires_after_seconds: Option<u32>,
    /// The session the key starts (`type` realtime or transcription); the client may
    /// override it.
    pub session: Option<SessionConfig>,
}

impl ClientSecretRequest {
    /// A key for `session`, living `seconds`.
    pub fn new(session: SessionConfig, seconds: u32) -> Self {
        Self {
            expires_after_seconds: Some(seconds),
            session: Some(session),
        }
    }
}

/// A minted ephemeral key.
#[derive(Debug, Clone)]
pub struct ClientSecret {
    /// The key (`ek_…`); hand it to the client, which uses it as a bearer token.
    pub value: ApiKey,
    /// Unix seconds when it stops starting sessions.
    pub expires_at: i64,
    /// The session it starts.
    pub session: SessionConfig,
}

#[derive(Deserialize)]
struct ClientSecretResponse {
    value: String,
    expires_at: i64,
    session: SessionConfig,
}

/// Mints an ephemeral key with a standard key.
///
/// # Errors
/// [`ErrorKind::Auth`] for a refused key, [`ErrorKind::Connect`] with the HTTP status for
/// other refusals, [`ErrorKind::Config`] for the legacy Azure API (which has no such call).
pub async fn create_client_secret(
    endpoint: &Endpoint,
    request: &ClientSecretRequest,
    options: &Options,
) -> Result<ClientSecret> {
    let mut body = json!({});
    if let Some(seconds) = request.expires_after_seconds {
        body["expires_after"] = json!({"anchor": "created_at", "seconds": seconds});
    }
    if let Some(session) = &request.session {
        body["session"] = serde_json::to_value(session).expect("sessions serialise");
    }
    let text = post(endpoint, "client_secrets", Some(&body), options).await?;
    let response: ClientSecretResponse = serde_json::from_slice(&text).map_err(|e| {
        Error::new(ErrorKind::Parse, "the client secret response did not parse").with_source(e)
    })?;
    Ok(ClientSecret {
        value: ApiKey::new(response.value),
        expires_at: response.expires_at,
        session: response.session,
    })
}

/// Hangs up a WebRTC or SIP call.
///
/// # Errors
/// As [`create_client_secret`]; an unknown call is [`ErrorKind::Connect`] with status 404.
pub async fn hangup(endpoint: &Endpoint, call_id: &str, options: &Options) -> Result<()> {
    post(
        endpoint,
        &format!("calls/{}/hangup", crate::endpoint::encode(call_id)),
        None,
        options,
    )
    .await
    .map(drop)
}

/// A request to the endpoint's REST API: `POST {rest_base}/{path}` with the endpoint's
/// credentials, and a body of any content type (JSON for client secrets, SDP or multipart
/// for a WebRTC call's offer).
#[derive(Debug, Clone)]
#[must_use]
pub struct HttpRequest {
    method: Method,
    path: String,
    content_type: Option<String>,
    body: Bytes,
}

impl HttpRequest {
    /// `POST {rest_base}/{path}` with no body (`path` is appended as given: encode what it
    /// carries).
    pub fn post(path: impl Into<String>) -> Self {
        Self {
            method: Method::POST,
            path: path.into(),
            content_type: None,
            body: Bytes::new(),
        }
    }

    /// With a body of this content type.
    pub fn body(mut self, content_type: impl Into<String>, body: impl Into<Bytes>) -> Self {
        self.content_type = Some(content_type.into());
        self.body = body.into();
        self
    }

    /// With a JSON body.
    pub fn json(self, value: &Value) -> Self {
        self.body("application/json", value.to_string())
    }
}

/// A successful (2xx) answer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpResponse {
    /// The status.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body (at most 4 MiB).
    pub body: Bytes,
}

impl HttpResponse {
    /// The `Location` header (a WebRTC call's URL, whose last segment is its id).
    pub fn location(&self) -> Option<&str> {
        self.headers.get("location")?.to_str().ok()
    }

    /// The body as text, if it is UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }
}

/// Sends a request to the endpoint's REST API (the signalling a WebRTC transport needs, the
/// REST calls of this module): HTTP/1.1 by hyper over the same TLS configuration as the
/// WebSocket, bounded by [`Options::connect_timeout`].
///
/// # Errors
/// A refusal is [`Error::http`] (401/403 → [`ErrorKind::Auth`], others
/// [`ErrorKind::Connect`] with [`Error::http_status`] and the API's error body);
/// [`ErrorKind::Timeout`]; [`ErrorKind::Config`] for the legacy Azure API.
pub async fn send_request(
    endpoint: &Endpoint,
    request: HttpRequest,
    options: &Options,
) -> Result<HttpResponse> {
    let url = format!("{}/{}", endpoint.rest_base()?, request.path);
    let uri: Uri = url
        .parse()
        .map_err(|e| Error::new(ErrorKind::Config, format!("invalid URL {url}")).with_source(e))?;
    let origin = Origin::of(&uri)?;
    origin.warn_cleartext(endpoint.has_credentials());
    let mut builder = Request::builder()
        .method(request.method.clone())
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header("host", origin.authority.as_str());
    if let Some(headers) = builder.headers_mut() {
        headers.extend(endpoint.auth_headers()?);
    }
    if let Some(content_type) = &request.content_type {
        builder = builder.header("content-type", content_type.as_str());
    }
    let hyper_request = builder
        .body(Full::new(request.body))
        .map_err(|e| Error::new(ErrorKind::Config, "cannot build the request").with_source(e))?;
    tracing::debug!(%url, method = %request.method, "REST request");
    let exchange = async {
        let io = origin.connect(&options.extra_root_certificates).await?;
        send(TokioIo::new(io), hyper_request).await
    };
    tokio::time::timeout(options.connect_timeout, exchange)
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::Timeout,
                format!("{} {url} timed out", request.method),
            )
        })?
}

async fn post(
    endpoint: &Endpoint,
    path: &str,
    body: Option<&Value>,
    options: &Options,
) -> Result<Bytes> {
    let request = match body {
        Some(body) => HttpRequest::post(path).json(body),
        None => HttpRequest::post(path),
    };
    Ok(send_request(endpoint, request, options).await?.body)
}

async fn send<T>(io: T, request: Request<Full<Bytes>>) -> Result<HttpResponse>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| Error::new(ErrorKind::Connect, "HTTP handshake failed").with_source(e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| Error::new(ErrorKind::Connect, "the HTTP request failed").with_source(e))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = net::body(response, 4 << 20).await?;
    match status {
        200..=299 => Ok(HttpResponse {
            status,
            headers,
            body,
        }),
        _ => Err(Error::http(status, std::str::from_utf8(&body).ok())),
    }
}
