//! The transport's error: opaque, with a [`ErrorKind`] to match on and queries for what
//! callers usually decide on (retry, timeout, close code, the server's error).

use std::fmt;
use std::sync::Arc;

use reelthyme_schema::ErrorDetail;

/// A boxed error from a lower layer.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The server refused the credentials (`invalid_api_key`; close 3000). Retrying with the
    /// same key cannot help.
    Auth,
    /// The server refused the request's shape (`invalid_model`, `missing_model`,
    /// `beta_api_shape_disabled`; close 4000). Retrying the same request cannot help.
    InvalidRequest,
    /// The session reached its maximum duration (`session_expired`). Reconnect and replay
    /// the conversation to continue.
    SessionExpired,
    /// Billing or quota (`insufficient_quota`; close 1008). Retrying cannot help until the
    /// account is fixed.
    Quota,
    /// The server closed the session for another reason (see [`Error::close_code`]);
    /// reconnecting may help.
    Closed,
    /// No response in time: connecting, or keepalive found the peer dead. Retrying may help.
    Timeout,
    /// The connection could not be made (DNS, TCP, TLS, or an HTTP status other than 101).
    /// Retrying may help, depending on [`Error::http_status`].
    Connect,
    /// The peer broke the WebSocket protocol or sent a frame that is not an event (binary,
    /// invalid JSON).
    Protocol,
    /// An event did not parse into the event types.
    Parse,
    /// An outgoing event was refused before it was sent (validation or a transform).
    Rejected,
    /// The configuration is unusable (bad URL, missing key).
    Config,
    /// A sound device failed or stopped (playback, capture). The session goes on.
    Device,
}

/// Frames that were queued but never written; `Debug` shows how many, not their text
/// (which can be megabytes of audio).
#[derive(Clone, Default)]
struct Unsent(Arc<[String]>);

impl fmt::Debug for Unsent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} frame(s)", self.0.len())
    }
}

/// The error of this crate. Never contains an API key. One pointer wide (the details are
/// boxed), so `Result`s stay small on the hot paths.
#[derive(Debug)]
pub struct Error {
    inner: Box<Inner>,
}

#[derive(Debug)]
struct Inner {
    kind: ErrorKind,
    message: String,
    close_code: Option<u16>,
    http_status: Option<u16>,
    api: Option<ErrorDetail>,
    /// Frames a sender queued that were never written (in order), when the connection
    /// ended with them still queued.
    unsent: Unsent,
    /// Whether this error ended the connection (the last item of the event stream).
    terminal: bool,
    /// The server closed normally (close 1000, no error before it): see
    /// [`Error::is_normal_close`].
    normal_close: bool,
    source: Option<BoxError>,
}

impl Error {
    fn from_inner(inner: Inner) -> Self {
        Self {
            inner: Box::new(inner),
        }
    }

