//! Exact barge-in, timed by a clock the test controls (the ALSA file device is not paced):
//! the player runs the same callback code as a cpal stream, pulled 10 ms at a time. While
//! the assistant is speaking the user starts talking; playback must stop within one device
//! period, and the truncate the simulator receives must carry the milliseconds the "device"
//! really played of that item (± one period) — and be accepted.

#![cfg(feature = "audio")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use reelthyme::audio_io::Player;
use reelthyme::events::{ClientEvent, ServerEvent};
use reelthyme::{Config, Endpoint, StreamOptions};
use reelthyme_sim::{Recorder, SimConfig, Simulator};

const RATE: u32 = 48_000;
const PERIOD: usize = 480; // 10 ms

fn speech(seconds_silence: f64, seconds_voice: f64) -> Vec<i16> {
    let silence = (seconds_silence * 24_000.0) as usize;
    let voice = (seconds_voice * 24_000.0) as usize;
    let mut out = vec![0_i16; silence];
    out.extend((0..voice).map(|n| {
        ((n as f64 / 24_000.0 * 2.0 * std::f64::consts::PI * 190.0).sin() * 9_000.0) as i16
    }));
    out.extend(vec![0_i16; 24_000]);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_stops_playback_within_a_period_and_truncates_at_what_was_heard() {
    let recorder = Recorder::new();
    let (_sim, session) = long_answer_session(50.0, &recorder).await;
    let mut tx = session.sender();
    let (player, clock) = Player::with_clock(RATE, 2).unwrap();
    let (mut events, control) = reelthyme::stream_to(session, player, StreamOptions::default());
    // The "device": one 10 ms callback after another, counting frames of audio played.
    let device = Device::start(clock, Duration::from_micros(500));
    let played = device.played.clone();

    // No automatic answer to the interruption, so only the interrupted item can play.
    ask_for_a_story(&mut tx, true).await;
    let mut item_id = None;
    let mut spoke = false;
    let outcome = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            // Talk once 1.5 s of the answer has been heard.
            if !spoke && played.load(Ordering::Relaxed) >= u64::from(RATE) * 3 / 2 {
                spoke = true;
                for chunk in speech(0.1, 0.6).chunks(960) {
                    tx.send(ClientEvent::audio_append(chunk)).await.unwrap();
                }
            }
            let event = tokio::time::timeout(Duration::from_millis(20), events.next()).await;
            let Ok(Some(event)) = event else { continue };
            match event.unwrap() {
                ServerEvent::ResponseOutputItemAdded(added) if item_id.is_none() => {
                    item_id = added.item.id().map(str::to_owned);
                }
                ServerEvent::InputAudioBufferSpeechStarted(_) => {}
                ServerEvent::ConversationItemTruncated(truncated) => {
                    return truncated;
                }
                ServerEvent::Error(error)
                    if error.error.code() != Some("response_cancel_not_active") =>
                {
                    panic!("the server refused something: {:?}", error.error)
                }
                _ => {}
            }
        }
    })
    .await
    .expect("a truncation in time");
    // Playback stopped: more device periods play nothing of the interrupted answer.
    let stopped_at = played.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let later = played.load(Ordering::Relaxed);
    drop(device);
    assert!(
        later - stopped_at <= PERIOD as u64,
        "{} frames played after the barge-in",
        later - stopped_at
    );

    // The truncate names the item that was playing and the time the device really played.
    assert_eq!(Some(&outcome.item_id), item_id.as_ref());
    let heard_ms = stopped_at * 1000 / u64::from(RATE);
    let period_ms = (PERIOD as u64 * 1000 / u64::from(RATE)) as i64;
    assert!(
        (outcome.audio_end_ms as i64 - heard_ms as i64).abs() <= period_ms,
        "truncated at {} ms, the device played {heard_ms} ms",
        outcome.audio_end_ms
    );
    assert!(outcome.audio_end_ms >= 1_500, "{}", outcome.audio_end_ms);
    eprintln!(
        "barge-in: truncated at {} ms; the device played {heard_ms} ms; {} frames after",
        outcome.audio_end_ms,
        later - stopped_at
    );
    assert_eq!(control.backlog_ms(), 0);
    // What reached the server is exactly that truncate, and the server accepted it.
    let truncates: Vec<_> = recorder
        .frames()
        .into_iter()
        .filter(|f| !f.from_server && f.json["type"] == "conversation.item.truncate")
        .collect();
    assert_eq!(truncates.len(), 1);
    assert_eq!(truncates[0].json["audio_end_ms"], outcome.audio_end_ms);
    // `interrupt_response: true`: the server cancels the answer itself, so the client
    // does not (a second cancel only earns `response_cancel_not_active`).
    let cancels = recorder
        .frames()
        .into_iter()
        .filter(|f| !f.from_server && f.json["type"] == "response.cancel")
        .count();
    assert_eq!(cancels, 0);
}

