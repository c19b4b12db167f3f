//! The examples run as users run them (`cargo run --example NAME`), against the built-in
//! simulator (no `OPENAI_API_KEY`), and print what they promise. (`walkthrough` needs sound
//! devices; `reelthyme`'s audio tests cover that path.)

use std::process::Command;

fn run(example: &str) -> String {
    let output = Command::new(env!("CARGO"))
        .args([
            "run",
            "--quiet",
            "--offline",
            "-p",
            "reelthyme-examples",
            "--example",
            example,
        ])
        .env_remove("OPENAI_API_KEY")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("cargo runs");
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
    assert!(run("sideband").contains("hung up; the sideband session ends: None"));
}
