//! What a connection asked for, whatever carried it: the route, the query, the credential
//! and how it came, and what the connection log shows of it (secrets left out).

use hyper::{Request, StatusCode};

use crate::auth::{AuthKind, authorized, credentials, header_value};
use crate::state::Shared;

/// What a connection asked for, as the simulator saw it (secrets left out), for tests that
/// check what reached the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The request path, e.g. `/v1/realtime`.
    pub path: String,
    /// The query parameters, in order (an `api-key` value is replaced by `***`).
    pub query: Vec<(String, String)>,
    /// How the client authenticated.
    pub auth: AuthKind,
    /// Whether the credential was accepted.
    pub authorized: bool,
    /// Whether the client asked for the beta dialect.
    pub beta: bool,
    /// The subprotocol the simulator selected.
    pub subprotocol: Option<String>,
    /// Request headers other than credentials (names lower-case).
    pub headers: Vec<(String, String)>,
}

impl ConnectionInfo {
    /// The value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a header (lower-case name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// OpenAI (and compatible servers).
    Ga,
    /// Azure GA: `?model=` names a deployment, which can be anything.
    AzureGa,
    /// Azure's legacy preview API: beta dialect, `api-version` and `deployment`.
    AzureLegacy,
}

pub(crate) fn route(path: &str) -> Option<Route> {
    match path.trim_end_matches('/') {
        "/v1/realtime" | "/realtime" => Some(Route::Ga),
        "/openai/v1/realtime" => Some(Route::AzureGa),
        "/openai/realtime" => Some(Route::AzureLegacy),
        _ => None,
    }
}

pub(crate) fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) struct Handshake {
    pub(crate) info: ConnectionInfo,
    pub(crate) route: Route,
    /// The credential, kept only to look up an ephemeral key's session.
    pub(crate) key: Option<String>,
}

/// A handshake refused before the 101: an HTTP status and the API's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl Handshake {
    /// Reads the handshake of an upgrade request (a real one, or the one an in-process
    /// connection's endpoint describes), or refuses it before the 101.
    pub(crate) fn from_request<B>(request: &Request<B>, shared: &Shared) -> Result<Self, Refused> {
        let path = request.uri().path().to_owned();
        let Some(route) = route(&path) else {
            return Err(Refused {
                status: StatusCode::NOT_FOUND,
                message: format!("Invalid URL (GET {path})"),
            });
        };
        let mut query = parse_query(request.uri().query());
        if route == Route::AzureLegacy
            && !(query.iter().any(|(k, _)| k == "api-version")
                && query.iter().any(|(k, _)| k == "deployment"))
        {
            return Err(Refused {
                status: StatusCode::BAD_REQUEST,
                message: "api-version and deployment query parameters are required".to_owned(),
            });
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        assert_eq!(
            parse_query(Some("model=gpt-realtime&intent=transcription&x=a%20b+c")),
            [
                ("model".into(), "gpt-realtime".into()),
                ("intent".into(), "transcription".into()),
                ("x".into(), "a b c".into())
            ]
        );
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn routes() {
        assert_eq!(route("/v1/realtime"), Some(Route::Ga));
        assert_eq!(route("/openai/v1/realtime"), Some(Route::AzureGa));
        assert_eq!(route("/openai/realtime"), Some(Route::AzureLegacy));
        assert_eq!(route("/v1/chat"), None);
    }
}
