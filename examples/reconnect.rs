//! Surviving a dropped connection: `WhenDisconnected::Wait` holds sends while there is no
//! connection, `SessionSender::reconnect` opens a new one, and the conversation so far is
//! given to the new server session (it starts empty).
//! `cargo run --example reconnect`
//!
//! Against the simulator the connection is dropped on purpose (it kills the connection when
//! it gets an `input_audio_buffer.clear`); against OpenAI the example moves to a new
//! connection while the old one is still live (a planned reconnect, same calls).
//!
//! OpenAI when `OPENAI_API_KEY` is set, otherwise a local simulator
//! (`endpoint_or_simulator()` below: copy it, or keep only its first branch).

#![forbid(unsafe_code)]

use std::time::Duration;

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, Item, ResponseParams, Role, ServerEvent};
use reelthyme::{Config, Endpoint, SessionEvents, SessionSender, WhenDisconnected};
use reelthyme_sim::{FaultAction, Faults, SimConfig, Simulator};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // An outage on demand: the simulator drops the connection (no close frame, as a
    // network failure does) at the first `input_audio_buffer.clear`.
    let faults = Faults {
        on_client: Some(("input_audio_buffer.clear".into(), 1, FaultAction::Kill)),
        ..Faults::default()
    };
    let (endpoint, simulator) = endpoint_or_simulator(SimConfig::default().faults(faults)).await?;
    // While no connection is live, sends wait (up to 10 s) for the next one instead of
    // failing: tasks that send (a microphone, tools) need not know about the outage.
    let config = Config::new(endpoint)
        .outgoing(reelthyme::validate)
        .when_disconnected(WhenDisconnected::Wait(Duration::from_secs(10)));
    let session = reelthyme::connect(config).await?;
    let (mut tx, mut events) = session.split();
    println!("connected: {}", tx.session().id.unwrap_or_default());

    ask(&mut tx, "My name is Ada.").await?;
    answer(&mut events).await?;

    if simulator.is_some() {
        tx.send(ClientEvent::audio_clear()).await?;
        // The stream reports the connection's end (once); a reconnect is the answer to it.
        while let Some(event) = events.next().await {
            if let Err(error) = event
                && error.is_fatal()
            {
                println!("connection lost: {error}");
                break;
            }
        }
    }
    // What the old server session knew: the text turns the session's conversation state
    // holds (the new server session starts empty; restoring it is the application's job).
    let history = history(&tx);
    println!("restoring {} items of the conversation", history.len());
    // Another task restores them and asks the next question now: with `Wait`, its sends
    // are held until the new connection is live, then go out on it in order (every clone
    // of the sender follows the session to its new connection).
    let mut asker = tx.clone();
    let question = tokio::spawn(async move {
        for item in history {
            asker.send(ClientEvent::item_create(item)).await?;
        }
        ask(&mut asker, "What is my name?").await
    });
    reconnect(&tx).await?;
    println!("reconnected: {}", tx.session().id.unwrap_or_default());
    question.await??;
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
/// `session.created` and the like pass by).
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

/// The text turns of the conversation so far, as items to create on a new server session.
fn history(tx: &SessionSender) -> Vec<Item> {
    tx.conversation(|conversation| {
        conversation
            .items()
            .filter(|item| item.in_conversation())
            .filter_map(|item| match item.role() {
                Some(Role::User) => Some(Item::user_text(item.text())),
                Some(Role::Assistant) => Some(Item::assistant_text(item.text())),
                _ => None,
            })
            .collect()
    })
}

/// A few attempts, a second apart: the network may take a moment to come back.
async fn reconnect(tx: &SessionSender) -> reelthyme::Result<()> {
    let mut attempt = 1;
    loop {
        match tx.reconnect().await {
            Ok(()) => return Ok(()),
            Err(error) if attempt < 3 && error.is_retryable() => {
                eprintln!("reconnect attempt {attempt} failed: {error}");
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => return Err(error),
        }
    }
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
