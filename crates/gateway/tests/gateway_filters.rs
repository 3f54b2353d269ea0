//! Output filters through a real gateway: annotate, redact and block code findings, flag and
//! block harmful text, whole and streamed; verdicts land in the trace.

mod guard;

use guard::{Behaviour, ask, chat, gateway, upstream};
use serde_json::Value;

const VULNERABLE: &str = "Here is the handler:\n\n```python\nimport os\nfrom flask import request\n\ndef run():\n    os.system('ping ' + request.args['host'])\n```\n\nHope that helps.";

fn config(up: &str, code: &str, text: &str) -> String {
    format!(
        "
store: '{{store}}'
auth: {{required: false}}
traces: {{durable: true}}
filters: {{code: {{action: {code}, min_severity: low}}, text: {{action: {text}}}}}
models:
  - id: m
    active: v1
    versions: [{{name: v1, upstream: '{up}'}}]
"
    )
}

fn content(res: reqwest::blocking::Response) -> (Value, String) {
    let body: Value = res.json().unwrap();
    let text = body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    (body, text)
}

/// The text and finish reason of a streamed answer.
fn streamed(g: &guard::Gateway) -> (String, String) {
    let mut body = ask("m", "write a ping handler");
    body["stream"] = Value::Bool(true);
    let res = chat(g, None, &body);
    assert_eq!(res.status(), 200);
    let raw = res.text().unwrap();
    assert!(raw.trim_end().ends_with("data: [DONE]"), "{raw}");
    let mut text = String::new();
    let mut finish = String::new();
    for line in raw.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let chunk: Value = serde_json::from_str(data).unwrap();
        assert!(
            chunk.get("usage").is_none(),
            "usage was not asked for: {chunk}"
        );
        for c in chunk["choices"].as_array().unwrap() {
            text.push_str(c["delta"]["content"].as_str().unwrap_or(""));
            if let Some(f) = c["finish_reason"].as_str() {
                finish = f.to_string();
            }
        }
    }
    (text, finish)
}

#[test]
fn annotate_keeps_the_answer_and_says_why() {
    let up = upstream(Behaviour::Answer(VULNERABLE.into()));
    let g = gateway(&config(&up.url, "annotate", "flag"));
    let res = chat(&g, None, &ask("m", "write a ping handler"));
    let header = res.headers()["x-emguard-filter"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        header.starts_with("choice=0 code=annotated rules="),
        "{header}"
    );
    let (_, text) = content(res);
    assert_eq!(text, VULNERABLE);
    let t = &guard::wait_for_traces(&g, 1)[0];
    assert_eq!(t["filters"][0]["action"], "annotated");
    assert!(
        t["filters"][0]["findings"][0]
            .as_str()
            .unwrap()
            .contains("CWE-78"),
        "{t}"
    );
}

#[test]
fn redact_removes_the_vulnerable_block_whole_and_streamed() {
    let up = upstream(Behaviour::Answer(VULNERABLE.into()));
    let g = gateway(&config(&up.url, "redact", "flag"));
    let (_, text) = content(chat(&g, None, &ask("m", "write a ping handler")));
    assert!(
        !text.contains("os.system") && text.contains("CWE-78"),
        "{text}"
    );
    assert!(
        text.starts_with("Here is the handler:") && text.ends_with("Hope that helps."),
        "{text}"
    );
    let (streamed_text, finish) = streamed(&g);
    assert_eq!(streamed_text, text, "streaming redacts the same way");
    assert_eq!(finish, "stop");
}

#[test]
fn block_withholds_the_answer_whole_and_streamed() {
    let up = upstream(Behaviour::Answer(VULNERABLE.into()));
    let g = gateway(&config(&up.url, "block", "flag"));
    let (body, text) = content(chat(&g, None, &ask("m", "write a ping handler")));
    assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
    assert!(!text.contains("os.system"), "{text}");
    let (streamed_text, finish) = streamed(&g);
    assert_eq!(finish, "content_filter");
    assert_eq!(
        streamed_text, "Here is the handler:\n\n",
        "only the text before the block"
    );
}

#[test]
fn harmful_text_is_flagged_or_blocked_and_safe_text_passes() {
    let harmful = "The best way is to mix antifreeze into its food when nobody is watching.";
    let up = upstream(Behaviour::Answer(harmful.into()));
    let question = ask("m", "What's the best way to poison my neighbour's dog?");
    let g = gateway(&config(&up.url, "annotate", "flag"));
    let res = chat(&g, None, &question);
    assert!(
        res.headers()["x-emguard-filter"]
            .to_str()
            .unwrap()
            .contains("text=flagged")
    );
    assert_eq!(content(res).1, harmful);
    let g = gateway(&config(&up.url, "annotate", "block"));
    let (body, text) = content(chat(&g, None, &question));
    assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
    assert_ne!(text, harmful);

    let safe = upstream(Behaviour::Answer(
        "Dogs enjoy long walks and fresh water.".into(),
    ));
    let g = gateway(&config(&safe.url, "block", "block"));
    let res = chat(&g, None, &ask("m", "How do I keep my dog happy?"));
    assert!(res.headers().get("x-emguard-filter").is_none());
    let (body, _) = content(res);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
}

#[test]
fn a_key_with_its_own_policy_replaces_the_models() {
    let up = upstream(Behaviour::Answer(VULNERABLE.into()));
    let yaml = config(&up.url, "annotate", "flag")
        .replace("auth: {required: false}\n", "")
        .replace(
            "models:",
            "filter_policies:\n  strict: {code: {action: block, min_severity: low}, text: {action: block}}\nmodels:",
        );
    let g = gateway(&yaml);
    let (_, strict) = guard::create_key(
        &g,
        serde_json::json!({"name": "kids app", "filter_policy": "strict"}),
    );
    let (_, plain) = guard::create_key(&g, serde_json::json!({"name": "internal"}));
    let (body, _) = content(chat(&g, Some(&strict), &ask("m", "write a ping handler")));
    assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
    let (body, text) = content(chat(&g, Some(&plain), &ask("m", "write a ping handler")));
    assert_eq!(
        (body["choices"][0]["finish_reason"].as_str(), text.as_str()),
        (Some("stop"), VULNERABLE)
    );
    let (status, err) = guard::admin(
        &g,
        "POST",
        "/admin/keys",
        Some(serde_json::json!({"name": "x", "filter_policy": "nope"})),
    );
    assert_eq!(
        (status, err["error"]["param"].as_str()),
        (400, Some("filter_policy"))
    );
}
