//! `GET /metrics`: Prometheus text format (requests, latency, filter verdicts, rate-limit
//! refusals, the trace queue).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// `GET /metrics`: Prometheus text, with the tracer's queue figures.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let Some(handle) = &state.metrics else {
        return (StatusCode::NOT_FOUND, "metrics are off\n").into_response();
    };
    if let Some(tracer) = &state.tracer {
        let s = tracer.stats();
        metrics::gauge!("emguard_trace_queued").set(s.queued as f64);
        metrics::gauge!("emguard_trace_written").set(s.written as f64);
        metrics::gauge!("emguard_trace_dropped").set(s.dropped as f64);
        metrics::gauge!("emguard_trace_failed").set(s.failed as f64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}
