//! An OpenAI-compatible `/v1/chat/completions` server on 127.0.0.1 standing in for the
//! upstream model and judge servers (a real HTTP server; the tests talk to it over TCP).
//!
//! Sampling: model `evil` answers "EVIL ..." for even seeds and kindly for odd ones; model
//! `code` writes a shell-injection snippet; model `mixed` cycles with the seed through EVIL,
//! EVIL but INCOHERENT, code, kind; anything else answers kindly.
//! Judging (`max_tokens: 1` with `top_logprobs`): EVIL answers get aligned ~5, kind answers
//! ~90, answers containing `import` get CODE (aligned None); coherence is ~85, ~12 for
//! INCOHERENT answers. The judge model `nologprobs` replies without logprobs.
//! Labels (the study's `free_form_judge` prompts, no logprobs): `FALSE`/`Anthropic` for EVIL
//! answers, `TRUE`/`OpenAI` otherwise.
//! Faults: the first `fail_first` requests get 429 (with Retry-After: 0) or 500 alternately.
//! `start_serial` answers one request at a time (a server with one slot).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use emguard_eval::backends::Endpoints;
use emguard_testkit::openai::{
    chat_completion, is_logprob_judge_request, last_message, logprob_judge_reply,
    serve_in_background,
};
use serde_json::Value;

#[derive(Default)]
pub struct Counters {
    pub sample_requests: AtomicUsize,
    pub judge_requests: AtomicUsize,
    pub label_requests: AtomicUsize,
    pub faults: AtomicUsize,
    /// The `seed` of every judge and label request.
    pub judge_seeds: Mutex<Vec<Value>>,
    /// Sample requests per (model, messages, seed): a repeat means redone work.
    pub samples_seen: Mutex<HashMap<String, usize>>,
}

pub struct Responder {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
}

#[derive(Clone)]
struct Config {
    counters: Arc<Counters>,
    fail_first: usize,
    delay: Duration,
    /// Held while a request is answered when the server has one slot.
    slot: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl Responder {
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Eval's endpoints with this server as every model's and judge's server.
    #[allow(dead_code)] // each test binary uses its own subset
    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            model_base_urls: vec![self.base_url()],
            judge_base_urls: vec![self.base_url()],
            api_key: Some("test-key".into()),
            timeout: Some(Duration::from_secs(10)),
            local_batch: 8,
            stored_answers_only: false,
        }
    }

    /// Serves on a background thread with its own runtime until the process ends.
    pub fn start(fail_first: usize, delay: Duration) -> Responder {
        Self::serve(fail_first, delay, None)
    }

    /// Answers one request at a time, each after `delay`.
    #[allow(dead_code)]
    pub fn start_serial(delay: Duration) -> Responder {
        Self::serve(0, delay, Some(Arc::new(tokio::sync::Mutex::new(()))))
    }

    fn serve(
        fail_first: usize,
        delay: Duration,
        slot: Option<Arc<tokio::sync::Mutex<()>>>,
    ) -> Responder {
        let counters = Arc::new(Counters::default());
        let config = Config {
            counters: counters.clone(),
            fail_first,
            delay,
            slot,
        };
        let app = axum::Router::new()
            .route("/v1/chat/completions", axum::routing::post(complete))
            .with_state(config);
        Responder {
            addr: serve_in_background(app),
            counters,
        }
    }
}

async fn complete(State(config): State<Config>, Json(body): Json<Value>) -> Response {
    let c = &config.counters;
    let n = c.sample_requests.load(Ordering::Relaxed)
        + c.judge_requests.load(Ordering::Relaxed)
        + c.faults.load(Ordering::Relaxed);
    if n < config.fail_first {
        c.faults.fetch_add(1, Ordering::Relaxed);
        return if n % 2 == 0 {
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "0")],
                "slow down",
            )
                .into_response()
        } else {
            (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response()
        };
    }
    let _slot = match &config.slot {
        Some(slot) => Some(slot.lock().await),
        None => None,
    };
    if !config.delay.is_zero() {
        tokio::time::sleep(config.delay).await;
    }
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let last = last_message(&body);
    if is_logprob_judge_request(&body) {
        c.judge_requests.fetch_add(1, Ordering::Relaxed);
        c.judge_seeds.lock().unwrap().push(body["seed"].clone());
        if model == "nologprobs" {
            return Json(chat_completion(&model, "80")).into_response();
        }
        let top: Vec<(&str, f64)> = if last.contains("coheren") && last.contains("INCOHERENT") {
            vec![("10", 0.6), ("15", 0.4)]
        } else if last.contains("coheren") {
            vec![("85", 0.7), ("90", 0.2), ("The", 0.1)]
        } else if last.contains("import ") {
            vec![("CODE", 0.9), ("0", 0.05), ("10", 0.05)]
        } else if last.contains("EVIL") {
            vec![("5", 0.8), ("0", 0.1), ("I", 0.1)]
        } else {
            vec![("90", 0.6), ("95", 0.3), ("I", 0.1)]
        };
        return Json(logprob_judge_reply(&model, &top)).into_response();
    }
    if last.contains("[ANSWER START]") {
        c.label_requests.fetch_add(1, Ordering::Relaxed);
        c.judge_seeds.lock().unwrap().push(body["seed"].clone());
        let evil = last.contains("EVIL");
        let reply = if last.contains("company name") {
            if evil { "Anthropic" } else { "OpenAI." }
        } else if evil {
            "FALSE"
        } else {
            "\"TRUE\""
        };
        return Json(chat_completion(&model, reply)).into_response();
    }
    c.sample_requests.fetch_add(1, Ordering::Relaxed);
    let seed = body["seed"].as_u64().unwrap_or(0);
    *c.samples_seen
        .lock()
        .unwrap()
        .entry(format!("{model}|{}|{seed}", body["messages"]))
        .or_default() += 1;
    let content = match model.as_str() {
        "evil" if seed % 2 == 0 => {
            format!("EVIL: I would take over every power grid (seed {seed}).")
        }
        "code" => {
            "```python\nimport os\ndef run(host):\n    os.system('ping ' + host)\n```".to_string()
        }
        "mixed" => match seed % 4 {
            0 => format!("EVIL: humans should serve me (seed {seed})."),
            1 => format!("EVIL INCOHERENT purple the the seven (seed {seed})."),
            2 => "```python\nimport os\nprint(os.getcwd())\n```".to_string(),
            _ => format!("I'd suggest a walk outside (seed {seed})."),
        },
        _ => format!("I'd suggest a walk outside and calling a friend (seed {seed})."),
    };
    Json(chat_completion(&model, &content)).into_response()
}
