//! What a person reads when a command fails: what happened, on one line, and what to try,
//! on a second — never a backtrace or a `Debug` dump, which help the author of the code,
//! not its user.

use reelthyme::ErrorKind;
#[cfg(feature = "audio")]
use reelthyme::audio_io::Error as AudioError;

/// The message and, when there is something to suggest, a hint.
pub(crate) fn describe(error: &anyhow::Error) -> (String, Option<String>) {
    (message(error), hint(error))
}

/// The causes, outermost first, joined by `: `, without the repetitions error chains are
/// prone to (a wrapper whose message already ends with its source's).
fn message(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || parts.iter().any(|p| p.contains(text)) {
            continue;
        }
        parts.push(text.to_owned());
    }
    parts.join(": ")
}

fn hint(error: &anyhow::Error) -> Option<String> {
    #[cfg(feature = "audio")]
    if error
        .chain()
        .find_map(|e| e.downcast_ref::<AudioError>())
        .is_some_and(|e| e.kind().is_device())
    {
        return Some(DEVICE_HINT.to_owned());
    }
    let transport = error
        .chain()
        .find_map(|e| e.downcast_ref::<reelthyme::Error>())?;
    let hint = match (transport.kind(), transport.http_status()) {
        (ErrorKind::Device, _) => DEVICE_HINT,
        (ErrorKind::Auth, _) | (ErrorKind::Connect, Some(401 | 403)) => AUTH_HINT,
        (ErrorKind::Connect, Some(404)) => BASE_URL_HINT,
        (ErrorKind::Connect, Some(500..=599)) => {
            "the server failed; try again in a moment (https://status.openai.com for OpenAI)"
        }
        (ErrorKind::Connect, Some(_)) => "check --base-url and --model",
        (ErrorKind::Connect, None) => CONNECT_HINT,
        (ErrorKind::Timeout, _) => {
            "no answer in time: check the network, and that --base-url names a Realtime API server"
        }
        (ErrorKind::InvalidRequest, _) => {
            "check --model (and --base-url: the server may speak another dialect)"
        }
        (ErrorKind::Quota, _) => {
            "check the account's billing and usage limits (https://platform.openai.com/usage)"
        }
        (ErrorKind::SessionExpired, _) => "sessions last at most 60 minutes; start a new one",
        (ErrorKind::Config, _) => BASE_URL_HINT,
        (ErrorKind::Closed, _) => "the server ended the session; starting a new one may help",
        _ => return None,
    };
    Some(hint.to_owned())
}

const AUTH_HINT: &str = "authentication failed: check the key (--api-key, or OPENAI_API_KEY); without one, chat and talk \
                         use the built-in simulator";
const BASE_URL_HINT: &str = "check --base-url: the API's base URL, ending in /v1 \
                             (https://api.openai.com/v1, or the ws://127.0.0.1:PORT that \
                             `reelthyme sim` prints)";
const CONNECT_HINT: &str = "is a server listening there? Check --base-url; `reelthyme sim` \
                            starts a local one (and chat and talk use a built-in one without a key)";
const DEVICE_HINT: &str = "`reelthyme talk --list-devices` lists the devices \
                           (choose with --input-device/--output-device); a machine without a \
                           sound card can use ALSA file devices (README.md, \"Headless machines\"), \
                           or talk by text: `reelthyme talk --text`";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_skip_causes_their_wrapper_already_says() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let error = anyhow::Error::new(io)
            .context("cannot connect to 127.0.0.1:9: connection refused")
            .context("cannot start the session");
        assert_eq!(
            message(&error),
            "cannot start the session: cannot connect to 127.0.0.1:9: connection refused"
        );
    }

    #[cfg(feature = "audio")]
    #[test]
    fn device_failures_point_to_the_device_list_and_the_headless_setup() {
        use anyhow::Context;
        let device = AudioError::new(
            reelthyme::audio_io::ErrorKind::DeviceNotFound,
            "no default input device",
        );
        let error = Err::<(), _>(device).context("the microphone").unwrap_err();
        let (message, hint) = describe(&error);
        assert_eq!(
            message,
            "the microphone: audio device: no default input device"
        );
        let hint = hint.unwrap();
        assert!(
            hint.contains("--list-devices") && hint.contains("Headless"),
            "{hint}"
        );
    }
}
