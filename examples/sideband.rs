//! Sideband control: a server attaches to a call (WebRTC or SIP) by its `call_id`, updates
//! its session, and hangs it up. Against the simulator a call is opened first; against
//! OpenAI pass the id of a live call: `cargo run --example sideband -- rtc_...`.

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, Session};
use reelthyme::{Config, Options};
use reelthyme_examples::Target;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let target = Target::new(reelthyme_sim::SimConfig::default()).await?;
    let call_id = match (&target.simulator, std::env::args().nth(1)) {
        (_, Some(call_id)) => call_id,
        (Some(sim), None) => sim.open_call(),
        (None, None) => anyhow::bail!("pass the call_id of a live call"),
    };
    let endpoint = target.endpoint().clone().call_id(&call_id);
    let mut session = reelthyme::connect(Config::new(endpoint.clone())).await?;
    println!(
        "attached to {call_id}: session {}",
        session.id().unwrap_or("?")
    );
    let mut update = Session::realtime();
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
