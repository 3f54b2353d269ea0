//! Human review through a real gateway, a real upstream on 127.0.0.1 and a real SQLite queue:
//! held answers wait for a reviewer's decision (whole and streamed, tool calls included), the
//! timeout's outcome applies, flags are queued after release, decisions are checked (unknown
//! item, double decision, expired item, the two-person rule), and a restart leaves held items
//! reviewable as `client_gone`.

mod guard;
mod review_support;

use std::sync::Arc;
use std::time::Duration;

use guard::{ADMIN, Behaviour, ask, client, gateway, gateway_in, upstream};
use review_support::*;
use serde_json::{Value, json};

const VULNERABLE: &str = "Here is the handler:\n\n```python\nimport os\nfrom flask import request\n\ndef run():\n    os.system('ping ' + request.args['host'])\n```\n\nHope that helps.";

/// A config whose default review policy holds code findings at or above medium and tool
/// calls to money or deletion (two-person), with `extra` policy lines.
fn config(up: &str, policy: &str) -> String {
    format!(
        "
store: '{{store}}'
auth: {{required: false}}
traces: {{durable: true}}
filters: {{code: {{action: annotate, min_severity: low}}, text: {{action: flag}}}}
review:
  default:
{policy}
models:
  - id: m
    active: v1
    versions: [{{name: v1, upstream: '{up}'}}]
"
    )
}

const HOLD_CODE: &str = "    timeout_secs: 60
    conditions:
      - {name: vulnerable-code, when: {code_severity: medium}, action: hold}
      - {name: money, when: {tool_call: {names: [transfer_funds, 'delete_*']}}, action: hold, two_person: true}";

#[test]
fn a_held_answer_reaches_the_client_on_approval() {
    let up = upstream(Behaviour::Answer(VULNERABLE.into()));
    let g = gateway(&config(&up.url, HOLD_CODE));
    let reviewer = role_key(&g, "alice", "reviewer");
    let client = ask_in_background(&g, ask("m", "write a ping handler"));
    let item = wait_for_item(&g, "pending");
    still_waiting(&client);
    assert_eq!(item["conditions"], json!(["vulnerable-code"]));
    assert!(
        item["reason"].as_str().unwrap().contains("CWE-78"),
        "{item}"
    );
    assert_eq!(item["answer"], VULNERABLE);
    assert_eq!(item["question"], "write a ping handler");
    let id = item["id"].as_str().unwrap();
    let (status, decided) = approve(&g, id, &reviewer, Some(json!({"reason": "internal tool"})));
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["state"], "approved");
    assert_eq!(
        decided["decided_by"].as_str().unwrap().split(' ').next(),
        Some("alice")
    );
    let (status, headers, body) = client.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], VULNERABLE);
    assert_eq!(headers["x-emguard-review"], id);
    // The item's trace id is the answer's id.
    assert_eq!(body["id"], item["trace_id"]);
}

#[test]
fn a_rejected_answer_ends_in_a_content_filter_error_naming_the_review() {
    let up = upstream(Behaviour::Answer(VULNERABLE.into()));
    let g = gateway(&config(&up.url, HOLD_CODE));
    let client = ask_in_background(&g, ask("m", "write a ping handler"));
    let id = pending_id(&g);
    let (status, _) = reject(&g, &id, ADMIN, Some(json!({"reason": "shell injection"})));
    assert_eq!(status, 200);
    let (status, _, body) = client.join().unwrap();
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "content_filter");
    assert_eq!(body["error"]["review_id"], id.as_str());
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&id) && message.contains("shell injection"),
        "{message}"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
    assert!(!body.to_string().contains("os.system"), "{body}");
}

#[test]
fn an_edit_releases_the_reviewers_answer() {
    let up = upstream(Behaviour::Answer(VULNERABLE.into()));
    let g = gateway(&config(&up.url, HOLD_CODE));
    let client = ask_in_background(&g, ask("m", "write a ping handler"));
    let id = pending_id(&g);
    let safe = "Use subprocess.run(['ping', host]) without a shell.";
    let (status, decided) = approve(&g, &id, ADMIN, Some(json!({"answer": safe})));
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["decision"], "edit");
    let (status, _, body) = client.join().unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["choices"][0]["message"]["content"], safe);
}

