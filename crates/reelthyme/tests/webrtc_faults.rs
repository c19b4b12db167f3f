//! The fault matrix's WebRTC rows (`faults.rs` has the WebSocket's): each way a call can
//! fail, through the facade against the simulator's `POST /v1/realtime/calls`, with the
//! typed error the client must show and its bound. Offers and answers are spoiled on their
//! way by a loopback TCP relay (`Spoil`) where the row needs a broken peer.
//!
//! How a call the server ends maps to the transport's `Error` (a data channel has no close
//! codes) is documented in `reelthyme_webrtc`'s crate docs: the server closing the channel
//! is always an error — typed by the `error` event before it, else `Closed` with code
//! 1000, retryable; a lost peer connection is `Closed` 1006.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, ServerEvent};
use reelthyme::transport::Transport;
use reelthyme::{Config, Endpoint, ErrorKind, Options};
use reelthyme_sim::{FaultAction, Faults, Recorder, SimConfig, Simulator};
use reelthyme_webrtc::WebRtc;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(15);

async fn simulator(config: SimConfig) -> (Simulator, Recorder) {
    let recorder = Recorder::new();
    let sim = Simulator::start(config.api_key("sk-test").recorder(recorder.clone()))
        .await
        .unwrap();
    (sim, recorder)
}

fn endpoint(base: &str, key: &str) -> Endpoint {
    Endpoint::openai("gpt-realtime")
        .base_url(&format!("http://{base}/v1"))
        .api_key(key)
}

/// How the relay spoils what passes: the same number of bytes, so `Content-Length` holds.
#[derive(Clone, Copy)]
enum Spoil {
    /// The offer's SDP no longer starts with `v=0`: a malformed offer.
    Offer,
    /// The answer's candidates point at an address nobody listens on and its ICE password
    /// is wrong: the server's peer is silent.
    Answer,
}

/// `from` replaced by `to` (of the same length) everywhere in `bytes`.
fn replace(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    let mut at = 0;
    while let Some(found) = bytes[at..].windows(from.len()).position(|w| w == from) {
        bytes[at + found..at + found + from.len()].copy_from_slice(to);
        at += found + from.len();
    }
}

fn spoil(spoil: Spoil, to_server: bool, bytes: &mut [u8]) {
    match (spoil, to_server) {
        (Spoil::Offer, true) => replace(bytes, b"v=0\r\no=", b"v=9\r\no="),
        (Spoil::Answer, false) => {
            replace(bytes, b"127.0.0.1", b"127.0.0.2");
            // One character of the password changed, still a valid one.
            let key = b"a=ice-pwd:";
            let mut at = 0;
            while let Some(found) = bytes[at..].windows(key.len()).position(|w| w == key) {
                let i = at + found + key.len();
                if i < bytes.len() {
                    bytes[i] = if bytes[i] == b'x' { b'y' } else { b'x' };
                }
                at = i;
            }
        }
        _ => {}
    }
}

