//! The session configuration: the server's defaults, an ephemeral key's initial session,
//! `session.update`, and the settings the rest of the engine reads from it.

use reelthyme_schema::{AudioFormat, SessionConfig, SessionKind, TurnDetection};
use serde_json::{Value, json};

use super::{Engine, sane_rate};
use crate::vad::VadSettings;

const DEFAULT_INSTRUCTIONS: &str =
    "You are reelthyme's simulated assistant. You answer deterministically.";

/// The model a session gets when nothing names one.
pub(crate) const DEFAULT_MODEL: &str = "gpt-realtime";

/// The session the server starts with, as the service reports it (no id: the caller gives
/// it one). A kind this simulator does not know starts a realtime session.
pub(crate) fn default_session(kind: SessionKind, model: &str, expires_at: i64) -> SessionConfig {
    let value = if kind == SessionKind::Transcription {
        json!({
            "type": "transcription", "object": "realtime.transcription_session",
            "expires_at": expires_at,
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "gpt-4o-transcribe", "language": "", "prompt": ""},
                "noise_reduction": null,
                "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                    "silence_duration_ms": 500}}},
            "include": null,
        })
    } else {
        json!({
            "type": "realtime", "object": "realtime.session", "model": model,
            "output_modalities": ["audio"], "instructions": DEFAULT_INSTRUCTIONS,
            "tools": [], "tool_choice": "auto", "max_output_tokens": "inf", "tracing": null,
            "prompt": null, "expires_at": expires_at,
            "audio": {
                "input": {"format": {"type": "audio/pcm", "rate": 24000}, "transcription": null,
                    "noise_reduction": null,
                    "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                        "silence_duration_ms": 200, "idle_timeout_ms": null, "create_response": true,
                        "interrupt_response": true}},
                "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin", "speed": 1.0}},
            "include": null,
        })
    };
    // The literals above are fixed and parse (a unit test says so); the fallback only keeps
    // this free of panics.
    serde_json::from_value(value).unwrap_or_default()
}

/// `session` with the requested fields of `patch` applied, the server-owned ones (`id`,
/// `object`, `expires_at`, and `type` unless `keep_type`) left alone.
fn patched(
    session: &SessionConfig,
    patch: Value,
    keep_type: bool,
) -> Result<SessionConfig, String> {
    let mut current = serde_json::to_value(session).map_err(|e| e.to_string())?;
    let mut patch = patch;
    if let Value::Object(patch) = &mut patch {
        for server_owned in ["id", "object", "expires_at"] {
            patch.remove(server_owned);
        }
        if !keep_type {
            patch.remove("type");
        }
    }
    merge(&mut current, patch);
    serde_json::from_value(current).map_err(|e| e.to_string())
}

/// `session` with an ephemeral key's session configuration applied (no event; fields that
/// do not fit are ignored, as minting validated them already).
pub(crate) fn with_initial(session: &SessionConfig, initial: &Value) -> SessionConfig {
    patched(session, initial.clone(), false).unwrap_or_else(|_| session.clone())
}

impl Engine {
    /// Applies a session configuration without an event (an ephemeral key's session).
    pub(crate) fn apply_initial(&mut self, session: &Value) {
        self.session = with_initial(&self.session, session);
    }

    pub(crate) fn session_created(&mut self) {
        let session = serde_json::to_value(&self.session).unwrap_or_default();
        self.emit("session.created", json!({ "session": session }));
    }

    /// A `session.created` with the session as it is now, for one connection only (a
    /// sideband attaching to a running call), not queued with the others.
    pub(crate) fn session_created_event(&mut self) -> Value {
        self.session_created();
        self.out.pop().unwrap_or_default()
    }

    pub(super) fn session_update(&mut self, update: SessionConfig, event_id: Option<&str>) {
        if update.kind.is_some() && update.kind != self.session.kind {
            let message = "Cannot change the session type of an existing session.";
            return self.error(
                Some("invalid_value"),
                message,
                Some("session.type"),
                event_id,
            );
        }
        if update.model.is_some() && update.model != self.session.model {
            let message = "Cannot change the model of an existing session.";
            return self.error(
                Some("invalid_value"),
                message,
                Some("session.model"),
                event_id,
            );
        }
        let new_voice = update
            .audio
            .as_ref()
            .and_then(|a| a.output.as_ref())
            .and_then(|o| o.voice.as_ref());
        let old_voice = self
            .session
            .audio
            .as_ref()
            .and_then(|a| a.output.as_ref())
            .and_then(|o| o.voice.as_ref());
        if self.audio_produced && new_voice.is_some() && new_voice != old_voice {
            let message = "Cannot update a conversation's voice if assistant audio is present.";
            return self.error(
                Some("cannot_update_voice"),
                message,
                Some("session.audio.output.voice"),
                event_id,
            );
        }
        let patch = serde_json::to_value(&update).unwrap_or_default();
        match patched(&self.session, patch, true) {
            Ok(session) => self.session = session,
            Err(message) => {
                return self.error(Some("invalid_value"), &message, Some("session"), event_id);
            }
        }
        let session = serde_json::to_value(&self.session).unwrap_or_default();
        self.emit("session.updated", json!({ "session": session }));
    }

