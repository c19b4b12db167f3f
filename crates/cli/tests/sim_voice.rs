//! `reelthyme sim --voice FILE.wav`: audio answers spoken with a recording, and files that
//! cannot be one refused as usage errors.

use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;
use reelthyme_schema::Base64Audio;
use tokio_tungstenite::tungstenite::Message;

mod support;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The mono samples of a 16-bit fixture (channels averaged) and its rate.
fn fixture(name: &str) -> (Vec<i16>, u32) {
    let wav = reelthyme_testkit::read_wav(&reelthyme_testkit::audio(name));
    let channels = usize::from(wav.channels);
    let mono = wav
        .samples
        .chunks_exact(channels)
        .map(|frame| (frame.iter().map(|&s| i32::from(s)).sum::<i32>() / channels as i32) as i16)
        .collect();
    (mono, wav.rate)
}

/// Starts `reelthyme sim --voice FILE`, asks one text turn for an audio answer and returns
/// the answer's decoded `response.output_audio.delta`s (24 kHz PCM16, the default format).
async fn answer_spoken_with(voice: &str) -> Vec<i16> {
    let path = reelthyme_testkit::audio(voice).to_str().unwrap().to_owned();
    let start = tokio::task::spawn_blocking(move || {
        support::start(&["sim", "--speed", "50", "--voice", &path])
    });
    let (_guard, base) = tokio::time::timeout(Duration::from_secs(10), start)
        .await
        .expect("the URL in time")
        .unwrap();
    assert!(base.starts_with("ws://127.0.0.1:"), "{base}");
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(format!("{base}/v1/realtime?model=gpt-realtime")),
    )
    .await
    .unwrap()
    .unwrap();
    send(
        &mut ws,
        serde_json::json!({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "Tell me about the weather."}]
        }}),
    )
    .await;
    send(
        &mut ws,
        serde_json::json!({"type": "response.create", "response": {"output_modalities": ["audio"]}}),
    )
    .await;
    let mut samples = Vec::new();
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the answer in time")
            .unwrap()
            .unwrap();
        let Message::Text(text) = frame else { continue };
        let event: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
        match event["type"].as_str() {
            Some("response.output_audio.delta") => {
                let delta: Base64Audio = serde_json::from_value(event["delta"].clone()).unwrap();
                samples.extend(delta.decode_pcm16().unwrap());
            }
            Some("response.done") => {
                assert_eq!(event["response"]["status"], "completed", "{event}");
                return samples;
            }
            Some("error") => panic!("{event}"),
            _ => {}
        }
    }
}

async fn send(ws: &mut Ws, event: serde_json::Value) {
    futures_util::SinkExt::send(ws, Message::text(event.to_string()))
        .await
        .unwrap();
}

/// The highest normalized cross-correlation of `a` and `b` (the middle of their common length) over lags
/// of up to `max_lag` samples either way.
fn best_correlation(a: &[i16], b: &[i16], max_lag: usize) -> f64 {
    let n = a.len().min(b.len()) - 2 * max_lag;
    (0..=2 * max_lag)
        .map(|lag| {
            let (x, y) = (&a[max_lag..max_lag + n], &b[lag..lag + n]);
            let dot: f64 = x
                .iter()
                .zip(y)
                .map(|(&p, &q)| f64::from(p) * f64::from(q))
                .sum();
            let energy = |s: &[i16]| s.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>();
            dot / (energy(x) * energy(y)).sqrt().max(f64::MIN_POSITIVE)
        })
        .fold(f64::MIN, f64::max)
}

#[tokio::test]
async fn the_answer_is_the_recording_at_the_output_rate() {
    let (recording, rate) = fixture("weather_24k.wav");
    assert_eq!(rate, 24_000);
    let answer = answer_spoken_with("weather_24k.wav").await;
    // At least past the fixture's 0.5 s of leading silence, into the speech.
    assert!(answer.len() > rate as usize, "{} samples", answer.len());
    // No resampling at 24 kHz: the answer is the recording from its start, looped.
    let looped: Vec<i16> = (0..answer.len())
        .map(|n| recording[n % recording.len()])
        .collect();
    assert!(answer == looped, "the answer is not the recording");
    assert!(
        answer.iter().any(|&s| s.unsigned_abs() > 1000),
        "speech, not silence"
    );
}

#[tokio::test]
async fn a_stereo_48k_recording_is_mixed_and_resampled() {
    // The same speech as weather_24k.wav, made at 48 kHz in stereo: what the simulator
    // speaks at 24 kHz must match the 24 kHz fixture (up to the resamplers' delay).
    let (reference, _) = fixture("weather_24k.wav");
    let answer = answer_spoken_with("weather_48k_stereo.wav").await;
    assert!(answer.len() > 24_000, "{} samples", answer.len());
    let window = answer.len().min(2 * 24_000);
    let correlation = best_correlation(&answer[..window], &reference[..window], 48);
    assert!(correlation > 0.9, "correlation {correlation}");
    // And not by chance: other speech (the answer reversed) does not match the recording.
    let reversed: Vec<i16> = answer[..window].iter().rev().copied().collect();
    let unrelated = best_correlation(&reversed, &reference[..window], 48);
    assert!(unrelated < 0.5, "reversed audio correlates {unrelated}");
}

fn sim_voice(path: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_reelthyme"))
        .args(["sim", "--voice", path])
        .output()
        .unwrap()
}

#[test]
fn a_missing_voice_is_a_usage_error_naming_the_file() {
    let output = sim_voice("/nonexistent/voice.wav");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot read the voice /nonexistent/voice.wav"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "no URL printed");
}

#[test]
fn a_file_that_is_not_a_wav_is_a_usage_error() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/weather_script.toml"
    );
    let output = sim_voice(script);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("weather_script.toml is not a WAV file"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn help_mentions_the_voice() {
    let output = Command::new(env!("CARGO_BIN_EXE_reelthyme"))
        .args(["sim", "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("--voice <FILE.wav>"), "{help}");
    assert!(help.contains("voice = \"FILE.wav\""), "{help}");
}
