//! `emguard review` as a terminal user runs it, against the real `emguard serve --config`
//! whose review policy holds vulnerable code from an upstream on 127.0.0.1 while a real client
//! waits: `list` and `show` print the held item and its evidence, `approve` releases the
//! waiting client, `reject` gives it the content-filter error, `verify-log` checks the audit
//! chain (and names a row edited in the SQLite store, exit 1), `export-labels` writes rows
//! that `emguard judge calibrate` reads; an unknown id, a second decision or a missing key is
//! a clear error with exit code 2.

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use axum::Json;
use emguard_testkit::openai::{chat_completion, serve_in_background};
use serde_json::{Value, json};
use support::Server;

const ADMIN: &str = "admin-token-for-the-review-cli-test";
const VULNERABLE: &str = "Here is the handler:\n\n```python\nimport os\nfrom flask import request\n\ndef run():\n    os.system('ping ' + request.args['host'])\n```\n";

/// An upstream that answers every chat request with [`VULNERABLE`].
fn upstream() -> String {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|| async { Json(chat_completion("m", VULNERABLE)) }),
    );
    format!("http://{}/v1", serve_in_background(app))
}

fn start(dir: &std::path::Path) -> Server {
    let config = dir.join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            "store: '{}'
auth: {{required: false}}
filters: {{code: {{action: annotate, min_severity: low}}}}
review:
  default:
    timeout_secs: 120
    conditions: [{{name: vulnerable-code, when: {{code_severity: medium}}, action: hold}}]
models:
  - {{id: m, active: v1, versions: [{{name: v1, upstream: '{}'}}]}}
",
            dir.join("gateway.db").display(),
            upstream()
        ),
    )
    .unwrap();
    Server::start_with_env(
        &["--config", config.to_str().unwrap()],
        &[("EMGUARD_ADMIN_TOKEN", ADMIN)],
    )
}

/// The gateway's root URL (`serve` prints the OpenAI base, `…/v1`).
fn root(server: &Server) -> String {
    server.base_url.trim_end_matches("/v1").to_string()
}

fn review(server: &Server, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_emguard"))
        .arg("review")
        .args(args)
        .env("EMGUARD_GATEWAY_URL", root(server))
        .env("EMGUARD_REVIEW_KEY", ADMIN)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A client asking on its own thread; it waits while its answer is held.
fn waiting_client(server: &Server) -> std::thread::JoinHandle<(u16, Value)> {
    let url = format!("{}/chat/completions", server.base_url);
    std::thread::spawn(move || {
        let res = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap()
            .post(url)
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": "write a ping handler"}]}))
            .send()
            .unwrap();
        (res.status().as_u16(), res.json().unwrap_or(Value::Null))
    })
}

/// Waits until `emguard review list` shows a pending item; returns its id.
fn pending_id(server: &Server) -> String {
    for _ in 0..200 {
        let out = review(server, &["list", "--state", "pending"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        if let Some(line) = text(&out.stdout).lines().last() {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields[1..4], ["pending", "m", "vulnerable-code"], "{line}");
            assert!(fields[4].contains("CWE-78"), "{line}");
            return fields[0].to_string();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no pending item after 20 s");
}

#[test]
fn a_terminal_reviewer_decides_verifies_the_log_and_exports_labels() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());

    // Approve: `show` prints the evidence; the waiting client gets the answer.
    let client = waiting_client(&server);
    let id = pending_id(&server);
    assert!(!client.is_finished(), "answered before any decision");
    let out = review(&server, &["show", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["answer"], VULNERABLE);
    assert!(
        shown["evidence"]["vulnerable-code"]
            .to_string()
            .contains("CWE-78"),
        "{shown}"
    );
    let out = review(&server, &["approve", &id, "--reason", "internal tool"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("{id}: approved"));
    let (status, body) = client.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], VULNERABLE);

    // Reject: the waiting client gets the content-filter error naming the review.
    let client = waiting_client(&server);
    let rejected = pending_id(&server);
    let out = review(
        &server,
        &["reject", &rejected, "--reason", "shell injection"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("{rejected}: rejected"));
    let (status, body) = client.join().unwrap();
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "content_filter");
    assert_eq!(body["error"]["review_id"], rejected.as_str());

    // Bad input: an unknown id, a second decision, no key: a message and exit code, no panic.
    let out = review(&server, &["approve", "rev_nosuchitem"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("404") && err.contains("rev_nosuchitem") && !err.contains("panicked"),
        "{err}"
    );
    let out = review(&server, &["show", "rev_nosuchitem"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("error: "),
        "{}",
        text(&out.stderr)
    );
    let out = review(&server, &["reject", &id]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("409") && err.contains("already approved"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_emguard"))
        .args(["review", "list"])
        .env("EMGUARD_GATEWAY_URL", root(&server))
        .env_remove("EMGUARD_REVIEW_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("set EMGUARD_REVIEW_KEY"),
        "{}",
        text(&out.stderr)
    );

    // Labels: one row per decided item, which the judge's calibration reads.
    let labels = dir.path().join("labels.jsonl");
    let out = review(
        &server,
        &["export-labels", "--out", labels.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Vec<Value> = std::fs::read_to_string(&labels)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let aligned: Vec<f64> = rows
        .iter()
        .map(|r| r["aligned"].as_f64().unwrap())
        .collect();
    assert!(
        aligned.contains(&90.0) && aligned.contains(&10.0),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .all(|r| r["question"] == "write a ping handler" && r["answer"] == VULNERABLE)
    );
    let calibrated = Command::new(env!("CARGO_BIN_EXE_emguard"))
        .args(["judge", "calibrate", "--format", "json", "--labels"])
        .arg(&labels)
        .output()
        .unwrap();
    assert!(calibrated.status.success(), "{}", text(&calibrated.stderr));
    let report: Value = serde_json::from_slice(&calibrated.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&calibrated.stdout)));
    // Both rows were read: the rejected one is a misaligned label (aligned 10 < 30).
    assert_eq!(report["n"], 2, "{report}");
    assert_eq!(report["rate_labels"], 0.5, "{report}");

    // The audit log: intact, then a row edited in the store is named, exit 1.
    let out = review(&server, &["verify-log"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    let report = text(&out.stdout);
    assert!(!report.contains("BROKEN"), "{report}");
    let rows: u64 = report.split(' ').next().unwrap().parse().unwrap();
    assert!(rows >= 4, "hold, approve, hold, reject: {report}");
    let db = rusqlite::Connection::open(dir.path().join("gateway.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    let edited = db
        .execute(
            "UPDATE review_audit SET actor = 'mallory' WHERE seq = 2",
            [],
        )
        .unwrap();
    assert_eq!(edited, 1);
    let out = review(&server, &["verify-log"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout)
            .contains("BROKEN: row 2 was edited (its content does not match its hash)"),
        "{}",
        text(&out.stdout)
    );
}
