//! The simulator, driven over a real WebSocket on loopback (and, in `in_process`, through
//! the transport seam without a socket).

mod in_process;
mod reliability;
mod scripting;
mod spec_fields;
mod support;

use reelthyme_sim::{BetaMode, Faults, Match, Reply, SimConfig};
use serde_json::{Value, json};
use support::{Client, Next, append, assert_all_valid, fast, simulator, speech};
use tokio_tungstenite::tungstenite::Message;

/// Collapses runs of the same type (deltas) to one entry.
fn shape(types: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in types {
        if out.last() != Some(t) {
            out.push(t.clone());
        }
    }
    out
}

#[tokio::test]
async fn a_text_turn_follows_the_documented_event_order() {
    let (sim, recorder) = simulator(fast()).await;
    let mut client = Client::connect(
        &sim.realtime_url("gpt-realtime"),
        &[("authorization", "Bearer sk-test")],
    )
    .await;
    let created = client.event().await;
    assert_eq!(created["type"], "session.created");
    assert!(
        created["session"]["id"]
            .as_str()
            .unwrap()
            .starts_with("sess_")
    );
    assert!(created["session"]["expires_at"].as_i64().unwrap() > 1_700_000_000);
    client.received.clear();
    client
        .send(
            json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "Hello there"}]}}),
        )
        .await;
    client
        .send(json!({"type": "response.create", "response": {"output_modalities": ["text"]}}))
        .await;
    let done = client.until("response.done").await;
    client.until("rate_limits.updated").await;
    assert_eq!(
        shape(&client.types()),
        [
            "conversation.item.added",
            "conversation.item.done",
            "response.created",
            "response.output_item.added",
            "conversation.item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "conversation.item.done",
            "response.output_item.done",
            "response.done",
            "rate_limits.updated",
        ]
    );
    assert_eq!(done["response"]["status"], "completed");
    assert_eq!(
        done["response"]["output"][0]["content"][0]["text"],
        "You said: Hello there"
    );
    assert!(done["response"]["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let deltas: String = client
        .received
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, "You said: Hello there");
    assert_all_valid(&recorder);
}

#[tokio::test]
async fn server_vad_finds_speech_within_a_frame_and_answers_with_audio() {
    let config = fast().transcripts(["What is the weather like in Paris today?"]);
    let (sim, recorder) = simulator(config).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    client.send(json!({"type": "session.update", "session": {"type": "realtime",
        "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"},
            "turn_detection": {"type": "server_vad", "prefix_padding_ms": 300, "silence_duration_ms": 500}}}}})).await;
    client.until("session.updated").await;
    let signal = speech(1.0, 2.5, 4.0);
    for chunk in signal.chunks(960) {
        client.send(append(chunk)).await; // 40 ms appends, unpaced
    }
    let started = client.until("input_audio_buffer.speech_started").await;
    let stopped = client.until("input_audio_buffer.speech_stopped").await;
    // Truth: speech from 1000 ms to 2500 ms; the API reports the start minus the prefix
    // padding and the end plus the silence duration.
    let start = started["audio_start_ms"].as_i64().unwrap();
    let end = stopped["audio_end_ms"].as_i64().unwrap();
    assert!((start - (1000 - 300)).abs() <= 20, "audio_start_ms {start}");
    assert!((end - (2500 + 500)).abs() <= 20, "audio_end_ms {end}");
    assert_eq!(started["item_id"], stopped["item_id"]);
    let committed = client.until("input_audio_buffer.committed").await;
    assert_eq!(committed["item_id"], started["item_id"]);
    let done = client.until("response.done").await;
    let types = shape(&client.types());
    assert!(types.contains(&"conversation.item.input_audio_transcription.completed".to_owned()));
    let audio: Vec<i16> = client
        .received
        .iter()
        .filter(|e| e["type"] == "response.output_audio.delta")
        .flat_map(|e| {
            reelthyme_schema::Base64Audio::from_base64(e["delta"].as_str().unwrap())
                .decode_pcm16()
                .unwrap()
        })
        .collect();
    let transcript = done["response"]["output"][0]["content"][0]["transcript"]
        .as_str()
        .unwrap();
    assert_eq!(
        transcript,
        "You said: What is the weather like in Paris today?"
    );
    // Synthesized speech: about 65 ms per character.
    assert!(
        audio.len() > transcript.len() * 24 * 60,
        "{} samples",
        audio.len()
    );
    // Audio and transcript deltas interleave.
    let first_audio = client
        .types()
        .iter()
        .position(|t| t == "response.output_audio.delta")
        .unwrap();
    let last_transcript = client
        .types()
        .iter()
        .rposition(|t| t == "response.output_audio_transcript.delta")
        .unwrap();
    assert!(first_audio < last_transcript);
    assert_all_valid(&recorder);
}

