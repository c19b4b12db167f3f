//! A short run of every harness `cargo xtask bench` drives, with tiny sizes: each produces
//! its figures (the benchmarks themselves are not part of the test command).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reelthyme_bench::{codec, scale};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benchmarks/fixtures")
}

fn field(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|t| t.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

#[test]
fn the_committed_fixtures_are_what_the_generator_makes() {
    let committed = codec::Fixtures::load(&fixtures_dir()).unwrap();
    assert_eq!(committed, codec::Fixtures::generate());
    codec::check(&committed).unwrap();
}

#[test]
fn the_codec_harness_reports_every_rate() {
    let lines = codec::run(&codec::Fixtures::generate(), 0.0, 1).unwrap();
    for name in [
        "decode.reelthyme",
        "decode.serde_value",
        "encode.reelthyme",
        "encode.serde_value",
    ] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap();
        assert!(field(line, "events_per_s").unwrap() > 0.0, "{line}");
    }
    let fixture = lines
        .iter()
        .find(|l| l.starts_with("codec.fixture "))
        .unwrap();
    assert_eq!(field(fixture, "delta_bytes"), Some(1514.0));
}

/// Runs a peer script if its interpreter is on this machine (the bench says so when not).
fn peer(program: &str, script: &str, names: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../benchmarks/peers")
        .join(script);
    let output = match Command::new(program)
        .arg(&script)
        .arg(fixtures_dir())
        .args(["0", "1"])
        .output()
    {
        Ok(output) => output,
        Err(e) => {
            eprintln!("{program} is not available ({e}): its peer is not smoke-tested here");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{program} {}: {stdout}{}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    for name in names {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {stdout}"));
        assert!(field(line, "events_per_s").unwrap() > 0.0, "{line}");
    }
}

#[test]
fn the_node_peer_checks_the_bytes_and_reports() {
    peer("node", "codec.js", &["decode.node", "encode.node"]);
}

#[test]
fn the_python_peer_checks_the_bytes_and_reports() {
    // The official SDK's venv when the test command made it (`cargo xtask test` sets this).
    let python = std::env::var("REELTHYME_SDK_PYTHON").unwrap_or_else(|_| "python3".into());
    peer(&python, "codec.py", &["decode.cpython", "encode.cpython"]);
}

#[test]
fn the_scale_harness_measures_stamped_deltas() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let line = runtime.block_on(async {
        let sim = scale::start_sim().await.unwrap();
        let plan = scale::Plan {
            sessions: 3,
            warmup: Duration::from_millis(300),
            measure: Duration::from_millis(1200),
            connect_batch: 2,
        };
        scale::run(&sim.url(), plan).await.unwrap()
    });
    assert!(line.starts_with("scale sessions=3 "), "{line}");
    assert_eq!(field(&line, "errors"), Some(0.0), "{line}");
    assert_eq!(field(&line, "unstamped"), Some(0.0), "{line}");
    // 20 ms deltas at real time: ~50 a second per session, so well over 3 × 20 here.
    assert!(field(&line, "deltas").unwrap() >= 60.0, "{line}");
    assert!(field(&line, "p99_ms").is_some(), "{line}");
    assert!(field(&line, "appends").unwrap() > 0.0, "{line}");
    assert!(field(&line, "rss_kib_per_session").is_some(), "{line}");
}

#[cfg(feature = "audio")]
#[test]
fn the_audio_path_harness_times_every_path_on_the_clocked_devices() {
    use reelthyme_bench::audio_path;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let lines = runtime
        .block_on(audio_path::run(audio_path::Plan {
            duplex: Duration::from_millis(1500),
            barge_ins: 1,
        }))
        .unwrap();
    let line = |name: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {lines:?}"))
            .clone()
    };
    for name in [
        "audio.capture_to_wire",
        "audio.delta_to_device",
        "audio.first_delta_to_device",
        "audio.speech_started_to_silent",
    ] {
        let l = line(name);
        assert!(field(&l, "samples").unwrap() >= 1.0, "{l}");
        let (p50, p99) = (field(&l, "p50_ms").unwrap(), field(&l, "p99_ms").unwrap());
        // Latencies are never negative (nothing is timed before it happened) and never
        // seconds (that would be a mismatched chunk or delta, not a delay).
        assert!((0.0..=p99).contains(&p50) && p99 < 1000.0, "{l}");
    }
    let capture = line("audio.capture_to_wire");
    // Every complete 40 ms chunk reached the wire as one append, none before its audio.
    assert_eq!(field(&capture, "early"), Some(0.0), "{capture}");
    assert!(field(&capture, "chunks").unwrap() >= 20.0, "{capture}");
    assert!(
        field(&capture, "appends").unwrap() >= field(&capture, "chunks").unwrap(),
        "{capture}"
    );
    // The device played the deltas' samples (up to what was still queued at the end).
    let delta = line("audio.delta_to_device");
    let (sent, played) = (
        field(&delta, "delta_samples").unwrap(),
        field(&delta, "played_frames").unwrap(),
    );
    assert!(played <= sent && played > 0.0, "{delta}");
    let barge = line("audio.speech_started_to_silent");
    assert_eq!(field(&barge, "idle"), Some(0.0), "{barge}");
}

#[test]
fn the_openai_python_scale_peer_measures_stamped_deltas() {
    // Needs the official SDK: its venv when the test command made it.
    let Some(python) = std::env::var_os("REELTHYME_SDK_PYTHON") else {
        eprintln!(
            "REELTHYME_SDK_PYTHON is not set: the openai-python scale peer is not smoke-tested here"
        );
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sim = runtime.block_on(scale::start_sim()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benchmarks/peers/scale_sdk.py");
    let output = Command::new(python)
        .arg(&script)
        .arg(sim.url())
        .args(["2", "0.3", "1.2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("scale.openai_python sessions=2 "))
        .unwrap_or_else(|| panic!("no figure in {stdout}"));
    assert_eq!(field(line, "errors"), Some(0.0), "{line}");
    assert_eq!(field(line, "unstamped"), Some(0.0), "{line}");
    // 20 ms deltas at real time: ~50 a second per session, so well over 2 × 20 here.
    assert!(field(line, "deltas").unwrap() >= 40.0, "{line}");
    assert!(field(line, "appends").unwrap() > 0.0, "{line}");
    assert!(field(line, "p99_ms").is_some(), "{line}");
    assert!(
        field(line, "client_cpu_pct_per_session").is_some(),
        "{line}"
    );
    drop(sim);
}
