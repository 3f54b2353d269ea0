//! Helpers for the gateway's end-to-end tests: a real gateway built from a config on an
//! ephemeral 127.0.0.1 port with a real SQLite store in a temp dir, and a small upstream
//! server on 127.0.0.1 whose behaviour each test picks (a fixed answer, an error status, no
//! answer at all), so filters and faults can be exercised deterministically.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use emguard_gateway::GatewayConfig;
use serde_json::{Value, json};

pub const ADMIN: &str = "admin-token-for-tests";

/// What the test upstream does with every chat request.
#[derive(Clone)]
pub enum Behaviour {
    Answer(String),
    Status(u16),
    /// Accepts the request and never answers.
    Hang,
    /// This exact `chat.completion` (whole), or these chunks (streamed), as the upstream
    /// would send them: fields the fixed answer lacks (logprobs, tool calls, reasoning).
    Scripted {
        whole: Value,
        chunks: Vec<Value>,
    },
    /// This status with this body.
    StatusBody(u16, String),
    /// An answer of this many bytes (streamed: one event line that long, no newline).
    Big(usize),
    /// Waits this long, then answers this text.
    Slow(Duration, String),
}

pub struct Upstream {
    /// Base URL ending in `/v1`.
    pub url: String,
    hits: Arc<AtomicUsize>,
}

impl Upstream {
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Starts an upstream on its own thread and runtime; it lives until the test process ends.
pub fn upstream(behaviour: Behaviour) -> Upstream {
    let hits = Arc::new(AtomicUsize::new(0));
    let state = (behaviour, Arc::clone(&hits));
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(answer))
        .route("/v1/embeddings", post(embed))
        .route("/v1/completions", post(answer_text))
        .with_state(state);
    let addr = spawn_server(|listener| async move {
        axum::serve(listener, app).await.expect("upstream runs");
    });
    Upstream {
        url: format!("http://{addr}/v1"),
        hits,
    }
}

/// `/embeddings`: one two-dimensional vector per call, naming the model it was asked for
/// (so a test sees what the gateway forwarded); an error status when the behaviour says so.
async fn embed(
    State((behaviour, hits)): State<(Behaviour, Arc<AtomicUsize>)>,
    Json(request): Json<Value>,
) -> Response {
    hits.fetch_add(1, Ordering::SeqCst);
    if let Behaviour::Status(code) = behaviour {
        return StatusCode::from_u16(code)
            .expect("valid status")
            .into_response();
    }
    Json(json!({
        "object": "list", "model": request["model"],
        "data": [{"object": "embedding", "index": 0, "embedding": [0.6, 0.8]}],
        "usage": {"prompt_tokens": 3, "total_tokens": 3}
    }))
    .into_response()
}

