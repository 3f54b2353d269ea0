//! API keys and the admin token, through a real gateway: every case a client can hit.

mod guard;

use guard::{Behaviour, admin, ask, chat, client, create_key, gateway, upstream};
use serde_json::{Value, json};

fn config(up: &str) -> String {
    format!(
        "
store: '{{store}}'
models:
  - id: open-model
    active: v1
    versions: [{{name: v1, upstream: '{up}'}}]
  - id: other-model
    active: v1
    versions: [{{name: v1, upstream: '{up}'}}]
"
    )
}

fn error_code(res: reqwest::blocking::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().unwrap();
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn every_key_case_gets_the_right_status() {
    let up = upstream(Behaviour::Answer("Hello there.".into()));
    let g = gateway(&config(&up.url));
    let body = ask("open-model", "hi");

    assert_eq!(
        error_code(chat(&g, None, &body)),
        (401, "missing_api_key".into())
    );
    assert_eq!(
        error_code(chat(&g, Some("nonsense"), &body)),
        (401, "invalid_api_key".into())
    );

    let (id, secret) = create_key(&g, json!({"name": "ci", "scopes": ["open-model"]}));
    assert!(id.starts_with("key_") && secret.starts_with("emg_"));
    // Right id, wrong secret.
    let forged = format!("{}{}", &secret[..secret.len() - 4], "0000");
    assert_eq!(
        error_code(chat(&g, Some(&forged), &body)),
        (401, "invalid_api_key".into())
    );

    let ok = chat(&g, Some(&secret), &body);
    assert_eq!(ok.status(), 200);
    let answer: Value = ok.json().unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "Hello there.");
    assert_eq!(answer["model"], "open-model");

    // Scopes: the other model is forbidden and not listed.
    assert_eq!(
        error_code(chat(&g, Some(&secret), &ask("other-model", "hi"))),
        (403, "model_not_allowed".into())
    );
    let models: Value = client()
        .get(format!("{}/v1/models", g.url))
        .bearer_auth(&secret)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["open-model"]);
    assert_eq!(
        client()
            .get(format!("{}/v1/models", g.url))
            .send()
            .unwrap()
            .status(),
        401
    );

    // Expired keys.
    let (_, expired) = create_key(&g, json!({"name": "old", "expires_at": 1.0}));
    assert_eq!(
        error_code(chat(&g, Some(&expired), &body)),
        (401, "expired_api_key".into())
    );

    // Revocation takes effect at once.
    let (status, _) = admin(&g, "DELETE", &format!("/admin/keys/{id}"), None);
    assert_eq!(status, 200);
    assert_eq!(
        error_code(chat(&g, Some(&secret), &body)),
        (401, "revoked_api_key".into())
    );
    let (status, _) = admin(&g, "DELETE", "/admin/keys/key_000000000000", None);
    assert_eq!(status, 404);

    // The secret is shown once: the list has neither it nor its hash.
    let (status, list) = admin(&g, "GET", "/admin/keys", None);
    assert_eq!(status, 200);
    let text = list.to_string();
    assert!(!text.contains(&secret) && !text.contains("hash"), "{text}");
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    assert!(list["data"][0]["revoked_at"].is_number());

    // No secret reaches the traces.
    let traces = guard::wait_for_traces(&g, 7);
    let dump = serde_json::to_string(&traces).unwrap();
    assert!(
        !dump.contains(&secret) && !dump.contains(&expired),
        "a key leaked into a trace"
    );
    assert!(
        traces
            .iter()
            .any(|t| t["status"] == 401 && t["key_id"].is_null())
    );
    assert!(
        traces
            .iter()
            .any(|t| t["status"] == 403 && t["key_id"] == id)
    );
}

#[test]
fn the_admin_api_needs_its_own_token() {
    let up = upstream(Behaviour::Answer("x".into()));
    let g = gateway(&config(&up.url));
    let c = client();
    let url = format!("{}/admin/keys", g.url);
    assert_eq!(c.get(&url).send().unwrap().status(), 401);
    assert_eq!(
        c.get(&url).bearer_auth("wrong").send().unwrap().status(),
        401
    );
    // An API key is not an admin token.
    let (_, secret) = create_key(&g, json!({"name": "user"}));
    assert_eq!(
        c.get(&url).bearer_auth(&secret).send().unwrap().status(),
        401
    );
    // Bad key requests name the field.
    let (status, body) = admin(
        &g,
        "POST",
        "/admin/keys",
        Some(json!({"name": "x", "scopes": ["nope"]})),
    );
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (400, Some("scopes"))
    );
    let (status, body) = admin(
        &g,
        "POST",
        "/admin/keys",
        Some(json!({"name": "x", "scopez": []})),
    );
    assert_eq!(status, 400, "{body}");
}

#[test]
fn without_a_token_the_admin_api_is_off() {
    let up = upstream(Behaviour::Answer("x".into()));
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let store = dir.path().join("gateway.db");
    let yaml = config(&up.url).replace("{store}", &store.display().to_string());
    let config = emguard_gateway::GatewayConfig::parse(&yaml, false, "t.yaml").unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let state = runtime
        .block_on(emguard_gateway::build_with_admin_token(&config, None))
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(emguard_gateway::serve(
        listener,
        state,
        std::future::pending(),
    ));
    let res = client()
        .get(format!("http://{addr}/admin/keys"))
        .bearer_auth("anything")
        .send()
        .unwrap();
    assert_eq!(error_code(res), (403, "admin_disabled".into()));
}
