//! `reelthyme chat` in its scriptable mode, against `reelthyme sim`.

use std::process::{Command, Stdio};

mod support;

use support::{Killed, start};

fn start_sim(args: &[&str]) -> (Killed, String) {
    let mut all = vec!["sim", "--speed", "50"];
    all.extend_from_slice(args);
    start(&all)
}

#[test]
fn one_scripted_turn_prints_every_event_as_json_lines() {
    let (_sim, base) = start_sim(&["--api-key", "sk-chat"]);
    let output = Command::new(env!("CARGO_BIN_EXE_reelthyme"))
        .args([
            "chat",
            "--base-url",
            &format!("{base}/v1"),
            "--api-key",
            "sk-chat",
            "--model",
            "gpt-realtime",
        ])
        .args(["--message", "Hello there", "--jsonl"])
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.first().unwrap()["type"], "session.created");
    assert_eq!(events.last().unwrap()["type"], "response.done");
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "response.output_audio_transcript.delta")
    );
    for event in &events {
        assert!(
            reelthyme_schema::validate_server_value(event).is_strictly_valid(),
            "{event}"
        );
    }
}

#[test]
fn a_refused_key_exits_non_zero_with_the_error_on_stderr() {
    let (_sim, base) = start_sim(&["--api-key", "sk-right"]);
    let output = Command::new(env!("CARGO_BIN_EXE_reelthyme"))
        .args([
            "chat",
            "--base-url",
            &format!("{base}/v1"),
            "--api-key",
            "sk-wrong",
            "--message",
            "hi",
            "--jsonl",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid_api_key"), "{stderr}");
    assert!(!stderr.contains("sk-wrong"), "the key leaked: {stderr}");
}

#[test]
fn without_a_key_it_talks_to_the_built_in_simulator() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reelthyme"))
        .args(["chat"])
        .env_remove("OPENAI_API_KEY")
        .env_remove("REELTHYME_BASE_URL")
        .env_remove("OPENAI_BASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello simulator\n/quit\n").unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "You said: hello simulator"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("built-in simulator"));
}

#[test]
fn mint_secret_prints_a_key_that_starts_a_session() {
    let (_sim, base) = start_sim(&["--api-key", "sk-mint"]);
    let output = Command::new(env!("CARGO_BIN_EXE_reelthyme"))
        .args([
            "mint-secret",
            "--base-url",
            &format!("{base}/v1"),
            "--api-key",
            "sk-mint",
        ])
        .args(["--instructions", "Be a pirate.", "--expires-in", "60"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let key = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("ek_"), "{key}");
    // The key works where the standard key is required, and carries its session.
    let chat = Command::new(env!("CARGO_BIN_EXE_reelthyme"))
        .args([
            "chat",
            "--base-url",
            &format!("{base}/v1"),
            "--api-key",
            &key,
            "--message",
            "hi",
            "--jsonl",
        ])
        .output()
        .unwrap();
    assert!(
        chat.status.success(),
        "{}",
        String::from_utf8_lossy(&chat.stderr)
    );
    let first: serde_json::Value = serde_json::from_str(
        String::from_utf8(chat.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["session"]["instructions"], "Be a pirate.");
    let refused = Command::new(env!("CARGO_BIN_EXE_reelthyme"))
        .args([
            "mint-secret",
            "--base-url",
            &format!("{base}/v1"),
            "--api-key",
            "sk-wrong",
        ])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("invalid_api_key"));
}

#[test]
fn a_recorded_session_replays_the_same_server_events() {
    let dir = std::env::temp_dir().join(format!("reelthyme-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let recording = dir.join("session.jsonl");
    let (_sim, base) = start_sim(&[]);
    let chat = |base: &str, record: Option<&std::path::Path>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_reelthyme"));
        command.args([
            "chat",
            "--base-url",
            &format!("{base}/v1"),
            "--api-key",
            "sk-x",
        ]);
        command.args(["--message", "Record me", "--jsonl"]);
        if let Some(path) = record {
            command.arg("--record").arg(path);
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let live = chat(&base, Some(&recording));
    // The recording is valid `events check` input (GA rows, both directions).
    let check = Command::new(env!("CARGO_BIN_EXE_reelthyme"))
        .args(["events", "check", "--roundtrip"])
        .arg(&recording)
        .output()
        .unwrap();
    let check_out = String::from_utf8_lossy(&check.stdout);
    // The header line is recognised; every event passes.
    assert!(
        check.status.success() && check_out.trim_end().ends_with(" passed, 0 failed"),
        "{check_out}"
    );
    let (_replay, replay_base) = start(&["replay", recording.to_str().unwrap()]);
    let replayed = chat(&replay_base, None);
    assert_eq!(
        replayed, live,
        "the replay gives the client the same server event sequence"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
