//! `reelthyme chat`: text chat in the terminal, or one scripted turn as JSON Lines.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, ResponseParams, ResponseStatus, ServerEvent};
use tokio::io::AsyncBufReadExt;

#[derive(Debug, Args)]
pub(crate) struct ChatArgs {
    /// A compatible server's base URL (e.g. `ws://127.0.0.1:PORT/v1`); default: OpenAI, or
    /// the built-in simulator when no API key is set.
    /// `OPENAI_BASE_URL` is read too, after `REELTHYME_BASE_URL`.
    #[arg(long, env = "REELTHYME_BASE_URL")]
    base_url: Option<String>,
    /// The API key (default: `OPENAI_API_KEY`).
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The model.
    #[arg(long, env = "REELTHYME_MODEL", default_value = reelthyme::transport::DEFAULT_MODEL)]
    model: String,
    /// Use the built-in simulator even when a key is set.
    #[arg(long)]
    sim: bool,
    /// The transport: `websocket`, or `webrtc` (the offer goes to `{base}/realtime/calls`,
    /// events on its data channel).
    #[arg(long, value_enum, default_value_t)]
    transport: crate::transport::TransportKind,
    /// Send this one message, print the server's events, and exit after `response.done`.
    #[arg(long)]
    message: Option<String>,
    /// With --message: print every server event as one JSON line.
    #[arg(long, requires = "message")]
    jsonl: bool,
    /// Record every event, both directions, timestamped, to this JSONL file (replay it with
    /// `reelthyme replay`; check it with `reelthyme events check`).
    #[arg(long, value_name = "FILE")]
    record: Option<std::path::PathBuf>,
    /// End when the connection drops instead of reconnecting (by default the session
    /// reconnects and replays the conversation, with a status line).
    #[arg(long)]
    no_reconnect: bool,
}

pub(crate) fn run(args: ChatArgs) -> Result<ExitCode> {
    crate::block_on(chat(args))
}

/// `chat` and `talk` reconnect by default (the library's policy: backoff, bounded; the
/// conversation replayed), unless `--no-reconnect`.
pub(crate) fn reconnecting(config: reelthyme::Config, off: bool) -> reelthyme::Config {
    if off {
        config
    } else {
        config.reconnect(reelthyme::Reconnect::default())
    }
}

/// Prints the reconnect reports that arrived, a status line each on standard error;
/// `true` when a reconnect lost the answer in progress (ask for it again).
pub(crate) fn show_reconnects(reports: &mut reelthyme::ReconnectEvents) -> bool {
    let mut lost = false;
    while let Some(report) = reports.try_recv() {
        eprintln!("reelthyme: {report}");
        lost |= matches!(
            &report,
            reelthyme::ReconnectEvent::Reconnected(done) if done.lost_response.is_some()
        );
    }
    lost
}

