//! A text-only conversation: two turns, text streamed as it arrives.
//! `cargo run --example text_chat`
//!
//! OpenAI when `OPENAI_API_KEY` is set, otherwise a local simulator
//! (`endpoint_or_simulator()` below: copy it, or keep only its first branch).

#![forbid(unsafe_code)]

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, ResponseParams, ServerEvent};
use reelthyme::{Config, Endpoint};
use reelthyme_sim::{SimConfig, Simulator};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (endpoint, _simulator) = endpoint_or_simulator(SimConfig::default()).await?;
    let session = reelthyme::connect(Config::new(endpoint).outgoing(reelthyme::validate)).await?;
    let (mut tx, mut events) = session.split();
    for question in ["Hello! Who are you?", "What can you do?"] {
        println!("> {question}");
        tx.send(ClientEvent::user_text(question)).await?;
        tx.send(ClientEvent::response_create_with(ResponseParams::text()))
            .await?;
        while let Some(event) = events.next().await {
            match event? {
                ServerEvent::ResponseOutputTextDelta(delta) => print!("{}", delta.delta),
                ServerEvent::ResponseDone(_) => {
                    println!();
                    break;
                }
                ServerEvent::Error(error) => eprintln!("error: {}", error.error.message),
                _ => {}
            }
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
