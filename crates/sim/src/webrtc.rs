//! WebRTC calls: `POST /v1/realtime/calls` (PROTOCOL.md §2.1) answered with
//! `reelthyme_webrtc::WebRtc::answer`, and the answered call's server end as the session
//! loop's transport — events on the `oai-events` data channel, the engine's audio on the
//! Opus track, the client's track into the input buffer.
//!
//! The request is checked as a WebSocket handshake is (credentials, beta, model), but
//! refusals are HTTP statuses with the API's JSON error, as for any REST call: nothing is
//! connected yet. The call is registered before the answer, so `calls/{id}/hangup` and
//! sideband sessions (`?call_id=`) find it; it ends with its session. A sideband attaches
//! to this call's own session (`session_loop.rs`): it gets a `session.created` of its own,
//! then every server event of the call, and its client events act on the call.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use reelthyme_transport::{Connection, ErrorKind, FrameReceiver, FrameSender, Options};
use reelthyme_webrtc::WebRtc;
use serde_json::{Value, json};
use tokio::time::Instant;
use tracing::Instrument;

use crate::admission::{Target, admit};
use crate::auth::{AuthKind, credentials};
use crate::frames::{Ending, EventIo, FrameTx, Inbound, Outbound};
use crate::handshake::Handshake;
use crate::http::{Body, Permit, reject};
use crate::session_loop::{MAX_MESSAGE, Session};
use crate::state::{IdSpace, Shared};

/// The largest offer body: an SDP offer is a few KiB, a session a few more.
const MAX_BODY: usize = 1 << 20;
/// Audio chunks queued for the outgoing track beyond what it is sending: a few, so that
/// what the server counts as sent is close to what left (a cut truncates there).
const MEDIA_QUEUE: usize = 4;

/// Whether `path` is the call-creating endpoint (OpenAI's, or Azure's).
pub(crate) fn is_calls(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    matches!(path, "/v1/realtime/calls" | "/openai/v1/realtime/calls")
}

