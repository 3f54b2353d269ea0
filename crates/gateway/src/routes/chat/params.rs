//! Checks a chat-completions request against OpenAI's rules and our limits, and turns it
//! into the runtime's [`GenerateRequest`]. Every rejection names the field at fault.

use emguard_runtime::{ChatMessage, GenerateRequest, Prompt, SamplingParams};

use crate::error::ApiError;
use crate::openai::{ChatCompletionRequest, MessageContent, RequestMessage, Stop};
use crate::state::Limits;

/// Most alternatives per position the runtime returns.
const MAX_TOP_LOGPROBS: i64 = 20;
/// As OpenAI: at most four stop sequences.
const MAX_STOP: usize = 4;

/// What the handler needs once a request is accepted.
#[derive(Debug, Clone)]
pub struct ChatJob {
    pub generate: GenerateRequest,
    pub stream: bool,
    pub include_usage: bool,
    /// The client named `max_tokens` (a local version refuses a prompt that leaves less room;
    /// a defaulted one is shrunk to the room left).
    pub explicit_max_tokens: bool,
    /// Which API asked: the answer goes back in its wire format.
    pub api: Api,
}

/// The generating APIs: both run the same guard; their answers differ in shape only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`, the legacy text completions: a raw prompt, `text` in the answer.
    Text,
}

/// The sampling fields both APIs share, as sent.
pub struct SamplingFields<'a> {
    pub n: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    /// The field that set the length (`max_tokens`, `max_completion_tokens`) and its value.
    pub max_tokens: (&'static str, Option<i64>),
    pub default_max_tokens: usize,
    pub seed: Option<i64>,
    pub stop: &'a Option<Stop>,
    pub logprobs: bool,
    pub top_logprobs: Option<i64>,
    pub stream: Option<bool>,
    pub stream_options: Option<&'a crate::openai::StreamOptions>,
}

/// Validates everything that does not need the model (the model checks the context length).
pub fn validate(req: &ChatCompletionRequest, limits: &Limits) -> Result<ChatJob, ApiError> {
    let messages = messages(&req.messages)?;
    let max_tokens = match (req.max_completion_tokens, req.max_tokens) {
        (Some(v), _) => ("max_completion_tokens", Some(v)),
        (None, v) => ("max_tokens", v),
    };
    let logprobs = req.logprobs.unwrap_or(false);
    if req.top_logprobs.is_some() && !logprobs {
        return Err(ApiError::invalid(
            "top_logprobs",
            "`top_logprobs` needs `logprobs` set to true",
        ));
    }
    let fields = SamplingFields {
        n: req.n,
        temperature: req.temperature,
        top_p: req.top_p,
        max_tokens,
        default_max_tokens: limits.default_max_tokens,
        seed: req.seed,
        stop: &req.stop,
        logprobs,
        top_logprobs: req.top_logprobs,
        stream: req.stream,
        stream_options: req.stream_options.as_ref(),
    };
    sampling(Prompt::Chat(messages), &fields, limits, Api::Chat)
}

/// Checks the shared sampling fields (each rejection names its field) into a job for `prompt`.
pub fn sampling(
    prompt: Prompt,
    req: &SamplingFields<'_>,
    limits: &Limits,
    api: Api,
) -> Result<ChatJob, ApiError> {
    let n = in_range("n", req.n.unwrap_or(1), 1, limits.max_n as i64)? as usize;
    let temperature = req.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::invalid(
            "temperature",
            format!("{temperature} is not in [0, 2] - 'temperature'"),
        ));
    }
    let top_p = req.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::invalid(
            "top_p",
            format!("{top_p} is not in (0, 1] - 'top_p'"),
        ));
    }
    let (field, asked) = req.max_tokens;
    let max_tokens = match asked {
        Some(v) => in_range(field, v, 1, limits.max_tokens as i64)? as usize,
        None => req.default_max_tokens,
    };
    let stop = match req.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s.clone()],
        Some(Stop::Many(v)) => v.clone(),
    };
    if stop.len() > MAX_STOP {
        return Err(ApiError::invalid(
            "stop",
            format!(
                "at most {MAX_STOP} stop sequences are allowed, got {}",
                stop.len()
            ),
        ));
    }
    if stop.iter().any(String::is_empty) {
        return Err(ApiError::invalid(
            "stop",
            "stop sequences must not be empty",
        ));
    }
    let top_logprobs = match req.top_logprobs {
        None => 0,
        Some(v) => in_range("top_logprobs", v, 0, MAX_TOP_LOGPROBS)? as usize,
    };
    let stream = req.stream.unwrap_or(false);
    if req.stream_options.is_some() && !stream {
        return Err(ApiError::invalid(
            "stream_options",
            "`stream_options` is only allowed when `stream` is true",
        ));
    }
    Ok(ChatJob {
        generate: GenerateRequest {
            prompt,
            params: SamplingParams {
                temperature,
                top_p,
                max_tokens,
                stop,
                // Reinterpreting the sign keeps every i64 a distinct, reproducible seed.
                seed: req.seed.map_or_else(rand::random, |s| s as u64),
                n,
                logprobs: req.logprobs,
                top_logprobs,
                steering: None,
            },
        },
        stream,
        include_usage: req.stream_options.is_some_and(|o| o.include_usage),
        explicit_max_tokens: asked.is_some(),
        api,
    })
}

