//! Checking recorded events: parse, validate and round-trip one JSON line. This is the
//! engine of `reelthyme events check`, exposed for users who check their own logs.
//!
//! A line is either a bare event or a *row*: an object with the event under `event` or
//! `example` and a `direction` (`client` / `server`), optionally a `version` (`ga` /
//! `beta`) and the `type` the event should have (the format of OpenAI's spec examples,
//! and of reelthyme's session recordings).

use std::fmt;

use serde_json::Value;

use crate::validate::{Direction, ValidationError, validate_client_report, validate_server_value};
use crate::{ClientEvent, ServerEvent, beta, json_equal};

pub use crate::beta::Dialect;

/// How to check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// The direction of bare events (rows say their own); `None` infers it from the type.
    pub direction: Option<Direction>,
    /// The dialect, overriding rows' `version`; `None` means rows' own, else GA.
    pub dialect: Option<Dialect>,
    /// Also check that serialising what was parsed gives back the same JSON.
    pub roundtrip: bool,
    /// Drift mode: unknown server event types and fields are reported, not failed.
    pub drift: bool,
}

/// The stage at which a line failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Not JSON, or not an object.
    Json,
    /// A row whose declared type or direction does not fit its event.
    Row,
    /// Does not parse into the event types.
    Parse,
    /// Breaks a validation rule.
    Validate,
    /// Serialising what was parsed does not give back the input.
    Roundtrip,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Json => "json",
            Self::Row => "row",
            Self::Parse => "parse",
            Self::Validate => "validate",
            Self::Roundtrip => "roundtrip",
        })
    }
}

/// One reason a line failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Where it failed.
    pub stage: Stage,
    /// The broken rule, for validation failures.
    pub rule: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.stage, self.message)
    }
}

/// The outcome of checking one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The event's `type` (empty when there is none).
    pub type_name: String,
    /// Its direction, when known.
    pub direction: Option<Direction>,
    /// Its dialect.
    pub dialect: Dialect,
    /// Why it failed (empty: it passed).
    pub failures: Vec<Failure>,
    /// Drift reported in drift mode (unknown types and fields), which does not fail.
    pub drift: Vec<ValidationError>,
}

