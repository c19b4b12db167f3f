//! The REST side of the API: ephemeral keys (`POST /v1/realtime/client_secrets`) and call
//! control (`POST /v1/realtime/calls/{call_id}/hangup`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::engine::Engine;
use crate::server::{AuthKind, Body, Secret, Shared, authorized, credentials, reject};

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
        (&Method::POST, path)
            if path.starts_with("/v1/realtime/calls/") && path.ends_with("/hangup") =>
        {
            let call = &path["/v1/realtime/calls/".len()..path.len() - "/hangup".len()];
            match shared.calls.lock().expect("calls lock").remove(call) {
                Some(signal) => {
                    let _ = signal.send(true);
                    Response::builder()
                        .status(StatusCode::OK)
                        .body(Full::new(Bytes::new()))
                        .expect("builds")
                }
                None => reject(
                    StatusCode::NOT_FOUND,
                    Some("call_not_found"),
                    &format!("Call not found: {call}"),
                ),
            }
        }
        (method, path) => reject(
            StatusCode::NOT_FOUND,
            None,
            &format!("Invalid URL ({method} {path})"),
        ),
    }
}

async fn client_secret(request: Request<Incoming>, shared: &Shared) -> Response<Body> {
    let body = match Limited::new(request.into_body(), 1 << 20).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return reject(
                StatusCode::BAD_REQUEST,
                Some("invalid_request"),
                "The body is too large or broken.",
            );
        }
    };
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
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
    let requested = body
        .get("session")
        .cloned()
        .unwrap_or_else(|| json!({"type": "realtime"}));
    let kind = requested
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("realtime");
    if !matches!(kind, "realtime" | "transcription") {
        return reject(
            StatusCode::BAD_REQUEST,
            Some("invalid_value"),
            &format!("Invalid 'session.type': {kind}."),
        );
    }
    // The session the key will start: the defaults with the requested fields applied.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let model = requested
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("gpt-realtime");
    let seed = shared
        .sessions
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1_000_000;
    let mut engine = Engine::new(
        shared.config.clone(),
        seed,
        model,
        kind == "transcription",
        now + shared.config.session_duration.as_secs() as i64,
    );
    engine.apply_initial(&requested);
    let session = serde_json::to_value(&engine.session).expect("sessions serialise");
    let value = format!("ek_{}", &engine.session_id()["sess_".len()..]);
    shared.secrets.lock().expect("secrets lock").insert(
        value.clone(),
        Secret {
            expires: Instant::now() + Duration::from_secs(seconds),
            session: requested,
        },
    );
    ok(&json!({"value": value, "expires_at": now + seconds as i64, "session": session}))
}
