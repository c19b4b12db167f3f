//! `reelthyme`: realtime conversations from the terminal, and the tools around them.
//!
//! Exit status: 0 on success, 1 when a check, a conversation or a request failed, 2 on
//! bad usage or unreadable input.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod chat;
mod events;
mod failure;
mod recording;
mod replay;
mod secret;
mod sim;
#[cfg(feature = "audio")]
mod talk;
mod target;
mod timeline;
mod transport;

#[derive(Debug, Parser)]
#[command(
    name = "reelthyme",
    version,
    about = "Realtime voice and text conversations on OpenAI's Realtime API"
)]
struct Cli {
    /// More logging (-v info, -vv debug, -vvv trace); `RUST_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with Realtime API events.
    Events {
        #[command(subcommand)]
        command: events::EventsCommand,
    },
    /// Talk: a voice conversation in the terminal (the built-in simulator without a key).
    ///
    /// Keys: m mutes, i interrupts the answer, PgUp/PgDn/↑/↓ scroll the transcript (End
    /// follows it again), q, Esc or Ctrl-C quit.
    #[cfg(feature = "audio")]
    Talk(talk::TalkArgs),
    /// Talk: a voice conversation in the terminal — not in this build (without the
    /// `audio` feature).
    #[cfg(not(feature = "audio"))]
    Talk {
        /// Ignored.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
    /// Chat by text: interactively, or one scripted turn (`--message`, `--jsonl`).
    Chat(chat::ChatArgs),
    /// Mint an ephemeral key (`ek_…`) for a browser or mobile client; prints it.
    MintSecret(secret::MintArgs),
    /// Serve a recorded session (`chat --record`) as a server; prints its `ws://` base first.
    Replay(replay::ReplayArgs),
    /// Serve the local Realtime API simulator; prints its `ws://HOST:PORT` base first.
    Sim(sim::SimArgs),
    /// Draw a recorded session as an HTML page: speech, answers, latency, barge-ins.
    ///
    /// Reads a recording of `chat --record FILE` or `talk --record DIR`; writes one
    /// self-contained file (inline SVG and CSS, no script) and prints its path.
    Timeline(timeline::TimelineArgs),
    /// Print a shell completion script, e.g. `reelthyme completions bash >
    /// ~/.local/share/bash-completion/completions/reelthyme`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Events { command } => events::run(command),
        #[cfg(feature = "audio")]
        Command::Talk(args) => talk::run(args),
        #[cfg(not(feature = "audio"))]
        Command::Talk { .. } => Err(anyhow::Error::new(Usage(
            "this reelthyme was built without the `audio` feature, so it has no `talk`: \
             build it with default features (needs libasound2-dev and pkg-config on Linux)"
                .into(),
        ))),
        Command::Chat(args) => chat::run(args),
        Command::MintSecret(args) => secret::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Timeline(args) => timeline::run(args),
        Command::Completions { shell } => completions(shell),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            let (message, hint) = failure::describe(&error);
            eprintln!("reelthyme: {message}");
            if let Some(hint) = hint {
                eprintln!("  try: {hint}");
            }
            if error.downcast_ref::<Usage>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Writes the completion script (through a buffer: `generate` panics when the pipe closes,
/// as under `| head`, where a clean exit is what a shell user expects).
fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let mut script = Vec::new();
    let mut command = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut command, "reelthyme", &mut script);
    match std::io::stdout().lock().write_all(&script) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Runs a subcommand's future on a runtime of its own (one per process: a command runs
/// once).
pub(crate) fn block_on(
    command: impl std::future::Future<Output = anyhow::Result<ExitCode>>,
) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(command)
}

/// `--base-url` (or `REELTHYME_BASE_URL`), else `OPENAI_BASE_URL` as the library and the
/// official SDKs read it.
pub(crate) fn base_url(arg: Option<String>) -> Option<String> {
    arg.or_else(|| std::env::var("OPENAI_BASE_URL").ok())
        .filter(|base| !base.trim().is_empty())
}

/// An error in how the command was called (exit status 2, like clap's own).
#[derive(Debug)]
pub(crate) struct Usage(pub(crate) String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Log targets that are never shown, whatever `-v` or `RUST_LOG` ask for: tungstenite's
/// client handshake logs the raw upgrade request at TRACE, `Authorization: Bearer sk-…`
/// header included (review #5), and `log` records reach us through the bridge that
/// `init()` installs (kept: rustls and tungstenite log nothing else that is secret, and
/// their other records help with TLS and protocol trouble). tokio-tungstenite goes whole: its
/// records are `file:line Read.read`-style polling traces, and it drives the handshake.
const SECRET_TARGETS: &[&str] = &["tungstenite::handshake", "tokio_tungstenite"];

/// Whether records of `target` may be logged (see [`SECRET_TARGETS`]).
fn loggable(target: &str) -> bool {
    !SECRET_TARGETS.iter().any(|secret| {
        target
            .strip_prefix(secret)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// Logs go to stderr, so stdout stays for output scripts read.
fn init_logging(verbose: u8) {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer, filter};

    // `talk` shows the microphone's trouble (dropped or lost audio) on its screen; logged
    // too, it would write over the screen it owns.
    let default = match verbose {
        0 => "warn,reelthyme::audio::capture=error",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let env_filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives)
            .unwrap_or_else(|error| {
                eprintln!("reelthyme: ignoring RUST_LOG={directives:?} ({error})");
                EnvFilter::new(default)
            }),
        _ => EnvFilter::new(default),
    };
    // A filter of its own rather than `target=off` directives in the `EnvFilter`: there, a
    // more specific directive from `RUST_LOG` (`tungstenite::handshake::client=trace`)
    // would win over ours.
    let secrets = filter::filter_fn(|metadata| loggable(metadata.target()));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_filter(env_filter)
        .with_filter(secrets);
    tracing_subscriber::registry().with(layer).init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handshake_targets_are_never_loggable() {
        for target in [
            "tungstenite::handshake",
            "tungstenite::handshake::client",
            "tokio_tungstenite::handshake",
            "tokio_tungstenite",
        ] {
            assert!(!loggable(target), "{target}");
        }
        for target in [
            "tungstenite::protocol",
            "tungstenite::handshakes_elsewhere",
            "reelthyme_transport::websocket",
            "rustls::client::hs",
        ] {
            assert!(loggable(target), "{target}");
        }
    }
}
