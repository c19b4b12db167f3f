//! Realtime voice and text conversations on OpenAI's Realtime API, in three verbs after the
//! Clojure library it ports: [`connect`] a session (a sink of client events and a stream of
//! server events, with outgoing and incoming transforms and an error handler), `stream`
//! audio to the speaker and `capture_audio` from the microphone (coming with the audio
//! crate).
//!
//! Unlike the original, an event refused by the outgoing transform is an error for its
//! sender (never silently dropped), bursts of sends wait for room instead of being lost,
//! and everything can be tested offline against the `reelthyme-sim` simulator.
//!
//! # Example
//! ```no_run
//! use futures_util::StreamExt;
//! use reelthyme::{self as rt, Config, events::ClientEvent};
//!
//! # async fn demo() -> rt::Result<()> {
//! let session = rt::connect(Config::from_env()?.outgoing(rt::validate)).await?;
//! let mut tx = session.sender();
//! let (_, mut events) = session.split();
//! tx.send(ClientEvent::user_text("What is the weather today?")).await?;
//! tx.send(ClientEvent::response_create()).await?;
//! while let Some(event) = events.next().await {
//!     let event = event?;
//!     println!("{}", event.type_name());
//!     if event.type_name() == "response.done" {
//!         break;
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Crates
//! | module | crate | what |
//! |---|---|---|
//! | [`events`] | `reelthyme-schema` | the typed events, validation, the beta dialect |
//! | [`transport`] | `reelthyme-transport` | endpoints, WebSocket, errors |

#[cfg(feature = "audio")]
mod audio;
mod session;

#[cfg(feature = "audio")]
pub use audio::{
    AudioControl, AudioEvents, CaptureHandle, CaptureOptions, StreamOptions, capture_audio, stream,
    stream_to, stream_with,
};
#[cfg(feature = "audio")]
pub use reelthyme_audio as audio_io;
pub use reelthyme_schema as events;
pub use reelthyme_transport as transport;
pub use reelthyme_transport::{
    ClientSecret, ClientSecretRequest, Endpoint, Error, ErrorKind, Options, Result,
    create_client_secret, hangup,
};
pub use session::{Config, Session, SessionEvents, SessionSender, connect, validate};
