//! The facade over the WebRTC transport against the simulator's `POST /v1/realtime/calls`:
//! the same `Session` as over a WebSocket, events on the data channel, the answer's audio
//! from the server's track to a player, the user's audio on the outgoing track.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reelthyme::audio_io::Player;
use reelthyme::events::{ClientEvent, ServerEvent};
use reelthyme::transport::{AudioChunk, Connecting, Options, Transport};
use reelthyme::{Config, Endpoint, StreamOptions};
use reelthyme_sim::{Match, Recorder, Reply, SimConfig, Simulator};
use reelthyme_webrtc::WebRtc;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

type TrackSender = futures_channel::mpsc::Sender<AudioChunk>;

/// The WebRTC transport, keeping a handle on each connection's outgoing track: the test's
/// microphone (the facade's `capture_audio` needs a device).
#[derive(Debug)]
struct Tapped {
    inner: WebRtc,
    track: Arc<Mutex<Option<TrackSender>>>,
}

impl Transport for Tapped {
    fn connect<'a>(&'a self, endpoint: &'a Endpoint, options: &'a Options) -> Connecting<'a> {
        Box::pin(async move {
            let connection = self.inner.connect(endpoint, options).await?;
            if let Some(media) = &connection.media {
                *self.track.lock().unwrap() = Some(media.sender());
            }
            Ok(connection)
        })
    }
}

async fn simulator(config: SimConfig) -> (Simulator, Recorder, Endpoint) {
    let recorder = Recorder::new();
    let sim = Simulator::start(config.recorder(recorder.clone()))
        .await
        .unwrap();
    let endpoint = Endpoint::openai("gpt-realtime")
        .base_url(&format!("http://{}/v1", sim.addr()))
        .api_key("sk-test");
    (sim, recorder, endpoint)
}

