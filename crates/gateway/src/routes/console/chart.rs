//! The console's picture of traffic: requests and the flagged rate per version over time, as
//! an inline SVG (no script, no external resource).

use std::collections::BTreeMap;
use std::fmt::Write;

use emguard_store::gateway::TraceRecord;

const WIDTH: f64 = 820.0;
const HEIGHT: f64 = 240.0;
const PAD: f64 = 40.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
];

/// The bucket width for `span` seconds: at most about 24 points.
pub fn bucket_secs(span: f64) -> (f64, &'static str) {
    for (secs, name) in [(60.0, "minute"), (3600.0, "hour"), (86400.0, "day")] {
        if span / secs <= 24.0 {
            return (secs, name);
        }
    }
    (7.0 * 86400.0, "week")
}

/// Per version: (bucket start, requests, flagged).
type Series = BTreeMap<String, BTreeMap<i64, (u64, u64)>>;

pub fn svg(traces: &[TraceRecord]) -> (String, &'static str) {
    let (Some(first), Some(last)) = (
        traces.iter().map(|t| t.time).reduce(f64::min),
        traces.iter().map(|t| t.time).reduce(f64::max),
    ) else {
        return ("<p>No traffic yet.</p>".into(), "minute");
    };
    let (bucket, name) = bucket_secs(last - first);
    let mut series: Series = BTreeMap::new();
    for t in traces {
        let version = t.version.clone().unwrap_or_else(|| "none".into());
        let at = (t.time / bucket).floor() as i64;
        let flagged = t.filters.as_array().is_some_and(|a| !a.is_empty());
        let cell = series.entry(version).or_default().entry(at).or_default();
        cell.0 += 1;
        cell.1 += u64::from(flagged);
    }
    let (lo, hi) = (
        (first / bucket).floor() as i64,
        (last / bucket).floor() as i64,
    );
    let max_requests = series
        .values()
        .flat_map(|s| s.values().map(|c| c.0))
        .max()
        .unwrap_or(1)
        .max(1);
    let x = |b: i64| {
        let span = (hi - lo).max(1) as f64;
        PAD + (b - lo) as f64 / span * (WIDTH - 2.0 * PAD)
    };
    let y = |share: f64| HEIGHT - PAD - share * (HEIGHT - 2.0 * PAD);
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg id="traffic" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="requests and flagged rate per version"><rect width="100%" height="100%" fill="#fff"/><line x1="{PAD}" y1="{}" x2="{}" y2="{}" stroke="#889"/><text x="4" y="{}" font-size="11">{max_requests} req</text><text x="{}" y="{}" font-size="11">100% flagged</text>"##,
        HEIGHT - PAD,
        WIDTH - PAD,
        HEIGHT - PAD,
        PAD,
        WIDTH - PAD - 60.0,
        PAD - 6.0
    );
    for (i, (version, cells)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let requests: Vec<String> = cells
            .iter()
            .map(|(b, c)| format!("{:.1},{:.1}", x(*b), y(c.0 as f64 / max_requests as f64)))
            .collect();
        let flagged: Vec<String> = cells
            .iter()
            .map(|(b, c)| format!("{:.1},{:.1}", x(*b), y(c.1 as f64 / c.0.max(1) as f64)))
            .collect();
        let _ = write!(
            out,
            r##"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/><polyline fill="none" stroke="{colour}" stroke-dasharray="4 3" points="{}"/><text x="{}" y="{}" font-size="12" fill="{colour}">{}</text>"##,
            requests.join(" "),
            flagged.join(" "),
            PAD + 10.0 + 120.0 * i as f64,
            HEIGHT - 12.0,
            escape(version)
        );
    }
    out.push_str("</svg>");
    (out, name)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
