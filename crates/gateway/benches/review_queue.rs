//! The review queue at 10,000 items: the console's queue page (the oldest 200 rendered, with
//! the open-item count) and the list API paged through all items, against a real gateway on
//! 127.0.0.1 over a real SQLite store. Times are taken at the client over loopback, so they
//! include the HTTP round trip (an upper bound on the server's time).
//! Run: `cargo bench -p emguard-gateway --bench review_queue`.

use std::time::{Duration, Instant};

use emguard_store::review::{ReviewItem, ReviewStore};
use serde_json::{Value, json};

const ITEMS: usize = 10_000;
const ADMIN: &str = "bench-admin-token";

fn item(i: usize) -> ReviewItem {
    ReviewItem {
        id: format!("rev_{i:06}"),
        trace_id: format!("chatcmpl-{i:032x}"),
        model: "m".into(),
        version: Some("v1".into()),
        stream: false,
        action: "flag".into(),
        conditions: vec!["spot-check".into()],
        reason: "sampled for a spot check (1.0% of answers)".into(),
        evidence: json!({"spot-check": {"reason": "sampled", "evidence": {"sample_share": 0.01}}}),
        question: format!("Question number {i}: how do I write a ping handler?"),
        answer: "Here is the handler:\n\n```python\nimport subprocess\nsubprocess.run(['ping', host])\n```\n".repeat(3),
        state: "flagged".into(),
        created_at: 1_790_000_000.0 + i as f64,
        deadline: None,
        on_timeout: "reject".into(),
        assignee: None,
        approvals_needed: 1,
        approvals: Vec::new(),
        decision: None,
        decided_by: None,
        decided_at: None,
        reason_text: None,
        edited_answer: None,
        aligned: None,
        coherent: None,
        replica: "default".into(),
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.db").display().to_string();
    {
        let store = ReviewStore::open(&path).unwrap();
        for i in 0..ITEMS {
            store.insert_item(&item(i)).unwrap();
        }
    }
    let yaml = format!(
        "
store: '{path}'
auth: {{required: false}}
traces: {{enabled: false}}
review:
  default:
    conditions: [{{name: spot-check, when: {{sample: 0.01}}, action: flag}}]
models:
  - id: m
    active: v1
    versions: [{{name: v1, upstream: 'http://127.0.0.1:9/v1'}}]
"
    );
    let config = emguard_gateway::GatewayConfig::parse(&yaml, false, "bench.yaml").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let state = emguard_gateway::build_with_admin_token(&config, Some(ADMIN.into()))
                .await
                .unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            emguard_gateway::serve(listener, state, std::future::pending())
                .await
                .unwrap();
        });
    });
    let base = format!("http://{}", rx.recv().unwrap());
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let key: Value = http
        .post(format!("{base}/admin/review/keys"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "bench", "role": "reviewer"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let key = key["key"].as_str().unwrap();
    // Log in as the browser would: the login form's token in its cookie and its field.
    let form = http.get(format!("{base}/console/login")).send().unwrap();
    let login_cookie = cookie_of(&form, "emg_login");
    let page = form.text().unwrap();
    let token = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let logged = http
        .post(format!("{base}/console/login"))
        .header("cookie", format!("emg_login={login_cookie}"))
        .form(&[("key", key), ("csrf", token.as_str())])
        .send()
        .unwrap();
    let session = cookie_of(&logged, "emg_session");

    let mut page_ms = Vec::new();
    for _ in 0..30 {
        let started = Instant::now();
        let res = http
            .get(format!("{base}/console/queue"))
            .header("cookie", format!("emg_session={session}"))
            .send()
            .unwrap();
        assert_eq!(res.status(), 200);
        let html = res.text().unwrap();
        page_ms.push(started.elapsed().as_secs_f64() * 1e3);
        assert!(
            html.contains("10000 open items"),
            "the page counts the queue"
        );
    }
    page_ms.sort_by(f64::total_cmp);
    let started = Instant::now();
    let mut seen = 0;
    let mut offset = 0;
    loop {
        let page: Value = http
            .get(format!(
                "{base}/admin/review/items?limit=1000&offset={offset}"
            ))
            .bearer_auth(ADMIN)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let n = page["data"].as_array().unwrap().len();
        seen += n;
        offset += n;
        if n < 1000 {
            break;
        }
    }
    let paged = started.elapsed().as_secs_f64() * 1e3;
    assert_eq!(seen, ITEMS);
    println!(
        "review queue with {ITEMS} items: console queue page median {:.1} ms, max {:.1} ms (30 loads, at the client over loopback); list API paged through all {ITEMS} in {:.0} ms (pages of 1000)",
        page_ms[page_ms.len() / 2],
        page_ms[page_ms.len() - 1],
        paged
    );
}

fn cookie_of(res: &reqwest::blocking::Response, name: &str) -> String {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_string()
}
