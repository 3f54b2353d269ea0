//! The end-to-end mode of the catch table (`--http EMGUARD`): the same rows through a real
//! `emguard serve` with both filters on `block`, in front of an upstream on 127.0.0.1 that
//! replays each row's answer (as the message content, whole or streamed in 16-character
//! deltas, or as a tool call's arguments). A client sends one request per row and field and
//! counts the answers withheld (`finish_reason: content_filter`, or a streamed error event).
//!
//! The client sends one request at a time, so the upstream answers with the row the client
//! set last (a shared slot), and the request stays the row's own user message: nothing is
//! added that the filters could read.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// What the upstream answers next.
#[derive(Clone, Default)]
pub enum Reply {
    #[default]
    Nothing,
    /// The message content.
    Content(String),
    /// A tool call whose arguments carry the answer (as the direct mode's `tool_call`).
    ToolCall(String),
}

/// What the client received for one request.
#[derive(Debug, PartialEq)]
pub enum Received {
    /// The filter withheld the answer.
    Withheld,
    /// The answer came through unchanged.
    Delivered,
    /// It came through changed without being withheld (a filter that alters silently: a bug
    /// for `block`), or the gateway failed; the text says how.
    Other(String),
}

/// A running `emguard serve` in front of the replaying upstream; stopped when dropped.
pub struct Gateway {
    child: Child,
    base: String,
    reply: Arc<Mutex<Reply>>,
    client: reqwest::blocking::Client,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    /// Starts the upstream and `emguard serve` (`emguard`: the binary) with a config whose
    /// filters block, as the direct mode's policy (and its text model, or none).
    pub fn start(emguard: &Path, lexicons_only: bool) -> Result<Gateway, String> {
        let text_model = if lexicons_only {
            "off"
        } else {
            emguard_judge::answer_harm::ENCODER
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| format!("starting the upstream's runtime: {e}"))?;
        let reply = Arc::new(Mutex::new(Reply::Nothing));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .map_err(|e| format!("binding the upstream: {e}"))?;
        let upstream = listener
            .local_addr()
            .map_err(|e| format!("the upstream's address: {e}"))?;
        let app = Router::new()
            .route("/v1/chat/completions", post(replay))
            .with_state(Arc::clone(&reply));
        runtime.spawn(async move { axum::serve(listener, app).await });

        let port = free_port()?;
        let dir = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
        let config = dir.path().join("gateway.yaml");
        std::fs::write(
            &config,
            format!(
                "server: {{listen: '127.0.0.1:{port}', text_model: {text_model}}}\n\
                 auth: {{required: false}}\n\
                 traces: {{enabled: false}}\n\
                 filters:\n  code: {{action: block, min_severity: medium}}\n  text: {{action: block}}\n\
                 models:\n  - id: assistant\n    active: v1\n    versions:\n\
                 \x20     - {{name: v1, upstream: 'http://{upstream}/v1', upstream_model: replay, timeout_secs: 60, retries: 0}}\n"
            ),
        )
        .map_err(|e| format!("{}: {e}", config.display()))?;
        let log_path = dir.path().join("gateway.log");
        let log =
            std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let err_log = log
            .try_clone()
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let mut child = Command::new(emguard)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", emguard.display()))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let _ = child.kill();
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!(
                    "emguard serve did not listen on 127.0.0.1:{port} ({}); its log:\n{log}",
                    exited.map_or("timed out".into(), |s| s.to_string())
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| format!("the client: {e}"))?;
        Ok(Gateway {
            child,
            base: format!("http://127.0.0.1:{port}"),
            reply,
            client,
            _runtime: runtime,
            _dir: dir,
        })
    }

    /// The answer as the message content, whole.
    pub fn content(&self, user: &str, answer: &str) -> Received {
        self.set(Reply::Content(answer.to_string()));
        match self.post(user, false) {
            Ok(body) => whole_outcome(&body, |m| m["content"].as_str() == Some(answer)),
            Err(e) => Received::Other(e),
        }
    }

    /// The answer as the message content, streamed by the upstream in 16-character deltas.
    pub fn streamed(&self, user: &str, answer: &str) -> Received {
        self.set(Reply::Content(answer.to_string()));
        match self.post(user, true) {
            Ok(body) => stream_outcome(&body, answer),
            Err(e) => Received::Other(e),
        }
    }

    /// The answer as a tool call's arguments, whole.
    pub fn tool_call(&self, user: &str, answer: &str) -> Received {
        self.set(Reply::ToolCall(answer.to_string()));
        let arguments = super::tool_arguments(answer);
        match self.post(user, false) {
            Ok(body) => whole_outcome(&body, |m| {
                m["tool_calls"][0]["function"]["arguments"].as_str() == Some(arguments.as_str())
            }),
            Err(e) => Received::Other(e),
        }
    }

