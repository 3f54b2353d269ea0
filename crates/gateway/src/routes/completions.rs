//! `POST /v1/completions`, OpenAI's legacy text completions: the chat route's guard (key,
//! scope, rate limits, the model's versions with their retries and fallback, the output
//! filters whole and streamed, the trace, the token charge; see [`super::chat`]) in front of
//! a raw prompt. A local version generates from the prompt as written (no chat template); an
//! upstream version gets the request at its own `/completions`.
//!
//! The guard works on one shape, the chat answer's: a legacy answer from an upstream is
//! turned into it on arrival ([`to_chat_whole`], [`to_chat_chunk`]: `text` becomes the
//! message's or delta's `content`, the logprobs their per-token list) and back into the
//! legacy shape on the way out ([`to_text_whole`], [`TextChunks`]), so that whatever a filter
//! removed from the content and logprobs is gone from `text` and `logprobs` too.

use std::collections::BTreeMap;

use emguard_runtime::Prompt;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::chat::Generating;
use super::chat::params::{self, Api, ChatJob, SamplingFields};
use crate::error::ApiError;
use crate::openai::{Stop, StreamOptions};
use crate::state::Limits;

/// OpenAI's default length of a legacy completion.
const DEFAULT_MAX_TOKENS: usize = 16;
/// OpenAI's largest legacy `logprobs` (alternatives per position).
const MAX_LOGPROBS: i64 = 5;

/// The request (the subset served; unknown fields are ignored here and forwarded upstream).
#[derive(Debug, Deserialize)]
pub struct TextCompletionRequest {
    model: String,
    /// A string, a list of strings, or token ids (one list or one per prompt).
    #[serde(default)]
    prompt: Option<Value>,
    #[serde(default)]
    n: Option<i64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default)]
    stop: Option<Stop>,
    /// How many alternatives per token to return with each token's logprob.
    #[serde(default)]
    logprobs: Option<i64>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

impl TextCompletionRequest {
    /// The prompts' texts (token-id prompts have none to show the filters).
    fn prompt_texts(&self) -> Result<Vec<String>, ApiError> {
        let bad = || {
            ApiError::invalid(
                "prompt",
                "`prompt` must be a string, a list of strings, or token ids",
            )
        };
        match &self.prompt {
            None | Some(Value::Null) => Err(ApiError::invalid("prompt", "`prompt` is required")),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) if items.is_empty() => Err(bad()),
            Some(Value::Array(items)) => {
                if items.iter().all(Value::is_string) {
                    Ok(items
                        .iter()
                        .filter_map(|p| p.as_str().map(str::to_owned))
                        .collect())
                } else if items.iter().all(Value::is_u64)
                    || items
                        .iter()
                        .all(|p| p.as_array().is_some_and(|t| t.iter().all(Value::is_u64)))
                {
                    Ok(Vec::new())
                } else {
                    Err(bad())
                }
            }
            Some(_) => Err(bad()),
        }
    }
}

impl Generating for TextCompletionRequest {
    fn model(&self) -> &str {
        &self.model
    }

    fn stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    fn validate(&self, _raw: &Value, limits: &Limits) -> Result<(ChatJob, String), ApiError> {
        let prompts = self.prompt_texts()?;
        let top_logprobs = match self.logprobs {
            None => None,
            Some(k) if (0..=MAX_LOGPROBS).contains(&k) => Some(k),
            Some(k) => {
                return Err(ApiError::invalid(
                    "logprobs",
                    format!("`logprobs` is {k}; it must be between 0 and {MAX_LOGPROBS}"),
                ));
            }
        };
        let fields = SamplingFields {
            n: self.n,
            temperature: self.temperature,
            top_p: self.top_p,
            max_tokens: ("max_tokens", self.max_tokens),
            default_max_tokens: DEFAULT_MAX_TOKENS,
            seed: self.seed,
            stop: &self.stop,
            logprobs: top_logprobs.is_some(),
            top_logprobs,
            stream: self.stream,
            stream_options: self.stream_options.as_ref(),
        };
        // A local version answers one prompt (it refuses more); an upstream takes them as sent.
        let prompt = Prompt::Text(prompts.first().cloned().unwrap_or_default());
        let job = params::sampling(prompt, &fields, limits, Api::Text)?;
        Ok((job, prompts.join("\n")))
    }
}

