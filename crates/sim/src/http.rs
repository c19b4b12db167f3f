//! The HTTP side of a connection: HTTP/1.1 with a header-read timeout, the connection cap's
//! 503, and routing each request to the WebSocket upgrade or to REST.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request as HttpRequest, Response as HttpResponse, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpStream;

use crate::state::Shared;

pub(crate) type Body = Full<Bytes>;

/// A JSON error response, shaped like OpenAI's.
pub(crate) fn reject(status: StatusCode, code: Option<&str>, message: &str) -> HttpResponse<Body> {
    let body = json!({"error": {"type": "invalid_request_error", "code": code, "message": message, "param": null}});
    HttpResponse::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a static response builds")
}

/// Holds a connection's place under [`SimConfig::max_connections`] until both the HTTP
/// connection and the WebSocket session it became are gone.
pub(crate) type Permit = Arc<tokio::sync::OwnedSemaphorePermit>;

/// One TCP connection: HTTP/1.1, which is either a REST call or a WebSocket upgrade.
pub(crate) async fn serve(stream: TcpStream, shared: Arc<Shared>, permit: Permit) {
    let header_read_timeout = shared.config.header_read_timeout;
    // The address the client reached: a WebRTC call gathers its candidates there.
    let local = stream.local_addr().ok().map(|addr| addr.ip());
    let service = service_fn(move |request| {
        let shared = shared.clone();
        let permit = permit.clone();
        async move {
            Ok::<_, std::convert::Infallible>(route_request(request, shared, permit, local).await)
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(error) = connection.await {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// Answers a connection over the cap with 503 and closes it, without waiting on the client
/// for long.
pub(crate) async fn refuse_busy(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let body = json!({"error": {"type": "server_error", "code": "server_busy",
        "message": "The simulator is serving its maximum number of connections.", "param": null}})
    .to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        use tokio::io::AsyncReadExt;
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
        // Closing with the request unread would reset the connection, and the client could
        // lose the response: read a little of it away first.
        let mut buf = [0_u8; 4096];
        let mut left: usize = 64 << 10;
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

async fn route_request(
    request: HttpRequest<Incoming>,
    shared: Arc<Shared>,
    permit: Permit,
    local: Option<std::net::IpAddr>,
) -> HttpResponse<Body> {
    let upgrade = request
        .headers()
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if upgrade {
        return crate::server::websocket_upgrade(request, shared, permit);
    }
    #[cfg(feature = "webrtc")]
    if request.method() == hyper::Method::POST && crate::webrtc::is_calls(request.uri().path()) {
        return crate::webrtc::call(request, shared, permit, local).await;
    }
    let _ = local;
    crate::rest::handle(request, shared).await
}
