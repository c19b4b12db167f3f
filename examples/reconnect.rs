//! Surviving a dropped connection, by opting in: `Config::reconnect` makes the session
//! reconnect by itself (backoff with jitter, bounded), give the new server session the
//! conversation so far, and deliver what was sent during the outage; the reports say what
//! was restored. `cargo run --example reconnect`
//!
//! Against the simulator the connection is dropped on purpose (it kills the first
//! connection when it gets an `input_audio_buffer.clear`); against OpenAI the example has
//! the session rotate to a new connection after a few seconds instead (what a long call
//! does before the 60-minute cap), with the same replay.
//!
//! OpenAI when `OPENAI_API_KEY` is set, otherwise a local simulator
//! (`endpoint_or_simulator()` below: copy it, or keep only its first branch).

#![forbid(unsafe_code)]

use std::time::Duration;

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, ResponseParams, ServerEvent};
use reelthyme::{Config, Endpoint, Reconnect, ReconnectEvent, SessionEvents, SessionSender};
use reelthyme_sim::{FaultAction, Faults, SimConfig, Simulator};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // An outage on demand: the simulator drops the first connection (no close frame, as a
    // network failure does) at its first `input_audio_buffer.clear`.
    let faults = Faults {
        on_client: Some(("input_audio_buffer.clear".into(), 1, FaultAction::Kill)),
        sessions: Some(1),
        ..Faults::default()
    };
    let (endpoint, simulator) = endpoint_or_simulator(SimConfig::default().faults(faults)).await?;
    // The default policy, plus (for the demonstration against OpenAI) a rotation after 5 s.
    let mut policy = Reconnect::default();
    if simulator.is_none() {
        policy = policy.rotate_after(Some(Duration::from_secs(5)));
    }
    let config = Config::new(endpoint)
        .outgoing(reelthyme::validate)
        .reconnect(policy);
    let session = reelthyme::connect(config).await?;
    let (mut tx, mut events) = session.split();
    // The reports, from any task: attempts, what was restored, a final failure.
    let mut reports = tx.reconnect_events();
    println!("connected: {}", tx.session().id.unwrap_or_default());

    ask(&mut tx, "My name is Ada.").await?;
    answer(&mut events).await?;

    if simulator.is_some() {
        tx.send(ClientEvent::audio_clear()).await?;
    }
    // Keep reading the stream: it drives the reconnect (nothing runs in the background).
    let restored = loop {
        tokio::select! {
            report = reports.recv() => match report {
                Some(ReconnectEvent::Reconnected(done)) => {
                    println!("status: {}", ReconnectEvent::Reconnected(done.clone()));
                    break done;
                }
                Some(report) => println!("status: {report}"),
                None => anyhow::bail!("the session ended"),
            },
            event = events.next() => match event {
                Some(Ok(_)) => {}
                Some(Err(error)) if !error.is_fatal() => eprintln!("skipped: {error}"),
                Some(Err(error)) => return Err(error.into()),
                None => anyhow::bail!("the session ended"),
            },
        }
    };
    println!("reconnected: {}", tx.session().id.unwrap_or_default());
    println!(
        "state restored: {} ({} items replayed)",
        restored.state_restored, restored.items_replayed
    );
    // The new server session knows the conversation: the next turn builds on it.
    ask(&mut tx, "What is my name?").await?;
    answer(&mut events).await?;
    let items = tx.conversation(|c| c.items().filter(|item| item.in_conversation()).count());
    println!("the new server session holds {items} items");
    tx.close().await?;
    Ok(())
}

/// A user turn and a request for a text answer.
async fn ask(tx: &mut SessionSender, text: &str) -> reelthyme::Result<()> {
    println!("> {text}");
    tx.send(ClientEvent::user_text(text)).await?;
    tx.send(ClientEvent::response_create_with(ResponseParams::text()))
        .await
}

/// Prints the answer as it streams, until `response.done` (the new connection's
/// `session.created` and the replay's items pass by).
async fn answer(events: &mut SessionEvents) -> anyhow::Result<()> {
    while let Some(event) = events.next().await {
        match event {
            Ok(ServerEvent::ResponseOutputTextDelta(delta)) => print!("{}", delta.delta),
            Ok(ServerEvent::ResponseDone(_)) => {
                println!();
                return Ok(());
            }
            Ok(ServerEvent::Error(error)) => eprintln!("error: {}", error.error.message),
            Ok(_) => {}
            Err(error) if !error.is_fatal() => eprintln!("skipped: {error}"),
            Err(error) => return Err(error.into()),
        }
    }
    anyhow::bail!("the session ended before the answer")
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
