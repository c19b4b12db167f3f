//! A recorded multi-turn session with the simulator (`data/conversation.jsonl`, made by
//! `data/record_conversation.py`; see `data/README.md`) run through `state::Conversation`:
//! what the model holds at the end, and at each audio delta, is what the recording says.
//!
//! The expectations are read from the recording's raw JSON, not from the model: the
//! transcripts from the `.done` events, the durations from decoding the audio, the order
//! from the item events' `previous_item_id`.

use std::collections::HashMap;

use reelthyme_schema::state::{Applied, Conversation};
use reelthyme_schema::{AudioFormat, Base64Audio, ClientEvent, ItemStatus, ResponseStatus, Role};
use reelthyme_schema::{Item, ServerEvent};
use serde_json::Value;

struct Line {
    from_server: bool,
    event: Value,
}

fn recording() -> Vec<Line> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/conversation.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["reelthyme_recording"], 1);
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Line {
                from_server: v["direction"] == "server",
                event: v["event"].clone(),
            }
        })
        .collect()
}

fn of_type<'a>(lines: &'a [Line], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    lines
        .iter()
        .filter(move |l| l.event["type"] == kind)
        .map(|l| &l.event)
}

fn decoded(base64: &Value) -> u64 {
    Base64Audio::from_base64(base64.as_str().unwrap())
        .decoded_len()
        .unwrap() as u64
}

/// Plays the recording into a model, checking what must hold at every step; returns the
/// model and every `Applied` by event type.
fn replay(lines: &[Line]) -> (Conversation, HashMap<String, Vec<Applied>>) {
    let mut c = Conversation::new();
    let mut applied: HashMap<String, Vec<Applied>> = HashMap::new();
    for line in lines {
        if line.from_server {
            let event = ServerEvent::from_value(line.event.clone()).unwrap();
            let result = c.apply_server(&event);
            applied
                .entry(event.type_name().to_owned())
                .or_default()
                .push(result);
            if let ServerEvent::ResponseOutputAudioDelta(delta) = &event {
                // What the audio layer asks on every delta.
                assert_eq!(c.active_response().unwrap().id(), delta.response_id);
                assert!(matches!(
                    c.output_format(&delta.response_id),
                    Some(AudioFormat::Pcmu(_))
                ));
            }
        } else {
            c.apply_client(&ClientEvent::from_value(line.event.clone()).unwrap());
        }
        c.check_invariants().unwrap();
    }
    (c, applied)
}

#[test]
fn the_recording_is_the_multi_turn_session_it_claims_to_be() {
    let lines = recording();
    assert_eq!(of_type(&lines, "response.done").count(), 4);
    assert_eq!(
        of_type(&lines, "response.function_call_arguments.done").count(),
        1
    );
    assert_eq!(of_type(&lines, "input_audio_buffer.committed").count(), 1);
    assert_eq!(of_type(&lines, "conversation.item.truncated").count(), 1);
    assert_eq!(of_type(&lines, "conversation.item.retrieved").count(), 1);
    assert_eq!(of_type(&lines, "conversation.item.deleted").count(), 1);
    assert!(of_type(&lines, "response.output_audio.delta").count() > 20);
}

