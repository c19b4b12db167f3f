//! `reelthyme`: realtime conversations from the terminal, and the tools around them.
//!
//! Exit status: 0 on success, 1 when a check, a conversation or a request failed, 2 on
//! bad usage or unreadable input.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod chat;
mod events;
mod replay;
mod secret;
mod sim;
mod talk;

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
    Talk(talk::TalkArgs),
    /// Chat by text: interactively, or one scripted turn (`--message`, `--jsonl`).
    Chat(chat::ChatArgs),
    /// Mint an ephemeral key (`ek_…`) for a browser or mobile client; prints it.
    MintSecret(secret::MintArgs),
    /// Serve a recorded session (`chat --record`) as a server; prints its `ws://` base first.
    Replay(replay::ReplayArgs),
    /// Serve the local Realtime API simulator; prints its `ws://HOST:PORT` base first.
    Sim(sim::SimArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Events { command } => events::run(command),
        Command::Talk(args) => talk::run(args),
        Command::Chat(args) => chat::run(args),
        Command::MintSecret(args) => secret::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Sim(args) => sim::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("reelthyme: {error:#}");
            if error.downcast_ref::<Usage>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
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

/// Logs go to stderr, so stdout stays for output scripts read.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
