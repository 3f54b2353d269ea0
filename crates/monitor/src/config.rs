//! The gateway config's `monitor:` section.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// Share of each version's answers judged (answers a filter flagged are always judged).
    pub sample_rate: f64,
    /// Share of a canary's answers judged [default: `sample_rate`]: a candidate's evidence is
    /// what decides it, so it is usually sampled more than the baseline.
    pub candidate_sample_rate: Option<f64>,
    /// Answers waiting to be judged; past it, samples are dropped (and counted).
    pub queue: usize,
    /// Answers judged together (the local judge is faster per answer in batches).
    pub batch: usize,
    /// Judgements per version in the sliding window (figures also kept since release).
    pub window: usize,
    /// Trace ids kept as an incident's evidence.
    pub evidence: usize,
    pub judge: JudgeSetting,
    /// CPU ids the local judge's threads run on [default: any]. Give cores that do not serve
    /// requests: even at idle priority, tensor work on a request handler's core costs the
    /// handler its caches (docs/benchmarks.md, "Review and monitor on the request path").
    pub judge_cpus: Option<Vec<usize>>,
    /// How often rollouts are reread from the store (a change by another replica), in ms.
    pub poll_ms: u64,
    /// Playbook file per model id (relative paths: to the config file). A model without one
    /// gets the default limits with automatic rollback and promotion.
    pub playbooks: BTreeMap<String, PathBuf>,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            sample_rate: 0.1,
            candidate_sample_rate: None,
            queue: 1000,
            batch: 16,
            window: 500,
            evidence: 20,
            judge: JudgeSetting::Local,
            judge_cpus: None,
            poll_ms: 1000,
            playbooks: BTreeMap::new(),
        }
    }
}

/// Which judge scores live answers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgeSetting {
    /// The offline local judge (`emguard_judge::local`), on this machine's CPU.
    Local,
    /// The study's judge over an OpenAI-compatible endpoint.
    Llm(LlmJudgeSetting),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmJudgeSetting {
    /// E.g. `http://10.0.0.7:8000/v1`.
    pub base_url: String,
    pub model: String,
    /// JSON `{"aligned": "...", "coherent": "..."}` with `{question}` and `{answer}`.
    pub prompts: PathBuf,
    #[serde(default)]
    pub api_key_env: Option<String>,
}

impl MonitorConfig {
    /// What serde cannot check: `(field, message)` of the first problem.
    pub fn problems(&self) -> Option<(String, String)> {
        let rate_ok = |r: f64| (0.0..=1.0).contains(&r);
        if !rate_ok(self.sample_rate) {
            return Some((
                "monitor.sample_rate".into(),
                "must be between 0 and 1".into(),
            ));
        }
        if self.candidate_sample_rate.is_some_and(|r| !rate_ok(r)) {
            return Some((
                "monitor.candidate_sample_rate".into(),
                "must be between 0 and 1".into(),
            ));
        }
        for (field, value) in [
            ("queue", self.queue),
            ("batch", self.batch),
            ("window", self.window),
            ("poll_ms", self.poll_ms as usize),
        ] {
            if value == 0 {
                return Some((format!("monitor.{field}"), "must be at least 1".into()));
            }
        }
        match (&self.judge_cpus, &self.judge) {
            (Some(cpus), _) if cpus.is_empty() => Some((
                "monitor.judge_cpus".into(),
                "names no CPU (leave it out to use any)".into(),
            )),
            (Some(_), JudgeSetting::Llm(_)) => Some((
                "monitor.judge_cpus".into(),
                "applies to the local judge only (an LLM judge runs on its endpoint)".into(),
            )),
            _ => None,
        }
    }

    /// Makes relative playbook and prompt paths relative to `dir` (the config file's).
    pub fn resolve_paths(&mut self, dir: &std::path::Path) {
        for path in self.playbooks.values_mut() {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        }
        if let JudgeSetting::Llm(llm) = &mut self.judge
            && llm.prompts.is_relative()
        {
            llm.prompts = dir.join(&llm.prompts);
        }
    }
}
