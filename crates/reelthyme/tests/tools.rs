//! Typed tools and the session configured at connect, against the simulator (in process:
//! the socket is not the point here).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use futures_util::StreamExt;
use reelthyme::events::{
    ClientEvent, Modality, PcmFormat, ResponseParams, ServerEvent, SessionConfig,
};
use reelthyme::{Config, ErrorKind, SessionEvents, Tool, ToolError};
use reelthyme_sim::{Match, Recorder, Reply, SimConfig, Simulator};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use support::{WAIT, endpoint, start, until};

/// The current weather in a city.
#[derive(Deserialize, JsonSchema)]
struct GetWeather {
    /// The city's name.
    city: String,
}

/// Looks something up, slowly.
#[derive(Deserialize, JsonSchema)]
struct SlowLookup {}

/// Always fails.
#[derive(Deserialize, JsonSchema)]
struct FailLookup {}

/// Always panics.
#[derive(Deserialize, JsonSchema)]
struct PanicLookup {}

fn text_session() -> SessionConfig {
    let mut session = SessionConfig::realtime();
    session.output_modalities = Some(vec![Modality::Text]);
    session
}

/// A weather tool that records the cities it was asked about.
fn weather(cities: &Arc<Mutex<Vec<String>>>) -> Tool {
    let cities = cities.clone();
    Tool::new(move |GetWeather { city }| {
        cities.lock().unwrap().push(city.clone());
        async move { Ok(format!("{city}: 18 °C, clear")) }
    })
}

fn slow(delay: Duration) -> Tool {
    Tool::new(move |SlowLookup {}| async move {
        tokio::time::sleep(delay).await;
        Ok("found it")
    })
}

async fn connect(sim: &Simulator, config: Config) -> reelthyme::Session {
    reelthyme::connect(
        config
            .transport(sim.in_process())
            .outgoing(reelthyme::validate),
    )
    .await
    .unwrap()
}

/// The client frames of the (only) session, as JSON.
fn client_frames(recorder: &Recorder) -> Vec<Value> {
    recorder
        .frames()
        .into_iter()
        .filter(|f| !f.from_server)
        .map(|f| f.json)
        .collect()
}

fn outputs(frames: &[Value]) -> Vec<Value> {
    frames
        .iter()
        .filter(|f| {
            f["type"] == "conversation.item.create" && f["item"]["type"] == "function_call_output"
        })
        .map(|f| f["item"].clone())
        .collect()
}

fn response_creates(frames: &[Value]) -> usize {
    frames
        .iter()
        .filter(|f| f["type"] == "response.create")
        .count()
}

/// The text of the next finished response.
async fn answer(events: &mut SessionEvents) -> String {
    match until(events, "response.done").await {
        ServerEvent::ResponseDone(done) => done
            .response
            .output
            .iter()
            .flatten()
            .map(|item| match item {
                reelthyme::events::Item::Message(m) => m.text(),
                reelthyme::events::Item::FunctionCall(call) => format!("call {}", call.name),
                _ => String::new(),
            })
            .collect(),
        _ => unreachable!(),
    }
}

/// Reads events for `duration` (none may be an error).
async fn drain_for(events: &mut SessionEvents, duration: Duration) {
    let _ = tokio::time::timeout(duration, async {
        while let Some(event) = events.next().await {
            event.expect("no error");
        }
    })
    .await;
}

