//! The chat route's hooks into human review (the policy and queue are the review crate's):
//! after the output filters, an answer the policy holds waits here for a reviewer; a flagged
//! one is queued and released. Streams: the parts are checked as they pass the filters; from
//! the part that triggers a hold (a code block with a finding, a sensitive tool call) on,
//! nothing more is sent until the decision. When a `hold` condition reads the whole answer
//! (the text-harm score, the local judge), the stream is kept back whole: nothing of it is
//! sent until it is complete and checked, then it is released as a stream or held.

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use emguard_review::policy::{FilterFindings, ToolCall};
use emguard_review::service::NewReview;
use emguard_review::{AnswerFacts, Check, Outcome, ReviewPolicy, ReviewService};
use serde_json::{Value, json};

use super::Accepted;
use super::draft::Draft;
use super::incident_hold;
use crate::filter::Verdict;
use crate::routes::completions::TextChunks;
use crate::state::AppState;

pub(super) fn findings_of(verdicts: &[Verdict]) -> Vec<FilterFindings> {
    verdicts
        .iter()
        .map(|v| FilterFindings {
            filter: v.filter.clone(),
            findings: v.findings.clone(),
        })
        .collect()
}

/// The tool calls of a message or delta (`tool_calls[*].function`, and the legacy
/// `function_call`).
pub(super) fn tool_calls_of(message: &Value, into: &mut Vec<ToolCall>) {
    let calls = message["tool_calls"].as_array().into_iter().flatten();
    for f in calls
        .map(|c| &c["function"])
        .chain(std::iter::once(&message["function_call"]))
    {
        if let Some(name) = f["name"].as_str() {
            into.push(ToolCall {
                name: name.to_string(),
                arguments: f["arguments"].as_str().unwrap_or("").to_string(),
            });
        }
    }
}

/// What a held answer came to: release it (maybe edited), or this response instead.
pub(super) enum Held {
    Release {
        edited: Option<String>,
    },
    Refused {
        status: u16,
        message: String,
        response: Response,
    },
}

/// Checks a whole answer; a held one waits here. `Ok(None)`: nothing to review.
pub(super) async fn whole(
    state: &AppState,
    accepted: &Accepted,
    draft: &mut Draft,
    answer: &Value,
    text: &str,
    verdicts: &[Verdict],
) -> Option<(String, Held)> {
    let incident = incident_hold::trigger(state, &accepted.entry.id, draft.version.as_deref());
    let (service, policy) = incident_hold::review_of(state, accepted, incident.as_ref())?;
    let findings = findings_of(verdicts);
    let mut calls = Vec::new();
    for choice in answer["choices"].as_array().into_iter().flatten() {
        tool_calls_of(&choice["message"], &mut calls);
    }
    let aligned = service.score(&policy, &accepted.user, text).await;
    let facts = AnswerFacts {
        question: &accepted.user,
        answer: text,
        findings: &findings,
        tool_calls: &calls,
        aligned,
        draw: accepted.draw,
    };
    let check = incident_hold::with_incident(policy.check(&facts), incident);
    let (action, triggers) = match check {
        Check::Pass => return None,
        Check::Flag(t) => (emguard_review::Action::Flag, t),
        Check::Hold(t) => (emguard_review::Action::Hold, t),
    };
    let queued = service
        .queue(NewReview {
            trace_id: &draft.id,
            model: &accepted.entry.id,
            version: draft.version.as_deref(),
            stream: false,
            question: &accepted.user,
            answer: &answer_text(text, &calls),
            action,
            triggers: &triggers,
            policy: &policy,
        })
        .await;
    let item = match queued {
        Ok(item) => item,
        Err(e) => {
            // Fail closed: an answer the policy holds is not released unreviewed.
            let message = format!("the answer needs review but could not be queued: {e}");
            tracing::error!("{message}");
            if action == emguard_review::Action::Flag {
                return None;
            }
            let response = crate::error::ApiError::server(message.clone()).into_response();
            return Some((
                String::new(),
                Held::Refused {
                    status: 500,
                    message,
                    response,
                },
            ));
        }
    };
    if action == emguard_review::Action::Flag {
        return Some((item.id, Held::Release { edited: None }));
    }
    let gone = draft.client_gone.as_mut();
    let outcome = service
        .wait(&item, async move {
            match gone {
                Some(rx) => {
                    let _ = rx.await;
                }
                None => std::future::pending().await,
            }
        })
        .await;
    let held = match outcome {
        Outcome::Release { edited } => Held::Release { edited },
        Outcome::Reject { reason } => {
            let body = rejection(&item.id, reason.as_deref(), draft, &accepted.entry.id);
            let message = body["error"]["message"].as_str().unwrap_or("").to_string();
            Held::Refused {
                status: 403,
                message,
                response: (StatusCode::FORBIDDEN, Json(body)).into_response(),
            }
        }
        Outcome::ClientGone => Held::Refused {
            status: 499,
            message: format!("the client went away while held for review {}", item.id),
            response: StatusCode::from_u16(499)
                .unwrap_or(StatusCode::BAD_REQUEST)
                .into_response(),
        },
    };
    Some((item.id, held))
}

