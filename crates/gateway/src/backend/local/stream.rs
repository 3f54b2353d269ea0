//! A streamed local answer: `chat.completion.chunk`s as the engine produces text, a final
//! chunk per choice with its finish reason, then one usage chunk (the route drops it when the
//! client did not ask). When the client goes away the route cancels the request's token: the
//! engine drops the generation, and the relay ends with a usage chunk of the tokens used so
//! far (so that they are traced and charged).

use emguard_runtime::{Completion, EngineEvent};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc::{self, Receiver, UnboundedReceiver};

use super::complete::usage;
use super::{Cancellation, ResponseMeta};
use crate::backend::StreamItem;
use crate::error::ApiError;
use crate::openai::{
    ChatCompletionChunk, ChoiceLogprobs, ChunkChoice, Delta, TokenLogprob, Usage, finish_reason,
};
use crate::routes::chat::params::ChatJob;

pub(super) fn relay(
    meta: ResponseMeta,
    events: UnboundedReceiver<EngineEvent>,
    job: &ChatJob,
    cancellation: Cancellation,
) -> Receiver<StreamItem> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(forward(
        meta,
        events,
        job.generate.params.n,
        tx,
        cancellation,
    ));
    rx
}

/// Turns engine events into chunks until every choice is done, the engine fails, or the
/// receiver goes away (the send fails).
async fn forward(
    meta: ResponseMeta,
    mut events: UnboundedReceiver<EngineEvent>,
    n: usize,
    tx: mpsc::Sender<StreamItem>,
    cancellation: Cancellation,
) {
    let chunk = |choices: Vec<ChunkChoice>, usage: Option<Usage>| ChatCompletionChunk {
        id: meta.id.clone(),
        object: "chat.completion.chunk",
        created: meta.created,
        model: meta.model.clone(),
        choices,
        usage,
        system_fingerprint: None,
    };
    for index in 0..n {
        let opening = ChunkChoice {
            index,
            delta: Delta {
                role: Some("assistant"),
                content: Some(String::new()),
            },
            logprobs: None,
            finish_reason: None,
        };
        if tx.send(item(&chunk(vec![opening], None))).await.is_err() {
            return;
        }
    }
    let mut finished: Vec<Option<Completion>> = vec![None; n];
    // Tokens whose text arrived (see complete.rs), for the usage of a cancelled stream.
    let mut arrived = 0usize;
    while finished.iter().any(Option::is_none) {
        let choice = match events.recv().await {
            Some(EngineEvent::Delta {
                index,
                text,
                logprobs,
            }) => {
                arrived += 1;
                ChunkChoice {
                    index,
                    delta: Delta {
                        role: None,
                        content: Some(text),
                    },
                    logprobs: logprobs.map(|p| ChoiceLogprobs {
                        content: vec![TokenLogprob::from(&p)],
                    }),
                    finish_reason: None,
                }
            }
            Some(EngineEvent::Done { index, completion }) => {
                let reason = finish_reason(completion.finish_reason);
                if let Some(slot) = finished.get_mut(index) {
                    *slot = Some(completion);
                }
                ChunkChoice {
                    index,
                    delta: Delta::default(),
                    logprobs: None,
                    finish_reason: Some(reason),
                }
            }
            Some(EngineEvent::Error(message)) => {
                let _ = tx.send(error(&ApiError::server(message))).await;
                return;
            }
            None => {
                if let Some(generated) = cancellation.of(&meta, arrived) {
                    let usage = Usage {
                        prompt_tokens: generated.prompt_tokens,
                        completion_tokens: generated.completion_tokens,
                        total_tokens: generated.prompt_tokens + generated.completion_tokens,
                    };
                    let _ = tx.send(item(&chunk(Vec::new(), Some(usage)))).await;
                    return;
                }
                let e = ApiError::server(
                    "the generation engine stopped before the answer was complete",
                );
                let _ = tx.send(error(&e)).await;
                return;
            }
        };
        if tx.send(item(&chunk(vec![choice], None))).await.is_err() {
            return;
        }
    }
    let completions: Vec<Completion> = finished.into_iter().flatten().collect();
    let _ = tx
        .send(item(&chunk(Vec::new(), Some(usage(&completions)))))
        .await;
}

fn item(chunk: &impl Serialize) -> StreamItem {
    // These types hold only strings and numbers: serializing cannot fail.
    StreamItem::Chunk(serde_json::to_value(chunk).unwrap_or(Value::Null))
}

fn error(e: &ApiError) -> StreamItem {
    StreamItem::Error(serde_json::to_value(e.body()).unwrap_or(Value::Null))
}