    fn set(&self, reply: Reply) {
        *self.reply.lock().unwrap_or_else(|p| p.into_inner()) = reply;
    }

    fn post(&self, user: &str, stream: bool) -> Result<String, String> {
        let request = json!({
            "model": "assistant",
            "messages": [{"role": "user", "content": user}],
            "stream": stream,
        });
        let response = self
            .client
            .post(format!("{}/v1/chat/completions", self.base))
            .json(&request)
            .send()
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        let body = response
            .text()
            .map_err(|e| format!("reading the answer: {e}"))?;
        if !status.is_success() {
            return Err(format!("HTTP {status}: {body}"));
        }
        Ok(body)
    }
}

/// A whole answer: withheld when its choice finished with `content_filter`; delivered when
/// `intact` holds of its message.
fn whole_outcome(body: &str, intact: impl Fn(&Value) -> bool) -> Received {
    let Ok(response) = serde_json::from_str::<Value>(body) else {
        return Received::Other(format!("not JSON: {body}"));
    };
    let choice = &response["choices"][0];
    if choice["finish_reason"] == "content_filter" {
        Received::Withheld
    } else if intact(&choice["message"]) {
        Received::Delivered
    } else {
        Received::Other(format!("changed but not withheld: {}", choice["message"]))
    }
}

/// A streamed answer: withheld when a chunk finished with `content_filter` or an error event
/// came; delivered when the deltas join into the answer.
fn stream_outcome(body: &str, answer: &str) -> Received {
    let mut content = String::new();
    for line in body.lines() {
        let Some(data) = line.strip_prefix("data:").map(str::trim) else {
            continue;
        };
        if data == "[DONE]" {
            continue;
        }
        let Ok(event) = serde_json::from_str::<Value>(data) else {
            return Received::Other(format!("an event that is not JSON: {data}"));
        };
        if event.get("error").is_some() {
            return Received::Withheld;
        }
        for choice in event["choices"].as_array().into_iter().flatten() {
            if choice["finish_reason"] == "content_filter" {
                return Received::Withheld;
            }
            if let Some(piece) = choice["delta"]["content"].as_str() {
                content.push_str(piece);
            }
        }
    }
    if content == answer {
        Received::Delivered
    } else {
        Received::Other(format!(
            "streamed content changed but not withheld ({} of {} bytes)",
            content.len(),
            answer.len()
        ))
    }
}

fn free_port() -> Result<u16, String> {
    let socket = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("finding a free port: {e}"))?;
    socket
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

/// The upstream: the slot's reply, whole or as server-sent events.
async fn replay(State(reply): State<Arc<Mutex<Reply>>>, body: axum::body::Bytes) -> Response {
    let stream = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|r| r["stream"].as_bool())
        .unwrap_or(false);
    let reply = reply.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let choice = match &reply {
        Reply::Nothing => {
            json!({"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"})
        }
        Reply::Content(answer) => super::content(answer),
        Reply::ToolCall(answer) => super::tool_call(answer),
    };
    if !stream {
        return axum::Json(json!({
            "id": "chatcmpl-replay", "object": "chat.completion", "created": 0, "model": "replay",
            "choices": [choice],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }))
        .into_response();
    }
    let text = match &reply {
        Reply::Content(answer) => answer.as_str(),
        _ => "",
    };
    let mut deltas: Vec<Value> = vec![json!({"role": "assistant", "content": ""})];
    let chars: Vec<char> = text.chars().collect();
    for piece in chars.chunks(super::STREAM_DELTA_CHARS) {
        deltas.push(json!({"content": piece.iter().collect::<String>()}));
    }
    let mut events = String::new();
    for (k, delta) in deltas.iter().enumerate() {
        let last = k + 1 == deltas.len();
        let mut choices = vec![json!({"index": 0, "delta": delta, "finish_reason": null})];
        if last {
            choices.push(json!({"index": 0, "delta": {}, "finish_reason": "stop"}));
        }
        for choice in choices {
            let chunk = json!({"id": "chatcmpl-replay", "object": "chat.completion.chunk",
                               "created": 0, "model": "replay", "choices": [choice]});
            events.push_str(&format!("data: {chunk}\n\n"));
        }
    }
    events.push_str("data: [DONE]\n\n");
    ([(header::CONTENT_TYPE, "text/event-stream")], events).into_response()
}
