//! `chat` and `talk` with `--transport webrtc`, against `reelthyme sim` and the built-in
//! simulator: the offer goes to `{base}/realtime/calls`, the events come on the data
//! channel, and the scriptable mode is the WebSocket's.

use std::io::Write;
use std::process::{Command, Stdio};

mod support;

use support::start;

fn chat(base: &str, key: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_reelthyme"));
    command
        .args(["chat", "--transport", "webrtc", "--base-url", base])
        .args(["--api-key", key, "--model", "gpt-realtime"])
        .env_remove("OPENAI_API_KEY")
        .env_remove("RUST_LOG");
    command
}

#[test]
fn one_scripted_turn_over_webrtc_prints_every_event_as_json_lines() {
    let (_sim, base) = start(&["sim", "--speed", "50", "--api-key", "sk-rtc"]);
    // The base as an http URL, as the issue writes it (`sim` prints the ws:// one).
    let base = format!("{}/v1", base.replace("ws://", "http://"));
    let output = chat(&base, "sk-rtc")
        .args(["--message", "Hello there", "--jsonl", "-vv"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    // It was a WebRTC call (the transport logs its setup at debug).
    assert!(stderr.contains("WebRTC connected"), "{stderr}");
    assert!(!stderr.contains("sk-rtc"), "the key leaked: {stderr}");
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.first().unwrap()["type"], "session.created");
    let done = events.last().unwrap();
    assert_eq!(done["type"], "response.done");
    assert_eq!(done["response"]["status"], "completed");
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "response.output_audio_transcript.delta"),
        "{stdout}"
    );
    for event in &events {
        assert!(
            reelthyme_schema::validate_server_value(event).is_strictly_valid(),
            "{event}"
        );
    }
}

#[test]
fn a_refused_call_exits_non_zero_naming_the_calls_endpoint() {
    let (_sim, base) = start(&["sim", "--api-key", "sk-right"]);
    let output = chat(&format!("{base}/v1"), "sk-wrong")
        .args(["--message", "hi", "--jsonl"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/v1/realtime/calls"), "{stderr}");
    assert!(stderr.contains("invalid_api_key"), "{stderr}");
    assert!(!stderr.contains("sk-wrong"), "the key leaked: {stderr}");
}

#[cfg(feature = "audio")]
#[test]
fn talk_over_webrtc_reaches_the_built_in_simulator() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reelthyme"))
        .args(["talk", "--transport", "webrtc", "--text", "-vv"])
        .env_remove("RUST_LOG")
        .env_remove("OPENAI_API_KEY")
        .env_remove("REELTHYME_BASE_URL")
        .env_remove("OPENAI_BASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello over webrtc\n/quit\n").unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "You said: hello over webrtc"
    );
    assert!(stderr.contains("built-in simulator"), "{stderr}");
    assert!(stderr.contains("WebRTC connected"), "{stderr}");
}
