//! The beta dialect normaliser, both directions, on untrusted JSON. No panics; and what is
//! written in beta shape is stable: `beta(ga(beta(e))) == beta(e)` (compared as JSON
//! values). The stronger `ga(beta(e)) == e` does not hold, by design, for GA details beta
//! cannot carry: `{"type":"audio/pcm"}` without a rate is beta's `"pcm16"`, which reads back
//! as rate 24000 (found by this target, on a GA-shaped session inside a beta event).

#![no_main]

use libfuzzer_sys::fuzz_target;
use reelthyme_schema::{beta, json_equal};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = beta::parse_server(text);
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return;
    };

    // Server events.
    let _ = beta::server_value_to_beta(value.clone());
    if let Ok(event) = parsed
        && let Some(written) = beta::server_to_beta(&event)
    {
        let again = beta::server_from_value(written.clone())
            .unwrap_or_else(|e| panic!("GA -> beta does not parse back ({e}): {written}"));
        let rewritten = beta::server_to_beta(&again).expect("the same event type");
        assert!(
            json_equal(&rewritten, &written),
            "server beta -> GA -> beta changed {written} into {rewritten} (input {text})"
        );
    }

    // Client events.
    let _ = beta::client_value_to_beta(value.clone());
    if let Ok(event) = beta::client_from_value(value) {
        let written = beta::client_to_beta(&event);
        let again = beta::client_from_value(written.clone())
            .unwrap_or_else(|e| panic!("GA -> beta does not parse back ({e}): {written}"));
        let rewritten = beta::client_to_beta(&again);
        assert!(
            json_equal(&rewritten, &written),
            "client beta -> GA -> beta changed {written} into {rewritten} (input {text})"
        );
    }
});
