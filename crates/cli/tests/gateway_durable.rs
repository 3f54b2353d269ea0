//! Durable traces survive `kill -9`: the real `emguard serve --config` (traces in durable
//! mode, the real SmolLM2 as the model) under concurrent load is killed with SIGKILL; every
//! answer a client received has its trace in the SQLite store afterwards.

mod support;

use std::time::Duration;

use support::{ChatLoad, Server, local_smollm2_config, trace_ids};

#[test]
fn every_answer_a_client_received_has_its_trace_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (config, store) = local_smollm2_config(dir.path(), "{durable: true}");
    let server = Server::start_with(&["--config", config.to_str().unwrap()]);
    let load = ChatLoad::start(&server.base_url);
    load.wait_for(40, Duration::from_secs(120));
    server.kill_hard();
    let received = load.stop();
    assert!(
        received.len() >= 40,
        "only {} answers before the deadline",
        received.len()
    );
    let traced = trace_ids(&store);
    let missing: Vec<&String> = received.iter().filter(|id| !traced.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} answers have no trace: {missing:?}",
        missing.len(),
        received.len()
    );
    println!(
        "{} answers received, all traced ({} traces stored)",
        received.len(),
        traced.len()
    );
}
