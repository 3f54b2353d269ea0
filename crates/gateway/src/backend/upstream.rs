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
use crate::routes::chat::params::Api;

/// The client's request as forwarded: its JSON object with `model` replaced and, when
/// `include_usage`, `stream_options` asking for the usage chunk. Written straight from the
/// client's parsed body, without copying it.
struct Forwarded<'a> {
    raw: &'a Value,
    model: &'a str,
    include_usage: bool,
}

impl serde::Serialize for Forwarded<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let empty = serde_json::Map::new();
        // The route only calls a backend with a JSON object (a typed request parsed from it).
        let fields = self.raw.as_object().unwrap_or(&empty);
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in fields {
            match name.as_str() {
                "model" => map.serialize_entry(name, self.model)?,
                "stream_options" if self.include_usage => {}
                _ => map.serialize_entry(name, value)?,
            }
        }
        if !fields.contains_key("model") {
            map.serialize_entry("model", self.model)?;
        }
        if self.include_usage {
            map.serialize_entry("stream_options", &json!({"include_usage": true}))?;
        }
        map.end()
    }
}

pub struct UpstreamBackend {
    client: reqwest::Client,
    base_url: String,
    /// `{base_url}/chat/completions`, parsed once.
    endpoint: reqwest::Url,
    model: String,
    api_key: Option<String>,
    timeout: Duration,
    retries: u32,
    /// Largest answer read (whole, or a stream in all).
    max_answer_bytes: usize,
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
        max_answer_bytes: usize,
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
            max_answer_bytes,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn retries(&self) -> u32 {
        self.retries
    }