#[tokio::test]
async fn a_function_call_round_trip() {
    let (sim, recorder) = simulator(fast()).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    client.send(json!({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"],
        "tools": [{"type": "function", "name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}]}})).await;
    client.until("session.updated").await;
    client
        .send(reelthyme_schema::ClientEvent::user_text("What's the weather in Paris?").to_value())
        .await;
    client.send(json!({"type": "response.create"})).await;
    let call = client.until("response.function_call_arguments.done").await;
    assert_eq!(call["name"], "get_weather");
    let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"location": "Paris"}));
    client.until("response.done").await;
    let call_id = call["call_id"].as_str().unwrap();
    client
        .send(
            reelthyme_schema::ClientEvent::function_call_output(call_id, "{\"temp_c\":18}")
                .to_value(),
        )
        .await;
    client.send(json!({"type": "response.create"})).await;
    let done = client.until("response.done").await;
    assert_eq!(
        done["response"]["output"][0]["content"][0]["text"],
        "The get_weather tool returned {\"temp_c\":18}."
    );
    assert_all_valid(&recorder);
}

async fn expect_fatal(
    url: &str,
    headers: &[(&str, &str)],
    code: Option<&str>,
    close: u16,
) -> Value {
    let mut client = Client::connect(url, headers).await;
    let error = client.event().await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["error"]["code"].as_str(), code);
    match client.next().await {
        Next::Closed(Some((c, reason))) => {
            assert_eq!(c, close);
            let expected = code.map_or("invalid_request_error".to_owned(), |c| {
                format!("invalid_request_error.{c}")
            });
            assert_eq!(reason, expected);
        }
        other => panic!("expected a close, got {other:?}"),
    }
    error
}

#[tokio::test]
async fn handshake_failures_arrive_after_the_101_as_the_real_server_sends_them() {
    let (sim, recorder) = simulator(fast().api_key("sk-right")).await;
    let url = sim.realtime_url("gpt-realtime");
    expect_fatal(
        &url,
        &[("authorization", "Bearer sk-wrong")],
        Some("invalid_api_key"),
        3000,
    )
    .await;
    let missing = expect_fatal(&url, &[], None, 3000).await;
    assert_eq!(
        missing["error"]["message"],
        "Missing bearer or basic authentication in header"
    );
    let auth = [("authorization", "Bearer sk-right")];
    expect_fatal(
        &format!("{}/v1/realtime", sim.url()),
        &auth,
        Some("missing_model"),
        4000,
    )
    .await;
    expect_fatal(
        &sim.realtime_url("gpt-4-turbo"),
        &auth,
        Some("invalid_model"),
        4000,
    )
    .await;
    let beta = [
        ("authorization", "Bearer sk-right"),
        ("openai-beta", "realtime=v1"),
    ];
    expect_fatal(&url, &beta, Some("beta_api_shape_disabled"), 4000).await;
    // The right key through Azure's header works too.
    let mut client = Client::connect(
        &format!("{}/openai/v1/realtime?model=gpt-realtime", sim.url()),
        &[("api-key", "sk-right")],
    )
    .await;
    assert_eq!(client.event().await["type"], "session.created");
    let seen = sim.connections();
    assert_eq!(seen.last().unwrap().path, "/openai/v1/realtime");
    assert!(
        seen.iter().all(|c| c.header("authorization").is_none()),
        "credentials are not kept"
    );
    assert_all_valid(&recorder);
}

#[tokio::test]
async fn unknown_paths_are_refused_before_the_upgrade() {
    let (sim, _) = simulator(fast()).await;
    let result =
        tokio_tungstenite::connect_async(format!("{}/v1/chat?model=gpt-realtime", sim.url())).await;
    match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 404)
        }
        other => panic!("expected HTTP 404, got {other:?}"),
    }
}

