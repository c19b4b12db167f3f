//! Connection setup on loopback against the simulator: WebRTC (offer → data channel open:
//! peer connection, gathering, signalling over HTTP, ICE, DTLS, SCTP, the channel's open),
//! and beside it in the same run the WebSocket (connect → `session.created`), the baseline.
//! `cargo bench -p reelthyme-webrtc --bench setup`; prints exactly
//!
//! ```text
//! webrtc_setup runs=20 p50_ms=X p99_ms=Y
//! websocket_setup runs=20 p50_ms=X p99_ms=Y
//! ```
//!
//! (`cargo xtask bench` parses these lines.)

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reelthyme_sim::{SimConfig, Simulator};
use reelthyme_transport::{Endpoint, Options, Transport, WebSocket};
use reelthyme_webrtc::WebRtc;

const RUNS: usize = 20;
/// Runs before the measured ones (first connections pay for lazy setup).
const WARM_UP: usize = 2;

/// The nearest-rank percentile `q` (0–1) of `samples`, in milliseconds.
fn percentile(samples: &[Duration], q: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

fn report(name: &str, samples: &[Duration]) {
    println!(
        "{name} runs={} p50_ms={:.1} p99_ms={:.1}",
        samples.len(),
        percentile(samples, 0.5),
        percentile(samples, 0.99)
    );
}

async fn webrtc(endpoint: &Endpoint, options: &Options) -> Duration {
    let started = Instant::now();
    let mut connection = WebRtc::new()
        .connect(endpoint, options)
        .await
        .expect("the call connects");
    let took = started.elapsed();
    let _ = connection.sender.close().await;
    took
}

async fn websocket(endpoint: &Endpoint, options: &Options) -> Duration {
    let started = Instant::now();
    let mut connection = WebSocket::new()
        .connect(endpoint, options)
        .await
        .expect("the WebSocket connects");
    let first = connection
        .receiver
        .next()
        .await
        .expect("an event")
        .expect("session.created");
    let took = started.elapsed();
    assert!(first.text().contains("session.created"), "{}", first.text());
    let _ = connection.sender.close().await;
    took
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let sim = Simulator::start(SimConfig::default().api_key("sk-bench"))
            .await
            .expect("the simulator starts");
        let endpoint = Endpoint::openai("gpt-realtime")
            .base_url(&format!("http://{}/v1", sim.addr()))
            .api_key("sk-bench");
        let options = Options::default();
        // Interleaved, so that both see the same machine.
        let (mut rtc, mut ws) = (Vec::new(), Vec::new());
        for run in 0..WARM_UP + RUNS {
            let a = webrtc(&endpoint, &options).await;
            let b = websocket(&endpoint, &options).await;
            if run >= WARM_UP {
                rtc.push(a);
                ws.push(b);
            }
        }
        report("webrtc_setup", &rtc);
        report("websocket_setup", &ws);
        eprintln!(
            "webrtc/websocket setup ratio (p50): {:.1}",
            percentile(&rtc, 0.5) / percentile(&ws, 0.5).max(1e-9)
        );
    });
}
