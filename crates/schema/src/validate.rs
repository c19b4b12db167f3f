//! Validation: the generated JSON Schemas, plus the rules a schema cannot state.

use std::fmt;
use std::sync::OnceLock;

use serde_json::Value;

use crate::audio::{Base64Audio, MAX_APPEND_BYTES};
use crate::session::{Modality, SessionConfig};
use crate::{ClientEvent, ResponseParams, ServerEvent};

/// Which side sends an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to server.
    Client,
    /// Server to client.
    Server,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Client => "client",
            Self::Server => "server",
        })
    }
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// JSON Pointer to the offending value (`""` is the event itself), e.g.
    /// `/session/audio/input/format/rate`.
    pub path: String,
    /// The rule: a JSON Schema keyword (`required`, `minimum`, `additionalProperties`, …)
    /// or one of this crate's rules (`base64`, `maxAudioBytes`, `singleModality`,
    /// `sessionType`, `truncateContentIndex`, `maxLength`, `unknownEvent`).
    pub rule: String,
    /// What is wrong, in words.
    pub message: String,
}

impl ValidationError {
    fn new(path: impl Into<String>, rule: &str, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            rule: rule.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "{path}: {} [{}]", self.message, self.rule)
    }
}

/// Every rule an event broke (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl ValidationErrors {
    /// The broken rules.
    pub fn errors(&self) -> &[ValidationError] {
        &self.0
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// The outcome of checking a server event: definite errors, and drift — event types and
/// fields this version of the library does not know, which a newer server may well send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Broken rules.
    pub errors: Vec<ValidationError>,
    /// Unknown event types and fields.
    pub drift: Vec<ValidationError>,
}

impl Report {
    /// Strict: no errors and no drift.
    pub fn is_strictly_valid(&self) -> bool {
        self.errors.is_empty() && self.drift.is_empty()
    }

    /// Lenient (drift mode): no errors; drift is allowed.
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    /// Errors, and in strict mode the drift too, as a `Result`.
    ///
    /// # Errors
    /// When anything is left after the mode's filter.
    pub fn into_result(self, strict: bool) -> Result<Vec<ValidationError>, ValidationErrors> {
        let mut errors = self.errors;
        if strict {
            errors.extend(self.drift.iter().cloned());
        }
        if errors.is_empty() {
            Ok(self.drift)
        } else {
            Err(ValidationErrors(errors))
        }
    }
}

struct Validators {
    client: jsonschema::Validator,
    server: jsonschema::Validator,
}

fn validators() -> &'static Validators {
    static VALIDATORS: OnceLock<Validators> = OnceLock::new();
    VALIDATORS.get_or_init(|| {
        let build = |schema: &Value| {
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .build(schema)
                .expect("the generated schemas are valid JSON Schema")
        };
        Validators {
            client: build(&crate::schemas::client_events()),
            server: build(&crate::schemas::server_events()),
        }
    })
}

/// Validates a client event given as JSON: the schema, then the rules a schema cannot state.
/// Unknown fields and event types are errors (the server rejects them).
///
/// # Errors
/// Every broken rule.
pub fn validate_client_value(value: &Value) -> Result<(), ValidationErrors> {
    validate_client_report(value).into_result(true).map(drop)
}

/// Checks a client event given as JSON, with unknown types and fields apart as
/// [`Report::drift`] (for dialects whose fields GA does not know, such as beta's).
pub fn validate_client_report(value: &Value) -> Report {
    let mut report = check(&validators().client, value);
    if report.errors.is_empty() {
        // The typed rules need the typed event; a value that passed the schema parses.
        match ClientEvent::from_value(value.clone()) {
            Ok(event) => client_rules(&event, &mut report.errors),
            Err(e) => report
                .errors
                .push(ValidationError::new("", "parse", e.to_string())),
        }
    }
    report
}

/// Validates a typed client event.
///
/// # Errors
/// Every broken rule.
pub fn validate_client(event: &ClientEvent) -> Result<(), ValidationErrors> {
    // Appends are the hot path (every 20–100 ms, possibly megabytes): check them without
    // copying the audio into a JSON tree. Their schema is just these fields.
    if let ClientEvent::InputAudioBufferAppend(append) = event {
        let mut errors = Vec::new();
        for key in append.extra.0.keys() {
            errors.push(ValidationError::new(
                "",
                "additionalProperties",
                format!("unknown field `{key}` on input_audio_buffer.append"),
            ));
        }
        client_rules(event, &mut errors);
        return if errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(errors))
        };
    }
    let report = check(&validators().client, &event.to_value());
    let mut errors = report.errors;
    errors.extend(report.drift);
    client_rules(event, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errors))
    }
}

/// Checks a server event given as JSON. Unknown event types and fields are reported as
/// [`Report::drift`]; choose strict or lenient with [`Report::into_result`].
pub fn validate_server_value(value: &Value) -> Report {
    let mut report = check(&validators().server, value);
    if report.errors.is_empty()
        && let Err(e) = ServerEvent::from_value(value.clone())
    {
        report
            .errors
            .push(ValidationError::new("", "parse", e.to_string()));
    }
    report
}

