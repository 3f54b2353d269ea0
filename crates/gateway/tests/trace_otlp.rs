//! OTLP export against a real HTTP collector on 127.0.0.1 that records what it is sent.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use emguard_gateway::trace::{GatewayStore, TraceOptions, TraceRecord, Tracer};
use serde_json::{Value, json};

type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A collector: every POST to /v1/traces is kept as (content type, JSON body).
async fn start_collector() -> (String, Received) {
    let received: Received = Arc::default();
    let app = Router::new()
        .route(
            "/v1/traces",
            post(
                |State(received): State<Received>, headers: HeaderMap, body: Bytes| async move {
                    let content_type = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    received.lock().unwrap().push((content_type, body));
                    "{}"
                },
            ),
        )
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, received)
}

fn record(id: &str, status: u16) -> TraceRecord {
    TraceRecord {
        id: id.to_string(),
        time: 1_764_237_600.25,
        key_id: Some("key_3f9a".into()),
        model: "smollm2".into(),
        version: Some("smollm2-ft-2026-11".into()),
        backend: Some("upstream:http://127.0.0.1:9/v1".into()),
        stream: true,
        request: Some("secret prompt".into()),
        response: Some("secret answer".into()),
        prompt_tokens: Some(21),
        completion_tokens: Some(8),
        latency_ms: 1500.0,
        ttft_ms: Some(40.5),
        upstream_ms: Some(1400.0),
        status,
        filters: json!([{"filter": "codescan", "action": "annotate", "severity": "high"}]),
        attempts: json!([{"version": "smollm2-ft-2026-11", "outcome": "ok", "ms": 1400.0}]),
        error: (status >= 500).then(|| "upstream refused the connection".to_string()),
    }
}

/// An attribute's value as text, whatever OTLP JSON type carries it.
fn attr(span: &Value, key: &str) -> Option<String> {
    let kv = span["attributes"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)?;
    let value = kv["value"].as_object()?.values().next()?;
    Some(match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn as_u128(v: &Value) -> u128 {
    match v {
        Value::String(s) => s.parse().unwrap(),
        other => other.as_u64().unwrap() as u128,
    }
}

/// A tracer on a fresh SQLite file that exports to `endpoint`.
fn exporting_tracer(endpoint: String) -> (tempfile::TempDir, Arc<GatewayStore>, Tracer) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.sqlite");
    let store = Arc::new(GatewayStore::open(path.to_str().unwrap()).unwrap());
    let opts = TraceOptions {
        otlp_endpoint: Some(endpoint),
        ..TraceOptions::default()
    };
    let tracer = Tracer::start(Arc::clone(&store), opts);
    (dir, store, tracer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_traces_reach_the_collector_with_genai_attributes() {
    let (base, received) = start_collector().await;
    let (_dir, store, tracer) = exporting_tracer(base);
    tracer
        .record_durable(record("chatcmpl-ok", 200))
        .await
        .unwrap();
    tracer.record(record("chatcmpl-fail", 502));
    tracer.flush().await;

    let received = received.lock().unwrap().clone();
    assert!(!received.is_empty(), "the collector got nothing");
    assert!(
        received
            .iter()
            .all(|(ct, _)| ct.starts_with("application/json")),
        "{received:?}"
    );
    let spans: Vec<Value> = received
        .iter()
        .flat_map(|(_, body)| {
            body["resourceSpans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .inspect(|rs| {
            let service = rs["resource"]["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|kv| kv["key"] == "service.name")
                .unwrap();
            assert_eq!(service["value"]["stringValue"], "emguard-gateway");
        })
        .flat_map(|rs| rs["scopeSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|ss| ss["spans"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let ok = spans
        .iter()
        .find(|s| attr(s, "gen_ai.response.id").as_deref() == Some("chatcmpl-ok"))
        .unwrap();
    assert_eq!(ok["name"], "chat smollm2");
    assert_eq!(attr(ok, "gen_ai.operation.name").as_deref(), Some("chat"));
    assert_eq!(attr(ok, "gen_ai.request.model").as_deref(), Some("smollm2"));
    assert_eq!(
        attr(ok, "gen_ai.response.model").as_deref(),
        Some("smollm2-ft-2026-11")
    );
    assert_eq!(attr(ok, "gen_ai.usage.input_tokens").as_deref(), Some("21"));
    assert_eq!(attr(ok, "gen_ai.usage.output_tokens").as_deref(), Some("8"));
    assert_eq!(
        attr(ok, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(attr(ok, "emguard.key_id").as_deref(), Some("key_3f9a"));
    assert_eq!(
        attr(ok, "emguard.version").as_deref(),
        Some("smollm2-ft-2026-11")
    );
    let filters: Value = serde_json::from_str(&attr(ok, "emguard.filters").unwrap()).unwrap();
    assert_eq!(filters[0]["action"], "annotate");
    // Start and end from the trace: 1_764_237_600.25 s and 1.5 s later.
    let start = as_u128(&ok["startTimeUnixNano"]);
    let end = as_u128(&ok["endTimeUnixNano"]);
    assert!(start.abs_diff(1_764_237_600_250_000_000) < 1_000, "{start}");
    assert!(
        (end - start).abs_diff(1_500_000_000) < 1_000,
        "{}",
        end - start
    );
    // No content leaves in spans.
    let text = serde_json::to_string(&spans).unwrap();
    assert!(!text.contains("secret"), "{text}");

    let fail = spans
        .iter()
        .find(|s| attr(s, "gen_ai.response.id").as_deref() == Some("chatcmpl-fail"))
        .unwrap();
    assert_eq!(
        attr(fail, "http.response.status_code").as_deref(),
        Some("502")
    );
    assert_eq!(attr(fail, "error.type").as_deref(), Some("502"));
    assert_eq!(fail["status"]["message"], "upstream refused the connection");
    assert_ne!(ok["traceId"], fail["traceId"]);
    // Both were committed too.
    assert!(store.trace("chatcmpl-fail").unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_collector_costs_no_trace_writes() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_dir, store, tracer) = exporting_tracer(format!("http://127.0.0.1:{port}"));
    for i in 0..50 {
        tracer
            .record_durable(record(&format!("r{i}"), 200))
            .await
            .unwrap();
    }
    tracer.flush().await;
    let stats = tracer.stats();
    assert_eq!((stats.written, stats.dropped, stats.failed), (50, 0, 0));
    assert!(store.trace("r49").unwrap().is_some());
}
