//! Regressions from the reliability review (2026-11-24): whatever a client sends, the
//! simulator answers (an `error` event, an HTTP status or a close frame) and keeps serving.

use std::time::Duration;

use reelthyme_sim::{FaultAction, Faults, SimConfig, Simulator};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::{Client, Next, WAIT, append, fast, simulator, speech};

/// Writes a raw HTTP request and reads the whole response (the server closes or the wait ends).
async fn raw_http(sim: &Simulator, request: &str) -> String {
    let mut stream = TcpStream::connect(sim.addr()).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0_u8; 4096];
    loop {
        match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                response.extend_from_slice(&buf[..n]);
                // One response is enough: headers plus the declared body.
                let text = String::from_utf8_lossy(&response);
                if let Some((head, body)) = text.split_once("\r\n\r\n")
                    && let Some(length) = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                    && body.len() >= length
                {
                    break;
                }
            }
            Err(_) => panic!("timed out reading {request:?}"),
        }
    }
    String::from_utf8_lossy(&response).into_owned()
}

async fn post(sim: &Simulator, path: &str, body: &str) -> (u16, Value) {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: sim\r\nAuthorization: Bearer sk-x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let response = raw_http(sim, &request).await;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// A client that completes a text turn: the simulator still serves.
async fn text_turn(sim: &Simulator) {
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    client
        .send(reelthyme_schema::ClientEvent::user_text("still there?").to_value())
        .await;
    client
        .send(json!({"type": "response.create", "response": {"output_modalities": ["text"]}}))
        .await;
    let done = client.until("response.done").await;
    assert_eq!(
        done["response"]["output"][0]["content"][0]["text"],
        "You said: still there?"
    );
}

// #2
#[tokio::test]
async fn hangup_without_a_call_id_is_a_404_not_a_panic() {
    let (sim, _) = simulator(fast()).await;
    for path in [
        "/v1/realtime/calls/hangup",
        "/openai/v1/realtime/calls/hangup",
        "/v1/realtime/calls//hangup",
    ] {
        let (status, body) = post(&sim, path, "").await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["error"]["code"], "call_not_found", "{path}: {body}");
    }
    let call = sim.open_call();
    let (status, _) = post(&sim, &format!("/v1/realtime/calls/{call}/hangup"), "").await;
    assert_eq!(status, 200);
}

