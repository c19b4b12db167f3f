//! A stand-in for the Realtime API's WebRTC side, for the transport's tests alone (the
//! simulator's real one comes later): a tiny hyper server on 127.0.0.1:0 that serves
//! `POST /v1/realtime/calls` with a webrtc-rs answerer behind it, and
//! `POST /v1/realtime/calls/{id}/hangup`.
//!
//! Each call's answerer echoes every text message back on `oai-events`, decodes the
//! client's Opus track, and plays one second of a tone on its own track.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use reelthyme_audio::{OPUS_RATE, OpusDecoder, OpusEncoder};
use rtc::media::Sample;
use webrtc::data_channel::DataChannelEvent;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::TrackRemoteEvent;
use webrtc::peer_connection::{PeerConnection, RTCSessionDescription};

use super::{Seen, Tuning, opus_track, peer, wait_for};

/// How the server behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answers and runs the call.
    Normal,
    /// Refuses every call with 401 and the API's error body.
    Unauthorized,
    /// Refuses every call with this status and an API error body.
    Refuse(u16),
    /// Answers with valid SDP, then nobody is there: ICE never completes.
    Silent,
    /// Runs the call but never reads the data channel: its window closes.
    Deaf,
    /// Connects, then vanishes without a word (its driver stops, nothing is sent).
    Vanish,
    /// Runs the call through a UDP relay that [`Server::path_down`] switches off.
    Relayed,
}

/// What the server saw of one call.
#[derive(Debug, Clone, Default)]
pub struct Call {
    pub content_type: String,
    pub authorization: String,
    /// The `session` part of a multipart offer.
    pub session: Option<serde_json::Value>,
    /// Samples of the client's audio decoded so far, and how many of them were loud.
    pub audio_samples: usize,
    pub loud_samples: usize,
    /// Text messages received on `oai-events`.
    pub messages: Vec<String>,
}

/// Everything the server saw.
#[derive(Debug, Default)]
pub struct Record {
    pub calls: Vec<Call>,
    pub hangups: Vec<String>,
}

/// The running server.
pub struct Server {
    pub base: String,
    pub seen: Arc<Mutex<Record>>,
    /// The relay's switch ([`Mode::Relayed`]): while set, no packet passes.
    pub path_down: Arc<std::sync::atomic::AtomicBool>,
    pcs: Arc<Mutex<Vec<Arc<dyn PeerConnection>>>>,
}

