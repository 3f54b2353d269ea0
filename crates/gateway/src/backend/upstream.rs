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
        let body = Forwarded {
            raw: call.raw,
            model: &self.model,
            include_usage: call.job.stream,
        };
        let body = serde_json::to_vec(&body).map_err(|e| {
            BackendError::Unavailable(format!("encoding the request for {}: {e}", self.base_url))
        })?;
        let mut request = self
            .client
            .post(self.endpoint.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
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
