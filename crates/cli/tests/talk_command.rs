//! `reelthyme talk --sim` driven in tmux like a person would: spoken WAVs enter through the
//! ALSA file device, the screen shows the conversation as a transcript of both sides, the
//! input meter and the state; `q` or Ctrl-C exits cleanly with status 0, the terminal is
//! restored, and a private recording stays behind.

#![cfg(all(feature = "audio", target_os = "linux"))]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux session running `talk`, killed when the test ends.
struct Talk {
    name: String,
    dir: PathBuf,
}

impl Talk {
    /// Starts `talk --sim --record` in a 110×24 tmux pane, its microphone reading `speech`
    /// (48 kHz stereo f32, what Debian's `null` device records). Around it, the shell
    /// saves the terminal settings before and after and keeps the pane open.
    fn start(tag: &str, speech: &[f32]) -> Option<Self> {
        Self::start_with(tag, speech, "--sim")
    }

    /// As [`Talk::start`], with these arguments instead of `--sim`.
    fn start_with(tag: &str, speech: &[f32], server: &str) -> Option<Self> {
        if Command::new("tmux").arg("-V").output().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must install tmux (see .ci/run)"
            );
            eprintln!("skipped: tmux is not installed");
            return None;
        }
        let name = format!("reelthyme-talk-{tag}-{}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (infile, outfile) = (dir.join("in.raw"), dir.join("out.raw"));
        let mut raw: Vec<u8> = speech.iter().flat_map(|s| s.to_le_bytes()).collect();
        // After the file ends capture repeats stale data: end on silence.
        raw.extend(std::iter::repeat_n(0_u8, 48_000 * 2 * 4 * 3));
        std::fs::write(&infile, raw).unwrap();
        let alsa =
            reelthyme::audio_io::headless::alsa_file_devices(&dir, &infile, &outfile).unwrap();
        let d = dir.display();
        let command = format!(
            "stty -g > '{d}/stty_before'; env -u OPENAI_API_KEY -u NO_COLOR ALSA_CONFIG_PATH='{alsa}' '{}' talk {server} --record '{d}/recording' 2>'{d}/stderr'; echo $? > '{d}/exit_code'; stty -g > '{d}/stty_after'; sleep 600",
            env!("CARGO_BIN_EXE_reelthyme"),
        );
        let status = Command::new("tmux")
            .args(["new-session", "-d", "-s", &name, "-x", "110", "-y", "24"])
            .arg(&command)
            .status()
            .unwrap();
        assert!(status.success());
        Some(Self { name, dir })
    }

    fn capture(&self) -> String {
        let output = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// Waits (at most 60 s) until the screen satisfies `ready`; returns it.
    fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.capture();
            if ready(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {what}:\n{screen}\nstderr: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn send_keys(&self, keys: &str) {
        Command::new("tmux")
            .args(["send-keys", "-t", &self.name, keys])
            .status()
            .unwrap();
    }

    /// Waits (at most 20 s) for `talk` to exit; its exit status.
    fn exit_code(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(after) = std::fs::read_to_string(self.dir.join("stty_after"))
                && !after.is_empty()
            {
                return std::fs::read_to_string(self.dir.join("exit_code"))
                    .unwrap()
                    .trim()
                    .to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "talk did not end:\n{}",
                self.capture()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn recording(&self) -> PathBuf {
        self.dir.join("recording")
    }
}

impl Drop for Talk {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fixture as 48 kHz stereo f32 samples.
fn speech_48k_stereo(name: &str) -> Vec<f32> {
    let wav = reelthyme_testkit::read_wav(&reelthyme_testkit::audio(name));
    let repeat = match (wav.rate, wav.channels) {
        (48_000, 2) => 1,
        (24_000, 1) => 4, // each sample twice in time, on both channels
        other => panic!("{name}: {other:?}"),
    };
    wav.samples
        .iter()
        .flat_map(|&s| std::iter::repeat_n(f32::from(s) / 32_768.0, repeat))
        .collect()
}

fn silence(seconds: f32) -> Vec<f32> {
    vec![0.0; (48_000.0 * 2.0 * seconds) as usize]
}

fn line_with<'a>(screen: &'a str, start: &str) -> Vec<&'a str> {
    screen.lines().filter(|l| l.starts_with(start)).collect()
}

/// Everything in the recording is private and checks as events.
fn check_recording(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for file in ["user.wav", "assistant.wav", "events.jsonl"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    let check = Command::new(env!("CARGO_BIN_EXE_reelthyme"))
        .args(["events", "check"])
        .arg(dir.join("events.jsonl"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{}",
        out.lines().rev().take(5).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn talk_in_a_terminal_hears_the_user_answers_and_quits_on_q() {
    let Some(talk) = Talk::start("q", &speech_48k_stereo("weather_48k_stereo.wav")) else {
        return;
    };
    let screen = talk.wait_for("the turn", |screen| {
        let heard = line_with(screen, "You: ")
            .iter()
            .any(|l| l.contains("seconds of audio"));
        let answered = !line_with(screen, "Assistant: You said:").is_empty();
        heard && answered
    });
    assert!(
        screen.contains("reelthyme talk — built-in simulator"),
        "{screen}"
    );
    assert!(
        screen
            .lines()
            .any(|l| l.starts_with("Mic:   [") && l.contains("dBFS")),
        "the meter: {screen}"
    );
    assert!(screen.contains("State: "), "{screen}");

    talk.send_keys("q");
    assert_eq!(talk.exit_code(), "0", "stderr: {}", talk.stderr());

    // The recording: a WAV per side and every event, replayable and checkable.
    // The user's whole turn (≈3.5 s at 24 kHz); the assistant's answer so far (the
    // simulator speaks in real time and we quit mid-answer).
    for (wav, at_least) in [("user.wav", 100_000), ("assistant.wav", 4_800)] {
        let len = std::fs::metadata(talk.recording().join(wav)).unwrap().len();
        assert!(len > at_least, "{wav} has {len} bytes");
    }
    check_recording(&talk.recording());
}

#[test]
fn two_turns_stay_on_screen_and_ctrl_c_quits_restoring_the_terminal() {
    let mut speech = speech_48k_stereo("weather_48k_stereo.wav");
    speech.extend(silence(2.0));
    speech.extend(speech_48k_stereo("booking_24k.wav"));
    let Some(talk) = Talk::start("ctrl-c", &speech) else {
        return;
    };
    // Both user turns and both answers, oldest first, with the second answer complete.
    let screen = talk.wait_for("two turns", |screen| {
        let heard = line_with(screen, "You: ")
            .iter()
            .filter(|l| l.contains("seconds of audio"))
            .count();
        let answers = line_with(screen, "Assistant: ");
        heard == 2 && answers.len() == 2 && answers[1].contains("seconds of audio (")
    });
    let rows: Vec<&str> = screen.lines().collect();
    let row = |start: &str, nth: usize| {
        rows.iter()
            .enumerate()
            .filter(|(_, l)| l.starts_with(start))
            .nth(nth)
            .unwrap_or_else(|| panic!("{start} #{nth} in\n{screen}"))
            .0
    };
    assert!(
        row("You: ", 0) < row("Assistant: ", 0)
            && row("Assistant: ", 0) < row("You: ", 1)
            && row("You: ", 1) < row("Assistant: ", 1),
        "{screen}"
    );
    // The latency of the answered turn, on its line and in the state line.
    assert!(
        screen.contains("Latency: ") && screen.contains(" ms"),
        "{screen}"
    );

    // Raw mode turns Ctrl-C into a key: it must still quit, with status 0.
    talk.send_keys("C-c");
    assert_eq!(talk.exit_code(), "0", "stderr: {}", talk.stderr());
    let before = std::fs::read_to_string(talk.dir.join("stty_before")).unwrap();
    let after = std::fs::read_to_string(talk.dir.join("stty_after")).unwrap();
    assert_eq!(before, after, "the terminal settings were not restored");
    // Out of the alternate screen: the conversation is left in the normal one.
    let after_screen = talk.capture();
    assert!(
        !after_screen.contains("q or Ctrl-C quit") && line_with(&after_screen, "You: ").len() == 2,
        "{after_screen}"
    );
    let stderr = talk.stderr();
    assert!(!stderr.contains("panicked"), "{stderr}");
    // How it went, and where the recording is with what draws it.
    assert!(
        stderr.contains("reelthyme talk: 2 answers, median latency ")
            && stderr.contains("`reelthyme timeline "),
        "{stderr}"
    );
    check_recording(&talk.recording());
}

/// A frame that is not an event (review #19h) is skipped with a note; the conversation
/// goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_frame_is_skipped_with_a_warning_and_talk_goes_on() {
    let sim = reelthyme_sim::Simulator::start(reelthyme_sim::SimConfig::default().faults(
        reelthyme_sim::Faults {
            malformed_after: Some(2),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
    let server = format!("--base-url {}/v1 --api-key sk-x", sim.url());
    let speech = speech_48k_stereo("weather_48k_stereo.wav");
    let talk = tokio::task::spawn_blocking(move || {
        let talk = Talk::start_with("malformed", &speech, &server)?;
        talk.wait_for("the warning and the answer", |screen| {
            screen.contains("skipped an event from the server")
                && !line_with(screen, "Assistant: You said:").is_empty()
        });
        talk.send_keys("q");
        assert_eq!(talk.exit_code(), "0", "stderr: {}", talk.stderr());
        Some(talk)
    })
    .await
    .unwrap();
    drop(talk);
    sim.shutdown().await;
}

/// With `--no-reconnect`, the server ending the session is fatal: `talk` leaves raw mode and
/// the alternate screen, then says what happened, with status 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_session_ends_talk_with_the_reason_and_a_restored_terminal() {
    let sim = reelthyme_sim::Simulator::start(reelthyme_sim::SimConfig::default().faults(
        reelthyme_sim::Faults {
            close_after: Some((6, 1011, "simulated failure".into())),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
    let server = format!("--base-url {}/v1 --api-key sk-x --no-reconnect", sim.url());
    let speech = speech_48k_stereo("weather_48k_stereo.wav");
    let talk = tokio::task::spawn_blocking(move || {
        let talk = Talk::start_with("closed", &speech, &server)?;
        assert_eq!(talk.exit_code(), "1", "stderr: {}", talk.stderr());
        let stderr = talk.stderr();
        // Warnings logged before it may precede it (on a loaded machine a device can be
        // slow to answer a barge-in): the failure is the line that starts the report.
        assert!(
            stderr
                .lines()
                .any(|line| line.starts_with("reelthyme: the session failed: ")
                    && line.contains("1011")),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        let before = std::fs::read_to_string(talk.dir.join("stty_before")).unwrap();
        let after = std::fs::read_to_string(talk.dir.join("stty_after")).unwrap();
        assert_eq!(before, after, "the terminal settings were not restored");
        assert!(
            !talk.capture().contains("q or Ctrl-C quit"),
            "{}",
            talk.capture()
        );
        Some(talk)
    })
    .await
    .unwrap();
    drop(talk);
    sim.shutdown().await;
}

/// The microphone goes through the library's `capture_audio`, not the CLI: the recording
/// still has every append it sent (from the session's sent events), the update first, and
/// the user's WAV holds at least the audio those appends carried.
#[test]
fn the_recording_has_the_session_update_and_the_microphones_appends() {
    let Some(talk) = Talk::start("appends", &speech_48k_stereo("weather_48k_stereo.wav")) else {
        return;
    };
    talk.wait_for("the answer", |screen| {
        !line_with(screen, "Assistant: You said:").is_empty()
    });
    talk.send_keys("q");
    assert_eq!(talk.exit_code(), "0", "stderr: {}", talk.stderr());
    let events = std::fs::read_to_string(talk.recording().join("events.jsonl")).unwrap();
    let sent: Vec<serde_json::Value> = events
        .lines()
        .skip(1)
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|entry| entry["direction"] == "client")
        .map(|entry| entry["event"].clone())
        .collect();
    assert_eq!(
        sent.first().map(|e| e["type"].clone()),
        Some("session.update".into()),
        "{events}"
    );
    let appended: usize = sent
        .iter()
        .filter(|e| e["type"] == "input_audio_buffer.append")
        .map(|e| e["audio"].as_str().unwrap().len() / 4 * 3 / 2)
        .sum();
    // The spoken turn is ≈3.5 s: at least 3 s of 24 kHz samples were appended.
    assert!(appended >= 72_000, "{appended} samples appended");
    let wav = reelthyme_testkit::read_wav(&talk.recording().join("user.wav"));
    assert!(
        wav.samples.len() >= appended,
        "{} < {appended}",
        wav.samples.len()
    );
}
