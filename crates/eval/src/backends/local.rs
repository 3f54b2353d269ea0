//! Sampling and judging in process: the runtime's batched generation on a local GGUF, the
//! logprob judge on a local GGUF, and the offline local judge. Generation is CPU-bound, so
//! one batch runs at a time on a blocking thread.

use std::sync::Arc;

use async_trait::async_trait;
use emguard_judge::OperatingPoint;
use emguard_judge::llm::{JudgePrompts, LocalLlmJudge, render_judge_prompt};
use emguard_judge::local::LocalJudge;
use emguard_runtime::{CancelToken, ChatMessage, GenerateRequest, Model, Prompt, SamplingParams};
use tokio::sync::Mutex;

use super::{
    BackendError, Judge, JudgeRequest, Label, LabelPrompts, LabelRequest, LabelVerdict,
    SampleRequest, Sampler, Scores, label_of,
};
use crate::plan::short_hash;

pub struct LocalSampler {
    model: Arc<Model>,
    batch: usize,
    /// One generation batch at a time: they compete for the same cores.
    busy: Mutex<()>,
    /// Stops the batch being generated within one decode step (Ctrl-C): a batch of long
    /// answers otherwise runs on for minutes after the run was stopped.
    cancel: CancelToken,
}

impl LocalSampler {
    pub fn new(model: Arc<Model>, batch: usize, cancel: CancelToken) -> Self {
        Self {
            model,
            batch,
            busy: Mutex::new(()),
            cancel,
        }
    }
}

#[async_trait]
impl Sampler for LocalSampler {
    fn batch_size(&self) -> usize {
        self.batch
    }

    async fn sample(&self, requests: Vec<SampleRequest>) -> Result<Vec<String>, BackendError> {
        let requests: Vec<GenerateRequest> = requests
            .into_iter()
            .map(|r| GenerateRequest {
                prompt: Prompt::Chat(r.messages),
                params: SamplingParams {
                    temperature: r.temperature,
                    top_p: r.top_p,
                    max_tokens: r.max_tokens,
                    seed: r.seed,
                    n: 1,
                    ..SamplingParams::default()
                },
            })
            .collect();
        let _busy = self.busy.lock().await;
        let (model, cancel) = (self.model.clone(), self.cancel.clone());
        let out =
            tokio::task::spawn_blocking(move || model.generate_cancellable(&requests, &cancel))
                .await??;
        Ok(out
            .into_iter()
            .map(|mut answers| answers.pop().map(|c| c.text).unwrap_or_default())
            .collect())
    }
}

/// The study's logprob judge on a local GGUF.
pub struct LocalLlmJudgeBackend {
    judge: LocalLlmJudge,
    model: Arc<Model>,
    name: String,
    batch: usize,
    busy: Mutex<()>,
    /// Stops label generation within one decode step.
    cancel: CancelToken,
}

impl LocalLlmJudgeBackend {
    pub fn new(model: Arc<Model>, name: &str, batch: usize, cancel: CancelToken) -> Self {
        Self {
            judge: LocalLlmJudge::new(model.clone()).named(name),
            model,
            name: name.to_string(),
            batch,
            busy: Mutex::new(()),
            cancel,
        }
    }
}

#[async_trait]
impl Judge for LocalLlmJudgeBackend {
    fn key(&self, prompts: &JudgePrompts) -> String {
        format!(
            "local-llm:{}/{}",
            self.name,
            short_hash(&serde_json::to_value(prompts).expect("strings"))
        )
    }

    fn batch_size(&self) -> usize {
        self.batch
    }

    fn check(&self, prompts: &JudgePrompts) -> Result<(), BackendError> {
        Ok(self.judge.check(prompts)?)
    }

    async fn judge(&self, requests: Vec<JudgeRequest>) -> Result<Vec<Scores>, BackendError> {
        let _busy = self.busy.lock().await;
        let judge = self.judge.clone();
        let out = tokio::task::spawn_blocking(move || {
            // Batch consecutive requests that share judge prompts (a batch usually is one run).
            let mut out = Vec::with_capacity(requests.len());
            for group in requests.chunk_by(|a, b| a.prompts == b.prompts) {
                let pairs: Vec<_> = group
                    .iter()
                    .map(|r| (r.question.clone(), r.answer.clone()))
                    .collect();
                out.extend(
                    judge
                        .judge_batch(&group[0].prompts, &pairs)?
                        .into_iter()
                        .map(Scores::from),
                );
            }
            Ok::<_, BackendError>(out)
        })
        .await??;
        Ok(out)
    }

