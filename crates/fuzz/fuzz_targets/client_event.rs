//! Client events: `validate` on parsed events and the raw-JSON validation path
//! (`validate_client_value` / `validate_client_report`). Neither may panic, they must agree
//! on a parsed event, what strictly passes the raw path must parse, and parsed events must
//! round-trip.

#![no_main]

use libfuzzer_sys::fuzz_target;
use reelthyme_schema::{ClientEvent, validate, validate_client_report, validate_client_value};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(event) = ClientEvent::from_json(text) {
        let json = event.to_json();
        let again = ClientEvent::from_json(&json)
            .unwrap_or_else(|e| panic!("a serialised event does not parse ({e}): {json}"));
        assert_eq!(again, event, "round trip changed the event: {json}");

        let typed = validate(&event);
        let raw = validate_client_value(&event.to_value());
        assert_eq!(
            typed.is_ok(),
            raw.is_ok(),
            "validate and validate_client_value disagree on {json}: {typed:?} vs {raw:?}"
        );
        let _ = (event.type_name(), event.event_id());
        let _ = event.with_event_id("event_fuzz").to_json();
    }
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        let strict = validate_client_value(&value);
        let report = validate_client_report(&value);
        assert_eq!(strict.is_ok(), report.is_strictly_valid());
        if report.is_strictly_valid() {
            ClientEvent::from_value(value)
                .unwrap_or_else(|e| panic!("a valid event does not parse ({e}): {text}"));
        }
    }
});
