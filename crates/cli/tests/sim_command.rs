//! `reelthyme sim` as scripts start it: the first stdout line is the base URL.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

mod support;

use support::Killed;

#[tokio::test]
async fn prints_its_url_first_and_serves_sessions() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reelthyme"))
        .args(["sim", "--port", "0", "--speed", "10", "--api-key", "sk-cli"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _guard = Killed(child);
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    });
    let base = tokio::time::timeout(Duration::from_secs(10), line)
        .await
        .unwrap()
        .unwrap();
    let base = base.trim();
    assert!(base.starts_with("ws://127.0.0.1:"), "{base}");
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "{base}/v1/realtime?model=gpt-realtime"
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", "Bearer sk-cli".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Message::Text(text) = first else {
        panic!("{first:?}")
    };
    let event: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
    assert_eq!(event["type"], "session.created");
}

#[test]
fn a_bad_speed_is_a_usage_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_reelthyme"))
        .args(["sim", "--speed", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--speed must be a positive number"));
}
