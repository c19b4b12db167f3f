//! What every transport shares: queue bounds, timeouts, TLS roots. A transport's own
//! settings live in its value (see [`WebSocket`](crate::WebSocket)).

use std::time::Duration;

use crate::pipe::Queues;

/// Tuning shared by every transport. The defaults suit OpenAI.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Frames that may wait to be written (default 256; a burst beyond waits, nothing drops).
    pub send_queue: usize,
    /// Events that may wait to be read (default 256; beyond, the connection is not read).
    pub receive_queue: usize,
    /// Bytes of received frames that may wait to be read (default 16 MiB, and at least the
    /// transport's largest message): with [`Options::receive_queue`], this bounds the
    /// memory a fast server and a slow consumer can take.
    pub receive_bytes: usize,
    /// How long connecting may take (TCP, TLS, the upgrade or the signalling; then, in the
    /// facade, `session.created`) (default 10 s).
    pub connect_timeout: Duration,
    /// How long `close()` waits for the server to answer (default 5 s).
    pub close_timeout: Duration,
    /// DER certificates to trust besides the Mozilla roots (private CAs, test servers), for
    /// every HTTPS request to the endpoint: upgrades, signalling, REST calls.
    pub extra_root_certificates: Vec<Vec<u8>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            send_queue: 256,
            receive_queue: 256,
            receive_bytes: 16 << 20,
            connect_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            extra_root_certificates: Vec::new(),
        }
    }
}

impl Options {
    /// Sets [`Options::send_queue`] (at least 1).
    #[must_use]
    pub fn send_queue(mut self, frames: usize) -> Self {
        self.send_queue = frames.max(1);
        self
    }

    /// Sets [`Options::receive_queue`] (at least 1).
    #[must_use]
    pub fn receive_queue(mut self, items: usize) -> Self {
        self.receive_queue = items.max(1);
        self
    }

    /// Sets [`Options::receive_bytes`] (at least 1).
    #[must_use]
    pub fn receive_bytes(mut self, bytes: usize) -> Self {
        self.receive_bytes = bytes.max(1);
        self
    }

    /// Sets [`Options::connect_timeout`].
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`Options::close_timeout`].
    #[must_use]
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Trusts one more root certificate (DER).
    #[must_use]
    pub fn add_root_certificate(mut self, der: Vec<u8>) -> Self {
        self.extra_root_certificates.push(der);
        self
    }

    /// The pipe bounds these options give, for a transport whose largest message is
    /// `max_message` bytes (the byte budget is never smaller than one message).
    pub fn queues(&self, max_message: usize) -> Queues {
        Queues::new(
            self.send_queue,
            self.receive_queue,
            self.receive_bytes.max(max_message),
        )
    }
}
