//! The WebRTC examples as a user runs them, against the built-in simulator: `sideband`
//! (a WebRTC client with an ephemeral key, the tools on the server's sideband WebSocket)
//! and `webrtc_voice`, with ALSA's file devices standing in for the microphone (a spoken
//! question, on the outgoing track) and the speaker (the answer's track). Both "files" are
//! FIFOs written and read here at real time: the file device is not paced, and so nothing
//! piles up in the capture queue or grows on disk.

mod support;

#[cfg(target_os = "linux")]
use support::as_device_bytes;
use support::cargo_run;

use std::process::Command;

fn lines_in_order(stdout: &str, stderr: &str, expected: &[&str]) {
    let lines: Vec<&str> = stdout.lines().collect();
    let mut last = 0;
    for prefix in expected {
        let at = lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix:?} in\n{stdout}\n{stderr}"));
        assert!(at >= last, "{prefix:?} out of order in\n{stdout}");
        last = at;
    }
}

#[test]
fn sideband_keeps_the_tools_on_the_server_of_a_webrtc_client() {
    let output = cargo_run("sideband", &[]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    lines_in_order(
        &stdout,
        &stderr,
        &[
            "client: on call rtc_",
            "server: attached to rtc_",
            // The tool ran on the server, called by the client's conversation…
            "server: get_weather(\"Paris\")",
            // …and its result reached the client over WebRTC.
            "client heard: The get_weather tool returned Paris: 18 °C, clear.",
            "server: hung up",
            "client: the call ended (the server ended the call",
            "server: the sideband saw ",
        ],
    );
}

/// Writes `audio` into the FIFO the microphone reads, at real time (48 kHz stereo f32),
/// then silence until the reader goes: a device's pace, so that nothing piles up in the
/// capture queue (the file device alone is not paced). ALSA opens the file each time the
/// device is probed, too: every open gets the audio from its start.
#[cfg(target_os = "linux")]
fn microphone(fifo: std::path::PathBuf, audio: Vec<u8>) {
    use std::io::Write;
    std::thread::spawn(move || {
        let period = 480 * 8;
        let silence = vec![0_u8; period];
        while let Ok(mut file) = std::fs::OpenOptions::new().write(true).open(&fifo) {
            let started = std::time::Instant::now();
            let chunks = audio.chunks(period).chain(std::iter::repeat(&silence[..]));
            for (n, chunk) in chunks.enumerate() {
                if file.write_all(chunk).is_err() {
                    break;
                }
                let due = std::time::Duration::from_millis(10 * (n as u64 + 1));
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
    });
}

/// Reads the FIFO the speaker writes at about real time (48 kHz stereo f32), counting the
/// audible samples into `loud` (over every open of the device).
#[cfg(target_os = "linux")]
fn speaker(fifo: std::path::PathBuf, loud: std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::Read;
    use std::sync::atomic::Ordering;
    std::thread::spawn(move || {
        let mut buffer = vec![0_u8; 480 * 8];
        while let Ok(mut file) = std::fs::File::open(&fifo) {
            let started = std::time::Instant::now();
            let mut frames = 0_usize;
            while file.read_exact(&mut buffer).is_ok() {
                frames += 480;
                let audible = buffer
                    .chunks_exact(4)
                    .filter(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).abs() > 0.02)
                    .count();
                loud.fetch_add(audible, Ordering::Relaxed);
                let due = std::time::Duration::from_secs_f64(frames as f64 / 48_000.0);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
    });
}

#[cfg(target_os = "linux")]
#[test]
fn webrtc_voice_hears_the_question_on_the_track_and_plays_the_answer() {
    let dir = std::env::temp_dir().join(format!("reelthyme-webrtc-voice-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (infile, fifo) = (dir.join("in.fifo"), dir.join("out.fifo"));
    for path in [&infile, &fifo] {
        let _ = std::fs::remove_file(path);
        assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
    }
    let wav = reelthyme_testkit::read_wav(&reelthyme_testkit::audio("weather_24k.wav"));
    microphone(infile.clone(), as_device_bytes(&wav.samples));
    let loud = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    speaker(fifo.clone(), loud.clone());
    let alsa = reelthyme::audio_io::headless::alsa_file_devices(&dir, &infile, &fifo).unwrap();
    let output = cargo_run("webrtc_voice", &[("ALSA_CONFIG_PATH", &alsa)]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    lines_in_order(
        &stdout,
        &stderr,
        &[
            "on call rtc_",
            // The simulator's VAD heard the question on the outgoing track.
            "you: What is the weather like in Paris today?",
            "assistant: You said: What is the weather like in Paris today?",
            "(the answer played out)",
        ],
    );
    // The answer's track reached the speaker: a second and more of audible samples.
    let loud = loud.load(std::sync::atomic::Ordering::Relaxed);
    assert!(loud > 48_000, "{loud} audible samples played");
    let _ = std::fs::remove_dir_all(&dir);
}