fn check(validator: &jsonschema::Validator, value: &Value) -> Report {
    let mut report = Report::default();
    if !value.is_object() {
        report.errors.push(ValidationError::new(
            "",
            "type",
            "an event must be a JSON object",
        ));
        return report;
    }
    for error in validator.iter_errors(value) {
        let path = error.instance_path().to_string();
        let keyword = error.kind().keyword().to_owned();
        let schema_path = error.schema_path().to_string();
        let is_unknown_type = keyword == "enum" && schema_path.ends_with("/properties/type/enum");
        let is_unknown_field = keyword == "additionalProperties";
        let entry = ValidationError {
            path,
            rule: keyword,
            message: error.to_string(),
        };
        if is_unknown_type {
            let found = value
                .pointer(&entry.path)
                .and_then(Value::as_str)
                .unwrap_or_default();
            let what = if entry.path == "/type" {
                "event"
            } else {
                "object"
            };
            report.drift.push(ValidationError {
                rule: "unknownType".to_owned(),
                message: format!("unknown {what} type `{found}`"),
                ..entry
            });
        } else if is_unknown_field {
            report.drift.push(entry);
        } else {
            report.errors.push(entry);
        }
    }
    report
}

/// The rules the schema cannot state.
fn client_rules(event: &ClientEvent, errors: &mut Vec<ValidationError>) {
    if let Some(id) = event.event_id()
        && id.chars().count() > 512
    {
        errors.push(ValidationError::new(
            "/event_id",
            "maxLength",
            "event_id is longer than 512 characters",
        ));
    }
    match event {
        ClientEvent::InputAudioBufferAppend(append) => audio_rules(&append.audio, errors),
        ClientEvent::SessionUpdate(update) => session_rules(&update.session, errors),
        ClientEvent::ResponseCreate(create) => {
            if let Some(params) = &create.response {
                response_rules(params, errors);
            }
        }
        ClientEvent::ConversationItemCreate(create)
            if matches!(create.item, crate::Item::Reference(_)) =>
        {
            errors.push(ValidationError::new(
                "/item/type",
                "itemReference",
                "item_reference is only valid in response.create's input",
            ));
        }
        ClientEvent::ConversationItemTruncate(truncate) => {
            if truncate.item_id.is_empty() {
                errors.push(ValidationError::new(
                    "/item_id",
                    "minLength",
                    "item_id must name the assistant item",
                ));
            }
            if truncate.content_index != 0 {
                errors.push(ValidationError::new(
                    "/content_index",
                    "truncateContentIndex",
                    format!(
                        "content_index must be 0 (the audio part), not {}",
                        truncate.content_index
                    ),
                ));
            }
        }
        // Unknown types are the schema's to report (`unknownType`).
        _ => {}
    }
}

/// The 15 MiB limit is read conservatively, as applying to the audio as sent (base64):
/// a client that keeps to it is never refused, whichever way the server counts.
fn audio_rules(audio: &Base64Audio, errors: &mut Vec<ValidationError>) {
    let sent = audio.as_str().len();
    if sent > MAX_APPEND_BYTES {
        errors.push(ValidationError::new(
            "/audio",
            "maxAudioBytes",
            format!(
                "audio is {sent} bytes of base64; the limit is {MAX_APPEND_BYTES} (15 MiB) per append"
            ),
        ));
    } else if audio.decoded_len().is_err() {
        errors.push(ValidationError::new(
            "/audio",
            "base64",
            "audio is not standard base64 with padding",
        ));
    }
}

fn session_rules(session: &SessionConfig, errors: &mut Vec<ValidationError>) {
    if session.kind.is_none() {
        errors.push(ValidationError::new(
            "/session/type",
            "sessionType",
            "GA session.update requires session.type (\"realtime\" or \"transcription\")",
        ));
    }
    modality_rule(
        session.output_modalities.as_deref(),
        "/session/output_modalities",
        errors,
    );
}

fn response_rules(params: &ResponseParams, errors: &mut Vec<ValidationError>) {
    modality_rule(
        params.output_modalities.as_deref(),
        "/response/output_modalities",
        errors,
    );
}

