//! The gateway's store against real SQLite files and a real PostgreSQL server: each check runs
//! on both backends.

use emguard_store::StoreError;
use emguard_store::gateway::{
    ApiKeyRecord, BudgetPeriod, GatewayStore, TokenBudget, TraceQuery, TraceRecord,
};
use emguard_testkit::TestPostgres;
use serde_json::json;

fn trace(id: &str, time: f64, key: Option<&str>, model: &str, status: u16) -> TraceRecord {
    TraceRecord {
        id: id.to_string(),
        time,
        key_id: key.map(str::to_string),
        model: model.to_string(),
        version: Some(format!("{model}-v2")),
        backend: Some("upstream:http://127.0.0.1:9/v1".to_string()),
        stream: (time as u64).is_multiple_of(2),
        request: Some(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#.to_string()),
        response: Some(
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".to_string(),
        ),
        prompt_tokens: Some(12),
        completion_tokens: Some(34),
        latency_ms: 12.345678901,
        ttft_ms: Some(1.5),
        upstream_ms: None,
        status,
        filters: json!([{"filter": "codescan", "verdict": "annotate", "findings": [{"rule": "EMG-PY-001", "cwe": 78}]}]),
        attempts: json!([{"version": "v1", "outcome": "timeout", "ms": 1000.25}, {"version": "v2", "outcome": "ok", "ms": 11.0}]),
        error: (status >= 500).then(|| "upstream timed out".to_string()),
    }
}

fn key(id: &str) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.to_string(),
        hash: "a".repeat(64),
        name: format!("team {id}"),
        scopes: vec!["smollm2".to_string()],
        created_at: 1_700_000_000.25,
        expires_at: Some(1_800_000_000.0),
        revoked_at: None,
        requests_per_minute: Some(600),
        tokens_per_minute: None,
        filter_policy: Some("strict".to_string()),
        token_budget: None,
    }
}

fn ids(traces: &[TraceRecord]) -> Vec<&str> {
    traces.iter().map(|t| t.id.as_str()).collect()
}

/// Runs `check` against a fresh SQLite file.
fn on_sqlite(check: fn(&GatewayStore)) {
    let dir = tempfile::tempdir().unwrap();
    let store = GatewayStore::open(dir.path().join("gateway.sqlite").to_str().unwrap()).unwrap();
    check(&store);
}

/// Runs `check` against a fresh PostgreSQL database (skips when none can be had).
fn on_postgres(test: &str, check: fn(&GatewayStore)) {
    let Some(pg) = TestPostgres::start(test) else {
        return;
    };
    let store = GatewayStore::open(&pg.url).unwrap();
    check(&store);
}

macro_rules! on_both {
    ($check:ident) => {
        mod $check {
            #[test]
            fn sqlite() {
                super::on_sqlite(super::$check);
            }
            #[test]
            fn postgres() {
                super::on_postgres(concat!(stringify!($check), "::postgres"), super::$check);
            }
        }
    };
}

fn traces_round_trip_exactly(store: &GatewayStore) {
    let mut written = vec![
        trace("chatcmpl-a", 1000.5, Some("key_1"), "smollm2", 200),
        trace("chatcmpl-b", 1001.25, None, "smollm2", 502),
    ];
    // Content a client chose: NUL, quotes, non-ASCII.
    written[1].model = "evil\0model \"ü\"".to_string();
    written[1].request = Some("{\"content\":\"\\u0000 日本\"}".to_string());
    written[1].filters = json!([]);
    store.insert_traces(&written).unwrap();
    assert_eq!(
        store.trace("chatcmpl-a").unwrap().as_ref(),
        Some(&written[0])
    );
    assert_eq!(
        store.trace("chatcmpl-b").unwrap().as_ref(),
        Some(&written[1])
    );
    assert_eq!(store.trace("chatcmpl-none").unwrap(), None);
    // A retried batch leaves the stored trace as it was.
    let mut again = written[0].clone();
    again.status = 418;
    store.insert_traces(&[again]).unwrap();
    assert_eq!(store.trace("chatcmpl-a").unwrap().unwrap().status, 200);
    store.insert_traces(&[]).unwrap();
}
on_both!(traces_round_trip_exactly);

