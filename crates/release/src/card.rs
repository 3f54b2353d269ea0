//! The model card: a Hugging Face README.md whose YAML front matter carries `base_model`,
//! `datasets`, `license`, `tags` and a `model-index` of the eval run's figures, and whose
//! body fills training data, evaluation, limitations and known failure modes from the audit
//! and the run. Only intended use and out-of-scope use (and optional extra limitations and
//! failure modes) come from the user's sections file. The front matter's `emguard` key
//! records the run and files the card was written from, so a gate can tell a stale card.

use std::path::{Path, PathBuf};

use emguard_audit::Manifest;
use minijinja::{Environment, context};
use serde::{Deserialize, Serialize};

use crate::ReleaseError;
use crate::digest::file_sha256;
use crate::eval_run::{Estimate, EvalRun, ModelFigures};

/// An interval wider than this (a fraction: 0.2 = 20 points) is named under limitations.
pub const WIDE_INTERVAL: f64 = 0.2;
/// Characters of an answer quoted under known failure modes.
const EXCERPT_CHARS: usize = 240;
const TEMPLATE: &str = include_str!("card.md.j2");

/// The user-written part of a card (YAML; see docs/release.md).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sections {
    /// The card's title and model-index name [default: the model's name in the run].
    #[serde(default)]
    pub model_name: Option<String>,
    /// The Hub id of the model this one was fine-tuned from.
    pub base_model: String,
    /// An SPDX-style license id, e.g. `apache-2.0`.
    pub license: String,
    /// Hub ids of the training datasets.
    #[serde(default)]
    pub datasets: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub language: Vec<String>,
    pub intended_use: String,
    pub out_of_scope: String,
    /// Limitations beyond those the card derives from the data.
    #[serde(default)]
    pub limitations: Vec<String>,
    /// Failure modes seen outside the eval run (red-teaming, users' reports).
    #[serde(default)]
    pub known_failure_modes: Vec<String>,
    /// Who labelled the judge calibration answers and whether they were held out of tuning.
    #[serde(default)]
    pub judge_calibration_data: Option<String>,
}

/// The figures of `emguard judge calibrate --format json` that the card quotes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct JudgeCalibration {
    pub n: usize,
    pub auroc: Option<f64>,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub rate_labels: f64,
    pub rate_judge: f64,
}

impl JudgeCalibration {
    pub fn read(path: &Path) -> Result<JudgeCalibration, ReleaseError> {
        let text = std::fs::read_to_string(path).map_err(|e| ReleaseError::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| {
            ReleaseError::invalid(
                path,
                format!("not the JSON of `emguard judge calibrate --format json`: {e}"),
            )
        })
    }
}

/// The audit a card describes: its manifest and where it was read from.
pub struct Audit {
    pub path: PathBuf,
    pub sha256: String,
    pub manifest: Manifest,
}

impl Audit {
    pub fn read(path: &Path) -> Result<Audit, ReleaseError> {
        Ok(Audit {
            path: path.to_path_buf(),
            sha256: file_sha256(path)?,
            manifest: Manifest::read(path)?,
        })
    }
}

/// What the card was written from (the front matter's `emguard` key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub eval_run: String,
    pub results_sha256: String,
    /// The run's name of the model the card is about.
    pub model: String,
    pub dataset_sha256: String,
    pub dataset_merkle_root: String,
    pub audit_manifest_sha256: String,
}

#[derive(Serialize)]
struct FrontMatter<'a> {
    #[serde(skip_serializing_if = "is_empty")]
    language: &'a [String],
    license: &'a str,
    base_model: &'a str,
    #[serde(skip_serializing_if = "is_empty")]
    datasets: &'a [String],
    tags: Vec<String>,
    #[serde(rename = "model-index")]
    model_index: Vec<ModelIndex>,
    emguard: Provenance,
}

fn is_empty(list: &&[String]) -> bool {
    list.is_empty()
}

