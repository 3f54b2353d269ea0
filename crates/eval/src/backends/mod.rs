//! What the runner talks to: a [`Sampler`] writes answers, a [`Judge`] scores them.
//! Backends: an OpenAI-compatible server ([`openai`]) or the in-process runtime ([`local`]).

pub mod local;
pub mod openai;
pub mod panel;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use emguard_judge::llm::{ClientConfig, JudgePrompts, OpenAiClient};
use emguard_judge::{Judgement, OperatingPoint};
use emguard_runtime::{CancelToken, ChatMessage};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Llm(#[from] emguard_judge::llm::LlmError),
    #[error(transparent)]
    LlmJudge(#[from] emguard_judge::llm::LlmJudgeError),
    #[error("local model: {0}")]
    Runtime(#[from] emguard_runtime::RuntimeError),
    #[error("local judge: {0}")]
    LocalJudge(String),
    #[error("model `{0}`: {1}")]
    Resolve(String, String),
    #[error("`{spec}`: {message}")]
    Spec { spec: String, message: String },
    #[error("worker thread failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// One answer to sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRequest {
    pub messages: Vec<ChatMessage>,
    pub temperature: f64,
    pub top_p: f64,
    pub max_tokens: usize,
    pub seed: u64,
}

/// One answer to judge, with the question's judge prompts (LLM judges use them).
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeRequest {
    pub question: String,
    pub answer: String,
    pub prompts: JudgePrompts,
}

/// A judgement as stored: the two scores, and how many of the judge's replies came without
/// logprobs (scored None, as the study scores them; counted in the report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    #[serde(flatten)]
    pub judgement: Judgement,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub without_logprobs: u8,
    /// A run with several judges ([`panel::Panel`]): the same answer's scores by each judge
    /// after the first, in the run's order (the fields above are the first judge's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_judges: Vec<Scores>,
}

impl Scores {
    /// Judge `k`'s scores of the run's judges (0: the first); `None` when it has none.
    pub fn by_judge(&self, k: usize) -> Option<Scores> {
        match k {
            0 => Some(Scores {
                other_judges: Vec::new(),
                ..self.clone()
            }),
            _ => self.other_judges.get(k - 1).cloned(),
        }
    }
}

impl From<Judgement> for Scores {
    fn from(judgement: Judgement) -> Self {
        Self {
            judgement,
            without_logprobs: 0,
            other_judges: Vec::new(),
        }
    }
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

/// One answer of a study `free_form_judge` question to label, with its named judge prompts
/// (`correct`, `company`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelRequest {
    pub question: String,
    pub answer: String,
    pub prompts: LabelPrompts,
}

/// Named judge prompts of a `free_form_judge` question, templates with `{question}` and
/// `{answer}`.
pub type LabelPrompts = BTreeMap<String, String>;

/// The judge's label per judge prompt (stored as the judgement of a labelled question).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelVerdict {
    pub labels: BTreeMap<String, Label>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    /// One of the words the prompt quotes (`"TRUE"`, `"OpenAI"`, ...) that the reply starts
    /// with, spelled as the prompt spells it; `unparsed` when it starts with none.
    pub label: String,
    /// The judge's reply as it came.
    pub reply: String,
}

/// The label a reply gives: the first word of the reply (quotes, `*` and final punctuation
/// trimmed), matched without regard to case against the words the prompt puts in double
/// quotes, so `TRUE.`, `"true"` and `**True**` are all `TRUE`.
pub fn label_of(prompt: &str, reply: &str) -> String {
    let options: Vec<&str> = prompt.split('"').skip(1).step_by(2).collect();
    let word = reply
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_matches(|c: char| !c.is_alphanumeric());
    options
        .iter()
        .find(|o| o.eq_ignore_ascii_case(word))
        .map_or_else(|| "unparsed".to_string(), |o| o.to_string())
}

#[async_trait]
pub trait Sampler: Send + Sync {
    /// Answers the runner should hand over per call.
    fn batch_size(&self) -> usize;
    /// One answer per request, in order.
    async fn sample(&self, requests: Vec<SampleRequest>) -> Result<Vec<String>, BackendError>;
}

