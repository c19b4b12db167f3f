//! The simulator's handling of a client event sequence, end to end but in-process: one
//! simulator (a million times faster than real time) for the whole run, one WebSocket
//! session per input. Each line of the input is one text frame; a closing sentinel (a
//! delete of an item that does not exist) is answered only after every earlier event was
//! handled, so each input is fully processed before the next. A panic in a session task
//! aborts the process through libFuzzer's panic hook, so it is found even though tokio
//! would catch it.
//!
//! Slow (a connection per input: about a thousand inputs a second); the simulator's
//! `Engine` is private. See the report on a `#[doc(hidden)]` entry point for the engine.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use libfuzzer_sys::fuzz_target;
use reelthyme_sim::{SimConfig, Simulator};
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message;

const SENTINEL: &str =
    r#"{"type":"conversation.item.delete","item_id":"fuzz_sentinel","event_id":"fuzz_sentinel"}"#;

struct Harness {
    runtime: Runtime,
    url: String,
    _sim: Simulator,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let sim = runtime
            .block_on(Simulator::start(
                SimConfig::default().speed(SimConfig::MAX_SPEED),
            ))
            .expect("the simulator starts");
        let url = sim.realtime_url("gpt-realtime");
        Harness {
            runtime,
            url,
            _sim: sim,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let events: Vec<&str> = text.lines().take(32).collect();
    let harness = harness();
    harness.runtime.block_on(async {
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                harness.url.as_str(),
            )
            .expect("a request");
        request
            .headers_mut()
            .insert("authorization", "Bearer sk-fuzz".parse().expect("a header"));
        let (mut ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("the simulator accepts the connection");
        for event in events {
            if ws.send(Message::text(event)).await.is_err() {
                return;
            }
        }
        if ws.send(Message::text(SENTINEL)).await.is_err() {
            return;
        }
        let answered = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(Ok(message)) = ws.next().await {
                if let Message::Text(text) = message
                    && text.contains("fuzz_sentinel")
                {
                    return;
                }
            }
        })
        .await;
        assert!(answered.is_ok(), "the simulator did not answer within 10 s");
        let _ = ws.close(None).await;
    });
});
