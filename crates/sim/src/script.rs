//! Script files: a [`SimConfig`]'s rules and transcripts written in TOML, for
//! `reelthyme sim --script FILE` and for tests that share a file with it.
//!
//! The file is a separate model mapped onto [`Rule`]s: the TOML keys are chosen for hand
//! writing (one table per rule, one key per kind of answer), while [`Match`] and [`Reply`]
//! stay the Rust API. Every table refuses unknown keys, so a misspelt key is an error at its
//! line rather than a rule that silently never matches.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::Value;

use crate::config::{Match, Reply, Rule, SimConfig};

/// The error a failed response gets when the script names no code.
const DEFAULT_FAIL_CODE: &str = "server_error";
/// The message a failed response gets when the script names none (the service's wording).
const DEFAULT_FAIL_MESSAGE: &str = "The server had an error while processing your request.";

/// Why a script could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScriptError {
    /// The file could not be read.
    #[error("cannot read the script {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The text is not a valid script: not TOML, an unknown key, a value of the wrong type,
    /// or a rule without exactly one answer.
    #[error("invalid script{}: {message}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Invalid {
        /// The file, when the script came from one.
        path: Option<PathBuf>,
        /// The line (1-based) the error is at, when known.
        line: Option<usize>,
        /// What is wrong, with the line, the column and the offending text.
        message: String,
    },
    /// The script's `voice` file could not be used.
    #[error("the voice at line {line} of the script: {source}")]
    Voice {
        /// The line (1-based) of the `voice` key.
        line: usize,
        /// Why.
        #[source]
        source: VoiceError,
    },
}

impl ScriptError {
    /// The line (1-based) of the script the error is at, when it is about the script's text.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Read { .. } => None,
            Self::Invalid { line, .. } => *line,
            Self::Voice { line, .. } => Some(*line),
        }
    }
}

/// Why a WAV file could not be a recorded voice ([`SimConfig::voice_file`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VoiceError {
    /// The file could not be opened or read.
    #[error("cannot read the voice {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a WAV file, or a damaged one.
    #[error("{} is not a WAV file: {message}", path.display())]
    NotWav {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A WAV file whose samples are neither 16-bit PCM nor 32-bit float.
    #[error("{}: unsupported sample format ({format}); use 16-bit PCM or 32-bit float", path.display())]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The format it has, e.g. `24-bit integer`.
        format: String,
    },
    /// A WAV file without a single sample.
    #[error("{} has no audio (no samples)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// The samples of a WAV file, downmixed to mono PCM16, and its rate.
fn read_voice(path: &Path) -> Result<(Vec<i16>, u32), VoiceError> {
    let file = std::fs::File::open(path).map_err(|source| VoiceError::Read {
        path: path.to_owned(),
        source,
    })?;
    let malformed = |error: hound::Error| match error {
        // hound reports a file cut short as `Other` or `UnexpectedEof`: not a read failure.
        hound::Error::IoError(source)
            if !matches!(
                source.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::Other
                    | std::io::ErrorKind::InvalidData
            ) =>
        {
            VoiceError::Read {
                path: path.to_owned(),
                source,
            }
        }
        hound::Error::Unsupported => VoiceError::UnsupportedFormat {
            path: path.to_owned(),
            format: "a WAV encoding hound cannot read".into(),
        },
        error => VoiceError::NotWav {
            path: path.to_owned(),
            message: error.to_string(),
        },
    };
    let reader = hound::WavReader::new(std::io::BufReader::new(file)).map_err(malformed)?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let interleaved: Vec<i16> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, 16) => reader
            .into_samples::<i16>()
            .collect::<Result<_, _>>()
            .map_err(malformed)?,
        (hound::SampleFormat::Float, 32) => reader
            .into_samples::<f32>()
            .map(|s| s.map(|s| (s.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16))
            .collect::<Result<_, _>>()
            .map_err(malformed)?,
        (format, bits) => {
            return Err(VoiceError::UnsupportedFormat {
                path: path.to_owned(),
                format: match format {
                    hound::SampleFormat::Int => format!("{bits}-bit integer"),
                    hound::SampleFormat::Float => format!("{bits}-bit float"),
                },
            });
        }
    };
    let samples: Vec<i16> = if channels == 1 {
        interleaved
    } else {
        interleaved
            .chunks_exact(channels)
            .map(|frame| {
                let sum: i32 = frame.iter().map(|&s| i32::from(s)).sum();
                // The mean of i16s fits an i16.
                (sum / channels as i32) as i16
            })
            .collect()
    };
    if samples.is_empty() || spec.sample_rate == 0 {
        return Err(VoiceError::Empty {
            path: path.to_owned(),
        });
    }
    Ok((samples, spec.sample_rate))
}

