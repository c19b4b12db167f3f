//! `--transport websocket|webrtc` for `chat` and `talk`: which `reelthyme::Transport` a
//! session is opened with.

use clap::ValueEnum;
use reelthyme::webrtc::WebRtc;
use reelthyme::{Config, Endpoint};

/// The transport a conversation runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum TransportKind {
    /// Events over a WebSocket, audio as base64 in them.
    #[default]
    #[value(alias = "ws")]
    Websocket,
    /// Events on a WebRTC data channel, audio as an Opus track: the offer goes to
    /// `{base}/realtime/calls`.
    Webrtc,
}

/// The built-in simulator takes any key, but WebRTC signalling (a REST call) must send one.
const SIMULATOR_KEY: &str = "sk-local-simulator";

/// The session's configuration on `kind`: with `audio`, a WebRTC call carries the tracks
/// (`talk`); without, events only (`chat`, where nobody would play them). `simulator`
/// says the endpoint is the built-in simulator.
pub(crate) fn config(
    kind: TransportKind,
    endpoint: Endpoint,
    simulator: bool,
    audio: bool,
) -> Config {
    match kind {
        TransportKind::Websocket => Config::new(endpoint),
        TransportKind::Webrtc => {
            let endpoint = if simulator {
                endpoint.api_key(SIMULATOR_KEY)
            } else {
                endpoint
            };
            Config::new(endpoint).transport(WebRtc::new().audio(audio))
        }
    }
}

/// Where the session is opened, for messages: the WebSocket URL, or the calls endpoint.
pub(crate) fn describe(kind: TransportKind, endpoint: &Endpoint) -> String {
    match kind {
        TransportKind::Websocket => endpoint.url(),
        TransportKind::Webrtc => endpoint
            .rest_base()
            .map_or_else(|_| endpoint.url(), |base| format!("{base}/calls")),
    }
}
