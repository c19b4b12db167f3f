//! A raw WebSocket client for driving the simulator, and checks shared by the tests.

#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reelthyme_sim::{Recorder, SimConfig, Simulator};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, http::HeaderValue};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Every wait in these tests is bounded, so a bug fails instead of hanging CI.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub received: Vec<Value>,
}

/// What ended a read.
#[derive(Debug, PartialEq)]
pub enum Next {
    Event(Value),
    Closed(Option<(u16, String)>),
}

impl Client {
    pub async fn connect(url: &str, headers: &[(&str, &str)]) -> Self {
        let mut request = url.into_client_request().unwrap();
        for (name, value) in headers {
            let name =
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                    .unwrap();
            request
                .headers_mut()
                .insert(name, HeaderValue::from_str(value).unwrap());
        }
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .unwrap()
            .unwrap();
        Self {
            ws,
            received: Vec::new(),
        }
    }

    pub async fn send(&mut self, event: Value) {
        self.ws
            .send(Message::text(event.to_string()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.unwrap();
    }

    pub async fn next(&mut self) -> Next {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for the server");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(text.as_str())
                        .unwrap_or(Value::String(text.to_string()));
                    self.received.push(value.clone());
                    return Next::Event(value);
                }
                Some(Ok(Message::Binary(bytes))) => {
                    return Next::Event(json!({"binary": bytes.len()}));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Next::Closed(
                        frame.map(|CloseFrame { code, reason }| {
                            (u16::from(code), reason.to_string())
                        }),
                    );
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Next::Closed(None),
            }
        }
    }

    pub async fn event(&mut self) -> Value {
        match self.next().await {
            Next::Event(event) => event,
            Next::Closed(frame) => panic!("closed {frame:?}; received {:#?}", self.types()),
        }
    }

    /// Reads until an event of `kind`, returning it.
    pub async fn until(&mut self, kind: &str) -> Value {
        loop {
            let event = self.event().await;
            if event["type"] == kind {
                return event;
            }
        }
    }

    pub fn types(&self) -> Vec<String> {
        self.received
            .iter()
            .map(|e| e["type"].as_str().unwrap_or("?").to_owned())
            .collect()
    }
}

/// A simulator that records everything, fast (audio at 50× real time).
pub async fn simulator(config: SimConfig) -> (Simulator, Recorder) {
    let recorder = Recorder::new();
    let sim = Simulator::start(config.recorder(recorder.clone()))
        .await
        .unwrap();
    (sim, recorder)
}

pub fn fast() -> SimConfig {
    SimConfig::default().speed(50.0)
}

/// Every frame the simulator sent parses into the schema types and validates strictly
/// against the project's schemas.
pub fn assert_all_valid(recorder: &Recorder) {
    let frames = recorder.frames();
    assert!(!frames.is_empty());
    for frame in frames.iter().filter(|f| f.from_server && !f.beta) {
        let report = reelthyme_schema::validate_server_value(&frame.json);
        assert!(
            report.is_strictly_valid(),
            "invalid event {}: {report:?}",
            frame.json
        );
        reelthyme_schema::ServerEvent::from_value(frame.json.clone()).unwrap();
    }
}

/// 16-bit PCM at 24 kHz: silence, then a voiced signal from `start` to `end` seconds, then
/// silence to `total` seconds.
pub fn speech(start: f64, end: f64, total: f64) -> Vec<i16> {
    let n = (total * 24_000.0) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / 24_000.0;
            if t >= start && t < end {
                ((t * 2.0 * std::f64::consts::PI * 180.0).sin() * 9_000.0
                    + (t * 2.0 * std::f64::consts::PI * 410.0).sin() * 3_000.0)
                    as i16
            } else {
                0
            }
        })
        .collect()
}

pub fn append(samples: &[i16]) -> Value {
    reelthyme_schema::ClientEvent::audio_append(samples).to_value()
}
