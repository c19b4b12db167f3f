//! `reelthyme sim`: the local Realtime API simulator as a server.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use reelthyme_sim::{BetaMode, SimConfig, Simulator};

#[derive(Debug, Args)]
pub(crate) struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// How many times faster than real time audio is generated.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Accept only this API key (repeatable; default: any key or none).
    #[arg(long = "api-key", value_name = "KEY")]
    api_keys: Vec<String>,
    /// What the beta header gets: `reject` (as OpenAI does today) or `speak` the beta dialect.
    #[arg(long, value_enum, default_value_t = BetaArg::Reject)]
    beta: BetaArg,
    /// Transcript for the next user audio turn (repeatable, used in order, after the
    /// script's).
    #[arg(long = "transcript", value_name = "TEXT")]
    transcripts: Vec<String>,
    /// Script the answers from a TOML file (rules, transcripts; see --help).
    ///
    /// Each `[[rule]]` is tried in order before the default behaviour; the first that matches
    /// the latest input answers. A rule matches on `contains = "TEXT"` (the user's text or
    /// transcript, ignoring case), on `after_tool = "NAME"` (the turn after that function
    /// tool's output; `true`: any tool's), or, with neither, every input. It answers with
    /// exactly one of `text = "..."`, `function_call = { name = "NAME", arguments = { ... } }`
    /// (a table sent as JSON, or a string sent as it is), `function_calls = [{ name = "A" },
    /// { name = "B", arguments = { ... } }]` (parallel calls: several in one response),
    /// `mcp_approval = { server_label = "S", name = "TOOL", arguments = { ... } }` (an MCP
    /// approval request for the client to answer),
    /// `fail = { code = "...", message = "..." }` (response.done with status "failed"; both
    /// optional) or `echo = "TRANSCRIPT"`
    /// (the user's own audio, spoken back). `delay_ms = N` waits N ms after response.created
    /// before the first output. At the top: `transcripts = ["...", ...]` for the user's audio
    /// turns, `transcript_delay_ms = N` to deliver each transcription N ms after its
    /// commit (after response.created), and `voice = "FILE.wav"` to speak with a recording
    /// (as --voice; the path is relative to the script's directory). Delays are wall-clock,
    /// not scaled by --speed. Example:
    ///
    ///     transcripts = ["What's the weather in Paris?"]
    ///
    ///     [[rule]]
    ///     contains = "weather"
    ///     function_call = { name = "get_weather", arguments = { city = "Paris" } }
    ///
    ///     [[rule]]
    ///     after_tool = "get_weather"
    ///     text = "It is sunny in Paris."
    ///     delay_ms = 300
    ///
    /// A script that is not valid is a usage error (exit status 2) naming the line.
    #[arg(long, value_name = "FILE", verbatim_doc_comment)]
    script: Option<PathBuf>,
    /// Speak audio answers with this recording instead of the synthesized voice.
    ///
    /// A WAV file: any rate (resampled to the session's), mono or stereo (mixed to mono),
    /// 16-bit PCM or 32-bit float. Each answer is the recording from its start, looped and
    /// cut to the answer's length (which still follows its transcript): broadband speech,
    /// what an echo canceller adapts to. Overrides a script's `voice`. A file that cannot be
    /// read or used is a usage error (exit status 2).
    #[arg(long, value_name = "FILE.wav")]
    voice: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BetaArg {
    Reject,
    Speak,
}

pub(crate) fn run(args: SimArgs) -> Result<ExitCode> {
    if !(args.speed.is_finite() && args.speed > 0.0) {
        return Err(crate::Usage(format!(
            "--speed must be a positive number, not {}",
            args.speed
        ))
        .into());
    }
    let config = match &args.script {
        Some(path) => SimConfig::script_file(path).map_err(|e| crate::Usage(e.to_string()))?,
        None => SimConfig::default(),
    };
    let config = match &args.voice {
        Some(path) => config
            .voice_file(path)
            .map_err(|e| crate::Usage(e.to_string()))?,
        None => config,
    };
    let mut config = config
        .speed(args.speed)
        .transcripts(args.transcripts)
        .beta(match args.beta {
            BetaArg::Reject => BetaMode::Reject,
            BetaArg::Speak => BetaMode::Speak,
        });
    for key in args.api_keys {
        config = config.api_key(key);
    }
    crate::block_on(async {
        let sim = Simulator::bind(SocketAddr::new(args.host, args.port), config)
            .await
            .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
        // The first line of stdout is the base URL, for scripts that start us.
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", sim.url())?;
        stdout.flush()?;
        drop(stdout);
        eprintln!(
            "reelthyme sim: serving the Realtime API at {}/v1/realtime (Ctrl-C stops)",
            sim.url()
        );
        tokio::signal::ctrl_c()
            .await
            .context("cannot wait for Ctrl-C")?;
        sim.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}
