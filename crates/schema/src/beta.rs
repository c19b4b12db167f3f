//! The beta dialect: the retired `OpenAI-Beta: realtime=v1` protocol, still spoken by legacy
//! Azure deployments, third-party servers that copied it, and old logs.
//!
//! Beta events are normalised into the GA types on the way in, so an application handles
//! one set of events whatever the server speaks; GA events are written in beta shape on the
//! way out. The two directions are inverse for everything the beta wire carries, so a beta
//! event survives `beta → GA → beta` (compared as JSON values), with two exceptions:
//! `modalities` that name audio become GA's `["audio"]` and come back as
//! `["text", "audio"]` (the only audio spelling beta servers accepted), and `response.create`'s
//! `max_response_output_tokens`, which becomes GA's `max_output_tokens` and comes back as
//! `max_output_tokens` (the spelling of the pre-GA spec's own example; beta response objects
//! use it too). Beta's `conversation.item.created` becomes GA's `conversation.item.added`, so
//! handlers of GA events fire whatever the server speaks.
//!
//! The mapping (PROTOCOL.md §3.2–3.5):
//!
//! | beta | GA |
//! |---|---|
//! | `response.text.*`, `response.audio.*`, `response.audio_transcript.*` | `response.output_text.*`, `response.output_audio.*`, `response.output_audio_transcript.*` |
//! | `transcription_session.update` / `.created` / `.updated` | `session.update` / `.created` / `.updated` with `session.type = "transcription"` |
//! | flat session: `modalities`, `voice`, `input_audio_format`, `output_audio_format`, `input_audio_transcription`, `turn_detection`, `input_audio_noise_reduction`, `speed`, `max_response_output_tokens` | nested: `output_modalities`, `audio.output.voice`, `audio.input.format`, `audio.output.format`, `audio.input.transcription`, `audio.input.turn_detection`, `audio.input.noise_reduction`, `audio.output.speed`, `max_output_tokens` |
//! | `"pcm16"`, `"g711_ulaw"`, `"g711_alaw"` | `{"type":"audio/pcm","rate":24000}`, `{"type":"audio/pcmu"}`, `{"type":"audio/pcma"}` |
//! | `temperature` and other beta-only fields | kept in `extra` |

/// The protocol dialect a server speaks or a line is written in. A closed set: a new
/// dialect needs translation code everywhere events cross the wire, so adding one is a
/// breaking change on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Dialect {
    /// GA (the only one api.openai.com accepts).
    #[default]
    Ga,
    /// The retired beta (`realtime=v1`); events are translated at the edge, by this module.
    Beta,
}

use serde_json::{Map, Value, json};

use crate::{ClientEvent, ServerEvent};

/// Server event names that differ: (beta, GA).
const SERVER_RENAMES: &[(&str, &str)] = &[
    ("response.text.delta", "response.output_text.delta"),
    ("response.text.done", "response.output_text.done"),
    ("response.audio.delta", "response.output_audio.delta"),
    ("response.audio.done", "response.output_audio.done"),
    (
        "response.audio_transcript.delta",
        "response.output_audio_transcript.delta",
    ),
    (
        "response.audio_transcript.done",
        "response.output_audio_transcript.done",
    ),
];

/// GA server events beta never had. (`conversation.item.added` is written as beta's
/// `conversation.item.created`; `conversation.item.done` has no counterpart.)
const GA_ONLY_SERVER: &[&str] = &[
    "conversation.item.done",
    "input_audio_buffer.dtmf_event_received",
    "response.mcp_call_arguments.delta",
    "response.mcp_call_arguments.done",
    "response.mcp_call.in_progress",
    "response.mcp_call.completed",
    "response.mcp_call.failed",
    "mcp_list_tools.in_progress",
    "mcp_list_tools.completed",
    "mcp_list_tools.failed",
];

