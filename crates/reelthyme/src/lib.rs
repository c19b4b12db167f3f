//! Realtime voice and text conversations on OpenAI's Realtime API (and Azure OpenAI, and
//! compatible servers), in three verbs after the Clojure library it ports:
//!
//! - [`connect`] — a [`Session`]: a `Sink` of client events and a `Stream` of typed server
//!   events, with an outgoing transform (e.g. [`validate`]), an incoming transform and an
//!   error handler ([`Config`]);
//! - `stream` — the answer's audio to the default (or a named) speaker and every other event
//!   to you, with automatic barge-in: when the server hears the user, playback stops, the
//!   response is cancelled and the item is truncated at exactly what the device played;
//! - `capture_audio` — the microphone into the session, 40 ms per
//!   `input_audio_buffer.append` (PCM16, or G.711 at 8 kHz).
//!
//! (`stream` and `capture_audio` come with the default feature `audio`.) Unlike the
//! original, an event refused by the outgoing transform is an error for its sender, never a
//! silent drop; queues are bounded both ways, so bursts of sends wait for room and a slow
//! reader holds the server back instead of losing events. Everything can be tested offline
//! against the `reelthyme-sim` simulator. The library runs on Tokio: call it from inside a
//! Tokio runtime.
//!
//! # Example
//!
//! A text turn, here against the local simulator; for OpenAI use [`Config::from_env`]
//! (`OPENAI_API_KEY`, and optionally `OPENAI_BASE_URL` and `REELTHYME_MODEL`).
//!
//! ```
//! use futures_util::StreamExt;
//! use reelthyme::events::{ClientEvent, ResponseParams, ServerEvent};
//! use reelthyme::{Config, Endpoint};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sim = reelthyme_sim::Simulator::start(Default::default()).await?;
//! let endpoint = Endpoint::openai("gpt-realtime").base_url(&sim.url()).api_key("sk-local");
//!
//! let session = reelthyme::connect(Config::new(endpoint).outgoing(reelthyme::validate)).await?;
//! let (mut tx, mut events) = session.split(); // `tx` is Clone: send from many tasks
//! tx.send(ClientEvent::user_text("What is the weather like in Paris today?")).await?;
//! tx.send(ClientEvent::response_create_with(ResponseParams::text())).await?;
//! let mut answer = String::new();
//! while let Some(event) = events.next().await {
//!     match event? {
//!         ServerEvent::ResponseOutputTextDelta(delta) => answer.push_str(&delta.delta),
//!         ServerEvent::ResponseDone(_) => break,
//!         _ => {}
//!     }
//! }
//! assert!(!answer.is_empty());
//! # Ok(()) }
//! ```
//!
//! Voice, on the default sound devices (feature `audio`):
//!
//! ```no_run
//! # #[cfg(feature = "audio")]
//! # async fn demo() -> reelthyme::Result<()> {
//! use futures_util::StreamExt;
//! use reelthyme::{CaptureOptions, Config};
//!
//! let session = reelthyme::connect(Config::from_env()?).await?;
//! let tx = session.sender(); // take it before `stream` consumes the session
//! let (mut events, audio) = reelthyme::stream(session)?;
//! let capture = reelthyme::capture_audio(&tx, CaptureOptions::default())?;
//! // Audio plays only while `events` is polled: keep this loop free of slow awaits.
//! while let Some(event) = events.next().await {
//!     let event = event?;
//!     if event.type_name() == "response.done" {
//!         break;
//!     }
//! }
//! capture.stop().await?; // sends the last partial chunk, releases the microphone
//! # drop(audio);
//! # Ok(()) }
//! ```
//!
//! # Crates
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`events`] | `reelthyme-schema` | the typed events, validation, the beta dialect |
//! | [`transport`] | `reelthyme-transport` | endpoints, WebSocket, REST calls, errors |
//! | `audio_io` | `reelthyme-audio` | resampling, codecs, devices (feature `audio`) |
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `audio` | yes | `stream` and `capture_audio` on sound devices through cpal (on Linux: links ALSA, so building needs `libasound2-dev` and `pkg-config`) |
//! | `aec` | yes | echo control when `stream` and `capture_audio` are used together: the microphone's echo of the speaker cancelled (WebRTC's AEC3, pure Rust) — see [`CaptureOptions::echo`] |
//!
//! With `default-features = false` the crate needs no system library.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

#[cfg(feature = "audio")]
mod audio;
mod config;
mod core;
mod layer;
mod metrics;
mod mirror;
mod receiver;
mod reconnect;
mod sender;
mod sequencer;
mod session;
mod supervisor;
mod tools;
#[cfg(feature = "audio")]
mod voice;

#[cfg(feature = "audio")]
pub use audio::{
    AudioControl, AudioEvents, AudioLayer, CaptureHandle, CaptureOptions, Echo, StreamOptions,
    capture_audio, capture_audio_with_clock, stream, stream_to, stream_with,
};
pub use config::{Config, WhenDisconnected, validate};
pub use layer::{Layer, LayerContext};
pub use metrics::{Metrics, MetricsLayer, TurnMetrics, TurnStart};
pub use mirror::{Entry, EntryKind, History, Mirror, MirrorLayer};
pub use receiver::SessionEvents;
pub use reconnect::{LostResponse, Reconnect, ReconnectEvent, ReconnectEvents, Reconnected};
#[cfg(feature = "audio")]
pub use reelthyme_audio as audio_io;
pub use reelthyme_schema as events;
pub use reelthyme_transport as transport;
pub use reelthyme_transport::{
    ClientSecret, ClientSecretRequest, Endpoint, Error, ErrorKind, Options, Result, Transport,
    WebSocket, create_client_secret, hangup,
};
/// The WebRTC transport (feature `webrtc`): a session over WebRTC is
/// `Config::new(endpoint).transport(reelthyme::webrtc::WebRtc::new())`, used like any other.
#[cfg(feature = "webrtc")]
pub use reelthyme_webrtc as webrtc;
pub use sender::SessionSender;
pub use sequencer::{ResponseOutcome, ResponseTicket, Sequencer, SequencerLayer};
pub use session::{Session, connect};
pub use tools::{
    FOLLOW_UP_EVENT_ID_PREFIX, Json, MAX_PENDING_APPROVALS, McpApprovalLayer, McpApprovalRequest,
    McpApprovals, Tool, ToolError, ToolOutput, mcp_approval,
};
#[cfg(feature = "audio")]
pub use voice::{DRAIN_BOUND, Line, Voice};

// README.md's examples are tested as doctests too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
