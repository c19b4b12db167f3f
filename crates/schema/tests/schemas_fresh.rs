//! The committed `schemas/` match what the types generate (rust-analyzer's
//! `ensure_file_contents`): a stale file fails with the command that fixes it.

use std::path::PathBuf;

#[test]
fn committed_schemas_are_current() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    let mut stale = Vec::new();
    for file in reelthyme_schema::schema_files() {
        let committed = std::fs::read_to_string(dir.join(file.name)).unwrap_or_default();
        if committed != file.contents {
            stale.push(file.name);
        }
    }
    assert!(
        stale.is_empty(),
        "stale: {stale:?}; run `cargo xtask regenerate-schemas` and commit the result"
    );
}

#[test]
fn committed_schemas_are_valid_json_schema_that_accepts_real_events() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    let text = std::fs::read_to_string(dir.join("client_events.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let event = reelthyme_schema::ClientEvent::user_text("hi").to_value();
    assert!(validator.is_valid(&event));
    assert!(!validator.is_valid(&serde_json::json!({"type": "conversation.item.create"})));
}