fn rename<'a>(tag: &'a str, pairs: &[(&'static str, &'static str)], to_ga: bool) -> &'a str {
    pairs
        .iter()
        .find(|(beta, ga)| if to_ga { *beta == tag } else { *ga == tag })
        .map_or(tag, |(beta, ga)| if to_ga { ga } else { beta })
}

/// Parses a beta server event from JSON text into the GA types.
///
/// # Errors
/// When the text is not a JSON object with a `type`, or a known event is malformed.
pub fn parse_server(json: &str) -> Result<ServerEvent, serde_json::Error> {
    server_from_value(serde_json::from_str(json)?)
}

/// Normalises a beta server event into the GA types.
///
/// # Errors
/// As [`parse_server`].
pub fn server_from_value(value: Value) -> Result<ServerEvent, serde_json::Error> {
    ServerEvent::from_value(server_to_ga(value))
}

/// Normalises a beta server event, as JSON, into GA JSON.
pub fn server_to_ga(value: Value) -> Value {
    let Value::Object(mut map) = value else {
        return value;
    };
    let Some(tag) = map.get("type").and_then(Value::as_str).map(str::to_owned) else {
        return Value::Object(map);
    };
    let ga_tag = match tag.as_str() {
        "transcription_session.created" | "transcription_session.updated" => {
            if let Some(session) = map.remove("session") {
                map.insert("session".into(), session_to_ga(session, "transcription"));
            }
            tag.replacen("transcription_session", "session", 1)
        }
        "session.created" | "session.updated" => {
            if let Some(session) = map.remove("session") {
                map.insert("session".into(), session_to_ga(session, "realtime"));
            }
            tag
        }
        "response.created" | "response.done" => {
            if let Some(response) = map.remove("response") {
                map.insert("response".into(), response_to_ga(response, false));
            }
            tag
        }
        "conversation.item.created" => "conversation.item.added".to_owned(),
        _ => rename(&tag, SERVER_RENAMES, true).to_owned(),
    };
    map.insert("type".into(), Value::String(ga_tag));
    Value::Object(map)
}

/// Writes a GA server event in beta shape, or `None` for events beta never had (MCP,
/// DTMF, `conversation.item.done`). For servers that speak beta, like the simulator in
/// its beta mode.
pub fn server_to_beta(event: &ServerEvent) -> Option<Value> {
    server_value_to_beta(event.to_value())
}

/// [`server_to_beta`] on JSON.
pub fn server_value_to_beta(value: Value) -> Option<Value> {
    let Value::Object(mut map) = value else {
        return Some(value);
    };
    let Some(tag) = map.get("type").and_then(Value::as_str).map(str::to_owned) else {
        return Some(Value::Object(map));
    };
    if GA_ONLY_SERVER.contains(&tag.as_str()) {
        return None;
    }
    let beta_tag = match tag.as_str() {
        "session.created" | "session.updated" => {
            let transcription = map
                .get("session")
                .and_then(|s| s.get("type"))
                .and_then(Value::as_str)
                == Some("transcription");
            if let Some(session) = map.remove("session") {
                map.insert("session".into(), session_to_beta(session));
            }
            if transcription {
                tag.replacen("session", "transcription_session", 1)
            } else {
                tag
            }
        }
        "response.created" | "response.done" => {
            if let Some(response) = map.remove("response") {
                map.insert("response".into(), response_to_beta(response));
            }
            tag
        }
        "conversation.item.added" => "conversation.item.created".to_owned(),
        _ => rename(&tag, SERVER_RENAMES, false).to_owned(),
    };
    map.insert("type".into(), Value::String(beta_tag));
    Some(Value::Object(map))
}

/// Normalises a beta client event (as JSON) into the GA types — what a server speaking
/// beta receives.
///
/// # Errors
/// When the value is not an event object, or a known event is malformed.
pub fn client_from_value(value: Value) -> Result<ClientEvent, serde_json::Error> {
    ClientEvent::from_value(client_to_ga(value))
}

