//! JSON-lines export from a real SQLite store, and the time bounds users give for it.

use emguard_gateway::trace::export::{parse_time, write_jsonl};
use emguard_gateway::trace::{GatewayStore, TraceQuery, TraceRecord};
use serde_json::json;

fn record(i: usize) -> TraceRecord {
    TraceRecord {
        id: format!("chatcmpl-{i:03}"),
        time: 1_764_000_000.0 + i as f64 * 0.5,
        key_id: i.is_multiple_of(2).then(|| "key_even".to_string()),
        model: if i.is_multiple_of(3) { "m3" } else { "other" }.to_string(),
        version: Some("v1".into()),
        backend: None,
        stream: i.is_multiple_of(4),
        // Content with newlines and quotes must stay on its line.
        request: Some(format!(
            "{{\"messages\":[{{\"content\":\"line one\\nline \\\"{i}\\\"\"}}]}}"
        )),
        response: None,
        prompt_tokens: Some(i as u64),
        completion_tokens: None,
        latency_ms: 0.1 * i as f64,
        ttft_ms: None,
        upstream_ms: Some(1.0 / 3.0),
        status: if i.is_multiple_of(5) { 403 } else { 200 },
        filters: json!([{"filter": "judge", "verdict": {"harm": 0.125}}]),
        attempts: json!([]),
        error: None,
    }
}

#[test]
fn jsonl_export_round_trips_every_matching_trace() {
    let dir = tempfile::tempdir().unwrap();
    let store = GatewayStore::open(dir.path().join("t.sqlite").to_str().unwrap()).unwrap();
    let all: Vec<TraceRecord> = (0..1500).map(record).collect();
    store.insert_traces(&all).unwrap();

    let mut out = Vec::new();
    let n = write_jsonl(&store, &TraceQuery::default(), &mut out).unwrap();
    assert_eq!(n, 1500, "the query's limit does not cap an export");
    let text = String::from_utf8(out).unwrap();
    let back: Vec<TraceRecord> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(back.len(), all.len());
    for (b, a) in back.iter().zip(&all) {
        assert_eq!(b, a, "oldest first, every field exact");
    }

    let query = TraceQuery {
        since: Some(1_764_000_100.0),
        until: Some(1_764_000_200.0),
        model: Some("m3".into()),
        key_id: Some("key_even".into()),
        ..TraceQuery::default()
    };
    let mut out = Vec::new();
    let n = write_jsonl(&store, &query, &mut out).unwrap();
    let expected: Vec<TraceRecord> = all
        .into_iter()
        .filter(|r| (1_764_000_100.0..1_764_000_200.0).contains(&r.time))
        .filter(|r| r.model == "m3" && r.key_id.as_deref() == Some("key_even"))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(n as usize, expected.len());
    let back: Vec<TraceRecord> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(back, expected);
}

#[test]
fn times_are_rfc3339_or_unix_seconds() {
    assert_eq!(parse_time("2026-11-27T10:00:00Z").unwrap(), 1_795_773_600.0);
    assert_eq!(
        parse_time("2026-11-27T11:00:00+01:00").unwrap(),
        1_795_773_600.0
    );
    assert_eq!(
        parse_time("2026-11-27T10:00:00.25Z").unwrap(),
        1_795_773_600.25
    );
    assert_eq!(parse_time("1795773600.5").unwrap(), 1_795_773_600.5);
    assert_eq!(parse_time(" 0 ").unwrap(), 0.0);
    for bad in ["yesterday", "2026-13-01T00:00:00Z", "", "NaN", "inf"] {
        let err = parse_time(bad).unwrap_err().to_string();
        assert!(
            err.contains(bad.trim()) && err.contains("RFC 3339"),
            "{err}"
        );
    }
}
