//! The Clojure original's README walk-through, in Rust: connect → stream → send a text
//! message → ask for text and audio → capture the microphone → stop.
//! `cargo run --example walkthrough` (needs sound devices; on a headless machine see the
//! README's ALSA setup).

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, ServerEvent};
use reelthyme::{CaptureOptions, StreamOptions};
use reelthyme_examples::Target;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let target = Target::new(reelthyme_sim::SimConfig::default()).await?;
    // 1. Connect, validating every outgoing event.
    let session = reelthyme::connect(target.config.clone().outgoing(reelthyme::validate)).await?;
    // 2. Stream: audio deltas to the speaker, every other event to us.
    let mut tx = session.sender();
    let (mut events, audio) = reelthyme::stream_with(session, StreamOptions::default())?;
    // 3. A text message, and a spoken answer.
    tx.send(ClientEvent::user_text("What is the weather today?"))
        .await?;
    tx.send(ClientEvent::response_create()).await?;
    // 4. The microphone into the session, 40 ms per append.
    let capture = reelthyme::capture_audio(&tx, CaptureOptions::default())?;
    while let Some(event) = events.next().await {
        match event? {
            ServerEvent::ResponseOutputAudioTranscriptDelta(delta) => print!("{}", delta.delta),
            ServerEvent::ResponseDone(_) => break,
            _ => {}
        }
    }
    println!();
    // 5. Stop: the last partial chunk is sent, the devices are released.
    capture.stop().await?;
    while audio.backlog_ms() > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok(())
}
