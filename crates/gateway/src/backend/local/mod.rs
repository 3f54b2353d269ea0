//! A version answered in-process: the runtime's [`Engine`](emguard_runtime::Engine) for a
//! GGUF, which batches concurrent requests together (continuous batching).

mod complete;
mod stream;

use std::sync::Arc;

use emguard_runtime::RuntimeError;

use super::{BackendError, Call, Reply};
use crate::error::ApiError;
use crate::routes::chat::params::ChatJob;
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
}

impl LocalBackend {
    pub fn new(served: Arc<ServedModel>) -> LocalBackend {
        LocalBackend { served }
    }

    pub fn name(&self) -> &str {
        &self.served.id
    }

    pub async fn call(&self, call: &Call<'_>) -> Result<Reply, BackendError> {
        let mut job = call.job.clone();
        let explicit_max_tokens =
            call.request.max_tokens.is_some() || call.request.max_completion_tokens.is_some();
        fit_context(&self.served, &mut job, explicit_max_tokens).await?;
        let meta = ResponseMeta {
            id: format!("chatcmpl-{:032x}", rand::random::<u128>()),
            created: unix_now(),
            model: self.served.id.clone(),
        };
        let events = self.served.engine.submit(job.generate.clone());
        if job.stream {
            Ok(Reply::Stream(stream::relay(meta, events, &job)))
        } else {
            let whole = complete::collect(meta, events, &job).await?;
            Ok(Reply::Whole(serde_json::to_value(whole).map_err(|e| {
                BackendError::Unavailable(format!("encoding the answer: {e}"))
            })?))
        }
    }
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
