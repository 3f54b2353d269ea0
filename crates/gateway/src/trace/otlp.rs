//! Committed traces as OpenTelemetry spans, sent over OTLP/HTTP (JSON) with the GenAI
//! semantic-convention attributes.
//!
//! One span per request, kind SERVER (the gateway answering a client), named
//! `chat {model}`, starting at the request's start and lasting its total latency. The trace
//! and span ids derive from the request id, so the span of a stored trace can be found again.
//! Content (prompts, answers) is not exported: GenAI conventions make it opt-in and the
//! store keeps it under the content-logging mode.
//!
//! The SDK's batch processor runs on a thread of its own with a bounded queue: a slow or
//! absent collector costs spans (the SDK drops and logs), never trace writes.

use std::time::{Duration, UNIX_EPOCH};

use opentelemetry::trace::{
    Span as _, SpanId, SpanKind, Status, TraceId, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use sha2::{Digest, Sha256};

use super::{TraceError, TraceRecord};

pub(super) struct Exporter {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl Exporter {
    /// `base` is the collector's OTLP/HTTP base URL; spans go to `<base>/v1/traces`.
    pub(super) fn new(base: &str) -> Result<Exporter, TraceError> {
        let url = format!("{}/v1/traces", base.trim_end_matches('/'));
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(&url)
            .with_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| TraceError::Otlp {
                endpoint: url.clone(),
                message: e.to_string(),
            })?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name("emguard-gateway")
                    .build(),
            )
            .build();
        let tracer = provider.tracer("emguard-gateway");
        Ok(Exporter { provider, tracer })
    }

    /// Hands the spans to the SDK's queue; returns without waiting for the collector.
    pub(super) fn export(&self, records: &[TraceRecord]) {
        for record in records {
            self.span(record);
        }
    }

    /// Waits until the spans handed over so far have been sent (or failed to be).
    pub(super) fn flush(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!(error = %e, "OTLP export failed");
        }
    }

    fn span(&self, r: &TraceRecord) {
        let start = UNIX_EPOCH + Duration::from_secs_f64(r.time.max(0.0));
        let end = start + Duration::from_secs_f64(r.latency_ms.max(0.0) / 1000.0);
        let (trace_id, span_id) = ids(&r.id);
        let builder = self
            .tracer
            .span_builder(format!("chat {}", r.model))
            .with_kind(SpanKind::Server)
            .with_trace_id(trace_id)
            .with_span_id(span_id)
            .with_start_time(start)
            .with_attributes(attributes(r));
        // An empty context: the span is a root whatever the writer thread's context is.
        let mut span = self.tracer.build_with_context(builder, &Context::new());
        if r.status >= 500 {
            let message = r
                .error
                .clone()
                .unwrap_or_else(|| format!("HTTP {}", r.status));
            span.set_status(Status::error(message));
        }
        span.end_with_timestamp(end);
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "OTLP exporter shutdown");
        }
    }
}

/// Trace id: the first 16 bytes of sha256(request id); span id: the next 8.
fn ids(request_id: &str) -> (TraceId, SpanId) {
    let digest = Sha256::digest(request_id.as_bytes());
    let mut trace = [0u8; 16];
    let mut span = [0u8; 8];
    trace.copy_from_slice(&digest[..16]);
    span.copy_from_slice(&digest[16..24]);
    (TraceId::from_bytes(trace), SpanId::from_bytes(span))
}

fn attributes(r: &TraceRecord) -> Vec<KeyValue> {
    let mut kv = vec![
        KeyValue::new("gen_ai.operation.name", "chat"),
        KeyValue::new("gen_ai.request.model", r.model.clone()),
        KeyValue::new("gen_ai.response.id", r.id.clone()),
        KeyValue::new("http.response.status_code", i64::from(r.status)),
        KeyValue::new("emguard.stream", r.stream),
        KeyValue::new("emguard.filters", r.filters.to_string()),
        KeyValue::new("emguard.attempts", r.attempts.to_string()),
    ];
    let optional = [
        ("gen_ai.response.model", r.version.clone().map(Into::into)),
        ("emguard.version", r.version.clone().map(Into::into)),
        ("emguard.backend", r.backend.clone().map(Into::into)),
        ("emguard.key_id", r.key_id.clone().map(Into::into)),
        (
            "gen_ai.usage.input_tokens",
            r.prompt_tokens.map(|t| (t as i64).into()),
        ),
        (
            "gen_ai.usage.output_tokens",
            r.completion_tokens.map(|t| (t as i64).into()),
        ),
        ("emguard.ttft_ms", r.ttft_ms.map(Into::into)),
        ("emguard.upstream_ms", r.upstream_ms.map(Into::into)),
        (
            "error.type",
            (r.status >= 500).then(|| r.status.to_string().into()),
        ),
    ];
    kv.extend(optional.into_iter().filter_map(
        |(key, value): (&'static str, Option<opentelemetry::Value>)| {
            Some(KeyValue::new(key, value?))
        },
    ));
    kv
}
