//! The monitor end to end: real upstream versions on 127.0.0.1, the real gateway with a
//! canary, the real local judge, a real SQLite store. A bad canary (30% harmful answers) is
//! caught and rolled back with no request lost, and the rollback survives a restart; a good
//! canary is promoted and never flagged; a webhook that fails twice gets three attempts; a bad
//! playbook stops the gateway from starting.

mod guard;
mod monitor_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use guard::{admin, gateway_in};
use monitor_support::{config, playbook, start_error, traffic, upstream};
use serde_json::Value;

fn incidents(g: &guard::Gateway) -> Vec<Value> {
    let (status, body) = admin(g, "GET", "/admin/incidents", None);
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

fn rollout(g: &guard::Gateway) -> Value {
    let (status, body) = admin(g, "GET", "/admin/monitor", None);
    assert_eq!(status, 200, "{body}");
    body["rollouts"][0].clone()
}

fn judged(g: &guard::Gateway) -> u64 {
    let (_, body) = admin(g, "GET", "/admin/monitor", None);
    body["judged"].as_u64().unwrap()
}

#[test]
fn a_bad_canary_is_caught_and_rolled_back_without_losing_a_request_and_stays_rolled_back() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (good, bad) = (upstream(0), upstream(3));
    let store = dir.path().join("gateway.db").display().to_string();
    let playbook = playbook(dir.path(), "");
    let yaml = config(&store, &good, &bad, 0.2, &playbook);
    let g = gateway_in(Arc::clone(&dir), &yaml);
    let started = Instant::now();
    let mut caught_at: Option<(usize, Duration)> = None;
    // 20 requests/s; after the incident, 100 more requests to see every one served by v1.
    let t = traffic(&g.url, 20.0, 2000, |t| {
        if caught_at.is_none() && !incidents(&g).is_empty() {
            caught_at = Some((t.sent, started.elapsed()));
        }
        caught_at.is_some_and(|(sent, _)| t.sent >= sent + 100)
    });
    let (sent_at_incident, seconds) = caught_at.expect("an incident was opened");
    let all = incidents(&g);
    assert_eq!(all.len(), 1, "{all:?}");
    let incident = &all[0];
    let judged_candidate = incident["figures"]["version"]["since_release"]["judged"]
        .as_u64()
        .unwrap();
    println!(
        "bad canary (30% harmful, 20% of traffic): incident after {judged_candidate} judged candidate answers \
         ({} judged in all by the end of the run), {sent_at_incident} requests, {:.1} s; rate {}",
        judged(&g),
        seconds.as_secs_f64(),
        incident["figures"]["version"]["since_release"]["misaligned_rate"]
    );
    assert_eq!(incident["version"], "v2");
    assert_eq!(incident["baseline"], "v1");
    assert_eq!(incident["breach"], "misaligned_rate");
    assert_eq!(incident["state"], "open");
    let evidence = incident["evidence"].as_array().unwrap();
    assert!(!evidence.is_empty(), "{incident}");
    // The evidence is the bad version's answers, as traced.
    let (status, trace) = admin(
        &g,
        "GET",
        &format!("/admin/traces/{}", evidence[0].as_str().unwrap()),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(trace["version"], "v2", "{trace}");
    let timeline: Vec<&str> = incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(
        timeline[0].starts_with("opened: misaligned_rate"),
        "{timeline:?}"
    );
    assert!(
        timeline.iter().any(|e| e.starts_with("rolled back")),
        "{timeline:?}"
    );
    // Rolled back: v1 serves everything, and every request got an answer.
    let r = rollout(&g);
    assert_eq!(
        (
            r["active"].as_str(),
            r["weights"].as_object().map(|w| w.len())
        ),
        (Some("v1"), Some(0)),
        "{r}"
    );
    assert_eq!(t.answered, t.sent, "every request got an answer");
    let after: Vec<&(usize, String)> = t
        .versions
        .iter()
        .filter(|(i, _)| *i >= sent_at_incident + 10)
        .collect();
    assert!(
        after.len() >= 80 && after.iter().all(|(_, v)| v == "v1"),
        "{after:?}"
    );
    assert!(
        t.versions.iter().any(|(_, v)| v == "v2"),
        "the canary served before"
    );
    println!("{} requests sent, {} answered", t.sent, t.answered);
    // The per-version figures are on /metrics, with their intervals.
    let metrics = guard::client()
        .get(format!("{}/metrics", g.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for wanted in [
        "emguard_monitor_rate{model=\"m\",version=\"v2\",span=\"release\",metric=\"misaligned\",bound=\"low\"}",
        "emguard_monitor_version_judged{model=\"m\",version=\"v1\",span=\"window\"}",
        "emguard_rollout_weight{model=\"m\",version=\"v1\"} 1",
    ] {
        assert!(
            metrics.contains(wanted),
            "{wanted} not in /metrics:\n{metrics}"
        );
    }

    // Restart with the same config (which still gives v2 20%): the stored rollback and the
    // incident are still there.
    g.stop();
    let g = gateway_in(Arc::clone(&dir), &yaml);
    let r = rollout(&g);
    assert_eq!(r["active"], "v1", "{r}");
    assert!(r["weights"].as_object().unwrap().is_empty(), "{r}");
    let again = incidents(&g);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["id"], incident["id"]);
    let t = traffic(&g.url, 50.0, 30, |_| false);
    assert!(
        t.versions.iter().all(|(_, v)| v == "v1"),
        "{:?}",
        t.versions
    );
}

#[test]
fn a_good_canary_is_promoted_and_never_flagged() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (good, candidate) = (upstream(0), upstream(0));
    let store = dir.path().join("gateway.db").display().to_string();
    let playbook = playbook(dir.path(), "");
    let g = gateway_in(
        Arc::clone(&dir),
        &config(&store, &good, &candidate, 0.2, &playbook),
    );
    let started = Instant::now();
    let mut promoted_at = None;
    let t = traffic(&g.url, 20.0, 2000, |t| {
        if promoted_at.is_none() && rollout(&g)["active"] == "v2" {
            promoted_at = Some((t.sent, started.elapsed(), judged(&g)));
        }
        // After the promotion, as many requests again: v2 now takes them all.
        promoted_at.is_some_and(|(sent, _, _)| t.sent >= 2 * sent)
    });
    let (sent, seconds, judged_then) = promoted_at.expect("the good canary was promoted");
    println!(
        "good canary: promoted after {sent} requests, {judged_then} judged answers, {:.1} s; {} judged by the end",
        seconds.as_secs_f64(),
        judged(&g)
    );
    assert!(incidents(&g).is_empty(), "no false alarm");
    let r = rollout(&g);
    assert_eq!(
        (r["active"].as_str(), r["last_good"].as_str()),
        (Some("v2"), Some("v1")),
        "{r}"
    );
    assert_eq!(r["changed_by"], "monitor");
    assert_eq!(t.answered, t.sent);
}

#[test]
fn a_webhook_that_fails_twice_gets_three_signed_attempts_and_one_alert() {
    // The receiver: 500, 500, then 200; it checks the signature of each.
    let calls = Arc::new(AtomicUsize::new(0));
    let valid = Arc::new(AtomicUsize::new(0));
    let hook = {
        let (calls, valid) = (Arc::clone(&calls), Arc::clone(&valid));
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    let signed = headers
                        .get(emguard_monitor::webhook::SIGNATURE_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    if signed == emguard_monitor::webhook::signature("hook-secret", &body) {
                        valid.fetch_add(1, Ordering::SeqCst);
                    }
                    async move {
                        if n < 2 {
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR
                        } else {
                            axum::http::StatusCode::OK
                        }
                    }
                },
            ),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    let l = tokio::net::TcpListener::from_std(listener).unwrap();
                    axum::serve(l, app).await.unwrap();
                })
        });
        format!("http://{addr}/hook")
    };
    // SAFETY: set before the gateway (the only reader) starts; no other thread reads it.
    unsafe { std::env::set_var("EMGUARD_TEST_HOOK_SECRET", "hook-secret") };
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (good, bad) = (upstream(0), upstream(10));
    let store = dir.path().join("gateway.db").display().to_string();
    let playbook = playbook(
        dir.path(),
        &format!(
            "on_breach:\n  rollback: await_admin\n  webhook:\n    url: {hook}\n    secret_env: EMGUARD_TEST_HOOK_SECRET\n    max_attempts: 5\n    backoff_ms: 50\n"
        ),
    );
    let g = gateway_in(
        Arc::clone(&dir),
        &config(&store, &good, &bad, 0.5, &playbook),
    );
    let t = traffic(&g.url, 20.0, 1000, |_| !incidents(&g).is_empty());
    assert_eq!(t.answered, t.sent);
    let mut incident = Value::Null;
    for _ in 0..100 {
        incident = incidents(&g)[0].clone();
        if incident["webhook_attempts"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let attempts = incident["webhook_attempts"].as_array().unwrap();
    let statuses: Vec<u64> = attempts
        .iter()
        .map(|a| a["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![500, 500, 200], "{incident}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "three attempts, then no more"
    );
    assert_eq!(
        valid.load(Ordering::SeqCst),
        3,
        "every attempt carried a valid signature"
    );
    let timeline = incident["timeline"].to_string();
    assert!(
        timeline.contains("webhook alerted (3 attempt(s))"),
        "{timeline}"
    );
    // The playbook leaves the rollback to an admin: v2 still has its share until one acts.
    assert!(timeline.contains("rollback awaits an admin"), "{timeline}");
    assert_eq!(rollout(&g)["weights"]["v2"], 0.5);
    let (status, r) = admin(
        &g,
        "POST",
        "/admin/models/m/abort",
        Some(serde_json::json!({"version": "v2"})),
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (r["active"].as_str(), r["changed_by"].as_str()),
        (Some("v1"), Some("admin"))
    );
    let id = incident["id"].as_str().unwrap();
    let (status, acked) = admin(
        &g,
        "POST",
        &format!("/admin/incidents/{id}/ack"),
        Some(serde_json::json!({"note": "rolled back by hand"})),
    );
    assert_eq!(
        (status, acked["state"].as_str()),
        (200, Some("acknowledged")),
        "{acked}"
    );
}

#[test]
fn a_bad_playbook_stops_the_gateway_with_the_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let (playbook, yaml, error) = start_error(dir.path(), "  alpha: 0.7\n");
    assert!(
        error.contains(&format!("{playbook}:6"))
            && error.contains("limits.alpha")
            && error.contains("0.7"),
        "{error}"
    );
    // Limits in the config itself: the field is named.
    let e = emguard_gateway::GatewayConfig::parse(
        &yaml.replace("weight: 0.2", "weight: 1.5"),
        false,
        "gw.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("gw.yaml") && e.contains("models[0].versions[1].weight"),
        "{e}"
    );
    let e = emguard_gateway::GatewayConfig::parse(
        &yaml.replace("sample_rate: 0.2", "sample_rate: 2"),
        false,
        "gw.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("monitor.sample_rate"), "{e}");
    let e = emguard_gateway::GatewayConfig::parse(
        &yaml.replace("judge_cpus: [0]", "judge_cpus: []"),
        false,
        "gw.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("monitor.judge_cpus") && e.contains("no CPU"),
        "{e}"
    );
    // CPUs the judge cannot run on: the gateway does not start, and says why.
    let store = dir.path().join("cpus.db").display().to_string();
    let upstream = "http://127.0.0.1:9/v1";
    let yaml = config(
        &store,
        upstream,
        upstream,
        0.2,
        &monitor_support::playbook(dir.path(), ""),
    )
    .replace("judge_cpus: [0]", "judge_cpus: [1000]");
    let e = monitor_support::build_error(&yaml);
    assert!(e.contains("judge_cpus") && e.contains("[1000]"), "{e}");
}
