//! The WebRTC transport against a webrtc-rs answerer behind a tiny `POST /v1/realtime/calls`
//! server (test scaffolding in `support/answerer.rs`): frames, audio both ways, refusals,
//! a silent peer, close and hangup.

mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reelthyme_transport::{AudioChunk, Endpoint, ErrorKind, Options, Transport};
use reelthyme_webrtc::WebRtc;
use support::WAIT;
use support::answerer::{Mode, Server};

fn endpoint(server: &Server, key: &str) -> Endpoint {
    Endpoint::openai("gpt-realtime")
        .base_url(&server.base)
        .api_key(key)
}

async fn next_frame(connection: &mut reelthyme_transport::Connection) -> String {
    tokio::time::timeout(WAIT, connection.receiver.next())
        .await
        .expect("timed out waiting for a frame")
        .expect("the stream ended")
        .expect("the connection failed")
        .into_text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_frames_round_trip_on_the_data_channel() {
    let server = Server::start(Mode::Normal).await;
    let started = Instant::now();
    let mut connection = WebRtc::new()
        .audio(false)
        .connect(&endpoint(&server, "sk-test"), &Options::default())
        .await
        .unwrap();
    let setup = started.elapsed();
    assert!(connection.media.is_none());
    assert_eq!(connection.call_id.as_deref(), Some("rtc_test0"));

    // Several frames in a burst come back whole and in order.
    let frames: Vec<String> = (0..20)
        .map(|i| format!(r#"{{"type":"conversation.item.create","n":{i}}}"#))
        .collect();
    for frame in &frames {
        connection.sender.send(frame.clone()).await.unwrap();
    }
    tokio::time::timeout(WAIT, connection.sender.flush())
        .await
        .expect("flush hung")
        .unwrap();
    for frame in &frames {
        assert_eq!(&next_frame(&mut connection).await, frame);
    }
    {
        let seen = server.seen.lock().unwrap();
        let call = &seen.calls[0];
        // A standard key: multipart with the session the endpoint names.
        assert!(
            call.content_type
                .starts_with("multipart/form-data; boundary="),
            "{}",
            call.content_type
        );
        assert_eq!(
            call.session,
            Some(serde_json::json!({"type": "realtime", "model": "gpt-realtime"}))
        );
        assert_eq!(call.authorization, "Bearer sk-test");
        assert_eq!(call.messages, frames);
    }
    eprintln!("setup (signalling + ICE + DTLS + SCTP) took {setup:?}");
    assert!(setup < Duration::from_secs(2), "setup took {setup:?}");
    connection.sender.close().await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_too_large_for_the_channel_is_refused_alone() {
    let server = Server::start(Mode::Normal).await;
    let mut connection = WebRtc::new()
        .audio(false)
        .connect(&endpoint(&server, "sk-test"), &Options::default())
        .await
        .unwrap();
    let huge = format!(
        r#"{{"type":"session.update","x":"{}"}}"#,
        "y".repeat(1 << 20)
    );
    connection.sender.send(huge).await.unwrap();
    connection.sender.send("after".to_owned()).await.unwrap();
    let refusal = tokio::time::timeout(WAIT, connection.receiver.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(refusal.kind(), ErrorKind::Rejected, "{refusal}");
    assert!(!refusal.is_fatal());
    assert!(refusal.to_string().contains("session.update"), "{refusal}");
    // The connection goes on.
    assert_eq!(next_frame(&mut connection).await, "after");
    connection.sender.close().await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ephemeral_key_sends_bare_sdp() {
    let server = Server::start(Mode::Normal).await;
    let mut connection = WebRtc::new()
        .audio(false)
        .connect(&endpoint(&server, "ek_test"), &Options::default())
        .await
        .unwrap();
    connection.sender.send("{}".to_owned()).await.unwrap();
    assert_eq!(next_frame(&mut connection).await, "{}");
    {
        let seen = server.seen.lock().unwrap();
        assert_eq!(seen.calls[0].content_type, "application/sdp");
        assert_eq!(seen.calls[0].session, None);
    }
    connection.sender.close().await.unwrap();
    server.shutdown().await;
}

/// A 440 Hz tone at `rate`.
fn tone(rate: u32, millis: u32) -> Vec<i16> {
    let n = (rate * millis / 1000) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_travels_both_ways_through_opus() {
    let server = Server::start(Mode::Normal).await;
    let mut connection = WebRtc::new()
        .connect(&endpoint(&server, "sk-test"), &Options::default())
        .await
        .unwrap();
    let mut media = connection.media.take().expect("audio is on by default");

    // Outgoing: one second at 24 kHz in 10 ms chunks, paced by the transport.
    let sender = media.sender();
    let sending = tokio::spawn(async move {
        let mut sender = sender;
        for chunk in tone(24_000, 1000).chunks(240) {
            futures_util::SinkExt::send(&mut sender, AudioChunk::new(24_000, chunk.to_vec()))
                .await
                .unwrap();
        }
    });

    // Incoming: the server's tone, decoded to 24 kHz.
    let mut received = Vec::new();
    tokio::time::timeout(WAIT, async {
        while received.len() < 24_000 / 2 {
            let chunk = media.incoming().next().await.expect("the track ended");
            assert_eq!(chunk.rate, 24_000);
            received.extend(chunk.samples);
        }
    })
    .await
    .expect("no audio from the server");
    let loud = received.iter().filter(|s| s.unsigned_abs() > 1000).count();
    assert!(
        loud > received.len() / 4,
        "{loud} of {} loud",
        received.len()
    );

    tokio::time::timeout(WAIT, sending).await.unwrap().unwrap();
    // The server decoded (at 48 kHz) most of the second that was sent.
    server
        .until("the client's audio", |seen| {
            seen.calls[0].audio_samples >= 40 * 960 && seen.calls[0].loud_samples > 10 * 960
        })
        .await;
    connection.sender.close().await.unwrap();
    // Closing ends both tracks: the incoming stream ends, the outgoing one refuses.
    let rest = tokio::time::timeout(WAIT, async {
        while media.incoming().next().await.is_some() {}
    })
    .await;
    assert!(rest.is_ok(), "the incoming track outlived the connection");
    let refused = tokio::time::timeout(WAIT, async {
        loop {
            if media
                .send(AudioChunk::new(24_000, vec![0; 480]))
                .await
                .is_err()
            {
                return;
            }
        }
    })
    .await;
    assert!(
        refused.is_ok(),
        "the outgoing track outlived the connection"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_is_an_auth_error() {
    let server = Server::start(Mode::Unauthorized).await;
    let error = WebRtc::new()
        .connect(&endpoint(&server, "sk-wrong"), &Options::default())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Auth, "{error}");
    assert_eq!(error.http_status(), Some(401));
    assert_eq!(error.code(), Some("invalid_api_key"));
    assert!(!error.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_refusals_are_typed_by_status() {
    let server = Server::start(Mode::Refuse(400)).await;
    let error = WebRtc::new()
        .connect(&endpoint(&server, "sk-test"), &Options::default())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidRequest, "{error}");
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("could not be parsed"), "{error}");

    let server = Server::start(Mode::Refuse(503)).await;
    let error = WebRtc::new()
        .connect(&endpoint(&server, "sk-test"), &Options::default())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Connect, "{error}");
    assert_eq!(error.http_status(), Some(503));
    assert!(error.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_is_a_timeout_within_the_bound() {
    let server = Server::start(Mode::Silent).await;
    let bound = Duration::from_millis(1500);
    let started = Instant::now();
    let error = WebRtc::new()
        .setup_timeout(bound)
        .connect(&endpoint(&server, "sk-test"), &Options::default())
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert!(error.is_retryable());
    assert!(error.to_string().contains("connecting"), "{error}");
    assert!(took >= bound, "gave up early: {took:?}");
    assert!(took < bound + Duration::from_secs(3), "took {took:?}");
    // The server had answered: the call it holds is hung up, not left to time out.
    assert_eq!(server.seen.lock().unwrap().hangups, ["rtc_test0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_hangs_up_the_call() {
    let server = Server::start(Mode::Normal).await;
    let mut connection = WebRtc::new()
        .connect(&endpoint(&server, "sk-test"), &Options::default())
        .await
        .unwrap();
    let call_id = connection.call_id.clone().unwrap();
    connection.sender.send("last".to_owned()).await.unwrap();
    tokio::time::timeout(WAIT, connection.sender.close())
        .await
        .expect("close hung")
        .unwrap();
    let hangups = server.seen.lock().unwrap().hangups.clone();
    assert_eq!(hangups, vec![call_id]);
    // The frame queued before the close reached the server.
    assert_eq!(server.seen.lock().unwrap().calls[0].messages, ["last"]);
    // After the close, the stream ends and senders are refused.
    let rest: Vec<_> = tokio::time::timeout(WAIT, connection.receiver.collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(rest.iter().all(Result::is_ok), "{rest:?}");
    assert!(connection.sender.send("more".to_owned()).await.is_err());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_ending_the_call_ends_the_stream() {
    let server = Server::start(Mode::Normal).await;
    let mut connection = WebRtc::new()
        .audio(false)
        .disconnected_grace(Duration::from_millis(300))
        .connect(&endpoint(&server, "sk-test"), &Options::default())
        .await
        .unwrap();
    server.shutdown().await;
    let end = tokio::time::timeout(WAIT, connection.receiver.collect::<Vec<_>>())
        .await
        .expect("the stream outlived the server's peer connection");
    // The server ended the call: a typed, retryable error ends the stream (a data
    // channel has no close code to say "normal"), never a silent end or a hang.
    let Some(Err(error)) = end.last() else {
        panic!("the stream ended without a verdict: {end:?}");
    };
    assert_eq!(error.kind(), ErrorKind::Closed, "{error}");
    assert!(error.is_retryable() && error.is_fatal(), "{error}");
    // A send after it is refused with the same verdict.
    let refused = connection.sender.send("x".to_owned()).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Closed, "{refused}");
}

/// Prints the transport's setup time on loopback — signalling over HTTP, ICE, DTLS, SCTP,
/// the channel opening — as p50 of 20; run with `--ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check: run it by hand"]
async fn setup_time_p50() {
    let server = Server::start(Mode::Normal).await;
    let mut times = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let mut connection = WebRtc::new()
            .connect(&endpoint(&server, "sk-test"), &Options::default())
            .await
            .unwrap();
        times.push(started.elapsed());
        connection.sender.close().await.unwrap();
    }
    let p50 = support::median(times.clone());
    eprintln!(
        "WebRtc::connect on loopback: p50 {p50:?}, min {:?}, max {:?}",
        times.iter().min().unwrap(),
        times.iter().max().unwrap()
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_reading_holds_senders_then_fails_them_with_the_unsent() {
    let server = Server::start(Mode::Deaf).await;
    let dead_after = Duration::from_millis(800);
    let mut connection = WebRtc::new()
        .audio(false)
        .send_buffer(64 << 10)
        .dead_after(dead_after)
        .connect(
            &endpoint(&server, "sk-test"),
            &Options::default().send_queue(4),
        )
        .await
        .unwrap();
    // Far more than the server's queue (256 messages) and window (1 MiB) hold.
    let frames: Vec<String> = (0..600)
        .map(|i| format!("{i:06}{}", "x".repeat(50 << 10)))
        .collect();
    let mut sender = connection.sender.clone();
    let all = frames.clone();
    let started = Instant::now();
    let sending = tokio::spawn(async move {
        let mut accepted = Vec::new();
        for frame in all {
            if sender.send(frame.clone()).await.is_err() {
                break;
            }
            accepted.push(frame);
        }
        accepted
    });
    let end = tokio::time::timeout(WAIT * 2, async {
        loop {
            match connection.receiver.next().await {
                Some(Err(error)) => return error,
                Some(Ok(_)) => {}
                None => panic!("the stream ended without a verdict"),
            }
        }
    })
    .await
    .expect("a server that stops reading held the connection forever");
    let accepted = tokio::time::timeout(WAIT, sending).await.unwrap().unwrap();
    assert_eq!(end.kind(), ErrorKind::Timeout, "{end}");
    // The senders were held (not everything was accepted) and then released.
    assert!(accepted.len() < frames.len(), "nothing held the senders");
    // What was accepted but never written is reported, in order: the tail of `accepted`.
    let unsent = end.unsent();
    assert!(!unsent.is_empty());
    assert_eq!(unsent, &accepted[accepted.len() - unsent.len()..]);
    eprintln!(
        "held after {} frames, failed after {:?}",
        accepted.len(),
        started.elapsed()
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_vanishes_ends_the_connection_after_the_grace() {
    let server = Server::start(Mode::Vanish).await;
    let mut connection = WebRtc::new()
        .audio(false)
        .disconnected_after(Duration::from_millis(400))
        .disconnected_grace(Duration::from_millis(300))
        .connect(&endpoint(&server, "sk-test"), &Options::default())
        .await
        .unwrap();
    let started = Instant::now();
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match connection.receiver.next().await {
                Some(Err(error)) => return error,
                Some(Ok(_)) => {}
                None => panic!("the stream ended without saying the server was lost"),
            }
        }
    })
    .await
    .expect("a vanished server held the connection");
    let took = started.elapsed();
    assert_eq!(end.kind(), ErrorKind::Closed, "{end}");
    assert_eq!(end.close_code(), Some(1006));
    assert!(end.is_retryable());
    assert!(end.to_string().contains("disconnected"), "{end}");
    // 300 ms until it vanished, 400 ms of silence (counted from its last keepalive, up to
    // 100 ms earlier), 300 ms of grace: never sooner, and not the 30 s of the defaults.
    assert!(took >= Duration::from_millis(800), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_comes_back_within_the_grace_keeps_the_connection() {
    let server = Server::start(Mode::Relayed).await;
    let mut connection = WebRtc::new()
        .audio(false)
        // Loopback only, so that the relay is the one path.
        .bind(vec!["127.0.0.1:0".parse().unwrap()])
        .disconnected_after(Duration::from_millis(300))
        .disconnected_grace(Duration::from_secs(3))
        .connect(&endpoint(&server, "sk-test"), &Options::default())
        .await
        .unwrap();
    connection.sender.send("before".to_owned()).await.unwrap();
    assert_eq!(next_frame(&mut connection).await, "before");

    // Down long enough to be `disconnected` (300 ms of silence: the next test shows the
    // connection ending ~300 ms + its grace after the path goes), back well within the grace.
    server
        .path_down
        .store(true, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    server
        .path_down
        .store(false, std::sync::atomic::Ordering::Relaxed);

    // The connection survived: what was sent during the outage arrives, and more after.
    connection.sender.send("after".to_owned()).await.unwrap();
    assert_eq!(next_frame(&mut connection).await, "after");
    assert_eq!(
        server.seen.lock().unwrap().calls[0].messages,
        ["before", "after"]
    );
    connection.sender.close().await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_stays_down_past_the_grace_ends_the_connection() {
    let server = Server::start(Mode::Relayed).await;
    let mut connection = WebRtc::new()
        .audio(false)
        .bind(vec!["127.0.0.1:0".parse().unwrap()])
        .disconnected_after(Duration::from_millis(300))
        .disconnected_grace(Duration::from_millis(500))
        .connect(&endpoint(&server, "sk-test"), &Options::default())
        .await
        .unwrap();
    server
        .path_down
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match connection.receiver.next().await {
                Some(Err(error)) => return error,
                Some(Ok(_)) => {}
                None => panic!("the stream ended without saying the path was lost"),
            }
        }
    })
    .await
    .expect("a lost path held the connection");
    assert_eq!(end.close_code(), Some(1006), "{end}");
    assert!(end.to_string().contains("disconnected for 500 ms"), "{end}");
    // Silence counts from the last packet (a keepalive is due every 75 ms here), then the
    // grace: never before 300 - 75 + 500 ms.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(700), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    server.shutdown().await;
}
