//! The official `openai` Python package against the real server: plain, n>1, logprobs,
//! streaming and concurrent calls (the checks live in `openai_client.py`).
//! Needs Python 3 with `openai` (`python3 -m pip install openai`); EMGUARD_TEST_PYTHON
//! names another interpreter.

mod common;
mod python_checks;

#[test]
fn official_openai_client_gets_what_it_expects() {
    let stdout = python_checks::run("openai_client.py", &[common::base_url(), common::MODEL]);
    // Every area of the issue was exercised.
    for area in [
        "plain:",
        "n=3:",
        "logprobs:",
        "stream:",
        "stream n=2:",
        "concurrent request 5",
        "unknown model:",
    ] {
        assert!(
            stdout.contains(&format!("ok: {area}")),
            "no `{area}` check ran"
        );
    }
}
