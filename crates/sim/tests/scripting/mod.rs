//! Scripted sessions: each kind of answer a script (`SimConfig::from_script`) gives, over a
//! real WebSocket, with every event the simulator sent checked against the schemas.

use std::time::{Duration, Instant};

use reelthyme_sim::SimConfig;
use serde_json::{Value, json};

use crate::support::{Client, append, assert_all_valid, simulator, speech};

const WEATHER_TOOL: &str = r#"{"type": "function", "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}"#;

fn script(text: &str) -> SimConfig {
    SimConfig::from_script(text).unwrap().speed(50.0)
}

/// A session with text output and the weather tool.
async fn text_session(client: &mut Client) {
    client.until("session.created").await;
    let tool: Value = serde_json::from_str(WEATHER_TOOL).unwrap();
    client
        .send(
            json!({"type": "session.update", "session": {"type": "realtime",
            "output_modalities": ["text"], "tools": [tool]}}),
        )
        .await;
    client.until("session.updated").await;
}

async fn say(client: &mut Client, text: &str) {
    client
        .send(reelthyme_schema::ClientEvent::user_text(text).to_value())
        .await;
    client.send(json!({"type": "response.create"})).await;
}

async fn tool_output(client: &mut Client, call_id: &str, output: &str) {
    client
        .send(reelthyme_schema::ClientEvent::function_call_output(call_id, output).to_value())
        .await;
    client.send(json!({"type": "response.create"})).await;
}

