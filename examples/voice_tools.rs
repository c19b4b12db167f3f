//! A voice conversation with two typed tools: a quick one (`get_weather`) and a slow one
//! (`book_table`, 2 s) that runs in the background — the conversation, playback and
//! barge-in go on meanwhile.
//! `cargo run --example voice_tools` (sound devices; headless: README.md's ALSA file devices)
//!
//! OpenAI when `OPENAI_API_KEY` is set, otherwise a local simulator
//! (`reelthyme_sim::endpoint_or_simulator`; with a key, `Endpoint::from_env()` alone).

#![forbid(unsafe_code)]

use std::time::Duration;

use reelthyme::events::Role;
use reelthyme::{Config, Tool, Voice};
use reelthyme_sim::SimConfig;
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
    let (endpoint, simulator) = reelthyme_sim::endpoint_or_simulator(sim).await?;
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
    // Connects, plays the answers (barge-in included) and captures the microphone.
    let mut voice = Voice::start(config).await?;
    while let Some(line) = voice.next_line().await? {
        println!("{line}"); // "you: …" / "assistant: …"
        // With the simulator, one answer ends the demo; with OpenAI, talk until Ctrl-C.
        if simulator.is_some() && line.role == Role::Assistant {
            break;
        }
    }
    voice.finish().await?; // the microphone stops, the answer plays out
    Ok(())
}