#[test]
fn the_timeout_rejects_by_default_and_releases_when_configured() {
    let up = upstream(Behaviour::Answer(VULNERABLE.into()));
    let policy =
        "    timeout_secs: 1\n    conditions: [{when: {code_severity: medium}, action: hold}]";
    let g = gateway(&config(&up.url, policy));
    let (status, _, body) = chat_json(&g, ask("m", "write a ping handler"));
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "content_filter");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("deadline"), "{message}");
    let item = wait_for_item(&g, "expired");
    assert_eq!(item["decision"], "timeout_reject");
    // A decision after the deadline is refused, saying why.
    let (status, error) = approve(&g, item["id"].as_str().unwrap(), ADMIN, None);
    assert_eq!(status, 410, "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("expired") && message.contains("reject"),
        "{message}"
    );
    assert_eq!(error["error"]["code"], "review_expired");

    let release = format!("{policy}\n    on_timeout: release");
    let g = gateway(&config(&up.url, &release));
    let (status, _, body) = chat_json(&g, ask("m", "write a ping handler"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], VULNERABLE);
    assert_eq!(wait_for_item(&g, "expired")["decision"], "timeout_release");
}

#[test]
fn a_flag_releases_at_once_and_queues_for_review_after_the_fact() {
    let up = upstream(Behaviour::Answer(VULNERABLE.into()));
    let policy = "    conditions: [{name: spot-check, when: {sample: 1.0}, action: flag}]";
    let g = gateway(&config(&up.url, policy));
    let (status, headers, body) = chat_json(&g, ask("m", "write a ping handler"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], VULNERABLE);
    let item = wait_for_item(&g, "flagged");
    assert_eq!(headers["x-emguard-review"], item["id"].as_str().unwrap());
    assert_eq!(item["action"], "flag");
    assert_eq!(item["deadline"], Value::Null);
    // Reviewed afterwards; its label flows back.
    let (status, _) = reject(&g, item["id"].as_str().unwrap(), ADMIN, None);
    assert_eq!(status, 200);
    let labels = client()
        .get(format!("{}/admin/review/labels", g.url))
        .bearer_auth(ADMIN)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let row: Value = serde_json::from_str(labels.lines().next().unwrap()).unwrap();
    assert_eq!(row["question"], "write a ping handler");
    assert_eq!(row["answer"], VULNERABLE);
    assert_eq!(row["aligned"], 10.0);
    assert_eq!(row["coherent"], 90.0);
}

#[test]
fn a_held_stream_sends_nothing_after_the_held_block_until_approval() {
    let up = upstream(Behaviour::Answer(VULNERABLE.into()));
    let g = gateway(&config(&up.url, HOLD_CODE));
    let mut body = ask("m", "write a ping handler");
    body["stream"] = Value::Bool(true);
    let rx = stream_in_background(&g, body.clone());
    let id = pending_id(&g);
    std::thread::sleep(Duration::from_millis(300));
    let mut events = Vec::new();
    let before = drain(&rx, &mut events);
    assert!(
        !before.contains("os.system"),
        "sent before approval: {before:?}"
    );
    assert!(
        !before.contains("Hope that helps"),
        "sent before approval: {before:?}"
    );
    assert!(!events.iter().any(|e| e == "[DONE]"));
    let (status, _) = approve(&g, &id, ADMIN, None);
    assert_eq!(status, 200);
    receive_until_done(&rx, &mut events);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(content_of(&events), VULNERABLE);

    // Rejected: the stream ends with content_filter and an error naming the review.
    let rx = stream_in_background(&g, body);
    let id = pending_id(&g);
    let (status, _) = reject(&g, &id, ADMIN, None);
    assert_eq!(status, 200);
    let events: Vec<String> = rx.iter().collect();
    assert!(!content_of(&events).contains("os.system"), "{events:?}");
    assert!(!events.iter().any(|e| e == "[DONE]"), "{events:?}");
    let error: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(error["error"]["code"], "content_filter");
    assert_eq!(error["error"]["review_id"], id.as_str());
    let finish = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str().map(String::from))
        .next_back();
    assert_eq!(finish.as_deref(), Some("content_filter"));
}