#[test]
fn items_come_out_in_the_recorded_order_with_the_deleted_one_gone() {
    let lines = recording();
    let (c, _) = replay(&lines);
    // The order the item events describe, by the plain rule: after the previous item,
    // else at the end.
    let mut expected: Vec<String> = Vec::new();
    for line in lines.iter().filter(|l| l.from_server) {
        let e = &line.event;
        match e["type"].as_str().unwrap() {
            "conversation.item.added" => {
                let id = e["item"]["id"].as_str().unwrap().to_owned();
                if expected.contains(&id) {
                    continue;
                }
                let at = e["previous_item_id"]
                    .as_str()
                    .and_then(|p| expected.iter().position(|x| x == p))
                    .map_or(expected.len(), |p| p + 1);
                expected.insert(at, id);
            }
            "conversation.item.deleted" => {
                let id = e["item_id"].as_str().unwrap();
                expected.retain(|x| x != id);
            }
            _ => {}
        }
    }
    assert_eq!(c.item_ids(), expected.as_slice());
    let shape: Vec<String> = c
        .items()
        .map(|i| match i.item() {
            Item::Message(m) => format!("{:?}", m.role),
            Item::FunctionCall(_) => "FunctionCall".to_owned(),
            Item::FunctionCallOutput(_) => "FunctionCallOutput".to_owned(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        shape,
        [
            "Assistant",
            "User",
            "FunctionCall",
            "FunctionCallOutput",
            "Assistant",
            "User",
            "Assistant"
        ]
    );
    let deleted = of_type(&lines, "conversation.item.deleted").next().unwrap();
    assert!(c.item(deleted["item_id"].as_str().unwrap()).is_none());
    // Every item is complete, as its `conversation.item.done` said.
    assert!(c.items().all(|i| i.is_done()));
}

#[test]
fn transcripts_are_the_recorded_ones() {
    let lines = recording();
    let (c, _) = replay(&lines);
    let mut checked = 0;
    for (kind, field) in [
        ("response.output_audio_transcript.done", "transcript"),
        ("response.output_text.done", "text"),
        (
            "conversation.item.input_audio_transcription.completed",
            "transcript",
        ),
    ] {
        for e in of_type(&lines, kind) {
            let item = e["item_id"].as_str().unwrap();
            let index = u32::try_from(e["content_index"].as_u64().unwrap()).unwrap();
            assert_eq!(
                c.transcript(item, index),
                e[field].as_str(),
                "{kind} of {item}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 4);
    let user = c
        .items()
        .filter(|i| i.role() == Some(&Role::User))
        .map(|i| i.text())
        .collect::<Vec<_>>();
    assert_eq!(
        user,
        [
            "What is the weather in Paris?",
            "What is the weather like in Paris today?"
        ]
    );
}

#[test]
fn responses_their_requests_usage_and_the_active_one_follow_the_recording() {
    let lines = recording();
    let (c, applied) = replay(&lines);
    let done: Vec<&Value> = of_type(&lines, "response.done").collect();
    let ids: Vec<&str> = c.responses().map(|r| r.id()).collect();
    let recorded: Vec<&str> = done
        .iter()
        .map(|d| d["response"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, recorded);
    for (state, done) in c.responses().zip(&done) {
        assert!(state.is_done());
        assert_eq!(state.response().status, Some(ResponseStatus::Completed));
        let usage = serde_json::to_value(state.usage().unwrap()).unwrap();
        assert_eq!(usage, done["response"]["usage"]);
        // The output, by id, as `response.done` lists it.
        let output: Vec<&str> = done["response"]["output"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        assert_eq!(state.output(), output.as_slice());
    }
    // The three `response.create`s, matched; the VAD response claimed none.
    let requests: Vec<Option<&str>> = c
        .responses()
        .map(|r| r.request().and_then(|q| q.event_id()))
        .collect();
    assert_eq!(requests, [Some("c_r1"), Some("c_r2"), Some("c_r3"), None]);
    assert!(c.active_response().is_none());
    assert_eq!(c.pending_responses().len(), 0);
    assert_eq!(c.pending_items().len(), 0);
    assert_eq!(applied["response.created"], [Applied::ResponseStarted; 4]);
    assert_eq!(applied["response.done"], [Applied::ResponseDone; 4]);
}

#[test]
fn the_function_call_is_ready_once_with_its_arguments() {
    let lines = recording();
    let (c, applied) = replay(&lines);
    let done = of_type(&lines, "response.function_call_arguments.done")
        .next()
        .unwrap();
    let call_id = done["call_id"].as_str().unwrap();
    let item = c.function_call(call_id).unwrap();
    let call = item.function_call().unwrap();
    assert_eq!(call.arguments(), done["arguments"].as_str().unwrap());
    assert_eq!(call.arguments(), r#"{"city":"Paris"}"#);
    assert_eq!(call.name(), Some("get_weather"));
    assert!(call.is_done());
    let ready = applied
        .values()
        .flatten()
        .filter(|a| **a == Applied::FunctionCallReady)
        .count();
    assert_eq!(ready, 1);
    let Item::FunctionCall(full) = item.item() else {
        panic!("{:?}", item.item())
    };
    assert_eq!(full.status, Some(ItemStatus::Completed));
    // The client's output for it, as the server echoed it.
    let output = c.function_call_output(call_id).unwrap();
    let Item::FunctionCallOutput(output) = output.item() else {
        panic!("{:?}", output.item())
    };
    assert_eq!(output.output, "18 °C, clear");
    assert!(c.function_call_output("call_unknown").is_none());
}

#[test]
fn audio_is_counted_at_the_recorded_format_and_truncation_is_kept() {
    let lines = recording();
    let (c, _) = replay(&lines);
    let mut bytes: HashMap<&str, u64> = HashMap::new();
    for e in of_type(&lines, "response.output_audio.delta") {
        *bytes.entry(e["item_id"].as_str().unwrap()).or_default() += decoded(&e["delta"]);
    }
    assert_eq!(bytes.len(), 2);
    for (item, bytes) in &bytes {
        let content = c.item(item).unwrap().content(0).unwrap();
        assert_eq!(content.audio_bytes(), *bytes);
        // µ-law: 8 bytes a millisecond.
        assert_eq!(content.audio_ms(), Some(bytes / 8));
        assert!(content.audio_done());
    }
    let truncated = of_type(&lines, "conversation.item.truncated")
        .next()
        .unwrap();
    let content = c
        .item(truncated["item_id"].as_str().unwrap())
        .unwrap()
        .content(0)
        .unwrap();
    assert_eq!(
        content.truncated_at_ms(),
        truncated["audio_end_ms"].as_u64()
    );
    assert_eq!(content.truncated_at_ms(), Some(400));

    // The retrieved user item: its audio counted in the session's input format, not kept.
    let retrieved = of_type(&lines, "conversation.item.retrieved")
        .next()
        .unwrap();
    let id = retrieved["item"]["id"].as_str().unwrap();
    let item = c.item(id).unwrap();
    assert!(item.is_retrieved());
    let audio = decoded(&retrieved["item"]["content"][0]["audio"]);
    assert_eq!(item.content(0).unwrap().audio_bytes(), audio);
    assert_eq!(item.content(0).unwrap().audio_ms(), Some(audio / 8));
    assert!(item.content(0).unwrap().audio_ms().unwrap() > 1000);
    let Item::Message(message) = item.item() else {
        panic!()
    };
    assert!(message.content.iter().all(|p| p.audio().is_none()));
}

#[test]
fn the_input_buffer_and_session_are_as_recorded() {
    let lines = recording();
    let (c, _) = replay(&lines);
    let appended: u64 = of_type(&lines, "input_audio_buffer.append")
        .map(|e| decoded(&e["audio"]))
        .sum();
    let input = c.input_buffer();
    assert_eq!(input.total_appended_ms(), appended / 8);
    let started = of_type(&lines, "input_audio_buffer.speech_started")
        .next()
        .unwrap();
    let stopped = of_type(&lines, "input_audio_buffer.speech_stopped")
        .next()
        .unwrap();
    assert_eq!(
        input.speech_started_ms(),
        started["audio_start_ms"].as_u64()
    );
    assert_eq!(input.speech_stopped_ms(), stopped["audio_end_ms"].as_u64());
    assert!(!input.is_speaking());
    let committed = of_type(&lines, "input_audio_buffer.committed")
        .next()
        .unwrap();
    assert_eq!(
        input.committed().collect::<Vec<_>>(),
        [committed["item_id"].as_str().unwrap()]
    );
    // The session is the last `session.updated`, whole.
    let last = of_type(&lines, "session.updated").last().unwrap();
    assert_eq!(
        serde_json::to_value(c.session().unwrap()).unwrap(),
        last["session"]
    );
    assert!(c.pending_session_update().is_none());
    assert_eq!(
        c.rate_limits().len(),
        of_type(&lines, "rate_limits.updated").last().unwrap()["rate_limits"]
            .as_array()
            .unwrap()
            .len()
    );
}
