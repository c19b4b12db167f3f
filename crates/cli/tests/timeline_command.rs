//! `reelthyme timeline` on a real session: a client drives the simulator over WebSocket
//! with speech (server VAD), barges in on the first answer, lets the second one finish,
//! and records every event in the recording format; the page is rendered and opened in
//! headless Chromium, whose DOM must show the turns, the barge-in and the latencies.
//!
//! Needs Chromium (`apt-get install -y chromium`); `REELTHYME_SKIP_BROWSER=1` skips the
//! browser half only.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, ServerEvent, SessionConfig, Transcription};
use reelthyme_sim::{Match, Reply, SimConfig, Simulator};
use serde_json::Value;

const FORECAST: &str = "In Paris today it is mostly sunny, with a few clouds in the afternoon. \
    The temperature climbs from twelve degrees in the morning to twenty-two around four o'clock, \
    with a light breeze from the west. Tomorrow looks much the same, with a small chance of rain \
    in the evening, so take an umbrella if you go out late.";

/// The recording as it is written: a header, then timestamped events both ways.
#[derive(Clone)]
struct Recording(Arc<Mutex<(Vec<String>, Instant)>>);

impl Recording {
    fn new() -> Self {
        Self(Arc::new(Mutex::new((
            vec![reelthyme_sim::recording_header("gpt-realtime")],
            Instant::now(),
        ))))
    }

    fn log(&self, from_server: bool, event: Value) {
        let mut inner = self.0.lock().unwrap();
        let t_ms = inner.1.elapsed().as_millis() as u64;
        let line = reelthyme_sim::Entry {
            t_ms,
            from_server,
            event,
        }
        .to_line();
        inner.0.push(line);
    }

    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().0.clone()
    }
}

/// 24 kHz mono PCM16 of a fixture.
fn speech(name: &str) -> Vec<i16> {
    let wav = reelthyme_testkit::read_wav(&reelthyme_testkit::audio(name));
    assert_eq!((wav.rate, wav.channels), (24_000, 1), "{name}");
    wav.samples
}