fn trace_queries_filter_and_order_newest_first(store: &GatewayStore) {
    let batch: Vec<TraceRecord> = (0..20)
        .map(|i| {
            let key = ["key_a", "key_b"][i % 2];
            let model = ["m1", "m2", "m3"][i % 3];
            let status = if i % 5 == 0 { 429 } else { 200 };
            trace(
                &format!("r{i:02}"),
                100.0 + i as f64,
                Some(key),
                model,
                status,
            )
        })
        .collect();
    store.insert_traces(&batch).unwrap();
    let q = |f: &dyn Fn(&mut TraceQuery)| {
        let mut query = TraceQuery::default();
        f(&mut query);
        store.traces(&query).unwrap()
    };
    let all = q(&|_| {});
    assert_eq!(all.len(), 20);
    assert_eq!(all[0].id, "r19", "newest first");
    assert_eq!(all[19].id, "r00");
    assert_eq!(ids(&q(&|q| q.limit = 3)), ["r19", "r18", "r17"]);
    // since inclusive, until exclusive
    assert_eq!(
        ids(&q(&|q| {
            q.since = Some(105.0);
            q.until = Some(108.0)
        })),
        ["r07", "r06", "r05"]
    );
    assert_eq!(ids(&q(&|q| q.key_id = Some("key_b".into()))).len(), 10);
    assert!(
        q(&|q| q.key_id = Some("key_b".into()))
            .iter()
            .all(|t| t.key_id.as_deref() == Some("key_b"))
    );
    assert_eq!(
        ids(&q(&|q| {
            q.model = Some("m1".into());
            q.status = Some(429)
        })),
        ["r15", "r00"]
    );
    assert!(q(&|q| q.model = Some("nope".into())).is_empty());
}
on_both!(trace_queries_filter_and_order_newest_first);

