//! Where and how to connect: OpenAI, Azure (GA and the legacy preview), or any compatible
//! server; the session target (model, call, transcription); credentials and headers.

use std::fmt;

use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderName, HeaderValue, Request};

use crate::error::{Error, ErrorKind, Result};

/// The default model.
pub const DEFAULT_MODEL: &str = "gpt-realtime";
/// OpenAI's API, as a WebSocket base.
pub const OPENAI_BASE: &str = "wss://api.openai.com/v1";

/// An API key or token. Its `Debug` never shows it and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself, for the rare code that must hand it on.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// What the session attaches to (exactly one, as the API requires).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// A new realtime session with this model (on Azure: a deployment name).
    Model(String),
    /// Sideband control of an existing WebRTC or SIP call (`rtc_…`).
    Call(String),
    /// A transcription-only session.
    Transcription,
}

/// The server's API family.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Flavor {
    /// OpenAI, or a compatible server: `{base}/realtime?model=…`, `Authorization: Bearer`.
    OpenAi,
    /// Azure OpenAI GA: `{endpoint}/openai/v1/realtime?model=<deployment>`, `api-key` header
    /// (or an Entra ID bearer token).
    Azure,
    /// Azure's legacy preview API, which speaks the beta dialect:
    /// `{endpoint}/openai/realtime?api-version=…&deployment=…`.
    AzureLegacy {
        /// E.g. `2024-10-01-preview`.
        api_version: String,
    },
}

pub use reelthyme_schema::Dialect;

#[derive(Clone, PartialEq, Eq)]
enum Auth {
    None,
    Bearer(ApiKey),
    AzureKey(ApiKey),
}

/// Where and how to connect. Build with [`Endpoint::openai`], [`Endpoint::azure`],
/// [`Endpoint::azure_legacy`] or [`Endpoint::from_env`], then the setters.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    base: String,
    flavor: Flavor,
    target: Target,
    auth: Auth,
    dialect: Dialect,
    headers: Vec<(String, String)>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.auth {
            Auth::None => "none",
            Auth::Bearer(_) => "bearer <redacted>",
            Auth::AzureKey(_) => "api-key <redacted>",
        };
        f.debug_struct("Endpoint")
            .field("url", &self.url())
            .field("auth", &auth)
            .field("dialect", &self.dialect)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(name, _)| name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// `https://…` → `wss://…`, `http://…` → `ws://…`; no trailing slash.
fn websocket_base(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        url.to_owned()
    }
}

/// Whether a URL (already without a trailing slash) has a path after its authority.
fn has_path(url: &str) -> bool {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority_end = after_scheme.find(['/', '?', '#']);
    authority_end.is_some_and(|at| after_scheme[at..].starts_with('/'))
}

pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

impl Endpoint {
    /// OpenAI, with `model` (no key yet: add one with [`Endpoint::api_key`]).
    pub fn openai(model: impl Into<String>) -> Self {
        Self {
            base: OPENAI_BASE.to_owned(),
            flavor: Flavor::OpenAi,
            target: Target::Model(model.into()),
            auth: Auth::None,
            dialect: Dialect::Ga,
            headers: Vec::new(),
        }
    }

    /// Azure OpenAI GA: `endpoint` is the resource URL (`https://NAME.openai.azure.com`),
    /// `deployment` the model deployment's name.
    pub fn azure(endpoint: &str, deployment: impl Into<String>) -> Self {
        Self {
            base: websocket_base(endpoint),
            flavor: Flavor::Azure,
            ..Self::openai(deployment)
        }
    }

    /// Azure's legacy preview API (beta dialect).
    pub fn azure_legacy(
        endpoint: &str,
        deployment: impl Into<String>,
        api_version: impl Into<String>,
    ) -> Self {
        Self {
            base: websocket_base(endpoint),
            flavor: Flavor::AzureLegacy {
                api_version: api_version.into(),
            },
            dialect: Dialect::Beta,
            ..Self::openai(deployment)
        }
    }

