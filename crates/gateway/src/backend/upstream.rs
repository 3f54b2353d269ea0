//! A version answered by an upstream OpenAI-compatible server (vLLM, llama.cpp, OpenAI, a
//! second emguard). The client's request is forwarded as sent, but for `model` (the
//! version's upstream model) and, when streaming, `stream_options.include_usage` (the
//! gateway needs the token counts; the route drops the usage chunk when the client did not
//! ask for it).

use std::time::Duration;

use axum::http::StatusCode;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{BackendError, Call, Reply, StreamItem};

pub struct UpstreamBackend {
    client: reqwest::Client,
    base_url: String,
    /// `{base_url}/chat/completions`, parsed once.
    endpoint: reqwest::Url,
    model: String,
    api_key: Option<String>,
    timeout: Duration,
    retries: u32,
}

impl UpstreamBackend {
    /// `base_url` ends before `/chat/completions` (e.g. `http://host:8000/v1`).
    pub fn new(
        client: reqwest::Client,
        base_url: &str,
        model: String,
        api_key: Option<String>,
        timeout: Duration,
        retries: u32,
    ) -> Result<UpstreamBackend, String> {
        let base_url = base_url.trim_end_matches('/').to_string();
        let endpoint = reqwest::Url::parse(&format!("{base_url}/chat/completions"))
            .map_err(|e| format!("`{base_url}` is not a URL: {e}"))?;
        Ok(UpstreamBackend {
            client,
            base_url,
            endpoint,
            model,
            api_key,
            timeout,
            retries,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn retries(&self) -> u32 {
        self.retries
    }

    pub async fn call(&self, call: &Call<'_>) -> Result<Reply, BackendError> {
        let mut body = call.raw.clone();
        body["model"] = Value::String(self.model.clone());
        if call.job.stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        let mut request = self.client.post(self.endpoint.clone()).json(&body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = tokio::time::timeout(self.timeout, request.send())
            .await
            .map_err(|_| self.timed_out())?
            .map_err(|e| self.failed(&e))?;
        let status = response.status();
        if !status.is_success() {
            let bytes = tokio::time::timeout(self.timeout, response.bytes())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            return Err(classify(status, &bytes));
        }
        if call.job.stream {
            return Ok(Reply::Stream(self.relay(response)));
        }
        let bytes = tokio::time::timeout(self.timeout, response.bytes())
            .await
            .map_err(|_| self.timed_out())?
            .map_err(|e| self.failed(&e))?;
        serde_json::from_slice(&bytes)
            .map(Reply::Whole)
            .map_err(|e| {
                BackendError::Unavailable(format!("{} answered invalid JSON: {e}", self.base_url))
            })
    }

    fn timed_out(&self) -> BackendError {
        BackendError::Timeout(format!(
            "{} did not answer within {:.1} s",
            self.base_url,
            self.timeout.as_secs_f64()
        ))
    }

    fn failed(&self, e: &reqwest::Error) -> BackendError {
        if e.is_timeout() {
            return self.timed_out();
        }
        // The source chain says what happened (connection refused, reset, ...).
        let mut message = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            message = format!("{message}: {s}");
            source = s.source();
        }
        BackendError::Unavailable(message)
    }

    /// Reads the upstream's server-sent events into chunks. Each event must arrive within the
    /// timeout of the one before.
    fn relay(&self, response: reqwest::Response) -> mpsc::Receiver<StreamItem> {
        let (tx, rx) = mpsc::channel(64);
        let idle = self.timeout;
        let origin = self.base_url.clone();
        tokio::spawn(async move {
            let mut bytes = response.bytes_stream();
            let mut buffer: Vec<u8> = Vec::new();
            loop {
                let next = match tokio::time::timeout(idle, bytes.next()).await {
                    Err(_) => Err(format!(
                        "{origin} stopped sending for {:.1} s",
                        idle.as_secs_f64()
                    )),
                    Ok(None) => Err(format!("{origin} ended the stream without [DONE]")),
                    Ok(Some(Err(e))) => Err(format!("{origin} broke off the stream: {e}")),
                    Ok(Some(Ok(piece))) => Ok(piece),
                };
                let piece = match next {
                    Ok(piece) => piece,
                    Err(message) => {
                        let _ = tx.send(stream_error(message)).await;
                        return;
                    }
                };
                buffer.extend_from_slice(&piece);
                while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=end).collect();
                    let Some(data) = line.strip_prefix(b"data:") else {
                        continue; // event names, ids, comments, blank separators
                    };
                    let data = data.trim_ascii();
                    if data == b"[DONE]" {
                        return;
                    }
                    let item = match serde_json::from_slice::<Value>(data) {
                        Ok(v) if v.get("error").is_some() => StreamItem::Error(v),
                        Ok(v) => StreamItem::Chunk(v),
                        Err(e) => stream_error(format!("{origin} sent an invalid chunk: {e}")),
                    };
                    let stop = matches!(item, StreamItem::Error(_));
                    if tx.send(item).await.is_err() || stop {
                        return;
                    }
                }
            }
        });
        rx
    }
}

fn stream_error(message: String) -> StreamItem {
    StreamItem::Error(json!({"error": {
        "message": message, "type": "server_error", "param": null, "code": "upstream_error"
    }}))
}

/// 429 and 5xx are worth retrying; any other status is the request's fault and goes back
/// to the client with the upstream's body.
fn classify(status: StatusCode, body: &[u8]) -> BackendError {
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return BackendError::Unavailable(format!(
            "status {}: {}",
            status.as_u16(),
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ));
    }
    let body = serde_json::from_slice::<Value>(body)
        .ok()
        .filter(|v| v.get("error").is_some())
        .unwrap_or_else(|| {
            json!({"error": {
                "message": format!("the upstream answered {status}: {}", String::from_utf8_lossy(&body[..body.len().min(500)])),
                "type": "invalid_request_error", "param": null, "code": null
            }})
        });
    BackendError::Client { status, body }
}