async fn chat(args: ChatArgs) -> Result<ExitCode> {
    let target = crate::target::select(
        args.base_url.clone(),
        args.api_key.clone(),
        &args.model,
        args.sim,
        reelthyme_sim::SimConfig::default().speed(4.0),
    )
    .await?;
    if let Some(url) = target.simulator_url() {
        eprintln!("reelthyme: no OPENAI_API_KEY — talking to the built-in simulator at {url}");
    }
    let endpoint = target.endpoint.clone();
    let url = crate::transport::describe(args.transport, &endpoint);
    let simulator = target.simulator_url().is_some();
    let config = reconnecting(
        crate::transport::config(args.transport, endpoint, simulator, false),
        args.no_reconnect,
    );
    let session = reelthyme::connect(config.outgoing(reelthyme::validate))
        .await
        .with_context(|| format!("cannot start a session at {url}"))?;
    let (mut tx, mut events) = session.split();
    let mut reports = tx.reconnect_events();
    let mut recorder = args
        .record
        .as_deref()
        .map(|path| {
            crate::recording::EventsLog::create(path, &args.model)
                .with_context(|| format!("cannot create {}", path.display()))
        })
        .transpose()?;
    match args.message {
        Some(message) => {
            let mut stdout = std::io::stdout().lock();
            // `session.created` comes first (connect waited for it): record and print it
            // before our events, in the order a replay must reproduce.
            let created = events
                .next()
                .await
                .context("the session ended at once")?
                .context("the session failed")?;
            if let Some(recorder) = &mut recorder {
                recorder
                    .write(true, created.to_value())
                    .context("cannot write the recording")?;
            }
            if args.jsonl {
                writeln!(stdout, "{}", created.to_json())?;
            }
            for event in [
                ClientEvent::user_text(message),
                ClientEvent::response_create(),
            ] {
                if let Some(recorder) = &mut recorder {
                    recorder
                        .write(false, event.to_value())
                        .context("cannot write the recording")?;
                }
                tx.send(event).await?;
            }
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    // A frame that is not an event is skipped; only the end is fatal.
                    Err(error) if !error.is_fatal() => {
                        eprintln!("reelthyme: skipped an event from the server: {error}");
                        continue;
                    }
                    Err(error) => {
                        return Err(anyhow::Error::new(error).context("the session failed"));
                    }
                };
                if show_reconnects(&mut reports) {
                    // The answer was lost with the connection: ask for it again.
                    let again = ClientEvent::response_create();
                    if let Some(recorder) = &mut recorder {
                        recorder
                            .write(false, again.to_value())
                            .context("cannot write the recording")?;
                    }
                    tx.send(again).await?;
                }
                if let Some(recorder) = &mut recorder {
                    recorder
                        .write(true, event.to_value())
                        .context("cannot write the recording")?;
                }
                if args.jsonl {
                    writeln!(stdout, "{}", event.to_json())?;
                }
                match &event {
                    ServerEvent::Error(error) => {
                        bail!("the server refused the turn: {}", error.error.message)
                    }
                    ServerEvent::ResponseOutputTextDelta(d)
                    | ServerEvent::ResponseOutputAudioTranscriptDelta(d)
                        if !args.jsonl =>
                    {
                        write!(stdout, "{}", d.delta)?;
                        stdout.flush()?;
                    }
                    ServerEvent::ResponseDone(done) => {
                        if !args.jsonl {
                            writeln!(stdout)?;
                        }
                        match &done.response.status {
                            Some(ResponseStatus::Completed) => {}
                            other => bail!("the response ended {other:?}"),
                        }
                        return Ok(ExitCode::SUCCESS);
                    }
                    _ => {}
                }
            }
            bail!("the session ended before response.done")
        }
        None => interactive(tx, events).await,
    }
}

/// Text turns typed on standard input, each answer printed as it streams, until `/quit`
/// or the end of input (`chat` without `--message`, and `talk --text`).
pub(crate) async fn interactive(
    mut tx: reelthyme::SessionSender,
    mut events: reelthyme::SessionEvents,
) -> Result<ExitCode> {
    eprintln!("Type a message and press Enter; /quit (or Ctrl-D) ends.");
    let mut reports = tx.reconnect_events();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        eprint!("> ");
        let Some(line) = lines.next_line().await? else {
            break;
        };
        let line = line.trim();
        if line == "/quit" {
            break;
        }
        if line.is_empty() {
            continue;
        }
        tx.send(ClientEvent::user_text(line)).await?;
        tx.send(ClientEvent::response_create_with(ResponseParams::text()))
            .await?;
        let mut stdout = std::io::stdout().lock();
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(error) if !error.is_fatal() => {
                    eprintln!("reelthyme: skipped an event from the server: {error}");
                    continue;
                }
                Err(error) => return Err(anyhow::Error::new(error).context("the session failed")),
            };
            if show_reconnects(&mut reports) {
                // The answer was lost with the connection: ask for it again.
                tx.send(ClientEvent::response_create_with(ResponseParams::text()))
                    .await?;
            }
            match event {
                ServerEvent::ResponseOutputTextDelta(d) => {
                    write!(stdout, "{}", d.delta)?;
                    stdout.flush()?;
                }
                ServerEvent::Error(error) => eprintln!("error: {}", error.error.message),
                ServerEvent::ResponseDone(_) => {
                    writeln!(stdout)?;
                    break;
                }
                _ => {}
            }
        }
    }
    tx.close().await.ok();
    Ok(ExitCode::SUCCESS)
}