/// Sends `samples` as 40 ms appends, four times faster than real time.
async fn speak(tx: &mut reelthyme::SessionSender, recording: &Recording, samples: &[i16]) {
    for chunk in samples.chunks(960) {
        let append = ClientEvent::audio_append(chunk);
        recording.log(false, append.to_value());
        tx.send(append).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The next event `want` accepts (at most 30 s away).
async fn wait_for(
    seen: &mut tokio::sync::mpsc::UnboundedReceiver<ServerEvent>,
    what: &str,
    want: fn(&ServerEvent) -> bool,
) -> ServerEvent {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let event = seen.recv().await.expect("the session ended");
            if want(&event) {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} within 30 s"))
}

/// Records a two-turn session whose first answer is interrupted.
async fn record_session(dir: &Path) -> PathBuf {
    let sim = Simulator::start(
        SimConfig::default()
            .speed(2.0)
            .transcripts([
                "What is the weather like in Paris today?",
                "Please book a table for two at seven o'clock.",
            ])
            .rule(
                Match::Contains("weather".into()),
                Reply::Text(FORECAST.into()),
            )
            .rule(
                Match::Contains("book".into()),
                Reply::Text("Done: a table for two at seven tonight.".into()),
            ),
    )
    .await
    .unwrap();
    let endpoint =
        reelthyme::Endpoint::openai("gpt-realtime").base_url(&format!("{}/v1", sim.url()));
    let session = reelthyme::connect(reelthyme::Config::new(endpoint))
        .await
        .unwrap();
    let (mut tx, mut events) = session.split();
    let recording = Recording::new();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<ServerEvent>();
    let reader = {
        let recording = recording.clone();
        tokio::spawn(async move {
            while let Some(Ok(event)) = events.next().await {
                recording.log(true, event.to_value());
                if seen_tx.send(event).is_err() {
                    break;
                }
            }
        })
    };
    let mut update = SessionConfig::realtime();
    update.audio_input_mut().transcription = Some(Some(Transcription {
        model: Some("gpt-4o-mini-transcribe".into()),
        ..Transcription::default()
    }));
    let update = ClientEvent::session_update(update);
    recording.log(false, update.to_value());
    tx.send(update).await.unwrap();

    // Turn 1: a question; the long answer starts playing.
    speak(&mut tx, &recording, &speech("weather_24k.wav")).await;
    let ServerEvent::ResponseOutputAudioDelta(first) =
        wait_for(&mut seen, "first answer's audio", |e| {
            matches!(e, ServerEvent::ResponseOutputAudioDelta(_))
        })
        .await
    else {
        unreachable!()
    };
    let answer_started = Instant::now();
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Turn 2 barges in: as the library's `stream` does, cancel and truncate at what played.
    let barge = tokio::spawn({
        let mut tx = tx.clone();
        let recording = recording.clone();
        async move { speak(&mut tx, &recording, &speech("booking_24k.wav")).await }
    });
    wait_for(&mut seen, "the barge-in", |e| {
        matches!(e, ServerEvent::InputAudioBufferSpeechStarted(_))
    })
    .await;
    let played_ms = answer_started.elapsed().as_millis() as u64;
    for event in [
        ClientEvent::response_cancel_id(first.response_id.clone()),
        ClientEvent::truncate(first.item_id.clone(), played_ms),
    ] {
        recording.log(false, event.to_value());
        tx.send(event).await.unwrap();
    }
    barge.await.unwrap();
    // Turn 2's answer plays to the end.
    wait_for(&mut seen, "the second answer", |e| {
        matches!(e, ServerEvent::ResponseDone(done)
            if done.response.status == Some(reelthyme::events::ResponseStatus::Completed))
    })
    .await;
    tx.close().await.ok();
    drop(seen);
    let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
    sim.shutdown().await;

    let path = dir.join("session.jsonl");
    std::fs::write(&path, recording.lines().join("\n") + "\n").unwrap();
    path
}

/// Per response, in order: first delta − the latest `speech_stopped` before its creation —
/// computed here independently of the command's own analysis.
fn expected_latencies(recording: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(recording).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &Value| r["direction"] == "server")
        .collect();
    let mut latencies = Vec::new();
    let mut stopped = None;
    let mut waiting: Option<(String, u64)> = None;
    for row in rows {
        let t = row["t_ms"].as_u64().unwrap();
        let event = &row["event"];
        match event["type"].as_str().unwrap() {
            "input_audio_buffer.speech_stopped" => stopped = Some(t),
            "response.created" => {
                waiting = stopped
                    .take()
                    .map(|s| (event["response"]["id"].as_str().unwrap().to_owned(), s))
            }
            kind if kind.starts_with("response.output_") && kind.ends_with(".delta") => {
                if let Some((id, s)) = &waiting
                    && event["response_id"] == id.as_str()
                {
                    latencies.push(t - s);
                    waiting = None;
                }
            }
            _ => {}
        }
    }
    latencies
}

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("REELTHYME_CHROMIUM") {
        return Some(PathBuf::from(path)).filter(|p| p.exists());
    }
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// Runs headless Chromium on `page` with `args`; its stdout. At most 90 s.
fn run_chromium(browser: &Path, args: &[String], page: &Path) -> String {
    let profile = std::env::temp_dir().join(format!("reelthyme-chromium-{}", std::process::id()));
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut std::io::BufReader::new(stdout), &mut out).unwrap();
        out
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&profile);
    reader.join().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_session_renders_its_turns_barge_in_and_latencies() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("timeline");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let recording = record_session(&dir).await;
    let latencies = expected_latencies(&recording);
    assert_eq!(latencies.len(), 2, "two answered turns");

    let page = dir.join("session.html");
    let output = Command::new(env!("CARGO_BIN_EXE_reelthyme"))
        .arg("timeline")
        .arg(&recording)
        .arg("-o")
        .arg(&page)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        page.display().to_string()
    );
    let html = std::fs::read_to_string(&page).unwrap();
    for forbidden in ["<script", "src=", "href=", "url("] {
        assert!(!html.contains(forbidden), "not self-contained: {forbidden}");
    }

    let Some(browser) = chromium() else {
        if std::env::var_os("REELTHYME_SKIP_BROWSER").is_some_and(|v| v == "1") {
            eprintln!("skipped the browser checks (REELTHYME_SKIP_BROWSER=1)");
            return;
        }
        panic!(
            "Chromium is needed to check the rendered timeline: install it with \
             `apt-get install -y chromium` (or point REELTHYME_CHROMIUM at a Chrome binary; \
             REELTHYME_SKIP_BROWSER=1 skips these checks)"
        );
    };
    let dom = run_chromium(&browser, &["--dump-dom".into()], &page);
    assert_eq!(dom.matches(r#"<tr class="turn">"#).count(), 2, "{dom}");
    assert!(
        dom.contains("What is the weather like in Paris today?"),
        "the first turn"
    );
    assert!(
        dom.contains("Please book a table for two at seven o'clock."),
        "the second turn"
    );
    assert!(dom.contains("In Paris today"), "the interrupted answer");
    assert!(
        dom.contains("Done: a table for two at seven tonight."),
        "the second answer"
    );
    assert!(
        dom.contains(r#"<g class="barge">"#)
            && dom.contains(r#"<span class="tag barge">barge-in</span>"#),
        "a barge-in marker, in the picture and the table"
    );
    assert!(dom.contains("truncated at "), "the truncation");
    for latency in &latencies {
        assert!(
            dom.contains(&format!(r#"<td class="num latency">{latency} ms</td>"#))
                && dom.contains(&format!(">{latency} ms</text>")),
            "latency {latency} ms in the table and the picture"
        );
    }

    let screenshot = dir.join("session.png");
    run_chromium(
        &browser,
        &[
            format!("--screenshot={}", screenshot.display()),
            "--window-size=1400,900".into(),
        ],
        &page,
    );
    let png = std::fs::read(&screenshot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    eprintln!("screenshot: {}", screenshot.display());
}

/// `chat --record` → `timeline`: the typed turn, its answer and its latency, written next
/// to the recording by default.
#[test]
fn a_chat_recording_becomes_a_page_beside_it() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("timeline-chat");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let recording = dir.join("chat.jsonl");
    let chat = Command::new(env!("CARGO_BIN_EXE_reelthyme"))
        .args(["chat", "--sim", "--message", "Record me"])
        .arg("--record")
        .arg(&recording)
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    assert!(
        chat.status.success(),
        "{}",
        String::from_utf8_lossy(&chat.stderr)
    );
    let timeline = Command::new(env!("CARGO_BIN_EXE_reelthyme"))
        .arg("timeline")
        .arg(&recording)
        .output()
        .unwrap();
    assert!(timeline.status.success());
    let page = dir.join("chat.html");
    assert_eq!(
        String::from_utf8_lossy(&timeline.stdout).trim(),
        page.display().to_string()
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("You typed at "), "the typed message");
    assert!(html.contains("You said: Record me"), "the answer");
    assert_eq!(html.matches(r#"<tr class="turn">"#).count(), 1);
    assert!(
        html.contains(r#"<td class="num latency">"#) && !html.contains(r#"latency">—<"#),
        "a latency for the turn"
    );
}
