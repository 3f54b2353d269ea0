//! A version answered in-process: the runtime's [`Engine`](emguard_runtime::Engine) for a
//! GGUF, which batches concurrent requests together (continuous batching). Each generation
//! carries the request's cancel token: when its client goes away the engine drops it before
//! the next decode step, and the answer ends with the tokens used so far
//! ([`BackendError::Cancelled`], or a last usage chunk for a stream).

mod complete;
mod stream;

use std::sync::Arc;

use emguard_runtime::{CancelToken, RuntimeError};

use super::{BackendError, Call, Generated, Reply};
use crate::error::ApiError;
use crate::routes::chat::params::{Api, ChatJob};
use crate::state::{ServedModel, unix_now};

pub struct LocalBackend {
    served: Arc<ServedModel>,
}

/// Identity shared by every chunk or the whole response of one request.
#[derive(Debug, Clone)]
struct ResponseMeta {
    id: String,
    created: u64,
    model: String,
    prompt_tokens: usize,
}

/// What a generation's end tells apart: the engine closes the channel early both when it
/// stops and when the request was cancelled; the token says which.
struct Cancellation {
    token: CancelToken,
}

impl Cancellation {
    /// `Some` when the generation ended because its client left; counted in
    /// `emguard_local_generations_cancelled_total`.
    fn of(&self, meta: &ResponseMeta, completion_tokens: usize) -> Option<Generated> {
        if !self.token.is_cancelled() {
            return None;
        }
        metrics::counter!("emguard_local_generations_cancelled_total", "model" => meta.model.clone())
            .increment(1);
        tracing::info!(model = %meta.model, completion_tokens, "the client went away: generation cancelled");
        Some(Generated {
            prompt_tokens: meta.prompt_tokens,
            completion_tokens,
        })
    }
}

impl LocalBackend {
    pub fn new(served: Arc<ServedModel>) -> LocalBackend {
        LocalBackend { served }
    }

    pub fn name(&self) -> &str {
        &self.served.id
    }

    pub async fn call(&self, call: &Call<'_>) -> Result<Reply, BackendError> {
        match call.job.api {
            Api::Chat => refuse_unsupported(call.raw)?,
            Api::Text => refuse_unsupported_text(call.raw)?,
        }
        let mut job = call.job.clone();
        let explicit_max_tokens = job.explicit_max_tokens;
        let prompt_tokens = fit_context(&self.served, &mut job, explicit_max_tokens).await?;
        let meta = ResponseMeta {
            id: format!("chatcmpl-{:032x}", rand::random::<u128>()),
            created: unix_now(),
            model: self.served.id.clone(),
            prompt_tokens,
        };
        let cancellation = Cancellation {
            token: call.cancel.clone(),
        };
        let events = self
            .served
            .engine
            .submit_cancellable(job.generate.clone(), call.cancel.clone());
        if job.stream {
            Ok(Reply::Stream(stream::relay(
                meta,
                events,
                &job,
                cancellation,
            )))
        } else {
            let whole = complete::collect(meta, events, &job, &cancellation).await?;
            Ok(Reply::Whole(serde_json::to_value(whole).map_err(|e| {
                BackendError::Unavailable(format!("encoding the answer: {e}"))
            })?))
        }
    }
}

/// Tools and structured output change what an answer is; a local model here cannot honour
/// them, so a request asking for them is refused (400, naming the field) rather than answered
/// as plain text. Upstream versions get them as sent.
fn refuse_unsupported(raw: &serde_json::Value) -> Result<(), ApiError> {
    let present = |field: &str| raw.get(field).is_some_and(|v| !v.is_null());
    let refuse = |field: &str, what: &str| {
        Err(ApiError::invalid(
            field,
            format!("{what} are not supported by this model's local version; send the request without `{field}`"),
        )
        .with_code("unsupported_parameter"))
    };
    for field in ["tools", "functions"] {
        if raw
            .get(field)
            .and_then(|v| v.as_array())
            .is_some_and(|a| !a.is_empty())
        {
            return refuse(field, "Tool calls");
        }
    }
    for field in ["tool_choice", "function_call"] {
        if present(field) && raw[field] != "none" {
            return refuse(field, "Tool calls");
        }
    }
    if present("response_format") && raw["response_format"]["type"] != "text" {
        return refuse(
            "response_format",
            "Structured outputs (JSON mode, JSON schema)",
        );
    }
    Ok(())
}

/// A legacy completion is generated from one raw prompt. What the local engine cannot do
/// (several prompts, token-id prompts, echoing the prompt, a suffix to fill in, best-of
/// sampling) is refused (400, naming the field), never silently ignored.
fn refuse_unsupported_text(raw: &serde_json::Value) -> Result<(), ApiError> {
    let refuse = |field: &str, what: &str| {
        Err(ApiError::invalid(
            field,
            format!("{what} is not supported by this model's local version"),
        )
        .with_code("unsupported_parameter"))
    };
    match &raw["prompt"] {
        serde_json::Value::String(_) => {}
        serde_json::Value::Array(prompts) if prompts.len() == 1 && prompts[0].is_string() => {}
        _ => return refuse("prompt", "A prompt other than one string"),
    }
    if raw["echo"].as_bool() == Some(true) {
        return refuse("echo", "`echo`");
    }
    if raw["suffix"].as_str().is_some_and(|s| !s.is_empty()) {
        return refuse("suffix", "`suffix` (filling in)");
    }
    if raw["best_of"].as_i64().is_some_and(|b| b > 1) {
        return refuse("best_of", "`best_of`");
    }
    Ok(())
}

/// Rejects prompts that leave no room to answer (400 `context_length_exceeded`, as OpenAI)
/// and shrinks a defaulted `max_tokens` to the room left; the prompt's tokens.
async fn fit_context(
    served: &ServedModel,
    job: &mut ChatJob,
    explicit_max_tokens: bool,
) -> Result<usize, ApiError> {
    let model = Arc::clone(served.engine.model());
    let context = model.context_length();
    let prompt = job.generate.prompt.clone();
    // Rendering and tokenizing a large prompt is CPU work: keep it off the async workers.
    let counted =
        tokio::task::spawn_blocking(move || model.prompt_tokens(&prompt).map(|t| t.len()))
            .await
            .map_err(|e| ApiError::server(format!("counting prompt tokens failed: {e}")))?;
    let field = match job.api {
        Api::Chat => "messages",
        Api::Text => "prompt",
    };
    let params = &mut job.generate.params;
    let asked = if explicit_max_tokens {
        params.max_tokens
    } else {
        1
    };
    let prompt_tokens = match counted {
        Ok(n) => n,
        // The runtime refuses a prompt that fills the context on its own.
        Err(RuntimeError::ContextOverflow { needed, .. }) => needed.saturating_sub(1),
        Err(e) => {
            return Err(ApiError::invalid(
                field,
                format!("the {field} cannot be used as a prompt: {e}"),
            ));
        }
    };
    let room = context.saturating_sub(prompt_tokens);
    if room == 0 || asked > room {
        return Err(ApiError::invalid(
            field,
            format!(
                "This model's maximum context length is {context} tokens. However, you requested {} tokens \
                 ({prompt_tokens} in the {field}, {asked} in the completion). Please reduce the length of the \
                 {field} or completion.",
                prompt_tokens + asked
            ),
        )
        .with_code("context_length_exceeded"));
    }
    params.max_tokens = params.max_tokens.min(room);
    Ok(prompt_tokens)
}
