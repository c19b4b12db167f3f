//! The facade over a transport implemented in another crate: the simulator's in-process
//! connection (no socket, no port), built on the public transport seam.

use std::time::Duration;

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, ResponseParams, ServerEvent};
use reelthyme::{Config, Endpoint, ErrorKind};
use reelthyme_sim::{SimConfig, Simulator};

const WAIT: Duration = Duration::from_secs(30);

fn endpoint(sim: &Simulator, key: &str) -> Endpoint {
    Endpoint::openai("gpt-realtime")
        .base_url(&format!("{}/v1", sim.url()))
        .api_key(key)
}

#[tokio::test]
async fn a_text_turn_in_process() {
    let sim = Simulator::start(SimConfig::default().speed(50.0))
        .await
        .unwrap();
    let config = Config::new(endpoint(&sim, "sk-test"))
        .transport(sim.in_process())
        .outgoing(reelthyme::validate);
    let session = reelthyme::connect(config).await.unwrap();
    assert!(session.id().unwrap().starts_with("sess_"));
    let (mut tx, mut events) = session.split();
    tx.send(ClientEvent::user_text(
        "What is the weather like in Paris today?",
    ))
    .await
    .unwrap();
    tx.send(ClientEvent::response_create_with(ResponseParams::text()))
        .await
        .unwrap();
    let mut text = String::new();
    tokio::time::timeout(WAIT, async {
        while let Some(event) = events.next().await {
            match event.unwrap() {
                ServerEvent::ResponseOutputTextDelta(delta) => text.push_str(&delta.delta),
                ServerEvent::ResponseDone(_) => break,
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    assert!(!text.is_empty());
    // The client's close ends the in-process session as it would a socket's.
    tx.close().await.unwrap();
    let rest: Vec<_> = tokio::time::timeout(WAIT, events.collect::<Vec<_>>())
        .await
        .expect("the stream did not end after the close");
    assert!(rest.iter().all(Result::is_ok), "{rest:?}");
}

#[tokio::test]
async fn a_refused_key_in_process_is_the_same_typed_error_as_over_a_socket() {
    let sim = Simulator::start(SimConfig::default().api_key("sk-right"))
        .await
        .unwrap();
    let in_process =
        reelthyme::connect(Config::new(endpoint(&sim, "sk-wrong")).transport(sim.in_process()))
            .await
            .unwrap_err();
    let socket = reelthyme::connect(Config::new(endpoint(&sim, "sk-wrong")))
        .await
        .unwrap_err();
    assert_eq!(in_process.kind(), ErrorKind::Auth);
    assert_eq!(
        (
            in_process.kind(),
            in_process.close_code(),
            in_process.code()
        ),
        (socket.kind(), socket.close_code(), socket.code())
    );
}

/// Half a second of silence, then voice-like energy, then silence again: enough for the
/// simulator's VAD to hear a turn.
fn speech() -> Vec<i16> {
    let mut out = vec![0_i16; 12_000];
    out.extend((0..24_000).map(|n| {
        ((f64::from(n) / 24_000.0 * 2.0 * std::f64::consts::PI * 190.0).sin() * 9_000.0) as i16
    }));
    out.extend(vec![0_i16; 24_000]);
    out
}

#[cfg(feature = "audio")]
#[tokio::test]
async fn an_audio_turn_in_process_plays_the_answer() {
    use reelthyme::StreamOptions;
    use reelthyme::audio_io::Player;

    let sim = Simulator::start(SimConfig::default().speed(50.0))
        .await
        .unwrap();
    let config = Config::new(endpoint(&sim, "sk-test")).transport(sim.in_process());
    let session = reelthyme::connect(config).await.unwrap();
    let mut tx = session.sender();
    let (player, mut clock) = Player::with_clock(24_000, 1).unwrap();
    let (mut events, control) = reelthyme::stream_to(session, player, StreamOptions::default());
    for chunk in speech().chunks(960) {
        tx.send(ClientEvent::audio_append(chunk)).await.unwrap();
    }
    let mut kinds = Vec::new();
    let item = tokio::time::timeout(WAIT, async {
        loop {
            let event = events.next().await.unwrap().unwrap();
            kinds.push(event.type_name().to_owned());
            if let ServerEvent::ResponseOutputAudioDone(done) = event {
                return done.item_id;
            }
        }
    })
    .await
    .unwrap();
    // The server heard the speech, answered with audio; the deltas went to the player,
    // not to the application.
    assert!(
        kinds
            .iter()
            .any(|k| k == "input_audio_buffer.speech_started"),
        "{kinds:?}"
    );
    assert!(!kinds.iter().any(|k| k == "response.output_audio.delta"));
    let queued = control.backlog_ms();
    assert!(
        queued > 100,
        "only {queued} ms of the answer reached the player"
    );
    // What the device plays is the answer: not silence.
    let mut loudest = 0.0_f32;
    for _ in 0..(queued / 100).min(50) {
        let (samples, _) = clock.pull(2_400);
        loudest = samples.iter().fold(loudest, |max, s| max.max(s.abs()));
    }
    assert!(loudest > 0.01, "the device played silence (peak {loudest})");
    assert!(control.played_ms(&item).unwrap_or(0) > 0);
    // Drained only once the device has played the rest.
    let drained = control.drained();
    tokio::pin!(drained);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut drained)
            .await
            .is_err(),
        "drained with {} ms still queued",
        control.backlog_ms()
    );
    while control.backlog_ms() > 0 {
        clock.pull(2_400);
    }
    tokio::time::timeout(WAIT, drained)
        .await
        .expect("not drained after the device played everything");
}
