//! `reelthyme`: realtime conversations from the terminal, and the tools around them.
//!
//! Exit status: 0 on success, 1 when a check or conversation failed, 2 on bad usage or
//! unreadable input.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod events;

#[derive(Debug, Parser)]
#[command(
    name = "reelthyme",
    version,
    about = "Realtime voice and text conversations on OpenAI's Realtime API"
)]
struct Cli {
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Events { command } => events::run(command),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("reelthyme: {error:#}");
            ExitCode::from(2)
        }
    }
}
