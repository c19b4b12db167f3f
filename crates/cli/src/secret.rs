//! `reelthyme mint-secret`: an ephemeral key for a browser or mobile client.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use reelthyme::events::SessionConfig;
use reelthyme::{ClientSecretRequest, Endpoint, Options};

#[derive(Debug, Args)]
pub(crate) struct MintArgs {
    /// A compatible server's base URL (default: OpenAI).
    /// `OPENAI_BASE_URL` is read too, after `REELTHYME_BASE_URL`.
    #[arg(long, env = "REELTHYME_BASE_URL")]
    base_url: Option<String>,
    /// The standard API key that mints it (default: `OPENAI_API_KEY`).
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    api_key: String,
    /// The model of the session the key starts.
    #[arg(long, env = "REELTHYME_MODEL", default_value = reelthyme::transport::DEFAULT_MODEL)]
    model: String,
    /// Instructions for that session.
    #[arg(long)]
    instructions: Option<String>,
    /// Its voice.
    #[arg(long)]
    voice: Option<String>,
    /// Seconds the key lives (10 to 7200).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u32).range(10..=7200))]
    expires_in: u32,
    /// Print the whole response as JSON instead of the key alone.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: MintArgs) -> Result<ExitCode> {
    crate::block_on(async {
        let mut endpoint = Endpoint::openai(&args.model).api_key(args.api_key);
        if let Some(base) = &crate::base_url(args.base_url.clone()) {
            endpoint = endpoint.base_url(base);
        }
        let mut session = SessionConfig::realtime();
        session.model = Some(args.model.clone());
        session.instructions = args.instructions;
        if let Some(voice) = args.voice {
            session.audio_output_mut().voice = Some(voice.as_str().into());
        }
        let request = ClientSecretRequest::new(session, args.expires_in);
        let secret = reelthyme::create_client_secret(&endpoint, &request, &Options::default())
            .await
            .context("cannot mint the key")?;
        if args.json {
            let json = serde_json::json!({
                "value": secret.value.expose_secret(),
                "expires_at": secret.expires_at,
                "session": secret.session,
            });
            println!("{json}");
        } else {
            println!("{}", secret.value.expose_secret());
        }
        Ok(ExitCode::SUCCESS)
    })
}
