//! A text-only conversation: two turns, text streamed as it arrives.
//! `cargo run --example text_chat`

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, ResponseParams, ServerEvent};
use reelthyme_examples::Target;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let target = Target::new(reelthyme_sim::SimConfig::default()).await?;
    let session = reelthyme::connect(target.config.clone().outgoing(reelthyme::validate)).await?;
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