impl Server {
    pub async fn start(mode: Mode) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/v1", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Record::default()));
        let pcs = Arc::new(Mutex::new(Vec::new()));
        let path_down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let state = (seen.clone(), pcs.clone(), path_down.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        async move {
                            Ok::<_, Infallible>(
                                serve(request, mode, &state.0, &state.1, &state.2).await,
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Server {
            base,
            seen,
            path_down,
            pcs,
        }
    }

    /// Waits until `check` holds of what the server saw.
    pub async fn until(&self, what: &str, check: impl Fn(&Record) -> bool) {
        let deadline = Instant::now() + super::WAIT;
        while !check(&self.seen.lock().unwrap()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn shutdown(&self) {
        let pcs: Vec<_> = self.pcs.lock().unwrap().drain(..).collect();
        for pc in pcs {
            let _ = pc.close().await;
        }
    }
}

fn respond(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .unwrap()
}

/// The `sdp` and `session` parts of a multipart body.
pub fn parts(content_type: &str, body: &str) -> (Option<String>, Option<String>) {
    let Some(boundary) = content_type.split("boundary=").nth(1) else {
        return (None, None);
    };
    let delimiter = format!("--{boundary}");
    let (mut sdp, mut session) = (None, None);
    for part in body.split(&delimiter) {
        let Some((headers, content)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let content = content.strip_suffix("\r\n").unwrap_or(content).to_owned();
        if headers.contains("name=\"sdp\"") {
            sdp = Some(content);
        } else if headers.contains("name=\"session\"") {
            session = Some(content);
        }
    }
    (sdp, session)
}

async fn serve(
    request: Request<Incoming>,
    mode: Mode,
    seen: &Arc<Mutex<Record>>,
    pcs: &Arc<Mutex<Vec<Arc<dyn PeerConnection>>>>,
    path_down: &Arc<std::sync::atomic::AtomicBool>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let content_type = header("content-type");
    let authorization = header("authorization");
    let body = request.into_body().collect().await.unwrap().to_bytes();
    if let Some(id) = path
        .strip_prefix("/v1/realtime/calls/")
        .and_then(|rest| rest.strip_suffix("/hangup"))
    {
        seen.lock().unwrap().hangups.push(id.to_owned());
        return respond(200, "application/json", "{}");
    }
    if path != "/v1/realtime/calls" {
        return respond(404, "application/json", "{}");
    }
    if let Mode::Refuse(status) = mode {
        return respond(
            status,
            "application/json",
            r#"{"error":{"type":"invalid_request_error","code":"invalid_offer","message":"The offer could not be parsed."}}"#,
        );
    }
    if mode == Mode::Unauthorized {
        return respond(
            401,
            "application/json",
            r#"{"error":{"type":"invalid_request_error","code":"invalid_api_key","message":"Incorrect API key provided."}}"#,
        );
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let (sdp, session) = if content_type.starts_with("application/sdp") {
        (Some(text), None)
    } else {
        parts(&content_type, &text)
    };
    let Some(sdp) = sdp else {
        return respond(400, "application/json", r#"{"error":{"message":"no sdp"}}"#);
    };
    let index = {
        let mut seen = seen.lock().unwrap();
        seen.calls.push(Call {
            content_type,
            authorization,
            session: session.and_then(|s| serde_json::from_str(&s).ok()),
            ..Call::default()
        });
        seen.calls.len() - 1
    };

    let tuning = Tuning {
        answer_passive: true,
        dedicated_reactor: mode == Mode::Vanish,
        ..Tuning::FAST
    };
    let mut answerer = peer(tuning).await;
    let pc = answerer.pc.clone();
    // Relayed: the server sees the relay where the client is, and the client the relay
    // where the server is.
    let relay = if mode == Mode::Relayed {
        let client = super::relay::loopback_candidate(&sdp).expect("a loopback candidate");
        let relay = super::relay::Relay::bind().await;
        Some((relay, client))
    } else {
        None
    };
    let sdp = match &relay {
        Some((relay, _)) => super::relay::rewrite_port(&sdp, relay.server_port()),
        None => sdp,
    };
    pc.set_remote_description(RTCSessionDescription::offer(sdp).unwrap())
        .await
        .unwrap();
    let (track, ssrc) = opus_track("server");
    let sender = if mode == Mode::Vanish {
        None
    } else {
        Some(
            pc.add_track(track.clone() as Arc<dyn TrackLocal>)
                .await
                .unwrap(),
        )
    };
    let answer = pc.create_answer(None).await.unwrap();
    pc.set_local_description(answer).await.unwrap();
    wait_for(&mut answerer.states, |seen| {
        matches!(seen, Seen::Gathered(_)).then_some(())
    })
    .await;
    let mut answer = pc.local_description().await.unwrap();
    if let Some((relay, client)) = relay {
        let server = super::relay::loopback_candidate(&answer.sdp).expect("a loopback candidate");
        answer.sdp = super::relay::rewrite_port(&answer.sdp, relay.client_port());
        relay.run(client, server, path_down.clone());
    }
    let id = format!("rtc_test{index}");

    if mode == Mode::Silent {
        let _ = pc.close().await;
    } else if mode == Mode::Vanish {
        let mut states = answerer.states;
        drop(answerer.found);
        tokio::spawn(async move {
            wait_for(&mut states, |seen| match seen {
                Seen::State(webrtc::peer_connection::RTCPeerConnectionState::Connected, _) => {
                    Some(())
                }
                _ => None,
            })
            .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            // The last handles: the driver stops where it is.
            drop(pc);
            drop(answerer.pc);
        });
    } else {
        let sender = sender.expect("a track");
        pcs.lock().unwrap().push(pc.clone());
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut found = answerer.found;
            while let Some(event) = found.recv().await {
                match event {
                    Seen::Channel(channel) if mode == Mode::Deaf => {
                        // Held, never polled: webrtc-rs keeps 256 messages, then stops
                        // draining SCTP, and the window closes.
                        tokio::spawn(async move {
                            tokio::time::sleep(super::WAIT * 3).await;
                            drop(channel);
                        });
                    }
                    Seen::Channel(channel) => {
                        let seen = seen.clone();
                        tokio::spawn(async move {
                            while let Some(event) = channel.poll().await {
                                match event {
                                    DataChannelEvent::OnMessage(message) => {
                                        let text =
                                            String::from_utf8_lossy(&message.data).into_owned();
                                        seen.lock().unwrap().calls[index]
                                            .messages
                                            .push(text.clone());
                                        if channel.send_text(&text).await.is_err() {
                                            break;
                                        }
                                    }
                                    DataChannelEvent::OnClose => break,
                                    _ => {}
                                }
                            }
                        });
                    }
                    Seen::Track(remote) => {
                        let seen = seen.clone();
                        tokio::spawn(async move {
                            let mut decoder = OpusDecoder::new(OPUS_RATE).unwrap();
                            let mut out = Vec::new();
                            while let Some(event) = remote.poll().await {
                                if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                                    out.clear();
                                    if decoder.decode(&packet.payload, &mut out).is_ok() {
                                        let loud =
                                            out.iter().filter(|s| s.unsigned_abs() > 1000).count();
                                        let mut seen = seen.lock().unwrap();
                                        seen.calls[index].audio_samples += out.len();
                                        seen.calls[index].loud_samples += loud;
                                    }
                                }
                            }
                        });
                    }
                    _ => {}
                }
            }
        });
        // One second of a tone on the server's track, once the call is up.
        let mut states = answerer.states;
        tokio::spawn(async move {
            let connected = tokio::time::timeout(super::WAIT, async {
                while let Some(seen) = states.recv().await {
                    if let Seen::State(
                        webrtc::peer_connection::RTCPeerConnectionState::Connected,
                        _,
                    ) = seen
                    {
                        return true;
                    }
                }
                false
            })
            .await;
            if connected != Ok(true) {
                return;
            }
            let payload_type =
                sender.get_parameters().await.unwrap().rtp_parameters.codecs[0].payload_type;
            let mut encoder = OpusEncoder::new(OPUS_RATE).unwrap();
            let tone: Vec<i16> = (0..OPUS_RATE as usize)
                .map(|i| ((i as f32 * 0.0576).sin() * 8000.0) as i16)
                .collect();
            let mut ticker = tokio::time::interval(Duration::from_millis(20));
            for packet in encoder.encode(&tone).unwrap() {
                ticker.tick().await;
                let sample = Sample {
                    data: Bytes::from(packet),
                    duration: Duration::from_millis(20),
                    ..Sample::new(Instant::now())
                };
                if track
                    .sample_writer(ssrc, payload_type)
                    .write_sample(&sample)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    }
    Response::builder()
        .status(201)
        .header("content-type", "application/sdp")
        .header("location", format!("/v1/realtime/calls/{id}"))
        .body(Full::new(Bytes::from(answer.sdp)))
        .unwrap()
}