/// A session whose output is G.711 A-law at 8 kHz: `stream` decodes and upsamples it, and
/// the device plays all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g711_answers_are_decoded_and_played_in_full() {
    let recorder = Recorder::new();
    let sim = Simulator::start(SimConfig::default().speed(50.0).recorder(recorder.clone()))
        .await
        .unwrap();
    let endpoint = Endpoint::openai("gpt-realtime").base_url(&format!("{}/v1", sim.url()));
    let session = reelthyme::connect(Config::new(endpoint)).await.unwrap();
    let mut tx = session.sender();
    let (player, mut clock) = Player::with_clock(RATE, 1).unwrap();
    let (mut events, control) = reelthyme::stream_to(session, player, StreamOptions::default());
    let update = serde_json::json!({"type": "session.update", "session": {"type": "realtime",
        "audio": {"output": {"format": {"type": "audio/pcma"}}}}});
    tx.send(ClientEvent::from_value(update).unwrap())
        .await
        .unwrap();
    tx.send(ClientEvent::user_text("Hello in A-law"))
        .await
        .unwrap();
    tx.send(ClientEvent::response_create()).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let device = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (frames, _) = clock.pull(PERIOD);
                samples.extend(frames);
                std::thread::sleep(Duration::from_micros(500));
            }
            samples
        })
    };
    let item_id = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let ServerEvent::ResponseDone(done) = events.next().await.unwrap().unwrap() {
                return done.response.output.unwrap()[0].id().unwrap().to_owned();
            }
        }
    })
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while control.backlog_ms() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let samples = device.join().unwrap();
    let sent_bytes: usize = recorder
        .frames()
        .iter()
        .filter(|f| f.from_server && f.json["type"] == "response.output_audio.delta")
        .map(|f| {
            reelthyme::events::Base64Audio::from_base64(f.json["delta"].as_str().unwrap())
                .decode_bytes()
                .unwrap()
                .len()
        })
        .sum();
    let sent_ms = sent_bytes as u64 / 8; // 8 kHz, one byte per sample
    let played_ms = control.played_ms(&item_id).unwrap();
    assert!(
        played_ms.abs_diff(sent_ms) <= 2,
        "played {played_ms} ms of {sent_ms} ms"
    );
    let loud = samples.iter().filter(|s| s.abs() > 0.05).count();
    assert!(
        loud as u64 > u64::from(RATE) / 10,
        "the decoded answer is audible ({loud} loud frames)"
    );
}

/// The "device" of the tests below: pulls 10 ms periods, pausing when told, counting the
/// frames of audio it played (in total, and since `mark`).
struct Device {
    played: Arc<AtomicU64>,
    pause: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Device {
    /// `pace` is the wall time between periods: 10 ms for a device in real time.
    fn start(mut clock: reelthyme::audio_io::Clock, pace: Duration) -> Self {
        let played = Arc::new(AtomicU64::new(0));
        let pause = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (played, pause, stop) = (played.clone(), pause.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if pause.swap(false, Ordering::Relaxed) {
                        // A device that stops calling back for a while (a stall, Bluetooth).
                        std::thread::sleep(Duration::from_millis(300));
                    }
                    let (_, audio) = clock.pull(PERIOD);
                    played.fetch_add(audio, Ordering::Relaxed);
                    std::thread::sleep(pace);
                }
            })
        };
        Self {
            played,
            pause,
            stop,
            thread: Some(thread),
        }
    }

    fn played(&self) -> u64 {
        self.played.load(Ordering::Relaxed)
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Server VAD that does not answer by itself (so only the story can play), with
/// `interrupt_response` as given; then the request for the long story.
async fn ask_for_a_story(tx: &mut reelthyme::SessionSender, interrupt_response: bool) {
    let vad = serde_json::json!({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": {"type": "server_vad", "create_response": false,
            "interrupt_response": interrupt_response}}}}});
    tx.send(ClientEvent::from_value(vad).unwrap())
        .await
        .unwrap();
    tx.send(ClientEvent::user_text("Tell me a story"))
        .await
        .unwrap();
    tx.send(ClientEvent::response_create()).await.unwrap();
}

