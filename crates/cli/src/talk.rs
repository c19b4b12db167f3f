//! `reelthyme talk`: a voice conversation in the terminal — microphone → session → speaker,
//! with live transcripts of both sides, an input level meter, the turn state, elapsed time
//! and per-turn latency (end of user speech → first audio played).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use crossterm::event::{Event, KeyCode, KeyEventKind};
use crossterm::{cursor, execute, queue, terminal};
use futures_util::StreamExt;
use reelthyme::audio_io::{Capture, Captured};
use reelthyme::events::{ClientEvent, ServerEvent, Session, Transcription};
use reelthyme::{Config, Endpoint, StreamOptions};

#[derive(Debug, Args)]
pub(crate) struct TalkArgs {
    /// Talk to the built-in simulator even when a key is set (it is used without one).
    #[arg(long)]
    sim: bool,
    /// A compatible server's base URL.
    #[arg(long, env = "REELTHYME_BASE_URL")]
    base_url: Option<String>,
    /// The API key (default: `OPENAI_API_KEY`).
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The transport.
    #[arg(long, value_enum, default_value_t = TransportArg::Ws)]
    transport: TransportArg,
    /// The model.
    #[arg(long, default_value = reelthyme::transport::DEFAULT_MODEL)]
    model: String,
    /// The assistant's voice.
    #[arg(long)]
    voice: Option<String>,
    /// Instructions for the assistant.
    #[arg(long)]
    instructions: Option<String>,
    /// The microphone (see --list-devices).
    #[arg(long)]
    input_device: Option<String>,
    /// The speaker (see --list-devices).
    #[arg(long)]
    output_device: Option<String>,
    /// List audio devices and exit.
    #[arg(long)]
    list_devices: bool,
    /// Text only: a text chat instead of voice.
    #[arg(long)]
    text: bool,
    /// Record the conversation into DIR: `user.wav`, `assistant.wav` (24 kHz mono) and
    /// `events.jsonl` (every event, both directions, timestamped; `reelthyme replay` plays it).
    #[arg(long, value_name = "DIR")]
    record: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TransportArg {
    Ws,
    Webrtc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Listening,
    UserSpeaking,
    Thinking,
    AssistantSpeaking,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Self::Listening => "listening",
            Self::UserSpeaking => "user speaking",
            Self::Thinking => "thinking",
            Self::AssistantSpeaking => "assistant speaking",
        }
    }
}

struct Screen {
    source: String,
    started: Instant,
    phase: Phase,
    level_db: f32,
    muted: bool,
    user: String,
    assistant: String,
    latency: Option<Duration>,
    stopped_at: Option<Instant>,
    item: Option<String>,
    note: String,
}

type Wav = Arc<Mutex<Option<hound::WavWriter<std::io::BufWriter<std::fs::File>>>>>;
/// The events log and when it started.
type EventsLog = Arc<Mutex<(std::io::BufWriter<std::fs::File>, Instant)>>;

/// Appends one event to the recording's `events.jsonl`.
fn log_event(log: &EventsLog, from_server: bool, event: serde_json::Value) {
    let mut log = log.lock().expect("log lock");
    let t_ms = log.1.elapsed().as_millis() as u64;
    let _ = writeln!(
        log.0,
        "{}",
        reelthyme_sim::Entry {
            t_ms,
            from_server,
            event
        }
        .to_line()
    );
}

fn wav(dir: &std::path::Path, name: &str) -> Result<Wav> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 24_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let writer = hound::WavWriter::create(dir.join(name), spec)
        .with_context(|| format!("cannot create {name}"))?;
    Ok(Arc::new(Mutex::new(Some(writer))))
}

