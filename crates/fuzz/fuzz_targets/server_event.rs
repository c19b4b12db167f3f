//! Server events from untrusted text: both parsers (the fast tag-first `from_json` and
//! serde's generic path) and the validator must not panic, must agree, and what they parse
//! must survive a round trip: `parse(serialize(parse(x))) == parse(x)`, and
//! `serialize(parse(x)) == x` as JSON values (the lossless invariant).

#![no_main]

use libfuzzer_sys::fuzz_target;
use reelthyme_schema::{ServerEvent, json_equal, validate_server_value};
use serde_json::Value;

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
            assert!(
                json_equal(&event.to_value(), value),
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