async fn long_answer_session(speed: f64, recorder: &Recorder) -> (Simulator, reelthyme::Session) {
    let long = "Once upon a time there was a very long story that went on and on. ".repeat(8);
    let sim = Simulator::start(
        SimConfig::default()
            .speed(speed)
            .rule(
                reelthyme_sim::Match::Contains("story".into()),
                reelthyme_sim::Reply::Text(long),
            )
            .recorder(recorder.clone()),
    )
    .await
    .unwrap();
    let endpoint = Endpoint::openai("gpt-realtime").base_url(&format!("{}/v1", sim.url()));
    let session = reelthyme::connect(Config::new(endpoint)).await.unwrap();
    (sim, session)
}

/// Review finding 9: the server keeps streaming the answer after `speech_started` (with
/// `interrupt_response: false`, as OpenAI may), and the device stalls for 300 ms just then,
/// so the flush takes a while. Deltas that arrive meanwhile must not be played after the
/// barge-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltas_arriving_while_the_device_flushes_are_not_played_after_a_barge_in() {
    let recorder = Recorder::new();
    // The server sends three times faster than the device, which plays in real time.
    let (_sim, session) = long_answer_session(3.0, &recorder).await;
    let mut tx = session.sender();
    let (player, clock) = Player::with_clock(RATE, 2).unwrap();
    let (mut events, _control) = reelthyme::stream_to(session, player, StreamOptions::default());
    let device = Device::start(clock, Duration::from_millis(10));
    ask_for_a_story(&mut tx, false).await;
    let mut spoke = false;
    let mut at_resume = None;
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if !spoke && device.played() >= u64::from(RATE) {
                spoke = true;
                device.pause.store(true, Ordering::Relaxed);
                for chunk in speech(0.0, 0.6).chunks(960) {
                    tx.send(ClientEvent::audio_append(chunk)).await.unwrap();
                }
            }
            let event = tokio::time::timeout(Duration::from_millis(20), events.next()).await;
            let Ok(Some(event)) = event else { continue };
            match event {
                Ok(ServerEvent::InputAudioBufferSpeechStarted(_)) => {}
                Ok(ServerEvent::ConversationItemTruncated(_)) => {
                    at_resume = Some(device.played());
                    return;
                }
                Ok(_) => {}
                Err(error) if !error.is_fatal() => {}
                Err(error) => panic!("{error}"),
            }
        }
    })
    .await
    .expect("a truncation in time");
    // Keep the events flowing (late deltas of the cut answer arrive) while the device plays.
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while let Some(event) = events.next().await {
            let _ = event;
        }
    })
    .await;
    let after = device.played() - at_resume.unwrap();
    assert!(
        after <= PERIOD as u64,
        "{after} frames of the interrupted answer played after the barge-in"
    );
    // `interrupt_response: false`: the client cancels, naming the response it cut.
    let cancels: Vec<_> = recorder
        .frames()
        .into_iter()
        .filter(|f| !f.from_server && f.json["type"] == "response.cancel")
        .collect();
    assert_eq!(cancels.len(), 1);
    assert!(
        cancels[0].json["response_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("resp_"))
    );
}