impl SimConfig {
    /// The default configuration with the rules and transcripts of a script (TOML; the
    /// format is documented in the crate's README and in `reelthyme sim --help`). Further
    /// setters apply on top; rules and transcripts added later come after the script's.
    ///
    /// ```
    /// use reelthyme_sim::SimConfig;
    ///
    /// let config = SimConfig::from_script(r#"
    ///     [[rule]]
    ///     contains = "weather"
    ///     function_call = { name = "get_weather", arguments = { city = "Paris" } }
    /// "#)?
    /// .speed(20.0);
    /// # Ok::<(), reelthyme_sim::ScriptError>(())
    /// ```
    ///
    /// # Errors
    /// [`ScriptError::Invalid`] when the text is not TOML, has a key the format does not
    /// know, a value of the wrong type, or a rule without exactly one answer; the message
    /// names the line and column.
    pub fn from_script(text: &str) -> Result<Self, ScriptError> {
        parse(text, None)
    }

    /// [`from_script`](Self::from_script) with the text of a file.
    ///
    /// # Errors
    /// [`ScriptError::Read`] when the file cannot be read (or is not UTF-8), and
    /// [`ScriptError::Invalid`] (naming the file) as for `from_script`.
    pub fn script_file(path: impl AsRef<Path>) -> Result<Self, ScriptError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ScriptError::Read {
            path: path.to_owned(),
            source,
        })?;
        parse(&text, Some(path))
    }

    /// [`voice_samples`](Self::voice_samples) with a WAV file: any rate, mono or more
    /// channels (averaged to mono), 16-bit PCM or 32-bit float samples.
    ///
    /// # Errors
    /// [`VoiceError::Read`] when the file cannot be read, [`VoiceError::NotWav`] when it is
    /// not a WAV file (or is cut short), [`VoiceError::UnsupportedFormat`] for other sample
    /// formats, [`VoiceError::Empty`] when it holds no samples.
    pub fn voice_file(self, path: impl AsRef<Path>) -> Result<Self, VoiceError> {
        let (samples, rate) = read_voice(path.as_ref())?;
        tracing::debug!(samples = samples.len(), rate, "voice loaded");
        Ok(self.voice_samples(samples, rate))
    }
}

fn parse(text: &str, path: Option<&Path>) -> Result<SimConfig, ScriptError> {
    let file: ScriptFile = toml::from_str(text).map_err(|e| ScriptError::Invalid {
        path: path.map(Path::to_owned),
        line: e.span().map(|span| line_of(text, span.start)),
        message: e.to_string().trim_end().to_owned(),
    })?;
    let mut config = SimConfig::default()
        .transcripts(file.transcripts)
        .transcript_delay(Duration::from_millis(file.transcript_delay_ms));
    for raw in file.rule {
        // Checked after parsing, with the rule's own span: an error raised while the array
        // of tables is deserialized would point at its first `[[rule]]`.
        let line = line_of(text, raw.span().start);
        let rule = raw
            .into_inner()
            .into_rule()
            .map_err(|message| ScriptError::Invalid {
                path: path.map(Path::to_owned),
                line: Some(line),
                message: format!("the [[rule]] at line {line}: {message}"),
            })?;
        config = config.add_rule(rule);
    }
    if let Some(voice) = file.voice {
        let line = line_of(text, voice.span().start);
        // Relative to the script's directory, like an include; to the working directory
        // for a script given as text.
        let voice = voice.into_inner();
        let voice = match path.and_then(Path::parent) {
            Some(dir) if voice.is_relative() => dir.join(voice),
            _ => voice,
        };
        config = config
            .voice_file(&voice)
            .map_err(|source| ScriptError::Voice { line, source })?;
    }
    tracing::debug!(rules = config.script.len(), "script loaded");
    Ok(config)
}

