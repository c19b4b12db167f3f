//! End to end through the real cpal streams on ALSA's user-space file devices: a spoken
//! WAV is captured from the default input, the simulator's VAD hears it and answers, and
//! the answer is played to the default output — whose samples must match what the
//! simulator sent (by correlation, after resampling to the device's rate).

#![cfg(all(feature = "audio", target_os = "linux"))]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, ServerEvent};
use reelthyme::{CaptureOptions, Config, Endpoint};
use reelthyme_sim::{Recorder, SimConfig, Simulator};

fn best_correlation(a: &[f32], b: &[f32], max_lag: usize) -> f64 {
    let mut best = f64::MIN;
    for lag in 0..max_lag.min(a.len()) {
        let n = b.len().min(a.len() - lag);
        let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
        for i in 0..n {
            let (x, y) = (f64::from(a[i + lag]), f64::from(b[i]));
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
        best = best.max(ab / (aa.sqrt() * bb.sqrt()).max(1e-12));
    }
    best
}

#[tokio::test]
async fn speech_in_through_the_microphone_answer_out_through_the_speaker() {
    let dir = std::env::temp_dir().join(format!("reelthyme-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (infile, outfile) = (dir.join("in.raw"), dir.join("out.raw"));
    // The input device runs at 48 kHz stereo f32: the fixture at that rate, then silence
    // (after its file ends the device repeats stale data, so the padding is long).
    let wav = reelthyme_testkit::read_wav(&reelthyme_testkit::audio("weather_48k_stereo.wav"));
    assert_eq!((wav.rate, wav.channels), (48_000, 2));
    let speech = wav.samples;
    let mut raw: Vec<u8> = speech
        .iter()
        .flat_map(|&s| (f32::from(s) / 32_768.0).to_le_bytes())
        .collect();
    raw.extend(std::iter::repeat_n(0_u8, 48_000 * 2 * 4 * 4));
    std::fs::write(&infile, raw).unwrap();
    let config = reelthyme::audio_io::headless::alsa_file_devices(&dir, &infile, &outfile).unwrap();
    // SAFETY: the only test in this binary, on a current-thread runtime: no other thread
    // reads the environment yet (ALSA reads it when cpal first opens a device, below).
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("ALSA_CONFIG_PATH", config);
    }

    let recorder = Recorder::new();
    let sim = Simulator::start(
        SimConfig::default()
            .speed(20.0)
            .transcripts(["What is the weather like in Paris today?"])
            .recorder(recorder.clone()),
    )
    .await
    .unwrap();
    let endpoint = Endpoint::openai("gpt-realtime").base_url(&format!("{}/v1", sim.url()));
    let session = reelthyme::connect(Config::new(endpoint).outgoing(reelthyme::validate))
        .await
        .unwrap();
    let tx = session.sender();
    let (mut events, control) = reelthyme::stream(session).unwrap();
    let capture = reelthyme::capture_audio(&tx, CaptureOptions::default()).unwrap();

    let mut capture = Some(capture);
    let mut saw = Vec::new();
    let done = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(event) = events.next().await {
            let event = event.unwrap();
            saw.push(event.type_name().to_owned());
            if matches!(event, ServerEvent::InputAudioBufferSpeechStopped(_)) {
                // The device is not paced: stop feeding it once the turn is heard.
                capture.take().unwrap().stop().await.unwrap();
            }
            if let ServerEvent::ResponseDone(done) = event {
                return done;
            }
        }
        panic!("the session ended: {saw:?}");
    })
    .await
    .expect("a spoken answer in time");
    assert!(
        saw.iter().any(|t| t == "input_audio_buffer.speech_started"),
        "{saw:?}"
    );
    assert!(
        !saw.iter().any(|t| t == "response.output_audio.delta"),
        "deltas go to the speaker, not the stream"
    );
    let item_id = done.response.output.as_ref().unwrap()[0]
        .id()
        .unwrap()
        .to_owned();
    tokio::time::timeout(Duration::from_secs(20), async {
        while control.backlog_ms() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();

    // What the simulator sent for that item, at the device's rate.
    let sent: Vec<i16> = recorder
        .frames()
        .iter()
        .filter(|f| {
            f.from_server
                && f.json["type"] == "response.output_audio.delta"
                && f.json["item_id"] == item_id.as_str()
        })
        .flat_map(|f| {
            reelthyme::events::Base64Audio::from_base64(f.json["delta"].as_str().unwrap())
                .decode_pcm16()
                .unwrap()
        })
        .collect();
    assert!(sent.len() > 24_000, "{} samples sent", sent.len());
    let sent_ms = sent.len() as u64 * 1000 / 24_000;
    assert!(
        control.played_ms(&item_id).unwrap().abs_diff(sent_ms) <= 1,
        "played all {sent_ms} ms"
    );
    // Capture follows the session's input format as the server confirms it (here G.711
    // µ-law, 8 kHz: 320 bytes per 40 ms), and a tap sees every chunk it sends.
    let mut tx = tx;
    let update = serde_json::json!({"type": "session.update", "session": {"type": "realtime",
        "audio": {"input": {"format": {"type": "audio/pcmu"}, "turn_detection": null}}}});
    tx.send(ClientEvent::from_value(update).unwrap())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.next().await {
            if let ServerEvent::SessionUpdated(_) = event.unwrap() {
                return;
            }
        }
    })
    .await
    .expect("session.updated");
    let before = recorder.frames().len();
    let tapped = Arc::new(AtomicUsize::new(0));
    let counter = tapped.clone();
    let capture = reelthyme::capture_audio(
        &tx,
        CaptureOptions::default().tap(move |chunk| {
            // 40 ms at 24 kHz (the last one, at stop, may be shorter).
            assert!(chunk.len() <= 960, "{} samples", chunk.len());
            counter.fetch_add(1, Ordering::SeqCst);
        }),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    capture.stop().await.unwrap();
    tx.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let appends: Vec<usize> = recorder.frames()[before..]
        .iter()
        .filter(|f| !f.from_server && f.json["type"] == "input_audio_buffer.append")
        .map(|f| {
            reelthyme::events::Base64Audio::from_base64(f.json["audio"].as_str().unwrap())
                .decode_bytes()
                .unwrap()
                .len()
        })
        .collect();
    let chunks = tapped.load(Ordering::SeqCst);
    assert!(chunks > 0, "the tap saw nothing");
    // One append per tapped chunk, plus the resampler's tail at stop.
    assert!(
        appends.len() == chunks || appends.len() == chunks + 1,
        "{} appends for {chunks} chunks",
        appends.len()
    );
    // 40 ms of 8 kHz G.711 is 320 bytes; the resampler's start, the short last chunk and
    // the tail at stop differ.
    let odd = appends.iter().filter(|&&n| n != 320).count();
    assert!(
        odd <= 3 && appends.len() > 3,
        "G.711 appends of 40 ms: {appends:?}"
    );

    // A capture whose session ends says so while it runs, not only at `stop`.
    let mut closing = control.sender();
    let capture = reelthyme::capture_audio(&closing, CaptureOptions::default()).unwrap();
    assert!(capture.error().is_none());
    closing.close().await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(error) = capture.error() {
                return error;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the capture did not notice its session ended");
    assert!(ended.is_fatal(), "{ended}");
    assert!(capture.is_finished());
    assert_eq!(capture.stop().await.unwrap_err().kind(), ended.kind());

    drop(events);
    drop(control);
    let mut source = Vec::new();
    reelthyme::audio_io::i16_to_f32(&sent, &mut source);
    let mut expected = Vec::new();
    let mut resampler = reelthyme::audio_io::Resampler::new(24_000, 48_000).unwrap();
    resampler.process(&source, &mut expected);
    resampler.flush(&mut expected);
    let expected: Vec<f32> = expected.into_iter().filter(|&s| s != 0.0).collect();
    let written: Vec<f32> = std::fs::read(&outfile)
        .unwrap()
        .chunks_exact(8)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .filter(|&s| s != 0.0)
        .collect();
    let correlation = best_correlation(&written, &expected, 8);
    assert!(
        correlation > 0.99,
        "played audio correlates {correlation:.4} with what the simulator sent"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
