//! WebSocket upgrades: the handshake (URL, auth, subprotocols) read from the HTTP request,
//! the 101, and the upgraded socket handed to the session.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request as HttpRequest, Response as HttpResponse, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tracing::Instrument;

use crate::auth::{authorized, credentials, header_value};
use crate::handshake::{ConnectionInfo, Handshake, Route, parse_query, route};
use crate::http::{Body, Permit, reject};
use crate::state::{IdSpace, Shared};

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

/// The largest client message: the service's 15 MiB append (as base64) and room for its
/// JSON envelope. Larger ones get an `error` event and close 1009.
pub(crate) const MAX_MESSAGE: usize = reelthyme_schema::MAX_APPEND_BYTES + (64 << 10);

pub(crate) fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

pub(crate) fn websocket_upgrade(
    mut request: HttpRequest<Incoming>,
    shared: Arc<Shared>,
    permit: Permit,
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
        let _permit = permit;
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
        shared.remember(handshake.info.clone());
        if let Some(entries) = &shared.replay {
            return crate::replay::serve(ws, entries).await;
        }
        let seed = shared.ids.next(IdSpace::Session);
        let span = tracing::info_span!("sim_session", session_id = tracing::field::Empty);
        crate::connection::Connection::new(handshake, seed, shared)
            .run(ws)
            .instrument(span)
            .await;
    });
    response
        .body(Full::new(Bytes::new()))
        .expect("a 101 response builds")
}