/// `POST /v1/realtime/calls`: the answer (201, `Location`), or the API's error status.
pub(crate) async fn call(
    request: Request<Incoming>,
    shared: Arc<Shared>,
    permit: Permit,
    local: Option<IpAddr>,
) -> Response<Body> {
    let (auth, key) = credentials(&request, &[], &[]);
    if !crate::auth::authorized(&shared, key.as_deref()) || auth == AuthKind::None {
        let message = if auth == AuthKind::None {
            "Missing bearer or basic authentication in header"
        } else {
            "Incorrect API key provided."
        };
        return reject(StatusCode::UNAUTHORIZED, Some("invalid_api_key"), message);
    }
    let content_type = crate::auth::header_value(&request, "content-type").unwrap_or_default();
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return reject(
                StatusCode::BAD_REQUEST,
                Some("invalid_request"),
                "The body is too large or broken.",
            );
        }
    };
    let offer = match Offer::read(&content_type, &body) {
        Ok(offer) => offer,
        Err(response) => return *response,
    };
    if *shared.shutdown.borrow() {
        return reject(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "The simulator is shutting down.",
        );
    }
    // Calls hold UDP sockets and a peer connection each: at most as many as connections.
    if shared.rtc_calls.fetch_add(1, Ordering::SeqCst) >= shared.config.max_connections {
        shared.rtc_calls.fetch_sub(1, Ordering::SeqCst);
        return reject(
            StatusCode::TOO_MANY_REQUESTS,
            Some("rate_limit_exceeded"),
            "Too many calls at once; hang some up.",
        );
    }
    let guard = CallSlot(shared.clone());
    let call_id = shared.open_hosted_call();
    // The handshake a sideband session to this call would make: the model and the call.
    let mut query = format!("/v1/realtime?call_id={call_id}");
    if let Some(model) = offer.model() {
        query.push_str("&model=");
        query.push_str(&percent_encode(model));
    }
    if offer.transcription() {
        query.push_str("&intent=transcription");
    }
    let mut synthetic = Request::new(());
    *synthetic.headers_mut() = parts.headers;
    match query.parse() {
        Ok(uri) => *synthetic.uri_mut() = uri,
        Err(_) => {
            shared.hang_up(&call_id);
            return reject(
                StatusCode::BAD_REQUEST,
                Some("invalid_value"),
                "Invalid model.",
            );
        }
    }
    let mut handshake = match Handshake::from_request(&synthetic, &shared) {
        Ok(handshake) => handshake,
        Err(refused) => {
            shared.hang_up(&call_id);
            return reject(refused.status, None, &refused.message);
        }
    };
    handshake.info.path = parts.uri.path().to_owned();
    let target = Target::of(&handshake, &shared);
    if let Err(refusal) = admit(&handshake, &target, &shared) {
        shared.hang_up(&call_id);
        let status = if refusal.close == 3000 {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        return json_response(status, &json!({"error": refusal.detail()}));
    }
    let mut settings = WebRtc::new().media_queue(MEDIA_QUEUE);
    // On loopback (a simulator's usual place) the call stays there; elsewhere every
    // interface offers candidates.
    if let Some(ip) = local.filter(IpAddr::is_loopback) {
        settings = settings.bind(vec![SocketAddr::new(ip, 0)]);
    }
    let answered = match settings.answer(&offer.sdp).await {
        Ok(answered) => answered,
        Err(error) => {
            shared.hang_up(&call_id);
            return if error.kind() == ErrorKind::InvalidRequest {
                reject(
                    StatusCode::BAD_REQUEST,
                    Some("invalid_offer"),
                    &format!("Invalid SDP offer: {error}"),
                )
            } else {
                tracing::warn!(%error, "a WebRTC call could not be answered");
                json_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &json!({"error": {"type": "server_error", "code": null,
                        "message": "The call could not be set up.", "param": null}}),
                )
            };
        }
    };
    let sdp = answered.sdp().to_owned();
    shared.remember(handshake.info.clone());
    let span = tracing::info_span!(
        "sim_session",
        session_id = tracing::field::Empty,
        transport = "webrtc",
        call_id = call_id.as_str()
    );
    let session = offer.session;
    let location = format!("/v1/realtime/calls/{call_id}");
    let task_shared = shared.clone();
    tokio::spawn(
        async move {
            let _permit = permit;
            let _slot = guard;
            let shared = task_shared;
            let connection = match answered.connected(&Options::default()).await {
                Ok(connection) => connection,
                Err(error) => {
                    tracing::debug!(%error, "the WebRTC client never connected");
                    shared.hang_up(&call_id);
                    return;
                }
            };
            serve(connection, handshake, session, call_id, shared).await;
        }
        .instrument(span),
    );
    Response::builder()
        .status(StatusCode::CREATED)
        .header("content-type", "application/sdp")
        .header("location", location)
        .body(Full::new(Bytes::from(sdp)))
        .unwrap_or_else(|_| reject(StatusCode::INTERNAL_SERVER_ERROR, None, "No answer."))
}

/// Runs the call's session (or the recording) over the connected call.
async fn serve(
    mut connection: Connection,
    handshake: Handshake,
    session: Option<Value>,
    call_id: String,
    shared: Arc<Shared>,
) {
    let media = connection.media.take();
    let io = RtcIo {
        receiver: connection.receiver,
        ended: false,
    };
    let tx = RtcTx(connection.sender);
    if let Some(entries) = shared.replay.clone() {
        crate::replay::serve(io, tx, &entries).await;
        shared.hang_up(&call_id);
        return;
    }
    let seed = shared.ids.next(IdSpace::Session);
    Session::new(handshake, seed, shared)
        .with_media(media)
        .with_initial(session)
        .with_call(Some(call_id))
        .run(io, tx)
        .await;
}

/// Frees a call's place under the cap when the call is over.
struct CallSlot(Arc<Shared>);

impl Drop for CallSlot {
    fn drop(&mut self) {
        self.0.rtc_calls.fetch_sub(1, Ordering::SeqCst);
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| reject(status, None, "error"))
}

/// What a `POST /v1/realtime/calls` carries.
#[derive(Debug)]
struct Offer {
    sdp: String,
    /// The `session` part (a `RealtimeSessionCreateRequestGA`).
    session: Option<Value>,
}

