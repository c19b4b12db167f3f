//! What the `reelthyme` binary tells a person when something goes wrong, and what its logs
//! never contain.

use std::process::{Command, Output, Stdio};

mod support;

use support::Killed;

/// Starts `reelthyme sim` with `args`; returns it and the base URL it printed.
fn start_sim(args: &[&str]) -> (Killed, String) {
    let mut all = vec!["sim", "--port", "0", "--speed", "50"];
    all.extend_from_slice(args);
    support::start(&all)
}

fn reelthyme(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_reelthyme"));
    command
        .args(args)
        .env_remove("OPENAI_API_KEY")
        .env_remove("REELTHYME_BASE_URL")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

/// A command line and its environment.
type Run<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);

const SECRET: &str = "sk-SUPERSECRET-4f1c2a9e";

#[test]
fn trace_logs_never_contain_the_api_key() {
    let (_sim, base) = start_sim(&[]);
    let base = format!("{base}/v1");
    let chat = [
        "chat",
        "--message",
        "hi",
        "--base-url",
        &base,
        "--api-key",
        SECRET,
    ];
    let with_vvv: Vec<&str> = ["-vvv"].iter().chain(chat.iter()).copied().collect();
    let runs: [Run<'_>; 4] = [
        (&with_vvv, &[]),
        (&chat, &[("RUST_LOG", "trace")]),
        // Asking for the handshake's logs by name does not get them either.
        (
            &chat,
            &[(
                "RUST_LOG",
                "tungstenite=trace,tokio_tungstenite=trace,tungstenite::handshake::client=trace",
            )],
        ),
        (&with_vvv, &[("RUST_LOG", "trace,tungstenite=trace")]),
    ];
    for (args, env) in runs {
        let output = reelthyme(args, env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?} {env:?}: {stderr}");
        assert!(
            !stderr.contains("SUPERSECRET"),
            "{args:?} {env:?}: the key is in the logs:\n{}",
            stderr
                .lines()
                .filter(|l| l.contains("SUPERSECRET"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        if env.first().is_none_or(|(_, v)| v.starts_with("trace")) {
            let traces = stderr.lines().filter(|l| l.contains("TRACE")).count();
            assert!(traces > 20, "{args:?} {env:?}: few trace lines:\n{stderr}");
        }
    }
}

/// Stderr of an expected failure: a line or two a person can act on, nothing for a debugger.
fn assert_actionable(output: &Output, expected: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        (1..=2).contains(&lines.len()),
        "one or two lines, not:\n{stderr}"
    );
    for noise in [
        "Backtrace",
        "backtrace",
        "panicked",
        "Caused by",
        "Error {",
        "kind:",
    ] {
        assert!(!stderr.contains(noise), "{noise:?} in:\n{stderr}");
    }
    for text in expected {
        assert!(stderr.contains(text), "{text:?} missing from:\n{stderr}");
    }
    stderr
}

/// A port with nothing listening on it.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

#[test]
fn a_refused_connection_says_so_and_what_to_check() {
    let base = format!("ws://127.0.0.1:{}/v1", closed_port());
    // Even with backtraces asked for: an expected failure is not a crash.
    let output = reelthyme(
        &[
            "chat",
            "--message",
            "hi",
            "--base-url",
            &base,
            "--api-key",
            "sk-x",
        ],
        &[("RUST_BACKTRACE", "1")],
    );
    assert_actionable(&output, &["refused", "--base-url", "reelthyme sim"]);
}

#[test]
fn a_wrong_key_is_an_authentication_failure() {
    let (_sim, base) = start_sim(&["--api-key", "sk-right"]);
    let output = reelthyme(
        &[
            "chat",
            "--message",
            "hi",
            "--base-url",
            &format!("{base}/v1"),
        ],
        &[("OPENAI_API_KEY", SECRET)],
    );
    let stderr = assert_actionable(&output, &["authentication", "OPENAI_API_KEY"]);
    assert!(!stderr.contains("SUPERSECRET"), "{stderr}");
}

#[test]
fn a_wrong_path_points_to_the_base_url() {
    let (_sim, base) = start_sim(&[]);
    let output = reelthyme(
        &[
            "chat",
            "--message",
            "hi",
            "--base-url",
            &format!("{base}/v2"),
            "--api-key",
            "sk-x",
        ],
        &[],
    );
    assert_actionable(&output, &["404", "--base-url", "/v1"]);
}

#[test]
fn a_bad_recording_is_named_with_what_is_wrong() {
    let dir = std::env::temp_dir().join(format!("reelthyme-diag-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("not-a-recording.jsonl");
    std::fs::write(&file, "{\"type\":\"session.created\"}\n").unwrap();
    for command in ["replay", "timeline"] {
        let output = reelthyme(&[command, file.to_str().unwrap()], &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("not-a-recording.jsonl")
                && stderr.contains("not a reelthyme recording"),
            "{command}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{command}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `talk` where ALSA's default devices do not exist: a message that says so and what to
/// try, before the terminal is touched.
#[cfg(all(feature = "audio", target_os = "linux"))]
#[test]
fn talk_without_a_sound_device_explains_what_to_try() {
    let dir = std::env::temp_dir().join(format!("reelthyme-nodev-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("asound.conf");
    std::fs::write(
        &conf,
        "pcm.!default { type hw card 42 }\nctl.!default { type hw card 42 }\n",
    )
    .unwrap();
    let alsa = format!("/usr/share/alsa/alsa.conf:{}", conf.display());
    let output = reelthyme(&["talk", "--sim"], &[("ALSA_CONFIG_PATH", &alsa)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    // libasound writes its own complaints to stderr; ours are the `reelthyme:` lines.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("ALSA lib "))
        .collect();
    assert!((1..=2).contains(&ours.len()), "{stderr}");
    assert!(
        ours[0].starts_with("reelthyme: ") && ours[0].contains("device"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--list-devices") && stderr.contains("Headless machines"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn chat_skips_a_malformed_frame_with_a_warning() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sim = runtime
        .block_on(reelthyme_sim::Simulator::start(
            reelthyme_sim::SimConfig::default()
                .speed(50.0)
                .faults(reelthyme_sim::Faults {
                    malformed_after: Some(3),
                    ..Default::default()
                }),
        ))
        .unwrap();
    let base = format!("{}/v1", sim.url());
    let output = reelthyme(
        &[
            "chat",
            "--message",
            "hi",
            "--base-url",
            &base,
            "--api-key",
            "sk-x",
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("skipped an event from the server"),
        "{stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "You said: hi"
    );
    runtime.block_on(sim.shutdown());
}

/// A connection lost mid-answer is a status line, not a failure: `chat` reconnects (the
/// conversation replayed), asks for the lost answer again and prints it.
#[test]
fn chat_reconnects_with_a_status_line_when_the_connection_drops() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sim = runtime
        .block_on(reelthyme_sim::Simulator::start(
            reelthyme_sim::SimConfig::default()
                .speed(50.0)
                .faults(reelthyme_sim::Faults {
                    on_client: Some((
                        "response.create".into(),
                        1,
                        reelthyme_sim::FaultAction::Kill,
                    )),
                    sessions: Some(1),
                    ..Default::default()
                }),
        ))
        .unwrap();
    let base = format!("{}/v1", sim.url());
    let chat = [
        "chat",
        "--message",
        "hi",
        "--base-url",
        &base,
        "--api-key",
        "sk-x",
    ];
    let output = reelthyme(&chat, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("reelthyme: reconnecting (attempt 1)"),
        "{stderr}"
    );
    // The user's item was replayed, or resent when the old server had not confirmed it.
    let status = stderr
        .lines()
        .find(|l| l.starts_with("reelthyme: reconnected: "))
        .unwrap_or_else(|| panic!("no status line: {stderr}"));
    assert!(
        status.contains("the answer in progress was lost"),
        "{stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "You said: hi"
    );
    // Without reconnecting, the same drop ends `chat` with the failure.
    let mut once = chat.to_vec();
    once.push("--no-reconnect");
    let sim = runtime
        .block_on(reelthyme_sim::Simulator::start(
            reelthyme_sim::SimConfig::default().faults(reelthyme_sim::Faults {
                on_client: Some((
                    "response.create".into(),
                    1,
                    reelthyme_sim::FaultAction::Kill,
                )),
                ..Default::default()
            }),
        ))
        .unwrap();
    let base = format!("{}/v1", sim.url());
    once[4] = &base;
    let output = reelthyme(&once, &[]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("the session failed"));
}

/// The variables the library and the official SDKs read work here too.
#[test]
fn openai_base_url_and_reelthyme_model_are_honoured() {
    let (_sim, base) = start_sim(&[]);
    let base = format!("{base}/v1");
    let chat = ["chat", "--message", "hi", "--api-key", "sk-x"];
    let output = reelthyme(&chat, &[("OPENAI_BASE_URL", &base)]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "You said: hi"
    );
    let output = reelthyme(
        &chat,
        &[
            ("OPENAI_BASE_URL", &base),
            ("REELTHYME_MODEL", "not-a-model"),
        ],
    );
    assert_actionable(&output, &["not-a-model", "--model"]);
}

#[test]
fn completions_complete_the_subcommands() {
    let output = reelthyme(&["completions", "bash"], &[]);
    assert!(output.status.success());
    let script = String::from_utf8(output.stdout).unwrap();
    assert!(script.contains("_reelthyme()") && script.contains("timeline"));
    if Command::new("bash").arg("--version").output().is_ok() {
        let dir = std::env::temp_dir().join(format!("reelthyme-compl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("reelthyme.bash");
        std::fs::write(&file, script).unwrap();
        let completed = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source '{}'; COMP_WORDS=(reelthyme ti); COMP_CWORD=1; _reelthyme reelthyme ti reelthyme; echo \"${{COMPREPLY[*]}}\"",
                file.display()
            ))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&completed.stdout).trim(),
            "timeline"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