/// The 1-based line of a byte offset into `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptFile {
    #[serde(default)]
    transcripts: Vec<String>,
    #[serde(default)]
    transcript_delay_ms: u64,
    #[serde(default)]
    rule: Vec<toml::Spanned<RawRule>>,
    /// A WAV file the answers are spoken with, relative to the script's directory.
    #[serde(default)]
    voice: Option<toml::Spanned<PathBuf>>,
}

/// A `[[rule]]` table as written; [`RawRule::into_rule`] checks it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    contains: Option<String>,
    after_tool: Option<AfterTool>,
    text: Option<String>,
    function_call: Option<FunctionCall>,
    function_calls: Option<Vec<FunctionCall>>,
    mcp_approval: Option<McpApproval>,
    fail: Option<Fail>,
    echo: Option<String>,
    #[serde(default)]
    delay_ms: u64,
}

impl RawRule {
    fn into_rule(self) -> Result<Rule, String> {
        let when = match (self.contains, self.after_tool) {
            (Some(_), Some(_)) => {
                return Err("a rule matches on `contains` or on `after_tool`, not both".into());
            }
            (Some(needle), None) => Match::Contains(needle),
            (None, Some(AfterTool::Any)) => Match::AfterToolOutput,
            (None, Some(AfterTool::Named(name))) => Match::AfterTool(name),
            (None, None) => Match::Any,
        };
        let mut replies = Vec::new();
        if let Some(text) = self.text {
            replies.push(Reply::Text(text));
        }
        if let Some(call) = self.function_call {
            if call.name.is_empty() {
                return Err("`function_call.name` must not be empty".into());
            }
            replies.push(Reply::FunctionCall {
                name: call.name,
                arguments: call.arguments.unwrap_or_else(|| "{}".to_owned()),
            });
        }
        if let Some(calls) = self.function_calls {
            if calls.is_empty() {
                return Err("`function_calls` lists at least one call".into());
            }
            if calls.iter().any(|c| c.name.is_empty()) {
                return Err("every call of `function_calls` names its function".into());
            }
            replies.push(Reply::FunctionCalls(
                calls
                    .into_iter()
                    .map(|c| (c.name, c.arguments.unwrap_or_else(|| "{}".to_owned())))
                    .collect(),
            ));
        }
        if let Some(request) = self.mcp_approval {
            if request.name.is_empty() || request.server_label.is_empty() {
                return Err("`mcp_approval` names its `server_label` and its tool's `name`".into());
            }
            replies.push(Reply::McpApprovalRequest {
                server_label: request.server_label,
                name: request.name,
                arguments: request.arguments.unwrap_or_else(|| "{}".to_owned()),
            });
        }
        if let Some(fail) = self.fail {
            replies.push(Reply::Fail {
                code: fail.code.unwrap_or_else(|| DEFAULT_FAIL_CODE.to_owned()),
                message: fail
                    .message
                    .unwrap_or_else(|| DEFAULT_FAIL_MESSAGE.to_owned()),
            });
        }
        if let Some(transcript) = self.echo {
            replies.push(Reply::Echo(transcript));
        }
        if replies.len() != 1 {
            return Err(format!(
                "a rule answers with exactly one of `text`, `function_call`, `function_calls`, `mcp_approval`, `fail` or `echo` (this one has {})",
                replies.len()
            ));
        }
        let reply = replies.remove(0);
        Ok(Rule::new(when, reply).delay(Duration::from_millis(self.delay_ms)))
    }
}

/// `function_call = { name, arguments }`, and each call of `function_calls = [...]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FunctionCall {
    name: String,
    #[serde(default, deserialize_with = "arguments")]
    arguments: Option<String>,
}

/// `mcp_approval = { server_label, name, arguments }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct McpApproval {
    server_label: String,
    name: String,
    #[serde(default, deserialize_with = "arguments")]
    arguments: Option<String>,
}

/// `fail = { code, message }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fail {
    code: Option<String>,
    message: Option<String>,
}

/// `after_tool = "name"`, or `after_tool = true` for any tool.
#[derive(Debug)]
enum AfterTool {
    Any,
    Named(String),
}

impl<'de> Deserialize<'de> for AfterTool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AfterToolVisitor;

        impl Visitor<'_> for AfterToolVisitor {
            type Value = AfterTool;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a tool's name, or `true` for any tool")
            }

            fn visit_bool<E: de::Error>(self, any: bool) -> Result<AfterTool, E> {
                if any {
                    Ok(AfterTool::Any)
                } else {
                    Err(E::custom(
                        "`after_tool = false` matches nothing; leave the key out instead",
                    ))
                }
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<AfterTool, E> {
                if name.is_empty() {
                    Err(E::custom(
                        "`after_tool` names a tool (or is `true` for any tool)",
                    ))
                } else {
                    Ok(AfterTool::Named(name.to_owned()))
                }
            }
        }

        deserializer.deserialize_any(AfterToolVisitor)
    }
}