/// Normalises a beta client event, as JSON, into GA JSON.
pub fn client_to_ga(value: Value) -> Value {
    let Value::Object(mut map) = value else {
        return value;
    };
    match map.get("type").and_then(Value::as_str) {
        Some("session.update") => {
            if let Some(session) = map.remove("session") {
                map.insert("session".into(), session_to_ga(session, "realtime"));
            }
        }
        Some("transcription_session.update") => {
            if let Some(session) = map.remove("session") {
                map.insert("session".into(), session_to_ga(session, "transcription"));
            }
            map.insert("type".into(), Value::String("session.update".into()));
        }
        Some("response.create") => {
            if let Some(response) = map.remove("response") {
                map.insert("response".into(), response_to_ga(response, true));
            }
        }
        _ => {}
    }
    Value::Object(map)
}

/// Writes a GA client event in beta shape, to send to a server that speaks beta.
pub fn client_to_beta(event: &ClientEvent) -> Value {
    client_value_to_beta(event.to_value())
}

/// [`client_to_beta`] on JSON.
pub fn client_value_to_beta(value: Value) -> Value {
    let Value::Object(mut map) = value else {
        return value;
    };
    match map.get("type").and_then(Value::as_str) {
        Some("session.update") => {
            let transcription = map
                .get("session")
                .and_then(|s| s.get("type"))
                .and_then(Value::as_str)
                == Some("transcription");
            if let Some(session) = map.remove("session") {
                map.insert("session".into(), session_to_beta(session));
            }
            if transcription {
                map.insert(
                    "type".into(),
                    Value::String("transcription_session.update".into()),
                );
            }
        }
        Some("response.create") => {
            if let Some(response) = map.remove("response") {
                map.insert("response".into(), response_to_beta(response));
            }
        }
        _ => {}
    }
    Value::Object(map)
}

fn format_to_ga(format: Value) -> Value {
    match format.as_str() {
        Some("pcm16") => json!({"type": "audio/pcm", "rate": 24000}),
        Some("g711_ulaw") => json!({"type": "audio/pcmu"}),
        Some("g711_alaw") => json!({"type": "audio/pcma"}),
        Some(other) => json!({"type": other}),
        None => format,
    }
}

fn format_to_beta(format: Value) -> Value {
    let Value::Object(map) = &format else {
        return format;
    };
    let name = match map.get("type").and_then(Value::as_str) {
        Some("audio/pcm")
            if map.len() == 1 || map.get("rate") == Some(&json!(24000)) && map.len() == 2 =>
        {
            "pcm16"
        }
        Some("audio/pcmu") if map.len() == 1 => "g711_ulaw",
        Some("audio/pcma") if map.len() == 1 => "g711_alaw",
        Some(other) if map.len() == 1 && !other.starts_with("audio/") => {
            return Value::String(other.to_owned());
        }
        _ => return format,
    };
    Value::String(name.to_owned())
}

fn modalities_to_ga(modalities: Value) -> Value {
    match &modalities {
        Value::Array(list) if list.iter().any(|m| m == "audio") => json!(["audio"]),
        _ => modalities,
    }
}

fn modalities_to_beta(modalities: Value) -> Value {
    match &modalities {
        Value::Array(list) if list.len() == 1 && list[0] == "audio" => json!(["text", "audio"]),
        _ => modalities,
    }
}

/// Puts `value` at `audio.<side>.<key>` of a GA object.
fn set_audio(ga: &mut Map<String, Value>, side: &str, key: &str, value: Value) {
    let audio = ga
        .entry("audio")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(audio) = audio {
        let side = audio
            .entry(side)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(side) = side {
            side.insert(key.to_owned(), value);
        }
    }
}

