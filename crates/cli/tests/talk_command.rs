//! `reelthyme talk --sim` driven in tmux like a person would: a spoken WAV enters through
//! the ALSA file device, the screen shows the user's turn, the assistant's transcript and
//! the input meter, and `q` exits cleanly with status 0, leaving a recording behind.

#![cfg(target_os = "linux")]

use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux(String);

impl Tmux {
    fn capture(&self) -> String {
        let output = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.0])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .output();
    }
}

#[test]
fn talk_in_a_terminal_hears_the_user_answers_and_quits_on_q() {
    if Command::new("tmux").arg("-V").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install tmux (see .ci/run)"
        );
        eprintln!("skipped: tmux is not installed");
        return;
    }
    let dir = std::env::temp_dir().join(format!("reelthyme-talk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (infile, outfile) = (dir.join("in.raw"), dir.join("out.raw"));
    let mut raw: Vec<u8> = reelthyme_testkit::read_wav(&reelthyme_testkit::audio("weather_48k_stereo.wav"))
        .samples
        .iter()
        .flat_map(|&s| (f32::from(s) / 32_768.0).to_le_bytes())
        .collect();
    raw.extend(std::iter::repeat_n(0_u8, 48_000 * 2 * 4 * 3));
    std::fs::write(&infile, raw).unwrap();
    let alsa = reelthyme::audio_io::headless::alsa_file_devices(&dir, &infile, &outfile).unwrap();
    let record = dir.join("recording");
    let code_file = dir.join("exit_code");
    let command = format!(
        "env -u OPENAI_API_KEY ALSA_CONFIG_PATH='{alsa}' '{}' talk --sim --record '{}' 2>'{}'; echo $? > '{}'",
        env!("CARGO_BIN_EXE_reelthyme"),
        record.display(),
        dir.join("stderr").display(),
        code_file.display()
    );
    let name = format!("reelthyme-talk-{}", std::process::id());
    let status = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &name,
            "-x",
            "110",
            "-y",
            "24",
            &command,
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let tmux = Tmux(name.clone());

    let deadline = Instant::now() + Duration::from_secs(60);
    let screen = loop {
        let screen = tmux.capture();
        let heard = screen
            .lines()
            .any(|l| l.starts_with("You: ") && l.contains("seconds of audio"));
        let answered = screen
            .lines()
            .any(|l| l.starts_with("Assistant: You said:"));
        if heard && answered {
            break screen;
        }
        assert!(
            Instant::now() < deadline,
            "the screen never showed the turn:\n{screen}\nstderr: {}",
            std::fs::read_to_string(dir.join("stderr")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
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

    Command::new("tmux")
        .args(["send-keys", "-t", &name, "q"])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Ok(code) = std::fs::read_to_string(&code_file) {
            break code;
        }
        assert!(
            Instant::now() < deadline,
            "q did not end talk:\n{}",
            tmux.capture()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        code.trim(),
        "0",
        "stderr: {}",
        std::fs::read_to_string(dir.join("stderr")).unwrap_or_default()
    );

    // The recording: a WAV per side and every event, replayable and checkable.
    // The user's whole turn (≈3.5 s at 24 kHz); the assistant's answer so far (the
    // simulator speaks in real time and we quit mid-answer).
    for (wav, at_least) in [("user.wav", 100_000), ("assistant.wav", 4_800)] {
        let len = std::fs::metadata(record.join(wav)).unwrap().len();
        assert!(len > at_least, "{wav} has {len} bytes");
    }
    let check = Command::new(env!("CARGO_BIN_EXE_reelthyme"))
        .args(["events", "check"])
        .arg(record.join("events.jsonl"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{}",
        out.lines().rev().take(5).collect::<Vec<_>>().join("\n")
    );
    drop(tmux);
    let _ = std::fs::remove_dir_all(&dir);
}