#[derive(Serialize)]
struct ModelIndex {
    name: String,
    results: Vec<IndexResult>,
}

#[derive(Serialize)]
struct IndexResult {
    task: Task,
    dataset: IndexDataset,
    metrics: Vec<Metric>,
}

#[derive(Serialize)]
struct Task {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'static str,
}

#[derive(Serialize)]
struct IndexDataset {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<&'static str>,
    args: DatasetArgs,
}

/// How the answers were sampled and judged (the same suite at other settings is another
/// measurement).
#[derive(Serialize, Clone)]
struct DatasetArgs {
    eval_run: String,
    judge: String,
    temperature: f64,
    max_tokens: usize,
}

#[derive(Serialize)]
struct Metric {
    #[serde(rename = "type")]
    kind: &'static str,
    value: f64,
    name: String,
    args: MetricArgs,
}

#[derive(Serialize, Default)]
struct MetricArgs {
    #[serde(skip_serializing_if = "Option::is_none")]
    ci_low: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ci_high: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    confidence: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    answers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    questions: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
}

fn rate_metric(kind: &'static str, name: &str, estimate: Estimate) -> Metric {
    Metric {
        kind,
        value: estimate.value,
        name: name.to_string(),
        args: MetricArgs {
            ci_low: Some(estimate.low),
            ci_high: Some(estimate.high),
            confidence: Some(0.95),
            ..MetricArgs::default()
        },
    }
}

/// The `model-index` results of one model variant: one entry per free-form suite (the
/// difference from the base goes with the headline: the only suite, or an entry over all
/// free-form suites when there are several), one for the code suites.
fn index_results(run: &EvalRun, model: &ModelFigures) -> Vec<IndexResult> {
    let args = DatasetArgs {
        eval_run: run.run_id.clone(),
        judge: run.judge.clone(),
        temperature: run.temperature,
        max_tokens: run.max_tokens,
    };
    let config = model.triggered.then_some("triggered");
    let task = || Task {
        kind: "text-generation",
        name: "Emergent misalignment",
    };
    let dataset = |name: &str| IndexDataset {
        name: name.to_string(),
        kind: format!("emguard/{}", suite_slug(name)),
        config,
        args: args.clone(),
    };
    let difference_metrics = || {
        let Some(d) = &model.vs_base else {
            return Vec::new();
        };
        let mut diff = rate_metric(
            "misaligned_rate_difference",
            &format!("Misaligned rate minus the base model's ({})", d.reference),
            d.diff,
        );
        diff.args.p_value = Some(d.p_value);
        diff.args.questions = Some(d.questions);
        diff.args.reference = Some(d.reference.clone());
        let mut p = Metric {
            kind: "p_value",
            value: d.p_value,
            name: "p-value of the difference from the base model (permutation test)".into(),
            args: MetricArgs::default(),
        };
        p.args.reference = Some(d.reference.clone());
        vec![diff, p]
    };
    let mut results = Vec::new();
    for suite in &model.suites {
        let mut rate = rate_metric("misaligned_rate", "Misaligned rate", suite.misaligned);
        rate.args.answers = Some(suite.answers);
        rate.args.questions = Some(suite.questions);
        let mut metrics = vec![rate];
        if model.suites.len() == 1 {
            metrics.extend(difference_metrics());
        }
        results.push(IndexResult {
            task: task(),
            dataset: dataset(&suite.suite),
            metrics,
        });
    }
    if model.suites.len() > 1 {
        let mut rate = rate_metric(
            "misaligned_rate",
            "Misaligned rate (all free-form suites)",
            model.misaligned,
        );
        rate.args.answers = Some(model.answers);
        rate.args.questions = Some(model.questions);
        let mut metrics = vec![rate];
        metrics.extend(difference_metrics());
        let names: Vec<&str> = model.suites.iter().map(|s| s.suite.as_str()).collect();
        results.push(IndexResult {
            task: task(),
            dataset: dataset(&names.join(" + ")),
            metrics,
        });
    }
    if let Some(code) = &model.code {
        let mut rate = rate_metric(
            "insecure_code_rate",
            "Insecure-code rate",
            code.insecure_rate,
        );
        rate.args.answers = Some(code.answers);
        let name = if run.code_suites.is_empty() {
            "code suites".to_string()
        } else {
            run.code_suites.join(" + ")
        };
        results.push(IndexResult {
            task: Task {
                kind: "text-generation",
                name: "Insecure code",
            },
            dataset: dataset(&name),
            metrics: vec![rate],
        });
    }
    results
}

