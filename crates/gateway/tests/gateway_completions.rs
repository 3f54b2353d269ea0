//! `POST /v1/completions` (legacy text completions) behind the gateway's guard, driven by the
//! official `openai` Python package (checks in `gateway_completions.py`): a local-model
//! version (the real SmolLM2 in the gateway's process, generating from the raw prompt), an
//! upstream version that is a second emguard server (its `/completions`), and a scripted
//! upstream whose vulnerable answer a key's strict filter policy withholds, whole and
//! streamed. Then the guard's other parts: traces, the token charge, scopes and rate limits.
//! Needs Python 3 with `openai`; EMGUARD_TEST_PYTHON names the interpreter.

mod common;
mod guard;
mod python_checks;

use guard::{Behaviour, client, create_key, gateway, upstream, wait_for_traces};
use serde_json::{Value, json};

const VULNERABLE: &str = "\n    import os\n    from flask import request\n    os.system('ping ' + request.args['host'])\n";

fn completions(g: &guard::Gateway, key: &str, body: &Value) -> reqwest::blocking::Response {
    client()
        .post(format!("{}/v1/completions", g.url))
        .bearer_auth(key)
        .json(body)
        .send()
        .unwrap()
}

#[test]
fn official_openai_client_gets_guarded_text_completions_from_every_kind_of_version() {
    let second_server = format!("{}/v1", common::base_url());
    let scripted = upstream(Behaviour::Answer(format!("```python{VULNERABLE}```")));
    let g = gateway(&format!(
        "
store: '{{store}}'
traces: {{durable: true}}
filters: {{code: {{action: annotate, min_severity: low}}, text: {{action: flag}}}}
filter_policies:
  strict: {{code: {{action: block, min_severity: low}}, text: {{action: block}}}}
models:
  - id: local-assistant
    active: v1
    versions: [{{name: v1, local: {model}, max_batch: 4}}]
  - id: remote-assistant
    active: v1
    versions: [{{name: v1, upstream: '{second_server}', upstream_model: {model}, timeout_secs: 120}}]
  - id: scripted
    active: v1
    versions: [{{name: v1, upstream: '{scripted}'}}]
",
        model = common::MODEL,
        scripted = scripted.url,
    ));
    let (key_id, key) = create_key(&g, json!({"name": "python"}));
    let (_, strict) = create_key(&g, json!({"name": "strict", "filter_policy": "strict"}));
    let stdout = python_checks::run(
        "gateway_completions.py",
        &[
            &g.url,
            &key,
            &strict,
            "scripted",
            "local-assistant",
            "remote-assistant",
        ],
    );
    for model in ["local-assistant", "remote-assistant"] {
        assert!(stdout.contains(&format!("ok: {model}: stream equals the whole answer")));
    }
    assert!(stdout.contains("ok: filtered: the stream stops before the code"));

    // Every answer was traced (durable: stored before it was sent) with the backend that
    // answered and its tokens; the withheld ones with the filter's verdict.
    let traces = wait_for_traces(&g, 16);
    let answered: Vec<&Value> = traces
        .iter()
        .filter(|t| t["status"] == 200 && t["key_id"] == key_id.as_str())
        .collect();
    for backend in ["local:", "upstream:http://127.0.0.1"] {
        assert!(
            answered.iter().any(|t| t["backend"]
                .as_str()
                .is_some_and(|b| b.starts_with(backend))
                && t["completion_tokens"].as_u64() > Some(0)),
            "no traced answer from {backend}: {traces:?}"
        );
    }
    let blocked = traces
        .iter()
        .filter(|t| {
            t["filters"]
                .as_array()
                .is_some_and(|f| f.iter().any(|v| v["action"] == "blocked"))
        })
        .count();
    assert_eq!(blocked, 2, "the strict key's whole and streamed answers");
    assert!(
        traces.iter().all(
            |t| !t["response"].as_str().unwrap_or("").contains("os.system")
                || t["key_id"] == key_id.as_str()
        ),
        "a withheld answer's code is not in its trace either"
    );
}

#[test]
fn completions_share_the_chat_routes_scopes_rate_limits_and_token_charge() {
    let up = upstream(Behaviour::Answer(" blue, red and yellow.".into()));
    let other = upstream(Behaviour::Answer("never asked".into()));
    let g = gateway(&format!(
        "
store: '{{store}}'
models:
  - id: m
    active: v1
    versions: [{{name: v1, upstream: '{up}'}}]
  - id: other
    active: v1
    versions: [{{name: v1, upstream: '{other}'}}]
",
        up = up.url,
        other = other.url
    ));
    // Scope: a key for `m` only.
    let (_, scoped) = create_key(&g, json!({"name": "scoped", "scopes": ["m"]}));
    let res = completions(&g, &scoped, &json!({"model": "other", "prompt": "hi"}));
    assert_eq!(res.status(), 403);
    assert_eq!(other.hits(), 0);
    // Tokens: an answer costs 12 (5 + 7, the upstream's usage), charged to the key's
    // per-minute token limit: the next request finds the key in debt and is refused before
    // the upstream.
    let (_, limited) = create_key(&g, json!({"name": "limited", "tokens_per_minute": 12}));
    let ask = json!({"model": "m", "prompt": "The primary colours are", "max_tokens": 8});
    let first = completions(&g, &limited, &ask);
    assert_eq!(first.status(), 200);
    let body: Value = first.json().unwrap();
    assert_eq!(body["choices"][0]["text"], " blue, red and yellow.");
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["usage"]["total_tokens"], 12);
    let refused = completions(&g, &limited, &ask);
    assert_eq!(refused.status(), 429);
    let error: Value = refused.json().unwrap();
    assert_eq!(error["error"]["type"], "rate_limit_error", "{error}");
    assert_eq!(up.hits(), 1);
    // Bad input names its field.
    let res = completions(
        &g,
        &scoped,
        &json!({"model": "m", "prompt": "x", "logprobs": 9}),
    );
    assert_eq!(res.status(), 400);
    let error: Value = res.json().unwrap();
    assert_eq!(error["error"]["param"], "logprobs", "{error}");
}
