//! The endpoint an example or a demo talks to: the real service when the environment names
//! one, else a simulator started on loopback.

use reelthyme_transport::Endpoint;

use crate::{SimConfig, Simulator};

/// The key the endpoint of a simulator started here sends: the simulator takes any key
/// unless configured with one, and REST calls need one sent.
const LOCAL_KEY: &str = "sk-local-simulator";

/// [`Endpoint::from_env`] when `OPENAI_API_KEY` is set (with `OPENAI_BASE_URL` or
/// `REELTHYME_BASE_URL` for another server, `REELTHYME_MODEL`); otherwise a [`Simulator`]
/// on loopback with `config`, and an endpoint to it. Keep the simulator as long as the
/// session: dropping it stops it. Which one was chosen is logged at INFO.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// let (endpoint, _simulator) =
///     reelthyme_sim::endpoint_or_simulator(reelthyme_sim::SimConfig::default()).await?;
/// # let _ = endpoint;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// When the simulator cannot bind a loopback port.
pub async fn endpoint_or_simulator(
    config: SimConfig,
) -> std::io::Result<(Endpoint, Option<Simulator>)> {
    if let Ok(endpoint) = Endpoint::from_env() {
        tracing::info!(url = %endpoint.url(), "OPENAI_API_KEY is set: using the service");
        return Ok((endpoint, None));
    }
    let simulator = Simulator::start(config).await?;
    tracing::info!(url = %simulator.url(), "no OPENAI_API_KEY: using a local simulator");
    let endpoint = Endpoint::openai("gpt-realtime")
        .base_url(&simulator.url())
        .api_key(LOCAL_KEY);
    Ok((endpoint, Some(simulator)))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Without a key in the environment (the tests' environment has none), a simulator
    // answers on loopback, at the endpoint returned.
    #[tokio::test]
    async fn without_a_key_a_local_simulator_is_started() {
        if std::env::var_os("OPENAI_API_KEY").is_some() {
            return;
        }
        let (endpoint, simulator) = endpoint_or_simulator(SimConfig::default()).await.unwrap();
        let simulator = simulator.expect("a simulator");
        assert!(
            endpoint.url().starts_with(&simulator.url()),
            "{}",
            endpoint.url()
        );
        simulator.shutdown().await;
    }
}
