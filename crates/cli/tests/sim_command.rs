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

/// Starts `reelthyme sim ARGS` and waits (bounded) for its base URL.
async fn start_sim(args: &[&str]) -> (Killed, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reelthyme"))
        .arg("sim")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let guard = Killed(child);
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    });
    let base = tokio::time::timeout(Duration::from_secs(10), line)
        .await
        .unwrap()
        .unwrap();
    (guard, base.trim().to_owned())
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads (bounded) until an event of `kind`.
async fn until(ws: &mut Ws, kind: &str) -> serde_json::Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} in time"))
            .unwrap()
            .unwrap();
        if let Message::Text(text) = frame {
            let event: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
            if event["type"] == kind {
                return event;
            }
        }
    }
}

async fn send(ws: &mut Ws, event: serde_json::Value) {
    futures_util::SinkExt::send(ws, Message::text(event.to_string()))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_script_file_drives_a_function_call() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/weather_script.toml"
    );
    let (_guard, base) = start_sim(&["--speed", "50", "--script", script]).await;
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(format!("{base}/v1/realtime?model=gpt-realtime")),
    )
    .await
    .unwrap()
    .unwrap();
    until(&mut ws, "session.created").await;
    send(
        &mut ws,
        serde_json::json!({"type": "session.update", "session": {"type": "realtime",
            "output_modalities": ["text"],
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object",
                "properties": {"city": {"type": "string"}}, "required": ["city"]}}]}}),
    )
    .await;
    until(&mut ws, "session.updated").await;
    // The simulator's own guess would be `Paris`: the script says `Lyon`.
    send(
        &mut ws,
        reelthyme_schema::ClientEvent::user_text("What's the weather in Paris?").to_value(),
    )
    .await;
    send(&mut ws, serde_json::json!({"type": "response.create"})).await;
    let call = until(&mut ws, "response.function_call_arguments.done").await;
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["arguments"], r#"{"city":"Lyon"}"#);
    until(&mut ws, "response.done").await;
    let call_id = call["call_id"].as_str().unwrap();
    send(
        &mut ws,
        reelthyme_schema::ClientEvent::function_call_output(call_id, r#"{"temp_c":18}"#).to_value(),
    )
    .await;
    send(&mut ws, serde_json::json!({"type": "response.create"})).await;
    let done = until(&mut ws, "response.done").await;
    assert_eq!(
        done["response"]["output"][0]["content"][0]["text"],
        "Sunny and 18 degrees in Lyon."
    );
}

#[test]
fn a_bad_script_is_a_usage_error_naming_its_line() {
    let dir = std::env::temp_dir().join(format!("reelthyme-cli-script-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("bad.toml");
    std::fs::write(&script, "[[rule]]\ncontains = \"hi\"\ntxet = \"typo\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_reelthyme"))
        .args(["sim", "--script"])
        .arg(&script)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.toml"), "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(stderr.contains("txet"), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "no URL for a server that did not start"
    );
}

#[test]
fn a_missing_script_is_a_usage_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_reelthyme"))
        .args(["sim", "--script", "/nonexistent/reelthyme/script.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot read the script"), "{stderr}");
}
