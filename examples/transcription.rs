//! A transcription-only session: audio in, transcripts out (no responses).
//! `cargo run --example transcription` — appends a synthetic spoken-like signal.
//!
//! OpenAI when `OPENAI_API_KEY` is set, otherwise a local simulator
//! (`endpoint_or_simulator()` below: copy it, or keep only its first branch).

#![forbid(unsafe_code)]

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, ServerEvent};
use reelthyme::{Config, Endpoint};
use reelthyme_sim::{SimConfig, Simulator};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sim = SimConfig::default().transcripts(["testing one two three"]);
    let (endpoint, _simulator) = endpoint_or_simulator(sim).await?;
    let session = reelthyme::connect(Config::new(endpoint.transcription())).await?;
    let (mut tx, mut events) = session.split();
    // 0.3 s of silence, 1 s of a voiced tone, 1 s of silence, in 40 ms appends.
    let signal: Vec<i16> = (0..55_200)
        .map(|n| {
            if (7_200..31_200).contains(&n) {
                ((n as f64 * 0.05).sin() * 9_000.0) as i16
            } else {
                0
            }
        })
        .collect();
    for chunk in signal.chunks(960) {
        tx.send(ClientEvent::audio_append(chunk)).await?;
    }
    while let Some(event) = events.next().await {
        match event? {
            ServerEvent::InputAudioTranscriptionDelta(delta) => {
                print!("{}", delta.delta.unwrap_or_default())
            }
            ServerEvent::InputAudioTranscriptionCompleted(done) => {
                println!("\ntranscript: {}", done.transcript);
                break;
            }
            _ => {}
        }
    }
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
    // The simulator takes any key unless configured with one; REST calls need one sent.
    let endpoint = Endpoint::openai("gpt-realtime")
        .base_url(&simulator.url())
        .api_key("sk-local-simulator");
    Ok((endpoint, Some(simulator)))
}
