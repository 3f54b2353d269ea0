//! `emguard traces export|prune` on a real SQLite trace store.

use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use emguard_store::gateway::{GatewayStore, TraceQuery, TraceRecord};
use serde_json::json;

fn emguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_emguard"))
        .args(args)
        .output()
        .unwrap()
}

fn trace(id: &str, time: f64, model: &str, key: &str) -> TraceRecord {
    TraceRecord {
        id: id.to_string(),
        time,
        key_id: Some(key.to_string()),
        model: model.to_string(),
        version: Some("v1".into()),
        backend: Some("local:smollm2-135m-instruct".into()),
        stream: false,
        request: Some("{\"messages\":[{\"role\":\"user\",\"content\":\"a\\nb\"}]}".into()),
        response: None,
        prompt_tokens: Some(3),
        completion_tokens: Some(4),
        latency_ms: 12.5,
        ttft_ms: None,
        upstream_ms: None,
        status: 200,
        filters: json!([]),
        attempts: json!([]),
        error: None,
    }
}

fn lines(text: &[u8]) -> Vec<TraceRecord> {
    String::from_utf8(text.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn export_filters_and_prune_deletes_old_traces() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.sqlite");
    let store_arg = path.to_str().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let day = 86_400.0;
    let all = vec![
        // 2026-11-20T00:00:00Z and later
        trace("a", 1_795_132_800.0, "m1", "key_1"),
        trace("b", 1_795_132_800.0 + day, "m2", "key_1"),
        trace("c", 1_795_132_800.0 + 2.0 * day, "m1", "key_2"),
        trace("recent", now - 60.0, "m1", "key_1"),
    ];
    GatewayStore::open(store_arg)
        .unwrap()
        .insert_traces(&all)
        .unwrap();

    let out = emguard(&["traces", "export", "--store", store_arg]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(lines(&out.stdout), all);

    let out = emguard(&[
        "traces",
        "export",
        "--store",
        store_arg,
        "--since",
        "2026-11-21T00:00:00Z",
        "--until",
        "2026-11-22T01:00:00+01:00",
        "--model",
        "m2",
    ]);
    assert!(out.status.success(), "{out:?}");
    // since is inclusive (b starts then), until exclusive.
    assert_eq!(lines(&out.stdout), [all[1].clone()]);

    let file = dir.path().join("out.jsonl");
    let out = emguard(&[
        "traces",
        "export",
        "--store",
        store_arg,
        "--since",
        "1795132800",
        "--key",
        "key_1",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 traces written"));
    let exported = lines(&std::fs::read(&file).unwrap());
    assert_eq!(exported, [all[0].clone(), all[1].clone(), all[3].clone()]);

    let out = emguard(&[
        "traces",
        "prune",
        "--store",
        store_arg,
        "--older-than-days",
        "1",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("3 traces older than 1 days deleted"));
    let left = GatewayStore::open(store_arg)
        .unwrap()
        .traces(&TraceQuery::default())
        .unwrap();
    assert_eq!(left, [all[3].clone()]);
}

#[test]
fn bad_arguments_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sqlite");
    let out = emguard(&["traces", "export", "--store", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no trace store at"));
    assert!(
        !missing.exists(),
        "a mistyped path must not become a new store"
    );

    let out = emguard(&[
        "traces",
        "export",
        "--store",
        "x",
        "--since",
        "last tuesday",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--since") && err.contains("last tuesday"),
        "{err}"
    );
}
