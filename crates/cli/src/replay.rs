//! `reelthyme replay FILE`: serves a recorded session as a server.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The recording (from `reelthyme chat --record`, or written by hand in its format).
    file: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

pub(crate) fn run(args: ReplayArgs) -> Result<ExitCode> {
    let file = std::fs::File::open(&args.file)
        .map_err(|e| crate::Usage(format!("cannot open {}: {e}", args.file.display())))?;
    let entries = reelthyme_sim::read_recording(std::io::BufReader::new(file))
        .map_err(|e| crate::Usage(format!("{}: {e}", args.file.display())))?;
    crate::block_on(async {
        let server =
            reelthyme_sim::Simulator::replay(SocketAddr::new(args.host, args.port), entries)
                .await
                .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", server.url())?;
        stdout.flush()?;
        drop(stdout);
        eprintln!(
            "reelthyme replay: serving {} at {}/v1/realtime (Ctrl-C stops)",
            args.file.display(),
            server.url()
        );
        tokio::signal::ctrl_c()
            .await
            .context("cannot wait for Ctrl-C")?;
        server.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}
