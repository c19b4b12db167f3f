//! Both ends on this crate: a server that answers with `WebRtc::answer` behind a tiny
//! `POST /v1/realtime/calls`, and the client transport. What the simulator builds on.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::Response;
use hyper_util::rt::TokioIo;
use reelthyme_transport::{AudioChunk, Connection, Endpoint, ErrorKind, Options, Transport};
use reelthyme_webrtc::WebRtc;
use support::WAIT;
use tokio::sync::mpsc;

/// Serves calls with `WebRtc::answer`; each connected call's server end goes to the test.
async fn serve(
    server: WebRtc,
) -> (
    String,
    mpsc::UnboundedReceiver<reelthyme_transport::Result<Connection>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let (calls_tx, calls) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let server = server.clone();
            let calls_tx = calls_tx.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let server = server.clone();
                        let calls_tx = calls_tx.clone();
                        async move {
                            let path = request.uri().path().to_owned();
                            let content_type = request
                                .headers()
                                .get("content-type")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned();
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            if path.ends_with("/hangup") {
                                return Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(
                                    "{}",
                                ))));
                            }
                            let text = String::from_utf8_lossy(&body).into_owned();
                            let sdp = if content_type.starts_with("application/sdp") {
                                Some(text)
                            } else {
                                support::answerer::parts(&content_type, &text).0
                            };
                            let answered = match server.answer(&sdp.unwrap_or_default()).await {
                                Ok(answered) => answered,
                                Err(error) => {
                                    assert_eq!(error.kind(), ErrorKind::InvalidRequest);
                                    let body = format!(
                                        r#"{{"error":{{"type":"invalid_request_error","message":"{error}"}}}}"#
                                    );
                                    return Ok(Response::builder()
                                        .status(400)
                                        .body(Full::new(Bytes::from(body)))
                                        .unwrap());
                                }
                            };
                            let sdp = answered.sdp().to_owned();
                            tokio::spawn(async move {
                                let _ =
                                    calls_tx.send(answered.connected(&Options::default()).await);
                            });
                            Ok(Response::builder()
                                .status(201)
                                .header("content-type", "application/sdp")
                                .header("location", "/v1/realtime/calls/rtc_lib")
                                .body(Full::new(Bytes::from(sdp)))
                                .unwrap())
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

fn endpoint(base: &str) -> Endpoint {
    Endpoint::openai("gpt-realtime")
        .base_url(base)
        .api_key("sk-test")
}

async fn next_text(connection: &mut Connection) -> String {
    tokio::time::timeout(WAIT, connection.receiver.next())
        .await
        .expect("timed out")
        .expect("the stream ended")
        .expect("the connection failed")
        .into_text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_audio_between_two_ends_of_this_crate() {
    let (base, mut calls) = serve(WebRtc::new()).await;
    let mut client = WebRtc::new()
        .connect(&endpoint(&base), &Options::default())
        .await
        .unwrap();
    let mut server = tokio::time::timeout(WAIT, calls.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(client.call_id.as_deref(), Some("rtc_lib"));
    assert_eq!(server.call_id, None);

    // Events both ways, in order.
    server
        .sender
        .send(r#"{"type":"session.created"}"#.to_owned())
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut client).await,
        r#"{"type":"session.created"}"#
    );
    for i in 0..5 {
        client.sender.send(format!("{{\"n\":{i}}}")).await.unwrap();
    }
    for i in 0..5 {
        assert_eq!(next_text(&mut server).await, format!("{{\"n\":{i}}}"));
    }

    // Audio both ways: half a second of a tone each way, at 24 kHz on both ends.
    let tone: Vec<i16> = (0..12_000)
        .map(|i| ((i as f32 * 0.1152).sin() * 8000.0) as i16)
        .collect();
    let mut client_media = client.media.take().unwrap();
    let mut server_media = server.media.take().unwrap();
    for chunk in tone.chunks(480) {
        client_media
            .send(AudioChunk::new(24_000, chunk.to_vec()))
            .await
            .unwrap();
        server_media
            .send(AudioChunk::new(24_000, chunk.to_vec()))
            .await
            .unwrap();
    }
    for media in [&mut client_media, &mut server_media] {
        let mut heard = Vec::new();
        tokio::time::timeout(WAIT, async {
            while heard.len() < 8_000 {
                heard.extend(media.incoming().next().await.expect("track ended").samples);
            }
        })
        .await
        .expect("no audio arrived");
        let loud = heard.iter().filter(|s| s.unsigned_abs() > 1000).count();
        assert!(loud > heard.len() / 4, "{loud} of {} loud", heard.len());
    }

    // The client's close reaches the server: its stream ends without an error.
    client.sender.close().await.unwrap();
    let rest = tokio::time::timeout(WAIT, server.receiver.collect::<Vec<_>>())
        .await
        .expect("the server's end outlived the client's close");
    assert!(rest.iter().all(Result::is_ok), "{rest:?}");
    assert!(server.sender.send("late".to_owned()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_that_is_not_sdp_is_an_invalid_request() {
    let error = WebRtc::new().answer("hello").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidRequest, "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_connects_is_a_server_timeout_within_the_bound() {
    // A real offer, from a peer that is gone before it connects.
    let offerer = support::peer(support::Tuning::FAST).await;
    let _channel = offerer
        .pc
        .create_data_channel("oai-events", None)
        .await
        .unwrap();
    let offer = offerer.pc.create_offer(None).await.unwrap();
    offerer.pc.set_local_description(offer).await.unwrap();
    let mut states = offerer.states;
    support::wait_for(&mut states, |seen| {
        matches!(seen, support::Seen::Gathered(_)).then_some(())
    })
    .await;
    let offer = offerer.pc.local_description().await.unwrap().sdp;
    offerer.pc.close().await.unwrap();

    let bound = Duration::from_millis(800);
    let answered = WebRtc::new()
        .setup_timeout(bound)
        .answer(&offer)
        .await
        .unwrap();
    assert!(answered.sdp().starts_with("v=0"));
    let started = std::time::Instant::now();
    let error = answered.connected(&Options::default()).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert!(
        took >= bound && took < bound + Duration::from_secs(3),
        "{took:?}"
    );
}

/// Prints the setup time with this crate on both ends (what the simulator will serve), p50
/// of 20; run with `--ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check: run it by hand"]
async fn setup_time_p50_both_ends() {
    let (base, mut calls) = serve(WebRtc::new()).await;
    let mut times = Vec::new();
    for _ in 0..20 {
        let started = std::time::Instant::now();
        let mut client = WebRtc::new()
            .connect(&endpoint(&base), &Options::default())
            .await
            .unwrap();
        times.push(started.elapsed());
        let _server = calls.recv().await.unwrap().unwrap();
        client.sender.close().await.unwrap();
    }
    eprintln!(
        "both ends reelthyme-webrtc: p50 {:?}",
        support::median(times)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_audio_still_carries_events() {
    let (base, mut calls) = serve(WebRtc::new().audio(false)).await;
    let mut client = WebRtc::new()
        .connect(&endpoint(&base), &Options::default())
        .await
        .unwrap();
    let mut server = tokio::time::timeout(WAIT, calls.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(server.media.is_none());
    client.sender.send("{}".to_owned()).await.unwrap();
    assert_eq!(next_text(&mut server).await, "{}");
    client.sender.close().await.unwrap();
}
