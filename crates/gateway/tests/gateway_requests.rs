//! Every request leaves a complete trace; bad input gets a 4xx and the gateway keeps
//! serving; per-key limits answer 429 with Retry-After; content logging modes.

mod guard;

use guard::{Behaviour, ask, chat, client, create_key, gateway, upstream};
use serde_json::{Value, json};

fn config(up: &str, content: &str) -> String {
    format!(
        "
store: '{{store}}'
server: {{max_body_bytes: 1048576}}
traces: {{durable: true, content: {content}}}
models:
  - id: m
    active: v1
    versions: [{{name: v1, upstream: '{up}'}}]
"
    )
}

#[test]
fn a_trace_has_every_field() {
    let up = upstream(Behaviour::Answer("Four.".into()));
    let g = gateway(&config(&up.url, "full"));
    let (id, key) = create_key(&g, json!({"name": "t"}));
    let res = chat(&g, Some(&key), &ask("m", "What is 2 + 2?"));
    assert_eq!(res.status(), 200);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: Value = res.json().unwrap();
    assert_eq!(body["id"], request_id.as_str());
    let t = &guard::wait_for_traces(&g, 1)[0];
    assert_eq!(t["id"], request_id.as_str());
    assert_eq!(t["key_id"], id.as_str());
    assert_eq!(
        (t["model"].as_str(), t["version"].as_str()),
        (Some("m"), Some("v1"))
    );
    assert_eq!(t["backend"], format!("upstream:{}", up.url).as_str());
    assert_eq!(
        (t["prompt_tokens"].as_u64(), t["completion_tokens"].as_u64()),
        (Some(5), Some(7))
    );
    assert_eq!(t["status"], 200);
    assert_eq!(t["response"], "Four.");
    assert!(t["request"].as_str().unwrap().contains("What is 2 + 2?"));
    assert!(t["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(t["upstream_ms"].as_f64().unwrap() > 0.0);
    assert!(t["time"].as_f64().unwrap() > 1.7e9);
    assert_eq!(t["stream"], false);
    // One trace by id through the admin API.
    let (status, one) = guard::admin(&g, "GET", &format!("/admin/traces/{request_id}"), None);
    assert_eq!((status, &one["id"]), (200, &Value::String(request_id)));

    // A streamed answer records its time to first token.
    let mut streamed = ask("m", "Again?");
    streamed["stream"] = json!(true);
    let raw = chat(&g, Some(&key), &streamed).text().unwrap();
    assert!(raw.contains("[DONE]"));
    let t = &guard::wait_for_traces(&g, 2)[0];
    assert_eq!(
        (t["stream"].as_bool(), t["response"].as_str()),
        (Some(true), Some("Four."))
    );
    assert!(t["ttft_ms"].as_f64().is_some(), "{t}");
    assert_eq!(t["completion_tokens"], 7);
}

#[test]
fn hashed_and_off_content_logging_keep_no_text() {
    let up = upstream(Behaviour::Answer("Secret answer.".into()));
    for (mode, check) in [
        (
            "hashed",
            (|v: &Value| v.as_str().is_some_and(|s| s.starts_with("sha256:")))
                as fn(&Value) -> bool,
        ),
        ("off", |v: &Value| v.is_null()),
    ] {
        let g = gateway(&config(&up.url, mode));
        let (_, key) = create_key(&g, json!({"name": "t"}));
        assert_eq!(
            chat(&g, Some(&key), &ask("m", "private question")).status(),
            200
        );
        let t = &guard::wait_for_traces(&g, 1)[0];
        assert!(check(&t["request"]) && check(&t["response"]), "{mode}: {t}");
        assert!(!t.to_string().contains("private question"), "{mode}: {t}");
    }
}

#[test]
fn bad_input_gets_4xx_and_the_gateway_keeps_serving() {
    let up = upstream(Behaviour::Answer("fine".into()));
    let g = gateway(&config(&up.url, "full"));
    let (_, key) = create_key(&g, json!({"name": "t"}));
    let post = |body: Vec<u8>| {
        client()
            .post(format!("{}/v1/chat/completions", g.url))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap()
    };
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("malformed JSON", b"{\"model\": ".to_vec(), 400),
        (
            "invalid UTF-8",
            b"{\"model\":\"\xff\xfe\",\"messages\":[]}".to_vec(),
            400,
        ),
        (
            "wrong field type",
            br#"{"model":"m","messages":"hi"}"#.to_vec(),
            400,
        ),
        (
            "n out of range",
            br#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":0}"#.to_vec(),
            400,
        ),
        (
            "unknown model",
            br#"{"model":"nope","messages":[{"role":"user","content":"x"}]}"#.to_vec(),
            404,
        ),
        (
            "10 MB body",
            {
                let mut b = br#"{"model":"m","messages":[{"role":"user","content":""#.to_vec();
                b.extend(std::iter::repeat_n(b'a', 10 << 20));
                b.extend(br#""}]}"#);
                b
            },
            413,
        ),
    ];
    for (name, body, status) in cases {
        let res = post(body);
        assert_eq!(res.status().as_u16(), status, "{name}");
        let err: Value = res.json().unwrap();
        assert!(err["error"]["message"].is_string(), "{name}: {err}");
    }
    let ok = chat(&g, Some(&key), &ask("m", "still there?"));
    assert_eq!(ok.status(), 200);
}

/// A gateway and one key with `quota`; the key's first request is answered and its second,
/// sent at once, is refused: returns the refusal's `Retry-After` seconds and body.
fn second_request_refused(quota: Value) -> (guard::Gateway, String, u64, Value) {
    let up = upstream(Behaviour::Answer("ok".into()));
    let g = gateway(&config(&up.url, "off"));
    let mut key_body = json!({"name": "limited"});
    key_body
        .as_object_mut()
        .unwrap()
        .extend(quota.as_object().unwrap().clone());
    let (_, key) = create_key(&g, key_body);
    assert_eq!(chat(&g, Some(&key), &ask("m", "1")).status(), 200);
    let res = chat(&g, Some(&key), &ask("m", "2"));
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    (g, key, retry, res.json().unwrap())
}

#[test]
fn a_key_over_its_request_rate_gets_429_with_retry_after() {
    // 60 per minute: a burst of one, then one per second.
    let (g, key, retry, body) = second_request_refused(json!({"requests_per_minute": 60}));
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    // Another key is not affected.
    let (_, other) = create_key(&g, json!({"name": "other", "requests_per_minute": 60}));
    assert_eq!(chat(&g, Some(&other), &ask("m", "3")).status(), 200);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(chat(&g, Some(&key), &ask("m", "4")).status(), 200);
}

#[test]
fn a_key_over_its_token_rate_is_refused_until_repaid() {
    // Each answer uses 12 tokens; 60 tokens a minute is a burst of one second's worth (1 token),
    // so the first answer overdraws the budget.
    let (_, _, retry, _) = second_request_refused(json!({"tokens_per_minute": 60}));
    assert!((10..=13).contains(&retry), "12 tokens at 1/s: {retry}");
}

#[test]
fn metrics_count_requests_filters_and_refusals() {
    let up = upstream(Behaviour::Answer(
        "```python\nimport pickle\npickle.loads(data)\n```".into(),
    ));
    let g = gateway(&config(&up.url, "off").replace(
        "traces:",
        "filters: {code: {action: annotate, min_severity: low}}\ntraces:",
    ));
    let (_, key) = create_key(&g, json!({"name": "m", "requests_per_minute": 60}));
    assert_eq!(chat(&g, Some(&key), &ask("m", "1")).status(), 200);
    assert_eq!(chat(&g, Some(&key), &ask("m", "2")).status(), 429);
    let text = client()
        .get(format!("{}/metrics", g.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for expected in [
        r#"emguard_requests_total{model="m",version="v1",status="200"}"#,
        r#"emguard_requests_total{model="m",version="",status="429"}"#,
        r#"emguard_filter_verdicts_total{filter="code",action="annotated"}"#,
        r#"emguard_rate_limited_total{model="m"}"#,
        "emguard_request_duration_seconds",
        "emguard_trace_written",
    ] {
        assert!(text.contains(expected), "no `{expected}` in\n{text}");
    }
}
