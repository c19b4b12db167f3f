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
use tokio_tungstenite::tungstenite::http::Uri;

use crate::endpoint::{ApiKey, Endpoint, Flavor};
use crate::error::{Error, ErrorKind, Result};
use crate::http::{self, Origin};
use crate::websocket::Options;

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

/// `https://…/v1/realtime/{path}` for the endpoint's family.
fn rest_url(endpoint: &Endpoint, path: &str) -> Result<String> {
    let url = endpoint.url();
    let base = url.split('?').next().unwrap_or_default();
    let base = match endpoint.flavor() {
        Flavor::OpenAi | Flavor::Azure => base.to_owned(),
        Flavor::AzureLegacy { .. } => {
            return Err(Error::new(
                ErrorKind::Config,
                "the legacy Azure API has no realtime REST calls",
            ));
        }
        #[allow(unreachable_patterns)]
        _ => base.to_owned(),
    };
    let http = if let Some(rest) = base.strip_prefix("wss://") {
        format!("https://{rest}")
    } else if let Some(rest) = base.strip_prefix("ws://") {
        format!("http://{rest}")
    } else {
        base
    };
    Ok(format!("{http}/{path}"))
}

async fn post(
    endpoint: &Endpoint,
    path: &str,
    body: Option<&Value>,
    options: &Options,
) -> Result<Bytes> {
    let url = rest_url(endpoint, path)?;
    let uri: Uri = url
        .parse()
        .map_err(|e| Error::new(ErrorKind::Config, format!("invalid URL {url}")).with_source(e))?;
    let origin = Origin::of(&uri)?;
    origin.warn_cleartext(endpoint.has_credentials());
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()));
    request = request.header("host", origin.authority.as_str());
    for (name, value) in endpoint.request()?.headers() {
        // The WebSocket handshake's own headers do not belong on a REST call.
        if !name.as_str().starts_with("sec-websocket")
            && !matches!(name.as_str(), "upgrade" | "connection" | "host")
        {
            request = request.header(name, value);
        }
    }
    let payload = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Bytes::from(body.to_string())
        }
        None => Bytes::new(),
    };
    let request = request
        .body(Full::new(payload))
        .map_err(|e| Error::new(ErrorKind::Config, "cannot build the request").with_source(e))?;
    tracing::debug!(%url, "POST");
    let exchange = async {
        let io = origin.connect(&options.extra_root_certificates).await?;
        send(TokioIo::new(io), request).await
    };
    tokio::time::timeout(options.connect_timeout, exchange)
        .await
        .map_err(|_| Error::new(ErrorKind::Timeout, format!("POST {url} timed out")))?
}

async fn send<T>(io: T, request: Request<Full<Bytes>>) -> Result<Bytes>
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
    let body = http::body(response, 4 << 20).await?;
    match status {
        200..=299 => Ok(body),
        401 | 403 => {
            let mut error = Error::http(status, std::str::from_utf8(&body).ok());
            error.set_kind(ErrorKind::Auth);
            Err(error)
        }
        _ => Err(Error::http(status, std::str::from_utf8(&body).ok())),
    }
}
