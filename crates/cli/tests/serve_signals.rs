//! `emguard serve --config` stops cleanly on SIGTERM, as on Ctrl-C: the real binary (the
//! real SmolLM2 behind it, traces not durable) under concurrent load gets SIGTERM; it exits
//! 0 and every answer a client received has its trace in the SQLite store. And a start that
//! fails says each cause once.

mod support;

use std::time::Duration;

use support::{ChatLoad, Server, local_smollm2_config, trace_ids};

#[test]
fn sigterm_drains_the_requests_and_flushes_every_trace() {
    let dir = tempfile::tempdir().unwrap();
    let (config, store) = local_smollm2_config(dir.path(), "{}");
    let server = Server::start_with(&["--config", config.to_str().unwrap()]);
    let load = ChatLoad::start(&server.base_url);
    load.wait_for(40, Duration::from_secs(120));
    let status = server.terminate();
    let received = load.stop();
    assert!(status.success(), "SIGTERM is a clean exit: {status:?}");
    assert!(received.len() >= 40, "only {} answers", received.len());
    let traced = trace_ids(&store);
    let missing = received.iter().filter(|id| !traced.contains(*id)).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} answers have no trace after SIGTERM",
        received.len()
    );
}

#[test]
fn a_failed_start_says_each_cause_once_and_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.yaml");
    // The store's directory does not exist: opening it fails.
    std::fs::write(
        &config,
        "store: 'missing-dir/sub/gateway.db'\nauth: {required: false}\nmodels:\n  - id: m\n    active: v1\n    versions: [{name: v1, upstream: 'http://127.0.0.1:9/v1'}]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_emguard"))
        .args(["serve", "--port", "0", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    let parts: Vec<&str> = line["error: ".len()..].split(": ").collect();
    for (i, p) in parts.iter().enumerate() {
        assert!(
            !parts[i + 1..].contains(p),
            "`{p}` is said twice in {line:?}"
        );
    }
    assert!(
        !stderr.contains('\u{1b}'),
        "no colour codes when stderr is not a terminal: {stderr:?}"
    );
}
