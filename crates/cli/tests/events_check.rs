//! `reelthyme events check` as a user runs it: the real binary, on the spec's corpus.

use std::process::Command;

#[test]
fn checks_the_spec_corpus_and_names_the_defective_rows() {
    let output = Command::new(env!("CARGO_BIN_EXE_reelthyme"))
        .args(["events", "check", "--roundtrip"])
        .arg(reelthyme_testkit::spec_examples())
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let last = stdout.lines().last().unwrap();
    let (passed, failed) = last.split_once(" passed, ").unwrap();
    let passed: usize = passed.parse().unwrap();
    let failed: usize = failed.trim_end_matches(" failed").parse().unwrap();
    assert_eq!(passed + failed, 160, "{last}");
    // Every failing line is reported with its line number and stage.
    assert!(
        stdout.contains("input_audio_buffer.append (client): validate: /audio: "),
        "{stdout}"
    );
    assert!(
        stdout.contains("(server): row: the row says `input_audio_buffer.dtmf_event_received`"),
        "{stdout}"
    );
}

#[test]
fn reads_standard_input_and_exits_zero_when_all_pass() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_reelthyme"))
        .args(["events", "check", "--roundtrip", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"{\"type\":\"response.create\",\"response\":{\"output_modalities\":[\"text\"]}}\n",
        )
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "1 passed, 0 failed\n"
    );
    assert!(output.status.success());
}

#[test]
fn a_missing_file_is_a_usage_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_reelthyme"))
        .args(["events", "check", "/nonexistent/events.jsonl"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cannot open /nonexistent/events.jsonl")
    );
}
