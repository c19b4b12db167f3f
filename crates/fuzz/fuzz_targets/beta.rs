//! The beta dialect normaliser, both directions, on untrusted JSON. No panics; and a beta
//! event, once normalised, is a fixed point of GA → beta → GA (the translation is inverse
//! for everything the beta wire carries).

#![no_main]

use libfuzzer_sys::fuzz_target;
use reelthyme_schema::{ClientEvent, ServerEvent, beta};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = beta::parse_server(text);
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return;
    };

    // Server events: beta → GA → beta → GA.
    let _ = beta::server_value_to_beta(value.clone());
    let _ = ServerEvent::from_value(beta::server_to_ga(value.clone()));
    if let Ok(event) = parsed {
        if let Some(back) = beta::server_to_beta(&event) {
            let again = beta::server_from_value(back.clone())
                .unwrap_or_else(|e| panic!("GA -> beta does not parse back ({e}): {back}"));
            assert_eq!(
                again, event,
                "server GA -> beta -> GA changed {text} (beta {back})"
            );
        }
    }

    // Client events: the same.
    let _ = beta::client_value_to_beta(value.clone());
    if let Ok(event) = beta::client_from_value(value) {
        let back = beta::client_to_beta(&event);
        let again = beta::client_from_value(back.clone())
            .unwrap_or_else(|e| panic!("GA -> beta does not parse back ({e}): {back}"));
        assert_eq!(
            again, event,
            "client GA -> beta -> GA changed {text} (beta {back})"
        );
        let _: &ClientEvent = &again;
    }
});
