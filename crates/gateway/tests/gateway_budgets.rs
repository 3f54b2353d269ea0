//! Per-key token budgets through real gateways: a key over its budget is refused with 429
//! `token_budget_exceeded` naming the budget and when it resets; prompt and completion tokens
//! of chat and legacy completions are charged; the admin API sets, shows and removes budgets;
//! the count lives in the store, so two replicas sharing a real PostgreSQL share it.

mod guard;

use emguard_gateway::budget::rfc3339;
use emguard_testkit::TestPostgres;
use guard::{Behaviour, Gateway, admin, ask, chat, client, create_key, gateway, upstream};
use serde_json::{Value, json};

fn completion(g: &Gateway, key: &str) -> reqwest::blocking::Response {
    client()
        .post(format!("{}/v1/completions", g.url))
        .bearer_auth(key)
        .json(&json!({"model": "m", "prompt": "Hello", "max_tokens": 8}))
        .send()
        .unwrap()
}

fn config(store: &str, up: &str) -> String {
    format!(
        "
store: '{store}'
traces: {{durable: true}}
models:
  - id: m
    active: v1
    versions: [{{name: v1, upstream: '{up}'}}]
"
    )
}

/// The start of the next UTC day, as the refusal names it.
fn tomorrow() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    rfc3339((now / 86_400 + 1) * 86_400)
}

/// Asserts a budget refusal: status, OpenAI-style body, and when the budget resets.
fn assert_refused(res: reqwest::blocking::Response, budget: &str) {
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry), "retry-after {retry}");
    let body: Value = res.json().unwrap();
    let error = &body["error"];
    assert_eq!(error["code"], "token_budget_exceeded", "{body}");
    assert_eq!(error["type"], "rate_limit_error", "{body}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(budget), "{message}");
    assert!(
        message.contains(&format!("resets at {}", tomorrow())),
        "{message}"
    );
}

#[test]
fn a_key_over_its_budget_is_refused_until_the_budget_is_raised_or_removed() {
    // Every answer costs 12 tokens (5 prompt + 7 completion, the upstream's usage).
    let up = upstream(Behaviour::Answer("Hello.".into()));
    let g = gateway(&config("{store}", &up.url));
    let (id, key) = create_key(
        &g,
        json!({"name": "budgeted", "token_budget": {"tokens": 20, "period": "day"}}),
    );
    let (_, unbudgeted) = create_key(&g, json!({"name": "free"}));
    assert_eq!(chat(&g, Some(&key), &ask("m", "hi")).status(), 200);
    // 12 < 20: admitted, and the answer takes the count to 24.
    assert_eq!(completion(&g, &key).status(), 200);
    assert_refused(
        chat(&g, Some(&key), &ask("m", "hi")),
        "token budget of 20 per day",
    );
    assert_refused(completion(&g, &key), "token budget of 20 per day");
    assert_eq!(up.hits(), 2, "refused before the upstream");
    // Another key is not affected.
    assert_eq!(chat(&g, Some(&unbudgeted), &ask("m", "hi")).status(), 200);

    let (status, shown) = admin(&g, "GET", &format!("/admin/keys/{id}/budget"), None);
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["used"], 24, "{shown}");
    assert_eq!(shown["remaining"], 0, "{shown}");
    assert_eq!(
        shown["token_budget"],
        json!({"tokens": 20, "period": "day"})
    );
    assert_eq!(shown["resets_at"], tomorrow());
    let (_, keys) = admin(&g, "GET", "/admin/keys", None);
    let listed = keys["data"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .any(|k| k["id"] == id.as_str() && k["token_budget"]["tokens"] == 20)
    );

    // Raised (and made monthly: the day's spending counts in the month): served again.
    let (status, shown) = admin(
        &g,
        "PUT",
        &format!("/admin/keys/{id}/budget"),
        Some(json!({"tokens": 100, "period": "month"})),
    );
    assert_eq!(status, 200, "{shown}");
    assert_eq!(
        (shown["used"].clone(), shown["remaining"].clone()),
        (json!(24), json!(76))
    );
    assert_eq!(chat(&g, Some(&key), &ask("m", "hi")).status(), 200);
    // Lowered below what was spent: refused, naming the new budget.
    admin(
        &g,
        "PUT",
        &format!("/admin/keys/{id}/budget"),
        Some(json!({"tokens": 30, "period": "day"})),
    );
    assert_refused(completion(&g, &key), "token budget of 30 per day");
    // Removed: no limit.
    let (status, _) = admin(&g, "DELETE", &format!("/admin/keys/{id}/budget"), None);
    assert_eq!(status, 200);
    assert_eq!(completion(&g, &key).status(), 200);
    let (_, shown) = admin(&g, "GET", &format!("/admin/keys/{id}/budget"), None);
    assert_eq!(shown["token_budget"], Value::Null);

    // Refusals are traced like any answer.
    let traces = guard::wait_for_traces(&g, 8);
    assert_eq!(traces.iter().filter(|t| t["status"] == 429).count(), 3);

    // Bad budgets name the field; an unknown key is 404.
    let path = format!("/admin/keys/{id}/budget");
    let (status, body) = admin(
        &g,
        "PUT",
        &path,
        Some(json!({"tokens": 0, "period": "day"})),
    );
    assert_eq!(
        (status, body["error"]["param"].clone()),
        (400, json!("token_budget.tokens"))
    );
    let (status, body) = admin(
        &g,
        "PUT",
        &path,
        Some(json!({"tokens": 5, "period": "week"})),
    );
    assert_eq!(status, 400, "{body}");
    let (status, _) = admin(
        &g,
        "PUT",
        "/admin/keys/key_000000000000/budget",
        Some(json!({"tokens": 5, "period": "day"})),
    );
    assert_eq!(status, 404);
}

#[test]
fn two_replicas_on_one_postgresql_share_a_keys_budget() {
    let Some(pg) = TestPostgres::start("two_replicas_on_one_postgresql_share_a_keys_budget") else {
        return;
    };
    let up = upstream(Behaviour::Answer("Hello.".into()));
    let a = gateway(&config(&pg.url, &up.url));
    let (id, key) = create_key(
        &a,
        json!({"name": "shared", "token_budget": {"tokens": 20, "period": "month"}}),
    );
    // Started after the key exists: it loads the key at start.
    let b = gateway(&config(&pg.url, &up.url));
    assert_eq!(chat(&a, Some(&key), &ask("m", "hi")).status(), 200);
    assert_eq!(completion(&b, &key).status(), 200);
    // 24 spent across the two: both refuse.
    for g in [&a, &b] {
        let res = chat(g, Some(&key), &ask("m", "hi"));
        assert_eq!(res.status(), 429);
        let body: Value = res.json().unwrap();
        assert_eq!(body["error"]["code"], "token_budget_exceeded", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("token budget of 20 per month"),
            "{body}"
        );
    }
    assert_eq!(up.hits(), 2);
    let (_, shown) = admin(&b, "GET", &format!("/admin/keys/{id}/budget"), None);
    assert_eq!(shown["used"], 24, "{shown}");
}
