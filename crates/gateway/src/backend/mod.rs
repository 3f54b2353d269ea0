//! Backends: what answers a model version. A local GGUF run in-process by the runtime crate,
//! or an upstream OpenAI-compatible server. Both answer with OpenAI's wire format as JSON
//! values (a whole `chat.completion`, or a stream of `chat.completion.chunk`s), so filters,
//! traces and the response path are one code path whatever answered.

pub mod local;
pub mod upstream;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::openai::ChatCompletionRequest;
use crate::routes::chat::params::ChatJob;

pub use local::LocalBackend;
pub use upstream::UpstreamBackend;

pub enum Backend {
    Local(LocalBackend),
    Upstream(UpstreamBackend),
}

/// One request as the backends need it: checked and typed, and the client's JSON (forwarded
/// upstream as sent, but for the model name).
pub struct Call<'a> {
    pub request: &'a ChatCompletionRequest,
    pub raw: &'a Value,
    pub job: &'a ChatJob,
}

/// A backend's answer.
pub enum Reply {
    /// A `chat.completion` body.
    Whole(Value),
    /// `chat.completion.chunk` bodies in order; the channel closes after the last one.
    Stream(mpsc::Receiver<StreamItem>),
}

pub enum StreamItem {
    Chunk(Value),
    /// The answer broke off; an OpenAI error body for the client.
    Error(Value),
}

/// Why a backend did not answer.
#[derive(Debug)]
pub enum BackendError {
    /// The request is wrong (a 4xx from validation or from the upstream): returned to the
    /// client as is, never retried.
    Client { status: StatusCode, body: Value },
    /// No answer in time: retried, then 504.
    Timeout(String),
    /// Refused or reset connection, 429, 5xx, a broken body: retried, then 502.
    Unavailable(String),
}

impl From<ApiError> for BackendError {
    fn from(e: ApiError) -> Self {
        if e.status.is_server_error() {
            BackendError::Unavailable(e.message)
        } else {
            BackendError::Client {
                status: e.status,
                body: serde_json::to_value(e.body()).unwrap_or(Value::Null),
            }
        }
    }
}

impl BackendError {
    /// A short label for traces and metrics.
    pub fn outcome(&self) -> String {
        match self {
            BackendError::Client { status, .. } => format!("status {}", status.as_u16()),
            BackendError::Timeout(_) => "timeout".into(),
            BackendError::Unavailable(m) => format!("unavailable: {m}"),
        }
    }
}

impl Backend {
    /// `local:NAME` or `upstream:URL`, as traces name it.
    pub fn describe(&self) -> String {
        match self {
            Backend::Local(b) => format!("local:{}", b.name()),
            Backend::Upstream(b) => format!("upstream:{}", b.base_url()),
        }
    }

    /// Extra attempts after a retryable failure.
    pub fn retries(&self) -> u32 {
        match self {
            Backend::Local(_) => 0,
            Backend::Upstream(b) => b.retries(),
        }
    }

    pub async fn call(&self, call: &Call<'_>) -> Result<Reply, BackendError> {
        match self {
            Backend::Local(b) => b.call(call).await,
            Backend::Upstream(b) => b.call(call).await,
        }
    }
}

/// Backoff before retry `attempt` (1-based): 50 ms doubling, capped at 2 s, with full jitter.
pub fn backoff(attempt: u32) -> Duration {
    let cap = 50u64.saturating_mul(1 << attempt.min(6)).min(2_000);
    Duration::from_millis(rand::random_range(cap / 2..=cap))
}