impl Offer {
    /// The bare SDP (`application/sdp`) or the multipart `sdp` + `session`, checked.
    fn read(content_type: &str, body: &[u8]) -> Result<Self, Box<Response<Body>>> {
        let bad = |code: &str, message: &str| {
            Err(Box::new(reject(
                StatusCode::BAD_REQUEST,
                Some(code),
                message,
            )))
        };
        let media_type = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let (sdp, session) = match media_type.as_str() {
            "application/sdp" => (body.to_vec(), None),
            "multipart/form-data" => {
                let Some(boundary) = boundary(content_type) else {
                    return bad("invalid_request", "The multipart body has no boundary.");
                };
                let parts = multipart(body, &boundary);
                let Some(sdp) = parts.iter().find(|(name, _)| name == "sdp") else {
                    return bad(
                        "missing_required_parameter",
                        "The multipart body has no 'sdp' part.",
                    );
                };
                let session = parts
                    .iter()
                    .find(|(name, _)| name == "session")
                    .map(|(_, v)| v.clone());
                (sdp.1.clone(), session)
            }
            _ => {
                return bad(
                    "invalid_request",
                    "Unsupported content type: send the offer as application/sdp, or as \
                     multipart/form-data with 'sdp' and 'session' parts.",
                );
            }
        };
        let Ok(sdp) = String::from_utf8(sdp) else {
            return bad("invalid_offer", "Invalid SDP offer: not UTF-8.");
        };
        if !sdp.trim_start().starts_with("v=0") {
            return bad(
                "invalid_offer",
                "Invalid SDP offer: it must start with v=0.",
            );
        }
        let session = match session {
            None => None,
            Some(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(value) => Some(check_session(value)?),
                Err(e) => return bad("invalid_json", &format!("Invalid 'session' JSON: {e}")),
            },
        };
        Ok(Self { sdp, session })
    }

    fn model(&self) -> Option<&str> {
        self.session.as_ref()?.get("model")?.as_str()
    }

    fn transcription(&self) -> bool {
        self.session
            .as_ref()
            .and_then(|s| s.get("type"))
            .is_some_and(|t| t == "transcription")
    }
}

/// A `session` part, validated as `session.update` and minting validate it.
fn check_session(mut session: Value) -> Result<Value, Box<Response<Body>>> {
    let Some(fields) = session.as_object_mut() else {
        return Err(Box::new(reject(
            StatusCode::BAD_REQUEST,
            Some("invalid_type"),
            "Invalid 'session': expected an object.",
        )));
    };
    let kind = fields
        .entry("type")
        .or_insert_with(|| json!("realtime"))
        .clone();
    if kind != "realtime" && kind != "transcription" {
        return Err(Box::new(reject(
            StatusCode::BAD_REQUEST,
            Some("invalid_value"),
            "Invalid 'session.type': expected 'realtime' or 'transcription'.",
        )));
    }
    let update = json!({"type": "session.update", "session": session});
    if let Err(errors) = reelthyme_schema::validate_client_value(&update) {
        let (code, message, param) = crate::engine::api_error(&errors);
        return Err(Box::new(json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": {"type": "invalid_request_error", "code": code,
                "message": message, "param": param}}),
        )));
    }
    Ok(session)
}

/// The `boundary` parameter of a multipart content type.
fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim().trim_matches('"');
        (!value.is_empty() && value.len() <= 200).then(|| value.to_owned())
    })
}

