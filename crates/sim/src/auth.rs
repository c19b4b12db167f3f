//! Credentials: where a request carries them, and whether they are accepted.

use hyper::Request;

use crate::state::Shared;

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

/// A request header as text, if present and valid UTF-8.
pub(crate) fn header_value<B>(request: &Request<B>, name: &str) -> Option<String> {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Who a request is from: the kind of credential and the credential, looked for where
/// OpenAI and Azure clients put them, in that order.
pub(crate) fn credentials<B>(
    request: &Request<B>,
    protocols: &[String],
    query: &[(String, String)],
) -> (AuthKind, Option<String>) {
    let header = |name: &str| header_value(request, name);
    if let Some(bearer) =
        header("authorization").and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned))
    {
        (AuthKind::Bearer, Some(bearer))
    } else if let Some(key) = header("api-key") {
        (AuthKind::ApiKeyHeader, Some(key))
    } else if let Some(key) = protocols
        .iter()
        .find_map(|p| p.strip_prefix("openai-insecure-api-key."))
    {
        (AuthKind::Subprotocol, Some(key.to_owned()))
    } else if let Some((_, key)) = query.iter().find(|(k, _)| k == "api-key") {
        (AuthKind::Query, Some(key.clone()))
    } else {
        (AuthKind::None, None)
    }
}

/// Whether a credential is accepted: a configured key (any, when none is configured), or an
/// ephemeral key this simulator minted that has not expired.
pub(crate) fn authorized(shared: &Shared, key: Option<&str>) -> bool {
    let config = &shared.config;
    match key {
        Some(key) if key.starts_with("ek_") && shared.secret(key).is_some() => true,
        Some(key) => config.api_keys.is_empty() || config.api_keys.iter().any(|k| k == key),
        None => config.api_keys.is_empty(),
    }
}
