//! Function tools: the model asks for `get_weather`, the tool runs and its result goes back.
//! `cargo run --example tools`
//!
//! OpenAI when `OPENAI_API_KEY` is set (and `OPENAI_BASE_URL` for another server),
//! otherwise a local simulator (`reelthyme_sim::endpoint_or_simulator`; with a key,
//! `Endpoint::from_env()` alone).

#![forbid(unsafe_code)]

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, Item, ResponseParams, ServerEvent};
use reelthyme::{Config, Json, Tool};
use reelthyme_sim::SimConfig;
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
    let (endpoint, _simulator) = reelthyme_sim::endpoint_or_simulator(SimConfig::default()).await?;
    eprintln!("using {}", endpoint.url());
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
