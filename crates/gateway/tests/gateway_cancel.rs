//! Finding 12 of issue 15: a local generation stops when its client goes away, whole or
//! streamed, and what it generated is traced (status 499) with its tokens. Real SmolLM2
//! behind a real gateway; real clients that hang up. The proof that generation stopped is
//! the trace, written once the engine has closed the request (its completion tokens are far
//! under `max_tokens`), and the gateway's cancellation counter in `/metrics`.

mod guard;

use std::io::Read;

use guard::{client, gateway};
use serde_json::{Value, json};

/// Room for the whole count; greedy SmolLM2 stops by itself well before it.
const MAX_TOKENS: u64 = 1500;

fn long_request(stream: bool) -> Value {
    json!({
        "model": "m", "stream": stream, "temperature": 0, "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": "Count from 1 to 1000, one number per line."}]
    })
}

/// The gateway's count of cancelled local generations (Prometheus text).
fn cancelled(g: &guard::Gateway) -> u64 {
    let text = client()
        .get(format!("{}/metrics", g.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("emguard_local_generations_cancelled_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The newest trace once there are `n`.
fn newest_trace(g: &guard::Gateway, n: usize) -> Value {
    guard::wait_for_traces(g, n)[0].clone()
}

/// `natural`: the tokens the same request generates when nobody hangs up.
fn assert_stopped_early(t: &Value, natural: u64) {
    assert_eq!(t["status"], 499, "{t}");
    let completion = t["completion_tokens"].as_u64().expect("tokens are traced");
    assert!(
        completion < natural,
        "generation went on ({natural} uncancelled): {t}"
    );
    assert!(t["prompt_tokens"].as_u64().unwrap() > 0, "{t}");
}

#[test]
fn a_local_generation_stops_when_its_client_goes_away() {
    let g = gateway(
        "
store: '{store}'
auth: {required: false}
models:
  - id: m
    active: v1
    versions:
      - {name: v1, local: smollm2-135m-instruct, max_batch: 2}
",
    );
    // The same request answered whole first: how long it takes on this machine and how many
    // tokens it makes set what "stopped early" means (a fixed timeout would let a fast
    // machine finish the answer before the client gives up).
    let start = std::time::Instant::now();
    let full: Value = client()
        .post(format!("{}/v1/chat/completions", g.url))
        .json(&long_request(false))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let took = start.elapsed();
    let natural = full["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(natural >= 40, "a long enough answer to cut: {full}");
    newest_trace(&g, 1);
    let before = cancelled(&g);

    // Whole: the client gives up a quarter of the way through.
    let impatient = reqwest::blocking::Client::builder()
        .timeout(took / 4)
        .build()
        .unwrap();
    let gone = impatient
        .post(format!("{}/v1/chat/completions", g.url))
        .json(&long_request(false))
        .send();
    assert!(gone.is_err(), "the client gave up first");
    let t = newest_trace(&g, 2);
    assert_stopped_early(&t, natural);
    assert!(
        t["error"]
            .as_str()
            .unwrap()
            .contains("generation cancelled"),
        "{t}"
    );
    assert_eq!(cancelled(&g), before + 1);

    // Streamed: the client reads the first events, then closes the connection.
    let reader = reqwest::blocking::Client::new();
    let mut res = reader
        .post(format!("{}/v1/chat/completions", g.url))
        .json(&long_request(true))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while seen.windows(5).filter(|w| w == b"data:").count() < 4 {
        let n = res.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended early");
        seen.extend_from_slice(&buf[..n]);
    }
    drop(res);
    drop(reader);
    let t = newest_trace(&g, 3);
    assert_eq!(t["stream"], true, "{t}");
    assert_stopped_early(&t, natural);
    assert!(t["error"].as_str().unwrap().contains("went away"), "{t}");
    assert!(
        t["completion_tokens"].as_u64().unwrap() >= 2,
        "the events read were generated: {t}"
    );
    assert_eq!(cancelled(&g), before + 2);
    g.stop();
}