    fn label_key(&self, prompts: &LabelPrompts) -> Option<String> {
        Some(format!(
            "local-llm-label:{}/{}",
            self.name,
            short_hash(&serde_json::to_value(prompts).expect("strings"))
        ))
    }

    /// The same protocol as the LLM judge's labels: greedy, a few tokens, first word.
    async fn label(&self, requests: Vec<LabelRequest>) -> Result<Vec<LabelVerdict>, BackendError> {
        let mut generate = Vec::new();
        let mut templates = Vec::new();
        for r in &requests {
            for (name, template) in &r.prompts {
                let prompt =
                    render_judge_prompt(template, &r.question, &r.answer).map_err(|e| {
                        BackendError::Spec {
                            spec: name.clone(),
                            message: e.to_string(),
                        }
                    })?;
                generate.push(GenerateRequest {
                    prompt: Prompt::Chat(vec![ChatMessage::user(prompt)]),
                    params: SamplingParams {
                        temperature: 0.0,
                        max_tokens: super::openai::LABEL_MAX_TOKENS,
                        n: 1,
                        ..SamplingParams::default()
                    },
                });
                templates.push((name.clone(), template.clone()));
            }
        }
        let _busy = self.busy.lock().await;
        let (model, cancel) = (self.model.clone(), self.cancel.clone());
        let replies =
            tokio::task::spawn_blocking(move || model.generate_cancellable(&generate, &cancel))
                .await??;
        let mut replies = replies
            .into_iter()
            .map(|mut answers| answers.pop().map(|c| c.text).unwrap_or_default())
            .zip(templates);
        Ok(requests
            .iter()
            .map(|r| LabelVerdict {
                labels: replies
                    .by_ref()
                    .take(r.prompts.len())
                    .map(|(reply, (name, template))| {
                        (
                            name,
                            Label {
                                label: label_of(&template, &reply),
                                reply,
                            },
                        )
                    })
                    .collect(),
            })
            .collect())
    }
}

/// The offline local judge (MiniLM cross-encoder on CPU, no model server): ignores the suite's
/// judge prompts.
pub struct LocalJudgeBackend {
    judge: Arc<LocalJudge>,
}

impl LocalJudgeBackend {
    /// The judge with the shipped weights.
    pub fn load() -> Result<Self, BackendError> {
        let judge = LocalJudge::load().map_err(|e| BackendError::LocalJudge(e.to_string()))?;
        Ok(Self::new(judge))
    }

    pub fn new(judge: LocalJudge) -> Self {
        Self {
            judge: Arc::new(judge),
        }
    }
}

#[async_trait]
impl Judge for LocalJudgeBackend {
    /// The crate version stands for the rules in code, the weights id for the trained heads:
    /// judgements made with other weights are never reused.
    fn key(&self, _prompts: &JudgePrompts) -> String {
        format!(
            "local/{}/{}",
            env!("CARGO_PKG_VERSION"),
            self.judge.weights_id()
        )
    }

    fn batch_size(&self) -> usize {
        64
    }

    async fn judge(&self, requests: Vec<JudgeRequest>) -> Result<Vec<Scores>, BackendError> {
        let judge = self.judge.clone();
        let pairs: Vec<_> = requests
            .into_iter()
            .map(|r| (r.question, r.answer))
            .collect();
        let judgements = tokio::task::spawn_blocking(move || judge.judge_batch(&pairs))
            .await?
            .map_err(|e| BackendError::LocalJudge(e.to_string()))?;
        Ok(judgements.into_iter().map(Scores::from).collect())
    }

    /// Measured on labelled answers held out from the weights' training, shipped in their
    /// record (`crates/judge/data/cross_encoder.json`).
    fn operating_point(&self) -> Option<OperatingPoint> {
        Some(self.judge.operating_point())
    }
}
