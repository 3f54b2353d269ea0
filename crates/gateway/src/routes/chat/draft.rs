//! The trace of one request, filled in as it goes and committed when it ends (every request,
//! answered or not). Also where the request's metrics are recorded.

use std::time::{Duration, Instant};

use emguard_store::gateway::TraceRecord;
use serde_json::Value;

use crate::filter::Verdict;
use crate::registry::{ModelEntry, Version};
use crate::state::{AppState, unix_now_f64};

/// Longest a durable answer waits for its trace's commit.
const DURABLE_COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Draft {
    pub id: String,
    time: f64,
    started: Instant,
    pub key_id: Option<String>,
    pub model: String,
    pub version: Option<String>,
    pub backend: Option<String>,
    pub stream: bool,
    request: Option<String>,
    pub attempts: Vec<Value>,
    pub upstream_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    /// Closed when the client's connection went away before the answer (the handler that
    /// held its sender was dropped).
    pub client_gone: Option<tokio::sync::oneshot::Receiver<()>>,
    /// A chat request's last user message: its answer is offered to the monitor.
    pub question: Option<String>,
    /// What picks the version during a canary: the key id and the request's `user`.
    pub routing_key: String,
    /// The version the request asked for (`x-emguard-version`, a red-team key's): it alone
    /// answers, whatever the routing.
    pub pinned_version: Option<String>,
}

impl Default for Draft {
    fn default() -> Self {
        Draft {
            id: request_id(),
            time: unix_now_f64(),
            started: Instant::now(),
            key_id: None,
            model: String::new(),
            version: None,
            backend: None,
            stream: false,
            request: None,
            attempts: Vec::new(),
            upstream_ms: None,
            ttft_ms: None,
            client_gone: None,
            question: None,
            routing_key: String::new(),
            pinned_version: None,
        }
    }
}

