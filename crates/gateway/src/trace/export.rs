//! Traces out of the store as JSON lines (one [`TraceRecord`] per line, oldest first), and
//! the time bounds a user gives for them.

use std::io::Write;

use super::{GatewayStore, TraceError, TraceQuery, TraceRecord};

/// Writes every trace matching `query` (its `limit` aside) to `out`; returns how many.
pub fn write_jsonl(
    store: &GatewayStore,
    query: &TraceQuery,
    out: &mut impl Write,
) -> Result<u64, TraceError> {
    let mut written = 0;
    store.export_traces(query, |record: TraceRecord| {
        serde_json::to_writer(&mut *out, &record).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
        written += 1;
        Ok::<_, TraceError>(())
    })?;
    out.flush()?;
    Ok(written)
}

/// Unix seconds from RFC 3339 (`2026-11-27T10:00:00Z`, any offset) or a number of seconds.
pub fn parse_time(input: &str) -> Result<f64, TraceError> {
    let input = input.trim();
    if let Ok(secs) = input.parse::<f64>()
        && secs.is_finite()
    {
        return Ok(secs);
    }
    let ts: jiff::Timestamp = input.parse().map_err(|_| TraceError::BadTime {
        input: input.to_string(),
    })?;
    Ok(ts.as_second() as f64 + f64::from(ts.subsec_nanosecond()) / 1e9)
}
