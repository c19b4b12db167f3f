//! The simulator in process (`Simulator::in_process`), through the public transport seam:
//! no socket, the same session loop, the same failures as over the WebSocket.

use futures_util::StreamExt;
use reelthyme_sim::{AuthKind, Faults, SimConfig};
use reelthyme_transport::{Connection, Endpoint, ErrorKind, Options, Transport};
use serde_json::{Value, json};

use crate::support::{WAIT, append, assert_all_valid, fast, simulator, speech};

/// A client on one in-process connection.
struct Pipe {
    connection: Connection,
    received: Vec<Value>,
}

impl Pipe {
    async fn open(transport: &reelthyme_sim::InProcess, endpoint: &Endpoint) -> Self {
        let connection =
            tokio::time::timeout(WAIT, transport.connect(endpoint, &Options::default()))
                .await
                .expect("connect timed out")
                .expect("connect failed");
        Self {
            connection,
            received: Vec::new(),
        }
    }

    async fn send(&mut self, event: Value) {
        self.connection
            .sender
            .send(event.to_string())
            .await
            .expect("send failed");
    }

    /// The next item: an event, or the verdict (`Err`), or `None` at the end.
    async fn next(&mut self) -> Option<Result<Value, reelthyme_transport::Error>> {
        let item = tokio::time::timeout(WAIT, self.connection.receiver.next())
            .await
            .expect("timed out waiting for the simulator")?;
        Some(item.map(|frame| {
            let value: Value = serde_json::from_str(frame.text()).expect("frames are JSON");
            self.received.push(value.clone());
            value
        }))
    }

    async fn until(&mut self, kind: &str) -> Value {
        loop {
            match self.next().await {
                Some(Ok(event)) if event["type"] == kind => return event,
                Some(Ok(_)) => {}
                other => panic!("waiting for {kind}: {other:?} after {:?}", self.types()),
            }
        }
    }

    fn types(&self) -> Vec<&str> {
        self.received
            .iter()
            .map(|e| e["type"].as_str().unwrap_or("?"))
            .collect()
    }
}

fn endpoint() -> Endpoint {
    Endpoint::openai("gpt-realtime").api_key("sk-test")
}

#[tokio::test]
async fn a_text_turn_in_process() {
    let (sim, recorder) = simulator(fast()).await;
    let mut pipe = Pipe::open(&sim.in_process(), &endpoint()).await;
    let created = pipe.until("session.created").await;
    let session_id = created["session"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["session"]["model"], "gpt-realtime");
    pipe.send(
        json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "hello there"}]}}),
    )
    .await;
    pipe.send(json!({"type": "response.create", "response": {"output_modalities": ["text"]}}))
        .await;
    let done = pipe.until("response.done").await;
    assert_eq!(done["response"]["status"], "completed");
    assert_eq!(
        done["response"]["output"][0]["content"][0]["text"],
        "You said: hello there"
    );
    let text: String = pipe
        .received
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "You said: hello there");
    // It is in the connection log and the recording like a WebSocket session.
    let connection = sim.connections().pop().unwrap();
    assert_eq!(connection.path, "/v1/realtime");
    assert_eq!(connection.query_param("model"), Some("gpt-realtime"));
    assert_eq!(connection.auth, AuthKind::Bearer);
    assert!(connection.authorized);
    let frames = recorder.frames();
    assert!(frames.iter().any(|f| !f.from_server
        && f.session_id == session_id
        && f.json["type"] == "response.create"));
    assert!(
        frames.iter().any(|f| f.from_server
            && f.session_id == session_id
            && f.json["type"] == "response.done")
    );
    assert_all_valid(&recorder);
}

#[tokio::test]
async fn an_audio_turn_in_process_server_vad_answers_with_audio() {
    let config = fast().transcripts(["What is the weather like in Paris today?"]);
    let (sim, recorder) = simulator(config).await;
    let mut pipe = Pipe::open(&sim.in_process(), &endpoint()).await;
    pipe.until("session.created").await;
    pipe.send(json!({"type": "session.update", "session": {"type": "realtime",
        "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"},
            "turn_detection": {"type": "server_vad", "prefix_padding_ms": 300, "silence_duration_ms": 500}}}}}))
    .await;
    pipe.until("session.updated").await;
    for chunk in speech(1.0, 2.5, 4.0).chunks(960) {
        pipe.send(append(chunk)).await;
    }
    let started = pipe.until("input_audio_buffer.speech_started").await;
    let stopped = pipe.until("input_audio_buffer.speech_stopped").await;
    let start = started["audio_start_ms"].as_i64().unwrap();
    let end = stopped["audio_end_ms"].as_i64().unwrap();
    assert!((start - (1000 - 300)).abs() <= 20, "audio_start_ms {start}");
    assert!((end - (2500 + 500)).abs() <= 20, "audio_end_ms {end}");
    let done = pipe.until("response.done").await;
    let transcript = done["response"]["output"][0]["content"][0]["transcript"]
        .as_str()
        .unwrap();
    assert_eq!(
        transcript,
        "You said: What is the weather like in Paris today?"
    );
    let audio: usize = pipe
        .received
        .iter()
        .filter(|e| e["type"] == "response.output_audio.delta")
        .map(|e| {
            reelthyme_schema::Base64Audio::from_base64(e["delta"].as_str().unwrap())
                .decode_pcm16()
                .unwrap()
                .len()
        })
        .sum();
    // Synthesized speech: about 65 ms per character.
    assert!(audio > transcript.len() * 24 * 60, "{audio} samples");
    assert_all_valid(&recorder);
}