    /// From the environment: `OPENAI_API_KEY`, `OPENAI_BASE_URL` (or `REELTHYME_BASE_URL`;
    /// read as [`Endpoint::base_url`] does, so `http://127.0.0.1:PORT` means its `/v1`),
    /// `REELTHYME_MODEL` (default `gpt-realtime`).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when `OPENAI_API_KEY` is not set.
    pub fn from_env() -> Result<Self> {
        let key = std::env::var("OPENAI_API_KEY")
            .ok()
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| Error::new(ErrorKind::Config, "OPENAI_API_KEY is not set"))?;
        let model = std::env::var("REELTHYME_MODEL").unwrap_or_else(|_| DEFAULT_MODEL.to_owned());
        let mut endpoint = Self::openai(model).api_key(key);
        if let Ok(base) =
            std::env::var("REELTHYME_BASE_URL").or_else(|_| std::env::var("OPENAI_BASE_URL"))
        {
            endpoint = endpoint.base_url(&base);
        }
        Ok(endpoint)
    }

    /// A compatible server's base, e.g. `ws://127.0.0.1:PORT/v1` (the path the official
    /// SDKs take as `websocket_base_url`); `/realtime` is appended. A base with no path
    /// means `/v1`, as with OpenAI's own SDKs' default: `http://127.0.0.1:PORT` (what
    /// `reelthyme sim` prints) is `ws://127.0.0.1:PORT/v1`. `http(s)://` becomes `ws(s)://`.
    /// On an Azure endpoint the base is the resource URL and is taken as it is.
    #[must_use]
    pub fn base_url(mut self, base: &str) -> Self {
        self.base = websocket_base(base);
        if self.flavor == Flavor::OpenAi && !has_path(&self.base) {
            self.base.push_str("/v1");
        }
        self
    }

    /// The API key (Bearer for OpenAI, `api-key` header for Azure).
    #[must_use]
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        let key = ApiKey::new(key);
        self.auth = match self.flavor {
            Flavor::OpenAi => Auth::Bearer(key),
            Flavor::Azure | Flavor::AzureLegacy { .. } => Auth::AzureKey(key),
        };
        self
    }

    /// A bearer token (an ephemeral `ek_…` key, or an Azure Entra ID token).
    #[must_use]
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Bearer(ApiKey::new(token));
        self
    }

    /// Attach to this model (the default target, `gpt-realtime`).
    #[must_use]
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.target = Target::Model(model.into());
        self
    }

    /// Sideband control of an existing WebRTC/SIP call.
    #[must_use]
    pub fn call_id(mut self, call_id: impl Into<String>) -> Self {
        self.target = Target::Call(call_id.into());
        self
    }

    /// A transcription-only session (`?intent=transcription`).
    #[must_use]
    pub fn transcription(mut self) -> Self {
        self.target = Target::Transcription;
        self
    }

    /// Speak the beta dialect (legacy servers); sends `OpenAI-Beta: realtime=v1`.
    #[must_use]
    pub fn beta(mut self) -> Self {
        self.dialect = Dialect::Beta;
        self
    }

    /// `OpenAI-Organization`.
    #[must_use]
    pub fn organization(self, organization: impl Into<String>) -> Self {
        self.header("OpenAI-Organization", organization)
    }

    /// `OpenAI-Project`.
    #[must_use]
    pub fn project(self, project: impl Into<String>) -> Self {
        self.header("OpenAI-Project", project)
    }

    /// Any other header (its value is never logged).
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The API family.
    pub fn flavor(&self) -> &Flavor {
        &self.flavor
    }

    /// Whether a credential is set.
    pub fn has_credentials(&self) -> bool {
        self.auth != Auth::None
    }

    /// The WebSocket URL (it never contains a credential).
    pub fn url(&self) -> String {
        let target = match &self.target {
            Target::Model(model) => format!("model={}", encode(model)),
            Target::Call(call) => format!("call_id={}", encode(call)),
            Target::Transcription => "intent=transcription".to_owned(),
        };
        match &self.flavor {
            Flavor::OpenAi => {
                let base = self.base.trim_end_matches("/realtime");
                format!("{base}/realtime?{target}")
            }
            Flavor::Azure => {
                let base = self
                    .base
                    .trim_end_matches("/openai/v1/realtime")
                    .trim_end_matches("/openai/v1");
                format!("{base}/openai/v1/realtime?{target}")
            }
            Flavor::AzureLegacy { api_version } => {
                let base = self
                    .base
                    .trim_end_matches("/openai/realtime")
                    .trim_end_matches("/openai");
                let deployment = match &self.target {
                    Target::Model(model) => format!("&deployment={}", encode(model)),
                    _ => String::new(),
                };
                format!(
                    "{base}/openai/realtime?api-version={}{deployment}",
                    encode(api_version)
                )
            }
        }
    }

    /// The base of the endpoint's REST API, `http(s)://…/v1/realtime` (OpenAI) or
    /// `…/openai/v1/realtime` (Azure GA), to which `client_secrets`, `calls`, … are
    /// appended: derived from the base URL, not from the WebSocket URL.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for the legacy Azure API, which has no realtime REST calls.
    pub fn rest_base(&self) -> Result<String> {
        let http = |base: &str| {
            if let Some(rest) = base.strip_prefix("wss://") {
                format!("https://{rest}")
            } else if let Some(rest) = base.strip_prefix("ws://") {
                format!("http://{rest}")
            } else {
                base.to_owned()
            }
        };
        match &self.flavor {
            Flavor::OpenAi => Ok(format!(
                "{}/realtime",
                http(self.base.trim_end_matches("/realtime"))
            )),
            Flavor::Azure => Ok(format!(
                "{}/openai/v1/realtime",
                http(
                    self.base
                        .trim_end_matches("/openai/v1/realtime")
                        .trim_end_matches("/openai/v1")
                )
            )),
            Flavor::AzureLegacy { .. } => Err(Error::new(
                ErrorKind::Config,
                "the legacy Azure API has no realtime REST calls",
            )),
        }
    }

    /// The headers every request to the endpoint carries: the credential (marked
    /// sensitive: never logged), the beta header for the beta dialect, and the headers
    /// added with [`Endpoint::header`].
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for a credential or header a header cannot carry.
    pub fn auth_headers(&self) -> Result<HeaderMap> {
        let mut headers = HeaderMap::new();
        let secret = |value: &str| {
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                Error::new(
                    ErrorKind::Config,
                    "a credential has characters a header cannot carry",
                )
            })?;
            value.set_sensitive(true);
            Ok::<_, Error>(value)
        };
        match &self.auth {
            Auth::None => {}
            Auth::Bearer(key) => {
                headers.insert(
                    "authorization",
                    secret(&format!("Bearer {}", key.expose_secret()))?,
                );
            }
            Auth::AzureKey(key) => {
                headers.insert("api-key", secret(key.expose_secret())?);
            }
        }
        if self.dialect == Dialect::Beta {
            headers.insert("openai-beta", HeaderValue::from_static("realtime=v1"));
        }
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                Error::new(ErrorKind::Config, format!("invalid header name {name:?}"))
            })?;
            headers.insert(name, secret(value)?);
        }
        Ok(headers)
    }

    /// The upgrade request with its headers.
    pub(crate) fn request(&self) -> Result<Request<()>> {
        let url = self.url();
        let mut request = url.as_str().into_client_request().map_err(|e| {
            Error::new(ErrorKind::Config, format!("invalid URL {url}")).with_source(e)
        })?;
        request.headers_mut().extend(self.auth_headers()?);
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_each_api_family() {
        assert_eq!(
            Endpoint::openai("gpt-realtime").url(),
            "wss://api.openai.com/v1/realtime?model=gpt-realtime"
        );
        assert_eq!(
            Endpoint::openai("m")
                .base_url("http://127.0.0.1:9/v1/")
                .call_id("rtc_1")
                .url(),
            "ws://127.0.0.1:9/v1/realtime?call_id=rtc_1"
        );
        assert_eq!(
            Endpoint::openai("m").transcription().url(),
            "wss://api.openai.com/v1/realtime?intent=transcription"
        );
        assert_eq!(
            Endpoint::azure("https://res.openai.azure.com/", "my dep").url(),
            "wss://res.openai.azure.com/openai/v1/realtime?model=my%20dep"
        );
        assert_eq!(
            Endpoint::azure_legacy("https://res.openai.azure.com", "dep", "2024-10-01-preview")
                .url(),
            "wss://res.openai.azure.com/openai/realtime?api-version=2024-10-01-preview&deployment=dep"
        );
    }

    #[test]
    fn a_base_without_a_path_means_v1() {
        for base in [
            "http://127.0.0.1:9",
            "ws://127.0.0.1:9",
            "ws://127.0.0.1:9/",
            " http://127.0.0.1:9/ ",
        ] {
            assert_eq!(
                Endpoint::openai("m").base_url(base).url(),
                "ws://127.0.0.1:9/v1/realtime?model=m",
                "{base}"
            );
        }
        assert_eq!(
            Endpoint::openai("m").base_url("https://example.com").url(),
            "wss://example.com/v1/realtime?model=m"
        );
        // An explicit path is kept, whatever it is.
        for (base, url) in [
            (
                "ws://127.0.0.1:9/v1",
                "ws://127.0.0.1:9/v1/realtime?model=m",
            ),
            (
                "ws://127.0.0.1:9/v1/realtime",
                "ws://127.0.0.1:9/v1/realtime?model=m",
            ),
            (
                "https://proxy.example/openai/v2",
                "wss://proxy.example/openai/v2/realtime?model=m",
            ),
        ] {
            assert_eq!(Endpoint::openai("m").base_url(base).url(), url, "{base}");
        }
        // Azure's base is the resource: no `/v1` before `/openai/v1/realtime`.
        assert_eq!(
            Endpoint::azure("https://r.openai.azure.com", "d")
                .base_url("https://other.openai.azure.com")
                .url(),
            "wss://other.openai.azure.com/openai/v1/realtime?model=d"
        );
    }

    /// What `reelthyme sim` prints, used as it is: the WebSocket and the REST calls both reach
    /// the simulator's `/v1`.
    #[tokio::test]
    async fn the_simulators_printed_base_works_for_websocket_and_rest() {
        use std::time::Duration;

        use futures_util::StreamExt;

        let sim = reelthyme_sim::Simulator::start(reelthyme_sim::SimConfig::default())
            .await
            .unwrap();
        let options = crate::Options::default();
        for base in [sim.url(), sim.url().replacen("ws://", "http://", 1)] {
            let endpoint = Endpoint::openai("gpt-realtime")
                .base_url(&base)
                .api_key("sk-local");
            let mut connection =
                tokio::time::timeout(Duration::from_secs(10), crate::connect(&endpoint, &options))
                    .await
                    .expect("connects in time")
                    .unwrap_or_else(|e| panic!("{base}: {e}"));
            let first = tokio::time::timeout(Duration::from_secs(10), connection.receiver.next())
                .await
                .expect("an event in time")
                .expect("one event")
                .unwrap();
            assert!(first.contains("\"session.created\""), "{first}");
            let secret = tokio::time::timeout(
                Duration::from_secs(10),
                crate::create_client_secret(&endpoint, &Default::default(), &options),
            )
            .await
            .expect("REST answers in time")
            .unwrap_or_else(|e| panic!("{base}: {e}"));
            assert!(secret.value.expose_secret().starts_with("ek_"));
        }
        sim.shutdown().await;
    }

    #[test]
    fn has_path_looks_past_the_authority() {
        assert!(!has_path("ws://127.0.0.1:9"));
        assert!(!has_path("127.0.0.1:9"));
        assert!(!has_path("ws://h?x=/y"));
        assert!(has_path("ws://h/v1"));
        assert!(has_path("h/v1"));
    }

    #[test]
    fn credentials_go_in_headers_and_never_in_debug() {
        let endpoint = Endpoint::openai("m")
            .api_key("sk-very-secret")
            .organization("org_1");
        let request = endpoint.request().unwrap();
        assert_eq!(request.headers()["authorization"], "Bearer sk-very-secret");
        assert!(request.headers()["authorization"].is_sensitive());
        assert!(!format!("{endpoint:?}").contains("very-secret"));
        assert!(!format!("{:?}", ApiKey::new("sk-very-secret")).contains("very-secret"));
        let azure = Endpoint::azure("https://r.openai.azure.com", "d").api_key("azkey");
        assert_eq!(azure.request().unwrap().headers()["api-key"], "azkey");
        let legacy = Endpoint::azure_legacy("https://r.openai.azure.com", "d", "v").api_key("k");
        assert_eq!(
            legacy.request().unwrap().headers()["openai-beta"],
            "realtime=v1"
        );
    }
}