async fn ask(tx: &mut reelthyme::SessionSender, text: &str) {
    tx.send(ClientEvent::user_text(text)).await.unwrap();
    tx.send(ClientEvent::response_create_with(ResponseParams::text()))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_configured_session_is_sent_first_and_confirmed_at_connect() {
    let (sim, recorder) = start(SimConfig::default().speed(50.0)).await;
    let cities = Arc::new(Mutex::new(Vec::new()));
    let config = Config::new(endpoint(&sim))
        .instructions("Answer in one sentence.")
        .voice("marin")
        .output_format(reelthyme::events::AudioFormat::pcm())
        .tool(weather(&cities));
    let session = connect(&sim, config).await;
    // Right at once: connect waited for the answer.
    let confirmed = session.config();
    assert_eq!(
        confirmed.instructions.as_deref(),
        Some("Answer in one sentence.")
    );
    assert_eq!(
        confirmed
            .audio
            .as_ref()
            .and_then(|a| a.output.as_ref())
            .and_then(|o| o.voice.clone()),
        Some("marin".into())
    );
    let names: Vec<String> = confirmed
        .tools
        .iter()
        .flatten()
        .filter_map(|t| match t {
            reelthyme::events::Tool::Function(f) => Some(f.name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["get_weather"]);
    let (_tx, mut events) = session.split();
    // The stream starts with session.created, as without a configuration.
    assert_eq!(
        events.next().await.unwrap().unwrap().type_name(),
        "session.created"
    );
    let frames = client_frames(&recorder);
    assert_eq!(frames[0]["type"], "session.update", "{frames:?}");
    let tool = &frames[0]["session"]["tools"][0];
    assert_eq!(tool["description"], "The current weather in a city.");
    assert_eq!(tool["parameters"]["additionalProperties"], false);
    assert_eq!(tool["parameters"]["properties"]["city"]["type"], "string");
}

#[tokio::test]
async fn a_refused_session_configuration_is_a_typed_connect_error() {
    let (sim, _recorder) = start(SimConfig::default()).await;
    // The API takes PCM at 24 kHz only.
    let format = reelthyme::events::AudioFormat::Pcm(PcmFormat {
        rate: Some(16_000),
        ..PcmFormat::default()
    });
    let error = reelthyme::connect(
        Config::new(endpoint(&sim))
            .input_format(format)
            .transport(sim.in_process()),
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidRequest, "{error}");
    assert!(
        error.to_string().contains("session configuration"),
        "{error}"
    );
    // The server's error is kept: its code, and the event itself.
    assert!(error.code().is_some(), "{error:?}");
    assert!(error.api_error().is_some());
}

#[tokio::test]
async fn a_tool_round_trip_sends_one_output_and_one_follow_up() {
    let (sim, recorder) = start(SimConfig::default().speed(50.0)).await;
    let cities = Arc::new(Mutex::new(Vec::new()));
    let config = Config::new(endpoint(&sim))
        .session(text_session())
        .tool(weather(&cities));
    let (mut tx, mut events) = connect(&sim, config).await.split();
    ask(&mut tx, "What's the weather in Paris?").await;
    assert_eq!(answer(&mut events).await, "call get_weather");
    let follow_up = answer(&mut events).await;
    assert!(
        follow_up.contains("The get_weather tool returned Paris: 18 °C, clear"),
        "{follow_up}"
    );
    // Nothing more comes: the call was described three times, answered once.
    drain_for(&mut events, Duration::from_millis(300)).await;
    assert_eq!(*cities.lock().unwrap(), ["Paris"]);
    let frames = client_frames(&recorder);
    let outputs = outputs(&frames);
    assert_eq!(outputs.len(), 1, "{frames:#?}");
    assert_eq!(outputs[0]["output"], "Paris: 18 °C, clear");
    // The application's and the tool layer's.
    assert_eq!(response_creates(&frames), 2, "{frames:#?}");
    let last = frames
        .iter()
        .rfind(|f| f["type"] == "response.create")
        .unwrap();
    assert!(
        last["event_id"]
            .as_str()
            .unwrap()
            .starts_with(reelthyme::FOLLOW_UP_EVENT_ID_PREFIX)
    );
    // The output went out before the follow-up that uses it.
    let position = |pred: &dyn Fn(&Value) -> bool| frames.iter().position(pred).unwrap();
    assert!(
        position(&|f| f["item"]["type"] == "function_call_output")
            < position(&|f| f["event_id"] == last["event_id"])
    );
}

/// Waits for the other calls of its response.
#[derive(Deserialize, JsonSchema)]
struct Meet {}

/// Several calls in one response (the service's parallel tool calls, scripted in the
/// simulator's documented format) run concurrently — each handler waits for the others at a
/// barrier, so run one after the other they would never finish — and are answered with
/// exactly one output each and exactly one follow-up, after the last output.
#[tokio::test]
async fn parallel_calls_run_together_and_get_one_follow_up() {
    let script = SimConfig::from_script(
        r#"
[[rule]]
contains = "compare"
function_calls = [
  { name = "get_weather", arguments = { city = "Paris" } },
  { name = "get_weather", arguments = { city = "Rome" } },
  { name = "meet" },
]

[[rule]]
after_tool = true
text = "All three answered."
"#,
    )
    .unwrap()
    .speed(50.0);
    let (sim, recorder) = start(script).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(3));
    let at_barrier = barrier.clone();
    let weather = Tool::new(move |GetWeather { city }| {
        let barrier = at_barrier.clone();
        async move {
            barrier.wait().await;
            Ok(format!("{city}: 18 °C, clear"))
        }
    });
    let meet = Tool::new(move |Meet {}| {
        let barrier = barrier.clone();
        async move {
            barrier.wait().await;
            Ok("met")
        }
    });
    let config = Config::new(endpoint(&sim))
        .session(text_session())
        .tool(weather)
        .tool(meet);
    let (mut tx, mut events) = connect(&sim, config).await.split();
    ask(&mut tx, "Compare Paris and Rome").await;
    assert_eq!(
        answer(&mut events).await,
        "call get_weathercall get_weathercall meet"
    );
    assert_eq!(answer(&mut events).await, "All three answered.");
    drain_for(&mut events, Duration::from_millis(300)).await;
    // The server's side: one response made the three calls, each with its own call_id.
    let calls: Vec<Value> = recorder
        .frames()
        .into_iter()
        .filter(|f| f.from_server && f.json["type"] == "response.done")
        .map(|f| f.json["response"]["output"].clone())
        .next()
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    let mut call_ids: Vec<&str> = calls
        .iter()
        .map(|c| c["call_id"].as_str().unwrap())
        .collect();
    call_ids.sort_unstable();
    call_ids.dedup();
    assert_eq!(call_ids.len(), 3, "{calls:#?}");
    // The client's: exactly one output per call, then exactly one follow-up.
    let frames = client_frames(&recorder);
    let outputs = outputs(&frames);
    let mut answered: Vec<&str> = outputs
        .iter()
        .map(|o| o["call_id"].as_str().unwrap())
        .collect();
    answered.sort_unstable();
    assert_eq!(answered, call_ids, "{frames:#?}");
    let mut results: Vec<&str> = outputs
        .iter()
        .map(|o| o["output"].as_str().unwrap())
        .collect();
    results.sort_unstable();
    assert_eq!(
        results,
        ["Paris: 18 °C, clear", "Rome: 18 °C, clear", "met"]
    );
    assert_eq!(response_creates(&frames), 2, "{frames:#?}");
    let follow_up = frames
        .iter()
        .rposition(|f| f["type"] == "response.create")
        .unwrap();
    let last_output = frames
        .iter()
        .rposition(|f| f["item"]["type"] == "function_call_output")
        .unwrap();
    assert!(last_output < follow_up, "{frames:#?}");
    assert!(
        frames[follow_up]["event_id"]
            .as_str()
            .unwrap()
            .starts_with(reelthyme::FOLLOW_UP_EVENT_ID_PREFIX)
    );
    // What the simulator sent for the three calls is what the service's schema allows.
    for frame in recorder.frames().into_iter().filter(|f| f.from_server) {
        let report = reelthyme::events::validate_server_value(&frame.json);
        assert!(report.is_strictly_valid(), "{report:?}: {}", frame.json);
    }
}

/// The arguments of the scripted MCP tool call.
#[derive(Debug, Deserialize, PartialEq)]
struct DeletePath {
    path: String,
}

/// An MCP approval request (scripted in the simulator) reaches the application once, typed,
/// although five events carry it; its answer goes back as one `mcp_approval_response` naming
/// it, which the server takes into the conversation; everything the server sent validates
/// strictly.
#[tokio::test]
async fn an_mcp_approval_request_is_typed_delivered_once_and_answered() {
    let script = SimConfig::from_script(
        r#"
[[rule]]
contains = "clean up"
mcp_approval = { server_label = "files", name = "delete_file", arguments = { path = "/tmp/old" } }
"#,
    )
    .unwrap()
    .speed(50.0);
    let (sim, recorder) = start(script).await;
    let config = Config::new(endpoint(&sim)).session(text_session());
    let (mut approvals, layer) = reelthyme::McpApprovals::new();
    let (mut tx, mut events) = connect(&sim, config).await.with_layer(layer).split();
    ask(&mut tx, "Please clean up my files").await;
    until(&mut events, "response.done").await;
    let request = approvals.try_recv().expect("the request");
    assert!(approvals.try_recv().is_none(), "delivered once");
    assert_eq!(
        (request.server_label.as_str(), request.name.as_str()),
        ("files", "delete_file")
    );
    assert_eq!(
        request.arguments::<DeletePath>().unwrap(),
        DeletePath {
            path: "/tmp/old".into()
        }
    );
    // The request is the server's item, made by that response.
    let added = recorder
        .frames()
        .into_iter()
        .find(|f| f.from_server && f.json["type"] == "response.output_item.added")
        .unwrap();
    assert_eq!(added.json["item"]["type"], "mcp_approval_request");
    assert_eq!(added.json["item"]["id"], request.id.as_str());
    assert_eq!(
        request.response_id.as_deref(),
        added.json["response_id"].as_str()
    );
    tx.send(request.reject("not without a backup"))
        .await
        .unwrap();
    let echoed = until(&mut events, "conversation.item.added").await;
    let ServerEvent::ConversationItemAdded(echoed) = echoed else {
        unreachable!()
    };
    let reelthyme::events::Item::McpApprovalResponse(answer) = &echoed.item else {
        panic!("{:?}", echoed.item)
    };
    assert_eq!(answer.approval_request_id, Some(Some(request.id.clone())));
    assert_eq!(answer.approve, Some(false));
    drain_for(&mut events, Duration::from_millis(200)).await;
    assert!(approvals.try_recv().is_none());
    let frames = client_frames(&recorder);
    let answers: Vec<&Value> = frames
        .iter()
        .filter(|f| f["item"]["type"] == "mcp_approval_response")
        .collect();
    assert_eq!(answers.len(), 1, "{frames:#?}");
    assert_eq!(
        answers[0]["item"]["approval_request_id"],
        request.id.as_str()
    );
    assert_eq!(answers[0]["item"]["reason"], "not without a backup");
    for frame in recorder.frames().into_iter().filter(|f| f.from_server) {
        let report = reelthyme::events::validate_server_value(&frame.json);
        assert!(report.is_strictly_valid(), "{report:?}: {}", frame.json);
    }
}

#[tokio::test]
async fn handler_errors_panics_and_bad_arguments_go_back_as_output_text() {
    let sim_config = SimConfig::default()
        .speed(50.0)
        .rule(
            Match::Contains("fail".into()),
            Reply::FunctionCall {
                name: "fail_lookup".into(),
                arguments: "{}".into(),
            },
        )
        .rule(
            Match::Contains("panic".into()),
            Reply::FunctionCall {
                name: "panic_lookup".into(),
                arguments: "{}".into(),
            },
        )
        .rule(
            Match::Contains("garbled".into()),
            Reply::FunctionCall {
                name: "get_weather".into(),
                arguments: "{\"town\": 3}".into(),
            },
        );
    let (sim, recorder) = start(sim_config).await;
    let cities = Arc::new(Mutex::new(Vec::new()));
    let config = Config::new(endpoint(&sim))
        .session(text_session())
        .tool(weather(&cities))
        .tool(Tool::new(|FailLookup {}| async move {
            Err::<String, _>(ToolError::msg("no such city"))
        }))
        .tool(Tool::new(|PanicLookup {}| async move {
            if true {
                panic!("boom");
            }
            Ok("unreachable")
        }));
    let (mut tx, mut events) = connect(&sim, config).await.split();
    for (question, expected) in [
        ("Please fail", "no such city"),
        ("Please panic", "the tool panicked: boom"),
        ("Something garbled", "the arguments do not match"),
    ] {
        ask(&mut tx, question).await;
        assert!(answer(&mut events).await.starts_with("call "));
        // The session goes on: the follow-up answers with the error text.
        let follow_up = answer(&mut events).await;
        assert!(follow_up.contains(expected), "{follow_up}");
    }
    let outputs = outputs(&client_frames(&recorder));
    assert_eq!(outputs.len(), 3, "{outputs:#?}");
    for output in &outputs {
        let output: Value = serde_json::from_str(output["output"].as_str().unwrap()).unwrap();
        assert!(output["error"].is_string(), "{output}");
    }
    assert!(cities.lock().unwrap().is_empty());
}

/// A slow tool (2 s, on tokio's paused clock: no real wait, and the times below are exact
/// virtual times) blocks neither a text turn nor the user's spoken turn meanwhile: both are
/// answered while it runs, before its output exists; its result comes after 2 s, with its
/// own follow-up.
#[tokio::test(start_paused = true)]
async fn a_slow_tool_blocks_neither_a_text_turn_nor_a_barge_in() {
    let (sim, recorder) = start(SimConfig::default().speed(50.0)).await;
    let config = Config::new(endpoint(&sim))
        .session(text_session())
        .tool(slow(Duration::from_secs(2)).cancel_on_barge_in(false));
    let (mut tx, mut events) = connect(&sim, config).await.split();
    let called = Instant::now();
    ask(&mut tx, "Do the slow lookup").await;
    assert_eq!(answer(&mut events).await, "call slow_lookup");
    // Meanwhile, a text turn is answered.
    ask(&mut tx, "Hello there").await;
    assert_eq!(answer(&mut events).await, "You said: Hello there");
    // And the user speaks: server VAD hears the turn and answers it.
    for chunk in speech().chunks(960) {
        tx.send(ClientEvent::audio_append(chunk)).await.unwrap();
    }
    until(&mut events, "input_audio_buffer.speech_started").await;
    // The answer to the spoken turn (no transcription configured: the simulator greets).
    let spoken = answer(&mut events).await;
    assert!(
        !spoken.is_empty() && !spoken.contains("slow_lookup"),
        "{spoken}"
    );
    let meanwhile = called.elapsed();
    assert!(meanwhile < Duration::from_secs(2), "{meanwhile:?}");
    assert!(outputs(&client_frames(&recorder)).is_empty());
    // Then the tool's result, and the answer that uses it.
    let follow_up = answer(&mut events).await;
    assert!(
        follow_up.contains("The slow_lookup tool returned found it"),
        "{follow_up}"
    );
    assert!(called.elapsed() >= Duration::from_secs(2));
    let frames = client_frames(&recorder);
    assert_eq!(outputs(&frames).len(), 1);
    // The app's two requests and the tool layer's follow-up (VAD answered by itself).
    assert_eq!(response_creates(&frames), 3, "{frames:#?}");
}

/// Half a second of silence, then voice-like energy, then silence again: enough for the
/// simulator's VAD to hear a turn.
fn speech() -> Vec<i16> {
    let mut out = vec![0_i16; 12_000];
    out.extend((0..24_000).map(|n| {
        ((f64::from(n) / 24_000.0 * 2.0 * std::f64::consts::PI * 190.0).sin() * 9_000.0) as i16
    }));
    out.extend(vec![0_i16; 24_000]);
    out
}

async fn barge_in_during(tool: Tool) -> (Vec<Value>, Vec<Value>, Duration) {
    let (sim, recorder) = start(SimConfig::default().speed(50.0)).await;
    let config = Config::new(endpoint(&sim))
        .session(text_session())
        .tool(tool);
    let (mut tx, mut events) = connect(&sim, config).await.split();
    ask(&mut tx, "Do the slow lookup").await;
    assert_eq!(answer(&mut events).await, "call slow_lookup");
    let spoke = Instant::now();
    for chunk in speech().chunks(960) {
        tx.send(ClientEvent::audio_append(chunk)).await.unwrap();
    }
    until(&mut events, "input_audio_buffer.speech_started").await;
    // The user's turn is answered (server VAD), then whatever the tool layer does.
    let deadline = Instant::now() + WAIT;
    while outputs(&client_frames(&recorder)).is_empty() && Instant::now() < deadline {
        drain_for(&mut events, Duration::from_millis(50)).await;
    }
    let elapsed = spoke.elapsed();
    drain_for(&mut events, Duration::from_millis(500)).await;
    let frames = client_frames(&recorder);
    (outputs(&frames), frames, elapsed)
}

// On the paused clock: the 30 s tool never really waits, and the time to its cancel is
// virtual time, exact.
#[tokio::test(start_paused = true)]
async fn a_barge_in_cancels_a_cancellable_tool() {
    let (outputs, frames, elapsed) = barge_in_during(slow(Duration::from_secs(30))).await;
    assert_eq!(outputs.len(), 1, "{frames:#?}");
    assert!(
        outputs[0]["output"].as_str().unwrap().contains("cancelled"),
        "{outputs:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    // No follow-up for a cancelled call: the user's turn gets the answer.
    assert!(
        !frames.iter().any(|f| f["event_id"]
            .as_str()
            .is_some_and(|id| id.starts_with(reelthyme::FOLLOW_UP_EVENT_ID_PREFIX))),
        "{frames:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_tool_that_must_finish_outlives_a_barge_in() {
    let tool = slow(Duration::from_millis(700)).cancel_on_barge_in(false);
    let (outputs, frames, _) = barge_in_during(tool).await;
    assert_eq!(outputs.len(), 1, "{frames:#?}");
    assert_eq!(outputs[0]["output"], "found it");
}

#[tokio::test]
async fn with_a_sequencer_the_follow_up_goes_through_it() {
    let (sim, recorder) = start(SimConfig::default().speed(50.0)).await;
    let (sequencer, layer) = reelthyme::Sequencer::new();
    let cities = Arc::new(Mutex::new(Vec::new()));
    let config = Config::new(endpoint(&sim))
        .session(text_session())
        .tool(weather(&cities))
        .sequencer(sequencer);
    let (mut tx, mut events) = connect(&sim, config).await.with_layer(layer).split();
    ask(&mut tx, "What's the weather in Rome?").await;
    assert_eq!(answer(&mut events).await, "call get_weather");
    let follow_up = answer(&mut events).await;
    assert!(follow_up.contains("Rome: 18 °C, clear"), "{follow_up}");
    drain_for(&mut events, Duration::from_millis(300)).await;
    let frames = client_frames(&recorder);
    assert_eq!(outputs(&frames).len(), 1, "{frames:#?}");
    assert_eq!(response_creates(&frames), 2, "{frames:#?}");
    let last = frames
        .iter()
        .rfind(|f| f["type"] == "response.create")
        .unwrap();
    assert!(
        last["event_id"].as_str().unwrap().starts_with("rtseq_"),
        "{last}"
    );
}

#[tokio::test]
async fn a_slow_tool_has_the_model_say_it_is_at_work() {
    let (sim, recorder) = start(SimConfig::default().speed(50.0)).await;
    let cities = Arc::new(Mutex::new(Vec::new()));
    let config = Config::new(endpoint(&sim))
        .session(text_session())
        .tool(weather(&cities).in_progress("Say that you are looking at the sky."))
        .tool(
            slow(Duration::from_millis(800)).in_progress("Say in a few words that you are on it."),
        );
    let (mut tx, mut events) = connect(&sim, config).await.split();
    // A quick tool is done before its response is: nothing to announce.
    ask(&mut tx, "What's the weather in Oslo?").await;
    assert_eq!(answer(&mut events).await, "call get_weather");
    assert!(answer(&mut events).await.contains("Oslo: 18 °C"));
    ask(&mut tx, "Do the slow lookup").await;
    assert_eq!(answer(&mut events).await, "call slow_lookup");
    // The announcement: out of band, before the result.
    let said = until(&mut events, "response.done").await;
    let ServerEvent::ResponseDone(said) = said else {
        unreachable!()
    };
    assert_eq!(said.response.conversation_id, Some(None), "{said:?}");
    assert!(outputs(&client_frames(&recorder)).len() == 1);
    let follow_up = answer(&mut events).await;
    assert!(
        follow_up.contains("The slow_lookup tool returned found it"),
        "{follow_up}"
    );
    let frames = client_frames(&recorder);
    let announcements: Vec<&Value> = frames
        .iter()
        .filter(|f| f["type"] == "response.create" && f["response"]["conversation"] == "none")
        .collect();
    assert_eq!(announcements.len(), 1, "{frames:#?}");
    assert_eq!(
        announcements[0]["response"]["instructions"],
        "Say in a few words that you are on it."
    );
}

#[tokio::test]
async fn a_reconnect_sets_up_the_new_server_session_the_same_way() {
    let (sim, recorder) = start(SimConfig::default().speed(50.0)).await;
    let config = Config::new(endpoint(&sim)).instructions("Be brief.");
    let (tx, mut events) = connect(&sim, config).await.split();
    let first = tx.session().id.unwrap();
    tx.reconnect().await.unwrap();
    let ServerEvent::SessionCreated(created) = until(&mut events, "session.created").await else {
        unreachable!()
    };
    let ServerEvent::SessionCreated(created) = (if created.session.id.as_deref() == Some(&first) {
        until(&mut events, "session.created").await
    } else {
        ServerEvent::SessionCreated(created)
    }) else {
        unreachable!()
    };
    let second = created.session.id.unwrap();
    assert_ne!(first, second);
    // The new session's answer comes through the stream, and the conversation has it.
    let ServerEvent::SessionUpdated(updated) = until(&mut events, "session.updated").await else {
        unreachable!()
    };
    assert_eq!(updated.session.instructions.as_deref(), Some("Be brief."));
    assert_eq!(tx.session().id.as_deref(), Some(second.as_str()));
    assert_eq!(tx.session().instructions.as_deref(), Some("Be brief."));
    let firsts: Vec<Value> = [first, second]
        .iter()
        .map(|id| {
            recorder
                .frames()
                .into_iter()
                .find(|f| !f.from_server && &f.session_id == id)
                .unwrap()
                .json
        })
        .collect();
    for frame in &firsts {
        assert_eq!(frame["type"], "session.update", "{firsts:?}");
        assert_eq!(frame["session"]["instructions"], "Be brief.");
    }
}
