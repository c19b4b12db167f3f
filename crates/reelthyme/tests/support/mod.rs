//! What the facade's integration tests share (each test binary uses all of it).

use std::time::Duration;

use futures_util::StreamExt;
use reelthyme::Endpoint;
use reelthyme::events::ServerEvent;
use reelthyme_sim::{Recorder, SimConfig, Simulator};

/// The bound of every wait for the server.
pub const WAIT: Duration = Duration::from_secs(20);

/// A simulator that records its sessions.
pub async fn start(config: SimConfig) -> (Simulator, Recorder) {
    let recorder = Recorder::new();
    (
        Simulator::start(config.recorder(recorder.clone()))
            .await
            .unwrap(),
        recorder,
    )
}

/// The simulator's endpoint, with a key it accepts.
pub fn endpoint(sim: &Simulator) -> Endpoint {
    Endpoint::openai("gpt-realtime")
        .base_url(&format!("{}/v1", sim.url()))
        .api_key("sk-test-key")
}

/// The next event of type `kind`, skipping others; panics on an error, the end, or after
/// [`WAIT`].
pub async fn until(
    events: &mut (impl futures_util::Stream<Item = reelthyme::Result<ServerEvent>> + Unpin),
    kind: &str,
) -> ServerEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events
                .next()
                .await
                .expect("the stream ended")
                .expect("an error arrived");
            if event.type_name() == kind {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {kind}"))
}