#[tokio::test]
async fn a_refused_key_fails_as_over_the_websocket() {
    let (sim, recorder) = simulator(fast().api_key("sk-right")).await;
    let wrong = Endpoint::openai("gpt-realtime").api_key("sk-wrong");
    let in_process = sim
        .in_process()
        .connect(&wrong, &Options::default())
        .await
        .expect_err("a wrong key connected");
    // The same session over the WebSocket: the 101, then `error` and close 3000.
    let mut socket =
        reelthyme_transport::connect(&wrong.clone().base_url(&sim.url()), &Options::default())
            .await
            .expect("the upgrade succeeds");
    let mut over_socket = None;
    while let Some(item) = tokio::time::timeout(WAIT, socket.receiver.next())
        .await
        .unwrap()
    {
        if let Err(error) = item {
            over_socket = Some(error);
        }
    }
    let over_socket = over_socket.expect("the socket ended without a verdict");
    for error in [&in_process, &over_socket] {
        assert_eq!(error.kind(), ErrorKind::Auth, "{error}");
        assert_eq!(error.close_code(), Some(3000), "{error}");
        assert_eq!(error.code(), Some("invalid_api_key"), "{error}");
    }
    assert_eq!(in_process.to_string(), over_socket.to_string());
    // Both were logged as refused, and the refusals recorded.
    let connections = sim.connections();
    assert_eq!(connections.len(), 2);
    assert!(
        connections
            .iter()
            .all(|c| !c.authorized && c.auth == AuthKind::Bearer)
    );
    let errors = recorder
        .frames()
        .iter()
        .filter(|f| f.from_server && f.json["type"] == "error")
        .count();
    assert_eq!(errors, 2);
    // No key at all is refused too, with the API's other wording.
    let none = sim
        .in_process()
        .connect(&Endpoint::openai("gpt-realtime"), &Options::default())
        .await
        .expect_err("no key connected");
    assert_eq!(none.kind(), ErrorKind::Auth);
    assert_eq!(none.code(), None);
    // A model the server does not know is the request's fault, 4000.
    let (strict, _) = simulator(fast().models(["gpt-realtime"])).await;
    let unknown = strict
        .in_process()
        .connect(
            &Endpoint::openai("gpt-nonsense").api_key("k"),
            &Options::default(),
        )
        .await
        .expect_err("an unknown model connected");
    assert_eq!(unknown.kind(), ErrorKind::InvalidRequest);
    assert_eq!(unknown.close_code(), Some(4000));
    assert_eq!(unknown.code(), Some("invalid_model"));
}

#[tokio::test]
async fn a_client_close_ends_the_session_normally() {
    let (sim, recorder) = simulator(fast()).await;
    let mut pipe = Pipe::open(&sim.in_process(), &endpoint()).await;
    let created = pipe.until("session.created").await;
    let session_id = created["session"]["id"].as_str().unwrap().to_owned();
    pipe.send(json!({"type": "input_audio_buffer.clear"})).await;
    pipe.connection.sender.flush().await.expect("flush");
    tokio::time::timeout(WAIT, pipe.connection.sender.close())
        .await
        .expect("close timed out")
        .expect("the close was not answered cleanly");
    // What was sent before the close was answered; then the stream ends without a verdict.
    loop {
        match pipe.next().await {
            Some(Ok(_)) => {}
            Some(Err(error)) => panic!("a clean close ended with {error}"),
            None => break,
        }
    }
    assert!(pipe.types().contains(&"input_audio_buffer.cleared"));
    let refused = pipe
        .connection
        .sender
        .send(json!({"type": "response.create"}).to_string())
        .await
        .expect_err("a closed connection took a frame");
    assert_eq!(refused.kind(), ErrorKind::Closed);
    // The session itself is over: it answered nothing after the close.
    assert!(
        !recorder
            .frames()
            .iter()
            .any(|f| f.session_id == session_id && f.json["type"] == "response.created")
    );
}

