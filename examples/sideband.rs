//! Sideband control: a server attaches to a call (WebRTC or SIP) by its `call_id`, updates
//! its session, and hangs it up. Against the simulator a call is opened first; against
//! OpenAI pass the id of a live call: `cargo run --example sideband -- rtc_...`.
//!
//! OpenAI when `OPENAI_API_KEY` is set, otherwise a local simulator
//! (`endpoint_or_simulator()` below: copy it, or keep only its first branch).

#![forbid(unsafe_code)]

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, SessionConfig};
use reelthyme::{Config, Endpoint, Options};
use reelthyme_sim::{SimConfig, Simulator};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (endpoint, simulator) = endpoint_or_simulator(SimConfig::default()).await?;
    let call_id = match (&simulator, std::env::args().nth(1)) {
        (_, Some(call_id)) => call_id,
        (Some(sim), None) => sim.open_call(),
        (None, None) => anyhow::bail!("pass the call_id of a live call"),
    };
    let endpoint = endpoint.call_id(&call_id);
    let mut session = reelthyme::connect(Config::new(endpoint.clone())).await?;
    println!(
        "attached to {call_id}: session {}",
        session.id().unwrap_or_else(|| "?".into())
    );
    let mut update = SessionConfig::realtime();
    update.instructions = Some("You are now supervised by the server.".into());
    session.send(ClientEvent::session_update(update)).await?;
    while let Some(event) = session.next().await {
        if event?.type_name() == "session.updated" {
            println!("instructions updated");
            break;
        }
    }
    reelthyme::hangup(&endpoint, &call_id, &Options::default()).await?;
    println!(
        "hung up; the sideband session ends: {:?}",
        session
            .next()
            .await
            .map(|e| e.map(|e| e.type_name().to_owned()))
    );
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
