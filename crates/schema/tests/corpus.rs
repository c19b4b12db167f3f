//! The 160 example events of OpenAI's published spec (`reelthyme_testkit::spec_examples()`):
//! every GA row and every pre-GA beta row parses, validates and round-trips, except the rows
//! whose spec defects are named below, each with what is wrong and what the library does.

use reelthyme_schema::check::{CheckOptions, Outcome, Stage, check_line};
use serde_json::Value;

struct Row {
    line: String,
    direction: String,
    version: String,
    kind: String,
    source: String,
}

fn rows() -> Vec<Row> {
    let path = reelthyme_testkit::spec_examples();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the spec corpus (reelthyme-testkit) must be at {}: {e}",
            path.display()
        )
    });
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("corpus rows are JSON");
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            Row {
                line: line.to_owned(),
                direction: s("direction"),
                version: s("version"),
                kind: s("type"),
                source: s("source"),
            }
        })
        .collect()
}

/// The rows the issue asks for: GA rows, and beta rows from the pre-GA (2025-04-29) spec.
fn in_scope(row: &Row) -> bool {
    row.version == "ga" || row.source.contains("pre-GA")
}

fn outcome(row: &Row) -> Outcome {
    check_line(
        &row.line,
        CheckOptions {
            roundtrip: true,
            ..CheckOptions::default()
        },
    )
}

fn row(direction: &str, version: &str, kind: &str, source: &str) -> Row {
    rows()
        .into_iter()
        .find(|r| {
            r.direction == direction
                && r.version == version
                && r.kind == kind
                && r.source.contains(source)
        })
        .unwrap_or_else(|| panic!("no {direction} {version} {kind} row from {source}"))
}

fn example(row: &Row) -> Value {
    let v: Value = serde_json::from_str(&row.line).unwrap();
    v["example"].clone()
}

fn stages(outcome: &Outcome) -> Vec<(Stage, Option<&str>)> {
    outcome
        .failures
        .iter()
        .map(|f| (f.stage, f.rule.as_deref()))
        .collect()
}

/// Rows that fail, as (direction, version, type): every one is a spec defect with a test below.
const DEFECTS: &[(&str, &str, &str)] = &[
    ("client", "ga", "input_audio_buffer.append"),
    ("client", "beta", "input_audio_buffer.append"),
    ("client", "ga", "transcription_session.update"),
    ("server", "ga", "transcription_session.updated"),
    ("server", "ga", "input_audio_buffer.dtmf_event_received"),
    ("server", "beta", "conversation.item.retrieved"),
];

#[test]
fn every_ga_and_pre_ga_beta_row_passes_but_the_named_defects() {
    let rows: Vec<Row> = rows().into_iter().filter(in_scope).collect();
    assert_eq!(
        rows.len(),
        60 + 46,
        "the corpus has 60 GA rows and 46 pre-GA beta rows"
    );
    let mut failing = Vec::new();
    for row in &rows {
        let outcome = outcome(row);
        if !outcome.passed() {
            failing.push((
                row.direction.as_str(),
                row.version.as_str(),
                row.kind.as_str(),
            ));
        }
    }
    failing.sort_unstable();
    let mut expected = DEFECTS.to_vec();
    expected.sort_unstable();
    assert_eq!(failing, expected);
}

/// Not in PROTOCOL.md §8, but a defect all the same: the spec's append examples carry the
/// placeholder `Base64EncodedAudioData`, which is not base64 (22 characters, no padding).
/// The event parses and round-trips (audio is decoded lazily); validation refuses it, as
/// the server would, and decoding it is a typed error.
#[test]
fn defect_placeholder_audio_is_not_base64() {
    for version in ["ga", "beta"] {
        let source = if version == "ga" {
            "current-spec GA"
        } else {
            "pre-GA"
        };
        let row = row("client", version, "input_audio_buffer.append", source);
        assert_eq!(stages(&outcome(&row)), [(Stage::Validate, Some("base64"))]);
        let event = reelthyme_schema::ClientEvent::from_value(example(&row)).unwrap();
        let reelthyme_schema::ClientEvent::InputAudioBufferAppend(append) = event else {
            panic!()
        };
        assert_eq!(
            append.audio.decode_pcm16(),
            Err(reelthyme_schema::AudioError::InvalidBase64)
        );
    }
}

