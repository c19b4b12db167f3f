//! The facade's `Session` over WebRTC, chosen by configuration alone: the same `connect`,
//! `session.created`, typed events both ways, as over a WebSocket.

mod support;

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::Response;
use hyper_util::rt::TokioIo;
use reelthyme::events::{ClientEvent, ServerEvent};
use reelthyme::{Config, Endpoint, Options};
use reelthyme_transport::Connection;
use reelthyme_webrtc::WebRtc;
use support::WAIT;
use tokio::sync::mpsc;

/// Answers calls with this crate; each call's server end goes to the test.
async fn serve() -> (String, mpsc::UnboundedReceiver<Connection>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let (calls_tx, calls) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let calls_tx = calls_tx.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let calls_tx = calls_tx.clone();
                        async move {
                            let content_type = request
                                .headers()
                                .get("content-type")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned();
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            let text = String::from_utf8_lossy(&body).into_owned();
                            let sdp = support::answerer::parts(&content_type, &text).0.unwrap();
                            let answered = WebRtc::new().answer(&sdp).await.unwrap();
                            let sdp = answered.sdp().to_owned();
                            tokio::spawn(async move {
                                let mut call =
                                    answered.connected(&Options::default()).await.unwrap();
                                // What the API sends first on `oai-events`.
                                call.sender
                                    .send(
                                        r#"{"type":"session.created","event_id":"event_1","session":{"type":"realtime","object":"realtime.session","id":"sess_rtc1","model":"gpt-realtime"}}"#
                                            .to_owned(),
                                    )
                                    .await
                                    .unwrap();
                                let _ = calls_tx.send(call);
                            });
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(201)
                                    .header("location", "/v1/realtime/calls/rtc_session")
                                    .body(Full::new(Bytes::from(sdp)))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (base, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_over_webrtc_is_a_session() {
    let (base, mut calls) = serve().await;
    let config = Config::new(
        Endpoint::openai("gpt-realtime")
            .base_url(&base)
            .api_key("sk-test"),
    )
    .transport(WebRtc::new().audio(false));
    let mut session = tokio::time::timeout(WAIT, reelthyme::connect(config))
        .await
        .expect("connect hung")
        .unwrap();
    let mut call = tokio::time::timeout(WAIT, calls.recv())
        .await
        .unwrap()
        .unwrap();
    // The stream starts with the `session.created` that `connect` waited for.
    let first = tokio::time::timeout(WAIT, session.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let ServerEvent::SessionCreated(created) = first else {
        panic!("{first:?}");
    };
    assert_eq!(created.session.id.as_deref(), Some("sess_rtc1"));

    // Client events go out on the data channel as their JSON.
    session
        .send(ClientEvent::from_json(r#"{"type":"response.create"}"#).unwrap())
        .await
        .unwrap();
    let got = tokio::time::timeout(WAIT, call.receiver.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let got: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(got["type"], "response.create");

    // Server events, WebRTC-only ones included, come back typed.
    call.sender
        .send(
            r#"{"type":"output_audio_buffer.started","event_id":"event_2","response_id":"resp_1"}"#
                .to_owned(),
        )
        .await
        .unwrap();
    let event = tokio::time::timeout(WAIT, session.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(event, ServerEvent::OutputAudioBufferStarted(_)),
        "{event:?}"
    );
    session.close().await.unwrap();
}
