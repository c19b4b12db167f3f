//! Echo control over the WebRTC transport: the answer arrives on the server's track and is
//! played by the same clocked speaker, whose echo reference the capture uses; the
//! microphone goes out on the outgoing track. Real time (the simulator's track is paced),
//! two answers each, the assistant speaking recorded speech (Opus in between): with echo off
//! the assistant interrupts itself, with half duplex it does not, with AEC never — the
//! reference works on the track path as it does with deltas.

#![cfg(feature = "aec")]

use std::time::Duration;

use futures_util::StreamExt;
use reelthyme::audio_io::Player;
use reelthyme::events::{ClientEvent, ServerEvent};
use reelthyme::{CaptureOptions, Config, Echo, Endpoint, StreamOptions};
use reelthyme_sim::{Match, Reply, SimConfig, Simulator};
use reelthyme_webrtc::WebRtc;
use serde_json::json;

#[path = "support/echo_room.rs"]
mod echo_room;
use echo_room::{EchoRoom, Progress, RATE, assistant_voice};

const ANSWERS: usize = 2;

/// Two answers over WebRTC into the room with `echo`: the speech starts nobody spoke for,
/// answer by answer.
async fn self_interruptions(echo: Echo) -> Vec<usize> {
    let (voice, voice_rate) = assistant_voice();
    let sim = Simulator::start(
        SimConfig::default()
            .speed(1.0)
            .rule(
                Match::Any,
                Reply::Text("Here is a short answer for you.".into()),
            )
            .voice_samples(voice, voice_rate),
    )
    .await
    .unwrap();
    let endpoint = Endpoint::openai("gpt-realtime")
        .base_url(&format!("http://{}/v1", sim.addr()))
        .api_key("sk-test");
    let transport = WebRtc::new().session(json!({"output_modalities": ["audio"],
        "audio": {"input": {"turn_detection": {"type": "server_vad", "create_response": false,
            "interrupt_response": true}}}}));
    let session = tokio::time::timeout(
        Duration::from_secs(20),
        reelthyme::connect(Config::new(endpoint).transport(transport)),
    )
    .await
    .unwrap()
    .unwrap();
    let mut tx = session.sender();
    let (player, speaker) = Player::with_clock(RATE, 1).unwrap();
    let (mut events, control) = reelthyme::stream_to(session, player, StreamOptions::default());
    let progress = Progress::default();
    let options = CaptureOptions::default().echo(echo).tap(progress.tap());
    let (capture, mic) = reelthyme::capture_audio_with_clock(&tx, options, RATE, 1).unwrap();
    assert_eq!(capture.echo(), echo);
    let room = EchoRoom::start(speaker, mic, Duration::from_millis(10), &progress);
    let mut counts = vec![0; ANSWERS];
    for count in &mut counts {
        tx.send(ClientEvent::user_text("Give me an answer"))
            .await
            .unwrap();
        tx.send(ClientEvent::response_create()).await.unwrap();
        let mut stopped = false;
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if stopped && control.backlog_ms() == 0 {
                    return;
                }
                let next = tokio::time::timeout(Duration::from_millis(5), events.next()).await;
                let Ok(Some(event)) = next else { continue };
                match event.unwrap() {
                    ServerEvent::InputAudioBufferSpeechStarted(_) => *count += 1,
                    ServerEvent::OutputAudioBufferStopped(_)
                    | ServerEvent::OutputAudioBufferCleared(_) => stopped = true,
                    _ => {}
                }
            }
        })
        .await
        .expect("the answer played");
        room.run_for(400).await;
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(20), events.next()).await
        {
            if let ServerEvent::InputAudioBufferSpeechStarted(_) = event.unwrap() {
                *count += 1;
            }
        }
    }
    drop(room);
    counts
}

/// Echo off interrupts itself, half duplex never, AEC with the same recorded voice never —
/// the first answer included: while the canceller converges (its first 5 s of far-end
/// speech) the capture's half-duplex gate backs it. Without that, the first answer's output
/// rose from about -60 to -25 dBFS some 1.6 s in and the VAD took it for speech
/// (`[1, 0]` by answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_webrtc_echo_off_interrupts_itself_and_half_duplex_and_converged_aec_do_not() {
    let off: usize = self_interruptions(Echo::Off).await.iter().sum();
    let gated: usize = self_interruptions(Echo::HalfDuplex).await.iter().sum();
    let aec = self_interruptions(Echo::Aec).await;
    eprintln!(
        "webrtc: {off} self-interruptions with echo off, {gated} with half duplex, {aec:?} with AEC (by answer)"
    );
    assert!(off > 0);
    assert_eq!(gated, 0);
    assert_eq!(aec, [0, 0]);
}