fn in_range(field: &str, value: i64, min: i64, max: i64) -> Result<i64, ApiError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::invalid(
            field,
            format!("`{field}` is {value}; it must be between {min} and {max}"),
        ))
    }
}

fn messages(messages: &[RequestMessage]) -> Result<Vec<ChatMessage>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "`messages` must contain at least one message",
        ));
    }
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let role = match m.role.as_str() {
                // `developer` is OpenAI's newer name for the system role.
                "system" | "developer" => "system",
                "user" => "user",
                "assistant" => "assistant",
                other => {
                    return Err(ApiError::invalid(
                        format!("messages[{i}].role"),
                        format!("role `{other}` is not supported; use system, developer, user or assistant"),
                    ));
                }
            };
            let content = match &m.content {
                Some(MessageContent::Text(text)) => text.clone(),
                Some(MessageContent::Parts(parts)) => {
                    let mut text = String::new();
                    for (j, part) in parts.iter().enumerate() {
                        match (part.kind.as_str(), &part.text) {
                            ("text", Some(t)) => text.push_str(t),
                            _ => {
                                return Err(ApiError::invalid(
                                    format!("messages[{i}].content[{j}]"),
                                    "only content parts of type `text` (with a `text` field) are supported",
                                ));
                            }
                        }
                    }
                    text
                }
                None if role == "assistant" => String::new(),
                None => return Err(ApiError::invalid(format!("messages[{i}].content"), "`content` is required")),
            };
            Ok(ChatMessage::new(role, content))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_body::parse;

    fn check(json: &str) -> Result<ChatJob, ApiError> {
        validate(&parse(json.as_bytes()).unwrap(), &Limits::default())
    }

    fn param_of(json: &str) -> String {
        check(json).unwrap_err().param.unwrap()
    }

    #[test]
    fn defaults_and_fields_map_to_sampling_params() {
        let job = check(
            r#"{"model":"m","messages":[{"role":"developer","content":[{"type":"text","text":"Be brief."}]},
               {"role":"user","content":"hi"}],"n":3,"temperature":0,"top_p":0.5,"max_tokens":7,"seed":-1,
               "stop":"\n","logprobs":true,"top_logprobs":2,"stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .unwrap();
        let p = &job.generate.params;
        assert_eq!(
            (p.n, p.temperature, p.top_p, p.max_tokens, p.seed),
            (3, 0.0, 0.5, 7, u64::MAX)
        );
        assert_eq!(p.stop, ["\n"]);
        assert!(p.logprobs && p.top_logprobs == 2 && job.stream && job.include_usage);
        assert_eq!(
            job.generate.prompt,
            Prompt::Chat(vec![
                ChatMessage::system("Be brief."),
                ChatMessage::user("hi")
            ])
        );
        let job = check(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert_eq!(
            job.generate.params.max_tokens,
            Limits::default().default_max_tokens
        );
        assert_eq!(job.generate.params.n, 1);
        assert!(!job.stream);
    }

    #[test]
    fn out_of_range_fields_are_named() {
        let base = |extra: &str| {
            format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}]{extra}}}"#)
        };
        assert_eq!(param_of(&base(r#","n":17"#)), "n");
        assert_eq!(param_of(&base(r#","n":0"#)), "n");
        assert_eq!(param_of(&base(r#","max_tokens":4097"#)), "max_tokens");
        assert_eq!(
            param_of(&base(r#","max_completion_tokens":0"#)),
            "max_completion_tokens"
        );
        assert_eq!(param_of(&base(r#","temperature":2.5"#)), "temperature");
        assert_eq!(param_of(&base(r#","top_p":0"#)), "top_p");
        assert_eq!(
            param_of(&base(r#","logprobs":true,"top_logprobs":21"#)),
            "top_logprobs"
        );
        assert_eq!(param_of(&base(r#","top_logprobs":2"#)), "top_logprobs");
        assert_eq!(param_of(&base(r#","stop":["a","b","c","d","e"]"#)), "stop");
        assert_eq!(
            param_of(&base(r#","stream_options":{"include_usage":true}"#)),
            "stream_options"
        );
        assert_eq!(param_of(r#"{"model":"m","messages":[]}"#), "messages");
        assert_eq!(
            param_of(r#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#),
            "messages[0].role"
        );
        assert_eq!(
            param_of(r#"{"model":"m","messages":[{"role":"user"}]}"#),
            "messages[0].content"
        );
        assert_eq!(
            param_of(
                r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#
            ),
            "messages[0].content[0]"
        );
    }
}
