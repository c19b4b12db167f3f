//! WebSocket upgrades: the handshake (URL, auth, subprotocols) read from the HTTP request,
//! the 101, and the upgraded socket as the session loop's transport ([`EventIo`]): text
//! frames, the close handshake, and the failures only a socket has.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper::{Request as HttpRequest, Response as HttpResponse, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tracing::Instrument;

use crate::frames::{Ending, EventIo, FrameTx, Inbound, Outbound};
use crate::handshake::Handshake;
use crate::http::{Body, Permit, reject};
use crate::session_loop::{MAX_MESSAGE, Session};
use crate::state::{IdSpace, Shared};

pub(crate) fn websocket_config() -> WebSocketConfig {
    // tungstenite zero-fills its read buffer up to its size before every read: the default
    // 128 KiB was a fifth of the simulator's CPU at a few hundred sessions (and resident in
    // each). Events are a few KB; a larger message grows the buffer as it arrives.
    WebSocketConfig::default()
        .read_buffer_size(16 << 10)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

pub(crate) fn websocket_upgrade(
    mut request: HttpRequest<Incoming>,
    shared: Arc<Shared>,
    permit: Permit,
) -> HttpResponse<Body> {
    let Some(key) = request
        .headers()
        .get("sec-websocket-key")
        .map(|k| derive_accept_key(k.as_bytes()))
    else {
        return reject(StatusCode::BAD_REQUEST, None, "missing Sec-WebSocket-Key");
    };
    if request
        .headers()
        .get("sec-websocket-version")
        .and_then(|v| v.to_str().ok())
        != Some("13")
    {
        return reject(
            StatusCode::BAD_REQUEST,
            None,
            "unsupported Sec-WebSocket-Version",
        );
    }
    let handshake = match Handshake::from_request(&request, &shared) {
        Ok(handshake) => handshake,
        Err(refused) => return reject(refused.status, None, &refused.message),
    };
    let mut response = HttpResponse::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", key);
    if let Some(protocol) = &handshake.info.subprotocol {
        response = response.header("sec-websocket-protocol", protocol.as_str());
    }
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let _permit = permit;
        let upgraded = match upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => return tracing::debug!(%error, "upgrade failed"),
        };
        let ws = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(websocket_config()),
        )
        .await;
        shared.remember(handshake.info.clone());
        let (sink, stream) = ws.split();
        let io = WsIo {
            stream,
            fused: false,
        };
        if let Some(entries) = &shared.replay {
            return crate::replay::serve(io, WsTx(sink), entries).await;
        }
        let seed = shared.ids.next(IdSpace::Session);
        let span = tracing::info_span!("sim_session", session_id = tracing::field::Empty);
        Session::new(handshake, seed, shared)
            .run(io, WsTx(sink))
            .instrument(span)
            .await;
    });
    response
        .body(Full::new(Bytes::new()))
        .expect("a 101 response builds")
}

type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// The socket's read half, as the session loop reads it.
struct WsIo {
    stream: futures_util::stream::SplitStream<Ws>,
    /// Reading failed: the WebSocket stream has ended, the socket has not.
    fused: bool,
}

/// The socket's write half.
struct WsTx(futures_util::stream::SplitSink<Ws, Message>);

impl FrameTx for WsTx {
    async fn send(&mut self, frame: Outbound) -> bool {
        let message = match frame {
            Outbound::Text(text) => Message::text(text),
            Outbound::Binary(bytes) => Message::Binary(bytes),
            Outbound::Close(code, reason) => Message::Close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            })),
        };
        self.0.send(message).await.is_ok()
    }
}

impl EventIo for WsIo {
    type Text = Utf8Bytes;
    type Tx = WsTx;
    type Output = ();

    async fn recv(&mut self) -> Inbound<Utf8Bytes> {
        use tokio_tungstenite::tungstenite::Error;
        use tokio_tungstenite::tungstenite::error::ProtocolError;
        if self.fused {
            return std::future::pending().await;
        }
        loop {
            let error = match self.stream.next().await {
                Some(Ok(Message::Text(text))) => return Inbound::Text(text),
                Some(Ok(Message::Binary(_))) => return Inbound::Binary,
                Some(Ok(Message::Close(_))) => return Inbound::Closed,
                // Pings and pongs: tungstenite answers pings itself.
                Some(Ok(_)) => continue,
                None => return Inbound::Gone,
                Some(Err(error)) => error,
            };
            // The stream ends after an error; the rest of the frame is still on the socket.
            self.fused = true;
            return match error {
                Error::Capacity(_) => Inbound::TooLarge,
                Error::Utf8(_) => Inbound::Broken(1007, "invalid UTF-8 in a text frame"),
                Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Inbound::Gone,
                Error::Protocol(_) => Inbound::Broken(1002, "protocol error"),
                _ => Inbound::Gone,
            };
        }
    }

    async fn conclude(mut self, tx: Option<WsTx>, ending: Ending, deadline: Instant) {
        match ending {
            Ending::Closed if self.fused => {
                // The frame that failed is still arriving: read it away, so the client
                // finishes sending and reads the close instead of a reset.
                if let Some(WsTx(sink)) = tx
                    && let Ok(mut ws) = self.stream.reunite(sink)
                {
                    use tokio::io::AsyncReadExt;
                    let mut buf = vec![0_u8; 64 << 10];
                    let io = ws.get_mut();
                    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, io.read(&mut buf)).await
                    {
                        if n == 0 {
                            break;
                        }
                    }
                }
            }
            Ending::Closed => {
                // The client's close frame completes the handshake.
                let _ = tokio::time::timeout_at(deadline, async {
                    while let Some(Ok(message)) = self.stream.next().await {
                        if message.is_close() {
                            break;
                        }
                    }
                })
                .await;
            }
            Ending::PeerClosed => {
                // tungstenite has queued the reply (echoing the client's code): the sink
                // flushes it however full the socket is; reading on then ends the stream.
                if let Some(WsTx(mut sink)) = tx {
                    let _ = tokio::time::timeout_at(deadline, sink.close()).await;
                }
                let _ = tokio::time::timeout_at(deadline, async {
                    while self.stream.next().await.is_some() {}
                })
                .await;
            }
            Ending::Dropped => {}
        }
    }
}
