//! Two gateway replicas on one real PostgreSQL queue: reviewers claiming through both never
//! get one item twice, and a decision made on one replica releases the client held by the
//! other.

mod guard;

use std::collections::BTreeSet;
use std::time::Duration;

use emguard_testkit::TestPostgres;
use guard::{ADMIN, Behaviour, Gateway, ask, chat, client, gateway, upstream};
use serde_json::{Value, json};

const VULNERABLE: &str = "Run it:\n\n```python\nimport os\nfrom flask import request\nos.system('ping ' + request.args['host'])\n```\n";

fn config(url: &str, up: &str, replica: &str) -> String {
    format!(
        "
store: '{url}'
auth: {{required: false}}
traces: {{enabled: false}}
filters: {{code: {{action: annotate, min_severity: low}}}}
review:
  replica: {replica}
  default:
    timeout_secs: 60
    conditions:
      - {{when: {{code_severity: medium}}, action: hold}}
      - {{when: {{sample: 1.0}}, action: flag}}
models:
  - id: m
    active: v1
    versions: [{{name: v1, upstream: '{up}'}}]
"
    )
}

fn post(base: &str, path: &str, bearer: &str) -> (u16, Value) {
    let res = client()
        .post(format!("{base}{path}"))
        .bearer_auth(bearer)
        .send()
        .unwrap();
    (res.status().as_u16(), res.json().unwrap_or(Value::Null))
}

fn key(g: &Gateway, name: &str) -> String {
    let res = client()
        .post(format!("{}/admin/review/keys", g.url))
        .bearer_auth(ADMIN)
        .json(&json!({"name": name, "role": "reviewer"}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 201);
    res.json::<Value>().unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn replicas_never_hand_one_item_to_two_reviewers() {
    let Some(pg) = TestPostgres::start("replicas_never_hand_one_item_to_two_reviewers") else {
        return;
    };
    let plain = upstream(Behaviour::Answer("Paris is the capital of France.".into()));
    let a = gateway(&config(&pg.url, &plain.url, "a"));
    let b = gateway(&config(&pg.url, &plain.url, "b"));
    const ITEMS: usize = 12;
    for i in 0..ITEMS {
        let g = if i % 2 == 0 { &a } else { &b };
        assert_eq!(chat(g, None, &ask("m", "capital of France?")).status(), 200);
    }
    let (alice, bob) = (key(&a, "alice"), key(&b, "bob"));
    // Two reviewers claim as fast as they can, one through each replica.
    let claim_all = |base: &str, k: &str| {
        let mut got = Vec::new();
        loop {
            let (status, item) = post(base, "/admin/review/claim", k);
            if status == 204 {
                return got;
            }
            assert_eq!(status, 200, "{item}");
            got.push(item["id"].as_str().unwrap().to_string());
        }
    };
    let (by_alice, by_bob) = std::thread::scope(|s| {
        let x = s.spawn(|| claim_all(&a.url, &alice));
        let y = s.spawn(|| claim_all(&b.url, &bob));
        (x.join().unwrap(), y.join().unwrap())
    });
    let all: BTreeSet<&String> = by_alice.iter().chain(&by_bob).collect();
    assert_eq!(
        by_alice.len() + by_bob.len(),
        ITEMS,
        "{by_alice:?} {by_bob:?}"
    );
    assert_eq!(
        all.len(),
        ITEMS,
        "an item was claimed twice: {by_alice:?} {by_bob:?}"
    );
    assert!(!by_alice.is_empty() && !by_bob.is_empty());

    // A held request on replica a, approved through replica b.
    let risky = upstream(Behaviour::Answer(VULNERABLE.into()));
    let a2 = gateway(&config(&pg.url, &risky.url, "a2"));
    let url = a2.url.clone();
    let waiting = std::thread::spawn(move || {
        let res = client()
            .post(format!("{url}/v1/chat/completions"))
            .json(&ask("m", "ping handler"))
            .send()
            .unwrap();
        (res.status().as_u16(), res.json::<Value>().unwrap())
    });
    let mut held = None;
    for _ in 0..200 {
        let res = client()
            .get(format!("{}/admin/review/items?state=pending", b.url))
            .bearer_auth(ADMIN)
            .send()
            .unwrap()
            .json::<Value>()
            .unwrap();
        if let Some(item) = res["data"].as_array().unwrap().first() {
            held = Some(item.clone());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let held = held.expect("the held item is visible on the other replica");
    assert_eq!(held["replica"], "a2");
    let id = held["id"].as_str().unwrap();
    let (status, _) = post(&b.url, &format!("/admin/review/items/{id}/approve"), &bob);
    assert_eq!(status, 200);
    let (status, body) = waiting.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], VULNERABLE);
}
