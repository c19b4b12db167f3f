//! `reelthyme events …`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use reelthyme_schema::Direction;
use reelthyme_schema::check::{CheckOptions, Dialect, check_line};

#[derive(Debug, Subcommand)]
pub(crate) enum EventsCommand {
    /// Check JSON Lines of events: each line must parse, validate (and with --roundtrip,
    /// re-serialise to the same JSON). A line is a bare event, or an object with the event
    /// under `event` or `example` plus `direction` (and optionally `version`, `type`).
    /// Prints each failing line, then `N passed, N failed`; exits 1 if any failed.
    Check {
        /// Direction of bare events (default: inferred from the type).
        #[arg(long, value_enum)]
        direction: Option<DirectionArg>,
        /// Protocol dialect (default: a row's `version`, else GA).
        #[arg(long, value_enum)]
        dialect: Option<DialectArg>,
        /// Also check that parse → serialise gives back the same JSON.
        #[arg(long)]
        roundtrip: bool,
        /// Report unknown server event types and fields without failing.
        #[arg(long)]
        drift: bool,
        /// The file to read; `-` or nothing reads standard input.
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum DirectionArg {
    Client,
    Server,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum DialectArg {
    Ga,
    Beta,
}

pub(crate) fn run(command: EventsCommand) -> Result<ExitCode> {
    match command {
        EventsCommand::Check {
            direction,
            dialect,
            roundtrip,
            drift,
            file,
        } => {
            let options = CheckOptions {
                direction: direction.map(|d| match d {
                    DirectionArg::Client => Direction::Client,
                    DirectionArg::Server => Direction::Server,
                }),
                dialect: dialect.map(|d| match d {
                    DialectArg::Ga => Dialect::Ga,
                    DialectArg::Beta => Dialect::Beta,
                }),
                roundtrip,
                drift,
            };
            let input: Box<dyn Read> =
                match file.as_deref() {
                    None => Box::new(std::io::stdin()),
                    Some(path) if path.as_os_str() == "-" => Box::new(std::io::stdin()),
                    Some(path) => Box::new(std::fs::File::open(path).map_err(|e| {
                        crate::Usage(format!("cannot open {}: {e}", path.display()))
                    })?),
                };
            check(
                BufReader::new(input),
                options,
                &mut std::io::stdout().lock(),
            )
        }
    }
}

fn check(input: impl BufRead, options: CheckOptions, out: &mut impl Write) -> Result<ExitCode> {
    let (mut passed, mut failed) = (0_usize, 0_usize);
    for (index, line) in input.lines().enumerate() {
        let line = line.context("cannot read input")?;
        // Blank lines, and the header line of a `reelthyme chat --record` recording.
        if line.trim().is_empty() || is_recording_header(&line) {
            continue;
        }
        let outcome = check_line(&line, options);
        let direction = outcome
            .direction
            .map_or_else(|| "?".to_owned(), |d| d.to_string());
        let label = format!(
            "line {}: {} ({direction}",
            index + 1,
            display_type(&outcome.type_name)
        );
        let dialect = if outcome.dialect == Dialect::Beta {
            ", beta)"
        } else {
            ")"
        };
        for drift in &outcome.drift {
            writeln!(out, "{label}{dialect}: drift: {drift}")?;
        }
        if outcome.passed() {
            passed += 1;
        } else {
            failed += 1;
            for failure in &outcome.failures {
                writeln!(out, "{label}{dialect}: {failure}")?;
            }
        }
    }
    writeln!(out, "{passed} passed, {failed} failed")?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn is_recording_header(line: &str) -> bool {
    line.contains("reelthyme_recording")
        && serde_json::from_str::<serde_json::Value>(line)
            .is_ok_and(|v| v.get("reelthyme_recording").is_some())
}

fn display_type(type_name: &str) -> String {
    if type_name.is_empty() {
        "<no type>".to_owned()
    } else {
        format!("{type_name:?}").trim_matches('"').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_check(input: &str, roundtrip: bool) -> (ExitCode, String) {
        let mut out = Vec::new();
        let code = check(
            input.as_bytes(),
            CheckOptions {
                roundtrip,
                ..CheckOptions::default()
            },
            &mut out,
        )
        .unwrap();
        (code, String::from_utf8(out).unwrap())
    }

    #[test]
    fn reports_each_failing_line_then_the_totals() {
        let input = concat!(
            "{\"type\":\"input_audio_buffer.commit\"}\n",
            "\n",
            "not json\n",
            "{\"type\":\"session.update\",\"session\":{\"type\":\"realtime\",\"bogus\":1}}\n",
        );
        let (code, out) = run_check(input, true);
        assert_eq!(code, ExitCode::FAILURE);
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].starts_with("line 3: <no type> (?): json: "),
            "{out}"
        );
        assert!(
            lines[1].starts_with("line 4: session.update (client): validate: /session: "),
            "{out}"
        );
        assert_eq!(lines.last(), Some(&"1 passed, 2 failed"));
    }

    #[test]
    fn all_good_input_exits_zero() {
        let (code, out) = run_check("{\"type\":\"response.create\"}\n", true);
        assert_eq!(
            (code, out.as_str()),
            (ExitCode::SUCCESS, "1 passed, 0 failed\n")
        );
    }
}
