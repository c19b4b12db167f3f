//! A transcription-only session: audio in, transcripts out (no responses).
//! `cargo run --example transcription` — appends a synthetic spoken-like signal.

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, ServerEvent};
use reelthyme_examples::Target;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sim = reelthyme_sim::SimConfig::default().transcripts(["testing one two three"]);
    let target = Target::new(sim).await?;
    let config = target.config.clone();
    let endpoint = config.endpoint().clone().transcription();
    let session = reelthyme::connect(reelthyme::Config::new(endpoint)).await?;
    let (mut tx, mut events) = session.split();
    // 0.3 s of silence, 1 s of a voiced tone, 1 s of silence, in 40 ms appends.
    let signal: Vec<i16> = (0..55_200)
        .map(|n| {
            if (7_200..31_200).contains(&n) {
                ((n as f64 * 0.05).sin() * 9_000.0) as i16
            } else {
                0
            }
        })
        .collect();
    for chunk in signal.chunks(960) {
        tx.send(ClientEvent::audio_append(chunk)).await?;
    }
    while let Some(event) = events.next().await {
        match event? {
            ServerEvent::InputAudioTranscriptionDelta(delta) => {
                print!("{}", delta.delta.unwrap_or_default())
            }
            ServerEvent::InputAudioTranscriptionCompleted(done) => {
                println!("\ntranscript: {}", done.transcript);
                break;
            }
            _ => {}
        }
    }
    Ok(())
}