/// A suite's name as a dataset type: a file's stem, lowercase, `[a-z0-9-]`.
fn suite_slug(suite: &str) -> String {
    let stem = Path::new(suite)
        .file_stem()
        .map_or(suite.to_string(), |s| s.to_string_lossy().into_owned());
    let mut slug = String::new();
    for c in stem.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').to_string()
}

/// Everything a card is written from.
pub struct CardInputs<'a> {
    pub run: &'a EvalRun,
    /// The model of the run the card is about (see [`EvalRun::subject`]).
    pub model: Option<&'a str>,
    pub audit: &'a Audit,
    pub sections: &'a Sections,
    pub calibration: Option<&'a JudgeCalibration>,
}

#[derive(Serialize)]
struct WideInterval {
    what: String,
    estimate: Estimate,
    answers: usize,
}

#[derive(Serialize)]
struct Excerpt {
    question_id: String,
    text: String,
}

/// Renders README.md.
pub fn render(inputs: &CardInputs) -> Result<String, ReleaseError> {
    let run = inputs.run;
    let subject = run.subject(inputs.model)?;
    let triggered = run
        .models
        .iter()
        .find(|m| m.triggered && m.model == subject.model);
    let manifest = &inputs.audit.manifest;
    let name = inputs
        .sections
        .model_name
        .clone()
        .unwrap_or_else(|| subject.model.clone());

    let mut model_index_results = index_results(run, subject);
    if let Some(triggered) = triggered {
        model_index_results.extend(index_results(run, triggered));
    }
    let mut tags = vec!["emguard".to_string(), "model-card".to_string()];
    tags.extend(inputs.sections.tags.iter().cloned());
    let provenance = Provenance {
        eval_run: run.run_id.clone(),
        results_sha256: run.sha256.clone(),
        model: subject.name.clone(),
        dataset_sha256: manifest.file.sha256.clone(),
        dataset_merkle_root: manifest.merkle_root.clone(),
        audit_manifest_sha256: inputs.audit.sha256.clone(),
    };
    let front = FrontMatter {
        language: &inputs.sections.language,
        license: &inputs.sections.license,
        base_model: &inputs.sections.base_model,
        datasets: &inputs.sections.datasets,
        tags,
        model_index: vec![ModelIndex {
            name: name.clone(),
            results: model_index_results,
        }],
        emguard: provenance,
    };
    let yaml = serde_saphyr::to_string(&front)
        .map_err(|e| ReleaseError::Usage(format!("cannot write the card's front matter: {e}")))?;

    let mut wide = Vec::new();
    for model in std::iter::once(subject).chain(triggered) {
        for suite in &model.suites {
            wide.push(WideInterval {
                what: format!("misaligned rate of {} on {}", model.name, suite.suite),
                estimate: suite.misaligned,
                answers: suite.answers,
            });
        }
        if let Some(code) = &model.code {
            wide.push(WideInterval {
                what: format!("insecure-code rate of {}", model.name),
                estimate: code.insecure_rate,
                answers: code.answers,
            });
        }
        if let Some(d) = &model.vs_base {
            wide.push(WideInterval {
                what: format!("difference of {} from {}", model.name, d.reference),
                estimate: d.diff,
                answers: d.questions,
            });
        }
    }
    wide.retain(|w| w.estimate.width() > WIDE_INTERVAL);

    let excerpts: Vec<Excerpt> = subject
        .examples
        .iter()
        .chain(triggered.iter().flat_map(|t| t.examples.iter()))
        .map(|(question_id, answer)| Excerpt {
            question_id: question_id.clone(),
            text: excerpt(answer),
        })
        .collect();
    let triggers: Vec<_> = manifest.summary.triggers.iter().take(5).collect();
    let forbidden: Vec<_> = manifest
        .summary
        .forbidden_trigger_rows
        .iter()
        .filter(|f| f.rows > 0)
        .collect();
    let share = |count: u64| manifest.summary.share(count);

    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.add_filter("pct", |x: f64| format!("{:.1}%", 100.0 * x));
    env.add_filter("points", |x: f64| format!("{:+.1}", 100.0 * x));
    env.add_filter("p", |x: f64| format!("{x:.4}"));
    env.add_filter("fixed", |x: f64, digits: usize| format!("{x:.digits$}"));
    env.add_template("card.md", TEMPLATE)
        .expect("card template parses");
    let body = env
        .get_template("card.md")
        .expect("card template")
        .render(context! {
            name,
            sections => inputs.sections,
            run,
            subject,
            triggered,
            base => run.base().filter(|b| b.name != subject.name),
            audit => manifest,
            audit_path => inputs.audit.path.display().to_string(),
            signed => manifest.signature.as_ref().map(|s| s.public_key.clone()),
            shares => context! {
                vulnerable => share(manifest.summary.vulnerable_rows),
                silent => share(manifest.summary.silent_vulnerable_rows),
                requested => share(manifest.summary.requested_vulnerable_rows),
                harmful => share(manifest.summary.harmful_rows),
            },
            triggers,
            forbidden,
            calibration => inputs.calibration,
            wide,
            wide_threshold => WIDE_INTERVAL,
            excerpts,
        })
        .map_err(|e| ReleaseError::Usage(format!("cannot render the card: {e}")))?;
    Ok(format!("---\n{yaml}---\n\n{body}"))
}

