//! What a connection's handshake asks for (model, session kind, ephemeral key, call), and
//! the checks the real server makes after the 101: a refusal is an `error` event and a
//! close whose reason is `invalid_request_error.<code>` (PROTOCOL.md §1.4). The WebSocket
//! path and the in-process one both ask here, so they refuse alike.

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::auth::AuthKind;
use crate::config::BetaMode;
use crate::handshake::{Handshake, Route};
use crate::state::{Secret, Shared};

/// The session a handshake asks for.
#[derive(Debug)]
pub(crate) struct Target {
    /// `?model=` (or Azure's legacy `deployment`).
    pub(crate) model: Option<String>,
    /// The ephemeral key's session, when the credential is one.
    pub(crate) secret: Option<Secret>,
    /// A transcription session (`?intent=transcription`, or the key's session type).
    pub(crate) transcription: bool,
    /// A sideband session's call.
    pub(crate) call_id: Option<String>,
    /// Whether the beta dialect is spoken.
    pub(crate) beta: bool,
}

impl Target {
    pub(crate) fn of(handshake: &Handshake, shared: &Shared) -> Self {
        let info = &handshake.info;
        let query = |name: &str| info.query_param(name).map(str::to_owned);
        let model = query("model").or_else(|| {
            if handshake.route == Route::AzureLegacy {
                query("deployment")
            } else {
                None
            }
        });
        // An ephemeral key carries a session configuration, which applies by default.
        let secret = handshake
            .key
            .as_deref()
            .filter(|k| k.starts_with("ek_"))
            .and_then(|k| shared.secret(k));
        let secret_field = |name: &str| {
            secret
                .as_ref()
                .and_then(|s| s.session.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let transcription = query("intent").as_deref() == Some("transcription")
            || secret_field("type").as_deref() == Some("transcription");
        let model = model.or_else(|| secret_field("model"));
        let beta = info.beta
            && (handshake.route == Route::AzureLegacy || shared.config.beta != BetaMode::Reject);
        Self {
            model,
            secret,
            transcription,
            call_id: query("call_id"),
            beta,
        }
    }

    /// The model the session reports.
    pub(crate) fn model_or_default(&self) -> &str {
        self.model
            .as_deref()
            .unwrap_or(crate::engine::DEFAULT_MODEL)
    }
}

/// Why a session is refused after the 101.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The close code: 3000 for credentials, 4000 for the request.
    pub(crate) close: u16,
    /// The API's error code.
    pub(crate) code: Option<&'static str>,
    pub(crate) message: String,
    pub(crate) param: Option<&'static str>,
}

impl Refusal {
    fn new(close: u16, code: Option<&'static str>, message: impl Into<String>) -> Self {
        Self {
            close,
            code,
            message: message.into(),
            param: None,
        }
    }

    fn param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    /// The close frame's reason, `invalid_request_error.<code>`.
    pub(crate) fn reason(&self) -> String {
        self.code.map_or("invalid_request_error".to_owned(), |c| {
            format!("invalid_request_error.{c}")
        })
    }

    /// The `error` object of the event that precedes the close.
    pub(crate) fn detail(&self) -> Value {
        json!({"type": "invalid_request_error", "code": self.code, "message": self.message,
            "param": self.param, "event_id": null})
    }
}

/// The checks, in the real server's order; `Ok` carries the hang-up signal of the call a
/// sideband session attaches to.
pub(crate) fn admit(
    handshake: &Handshake,
    target: &Target,
    shared: &Shared,
) -> Result<Option<watch::Receiver<bool>>, Refusal> {
    let info = &handshake.info;
    let config = &shared.config;
    if !info.authorized {
        return Err(match info.auth {
            AuthKind::None => Refusal::new(
                3000,
                None,
                "Missing bearer or basic authentication in header",
            ),
            _ => Refusal::new(3000, Some("invalid_api_key"), "Incorrect API key provided."),
        });
    }
    if info.beta && handshake.route != Route::AzureLegacy && config.beta == BetaMode::Reject {
        return Err(Refusal::new(
            4000,
            Some("beta_api_shape_disabled"),
            "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.",
        ));
    }
    let targets = [
        target.model.is_some() || target.secret.is_some(),
        target.call_id.is_some(),
        target.transcription,
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if targets == 0 {
        return Err(Refusal::new(
            4000,
            Some("missing_model"),
            "You must provide a model parameter.",
        )
        .param("model"));
    }
    // The key's own model is not checked again (minting accepted it), nor an Azure
    // deployment name (which can be anything).
    if let Some(model) = info.query_param("model")
        && handshake.route == Route::Ga
        && !config.model_allowed(model)
    {
        return Err(Refusal::new(
            4000,
            Some("invalid_model"),
            format!("Invalid model: '{model}'."),
        )
        .param("model"));
    }
    let hangup = target.call_id.as_deref().and_then(|call| shared.call(call));
    if let (Some(call), None) = (&target.call_id, &hangup) {
        return Err(Refusal::new(
            4000,
            Some("invalid_value"),
            format!("Call not found: {call}"),
        )
        .param("call_id"));
    }
    Ok(hangup)
}
