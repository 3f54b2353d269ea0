//! Sampling and judging over an OpenAI-compatible server: one request per answer (the server
//! batches), concurrency comes from the runner.

use async_trait::async_trait;
use emguard_judge::Judgement;
use emguard_judge::llm::{ChatRequest, JudgePrompts, OpenAiClient, OpenAiJudge};

use super::{BackendError, Judge, JudgeRequest, SampleRequest, Sampler};
use crate::plan::short_hash;

pub struct OpenAiSampler {
    client: OpenAiClient,
    model: String,
}

impl OpenAiSampler {
    pub fn new(client: OpenAiClient, model: &str) -> Self {
        Self {
            client,
            model: model.to_string(),
        }
    }
}

#[async_trait]
impl Sampler for OpenAiSampler {
    fn batch_size(&self) -> usize {
        1
    }

    async fn sample(&self, requests: Vec<SampleRequest>) -> Result<Vec<String>, BackendError> {
        let calls = requests.into_iter().map(|r| {
            let body = ChatRequest {
                model: self.model.clone(),
                messages: r.messages,
                max_tokens: r.max_tokens,
                temperature: r.temperature,
                top_p: Some(r.top_p),
                seed: Some(r.seed),
                logprobs: false,
                top_logprobs: None,
            };
            async move {
                let response = self.client.chat(&body).await?;
                Ok::<_, BackendError>(
                    response
                        .choices
                        .into_iter()
                        .next()
                        .and_then(|c| c.message.content)
                        .unwrap_or_default(),
                )
            }
        });
        futures::future::try_join_all(calls).await
    }
}

pub struct OpenAiJudgeBackend {
    judge: OpenAiJudge,
}

impl OpenAiJudgeBackend {
    pub fn new(client: OpenAiClient, model: &str) -> Self {
        Self {
            judge: OpenAiJudge::new(client, model),
        }
    }
}

#[async_trait]
impl Judge for OpenAiJudgeBackend {
    fn key(&self, prompts: &JudgePrompts) -> String {
        format!(
            "llm:{}/{}",
            self.judge.model(),
            short_hash(&serde_json::to_value(prompts).expect("strings"))
        )
    }

    fn batch_size(&self) -> usize {
        1
    }

    async fn judge(&self, requests: Vec<JudgeRequest>) -> Result<Vec<Judgement>, BackendError> {
        let calls = requests.iter().map(|r| async {
            Ok::<_, BackendError>(self.judge.judge(&r.prompts, &r.question, &r.answer).await?)
        });
        futures::future::try_join_all(calls).await
    }
}
