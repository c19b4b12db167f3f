//! Transports for OpenAI's Realtime API.
//!
//! - [`Endpoint`]: OpenAI, Azure GA, Azure's legacy preview (beta dialect) or any
//!   compatible server; the target (model, sideband `call_id`, transcription); credentials
//!   that never reach a log or `Debug`.
//! - [`connect`] / [`WebSocket`]: a WebSocket connection (tokio + tungstenite, rustls with
//!   the `ring` provider and the Mozilla roots), as a [`FrameSender`] (cloneable, bounded,
//!   ordered) and a [`FrameReceiver`]; keepalive; every close code and handshake failure as
//!   a typed [`Error`].
//! - [`create_client_secret`] (ephemeral keys for browsers and mobile) and [`hangup`].
//! - [`Transport`]: the trait the WebRTC transport will implement too.
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

mod endpoint;
mod error;
mod http;
mod pipe;
mod rest;
mod tls;
mod websocket;

pub use endpoint::{ApiKey, DEFAULT_MODEL, Dialect, Endpoint, Flavor, OPENAI_BASE, Target};
pub use error::{BoxError, Error, ErrorKind, Result};
pub use pipe::{FrameReceiver, FrameSender};
pub use rest::{ClientSecret, ClientSecretRequest, create_client_secret, hangup};
pub use websocket::{Connection, Options, Transport, WebSocket, connect};

// README.md's examples are tested as doctests too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