/// A function call's arguments: a TOML table (sent as its JSON) or a string sent as it is
/// (JSON text, or deliberately broken arguments for a client's error path).
fn arguments<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    match toml::Value::deserialize(deserializer)? {
        toml::Value::String(text) => Ok(Some(text)),
        table @ toml::Value::Table(_) => json_of(table)
            .map(|json| Some(json.to_string()))
            .map_err(de::Error::custom),
        other => Err(de::Error::custom(format!(
            "`arguments` is a table (sent as JSON) or a string, not {}",
            other.type_str()
        ))),
    }
}

/// A TOML value as JSON; dates and times become their TOML text, as JSON has none.
fn json_of(value: toml::Value) -> Result<Value, String> {
    Ok(match value {
        toml::Value::String(text) => Value::String(text),
        toml::Value::Integer(n) => Value::from(n),
        toml::Value::Float(x) => serde_json::Number::from_f64(x)
            .map(Value::Number)
            .ok_or_else(|| format!("JSON has no {x}"))?,
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(at) => Value::String(at.to_string()),
        toml::Value::Array(values) => {
            Value::Array(values.into_iter().map(json_of).collect::<Result<_, _>>()?)
        }
        toml::Value::Table(table) => Value::Object(
            table
                .into_iter()
                .map(|(key, value)| json_of(value).map(|value| (key, value)))
                .collect::<Result<_, _>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(text: &str) -> (Option<usize>, String) {
        let error = SimConfig::from_script(text).unwrap_err();
        (error.line(), error.to_string())
    }

    #[test]
    fn a_complete_script_maps_onto_rules_and_transcripts() {
        let config = SimConfig::from_script(
            r#"
transcripts = ["What's the weather in Paris?", "Thanks"]
transcript_delay_ms = 250

[[rule]]
contains = "weather"
function_call = { name = "get_weather", arguments = { city = "Paris", days = 2, hourly = false, at = 1979-05-27 } }

[[rule]]
after_tool = "get_weather"
text = "Sunny, 18 degrees."
delay_ms = 300

[[rule]]
after_tool = true
text = "Done."

[[rule]]
contains = "raw"
function_call = { name = "broken", arguments = '{"unterminated' }

[[rule]]
contains = "break"
fail = { code = "rate_limit_exceeded", message = "Slow down." }

[[rule]]
contains = "oops"
fail = {}

[[rule]]
echo = "I heard you."
"#,
        )
        .unwrap();
        assert_eq!(
            config.transcripts,
            ["What's the weather in Paris?", "Thanks"]
        );
        assert_eq!(config.transcript_delay, Duration::from_millis(250));
        let rules = &config.script;
        assert_eq!(rules.len(), 7);
        assert_eq!(rules[0].when, Match::Contains("weather".into()));
        let Reply::FunctionCall { name, arguments } = &rules[0].reply else {
            panic!("{:?}", rules[0].reply)
        };
        assert_eq!(name, "get_weather");
        let arguments: Value = serde_json::from_str(arguments).unwrap();
        assert_eq!(
            arguments,
            serde_json::json!({"city": "Paris", "days": 2, "hourly": false, "at": "1979-05-27"})
        );
        assert_eq!(rules[0].delay, Duration::ZERO);
        assert_eq!(
            rules[1],
            Rule::new(
                Match::AfterTool("get_weather".into()),
                Reply::Text("Sunny, 18 degrees.".into())
            )
            .delay(Duration::from_millis(300))
        );
        assert_eq!(rules[2].when, Match::AfterToolOutput);
        assert_eq!(
            rules[3].reply,
            Reply::FunctionCall {
                name: "broken".into(),
                arguments: r#"{"unterminated"#.into()
            }
        );
        assert_eq!(
            rules[4].reply,
            Reply::Fail {
                code: "rate_limit_exceeded".into(),
                message: "Slow down.".into()
            }
        );
        assert_eq!(
            rules[5].reply,
            Reply::Fail {
                code: DEFAULT_FAIL_CODE.into(),
                message: DEFAULT_FAIL_MESSAGE.into()
            }
        );
        assert_eq!(
            rules[6],
            Rule::new(Match::Any, Reply::Echo("I heard you.".into()))
        );
    }

    // The README's example is a complete script: it must keep parsing.
    #[test]
    fn the_readme_example_is_a_valid_script() {
        let readme = include_str!("../README.md");
        let start = readme.find("```toml\n").unwrap() + "```toml\n".len();
        let end = start + readme[start..].find("```").unwrap();
        let config = SimConfig::from_script(&readme[start..end]).unwrap();
        assert_eq!(config.script.len(), 6);
        assert!(matches!(&config.script[2].reply, Reply::FunctionCalls(calls) if calls.len() == 2));
        assert_eq!(config.transcripts.len(), 2);
        assert_eq!(config.transcript_delay, Duration::from_millis(200));
        assert_eq!(config.script[1].delay, Duration::from_millis(300));
    }

    #[test]
    fn an_empty_script_is_the_default_behaviour() {
        let config = SimConfig::from_script("# nothing scripted\n").unwrap();
        assert!(config.script.is_empty());
        assert!(config.transcripts.is_empty());
        assert_eq!(config.transcript_delay, Duration::ZERO);
    }

    #[test]
    fn a_call_without_arguments_sends_an_empty_object() {
        let config =
            SimConfig::from_script("[[rule]]\nfunction_call = { name = \"ping\" }\n").unwrap();
        assert_eq!(
            config.script[0].reply,
            Reply::FunctionCall {
                name: "ping".into(),
                arguments: "{}".into()
            }
        );
    }

    #[test]
    fn parallel_calls_are_one_reply_in_order_and_must_name_their_functions() {
        let config = SimConfig::from_script(
            "[[rule]]\nfunction_calls = [{ name = \"a\", arguments = { x = 1 } }, { name = \"b\" }]\n",
        )
        .unwrap();
        assert_eq!(
            config.script[0].reply,
            Reply::FunctionCalls(vec![
                ("a".into(), r#"{"x":1}"#.into()),
                ("b".into(), "{}".into())
            ])
        );
        let (line, message) = invalid("[[rule]]\nfunction_calls = []\n");
        assert_eq!(line, Some(1), "{message}");
        assert!(message.contains("at least one"), "{message}");
        let (_, message) = invalid("[[rule]]\nfunction_calls = [{ name = \"\" }]\n");
        assert!(message.contains("names its function"), "{message}");
        let (_, message) = invalid(
            "[[rule]]\nfunction_call = { name = \"a\" }\nfunction_calls = [{ name = \"b\" }]\n",
        );
        assert!(message.contains("has 2"), "{message}");
    }

    #[test]
    fn an_mcp_approval_request_names_its_server_and_tool() {
        let config = SimConfig::from_script(
            "[[rule]]\nmcp_approval = { server_label = \"files\", name = \"delete\", arguments = { path = \"/tmp/x\" } }\n",
        )
        .unwrap();
        assert_eq!(
            config.script[0].reply,
            Reply::McpApprovalRequest {
                server_label: "files".into(),
                name: "delete".into(),
                arguments: r#"{"path":"/tmp/x"}"#.into()
            }
        );
        let (_, message) =
            invalid("[[rule]]\nmcp_approval = { server_label = \"\", name = \"x\" }\n");
        assert!(message.contains("server_label"), "{message}");
        let (_, message) = invalid("[[rule]]\nmcp_approval = { name = \"x\" }\n");
        assert!(message.contains("server_label"), "{message}");
    }

    #[test]
    fn errors_name_the_line_and_what_is_wrong() {
        let (line, message) = invalid("[[rule]]\ncontains = \"hi\"\ntxet = \"typo\"\n");
        assert_eq!(line, Some(3), "{message}");
        assert!(message.contains("txet"), "{message}");

        // A rule's own errors point at its `[[rule]]` header.
        let (line, message) = invalid("[[rule]]\ntext = \"hi\"\n\n[[rule]]\ncontains = \"x\"\n");
        assert_eq!(line, Some(4), "{message}");
        assert!(message.contains("exactly one of"), "{message}");

        let (line, message) = invalid("[[rule]]\ncontains = \"a\"\ntext = \"b\"\necho = \"c\"\n");
        assert!(line.is_some(), "{message}");
        assert!(message.contains("has 2"), "{message}");

        let (line, message) =
            invalid("[[rule]]\ncontains = \"a\"\nafter_tool = \"t\"\ntext = \"b\"\n");
        assert!(line.is_some(), "{message}");
        assert!(message.contains("not both"), "{message}");

        let (line, message) =
            invalid("\n[[rule]]\nfunction_call = { name = \"f\", arguments = 3 }\n");
        assert_eq!(line, Some(3), "{message}");
        assert!(message.contains("not integer"), "{message}");

        let (line, message) = invalid("[[rule]]\nafter_tool = false\ntext = \"b\"\n");
        assert_eq!(line, Some(2), "{message}");
        assert!(message.contains("matches nothing"), "{message}");

        let (line, message) = invalid("[[rule]]\ndelay_ms = -5\ntext = \"b\"\n");
        assert_eq!(line, Some(2), "{message}");

        let (line, message) = invalid("transcripts = \"not a list\"\n");
        assert_eq!(line, Some(1), "{message}");

        let (line, message) = invalid("[[rule]\n");
        assert_eq!(line, Some(1), "{message}");
        assert!(message.starts_with("invalid script: "), "{message}");

        let (line, message) = invalid("speed = 3\n");
        assert_eq!(line, Some(1), "{message}");
        assert!(message.contains("speed"), "{message}");

        let (_, message) = invalid("[[rule]]\nfunction_call = { name = \"\" }\n");
        assert!(message.contains("must not be empty"), "{message}");
    }

    #[test]
    fn files_are_read_and_named_in_errors() {
        let dir = std::env::temp_dir().join(format!("reelthyme-sim-script-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, "[[rule]]\ntext = \"hi\"\n").unwrap();
        let config = SimConfig::script_file(&good).unwrap();
        assert_eq!(
            config.script,
            [Rule::new(Match::Any, Reply::Text("hi".into()))]
        );

        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "[[rule]]\ntext = 1\n").unwrap();
        let error = SimConfig::script_file(&bad).unwrap_err();
        assert_eq!(error.line(), Some(2));
        assert!(error.to_string().contains("bad.toml"), "{error}");

        let missing = dir.join("missing.toml");
        let error = SimConfig::script_file(&missing).unwrap_err();
        assert!(matches!(error, ScriptError::Read { .. }), "{error}");
        assert_eq!(error.line(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Writes a WAV file with hound: `channels`, `bits`, `format`, the interleaved samples.
    fn write_wav(path: &Path, channels: u16, bits: u16, float: bool, samples: &[f64]) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: 8_000,
            bits_per_sample: bits,
            sample_format: if float {
                hound::SampleFormat::Float
            } else {
                hound::SampleFormat::Int
            },
        };
        let mut writer = hound::WavWriter::create(path, spec).unwrap();
        for &s in samples {
            if float {
                writer.write_sample(s as f32).unwrap();
            } else {
                let max = f64::from((1u32 << (bits - 1)) as f32 - 1.0);
                writer.write_sample((s * max) as i32).unwrap();
            }
        }
        writer.finalize().unwrap();
    }

    #[test]
    fn a_script_voice_is_loaded_relative_to_the_script() {
        let dir = std::env::temp_dir().join(format!("reelthyme-sim-voice-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("voices")).unwrap();
        // Stereo 16-bit: left and right differ, the voice is their mean.
        let left: Vec<i16> = (0..400).map(|n| (n * 37 % 2000 - 1000) as i16).collect();
        let right: Vec<i16> = (0..400).map(|n| (n * 11 % 600) as i16).collect();
        let interleaved: Vec<f64> = left
            .iter()
            .zip(&right)
            .flat_map(|(&l, &r)| [f64::from(l) / 32767.0, f64::from(r) / 32767.0])
            .collect();
        write_wav(&dir.join("voices/v.wav"), 2, 16, false, &interleaved);
        let script = dir.join("script.toml");
        std::fs::write(
            &script,
            "voice = \"voices/v.wav\"\n[[rule]]\ntext = \"hi\"\n",
        )
        .unwrap();
        let config = SimConfig::script_file(&script).unwrap();
        let voice = config.voice.expect("the script's voice");
        let mono: Vec<i16> = left
            .iter()
            .zip(&right)
            .map(|(&l, &r)| ((i32::from(l) + i32::from(r)) / 2) as i16)
            .collect();
        // At the file's rate the answer is the recording itself, looped.
        assert_eq!(voice.speak_range("hi", 8_000, 0..400), mono);
        assert_eq!(voice.speak_range("hi", 8_000, 400..410), mono[..10]);
        assert_eq!(config.script.len(), 1);

        // 32-bit float, mono.
        let float = dir.join("float.wav");
        write_wav(&float, 1, 32, true, &[0.5, -0.25, 1.5, -1.0]);
        let config = SimConfig::default().voice_file(&float).unwrap();
        assert_eq!(
            config.voice.unwrap().speak_range("x", 8_000, 0..4),
            [16_383, -8_191, 32_767, -32_767]
        );

        // A missing voice names the script's line and the file.
        std::fs::write(&script, "transcripts = []\nvoice = \"nope.wav\"\n").unwrap();
        let error = SimConfig::script_file(&script).unwrap_err();
        assert_eq!(error.line(), Some(2), "{error}");
        assert!(
            matches!(&error, ScriptError::Voice { source: VoiceError::Read { path, .. }, .. } if path == &dir.join("nope.wav")),
            "{error:?}"
        );
        assert!(error.to_string().contains("nope.wav"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_voice_files_are_typed_errors() {
        let dir =
            std::env::temp_dir().join(format!("reelthyme-sim-badvoice-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = dir.join("text.wav");
        std::fs::write(&text, "hello, not a wav file at all").unwrap();
        let error = SimConfig::default().voice_file(&text).unwrap_err();
        assert!(matches!(error, VoiceError::NotWav { .. }), "{error:?}");
        assert!(error.to_string().contains("is not a WAV file"), "{error}");

        let eight = dir.join("eight.wav");
        write_wav(&eight, 1, 8, false, &[0.5, -0.5]);
        let error = SimConfig::default().voice_file(&eight).unwrap_err();
        assert!(
            matches!(&error, VoiceError::UnsupportedFormat { format, .. } if format == "8-bit integer"),
            "{error:?}"
        );
        assert!(error.to_string().contains("16-bit PCM"), "{error}");

        let empty = dir.join("empty.wav");
        write_wav(&empty, 1, 16, false, &[]);
        let error = SimConfig::default().voice_file(&empty).unwrap_err();
        assert!(matches!(error, VoiceError::Empty { .. }), "{error:?}");

        let error = SimConfig::default()
            .voice_file(dir.join("missing.wav"))
            .unwrap_err();
        assert!(
            matches!(&error, VoiceError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
            "{error:?}"
        );

        // Cut short: the header promises more samples than there are.
        let good = dir.join("good.wav");
        write_wav(&good, 1, 16, false, &[0.1; 100]);
        let bytes = std::fs::read(&good).unwrap();
        let cut = dir.join("cut.wav");
        std::fs::write(&cut, &bytes[..bytes.len() - 51]).unwrap();
        let error = SimConfig::default().voice_file(&cut).unwrap_err();
        assert!(matches!(error, VoiceError::NotWav { .. }), "{error:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn edge_cases_are_scripts_or_errors() {
        for text in [
            "\u{0}",
            "rule = 3",
            "rule = [1]",
            "[rule]\ntext = \"a\"",
            "transcript_delay_ms = 9223372036854775807",
            "[[rule]]\ntext = \"a\"\ndelay_ms = 9223372036854775807",
            "[[rule]]\nfunction_call = { name = \"f\", arguments = { x = nan } }",
        ] {
            if let Err(error) = SimConfig::from_script(text) {
                assert!(error.line().is_some(), "{text:?}: {error}");
            }
        }
    }

    proptest::proptest! {
        // Any text is a script or an error, never a panic; the second one reaches the
        // rule checks more often than random text does.
        #[test]
        fn any_text_is_a_script_or_an_error(text in "\\PC*") {
            let _ = SimConfig::from_script(&text);
        }

        #[test]
        fn any_rule_body_is_a_rule_or_an_error(body in "(contains|after_tool|text|echo|fail|function_call|name|arguments|delay_ms|code|message|[=\"{}\\[\\],.0-9 \n-]|true|false)*") {
            if let Err(error) = SimConfig::from_script(&format!("[[rule]]\n{body}")) {
                proptest::prop_assert!(error.line().is_some(), "{error}");
            }
        }
    }
}
