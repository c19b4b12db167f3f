//! Fidelity to the spec's examples: a session that exercises most of the protocol, then,
//! for every GA server example whose type the simulator sent, each field of the example
//! (at any depth) must be in the simulator's events of that type too, with the same JSON
//! type. The examples are a floor: the simulator may send more (fields the real service
//! sends that no example shows, such as `obfuscation` on some deltas).

use std::collections::{BTreeMap, BTreeSet};

use reelthyme_sim::{Match, Reply, SimConfig};
use serde_json::{Value, json};

use crate::support::{Client, append, assert_all_valid, simulator, speech};

/// Example fields the simulator does not send, and why.
const NOT_SENT: &[(&str, &str, &str)] = &[(
    "conversation.item.retrieved",
    ".item.content[].format",
    "the example is a legacy `audio` part with `format: pcm16` (PROTOCOL.md §8); GA parts have no format",
)];

/// Every path in `value` with its JSON type (`number` for both integers and floats: the
/// service writes `speed: 1` where the SDK writes `1.0`).
fn fields(value: &Value, path: &str, out: &mut BTreeMap<String, &'static str>) {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    // A field seen as `null` once and typed elsewhere keeps the type.
    let entry = out.entry(path.to_owned()).or_insert(kind);
    if *entry == "null" {
        *entry = kind;
    }
    // A tool's parameters are the client's own JSON Schema, echoed: not protocol fields.
    if path.ends_with(".tools[].parameters") {
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                fields(value, &format!("{path}.{key}"), out);
            }
        }
        Value::Array(items) => {
            for item in items {
                fields(item, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

/// A session through text, audio with VAD and transcription, a tool call and its output,
/// retrieve, truncate, delete, cancel and an error.
async fn exercise(client: &mut Client) {
    client.until("session.created").await;
    client
        .send(
            json!({"type": "session.update", "session": {"type": "realtime",
            "tools": [{"type": "function", "name": "get_weather", "description": "The weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string",
                    "description": "A city"}}, "required": ["city"]}}],
            "audio": {"input": {"transcription": {"model": "whisper-1"}}}}}),
        )
        .await;
    client.until("session.updated").await;
    for chunk in speech(0.5, 2.0, 3.5).chunks(960) {
        client.send(append(chunk)).await;
    }
    let spoken = client.until("response.done").await;
    let spoken_id = spoken["response"]["output"][0]["id"].clone();
    client
        .send(
            json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "use the tool"}]}}),
        )
        .await;
    client.send(json!({"type": "response.create"})).await;
    let called = client.until("response.done").await;
    let call_id = called["response"]["output"][0]["call_id"].clone();
    client
        .send(
            json!({"type": "conversation.item.create", "item": {"type": "function_call_output",
            "call_id": call_id, "output": "sunny"}}),
        )
        .await;
    client
        .send(json!({"type": "response.create", "response": {"output_modalities": ["text"]}}))
        .await;
    let answered = client.until("response.done").await;
    let text_id = answered["response"]["output"][0]["id"].clone();
    client
        .send(json!({"type": "conversation.item.retrieve", "item_id": spoken_id}))
        .await;
    client.until("conversation.item.retrieved").await;
    client
        .send(
            json!({"type": "conversation.item.truncate", "item_id": spoken_id,
            "content_index": 0, "audio_end_ms": 10}),
        )
        .await;
    client.until("conversation.item.truncated").await;
    client
        .send(json!({"type": "conversation.item.delete", "item_id": text_id}))
        .await;
    client.until("conversation.item.deleted").await;
    client
        .send(json!({"type": "input_audio_buffer.clear"}))
        .await;
    client.until("input_audio_buffer.cleared").await;
    client.send(json!({"type": "response.create"})).await;
    client.until("response.output_audio.delta").await;
    client.send(json!({"type": "response.cancel"})).await;
    client.until("response.done").await;
    client.send(json!({"type": "nonsense"})).await;
    client.until("error").await;
}