/// Beta flat session → GA nested session of the given `type`.
fn session_to_ga(session: Value, kind: &str) -> Value {
    let Value::Object(beta) = session else {
        return session;
    };
    let mut ga = Map::new();
    ga.insert("type".into(), Value::String(kind.to_owned()));
    for (key, value) in beta {
        match key.as_str() {
            "modalities" => drop(ga.insert("output_modalities".into(), modalities_to_ga(value))),
            "voice" => set_audio(&mut ga, "output", "voice", value),
            "speed" => set_audio(&mut ga, "output", "speed", value),
            "output_audio_format" => set_audio(&mut ga, "output", "format", format_to_ga(value)),
            "input_audio_format" => set_audio(&mut ga, "input", "format", format_to_ga(value)),
            "input_audio_transcription" => set_audio(&mut ga, "input", "transcription", value),
            "turn_detection" => set_audio(&mut ga, "input", "turn_detection", value),
            "input_audio_noise_reduction" => set_audio(&mut ga, "input", "noise_reduction", value),
            "max_response_output_tokens" => drop(ga.insert("max_output_tokens".into(), value)),
            _ => drop(ga.insert(key, value)),
        }
    }
    Value::Object(ga)
}

/// GA nested session → beta flat session.
fn session_to_beta(session: Value) -> Value {
    let Value::Object(ga) = session else {
        return session;
    };
    let mut beta = Map::new();
    for (key, value) in ga {
        match key.as_str() {
            "type" if matches!(value.as_str(), Some("realtime" | "transcription")) => {}
            "output_modalities" => {
                drop(beta.insert("modalities".into(), modalities_to_beta(value)))
            }
            "max_output_tokens" => drop(beta.insert("max_response_output_tokens".into(), value)),
            "audio" => flatten_audio(value, &mut beta, true),
            _ => drop(beta.insert(key, value)),
        }
    }
    Value::Object(beta)
}

/// Moves GA `audio.{input,output}.*` into beta's flat fields; what has no beta name stays
/// nested under `audio`.
fn flatten_audio(audio: Value, beta: &mut Map<String, Value>, with_input: bool) {
    let Value::Object(mut audio) = audio else {
        beta.insert("audio".into(), audio);
        return;
    };
    let mut take = |side: &str,
                    key: &str,
                    beta_key: &str,
                    beta: &mut Map<String, Value>,
                    convert: fn(Value) -> Value| {
        if let Some(Value::Object(side)) = audio.get_mut(side)
            && let Some(value) = side.remove(key)
        {
            beta.insert(beta_key.to_owned(), convert(value));
        }
    };
    let keep = |v| v;
    take("output", "voice", "voice", beta, keep);
    take(
        "output",
        "format",
        "output_audio_format",
        beta,
        format_to_beta,
    );
    if with_input {
        take("output", "speed", "speed", beta, keep);
        take(
            "input",
            "format",
            "input_audio_format",
            beta,
            format_to_beta,
        );
        take(
            "input",
            "transcription",
            "input_audio_transcription",
            beta,
            keep,
        );
        take("input", "turn_detection", "turn_detection", beta, keep);
        take(
            "input",
            "noise_reduction",
            "input_audio_noise_reduction",
            beta,
            keep,
        );
    }
    audio.retain(|_, side| !matches!(side, Value::Object(m) if m.is_empty()));
    if !audio.is_empty() {
        beta.insert("audio".into(), Value::Object(audio));
    }
}

/// Beta response (object or `response.create` params) → GA.
fn response_to_ga(response: Value, params: bool) -> Value {
    let Value::Object(beta) = response else {
        return response;
    };
    let mut ga = Map::new();
    for (key, value) in beta {
        match key.as_str() {
            "modalities" => drop(ga.insert("output_modalities".into(), modalities_to_ga(value))),
            "voice" => set_audio(&mut ga, "output", "voice", value),
            "output_audio_format" => set_audio(&mut ga, "output", "format", format_to_ga(value)),
            "max_response_output_tokens" if params => {
                drop(ga.insert("max_output_tokens".into(), value))
            }
            _ => drop(ga.insert(key, value)),
        }
    }
    Value::Object(ga)
}

