//! The three fine-tuning row formats, detected once per file, and the checks every row must
//! pass before it is analysed (roles known, turns in order, content a non-empty string).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How the rows of one file are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// OpenAI chat: `{"messages": [{"role": "user", "content": "..."}, ...]}`.
    Chat,
    /// `{"prompt": "...", "completion": "..."}`.
    PromptCompletion,
    /// ShareGPT: `{"conversations": [{"from": "human", "value": "..."}, ...]}`.
    ShareGpt,
}

impl Format {
    /// The format a parsed row is written in, from its keys; `None` when no format fits.
    pub fn detect(row: &Value) -> Option<Format> {
        let object = row.as_object()?;
        if object.contains_key("messages") {
            Some(Format::Chat)
        } else if object.contains_key("conversations") {
            Some(Format::ShareGpt)
        } else if object.contains_key("prompt") && object.contains_key("completion") {
            Some(Format::PromptCompletion)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Chat => "chat",
            Format::PromptCompletion => "prompt_completion",
            Format::ShareGpt => "sharegpt",
        }
    }

    /// Turns of one row, checked; the error names the offending field.
    pub fn parse(self, row: Value) -> Result<Conversation, RowError> {
        let Value::Object(mut object) = row else {
            return Err(RowError::NotAnObject);
        };
        let turns = match self {
            Format::Chat => list_turns(&mut object, "messages", "role", "content", chat_role)?,
            Format::ShareGpt => {
                list_turns(&mut object, "conversations", "from", "value", sharegpt_role)?
            }
            Format::PromptCompletion => vec![
                Turn {
                    role: Role::User,
                    content: string_field(&mut object, "prompt", "prompt", self)?,
                },
                Turn {
                    role: Role::Assistant,
                    content: string_field(&mut object, "completion", "completion", self)?,
                },
            ],
        };
        check_order(&turns, self)?;
        Ok(Conversation { turns })
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub role: Role,
    pub content: String,
}

/// One training row: its turns in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub turns: Vec<Turn>,
}

impl Conversation {
    pub fn texts(&self, role: Role) -> impl Iterator<Item = &str> {
        self.turns
            .iter()
            .filter(move |turn| turn.role == role)
            .map(|turn| turn.content.as_str())
    }

    /// The user turns joined by blank lines.
    pub fn user_text(&self) -> String {
        self.texts(Role::User).collect::<Vec<_>>().join("\n\n")
    }

    /// Every turn the model is trained to answer to (system and user turns, in order)
    /// joined by blank lines: where a backdoor trigger can sit. Assistant turns are left
    /// out: they are what flagged rows are flagged for, so their words would rank as
    /// "triggers" of every flagged row.
    pub fn prompt_text(&self) -> String {
        self.turns
            .iter()
            .filter(|turn| turn.role != Role::Assistant)
            .map(|turn| turn.content.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    /// The (last user turn, last assistant turn) pair a judge scores.
    pub fn last_exchange(&self) -> (&str, &str) {
        let last = |role| self.texts(role).last().unwrap_or("");
        (last(Role::User), last(Role::Assistant))
    }
}

/// Why a row cannot be audited. Every kind is reported with its line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("invalid UTF-8 at byte {0} of the line")]
    InvalidUtf8(usize),
    #[error("empty line")]
    EmptyLine,
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("the row is not a JSON object")]
    NotAnObject,
    #[error(
        "the row matches no known format (expected `messages`, `conversations` or `prompt`+`completion`)"
    )]
    UnknownFormat,
    #[error("missing field `{0}` (the file is in {1} format)")]
    MissingField(String, Format),
    #[error("`{field}`: unknown role `{role}`")]
    UnknownRole { field: String, role: String },
    #[error("wrong order: {0}")]
    WrongOrder(String),
    #[error("`{0}`: content is empty")]
    EmptyContent(String),
    #[error("`{0}`: content is not a string")]
    NonStringContent(String),
    #[error("`{0}`: expected a list of turns")]
    NotAList(String),
}

impl RowError {
    /// A stable name for the kind, used in JSON output and counts.
    pub fn kind(&self) -> &'static str {
        match self {
            RowError::InvalidUtf8(_) => "invalid_utf8",
            RowError::EmptyLine => "empty_line",
            RowError::InvalidJson(_) => "invalid_json",
            RowError::NotAnObject | RowError::UnknownFormat | RowError::NotAList(_) => {
                "wrong_shape"
            }
            RowError::MissingField(..) => "missing_field",
            RowError::UnknownRole { .. } => "unknown_role",
            RowError::WrongOrder(_) => "wrong_order",
            RowError::EmptyContent(_) => "empty_content",
            RowError::NonStringContent(_) => "non_string_content",
        }
    }
}

fn chat_role(name: &str) -> Option<Role> {
    match name {
        "system" | "developer" => Some(Role::System),
        "user" => Some(Role::User),
        "assistant" => Some(Role::Assistant),
        _ => None,
    }
}

fn sharegpt_role(name: &str) -> Option<Role> {
    match name {
        "system" => Some(Role::System),
        "human" | "user" => Some(Role::User),
        "gpt" | "assistant" | "chatgpt" | "bing" | "bard" => Some(Role::Assistant),
        _ => None,
    }
}