#[tokio::test]
async fn every_field_of_the_specs_examples_is_sent_with_its_type() {
    let config = SimConfig::default()
        .speed(20.0)
        .transcripts(["Tell me about the sea"])
        .rule(
            Match::Contains("tool".into()),
            Reply::FunctionCall {
                name: "get_weather".into(),
                arguments: r#"{"city":"Paris"}"#.into(),
            },
        );
    let (sim, recorder) = simulator(config).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    exercise(&mut client).await;
    assert_all_valid(&recorder);

    let mut sent: BTreeMap<String, BTreeMap<String, &'static str>> = BTreeMap::new();
    for frame in recorder.frames().iter().filter(|f| f.from_server) {
        let kind = frame.json["type"].as_str().unwrap_or_default().to_owned();
        fields(&frame.json, "", sent.entry(kind).or_default());
    }
    let corpus = std::fs::read_to_string(reelthyme_testkit::spec_examples()).unwrap();
    let mut compared = BTreeSet::new();
    let mut gaps = Vec::new();
    for line in corpus.lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        if row["direction"] != "server" || row["version"] != "ga" {
            continue;
        }
        let kind = row["type"].as_str().unwrap();
        let Some(ours) = sent.get(kind) else { continue };
        compared.insert(kind.to_owned());
        let mut example = BTreeMap::new();
        fields(&row["example"], "", &mut example);
        for (path, their_type) in example {
            let excused = NOT_SENT.iter().any(|(k, p, _)| *k == kind && *p == path);
            match ours.get(&path) {
                None if excused => {}
                None => gaps.push(format!("{kind}: {path} is never sent")),
                Some(our_type)
                    if *our_type != their_type && their_type != "null" && *our_type != "null" =>
                {
                    gaps.push(format!(
                        "{kind}: {path} is {our_type}, the example's {their_type}"
                    ));
                }
                Some(_) => {}
            }
        }
    }
    assert!(gaps.is_empty(), "{gaps:#?}");
    // The comparison covered the events a session is made of.
    for kind in [
        "session.created",
        "session.updated",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.output_audio.delta",
        "response.function_call_arguments.done",
        "response.output_text.delta",
        "response.done",
        "conversation.item.retrieved",
        "conversation.item.truncated",
        "error",
        "rate_limits.updated",
    ] {
        assert!(compared.contains(kind), "{kind} was not compared");
    }
}

#[tokio::test]
async fn every_delta_carries_an_obfuscation_as_the_service_sends() {
    let config = SimConfig::default().speed(50.0).transcripts(["hello"]);
    let (sim, recorder) = simulator(config).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    exercise(&mut client).await;
    let deltas: Vec<Value> = recorder
        .frames()
        .into_iter()
        .filter(|f| {
            f.from_server
                && f.json["type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with(".delta"))
        })
        .map(|f| f.json)
        .collect();
    let kinds: BTreeSet<&str> = deltas.iter().filter_map(|d| d["type"].as_str()).collect();
    assert!(kinds.len() >= 4, "{kinds:?}");
    for delta in &deltas {
        let padding = delta["obfuscation"]
            .as_str()
            .unwrap_or_else(|| panic!("{delta}"));
        let total = delta["delta"].as_str().unwrap().len() + padding.len();
        assert!(!padding.is_empty() && total % 16 == 0, "{delta}");
    }
}

#[tokio::test]
async fn transcription_logprobs_come_when_included() {
    let config = SimConfig::default()
        .speed(50.0)
        .transcripts(["hello there", "hello again"]);
    let (sim, recorder) = simulator(config).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    for include in [
        json!(null),
        json!(["item.input_audio_transcription.logprobs"]),
    ] {
        client
            .send(
                json!({"type": "session.update", "session": {"type": "realtime", "include": include,
                "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"},
                    "turn_detection": {"type": "server_vad", "create_response": false}}}}}),
            )
            .await;
        client.until("session.updated").await;
        for chunk in speech(0.3, 1.0, 2.0).chunks(960) {
            client.send(append(chunk)).await;
        }
        let completed = client
            .until("conversation.item.input_audio_transcription.completed")
            .await;
        if include.is_null() {
            assert!(completed.get("logprobs").is_none(), "{completed}");
        } else {
            let logprobs = completed["logprobs"].as_array().unwrap();
            let tokens: String = logprobs
                .iter()
                .map(|l| l["token"].as_str().unwrap())
                .collect();
            assert_eq!(tokens, completed["transcript"].as_str().unwrap());
            assert!(
                logprobs.iter().all(
                    |l| l["logprob"].as_f64().unwrap() < 0.0 && l["bytes"].as_array().is_some()
                )
            );
        }
    }
    assert_all_valid(&recorder);
}
