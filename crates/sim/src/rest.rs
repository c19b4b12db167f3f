//! The REST side of the API: ephemeral keys (`POST /v1/realtime/client_secrets`) and call
//! control (`POST /v1/realtime/calls/{call_id}/hangup`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::auth::{AuthKind, authorized, credentials};
use crate::http::{Body, reject};
use crate::state::{IdSpace, Secret, Shared, expires_at, lock};

fn ok(body: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a JSON response builds")
}

pub(crate) async fn handle(request: Request<Incoming>, shared: Arc<Shared>) -> Response<Body> {
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let path = path.strip_prefix("/openai").unwrap_or(&path).to_owned();
    let (auth, key) = credentials(&request, &[], &[]);
    // Ephemeral keys cannot mint keys or control calls.
    let standard_key = key.as_deref().is_some_and(|k| !k.starts_with("ek_"));
    if auth == AuthKind::None || !standard_key || !authorized(&shared, key.as_deref()) {
        let message = if auth == AuthKind::None {
            "Missing bearer or basic authentication in header"
        } else {
            "Incorrect API key provided."
        };
        return reject(StatusCode::UNAUTHORIZED, Some("invalid_api_key"), message);
    }
    match (request.method(), path.as_str()) {
        (&Method::POST, "/v1/realtime/client_secrets") => client_secret(request, &shared).await,
        (&Method::POST, path) if let Some(call) = hangup_call(path) => {
            if shared.hang_up(call) {
                Response::builder()
                    .status(StatusCode::OK)
                    .body(Full::new(Bytes::new()))
                    .expect("an empty response builds")
            } else {
                reject(
                    StatusCode::NOT_FOUND,
                    Some("call_not_found"),
                    &format!("Call not found: {call}"),
                )
            }
        }
        (method, path) => reject(
            StatusCode::NOT_FOUND,
            None,
            &format!("Invalid URL ({method} {path})"),
        ),
    }
}

/// The call id of `/v1/realtime/calls/{call_id}/hangup` (empty when the path names none).
fn hangup_call(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v1/realtime/calls/")?;
    if rest == "hangup" {
        return Some("");
    }
    rest.strip_suffix("/hangup")
}

/// Minted keys kept at once, and the bytes of their sessions: past either, minting answers
/// 429 until some expire.
const MAX_SECRETS: usize = 4096;
const MAX_SECRET_BYTES: usize = 64 << 20;

async fn client_secret(request: Request<Incoming>, shared: &Shared) -> Response<Body> {
    match Limited::new(request.into_body(), 1 << 20).collect().await {
        Ok(body) => mint(shared, &body.to_bytes()),
        Err(_) => reject(
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
            "The body is too large or broken.",
        ),
    }
}