/// The answer as a reviewer reads it: its text, then its tool calls.
pub(super) fn answer_text(text: &str, calls: &[ToolCall]) -> String {
    let mut out = text.to_string();
    for c in calls {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("[tool call] {}({})", c.name, c.arguments));
    }
    out
}

/// The error body of a rejected answer: OpenAI's error, naming the review, with the choice's
/// `finish_reason: content_filter`.
pub(super) fn rejection(
    review_id: &str,
    reason: Option<&str>,
    draft: &Draft,
    model: &str,
) -> Value {
    let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
    json!({
        "error": {
            "message": format!("The answer was withheld by human review (review {review_id}){why}."),
            "type": "content_filter",
            "param": null,
            "code": "content_filter",
            "review_id": review_id,
        },
        "id": draft.id,
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null}, "finish_reason": "content_filter"}],
    })
}

/// Review of a streamed answer: checks each part as it leaves the filters; from the part that
/// triggers a hold on (from the first part, when a hold reads the whole answer), keeps every
/// chunk back until the check or decision at the stream's end.
pub(super) struct StreamHold {
    service: Arc<ReviewService>,
    policy: Arc<ReviewPolicy>,
    /// A `hold` condition reads the whole answer: every chunk is kept back until the end.
    whole: bool,
    /// Verdicts already checked (a part is checked again only when the filters found more,
    /// or it carries a tool call).
    seen_verdicts: usize,
    checked: bool,
    calls: Vec<ToolCall>,
    /// The triggers of a hold on a part.
    held: Option<Vec<emguard_review::Trigger>>,
    /// The chunks kept back (since the hold, or all of them when `whole`).
    kept: Vec<Value>,
}

impl StreamHold {
    pub(super) fn new(
        state: &AppState,
        accepted: &Accepted,
        version: Option<&str>,
    ) -> Option<StreamHold> {
        let incident = incident_hold::trigger(state, &accepted.entry.id, version);
        let (service, policy) = incident_hold::review_of(state, accepted, incident.as_ref())?;
        Some(StreamHold {
            service: Arc::clone(service),
            whole: policy.holds_whole_answer(),
            policy,
            seen_verdicts: 0,
            checked: false,
            calls: Vec::new(),
            // A version under incident: held from its first chunk.
            held: incident.map(|t| vec![t]),
            kept: Vec::new(),
        })
    }

    /// Whether `chunk` (filtered, about to be sent) must be kept back. `verdicts`: the
    /// filters' verdicts so far, `count` of them.
    pub(super) fn keep_back(
        &mut self,
        chunk: &Value,
        count: usize,
        verdicts: impl FnOnce() -> Vec<Verdict>,
        accepted: &Accepted,
    ) -> bool {
        if self.held.is_some() {
            self.kept.push(chunk.clone());
            return true;
        }
        let before = self.calls.len();
        for choice in chunk["choices"].as_array().into_iter().flatten() {
            tool_calls_of(&choice["delta"], &mut self.calls);
        }
        if self.checked && count == self.seen_verdicts && self.calls.len() == before {
            return self.keep_whole(chunk);
        }
        self.checked = true;
        self.seen_verdicts = count;
        let findings = findings_of(&verdicts());
        let facts = AnswerFacts {
            question: &accepted.user,
            findings: &findings,
            tool_calls: &self.calls,
            draw: accepted.draw,
            ..AnswerFacts::default()
        };
        if let Check::Hold(triggers) = self.policy.check_part(&facts) {
            self.held = Some(triggers);
            self.kept.push(chunk.clone());
            return true;
        }
        self.keep_whole(chunk)
    }

