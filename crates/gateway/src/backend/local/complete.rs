//! A non-streamed answer: wait for every choice, then one `chat.completion` body.

use emguard_runtime::{Completion, EngineEvent};
use tokio::sync::mpsc::UnboundedReceiver;

use super::{Cancellation, ResponseMeta};
use crate::backend::BackendError;
use crate::error::ApiError;
use crate::openai::{
    ChatCompletion, Choice, ChoiceLogprobs, ResponseMessage, TokenLogprob, Usage, finish_reason,
};
use crate::routes::chat::params::ChatJob;

pub(super) async fn collect(
    meta: ResponseMeta,
    mut events: UnboundedReceiver<EngineEvent>,
    job: &ChatJob,
    cancellation: &Cancellation,
) -> Result<ChatCompletion, BackendError> {
    let mut done: Vec<Option<Completion>> = vec![None; job.generate.params.n];
    // Tokens whose text arrived, for the charge of a cancelled answer (a token that ends
    // mid-character arrives with the next one).
    let mut arrived = 0usize;
    while done.iter().any(Option::is_none) {
        match events.recv().await {
            Some(EngineEvent::Delta { .. }) => arrived += 1,
            Some(EngineEvent::Done { index, completion }) => match done.get_mut(index) {
                Some(slot) => *slot = Some(completion),
                None => {
                    return Err(ApiError::server(format!(
                        "the engine answered choice {index} of {}",
                        done.len()
                    ))
                    .into());
                }
            },
            Some(EngineEvent::Error(message)) => return Err(ApiError::server(message).into()),
            None => {
                if let Some(generated) = cancellation.of(&meta, arrived) {
                    return Err(BackendError::Cancelled(generated));
                }
                return Err(ApiError::server(
                    "the generation engine stopped before the answer was complete",
                )
                .into());
            }
        }
    }
    let completions: Vec<Completion> = done.into_iter().flatten().collect();
    let usage = usage(&completions);
    let choices = completions
        .into_iter()
        .enumerate()
        .map(|(index, c)| Choice {
            index,
            message: ResponseMessage {
                role: "assistant",
                content: c.text,
            },
            logprobs: job.generate.params.logprobs.then(|| ChoiceLogprobs {
                content: c
                    .logprobs
                    .iter()
                    .flatten()
                    .map(TokenLogprob::from)
                    .collect(),
            }),
            finish_reason: finish_reason(c.finish_reason),
        })
        .collect();
    Ok(ChatCompletion {
        id: meta.id,
        object: "chat.completion",
        created: meta.created,
        model: meta.model,
        choices,
        usage,
        system_fingerprint: None,
    })
}

/// The prompt is counted once, as OpenAI does for `n` > 1.
pub(super) fn usage(completions: &[Completion]) -> Usage {
    let prompt_tokens = completions.first().map_or(0, |c| c.prompt_tokens);
    let completion_tokens = completions.iter().map(|c| c.tokens.len()).sum();
    Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
    }
}