    /// An error of `kind` (for transports and layers built on this crate).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::from_inner(Inner {
            kind,
            message: message.into(),
            close_code: None,
            http_status: None,
            api: None,
            unsent: Unsent::default(),
            terminal: false,
            normal_close: false,
            source: None,
        })
    }

    /// An error of a higher layer (the facade's transforms and parsing).
    pub fn other(kind: ErrorKind, message: impl Into<String>, source: Option<BoxError>) -> Self {
        let mut error = Self::new(kind, message);
        error.inner.source = source;
        error
    }

    /// With the error that caused it.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// A copy of everything but the source (errors are not `Clone`): for every sender that
    /// asks after the connection ended.
    pub fn details(&self) -> Self {
        let inner = &self.inner;
        Self::from_inner(Inner {
            kind: inner.kind,
            message: inner.message.clone(),
            close_code: inner.close_code,
            http_status: inner.http_status,
            api: inner.api.clone(),
            unsent: inner.unsent.clone(),
            terminal: inner.terminal,
            normal_close: inner.normal_close,
            source: None,
        })
    }

    /// The same error with another kind, everything else kept (the HTTP status, the API's
    /// error, the source): for a transport that classifies a refusal more precisely.
    #[must_use]
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.inner.kind = kind;
        self
    }

    /// With the server's `error` event that explains it ([`Error::api_error`],
    /// [`Error::code`]): for a layer that turns an `error` answer into a typed failure.
    #[must_use]
    pub fn with_api_error(mut self, detail: ErrorDetail) -> Self {
        self.inner.api = Some(detail);
        self
    }

    /// With the close code the connection ended with (a transport without close codes
    /// maps its ends to them: 1000 normal, 1006 abnormal).
    #[must_use]
    pub fn with_close_code(mut self, code: u16) -> Self {
        self.inner.close_code = Some(code);
        self
    }

    pub(crate) fn with_unsent(mut self, unsent: Vec<String>) -> Self {
        if !unsent.is_empty() {
            self.inner.unsent = Unsent(unsent.into());
        }
        self
    }

    pub(crate) fn into_terminal(mut self) -> Self {
        self.inner.terminal = true;
        self
    }

    /// Frames that were queued (their `send` returned `Ok`) but never written because the
    /// connection ended first, in the order they were queued. Empty for most errors. The
    /// frames are the JSON text of the events; resend them on a new connection if they
    /// still matter.
    pub fn unsent(&self) -> &[String] {
        &self.inner.unsent.0
    }

    /// Whether the session is over: no more events will come and nothing more can be sent.
    /// `false` for failures of one frame or one event — a frame that did not parse, a
    /// binary frame, an outgoing event a transform refused, a sound device that failed —
    /// after which the session goes
    /// on, so an event loop can skip them:
    ///
    /// ```
    /// # fn demo(event: reelthyme_transport::Result<String>) -> reelthyme_transport::Result<()> {
    /// match event {
    ///     Ok(event) => println!("{event}"),
    ///     Err(error) if !error.is_fatal() => eprintln!("skipped: {error}"),
    ///     Err(error) => return Err(error),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn is_fatal(&self) -> bool {
        let inner = &self.inner;
        inner.terminal
            || inner.close_code.is_some()
            || !matches!(
                inner.kind,
                ErrorKind::Parse | ErrorKind::Protocol | ErrorKind::Rejected | ErrorKind::Device
            )
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// Whether trying again (reconnecting) may succeed.
    pub fn is_retryable(&self) -> bool {
        let inner = &self.inner;
        matches!(
            inner.kind,
            ErrorKind::Closed | ErrorKind::Timeout | ErrorKind::SessionExpired
        ) || (inner.kind == ErrorKind::Connect
            && (!matches!(inner.http_status, Some(400..=499))
                || matches!(inner.http_status, Some(408 | 429))))
    }

    /// Whether this is a timeout (connecting or keepalive).
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == ErrorKind::Timeout
    }

    /// The WebSocket close code, when the server closed the connection.
    pub fn close_code(&self) -> Option<u16> {
        self.inner.close_code
    }

    /// The HTTP status, when the server answered the upgrade with something other than 101.
    pub fn http_status(&self) -> Option<u16> {
        self.inner.http_status
    }

    /// The server's `error` event that came with the failure, if any.
    pub fn api_error(&self) -> Option<&ErrorDetail> {
        self.inner.api.as_ref()
    }

    /// The server's error code (`invalid_api_key`, `session_expired`, …), if any.
    pub fn code(&self) -> Option<&str> {
        self.inner.api.as_ref().and_then(ErrorDetail::code)
    }

    /// The error for a close frame, given the `error` event that preceded it (PROTOCOL.md
    /// §1.4: failures after the handshake are an `error` event, then a close).
    pub fn from_close(code: u16, reason: &str, api: Option<ErrorDetail>) -> Self {
        let api_code = api.as_ref().and_then(ErrorDetail::code).map(str::to_owned);
        let kind = match (code, api_code.as_deref()) {
            (_, Some("session_expired")) => ErrorKind::SessionExpired,
            (_, Some("insufficient_quota" | "credit_balance_exhausted")) => ErrorKind::Quota,
            (3000, _) => ErrorKind::Auth,
            (4000, _) => ErrorKind::InvalidRequest,
            (1008, _) => ErrorKind::Quota,
            (1002 | 1003 | 1007 | 1009, _) => ErrorKind::Protocol,
            _ => ErrorKind::Closed,
        };
        let message = match &api {
            Some(detail) => detail.message.clone(),
            None if reason.is_empty() => format!("the server closed the connection (code {code})"),
            None => format!("the server closed the connection (code {code}: {reason})"),
        };
        let normal_close = code == 1000 && api.is_none();
        Self::from_inner(Inner {
            kind,
            message,
            close_code: Some(code),
            http_status: None,
            api,
            unsent: Unsent::default(),
            terminal: false,
            normal_close,
            source: None,
        })
    }

    /// A normal close by the server (for a transport that settles a clean end which still
    /// has to report something, such as frames left unsent).
    pub(crate) fn with_normal_close(mut self) -> Self {
        self.inner.normal_close = true;
        self
    }

    /// Whether the server closed the connection normally: a close with code 1000 and no
    /// `error` event before it — the server ended the session on purpose (an error only
    /// because frames were left unsent). A transport without close codes that maps an end
    /// to 1000 ([`Error::with_close_code`]; WebRTC: the server closed the data channel, which
    /// a hangup and a server that dropped the call look alike as) is not one.
    pub fn is_normal_close(&self) -> bool {
        self.inner.normal_close
    }

    /// The error for an HTTP refusal (a failed upgrade, signalling or REST call): the
    /// status, and the API's `{"error": {…}}` body when there is one. 401 and 403 are
    /// [`ErrorKind::Auth`]; others [`ErrorKind::Connect`] with [`Error::http_status`].
    pub fn http(status: u16, body: Option<&str>) -> Self {
        let detail = body
            .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
            .and_then(|v| serde_json::from_value::<ErrorDetail>(v.get("error").cloned()?).ok());
        let message = detail.as_ref().map_or_else(
            || format!("the server answered with HTTP {status}"),
            |d| format!("HTTP {status}: {}", d.message),
        );
        Self::from_inner(Inner {
            kind: if matches!(status, 401 | 403) {
                ErrorKind::Auth
            } else {
                ErrorKind::Connect
            },
            message,
            close_code: None,
            http_status: Some(status),
            api: detail,
            unsent: Unsent::default(),
            terminal: false,
            normal_close: false,
            source: None,
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.message)?;
        if let Some(code) = self.code() {
            write!(f, " [{code}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(code: &str) -> ErrorDetail {
        serde_json::from_value(
            serde_json::json!({"type": "invalid_request_error", "code": code, "message": "m"}),
        )
        .unwrap()
    }

    #[test]
    fn close_codes_map_to_kinds() {
        let cases = [
            (3000, None, ErrorKind::Auth),
            (3000, Some("invalid_api_key"), ErrorKind::Auth),
            (4000, Some("invalid_model"), ErrorKind::InvalidRequest),
            (1001, Some("session_expired"), ErrorKind::SessionExpired),
            (1008, None, ErrorKind::Quota),
            (1011, None, ErrorKind::Closed),
            (1001, None, ErrorKind::Closed),
            (1002, None, ErrorKind::Protocol),
            (4999, None, ErrorKind::Closed),
        ];
        for (code, api, kind) in cases {
            let error = Error::from_close(code, "", api.map(detail));
            assert_eq!(error.kind(), kind, "{code} {api:?}");
            assert_eq!(error.close_code(), Some(code));
        }
        assert!(!Error::from_close(3000, "", None).is_retryable());
        assert!(Error::from_close(1011, "", None).is_retryable());
    }

    #[test]
    fn http_errors_carry_the_status_and_the_api_error() {
        let error = Error::http(
            400,
            Some(
                r#"{"error":{"type":"invalid_request_error","code":"OperationNotSupported","message":"nope"}}"#,
            ),
        );
        assert_eq!(error.http_status(), Some(400));
        assert_eq!(error.code(), Some("OperationNotSupported"));
        assert!(!error.is_retryable());
        assert!(Error::http(503, None).is_retryable());
    }
}
