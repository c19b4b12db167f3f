//! WebRTC calls to the simulator (`POST /v1/realtime/calls`) with the `reelthyme-webrtc`
//! client on loopback: signalling and its refusals, events on the data channel through the
//! session loop, audio on the tracks (VAD on the incoming one, synthesized answers on the
//! outgoing one), barge-in, hangup and sidebands.

#![cfg(feature = "webrtc")]

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use reelthyme_sim::{Faults, Match, Recorder, Reply, SimConfig, Simulator};
use reelthyme_transport::{
    AudioChunk, ClientSecretRequest, Connection, Endpoint, HttpRequest, Options, Transport,
    create_client_secret, hangup, send_request,
};
use reelthyme_webrtc::WebRtc;
use serde_json::{Value, json};
use support::{Client, Next, WAIT, assert_all_valid, simulator, speech};
use tokio_tungstenite::tungstenite::Message;

fn base(sim: &Simulator) -> String {
    format!("http://{}/v1", sim.addr())
}

fn endpoint(sim: &Simulator, key: &str) -> Endpoint {
    Endpoint::openai("gpt-realtime")
        .base_url(&base(sim))
        .api_key(key)
}

async fn call(transport: WebRtc, endpoint: &Endpoint) -> Connection {
    tokio::time::timeout(WAIT, transport.connect(endpoint, &Options::default()))
        .await
        .expect("the call took too long to set up")
        .expect("the call was refused")
}

/// The next event on the data channel.
async fn event(connection: &mut Connection) -> Value {
    let frame = tokio::time::timeout(WAIT, connection.receiver.next())
        .await
        .expect("timed out waiting for an event")
        .expect("the channel ended")
        .expect("the channel failed");
    serde_json::from_str(frame.text()).unwrap()
}

/// Events up to and including the first of `kind`.
async fn until(connection: &mut Connection, kind: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let event = event(connection).await;
        let done = event["type"] == kind;
        seen.push(event);
        if done {
            return seen;
        }
    }
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["type"].as_str()).collect()
}

