//! What the assistant says: a scripted rule's reply, a tool call chosen from the user's
//! words (with arguments fabricated from the tool's schema), or an echo of the user.

use std::time::Duration;

use reelthyme_schema::{ResponseParams, Tool, ToolChoice, ToolChoiceMode};
use serde_json::{Map, Value, json};

use super::{Engine, Stored, truncate_chars};
use crate::config::{Match, Reply};

/// The most user text a default answer echoes back.
pub(super) const MAX_ECHO_CHARS: usize = 1_000;
/// The most user text a reply is chosen from (rules, tool guesses).
const MAX_INPUT_CHARS: usize = 64 << 10;
/// The most of a tool's name a reply quotes or matches (the service allows 64 characters).
const MAX_TOOL_NAME_CHARS: usize = 64;

impl Engine {
    fn latest_input(&self, params: &ResponseParams) -> (String, Option<(String, String)>) {
        let given: Vec<Value> = params
            .input
            .iter()
            .flatten()
            .filter_map(|i| serde_json::to_value(i).ok())
            .collect();
        fn resolve<'a>(items: &'a [Stored], value: &'a Value) -> Option<&'a Value> {
            if value["type"] == "item_reference" {
                let id = value["id"].as_str()?;
                items.iter().find(|s| s.id() == id).map(|s| &s.item)
            } else {
                Some(value)
            }
        }
        let items: Vec<&Value> = match &params.input {
            Some(_) => given
                .iter()
                .filter_map(|v| resolve(&self.items, v))
                .collect(),
            None => self.items.iter().map(|s| &s.item).collect(),
        };
        if let Some(last) = items.last()
            && last["type"] == "function_call_output"
        {
            let call_id = last["call_id"].as_str().unwrap_or_default();
            let name = items
                .iter()
                .find(|i| i["type"] == "function_call" && i["call_id"] == call_id)
                .and_then(|i| i["name"].as_str())
                .unwrap_or("tool");
            let name = truncate_chars(name, MAX_TOOL_NAME_CHARS).to_owned();
            let output = last["output"].as_str().unwrap_or_default();
            let output = truncate_chars(output, MAX_ECHO_CHARS).to_owned();
            return (String::new(), Some((name, output)));
        }
        let mut text = String::new();
        if let Some(message) = items
            .iter()
            .rev()
            .find(|i| i["type"] == "message" && i["role"] == "user")
        {
            for part in message["content"].as_array().into_iter().flatten() {
                let Some(piece) = part["text"]
                    .as_str()
                    .or_else(|| part["transcript"].as_str())
                else {
                    continue;
                };
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(truncate_chars(piece, MAX_INPUT_CHARS));
                if text.len() >= MAX_INPUT_CHARS {
                    break;
                }
            }
        }
        (truncate_chars(&text, MAX_INPUT_CHARS).to_owned(), None)
    }

    /// The reply, and how long it waits before its first output (a scripted rule's delay).
    pub(super) fn choose_reply(
        &self,
        params: &ResponseParams,
        tools: &[Tool],
        tool_choice: Option<&ToolChoice>,
    ) -> (Reply, Duration) {
        let (text, after_tool) = self.latest_input(params);
        for rule in &self.config.script {
            let matched = match &rule.when {
                Match::Any => true,
                Match::Contains(needle) => {
                    after_tool.is_none() && text.to_lowercase().contains(&needle.to_lowercase())
                }
                Match::AfterToolOutput => after_tool.is_some(),
                Match::AfterTool(tool) => after_tool
                    .as_ref()
                    .is_some_and(|(name, _)| name == truncate_chars(tool, MAX_TOOL_NAME_CHARS)),
            };
            if matched {
                return (rule.reply.clone(), rule.delay);
            }
        }
        (
            self.default_reply(text, after_tool, tools, tool_choice),
            Duration::ZERO,
        )
    }

    /// What the simulator answers when no rule matches.
    fn default_reply(
        &self,
        text: String,
        after_tool: Option<(String, String)>,
        tools: &[Tool],
        tool_choice: Option<&ToolChoice>,
    ) -> Reply {
        if let Some((name, output)) = after_tool {
            return Reply::Text(format!("The {name} tool returned {output}."));
        }
        let functions: Vec<&reelthyme_schema::FunctionTool> = tools
            .iter()
            .filter_map(|t| {
                if let Tool::Function(f) = t {
                    Some(f)
                } else {
                    None
                }
            })
            .collect();
        let forced = match tool_choice {
            Some(ToolChoice::Mode(ToolChoiceMode::None)) => {
                return Reply::Text(default_answer(&text));
            }
            Some(ToolChoice::Mode(ToolChoiceMode::Required)) => functions.first().copied(),
            Some(ToolChoice::Specific(specific)) => functions
                .iter()
                .copied()
                .find(|f| Some(&f.name) == specific.name.as_ref().and_then(Option::as_ref)),
            _ => None,
        };
        let lower = text.to_lowercase();
        let chosen = forced.or_else(|| {
            functions.iter().copied().find(|f| {
                f.name
                    .split(['_', '-'])
                    .filter(|w| w.len() > 3)
                    .any(|w| lower.contains(&w.to_lowercase()))
            })
        });
        match chosen {
            Some(function) => Reply::FunctionCall {
                name: function.name.clone(),
                arguments: arguments_for(function.parameters.as_ref(), &text),
            },
            None => Reply::Text(default_answer(&text)),
        }
    }
}

fn default_answer(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        "Hello! How can I help you today?".to_owned()
    } else if text.chars().count() > MAX_ECHO_CHARS {
        format!("You said: {}…", truncate_chars(text, MAX_ECHO_CHARS))
    } else {
        format!("You said: {text}")
    }
}

/// JSON arguments for a function from its parameter schema: required strings get the last
/// capitalised word of the user's text (a place name, usually), numbers 1, booleans true.
fn arguments_for(parameters: Option<&Value>, text: &str) -> String {
    let guess = text
        .split(|c: char| !c.is_alphanumeric())
        .rfind(|w| w.chars().next().is_some_and(char::is_uppercase))
        .map_or("unknown", |w| truncate_chars(w, 64));
    let mut args = Map::new();
    if let Some(parameters) = parameters {
        let required: Vec<&str> = parameters["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for name in required {
            let value = match parameters["properties"][name]["type"].as_str() {
                Some("number" | "integer") => json!(1),
                Some("boolean") => json!(true),
                Some("array") => json!([]),
                Some("object") => json!({}),
                _ => json!(guess),
            };
            args.insert(name.to_owned(), value);
        }
    }
    Value::Object(args).to_string()
}

/// Words with their following spaces, so the pieces concatenate back to the text.
pub(super) fn split_keep_spaces(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c == ' ' && !current.trim().is_empty() {
            current.push(c);
            pieces.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

pub(super) fn chunk_text(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_concatenate_back() {
        let text = "You said: hello  there world";
        assert_eq!(split_keep_spaces(text).concat(), text);
        assert_eq!(chunk_text("{\"a\":1}", 3).concat(), "{\"a\":1}");
    }

    #[test]
    fn arguments_follow_the_schema() {
        let schema = json!({"type": "object", "properties": {"location": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["location", "days"]});
        let args: Value = serde_json::from_str(&arguments_for(
            Some(&schema),
            "What's the weather in Paris today?",
        ))
        .unwrap();
        assert_eq!(args, json!({"location": "Paris", "days": 1}));
    }
}
