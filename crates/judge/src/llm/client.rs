//! A client for OpenAI-compatible `/chat/completions` servers: per-request timeout, retries
//! with exponential backoff and full jitter on 429, 5xx, timeouts and connection errors, and
//! several replicas of one server chosen by least outstanding requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: response is not a chat completion: {detail}")]
    BadResponse { url: String, detail: String },
    #[error("no base URL given")]
    NoEndpoint,
}

impl LlmError {
    /// The failures worth another try: rate limits, server errors, timeouts, dropped connections.
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::Status { status, .. } => *status == 429 || *status >= 500,
            LlmError::Transport { source, .. } => {
                source.is_timeout()
                    || source.is_connect()
                    || source.is_request()
                    || source.is_body()
            }
            LlmError::BadResponse { .. } | LlmError::NoEndpoint => false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// One or more replicas of the same server, e.g. `http://127.0.0.1:8000/v1`.
    pub base_urls: Vec<String>,
    /// Sent as `Authorization: Bearer`.
    pub api_key: Option<String>,
    /// Further headers of every request (a gateway's `x-emguard-version` pin).
    pub headers: Vec<(String, String)>,
    /// Per attempt.
    pub timeout: Duration,
    /// Further attempts after the first.
    pub max_retries: u32,
    /// First backoff; doubles each retry (capped at `max_backoff`), then full jitter.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl ClientConfig {
    pub fn new(base_urls: Vec<String>) -> Self {
        Self {
            base_urls,
            api_key: None,
            headers: Vec::new(),
            timeout: Duration::from_secs(120),
            max_retries: 8,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// The request body subset emguard sends.
#[derive(Debug, Clone, Serialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<emguard_runtime::ChatMessage>,
    pub max_tokens: usize,
    pub temperature: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub logprobs: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatResponse {
    pub choices: Vec<Choice>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Choice {
    pub message: ResponseMessage,
    #[serde(default)]
    pub logprobs: Option<ChoiceLogprobs>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ResponseMessage {
    #[serde(default)]
    pub content: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChoiceLogprobs {
    #[serde(default)]
    pub content: Option<Vec<TokenLogprobs>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TokenLogprobs {
    pub token: String,
    pub logprob: f64,
    #[serde(default)]
    pub top_logprobs: Vec<TopLogprob>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f64,
}

struct Endpoint {
    url: String,
    outstanding: AtomicUsize,
}

/// Cheap to clone; share one per server.
#[derive(Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    endpoints: Arc<Vec<Endpoint>>,
    config: Arc<ClientConfig>,
}

/// Decrements the replica's outstanding count however the request ends.
struct InFlight<'a>(&'a Endpoint);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

impl OpenAiClient {
    pub fn new(config: ClientConfig) -> Result<Self, LlmError> {
        if config.base_urls.is_empty() {
            return Err(LlmError::NoEndpoint);
        }
        let endpoints = config
            .base_urls
            .iter()
            .map(|u| Endpoint {
                url: format!("{}/chat/completions", u.trim_end_matches('/')),
                outstanding: AtomicUsize::new(0),
            })
            .collect();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .pool_max_idle_per_host(1024)
            .build()
            .map_err(|source| LlmError::Transport {
                url: String::new(),
                source,
            })?;
        Ok(Self {
            http,
            endpoints: Arc::new(endpoints),
            config: Arc::new(config),
        })
    }

    /// One chat completion, retried on transient failures.
    pub async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let mut attempt = 0;
        loop {
            match self.chat_once(request).await {
                Ok(r) => return Ok(r),
                Err((err, retry_after))
                    if err.is_retryable() && attempt < self.config.max_retries =>
                {
                    let wait = retry_after.unwrap_or_else(|| self.backoff(attempt));
                    tracing::debug!(%err, attempt, ?wait, "retrying chat completion");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err((err, _)) => return Err(err),
            }
        }
    }

    /// Full jitter: uniform in [0, min(max, initial * 2^attempt)].
    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .config
            .initial_backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.config.max_backoff);
        cap.mul_f64(rand::random::<f64>())
    }

    fn pick_endpoint(&self) -> &Endpoint {
        // Least outstanding requests; a rotating start spreads ties.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = self.endpoints.len();
        let start = NEXT.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &self.endpoints[(start + i) % n])
            .min_by_key(|e| e.outstanding.load(Ordering::Relaxed))
            .expect("at least one endpoint")
    }

    async fn chat_once(
        &self,
        request: &ChatRequest,
    ) -> Result<ChatResponse, (LlmError, Option<Duration>)> {
        let endpoint = self.pick_endpoint();
        endpoint.outstanding.fetch_add(1, Ordering::Relaxed);
        let _in_flight = InFlight(endpoint);
        let url = &endpoint.url;
        let transport = |source| {
            (
                LlmError::Transport {
                    url: url.clone(),
                    source,
                },
                None,
            )
        };
        let mut req = self.http.post(url).json(request);
        if let Some(key) = &self.config.api_key {
            req = req.bearer_auth(key);
        }
        for (name, value) in &self.config.headers {
            req = req.header(name, value);
        }
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        if !status.is_success() {
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map(|s| Duration::from_secs_f64(s.clamp(0.0, 300.0)));
            let body = resp.text().await.unwrap_or_default();
            let body: String = body.chars().take(500).collect();
            return Err((
                LlmError::Status {
                    url: url.clone(),
                    status: status.as_u16(),
                    body,
                },
                retry_after,
            ));
        }
        let bytes = resp.bytes().await.map_err(transport)?;
        serde_json::from_slice(&bytes).map_err(|e| {
            (
                LlmError::BadResponse {
                    url: url.clone(),
                    detail: e.to_string(),
                },
                None,
            )
        })
    }
}
