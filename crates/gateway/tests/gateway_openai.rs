//! The official `openai` Python package through the gateway to a local-model version (the
//! real SmolLM2 in the gateway's process) and to an upstream version that is a second
//! emguard server (also the real SmolLM2), with an API key (checks in `gateway_openai.py`).
//! Needs Python 3 with `openai`; EMGUARD_TEST_PYTHON names the interpreter (scripts/test
//! sets it).

mod common;
mod guard;
mod python_checks;

use serde_json::json;

#[test]
fn official_openai_client_through_the_gateway_to_local_and_upstream_versions() {
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
    let stdout = python_checks::run(
        "gateway_openai.py",
        &[&g.url, &key, "local-assistant", "remote-assistant"],
    );
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
