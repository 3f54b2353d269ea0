//! `POST /v1/chat/completions`: validate, fit the context, submit to the model's engine
//! (which batches it with the requests in flight), then answer whole or as SSE.

mod complete;
mod params;
mod stream;

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use emguard_runtime::RuntimeError;

use crate::error::ApiError;
use crate::json_body::JsonBody;
use crate::openai::ChatCompletionRequest;
use crate::state::{AppState, ServedModel, unix_now};
use params::ChatJob;

pub async fn completions(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let served = state
        .model(&request.model)
        .ok_or_else(|| ApiError::model_not_found(&request.model))?
        .clone();
    let mut job = params::validate(&request, state.limits())?;
    let explicit_max_tokens =
        request.max_tokens.is_some() || request.max_completion_tokens.is_some();
    fit_context(&served, &mut job, explicit_max_tokens).await?;
    let meta = ResponseMeta {
        id: format!("chatcmpl-{:032x}", rand::random::<u128>()),
        created: unix_now(),
        model: served.id.clone(),
    };
    let events = served.engine.submit(job.generate.clone());
    if job.stream {
        Ok(stream::respond(meta, events, &job).into_response())
    } else {
        Ok(Json(complete::collect(meta, events, &job).await?).into_response())
    }
}

/// Identity shared by every chunk or the whole response of one request.
#[derive(Debug, Clone)]
struct ResponseMeta {
    id: String,
    created: u64,
    model: String,
}

/// Rejects prompts that leave no room to answer (400 `context_length_exceeded`, as OpenAI)
/// and shrinks a defaulted `max_tokens` to the room left.
async fn fit_context(
    served: &ServedModel,
    job: &mut ChatJob,
    explicit_max_tokens: bool,
) -> Result<(), ApiError> {
    let model = Arc::clone(served.engine.model());
    let context = model.context_length();
    let prompt = job.generate.prompt.clone();
    // Rendering and tokenizing a large prompt is CPU work: keep it off the async workers.
    let counted =
        tokio::task::spawn_blocking(move || model.prompt_tokens(&prompt).map(|t| t.len()))
            .await
            .map_err(|e| ApiError::server(format!("counting prompt tokens failed: {e}")))?;
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
                "messages",
                format!("the messages cannot be used as a prompt: {e}"),
            ));
        }
    };
    let room = context.saturating_sub(prompt_tokens);
    if room == 0 || asked > room {
        return Err(ApiError::invalid(
            "messages",
            format!(
                "This model's maximum context length is {context} tokens. However, you requested {} tokens \
                 ({prompt_tokens} in the messages, {asked} in the completion). Please reduce the length of the \
                 messages or completion.",
                prompt_tokens + asked
            ),
        )
        .with_code("context_length_exceeded"));
    }
    params.max_tokens = params.max_tokens.min(room);
    Ok(())
}
