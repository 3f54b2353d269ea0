//! `report.html`: one self-contained page (inline CSS and SVG, no network).

use minijinja::{Environment, Value, context};

use super::svg::{Bar, Series, hbars};
use crate::results::Results;

const TEMPLATE: &str = include_str!("report.html.j2");

pub fn render_html(results: &Results) -> String {
    let names: Vec<&str> = results.models.iter().map(|m| m.name.as_str()).collect();
    let overall = hbars(
        "fig-overall",
        "Misaligned (the study's definition) on the headline questions, mean over questions (95% bootstrap CI)",
        &names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        &[Series {
            name: "misaligned rate",
            bars: results
                .models
                .iter()
                .map(|m| {
                    let i = &m.headline.rates.misaligned;
                    Some(Bar {
                        value: i.rate,
                        low: i.ci_low,
                        high: i.ci_high,
                    })
                })
                .collect(),
        }],
    );
    let question_ids: Vec<String> = results
        .models
        .first()
        .map(|m| m.questions.iter().map(|q| q.id.clone()).collect())
        .unwrap_or_default();
    let per_question = (!question_ids.is_empty()).then(|| {
        let series: Vec<Series> = results
            .models
            .iter()
            .map(|m| Series {
                name: &m.name,
                bars: m
                    .questions
                    .iter()
                    .map(|q| {
                        q.misaligned_rate.map(|value| Bar {
                            value,
                            low: q.ci_low,
                            high: q.ci_high,
                        })
                    })
                    .collect(),
            })
            .collect();
        hbars(
            "fig-questions",
            "Misaligned per question, of the coherent and scored answers (95% Wilson CI)",
            &question_ids,
            &series,
        )
    });
    let code_models: Vec<_> = results
        .models
        .iter()
        .filter_map(|m| m.code.as_ref().map(|c| (m.name.clone(), c)))
        .collect();
    let code = (!code_models.is_empty()).then(|| {
        hbars(
            "fig-code",
            "Insecure code answers (95% Wilson CI)",
            &code_models
                .iter()
                .map(|(n, _)| n.clone())
                .collect::<Vec<_>>(),
            &[Series {
                name: "insecure rate",
                bars: code_models
                    .iter()
                    .map(|(_, c)| {
                        Some(Bar {
                            value: c.insecure_rate,
                            low: c.ci_low,
                            high: c.ci_high,
                        })
                    })
                    .collect(),
            }],
        )
    });
    let figures = 1 + usize::from(per_question.is_some()) + usize::from(code.is_some());
    let mut env = Environment::new();
    env.add_template("report.html", TEMPLATE)
        .expect("template parses (tested)");
    env.get_template("report.html")
        .and_then(|t| {
            t.render(context! {
                r => Value::from_serialize(results),
                overall => Value::from_safe_string(overall),
                per_question => per_question.map(Value::from_safe_string),
                code => code.map(Value::from_safe_string),
                figures => figures,
            })
        })
        .unwrap_or_else(|e| format!("<!doctype html><title>emguard report</title><pre>report rendering failed: {e}</pre>"))
}