/// `POST /v1/realtime/client_secrets` with this body.
pub(crate) fn mint(shared: &Shared, body: &[u8]) -> Response<Body> {
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(value) => value,
            Err(e) => {
                return reject(
                    StatusCode::BAD_REQUEST,
                    Some("invalid_json"),
                    &format!("Invalid JSON: {e}"),
                );
            }
        }
    };
    let seconds = body
        .pointer("/expires_after/seconds")
        .and_then(Value::as_u64)
        .unwrap_or(600);
    if !(10..=7200).contains(&seconds) {
        let message =
            format!("Invalid 'expires_after.seconds': must be between 10 and 7200, got {seconds}.");
        return reject(StatusCode::BAD_REQUEST, Some("invalid_value"), &message);
    }
    let mut requested = body
        .get("session")
        .cloned()
        .unwrap_or_else(|| json!({"type": "realtime"}));
    let Some(fields) = requested.as_object_mut() else {
        return reject(
            StatusCode::BAD_REQUEST,
            Some("invalid_type"),
            "Invalid 'session': expected an object.",
        );
    };
    let kind = fields
        .entry("type")
        .or_insert_with(|| json!("realtime"))
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if !matches!(kind.as_str(), "realtime" | "transcription") {
        return reject(
            StatusCode::BAD_REQUEST,
            Some("invalid_value"),
            &format!("Invalid 'session.type': {kind}."),
        );
    }
    // The same rules as `session.update`: a session that could not be set on a live session
    // cannot be minted either (a rate of 0, unknown fields, wrong types).
    let update = json!({"type": "session.update", "session": requested});
    if let Err(errors) = reelthyme_schema::validate_client_value(&update) {
        let (code, message, param) = crate::engine::api_error(&errors);
        let body = json!({"error": {"type": "invalid_request_error", "code": code,
            "message": message, "param": param}});
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("a JSON response builds");
    }
    // The session the key will start: the defaults with the requested fields applied.
    let model = requested
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(crate::engine::DEFAULT_MODEL);
    let kind = if kind == "transcription" {
        reelthyme_schema::SessionKind::Transcription
    } else {
        reelthyme_schema::SessionKind::Realtime
    };
    let session_expires_at = expires_at(shared.config.session_duration);
    let defaults = crate::engine::default_session(kind, model, session_expires_at);
    let mut session = crate::engine::with_initial(&defaults, &requested);
    session.id = Some(crate::ids::Ids::new(shared.ids.next(IdSpace::Secret)).next("sess"));
    let session = serde_json::to_value(&session).unwrap_or_default();
    let Some(value) = ephemeral_key() else {
        return reject(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "No randomness for the key.",
        );
    };
    let bytes = requested.to_string().len();
    let now = Instant::now();
    {
        let mut secrets = lock(&shared.secrets);
        secrets.retain(|_, s| s.expires > now);
        let held: usize = secrets.values().map(|s| s.bytes).sum();
        if secrets.len() >= MAX_SECRETS || held + bytes > MAX_SECRET_BYTES {
            return reject(
                StatusCode::TOO_MANY_REQUESTS,
                Some("rate_limit_exceeded"),
                "Too many unexpired client secrets; wait for some to expire.",
            );
        }
        secrets.insert(
            value.clone(),
            Secret {
                expires: now + Duration::from_secs(seconds),
                session: requested,
                bytes,
            },
        );
    }
    let expires_at = expires_at(Duration::from_secs(seconds));
    ok(&json!({"value": value, "expires_at": expires_at, "session": session}))
}

/// `ek_` and 32 hex digits from the OS CSPRNG: keys cannot be guessed from others.
fn ephemeral_key() -> Option<String> {
    let mut bytes = [0_u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    let mut key = String::with_capacity(3 + 32);
    key.push_str("ek_");
    for byte in bytes {
        key.push_str(&format!("{byte:02x}"));
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimConfig;

    fn shared() -> Shared {
        let (_, shutdown) = tokio::sync::watch::channel(false);
        Shared::new(SimConfig::default(), shutdown, None)
    }

    #[tokio::test(start_paused = true)]
    async fn expired_secrets_are_pruned_and_the_store_is_capped() {
        let shared = shared();
        let big = json!({"session": {"type": "realtime", "instructions": "x".repeat(100_000)},
            "expires_after": {"anchor": "created_at", "seconds": 10}})
        .to_string();
        for _ in 0..100 {
            assert_eq!(mint(&shared, big.as_bytes()).status(), StatusCode::OK);
        }
        assert_eq!(shared.secrets.lock().unwrap().len(), 100);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(mint(&shared, b"{}").status(), StatusCode::OK);
        assert_eq!(shared.secrets.lock().unwrap().len(), 1, "expired keys stay");
        // The byte cap: 64 MiB of sessions at most.
        let mut refused = false;
        for _ in 0..700 {
            if mint(&shared, big.as_bytes()).status() == StatusCode::TOO_MANY_REQUESTS {
                refused = true;
                break;
            }
        }
        assert!(refused);
        let held: usize = shared
            .secrets
            .lock()
            .unwrap()
            .values()
            .map(|s| s.bytes)
            .sum();
        assert!(held <= MAX_SECRET_BYTES);
    }
}