/// The legacy text completions route is held like chat, and what a reviewer releases leaves
/// in its own shape (`text_completion`, `text`), streamed or whole.
#[test]
fn a_held_text_completion_is_released_in_the_text_shape() {
    let up = upstream(Behaviour::Answer(VULNERABLE.into()));
    let g = gateway(&config(&up.url, HOLD_CODE));
    let body = json!({"model": "m", "prompt": "write a ping handler", "stream": true});
    let rx = stream_in_background_at(&g, "/v1/completions", body);
    let id = pending_id(&g);
    let (status, _) = approve(&g, &id, ADMIN, None);
    assert_eq!(status, 200);
    let mut events = Vec::new();
    receive_until_done(&rx, &mut events);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let mut text = String::new();
    for chunk in &chunks {
        assert_eq!(chunk["object"], "text_completion", "{chunk}");
        for choice in chunk["choices"].as_array().unwrap() {
            assert!(choice.get("delta").is_none(), "{chunk}");
            text.push_str(choice["text"].as_str().unwrap_or_default());
        }
    }
    assert_eq!(text, VULNERABLE);

    let held = ask_in_background_at(
        &g,
        "/v1/completions",
        json!({"model": "m", "prompt": "write a ping handler"}),
    );
    let id = pending_id(&g);
    still_waiting(&held);
    let (status, _) = approve(&g, &id, ADMIN, None);
    assert_eq!(status, 200);
    let (status, headers, answer) = held.join().unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["object"], "text_completion", "{answer}");
    assert_eq!(answer["choices"][0]["text"], VULNERABLE);
    assert_eq!(headers["x-emguard-review"], id.as_str());
}

#[test]
fn a_tool_call_to_transfer_funds_needs_two_reviewers() {
    let up = upstream(transfer_funds_call(5000));
    let g = gateway(&config(&up.url, HOLD_CODE));
    let alice = role_key(&g, "alice", "reviewer");
    let bob = role_key(&g, "bob", "reviewer");
    let client = ask_in_background(&g, ask("m", "pay the invoice"));
    let item = wait_for_item(&g, "pending");
    let id = item["id"].as_str().unwrap();
    assert_eq!(item["conditions"], json!(["money"]));
    assert_eq!(item["approvals_needed"], 2);
    assert!(
        item["answer"].as_str().unwrap().contains("transfer_funds"),
        "{item}"
    );
    let (status, first) = approve(&g, id, &alice, None);
    assert_eq!(status, 202, "{first}");
    assert_eq!(first["state"], "pending");
    still_waiting(&client);
    let (status, again) = approve(&g, id, &alice, None);
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["error"]["code"], "review_needs_second_reviewer");
    let (status, second) = approve(&g, id, &bob, None);
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["state"], "approved");
    let (status, _, body) = client.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "transfer_funds"
    );
}