#[tokio::test]
async fn the_beta_dialect_is_spoken_when_configured() {
    let (sim, recorder) = simulator(fast().beta(BetaMode::Speak)).await;
    let mut client = Client::connect(
        &sim.realtime_url("gpt-4o-realtime-preview"),
        &[("openai-beta", "realtime=v1")],
    )
    .await;
    let created = client.event().await;
    assert_eq!(created["type"], "session.created");
    assert_eq!(created["session"]["modalities"], json!(["text", "audio"]));
    assert!(created["session"].get("type").is_none());
    client
        .send(
            json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "hi"}]}}),
        )
        .await;
    client
        .send(json!({"type": "response.create", "response": {"modalities": ["text"]}}))
        .await;
    client.until("response.done").await;
    let types = client.types();
    assert!(
        types.contains(&"response.text.delta".to_owned()),
        "{types:?}"
    );
    assert!(types.contains(&"conversation.item.created".to_owned()));
    assert!(
        !types
            .iter()
            .any(|t| t == "conversation.item.done" || t == "response.output_text.delta")
    );
    // Every beta frame normalises into valid GA.
    for frame in recorder.frames().iter().filter(|f| f.from_server) {
        let ga = reelthyme_schema::beta::server_to_ga(frame.json.clone());
        assert!(
            reelthyme_schema::validate_server_value(&ga).is_valid(),
            "{}",
            frame.json
        );
    }
}

#[tokio::test]
async fn session_update_is_partial_and_a_failing_update_is_discarded_whole() {
    let (sim, recorder) = simulator(fast()).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    client.send(json!({"type": "session.update", "session": {"type": "realtime", "instructions": "Be brief.",
        "audio": {"output": {"voice": "alloy"}}}})).await;
    let updated = client.until("session.updated").await;
    assert_eq!(updated["session"]["instructions"], "Be brief.");
    assert_eq!(updated["session"]["audio"]["output"]["voice"], "alloy");
    assert_eq!(
        updated["session"]["audio"]["input"]["format"]["rate"], 24000,
        "untouched fields stay"
    );

    client
        .send(
            json!({"type": "session.update", "event_id": "evt_bad", "session": {"type": "realtime",
        "instructions": "ignored", "bogus_field": 1}}),
        )
        .await;
    let error = client.until("error").await;
    assert_eq!(error["error"]["code"], "unknown_parameter");
    assert_eq!(error["error"]["param"], "session.bogus_field");
    assert_eq!(error["error"]["event_id"], "evt_bad");

    client
        .send(
            json!({"type": "session.update", "session": {"type": "realtime",
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}}),
        )
        .await;
    let error = client.until("error").await;
    assert_eq!(error["error"]["code"], "integer_below_min_value");
    assert_eq!(error["error"]["param"], "session.audio.input.format.rate");

    client
        .send(json!({"type": "session.update", "session": {"instructions": "no type"}}))
        .await;
    let error = client.until("error").await;
    assert_eq!(error["error"]["code"], "missing_required_parameter");
    assert_eq!(error["error"]["param"], "session.type");

    client
        .send(json!({"type": "session.update", "session": {"type": "realtime", "tools": []}}))
        .await;
    let updated = client.until("session.updated").await;
    assert_eq!(
        updated["session"]["instructions"], "Be brief.",
        "failed updates changed nothing"
    );
    assert_all_valid(&recorder);
}