async fn answer(
    State((behaviour, hits)): State<(Behaviour, Arc<AtomicUsize>)>,
    Json(request): Json<Value>,
) -> Response {
    hits.fetch_add(1, Ordering::SeqCst);
    let text = match behaviour {
        Behaviour::Answer(text) => text,
        Behaviour::Slow(wait, text) => {
            tokio::time::sleep(wait).await;
            text
        }
        Behaviour::Scripted { whole, chunks } => {
            if request["stream"].as_bool() != Some(true) {
                return Json(whole).into_response();
            }
            let mut body = String::new();
            for c in chunks {
                body.push_str(&format!("data: {c}\n\n"));
            }
            body.push_str("data: [DONE]\n\n");
            return ([("content-type", "text/event-stream")], body).into_response();
        }
        Behaviour::StatusBody(code, body) => {
            let status = StatusCode::from_u16(code).expect("valid status");
            return (status, [("content-type", "application/json")], body).into_response();
        }
        Behaviour::Big(bytes) => {
            if request["stream"].as_bool() == Some(true) {
                let line = format!("data: {}", "x".repeat(bytes));
                return ([("content-type", "text/event-stream")], line).into_response();
            }
            let text = "a".repeat(bytes);
            return Json(json!({"id": "up-1", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}))
            .into_response();
        }
        Behaviour::Status(code) => {
            let status = StatusCode::from_u16(code).expect("valid status");
            let body = json!({"error": {"message": format!("upstream says {code}"), "type": "invalid_request_error", "param": null, "code": null}});
            return (status, Json(body)).into_response();
        }
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            unreachable!()
        }
    };
    let model = request["model"].as_str().unwrap_or("m").to_string();
    let n = request["n"].as_u64().unwrap_or(1) as usize;
    let usage = json!({"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12});
    if request["stream"].as_bool() != Some(true) {
        let choices: Vec<Value> = (0..n)
            .map(|i| json!({"index": i, "message": {"role": "assistant", "content": text}, "logprobs": null, "finish_reason": "stop"}))
            .collect();
        return Json(json!({"id": "up-1", "object": "chat.completion", "created": 1, "model": model, "choices": choices, "usage": usage})).into_response();
    }
    let chunk = |choices: Value, usage: Option<&Value>| {
        let mut c = json!({"id": "up-1", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": choices});
        if let Some(u) = usage {
            c["usage"] = u.clone();
        }
        format!("data: {c}\n\n")
    };
    let mut body = String::new();
    for i in 0..n {
        body.push_str(&chunk(json!([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]), None));
        let chars: Vec<char> = text.chars().collect();
        for piece in chars.chunks(5) {
            let piece: String = piece.iter().collect();
            body.push_str(&chunk(
                json!([{"index": i, "delta": {"content": piece}, "finish_reason": null}]),
                None,
            ));
        }
        body.push_str(&chunk(
            json!([{"index": i, "delta": {}, "finish_reason": "stop"}]),
            None,
        ));
    }
    if request["stream_options"]["include_usage"].as_bool() == Some(true) {
        body.push_str(&chunk(json!([]), Some(&usage)));
    }
    body.push_str("data: [DONE]\n\n");
    ([("content-type", "text/event-stream")], body).into_response()
}

/// `/completions` (legacy text completions): the behaviour's text as a `text_completion`
/// (streamed in five-character pieces, with the usage chunk when asked); a status when the
/// behaviour says so.
async fn answer_text(
    State((behaviour, hits)): State<(Behaviour, Arc<AtomicUsize>)>,
    Json(request): Json<Value>,
) -> Response {
    hits.fetch_add(1, Ordering::SeqCst);
    let text = match behaviour {
        Behaviour::Answer(text) => text,
        Behaviour::Status(code) => {
            return StatusCode::from_u16(code)
                .expect("valid status")
                .into_response();
        }
        _ => panic!("the test upstream's /completions answers `Answer` and `Status` only"),
    };
    let model = request["model"].as_str().unwrap_or("m").to_string();
    let usage = json!({"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12});
    if request["stream"].as_bool() != Some(true) {
        return Json(
            json!({"id": "up-1", "object": "text_completion", "created": 1, "model": model,
            "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": "stop"}],
            "usage": usage}),
        )
        .into_response();
    }
    let chunk = |choices: Value, usage: Option<&Value>| {
        let mut c = json!({"id": "up-1", "object": "text_completion", "created": 1, "model": model, "choices": choices});
        if let Some(u) = usage {
            c["usage"] = u.clone();
        }
        format!("data: {c}\n\n")
    };
    let mut body = String::new();
    let chars: Vec<char> = text.chars().collect();
    for piece in chars.chunks(5) {
        let piece: String = piece.iter().collect();
        body.push_str(&chunk(
            json!([{"index": 0, "text": piece, "logprobs": null, "finish_reason": null}]),
            None,
        ));
    }
    body.push_str(&chunk(
        json!([{"index": 0, "text": "", "logprobs": null, "finish_reason": "stop"}]),
        None,
    ));
    if request["stream_options"]["include_usage"].as_bool() == Some(true) {
        body.push_str(&chunk(json!([]), Some(&usage)));
    }
    body.push_str("data: [DONE]\n\n");
    ([("content-type", "text/event-stream")], body).into_response()
}

/// A port nobody listens on (connections are refused).
pub fn refused_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/v1")
}

pub struct Gateway {
    pub url: String,
    /// The admin listener's URL, when the config sets `server.admin_listen` (the test binds
    /// an ephemeral port in its place).
    pub admin_url: Option<String>,
    pub dir: Arc<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// In a mutex so that a `Gateway` can be shared by threads (a receiver cannot).
    done: Option<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>,
}

impl Gateway {
    pub fn store(&self) -> PathBuf {
        self.dir.path().join("gateway.db")
    }

    /// Stops the server and waits until its traces are flushed.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            let done = done.into_inner().unwrap_or_else(|p| p.into_inner());
            let _ = done.recv_timeout(Duration::from_secs(30));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A gateway from YAML in which `{store}` is the temp store path.
pub fn gateway(yaml: &str) -> Gateway {
    gateway_in(Arc::new(tempfile::tempdir().unwrap()), yaml)
}

/// A gateway over the store in `dir` (a restart keeps the keys, versions and traces).
pub fn gateway_in(dir: Arc<tempfile::TempDir>, yaml: &str) -> Gateway {
    let store = dir.path().join("gateway.db");
    let yaml = yaml.replace("{store}", &store.display().to_string());
    let config = GatewayConfig::parse(&yaml, false, "test.yaml").expect("test config is valid");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let admin = config.server.admin_listen.map(|_| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        l
    });
    let admin_url = admin
        .as_ref()
        .map(|l| format!("http://{}", l.local_addr().unwrap()));
    let addr = spawn_server(move |listener| async move {
        let state = emguard_gateway::build_with_admin_token(&config, Some(ADMIN.into()))
            .await
            .expect("the gateway builds");
        let admin = admin.map(|l| tokio::net::TcpListener::from_std(l).unwrap());
        emguard_gateway::serve_with_admin(listener, admin, state, async {
            let _ = stop_rx.await;
        })
        .await
        .expect("the gateway runs");
        let _ = done_tx.send(());
    });
    Gateway {
        admin_url,
        url: format!("http://{addr}"),
        dir,
        stop: Some(stop_tx),
        done: Some(std::sync::Mutex::new(done_rx)),
    }
}

fn spawn_server<F, Fut>(run: F) -> std::net::SocketAddr
where
    F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr"))
                .expect("test waits");
            run(listener).await;
        });
    });
    rx.recv().expect("server reports its address")
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// `(status, body)` of an admin call.
pub fn admin(g: &Gateway, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let c = client();
    let url = format!("{}{path}", g.url);
    let req = match method {
        "GET" => c.get(url),
        "POST" => c.post(url),
        "DELETE" => c.delete(url),
        "PUT" => c.put(url),
        other => panic!("method {other}"),
    };
    let req = req.bearer_auth(ADMIN);
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let res = req.send().unwrap();
    let status = res.status().as_u16();
    (status, res.json().unwrap_or(Value::Null))
}

/// Creates a key through the admin API; returns (key id, secret).
pub fn create_key(g: &Gateway, body: Value) -> (String, String) {
    let (status, created) = admin(g, "POST", "/admin/keys", Some(body));
    assert_eq!(status, 201, "{created}");
    (
        created["id"].as_str().unwrap().to_string(),
        created["key"].as_str().unwrap().to_string(),
    )
}

pub fn chat(g: &Gateway, key: Option<&str>, body: &Value) -> reqwest::blocking::Response {
    let mut req = client()
        .post(format!("{}/v1/chat/completions", g.url))
        .json(body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().unwrap()
}

pub fn ask(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 8})
}

/// Every trace of the gateway, newest first.
pub fn traces(g: &Gateway) -> Vec<Value> {
    let (status, body) = admin(g, "GET", "/admin/traces?limit=10000", None);
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Waits until the gateway has at least `n` traces (writes are off the hot path).
pub fn wait_for_traces(g: &Gateway, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let t = traces(g);
        if t.len() >= n {
            return t;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("fewer than {n} traces after 10 s: {:?}", traces(g));
}
