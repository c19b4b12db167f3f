//! The sideband pattern: the client (a browser or a phone app in real life) talks over
//! WebRTC with an ephemeral key only; the server keeps its standard key and the tools,
//! and attaches to the client's call with a WebSocket by the call's id — it sees the call's
//! events, runs the tools, and hangs up. `cargo run --example sideband`
//!
//! OpenAI when `OPENAI_API_KEY` is set, otherwise a local simulator
//! (`endpoint_or_simulator()` below: copy it, or keep only its first branch).

#![forbid(unsafe_code)]

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, Item, Modality, ServerEvent, SessionConfig};
use reelthyme::webrtc::WebRtc;
use reelthyme::{ClientSecretRequest, Config, Endpoint, Options, Tool};
use reelthyme_sim::{SimConfig, Simulator};
use schemars::JsonSchema;
use serde::Deserialize;

/// The current weather in a city.
#[derive(Deserialize, JsonSchema)]
struct GetWeather {
    /// The city's name, e.g. "Paris".
    city: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (server, _simulator) = endpoint_or_simulator(SimConfig::default()).await?;
    let options = Options::default();

    // The server mints an ephemeral key for the client: its own key never leaves it.
    let mut session = SessionConfig::realtime();
    session.instructions = Some("You are a helpful assistant. Keep it short.".into());
    session.output_modalities = Some(vec![Modality::Text]);
    let secret =
        reelthyme::create_client_secret(&server, &ClientSecretRequest::new(session, 600), &options)
            .await?;

    // The client: WebRTC with the ephemeral key (events only here; a voice client keeps
    // the audio track on, see `webrtc_voice`).
    let client_endpoint = server.clone().api_key(secret.value.expose_secret());
    let call =
        reelthyme::connect(Config::new(client_endpoint).transport(WebRtc::new().audio(false)))
            .await?;
    let call_id = call
        .call_id()
        .ok_or_else(|| anyhow::anyhow!("the server named no call"))?;
    println!("client: on call {call_id}");

    // The client tells its server the call id; the server attaches and keeps the tools.
    // Its tool layer answers the model's calls as its events are read.
    let sideband = Config::new(server.clone().call_id(&call_id)).tool(Tool::new(
        |GetWeather { city }| async move {
            println!("server: get_weather({city:?})");
            Ok(format!("{city}: 18 °C, clear"))
        },
    ));
    let (_sideband_tx, mut sideband_events) = reelthyme::connect(sideband).await?.split();
    println!("server: attached to {call_id}; the tools are here");
    let server_side = tokio::spawn(async move {
        let mut seen = 0;
        while let Some(Ok(_)) = sideband_events.next().await {
            seen += 1;
        }
        seen
    });

    // The client asks; the server's tool answers; the client hears the answer.
    let (mut tx, mut events) = call.split();
    tx.send(ClientEvent::user_text("What's the weather in Paris?"))
        .await?;
    tx.send(ClientEvent::response_create()).await?;
    let mut answer = String::new();
    while let Some(event) = events.next().await {
        match event? {
            ServerEvent::ResponseOutputTextDelta(delta) => answer.push_str(&delta.delta),
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
    println!("client heard: {answer}");

    // The server ends the call: the client's session and the sideband end with it.
    reelthyme::hangup(&server, &call_id, &options).await?;
    println!("server: hung up");
    let mut end = None;
    while let Some(event) = events.next().await {
        if let Err(error) = event {
            end = Some(error);
        }
    }
    println!(
        "client: the call ended ({})",
        end.map_or_else(|| "cleanly".to_owned(), |error| error.to_string())
    );
    println!("server: the sideband saw {} events", server_side.await?);
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
        .base_url(&format!("{}/v1", simulator.url()))
        .api_key("sk-local-simulator");
    Ok((endpoint, Some(simulator)))
}