/// A legacy `text_completion` from an upstream, in the chat answer's shape (a chat answer,
/// from a local version, is left as it is).
pub(crate) fn to_chat_whole(answer: &mut Value) {
    for choice in choices_mut(answer) {
        if choice.get("message").is_none()
            && let Some(text) = choice.remove("text")
        {
            choice.insert(
                "message".into(),
                json!({"role": "assistant", "content": text}),
            );
            chat_logprobs(choice);
        }
    }
}

/// A legacy stream chunk from an upstream, in the chat chunk's shape.
pub(crate) fn to_chat_chunk(chunk: &mut Value) {
    for choice in choices_mut(chunk) {
        if choice.get("delta").is_none()
            && let Some(text) = choice.remove("text")
        {
            choice.insert("delta".into(), json!({"content": text}));
            chat_logprobs(choice);
        }
    }
}

/// A filtered chat answer in the legacy shape the client asked for.
pub(crate) fn to_text_whole(answer: &mut Value) {
    answer["object"] = json!("text_completion");
    for choice in choices_mut(answer) {
        let message = choice.remove("message").unwrap_or(Value::Null);
        choice.insert("text".into(), text_of(&message["content"]));
        let logprobs = legacy_logprobs(choice.get("logprobs"), 0).0;
        choice.insert("logprobs".into(), logprobs);
    }
}

/// Turns a stream's filtered chat chunks into legacy ones, keeping each choice's text
/// offset (the legacy logprobs say where each token starts).
#[derive(Default)]
pub(crate) struct TextChunks {
    offsets: BTreeMap<u64, usize>,
}

impl TextChunks {
    pub(crate) fn reshape(&mut self, chunk: &mut Value) {
        chunk["object"] = json!("text_completion");
        for choice in choices_mut(chunk) {
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            let delta = choice.remove("delta").unwrap_or(Value::Null);
            choice.insert("text".into(), text_of(&delta["content"]));
            let offset = self.offsets.entry(index).or_default();
            let (logprobs, spelled) = legacy_logprobs(choice.get("logprobs"), *offset);
            *offset += spelled;
            choice.insert("logprobs".into(), logprobs);
        }
    }
}

fn choices_mut(answer: &mut Value) -> impl Iterator<Item = &mut Map<String, Value>> {
    answer
        .get_mut("choices")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

fn text_of(content: &Value) -> Value {
    Value::String(crate::filter::fields::text_of(content).unwrap_or_default())
}

/// Legacy logprobs (`tokens`, `token_logprobs`, `top_logprobs` as token → logprob maps) as
/// chat's per-token list.
fn chat_logprobs(choice: &mut Map<String, Value>) {
    let Some(legacy) = choice.get("logprobs").filter(|l| l.is_object()) else {
        return;
    };
    let tokens = legacy["tokens"].as_array().cloned().unwrap_or_default();
    let content: Vec<Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, token)| {
            let top: Vec<Value> = legacy["top_logprobs"][i]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(t, lp)| json!({"token": t, "logprob": lp, "bytes": null}))
                        .collect()
                })
                .unwrap_or_default();
            json!({"token": token, "logprob": legacy["token_logprobs"][i], "bytes": null, "top_logprobs": top})
        })
        .collect();
    choice.insert("logprobs".into(), json!({ "content": content }));
}

