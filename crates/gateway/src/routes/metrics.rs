//! `GET /metrics`: Prometheus text format (requests, latency, filter verdicts, rate-limit
//! refusals, the trace queue).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// `GET /metrics`: Prometheus text, with the tracer's queue figures.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.edge.metrics_require_token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let allowed = state
            .admin_token
            .as_deref()
            .is_some_and(|expected| crate::auth::admin_token_matches(presented, expected));
        if !allowed {
            return crate::auth::unauthorized(
                "`/metrics` needs `Authorization: Bearer ADMIN_TOKEN` (server.metrics_require_token).",
                "invalid_admin_token",
            )
            .into_response();
        }
    }
    let Some(handle) = &state.metrics else {
        return (StatusCode::NOT_FOUND, "metrics are off\n").into_response();
    };
    if let Some(tracer) = &state.tracer {
        let s = tracer.stats();
        metrics::gauge!("emguard_trace_queued").set(s.queued as f64);
        metrics::gauge!("emguard_trace_written").set(s.written as f64);
        metrics::gauge!("emguard_trace_dropped").set(s.dropped as f64);
        metrics::gauge!("emguard_trace_failed").set(s.failed as f64);
        metrics::gauge!("emguard_trace_writer_reliefs").set(s.reliefs as f64);
    }
    if let Some(monitor) = &state.monitor {
        monitor.export_metrics();
    }
    if let Some(limiter) = &state.limiter {
        let s = limiter.stats();
        metrics::gauge!("emguard_ratelimit_admitted").set(s.admitted as f64);
        metrics::gauge!("emguard_ratelimit_denied", "limit" => "requests")
            .set(s.denied_requests as f64);
        metrics::gauge!("emguard_ratelimit_denied", "limit" => "tokens")
            .set(s.denied_tokens as f64);
        metrics::gauge!("emguard_ratelimit_backend_errors").set(s.backend_errors as f64);
        metrics::gauge!("emguard_ratelimit_failed_open").set(s.failed_open as f64);
        metrics::gauge!("emguard_ratelimit_failed_closed").set(s.failed_closed as f64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}
