//! OpenAI's official Python SDK (`openai`, unmodified) against the simulator: a text turn,
//! an audio turn with server VAD, a function-call round trip, and a wrong key.
//!
//! `.ci/run` creates the SDK's virtualenv and sets `REELTHYME_SDK_PYTHON` to its
//! interpreter. Without it the test says so and passes, except under CI (`CI=true`), where
//! a missing SDK is a failure.

mod support;

use std::path::PathBuf;
use std::process::Stdio;

use support::{assert_all_valid, simulator};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_runs_unmodified() {
    let Some(python) = std::env::var_os("REELTHYME_SDK_PYTHON") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must set REELTHYME_SDK_PYTHON (see .ci/run)"
        );
        eprintln!(
            "skipped: set REELTHYME_SDK_PYTHON to a Python with `openai[realtime]` installed"
        );
        return;
    };
    let (sim, recorder) = simulator(
        reelthyme_sim::SimConfig::default()
            .speed(20.0)
            .api_key("sk-sim-test"),
    )
    .await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/official_sdk.py");
    let child = tokio::process::Command::new(python)
        .arg(script)
        .arg(sim.url())
        .arg("sk-sim-test")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the SDK's python starts");
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        child.wait_with_output(),
    )
    .await
    .expect("the SDK run finishes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "SDK run failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let scenarios: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = scenarios
        .iter()
        .map(|s| s["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["text", "audio", "function_call", "wrong_key"]);
    assert_eq!(scenarios[3]["close"], 3000);
    // Every event the SDK received is valid by our own schemas too.
    assert_all_valid(&recorder);
}
