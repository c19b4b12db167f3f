//! `connect` over WebSocket against the simulator.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, ServerEvent};
use reelthyme::{Config, Endpoint, ErrorKind, Options, WebSocket};
use reelthyme_sim::{Faults, SimConfig};

mod support;

use support::{WAIT, endpoint, start, until};

#[tokio::test]
async fn a_text_turn_end_to_end() {
    let (sim, _) = start(SimConfig::default().speed(50.0)).await;
    let session = reelthyme::connect(Config::new(endpoint(&sim)).outgoing(reelthyme::validate))
        .await
        .unwrap();
    assert!(session.id().unwrap().starts_with("sess_"));
    let (mut tx, mut events) = session.split();
    assert_eq!(
        events.next().await.unwrap().unwrap().type_name(),
        "session.created"
    );
    tx.send(ClientEvent::user_text("Hello from Rust"))
        .await
        .unwrap();
    let params = reelthyme::events::ResponseParams::text();
    tx.send(ClientEvent::response_create_with(params))
        .await
        .unwrap();
    let ServerEvent::ResponseDone(done) = until(&mut events, "response.done").await else {
        unreachable!()
    };
    let output = done.response.output.unwrap();
    let reelthyme::events::Item::Message(message) = &output[0] else {
        panic!("{output:?}")
    };
    assert_eq!(message.text(), "You said: Hello from Rust");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_back_to_back_sends_arrive_complete_and_in_order() {
    let (sim, recorder) = start(SimConfig::default()).await;
    let session = reelthyme::connect(Config::new(endpoint(&sim)))
        .await
        .unwrap();
    let (mut tx, mut events) = session.split();
    // Drain events concurrently (errors for nothing, here) so neither side stalls.
    let drain = tokio::spawn(async move { while events.next().await.is_some() {} });
    let mut manual = reelthyme::events::SessionConfig::realtime();
    manual.audio_input_mut().turn_detection = Some(None);
    tx.send(ClientEvent::session_update(manual)).await.unwrap();
    for i in 0..10_000 {
        tx.send(ClientEvent::audio_append(&[i as i16]).with_event_id(format!("e{i}")))
            .await
            .unwrap();
    }
    tx.flush().await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let ids = loop {
        let ids: Vec<String> = recorder
            .frames()
            .iter()
            .filter(|f| !f.from_server && f.json["type"] == "input_audio_buffer.append")
            .map(|f| f.json["event_id"].as_str().unwrap().to_owned())
            .collect();
        if ids.len() == 10_000 || tokio::time::Instant::now() > deadline {
            break ids;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let expected: Vec<String> = (0..10_000).map(|i| format!("e{i}")).collect();
    assert_eq!(ids, expected);
    drop(tx);
    drain.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_pushes_back_on_the_server_instead_of_buffering() {
    // A long audio answer (about 3 minutes, 12 MB of events) generated at 500x real time:
    // more than socket buffers hold, so the server must be held back by the stalled reader.
    let long = "All work and no play makes a long answer. ".repeat(70);
    let config = SimConfig::default()
        .speed(500.0)
        .rule(reelthyme_sim::Match::Any, reelthyme_sim::Reply::Text(long));
    let (sim, recorder) = start(config).await;
    let options = Options::default().receive_queue(8);
    let session = reelthyme::connect(Config::new(endpoint(&sim)).options(options))
        .await
        .unwrap();
    let (mut tx, mut events) = session.split();
    tx.send(ClientEvent::user_text("go")).await.unwrap();
    tx.send(ClientEvent::response_create()).await.unwrap();
    let sent = || recorder.frames().iter().filter(|f| f.from_server).count();
    // Wait until the server stops sending (two equal samples 500 ms apart).
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut last = usize::MAX;
    let stalled = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = sent();
        if now == last && now > 10 {
            break now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server never stopped sending ({now} events)"
        );
        last = now;
    };
    // Reading resumes: everything arrives, in order.
    let mut deltas = 0;
    loop {
        let event = tokio::time::timeout(WAIT, events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match event.type_name() {
            "response.output_audio.delta" => deltas += 1,
            "response.done" => break,
            _ => {}
        }
    }
    let total = sent();
    assert!(total > stalled * 2, "held at {stalled} of {total} events");
    assert!(deltas > stalled, "{deltas} deltas read in the end");
}

#[tokio::test]
async fn a_validation_failure_reaches_the_sender_and_nothing_is_sent() {
    let (sim, recorder) = start(SimConfig::default()).await;
    let session = reelthyme::connect(Config::new(endpoint(&sim)).outgoing(reelthyme::validate))
        .await
        .unwrap();
    let mut tx = session.sender();
    let bad = ClientEvent::from_value(
        serde_json::json!({"type": "session.update", "session": {"instructions": "no type"}}),
    )
    .unwrap();
    let error = tx.send(bad).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Rejected);
    let source = std::error::Error::source(&error).unwrap();
    let validation = source
        .downcast_ref::<reelthyme::events::ValidationErrors>()
        .unwrap();
    assert_eq!(validation.errors()[0].path, "/session/type");
    tx.send(ClientEvent::audio_commit().with_event_id("after"))
        .await
        .unwrap();
    tx.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let client_frames: Vec<_> = recorder
        .frames()
        .into_iter()
        .filter(|f| !f.from_server)
        .collect();
    assert_eq!(client_frames.len(), 1, "only the valid event was sent");
    assert_eq!(client_frames[0].json["event_id"], "after");
    // The Sink interface reports it the same way.
    let (mut sink, _) = session.split();
    let bad = ClientEvent::truncate("", 10);
    assert_eq!(
        sink.send(bad).await.unwrap_err().kind(),
        ErrorKind::Rejected
    );
}

#[tokio::test]
async fn handshake_failures_are_typed() {
    let (sim, _) = start(SimConfig::default().api_key("sk-right")).await;
    let wrong = reelthyme::connect(Config::new(endpoint(&sim).api_key("sk-wrong")))
        .await
        .unwrap_err();
    assert_eq!(
        (wrong.kind(), wrong.close_code(), wrong.code()),
        (ErrorKind::Auth, Some(3000), Some("invalid_api_key"))
    );
    assert!(!wrong.is_retryable());
    let model = reelthyme::connect(Config::new(
        endpoint(&sim).api_key("sk-right").model("gpt-4"),
    ))
    .await
    .unwrap_err();
    assert_eq!(
        (model.kind(), model.code()),
        (ErrorKind::InvalidRequest, Some("invalid_model"))
    );
    let beta = reelthyme::connect(Config::new(endpoint(&sim).api_key("sk-right").beta()))
        .await
        .unwrap_err();
    assert_eq!(beta.code(), Some("beta_api_shape_disabled"));
    let not_found = Endpoint::openai("gpt-realtime").base_url(&format!("{}/v2", sim.url()));
    let http = reelthyme::connect(Config::new(not_found))
        .await
        .unwrap_err();
    assert_eq!(
        (http.kind(), http.http_status()),
        (ErrorKind::Connect, Some(404))
    );
    let refused = Endpoint::openai("m").base_url("ws://127.0.0.1:1/v1");
    assert_eq!(
        reelthyme::connect(Config::new(refused))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Connect
    );
}

#[tokio::test]
async fn every_server_close_code_maps_to_its_error() {
    let cases = [
        (1001, ErrorKind::Closed),
        (1008, ErrorKind::Quota),
        (1011, ErrorKind::Closed),
        (3000, ErrorKind::Auth),
        (4000, ErrorKind::InvalidRequest),
        (4321, ErrorKind::Closed),
    ];
    for (code, kind) in cases {
        let faults = Faults {
            close_after: Some((1, code, "injected".into())),
            ..Faults::default()
        };
        let (sim, _) = start(SimConfig::default().faults(faults)).await;
        let session = reelthyme::connect(Config::new(endpoint(&sim)))
            .await
            .unwrap();
        let (mut tx, mut events) = session.split();
        tx.send(ClientEvent::audio_clear()).await.unwrap();
        let error = first_error(&mut events).await;
        assert_eq!(
            (error.kind(), error.close_code()),
            (kind, Some(code)),
            "{error}"
        );
        assert!(
            events.next().await.is_none(),
            "the stream ends after the error"
        );
        let late = tx.send(ClientEvent::audio_clear()).await.unwrap_err();
        assert_eq!(
            (late.kind(), late.close_code()),
            (kind, Some(code)),
            "a late sender learns why: {late}"
        );
    }
    // A normal close (1000) just ends the stream.
    let faults = Faults {
        close_after: Some((1, 1000, String::new())),
        ..Faults::default()
    };
    let (sim, _) = start(SimConfig::default().faults(faults)).await;
    let mut session = reelthyme::connect(Config::new(endpoint(&sim)))
        .await
        .unwrap();
    session.send(ClientEvent::audio_clear()).await.unwrap();
    let mut items = Vec::new();
    while let Some(item) = tokio::time::timeout(WAIT, session.next()).await.unwrap() {
        items.push(
            item.map(|e| e.type_name().to_owned())
                .map_err(|e| e.to_string()),
        );
    }
    assert_eq!(items, [Ok("session.created".to_owned())]);
}

#[tokio::test]
async fn session_expiry_is_its_own_error() {
    let (sim, _) = start(SimConfig::default().session_duration(Duration::from_millis(300))).await;
    let mut session = reelthyme::connect(Config::new(endpoint(&sim)))
        .await
        .unwrap();
    let error = first_error(&mut session).await;
    assert_eq!(error.kind(), ErrorKind::SessionExpired);
    assert!(error.is_retryable());
}

#[tokio::test]
async fn keepalive_detects_a_dead_peer() {
    let faults = Faults {
        stall_after: Some(1),
        ..Faults::default()
    };
    let (sim, _) = start(SimConfig::default().faults(faults)).await;
    let websocket =
        WebSocket::new().keepalive(Duration::from_millis(100), Duration::from_millis(600));
    let mut session = reelthyme::connect(Config::new(endpoint(&sim)).transport(websocket))
        .await
        .unwrap();
    session.send(ClientEvent::audio_clear()).await.unwrap();
    let started = tokio::time::Instant::now();
    let error = first_error(&mut session).await;
    assert!(error.is_timeout(), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A live peer answers the pings: no false alarm over several dead_after periods.
    let (sim, _) = start(SimConfig::default()).await;
    let websocket =
        WebSocket::new().keepalive(Duration::from_millis(50), Duration::from_millis(300));
    let mut session = reelthyme::connect(Config::new(endpoint(&sim)).transport(websocket))
        .await
        .unwrap();
    assert_eq!(
        session.next().await.unwrap().unwrap().type_name(),
        "session.created"
    );
    let quiet = tokio::time::timeout(Duration::from_millis(1200), session.next()).await;
    assert!(
        quiet.is_err(),
        "a live but quiet server was declared dead: {quiet:?}"
    );
}

#[tokio::test]
async fn call_id_transcription_and_azure_urls_reach_the_server() {
    let (sim, _) = start(SimConfig::default()).await;
    let base = format!("{}/v1", sim.url());
    let call = sim.open_call();
    reelthyme::connect(Config::new(
        Endpoint::openai("x").base_url(&base).call_id(&call),
    ))
    .await
    .unwrap();
    reelthyme::connect(Config::new(
        Endpoint::openai("x").base_url(&base).transcription(),
    ))
    .await
    .unwrap();
    let http_base = sim.url().replace("ws://", "http://");
    reelthyme::connect(Config::new(
        Endpoint::azure(&http_base, "my-deployment").api_key("azure-key"),
    ))
    .await
    .unwrap();
    let mut legacy = reelthyme::connect(Config::new(
        Endpoint::azure_legacy(&http_base, "legacy-dep", "2024-10-01-preview").api_key("azure-key"),
    ))
    .await
    .unwrap();
    let seen = sim.connections();
    assert_eq!(
        (seen[0].path.as_str(), seen[0].query_param("call_id")),
        ("/v1/realtime", Some(call.as_str()))
    );
    assert_eq!(seen[1].query_param("intent"), Some("transcription"));
    assert_eq!(
        (seen[2].path.as_str(), seen[2].query_param("model")),
        ("/openai/v1/realtime", Some("my-deployment"))
    );
    assert_eq!(seen[2].auth, reelthyme_sim::AuthKind::ApiKeyHeader);
    assert_eq!(seen[3].path, "/openai/realtime");
    assert_eq!(seen[3].query_param("deployment"), Some("legacy-dep"));
    assert_eq!(
        seen[3].query_param("api-version"),
        Some("2024-10-01-preview")
    );
    assert!(seen[3].beta);
    // The legacy server speaks beta; the session still sees GA events.
    let params = reelthyme::events::ResponseParams::text();
    legacy.send(ClientEvent::user_text("hi")).await.unwrap();
    legacy
        .send(ClientEvent::response_create_with(params))
        .await
        .unwrap();
    let delta = until(&mut legacy, "response.output_text.delta").await;
    assert!(matches!(delta, ServerEvent::ResponseOutputTextDelta(_)));
}

/// Reads until the stream yields an error.
async fn first_error(
    events: &mut (impl futures_util::Stream<Item = reelthyme::Result<ServerEvent>> + Unpin),
) -> reelthyme::Error {
    tokio::time::timeout(WAIT, async {
        loop {
            match events.next().await {
                Some(Ok(_)) => {}
                Some(Err(error)) => return error,
                None => panic!("the stream ended without an error"),
            }
        }
    })
    .await
    .expect("timed out waiting for an error")
}

/// Captures log lines.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_api_key_never_reaches_logs_or_debug() {
    const KEY: &str = "sk-proj-SUPERSECRET-1234567890";
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (sim, _) = start(SimConfig::default().speed(50.0)).await;
    let config = Config::new(endpoint(&sim).api_key(KEY).header("X-Custom-Secret", KEY));
    let debug_config = format!("{config:?}");
    let mut session = reelthyme::connect(config).await.unwrap();
    session.send(ClientEvent::user_text("hi")).await.unwrap();
    session.send(ClientEvent::response_create()).await.unwrap();
    until(&mut session, "response.done").await;
    let debug_session = format!("{session:?}");
    let wrong = reelthyme::connect(Config::new(endpoint(&sim).api_key(KEY).model("bad")))
        .await
        .unwrap_err();
    let output = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        output.contains("realtime_session"),
        "the session span was logged: {output}"
    );
    for (what, text) in [
        ("logs", output),
        ("Debug(Config)", debug_config),
        ("Debug(Session)", debug_session),
        ("error", format!("{wrong} {wrong:?}")),
    ] {
        assert!(
            !text.contains("SUPERSECRET"),
            "{what} leaked the key: {text}"
        );
    }
}

#[tokio::test]
async fn incoming_transforms_and_the_error_handler_compose() {
    let (sim, _) = start(SimConfig::default().speed(50.0).faults(Faults {
        malformed_after: Some(1),
        ..Faults::default()
    }))
    .await;
    let seen_errors = Arc::new(Mutex::new(Vec::new()));
    let errors = seen_errors.clone();
    let config = Config::new(endpoint(&sim))
        .incoming(|event| (event.type_name() != "rate_limits.updated").then_some(event))
        .incoming(|event| (!event.type_name().ends_with(".delta")).then_some(event))
        .on_error(move |error| errors.lock().unwrap().push(error.kind()));
    let mut session = reelthyme::connect(config).await.unwrap();
    session.send(ClientEvent::user_text("hi")).await.unwrap();
    session.send(ClientEvent::response_create()).await.unwrap();
    let mut types = Vec::new();
    loop {
        let event = tokio::time::timeout(WAIT, session.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        types.push(event.type_name().to_owned());
        if event.type_name() == "response.done" {
            break;
        }
    }
    assert!(
        !types
            .iter()
            .any(|t| t.ends_with(".delta") || t == "rate_limits.updated"),
        "{types:?}"
    );
    assert_eq!(*seen_errors.lock().unwrap(), [ErrorKind::Parse]);
}

#[tokio::test]
async fn an_earlier_non_fatal_error_does_not_turn_a_clean_close_into_a_failure() {
    // Event 0 session.created, 1 the error for the cancel, 2 cleared; close 1000 after 3.
    let faults = Faults {
        close_after: Some((3, 1000, String::new())),
        ..Faults::default()
    };
    let (sim, _) = start(SimConfig::default().faults(faults)).await;
    let mut session = reelthyme::connect(Config::new(endpoint(&sim)))
        .await
        .unwrap();
    session.send(ClientEvent::response_cancel()).await.unwrap();
    session.send(ClientEvent::audio_clear()).await.unwrap();
    // The fault closes before the fourth event would go out.
    session.send(ClientEvent::audio_clear()).await.unwrap();
    let mut seen = Vec::new();
    while let Some(item) = tokio::time::timeout(WAIT, session.next()).await.unwrap() {
        seen.push(
            item.map(|e| e.type_name().to_owned())
                .map_err(|e| e.to_string()),
        );
    }
    assert_eq!(
        seen,
        [
            Ok("session.created".to_owned()),
            Ok("error".to_owned()),
            Ok("input_audio_buffer.cleared".to_owned())
        ]
    );
}

#[tokio::test]
async fn queued_events_are_sent_even_when_the_events_half_is_dropped() {
    let (sim, recorder) = start(SimConfig::default()).await;
    let session = reelthyme::connect(Config::new(endpoint(&sim)))
        .await
        .unwrap();
    let (mut tx, events) = session.split();
    drop(events);
    for i in 0..200 {
        tx.send(ClientEvent::audio_commit().with_event_id(format!("c{i}")))
            .await
            .unwrap();
    }
    drop(tx); // the last half: the session closes after what is queued
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let sent = recorder.frames().iter().filter(|f| !f.from_server).count();
        if sent == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {sent} of 200 events arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn raw_events_start_with_session_created() {
    let (sim, _) = start(SimConfig::default()).await;
    let session = reelthyme::connect(Config::new(endpoint(&sim)))
        .await
        .unwrap();
    let (_tx, events) = session.split();
    let mut raw = Box::pin(events.into_raw());
    let first = tokio::time::timeout(WAIT, raw.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first["type"], "session.created");
}
