//! What a connection asked for, whatever carried it: the route, the query, the credential
//! and how it came, and what the connection log shows of it (secrets left out).

/// How a client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthKind {
    /// `Authorization: Bearer …`.
    Bearer,
    /// Azure's `api-key` header.
    ApiKeyHeader,
    /// Browser subprotocol `openai-insecure-api-key.…`.
    Subprotocol,
    /// Azure's `?api-key=` query fallback.
    Query,
    /// No credentials.
    None,
}

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
