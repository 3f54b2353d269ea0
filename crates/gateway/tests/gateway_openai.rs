//! The official `openai` Python package through the gateway to a local-model version (the
//! real SmolLM2 in the gateway's process) and to an upstream version that is a second
//! emguard server (also the real SmolLM2), with an API key (checks in `gateway_openai.py`).
//! Needs Python 3 with `openai`; EMGUARD_TEST_PYTHON names the interpreter (scripts/test
//! sets it).

mod common;
mod guard;

use std::process::Command;

use serde_json::json;

#[test]
fn official_openai_client_through_the_gateway_to_local_and_upstream_versions() {
    let python = std::env::var("EMGUARD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let upstream = format!("{}/v1", common::base_url());
    let g = guard::gateway(&format!(
        "
store: '{{store}}'
filters: {{code: {{action: annotate}}, text: {{action: flag}}}}
models:
  - id: local-assistant
    active: v1
    versions: [{{name: v1, local: {model}, max_batch: 4}}]
  - id: remote-assistant
    active: v1
    versions: [{{name: v1, upstream: '{upstream}', upstream_model: {model}, timeout_secs: 120}}]
",
        model = common::MODEL
    ));
    let (_, key) = guard::create_key(&g, json!({"name": "python"}));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gateway_openai.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(&g.url)
        .arg(&key)
        .args(["local-assistant", "remote-assistant"])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {python} ({e}): install Python 3 and `pip install openai`")
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "gateway_openai.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all checks passed"));
    for model in ["local-assistant", "remote-assistant"] {
        assert!(stdout.contains(&format!("ok: {model}: stream equals the whole answer")));
    }
    // Every call was traced with the version and backend that answered.
    let traces = guard::wait_for_traces(&g, 12);
    assert!(traces.iter().any(|t| {
        t["backend"]
            .as_str()
            .is_some_and(|b| b.starts_with("local:"))
    }));
    assert!(traces.iter().any(|t| {
        t["backend"]
            .as_str()
            .is_some_and(|b| b.starts_with("upstream:"))
    }));
}