/// §8 "orphaned GA schemas": `transcription_session.update` is not a GA client event (the
/// server rejects it). The library keeps it whole as `Unknown` and validation refuses it;
/// the beta dialect maps it to GA `session.update` with `session.type = "transcription"`.
#[test]
fn defect_ga_transcription_session_update_is_not_ga() {
    let row = row(
        "client",
        "ga",
        "transcription_session.update",
        "current-spec GA",
    );
    assert_eq!(
        stages(&outcome(&row)),
        [(Stage::Validate, Some("unknownType"))]
    );
    let event = reelthyme_schema::ClientEvent::from_value(example(&row)).unwrap();
    assert!(event.is_unknown());
    let ga = reelthyme_schema::beta::client_from_value(example(&row)).unwrap();
    assert_eq!(ga.type_name(), "session.update");
    assert_eq!(reelthyme_schema::validate_client(&ga), Ok(()));
}

/// §8 "orphaned GA schemas", server side: GA servers send `session.updated` with
/// `session.type = "transcription"` instead. Strict validation fails on the unknown type;
/// drift mode reports it without failing; the beta dialect normalises it.
#[test]
fn defect_ga_transcription_session_updated_is_orphaned() {
    let row = row(
        "server",
        "ga",
        "transcription_session.updated",
        "current-spec GA",
    );
    assert_eq!(
        stages(&outcome(&row)),
        [(Stage::Validate, Some("unknownType"))]
    );
    let lenient = check_line(
        &row.line,
        CheckOptions {
            roundtrip: true,
            drift: true,
            ..CheckOptions::default()
        },
    );
    assert!(lenient.passed(), "{lenient:?}");
    assert_eq!(lenient.drift.len(), 1);
    let ga = reelthyme_schema::beta::server_from_value(example(&row)).unwrap();
    let reelthyme_schema::ServerEvent::SessionUpdated(updated) = ga else {
        panic!("{ga:?}")
    };
    assert_eq!(
        updated.session.kind,
        Some(reelthyme_schema::SessionKind::Transcription)
    );
}

/// §8 "Dtmf example": its type has a leading space. The row's declared type disagrees and
/// the type is unknown; with the space removed the event parses — without an `event_id`,
/// as SIP servers send it — and validates.
#[test]
fn defect_dtmf_example_type_has_a_leading_space() {
    let row = row(
        "server",
        "ga",
        "input_audio_buffer.dtmf_event_received",
        "current-spec GA",
    );
    assert_eq!(
        stages(&outcome(&row)),
        [(Stage::Row, None), (Stage::Validate, Some("unknownType"))]
    );
    let mut fixed = example(&row);
    fixed["type"] = Value::from("input_audio_buffer.dtmf_event_received");
    let event = reelthyme_schema::ServerEvent::from_value(fixed.clone()).unwrap();
    assert_eq!(event.event_id(), None);
    assert!(reelthyme_schema::validate_server_value(&fixed).is_strictly_valid());
}

/// §8 "Beta `conversation.item.retrieved` example": its type is `conversation.item.created`.
/// The row disagrees with its event; the event itself is a valid `conversation.item.created`,
/// which the beta dialect normalises to GA's `conversation.item.added`.
#[test]
fn defect_beta_retrieved_example_is_a_created_event() {
    let row = row("server", "beta", "conversation.item.retrieved", "pre-GA");
    assert_eq!(stages(&outcome(&row)), [(Stage::Row, None)]);
    let event = reelthyme_schema::beta::server_from_value(example(&row)).unwrap();
    assert_eq!(event.type_name(), "conversation.item.added");
}

