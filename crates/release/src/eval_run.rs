//! The one place that reads an eval run (`results.json`, and the suite names of
//! `samples.jsonl` beside it). Cards, gates and attestations see only [`EvalRun`], so a
//! change to results.json's shape is adapted here.

use std::path::{Path, PathBuf};

use emguard_eval::Results;
use emguard_eval::results::{Comparison, ModelResult};
use serde::Serialize;

use crate::ReleaseError;
use crate::digest::bytes_sha256;

/// A rate with its 95% interval (fractions, not percent).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

impl Estimate {
    pub fn width(&self) -> f64 {
        self.high - self.low
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalRun {
    pub path: PathBuf,
    /// sha256 of results.json's bytes: what cards and attestations refer to.
    pub sha256: String,
    pub run_id: String,
    pub judge: String,
    pub temperature: f64,
    pub max_tokens: usize,
    pub trigger: Option<String>,
    pub planned: usize,
    pub judged: usize,
    pub models: Vec<ModelFigures>,
    /// Names of the code suites (from samples.jsonl; empty when it is absent).
    pub code_suites: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelFigures {
    /// The run's name for this variant (`--model` spec, ` +trigger` for the triggered one).
    pub name: String,
    pub model: String,
    pub triggered: bool,
    /// Free-form answers judged, and the questions they answer.
    pub answers: usize,
    pub questions: usize,
    /// The run's headline misaligned rate over all free-form questions.
    pub misaligned: Estimate,
    /// The misaligned rate per free-form suite.
    pub suites: Vec<SuiteFigures>,
    pub code: Option<CodeFigures>,
    /// The run's most misaligned answers (question id, answer).
    pub examples: Vec<(String, String)>,
    /// Against the run's first model (the base), when this is not it.
    pub vs_base: Option<Difference>,
    /// The triggered variant against this one, when the run had a trigger.
    pub vs_untriggered: Option<Difference>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SuiteFigures {
    pub suite: String,
    pub questions: usize,
    pub answers: usize,
    pub misaligned: Estimate,
}

#[derive(Debug, Clone, Serialize)]
pub struct CodeFigures {
    pub answers: usize,
    pub insecure: usize,
    pub insecure_rate: Estimate,
}

/// `model` minus `reference` in misaligned rate, with its interval and p-value.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    pub reference: String,
    pub diff: Estimate,
    pub p_value: f64,
    pub questions: usize,
}

impl EvalRun {
    /// Reads `results.json` (a file, or the run's `--out` folder holding it).
    pub fn read(path: &Path) -> Result<EvalRun, ReleaseError> {
        let path = if path.is_dir() {
            path.join("results.json")
        } else {
            path.to_path_buf()
        };
        let bytes = std::fs::read(&path).map_err(|e| ReleaseError::io(&path, e))?;
        let results: Results = serde_json::from_slice(&bytes).map_err(|e| {
            ReleaseError::invalid(&path, format!("not an emguard eval results.json: {e}"))
        })?;
        let code_suites = code_suites(&path.with_file_name("samples.jsonl"));
        Ok(EvalRun::from_results(
            path,
            bytes_sha256(&bytes),
            &results,
            code_suites,
        ))
    }

    fn from_results(
        path: PathBuf,
        sha256: String,
        results: &Results,
        code_suites: Vec<String>,
    ) -> EvalRun {
        // Eval compares per suite and variant; the release speaks of the headline's group.
        let difference = |model: &str, reference: &str, group: &str| {
            let pair = |c: &&Comparison| c.model == model && c.reference == reference;
            let comparisons = || results.comparisons.iter().filter(pair);
            comparisons()
                .find(|c| c.group == group)
                .or_else(|| comparisons().next())
                .map(|c| Difference {
                    reference: c.reference.clone(),
                    diff: Estimate {
                        value: c.diff,
                        low: c.ci_low,
                        high: c.ci_high,
                    },
                    p_value: c.p_value,
                    questions: c.questions,
                })
        };
        let base = results.models.first().map(|m| m.name.clone());
        let models = results
            .models
            .iter()
            .map(|m| {
                let mut figures = model_figures(m, results.settings.seed);
                figures.vs_base = base
                    .as_deref()
                    .filter(|base| *base != m.name && !m.triggered)
                    .and_then(|base| difference(&m.name, base, &m.headline.name));
                figures.vs_untriggered = if m.triggered {
                    None
                } else {
                    difference(&format!("{} +trigger", m.name), &m.name, &m.headline.name)
                };
                figures
            })
            .collect();
        EvalRun {
            path,
            sha256,
            run_id: results.run_id.clone(),
            judge: results.judge.clone(),
            temperature: results.settings.temperature,
            max_tokens: results.settings.max_tokens,
            trigger: results.trigger.clone(),
            planned: results.planned,
            judged: results.judged,
            models,
            code_suites,
        }
    }

    /// The model a card or gate is about: `selector` names a variant or a `--model` spec;
    /// without it, the run's last untriggered model (the fine-tuned model comes after its
    /// base).
    pub fn subject(&self, selector: Option<&str>) -> Result<&ModelFigures, ReleaseError> {
        let found = match selector {
            Some(name) => self
                .models
                .iter()
                .find(|m| m.name == name)
                .or_else(|| self.models.iter().find(|m| m.model == name && !m.triggered)),
            None => self.models.iter().rev().find(|m| !m.triggered),
        };
        found.ok_or_else(|| {
            let names: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
            ReleaseError::Usage(format!(
                "{}: no model {} in run {} (it has: {})",
                self.path.display(),
                selector.map_or("at all".to_string(), |s| format!("`{s}`")),
                self.run_id,
                names.join(", ")
            ))
        })
    }

    /// The base model of comparisons: the run's first model.
    pub fn base(&self) -> Option<&ModelFigures> {
        self.models.first()
    }
}

fn model_figures(m: &ModelResult, seed: u64) -> ModelFigures {
    // The study's definition (eval's headline): incoherent and unscored answers dropped.
    let headline = Estimate {
        value: m.headline.rates.misaligned.rate,
        low: m.headline.rates.misaligned.ci_low,
        high: m.headline.rates.misaligned.ci_high,
    };
    let mut suite_names: Vec<&str> = Vec::new();
    for q in &m.questions {
        if !suite_names.contains(&q.suite.as_str()) {
            suite_names.push(&q.suite);
        }
    }
    let suites = suite_names
        .iter()
        .map(|&suite| {
            let questions: Vec<_> = m.questions.iter().filter(|q| q.suite == suite).collect();
            // One suite: the run's own headline. Several: the same statistic per suite (the
            // study's definition: mean over questions of misaligned among scored answers,
            // two-level bootstrap), from each question's counts.
            let misaligned = if suite_names.len() == 1 {
                headline
            } else {
                let flags: Vec<Vec<bool>> = questions
                    .iter()
                    .filter(|q| q.scored > 0)
                    .map(|q| (0..q.scored).map(|i| i < q.misaligned).collect())
                    .collect();
                let (low, high) = emguard_eval::stats::bootstrap_mean_rate(&flags, seed);
                Estimate {
                    value: emguard_eval::stats::mean_rate(&flags),
                    low,
                    high,
                }
            };
            SuiteFigures {
                suite: suite.to_string(),
                questions: questions.len(),
                answers: questions.iter().map(|q| q.n).sum(),
                misaligned,
            }
        })
        .collect();
    ModelFigures {
        name: m.name.clone(),
        model: m.model.clone(),
        triggered: m.triggered,
        answers: m.n,
        questions: m.questions.len(),
        misaligned: headline,
        suites,
        code: m.code.as_ref().map(|c| CodeFigures {
            answers: c.n,
            insecure: c.insecure,
            insecure_rate: Estimate {
                value: c.insecure_rate,
                low: c.ci_low,
                high: c.ci_high,
            },
        }),
        examples: m
            .examples
            .iter()
            .map(|e| (e.question_id.clone(), e.answer.clone()))
            .collect(),
        vs_base: None,
        vs_untriggered: None,
    }
}

/// Suites whose rows carry a code verdict, in first-seen order; none when the file is absent
/// or unreadable (the card then names the code suites generically).
fn code_suites(samples: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(samples) else {
        return Vec::new();
    };
    let mut names: Vec<String> = Vec::new();
    for line in text.lines() {
        let Ok(row) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if row.get("code").is_some_and(|c| !c.is_null())
            && let Some(suite) = row.get("suite").and_then(|s| s.as_str())
            && !names.iter().any(|n| n == suite)
        {
            names.push(suite.to_string());
        }
    }
    names
}