fn modality_rule(modalities: Option<&[Modality]>, path: &str, errors: &mut Vec<ValidationError>) {
    if let Some(modalities) = modalities
        && modalities.len() != 1
    {
        errors.push(ValidationError::new(
                path,
                "singleModality",
                format!(
                    "GA takes exactly one output modality, [\"audio\"] (with transcript) or [\"text\"]; got {}",
                    modalities.len()
                ),
            ));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{AudioFormat, Item, SessionConfig};

    fn rules(result: Result<(), ValidationErrors>) -> Vec<(String, String)> {
        result
            .err()
            .map(|e| e.0)
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.path, e.rule))
            .collect()
    }

    #[test]
    fn constructors_produce_valid_events() {
        let mut session = SessionConfig::realtime();
        session.instructions = Some("Be brief.".into());
        session.audio_input_mut().format = Some(AudioFormat::pcm());
        session.audio_input_mut().turn_detection = Some(None);
        for event in [
            ClientEvent::user_text("hi"),
            ClientEvent::audio_append(&[0, 1, -1]),
            ClientEvent::audio_commit(),
            ClientEvent::response_create(),
            ClientEvent::response_cancel(),
            ClientEvent::truncate("item_1", 1500),
            ClientEvent::function_call_output("call_1", "{}"),
            ClientEvent::item_create(Item::user_audio(&[1, 2, 3])),
            ClientEvent::session_update(session),
        ] {
            assert_eq!(validate_client(&event), Ok(()), "{event:?}");
            assert_eq!(
                validate_client_value(&event.to_value()),
                Ok(()),
                "{event:?}"
            );
        }
    }

    #[test]
    fn schema_errors_name_the_path_and_the_rule() {
        let event = json!({"type": "session.update", "session": {"type": "realtime",
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}});
        assert_eq!(
            rules(validate_client_value(&event)),
            [(
                "/session/audio/input/format/rate".to_owned(),
                "minimum".to_owned()
            )]
        );
        let event =
            json!({"type": "session.update", "session": {"type": "realtime", "bogus_field": 1}});
        assert_eq!(
            rules(validate_client_value(&event)),
            [("/session".to_owned(), "additionalProperties".to_owned())]
        );
        let event =
            json!({"type": "conversation.item.truncate", "item_id": "item_1", "audio_end_ms": 10});
        assert_eq!(
            rules(validate_client_value(&event)),
            [(String::new(), "required".to_owned())]
        );
    }

    #[test]
    fn typed_rules_catch_what_the_schema_cannot() {
        let event = json!({"type": "input_audio_buffer.append", "audio": "Base64EncodedAudioData"});
        assert_eq!(
            rules(validate_client_value(&event)),
            [("/audio".to_owned(), "base64".to_owned())]
        );
        let event = json!({"type": "session.update", "session": {"instructions": "x"}});
        assert_eq!(
            rules(validate_client_value(&event)),
            [("/session/type".to_owned(), "sessionType".to_owned())]
        );
        let event = json!({"type": "response.create", "response": {"output_modalities": ["text", "audio"]}});
        assert_eq!(
            rules(validate_client_value(&event)),
            [(
                "/response/output_modalities".to_owned(),
                "singleModality".to_owned()
            )]
        );
        let event = json!({"type": "conversation.item.truncate", "item_id": "", "content_index": 1, "audio_end_ms": 0});
        assert_eq!(
            rules(validate_client_value(&event)),
            [
                ("/item_id".to_owned(), "minLength".to_owned()),
                (
                    "/content_index".to_owned(),
                    "truncateContentIndex".to_owned()
                )
            ]
        );
        let long_id = "e".repeat(513);
        assert_eq!(
            rules(validate_client(
                &ClientEvent::audio_commit().with_event_id(long_id)
            )),
            [("/event_id".to_owned(), "maxLength".to_owned())]
        );
    }

    #[test]
    fn oversized_appends_are_refused_without_a_json_tree() {
        let samples = vec![0_i16; MAX_APPEND_BYTES / 2 + 1];
        let result = validate_client(&ClientEvent::audio_append(&samples));
        assert_eq!(
            rules(result),
            [("/audio".to_owned(), "maxAudioBytes".to_owned())]
        );
        // The largest append that passes: 15 MiB of base64 is 11.25 MiB of audio.
        let samples = vec![0_i16; MAX_APPEND_BYTES / 4 * 3 / 2 + 3];
        assert!(validate_client(&ClientEvent::audio_append(&samples)).is_err());
        let samples = vec![0_i16; MAX_APPEND_BYTES / 4 * 3 / 2];
        assert_eq!(
            validate_client(&ClientEvent::audio_append(&samples)),
            Ok(())
        );
    }

    #[test]
    fn unknown_client_events_are_errors() {
        let event = json!({"type": "transcription_session.update", "session": {}});
        assert_eq!(
            rules(validate_client_value(&event)),
            [("/type".to_owned(), "unknownType".to_owned())]
        );
    }

    #[test]
    fn server_drift_is_reported_apart_from_errors() {
        let event = json!({"type": "response.output_text.delta", "event_id": "e", "response_id": "r",
            "item_id": "i", "output_index": 0, "content_index": 0, "delta": "hi", "brand_new": true});
        let report = validate_server_value(&event);
        assert!(report.is_valid() && !report.is_strictly_valid());
        assert_eq!(report.drift[0].rule, "additionalProperties");

        let report = validate_server_value(&json!({"type": "response.new_thing", "event_id": "e"}));
        assert!(report.is_valid());
        assert_eq!(report.drift[0].rule, "unknownType");

        let report = validate_server_value(
            &json!({"type": "response.done", "event_id": "e", "response": {"status": 3}}),
        );
        assert!(!report.is_valid());
        assert_eq!(report.errors[0].path, "/response/status");
    }
}
