//! A streamed answer: the backend's chunks pass through the stream filters (see
//! [`crate::filter::stream`]) on their way to the client as server-sent events. The trace is
//! committed when the stream ends, before `data: [DONE]` (in durable mode the client sees
//! `[DONE]` only once the trace is stored). The relay watches its client: when it goes away
//! (even while the filters hold text back and nothing is being sent) the request's cancel
//! token stops the generation, and the relay reads on only to the backend's last chunk, which
//! carries the tokens used, so that they are traced and charged.

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::mpsc;

use super::draft::{Draft, Tokens};
use super::params::Api;
use super::whole::response_text;
use super::{Accepted, identity_headers};
use crate::backend::StreamItem;
use crate::filter::choice::ChoiceStream;
use crate::filter::stream::StreamFilter;
use crate::routes::completions::{self, TextChunks};
use crate::state::AppState;

pub(super) fn respond(
    state: &AppState,
    accepted: Accepted,
    chunks: mpsc::Receiver<StreamItem>,
    draft: Draft,
) -> Response {
    let (tx, rx) = mpsc::channel::<Event>(64);
    let mut headers = axum::http::HeaderMap::new();
    identity_headers(&mut headers, &draft);
    tokio::spawn(relay(state.clone(), accepted, chunks, draft, tx));
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    response.headers_mut().extend(headers);
    response
}

async fn relay(
    state: AppState,
    accepted: Accepted,
    mut chunks: mpsc::Receiver<StreamItem>,
    mut draft: Draft,
    tx: mpsc::Sender<Event>,
) {
    let policy = &accepted.policy;
    let passthrough = StreamFilter::is_passthrough(policy);
    let mut choices: BTreeMap<usize, ChoiceStream> = BTreeMap::new();
    let mut passthrough_sent: BTreeMap<usize, String> = BTreeMap::new();
    let mut tokens: Option<Tokens> = None;
    let mut error: Option<String> = None;
    let mut client_gone = false;
    let mut review = super::review::StreamHold::new(&state, &accepted, draft.version.as_deref());
    let mut text_chunks = (accepted.api == Api::Text).then(TextChunks::default);
    loop {
        let item = if client_gone {
            chunks.recv().await
        } else {
            tokio::select! {
                item = chunks.recv() => item,
                () = tx.closed() => {
                    client_gone = true;
                    accepted.cancel.cancel();
                    continue;
                }
            }
        };
        let Some(item) = item else { break };
        let mut chunk = match item {
            StreamItem::Chunk(chunk) => chunk,
            StreamItem::Error(body) => {
                error = Some(
                    body["error"]["message"]
                        .as_str()
                        .unwrap_or("the stream broke off")
                        .to_string(),
                );
                if !client_gone {
                    let _ = tx.send(json_event(&body)).await;
                }
                break;
            }
        };
        if text_chunks.is_some() {
            completions::to_chat_chunk(&mut chunk);
        }
        if let Some(t) = chunk.get("usage").and_then(Tokens::of_usage) {
            tokens = Some(t);
        }
        if client_gone {
            continue; // only the usage is wanted now
        }
        chunk["id"] = Value::String(draft.id.clone());
        chunk["model"] = Value::String(accepted.entry.id.clone());
        let mut keep = Vec::new();
        let list = chunk
            .get_mut("choices")
            .and_then(Value::as_array_mut)
            .map(std::mem::take)
            .unwrap_or_default();
        let had_choices = !list.is_empty();
        for mut choice in list {
            let index = choice["index"].as_u64().unwrap_or(0) as usize;
            if draft.ttft_ms.is_none()
                && choice["delta"]["content"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty())
            {
                draft.ttft_ms = Some(draft.elapsed_ms());
            }
            if passthrough {
                if let Some(d) = choice["delta"]["content"].as_str() {
                    passthrough_sent.entry(index).or_default().push_str(d);
                }
                keep.push(choice);
                continue;
            }
            let state_of = choices.entry(index).or_insert_with(|| {
                let stream = ChoiceStream::new(&state.filters, policy, &accepted.user, index);
                match &accepted.review {
                    Some(review) if review.holds_code() => stream.holding_code(),
                    _ => stream,
                }
            });
            if state_of.process(&mut choice) {
                keep.push(choice);
            }
        }
        if had_choices && keep.is_empty() {
            continue;
        }
        let usage_only = !had_choices;
        if usage_only && !accepted.include_usage {
            continue; // asked upstream for the gateway's own accounting
        }
        chunk["choices"] = Value::Array(keep);
        if let Some(hold) = &mut review {
            let count: usize = choices.values().map(ChoiceStream::verdict_count).sum();
            let so_far = || {
                choices
                    .values()
                    .flat_map(ChoiceStream::verdicts_so_far)
                    .collect::<Vec<_>>()
            };
            if hold.keep_back(&chunk, count, so_far, &accepted) {
                continue; // held for review: nothing more is sent until the decision
            }
        }
        // Review reads the chat shape; the text API's chunks are reshaped after it.
        if let Some(text_chunks) = &mut text_chunks {
            text_chunks.reshape(&mut chunk);
        }
        if tx.send(json_event(&chunk)).await.is_err() {
            client_gone = true;
            accepted.cancel.cancel();
        }
    }
    let mut status = 200;
    if client_gone {
        status = 499; // as a whole answer nobody read
        error.get_or_insert_with(|| "the client went away before the end".into());
    }
    let mut verdicts = Vec::new();
    let mut texts = Vec::new();
    for (_, sent) in passthrough_sent {
        texts.push(sent);
    }
    for (_, mut c) in choices {
        texts.push(std::mem::take(&mut c.sent));
        verdicts.extend(c.into_verdicts());
    }
    if let Some(hold) = review
        && error.is_none()
        && let Some(ended) = hold
            .finish(
                &accepted,
                &draft,
                &tx,
                &verdicts,
                &response_text(&texts),
                text_chunks.as_mut(),
            )
            .await
    {
        error = Some(ended);
    }
    if let Some(t) = tokens {
        let used = t.prompt + t.completion;
        crate::budget::charge(
            &state,
            &accepted.key_id,
            &accepted.quota,
            accepted.budget,
            used,
        )
        .await;
    }
    let committed = draft
        .finish(
            &state,
            status,
            Some(&response_text(&texts)),
            tokens,
            verdicts,
            error.clone(),
        )
        .await;
    if error.is_none() && committed {
        let _ = tx.send(Event::default().data("[DONE]")).await;
    }
}

fn json_event(value: &Value) -> Event {
    Event::default().data(value.to_string())
}
