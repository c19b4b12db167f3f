//! The WebRTC transport for OpenAI's Realtime API, on webrtc-rs.
//!
//! [`WebRtc`] implements [`reelthyme_transport::Transport`], so a session over WebRTC is
//! used exactly like one over a WebSocket; only the configuration chooses:
//!
//! - events travel on the `oai-events` data channel, through the same bounded frame pipe
//!   (ordered, nothing lost without a report, one verdict); the channel's buffered amount
//!   is the backpressure;
//! - audio travels as Opus tracks (48 kHz, 20 ms packets), given and taken as mono PCM16
//!   at [`WebRtc::audio_rate`] (24 kHz by default) through
//!   [`Connection::media`](reelthyme_transport::Connection);
//! - signalling is `POST {base}/realtime/calls`: the bare SDP offer for an ephemeral `ek_`
//!   key, a multipart `sdp` + `session` body for a standard key; the call id comes from
//!   `Location` and is [`Connection::call_id`](reelthyme_transport::Connection) (for a
//!   sideband WebSocket); closing hangs the call up.
//!
//! The server's side is here too: [`WebRtc::answer`] answers an offer (what
//! `POST /v1/realtime/calls` does) and [`Answered::connected`] gives the same
//! `Connection`, seen from the server — what the simulator serves calls with.
//!
//! Every wait is bounded: the setup by [`WebRtc::setup_timeout`], a transient
//! `disconnected` by [`WebRtc::disconnected_grace`], a send by [`WebRtc::dead_after`].
//!
//! # How a call ends
//!
//! A data channel has no close codes, so the ends map onto the WebSocket's:
//!
//! - this side closes ([`FrameSender::close`](reelthyme_transport::FrameSender), or every
//!   sender dropped): the queued frames are sent and acknowledged, the channel closed, the
//!   call hung up — a clean end, as a WebSocket close answered by the server;
//! - the server closes the channel (a hangup, an expired session, a server that ends the
//!   call): always an error, never a silent end — the client cannot tell "normal" from a
//!   failure. After an `error` event it is classified by that event as a WebSocket close
//!   after it would be ([`ErrorKind::SessionExpired`](reelthyme_transport::ErrorKind),
//!   `Quota`, …), otherwise [`ErrorKind::Closed`](reelthyme_transport::ErrorKind) with
//!   `close_code() == Some(1000)`: retryable (a new call may well succeed; a policy that
//!   must not redial after a server-side hangup looks at the code);
//! - the peer connection is lost (ICE or DTLS failed, `disconnected` past the grace, the
//!   peer connection closed under the channel): `Closed` with code 1006, retryable.
//!
//! Whatever ends it, the frames queued and never sent are listed in the error
//! (`Error::unsent`), and every later send, flush and close returns that error.
//! On the server's end ([`WebRtc::answer`]) the client closing the channel is its
//! goodbye: a clean end.
//!
//! # Example
//! ```no_run
//! # async fn demo() -> reelthyme_transport::Result<()> {
//! use futures_util::StreamExt;
//! use reelthyme_transport::{Endpoint, Options, Transport};
//! use reelthyme_webrtc::WebRtc;
//!
//! let endpoint = Endpoint::from_env()?;
//! let mut connection = WebRtc::new().connect(&endpoint, &Options::default()).await?;
//! println!("call {:?}", connection.call_id);
//! connection.sender.send(r#"{"type":"response.create"}"#.to_owned()).await?;
//! while let Some(frame) = connection.receiver.next().await {
//!     println!("{}", frame?);
//! }
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod answer;
mod call;
mod media;
mod offer;
mod peer;
mod settings;
mod signal;

pub use answer::Answered;
pub use settings::{IceServer, WebRtc};

// README.md's examples are tested as doctests too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