/// §8 "GA examples with legacy content types": GA items that spell assistant content
/// `text` / `audio` (with `"format": "pcm16"`). Live servers send them too, so the library
/// accepts them, keeps the spelling on re-serialisation and reads the text either way.
#[test]
fn legacy_content_spellings_in_ga_examples_are_tolerated() {
    let retrieved_row = row(
        "server",
        "ga",
        "conversation.item.retrieved",
        "current-spec GA",
    );
    assert!(outcome(&retrieved_row).passed());
    let event = reelthyme_schema::ServerEvent::from_value(example(&retrieved_row)).unwrap();
    let reelthyme_schema::ServerEvent::ConversationItemRetrieved(retrieved) = &event else {
        panic!()
    };
    let reelthyme_schema::Item::Message(message) = &retrieved.item else {
        panic!()
    };
    assert!(matches!(
        message.content[0],
        reelthyme_schema::ContentPart::Audio(_)
    ));
    assert!(message.text().starts_with("Yes, I can hear you"));
    assert_eq!(event.to_value()["item"]["content"][0]["type"], "audio");
    assert!(
        outcome(&row(
            "server",
            "ga",
            "response.output_item.done",
            "current-spec GA"
        ))
        .passed()
    );
}

/// The current spec's `RealtimeBeta*` rows use GA event names (PROTOCOL.md §3.2), so they are
/// not the beta truth; read as GA they still parse into the GA types.
#[test]
fn current_spec_beta_rows_parse_as_ga() {
    for beta_row in rows()
        .iter()
        .filter(|r| r.version == "beta" && !r.source.contains("pre-GA"))
    {
        let example = example(beta_row);
        let parsed = if beta_row.direction == "client" {
            reelthyme_schema::ClientEvent::from_value(example).map(|e| e.to_value())
        } else {
            reelthyme_schema::ServerEvent::from_value(example).map(|e| e.to_value())
        };
        assert!(
            parsed.is_ok(),
            "{} {}: {parsed:?}",
            beta_row.direction,
            beta_row.kind
        );
    }
}

/// Shapes the spec allows that an earlier version refused (found in review).
#[test]
fn spec_allowed_shapes_parse_and_validate() {
    use serde_json::json;
    let part_without_text = json!({"type": "response.content_part.added", "event_id": "e", "response_id": "r",
        "item_id": "i", "output_index": 0, "content_index": 0, "part": {"type": "text"}});
    let failed_without_details = json!({"type": "conversation.item.input_audio_transcription.failed",
        "event_id": "e", "item_id": "i", "content_index": 0, "error": {}});
    let null_obfuscation = json!({"type": "response.mcp_call_arguments.delta", "event_id": "e", "response_id": "r",
        "item_id": "i", "output_index": 0, "delta": "{", "obfuscation": null});
    for event in [part_without_text, failed_without_details, null_obfuscation] {
        let line = event.to_string();
        let outcome = check_line(
            &line,
            CheckOptions {
                roundtrip: true,
                ..CheckOptions::default()
            },
        );
        assert!(outcome.passed(), "{line}: {outcome:?}");
    }
    // An unknown field inside a nullable object is drift, not an error.
    let session = json!({"type": "session.updated", "event_id": "e", "session": {"type": "realtime",
        "audio": {"input": {"transcription": {"model": "m", "brand_new": 1}}}}});
    let report = reelthyme_schema::validate_server_value(&session);
    assert!(
        report.is_valid() && !report.is_strictly_valid(),
        "{report:?}"
    );
    // MCP approval responses can be sent.
    let approval = json!({"type": "conversation.item.create", "item": {"type": "mcp_approval_response",
        "approval_request_id": "mcpr_1", "approve": true}});
    assert_eq!(reelthyme_schema::validate_client_value(&approval), Ok(()));
    // item_reference belongs in response input only.
    let reference = json!({"type": "conversation.item.create", "item": {"type": "item_reference", "id": "item_1"}});
    assert!(reelthyme_schema::validate_client_value(&reference).is_err());
}
