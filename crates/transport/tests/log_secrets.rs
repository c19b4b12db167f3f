//! Review finding 5: credentials never reach logs, even when the application bridges the
//! `log` crate into `tracing` at TRACE (as `tracing_subscriber`'s `init()` does), which is
//! how tungstenite's client handshake used to print the raw upgrade request with its
//! `authorization` header. Its own test binary: it installs a global subscriber.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reelthyme_transport::{Endpoint, Options, connect};
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const SECRET: &str = "sk-SUPERSECRET-0123456789";

#[tokio::test]
#[allow(clippy::result_large_err)] // tungstenite's handshake callback signature
async fn the_key_is_absent_from_trace_logs_with_the_log_bridge_installed() {
    let captured = Captured::default();
    let writer = captured.clone();
    // `try_init` installs the `log` → `tracing` bridge (tracing-log), as applications do.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init()
        .unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut saw_key = false;
        let callback = |request: &tokio_tungstenite::tungstenite::handshake::server::Request,
                        response| {
            saw_key = request
                .headers()
                .get("authorization")
                .is_some_and(|v| v.as_bytes().ends_with(SECRET.as_bytes()));
            Ok(response)
        };
        let mut socket = tokio_tungstenite::accept_hdr_async(tcp, callback)
            .await
            .unwrap();
        socket
            .send(Message::text(r#"{"type":"session.created"}"#))
            .await
            .unwrap();
        while let Some(Ok(message)) = socket.next().await {
            if message.is_close() {
                let _ = socket.flush().await;
            }
        }
        saw_key
    });

    let endpoint = Endpoint::openai("gpt-realtime")
        .base_url(&format!("http://127.0.0.1:{port}/v1"))
        .api_key(SECRET);
    let mut connection = connect(&endpoint, &Options::default()).await.unwrap();
    let first = connection.receiver.next().await.unwrap().unwrap();
    assert!(first.contains("session.created"));
    connection.sender.send("{}".into()).await.unwrap();
    connection.sender.close().await.unwrap();
    let saw_key = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
    assert!(saw_key, "the key must still reach the server");

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The bridge is live: tungstenite's own `log` records arrive (and our tracing ones).
    assert!(
        logs.contains("tungstenite"),
        "no log records were bridged:\n{logs}"
    );
    assert!(
        !logs.contains("SUPERSECRET"),
        "the key reached the logs:\n{logs}"
    );
}
