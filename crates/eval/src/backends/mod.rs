//! What the runner talks to: a [`Sampler`] writes answers, a [`Judge`] scores them.
//! Backends: an OpenAI-compatible server ([`openai`]) or the in-process runtime ([`local`]).

pub mod local;
pub mod openai;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use emguard_judge::Judgement;
use emguard_judge::llm::{ClientConfig, JudgePrompts, OpenAiClient};
use emguard_runtime::ChatMessage;

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
    /// One judgement per request, in order.
    async fn judge(&self, requests: Vec<JudgeRequest>) -> Result<Vec<Judgement>, BackendError>;
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
}

/// Builds samplers and judges, loading each local GGUF once.
#[derive(Default)]
pub struct Backends {
    endpoints: Endpoints,
    local_models: HashMap<PathBuf, Arc<emguard_runtime::Model>>,
}

impl Backends {
    pub fn new(endpoints: Endpoints) -> Self {
        Self {
            endpoints,
            local_models: HashMap::new(),
        }
    }

    /// `local:NAME|PATH` or `openai:NAME`.
    pub fn sampler(&mut self, spec: &str) -> Result<Arc<dyn Sampler>, BackendError> {
        let bad = |message: &str| BackendError::Spec {
            spec: spec.to_string(),
            message: message.to_string(),
        };
        match spec.split_once(':') {
            Some(("local", name)) => {
                let model = self.local_model(name)?;
                Ok(Arc::new(local::LocalSampler::new(
                    model,
                    self.endpoints.local_batch.max(1),
                )))
            }
            Some(("openai", name)) if !name.is_empty() => {
                let client = self.client(&self.endpoints.model_base_urls, "--base-url", spec)?;
                Ok(Arc::new(openai::OpenAiSampler::new(client, name)))
            }
            _ => Err(bad(
                "a model is `local:NAME`, `local:PATH.gguf` or `openai:NAME` (with --base-url)",
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
                Ok(Arc::new(local::LocalLlmJudgeBackend::new(model, name, self.endpoints.local_batch.max(1))))
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
        Ok(OpenAiClient::new(config)?)
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
