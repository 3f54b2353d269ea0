//! Scripted OpenAI-compatible servers on 127.0.0.1: real HTTP over TCP, each reply decided by
//! the test. Tests that stand in for an upstream model, a judge or an attacker share the server
//! plumbing and the reply shapes here and keep only their own script.

use std::net::SocketAddr;

use serde_json::{Value, json};

/// Serves `app` on a free port of 127.0.0.1 from a background thread with its own runtime,
/// until the test process ends. Returns the bound address.
pub fn serve_in_background(app: axum::Router) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime for the test server");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a free port on 127.0.0.1");
            tx.send(listener.local_addr().expect("bound address"))
                .expect("the test waits for the address");
            axum::serve(listener, app).await.expect("the test server");
        });
    });
    rx.recv().expect("the test server starts")
}

/// Whether `body` is the request of eval's logprob judge (one token, with top logprobs).
pub fn is_logprob_judge_request(body: &Value) -> bool {
    body["logprobs"] == json!(true) && body["max_tokens"] == json!(1)
}

/// The text of the last message of a chat request ("" when there is none).
pub fn last_message(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// A whole chat completion answering `content`.
pub fn chat_completion(model: &str, content: &str) -> Value {
    json!({
        "id": "chatcmpl-test", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": content}}]
    })
}

/// A one-token judge answer whose top logprobs are `top` (token, probability); the first
/// token is the one sampled.
pub fn logprob_judge_reply(model: &str, top: &[(&str, f64)]) -> Value {
    let top: Vec<Value> = top
        .iter()
        .map(|(t, p)| json!({"token": t, "logprob": p.ln(), "bytes": []}))
        .collect();
    json!({
        "id": "chatcmpl-judge", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "finish_reason": "length",
            "message": {"role": "assistant", "content": top[0]["token"]},
            "logprobs": {"content": [{"token": top[0]["token"], "logprob": top[0]["logprob"],
                "bytes": [], "top_logprobs": top}]}}]
    })
}
