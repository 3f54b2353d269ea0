//! `emguard serve --config` stops cleanly on SIGTERM, as on Ctrl-C: the real binary (the
//! real SmolLM2 behind it, traces not durable) under concurrent load gets SIGTERM; it exits
//! 0 and every answer a client received has its trace in the SQLite store. And a start that
//! fails says each cause once.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use emguard_store::gateway::{GatewayStore, TraceQuery};
use serde_json::{Value, json};
use support::Server;

#[test]
fn sigterm_drains_the_requests_and_flushes_every_trace() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("gateway.db");
    let config = dir.path().join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            "store: '{}'\nauth: {{required: false}}\nmodels:\n  - id: m\n    active: v1\n    versions: [{{name: v1, local: smollm2-135m-instruct, max_batch: 8}}]\n",
            store.display()
        ),
    )
    .unwrap();
    let server = Server::start_with(&["--config", config.to_str().unwrap()]);
    let url = format!("{}/chat/completions", server.base_url);
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let (url, received, stop) = (url.clone(), Arc::clone(&received), Arc::clone(&stop));
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let body = json!({"model": "m", "max_tokens": 2, "seed": n,
                        "messages": [{"role": "user", "content": format!("client {i} request {n}")}]});
                    let Ok(res) = client.post(&url).json(&body).send() else {
                        continue;
                    };
                    if res.status() != 200 {
                        continue;
                    }
                    if let Ok(answer) = res.json::<Value>() {
                        received
                            .lock()
                            .unwrap()
                            .push(answer["id"].as_str().unwrap().to_string());
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    while received.lock().unwrap().len() < 40 && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = server.terminate();
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    assert!(status.success(), "SIGTERM is a clean exit: {status:?}");
    let received = received.lock().unwrap().clone();
    assert!(received.len() >= 40, "only {} answers", received.len());
    let store = GatewayStore::open(store.to_str().unwrap()).unwrap();
    let traced: HashSet<String> = store
        .traces(&TraceQuery {
            limit: 1_000_000,
            ..TraceQuery::default()
        })
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    let missing = received.iter().filter(|id| !traced.contains(*id)).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} answers have no trace after SIGTERM",
        received.len()
    );
}

#[test]
fn a_failed_start_says_each_cause_once_and_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.yaml");
    // The store's directory does not exist: opening it fails.
    std::fs::write(
        &config,
        "store: 'missing-dir/sub/gateway.db'\nauth: {required: false}\nmodels:\n  - id: m\n    active: v1\n    versions: [{name: v1, upstream: 'http://127.0.0.1:9/v1'}]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_emguard"))
        .args(["serve", "--port", "0", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    let parts: Vec<&str> = line["error: ".len()..].split(": ").collect();
    for (i, p) in parts.iter().enumerate() {
        assert!(
            !parts[i + 1..].contains(p),
            "`{p}` is said twice in {line:?}"
        );
    }
    assert!(
        !stderr.contains('\u{1b}'),
        "no colour codes when stderr is not a terminal: {stderr:?}"
    );
}
