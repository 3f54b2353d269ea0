//! A streamed answer (`stream: true`): server-sent `chat.completion.chunk` events as the
//! engine produces text, a final chunk per choice with its finish reason, optionally a usage
//! chunk, then `data: [DONE]`. A client that disconnects drops the stream, which drops the
//! engine's receiver and so cancels the generation.

use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use emguard_runtime::{Completion, EngineEvent};
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::mpsc::{self, UnboundedReceiver};

use super::ResponseMeta;
use super::complete::usage;
use super::params::ChatJob;
use crate::error::ApiError;
use crate::openai::{
    ChatCompletionChunk, ChoiceLogprobs, ChunkChoice, Delta, TokenLogprob, Usage, finish_reason,
};

pub(super) fn respond(
    meta: ResponseMeta,
    events: UnboundedReceiver<EngineEvent>,
    job: &ChatJob,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
    let (tx, rx) = mpsc::channel::<Event>(64);
    tokio::spawn(relay(
        meta,
        events,
        job.generate.params.n,
        job.include_usage,
        tx,
    ));
    let stream =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
        );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Turns engine events into SSE events until every choice is done, the engine fails, or the
/// client goes away (the send fails).
async fn relay(
    meta: ResponseMeta,
    mut events: UnboundedReceiver<EngineEvent>,
    n: usize,
    include_usage: bool,
    tx: mpsc::Sender<Event>,
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
        if tx
            .send(json_event(&chunk(vec![opening], None)))
            .await
            .is_err()
        {
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
                let _ = tx.send(json_event(&ApiError::server(message).body())).await;
                return;
            }
            None => {
                let error = ApiError::server(
                    "the generation engine stopped before the answer was complete",
                );
                let _ = tx.send(json_event(&error.body())).await;
                return;
            }
        };
        if tx
            .send(json_event(&chunk(vec![choice], None)))
            .await
            .is_err()
        {
            return;
        }
    }
    if include_usage {
        let completions: Vec<Completion> = finished.into_iter().flatten().collect();
        if tx
            .send(json_event(&chunk(Vec::new(), Some(usage(&completions)))))
            .await
            .is_err()
        {
            return;
        }
    }
    let _ = tx.send(Event::default().data("[DONE]")).await;
}

fn json_event(value: &impl Serialize) -> Event {
    // These types hold only strings and numbers: serializing cannot fail.
    Event::default().data(serde_json::to_string(value).unwrap_or_default())
}
