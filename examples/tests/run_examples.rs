//! The examples run as users run them (`cargo run --example NAME`), against the built-in
//! simulator (no `OPENAI_API_KEY`), and print what they promise. (`walkthrough` needs sound
//! devices, so here it runs without one and must say what to do; `reelthyme`'s audio tests
//! cover the device path.)

mod support;

use support::cargo_run;

fn run(example: &str) -> String {
    let output = cargo_run(example, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{example} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn device_free_examples_run_against_the_simulator() {
    assert!(run("text_chat").contains("You said: What can you do?"));
    assert!(run("tools").contains("The get_weather tool returned"));
    assert!(run("transcription").contains("transcript: testing one two three"));
    // `sideband` (a WebRTC client, the tools on a sideband): tests/webrtc_examples.rs.
}

/// The examples of the session core: user layers (one answers each committed turn, one
/// logs turns from the conversation state) and a reconnect through an outage (by itself,
/// the conversation replayed).
#[test]
fn layer_and_reconnect_examples_run_against_the_simulator() {
    let layer = run("layer");
    for line in [
        "you said: What is the weather in Paris?",
        "turn 1: the assistant answered: You said: What is the weather in Paris?",
        "turn 2: the assistant answered: You said: And in Rome?",
    ] {
        assert!(layer.contains(line), "{line:?} in\n{layer}");
    }
    let reconnect = run("reconnect");
    let connected = reconnect
        .lines()
        .find_map(|l| l.strip_prefix("connected: "));
    let reconnected = reconnect
        .lines()
        .find_map(|l| l.strip_prefix("reconnected: "));
    assert!(
        connected.is_some_and(|id| id.starts_with("sess_")) && connected != reconnected,
        "{reconnect}"
    );
    for line in [
        "status: reconnecting (attempt 1): ",
        "status: reconnected: 2 items replayed",
        "state restored: true (2 items replayed)",
        "You said: What is my name?",
        // The restored turns, the question and its answer.
        "the new server session holds 4 items",
    ] {
        assert!(reconnect.contains(line), "{line:?} in\n{reconnect}");
    }
}

/// Without a usable sound device (ALSA's default pointed at a card that does not exist)
/// the walkthrough ends with what happened and what to do — not an error chain.
#[cfg(target_os = "linux")]
#[test]
fn walkthrough_without_a_sound_card_says_what_to_do() {
    let dir = std::env::temp_dir().join(format!("reelthyme-no-card-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("asound.conf");
    std::fs::write(&conf, "pcm.!default { type hw card 99 }\n").unwrap();
    let path = format!("/usr/share/alsa/alsa.conf:{}", conf.display());
    let output = cargo_run("walkthrough", &[("ALSA_CONFIG_PATH", &path)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let end = stderr.trim_end();
    assert!(end.contains("walkthrough: no sound device to"), "{stderr}");
    assert!(end.contains("Headless\nmachines and CI"), "{stderr}");
    assert!(end.contains("ALSA_CONFIG_PATH="), "{stderr}");
    assert!(end.contains("--list-devices"), "{stderr}");
    assert!(
        !stderr.contains("Error:") && !stderr.contains("panicked"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// With a key, the examples take `OPENAI_BASE_URL` as the library does; the base that
/// `reelthyme sim` prints (no path, `http://` or `ws://`) means its `/v1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_take_openai_base_url_without_a_path() {
    let sim = reelthyme_sim::Simulator::start(reelthyme_sim::SimConfig::default())
        .await
        .unwrap();
    let base = sim.url().replacen("ws://", "http://", 1);
    let expected = format!("using {}/v1/realtime?model=", sim.url());
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(600),
        tokio::task::spawn_blocking(move || {
            cargo_run(
                "text_chat",
                &[("OPENAI_API_KEY", "sk-local"), ("OPENAI_BASE_URL", &base)],
            )
        }),
    )
    .await
    .expect("the example ends in time")
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stdout.contains("You said: What can you do?"), "{stdout}");
    sim.shutdown().await;
}
