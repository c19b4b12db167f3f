//! `reelthyme-bench`: the harnesses `cargo xtask bench` runs, one process each, pinned by
//! the caller (`taskset -c N`). Each command runs on a single-threaded runtime, so one
//! process is one core's worth of work.
//!
//! - `codec [--fixtures DIR] [--seconds S] [--rounds R]`: decode/encode throughput.
//! - `write-fixtures DIR`: writes `benchmarks/fixtures/` (the peers read the same bytes).
//! - `sim`: the simulator of the scale run; prints `sim url=ws://…` and serves until its
//!   standard input closes (so it never outlives the process that started it).
//! - `scale --url URL --sessions N [--warmup S] [--seconds S] [--batch B]`: N sessions.
//! - `audio [--seconds S] [--barge-ins N]` (feature `audio`): the audio path latencies on
//!   clocked devices, against an in-process simulator (a two-worker runtime: the device
//!   threads are the clocks, the runtime the session and the simulator).

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reelthyme_bench::{codec, scale};
use tokio::io::AsyncReadExt;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `--name VALUE` from the arguments, parsed.
fn option<T: std::str::FromStr>(args: &[String], name: &str) -> Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    let Some(position) = args.iter().position(|a| a == name) else {
        return Ok(None);
    };
    let value = args
        .get(position + 1)
        .with_context(|| format!("{name} needs a value"))?;
    value
        .parse()
        .map(Some)
        .map_err(|e| anyhow::anyhow!("{name} {value}: {e}"))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("codec") => {
            let dir: PathBuf = option(&args, "--fixtures")?
                .unwrap_or_else(|| PathBuf::from("benchmarks/fixtures"));
            let fixtures = codec::Fixtures::load(&dir)?;
            let seconds = option(&args, "--seconds")?.unwrap_or(1.0);
            let rounds = option(&args, "--rounds")?.unwrap_or(5);
            for line in codec::run(&fixtures, seconds, rounds)? {
                println!("{line}");
            }
            Ok(())
        }
        Some("write-fixtures") => {
            let dir = args.get(1).context("write-fixtures DIR")?;
            codec::Fixtures::generate().write(dir.as_ref())
        }
        Some("sim") => runtime()?.block_on(async {
            let sim = scale::start_sim().await?;
            println!("sim url={}", sim.url());
            // Serve until whoever started us closes our standard input.
            let mut stdin = tokio::io::stdin();
            let mut buffer = [0_u8; 64];
            while stdin.read(&mut buffer).await? > 0 {}
            drop(sim);
            Ok(())
        }),
        Some("scale") => {
            let url: String = option(&args, "--url")?.context("scale needs --url")?;
            let plan = scale::Plan {
                sessions: option(&args, "--sessions")?.unwrap_or(10),
                warmup: Duration::from_secs_f64(option(&args, "--warmup")?.unwrap_or(2.0)),
                measure: Duration::from_secs_f64(option(&args, "--seconds")?.unwrap_or(5.0)),
                connect_batch: option(&args, "--batch")?.unwrap_or(50),
            };
            let line = runtime()?.block_on(scale::run(&url, plan))?;
            println!("{line}");
            Ok(())
        }
        #[cfg(feature = "audio")]
        Some("audio") => {
            let plan = reelthyme_bench::audio_path::Plan {
                duplex: Duration::from_secs_f64(option(&args, "--seconds")?.unwrap_or(20.0)),
                barge_ins: option(&args, "--barge-ins")?.unwrap_or(20),
            };
            let lines = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?
                .block_on(reelthyme_bench::audio_path::run(plan))?;
            for line in lines {
                println!("{line}");
            }
            Ok(())
        }
        _ => bail!(
            "usage: reelthyme-bench <codec [--fixtures DIR] [--seconds S] [--rounds R] | write-fixtures DIR | sim | scale --url URL --sessions N [--warmup S] [--seconds S] [--batch B] | audio [--seconds S] [--barge-ins N]>"
        ),
    }
}
