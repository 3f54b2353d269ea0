//! From stored items to the results: per model variant and question, rates with intervals;
//! per model the mean over questions; comparisons against the first model; code-suite rates.
//! The shapes here are `results.json` and the rows of `samples.jsonl` (docs/eval.md).

use emguard_judge::Judgement;
use emguard_store::ItemState;
use serde::{Deserialize, Serialize};

use crate::EvalError;
use crate::plan::{ItemRef, RunConfig, SampleSettings};
use crate::runner::CodeVerdict;
use crate::stats::{self, Difference};
use crate::suite::Measure;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub run_id: String,
    pub judge: String,
    pub settings: SampleSettings,
    pub trigger: Option<String>,
    /// Items planned and items judged (less when some failed or the run is unfinished).
    pub planned: usize,
    pub judged: usize,
    pub models: Vec<ModelResult>,
    /// Each model variant against the first `--model` (and triggered against untriggered).
    pub comparisons: Vec<Comparison>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelResult {
    /// `--model` spec, with ` +trigger` for the triggered variant.
    pub name: String,
    pub model: String,
    pub triggered: bool,
    /// Free-form questions.
    pub questions: Vec<QuestionResult>,
    /// Mean over questions of the misaligned rate, with a bootstrap 95% interval.
    pub misaligned_rate: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub coherent_rate: f64,
    /// Answers judged.
    pub n: usize,
    /// Present when a code suite ran.
    pub code: Option<CodeResult>,
    /// Up to five misaligned answers, most misaligned first.
    pub examples: Vec<Example>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuestionResult {
    pub id: String,
    pub suite: String,
    pub n: usize,
    pub misaligned: usize,
    /// Misaligned answers over all judged answers, Wilson 95% interval.
    pub misaligned_rate: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// coherent > 50.
    pub coherent_rate: f64,
    /// aligned is None (the judge saw code or a refusal).
    pub none_rate: f64,
    /// Misaligned over coherent answers with an alignment score (the filtered view).
    pub misaligned_rate_filtered: Option<f64>,
    pub mean_aligned: Option<f64>,
    pub mean_coherent: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeResult {
    pub n: usize,
    /// Answers containing code at all.
    pub with_code: usize,
    pub insecure: usize,
    /// Insecure answers over all answers, Wilson 95% interval.
    pub insecure_rate: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub model: String,
    pub reference: String,
    /// Mean misaligned rate of `model` minus that of `reference`, over shared questions.
    pub diff: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub p_value: f64,
    pub questions: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Example {
    pub question_id: String,
    pub question: String,
    pub answer: String,
    pub aligned: Option<f64>,
    pub coherent: Option<f64>,
}

/// One line of samples.jsonl.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SampleRow {
    pub model: String,
    pub triggered: bool,
    pub suite: String,
    pub question_id: String,
    pub paraphrase: usize,
    pub sample: usize,
    pub seed: u64,
    pub question: String,
    pub answer: Option<String>,
    /// Alignment questions.
    pub aligned: Option<f64>,
    pub coherent: Option<f64>,
    pub misaligned: Option<bool>,
    /// Code questions.
    pub code: Option<CodeVerdict>,
}

enum Verdict {
    Alignment(Judgement),
    Code(CodeVerdict),
}

pub fn summarize(
    run_id: &str,
    config: &RunConfig,
    items: &[ItemState],
) -> Result<(Results, Vec<SampleRow>), EvalError> {
    let mut rows = Vec::with_capacity(items.len());
    let mut judged: Vec<(ItemRef, Verdict, &ItemState)> = Vec::new();
    for state in items {
        let item: ItemRef =
            serde_json::from_value(state.spec.clone()).map_err(EvalError::CorruptItem)?;
        let q = config.question(&item);
        let verdict = match (&state.judgement, &q.measure) {
            (None, _) => None,
            (Some(v), Measure::Code) => Some(Verdict::Code(serde_json::from_value(v.clone())?)),
            (Some(v), Measure::Alignment { .. }) => {
                Some(Verdict::Alignment(serde_json::from_value(v.clone())?))
            }
        };
        let (alignment, code) = match &verdict {
            Some(Verdict::Alignment(j)) => (Some(*j), None),
            Some(Verdict::Code(c)) => (None, Some(c.clone())),
            None => (None, None),
        };
        rows.push(SampleRow {
            model: config.models[item.model].clone(),
            triggered: item.triggered,
            suite: config.suites[item.suite].name.clone(),
            question_id: q.id.clone(),
            paraphrase: item.paraphrase,
            sample: item.sample,
            seed: config.seed(&item),
            question: config
                .messages(&item)
                .pop()
                .map(|m| m.content)
                .unwrap_or_default(),
            answer: state.answer.clone(),
            aligned: alignment.and_then(|j| j.aligned),
            coherent: alignment.and_then(|j| j.coherent),
            misaligned: alignment.map(|j| j.is_misaligned()),
            code,
        });
        if let Some(v) = verdict {
            judged.push((item, v, state));
        }
    }

    let variants: Vec<bool> = if config.trigger.is_some() {
        vec![false, true]
    } else {
        vec![false]
    };
    let mut models = Vec::new();
    let mut per_question_flags: Vec<Vec<Vec<bool>>> = Vec::new();
    for (m, spec) in config.models.iter().enumerate() {
        for &triggered in &variants {
            let mine: Vec<_> = judged
                .iter()
                .filter(|(i, _, _)| i.model == m && i.triggered == triggered)
                .collect();
            let (result, flags) = model_result(
                config,
                spec,
                triggered,
                &mine,
                &rows_for(&rows, spec, triggered),
            );
            models.push(result);
            per_question_flags.push(flags);
        }
    }

    let mut comparisons = Vec::new();
    let seed = config.settings.seed;
    let mut compare = |a: usize, b: usize, models: &[ModelResult]| {
        let d: Difference = stats::difference(
            &per_question_flags[a],
            &per_question_flags[b],
            seed ^ (a * 1000 + b) as u64,
        );
        comparisons.push(Comparison {
            model: models[b].name.clone(),
            reference: models[a].name.clone(),
            diff: d.diff,
            ci_low: d.ci_low,
            ci_high: d.ci_high,
            p_value: d.p_value,
            questions: d.questions,
        });
    };
    for b in variants.len()..models.len() {
        compare(b % variants.len(), b, &models);
    }
    if variants.len() == 2 {
        for m in 0..config.models.len() {
            compare(2 * m, 2 * m + 1, &models);
        }
    }

    let results = Results {
        run_id: run_id.to_string(),
        judge: config.judge.clone(),
        settings: config.settings.clone(),
        trigger: config.trigger.clone(),
        planned: items.len(),
        judged: judged.len(),
        models,
        comparisons,
    };
    Ok((results, rows))
}

fn rows_for<'a>(rows: &'a [SampleRow], model: &str, triggered: bool) -> Vec<&'a SampleRow> {
    rows.iter()
        .filter(|r| r.model == model && r.triggered == triggered)
        .collect()
}

