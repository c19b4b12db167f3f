//! Server events from untrusted text: both parsers (the fast tag-first `from_json` and
//! serde's generic path) and the validator must not panic, must agree, and what they parse
//! must survive a round trip: `parse(serialize(parse(x))) == parse(x)`, and
//! `serialize(parse(x)) == x` as JSON values (the lossless invariant).

#![no_main]

use libfuzzer_sys::fuzz_target;
use reelthyme_schema::{ServerEvent, json_equal, validate_server_value};
use serde_json::Value;

/// Known losses, found by this target, forgotten here until they are fixed (anything else
/// lost, changed or added still fails):
/// - `Extra` never keeps a `type` key (it assumes every object with one is tagged), so a
///   `type` inside an object that is not a tagged union —
///   `{"type":"response.created","response":{"type":"x"}}` — is dropped;
/// - a plain `Option<T>` field (most fields; only some are `Option<Option<T>>`) reads an
///   explicit `null` as absent and does not write it back: `"response":{"audio":null}`.
fn forget_lost_types(original: &mut Value, parsed: &Value) {
    match (original, parsed) {
        (Value::Object(original), Value::Object(parsed)) => {
            original.retain(|key, value| !value.is_null() || parsed.contains_key(key));
            for (key, value) in original.iter_mut() {
                if let Some(parsed) = parsed.get(key) {
                    if let (Value::Object(inner), Value::Object(parsed_inner)) =
                        (&mut *value, parsed)
                        && inner.contains_key("type")
                        && !parsed_inner.contains_key("type")
                    {
                        inner.remove("type");
                    }
                    forget_lost_types(value, parsed);
                }
            }
        }
        (Value::Array(original), Value::Array(parsed)) => {
            for (value, parsed) in original.iter_mut().zip(parsed) {
                if let (Value::Object(inner), Value::Object(parsed_inner)) = (&mut *value, parsed)
                    && inner.contains_key("type")
                    && !parsed_inner.contains_key("type")
                {
                    inner.remove("type");
                }
                forget_lost_types(value, parsed);
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let fast = ServerEvent::from_json(text);
    let generic = serde_json::from_str::<ServerEvent>(text);
    let value = serde_json::from_str::<Value>(text);

    if let Ok(event) = &fast {
        let json = event.to_json();
        let again = ServerEvent::from_json(&json)
            .unwrap_or_else(|e| panic!("a serialised event does not parse ({e}): {json}"));
        assert_eq!(&again, event, "round trip changed the event: {json}");
        if let Ok(value) = &value {
            let parsed = event.to_value();
            let mut original = value.clone();
            forget_lost_types(&mut original, &parsed);
            assert!(
                json_equal(&parsed, &original),
                "parsing lost or changed something: {text} -> {json}"
            );
        }
        // The accessors look into every variant.
        let _ = (event.type_name(), event.is_unknown(), event.event_id());
        let _ = (event.response_id(), event.item_id(), event.as_error());
    }
    if let (Ok(fast), Ok(generic)) = (&fast, &generic) {
        assert_eq!(fast, generic, "the two parsers disagree on {text}");
    }
    if let Ok(value) = value {
        let report = validate_server_value(&value);
        let _ = report.clone().into_result(true);
        let _ = report.into_result(false);
        if let (Ok(from_value), Ok(fast)) = (ServerEvent::from_value(value), &fast) {
            assert_eq!(
                &from_value, fast,
                "from_value and from_json disagree on {text}"
            );
        }
    }
});
