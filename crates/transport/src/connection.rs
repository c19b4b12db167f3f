//! What a transport gives its caller: a [`Connection`] (events both ways, media beside them
//! when the transport carries audio tracks), and the [`Transport`] trait any crate can
//! implement on the frame pipe ([`pipe`](crate::pipe)).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_channel::mpsc;
use futures_core::Stream;
use futures_util::SinkExt;

use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::options::Options;
use crate::pipe::{FrameReceiver, FrameSender};

/// The future a [`Transport`] returns.
pub type Connecting<'a> = Pin<Box<dyn Future<Output = Result<Connection>> + Send + 'a>>;

/// A way to reach a Realtime server. Each transport value holds its own settings (the
/// WebSocket's keepalive, a WebRTC transport's ICE servers…); what every transport shares
/// (queues, timeouts, TLS roots) comes in [`Options`].
///
/// To write one: open the wire, build a pipe with [`pipe`](crate::pipe)`(options.queues())`,
/// spawn a task that moves the [`Link`](crate::Link)'s commands to the wire and the wire's
/// frames into it, then calls [`Link::finish`](crate::Link::finish); return the pipe's
/// halves as a [`Connection`]. The pipe keeps the contract (bounded, ordered, nothing lost
/// without a report, one verdict) for every transport alike.
pub trait Transport: Send + Sync + fmt::Debug {
    /// Opens a connection to `endpoint`.
    ///
    /// # Errors
    /// The transport's typed failures ([`ErrorKind::Connect`], [`ErrorKind::Auth`],
    /// [`ErrorKind::Timeout`] …).
    fn connect<'a>(&'a self, endpoint: &'a Endpoint, options: &'a Options) -> Connecting<'a>;
}

/// An open connection: events both ways, and media when the transport carries audio as
/// tracks (WebRTC) rather than as events (WebSocket).
#[derive(Debug)]
#[non_exhaustive]
pub struct Connection {
    /// Where frames go.
    pub sender: FrameSender,
    /// Where frames come from.
    pub receiver: FrameReceiver,
    /// Audio tracks beside the events; `None` when audio travels in events.
    pub media: Option<Media>,
    /// The server's id for the call (`rtc_…`), for transports that set one up by REST
    /// (WebRTC: the last segment of the signalling answer's `Location`): what a sideband
    /// WebSocket attaches to (`Endpoint::call_id`) and what `hangup` takes. `None` for a
    /// WebSocket session.
    pub call_id: Option<String>,
}

impl Connection {
    /// A connection that carries events only.
    pub fn new(sender: FrameSender, receiver: FrameReceiver) -> Self {
        Self {
            sender,
            receiver,
            media: None,
            call_id: None,
        }
    }

    /// With the server's id for the call.
    #[must_use]
    pub fn with_call_id(mut self, call_id: impl Into<String>) -> Self {
        self.call_id = Some(call_id.into());
        self
    }

    /// With audio tracks beside the events.
    #[must_use]
    pub fn with_media(mut self, media: Media) -> Self {
        self.media = Some(media);
        self
    }
}

/// Mono PCM16 audio at a stated rate: what an audio track carries once decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AudioChunk {
    /// Samples per second.
    pub rate: u32,
    /// The samples, mono.
    pub samples: Vec<i16>,
    /// When it was captured (outgoing) or received (incoming).
    pub at: Instant,
}

impl AudioChunk {
    /// A chunk stamped now.
    pub fn new(rate: u32, samples: Vec<i16>) -> Self {
        Self {
            rate,
            samples,
            at: Instant::now(),
        }
    }
}

/// A connection's audio tracks, as the user sees them: [`Media::send`] feeds the outgoing
/// track (waiting for room: bounded), [`Media::incoming`] yields what the server's track
/// carries.
#[derive(Debug)]
pub struct Media {
    outgoing: mpsc::Sender<AudioChunk>,
    incoming: MediaReceiver,
}

/// The server's audio track, decoded: a stream of chunks that ends with the connection.
#[derive(Debug)]
pub struct MediaReceiver(mpsc::Receiver<AudioChunk>);

impl Stream for MediaReceiver {
    type Item = AudioChunk;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<AudioChunk>> {
        Pin::new(&mut self.0).poll_next(cx)
    }
}

/// The transport's end of the media tracks.
#[derive(Debug)]
#[non_exhaustive]
pub struct MediaLink {
    /// Audio the user sends, to put on the outgoing track.
    pub outgoing: mpsc::Receiver<AudioChunk>,
    /// Where the incoming track's audio goes (bounded: a full queue is the user not
    /// playing; the transport decides whether to wait or drop, and says so).
    pub incoming: mpsc::Sender<AudioChunk>,
}

impl Media {
    /// Media tracks with room for `capacity` chunks each way, and the transport's end.
    pub fn channel(capacity: usize) -> (Self, MediaLink) {
        let (outgoing, from_user) = mpsc::channel(capacity.max(1));
        let (to_user, incoming) = mpsc::channel(capacity.max(1));
        (
            Self {
                outgoing,
                incoming: MediaReceiver(incoming),
            },
            MediaLink {
                outgoing: from_user,
                incoming: to_user,
            },
        )
    }

    /// Sends a chunk on the outgoing track, waiting for room.
    ///
    /// # Errors
    /// [`ErrorKind::Closed`] when the track has ended.
    pub async fn send(&mut self, chunk: AudioChunk) -> Result<()> {
        self.outgoing
            .send(chunk)
            .await
            .map_err(|_| Error::new(ErrorKind::Closed, "the audio track has ended"))
    }

    /// Another handle on the outgoing track.
    pub fn sender(&self) -> mpsc::Sender<AudioChunk> {
        self.outgoing.clone()
    }

    /// The incoming track.
    pub fn incoming(&mut self) -> &mut MediaReceiver {
        &mut self.incoming
    }

    /// The outgoing track's sender and the incoming track, apart (a session gives the first
    /// to its capture and the second to its player).
    pub fn into_parts(self) -> (mpsc::Sender<AudioChunk>, MediaReceiver) {
        (self.outgoing, self.incoming)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipe::{Queues, pipe};

    #[test]
    fn a_call_id_is_only_there_when_the_transport_sets_one() {
        let (sender, receiver, _link) = pipe(Queues::new(1, 1, 1));
        let events_only = Connection::new(sender.clone(), receiver);
        assert_eq!(events_only.call_id, None);
        let (_, receiver, _link) = pipe(Queues::new(1, 1, 1));
        let call = Connection::new(sender, receiver).with_call_id("rtc_1");
        assert_eq!(call.call_id.as_deref(), Some("rtc_1"));
    }
}
