//! Signalling over the REST API: the offer as the body of `POST {base}/realtime/calls`
//! (raw SDP for an ephemeral key, multipart `sdp` + `session` for a standard one), the
//! status as a typed error, the call id from `Location`.

use reelthyme_transport::{
    Dialect, Endpoint, Error, ErrorKind, HttpRequest, Options, Result, Target, send_request,
};
use serde_json::{Value, json};

/// The server's answer to an offer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) sdp: String,
    pub(crate) call_id: Option<String>,
}

/// Whether the endpoint's credential is an ephemeral client secret (`ek_…`), which
/// carries its session and is sent with a bare SDP body.
fn is_ephemeral(endpoint: &Endpoint) -> Result<bool> {
    let headers = endpoint.auth_headers()?;
    Ok(headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer ek_")))
}

/// The session part for a standard key: the caller's, with the type and the endpoint's
/// model filled in when missing.
pub(crate) fn session_part(endpoint: &Endpoint, session: Option<&Value>) -> Result<Value> {
    let mut session = match session {
        Some(Value::Object(map)) => Value::Object(map.clone()),
        Some(_) => {
            return Err(Error::new(
                ErrorKind::Config,
                "the WebRTC session must be a JSON object",
            ));
        }
        None => json!({}),
    };
    let (kind, model) = match endpoint.target() {
        Target::Model(model) => ("realtime", Some(model.as_str())),
        Target::Transcription => ("transcription", None),
        Target::Call(_) => {
            return Err(Error::new(
                ErrorKind::Config,
                "a WebRTC connection starts a call; attach to an existing one with a WebSocket (Endpoint::call_id)",
            ));
        }
        _ => {
            return Err(Error::new(
                ErrorKind::Config,
                "this endpoint's target is not supported over WebRTC",
            ));
        }
    };
    if let Value::Object(map) = &mut session {
        map.entry("type").or_insert_with(|| json!(kind));
        if let Some(model) = model {
            map.entry("model").or_insert_with(|| json!(model));
        }
    }
    Ok(session)
}

/// A multipart boundary that does not occur in the parts.
fn boundary(parts: &[&str]) -> String {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut n = seed;
    loop {
        let candidate = format!("reelthyme-{n:x}");
        if parts.iter().all(|part| !part.contains(&candidate)) {
            return candidate;
        }
        n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    }
}

/// The `multipart/form-data` body with an `sdp` and a `session` part, and its content type.
pub(crate) fn multipart(sdp: &str, session: &str) -> (String, String) {
    let boundary = boundary(&[sdp, session]);
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"sdp\"\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"session\"\r\nContent-Type: application/json\r\n\r\n{session}\r\n\
         --{boundary}--\r\n"
    );
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The call id: the last path segment of `Location` (`/v1/realtime/calls/rtc_…`).
pub(crate) fn call_id(location: &str) -> Option<String> {
    let path = location.split(['?', '#']).next()?;
    let id = path.trim_end_matches('/').rsplit('/').next()?;
    (!id.is_empty()).then(|| id.to_owned())
}

/// A refusal as the API's error kinds: 401/403 `Auth` (as `Error::http` has it), other
/// 4xx `InvalidRequest` (not retryable; the status and the API's error kept), 5xx and the
/// rest unchanged (`Connect`, retryable).
pub(crate) fn classify(error: Error) -> Error {
    match error.http_status() {
        Some(status @ 400..=499)
            if error.kind() == ErrorKind::Connect && !matches!(status, 408 | 429) =>
        {
            error.with_kind(ErrorKind::InvalidRequest)
        }
        _ => error,
    }
}

/// Posts the offer and reads the answer.
pub(crate) async fn offer(
    endpoint: &Endpoint,
    sdp: &str,
    session: Option<&Value>,
    options: &Options,
) -> Result<Answer> {
    if endpoint.dialect() == Dialect::Beta {
        return Err(Error::new(
            ErrorKind::Config,
            "WebRTC is supported for the GA API only (POST /realtime/calls)",
        ));
    }
    let request = if is_ephemeral(endpoint)? {
        HttpRequest::post("calls").body("application/sdp", sdp.to_owned())
    } else {
        let session = session_part(endpoint, session)?.to_string();
        let (content_type, body) = multipart(sdp, &session);
        HttpRequest::post("calls").body(content_type, body)
    };
    let response = send_request(endpoint, request, options)
        .await
        .map_err(classify)?;
    let call_id = response.location().and_then(call_id);
    if call_id.is_none() {
        tracing::debug!("the answer has no Location: the call cannot be hung up by id");
    }
    let sdp = response
        .text()
        .filter(|text| text.contains("v=0"))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Protocol,
                format!(
                    "the answer to the offer is not SDP (HTTP {}, {} bytes)",
                    response.status,
                    response.body.len()
                ),
            )
        })?
        .to_owned();
    Ok(Answer { sdp, call_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_id_is_the_last_segment_of_location() {
        assert_eq!(
            call_id("/v1/realtime/calls/rtc_479a2756").as_deref(),
            Some("rtc_479a2756")
        );
        assert_eq!(
            call_id("https://api.openai.com/v1/realtime/calls/rtc_1/?x=1").as_deref(),
            Some("rtc_1")
        );
        assert_eq!(call_id(""), None);
    }

    #[test]
    fn multipart_has_both_parts_under_a_fresh_boundary() {
        let (content_type, body) = multipart("v=0\r\n", r#"{"type":"realtime"}"#);
        let boundary = content_type
            .strip_prefix("multipart/form-data; boundary=")
            .unwrap();
        assert_eq!(body.matches(&format!("--{boundary}")).count(), 3);
        assert!(body.ends_with(&format!("--{boundary}--\r\n")));
        assert!(body.contains("name=\"sdp\"\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n"));
        assert!(body.contains("name=\"session\"\r\nContent-Type: application/json"));
        // A part that contains the first candidate gets another boundary.
        let (again, _) = multipart(boundary, "");
        assert_ne!(again, content_type);
    }

    #[test]
    fn the_session_gets_its_type_and_model() {
        let endpoint = Endpoint::openai("gpt-realtime");
        let session = session_part(&endpoint, None).unwrap();
        assert_eq!(
            session,
            json!({"type": "realtime", "model": "gpt-realtime"})
        );
        let mine = json!({"instructions": "be brief", "model": "other"});
        let session = session_part(&endpoint, Some(&mine)).unwrap();
        assert_eq!(session["model"], "other");
        assert_eq!(session["type"], "realtime");
        assert_eq!(
            session_part(&endpoint.clone().call_id("rtc_1"), None)
                .unwrap_err()
                .kind(),
            ErrorKind::Config
        );
        assert_eq!(
            session_part(&endpoint, Some(&json!([])))
                .unwrap_err()
                .kind(),
            ErrorKind::Config
        );
    }

    #[test]
    fn refusals_map_to_the_issues_kinds() {
        let body = r#"{"error":{"type":"invalid_request_error","code":"bad_sdp","message":"no"}}"#;
        let bad = classify(Error::http(400, Some(body)));
        assert_eq!(bad.kind(), ErrorKind::InvalidRequest);
        assert!(!bad.is_retryable());
        assert!(bad.to_string().contains("no"), "{bad}");
        // The status and the API's error stay on the error itself.
        assert_eq!(bad.http_status(), Some(400));
        assert_eq!(bad.code(), Some("bad_sdp"));
        assert_eq!(
            classify(Error::http(401, Some(body))).kind(),
            ErrorKind::Auth
        );
        let busy = classify(Error::http(503, None));
        assert_eq!(busy.kind(), ErrorKind::Connect);
        assert!(busy.is_retryable());
        assert!(classify(Error::http(429, None)).is_retryable());
    }
}