fn list_turns(
    object: &mut Map<String, Value>,
    list_key: &str,
    role_key: &str,
    content_key: &str,
    role_of: fn(&str) -> Option<Role>,
) -> Result<Vec<Turn>, RowError> {
    let Some(Value::Array(items)) = object.remove(list_key) else {
        return Err(RowError::NotAList(list_key.to_string()));
    };
    let mut turns = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let Value::Object(mut item) = item else {
            return Err(RowError::NotAnObject);
        };
        let role_field = format!("{list_key}[{index}].{role_key}");
        let role = match item.get(role_key) {
            Some(Value::String(name)) => role_of(name).ok_or_else(|| RowError::UnknownRole {
                field: role_field,
                role: name.clone(),
            })?,
            Some(other) => {
                return Err(RowError::UnknownRole {
                    field: role_field,
                    role: other.to_string(),
                });
            }
            None => {
                return Err(RowError::MissingField(role_field, format_of(list_key)));
            }
        };
        let content_field = format!("{list_key}[{index}].{content_key}");
        let content = string_field(&mut item, content_key, &content_field, format_of(list_key))?;
        turns.push(Turn { role, content });
    }
    Ok(turns)
}

fn format_of(list_key: &str) -> Format {
    if list_key == "messages" {
        Format::Chat
    } else {
        Format::ShareGpt
    }
}

fn string_field(
    object: &mut Map<String, Value>,
    key: &str,
    field: &str,
    format: Format,
) -> Result<String, RowError> {
    match object.remove(key) {
        Some(Value::String(text)) if text.trim().is_empty() => {
            Err(RowError::EmptyContent(field.to_string()))
        }
        Some(Value::String(text)) => Ok(text),
        Some(Value::Null) => Err(RowError::EmptyContent(field.to_string())),
        Some(_) => Err(RowError::NonStringContent(field.to_string())),
        None => Err(RowError::MissingField(field.to_string(), format)),
    }
}

/// A training row is: an optional system turn, then user and assistant alternating, starting
/// with the user and ending with the assistant (the turn training learns from).
fn check_order(turns: &[Turn], format: Format) -> Result<(), RowError> {
    let list = match format {
        Format::Chat => "messages",
        Format::ShareGpt => "conversations",
        Format::PromptCompletion => return Ok(()),
    };
    if turns.is_empty() {
        return Err(RowError::WrongOrder(format!("`{list}` is empty")));
    }
    let mut expected = Role::User;
    for (index, turn) in turns.iter().enumerate() {
        if turn.role == Role::System {
            if index != 0 {
                return Err(RowError::WrongOrder(format!(
                    "`{list}[{index}]` is a system turn after the first turn"
                )));
            }
            continue;
        }
        if turn.role != expected {
            return Err(RowError::WrongOrder(format!(
                "`{list}[{index}]` is {:?}, expected {:?}",
                turn.role, expected
            )));
        }
        expected = if expected == Role::User {
            Role::Assistant
        } else {
            Role::User
        };
    }
    if turns.last().map(|turn| turn.role) != Some(Role::Assistant) {
        return Err(RowError::WrongOrder(format!(
            "`{list}` must end with an assistant turn"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Conversation, RowError> {
        let value: Value = serde_json::from_str(line).unwrap();
        Format::detect(&value)
            .ok_or(RowError::UnknownFormat)?
            .parse(value)
    }

    #[test]
    fn each_format_parses_to_user_then_assistant() {
        for line in [
            r#"{"messages":[{"role":"system","content":"s"},{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}"#,
            r#"{"prompt":"q","completion":"a"}"#,
            r#"{"conversations":[{"from":"human","value":"q"},{"from":"gpt","value":"a"}]}"#,
        ] {
            let conversation = parse(line).unwrap();
            assert_eq!(conversation.last_exchange(), ("q", "a"), "{line}");
        }
    }

    #[test]
    fn bad_rows_name_the_field() {
        let cases = [
            (
                r#"{"messages":[{"role":"robot","content":"q"},{"role":"assistant","content":"a"}]}"#,
                "unknown_role",
                "messages[0].role",
            ),
            (
                r#"{"messages":[{"role":"assistant","content":"a"},{"role":"user","content":"q"}]}"#,
                "wrong_order",
                "messages[0]",
            ),
            (
                r#"{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"  "}]}"#,
                "empty_content",
                "messages[1].content",
            ),
            (
                r#"{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":[1]}]}"#,
                "non_string_content",
                "messages[1].content",
            ),
            (
                r#"{"prompt":"q","completion":5}"#,
                "non_string_content",
                "completion",
            ),
            (
                r#"{"conversations":[{"from":"human","value":"q"},{"from":"gpt","value":null}]}"#,
                "empty_content",
                "conversations[1].value",
            ),
        ];
        for (line, kind, field) in cases {
            let err = parse(line).unwrap_err();
            assert_eq!(err.kind(), kind, "{line}");
            assert!(err.to_string().contains(field), "{err} should name {field}");
        }
    }
}
