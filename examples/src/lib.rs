//! Shared by the examples: OpenAI when `OPENAI_API_KEY` is set, else a local simulator.

use reelthyme::{Config, Endpoint};
use reelthyme_sim::{SimConfig, Simulator};

/// Where the examples connect, and the simulator that must live as long as they do.
#[derive(Debug)]
pub struct Target {
    /// The configuration to connect with.
    pub config: Config,
    /// The simulator, when there is no key.
    pub simulator: Option<Simulator>,
}

impl Target {
    /// OpenAI with `OPENAI_API_KEY`; otherwise a simulator started with `sim`.
    ///
    /// # Errors
    /// When the simulator cannot start.
    pub async fn new(sim: SimConfig) -> std::io::Result<Self> {
        if let Ok(config) = Config::from_env() {
            eprintln!("using OpenAI ({})", config.endpoint().url());
            return Ok(Self {
                config,
                simulator: None,
            });
        }
        let simulator = Simulator::start(sim).await?;
        eprintln!(
            "no OPENAI_API_KEY: using the built-in simulator at {}",
            simulator.url()
        );
        // The simulator accepts any key when none is configured; REST calls need one.
        let endpoint = Endpoint::openai("gpt-realtime")
            .base_url(&format!("{}/v1", simulator.url()))
            .api_key("sk-local-simulator");
        Ok(Self {
            config: Config::new(endpoint),
            simulator: Some(simulator),
        })
    }

    /// The endpoint, for REST calls and other connections.
    pub fn endpoint(&self) -> &Endpoint {
        self.config.endpoint()
    }
}