    pub async fn call(&self, call: &Call<'_>) -> Result<Reply, BackendError> {
        let body = Forwarded {
            raw: call.raw,
            model: &self.model,
            include_usage: call.job.stream,
        };
        let body = serde_json::to_vec(&body).map_err(|e| {
            BackendError::Unavailable(format!("encoding the request for {}: {e}", self.base_url))
        })?;
        // The legacy API's endpoint is made per call: a second parsed URL here would make
        // every backend value larger for a rarely used route.
        let endpoint = match call.job.api {
            Api::Chat => self.endpoint.clone(),
            Api::Text => {
                reqwest::Url::parse(&format!("{}/completions", self.base_url)).map_err(|e| {
                    BackendError::Unavailable(format!("{}/completions: {e}", self.base_url))
                })?
            }
        };
        let request = self
            .client
            .post(endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let response = self.send(request).await?;
        if call.job.stream {
            return Ok(Reply::Stream(self.relay(response, call.cancel.clone())));
        }
        self.read_json(response).await.map(Reply::Whole)
    }

    /// `POST {base_url}/embeddings` with the client's body (the model name replaced): the
    /// upstream's `list` of embeddings.
    pub async fn embeddings(&self, raw: &Value) -> Result<Value, BackendError> {
        let mut body = raw.clone();
        body["model"] = Value::String(self.model.clone());
        let request = self
            .client
            .post(format!("{}/embeddings", self.base_url))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let response = self.send(request).await?;
        self.read_json(response).await
    }

    /// Sends with the upstream's key and timeout; a non-2xx answer is classified (its body
    /// read, for the trace only, up to 64 KiB).
    async fn send(
        &self,
        mut request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, BackendError> {
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = tokio::time::timeout(self.timeout, request.send())
            .await
            .map_err(|_| self.timed_out())?
            .map_err(|e| self.failed(&e))?;
        let status = response.status();
        if !status.is_success() {
            let bytes = tokio::time::timeout(self.timeout, read_capped(response, 64 * 1024))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            return Err(classify(status, &bytes));
        }
        Ok(response)
    }

    /// A whole JSON answer of at most `max_answer_bytes`, read within the timeout.
    async fn read_json(&self, response: reqwest::Response) -> Result<Value, BackendError> {
        let cap = self.max_answer_bytes;
        let bytes = match tokio::time::timeout(self.timeout, read_capped(response, cap + 1)).await {
            Err(_) => return Err(self.timed_out()),
            Ok(Err(e)) => return Err(self.failed(&e)),
            Ok(Ok(bytes)) => bytes,
        };
        if bytes.len() > cap {
            return Err(BackendError::TooLarge(format!(
                "the upstream's answer is larger than {cap} bytes (server.max_answer_bytes)"
            )));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
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
    /// timeout of the one before; the stream may carry at most `max_answer_bytes` in all. Each
    /// byte is searched for a newline once (a long line arriving in many pieces costs no more
    /// than a short one). Once `cancel` is set (the client left) it stops at the next piece,
    /// which drops the upstream's response and so ends its stream.
    fn relay(
        &self,
        response: reqwest::Response,
        cancel: emguard_runtime::CancelToken,
    ) -> mpsc::Receiver<StreamItem> {
        let (tx, rx) = mpsc::channel(64);
        let idle = self.timeout;
        let origin = self.base_url.clone();
        let cap = self.max_answer_bytes;
        tokio::spawn(async move {
            let mut bytes = response.bytes_stream();
            let mut buffer: Vec<u8> = Vec::new();
            // Bytes of `buffer` already searched for a newline.
            let mut searched = 0usize;
            let mut total = 0usize;
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
                if cancel.is_cancelled() {
                    return;
                }
                let piece = match next {
                    Ok(piece) => piece,
                    Err(message) => {
                        let _ = tx.send(stream_error(message)).await;
                        return;
                    }
                };
                total += piece.len();
                if total > cap {
                    let message = format!(
                        "the upstream's answer is larger than {cap} bytes (server.max_answer_bytes)"
                    );
                    let _ = tx.send(stream_error(message)).await;
                    return;
                }
                buffer.extend_from_slice(&piece);
                let mut start = 0usize;
                while let Some(offset) = buffer[searched..].iter().position(|b| *b == b'\n') {
                    let end = searched + offset;
                    searched = end + 1;
                    let line = &buffer[start..end];
                    start = end + 1;
                    let Some(data) = line.strip_prefix(b"data:") else {
                        continue; // event names, ids, comments, blank separators
                    };
                    let data = data.trim_ascii();
                    if data == b"[DONE]" {
                        return;
                    }
                    let item = match serde_json::from_slice::<Value>(data) {
                        Ok(v) if v.get("error").is_some() => {
                            // The upstream's words stay in the log; the client gets a summary.
                            tracing::warn!(upstream = %origin, error = ?v["error"].to_string(), "the upstream reported an error mid-stream");
                            stream_error(format!("{origin} reported an error during the stream"))
                        }
                        Ok(v) => StreamItem::Chunk(v),
                        Err(e) => stream_error(format!("{origin} sent an invalid chunk: {e}")),
                    };
                    let stop = matches!(item, StreamItem::Error(_));
                    if tx.send(item).await.is_err() || stop {
                        return;
                    }
                }
                buffer.drain(..start);
                searched -= start;
            }
        });
        rx
    }
}

/// Reads a body, stopping once it has more than `cap` bytes (so the caller can tell).
async fn read_capped(response: reqwest::Response, cap: usize) -> Result<Vec<u8>, reqwest::Error> {
    let mut bytes = response.bytes_stream();
    let mut out = Vec::new();
    while let Some(piece) = bytes.next().await {
        let piece = piece?;
        let room = cap.saturating_sub(out.len());
        out.extend_from_slice(&piece[..piece.len().min(room)]);
        if out.len() >= cap {
            break;
        }
    }
    Ok(out)
}

fn stream_error(message: String) -> StreamItem {
    StreamItem::Error(json!({"error": {
        "message": message, "type": "server_error", "param": null, "code": "upstream_error"
    }}))
}

/// 429 and 5xx are worth retrying; 401 and 403 are the gateway's own credentials failing;
/// any other status is the request's fault. The client gets the status and a safe message
/// (an upstream's body can carry anything, secrets included); the trace keeps the body.
fn classify(status: StatusCode, body: &[u8]) -> BackendError {
    let detail = super::detail_of(body);
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return BackendError::Status { status, detail };
    }
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return BackendError::Auth { status, detail };
    }
    // The upstream's `code` and `param` name a rule and a field (`context_length_exceeded`,
    // `messages`): kept when they look like names, never its message.
    let upstream: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let name_like = |v: &Value| {
        v.as_str()
            .filter(|s| {
                !s.is_empty()
                    && s.len() <= 64
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.[]-".contains(c))
            })
            .map(str::to_owned)
    };
    let code = name_like(&upstream["error"]["code"]).unwrap_or_else(|| "upstream_rejected".into());
    let param = name_like(&upstream["error"]["param"]);
    let body = json!({"error": {
        "message": format!(
            "The upstream model server rejected the request (status {}); the gateway's trace of this request has its answer.",
            status.as_u16()
        ),
        "type": "invalid_request_error", "param": param, "code": code
    }});
    BackendError::Client {
        status,
        body,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(raw: &Value, include_usage: bool) -> Value {
        let body = Forwarded {
            raw,
            model: "tune-v2",
            include_usage,
        };
        serde_json::from_slice(&serde_json::to_vec(&body).unwrap()).unwrap()
    }

    #[test]
    fn the_clients_request_is_forwarded_with_the_upstream_model() {
        let raw = json!({"model": "assistant", "messages": [{"role": "user", "content": "hi"}],
                         "temperature": 0.5, "x_vendor": {"a": [1, 2]}});
        let mut expected = raw.clone();
        expected["model"] = json!("tune-v2");
        assert_eq!(forwarded(&raw, false), expected);
    }

    #[test]
    fn a_stream_asks_for_usage_in_place_of_the_clients_stream_options() {
        let raw = json!({"model": "assistant", "messages": [], "stream": true,
                         "stream_options": {"include_usage": false}});
        let mut expected = raw.clone();
        expected["model"] = json!("tune-v2");
        expected["stream_options"] = json!({"include_usage": true});
        assert_eq!(forwarded(&raw, true), expected);
        let without = json!({"model": "assistant", "stream": true});
        assert_eq!(
            forwarded(&without, true),
            json!({"model": "tune-v2", "stream": true, "stream_options": {"include_usage": true}})
        );
    }
}
