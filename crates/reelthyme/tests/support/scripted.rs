//! A server the test scripts, on the public transport seam: `session.created` first, then
//! whatever frames the test pushes, when it pushes them (stamped on arrival like a
//! transport's); what the client sends is recorded. For tests of layers that need exact
//! event orders. Included with `#[path]` by the test binaries that use it.

use std::sync::{Arc, Mutex};

use reelthyme::transport::{Command, Connecting, Connection, End, Frame, Options, pipe};
use reelthyme::{Config, Endpoint, Transport};
use serde_json::{Value, json};
use tokio::sync::mpsc;

#[derive(Debug, Clone, Default)]
pub struct Server {
    frames: Arc<Mutex<Option<mpsc::UnboundedReceiver<String>>>>,
    pub sent: Arc<Mutex<Vec<Value>>>,
}

pub struct Script(mpsc::UnboundedSender<String>);

impl Script {
    /// Delivers a server event now.
    #[allow(dead_code)]
    pub fn push(&self, event: Value) {
        self.push_text(event.to_string());
    }

    /// Delivers a server event, already serialized, now (for tests that send many).
    #[allow(dead_code)]
    pub fn push_text(&self, event: String) {
        self.0.send(event).expect("the transport is running");
    }
}

impl Server {
    pub fn new() -> (Self, Script) {
        let (tx, rx) = mpsc::unbounded_channel();
        let server = Self {
            frames: Arc::new(Mutex::new(Some(rx))),
            sent: Arc::default(),
        };
        (server, Script(tx))
    }

    pub fn config(&self) -> Config {
        Config::new(Endpoint::openai("gpt-realtime").base_url("http://127.0.0.1:9/v1"))
            .transport(self.clone())
    }
}

pub fn session_created() -> Value {
    json!({"type": "session.created", "event_id": "ev_0", "session": {
        "type": "realtime", "object": "realtime.session", "id": "sess_1",
        "model": "gpt-realtime", "output_modalities": ["audio"],
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                            "turn_detection": {"type": "server_vad", "create_response": true}},
                  "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}}}})
}

impl Transport for Server {
    fn connect<'a>(&'a self, _endpoint: &'a Endpoint, options: &'a Options) -> Connecting<'a> {
        Box::pin(async move {
            let (sender, receiver, mut link) = pipe(options.queues(1 << 20));
            let mut frames = self
                .frames
                .lock()
                .unwrap()
                .take()
                .expect("one connection per script");
            let sent = self.sent.clone();
            tokio::spawn(async move {
                link.inbox
                    .deliver(Ok(Frame::new(session_created().to_string())))
                    .await;
                let mut closes = Vec::new();
                loop {
                    tokio::select! {
                        command = link.outbox.next_command() => match command {
                            Some(Command::Text(text)) => {
                                sent.lock().unwrap().push(serde_json::from_str(&text).unwrap());
                            }
                            Some(Command::Flush(flushed)) => flushed.done(),
                            Some(Command::Close(request)) => {
                                closes.push(request);
                                break;
                            }
                            None => break,
                            Some(_) => {}
                        },
                        frame = frames.recv() => match frame {
                            Some(frame) => link.inbox.deliver(Ok(Frame::new(frame))).await,
                            None => break,
                        },
                    }
                }
                link.finish(End::new(None).close_requests(closes).close_answered(true))
                    .await;
            });
            Ok(Connection::new(sender, receiver))
        })
    }
}
