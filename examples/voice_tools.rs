//! A voice conversation with two typed tools: a quick one (`get_weather`) and a slow one
//! (`book_table`, 2 s) that runs in the background — the conversation, playback and
//! barge-in go on meanwhile.
//! `cargo run --example voice_tools` (sound devices; headless: README.md's ALSA file devices)
//!
//! OpenAI when `OPENAI_API_KEY` is set, otherwise a local simulator
//! (`endpoint_or_simulator()` below: copy it, or keep only its first branch).

#![forbid(unsafe_code)]

use std::time::Duration;

use futures_util::StreamExt;
use reelthyme::events::ServerEvent;
use reelthyme::{CaptureOptions, Config, Endpoint, Tool};
use reelthyme_sim::{SimConfig, Simulator};
use schemars::JsonSchema;
use serde::Deserialize;

/// The current weather in a city.
#[derive(Deserialize, JsonSchema)]
struct GetWeather {
    city: String,
}

/// Books a table at a restaurant tonight.
#[derive(Deserialize, JsonSchema)]
struct BookTable {
    restaurant: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The simulator does not recognise speech: it is told what the user will say.
    let sim = SimConfig::default().transcripts(["Please book a table for two at Luigi's."]);
    let (endpoint, simulator) = endpoint_or_simulator(sim).await?;
    let config = Config::new(endpoint)
        .instructions("You are a helpful assistant. Keep your answers short.")
        .voice("marin")
        .transcription("gpt-4o-mini-transcribe")
        .tool(Tool::new(|GetWeather { city }| async move {
            Ok(format!("{city}: 18 °C, clear"))
        }))
        .tool(
            Tool::new(|BookTable { restaurant }| async move {
                println!("(booking a table at {restaurant}…)");
                tokio::time::sleep(Duration::from_secs(2)).await; // a slow booking service
                Ok(format!("booked a table at {restaurant} for 8 pm"))
            })
            .cancel_on_barge_in(false), // a booking must finish even if the user speaks
        );
    let session = reelthyme::connect(config).await?;
    let tx = session.sender();
    let (mut events, audio) = reelthyme::stream(session)?;
    let capture = reelthyme::capture_audio(&tx, CaptureOptions::default())?;
    while let Some(event) = events.next().await {
        match event? {
            ServerEvent::InputAudioTranscriptionCompleted(t) => println!("you: {}", t.transcript),
            ServerEvent::ResponseOutputAudioTranscriptDone(t) => {
                println!("assistant: {}", t.transcript);
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
    let endpoint = Endpoint::openai("gpt-realtime")
        .base_url(&simulator.url())
        .api_key("sk-local-simulator");
    Ok((endpoint, Some(simulator)))
}