/// The named parts of a `multipart/form-data` body (RFC 7578): name and content. Parts
/// without a name, and anything after the closing delimiter, are left out.
fn multipart(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut parts = Vec::new();
    let mut sections = split(body, delimiter).into_iter();
    // The preamble, before the first delimiter.
    sections.next();
    for section in sections {
        if section.starts_with(b"--") {
            break;
        }
        let section = section.strip_prefix(b"\r\n").unwrap_or(section);
        let Some(split_at) = find(section, b"\r\n\r\n") else {
            continue;
        };
        let (head, content) = (&section[..split_at], &section[split_at + 4..]);
        let content = content.strip_suffix(b"\r\n").unwrap_or(content);
        let head = String::from_utf8_lossy(head);
        let name = head.lines().find_map(|line| {
            let (header, value) = line.split_once(':')?;
            if !header.trim().eq_ignore_ascii_case("content-disposition") {
                return None;
            }
            value.split(';').find_map(|param| {
                let (key, value) = param.split_once('=')?;
                (key.trim() == "name").then(|| value.trim().trim_matches('"').to_owned())
            })
        });
        if let Some(name) = name {
            parts.push((name, content.to_vec()));
        }
    }
    parts
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn split<'a>(mut body: &'a [u8], delimiter: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    while let Some(at) = find(body, delimiter) {
        out.push(&body[..at]);
        body = &body[at + delimiter.len()..];
    }
    out.push(body);
    out
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The call's data channel, as the session loop reads it.
struct RtcIo {
    receiver: FrameReceiver,
    /// The channel has ended: nothing more comes.
    ended: bool,
}

/// The call's data channel, as the session loop writes it.
struct RtcTx(FrameSender);

impl FrameTx for RtcTx {
    async fn send(&mut self, frame: Outbound) -> bool {
        match frame {
            Outbound::Text(text) => self.0.send(text).await.is_ok(),
            // The data channel carries text events: an injected binary frame has no
            // counterpart, and is left out.
            Outbound::Binary(_) => {
                tracing::debug!("a binary frame is not sent on the data channel");
                true
            }
            // A data channel has no close code: closing ends the call.
            Outbound::Close(code, reason) => {
                tracing::debug!(code, reason, "closing the call");
                let _ = self.0.close().await;
                true
            }
        }
    }
}

impl EventIo for RtcIo {
    type Text = String;
    type Tx = RtcTx;
    type Output = ();

    async fn recv(&mut self) -> Inbound<String> {
        if self.ended {
            return std::future::pending().await;
        }
        match self.receiver.next().await {
            Some(Ok(frame)) if frame.len() > MAX_MESSAGE => Inbound::TooLarge,
            Some(Ok(frame)) => Inbound::Text(frame.into_text()),
            Some(Err(error)) => {
                tracing::debug!(%error, "the call's channel failed");
                self.ended = true;
                Inbound::Gone
            }
            None => {
                self.ended = true;
                Inbound::Closed
            }
        }
    }

    async fn conclude(self, tx: Option<RtcTx>, ending: Ending, deadline: Instant) {
        // Whatever ended the session, the call goes: closing the channel ends the peer
        // connection and its tracks.
        if ending != Ending::Closed
            && let Some(RtcTx(mut sender)) = tx
        {
            let _ = tokio::time::timeout_at(deadline, sender.close()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_parts_are_found_by_name() {
        let body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"sdp\"\r\n\
            Content-Type: application/sdp\r\n\r\nv=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n\r\n--XyZ\r\n\
            content-disposition: form-data; name=session\r\n\r\n{\"type\":\"realtime\"}\r\n--XyZ--\r\nafter";
        let parts = multipart(body, "XyZ");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].0, "sdp");
        assert_eq!(parts[0].1, b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n");
        assert_eq!(
            parts[1],
            ("session".into(), b"{\"type\":\"realtime\"}".to_vec())
        );
        assert_eq!(
            boundary("multipart/form-data; boundary=\"XyZ\""),
            Some("XyZ".into())
        );
        assert_eq!(boundary("multipart/form-data"), None);
    }

    #[test]
    fn broken_multipart_bodies_yield_no_parts_and_no_panic() {
        for body in [
            &b""[..],
            b"--b",
            b"--b\r\n",
            b"--b\r\nContent-Disposition: form-data; name=\"sdp\"",
            b"--b\r\n\r\n\r\n--b--",
            b"--b--",
        ] {
            assert!(multipart(body, "b").iter().all(|(name, _)| name == "sdp"));
        }
    }

    #[test]
    fn offers_are_read_from_either_body() {
        assert!(Offer::read("application/sdp", b"v=0\r\n").is_ok());
        assert_eq!(
            Offer::read("application/sdp", b"hello")
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(Offer::read("text/plain", b"v=0").unwrap_err().status(), 400);
        let body = b"--b\r\nContent-Disposition: form-data; name=\"session\"\r\n\r\n{\"type\":\"realtime\",\"bogus\":1}\r\n\
            --b\r\nContent-Disposition: form-data; name=\"sdp\"\r\n\r\nv=0\r\n\r\n--b--\r\n";
        let refused = Offer::read("multipart/form-data; boundary=b", body).unwrap_err();
        assert_eq!(refused.status(), 400);
        let body = b"--b\r\nContent-Disposition: form-data; name=\"session\"\r\n\r\n{\"type\":\"realtime\",\"model\":\"gpt-realtime\",\"instructions\":\"hi\"}\r\n\
            --b\r\nContent-Disposition: form-data; name=\"sdp\"\r\n\r\nv=0\r\n\r\n--b--\r\n";
        let offer = Offer::read("multipart/form-data; boundary=b", body).unwrap();
        assert_eq!(offer.model(), Some("gpt-realtime"));
        assert_eq!(offer.sdp, "v=0\r\n");
    }
}