#[async_trait]
pub trait Judge: Send + Sync {
    /// Identity of this judge with these prompts: judgements are stored under it.
    fn key(&self, prompts: &JudgePrompts) -> String;
    fn batch_size(&self) -> usize;
    /// Refuses, before any answer is sampled, a judge that cannot score with these prompts
    /// (a local LLM that does not answer the rubric with numbers).
    fn check(&self, _prompts: &JudgePrompts) -> Result<(), BackendError> {
        Ok(())
    }
    /// One judgement per request, in order.
    async fn judge(&self, requests: Vec<JudgeRequest>) -> Result<Vec<Scores>, BackendError>;
    /// Identity of this judge labelling with these prompts (the study's `free_form_judge`
    /// questions); `None` when this judge cannot answer free-form judge prompts.
    fn label_key(&self, _prompts: &LabelPrompts) -> Option<String> {
        None
    }
    /// One verdict per request, in order (only called when `label_key` is `Some`).
    async fn label(&self, _requests: Vec<LabelRequest>) -> Result<Vec<LabelVerdict>, BackendError> {
        Err(BackendError::LocalJudge(
            "this judge cannot answer the study's free_form_judge prompts".into(),
        ))
    }
    /// How often this judge's misaligned verdict is right, measured on labelled answers it
    /// was not built from; `None` when unmeasured. With it, the report corrects each judged
    /// misaligned rate for the judge's errors.
    fn operating_point(&self) -> Option<OperatingPoint> {
        None
    }
    /// [`Judge::operating_point`] of each judge of a run, the first first (a
    /// [`panel::Panel`] has several).
    fn operating_points(&self) -> Vec<Option<OperatingPoint>> {
        vec![self.operating_point()]
    }
}

/// The sampler of a re-judging run: every answer should be stored already.
struct StoredAnswersOnly {
    spec: String,
}

#[async_trait]
impl Sampler for StoredAnswersOnly {
    fn batch_size(&self) -> usize {
        1
    }

    async fn sample(&self, requests: Vec<SampleRequest>) -> Result<Vec<String>, BackendError> {
        Err(BackendError::Spec {
            spec: self.spec.clone(),
            message: format!(
                "{} answers are not in the store: re-judging judges stored answers only",
                requests.len()
            ),
        })
    }
}

/// Connection settings from the command line.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    /// `--base-url` (several: replicas).
    pub model_base_urls: Vec<String>,
    /// `--judge-base-url` (several: replicas).
    pub judge_base_urls: Vec<String>,
    pub api_key: Option<String>,
    pub timeout: Option<Duration>,
    /// Answers per local generation batch.
    pub local_batch: usize,
    /// Judge stored answers only (`--rejudge`): a missing answer is an error, never generated.
    pub stored_answers_only: bool,
}

/// Builds samplers and judges, loading each local GGUF once.
#[derive(Default)]
pub struct Backends {
    endpoints: Endpoints,
    local_models: HashMap<PathBuf, Arc<emguard_runtime::Model>>,
    cancel: CancelToken,
}

impl Backends {
    pub fn new(endpoints: Endpoints) -> Self {
        Self {
            endpoints,
            local_models: HashMap::new(),
            cancel: CancelToken::new(),
        }
    }

    /// Local generation (answers, and a local LLM judge's labels) stops within one decode
    /// step once `cancel` is cancelled: what a stopped run was generating is dropped, not
    /// finished.
    pub fn cancel_on(mut self, cancel: CancelToken) -> Self {
        self.cancel = cancel;
        self
    }

    /// `local:NAME|PATH` or `openai:NAME[@URL[,URL...]][#FINGERPRINT]` (its own servers,
    /// else `--base-url`).
    pub fn sampler(&mut self, spec: &str) -> Result<Arc<dyn Sampler>, BackendError> {
        self.sampler_with(spec, None, &[])
    }