// #3
#[tokio::test]
async fn minted_sessions_are_validated_like_session_update() {
    let (sim, _) = simulator(fast()).await;
    for session in [
        json!({"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 0}}}}),
        json!({"type": "realtime", "audio": {"output": {"format": {"type": "audio/pcm", "rate": 4_294_967_295_u64}}}}),
        json!({"type": "realtime", "bogus": 1}),
        json!({"audio": {"input": {"format": {"type": "audio/pcm", "rate": 0}}}}),
    ] {
        let body = json!({"session": session}).to_string();
        let (status, error) = post(&sim, "/v1/realtime/client_secrets", &body).await;
        assert_eq!(status, 400, "{session}: {error}");
        assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
        assert!(error["error"]["code"].is_string(), "{error}");
        assert!(error["error"]["message"].is_string(), "{error}");
    }
    // A valid one still mints, and its session applies.
    let body = json!({"session": {"type": "realtime", "instructions": "be brief"}}).to_string();
    let (status, minted) = post(&sim, "/v1/realtime/client_secrets", &body).await;
    assert_eq!(status, 200, "{minted}");
    let key = minted["value"].as_str().unwrap();
    let auth = format!("Bearer {key}");
    let mut client = Client::connect(
        &sim.realtime_url("gpt-realtime"),
        &[("authorization", auth.as_str())],
    )
    .await;
    let created = client.until("session.created").await;
    assert_eq!(created["session"]["instructions"], "be brief");
    client.send(append(&[9000; 2400])).await;
    client
        .send(json!({"type": "input_audio_buffer.commit"}))
        .await;
    client.until("input_audio_buffer.committed").await;
}

// #4
#[tokio::test]
async fn a_client_item_cannot_take_the_id_speech_started_announced() {
    let (sim, _) = simulator(fast()).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    client
        .send(
            json!({"type": "session.update", "session": {"type": "realtime",
        "audio": {"input": {"transcription": {"model": "whisper-1"}}}}}),
        )
        .await;
    client.until("session.updated").await;
    let loud = speech(0.0, 0.3, 0.3);
    client.send(append(&loud)).await;
    let started = client.until("input_audio_buffer.speech_started").await;
    let id = started["item_id"].as_str().unwrap().to_owned();
    client
        .send(
            json!({"type": "conversation.item.create", "item": {"id": id, "type": "message",
        "role": "user", "content": []}}),
        )
        .await;
    let error = client.until("error").await;
    assert_eq!(error["error"]["code"], "duplicate_item_id", "{error}");
    client.send(append(&[0; 24_000])).await;
    let done = client
        .until("conversation.item.input_audio_transcription.completed")
        .await;
    assert_eq!(done["item_id"], id.as_str());
}

// #7
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_without_reading_neither_deadlocks_nor_outlives_shutdown() {
    let long = "All work and no play makes a long answer. ".repeat(70);
    let config = SimConfig::default()
        .speed(500.0)
        .rule(reelthyme_sim::Match::Any, reelthyme_sim::Reply::Text(long));
    let (sim, _) = simulator(config).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client
        .send(reelthyme_schema::ClientEvent::user_text("go").to_value())
        .await;
    client.send(json!({"type": "response.create"})).await;
    let chunk = append(&[0; 2400]).to_string();
    // 5,000 appends (about 32 MB), never reading: the simulator must keep reading.
    tokio::time::timeout(Duration::from_secs(30), async {
        for _ in 0..5_000 {
            client.send_raw(Message::text(chunk.clone())).await;
        }
    })
    .await
    .expect("the simulator stopped reading while its writes were blocked");
    // Shutdown closes the session although its writer is blocked on the unread socket.
    tokio::time::timeout(WAIT, sim.shutdown())
        .await
        .expect("shutdown waited on the blocked session");
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            if let Next::Closed(_) = client.next().await {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the session outlived the shutdown");
}

// #8
#[tokio::test]
async fn idle_connections_are_closed_after_the_header_read_timeout() {
    let (sim, _) = simulator(fast().header_read_timeout(Duration::from_millis(500))).await;
    let mut idle = TcpStream::connect(sim.addr()).await.unwrap();
    idle.write_all(b"GET /v1/realtime HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap(); // headers never finish
    let mut buf = [0_u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match idle.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(read.is_ok(), "an idle connection was kept open");
    text_turn(&sim).await;
}

// #8
#[tokio::test]
async fn connections_over_the_cap_get_503_and_the_cap_frees_up() {
    let (sim, _) = simulator(fast().max_connections(2)).await;
    let first = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    let second = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    let response = raw_http(
        &sim,
        "GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 503"), "{response:?}");
    drop((first, second));
    // The permits come back once the sessions end.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let response = raw_http(
            &sim,
            "GET /nowhere HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-x\r\nConnection: close\r\n\r\n",
        )
        .await;
        if response.starts_with("HTTP/1.1 404") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{response:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// #10a
#[tokio::test]
async fn vad_keeps_only_the_prefix_padding_of_the_silence_before_speech() {
    let (sim, _) = simulator(fast()).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    client
        .send(
            json!({"type": "session.update", "session": {"type": "realtime",
        "audio": {"input": {"turn_detection": {"type": "server_vad", "prefix_padding_ms": 300,
            "silence_duration_ms": 200, "create_response": false}}}}}),
        )
        .await;
    client.until("session.updated").await;
    for _ in 0..600 {
        client.send(append(&[0; 2400])).await; // 60 s of silence
    }
    client.send(append(&speech(0.0, 0.5, 1.5))).await;
    let committed = client.until("input_audio_buffer.committed").await;
    let started = client
        .received
        .iter()
        .find(|e| e["type"] == "input_audio_buffer.speech_started")
        .unwrap()
        .clone();
    assert!(
        (started["audio_start_ms"].as_i64().unwrap() - 59_700).abs() <= 20,
        "{started}"
    );
    client
        .send(json!({"type": "conversation.item.retrieve", "item_id": committed["item_id"]}))
        .await;
    let item = client.until("conversation.item.retrieved").await;
    let audio = reelthyme_schema::Base64Audio::from_base64(
        item["item"]["content"][0]["audio"].as_str().unwrap(),
    )
    .decode_pcm16()
    .unwrap();
    let seconds = audio.len() as f64 / 24_000.0;
    assert!((0.9..1.1).contains(&seconds), "{seconds} s committed");
}

// #10a
#[tokio::test]
async fn without_turn_detection_the_input_buffer_is_capped() {
    let (sim, _) = simulator(fast()).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    client
        .send(
            json!({"type": "session.update", "session": {"type": "realtime",
        "audio": {"input": {"turn_detection": null}}}}),
        )
        .await;
    client.until("session.updated").await;
    // 5 MiB of PCM per append: the fourth goes past the 15 MiB buffer.
    let chunk = append(&vec![0_i16; 5 << 19]);
    for _ in 0..3 {
        client.send(chunk.clone()).await;
    }
    client
        .send(json!({"type": "input_audio_buffer.commit", "event_id": "fits"}))
        .await;
    client.until("input_audio_buffer.committed").await;
    for _ in 0..4 {
        client.send(chunk.clone()).await;
    }
    let error = client.until("error").await;
    assert_eq!(error["error"]["param"], "audio", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("buffer"),
        "{error}"
    );
    client
        .send(json!({"type": "input_audio_buffer.clear"}))
        .await;
    client.until("input_audio_buffer.cleared").await;
}

// #10b
#[tokio::test]
async fn the_connection_list_keeps_only_the_latest_connections() {
    let (sim, _) = simulator(fast()).await;
    for n in 0..300 {
        let url = format!("{}&n={n}", sim.realtime_url("gpt-realtime"));
        let mut client = Client::connect(&url, &[]).await;
        client.until("session.created").await;
    }
    let connections = sim.connections();
    assert_eq!(connections.len(), reelthyme_sim::CONNECTION_LOG);
    assert_eq!(connections.last().unwrap().query_param("n"), Some("299"));
}

// #13
#[tokio::test]
async fn ephemeral_keys_are_unpredictable() {
    let mut keys = Vec::new();
    for _ in 0..2 {
        let sim = Simulator::start(SimConfig::default().api_key("sk-x"))
            .await
            .unwrap();
        let (status, minted) = post(&sim, "/v1/realtime/client_secrets", "{}").await;
        assert_eq!(status, 200, "{minted}");
        let key = minted["value"].as_str().unwrap().to_owned();
        assert!(key.starts_with("ek_") && key.len() >= 3 + 32, "{key}");
        keys.push(key);
    }
    assert_ne!(keys[0], keys[1]);
}

// #17a
#[tokio::test]
async fn sessions_that_never_expire() {
    let (sim, _) = simulator(fast().session_duration(Duration::MAX)).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    let created = client.until("session.created").await;
    assert!(created["session"]["expires_at"].as_i64().unwrap() > 1_700_000_000);
    let (status, minted) = post(&sim, "/v1/realtime/client_secrets", "{}").await;
    assert_eq!(status, 200, "{minted}");
    assert!(minted["session"]["expires_at"].as_i64().unwrap() > 1_700_000_000);
    text_turn(&sim).await;
}

// #17b
#[tokio::test]
async fn a_tiny_speed_is_clamped_and_never_panics() {
    let (sim, _) = simulator(SimConfig::default().speed(1e-300)).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    client.send(json!({"type": "response.create"})).await;
    client.until("response.created").await;
    client.send(json!({"type": "response.cancel"})).await;
    let done = client.until("response.done").await;
    assert_eq!(done["response"]["status"], "cancelled");
}

// The close handshake (RFC 6455 §5.5.1).
#[tokio::test]
async fn a_client_close_is_answered_with_the_servers_close_frame() {
    let (sim, _) = simulator(fast()).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    client
        .send_raw(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await;
    assert_eq!(
        client.next().await,
        Next::Closed(Some((1000, "bye".into())))
    );
    text_turn(&sim).await;
}

// Limits that match the service.
#[tokio::test]
async fn an_oversized_message_gets_an_error_and_close_1009_and_others_are_served() {
    let (sim, _) = simulator(fast()).await;
    let mut other = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    other.until("session.created").await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    // 16 MiB of base64: over the service's 15 MiB.
    let big = json!({"type": "input_audio_buffer.append", "audio": "A".repeat(16 << 20)});
    client.send(big).await;
    let error = client.until("error").await;
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too large"),
        "{error}"
    );
    assert!(matches!(client.next().await, Next::Closed(Some((1009, _)))));
    other
        .send(json!({"type": "input_audio_buffer.clear"}))
        .await;
    other.until("input_audio_buffer.cleared").await;
    text_turn(&sim).await;
}

/// Reads until the connection ends; `Closed(None)` is an end without a close frame.
async fn end_of(client: &mut Client) -> Next {
    loop {
        if let Next::Closed(frame) = client.next().await {
            return Next::Closed(frame);
        }
    }
}

// Faults for the client's fault matrix.
#[tokio::test]
async fn kill_after_drops_the_connection_without_a_close_frame() {
    let (sim, recorder) = simulator(fast().faults(Faults {
        kill_after: Some(1),
        ..Faults::default()
    }))
    .await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    assert_eq!(client.event().await["type"], "session.created");
    assert_eq!(end_of(&mut client).await, Next::Closed(None));
    assert_eq!(
        recorder.frames().iter().filter(|f| f.from_server).count(),
        1
    );

    let (sim, _) = simulator(fast().faults(Faults {
        kill_after: Some(0),
        ..Faults::default()
    }))
    .await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    assert_eq!(client.next().await, Next::Closed(None));
}

#[tokio::test]
async fn on_client_acts_on_the_nth_event_of_a_type() {
    let faults = |action| Faults {
        on_client: Some(("input_audio_buffer.append".into(), 3, action)),
        ..Faults::default()
    };
    // Close.
    let (sim, _) =
        simulator(fast().faults(faults(FaultAction::Close(4001, "mid-append".into())))).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    for _ in 0..3 {
        client.send(append(&[0; 480])).await;
    }
    assert_eq!(
        end_of(&mut client).await,
        Next::Closed(Some((4001, "mid-append".into())))
    );
    // Kill.
    let (sim, _) = simulator(fast().faults(faults(FaultAction::Kill))).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    for _ in 0..2 {
        client.send(append(&[0; 480])).await;
    }
    client
        .send(json!({"type": "input_audio_buffer.clear"}))
        .await;
    client.until("input_audio_buffer.cleared").await; // the first two did not trigger it
    client.send(append(&[0; 480])).await;
    assert_eq!(end_of(&mut client).await, Next::Closed(None));
    // Stall: no answer, not even to a ping.
    let (sim, _) = simulator(fast().faults(faults(FaultAction::Stall))).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    for _ in 0..3 {
        client.send(append(&[0; 480])).await;
    }
    client
        .send(json!({"type": "input_audio_buffer.clear"}))
        .await;
    client.send_raw(Message::Ping(vec![1].into())).await;
    let silent = tokio::time::timeout(Duration::from_millis(500), client.next()).await;
    assert!(silent.is_err(), "the stalled server answered: {silent:?}");
    // Delayed: mid-response.
    let (sim, _) = simulator(SimConfig::default().faults(Faults {
        on_client: Some((
            "response.create".into(),
            1,
            FaultAction::Delayed(Duration::from_millis(300), Box::new(FaultAction::Kill)),
        )),
        ..Faults::default()
    }))
    .await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    client.send(json!({"type": "response.create"})).await;
    client.until("response.output_audio.delta").await;
    assert_eq!(end_of(&mut client).await, Next::Closed(None));
    assert!(
        !client.types().iter().any(|t| t == "response.done"),
        "{:?}",
        client.types()
    );
}

#[tokio::test]
async fn close_before_session_created_closes_right_after_the_101() {
    let (sim, recorder) = simulator(fast().faults(Faults {
        close_before_session_created: Some((1013, "try again later".into())),
        ..Faults::default()
    }))
    .await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    assert_eq!(
        client.next().await,
        Next::Closed(Some((1013, "try again later".into())))
    );
    assert!(recorder.frames().iter().all(|f| !f.from_server));
}

// #7: the write timeout.
#[tokio::test]
async fn a_client_that_never_reads_is_disconnected_after_the_write_timeout() {
    let long = "All work and no play makes a long answer. ".repeat(70);
    let config = SimConfig::default()
        .speed(500.0)
        .write_timeout(Duration::from_millis(300))
        .rule(reelthyme_sim::Match::Any, reelthyme_sim::Reply::Text(long));
    let (sim, recorder) = simulator(config).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client
        .send(reelthyme_schema::ClientEvent::user_text("go").to_value())
        .await;
    client.send(json!({"type": "response.create"})).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // not reading
    let ended = tokio::time::timeout(WAIT, end_of(&mut client)).await;
    assert_eq!(ended, Ok(Next::Closed(None)), "the stalled client was kept");
    assert!(
        !client.types().iter().any(|t| t == "response.done"),
        "the whole answer was buffered for a client that did not read"
    );
    assert!(recorder.frames().iter().filter(|f| f.from_server).count() > 10);
}

/// CPU time (user + system) this process has used, read from its open `/proc/self/stat`
/// (opening it would take a descriptor, which the test may have run out of).
fn cpu_time(stat: &mut std::fs::File) -> Duration {
    use std::io::{Read, Seek};
    stat.rewind().unwrap();
    let mut text = String::new();
    stat.read_to_string(&mut text).unwrap();
    let stat = text;
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

// #8: out of file descriptors, the accept loop backs off instead of spinning. Runs in a
// child process (this test binary again) whose descriptor limit `prlimit` lowers.
#[tokio::test]
async fn out_of_file_descriptors_the_accept_loop_backs_off() {
    if std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no prlimit");
        return;
    }
    let child = tokio::process::Command::new("prlimit")
        .arg("--nofile=96")
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "reliability::emfile_child",
            "--include-ignored",
            "--nocapture",
        ])
        .env("REELTHYME_EMFILE_CHILD", "1")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), child)
        .await
        .expect("the child hung")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
#[ignore = "run by out_of_file_descriptors_the_accept_loop_backs_off, under prlimit"]
async fn emfile_child() {
    if std::env::var_os("REELTHYME_EMFILE_CHILD").is_none() {
        return;
    }
    let (sim, _) = simulator(fast()).await;
    let mut stat = std::fs::File::open("/proc/self/stat").unwrap();
    // Connect until the process runs out of descriptors: the last connections wait in
    // the backlog, and every accept fails with EMFILE.
    let mut clients = Vec::new();
    while clients.len() < 1_000 {
        match TcpStream::connect(sim.addr()).await {
            Ok(stream) => clients.push(stream),
            Err(_) => break,
        }
        tokio::task::yield_now().await;
    }
    assert!(clients.len() < 1_000, "never ran out of descriptors");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = cpu_time(&mut stat);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = cpu_time(&mut stat) - start;
    assert!(used < Duration::from_millis(300), "{used:?} of CPU in 1 s");
    drop(clients);
}

// The close handshake, when replaying a recording too.
#[tokio::test]
async fn a_replay_answers_a_client_close_with_its_own() {
    let entries = vec![
        reelthyme_sim::Entry {
            t_ms: 0,
            from_server: true,
            event: json!({"type": "session.created", "event_id": "e1", "session": {}}),
        },
        reelthyme_sim::Entry {
            t_ms: 5,
            from_server: false,
            event: json!({"type": "response.create"}),
        },
    ];
    let sim = Simulator::replay("127.0.0.1:0".parse().unwrap(), entries)
        .await
        .unwrap();
    for wait_first in [true, false] {
        let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
        client.until("session.created").await;
        if !wait_first {
            client.send(json!({"type": "response.create"})).await;
        }
        client
            .send_raw(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            })))
            .await;
        assert_eq!(
            client.next().await,
            Next::Closed(Some((1000, "bye".into())))
        );
    }
}