/// A TCP relay to `upstream` on loopback that spoils what passes; its address.
async fn relay(upstream: std::net::SocketAddr, how: Spoil) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream).await else {
                continue;
            };
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let mut buffer = vec![0_u8; 64 << 10];
                while let Ok(n @ 1..) = client_read.read(&mut buffer).await {
                    spoil(how, true, &mut buffer[..n]);
                    if server_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let mut buffer = vec![0_u8; 64 << 10];
                while let Ok(n @ 1..) = server_read.read(&mut buffer).await {
                    spoil(how, false, &mut buffer[..n]);
                    if client_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

async fn connect(config: Config) -> reelthyme::Result<reelthyme::Session> {
    tokio::time::timeout(WAIT, reelthyme::connect(config))
        .await
        .expect("connect is bounded")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_key_is_a_typed_401() {
    let (sim, _) = simulator(SimConfig::default()).await;
    let config =
        Config::new(endpoint(&sim.addr().to_string(), "sk-wrong")).transport(WebRtc::new());
    let error = connect(config).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Auth, "{error}");
    assert_eq!(error.http_status(), Some(401), "{error}");
    assert_eq!(error.code(), Some("invalid_api_key"), "{error}");
    assert!(!error.is_retryable(), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_offer_is_a_typed_400() {
    let (sim, _) = simulator(SimConfig::default()).await;
    let base = relay(sim.addr(), Spoil::Offer).await;
    let config = Config::new(endpoint(&base.to_string(), "sk-test")).transport(WebRtc::new());
    let error = connect(config).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidRequest, "{error}");
    assert_eq!(error.http_status(), Some(400), "{error}");
    assert_eq!(error.code(), Some("invalid_offer"), "{error}");
    assert!(!error.is_retryable(), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_fails_within_the_setup_bound() {
    let (sim, _) = simulator(SimConfig::default()).await;
    let base = relay(sim.addr(), Spoil::Answer).await;
    let bound = Duration::from_millis(1_000);
    let config = Config::new(endpoint(&base.to_string(), "sk-test"))
        .transport(WebRtc::new().setup_timeout(bound));
    let started = Instant::now();
    let error = connect(config).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert!(error.is_retryable(), "{error}");
    assert!(
        error.to_string().contains("connecting (ICE, DTLS)"),
        "says where it stopped: {error}"
    );
    // The bound, plus the peer connection's close and the hangup of the answered call
    // (seconds on a loaded machine): well under the 10 s the connect timeout would give
    // without the setup bound, which is what this checks — not how fast teardown is.
    assert!(
        took >= bound && took < bound + Duration::from_secs(7),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_dropped_mid_turn_ends_with_a_typed_error_and_later_sends_are_refused() {
    let faults = Faults {
        on_client: Some(("response.create".into(), 1, FaultAction::Kill)),
        ..Faults::default()
    };
    let (sim, _) = simulator(SimConfig::default().faults(faults)).await;
    let config = Config::new(endpoint(&sim.addr().to_string(), "sk-test"))
        .transport(WebRtc::new().audio(false));
    let session = connect(config).await.unwrap();
    let (mut tx, mut events) = session.split();
    tx.send(ClientEvent::user_text("Hello")).await.unwrap();
    tx.send(ClientEvent::response_create()).await.unwrap();
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match events.next().await {
                Some(Ok(_)) => {}
                Some(Err(error)) => return Some(error),
                None => return None,
            }
        }
    })
    .await
    .expect("the dropped call ended the session in time");
    let error = end.expect("the session ended with a verdict, not silently");
    assert_eq!(error.kind(), ErrorKind::Closed, "{error}");
    assert!(error.is_fatal() && error.is_retryable(), "{error}");
    // A send after the end is refused with the same verdict, never silently dropped.
    let refused = tx
        .send(ClientEvent::user_text("Are you there?"))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Closed, "{refused}");
    assert_eq!(tx.flush().await.unwrap_err().kind(), ErrorKind::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_sent_the_moment_the_call_is_up_are_all_delivered_in_order() {
    let (sim, recorder) = simulator(SimConfig::default()).await;
    // The connection is handed out only once `oai-events` is open, so nothing can be sent
    // before; what is sent at once, before reading anything, must all arrive, in order.
    let endpoint = endpoint(&sim.addr().to_string(), "sk-test");
    let mut connection = tokio::time::timeout(
        WAIT,
        WebRtc::new()
            .audio(false)
            .connect(&endpoint, &Options::default()),
    )
    .await
    .unwrap()
    .unwrap();
    const N: usize = 40;
    for i in 0..N {
        let create = json!({"type": "conversation.item.create", "item": {"type": "message",
            "role": "user", "content": [{"type": "input_text", "text": format!("line {i}")}]}});
        connection.sender.send(create.to_string()).await.unwrap();
    }
    let mut added = Vec::new();
    tokio::time::timeout(WAIT, async {
        while added.len() < N {
            let frame = connection.receiver.next().await.unwrap().unwrap();
            let event: Value = serde_json::from_str(frame.text()).unwrap();
            if event["type"] == "conversation.item.added" {
                added.push(
                    event["item"]["content"][0]["text"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
            }
        }
    })
    .await
    .expect("every item was added");
    let expected: Vec<String> = (0..N).map(|i| format!("line {i}")).collect();
    assert_eq!(added, expected);
    connection.sender.close().await.unwrap();
    let read = recorder
        .frames()
        .iter()
        .filter(|f| !f.from_server && f.json["type"] == "conversation.item.create")
        .count();
    assert_eq!(read, N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_call_ends_with_session_expired() {
    let (sim, _) =
        simulator(SimConfig::default().session_duration(Duration::from_millis(600))).await;
    let config = Config::new(endpoint(&sim.addr().to_string(), "sk-test"))
        .transport(WebRtc::new().audio(false));
    let session = connect(config).await.unwrap();
    let (_tx, mut events) = session.split();
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match events.next().await {
                Some(Ok(ServerEvent::Error(_)) | Ok(_)) => {}
                Some(Err(error)) => return Some(error),
                None => return None,
            }
        }
    })
    .await
    .expect("the expired call ended the session in time")
    .expect("with a verdict");
    assert_eq!(end.kind(), ErrorKind::SessionExpired, "{end}");
    assert_eq!(end.code(), Some("session_expired"), "{end}");
}
