//! The WebRTC transport's own settings (what every transport shares — queues, timeouts,
//! TLS roots for the signalling — is in [`Options`](reelthyme_transport::Options)).

use std::net::SocketAddr;
use std::time::Duration;

/// A STUN or TURN server for ICE.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IceServer {
    /// `stun:host:port`, `turn:host:port?transport=udp`, …
    pub urls: Vec<String>,
    /// The TURN username (empty for STUN).
    pub username: String,
    /// The TURN credential (empty for STUN); never shown by `Debug`.
    pub credential: String,
}

impl std::fmt::Debug for IceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field(
                "credential",
                &if self.credential.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .finish()
    }
}

impl IceServer {
    /// A STUN server.
    pub fn stun(url: impl Into<String>) -> Self {
        Self {
            urls: vec![url.into()],
            username: String::new(),
            credential: String::new(),
        }
    }

    /// A TURN server with its credentials.
    pub fn turn(
        url: impl Into<String>,
        username: impl Into<String>,
        credential: impl Into<String>,
    ) -> Self {
        Self {
            urls: vec![url.into()],
            username: username.into(),
            credential: credential.into(),
        }
    }
}

/// The WebRTC [`Transport`](reelthyme_transport::Transport): events on the `oai-events`
/// data channel, audio as an Opus track, signalling by `POST {base}/realtime/calls`.
///
/// Build with [`WebRtc::new`] and the setters; connect with
/// [`WebRtc::open`] or through the `Transport` trait.
#[derive(Debug, Clone)]
#[must_use]
pub struct WebRtc {
    pub(crate) ice_servers: Vec<IceServer>,
    pub(crate) disconnected_grace: Duration,
    pub(crate) setup_timeout: Option<Duration>,
    pub(crate) audio: bool,
    pub(crate) audio_rate: u32,
    pub(crate) media_queue: usize,
    pub(crate) send_buffer: usize,
    pub(crate) dead_after: Duration,
    pub(crate) max_message_size: usize,
    pub(crate) bind: Option<Vec<SocketAddr>>,
    pub(crate) session: Option<serde_json::Value>,
    pub(crate) check_interval: Duration,
    pub(crate) disconnected_after: Duration,
}

impl Default for WebRtc {
    fn default() -> Self {
        Self {
            ice_servers: Vec::new(),
            disconnected_grace: Duration::from_secs(5),
            setup_timeout: None,
            audio: true,
            audio_rate: 24_000,
            media_queue: 50,
            send_buffer: 1 << 20,
            dead_after: Duration::from_secs(30),
            max_message_size: 8 << 20,
            bind: None,
            session: None,
            check_interval: Duration::from_millis(25),
            disconnected_after: Duration::from_secs(5),
        }
    }
}

impl WebRtc {
    /// The defaults: no ICE servers (host candidates; the server's public address is
    /// enough for most clients), a 5 s grace for a transient `disconnected`, setup bounded
    /// by [`Options::connect_timeout`](reelthyme_transport::Options), audio on at 24 kHz.
    pub fn new() -> Self {
        Self::default()
    }

    /// STUN/TURN servers for ICE (default none).
    pub fn ice_servers(mut self, servers: Vec<IceServer>) -> Self {
        self.ice_servers = servers;
        self
    }

    /// How long the connection may stay `disconnected` (ICE lost its path) before it is
    /// declared over (default 5 s, as the agents SDK does): a Wi-Fi hiccup recovers, a
    /// dead network ends the session with a retryable error.
    pub fn disconnected_grace(mut self, grace: Duration) -> Self {
        self.disconnected_grace = grace;
        self
    }

    /// The bound on the whole setup — peer connection, offer, signalling, ICE, DTLS, the
    /// data channel opening (default: the options' `connect_timeout`, 10 s). A server that
    /// never answers ICE or DTLS ends in [`ErrorKind::Timeout`](reelthyme_transport::ErrorKind)
    /// within it.
    pub fn setup_timeout(mut self, timeout: Duration) -> Self {
        self.setup_timeout = Some(timeout);
        self
    }

    /// Whether to carry audio (default `true`): one local Opus track and the server's
    /// track, as [`Connection::media`](reelthyme_transport::Connection). Off, the
    /// connection carries events only.
    pub fn audio(mut self, on: bool) -> Self {
        self.audio = on;
        self
    }

    /// The rate of the PCM the media tracks give and take by default (default 24 000 Hz,
    /// the Realtime API's PCM rate; 48 000 skips resampling). Outgoing chunks may carry any
    /// rate: each is resampled from its own.
    pub fn audio_rate(mut self, rate: u32) -> Self {
        self.audio_rate = rate.max(1);
        self
    }

    /// Chunks that may wait each way on the media tracks (default 50: a second of 20 ms
    /// chunks). Outgoing, a full queue makes `send` wait; incoming, a full queue (the user
    /// is not playing) drops the newest chunk and logs it: live audio cannot wait.
    pub fn media_queue(mut self, chunks: usize) -> Self {
        self.media_queue = chunks.max(1);
        self
    }

    /// Bytes the data channel may hold unacknowledged before a send waits (default 1 MiB):
    /// the backpressure from the channel's buffered amount.
    pub fn send_buffer(mut self, bytes: usize) -> Self {
        self.send_buffer = bytes.max(1 << 10);
        self
    }

    /// How long one send may wait for room in the data channel before the connection is
    /// declared dead (default 30 s): a server that stops reading cannot hold senders.
    pub fn dead_after(mut self, limit: Duration) -> Self {
        self.dead_after = limit.max(Duration::from_millis(1));
        self
    }

    /// The largest event accepted from the server, in bytes (default 8 MiB, as the
    /// WebSocket); a larger one ends the connection with `Protocol`.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes.max(1 << 10);
        self
    }

    /// The local UDP addresses to gather from (default: every interface, `0.0.0.0:0`, plus
    /// `127.0.0.1:0` when the endpoint is on loopback, such as the simulator).
    pub fn bind(mut self, addrs: Vec<SocketAddr>) -> Self {
        self.bind = Some(addrs);
        self
    }

    /// The session to start, sent as the `session` part of the offer when the endpoint's
    /// key is a standard one (default `{"type":"realtime","model":<the endpoint's model>}`;
    /// `type` and `model` are added when missing). Ephemeral `ek_` keys carry their
    /// session, so it is not sent with them.
    pub fn session(mut self, session: serde_json::Value) -> Self {
        self.session = Some(session);
        self
    }

    /// How long without a packet from the server (ICE consent checks flow every quarter of
    /// it, at most every 2 s) before the connection counts as `disconnected` (default 5 s,
    /// webrtc-rs's own); [`WebRtc::disconnected_grace`] runs from there. A server that
    /// vanishes is noticed after the sum of the two.
    pub fn disconnected_after(mut self, silence: Duration) -> Self {
        self.disconnected_after = silence.max(Duration::from_millis(40));
        self
    }

    /// The pace of ICE connectivity checks (default 25 ms; webrtc-rs's own is 200 ms, which
    /// costs 200 ms of every setup). The number of checks is scaled so that a candidate
    /// pair is still tried for about 1.4 s.
    pub fn ice_check_interval(mut self, interval: Duration) -> Self {
        self.check_interval = interval.max(Duration::from_millis(1));
        self
    }
}
