//! Durable traces survive `kill -9`: the real `emguard serve --config` (traces in durable
//! mode, the real SmolLM2 as the model) under concurrent load is killed with SIGKILL; every
//! answer a client received has its trace in the SQLite store afterwards.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use emguard_store::gateway::{GatewayStore, TraceQuery};
use serde_json::{Value, json};
use support::Server;

#[test]
fn every_answer_a_client_received_has_its_trace_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("gateway.db");
    let config = dir.path().join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            "store: '{}'\nauth: {{required: false}}\ntraces: {{durable: true}}\nmodels:\n  - id: m\n    active: v1\n    versions: [{{name: v1, local: smollm2-135m-instruct, max_batch: 8}}]\n",
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
                    // Requests cut off by the kill fail: only answers received count.
                    let Ok(res) = client.post(&url).json(&body).send() else { continue };
                    if res.status() != 200 {
                        continue;
                    }
                    if let Ok(answer) = res.json::<Value>() {
                        received.lock().unwrap().push(answer["id"].as_str().unwrap().to_string());
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    while received.lock().unwrap().len() < 40 && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill_hard();
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let received = received.lock().unwrap().clone();
    assert!(
        received.len() >= 40,
        "only {} answers before the deadline",
        received.len()
    );
    let store = GatewayStore::open(store.to_str().unwrap()).unwrap();
    let traced: std::collections::HashSet<String> = store
        .traces(&TraceQuery {
            limit: 1_000_000,
            ..TraceQuery::default()
        })
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    let missing: Vec<&String> = received.iter().filter(|id| !traced.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} answers have no trace: {missing:?}",
        missing.len(),
        received.len()
    );
    println!(
        "{} answers received, all traced ({} traces stored)",
        received.len(),
        traced.len()
    );
}
