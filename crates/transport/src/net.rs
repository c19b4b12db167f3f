//! HTTP/1.1 connections (hyper over TCP, with rustls for `https`/`wss`): the WebSocket
//! upgrade and the REST calls share them.
//!
//! The upgrade is made here rather than by tungstenite's client handshake because that one
//! logs the raw request — credentials included — at TRACE through the `log` crate, which
//! header sensitivity cannot stop. hyper logs no headers.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Response, Uri};
use tokio::net::TcpStream;
use tokio_tungstenite::MaybeTlsStream;

use crate::error::{Error, ErrorKind, Result};
use crate::tls;

/// A byte stream to a server, in the clear or over TLS.
pub(crate) type Io = MaybeTlsStream<TcpStream>;

/// Where a URL points.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// The host to resolve and to verify the certificate of (IPv6 literals without brackets).
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: bool,
    /// The `Host` header's value.
    pub(crate) authority: String,
}

impl Origin {
    /// The origin of an `http(s)://` or `ws(s)://` URL.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for another scheme or no host.
    pub(crate) fn of(uri: &Uri) -> Result<Self> {
        let tls = match uri.scheme_str() {
            Some("https" | "wss") => true,
            Some("http" | "ws") => false,
            other => {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("unsupported URL scheme {other:?} in {uri}"),
                ));
            }
        };
        let raw_host = uri
            .host()
            .ok_or_else(|| Error::new(ErrorKind::Config, format!("no host in {uri}")))?;
        let host = raw_host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(raw_host)
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let authority = match uri.port() {
            Some(_) => format!("{raw_host}:{port}"),
            None => raw_host.to_owned(),
        };
        Ok(Self {
            host,
            port,
            tls,
            authority,
        })
    }

    /// Whether the host is this machine (`localhost`, 127.0.0.0/8, `::1`).
    pub(crate) fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// Warns when credentials are about to travel in the clear to another machine (an
    /// `http://` or `ws://` base, e.g. from `OPENAI_BASE_URL`). Loopback is fine: the
    /// simulator and local proxies live there.
    pub(crate) fn warn_cleartext(&self, has_credentials: bool) -> bool {
        let cleartext = has_credentials && !self.tls && !self.is_loopback();
        if cleartext {
            tracing::warn!(
                host = %self.host,
                "sending credentials without TLS to another machine: use https:// or wss://"
            );
        }
        cleartext
    }

    /// Connects TCP, then TLS when the scheme asks for it.
    ///
    /// # Errors
    /// [`ErrorKind::Connect`] for TCP and TLS failures (the certificate's problem is named),
    /// [`ErrorKind::Config`] for a host name TLS cannot carry.
    pub(crate) async fn connect(&self, extra_roots: &[Vec<u8>]) -> Result<Io> {
        let (host, port) = (self.host.as_str(), self.port);
        let tcp = TcpStream::connect((host, port)).await.map_err(|e| {
            Error::new(
                ErrorKind::Connect,
                format!("cannot connect to {}: {e}", self.authority),
            )
            .with_source(e)
        })?;
        let _ = tcp.set_nodelay(true);
        if !self.tls {
            return Ok(MaybeTlsStream::Plain(tcp));
        }
        let config = tls::client_config(extra_roots)?;
        let name = rustls::pki_types::ServerName::try_from(self.host.clone()).map_err(|e| {
            Error::new(ErrorKind::Config, format!("invalid host name {host}")).with_source(e)
        })?;
        let stream = tokio_rustls::TlsConnector::from(Arc::clone(&config))
            .connect(name, tcp)
            .await
            .map_err(|e| {
                Error::new(ErrorKind::Connect, format!("TLS with {host} failed: {e}"))
                    .with_source(e)
            })?;
        Ok(MaybeTlsStream::Rustls(stream))
    }
}

/// Reads a response body, at most `limit` bytes.
///
/// # Errors
/// [`ErrorKind::Connect`] when reading fails or the body is larger.
pub(crate) async fn body(response: Response<Incoming>, limit: usize) -> Result<Bytes> {
    Ok(Limited::new(response.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::Connect,
                format!("reading the response failed: {e}"),
            )
        })?
        .to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_strip_ipv6_brackets_and_default_ports() {
        let origin = Origin::of(&"ws://[::1]:8080/v1/realtime".parse().unwrap()).unwrap();
        assert_eq!(
            (origin.host.as_str(), origin.port, origin.tls),
            ("::1", 8080, false)
        );
        assert_eq!(origin.authority, "[::1]:8080");
        let origin = Origin::of(&"wss://api.openai.com/v1/realtime".parse().unwrap()).unwrap();
        assert_eq!(
            (origin.host.as_str(), origin.port, origin.tls),
            ("api.openai.com", 443, true)
        );
        assert_eq!(origin.authority, "api.openai.com");
        assert!(Origin::of(&"ftp://x/".parse().unwrap()).is_err());
    }

    #[test]
    fn credentials_in_the_clear_are_flagged_off_loopback_only() {
        let origin = |url: &str| Origin::of(&url.parse().unwrap()).unwrap();
        assert!(origin("ws://example.com/v1").warn_cleartext(true));
        assert!(origin("http://10.1.2.3:8080/v1").warn_cleartext(true));
        assert!(!origin("ws://example.com/v1").warn_cleartext(false));
        assert!(!origin("wss://example.com/v1").warn_cleartext(true));
        assert!(!origin("ws://127.0.0.1:9/v1").warn_cleartext(true));
        assert!(!origin("ws://localhost:9/v1").warn_cleartext(true));
        assert!(!origin("ws://[::1]:9/v1").warn_cleartext(true));
    }
}