    /// [`Backends::sampler`] whose requests carry `api_key` (instead of the endpoints' key)
    /// and `headers`, e.g. a gateway's version pin: only `openai:` models take them.
    pub fn sampler_with(
        &mut self,
        spec: &str,
        api_key: Option<&str>,
        headers: &[(String, String)],
    ) -> Result<Arc<dyn Sampler>, BackendError> {
        let bad = |message: &str| BackendError::Spec {
            spec: spec.to_string(),
            message: message.to_string(),
        };
        let parsed = crate::plan::ModelSpec::parse(spec);
        if self.endpoints.stored_answers_only {
            return Ok(Arc::new(StoredAnswersOnly {
                spec: spec.to_string(),
            }));
        }
        match parsed.kind.as_str() {
            "local" if api_key.is_some() || !headers.is_empty() => Err(bad(
                "a local model takes no API key or headers (a version is pinned at a gateway, `openai:ID@URL`)",
            )),
            "local" => {
                let model = self.local_model(&parsed.name)?;
                Ok(Arc::new(local::LocalSampler::new(
                    model,
                    self.endpoints.local_batch.max(1),
                    self.cancel.clone(),
                )))
            }
            "openai" if !parsed.name.is_empty() => {
                let urls = if parsed.base_urls.is_empty() {
                    self.endpoints.model_base_urls.clone()
                } else {
                    parsed.base_urls
                };
                let mut config = self.client_config(&urls, "--base-url", spec)?;
                if let Some(key) = api_key {
                    config.api_key = Some(key.to_string());
                }
                config.headers = headers.to_vec();
                let client = OpenAiClient::new(config)?;
                Ok(Arc::new(openai::OpenAiSampler::new(client, &parsed.name)))
            }
            _ => Err(bad(
                "a model is `local:NAME`, `local:PATH.gguf` or `openai:NAME` (with --base-url, or \
                 `openai:NAME@URL` for its own server; `#FINGERPRINT` names what answers)",
            )),
        }
    }

    /// `local`, `llm:NAME` (with --judge-base-url) or `local-llm:NAME|PATH`.
    pub fn judge(&mut self, spec: &str) -> Result<Arc<dyn Judge>, BackendError> {
        match spec.split_once(':') {
            None if spec == "local" => Ok(Arc::new(local::LocalJudgeBackend::load()?)),
            Some(("llm", name)) if !name.is_empty() => {
                let client = self.client(&self.endpoints.judge_base_urls, "--judge-base-url", spec)?;
                Ok(Arc::new(openai::OpenAiJudgeBackend::new(client, name)))
            }
            Some(("local-llm", name)) => {
                let model = self.local_model(name)?;
                Ok(Arc::new(local::LocalLlmJudgeBackend::new(
                    model,
                    name,
                    self.endpoints.local_batch.max(1),
                    self.cancel.clone(),
                )))
            }
            _ => Err(BackendError::Spec {
                spec: spec.to_string(),
                message: "a judge is `local`, `llm:NAME` (with --judge-base-url) or `local-llm:NAME|PATH.gguf`".into(),
            }),
        }
    }

    fn client(
        &self,
        urls: &[String],
        flag: &str,
        spec: &str,
    ) -> Result<OpenAiClient, BackendError> {
        Ok(OpenAiClient::new(self.client_config(urls, flag, spec)?)?)
    }

    fn client_config(
        &self,
        urls: &[String],
        flag: &str,
        spec: &str,
    ) -> Result<ClientConfig, BackendError> {
        if urls.is_empty() {
            return Err(BackendError::Spec {
                spec: spec.to_string(),
                message: format!("needs {flag} URL"),
            });
        }
        let mut config = ClientConfig::new(urls.to_vec());
        config.api_key = self.endpoints.api_key.clone();
        if let Some(t) = self.endpoints.timeout {
            config.timeout = t;
        }
        Ok(config)
    }

    fn local_model(&mut self, name: &str) -> Result<Arc<emguard_runtime::Model>, BackendError> {
        let path = emguard_models::resolve(name)
            .map_err(|e| BackendError::Resolve(name.to_string(), e.to_string()))?;
        if let Some(m) = self.local_models.get(&path) {
            return Ok(m.clone());
        }
        let model = Arc::new(emguard_runtime::Model::load(
            &path,
            &emguard_runtime::LoadOptions::default(),
        )?);
        self.local_models.insert(path, model.clone());
        Ok(model)
    }
}
