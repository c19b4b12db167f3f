//! A voice conversation over WebRTC: the microphone goes out as an Opus track, the
//! answer comes back on the server's track to the speaker, events on the data channel —
//! the same `Session`, `stream` and `capture_audio` as over a WebSocket; only the
//! transport differs. (The facade's `webrtc` feature.)
//! `cargo run --example webrtc_voice` (sound devices; headless: README.md's ALSA file devices)
//!
//! OpenAI when `OPENAI_API_KEY` is set, otherwise a local simulator
//! (`endpoint_or_simulator()` below: copy it, or keep only its first branch).

#![forbid(unsafe_code)]

use std::time::Duration;

use futures_util::StreamExt;
use reelthyme::events::ServerEvent;
use reelthyme::webrtc::WebRtc;
use reelthyme::{CaptureOptions, Config, Endpoint};
use reelthyme_sim::{SimConfig, Simulator};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The simulator does not recognise speech: it is told what the user will say.
    let sim = SimConfig::default().transcripts(["What is the weather like in Paris today?"]);
    let (endpoint, simulator) = endpoint_or_simulator(sim).await?;
    let config = Config::new(endpoint)
        .instructions("You are a helpful assistant. Keep your answers short.")
        .transcription("gpt-4o-mini-transcribe")
        .transport(WebRtc::new());
    let session = reelthyme::connect(config).await?;
    println!("on call {}", session.call_id().unwrap_or_default());
    let tx = session.sender();
    // The server's track to the speaker; the microphone onto the outgoing track.
    let (mut events, audio) = reelthyme::stream(session)?;
    let capture = reelthyme::capture_audio(&tx, CaptureOptions::default())?;
    while let Some(event) = events.next().await {
        match event? {
            ServerEvent::InputAudioTranscriptionCompleted(t) => println!("you: {}", t.transcript),
            ServerEvent::ResponseOutputAudioTranscriptDone(t) => {
                println!("assistant: {}", t.transcript);
            }
            // Over WebRTC the server says when its track has played the answer out.
            ServerEvent::OutputAudioBufferStopped(_) => {
                println!("(the answer played out)");
                // With the simulator, one answer ends the demo; with OpenAI, talk until Ctrl-C.
                if simulator.is_some() {
                    break;
                }
            }
            _ => {}
        }
    }
    capture.stop().await?;
    let _ = tokio::time::timeout(Duration::from_secs(30), audio.drained()).await;
    Ok(())
}

/// OpenAI with `OPENAI_API_KEY` (and `OPENAI_BASE_URL`, `REELTHYME_MODEL`); otherwise a
/// simulator on loopback, returned so that it lives as long as the caller needs it.
async fn endpoint_or_simulator(sim: SimConfig) -> anyhow::Result<(Endpoint, Option<Simulator>)> {
    if let Ok(endpoint) = Endpoint::from_env() {
        eprintln!("using {}", endpoint.url());
        return Ok((endpoint, None));
    }
    let simulator = Simulator::start(sim).await?;
    eprintln!(
        "no OPENAI_API_KEY: using the built-in simulator at {}",
        simulator.url()
    );
    // The simulator takes any key unless configured with one; the call's signalling (a
    // REST request) must send one.
    let endpoint = Endpoint::openai("gpt-realtime")
        .base_url(&format!("{}/v1", simulator.url()))
        .api_key("sk-local-simulator");
    Ok((endpoint, Some(simulator)))
}