/// Review finding 15a: a G.711 answer cut by hand; its `output_audio.done` arrives after
/// the cut, and the upsampler's tail of the cut answer must not be played (nor the cut
/// item tracked again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_g711_tail_of_an_interrupted_answer_is_not_played() {
    let recorder = Recorder::new();
    let (_sim, session) = long_answer_session(5.0, &recorder).await;
    let mut tx = session.sender();
    let (player, clock) = Player::with_clock(RATE, 1).unwrap();
    let (mut events, control) = reelthyme::stream_to(session, player, StreamOptions::default());
    let update = serde_json::json!({"type": "session.update", "session": {"type": "realtime",
        "audio": {"output": {"format": {"type": "audio/pcmu"}}}}});
    tx.send(ClientEvent::from_value(update).unwrap())
        .await
        .unwrap();
    tx.send(ClientEvent::user_text("Tell me a story"))
        .await
        .unwrap();
    tx.send(ClientEvent::response_create()).await.unwrap();
    // A device in real time, the server five times faster: audio is queued when the cut
    // comes (a faster device would drain it, and there would be nothing to truncate).
    let device = Device::start(clock, Duration::from_millis(10));
    let mut item = None;
    let mut cut_at = None;
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if cut_at.is_none() && device.played() >= u64::from(RATE) / 2 {
                let truncation = control.interrupt().await.unwrap().expect("a truncation");
                item = Some(truncation.item_id);
                cut_at = Some(device.played());
            }
            let event = tokio::time::timeout(Duration::from_millis(20), events.next()).await;
            let Ok(Some(event)) = event else { continue };
            if let Ok(ServerEvent::ResponseDone(_)) = event
                && cut_at.is_some()
            {
                return;
            }
        }
    })
    .await
    .expect("the cut answer ends");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = device.played() - cut_at.unwrap();
    assert!(
        after <= PERIOD as u64,
        "{after} frames played after the cut"
    );
    assert_eq!(
        control.played_ms(&item.unwrap()),
        None,
        "the cut item is tracked again"
    );
}

/// Review finding 15b: a response that chose its own output format (`response.create` with
/// `audio.output.format`) is decoded in that format, not the session's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_in_its_own_output_format_is_decoded_in_it() {
    let recorder = Recorder::new();
    let sim = Simulator::start(SimConfig::default().speed(50.0).recorder(recorder.clone()))
        .await
        .unwrap();
    let endpoint = Endpoint::openai("gpt-realtime").base_url(&format!("{}/v1", sim.url()));
    let session = reelthyme::connect(Config::new(endpoint)).await.unwrap(); // PCM session
    let mut tx = session.sender();
    let (player, clock) = Player::with_clock(RATE, 1).unwrap();
    let (mut events, control) = reelthyme::stream_to(session, player, StreamOptions::default());
    let _device = Device::start(clock, Duration::from_micros(500));
    tx.send(ClientEvent::user_text("Hello in mu-law"))
        .await
        .unwrap();
    let create = serde_json::json!({"type": "response.create", "response": {
        "audio": {"output": {"format": {"type": "audio/pcmu"}}}}});
    tx.send(ClientEvent::from_value(create).unwrap())
        .await
        .unwrap();
    let item_id = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match events.next().await.unwrap() {
                Ok(ServerEvent::ResponseDone(done)) => {
                    return done.response.output.unwrap()[0].id().unwrap().to_owned();
                }
                Ok(_) => {}
                Err(error) => panic!("the µ-law answer failed to play: {error}"),
            }
        }
    })
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while control.backlog_ms() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    let sent_bytes: usize = recorder
        .frames()
        .iter()
        .filter(|f| f.from_server && f.json["type"] == "response.output_audio.delta")
        .map(|f| {
            reelthyme::events::Base64Audio::from_base64(f.json["delta"].as_str().unwrap())
                .decode_bytes()
                .unwrap()
                .len()
        })
        .sum();
    assert!(sent_bytes > 0);
    let sent_ms = sent_bytes as u64 / 8; // µ-law: 8 kHz, a byte a sample
    let played_ms = control.played_ms(&item_id).unwrap();
    assert!(
        played_ms.abs_diff(sent_ms) <= 2,
        "played {played_ms} ms of a {sent_ms} ms µ-law answer"
    );
}