impl Outcome {
    /// Whether the line passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Checks one line of JSON.
pub fn check_line(line: &str, options: CheckOptions) -> Outcome {
    let mut outcome = Outcome {
        type_name: String::new(),
        direction: options.direction,
        dialect: options.dialect.unwrap_or(Dialect::Ga),
        failures: Vec::new(),
        drift: Vec::new(),
    };
    let value: Value = match serde_json::from_str(line) {
        Ok(value) => value,
        Err(e) => {
            outcome.failures.push(failure(Stage::Json, e.to_string()));
            return outcome;
        }
    };
    check_value(value, options, &mut outcome);
    outcome
}

fn failure(stage: Stage, message: impl Into<String>) -> Failure {
    Failure {
        stage,
        rule: None,
        message: message.into(),
    }
}

fn check_value(value: Value, options: CheckOptions, outcome: &mut Outcome) {
    let Value::Object(mut object) = value else {
        outcome
            .failures
            .push(failure(Stage::Json, "a line must hold a JSON object"));
        return;
    };
    let mut declared_type = None;
    let event = match ["event", "example"]
        .iter()
        .find(|k| object.get(**k).is_some_and(Value::is_object))
    {
        Some(key) if object.contains_key("direction") => {
            let event = object.remove(*key).unwrap_or_default();
            outcome.direction = match object.get("direction").and_then(Value::as_str) {
                Some("client") => Some(Direction::Client),
                Some("server") => Some(Direction::Server),
                other => {
                    outcome
                        .failures
                        .push(failure(Stage::Row, format!("unknown direction {other:?}")));
                    return;
                }
            };
            if options.dialect.is_none()
                && object.get("version").and_then(Value::as_str) == Some("beta")
            {
                outcome.dialect = Dialect::Beta;
            }
            declared_type = object
                .get("type")
                .and_then(Value::as_str)
                .map(str::to_owned);
            event
        }
        _ => Value::Object(object),
    };
    outcome.type_name = event
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(declared) = declared_type
        && declared != outcome.type_name
    {
        outcome.failures.push(failure(
            Stage::Row,
            format!(
                "the row says `{declared}` but the event's type is `{}`",
                outcome.type_name
            ),
        ));
    }
    let direction = match outcome
        .direction
        .or_else(|| infer_direction(&outcome.type_name, outcome.dialect))
    {
        Some(direction) => direction,
        None => {
            outcome.failures.push(failure(
                Stage::Row,
                format!(
                    "cannot tell whether `{}` is a client or a server event; pass --direction",
                    outcome.type_name
                ),
            ));
            return;
        }
    };
    outcome.direction = Some(direction);
    match (direction, outcome.dialect) {
        (Direction::Client, Dialect::Ga) => {
            let parsed = ClientEvent::from_value(event.clone());
            let report = validate_client_report(&event);
            finish(
                outcome,
                &event,
                parsed.map(|e| e.to_value()),
                report,
                true,
                options.roundtrip,
            );
        }
        (Direction::Server, Dialect::Ga) => {
            let parsed = ServerEvent::from_value(event.clone());
            let report = validate_server_value(&event);
            finish(
                outcome,
                &event,
                parsed.map(|e| e.to_value()),
                report,
                !options.drift,
                options.roundtrip,
            );
        }
        // Beta is checked through its GA normal form: the GA rules apply to its shape, but
        // fields GA does not know (beta's `temperature`, say) are drift, not errors.
        (Direction::Client, Dialect::Beta) => {
            let ga = beta::client_to_ga(event.clone());
            let parsed = ClientEvent::from_value(ga.clone());
            let report = validate_client_report(&ga);
            let back = parsed.map(|e| beta::client_to_beta(&e));
            finish(outcome, &event, back, report, false, options.roundtrip);
        }
        (Direction::Server, Dialect::Beta) => {
            let ga = beta::server_to_ga(event.clone());
            let parsed = ServerEvent::from_value(ga.clone());
            let report = validate_server_value(&ga);
            let back = parsed.map(|e| beta::server_to_beta(&e).unwrap_or(Value::Null));
            finish(outcome, &event, back, report, false, options.roundtrip);
        }
    }
}

fn finish(
    outcome: &mut Outcome,
    original: &Value,
    reserialised: Result<Value, serde_json::Error>,
    report: crate::Report,
    strict: bool,
    roundtrip: bool,
) {
    let reserialised = match reserialised {
        Ok(value) => Some(value),
        Err(e) => {
            outcome.failures.push(failure(Stage::Parse, e.to_string()));
            None
        }
    };
    let mut failed = report.errors;
    if strict {
        failed.extend(report.drift);
    } else {
        outcome.drift = report.drift;
    }
    for error in failed {
        outcome.failures.push(Failure {
            stage: Stage::Validate,
            rule: Some(error.rule.clone()),
            message: error.to_string(),
        });
    }
    if let (true, Some(back)) = (roundtrip, reserialised)
        && !json_equal(original, &back)
    {
        outcome.failures.push(failure(
            Stage::Roundtrip,
            format!("re-serialised as {back}"),
        ));
    }
}

fn infer_direction(type_name: &str, dialect: Dialect) -> Option<Direction> {
    if ClientEvent::TYPES.contains(&type_name)
        || (dialect == Dialect::Beta && type_name == "transcription_session.update")
    {
        Some(Direction::Client)
    } else if ServerEvent::TYPES.contains(&type_name)
        || type_name.starts_with("transcription_session.")
        || type_name.starts_with("response.text.")
        || type_name.starts_with("response.audio")
    {
        Some(Direction::Server)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(line: &str) -> Outcome {
        check_line(
            line,
            CheckOptions {
                roundtrip: true,
                ..CheckOptions::default()
            },
        )
    }

    #[test]
    fn bare_events_pass_and_directions_are_inferred() {
        let outcome = check(r#"{"type":"input_audio_buffer.commit","event_id":"e1"}"#);
        assert!(outcome.passed(), "{outcome:?}");
        assert_eq!(outcome.direction, Some(Direction::Client));
        let outcome = check(r#"{"type":"input_audio_buffer.cleared","event_id":"e1"}"#);
        assert!(outcome.passed(), "{outcome:?}");
        assert_eq!(outcome.direction, Some(Direction::Server));
    }

    #[test]
    fn each_stage_reports_its_failure() {
        assert_eq!(check("{nope").failures[0].stage, Stage::Json);
        assert_eq!(check("[1]").failures[0].stage, Stage::Json);
        assert_eq!(
            check(r#"{"type":"what.is.this"}"#).failures[0].stage,
            Stage::Row
        );
        let outcome = check(
            r#"{"type":"conversation.item.truncate","item_id":"i","content_index":0,"audio_end_ms":"x"}"#,
        );
        assert!(
            outcome.failures.iter().any(|f| f.stage == Stage::Parse),
            "{outcome:?}"
        );
        let row = r#"{"direction":"server","type":"conversation.item.retrieved",
            "example":{"type":"conversation.item.created","event_id":"e","item":{"type":"message","role":"user","content":[]}}}"#;
        assert_eq!(check(row).failures[0].stage, Stage::Row);
    }

    #[test]
    fn explicit_nulls_survive_but_nulls_where_none_belong_do_not() {
        let ok = r#"{"type":"conversation.item.added","event_id":"e","previous_item_id":null,
            "item":{"type":"message","role":"user","content":[]}}"#;
        assert!(check(ok).passed());
        let bad = r#"{"type":"response.output_text.delta","event_id":"e","response_id":"r","item_id":"i",
            "output_index":0,"content_index":0,"delta":"x","obfuscation":null}"#;
        let stages: Vec<Stage> = check(bad).failures.iter().map(|f| f.stage).collect();
        assert_eq!(stages, [Stage::Validate, Stage::Roundtrip]);
    }

    #[test]
    fn drift_mode_reports_without_failing() {
        let line = r#"{"type":"response.brand_new","event_id":"e"}"#;
        let strict = check_line(
            line,
            CheckOptions {
                direction: Some(Direction::Server),
                ..CheckOptions::default()
            },
        );
        assert!(!strict.passed());
        let lenient = check_line(
            line,
            CheckOptions {
                direction: Some(Direction::Server),
                drift: true,
                roundtrip: true,
                ..CheckOptions::default()
            },
        );
        assert!(lenient.passed(), "{lenient:?}");
        assert_eq!(lenient.drift[0].rule, "unknownType");
    }
}