#[tokio::test]
async fn the_voice_is_locked_once_audio_was_produced() {
    let (sim, recorder) = simulator(fast()).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    client
        .send(reelthyme_schema::ClientEvent::user_text("Hi").to_value())
        .await;
    client.send(json!({"type": "response.create"})).await;
    client.until("response.done").await;
    client.send(json!({"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"voice": "ash"}}}})).await;
    let error = client.until("error").await;
    assert_eq!(error["error"]["param"], "session.audio.output.voice");
    assert_all_valid(&recorder);
}

#[tokio::test]
async fn conversation_items_are_created_retrieved_deleted_and_truncated() {
    let (sim, recorder) = simulator(fast()).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    client.send(json!({"type": "conversation.item.create", "item": {"id": "item_a", "type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "first"}]}})).await;
    let added = client.until("conversation.item.added").await;
    assert_eq!(added["previous_item_id"], Value::Null);
    client.send(json!({"type": "conversation.item.create", "previous_item_id": "root", "item": {"id": "item_b",
        "type": "message", "role": "system", "content": [{"type": "input_text", "text": "zeroth"}]}})).await;
    let added = client.until("conversation.item.added").await;
    assert_eq!(added["previous_item_id"], Value::Null);
    client.send(json!({"type": "conversation.item.create", "previous_item_id": "item_nope", "item": {"type": "message",
        "role": "user", "content": [{"type": "input_text", "text": "x"}]}})).await;
    assert_eq!(
        client.until("error").await["error"]["param"],
        "previous_item_id"
    );

    client
        .send(json!({"type": "conversation.item.retrieve", "item_id": "item_nope"}))
        .await;
    assert_eq!(
        client.until("error").await["error"]["code"],
        "item_retrieve_invalid_item_id"
    );
    client
        .send(json!({"type": "conversation.item.delete", "item_id": "item_b"}))
        .await;
    assert_eq!(
        client.until("conversation.item.deleted").await["item_id"],
        "item_b"
    );

    // An assistant audio item, then truncation: beyond its audio is an error; within, the
    // audio and the transcript are cut.
    client.send(json!({"type": "response.create"})).await;
    let done = client.until("response.done").await;
    let item_id = done["response"]["output"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    client.send(json!({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 600000})).await;
    let error = client.until("error").await;
    assert_eq!(error["error"]["param"], "audio_end_ms");
    client.send(json!({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 500})).await;
    assert_eq!(
        client.until("conversation.item.truncated").await["audio_end_ms"],
        500
    );
    client
        .send(json!({"type": "conversation.item.retrieve", "item_id": item_id}))
        .await;
    let retrieved = client.until("conversation.item.retrieved").await;
    let part = &retrieved["item"]["content"][0];
    assert_eq!(part["transcript"], "");
    let audio = reelthyme_schema::Base64Audio::from_base64(part["audio"].as_str().unwrap())
        .decode_pcm16()
        .unwrap();
    assert_eq!(audio.len(), 12_000, "500 ms at 24 kHz");
    client.send(json!({"type": "conversation.item.truncate", "item_id": "item_a", "content_index": 0, "audio_end_ms": 0})).await;
    assert_eq!(
        client.until("error").await["error"]["code"],
        "invalid_value"
    );
    assert_all_valid(&recorder);
}

#[tokio::test]
async fn the_input_buffer_commits_clears_and_refuses_short_commits() {
    let (sim, recorder) = simulator(fast()).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    client.send(json!({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"turn_detection": null}}}})).await;
    client.until("session.updated").await;
    client.send(append(&[0; 1_200])).await; // 50 ms
    client
        .send(json!({"type": "input_audio_buffer.commit"}))
        .await;
    let error = client.until("error").await;
    assert_eq!(error["error"]["code"], "input_audio_buffer_commit_empty");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("buffer only has 50.00ms of audio")
    );
    client.send(append(&speech(0.0, 0.5, 0.5))).await;
    client
        .send(json!({"type": "input_audio_buffer.commit"}))
        .await;
    let committed = client.until("input_audio_buffer.committed").await;
    let item = client.until("conversation.item.added").await;
    assert_eq!(item["item"]["id"], committed["item_id"]);
    assert_eq!(item["item"]["content"][0]["type"], "input_audio");
    client.send(append(&[0; 4_800])).await;
    client
        .send(json!({"type": "input_audio_buffer.clear"}))
        .await;
    client.until("input_audio_buffer.cleared").await;
    client
        .send(json!({"type": "input_audio_buffer.commit"}))
        .await;
    assert_eq!(
        client.until("error").await["error"]["code"],
        "input_audio_buffer_commit_empty"
    );
    client
        .send(json!({"type": "input_audio_buffer.append", "audio": "not base64!"}))
        .await;
    assert_eq!(client.until("error").await["error"]["param"], "audio");
    assert_all_valid(&recorder);
}

#[tokio::test]
async fn one_response_at_a_time_and_cancellation() {
    let (sim, recorder) = simulator(SimConfig::default().speed(1.0)).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    client
        .send(
            reelthyme_schema::ClientEvent::user_text("Tell me a long story about the sea")
                .to_value(),
        )
        .await;
    client.send(json!({"type": "response.create"})).await;
    client.until("response.output_audio.delta").await;
    client.send(json!({"type": "response.create"})).await;
    assert_eq!(
        client.until("error").await["error"]["code"],
        "conversation_already_has_active_response"
    );
    // Out-of-band responses may run alongside.
    client.send(json!({"type": "response.create", "response": {"conversation": "none", "output_modalities": ["text"],
        "metadata": {"purpose": "summary"}}})).await;
    let oob = loop {
        let done = client.until("response.done").await;
        if done["response"]["metadata"]["purpose"] == "summary" {
            break done;
        }
    };
    assert_eq!(oob["response"]["conversation_id"], Value::Null);
    client.send(json!({"type": "response.cancel"})).await;
    let cancelled = client.until("response.done").await;
    assert_eq!(cancelled["response"]["status"], "cancelled");
    assert_eq!(
        cancelled["response"]["status_details"]["reason"],
        "client_cancelled"
    );
    assert_eq!(cancelled["response"]["output"][0]["status"], "incomplete");
    client
        .send(json!({"type": "response.cancel", "event_id": "evt_late"}))
        .await;
    let error = client.until("error").await;
    assert_eq!(error["error"]["code"], "response_cancel_not_active");
    assert_eq!(error["error"]["event_id"], "evt_late");
    assert_all_valid(&recorder);
}

#[tokio::test]
async fn speech_interrupts_a_running_response() {
    let (sim, recorder) = simulator(SimConfig::default().speed(1.0)).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    client
        .send(
            reelthyme_schema::ClientEvent::user_text("Tell me a long story about the sea")
                .to_value(),
        )
        .await;
    client.send(json!({"type": "response.create"})).await;
    client.until("response.output_audio.delta").await;
    for chunk in speech(0.2, 1.0, 1.0).chunks(960) {
        client.send(append(chunk)).await;
    }
    client.until("input_audio_buffer.speech_started").await;
    let done = client.until("response.done").await;
    assert_eq!(done["response"]["status"], "cancelled");
    assert_eq!(
        done["response"]["status_details"]["reason"],
        "turn_detected"
    );
    assert_all_valid(&recorder);
}

#[tokio::test]
async fn malformed_input_gets_the_documented_errors() {
    let (sim, recorder) = simulator(fast()).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    client.send_raw(Message::binary(vec![1, 2, 3])).await;
    assert_eq!(
        client.until("error").await["error"]["code"],
        "invalid_event"
    );
    client.send_raw(Message::text("{nope")).await;
    assert_eq!(client.until("error").await["error"]["code"], "invalid_json");
    client.send(json!({"event_id": "e1"})).await;
    assert_eq!(
        client.until("error").await["error"]["message"],
        "The 'type' field is missing."
    );
    client
        .send(json!({"type": "transcription_session.update", "session": {}}))
        .await;
    let error = client.until("error").await;
    assert_eq!(
        (
            error["error"]["code"].as_str(),
            error["error"]["param"].as_str()
        ),
        (Some("invalid_value"), Some("type"))
    );
    // The session goes on.
    client
        .send(json!({"type": "input_audio_buffer.clear"}))
        .await;
    client.until("input_audio_buffer.cleared").await;
    assert_all_valid(&recorder);
}

#[tokio::test]
async fn scripted_replies_and_failures() {
    let config = fast()
        .rule(
            Match::Contains("joke".into()),
            Reply::Text("Why did the crab never share? Because he was shellfish.".into()),
        )
        .rule(
            Match::Contains("break".into()),
            Reply::Fail {
                code: "server_error".into(),
                message: "boom".into(),
            },
        );
    let (sim, recorder) = simulator(config).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    client
        .send(reelthyme_schema::ClientEvent::user_text("Tell me a JOKE").to_value())
        .await;
    client
        .send(json!({"type": "response.create", "response": {"output_modalities": ["text"]}}))
        .await;
    let done = client.until("response.done").await;
    assert!(
        done["response"]["output"][0]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("shellfish")
    );
    client
        .send(reelthyme_schema::ClientEvent::user_text("please break").to_value())
        .await;
    client.send(json!({"type": "response.create"})).await;
    let done = client.until("response.done").await;
    assert_eq!(done["response"]["status"], "failed");
    assert_eq!(
        done["response"]["status_details"]["error"]["message"],
        "boom"
    );
    assert_all_valid(&recorder);
}

#[tokio::test]
async fn faults_close_stall_and_corrupt_on_request() {
    let faults = Faults {
        close_after: Some((1, 1011, "injected".into())),
        ..Faults::default()
    };
    let (sim, _) = simulator(fast().faults(faults)).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    client
        .send(json!({"type": "input_audio_buffer.clear"}))
        .await;
    assert_eq!(
        client.next().await,
        Next::Closed(Some((1011, "injected".into())))
    );

    let faults = Faults {
        malformed_after: Some(0),
        binary_after: Some(0),
        ..Faults::default()
    };
    let (sim, _) = simulator(fast().faults(faults)).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    assert_eq!(
        client.next().await,
        Next::Event(Value::String("{\"type\": \"response.done\", oops".into()))
    );
    assert_eq!(client.next().await, Next::Event(json!({"binary": 8})));
    assert_eq!(client.event().await["type"], "session.created");
}

#[tokio::test]
async fn sessions_expire_with_session_expired() {
    let (sim, _) = simulator(fast().session_duration(std::time::Duration::from_millis(300))).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    let error = client.until("error").await;
    assert_eq!(error["error"]["code"], "session_expired");
    assert!(matches!(client.next().await, Next::Closed(Some((1001, _)))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sessions_are_isolated() {
    let (sim, recorder) = simulator(fast()).await;
    let url = sim.realtime_url("gpt-realtime");
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut client = Client::connect(&url, &[]).await;
                let created = client.until("session.created").await;
                client.send(reelthyme_schema::ClientEvent::user_text(format!("number {n}")).to_value()).await;
                client.send(json!({"type": "response.create", "response": {"output_modalities": ["text"]}})).await;
                let done = client.until("response.done").await;
                assert_eq!(done["response"]["output"][0]["content"][0]["text"], format!("You said: number {n}"));
                created["session"]["id"].as_str().unwrap().to_owned()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 16);
    assert_all_valid(&recorder);
    sim.shutdown().await;
}

#[tokio::test]
async fn transcription_sessions_transcribe_and_refuse_responses() {
    let (sim, recorder) = simulator(fast().transcripts(["hello world"])).await;
    let mut client = Client::connect(
        &format!("{}/v1/realtime?intent=transcription", sim.url()),
        &[],
    )
    .await;
    let created = client.until("session.created").await;
    assert_eq!(created["session"]["type"], "transcription");
    for chunk in speech(0.3, 1.2, 2.5).chunks(2_400) {
        client.send(append(chunk)).await;
    }
    let completed = client
        .until("conversation.item.input_audio_transcription.completed")
        .await;
    assert_eq!(completed["transcript"], "hello world");
    client.send(json!({"type": "response.create"})).await;
    assert_eq!(client.until("error").await["type"], "error");
    assert_all_valid(&recorder);
}

#[tokio::test]
async fn browsers_authenticate_with_subprotocols_and_get_realtime_selected() {
    let (sim, _) = simulator(fast().api_key("ek_browser")).await;
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            sim.realtime_url("gpt-realtime"),
        )
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "realtime, openai-insecure-api-key.ek_browser, openai-beta.realtime-v1x"
            .parse()
            .unwrap(),
    );
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "realtime");
    use futures_util::StreamExt;
    let first = ws.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("session.created"));
    let info = sim.connections().pop().unwrap();
    assert_eq!(info.auth, reelthyme_sim::AuthKind::Subprotocol);
    assert!(info.authorized);
}

#[tokio::test]
async fn azure_legacy_urls_speak_beta_and_sideband_urls_are_seen() {
    let (sim, _) = simulator(fast()).await;
    let legacy = format!(
        "{}/openai/realtime?api-version=2024-10-01-preview&deployment=my-gpt&api-key=k1",
        sim.url()
    );
    let mut client = Client::connect(&legacy, &[]).await;
    let created = client.event().await;
    assert_eq!(created["session"]["model"], "my-gpt");
    assert!(
        created["session"].get("voice").is_some(),
        "beta shape: {created}"
    );
    let info = sim.connections().pop().unwrap();
    assert_eq!(
        (info.auth, info.query_param("api-key")),
        (reelthyme_sim::AuthKind::Query, Some("***"))
    );

    let call = sim.open_call();
    let mut client =
        Client::connect(&format!("{}/v1/realtime?call_id={call}", sim.url()), &[]).await;
    assert_eq!(client.event().await["type"], "session.created");
    assert_eq!(
        sim.connections().pop().unwrap().query_param("call_id"),
        Some(call.as_str())
    );
    let mut unknown =
        Client::connect(&format!("{}/v1/realtime?call_id=rtc_nope", sim.url()), &[]).await;
    assert_eq!(unknown.event().await["error"]["param"], "call_id");
    assert!(matches!(
        unknown.next().await,
        Next::Closed(Some((4000, _)))
    ));
    let missing =
        tokio_tungstenite::connect_async(format!("{}/openai/realtime?deployment=x", sim.url()))
            .await;
    assert!(
        matches!(missing, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 400)
    );
}

#[tokio::test]
async fn a_stalled_server_stops_answering_even_pings() {
    let (sim, _) = simulator(fast().faults(Faults {
        stall_after: Some(1),
        ..Faults::default()
    }))
    .await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    client
        .send(json!({"type": "input_audio_buffer.clear"}))
        .await;
    client.send_raw(Message::Ping(vec![1].into())).await;
    let silent = tokio::time::timeout(std::time::Duration::from_millis(500), client.next()).await;
    assert!(silent.is_err(), "the stalled server answered: {silent:?}");
}

#[tokio::test]
async fn oversized_appends_are_refused_with_an_error_event() {
    let (sim, recorder) = simulator(fast()).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    // Just over 15 MiB of base64, within the message limit: an `error` event, and the
    // session goes on (larger messages are closed with 1009, see `reliability`).
    let samples = vec![0_i16; reelthyme_schema::MAX_APPEND_BYTES / 4 * 3 / 2 + 3];
    client.send(append(&samples)).await;
    let error = client.until("error").await;
    assert_eq!(error["error"]["param"], "audio");
    client
        .send(json!({"type": "input_audio_buffer.clear"}))
        .await;
    client.until("input_audio_buffer.cleared").await;
    assert_all_valid(&recorder);
}

#[tokio::test]
async fn response_input_overrides_the_conversation() {
    let (sim, recorder) = simulator(fast()).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    client.send(json!({"type": "conversation.item.create", "item": {"id": "item_ref", "type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "referenced text"}]}})).await;
    client
        .send(
            json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "latest text"}]}}),
        )
        .await;
    client.send(json!({"type": "response.create", "response": {"conversation": "none", "output_modalities": ["text"],
        "input": [{"type": "item_reference", "id": "item_ref"}]}})).await;
    let done = client.until("response.done").await;
    assert_eq!(
        done["response"]["output"][0]["content"][0]["text"],
        "You said: referenced text"
    );
    assert_all_valid(&recorder);
}

#[tokio::test]
async fn g711_sessions_take_and_give_8_khz_audio() {
    let (sim, recorder) = simulator(fast()).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    client
        .send(
            json!({"type": "session.update", "session": {"type": "realtime", "audio": {
        "input": {"format": {"type": "audio/pcmu"}, "turn_detection": null},
        "output": {"format": {"type": "audio/pcma"}}}}}),
        )
        .await;
    client.until("session.updated").await;
    let ulaw: Vec<u8> = speech(0.0, 0.3, 0.3)
        .iter()
        .step_by(3)
        .map(|&s| reelthyme_schema::g711::ulaw_encode(s))
        .collect();
    client.send(json!({"type": "input_audio_buffer.append", "audio": reelthyme_schema::Base64Audio::from_bytes(&ulaw).as_str()})).await;
    client
        .send(json!({"type": "input_audio_buffer.commit"}))
        .await;
    client.until("input_audio_buffer.committed").await;
    client.send(json!({"type": "response.create"})).await;
    let delta = client.until("response.output_audio.delta").await;
    let bytes = reelthyme_schema::Base64Audio::from_base64(delta["delta"].as_str().unwrap())
        .decode_bytes()
        .unwrap();
    assert_eq!(bytes.len(), 800, "100 ms of 8 kHz A-law");
    let done = client.until("response.done").await;
    assert_eq!(
        done["response"]["audio"]["output"]["format"]["type"],
        "audio/pcma"
    );
    assert_all_valid(&recorder);
}
