//! Layers of your own: behaviour that watches the session's events and reacts by sending.
//! `cargo run --example layer`
//!
//! Two layers on a voice session with manual turns (no server VAD): `AnswerEveryTurn`
//! asks for an answer whenever the user's audio is committed, so the application only
//! appends and commits; `TurnLog` prints each finished turn from the session's
//! conversation state (`LayerContext::conversation`): what the user said, what the
//! assistant answered. The application's own loop just waits for the answers.
//!
//! OpenAI when `OPENAI_API_KEY` is set, otherwise a local simulator
//! (`endpoint_or_simulator()` below: copy it, or keep only its first branch).

#![forbid(unsafe_code)]

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, Modality, ServerEvent, SessionConfig, Transcription};
use reelthyme::{Config, Endpoint, Layer, LayerContext};
use reelthyme_sim::{SimConfig, Simulator};

/// Asks for an answer whenever the user's speech is committed: the turn policy of server
/// VAD's `create_response`, for a session that commits by hand.
struct AnswerEveryTurn;

impl Layer for AnswerEveryTurn {
    fn on_event(&mut self, event: ServerEvent, cx: &mut LayerContext<'_>) -> Option<ServerEvent> {
        if let ServerEvent::InputAudioBufferCommitted(_) = &event {
            cx.send(ClientEvent::response_create());
        }
        Some(event)
    }
}

/// Prints every turn once its answer is done: the user's words (their transcript) and the
/// answer's text, both read from the conversation the session keeps.
#[derive(Default)]
struct TurnLog {
    turns: usize,
}

impl Layer for TurnLog {
    fn on_event(&mut self, event: ServerEvent, cx: &mut LayerContext<'_>) -> Option<ServerEvent> {
        match &event {
            ServerEvent::InputAudioTranscriptionCompleted(done) => {
                println!("you said: {}", done.transcript);
            }
            ServerEvent::ResponseDone(done) => {
                self.turns += 1;
                let conversation = cx.conversation();
                let id = done.response.id.as_deref().unwrap_or_default();
                let answer: String = conversation
                    .response(id)
                    .map(|response| {
                        let items = response.output().iter();
                        items
                            .filter_map(|item| conversation.item(item))
                            .map(|item| item.text())
                            .collect()
                    })
                    .unwrap_or_default();
                println!("turn {}: the assistant answered: {answer}", self.turns);
            }
            _ => {}
        }
        // Pass it on: the application (and later layers) see every event too.
        Some(event)
    }
}

/// 0.3 s of silence, 1 s of a voiced tone, 0.3 s of silence at 24 kHz: speech enough for
/// the simulator (which transcribes it as the next of its configured transcripts).
fn utterance() -> Vec<i16> {
    (0..38_400)
        .map(|n| {
            if (7_200..31_200).contains(&n) {
                ((n as f64 * 0.05).sin() * 9_000.0) as i16
            } else {
                0
            }
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sim = SimConfig::default().transcripts(["What is the weather in Paris?", "And in Rome?"]);
    let (endpoint, _simulator) = endpoint_or_simulator(sim).await?;
    let session = reelthyme::connect(Config::new(endpoint).outgoing(reelthyme::validate))
        .await?
        .with_layer(AnswerEveryTurn)
        .with_layer(TurnLog::default());
    let (mut tx, mut events) = session.split();
    // Manual turns (no VAD), transcripts of what the user says, text answers.
    let mut update = SessionConfig::realtime();
    update.output_modalities = Some(vec![Modality::Text]);
    update.audio_input_mut().turn_detection = Some(None);
    update.audio_input_mut().transcription = Some(Some(Transcription {
        model: Some("gpt-4o-mini-transcribe".into()),
        ..Transcription::default()
    }));
    tx.send(ClientEvent::session_update(update)).await?;
    for _ in 0..2 {
        // The user speaks (40 ms appends, as a microphone would), then the turn ends:
        // the commit is all the application does; the layer asks for the answer.
        for chunk in utterance().chunks(960) {
            tx.send(ClientEvent::audio_append(chunk)).await?;
        }
        tx.send(ClientEvent::audio_commit()).await?;
        // Layers run while the stream is polled: read it until the answer is done.
        while let Some(event) = events.next().await {
            match event {
                Ok(ServerEvent::ResponseDone(_)) => break,
                Ok(ServerEvent::Error(error)) => eprintln!("error: {}", error.error.message),
                Ok(_) => {}
                Err(error) if !error.is_fatal() => eprintln!("skipped: {error}"),
                Err(error) => return Err(error.into()),
            }
        }
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
