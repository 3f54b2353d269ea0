//! A whole answer: filter each choice, charge its tokens, commit its trace, then send it.

use axum::Json;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::draft::{Draft, Tokens};
use super::params::Api;
use super::review::Held;
use super::{Accepted, identity_headers};
use crate::error::ApiError;
use crate::filter::choice::filter_whole;
use crate::filter::fields;
use crate::filter::stream::StreamFilter;
use crate::routes::completions;
use crate::state::AppState;

pub(super) async fn respond(
    state: &AppState,
    accepted: Accepted,
    mut answer: Value,
    mut draft: Draft,
) -> Response {
    if accepted.api == Api::Text {
        completions::to_chat_whole(&mut answer);
    }
    answer["id"] = Value::String(draft.id.clone());
    answer["model"] = Value::String(accepted.entry.id.clone());
    let mut verdicts = Vec::new();
    let mut texts = Vec::new();
    let passthrough = StreamFilter::is_passthrough(&accepted.policy);
    if let Some(choices) = answer.get_mut("choices").and_then(Value::as_array_mut) {
        for (position, choice) in choices.iter_mut().enumerate() {
            let index = choice["index"].as_u64().map_or(position, |i| i as usize);
            if passthrough {
                texts.push(fields::text_of(&choice["message"]["content"]).unwrap_or_default());
                continue;
            }
            let outcome = filter_whole(
                &state.filters,
                &accepted.policy,
                &accepted.user,
                index,
                choice,
            );
            texts.push(outcome.content);
            verdicts.extend(outcome.verdicts);
        }
    }
    let tokens = answer.get("usage").and_then(Tokens::of_usage);
    if let Some(t) = tokens {
        let used = t.prompt + t.completion;
        crate::budget::charge(
            state,
            &accepted.key_id,
            &accepted.quota,
            accepted.budget,
            used,
        )
        .await;
    }
    // Review reads the chat shape (tool calls): before the text API's answer is reshaped.
    let text = response_text(&texts);
    let reviewed =
        super::review::whole(state, &accepted, &mut draft, &answer, &text, &verdicts).await;
    let review_id = match reviewed {
        None => None,
        Some((id, Held::Release { edited })) => {
            if let Some(edited) = edited {
                // The reviewer's answer replaces the model's (text only: its tool calls go).
                let message = &mut answer["choices"][0]["message"];
                message["content"] = Value::String(edited.clone());
                if let Some(m) = message.as_object_mut() {
                    m.remove("tool_calls");
                }
                if let Some(first) = texts.first_mut() {
                    *first = edited;
                }
            }
            Some(id)
        }
        Some((
            id,
            Held::Refused {
                status,
                message,
                mut response,
            },
        )) => {
            identity_headers(response.headers_mut(), &draft);
            if let Ok(v) = HeaderValue::from_str(&id) {
                response.headers_mut().insert("x-emguard-review", v);
            }
            draft
                .finish(state, status, Some(&text), tokens, verdicts, Some(message))
                .await;
            return response;
        }
    };
    // Neither a filtered answer nor one a reviewer saw is kept: a cache hit skips both.
    if verdicts.is_empty()
        && review_id.is_none()
        && let (Some(cache), Some(key)) = (&accepted.entry.cache, accepted.cache_put)
    {
        cache.put(key, answer.clone());
    }
    if accepted.api == Api::Text {
        completions::to_text_whole(&mut answer);
    }
    let filter_header = crate::filter::header_value(&verdicts);
    let mut response = Json(&answer).into_response();
    identity_headers(response.headers_mut(), &draft);
    if let Some(Ok(v)) = filter_header.as_deref().map(HeaderValue::from_str) {
        response.headers_mut().insert("x-emguard-filter", v);
    }
    if let Some(Ok(v)) = review_id.as_deref().map(HeaderValue::from_str) {
        response.headers_mut().insert("x-emguard-review", v);
    }
    let committed = draft
        .finish(
            state,
            200,
            Some(&response_text(&texts)),
            tokens,
            verdicts,
            None,
        )
        .await;
    if committed {
        response
    } else {
        ApiError::server("the answer's trace could not be committed (durable mode)").into_response()
    }
}

/// The text a trace keeps: the answer, or a JSON array of the answers when `n` > 1.
pub(super) fn response_text(texts: &[String]) -> String {
    match texts {
        [one] => one.clone(),
        many => serde_json::to_string(many).unwrap_or_default(),
    }
}
