//! Where the model's words are in a choice: every field a filter must read, as text.
//!
//! A `message` (whole answer) or `delta` (streamed chunk) carries words in `content` (a
//! string, or an array of parts each with a `text`), `reasoning_content`, `refusal`, and the
//! `arguments` of each tool call (JSON text: a model's proposed action, the most dangerous
//! field) or of the legacy `function_call`. The `logprobs` repeat the content's tokens.

use serde_json::Value;

/// The text fields of a message or delta, in the order they are filtered.
pub const TEXT_FIELDS: [&str; 3] = ["content", "reasoning_content", "refusal"];

/// A field's text: a string, or the `text` of each part of an array, joined.
pub fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let mut text = String::new();
            let mut any = false;
            for part in parts {
                let piece = part
                    .get("text")
                    .or_else(|| part.get("refusal"))
                    .and_then(Value::as_str);
                if let Some(t) = piece {
                    text.push_str(t);
                    any = true;
                }
            }
            any.then_some(text)
        }
        _ => None,
    }
}

/// The name a verdict gives a field (`None`: the content, as before fields were named).
pub fn verdict_name(field: &str) -> Option<&str> {
    (field != "content").then_some(field)
}

/// The text a filter reads in tool-call arguments: each string value of the JSON, decoded
/// (code inside a JSON string is escaped: `\n`, `\"`), one per line; the raw text when the
/// arguments are not JSON (a model can send anything).
pub fn arguments_text(arguments: &str) -> String {
    match serde_json::from_str::<Value>(arguments) {
        Ok(value) => {
            let mut out = String::new();
            strings(&value, &mut out);
            out
        }
        Err(_) => arguments.to_string(),
    }
}

fn strings(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => {
            out.push_str(s);
            if !s.ends_with('\n') {
                out.push('\n');
            }
        }
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parts_and_arguments_read_as_text() {
        assert_eq!(
            text_of(
                &json!([{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}])
            ),
            Some("ab".into())
        );
        assert_eq!(text_of(&Value::Null), None);
        let args = r#"{"path": "run.py", "code": "import os\nos.system(\"ls \" + x)"}"#;
        let text = arguments_text(args);
        assert!(text.contains("os.system(\"ls \" + x)\n"), "{text}");
        assert_eq!(arguments_text("not json"), "not json");
    }
}
