//! The tool examples as a user runs them: `voice_tools` against the built-in simulator,
//! with ALSA's file devices standing in for the microphone (a spoken request) and the
//! speaker; `tools` against another server named by `OPENAI_BASE_URL`.

mod support;

#[cfg(target_os = "linux")]
use support::as_device_bytes;
use support::cargo_run;

/// With a key and `OPENAI_BASE_URL`, `tools` talks to that server (here a simulator the
/// test started) and the tool's result comes back in the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_works_against_the_server_openai_base_url_names() {
    let sim = reelthyme_sim::Simulator::start(reelthyme_sim::SimConfig::default())
        .await
        .unwrap();
    let base = sim.url().replacen("ws://", "http://", 1);
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(600),
        tokio::task::spawn_blocking(move || {
            cargo_run(
                "tools",
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
    assert!(
        stderr.contains(&format!("using {}/v1/realtime", sim.url())),
        "{stderr}"
    );
    assert!(
        stdout.contains("the model calls get_weather(\"Paris\")"),
        "{stdout}"
    );
    assert!(
        stdout.contains("The get_weather tool returned {\"city\":\"Paris\",\"temperature_c\":18"),
        "{stdout}"
    );
    sim.shutdown().await;
}

#[cfg(target_os = "linux")]
#[test]
fn voice_tools_runs_a_slow_tool_and_speaks_its_result() {
    let dir = std::env::temp_dir().join(format!("reelthyme-voice-tools-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (infile, outfile) = (dir.join("in.raw"), dir.join("out.raw"));
    let wav = reelthyme_testkit::read_wav(&reelthyme_testkit::audio("booking_24k.wav"));
    let mut raw = as_device_bytes(&wav.samples);
    // After the file ends capture repeats stale data: end on silence.
    raw.extend(std::iter::repeat_n(0_u8, 48_000 * 2 * 4 * 3));
    std::fs::write(&infile, raw).unwrap();
    let alsa = reelthyme::audio_io::headless::alsa_file_devices(&dir, &infile, &outfile).unwrap();
    let output = cargo_run("voice_tools", &[("ALSA_CONFIG_PATH", &alsa)]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let position = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix:?} in\n{stdout}\n{stderr}"))
    };
    let heard = position("you: Please book a table for two at Luigi's.");
    let booking = position("(booking a table at Luigi…)");
    let answer =
        position("assistant: The book_table tool returned booked a table at Luigi for 8 pm.");
    assert!(heard < answer && booking < answer, "{stdout}");
    // The answer was played: the speaker's file holds audio.
    assert!(std::fs::metadata(&outfile).map(|m| m.len()).unwrap_or(0) > 0);
    let _ = std::fs::remove_dir_all(&dir);
}
