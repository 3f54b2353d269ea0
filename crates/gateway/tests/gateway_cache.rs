//! The exact-match response cache through a real gateway and a counting upstream: a
//! reproducible request (temperature 0, or seeded) is answered once by the version, then from
//! the cache, still key-checked, rate-limited and traced (`cache_hit`); sampled and streamed
//! requests, other parameters, other models and answers a filter acted on are not served from
//! it; entries expire; hits and misses are counted in `/metrics`.

mod guard;

use guard::{Behaviour, Gateway, chat, client, create_key, gateway, upstream, wait_for_traces};
use serde_json::{Value, json};

const VULNERABLE: &str = "```python\nimport os\nfrom flask import request\nos.system('ping ' + request.args['host'])\n```";

fn config(cached: &str, filtered: &str, plain: &str, ttl_secs: u64) -> String {
    format!(
        "
store: '{{store}}'
traces: {{durable: true}}
filters: {{code: {{action: annotate, min_severity: low}}, text: {{action: flag}}}}
models:
  - id: m
    active: v1
    cache: {{ttl_secs: {ttl_secs}, max_entries: 100}}
    versions: [{{name: v1, upstream: '{cached}'}}]
  - id: code
    active: v1
    cache: {{ttl_secs: {ttl_secs}}}
    versions: [{{name: v1, upstream: '{filtered}'}}]
  - id: uncached
    active: v1
    versions: [{{name: v1, upstream: '{plain}'}}]
"
    )
}

fn greedy(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "temperature": 0, "max_tokens": 8})
}

fn ok(g: &Gateway, key: &str, body: &Value) -> Value {
    let res = chat(g, Some(key), body);
    assert_eq!(res.status(), 200);
    res.json().unwrap()
}

/// The cache's lookups for `model` with `outcome` (Prometheus text).
fn lookups(g: &Gateway, model: &str, outcome: &str) -> u64 {
    let text = client()
        .get(format!("{}/metrics", g.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let series = format!("emguard_cache_lookups_total{{model=\"{model}\",outcome=\"{outcome}\"}} ");
    text.lines()
        .filter_map(|l| l.strip_prefix(&series))
        .filter_map(|v| v.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn a_reproducible_request_is_answered_once_then_from_the_cache_behind_the_guard() {
    let up = upstream(Behaviour::Answer("Hello there.".into()));
    let code = upstream(Behaviour::Answer(VULNERABLE.into()));
    let plain = upstream(Behaviour::Answer("Hello there.".into()));
    let g = gateway(&config(&up.url, &code.url, &plain.url, 300));
    let (key_id, key) = create_key(&g, json!({"name": "app"}));

    let first = ok(&g, &key, &greedy("m"));
    let second = ok(&g, &key, &greedy("m"));
    assert_eq!(up.hits(), 1, "the second answer came from the cache");
    assert_eq!(first["choices"], second["choices"]);
    assert_ne!(
        first["id"], second["id"],
        "each answer has its own request id"
    );
    assert_eq!((lookups(&g, "m", "miss"), lookups(&g, "m", "hit")), (1, 1));
    // The legacy completions API has its own entries.
    let prompt = json!({"model": "m", "prompt": "hi", "temperature": 0, "max_tokens": 8});
    for _ in 0..2 {
        let res = client()
            .post(format!("{}/v1/completions", g.url))
            .bearer_auth(&key)
            .json(&prompt)
            .send()
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().unwrap();
        assert_eq!(body["choices"][0]["text"], "Hello there.");
    }
    assert_eq!(up.hits(), 2);

    // Another parameter, a sampled request (twice), a seeded one (twice), a stream: only the
    // seeded one's second answer is a hit.
    let mut longer = greedy("m");
    longer["max_tokens"] = json!(9);
    ok(&g, &key, &longer);
    let mut sampled = greedy("m");
    sampled["temperature"] = json!(1.0);
    ok(&g, &key, &sampled);
    ok(&g, &key, &sampled);
    let mut seeded = sampled.clone();
    seeded["seed"] = json!(7);
    ok(&g, &key, &seeded);
    ok(&g, &key, &seeded);
    let mut streamed = greedy("m");
    streamed["stream"] = json!(true);
    assert_eq!(chat(&g, Some(&key), &streamed).status(), 200);
    assert_eq!(up.hits(), 2 + 1 + 2 + 1 + 1);

    // A model without a cache, and answers a filter acted on, always reach their version.
    ok(&g, &key, &greedy("uncached"));
    ok(&g, &key, &greedy("uncached"));
    assert_eq!(plain.hits(), 2);
    let annotated = chat(&g, Some(&key), &greedy("code"));
    assert!(
        annotated.headers()["x-emguard-filter"]
            .to_str()
            .unwrap()
            .contains("code=annotated")
    );
    ok(&g, &key, &greedy("code"));
    assert_eq!(code.hits(), 2, "an annotated answer is not kept");

    // Still behind the guard: no key, a key out of scope, a key over its rate limit.
    assert_eq!(chat(&g, None, &greedy("m")).status(), 401);
    let (_, scoped) = create_key(&g, json!({"name": "other", "scopes": ["uncached"]}));
    assert_eq!(chat(&g, Some(&scoped), &greedy("m")).status(), 403);
    let (_, slow) = create_key(&g, json!({"name": "slow", "requests_per_minute": 1}));
    ok(&g, &slow, &greedy("m"));
    assert_eq!(chat(&g, Some(&slow), &greedy("m")).status(), 429);
    assert_eq!(up.hits(), 7, "none of these reached the version");

    // Traced: hits say so, with the version whose answer it was.
    let traces = wait_for_traces(&g, 18);
    let hits: Vec<&Value> = traces
        .iter()
        .filter(|t| t["attempts"][0]["outcome"] == "cache_hit")
        .collect();
    assert_eq!(
        hits.len(),
        4,
        "chat, completions, seeded, the slow key's first"
    );
    for t in &hits {
        assert_eq!(t["backend"], "cache");
        assert_eq!(t["version"], "v1");
        assert_eq!(t["status"], 200);
        assert_eq!(t["response"], "Hello there.");
    }
    assert!(hits.iter().any(|t| t["key_id"] == key_id.as_str()));
}

#[test]
fn cached_answers_expire() {
    let up = upstream(Behaviour::Answer("Hello there.".into()));
    let g = gateway(&config(&up.url, &up.url, &up.url, 1));
    let (_, key) = create_key(&g, json!({"name": "app"}));
    // Model `code` here (its upstream answers plain text): the other test counts `m`'s
    // lookups in the process-wide metrics.
    ok(&g, &key, &greedy("code"));
    ok(&g, &key, &greedy("code"));
    assert_eq!(up.hits(), 1);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ok(&g, &key, &greedy("code"));
    assert_eq!(up.hits(), 2, "expired after ttl_secs");
}
