//! The official `openai` Python package against the real server: plain, n>1, logprobs,
//! streaming and concurrent calls (the checks live in `openai_client.py`).
//! Needs Python 3 with `openai` (`python3 -m pip install openai`); EMGUARD_TEST_PYTHON
//! names another interpreter.

mod common;

use std::process::Command;

#[test]
fn official_openai_client_gets_what_it_expects() {
    let python = std::env::var("EMGUARD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python).args(["-c", "import openai"]).output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "the `openai` Python package is missing for {python}: run `{python} -m pip install openai` \
             (scripts/test installs it)\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "cannot run {python} ({e}): install Python 3 and `python3 -m pip install openai`"
        ),
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_client.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(common::base_url())
        .arg(common::MODEL)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "openai_client.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all checks passed"));
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
