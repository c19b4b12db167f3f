//! Transports for OpenAI's Realtime API.
//!
//! - [`Endpoint`]: OpenAI, Azure GA, Azure's legacy preview (beta dialect) or any
//!   compatible server; the target (model, sideband `call_id`, transcription); credentials
//!   that never reach a log or `Debug`.
//! - [`Transport`]: the seam every transport implements, in this crate or another; a
//!   [`Connection`] is a [`FrameSender`] (cloneable, bounded, ordered), a [`FrameReceiver`]
//!   (frames stamped with their arrival) and, for transports that carry audio as tracks,
//!   [`Media`]. [`pipe`] builds the frame pipe with its contract (waits, never drops;
//!   memory bounded; frames never written reported in [`Error::unsent`]; one verdict).
//! - [`WebSocket`] / [`connect`]: a WebSocket connection (tokio + tungstenite, rustls with
//!   the `ring` provider and the Mozilla roots); keepalive; every close code and handshake
//!   failure as a typed [`Error`].
//! - [`send_request`]: the endpoint's REST API (a WebRTC transport's SDP signalling, with
//!   [`HttpResponse::location`]); [`create_client_secret`] (ephemeral keys for browsers
//!   and mobile) and [`hangup`] on it.
//!
//! Most users want the `reelthyme` facade, which adds event types, transforms and
//! validation on top.
//!
//! # Example
//! ```no_run
//! # async fn demo() -> reelthyme_transport::Result<()> {
//! use futures_util::StreamExt;
//! use reelthyme_transport::{Endpoint, Options, connect};
//!
//! let endpoint = Endpoint::from_env()?;
//! let mut connection = connect(&endpoint, &Options::default()).await?;
//! connection.sender.send(r#"{"type":"response.create"}"#.to_owned()).await?;
//! while let Some(frame) = connection.receiver.next().await {
//!     println!("{}", frame?);
//! }
//! # Ok(()) }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod connection;
mod endpoint;
mod error;
mod net;
mod options;
mod pipe;
mod rest;
mod tls;
mod websocket;

pub use connection::{
    AudioChunk, Connecting, Connection, Media, MediaLink, MediaReceiver, Transport,
};
pub use endpoint::{ApiKey, DEFAULT_MODEL, Dialect, Endpoint, Flavor, OPENAI_BASE, Target};
pub use error::{BoxError, Error, ErrorKind, Result};
pub use options::Options;
pub use pipe::{
    CloseRequest, Command, End, Flushed, Frame, FrameReceiver, FrameSender, Inbox, Link, Outbox,
    Queues, Slot, pipe,
};
pub use rest::{
    ClientSecret, ClientSecretRequest, HttpRequest, HttpResponse, create_client_secret, hangup,
    send_request,
};
/// The `http` crate, whose types appear in this API (headers).
pub use tokio_tungstenite::tungstenite::http;
pub use websocket::{WebSocket, connect};

// README.md's examples are tested as doctests too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
