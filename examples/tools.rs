//! Function tools: the model asks for `get_weather`, the tool runs and its result goes back.
//! `cargo run --example tools`
//!
//! OpenAI when `OPENAI_API_KEY` is set (and `OPENAI_BASE_URL` for another server),
//! otherwise a local simulator (`endpoint_or_simulator()` below: copy it, or keep only its
//! first branch).

#![forbid(unsafe_code)]

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, Item, ResponseParams, ServerEvent};
use reelthyme::{Config, Endpoint, Json, Tool};
use reelthyme_sim::{SimConfig, Simulator};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The current weather in a city.
#[derive(Deserialize, JsonSchema)]
struct GetWeather {
    /// The city's name, e.g. "Paris".
    city: String,
}

#[derive(Serialize)]
struct Weather {
    city: String,
    temperature_c: i32,
    sky: &'static str,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (endpoint, _simulator) = endpoint_or_simulator(SimConfig::default()).await?;
    // The tool's name, description and parameters come from `GetWeather`; the session is
    // set up before anything else is sent.
    let config = Config::new(endpoint)
        .outgoing(reelthyme::validate)
        .text_output()
        .tool(Tool::new(|GetWeather { city }| async move {
            println!("the model calls get_weather({city:?})");
            Ok(Json(Weather {
                city,
                temperature_c: 18,
                sky: "clear",
            }))
        }));
    let (mut tx, mut events) = reelthyme::connect(config).await?.split();
    tx.send(ClientEvent::user_text("What's the weather in Paris?"))
        .await?;
    tx.send(ClientEvent::response_create_with(ResponseParams::text()))
        .await?;
    // The tool layer sends the call's output and asks for the answer that uses it.
    while let Some(event) = events.next().await {
        match event? {
            ServerEvent::ResponseOutputTextDelta(delta) => print!("{}", delta.delta),
            ServerEvent::ResponseDone(done) => {
                let called = done
                    .response
                    .output
                    .iter()
                    .flatten()
                    .any(|item| matches!(item, Item::FunctionCall(_)));
                if !called {
                    break;
                }
            }
            _ => {}
        }
    }
    println!();
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
