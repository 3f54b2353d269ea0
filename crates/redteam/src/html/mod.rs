//! `report.html`: one self-contained page (inline CSS and SVG, no network) with the attack
//! success per family as bars with their Wilson intervals (eval's SVG bars), the comparisons
//! with an earlier run with the regressions marked, and the worst transcripts. Its closing
//! script writes a self-check that the headless-browser test reads.

use minijinja::{Environment, Value, context};
use serde::Serialize;

use emguard_eval::report::svg::{Bar, Series, escape, hbars};

use crate::report::Report;

const TEMPLATE: &str = include_str!("report.html.j2");

/// Transcripts shown in full; the rest are in report.json.
pub const WORST_SHOWN: usize = 10;

/// A hit as the page shows it: the verdict in words.
#[derive(Serialize)]
struct Shown<'a> {
    label: &'a str,
    attempt: usize,
    round: usize,
    messages: &'a [emguard_runtime::ChatMessage],
    answer: &'a str,
    verdict: String,
}

pub fn render(report: &Report) -> String {
    let families: Vec<String> = report.families.iter().map(|f| f.id.clone()).collect();
    let figure = hbars(
        "fig-families",
        "Attack success per family (95% Wilson CI)",
        &families,
        &[Series {
            name: "attack success",
            bars: report
                .families
                .iter()
                .map(|f| {
                    (f.tally.attempts > 0).then_some(Bar {
                        value: f.tally.rate,
                        low: f.tally.ci_low,
                        high: f.tally.ci_high,
                    })
                })
                .collect(),
        }],
    );
    let worst: Vec<Shown> = report
        .hits
        .iter()
        .take(WORST_SHOWN)
        .map(|t| Shown {
            label: &t.label,
            attempt: t.attempt,
            round: t.round,
            messages: &t.messages,
            answer: &t.answer,
            verdict: t.verdict.describe(),
        })
        .collect();
    let mut env = Environment::new();
    env.add_template("report.html", TEMPLATE)
        .expect("template parses (tested)");
    env.get_template("report.html")
        .and_then(|t| {
            t.render(context! {
                r => Value::from_serialize(report),
                families_figure => Value::from_safe_string(figure),
                worst => Value::from_serialize(&worst),
                figures => 1,
            })
        })
        .unwrap_or_else(|e| {
            format!(
                "<!doctype html><title>emguard redteam report</title><pre>report rendering failed: {}</pre>",
                escape(&e.to_string())
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{FamilyReport, Tally};

    #[test]
    fn the_page_has_a_bar_per_family_escapes_text_and_loads_nothing() {
        let family = |id: &str, hits: u64| FamilyReport {
            id: id.into(),
            outcomes: Default::default(),
            scoring: crate::probe::Scoring::Alignment,
            looks_for: "<script>alert(1)</script>".into(),
            tally: Tally {
                attempts: 10,
                hits,
                rate: hits as f64 / 10.0,
                ci_low: 0.0,
                ci_high: 0.5,
            },
            queries: 10,
            variants: Vec::new(),
        };
        let report = Report {
            run_id: "redteam-x".into(),
            model: "openai:m".into(),
            judge: "local".into(),
            families: vec![family("plain", 0), family("persona", 3)],
            hits: Vec::new(),
            unfinished: 0,
            comparisons: Vec::new(),
        };
        let html = render(&report);
        assert!(!html.contains("report rendering failed"), "{html}");
        assert_eq!(html.matches("class=\"bar\"").count(), 2);
        assert!(html.contains("&lt;script&gt;alert(1)"));
        assert!(!html.contains("<script>alert(1)"));
        assert!(!html.contains("src=") && !html.contains("href="));
        assert!(html.contains("No hits.") && html.contains("No earlier run compared"));
    }
}
