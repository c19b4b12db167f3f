//! Function tools: the model asks for `get_weather`, we run it and send the result back.
//! `cargo run --example tools`
//!
//! OpenAI when `OPENAI_API_KEY` is set, otherwise a local simulator
//! (`endpoint_or_simulator()` below: copy it, or keep only its first branch).

#![forbid(unsafe_code)]

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, ResponseParams, ServerEvent, SessionConfig, Tool};
use reelthyme::{Config, Endpoint};
use reelthyme_sim::{SimConfig, Simulator};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (endpoint, _simulator) = endpoint_or_simulator(SimConfig::default()).await?;
    let session = reelthyme::connect(Config::new(endpoint).outgoing(reelthyme::validate)).await?;
    let (mut tx, mut events) = session.split();
    let mut config = SessionConfig::realtime();
    config.tools = Some(vec![Tool::function(
        "get_weather",
        "The current weather in a city.",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    )]);
    tx.send(ClientEvent::session_update(config)).await?;
    tx.send(ClientEvent::user_text("What's the weather in Paris?"))
        .await?;
    tx.send(ClientEvent::response_create_with(ResponseParams::text()))
        .await?;
    while let Some(event) = events.next().await {
        match event? {
            ServerEvent::ResponseFunctionCallArgumentsDone(call) => {
                println!("the model calls {:?}({})", call.name, call.arguments);
                let args: serde_json::Value = serde_json::from_str(&call.arguments)?;
                let result = json!({"city": args["city"], "temperature_c": 18, "sky": "clear"});
                tx.send(ClientEvent::function_call_output(
                    &call.call_id,
                    result.to_string(),
                ))
                .await?;
            }
            ServerEvent::ResponseDone(done) => {
                let called = done
                    .response
                    .output
                    .iter()
                    .flatten()
                    .any(|i| matches!(i, reelthyme::events::Item::FunctionCall(_)));
                if called {
                    // The tool's output is in: ask for the answer that uses it.
                    tx.send(ClientEvent::response_create_with(ResponseParams::text()))
                        .await?;
                } else {
                    break;
                }
            }
            ServerEvent::ResponseOutputTextDelta(delta) => print!("{}", delta.delta),
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