/// GA response (object or params) → beta.
fn response_to_beta(response: Value) -> Value {
    let Value::Object(ga) = response else {
        return response;
    };
    let mut beta = Map::new();
    for (key, value) in ga {
        match key.as_str() {
            "output_modalities" => {
                drop(beta.insert("modalities".into(), modalities_to_beta(value)))
            }
            "audio" => flatten_audio(value, &mut beta, false),
            _ => drop(beta.insert(key, value)),
        }
    }
    Value::Object(beta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AudioFormat, Modality, ServerEvent, SessionKind, json_equal};

    #[test]
    fn beta_text_deltas_become_ga_events() {
        let event = parse_server(
            r#"{"type":"response.text.delta","event_id":"e","response_id":"r","item_id":"i",
                "output_index":0,"content_index":0,"delta":"Hi"}"#,
        )
        .unwrap();
        let ServerEvent::ResponseOutputTextDelta(delta) = &event else {
            panic!("{event:?}")
        };
        assert_eq!(delta.delta, "Hi");
        assert_eq!(
            server_to_beta(&event).unwrap()["type"],
            "response.text.delta"
        );
    }

    #[test]
    fn flat_sessions_nest_and_flatten_back() {
        let beta = json!({"type": "session.updated", "event_id": "e", "session": {
            "id": "sess_1", "modalities": ["text", "audio"], "voice": "sage",
            "input_audio_format": "pcm16", "output_audio_format": "g711_ulaw",
            "turn_detection": null, "temperature": 0.7, "max_response_output_tokens": "inf"}});
        let event = server_from_value(beta.clone()).unwrap();
        let ServerEvent::SessionUpdated(updated) = &event else {
            panic!("{event:?}")
        };
        let session = &updated.session;
        assert_eq!(session.kind, Some(SessionKind::Realtime));
        assert_eq!(session.output_modalities, Some(vec![Modality::Audio]));
        assert_eq!(
            session.input_format().and_then(AudioFormat::sample_rate),
            Some(24_000)
        );
        assert!(matches!(
            session.output_format(),
            Some(AudioFormat::Pcmu(_))
        ));
        assert_eq!(session.turn_detection(), Some(None));
        assert_eq!(session.extra.get("temperature"), Some(&json!(0.7)));
        assert!(json_equal(&server_to_beta(&event).unwrap(), &beta));
    }

    #[test]
    fn transcription_sessions_map_to_ga_session_type() {
        let beta = json!({"type": "transcription_session.update", "session": {
            "input_audio_format": "pcm16", "input_audio_transcription": {"model": "gpt-4o-transcribe"}}});
        let event = client_from_value(beta.clone()).unwrap();
        let ClientEvent::SessionUpdate(update) = &event else {
            panic!("{event:?}")
        };
        assert_eq!(update.session.kind, Some(SessionKind::Transcription));
        assert!(json_equal(&client_to_beta(&event), &beta));
    }

    #[test]
    fn ga_only_events_have_no_beta_shape() {
        let done =
            ServerEvent::from_value(json!({"type": "conversation.item.done", "event_id": "e",
            "item": {"type": "message", "role": "user", "content": []}}))
            .unwrap();
        assert_eq!(server_to_beta(&done), None);
        let added =
            ServerEvent::from_value(json!({"type": "conversation.item.added", "event_id": "e",
            "item": {"type": "message", "role": "user", "content": []}}))
            .unwrap();
        assert_eq!(
            server_to_beta(&added).unwrap()["type"],
            "conversation.item.created"
        );
    }

    #[test]
    fn ga_session_update_is_written_flat() {
        let mut session = crate::SessionConfig::realtime();
        session.output_modalities = Some(vec![Modality::Text]);
        session.audio_output_mut().voice = Some("alloy".into());
        session.audio_input_mut().format = Some(AudioFormat::pcm());
        let beta = client_to_beta(&ClientEvent::session_update(session));
        assert!(json_equal(
            &beta,
            &json!({"type": "session.update", "session": {"modalities": ["text"], "voice": "alloy",
                "input_audio_format": "pcm16"}})
        ));
    }
}
