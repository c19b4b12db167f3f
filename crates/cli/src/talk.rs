//! `reelthyme talk`: a voice conversation in the terminal — microphone → session → speaker,
//! with the conversation as a scrolling transcript of both sides, an input level meter, the
//! turn state, elapsed time and per-turn latency (end of user speech → first audio played,
//! from `reelthyme::Metrics`).
//!
//! The screen is ratatui on crossterm (see `screen.rs`): diffed redraws instead of clearing
//! the terminal ten times a second, resizes handled, wrapping by display width, and a test
//! backend that lets the layout be unit-tested. Raw mode turns Ctrl-C into a key, so it is
//! handled as one; the terminal is restored on every way out (return, error, panic).

mod screen;

use std::io::{BufWriter, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use futures_util::StreamExt;
use reelthyme::audio_io::{Decoder, Direction};
use reelthyme::events::{ClientEvent, ServerEvent, SessionConfig, Transcription};
use reelthyme::{CaptureOptions, Config, Layer, LayerContext, StreamOptions};

use crate::recording::{EventsLog, create_private_dir, create_private_file};
use screen::{Screen, Tone};

/// `--echo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum EchoArg {
    Aec,
    HalfDuplex,
    Off,
}

impl From<EchoArg> for reelthyme::Echo {
    fn from(echo: EchoArg) -> Self {
        match echo {
            EchoArg::Aec => Self::Aec,
            EchoArg::HalfDuplex => Self::HalfDuplex,
            EchoArg::Off => Self::Off,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct TalkArgs {
    /// Talk to the built-in simulator even when a key is set (it is used without one).
    #[arg(long)]
    sim: bool,
    /// A compatible server's base URL.
    /// `OPENAI_BASE_URL` is read too, after `REELTHYME_BASE_URL`.
    #[arg(long, env = "REELTHYME_BASE_URL")]
    base_url: Option<String>,
    /// The API key (default: `OPENAI_API_KEY`).
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The transport: `websocket`, or `webrtc` (audio as Opus tracks, events on a data
    /// channel; the offer goes to `{base}/realtime/calls`).
    #[arg(long, value_enum, default_value_t)]
    transport: crate::transport::TransportKind,
    /// The model.
    #[arg(long, env = "REELTHYME_MODEL", default_value = reelthyme::transport::DEFAULT_MODEL)]
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
    /// Keeping the assistant's voice out of the microphone: `aec` (echo cancellation against
    /// what the speaker plays), `half-duplex` (while the assistant speaks, only a voice
    /// louder than it goes through), or `off` (headphones).
    #[arg(long, value_enum, default_value_t = EchoArg::Aec)]
    echo: EchoArg,
    /// Text only: a text chat instead of voice.
    #[arg(long)]
    text: bool,
    /// Record the conversation into DIR: `user.wav`, `assistant.wav` (24 kHz mono) and
    /// `events.jsonl` (every event, both directions, timestamped; `reelthyme replay` plays it).
    #[arg(long, value_name = "DIR")]
    record: Option<PathBuf>,
    /// End when the connection drops instead of reconnecting (by default the session
    /// reconnects and replays the conversation; the screen says so).
    #[arg(long)]
    no_reconnect: bool,
}

type WavWriter = hound::WavWriter<BufWriter<std::fs::File>>;

/// `--record DIR`: every event, a WAV per side, and the first write error — reported on the
/// screen at once and as the exit status at the end, never dropped (review #19k).
struct Recording {
    dir: PathBuf,
    events: Mutex<EventsLog>,
    user: Mutex<Option<WavWriter>>,
    assistant: Mutex<Option<WavWriter>>,
    failed: Mutex<Option<String>>,
}

impl Recording {
    fn create(dir: &std::path::Path, model: &str) -> Result<Self> {
        create_private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join("events.jsonl");
        let events = EventsLog::create(&path, model)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self {
            dir: dir.to_owned(),
            events: Mutex::new(events),
            user: Mutex::new(Some(wav(dir, "user.wav")?)),
            assistant: Mutex::new(Some(wav(dir, "assistant.wav")?)),
            failed: Mutex::new(None),
        })
    }

    /// Keeps the first failure; later writes of a failed recording are not attempted.
    fn fail(&self, what: &str, error: impl std::fmt::Display) {
        let mut failed = self.failed.lock().expect("recording lock");
        if failed.is_none() {
            *failed = Some(format!("writing {what} failed: {error}"));
        }
    }

    fn failure(&self) -> Option<String> {
        self.failed.lock().expect("recording lock").clone()
    }

    fn event(&self, from_server: bool, event: serde_json::Value) {
        if self.failure().is_some() {
            return;
        }
        let result = self
            .events
            .lock()
            .expect("recording lock")
            .write(from_server, event);
        if let Err(error) = result {
            self.fail("events.jsonl", error);
        }
    }

    fn audio(&self, user: bool, samples: &[i16]) {
        if self.failure().is_some() {
            return;
        }
        let (wav, name) = if user {
            (&self.user, "user.wav")
        } else {
            (&self.assistant, "assistant.wav")
        };
        if let Some(writer) = wav.lock().expect("recording lock").as_mut() {
            for &sample in samples {
                if let Err(error) = writer.write_sample(sample) {
                    self.fail(name, error);
                    return;
                }
            }
        }
    }

    /// Finishes the WAV files; the first failure of the whole recording, if any.
    fn finish(&self) -> Result<()> {
        for (wav, name) in [(&self.user, "user.wav"), (&self.assistant, "assistant.wav")] {
            if let Some(writer) = wav.lock().expect("recording lock").take()
                && let Err(error) = writer.finalize()
            {
                self.fail(name, error);
            }
        }
        match self.failure() {
            Some(failure) => bail!(
                "the recording in {} is incomplete: {failure}",
                self.dir.display()
            ),
            None => Ok(()),
        }
    }
}

/// The recording's view of the session: every server event (the assistant's audio
/// included: it is added before the audio layer, which takes the deltas out) and every
/// client event queued by anyone — the session update, the microphone's appends, the
/// barge-in's cancel and truncate.
struct Record {
    recording: Arc<Recording>,
    /// The answer being recorded and its decoder, in that answer's output format (PCM16
    /// or G.711, to the WAV's 24 kHz).
    answer: Option<(String, Decoder)>,
}

impl Record {
    fn new(recording: Arc<Recording>) -> Self {
        Self {
            recording,
            answer: None,
        }
    }

    /// The end of an answer's audio: what the decoder still holds.
    fn finish_answer(&mut self) {
        if let Some((_, mut decoder)) = self.answer.take() {
            self.recording.audio(false, &decoder.flush());
        }
    }
}

impl Layer for Record {
    fn on_event(&mut self, event: ServerEvent, cx: &mut LayerContext<'_>) -> Option<ServerEvent> {
        self.recording.event(true, event.to_value());
        match &event {
            ServerEvent::ResponseOutputAudioDelta(delta) => {
                if self.answer.as_ref().map(|(id, _)| id) != Some(&delta.response_id) {
                    self.finish_answer();
                    let format = cx.conversation().output_format(&delta.response_id);
                    self.answer = Decoder::for_format(format)
                        .ok()
                        .map(|decoder| (delta.response_id.clone(), decoder));
                }
                // A delta that does not decode is in events.jsonl as it came; the WAV
                // goes without it.
                if let Some((_, decoder)) = &mut self.answer
                    && let Ok(samples) = decoder.decode(&delta.delta)
                {
                    self.recording.audio(false, &samples);
                }
            }
            ServerEvent::ResponseOutputAudioDone(_) | ServerEvent::ResponseDone(_) => {
                self.finish_answer();
            }
            _ => {}
        }
        Some(event)
    }

    fn on_sent(&mut self, event: &ClientEvent, _: &mut LayerContext<'_>) {
        self.recording.event(false, event.to_value());
    }

    fn on_connected(&mut self, _: &mut LayerContext<'_>) {
        self.finish_answer();
    }
}

/// The microphone's level for the meter, written by the capture tap, read at each redraw
/// (an `f32`'s bits: one writer, one reader, no lock on the capture path).
struct Level(AtomicU32);

impl Level {
    /// Silence until the first chunk.
    fn new() -> Self {
        Self(AtomicU32::new((-96.0_f32).to_bits()))
    }

    fn set(&self, chunk: &[i16]) {
        let energy = chunk
            .iter()
            .map(|&s| (f64::from(s) / 32768.0).powi(2))
            .sum::<f64>()
            / chunk.len().max(1) as f64;
        let db = (10.0 * energy.max(1e-10).log10()) as f32;
        self.0.store(db.to_bits(), Ordering::Relaxed);
    }

    fn db(&self) -> f32 {
        f32::from_bits(self.0.load(Ordering::Relaxed))
    }
}

fn wav(dir: &std::path::Path, name: &str) -> Result<WavWriter> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 24_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let path = dir.join(name);
    let file =
        create_private_file(&path).with_context(|| format!("cannot create {}", path.display()))?;
    hound::WavWriter::new(BufWriter::new(file), spec)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Leaves raw mode and the alternate screen however `talk` ends (ratatui's panic hook does
/// the same for panics).
struct RestoreTerminal;

impl Drop for RestoreTerminal {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Whether to colour: a terminal, and no `NO_COLOR` (<https://no-color.org>).
fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

pub(crate) fn run(args: TalkArgs) -> Result<ExitCode> {
    if args.list_devices {
        for (direction, label) in [(Direction::Input, "input"), (Direction::Output, "output")] {
            for name in reelthyme::audio_io::list_devices(direction)
                .context("cannot list the sound devices")?
            {
                println!("{label}: {name}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    crate::block_on(talk(args))
}

async fn talk(args: TalkArgs) -> Result<ExitCode> {
    let target = crate::target::select(
        args.base_url.clone(),
        args.api_key.clone(),
        &args.model,
        args.sim,
        reelthyme_sim::SimConfig::default(),
    )
    .await?;
    let source = target.source.clone();
    if args.text {
        eprintln!("reelthyme talk --text: text chat with the {source}");
    }
    let recording = match &args.record {
        Some(dir) => Some(Arc::new(Recording::create(dir, &args.model)?)),
        None => None,
    };
    let endpoint = target.endpoint.clone();
    let url = crate::transport::describe(args.transport, &endpoint);
    let simulator = target.simulator_url().is_some();
    let config: Config = crate::chat::reconnecting(
        crate::transport::config(args.transport, endpoint, simulator, !args.text),
        args.no_reconnect,
    );
    let session = reelthyme::connect(config.outgoing(reelthyme::validate))
        .await
        .with_context(|| format!("cannot start a session at {url}"))?;
    // Before `stream` adds the audio layer, so that the recording sees the audio deltas.
    let session = match &recording {
        Some(recording) => session.with_layer(Record::new(recording.clone())),
        None => session,
    };
    let mut tx = session.sender();
    let mut update = SessionConfig::realtime();
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
    tx.send(ClientEvent::session_update(update)).await?;
    if args.text {
        let (tx, events) = session.split();
        let result = crate::chat::interactive(tx, events).await;
        if let Some(recording) = &recording {
            recording.finish()?;
        }
        return result;
    }

    let options = StreamOptions::default().device(args.output_device.clone());
    let (events, control) =
        reelthyme::stream_with(session, options).context("cannot open the speaker")?;
    // Per-turn latency (end of speech → first audio the speaker played) is the library's.
    let (metrics, metrics_layer) = reelthyme::Metrics::new();
    let mut events = events.with_layer(metrics_layer.playback(&control));
    // The microphone into the session (in the session's input format, through a bounded
    // queue); the tap sees every chunk for the meter and the recording.
    let level = Arc::new(Level::new());
    let tap = {
        let (level, recording) = (level.clone(), recording.clone());
        move |chunk: &[i16]| {
            level.set(chunk);
            if let Some(recording) = &recording {
                recording.audio(true, chunk);
            }
        }
    };
    let options = CaptureOptions::default()
        .device(args.input_device.clone())
        .echo(args.echo.into())
        .tap(tap);
    let capture = reelthyme::capture_audio(&tx, options).context("cannot open the microphone")?;
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        let _ = capture.stop().await;
        bail!(
            "talk needs a terminal (standard input and output are not one); for scripts, \
             `reelthyme chat --message TEXT --jsonl` has one turn as JSON lines"
        );
    }
    let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
    let restore = RestoreTerminal;
    let (key_tx, mut keys) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        loop {
            if let Ok(true) = crossterm::event::poll(Duration::from_millis(50)) {
                if let Ok(Event::Key(key)) = crossterm::event::read()
                    && key.kind == KeyEventKind::Press
                    && key_tx.send(key).is_err()
                {
                    return;
                }
            } else if key_tx.is_closed() {
                return;
            }
        }
    });
    let mut screen = Screen::new(source, colour());
    if let Some(dir) = &args.record {
        screen.note(format!("recording into {}", dir.display()), Tone::Info);
    }
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut mic_trouble_shown = false;
    // Reconnects are a status line, not a crash.
    let mut reports = tx.reconnect_events();
    // Raw mode turns the terminal's Ctrl-C into a key (below); a SIGINT from elsewhere
    // (`kill -INT`) ends the conversation as cleanly.
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let result: Result<()> = async {
        loop {
            tokio::select! {
                Some(key) = keys.recv() => {
                    let page = terminal.size().map_or(10, |s| isize::try_from(s.height / 2).unwrap_or(10));
                    match action(key) {
                        Action::Quit => return Ok(()),
                        Action::Mute => {
                            screen.muted = !screen.muted;
                            if screen.muted { capture.mute() } else { capture.unmute() }
                        }
                        Action::Interrupt => {
                            if let Some(truncation) = control.interrupt().await? {
                                screen.note(format!("interrupted at {} ms", truncation.audio_end_ms), Tone::Info);
                            }
                            screen.interrupt_live_answer();
                            screen.phase = screen::Phase::Listening;
                        }
                        Action::Scroll(rows) => screen.scroll(if rows.abs() > 1 { rows.signum() * page } else { rows }),
                        Action::Follow => screen.follow(),
                        Action::None => {}
                    }
                },
                event = events.next() => match event {
                    Some(Ok(event)) => screen.on_event(&event),
                    // A frame that is not an event, or that did not parse: skip it, say so,
                    // go on (review #19h). Only the connection's end ends the conversation.
                    Some(Err(error)) if !error.is_fatal() => {
                        tracing::warn!("skipped an event: {error}");
                        screen.note(format!("skipped an event from the server: {error}"), Tone::Warning);
                    }
                    Some(Err(error)) => return Err(anyhow::Error::new(error).context("the session failed")),
                    None => bail!("the server ended the session"),
                },
                Some(report) = reports.recv() => {
                    let tone = match &report {
                        reelthyme::ReconnectEvent::Reconnected(done) if done.state_restored => Tone::Info,
                        _ => Tone::Warning,
                    };
                    // An answer lost with the connection ends where it was cut.
                    if let reelthyme::ReconnectEvent::Reconnected(done) = &report
                        && done.lost_response.is_some()
                    {
                        screen.interrupt_live_answer();
                        screen.phase = screen::Phase::Listening;
                    }
                    screen.note(report.to_string(), tone);
                }
                _ = &mut interrupted => return Ok(()),
                _ = tick.tick() => {
                    screen.level_db = level.db();
                    for turn in [metrics.current(), metrics.latest()].into_iter().flatten() {
                        screen.on_metrics(&turn);
                    }
                    screen.on_tick(control.backlog_ms());
                    screen.echo = Some((capture.echo().name(), capture.echo_suppression_db()));
                    // The microphone's trouble goes on the screen (the library's log of it is
                    // kept off the terminal the screen owns: see `init_logging`).
                    if !mic_trouble_shown {
                        if let Some(error) = capture.error() {
                            screen.note(format!("microphone: {error}"), Tone::Warning);
                            mic_trouble_shown = true;
                        } else if capture.dropped_chunks() > 0 {
                            screen.note(
                                "the session is not taking audio: microphone audio is being dropped",
                                Tone::Warning,
                            );
                            mic_trouble_shown = true;
                        }
                    }
                    if let Some(failure) = recording.as_ref().and_then(|r| r.failure()) {
                        screen.note(format!("recording: {failure}"), Tone::Warning);
                    }
                    terminal.draw(|frame| screen.render(frame))?;
                }
            }
        }
    }
    .await;
    // The last partial chunk is sent; a failure of the microphone (or of its appends)
    // surfaces here.
    let captured = capture.stop().await;
    // One more poll shows the layers (the recording) the appends the stop sent.
    let _ = futures_util::FutureExt::now_or_never(events.next());
    let recorded = recording.as_ref().map_or(Ok(()), |r| r.finish());
    drop(terminal);
    drop(restore);
    // The conversation stays in the terminal's scrollback.
    print!("{}", screen.transcript_text());
    result?;
    if let Err(error) = captured {
        eprintln!("reelthyme talk: the microphone stopped early: {error}");
    }
    recorded?;
    if let Some(summary) = screen.summary() {
        eprintln!("reelthyme talk: {summary}");
    }
    if let Some(dir) = &args.record {
        eprintln!(
            "reelthyme talk: recorded into {}; `reelthyme timeline {}` draws it",
            dir.display(),
            dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Quit,
    Mute,
    Interrupt,
    /// Rows back (positive) or forward; ±2 means half a page.
    Scroll(isize),
    Follow,
    None,
}

fn action(key: KeyEvent) -> Action {
    let control = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Char('c' | 'd') if control => Action::Quit,
        KeyCode::Char('q') | KeyCode::Esc => Action::Quit,
        KeyCode::Char('m') => Action::Mute,
        KeyCode::Char('i') => Action::Interrupt,
        KeyCode::Up => Action::Scroll(1),
        KeyCode::Down => Action::Scroll(-1),
        KeyCode::PageUp => Action::Scroll(2),
        KeyCode::PageDown => Action::Scroll(-2),
        KeyCode::End => Action::Follow,
        _ => Action::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The assistant's WAV is 24 kHz whatever the answer's format: a G.711 answer (8 kHz,
    /// one byte a sample) is decoded and resampled, not read as PCM16.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_g711_answer_is_recorded_at_24_khz() {
        use reelthyme::events::{AudioFormat, G711Format};
        let dir = std::env::temp_dir().join(format!("reelthyme-g711-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let recording = Arc::new(Recording::create(&dir, "gpt-realtime").unwrap());
        let sim = reelthyme_sim::Simulator::start(reelthyme_sim::SimConfig::default().speed(50.0))
            .await
            .unwrap();
        let endpoint = reelthyme::Endpoint::openai("gpt-realtime").api_key("sk-test");
        let config = Config::new(endpoint).transport(sim.in_process());
        let session = reelthyme::connect(config)
            .await
            .unwrap()
            .with_layer(Record::new(recording.clone()));
        let (mut tx, mut events) = session.split();
        let mut update = SessionConfig::realtime();
        update.audio_output_mut().format = Some(AudioFormat::Pcmu(G711Format::default()));
        tx.send(ClientEvent::session_update(update)).await.unwrap();
        tx.send(ClientEvent::user_text("Hello there"))
            .await
            .unwrap();
        tx.send(ClientEvent::response_create()).await.unwrap();
        let mut bytes = 0;
        let answered = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(event) = events.next().await {
                match event.unwrap() {
                    ServerEvent::ResponseOutputAudioDelta(delta) => {
                        bytes += delta.delta.decode_bytes().unwrap().len();
                    }
                    ServerEvent::ResponseDone(_) => return true,
                    _ => {}
                }
            }
            false
        })
        .await
        .unwrap();
        assert!(answered && bytes > 0, "{bytes} bytes of audio");
        let format = tx.conversation(|c| {
            let response = c.responses().last()?;
            c.output_format(response.id()).cloned()
        });
        assert!(matches!(format, Some(AudioFormat::Pcmu(_))), "{format:?}");
        recording.finish().unwrap();
        let samples = hound::WavReader::open(dir.join("assistant.wav"))
            .unwrap()
            .len() as i64;
        let expected = bytes as i64 * 3;
        assert!(
            (samples - expected).abs() <= 3,
            "{samples} samples for {bytes} bytes"
        );
        let _ = std::fs::remove_dir_all(&dir);
        sim.shutdown().await;
    }

    #[test]
    fn ctrl_c_and_q_quit_from_raw_mode() {
        let key = |code, modifiers| KeyEvent::new(code, modifiers);
        assert_eq!(
            action(key(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Action::Quit
        );
        assert_eq!(
            action(key(KeyCode::Char('d'), KeyModifiers::CONTROL)),
            Action::Quit
        );
        assert_eq!(
            action(key(KeyCode::Char('q'), KeyModifiers::NONE)),
            Action::Quit
        );
        assert_eq!(
            action(key(KeyCode::Char('c'), KeyModifiers::NONE)),
            Action::None
        );
        assert_eq!(
            action(key(KeyCode::PageUp, KeyModifiers::NONE)),
            Action::Scroll(2)
        );
    }
}