fn assert_all_valid(recorder: &Recorder) {
    let frames = recorder.frames();
    assert!(!frames.is_empty());
    for frame in frames.iter().filter(|f| f.from_server) {
        let report = reelthyme::events::validate_server_value(&frame.json);
        assert!(report.is_strictly_valid(), "{}: {report:?}", frame.json);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_turn_over_webrtc() {
    let (_sim, recorder, endpoint) = simulator(SimConfig::default().speed(50.0)).await;
    let transport = WebRtc::new().session(json!({"output_modalities": ["text"]}));
    let session = tokio::time::timeout(
        WAIT,
        reelthyme::connect(Config::new(endpoint).transport(transport)),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(session.call_id().is_some_and(|id| id.starts_with("rtc_")));
    let (mut tx, mut events) = session.split();
    tx.send(ClientEvent::user_text("Hello over WebRTC"))
        .await
        .unwrap();
    tx.send(ClientEvent::response_create()).await.unwrap();
    let done = tokio::time::timeout(WAIT, async {
        loop {
            if let ServerEvent::ResponseDone(done) = events.next().await.unwrap().unwrap() {
                return done;
            }
        }
    })
    .await
    .expect("no response.done");
    let text = serde_json::to_value(&done.response).unwrap();
    assert_eq!(text["status"], "completed");
    assert_eq!(
        text["output"][0]["content"][0]["text"],
        "You said: Hello over WebRTC"
    );
    tx.close().await.unwrap();
    assert_all_valid(&recorder);
}

/// 24 kHz PCM: silence, a voiced signal from `start` to `end` seconds, silence to `total`.
fn speech(start: f64, end: f64, total: f64) -> Vec<i16> {
    let n = (total * 24_000.0) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / 24_000.0;
            if t >= start && t < end {
                ((t * 2.0 * std::f64::consts::PI * 180.0).sin() * 9_000.0
                    + (t * 2.0 * std::f64::consts::PI * 410.0).sin() * 3_000.0)
                    as i16
            } else {
                0
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoken_turn_on_the_tracks_reaches_the_player() {
    let (_sim, recorder, endpoint) = simulator(
        SimConfig::default()
            .speed(1.0)
            .rule(Match::Any, Reply::Text("Hello, I hear you.".into())),
    )
    .await;
    let track = Arc::new(Mutex::new(None));
    let transport = Tapped {
        inner: WebRtc::new().session(json!({"output_modalities": ["audio"],
            "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 300}}}})),
        track: track.clone(),
    };
    let session = tokio::time::timeout(
        WAIT,
        reelthyme::connect(Config::new(endpoint).transport(transport)),
    )
    .await
    .unwrap()
    .unwrap();
    let tx = session.sender();
    let (player, mut clock) = Player::with_clock(24_000, 1).unwrap();
    let (mut events, control) = reelthyme::stream_to(session, player, StreamOptions::default());
    // The "device": pulls 10 ms periods at about real time, keeping what it played.
    let stop = Arc::new(AtomicBool::new(false));
    let device = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut played = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (frames, _) = clock.pull(240);
                played.extend(frames);
                std::thread::sleep(Duration::from_millis(10));
            }
            played
        })
    };
    // The user speaks on the outgoing track.
    let mut mic = track.lock().unwrap().clone().expect("the call has a track");
    let speaker = tokio::spawn(async move {
        for chunk in speech(0.2, 1.0, 2.0).chunks(480) {
            if mic
                .send(AudioChunk::new(24_000, chunk.to_vec()))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let event = events.next().await.unwrap().unwrap();
            seen.push(event.type_name().to_owned());
            if matches!(event, ServerEvent::OutputAudioBufferStopped(_)) {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the turn did not finish: {seen:?}"));
    for kind in [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.committed",
        "output_audio_buffer.started",
        "response.done",
    ] {
        assert!(seen.iter().any(|t| t == kind), "no {kind} in {seen:?}");
    }
    // Let the player finish what the track brought.
    tokio::time::timeout(WAIT, async {
        while control.backlog_ms() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let played = device.join().unwrap();
    let loud = played.iter().filter(|s| s.abs() > 0.02).count();
    assert!(
        loud > 24_000 / 4,
        "the answer was audible on the player ({loud} loud frames)"
    );
    speaker.await.unwrap();
    drop(tx);
    assert_all_valid(&recorder);
}

/// The next event of `kind` on `events`, bounded.
async fn next_of<S>(events: &mut S, kind: &str) -> ServerEvent
where
    S: futures_util::Stream<Item = reelthyme::Result<ServerEvent>> + Unpin,
{
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.next().await.expect("the session ended").unwrap();
            if event.type_name() == kind {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sideband_session_sees_the_call_and_drives_it() {
    let (_sim, recorder, endpoint) = simulator(SimConfig::default().speed(50.0)).await;
    let transport = WebRtc::new()
        .audio(false)
        .session(json!({"output_modalities": ["text"], "instructions": "From the client."}));
    let call = tokio::time::timeout(
        WAIT,
        reelthyme::connect(Config::new(endpoint.clone()).transport(transport)),
    )
    .await
    .unwrap()
    .unwrap();
    let call_id = call.call_id().expect("the call has an id");
    let (mut call_tx, mut call_events) = call.split();

    // The server attaches a WebSocket session by the call's id: the same session.
    let sideband = tokio::time::timeout(
        WAIT,
        reelthyme::connect(Config::new(endpoint.clone().call_id(&call_id))),
    )
    .await
    .unwrap()
    .unwrap();
    let (mut side_tx, mut side_events) = sideband.split();

    // It sees what the call does.
    call_tx
        .send(ClientEvent::user_text("Hello from the call"))
        .await
        .unwrap();
    call_tx.send(ClientEvent::response_create()).await.unwrap();
    let ServerEvent::ResponseDone(done) = next_of(&mut side_events, "response.done").await else {
        unreachable!()
    };
    let response = serde_json::to_value(&done.response).unwrap();
    assert_eq!(
        response["output"][0]["content"][0]["text"],
        "You said: Hello from the call"
    );
    next_of(&mut call_events, "response.done").await;

    // It updates the call's session: the WebRTC client sees the new instructions.
    let mut update = reelthyme::events::SessionConfig::realtime();
    update.instructions = Some("Supervised by the server.".into());
    side_tx
        .send(ClientEvent::session_update(update))
        .await
        .unwrap();
    let ServerEvent::SessionUpdated(updated) = next_of(&mut call_events, "session.updated").await
    else {
        unreachable!()
    };
    assert_eq!(
        updated.session.instructions.as_deref(),
        Some("Supervised by the server.")
    );
    // Its response.create runs on the call: the WebRTC client gets the response.
    side_tx.send(ClientEvent::response_create()).await.unwrap();
    next_of(&mut call_events, "response.done").await;
    next_of(&mut side_events, "response.done").await;

    // Closing the sideband leaves the call running; hanging up the call ends the sideband.
    side_tx.close().await.unwrap();
    call_tx.send(ClientEvent::response_create()).await.unwrap();
    next_of(&mut call_events, "response.done").await;
    let sideband = tokio::time::timeout(
        WAIT,
        reelthyme::connect(Config::new(endpoint.clone().call_id(&call_id))),
    )
    .await
    .unwrap()
    .unwrap();
    let (_side_tx, side_events) = sideband.split();
    call_tx.close().await.unwrap();
    let rest = tokio::time::timeout(WAIT, side_events.collect::<Vec<_>>())
        .await
        .expect("the sideband outlived its call");
    assert!(rest.iter().all(Result::is_ok), "{rest:?}");
    assert_all_valid(&recorder);
}

/// With the facade's `webrtc` feature the transport needs no crate of its own.
#[cfg(feature = "webrtc")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_facade_reexports_the_transport() {
    let (_sim, _recorder, endpoint) = simulator(SimConfig::default().speed(50.0)).await;
    let transport = reelthyme::webrtc::WebRtc::new()
        .audio(false)
        .session(json!({"output_modalities": ["text"]}));
    let session = tokio::time::timeout(
        WAIT,
        reelthyme::connect(Config::new(endpoint).transport(transport)),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(session.call_id().is_some_and(|id| id.starts_with("rtc_")));
    let (mut tx, mut events) = session.split();
    tx.send(ClientEvent::user_text("Hi")).await.unwrap();
    tx.send(ClientEvent::response_create()).await.unwrap();
    next_of(&mut events, "response.done").await;
    tx.close().await.unwrap();
}
