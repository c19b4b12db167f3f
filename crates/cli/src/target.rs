//! Where `chat` and `talk` connect: the server `--base-url` names, OpenAI when there is a
//! key, or else (and with `--sim`) a simulator started in this process.

use anyhow::Result;
use reelthyme::Endpoint;
use reelthyme_sim::{SimConfig, Simulator};

/// The chosen server.
pub(crate) struct Target {
    pub(crate) endpoint: Endpoint,
    /// What it is, for people: `server URL`, `OpenAI`, or the simulator.
    pub(crate) source: String,
    /// The built-in simulator, when that is the server: it serves as long as this lives.
    simulator: Option<Simulator>,
}

impl Target {
    /// The built-in simulator's base URL, when the conversation is with it.
    pub(crate) fn simulator_url(&self) -> Option<String> {
        self.simulator.as_ref().map(Simulator::url)
    }
}

/// `--base-url` (or `REELTHYME_BASE_URL`/`OPENAI_BASE_URL`) with the key if there is one;
/// else OpenAI with the key; else, or with `--sim`, a simulator configured as `sim`.
///
/// # Errors
/// When the simulator cannot start.
pub(crate) async fn select(
    base_url: Option<String>,
    api_key: Option<String>,
    model: &str,
    sim: bool,
    simulator: SimConfig,
) -> Result<Target> {
    let key = api_key.filter(|k| !k.trim().is_empty());
    let target = match (crate::base_url(base_url), key, sim) {
        (Some(base), key, false) => {
            let endpoint = Endpoint::openai(model).base_url(&base);
            Target {
                endpoint: key.map_or(endpoint.clone(), |k| endpoint.api_key(k)),
                source: format!("server {base}"),
                simulator: None,
            }
        }
        (None, Some(key), false) => Target {
            endpoint: Endpoint::openai(model).api_key(key),
            source: "OpenAI".to_owned(),
            simulator: None,
        },
        _ => {
            let started = Simulator::start(simulator).await?;
            Target {
                endpoint: Endpoint::openai(model).base_url(&format!("{}/v1", started.url())),
                source: "built-in simulator (no OPENAI_API_KEY)".to_owned(),
                simulator: Some(started),
            }
        }
    };
    Ok(target)
}
