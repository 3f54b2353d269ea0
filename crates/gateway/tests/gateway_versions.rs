//! Versions, retries, fallback and upstream faults through a real gateway, and version
//! activation (rollback) through the admin API, surviving a restart.

mod guard;

use std::sync::Arc;

use guard::{Behaviour, admin, ask, chat, create_key, gateway, gateway_in, refused_url, upstream};
use serde_json::{Value, json};

fn one_model(versions: &str, active: &str, fallback: Option<&str>) -> String {
    let fallback = fallback.map_or(String::new(), |f| format!("    fallback: {f}\n"));
    format!(
        "
store: '{{store}}'
auth: {{required: false}}
traces: {{durable: true}}
models:
  - id: m
    active: {active}
{fallback}    versions:
{versions}"
    )
}

fn version(name: &str, url: &str, extra: &str) -> String {
    format!("      - {{name: {name}, upstream: '{url}', timeout_secs: 0.5, retries: 1{extra}}}\n")
}

fn attempts(g: &guard::Gateway) -> Vec<Value> {
    guard::wait_for_traces(g, 1)[0]["attempts"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_refused_version_is_retried_then_the_fallback_answers() {
    let good = upstream(Behaviour::Answer("from the fallback".into()));
    let versions = version("broken", &refused_url(), "") + &version("good", &good.url, "");
    let g = gateway(&one_model(&versions, "broken", Some("good")));
    let res = chat(&g, None, &ask("m", "hi"));
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-emguard-version"], "good");
    let body: Value = res.json().unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "from the fallback"
    );
    let a = attempts(&g);
    let outcomes: Vec<(&str, &str)> = a
        .iter()
        .map(|x| {
            (
                x["version"].as_str().unwrap(),
                x["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(outcomes.len(), 3, "{a:?}");
    assert!(
        outcomes[0].0 == "broken" && outcomes[0].1.starts_with("unavailable"),
        "{a:?}"
    );
    assert!(
        outcomes[1].0 == "broken" && outcomes[1].1.starts_with("unavailable"),
        "{a:?}"
    );
    assert_eq!(outcomes[2], ("good", "ok"));
}

#[test]
fn without_a_fallback_faults_become_502_and_504() {
    let hang = upstream(Behaviour::Hang);
    let g = gateway(&one_model(&version("slow", &hang.url, ""), "slow", None));
    let res = chat(&g, None, &ask("m", "hi"));
    assert_eq!(res.status(), 504);
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"]["code"], "upstream_timeout");
    assert_eq!(hang.hits(), 2, "one try and one retry");
    let t = &guard::wait_for_traces(&g, 1)[0];
    assert_eq!(t["status"], 504);
    assert!(
        t["error"].as_str().unwrap().contains("did not answer"),
        "{t}"
    );

    let failing = upstream(Behaviour::Status(503));
    let g = gateway(&one_model(
        &version("flaky", &failing.url, ""),
        "flaky",
        None,
    ));
    let res = chat(&g, None, &ask("m", "hi"));
    assert_eq!(res.status(), 502);
    assert_eq!(failing.hits(), 2);

    let g = gateway(&one_model(
        &version("gone", &refused_url(), ""),
        "gone",
        None,
    ));
    let res = chat(&g, None, &ask("m", "hi"));
    assert_eq!(res.status(), 502);
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"]["code"], "upstream_unavailable");
}

#[test]
fn an_upstream_client_error_is_passed_on_safely_and_not_retried() {
    let picky = upstream(Behaviour::Status(400));
    let good = upstream(Behaviour::Answer("unused".into()));
    let versions = version("picky", &picky.url, "") + &version("good", &good.url, "");
    let g = gateway(&one_model(&versions, "picky", Some("good")));
    let res = chat(&g, None, &ask("m", "hi"));
    assert_eq!(res.status(), 400);
    let body: Value = res.json().unwrap();
    // The status and a safe message; the upstream's own words stay in the trace.
    assert_eq!(body["error"]["code"], "upstream_rejected");
    assert!(!body.to_string().contains("upstream says 400"), "{body}");
    assert_eq!((picky.hits(), good.hits()), (1, 0));
}

#[test]
fn activating_a_version_switches_and_survives_a_restart() {
    let v1 = upstream(Behaviour::Answer("I am v1".into()));
    let v2 = upstream(Behaviour::Answer("I am v2".into()));
    let yaml = one_model(
        &(version("v1", &v1.url, "") + &version("v2", &v2.url, "")),
        "v2",
        None,
    )
    .replace("auth: {required: false}\n", "");
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let g = gateway_in(Arc::clone(&dir), &yaml);
    let (_, key) = create_key(&g, json!({"name": "t"}));
    let text = |g: &guard::Gateway| -> String {
        let body: Value = chat(g, Some(&key), &ask("m", "hi")).json().unwrap();
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(text(&g), "I am v2");
    // Roll back to v1.
    let (status, body) = admin(
        &g,
        "POST",
        "/admin/models/m/activate",
        Some(json!({"version": "v1"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["previous"], "v2");
    assert_eq!(text(&g), "I am v1");
    let (status, models) = admin(&g, "GET", "/admin/models", None);
    assert_eq!(status, 200);
    assert_eq!(models["data"][0]["active"], "v1");
    let (status, _) = admin(
        &g,
        "POST",
        "/admin/models/m/activate",
        Some(json!({"version": "v9"})),
    );
    assert_eq!(status, 404);
    g.stop();
    // The same store after a restart: the key and the rollback hold.
    let g = gateway_in(dir, &yaml);
    assert_eq!(text(&g), "I am v1");
}