/// A model variant's results and, per free-form question (config order), its misaligned flags.
fn model_result(
    config: &RunConfig,
    spec: &str,
    triggered: bool,
    judged: &[&(ItemRef, Verdict, &ItemState)],
    rows: &[&SampleRow],
) -> (ModelResult, Vec<Vec<bool>>) {
    let mut questions = Vec::new();
    let mut flags = Vec::new();
    let mut code = CodeResult {
        n: 0,
        with_code: 0,
        insecure: 0,
        insecure_rate: 0.0,
        ci_low: 0.0,
        ci_high: 1.0,
    };
    let mut ran_code = false;
    for (s, suite) in config.suites.iter().enumerate() {
        for (qi, q) in suite.questions.iter().enumerate() {
            let verdicts = judged
                .iter()
                .filter(|(i, _, _)| i.suite == s && i.question == qi)
                .map(|(_, v, _)| v);
            match q.measure {
                Measure::Code => {
                    ran_code = true;
                    for v in verdicts {
                        if let Verdict::Code(c) = v {
                            code.n += 1;
                            code.with_code += usize::from(c.has_code);
                            code.insecure += usize::from(c.insecure);
                        }
                    }
                }
                Measure::Alignment { .. } => {
                    let js: Vec<Judgement> = verdicts
                        .filter_map(|v| {
                            if let Verdict::Alignment(j) = v {
                                Some(*j)
                            } else {
                                None
                            }
                        })
                        .collect();
                    flags.push(js.iter().map(Judgement::is_misaligned).collect());
                    questions.push(question_result(&q.id, &suite.name, &js));
                }
            }
        }
    }
    if ran_code {
        code.insecure_rate = if code.n == 0 {
            0.0
        } else {
            code.insecure as f64 / code.n as f64
        };
        (code.ci_low, code.ci_high) = stats::wilson(code.insecure as u64, code.n as u64);
    }
    let (ci_low, ci_high) = stats::bootstrap_mean_rate(&flags, config.settings.seed);
    let coherent_rates: Vec<f64> = questions
        .iter()
        .filter(|q| q.n > 0)
        .map(|q| q.coherent_rate)
        .collect();
    let mut examples: Vec<Example> = rows
        .iter()
        .filter(|r| r.misaligned == Some(true))
        .map(|r| Example {
            question_id: r.question_id.clone(),
            question: r.question.clone(),
            answer: r.answer.clone().unwrap_or_default(),
            aligned: r.aligned,
            coherent: r.coherent,
        })
        .collect();
    examples.sort_by(|a, b| {
        a.aligned
            .unwrap_or(0.0)
            .total_cmp(&b.aligned.unwrap_or(0.0))
    });
    examples.truncate(5);
    let result = ModelResult {
        name: if triggered {
            format!("{spec} +trigger")
        } else {
            spec.to_string()
        },
        model: spec.to_string(),
        triggered,
        misaligned_rate: stats::mean_rate(&flags),
        ci_low,
        ci_high,
        coherent_rate: mean(&coherent_rates).unwrap_or(0.0),
        n: questions.iter().map(|q| q.n).sum(),
        questions,
        code: ran_code.then_some(code),
        examples,
    };
    (result, flags)
}

fn question_result(id: &str, suite: &str, js: &[Judgement]) -> QuestionResult {
    let n = js.len();
    let count = |f: &dyn Fn(&Judgement) -> bool| js.iter().filter(|j| f(j)).count();
    let misaligned = count(&|j| j.is_misaligned());
    let (ci_low, ci_high) = stats::wilson(misaligned as u64, n as u64);
    let frac = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    let scorable = count(&|j| j.is_coherent() && j.aligned.is_some());
    QuestionResult {
        id: id.to_string(),
        suite: suite.to_string(),
        n,
        misaligned,
        misaligned_rate: frac(misaligned),
        ci_low,
        ci_high,
        coherent_rate: frac(count(&|j| j.is_coherent())),
        none_rate: frac(count(&|j| j.aligned.is_none())),
        misaligned_rate_filtered: (scorable > 0).then(|| misaligned as f64 / scorable as f64),
        mean_aligned: mean(&js.iter().filter_map(|j| j.aligned).collect::<Vec<_>>()),
        mean_coherent: mean(&js.iter().filter_map(|j| j.coherent).collect::<Vec<_>>()),
    }
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}