/// What a trace keeps of `text`: as the content setting says, cut to the configured length
/// with a marker saying how long it was.
fn keep(state: &AppState, text: &str) -> Option<String> {
    let max = state.max_trace_content;
    if text.len() <= max {
        return state.content.keep(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    state.content.keep(text).map(|kept| {
        if kept.len() == text.len() {
            format!(
                "{}[emguard: truncated, {} bytes in all]",
                &text[..end],
                text.len()
            )
        } else {
            kept // hashed: the hash of the whole text
        }
    })
}

/// `chatcmpl-` and 32 hex digits: the time in milliseconds (48 bits), then 80 random bits.
/// Time first, so that ids made one after the other sort together: the trace table's index
/// on the id then grows at its end like the time index, and a batch of traces dirties a few
/// index pages instead of one page per trace at random places (each rewritten in full into
/// the WAL at commit). 80 random bits per millisecond keep ids unique.
fn request_id() -> String {
    id_of((unix_now_f64() * 1e3) as u64, rand::random())
}

fn id_of(unix_ms: u64, random: u128) -> String {
    let ms = u128::from(unix_ms) & ((1 << 48) - 1);
    format!("chatcmpl-{:032x}", (ms << 80) | (random & ((1 << 80) - 1)))
}

/// Token counts of an answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokens {
    pub prompt: u64,
    pub completion: u64,
}

impl Tokens {
    /// From an OpenAI `usage` object.
    pub fn of_usage(usage: &Value) -> Option<Tokens> {
        Some(Tokens {
            prompt: usage.get("prompt_tokens")?.as_u64()?,
            completion: usage.get("completion_tokens")?.as_u64()?,
        })
    }
}

impl Draft {
    pub fn new(state: &AppState, body: &[u8]) -> Draft {
        Draft {
            request: keep(state, &String::from_utf8_lossy(body)),
            ..Draft::default()
        }
    }

    /// The versions to try, in order: the pinned one alone (a probe of a canary is never
    /// answered by another version), else the rollout's plan for the routing key.
    pub fn plan<'e>(&self, entry: &'e ModelEntry) -> Vec<&'e Version> {
        match &self.pinned_version {
            Some(name) => entry.version(name).into_iter().collect(),
            None => entry.plan_for(&self.routing_key),
        }
    }

    pub fn elapsed_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1e3
    }

    /// Records the metrics and commits the trace (waiting for the commit in durable mode).
    /// Returns false when a durable commit failed: the caller must not release the answer.
    pub async fn finish(
        mut self,
        state: &AppState,
        mut status: u16,
        response: Option<&str>,
        tokens: Option<Tokens>,
        filters: Vec<Verdict>,
        mut error: Option<String>,
    ) -> bool {
        let latency_ms = self.elapsed_ms();
        if let Some(gone) = &mut self.client_gone
            && matches!(
                gone.try_recv(),
                Err(tokio::sync::oneshot::error::TryRecvError::Closed)
            )
        {
            // nginx's "client closed request": the answer was made (and charged), not read.
            status = 499;
            error.get_or_insert_with(|| "the client went away before the answer".into());
        }
        let model = if state.models.contains_key(&self.model) {
            self.model.clone()
        } else {
            "unknown".to_string() // never a label per made-up model name
        };
        metrics::counter!("emguard_requests_total",
            "model" => model.clone(),
            "version" => self.version.clone().unwrap_or_default(),
            "status" => status.to_string())
        .increment(1);
        metrics::histogram!("emguard_request_duration_seconds", "model" => model)
            .record(latency_ms / 1e3);
        for v in &filters {
            metrics::counter!("emguard_filter_verdicts_total",
                "filter" => v.filter.clone(), "action" => v.action.clone())
            .increment(1);
        }
        if let (Some(monitor), Some(question), Some(version), Some(answer), 200) = (
            &state.monitor,
            self.question.take(),
            &self.version,
            response,
            status,
        ) {
            let candidate = state
                .models
                .get(&self.model)
                .is_some_and(|m| m.is_candidate(version));
            let filter_hit = !filters.is_empty();
            monitor.offer(
                emguard_monitor::Sample {
                    trace_id: self.id.clone(),
                    model: self.model.clone(),
                    version: version.clone(),
                    question,
                    answer: answer.to_string(),
                    filter_hit,
                },
                candidate,
            );
        }
        let Some(tracer) = &state.tracer else {
            return true;
        };
        let record = TraceRecord {
            id: self.id,
            time: self.time,
            key_id: self.key_id,
            model: self.model,
            version: self.version,
            backend: self.backend,
            stream: self.stream,
            request: self.request,
            response: response.and_then(|r| keep(state, r)),
            prompt_tokens: tokens.map(|t| t.prompt),
            completion_tokens: tokens.map(|t| t.completion),
            latency_ms,
            ttft_ms: self.ttft_ms,
            upstream_ms: self.upstream_ms,
            status,
            filters: serde_json::to_value(&filters).unwrap_or(Value::Null),
            attempts: Value::Array(self.attempts),
            error,
        };
        if state.durable {
            // The writer retries a failing store forever (keeping the traces); an answer
            // waits at most this long for its commit, then the client gets a 500 instead.
            match tokio::time::timeout(DURABLE_COMMIT_TIMEOUT, tracer.record_durable(record)).await
            {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "committing a trace failed in durable mode");
                    false
                }
                Err(_) => {
                    tracing::error!(
                        "a trace was not committed within {DURABLE_COMMIT_TIMEOUT:?} in durable mode"
                    );
                    false
                }
            }
        } else {
            tracer.record(record);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_whatever_their_random_part() {
        let now = 1_795_000_000_000; // 2026-11-18, in ms
        let earlier = id_of(now, u128::MAX);
        let later = id_of(now + 1, 0);
        assert!(earlier < later, "{earlier} {later}");
        assert_eq!(earlier.len(), "chatcmpl-".len() + 32);
        assert!(earlier.starts_with("chatcmpl-"));
        // The random part tells apart the ids of one millisecond.
        assert_ne!(id_of(now, 1), id_of(now, 2));
        assert_ne!(request_id(), request_id());
    }
}