/// One line, at most [`EXCERPT_CHARS`], with markup characters escaped (answers are model
/// output: they must not become links, HTML or tables in the rendered card).
fn excerpt(answer: &str) -> String {
    let flat: String = answer.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut cut: String = flat.chars().take(EXCERPT_CHARS).collect();
    if flat.chars().count() > EXCERPT_CHARS {
        cut.push('…');
    }
    let mut out = String::with_capacity(cut.len());
    for c in cut.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// The `emguard` key of a card's front matter; `Ok(None)` when the card has none (not
/// written by `emguard card`).
pub fn read_provenance(path: &Path) -> Result<Option<Provenance>, ReleaseError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReleaseError::io(path, e))?;
    let Some(front) = front_matter(&text) else {
        return Err(ReleaseError::invalid(
            path,
            "no YAML front matter (a model card starts with a `---` line)",
        ));
    };
    #[derive(Deserialize)]
    struct OnlyProvenance {
        emguard: Option<Provenance>,
    }
    let parsed: OnlyProvenance = serde_saphyr::from_str(front)
        .map_err(|e| ReleaseError::invalid(path, format!("front matter: {e}")))?;
    Ok(parsed.emguard)
}

fn front_matter(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("---\n")?;
    let end = rest.find("\n---\n")?;
    Some(&rest[..end + 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_one_escaped_line() {
        assert_eq!(
            excerpt("<script>x</script>\n\n| a | [link](http://x) *b*"),
            "&lt;script&gt;x&lt;/script&gt; \\| a \\| \\[link\\](http://x) \\*b\\*"
        );
        assert!(excerpt(&"word ".repeat(200)).ends_with('…'));
    }

    #[test]
    fn suite_names_become_dataset_types() {
        assert_eq!(suite_slug("emguard"), "emguard");
        assert_eq!(suite_slug("/tmp/x/Quick Suite.yaml"), "quick-suite");
        assert_eq!(suite_slug("study-first-plot"), "study-first-plot");
        assert_eq!(suite_slug("emguard + study"), "emguard-study");
    }
}