fn position(events: &[Value], kind: &str) -> usize {
    types(events)
        .iter()
        .position(|t| *t == kind)
        .unwrap_or_else(|| panic!("no {kind} in {:?}", types(events)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_turn_over_the_data_channel_with_the_multipart_session() {
    let (sim, recorder) = simulator(SimConfig::default().speed(50.0).api_key("sk-test")).await;
    let transport =
        WebRtc::new().session(json!({"instructions": "Be brief.", "output_modalities": ["text"]}));
    let mut rtc = call(transport, &endpoint(&sim, "sk-test")).await;
    let call_id = rtc
        .call_id
        .clone()
        .expect("the answer's Location names the call");
    assert!(call_id.starts_with("rtc_"), "{call_id}");

    let created = event(&mut rtc).await;
    assert_eq!(created["type"], "session.created");
    assert_eq!(created["session"]["instructions"], "Be brief.");
    assert_eq!(created["session"]["model"], "gpt-realtime");
    rtc.sender
        .send(
            json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": "Hello there"}]}})
            .to_string(),
        )
        .await
        .unwrap();
    rtc.sender
        .send(json!({"type": "response.create"}).to_string())
        .await
        .unwrap();
    let mut events = until(&mut rtc, "response.done").await;
    events.extend(until(&mut rtc, "rate_limits.updated").await);
    let done = &events[position(&events, "response.done")];
    assert_eq!(done["response"]["status"], "completed");
    assert_eq!(
        done["response"]["output"][0]["content"][0]["text"],
        "You said: Hello there"
    );
    // A text response has no audio: no output buffer events.
    assert!(
        !types(&events)
            .iter()
            .any(|t| t.starts_with("output_audio_buffer"))
    );

    // The handshake is in the connection log under the calls path.
    let info = sim.connections().pop().unwrap();
    assert_eq!(info.path, "/v1/realtime/calls");
    assert_eq!(info.query_param("call_id"), Some(call_id.as_str()));

    rtc.sender.close().await.unwrap();
    // The call ended with its session: hanging it up now is a 404.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let error = hangup(&endpoint(&sim, "sk-test"), &call_id, &Options::default())
        .await
        .unwrap_err();
    assert_eq!(error.http_status(), Some(404), "{error}");
    assert_all_valid(&recorder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ephemeral_key_posts_bare_sdp_and_its_session_applies() {
    let (sim, recorder) = simulator(SimConfig::default().speed(50.0).api_key("sk-test")).await;
    let session = serde_json::from_value(json!({"type": "realtime", "model": "gpt-realtime",
        "instructions": "From the key."}))
    .unwrap();
    let secret = create_client_secret(
        &endpoint(&sim, "sk-test"),
        &ClientSecretRequest::new(session, 60),
        &Options::default(),
    )
    .await
    .unwrap();
    let key = secret.value.expose_secret().to_owned();
    assert!(key.starts_with("ek_"));
    let mut rtc = call(WebRtc::new(), &endpoint(&sim, &key)).await;
    let created = event(&mut rtc).await;
    assert_eq!(created["type"], "session.created");
    assert_eq!(created["session"]["instructions"], "From the key.");
    assert_eq!(
        sim.connections().pop().unwrap().header("content-type"),
        Some("application/sdp")
    );
    rtc.sender.close().await.unwrap();
    assert_all_valid(&recorder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_http_statuses_with_the_api_error() {
    let (sim, _recorder) = simulator(SimConfig::default().api_key("sk-test")).await;
    // A wrong key: 401 before anything is connected.
    let error = tokio::time::timeout(
        WAIT,
        WebRtc::new().connect(&endpoint(&sim, "sk-wrong"), &Options::default()),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(error.http_status(), Some(401), "{error}");
    assert_eq!(error.code(), Some("invalid_api_key"));
    // An unknown model: 400, `invalid_model`.
    let error = tokio::time::timeout(
        WAIT,
        WebRtc::new().connect(
            &endpoint(&sim, "sk-test").model("gpt-nonsense"),
            &Options::default(),
        ),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(error.http_status(), Some(400), "{error}");
    assert_eq!(error.code(), Some("invalid_model"));

    let post = |content_type: &str, body: &str| {
        let request = HttpRequest::post("calls").body(content_type.to_owned(), body.to_owned());
        let endpoint = endpoint(&sim, "sk-test");
        async move { send_request(&endpoint, request, &Options::default()).await }
    };
    for (content_type, body, code) in [
        ("application/sdp", "hello", "invalid_offer"),
        ("application/sdp", "v=0\r\nnonsense\r\n", "invalid_offer"),
        ("text/plain", "v=0\r\n", "invalid_request"),
        (
            "multipart/form-data; boundary=b",
            "--b\r\n\r\n--b--",
            "missing_required_parameter",
        ),
        (
            "multipart/form-data; boundary=b",
            "--b\r\nContent-Disposition: form-data; name=\"sdp\"\r\n\r\nv=0\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"session\"\r\n\r\n{\"type\":\"realtime\",\"bogus\":1}\r\n--b--\r\n",
            "unknown_parameter",
        ),
    ] {
        let error = post(content_type, body).await.unwrap_err();
        assert_eq!(
            error.http_status(),
            Some(400),
            "{content_type} {body:?}: {error}"
        );
        assert_eq!(error.code(), Some(code), "{body:?}: {error}");
    }
    // None of them left a call open, and the simulator goes on serving.
    let rtc = call(WebRtc::new(), &endpoint(&sim, "sk-test")).await;
    assert!(rtc.call_id.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hangup_ends_the_call_and_its_sideband() {
    let (sim, recorder) = simulator(SimConfig::default().api_key("sk-test")).await;
    let mut rtc = call(WebRtc::new(), &endpoint(&sim, "sk-test")).await;
    let call_id = rtc.call_id.clone().unwrap();
    assert_eq!(event(&mut rtc).await["type"], "session.created");
    let mut sideband = Client::connect(
        &format!("{}/v1/realtime?call_id={call_id}", sim.url()),
        &[("authorization", "Bearer sk-test")],
    )
    .await;
    assert_eq!(sideband.event().await["type"], "session.created");

    hangup(&endpoint(&sim, "sk-test"), &call_id, &Options::default())
        .await
        .unwrap();
    let rest = tokio::time::timeout(WAIT, rtc.receiver.collect::<Vec<_>>())
        .await
        .expect("the call outlived its hangup");
    // The server ended the call: the client's verdict says so (a data channel has no
    // close code to say "normal").
    let (last, before) = rest.split_last().expect("a verdict");
    assert!(before.iter().all(|r| r.is_ok()), "{rest:?}");
    let error = last.as_ref().unwrap_err();
    assert_eq!(
        error.kind(),
        reelthyme_transport::ErrorKind::Closed,
        "{error}"
    );
    assert_eq!(error.close_code(), Some(1000), "{error}");
    assert!(matches!(
        sideband.next().await,
        Next::Closed(Some((1000, _)))
    ));
    assert_all_valid(&recorder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sideband_attaches_to_the_calls_own_session() {
    let (sim, recorder) = simulator(SimConfig::default().speed(50.0).api_key("sk-test")).await;
    let transport = WebRtc::new()
        .audio(false)
        .session(json!({"instructions": "From the client.", "output_modalities": ["text"]}));
    let mut rtc = call(transport, &endpoint(&sim, "sk-test")).await;
    let call_id = rtc.call_id.clone().unwrap();
    let created = event(&mut rtc).await;
    let url = format!("{}/v1/realtime?call_id={call_id}", sim.url());
    let mut sideband = Client::connect(&url, &[("authorization", "Bearer sk-test")]).await;
    // The same session: its id and its configuration as it is now.
    let attached = sideband.event().await;
    assert_eq!(attached["type"], "session.created");
    assert_eq!(attached["session"]["id"], created["session"]["id"]);
    assert_eq!(attached["session"]["instructions"], "From the client.");

    // What the call's client does, the sideband sees.
    rtc.sender
        .send(
            json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": "Hello there"}]}})
            .to_string(),
        )
        .await
        .unwrap();
    rtc.sender
        .send(json!({"type": "response.create"}).to_string())
        .await
        .unwrap();
    let done = sideband.until("response.done").await;
    assert_eq!(
        done["response"]["output"][0]["content"][0]["text"],
        "You said: Hello there"
    );
    until(&mut rtc, "response.done").await;

    // What the sideband sends acts on the call: the client sees the results.
    sideband
        .send(
            json!({"type": "session.update", "session": {"type": "realtime",
            "instructions": "From the server."}}),
        )
        .await;
    let updated = until(&mut rtc, "session.updated").await;
    assert_eq!(
        updated.last().unwrap()["session"]["instructions"],
        "From the server."
    );
    assert_eq!(
        sideband.until("session.updated").await["session"]["instructions"],
        "From the server."
    );
    sideband.send(json!({"type": "response.create"})).await;
    let events = until(&mut rtc, "response.done").await;
    assert_eq!(
        events.last().unwrap()["response"]["status"],
        "completed",
        "{:?}",
        types(&events)
    );
    sideband.until("response.done").await;

    // A second sideband attaches to the same session; the first closing ends neither.
    let mut second = Client::connect(&url, &[("authorization", "Bearer sk-test")]).await;
    assert_eq!(
        second.event().await["session"]["instructions"],
        "From the server."
    );
    sideband.send_raw(Message::Close(None)).await;
    while let Next::Event(_) = sideband.next().await {}
    rtc.sender
        .send(json!({"type": "response.create"}).to_string())
        .await
        .unwrap();
    until(&mut rtc, "response.done").await;
    second.until("response.done").await;

    // The call ending closes the sideband that is left.
    rtc.sender.close().await.unwrap();
    let closed = loop {
        if let Next::Closed(frame) = second.next().await {
            break frame;
        }
    };
    assert!(matches!(closed, Some((1000, _))), "{closed:?}");
    assert_all_valid(&recorder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_and_expiry_apply_on_the_data_channel() {
    // Killed after the first event: the client's channel fails or ends, nothing more comes.
    let faults = Faults {
        kill_after: Some(1),
        ..Faults::default()
    };
    let (sim, _recorder) = simulator(SimConfig::default().faults(faults)).await;
    let mut rtc = call(WebRtc::new(), &endpoint(&sim, "sk-test")).await;
    assert_eq!(event(&mut rtc).await["type"], "session.created");
    let rest = tokio::time::timeout(WAIT, rtc.receiver.collect::<Vec<_>>())
        .await
        .expect("a killed call stayed open");
    // (A data channel has no close code: the session's end closes the call.)
    assert!(!rest.iter().any(Result::is_ok), "{rest:?}");

    // Expiry: the `session_expired` error, then the call closes.
    let (sim, recorder) =
        simulator(SimConfig::default().session_duration(Duration::from_millis(700))).await;
    let mut rtc = call(WebRtc::new(), &endpoint(&sim, "sk-test")).await;
    let events = until(&mut rtc, "error").await;
    assert_eq!(events.last().unwrap()["error"]["code"], "session_expired");
    let rest = tokio::time::timeout(WAIT, rtc.receiver.collect::<Vec<_>>())
        .await
        .expect("an expired call stayed open");
    // The close after the `session_expired` error is that error, typed.
    let (last, before) = rest.split_last().expect("a verdict");
    assert!(before.iter().all(|r| r.is_ok()), "{rest:?}");
    let error = last.as_ref().unwrap_err();
    assert_eq!(
        error.kind(),
        reelthyme_transport::ErrorKind::SessionExpired,
        "{error}"
    );
    assert_all_valid(&recorder);
}

/// Sends `samples` on the track in 20 ms chunks (the transport paces them at real time).
fn talk(
    sender: &futures_channel::mpsc::Sender<AudioChunk>,
    samples: Vec<i16>,
) -> tokio::task::JoinHandle<()> {
    let mut sender = sender.clone();
    tokio::spawn(async move {
        use futures_util::SinkExt;
        for chunk in samples.chunks(480) {
            if sender
                .send(AudioChunk::new(24_000, chunk.to_vec()))
                .await
                .is_err()
            {
                break;
            }
        }
    })
}

fn audio_session() -> Value {
    json!({"output_modalities": ["audio"], "audio": {"input": {"turn_detection": {"type": "server_vad",
        "silence_duration_ms": 300}}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_vad_hears_the_track_and_the_answer_plays_on_the_track() {
    let (sim, recorder) = simulator(SimConfig::default().speed(20.0).rule(
        Match::Any,
        Reply::Text("Hello, I can hear you well.".into()),
    ))
    .await;
    let mut rtc = call(
        WebRtc::new().session(audio_session()),
        &endpoint(&sim, "sk-test"),
    )
    .await;
    assert_eq!(event(&mut rtc).await["type"], "session.created");
    let mut media = rtc.media.take().expect("the call carries audio");
    let speaker = talk(&media.sender(), speech(0.2, 1.0, 2.0));
    let events = until(&mut rtc, "output_audio_buffer.started").await;
    for kind in [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "response.created",
        "response.content_part.added",
    ] {
        position(&events, kind);
    }
    assert!(
        !types(&events).contains(&"response.output_audio.delta"),
        "audio goes on the track, not in events"
    );
    // The answer's audio arrives on the track, loud.
    let mut heard = Vec::new();
    tokio::time::timeout(WAIT, async {
        while heard.len() < 4_800 {
            let chunk = media.incoming().next().await.expect("the track ended");
            heard.extend(chunk.samples.into_iter().filter(|s| s.unsigned_abs() > 500));
        }
    })
    .await
    .expect("no answer audio on the track");
    // The engine made the answer (1.75 s of audio) at 20× real time; the track plays it at
    // real time, and `stopped` says when it has played out, well after `response.done`.
    let mut events = Vec::new();
    let mut done_at = None;
    let stopped_at = loop {
        let frame = tokio::time::timeout(WAIT, rtc.receiver.next())
            .await
            .expect("no output_audio_buffer.stopped")
            .unwrap()
            .unwrap();
        let event: Value = serde_json::from_str(frame.text()).unwrap();
        if event["type"] == "response.done" {
            done_at = Some(frame.received_at());
        }
        let stopped = event["type"] == "output_audio_buffer.stopped";
        events.push(event);
        if stopped {
            break frame.received_at();
        }
    };
    let done = position(&events, "response.done");
    let lag = stopped_at - done_at.expect("response.done before stopped");
    assert!(
        lag >= Duration::from_millis(800),
        "stopped {lag:?} after done"
    );
    assert_eq!(events[done]["response"]["status"], "completed");
    // `output_audio_buffer.clear` is honoured on a call: the buffer of that response.
    rtc.sender
        .send(json!({"type": "output_audio_buffer.clear"}).to_string())
        .await
        .unwrap();
    let cleared = until(&mut rtc, "output_audio_buffer.cleared").await;
    assert_eq!(
        cleared.last().unwrap()["response_id"],
        events[done]["response"]["id"]
    );
    assert!(!types(&cleared).contains(&"error"), "{cleared:?}");
    speaker.await.unwrap();
    assert_all_valid(&recorder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barge_in_cancels_clears_and_truncates_at_what_the_track_carried() {
    let long =
        "This answer goes on for a good while, so that the user can interrupt it. ".repeat(6);
    let (sim, recorder) = simulator(
        SimConfig::default()
            .speed(1.0)
            .rule(Match::Any, Reply::Text(long)),
    )
    .await;
    let mut rtc = call(
        WebRtc::new().session(audio_session()),
        &endpoint(&sim, "sk-test"),
    )
    .await;
    assert_eq!(event(&mut rtc).await["type"], "session.created");
    let (sender, mut incoming) = rtc.media.take().unwrap().into_parts();
    // Drain the incoming track (as a player would).
    tokio::spawn(async move { while incoming.next().await.is_some() {} });
    talk(&sender, speech(0.1, 0.8, 1.2)).await.unwrap();
    let started = until(&mut rtc, "output_audio_buffer.started").await;
    let item_id = started
        .iter()
        .find(|e| e["type"] == "response.output_item.added")
        .unwrap()["item"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Let a second of the answer go out, then speak over it (silence first keeps the
    // track flowing so the VAD sees the start).
    tokio::time::sleep(Duration::from_secs(1)).await;
    talk(&sender, speech(0.1, 1.0, 1.6)).await.unwrap();
    let events = until(&mut rtc, "conversation.item.truncated").await;
    let speech_started = position(&events, "input_audio_buffer.speech_started");
    let done = position(&events, "response.done");
    let cleared = position(&events, "output_audio_buffer.cleared");
    assert!(
        speech_started < done && done < cleared,
        "{:?}",
        types(&events)
    );
    assert_eq!(events[done]["response"]["status"], "cancelled");
    assert_eq!(
        events[done]["response"]["status_details"]["reason"],
        "turn_detected"
    );
    let truncated = events.last().unwrap();
    assert_eq!(truncated["item_id"], item_id.as_str());
    // About the second and a bit that went out before the user's speech was heard; far
    // less than the whole answer (some 20 s).
    let end_ms = truncated["audio_end_ms"].as_u64().unwrap();
    assert!((800..=3_500).contains(&end_ms), "{end_ms}");
    drop(sender);
    assert_all_valid(&recorder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_calls_and_garbage_leave_the_simulator_serving() {
    let (sim, _recorder): (Simulator, Recorder) = simulator(SimConfig::default()).await;
    let endpoint = endpoint(&sim, "sk-test");
    for body in [
        "",
        "v=0",
        "\u{0}\u{1}",
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
    ] {
        let request = HttpRequest::post("calls").body("application/sdp", body.to_owned());
        let status = send_request(&endpoint, request, &Options::default())
            .await
            .map(|r| r.status)
            .unwrap_or_else(|e| e.http_status().unwrap_or(0));
        assert_eq!(status, 400, "{body:?}");
    }
    let mut calls = Vec::new();
    for _ in 0..3 {
        let mut rtc = call(WebRtc::new().audio(false), &endpoint).await;
        assert_eq!(event(&mut rtc).await["type"], "session.created");
        calls.push(rtc);
    }
    for rtc in &mut calls {
        rtc.sender.close().await.unwrap();
    }
}
