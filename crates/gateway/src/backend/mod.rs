//! Backends: what answers a model version. A local GGUF run in-process by the runtime crate,
//! or an upstream OpenAI-compatible server. Both answer with OpenAI's wire format as JSON
//! values (a whole `chat.completion`, or a stream of `chat.completion.chunk`s), so filters,
//! traces and the response path are one code path whatever answered.

pub mod embedding;
pub mod local;
pub mod upstream;

use std::time::Duration;

use axum::http::StatusCode;
use emguard_runtime::CancelToken;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::routes::chat::params::ChatJob;

pub use embedding::EmbeddingBackend;
pub use local::LocalBackend;
pub use upstream::UpstreamBackend;

pub enum Backend {
    Local(LocalBackend),
    Upstream(UpstreamBackend),
    Embedding(EmbeddingBackend),
}

/// One request as the backends need it: checked, and the client's JSON (forwarded upstream
/// as sent, but for the model name, to the endpoint of its API: `job.api`).
pub struct Call<'a> {
    pub raw: &'a Value,
    pub job: &'a ChatJob,
    /// Cancelled when the client goes away: a local generation stops before its next
    /// decode step, an upstream stream at its next piece. (A whole upstream answer is still
    /// read, so that what the upstream spent is traced and charged.)
    pub cancel: &'a CancelToken,
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

/// Why a backend did not answer. The client sees a safe summary; the upstream's own words
/// (which may carry secrets) stay in the trace.
#[derive(Debug)]
pub enum BackendError {
    /// The request is wrong (a 4xx from validation or from the upstream): never retried;
    /// `body` is the safe error the client gets, `detail` what the trace keeps.
    Client {
        status: StatusCode,
        body: Value,
        detail: String,
    },
    /// No answer in time: retried, then 504.
    Timeout(String),
    /// Refused or reset connection, a broken body: retried, then 502.
    Unavailable(String),
    /// 429 or 5xx from the upstream: retried, then 502; `detail` is its body.
    Status { status: StatusCode, detail: String },
    /// The upstream refused the gateway's own credentials (401, 403): the next version is
    /// tried, then 502 `upstream_auth_failed` (never the client's `invalid_api_key`).
    Auth { status: StatusCode, detail: String },
    /// The answer is over `server.max_answer_bytes`: 502, not retried.
    TooLarge(String),
    /// The client went away and the generation was stopped: traced (499) and charged for
    /// what was generated; nothing is retried.
    Cancelled(Generated),
}

/// Tokens a cancelled local generation had used.
#[derive(Debug, Clone, Copy, Default)]
pub struct Generated {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

impl From<ApiError> for BackendError {
    fn from(e: ApiError) -> Self {
        if e.status.is_server_error() {
            BackendError::Unavailable(e.message)
        } else {
            BackendError::Client {
                status: e.status,
                body: serde_json::to_value(e.body()).unwrap_or(Value::Null),
                detail: e.message,
            }
        }
    }
}

/// Most bytes of an upstream's error body a trace keeps.
const DETAIL_BYTES: usize = 2048;

/// An upstream's body as a trace keeps it: lossy UTF-8, cut to [`DETAIL_BYTES`].
pub fn detail_of(body: &[u8]) -> String {
    let shown = String::from_utf8_lossy(&body[..body.len().min(DETAIL_BYTES)]).into_owned();
    if body.len() > DETAIL_BYTES {
        format!("{shown}... [{} bytes in all]", body.len())
    } else {
        shown
    }
}

impl BackendError {
    /// A short label for traces and metrics (with the upstream's words: traces only).
    pub fn outcome(&self) -> String {
        match self {
            BackendError::Client { status, .. } => format!("status {}", status.as_u16()),
            BackendError::Timeout(_) => "timeout".into(),
            BackendError::Unavailable(m) => format!("unavailable: {m}"),
            BackendError::Status { status, detail } | BackendError::Auth { status, detail } => {
                format!("status {}: {detail}", status.as_u16())
            }
            BackendError::TooLarge(m) => format!("too large: {m}"),
            BackendError::Cancelled(g) => format!(
                "cancelled: the client went away after {} generated tokens",
                g.completion_tokens
            ),
        }
    }
}

impl Backend {
    /// `local:NAME` or `upstream:URL`, as traces name it.
    pub fn describe(&self) -> String {
        match self {
            Backend::Local(b) => format!("local:{}", b.name()),
            Backend::Upstream(b) => format!("upstream:{}", b.base_url()),
            Backend::Embedding(b) => format!("embedding:{}", b.name()),
        }
    }

    /// Extra attempts after a retryable failure.
    pub fn retries(&self) -> u32 {
        match self {
            Backend::Local(_) | Backend::Embedding(_) => 0,
            Backend::Upstream(b) => b.retries(),
        }
    }

    pub async fn call(&self, call: &Call<'_>) -> Result<Reply, BackendError> {
        match self {
            Backend::Local(b) => b.call(call).await,
            Backend::Upstream(b) => b.call(call).await,
            Backend::Embedding(b) => Err(b.refuse_chat()),
        }
    }
}

/// Backoff before retry `attempt` (1-based): 50 ms doubling, capped at 2 s, with full jitter.
pub fn backoff(attempt: u32) -> Duration {
    let cap = 50u64.saturating_mul(1 << attempt.min(6)).min(2_000);
    Duration::from_millis(rand::random_range(cap / 2..=cap))
}