    pub(super) fn input_format(&self) -> AudioFormat {
        self.session
            .input_format()
            .cloned()
            .unwrap_or_else(AudioFormat::pcm)
    }

    pub(super) fn output_format(&self) -> AudioFormat {
        self.session
            .output_format()
            .cloned()
            .unwrap_or_else(AudioFormat::pcm)
    }

    pub(super) fn input_rate(&self) -> u32 {
        sane_rate(reelthyme_audio::codec::rate_of(Some(&self.input_format())))
    }

    pub(super) fn vad_settings(&self) -> Option<(VadSettings, bool, bool)> {
        let rate = self.input_rate();
        match self.session.turn_detection() {
            Some(Some(TurnDetection::ServerVad(vad))) => Some((
                VadSettings {
                    threshold: vad.threshold.unwrap_or(0.5),
                    prefix_padding_ms: u64::from(vad.prefix_padding_ms.unwrap_or(300)),
                    silence_duration_ms: u64::from(vad.silence_duration_ms.unwrap_or(500)),
                    rate,
                },
                vad.create_response.unwrap_or(true),
                vad.interrupt_response.unwrap_or(true),
            )),
            Some(Some(TurnDetection::SemanticVad(vad))) => {
                let silence = match vad.eagerness.as_deref() {
                    Some("high") => 250,
                    Some("low") => 1_500,
                    _ => 600,
                };
                Some((
                    VadSettings {
                        threshold: 0.5,
                        prefix_padding_ms: 300,
                        silence_duration_ms: silence,
                        rate,
                    },
                    vad.create_response.unwrap_or(true),
                    vad.interrupt_response.unwrap_or(true),
                ))
            }
            Some(None) => None,
            // Absent means the server default: server VAD.
            _ => Some((
                VadSettings {
                    threshold: 0.5,
                    prefix_padding_ms: 300,
                    silence_duration_ms: 500,
                    rate,
                },
                true,
                true,
            )),
        }
    }
}

/// Deep merge for `session.update`: objects merge, everything else (arrays, `null`) replaces.
pub(super) fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                match target.get_mut(&key) {
                    // A tagged object whose `type` changes is a different object: replace it.
                    Some(existing)
                        if existing.is_object()
                            && value.is_object()
                            && (value.get("type").is_none()
                                || existing.get("type") == value.get("type")) =>
                    {
                        merge(existing, value);
                    }
                    _ => {
                        target.insert(key, value);
                    }
                }
            }
        }
        (target, patch) => *target = patch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_parse_for_both_kinds() {
        for kind in [SessionKind::Realtime, SessionKind::Transcription] {
            let literal_parsed = default_session(kind.clone(), "m", 7);
            assert_eq!(literal_parsed.kind, Some(kind));
            assert_eq!(literal_parsed.expires_at, Some(7));
            assert!(literal_parsed.audio.is_some(), "{literal_parsed:?}");
        }
        assert_eq!(
            default_session(SessionKind::Realtime, "m", 0)
                .model
                .as_deref(),
            Some("m")
        );
    }

    #[test]
    fn merge_replaces_arrays_and_nulls_but_merges_objects() {
        let mut a =
            json!({"audio": {"input": {"format": 1, "turn_detection": {"x": 1}}}, "tools": [1, 2]});
        merge(
            &mut a,
            json!({"audio": {"input": {"turn_detection": null}}, "tools": []}),
        );
        assert_eq!(
            a,
            json!({"audio": {"input": {"format": 1, "turn_detection": null}}, "tools": []})
        );
        let mut b = json!({"format": {"type": "audio/pcm", "rate": 24000}});
        merge(&mut b, json!({"format": {"type": "audio/pcmu"}}));
        assert_eq!(b, json!({"format": {"type": "audio/pcmu"}}));
    }
}