/// Chat's per-token logprobs in the legacy shape, offsets counted from `start`; and the
/// bytes the tokens spell (where the next chunk's offsets start).
fn legacy_logprobs(chat: Option<&Value>, start: usize) -> (Value, usize) {
    let Some(entries) = chat.and_then(|l| l["content"].as_array()) else {
        return (Value::Null, 0);
    };
    let mut tokens = Vec::new();
    let mut token_logprobs = Vec::new();
    let mut top_logprobs = Vec::new();
    let mut text_offset = Vec::new();
    let mut offset = start;
    for e in entries {
        let token = e["token"].as_str().unwrap_or_default();
        tokens.push(json!(token));
        token_logprobs.push(e["logprob"].clone());
        let top: Map<String, Value> = e["top_logprobs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| Some((t["token"].as_str()?.to_string(), t["logprob"].clone())))
            .collect();
        top_logprobs.push(Value::Object(top));
        text_offset.push(json!(offset));
        offset += token.len();
    }
    (
        json!({"tokens": tokens, "token_logprobs": token_logprobs,
               "top_logprobs": top_logprobs, "text_offset": text_offset}),
        offset - start,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_body::parse;

    fn check(json: &str) -> Result<(ChatJob, String), ApiError> {
        let request: TextCompletionRequest = parse(json.as_bytes()).unwrap();
        request.validate(&Value::Null, &Limits::default())
    }

    #[test]
    fn a_prompt_becomes_a_raw_text_job_with_the_legacy_defaults() {
        let (job, user) =
            check(r#"{"model":"m","prompt":"Once upon a time","logprobs":2,"seed":3}"#).unwrap();
        assert_eq!(job.generate.prompt, Prompt::Text("Once upon a time".into()));
        assert_eq!(user, "Once upon a time");
        let p = &job.generate.params;
        assert_eq!(
            (p.max_tokens, p.logprobs, p.top_logprobs, p.seed),
            (16, true, 2, 3)
        );
        assert!(!job.explicit_max_tokens && job.api == Api::Text);
    }

    #[test]
    fn bad_fields_are_named() {
        let param = |json: &str| check(json).unwrap_err().param.unwrap();
        assert_eq!(param(r#"{"model":"m"}"#), "prompt");
        assert_eq!(param(r#"{"model":"m","prompt":[]}"#), "prompt");
        assert_eq!(param(r#"{"model":"m","prompt":{"a":1}}"#), "prompt");
        assert_eq!(
            param(r#"{"model":"m","prompt":"x","logprobs":6}"#),
            "logprobs"
        );
        assert_eq!(
            param(r#"{"model":"m","prompt":"x","max_tokens":0}"#),
            "max_tokens"
        );
        assert_eq!(param(r#"{"model":"m","prompt":"x","n":99}"#), "n");
    }

    #[test]
    fn legacy_answers_round_trip_through_the_chat_shape() {
        let legacy = json!({"id": "u", "object": "text_completion", "choices": [{"index": 0,
            "text": " there", "finish_reason": "stop", "logprobs": {"tokens": [" the", "re"],
            "token_logprobs": [-0.5, -0.1], "top_logprobs": [{" the": -0.5}, {"re": -0.1}],
            "text_offset": [0, 4]}}]});
        let mut answer = legacy.clone();
        to_chat_whole(&mut answer);
        assert_eq!(answer["choices"][0]["message"]["content"], " there");
        assert_eq!(
            answer["choices"][0]["logprobs"]["content"][1]["token"],
            "re"
        );
        to_text_whole(&mut answer);
        assert_eq!(answer, legacy);
    }

    #[test]
    fn streamed_offsets_run_on_across_chunks() {
        let mut chunks = TextChunks::default();
        let mut offsets = Vec::new();
        for token in ["Hel", "lo"] {
            let mut chunk = json!({"choices": [{"index": 0, "delta": {"content": token},
                "logprobs": {"content": [{"token": token, "logprob": -1.0, "top_logprobs": []}]}}]});
            chunks.reshape(&mut chunk);
            assert_eq!(chunk["choices"][0]["text"], token);
            offsets.push(chunk["choices"][0]["logprobs"]["text_offset"][0].clone());
        }
        assert_eq!(offsets, [json!(0), json!(3)]);
    }
}