#[tokio::test]
async fn a_scripted_call_then_a_scripted_answer_to_its_output() {
    let config = script(
        r#"
[[rule]]
after_tool = "get_time"
text = "Not this one: the call was get_weather."

[[rule]]
after_tool = "get_weather"
text = "Sunny and 18 degrees in Lyon."

[[rule]]
contains = "WEATHER"
function_call = { name = "get_weather", arguments = { city = "Lyon", days = 2 } }
"#,
    );
    let (sim, recorder) = simulator(config).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    text_session(&mut client).await;
    // Without the script the simulator would guess `Paris` from the text.
    say(&mut client, "What's the weather in Paris?").await;
    let call = client.until("response.function_call_arguments.done").await;
    assert_eq!(call["name"], "get_weather");
    let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city": "Lyon", "days": 2}));
    let done = client.until("response.done").await;
    assert_eq!(done["response"]["status"], "completed");
    assert_eq!(done["response"]["output"][0]["type"], "function_call");

    let call_id = call["call_id"].as_str().unwrap().to_owned();
    tool_output(&mut client, &call_id, r#"{"temp_c": 18}"#).await;
    let done = client.until("response.done").await;
    assert_eq!(
        done["response"]["output"][0]["content"][0]["text"],
        "Sunny and 18 degrees in Lyon."
    );
    assert_all_valid(&recorder);
}

#[tokio::test]
async fn a_tool_the_script_does_not_name_gets_the_default_answer() {
    let config = script(
        r#"
[[rule]]
contains = "weather"
function_call = { name = "get_weather", arguments = '{"city":"Oslo"}' }

[[rule]]
after_tool = "get_time"
text = "It is noon."
"#,
    );
    let (sim, recorder) = simulator(config).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    text_session(&mut client).await;
    say(&mut client, "weather please").await;
    let call = client.until("response.function_call_arguments.done").await;
    assert_eq!(call["arguments"], r#"{"city":"Oslo"}"#);
    client.until("response.done").await;
    let call_id = call["call_id"].as_str().unwrap().to_owned();
    tool_output(&mut client, &call_id, "rain").await;
    let done = client.until("response.done").await;
    assert_eq!(
        done["response"]["output"][0]["content"][0]["text"],
        "The get_weather tool returned rain."
    );
    assert_all_valid(&recorder);
}

#[tokio::test]
async fn a_scripted_failure_fails_the_response_with_its_error() {
    let config = script(
        r#"
[[rule]]
contains = "break"
fail = { code = "rate_limit_exceeded", message = "Slow down." }

[[rule]]
contains = "crash"
fail = {}
"#,
    );
    let (sim, recorder) = simulator(config).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    text_session(&mut client).await;
    say(&mut client, "please break").await;
    let done = client.until("response.done").await;
    assert_eq!(done["response"]["status"], "failed");
    let error = &done["response"]["status_details"]["error"];
    assert_eq!(error["code"], "rate_limit_exceeded");
    assert_eq!(error["message"], "Slow down.");
    assert_eq!(done["response"]["output"], json!([]));
    say(&mut client, "crash now").await;
    let done = client.until("response.done").await;
    assert_eq!(done["response"]["status"], "failed");
    assert_eq!(
        done["response"]["status_details"]["error"]["code"],
        "server_error"
    );
    // The session goes on after a failed response.
    say(&mut client, "hello").await;
    let done = client.until("response.done").await;
    assert_eq!(done["response"]["status"], "completed");
    assert_all_valid(&recorder);
}

#[tokio::test]
async fn a_scripted_echo_speaks_the_users_audio_back() {
    let config = script(
        r#"
transcripts = ["testing one two"]

[[rule]]
contains = "testing"
echo = "Testing, one, two."
"#,
    );
    let (sim, recorder) = simulator(config).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    client
        .send(
            json!({"type": "session.update", "session": {"type": "realtime",
            "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 300}}}}}),
        )
        .await;
    client.until("session.updated").await;
    let signal = speech(0.2, 0.8, 1.6);
    for chunk in signal.chunks(2_400) {
        client.send(append(chunk)).await;
    }
    let done = client.until("response.done").await;
    assert_eq!(
        done["response"]["output"][0]["content"][0]["transcript"],
        "Testing, one, two."
    );
    let spoken: Vec<i16> = client
        .received
        .iter()
        .filter(|e| e["type"] == "response.output_audio.delta")
        .flat_map(|e| {
            reelthyme_schema::Base64Audio::from_base64(e["delta"].as_str().unwrap())
                .decode_pcm16()
                .unwrap()
        })
        .collect();
    // The echo is the user's own audio, sample for sample (synthesized speech is not).
    let voiced = |samples: &[i16]| samples.iter().position(|&s| s != 0).unwrap();
    let (k, j) = (voiced(&spoken), voiced(&signal));
    assert!(spoken.len() >= k + 4_800, "{} samples", spoken.len());
    assert_eq!(spoken[k..k + 4_800], signal[j..j + 4_800]);
    assert_all_valid(&recorder);
}

#[tokio::test]
async fn a_rule_delay_holds_the_first_delta_back() {
    let config = script(
        r#"
[[rule]]
contains = "slow"
text = "Thinking took a while."
delay_ms = 400

[[rule]]
text = "Quick."
"#,
    );
    let (sim, recorder) = simulator(config).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    text_session(&mut client).await;

    // Times from `response.created` to the first text delta, and to `response.done`.
    async fn first_delta_after_created(client: &mut Client, text: &str) -> (Duration, Value) {
        say(client, text).await;
        client.until("response.created").await;
        let created = Instant::now();
        client.until("response.output_text.delta").await;
        let waited = created.elapsed();
        (waited, client.until("response.done").await)
    }

    let (waited, done) = first_delta_after_created(&mut client, "a slow one").await;
    assert!(waited >= Duration::from_millis(380), "{waited:?}");
    assert_eq!(
        done["response"]["output"][0]["content"][0]["text"],
        "Thinking took a while."
    );
    let (waited, done) = first_delta_after_created(&mut client, "again").await;
    assert!(waited < Duration::from_millis(300), "{waited:?}");
    assert_eq!(
        done["response"]["output"][0]["content"][0]["text"],
        "Quick."
    );
    assert_all_valid(&recorder);
}

#[tokio::test]
async fn a_delayed_response_can_be_cancelled_while_it_waits() {
    let config = script("[[rule]]\ntext = \"Never said.\"\ndelay_ms = 5000\n");
    let (sim, recorder) = simulator(config).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    text_session(&mut client).await;
    say(&mut client, "hi").await;
    client.until("response.created").await;
    client.send(json!({"type": "response.cancel"})).await;
    let done = client.until("response.done").await;
    assert_eq!(done["response"]["status"], "cancelled");
    assert_eq!(done["response"]["output"], json!([]));
    assert_all_valid(&recorder);
}

/// The event of `kind` already received, or the next one.
async fn received_or_until(client: &mut Client, kind: &str) -> Value {
    match client.received.iter().find(|e| e["type"] == kind) {
        Some(event) => event.clone(),
        None => client.until(kind).await,
    }
}

#[tokio::test]
async fn a_transcript_delay_delivers_the_transcript_after_the_response_started() {
    let config = script(
        r#"
transcripts = ["What's the weather in Lyon?"]
transcript_delay_ms = 300

[[rule]]
contains = "weather"
function_call = { name = "get_weather", arguments = { city = "Lyon" } }
"#,
    );
    let (sim, recorder) = simulator(config).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    client.until("session.created").await;
    let tool: Value = serde_json::from_str(WEATHER_TOOL).unwrap();
    client
        .send(
            json!({"type": "session.update", "session": {"type": "realtime", "tools": [tool],
            "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 300}}}}}),
        )
        .await;
    client.until("session.updated").await;
    for chunk in speech(0.2, 0.8, 1.6).chunks(2_400) {
        client.send(append(chunk)).await;
    }
    let completed = client
        .until("conversation.item.input_audio_transcription.completed")
        .await;
    assert_eq!(completed["transcript"], "What's the weather in Lyon?");
    // The reply was chosen from the transcript before the client saw it.
    let types = client.types();
    let position = |kind: &str| types.iter().position(|t| t == kind).unwrap();
    let created = position("response.created");
    assert!(
        created < position("conversation.item.input_audio_transcription.delta"),
        "{types:?}"
    );
    assert!(
        position("input_audio_buffer.committed") < created,
        "{types:?}"
    );
    // The call may have been sent before the transcript or after it.
    let call = received_or_until(&mut client, "response.function_call_arguments.done").await;
    assert_eq!(call["arguments"], r#"{"city":"Lyon"}"#);
    received_or_until(&mut client, "response.done").await;
    // The stored item has the transcript, as a retrieve shows.
    let item_id = completed["item_id"].as_str().unwrap();
    client
        .send(json!({"type": "conversation.item.retrieve", "item_id": item_id}))
        .await;
    let retrieved = client.until("conversation.item.retrieved").await;
    assert_eq!(
        retrieved["item"]["content"][0]["transcript"],
        "What's the weather in Lyon?"
    );
    assert_all_valid(&recorder);
}

#[tokio::test]
async fn script_files_give_the_same_rules() {
    let dir = std::env::temp_dir().join(format!("reelthyme-sim-scripting-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hello.toml");
    std::fs::write(
        &path,
        "[[rule]]\ncontains = \"hello\"\ntext = \"Hi from a file.\"\n",
    )
    .unwrap();
    let config = SimConfig::script_file(&path).unwrap().speed(50.0);
    std::fs::remove_dir_all(&dir).unwrap();
    let (sim, recorder) = simulator(config).await;
    let mut client = Client::connect(&sim.realtime_url("gpt-realtime"), &[]).await;
    text_session(&mut client).await;
    say(&mut client, "hello there").await;
    let done = client.until("response.done").await;
    assert_eq!(
        done["response"]["output"][0]["content"][0]["text"],
        "Hi from a file."
    );
    assert_all_valid(&recorder);
}
