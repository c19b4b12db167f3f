//! The API's error wording: `error` events as the real server words them, and the codes,
//! messages and `param`s of failed validations.

use reelthyme_schema::ValidationErrors;
use serde_json::json;

use super::Engine;

/// Client event types the GA server accepts, as its `invalid_value` error lists them.
const ACCEPTED: &str = "'session.update', 'session.close', 'input_audio_buffer.append', \
    'session.input_audio_buffer.append', 'input_audio_buffer.commit', 'input_audio_buffer.clear', \
    'conversation.item.create', 'conversation.item.truncate', 'conversation.item.delete', \
    'conversation.item.retrieve', 'response.create', 'response.cancel'";

impl Engine {
    pub(crate) fn error(
        &mut self,
        code: Option<&str>,
        message: &str,
        param: Option<&str>,
        event_id: Option<&str>,
    ) {
        self.emit(
            "error",
            json!({"error": {"type": "invalid_request_error", "code": code, "message": message,
                "param": param, "event_id": event_id}}),
        );
    }

    pub(crate) fn session_expired(&mut self) {
        let minutes = self.config.session_duration.as_secs() / 60;
        let message = format!("Your session hit the maximum duration of {minutes} minutes.");
        self.error(Some("session_expired"), &message, None, None);
    }

    /// A binary frame from the client.
    pub(crate) fn binary_frame(&mut self) {
        self.emit(
            "error",
            json!({"error": {"type": "invalid_request_error", "code": "invalid_event",
                "message": "Expected a text WebSocket message; binary frames are not supported.",
                "param": null, "event_id": null}}),
        );
    }

    /// A client event of a type the server does not know.
    pub(super) fn unknown_type(&mut self, kind: &str, event_id: Option<&str>) {
        let message = format!("Invalid value: '{kind}'. Supported values are: {ACCEPTED}.");
        self.error(Some("invalid_value"), &message, Some("type"), event_id);
    }
}

/// The API's error code, message and `param` for a failed validation, as the real server
/// words them (`unknown_parameter`, `integer_below_min_value`, …).
pub(crate) fn api_error(errors: &ValidationErrors) -> (String, String, Option<String>) {
    let error = &errors.0[0];
    let param = dotted(&error.path);
    let code = match error.rule.as_str() {
        "additionalProperties" => {
            let field = error.message.split('\'').nth(1).unwrap_or_default();
            let param = if param.is_empty() {
                field.to_owned()
            } else {
                format!("{param}.{field}")
            };
            let message = format!("Unknown parameter: '{param}'.");
            return ("unknown_parameter".into(), message, Some(param));
        }
        "minimum" | "exclusiveMinimum" => "integer_below_min_value",
        "maximum" | "exclusiveMaximum" => "integer_above_max_value",
        "required" | "sessionType" => {
            let field = error.message.split('"').nth(1).unwrap_or("type");
            let param = if error.rule == "sessionType" {
                "session.type".to_owned()
            } else if param.is_empty() {
                field.to_owned()
            } else {
                format!("{param}.{field}")
            };
            return (
                "missing_required_parameter".into(),
                format!("Missing required parameter: '{param}'."),
                Some(param),
            );
        }
        "type" => "invalid_type",
        _ => "invalid_value",
    };
    let message = format!("Invalid '{param}': {}", error.message);
    (code.into(), message, Some(param).filter(|p| !p.is_empty()))
}

/// `/session/tools/0/name` → `session.tools[0].name`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        if segment.chars().all(|c| c.is_ascii_digit()) && !segment.is_empty() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment.replace("~1", "/").replace("~0", "~"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_dotted_like_the_api() {
        assert_eq!(
            dotted("/session/audio/input/format/rate"),
            "session.audio.input.format.rate"
        );
        assert_eq!(dotted("/session/tools/0/name"), "session.tools[0].name");
        assert_eq!(dotted(""), "");
    }
}