#[tokio::test]
async fn the_sessions_close_codes_reach_the_receiver() {
    // A close after two events (`session.created` and one more), with a code of 4000.
    let faults = Faults {
        close_after: Some((2, 4000, "invalid_request_error.bye".into())),
        ..Faults::default()
    };
    let (sim, _) = simulator(fast().faults(faults)).await;
    let mut pipe = Pipe::open(&sim.in_process(), &endpoint()).await;
    pipe.until("session.created").await;
    pipe.send(json!({"type": "input_audio_buffer.clear"})).await;
    pipe.send(json!({"type": "input_audio_buffer.clear"})).await;
    let verdict = loop {
        match pipe.next().await {
            Some(Ok(_)) => {}
            Some(Err(error)) => break error,
            None => panic!("ended without a verdict after {:?}", pipe.types()),
        }
    };
    assert_eq!(verdict.close_code(), Some(4000), "{verdict}");
    assert_eq!(verdict.kind(), ErrorKind::InvalidRequest);
    assert_eq!(
        pipe.types(),
        ["session.created", "input_audio_buffer.cleared"]
    );
    // The simulator's shutdown closes in-process sessions too, with 1001.
    let (sim, _) = simulator(SimConfig::default()).await;
    let mut pipe = Pipe::open(&sim.in_process(), &endpoint()).await;
    pipe.until("session.created").await;
    let transport = sim.in_process();
    sim.shutdown().await;
    let verdict = loop {
        match pipe.next().await {
            Some(Ok(_)) => {}
            Some(Err(error)) => break error,
            None => panic!("ended without a verdict"),
        }
    };
    assert_eq!(verdict.close_code(), Some(1001), "{verdict}");
    let after = transport
        .connect(&endpoint(), &Options::default())
        .await
        .expect_err("a stopped simulator connected");
    assert_eq!(after.kind(), ErrorKind::Connect);
}

#[tokio::test]
async fn a_slow_reader_holds_the_session_back_and_loses_nothing() {
    let (sim, recorder) = simulator(SimConfig::default().speed(1e6)).await;
    let options = Options::default().receive_queue(2).receive_bytes(1);
    let mut connection = sim
        .in_process()
        .connect(&endpoint(), &options)
        .await
        .unwrap();
    let text = "word ".repeat(300);
    connection
        .sender
        .send(
            json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": text}]}})
            .to_string(),
        )
        .await
        .unwrap();
    connection
        .sender
        .send(json!({"type": "response.create"}).to_string())
        .await
        .unwrap();
    // Not reading: the pipe holds at most its queue (2), the writer one more, and the
    // session waits instead of writing the whole answer.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let written = recorder.frames().iter().filter(|f| f.from_server).count();
    assert!(
        written <= 3 && written > 0,
        "{written} events written to a pipe of 2"
    );
    let mut types = Vec::new();
    let mut ids = Vec::new();
    while let Some(item) = tokio::time::timeout(WAIT, connection.receiver.next())
        .await
        .unwrap()
    {
        let value: Value = serde_json::from_str(item.unwrap().text()).unwrap();
        ids.push(value["event_id"].as_str().unwrap().to_owned());
        types.push(value["type"].as_str().unwrap().to_owned());
        if value["type"] == "response.done" {
            break;
        }
    }
    // Everything arrived, once, in order: created, the item, the whole answer.
    assert_eq!(types[0], "session.created");
    assert!(
        types
            .iter()
            .filter(|t| *t == "response.output_audio.delta")
            .count()
            > 10
    );
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
}

#[tokio::test]
async fn a_replaying_simulator_plays_its_recording_in_process() {
    let entry = |from_server, event| reelthyme_sim::Entry {
        t_ms: 0,
        from_server,
        event,
    };
    let entries = vec![
        entry(
            true,
            json!({"type": "session.created", "event_id": "e1", "session": {}}),
        ),
        entry(false, json!({"type": "response.create"})),
        entry(
            true,
            json!({"type": "response.created", "event_id": "e2", "response": {}}),
        ),
    ];
    let sim = reelthyme_sim::Simulator::replay("127.0.0.1:0".parse().unwrap(), entries)
        .await
        .unwrap();
    let mut pipe = Pipe::open(&sim.in_process(), &endpoint()).await;
    assert_eq!(pipe.until("session.created").await["event_id"], "e1");
    // The next server event waits for a client event.
    let early = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        pipe.connection.receiver.next(),
    )
    .await;
    assert!(early.is_err(), "the replay did not wait: {early:?}");
    pipe.send(json!({"type": "response.create"})).await;
    assert_eq!(pipe.until("response.created").await["event_id"], "e2");
    tokio::time::timeout(WAIT, pipe.connection.sender.close())
        .await
        .unwrap()
        .unwrap();
    assert!(pipe.next().await.is_none());
}
