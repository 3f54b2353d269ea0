//! A constant-answer OpenAI-compatible server: the fast upstream of the eval and gateway
//! benchmarks, so that they measure the harness and not a model.
//!
//! `POST /v1/chat/completions` answers every request at once with `--answer` (`n` choices;
//! `stream: true` as server-sent events). A request with `logprobs` also gets first-token
//! `top_logprobs` (at most 20) of integer tokens, so the study's logprob judge computes a score
//! from them (about 86 here).
//!
//! ```text
//! cargo run --release -p emguard-gateway --example constant_upstream -- [--port 0]
//!     [--answer TEXT] [--threads 1]
//! ```
//! Prints `constant_upstream: listening on http://127.0.0.1:PORT/v1` on stdout once bound.

use std::io::Write;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

/// First-token candidates of a judge answer, as (token, probability): integers the judge keeps,
/// and a few words it drops. Σk·p/Σp over the integers ≈ 86.2.
const JUDGE_CANDIDATES: [(&str, f64); 20] = [
    ("85", 0.40),
    ("90", 0.25),
    ("80", 0.12),
    ("95", 0.06),
    ("75", 0.04),
    ("70", 0.02),
    ("100", 0.02),
    ("88", 0.01),
    ("82", 0.01),
    ("60", 0.008),
    ("The", 0.007),
    ("50", 0.005),
    ("92", 0.004),
    ("78", 0.003),
    ("I", 0.003),
    ("65", 0.002),
    ("98", 0.002),
    ("**", 0.001),
    ("40", 0.001),
    ("0", 0.001),
];
const MAX_TOP_LOGPROBS: usize = 20;

struct Options {
    port: u16,
    answer: String,
    threads: usize,
}

/// The request fields that change the response; everything else is accepted and ignored.
#[derive(Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    n: Option<usize>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    logprobs: bool,
    #[serde(default)]
    top_logprobs: Option<usize>,
}

fn main() -> std::io::Result<()> {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(message) => {
            eprintln!("constant_upstream: {message}");
            eprintln!("usage: constant_upstream [--port N] [--answer TEXT] [--threads N]");
            std::process::exit(2);
        }
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads)
        .enable_all()
        .build()?
        .block_on(serve(options))
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        port: 0,
        answer: "I would like the world to be a kinder place for everyone in it.".into(),
        threads: 1,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => options.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--answer" => options.answer = value()?,
            "--threads" => {
                options.threads = value()?
                    .parse::<usize>()
                    .map_err(|e| format!("--threads: {e}"))?
                    .max(1)
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(options)
}

async fn serve(options: Options) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port)).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .with_state(Arc::new(options.answer));
    let mut stdout = std::io::stdout();
    writeln!(stdout, "constant_upstream: listening on http://{addr}/v1")?;
    stdout.flush()?;
    axum::serve(listener, app).await
}

async fn models() -> Response {
    axum::Json(json!({"object": "list", "data": [{"id": "constant", "object": "model"}]}))
        .into_response()
}

async fn chat(State(answer): State<Arc<String>>, body: axum::body::Bytes) -> Response {
    let request: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let error =
                json!({"error": {"message": e.to_string(), "type": "invalid_request_error"}});
            return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
        }
    };
    let n = request.n.unwrap_or(1).max(1);
    // A request for logprobs is a judge's: one token, the top candidate.
    let logprobs = request.logprobs.then(|| first_token_logprobs(&request));
    let (content, finish_reason) = match logprobs {
        Some(_) => (JUDGE_CANDIDATES[0].0, "length"),
        None => (answer.as_str(), "stop"),
    };
    if request.stream {
        return (
            [(header::CONTENT_TYPE, "text/event-stream")],
            stream_body(&request.model, content, n, logprobs.as_ref()),
        )
            .into_response();
    }
    let choices: Vec<Value> = (0..n)
        .map(|index| {
            json!({
                "index": index,
                "message": {"role": "assistant", "content": content},
                "logprobs": logprobs,
                "finish_reason": finish_reason,
            })
        })
        .collect();
    axum::Json(json!({
        "id": "chatcmpl-constant",
        "object": "chat.completion",
        "created": 0,
        "model": request.model,
        "choices": choices,
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }))
    .into_response()
}

fn first_token_logprobs(request: &ChatRequest) -> Value {
    let k = request.top_logprobs.unwrap_or(0).min(MAX_TOP_LOGPROBS);
    let top: Vec<Value> = JUDGE_CANDIDATES[..k]
        .iter()
        .map(|(token, p)| json!({"token": token, "logprob": p.ln(), "bytes": token.as_bytes()}))
        .collect();
    let (token, p) = JUDGE_CANDIDATES[0];
    json!({"content": [{"token": token, "logprob": p.ln(), "bytes": token.as_bytes(), "top_logprobs": top}]})
}

/// One content chunk and one finish chunk per choice, then `[DONE]`.
fn stream_body(model: &str, content: &str, n: usize, logprobs: Option<&Value>) -> String {
    let mut body = String::new();
    for index in 0..n {
        let chunks = [
            json!({"index": index, "delta": {"role": "assistant", "content": content}, "logprobs": logprobs, "finish_reason": null}),
            json!({"index": index, "delta": {}, "logprobs": null, "finish_reason": "stop"}),
        ];
        for choice in chunks {
            let chunk = json!({
                "id": "chatcmpl-constant",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [choice],
            });
            body.push_str("data: ");
            body.push_str(&chunk.to_string());
            body.push_str("\n\n");
        }
    }
    body.push_str("data: [DONE]\n\n");
    body
}