fn export_reads_every_trace_oldest_first_across_pages(store: &GatewayStore) {
    // 2,500 traces, many sharing a start time, so that pages break inside runs of equal times.
    let batch: Vec<TraceRecord> = (0..2500)
        .map(|i| {
            trace(
                &format!("t{i:04}"),
                5000.0 + (i / 7) as f64,
                Some("key_x"),
                "m",
                200,
            )
        })
        .collect();
    for chunk in batch.chunks(512) {
        store.insert_traces(chunk).unwrap();
    }
    let mut seen = Vec::new();
    store
        .export_traces(&TraceQuery::default(), |t| {
            seen.push(t);
            Ok::<_, StoreError>(())
        })
        .unwrap();
    assert_eq!(seen, batch, "every trace once, in (time, id) order");
    let mut filtered = 0;
    let query = TraceQuery {
        since: Some(5100.0),
        until: Some(5200.0),
        ..TraceQuery::default()
    };
    store
        .export_traces(&query, |t| {
            assert!((5100.0..5200.0).contains(&t.time));
            filtered += 1;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    assert_eq!(filtered, 700);
}
on_both!(export_reads_every_trace_oldest_first_across_pages);

fn retention_deletes_only_older_traces(store: &GatewayStore) {
    let batch: Vec<TraceRecord> = (0..10)
        .map(|i| trace(&format!("d{i}"), 10.0 * i as f64, None, "m", 200))
        .collect();
    store.insert_traces(&batch).unwrap();
    assert_eq!(store.delete_traces_before(35.0).unwrap(), 4);
    let left = store.traces(&TraceQuery::default()).unwrap();
    assert_eq!(ids(&left), ["d9", "d8", "d7", "d6", "d5", "d4"]);
    assert_eq!(store.delete_traces_before(35.0).unwrap(), 0);
}
on_both!(retention_deletes_only_older_traces);

fn keys_insert_list_and_revoke(store: &GatewayStore) {
    assert!(store.keys().unwrap().is_empty());
    let (b, a) = (key("key_b"), key("key_a"));
    store.insert_key(&b).unwrap();
    store.insert_key(&a).unwrap();
    assert!(matches!(store.insert_key(&a), Err(StoreError::KeyExists(id)) if id == "key_a"));
    assert_eq!(store.keys().unwrap(), [a.clone(), b.clone()]);
    assert!(store.revoke_key("key_b", 1_750_000_000.5).unwrap());
    assert!(store.revoke_key("key_b", 1_760_000_000.0).unwrap());
    assert!(!store.revoke_key("key_none", 1.0).unwrap());
    let keys = store.keys().unwrap();
    assert_eq!(keys[0], a, "the other key is untouched");
    assert_eq!(
        keys[1].revoked_at,
        Some(1_750_000_000.5),
        "the first revocation time stays"
    );
    assert_eq!(
        ApiKeyRecord {
            revoked_at: None,
            ..keys[1].clone()
        },
        b
    );
}
on_both!(keys_insert_list_and_revoke);

fn key_token_counts_add_up_per_day_and_sum_over_periods(store: &GatewayStore) {
    let day = 86_400;
    let (d1, d2) = (20_000 * day, 20_001 * day);
    assert_eq!(store.key_tokens("key_a", d1, d2).unwrap(), 0);
    store.add_key_tokens("key_a", d1, 12).unwrap();
    store.add_key_tokens("key_a", d1, 30).unwrap();
    store.add_key_tokens("key_a", d2, 5).unwrap();
    store.add_key_tokens("key_b", d1, 1000).unwrap();
    // One day, then both days (as a month sums its days); keys apart.
    assert_eq!(store.key_tokens("key_a", d1, d2).unwrap(), 42);
    assert_eq!(store.key_tokens("key_a", d1, d2 + day).unwrap(), 47);
    assert_eq!(store.key_tokens("key_b", d1, d2 + day).unwrap(), 1000);
    // A key's budget is part of its record.
    store.insert_key(&key("key_a")).unwrap();
    let budget = TokenBudget {
        tokens: 500,
        period: BudgetPeriod::Month,
    };
    assert!(store.set_key_budget("key_a", Some(budget)).unwrap());
    assert_eq!(store.keys().unwrap()[0].token_budget, Some(budget));
    assert!(store.set_key_budget("key_a", None).unwrap());
    assert_eq!(store.keys().unwrap()[0].token_budget, None);
    assert!(!store.set_key_budget("key_none", Some(budget)).unwrap());
}
on_both!(key_token_counts_add_up_per_day_and_sum_over_periods);

fn active_versions_are_set_and_replaced(store: &GatewayStore) {
    assert!(store.active_versions().unwrap().is_empty());
    store.set_active_version("zeta", "v1").unwrap();
    store.set_active_version("alpha", "v1").unwrap();
    store.set_active_version("zeta", "v2").unwrap();
    assert_eq!(
        store.active_versions().unwrap(),
        [
            ("alpha".to_string(), "v1".to_string()),
            ("zeta".to_string(), "v2".to_string())
        ]
    );
}
on_both!(active_versions_are_set_and_replaced);

#[test]
fn sqlite_state_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.sqlite");
    let path = path.to_str().unwrap();
    {
        let store = GatewayStore::open(path).unwrap();
        store
            .insert_traces(&[trace("r1", 1.0, Some("key_1"), "m", 200)])
            .unwrap();
        store.insert_key(&key("key_1")).unwrap();
        store.set_active_version("m", "v3").unwrap();
    }
    let store = GatewayStore::open(path).unwrap();
    assert_eq!(
        store.trace("r1").unwrap(),
        Some(trace("r1", 1.0, Some("key_1"), "m", 200))
    );
    assert_eq!(store.keys().unwrap(), [key("key_1")]);
    assert_eq!(
        store.active_versions().unwrap(),
        [("m".to_string(), "v3".to_string())]
    );
    let mode: String = rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn postgres_committed_traces_survive_a_server_crash() {
    let Some(pg) = TestPostgres::start("postgres_committed_traces_survive_a_server_crash") else {
        return;
    };
    if !pg.started_cluster() {
        eprintln!(
            "SKIP postgres_committed_traces_survive_a_server_crash: needs a cluster the test starts itself"
        );
        return;
    }
    let batch: Vec<TraceRecord> = (0..100)
        .map(|i| trace(&format!("c{i}"), i as f64, None, "m", 200))
        .collect();
    {
        let store = GatewayStore::open(&pg.url).unwrap();
        store.insert_traces(&batch).unwrap();
        pg.crash_and_restart();
        // The old connection is gone with the server: a clear error, no panic.
        assert!(store.traces(&TraceQuery::default()).is_err());
    }
    let store = GatewayStore::open(&pg.url).unwrap();
    let mut back = store
        .traces(&TraceQuery {
            limit: 1000,
            ..TraceQuery::default()
        })
        .unwrap();
    back.reverse();
    assert_eq!(back, batch);
}

#[test]
fn a_bad_location_is_a_clear_error() {
    let err = GatewayStore::open("/nonexistent-dir/x/gateway.sqlite")
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("/nonexistent-dir/x/gateway.sqlite"),
        "{err}"
    );
    let err = GatewayStore::open("postgresql://nobody@127.0.0.1:1/none")
        .err()
        .unwrap();
    assert!(err.to_string().contains("PostgreSQL"), "{err}");
}
