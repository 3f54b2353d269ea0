//! A streamed local answer: `chat.completion.chunk`s as the engine produces text, a final
//! chunk per choice with its finish reason, then one usage chunk (the route drops it when the
//! client did not ask). A client that disconnects drops the receiver, which ends the relay
//! and drops the engine's receiver, and so cancels the generation.

use emguard_runtime::{Completion, EngineEvent};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc::{self, Receiver, UnboundedReceiver};

use super::ResponseMeta;
use super::complete::usage;
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
) -> Receiver<StreamItem> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(forward(meta, events, job.generate.params.n, tx));
    rx
}

/// Turns engine events into chunks until every choice is done, the engine fails, or the
/// receiver goes away (the send fails).
async fn forward(
    meta: ResponseMeta,
    mut events: UnboundedReceiver<EngineEvent>,
    n: usize,
    tx: mpsc::Sender<StreamItem>,
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
    while finished.iter().any(Option::is_none) {
        let choice = match events.recv().await {
            Some(EngineEvent::Delta {
                index,
                text,
                logprobs,
            }) => ChunkChoice {
                index,
                delta: Delta {
                    role: None,
                    content: Some(text),
                },
                logprobs: logprobs.map(|p| ChoiceLogprobs {
                    content: vec![TokenLogprob::from(&p)],
                }),
                finish_reason: None,
            },
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