pub(crate) fn run(args: TalkArgs) -> Result<ExitCode> {
    if args.list_devices {
        for (input, label) in [(true, "input"), (false, "output")] {
            for name in
                reelthyme::audio_io::device_names(input).map_err(|e| anyhow::anyhow!("{e}"))?
            {
                println!("{label}: {name}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.transport == TransportArg::Webrtc {
        return Err(crate::Usage(
            "--transport webrtc is not available yet in this build; use ws".into(),
        )
        .into());
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(talk(args))
}

async fn talk(args: TalkArgs) -> Result<ExitCode> {
    let key = args.api_key.clone().filter(|k| !k.trim().is_empty());
    let mut _simulator = None;
    let (endpoint, source) = match (&args.base_url, key, args.sim) {
        (Some(base), key, false) => {
            let endpoint = Endpoint::openai(&args.model).base_url(base);
            (
                key.map_or(endpoint.clone(), |k| endpoint.api_key(k)),
                format!("server {base}"),
            )
        }
        (None, Some(key), false) => (
            Endpoint::openai(&args.model).api_key(key),
            "OpenAI".to_owned(),
        ),
        _ => {
            let sim = reelthyme_sim::Simulator::start(reelthyme_sim::SimConfig::default()).await?;
            let endpoint = Endpoint::openai(&args.model).base_url(&format!("{}/v1", sim.url()));
            _simulator = Some(sim);
            (
                endpoint,
                "built-in simulator (no OPENAI_API_KEY)".to_owned(),
            )
        }
    };
    if args.text {
        eprintln!("reelthyme talk --text: text chat with the {source}");
    }
    let record_dir = args.record.clone();
    if let Some(dir) = &record_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let events_log: Option<EventsLog> = match &record_dir {
        Some(dir) => {
            let file = std::fs::File::create(dir.join("events.jsonl"))
                .context("cannot create events.jsonl")?;
            let mut file = std::io::BufWriter::new(file);
            writeln!(file, "{}", reelthyme_sim::recording_header(&args.model))?;
            Some(Arc::new(Mutex::new((file, Instant::now()))))
        }
        None => None,
    };
    let log = |from_server: bool, event: serde_json::Value| {
        if let Some(log) = &events_log {
            log_event(log, from_server, event);
        }
    };
    let assistant_wav = match &record_dir {
        Some(dir) => Some(wav(dir, "assistant.wav")?),
        None => None,
    };
    let user_wav = match &record_dir {
        Some(dir) => Some(wav(dir, "user.wav")?),
        None => None,
    };
    // Every server event passes here before `stream` takes the audio out: log it, and keep
    // the assistant's audio for the recording.
    let (incoming_log, incoming_wav) = (events_log.clone(), assistant_wav.clone());
    let endpoint_url = endpoint.url();
    let mut config = Config::new(endpoint).outgoing(reelthyme::validate);
    if incoming_log.is_some() || incoming_wav.is_some() {
        config = config.incoming(move |event| {
            if let Some(log) = &incoming_log {
                log_event(log, true, event.to_value());
            }
            if let (Some(wav), ServerEvent::ResponseOutputAudioDelta(delta)) =
                (&incoming_wav, &event)
                && let (Some(writer), Ok(samples)) = (
                    wav.lock().expect("wav lock").as_mut(),
                    delta.delta.decode_pcm16(),
                )
            {
                for sample in samples {
                    let _ = writer.write_sample(sample);
                }
            }
            Some(event)
        });
    }
    let url = endpoint_url;
    let session = reelthyme::connect(config)
        .await
        .with_context(|| format!("cannot start a session at {url}"))?;
    let mut tx = session.sender();
    let mut update = Session::realtime();
    update.instructions = args.instructions.clone();
    if let Some(voice) = &args.voice {
        update.audio_output_mut().voice = Some(voice.as_str().into());
    }
    update.audio_input_mut().transcription = Some(Some(Transcription {
        model: Some("gpt-4o-mini-transcribe".into()),
        ..Transcription::default()
    }));
    if args.text {
        update.output_modalities = Some(vec![reelthyme::events::Modality::Text]);
    }
    let update = ClientEvent::session_update(update);
    log(false, update.to_value());
    tx.send(update).await?;
    if args.text {
        return text_loop(session, log).await;
    }

    let options = StreamOptions::default().device(args.output_device.clone());
    let (mut events, control) =
        reelthyme::stream_with(session, options).context("cannot open the speaker")?;
    // The microphone: chunks to a channel; the level for the meter; the recording.
    let (chunk_tx, mut chunks) = tokio::sync::mpsc::unbounded_channel();
    let capture = Capture::start(args.input_device.as_deref(), 40, move |captured| {
        let _ = chunk_tx.send(captured);
    })
    .context("cannot open the microphone")?;
    let (key_tx, mut keys) = tokio::sync::mpsc::unbounded_channel();
    terminal::enable_raw_mode().context("the terminal has no raw mode")?;
    let _restore = Restore;
    std::thread::spawn(move || {
        loop {
            if let Ok(true) = crossterm::event::poll(Duration::from_millis(50)) {
                if let Ok(Event::Key(key)) = crossterm::event::read()
                    && key.kind == KeyEventKind::Press
                    && key_tx.send(key.code).is_err()
                {
                    return;
                }
            } else if key_tx.is_closed() {
                return;
            }
        }
    });
    let mut screen = Screen {
        source,
        started: Instant::now(),
        phase: Phase::Listening,
        level_db: -96.0,
        muted: false,
        user: String::new(),
        assistant: String::new(),
        latency: None,
        stopped_at: None,
        item: None,
        note: String::new(),
    };
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let result: Result<()> = async {
        loop {
            tokio::select! {
                Some(captured) = chunks.recv() => match captured {
                    Captured::Audio(chunk) => {
                        let energy = chunk.iter().map(|&s| (f64::from(s) / 32768.0).powi(2)).sum::<f64>() / chunk.len().max(1) as f64;
                        screen.level_db = (10.0 * energy.max(1e-10).log10()) as f32;
                        if let Some(wav) = &user_wav
                            && let Some(writer) = wav.lock().expect("wav lock").as_mut() {
                                for &sample in &chunk {
                                    let _ = writer.write_sample(sample);
                                }
                            }
                        if !screen.muted {
                            let append = ClientEvent::audio_append(&chunk);
                            log(false, append.to_value());
                            tx.send(append).await?;
                        }
                    }
                    Captured::Error(error) => screen.note = format!("microphone: {error}"),
                    _ => {}
                },
                Some(key) = keys.recv() => match key {
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                    KeyCode::Char('m') => {
                        screen.muted = !screen.muted;
                        if screen.muted { capture.mute() } else { capture.unmute() }
                    }
                    KeyCode::Char('i') => {
                        if let Some(truncation) = control.interrupt().await? {
                            screen.note = format!("interrupted at {} ms", truncation.audio_end_ms);
                        }
                        screen.phase = Phase::Listening;
                    }
                    _ => {}
                },
                event = events.next() => match event {
                    Some(Ok(event)) => on_event(&mut screen, &event),
                    Some(Err(error)) => return Err(error.into()),
                    None => bail!("the session ended"),
                },
                _ = tick.tick() => {
                    if let (Some(item), Some(stopped), None) = (&screen.item, screen.stopped_at, screen.latency)
                        && control.played_ms(item).is_some_and(|ms| ms > 0) {
                            screen.latency = Some(stopped.elapsed());
                            screen.phase = Phase::AssistantSpeaking;
                        }
                    if screen.phase == Phase::AssistantSpeaking && control.backlog_ms() == 0 {
                        screen.phase = Phase::Listening;
                    }
                    draw(&screen)?;
                }
            }
        }
    }
    .await;
    capture.stop();
    for wav in [&user_wav, &assistant_wav].into_iter().flatten() {
        if let Some(writer) = wav.lock().expect("wav lock").take() {
            writer.finalize().context("cannot finish a WAV file")?;
        }
    }
    if let Some(log) = &events_log {
        log.lock().expect("log lock").0.flush()?;
    }
    drop(_restore);
    result?;
    println!("bye");
    Ok(ExitCode::SUCCESS)
}

fn on_event(screen: &mut Screen, event: &ServerEvent) {
    match event {
        ServerEvent::InputAudioBufferSpeechStarted(_) => {
            screen.phase = Phase::UserSpeaking;
            screen.user.clear();
        }
        ServerEvent::InputAudioBufferSpeechStopped(_) => {
            screen.phase = Phase::Thinking;
            screen.stopped_at = Some(Instant::now());
            screen.latency = None;
        }
        ServerEvent::InputAudioTranscriptionDelta(delta) => screen
            .user
            .push_str(delta.delta.as_deref().unwrap_or_default()),
        ServerEvent::InputAudioTranscriptionCompleted(done) => {
            screen.user = done.transcript.clone()
        }
        ServerEvent::ResponseOutputItemAdded(added) => {
            screen.item = added.item.id().map(str::to_owned);
            screen.assistant.clear();
        }
        ServerEvent::ResponseOutputAudioTranscriptDelta(delta)
        | ServerEvent::ResponseOutputTextDelta(delta) => {
            screen.assistant.push_str(&delta.delta);
        }
        ServerEvent::Error(error) => screen.note = format!("server: {}", error.error.message),
        _ => {}
    }
}

fn meter(db: f32) -> String {
    let filled = (((db + 60.0) / 60.0).clamp(0.0, 1.0) * 20.0).round() as usize;
    format!(
        "[{}{}] {:>4.0} dBFS",
        "#".repeat(filled),
        "-".repeat(20 - filled),
        db.max(-96.0)
    )
}

fn draw(screen: &Screen) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let elapsed = screen.started.elapsed().as_secs();
    let lines = [
        format!(
            "reelthyme talk — {}   {:02}:{:02}",
            screen.source,
            elapsed / 60,
            elapsed % 60
        ),
        format!("State: {}", screen.phase.label()),
        format!(
            "Mic:   {}{}",
            meter(screen.level_db),
            if screen.muted { "  (muted)" } else { "" }
        ),
        format!(
            "Latency: {}",
            screen
                .latency
                .map_or("-".to_owned(), |l| format!("{} ms", l.as_millis()))
        ),
        format!("You: {}", screen.user),
        format!("Assistant: {}", screen.assistant),
        screen.note.clone(),
        "[m] mute  [i] interrupt  [q] quit".to_owned(),
    ];
    queue!(
        out,
        cursor::MoveTo(0, 0),
        terminal::Clear(terminal::ClearType::All)
    )?;
    for (row, line) in lines.iter().enumerate() {
        queue!(out, cursor::MoveTo(0, row as u16))?;
        write!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// Leaves raw mode however `talk` ends.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = terminal::disable_raw_mode();
        let _ = execute!(std::io::stdout(), cursor::MoveTo(0, 9));
        println!();
    }
}

async fn text_loop(
    session: reelthyme::Session,
    log: impl Fn(bool, serde_json::Value),
) -> Result<ExitCode> {
    use tokio::io::AsyncBufReadExt;
    let (mut tx, mut events) = session.split();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    eprintln!("Type a message and press Enter; /quit ends.");
    while let Some(line) = lines.next_line().await? {
        let line = line.trim();
        if line == "/quit" {
            break;
        }
        if line.is_empty() {
            continue;
        }
        for event in [ClientEvent::user_text(line), ClientEvent::response_create()] {
            log(false, event.to_value());
            tx.send(event).await?;
        }
        while let Some(event) = events.next().await {
            match event? {
                ServerEvent::ResponseOutputTextDelta(d) => print!("{}", d.delta),
                ServerEvent::ResponseDone(_) => {
                    println!();
                    break;
                }
                _ => {}
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