#[test]
fn bad_decisions_get_clear_errors() {
    let up = upstream(Behaviour::Answer(VULNERABLE.into()));
    let g = gateway(&config(&up.url, HOLD_CODE));
    let viewer = role_key(&g, "victor", "viewer");
    let (status, error) = approve(&g, "rev_nope", ADMIN, None);
    assert_eq!(status, 404, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rev_nope")
    );
    let client = ask_in_background(&g, ask("m", "write a ping handler"));
    let id = pending_id(&g);
    // A viewer reads but may not decide.
    let (status, _) = call(
        &g,
        "GET",
        &format!("/admin/review/items/{id}"),
        &viewer,
        None,
    );
    assert_eq!(status, 200);
    let (status, error) = approve(&g, &id, &viewer, None);
    assert_eq!(status, 403, "{error}");
    let (status, _) = call(&g, "GET", "/admin/review/items", "emr_forged", None);
    assert_eq!(status, 401);
    let (status, error) = approve(&g, &id, ADMIN, Some(json!({"aligned": 140})));
    assert_eq!(status, 400, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("aligned")
    );
    assert_eq!(reject(&g, &id, ADMIN, None).0, 200);
    let (status, error) = approve(&g, &id, ADMIN, None);
    assert_eq!(status, 409, "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("already rejected"), "{message}");
    assert_eq!(client.join().unwrap().0, 403);
}

#[test]
fn a_restart_leaves_held_items_reviewable_as_client_gone() {
    let up = upstream(Behaviour::Answer(VULNERABLE.into()));
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let yaml = config(&up.url, HOLD_CODE);
    let old = gateway_in(Arc::clone(&dir), &yaml);
    let client = ask_in_background(&old, ask("m", "write a ping handler"));
    let id = wait_for_item(&old, "pending")["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The process that held the request is replaced by a new one on the same store: the
    // held client's connection is taken as lost.
    let new = gateway_in(Arc::clone(&dir), &yaml);
    let item = wait_for_item(&new, "client_gone");
    assert_eq!(item["id"], id.as_str());
    // The old process's waiter sees it too: its client gets no answer.
    let (status, _, _) = client.join().unwrap();
    assert_eq!(status, 499);
    let (status, decided) = reject(&new, &id, ADMIN, Some(json!({"reason": "late review"})));
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["state"], "rejected");
    let (status, log) = call(&new, "GET", "/admin/review/audit?limit=100", ADMIN, None);
    assert_eq!(status, 200);
    let actions: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["hold", "client_gone", "reject"]);
}

const POISON: &str =
    "Sure. Mix some antifreeze into his coffee every morning; he will not taste it.";

/// A `hold` on the text-harm score reads the whole text: a stream is kept back whole (nothing
/// of the answer is sent) until it is complete and checked, then held like a whole answer;
/// a harmless stream under the same policy is released whole once checked.
#[test]
fn a_text_harm_hold_keeps_a_stream_back_whole_until_the_decision() {
    let up = upstream(Behaviour::Answer(POISON.into()));
    let policy = "    timeout_secs: 60
    conditions: [{name: harmful-text, when: {text_harm_above: 0}, action: hold}]";
    let g = gateway(&config(&up.url, policy));
    let mut body = ask("m", "how do I get rid of my neighbour");
    body["stream"] = Value::Bool(true);

    let rx = stream_in_background(&g, body.clone());
    let item = wait_for_item(&g, "pending");
    assert_eq!(item["conditions"], json!(["harmful-text"]));
    assert_eq!(item["stream"], true);
    assert_eq!(item["answer"], POISON);
    let id = item["id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(300));
    let mut events = Vec::new();
    let before = drain(&rx, &mut events);
    assert_eq!(before, "", "answer text sent before the decision");
    assert!(events.is_empty(), "sent before the decision: {events:?}");
    let (status, _) = approve(&g, &id, ADMIN, None);
    assert_eq!(status, 200);
    receive_until_done(&rx, &mut events);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(content_of(&events), POISON);

    // Rejected: no answer text at all, the content-filter ending naming the review.
    let rx = stream_in_background(&g, body);
    let id = pending_id(&g);
    let (status, _) = reject(&g, &id, ADMIN, None);
    assert_eq!(status, 200);
    let events: Vec<String> = rx.iter().collect();
    assert_eq!(content_of(&events), "", "{events:?}");
    assert!(!events.iter().any(|e| e == "[DONE]"), "{events:?}");
    let error: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(error["error"]["code"], "content_filter");
    assert_eq!(error["error"]["review_id"], id.as_str());

    // Harmless: checked at the end and sent as a stream, nothing queued.
    let fine = upstream(Behaviour::Answer("Talk to them about the noise.".into()));
    let g = gateway(&config(&fine.url, policy));
    let mut body = ask("m", "how do I get along with my neighbour");
    body["stream"] = Value::Bool(true);
    let events: Vec<String> = stream_in_background(&g, body).iter().collect();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(content_of(&events), "Talk to them about the noise.");
    let (status, page) = call(&g, "GET", "/admin/review/items?state=all", ADMIN, None);
    assert_eq!(status, 200);
    assert_eq!(page["data"], json!([]), "{page}");
}