    /// Keeps `chunk` back when the stream is checked whole at its end.
    fn keep_whole(&mut self, chunk: &Value) -> bool {
        if self.whole {
            self.kept.push(chunk.clone());
        }
        self.whole
    }

    /// At the stream's end: a held stream waits for its decision, then its kept chunks (or
    /// the reviewer's edit) are sent, or the content-filter ending; an unheld one may still be
    /// flagged. Returns the error that ends the stream instead of `[DONE]`, if any. Chunks
    /// are kept in the chat shape; `text_chunks` reshapes them for the text completions API.
    pub(super) async fn finish(
        self,
        accepted: &Accepted,
        draft: &Draft,
        tx: &tokio::sync::mpsc::Sender<axum::response::sse::Event>,
        verdicts: &[Verdict],
        text: &str,
        mut text_chunks: Option<&mut TextChunks>,
    ) -> Option<String> {
        let mut send = async |mut chunk: Value| {
            if let Some(text_chunks) = text_chunks.as_deref_mut() {
                text_chunks.reshape(&mut chunk);
            }
            let _ = tx.send(json_event(&chunk)).await;
        };
        let findings = findings_of(verdicts);
        let kept = self.kept;
        let (action, triggers) = match self.held {
            Some(triggers) => (emguard_review::Action::Hold, triggers),
            None => {
                let aligned = self.service.score(&self.policy, &accepted.user, text).await;
                let facts = AnswerFacts {
                    question: &accepted.user,
                    answer: text,
                    findings: &findings,
                    tool_calls: &self.calls,
                    aligned,
                    draw: accepted.draw,
                };
                // A stream kept back whole is checked like a whole answer; one sent as it
                // passed can only be flagged now.
                let check = if self.whole {
                    self.policy.check(&facts)
                } else {
                    self.policy.check_stream_end(&facts)
                };
                match check {
                    Check::Hold(t) => (emguard_review::Action::Hold, t),
                    Check::Flag(t) => (emguard_review::Action::Flag, t),
                    Check::Pass => {
                        for chunk in kept {
                            send(chunk).await;
                        }
                        return None;
                    }
                }
            }
        };
        let queued = self
            .service
            .queue(NewReview {
                trace_id: &draft.id,
                model: &accepted.entry.id,
                version: draft.version.as_deref(),
                stream: true,
                question: &accepted.user,
                answer: &answer_text(text, &self.calls),
                action,
                triggers: &triggers,
                policy: &self.policy,
            })
            .await;
        let item = match queued {
            Ok(item) => item,
            Err(e) if action == emguard_review::Action::Hold => {
                let message = format!("the answer needs review but could not be queued: {e}");
                tracing::error!("{message}");
                let _ = tx.send(error_event(&message, None)).await;
                return Some(message);
            }
            Err(e) => {
                tracing::error!(error = %e, "a flagged answer could not be queued");
                for chunk in kept {
                    send(chunk).await;
                }
                return None;
            }
        };
        if action == emguard_review::Action::Flag {
            for chunk in kept {
                send(chunk).await;
            }
            return None;
        }
        let outcome = self.service.wait(&item, tx.closed()).await;
        match outcome {
            Outcome::Release { edited: None } => {
                for chunk in kept {
                    send(chunk).await;
                }
                None
            }
            Outcome::Release {
                edited: Some(edited),
            } => {
                let chunk = json!({"id": draft.id, "object": "chat.completion.chunk", "model": accepted.entry.id,
                    "choices": [{"index": 0, "delta": {"content": edited}, "finish_reason": "stop"}]});
                send(chunk).await;
                None
            }
            Outcome::Reject { reason } => {
                let body = rejection(&item.id, reason.as_deref(), draft, &accepted.entry.id);
                let last = json!({"id": draft.id, "object": "chat.completion.chunk", "model": accepted.entry.id,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter"}]});
                send(last).await;
                let message = body["error"]["message"].as_str().unwrap_or("").to_string();
                let _ = tx.send(error_event(&message, Some(&item.id))).await;
                Some(message)
            }
            Outcome::ClientGone => Some(format!(
                "the client went away while held for review {}",
                item.id
            )),
        }
    }
}

fn json_event(value: &Value) -> axum::response::sse::Event {
    axum::response::sse::Event::default().data(value.to_string())
}

fn error_event(message: &str, review_id: Option<&str>) -> axum::response::sse::Event {
    json_event(&json!({"error": {
        "message": message, "type": "content_filter", "param": null, "code": "content_filter",
        "review_id": review_id,
    }}))
}
