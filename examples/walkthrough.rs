//! The Clojure original's README walk-through, in Rust: connect → stream → send a text
//! message → ask for text and audio → capture the microphone → stop.
//!
//! `cargo run --example walkthrough` needs sound devices; on a machine without a sound card
//! see README.md's "Headless machines and CI" (ALSA file devices).
//! `cargo run --example walkthrough -- --list-devices` lists the devices found.
//!
//! OpenAI when `OPENAI_API_KEY` is set, otherwise a local simulator
//! (`endpoint_or_simulator()` below: copy it, or keep only its first branch).

#![forbid(unsafe_code)]

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, ServerEvent};
use reelthyme::{CaptureOptions, Endpoint, StreamOptions};
use reelthyme_sim::{SimConfig, Simulator};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list-devices") {
        return list_devices();
    }
    let (endpoint, _simulator) = endpoint_or_simulator(SimConfig::default()).await?;
    // 1. Connect, validating every outgoing event.
    let config = reelthyme::Config::new(endpoint).outgoing(reelthyme::validate);
    let session = reelthyme::connect(config).await?;
    // 2. Stream: audio deltas to the speaker, every other event to us.
    let mut tx = session.sender();
    let (mut events, audio) = match reelthyme::stream_with(session, StreamOptions::default()) {
        Ok(streamed) => streamed,
        Err(error) => no_sound_device("play the answer on", &error),
    };
    // 3. A text message, and a spoken answer.
    tx.send(ClientEvent::user_text("What is the weather today?"))
        .await?;
    tx.send(ClientEvent::response_create()).await?;
    // 4. The microphone into the session, 40 ms per append.
    let capture = match reelthyme::capture_audio(&tx, CaptureOptions::default()) {
        Ok(capture) => capture,
        Err(error) => no_sound_device("capture from", &error),
    };
    // Audio plays only while `events` is polled: this loop stays free of slow awaits.
    while let Some(event) = events.next().await {
        match event? {
            ServerEvent::ResponseOutputAudioTranscriptDelta(delta) => print!("{}", delta.delta),
            ServerEvent::ResponseDone(_) => break,
            _ => {}
        }
    }
    println!();
    // 5. Stop: the last partial chunk is sent, the microphone is released; then the rest
    //    of the answer plays out (bounded: a device that stopped consuming never drains).
    capture.stop().await?;
    if tokio::time::timeout(std::time::Duration::from_secs(30), audio.drained())
        .await
        .is_err()
    {
        eprintln!("walkthrough: the speaker did not finish playing within 30 s");
    }
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

/// The end of the walk-through on a machine without usable sound devices: what happened and
/// what to do, instead of an error chain.
fn no_sound_device(what: &str, error: &reelthyme::Error) -> ! {
    eprintln!(
        "\nwalkthrough: no sound device to {what} ({error}).\n\n\
         This example speaks and listens through the default sound devices. On a machine\n\
         without a sound card, point ALSA's default devices at files (README.md, \"Headless\n\
         machines and CI\"), e.g. with an asound.conf of\n\n  \
         pcm.!default {{\n    type asym\n    \
         capture.pcm  {{ type file slave.pcm \"null\" file \"/dev/null\" infile \"/tmp/in.raw\" format \"raw\" }}\n    \
         playback.pcm {{ type file slave.pcm \"null\" file \"/tmp/out.raw\" format \"raw\" }}\n  }}\n\n\
         and run\n\n  \
         ALSA_CONFIG_PATH=/usr/share/alsa/alsa.conf:$PWD/asound.conf cargo run --example walkthrough\n\n\
         To see the devices found: cargo run --example walkthrough -- --list-devices\n\
         (`reelthyme talk --list-devices` too). The device-free examples: text_chat, tools,\n\
         transcription, sideband."
    );
    std::process::exit(1)
}

fn list_devices() -> anyhow::Result<()> {
    use reelthyme::audio_io::Direction;
    for (direction, kind) in [(Direction::Input, "input"), (Direction::Output, "output")] {
        let names = reelthyme::audio_io::list_devices(direction)?;
        println!("{kind} devices: {}", names.len());
        for name in names {
            println!("  {name}");
        }
    }
    Ok(())
}
