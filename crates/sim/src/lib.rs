//! A local simulator of OpenAI's Realtime API: the real wire protocol over a real
//! WebSocket on loopback, faithful enough that the official SDKs run against it unmodified —
//! or in process, without a socket, through [`Simulator::in_process`] (a
//! `reelthyme_transport::Transport`).
//!
//! With the `webrtc` feature (on by default) it also answers WebRTC calls,
//! `POST /v1/realtime/calls` on `http://HOST:PORT/v1`: events on the `oai-events` data
//! channel through the same session loop, the synthesized answers on an Opus track (with
//! `output_audio_buffer.*`, and server-side truncation at what the track carried when the
//! user barges in), the client's track into the input buffer and its VAD.
//!
//! Tests, examples and the CLI's offline mode run against it; so can your own tests. It
//! speaks GA (and, when configured, the beta dialect), checks credentials and URLs the way
//! OpenAI does (101, then `error` and close 3000/4000), keeps a conversation, simulates
//! server VAD on the PCM energy, transcribes deterministically, and answers with text,
//! synthesized audio (paced in real time, or faster), or function calls — scriptable (with
//! [`Rule`]s in Rust, or from a TOML script: [`SimConfig::from_script`], the file
//! `reelthyme sim --script` reads), with fault injection.
//!
//! # Example
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use reelthyme_sim::{Simulator, SimConfig};
//!
//! let sim = Simulator::start(SimConfig::default().speed(20.0)).await?;
//! println!("connect to {}", sim.realtime_url("gpt-realtime"));
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod admission;
mod auth;
mod config;
mod engine;
mod frames;
mod handshake;
mod http;
mod ids;
mod in_process;
mod local;
mod replay;
mod rest;
mod script;
mod server;
mod session_loop;
mod state;
mod synth;
mod track;
mod vad;
#[cfg(feature = "webrtc")]
mod webrtc;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use auth::AuthKind;
pub use config::{
    BetaMode, FaultAction, Faults, Match, Recorded, Recorder, Reply, Rule, SimConfig,
};
pub use handshake::ConnectionInfo;
pub use in_process::InProcess;
pub use local::endpoint_or_simulator;
pub use replay::{
    Entry, RECORDING_VERSION, RecordingError, header as recording_header, read_recording,
};
pub use script::{ScriptError, VoiceError};

/// How many connections [`Simulator::connections`] remembers: the latest ones.
pub const CONNECTION_LOG: usize = 256;

/// A running simulator. Dropping it stops accepting connections and closes every session.
#[derive(Debug)]
pub struct Simulator {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    accept: Option<JoinHandle<()>>,
    shared: Arc<state::Shared>,
}

impl Simulator {
    /// Starts on an ephemeral port of 127.0.0.1.
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub async fn start(config: SimConfig) -> std::io::Result<Self> {
        Self::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Starts on the given address (port 0 picks one).
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn bind(addr: SocketAddr, config: SimConfig) -> std::io::Result<Self> {
        Self::bind_with(addr, config, None).await
    }

    /// Serves a recording instead of simulating: every connection gets the recorded server
    /// events in order, each recorded client event waiting for one from the client (see
    /// [`read_recording`] for the format).
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn replay(addr: SocketAddr, entries: Vec<Entry>) -> std::io::Result<Self> {
        Self::bind_with(addr, SimConfig::default(), Some(entries)).await
    }

    async fn bind_with(
        addr: SocketAddr,
        config: SimConfig,
        replay: Option<Vec<Entry>>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (shutdown, receiver) = watch::channel(false);
        let shared = Arc::new(state::Shared::new(config, receiver, replay));
        let accept_shared = shared.clone();
        let accept = tokio::spawn(accept_loop(listener, accept_shared));
        tracing::info!(%addr, "simulator listening");
        Ok(Self {
            addr,
            shutdown,
            accept: Some(accept),
            shared,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://HOST:PORT`: the base to give clients (the official SDKs take
    /// `ws://HOST:PORT/v1` as `websocket_base_url`).
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The full URL of a realtime session with `model`.
    pub fn realtime_url(&self, model: &str) -> String {
        format!("ws://{}/v1/realtime?model={model}", self.addr)
    }

    /// Opens a call (`rtc_…`) that sideband sessions can attach to with `?call_id=` and
    /// `POST /v1/realtime/calls/{call_id}/hangup` can end, without a peer connection (a
    /// WebRTC call opens its own; this stands in for SIP).
    pub fn open_call(&self) -> String {
        self.shared.open_call()
    }

    /// A [`reelthyme_transport::Transport`] to this simulator without a socket: sessions
    /// run in this process, on the transport's frame pipe (see [`InProcess`]).
    pub fn in_process(&self) -> InProcess {
        InProcess::new(self.shared.clone())
    }

    /// The handshakes of the latest [`CONNECTION_LOG`] connections, oldest first, secrets
    /// left out.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        state::lock(&self.shared.connections)
            .iter()
            .cloned()
            .collect()
    }

    /// Stops accepting, closes every session with 1001, and waits for the accept loop.
    /// Sessions end on their own tasks: one whose client stopped reading (so the close frame
    /// cannot be written) is dropped within a few seconds.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(accept) = self.accept.take() {
            let _ = accept.await;
        }
    }
}

/// Accepts until shutdown: at most `max_connections` at once (the rest get 503), backing off
/// when `accept` fails (e.g. out of file descriptors, when retrying at once would spin).
async fn accept_loop(listener: TcpListener, shared: Arc<state::Shared>) {
    let mut stop = shared.shutdown.clone();
    let permits = Arc::new(tokio::sync::Semaphore::new(shared.config.max_connections));
    let mut backoff = std::time::Duration::from_millis(5);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff = std::time::Duration::from_millis(5);
                    let _ = stream.set_nodelay(true);
                    match permits.clone().try_acquire_owned() {
                        Ok(permit) => {
                            tokio::spawn(http::serve(stream, shared.clone(), Arc::new(permit)));
                        }
                        Err(_) => {
                            tracing::warn!("connection refused: at the connection cap");
                            tokio::spawn(http::refuse_busy(stream));
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?backoff, "accept failed");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => break,
                    }
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(1));
                }
            },
            _ = stop.changed() => break,
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
    }
}

// README.md's examples are tested as doctests too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
