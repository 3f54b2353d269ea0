//! Sampling and judging over an OpenAI-compatible server: one request per answer (the server
//! batches), concurrency comes from the runner.

use std::collections::BTreeMap;

use async_trait::async_trait;
use emguard_judge::llm::{
    ChatRequest, JudgePrompts, OpenAiClient, OpenAiJudge, render_judge_prompt,
};
use emguard_runtime::ChatMessage;

use super::{
    BackendError, Judge, JudgeRequest, Label, LabelPrompts, LabelRequest, LabelVerdict,
    SampleRequest, Sampler, Scores, label_of,
};
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
    client: OpenAiClient,
}

impl OpenAiJudgeBackend {
    pub fn new(client: OpenAiClient, model: &str) -> Self {
        Self {
            judge: OpenAiJudge::new(client.clone(), model),
            client,
        }
    }
}

/// New tokens of a label reply: the prompts ask for one word.
pub const LABEL_MAX_TOKENS: usize = 8;

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

    async fn judge(&self, requests: Vec<JudgeRequest>) -> Result<Vec<Scores>, BackendError> {
        let calls = requests.iter().map(|r| async {
            let (judgement, without_logprobs) = self
                .judge
                .judge_counted(&r.prompts, &r.question, &r.answer)
                .await?;
            Ok::<_, BackendError>(Scores {
                judgement,
                without_logprobs,
                other_judges: Vec::new(),
            })
        });
        futures::future::try_join_all(calls).await
    }

    fn label_key(&self, prompts: &LabelPrompts) -> Option<String> {
        Some(format!(
            "llm-label:{}/{}",
            self.judge.model(),
            short_hash(&serde_json::to_value(prompts).expect("strings"))
        ))
    }

    /// Each named prompt filled in and sent as one user message, temperature 0, seed 0; the
    /// reply's first word is the label.
    async fn label(&self, requests: Vec<LabelRequest>) -> Result<Vec<LabelVerdict>, BackendError> {
        let calls = requests.iter().map(|r| async {
            let mut labels = BTreeMap::new();
            for (name, template) in &r.prompts {
                let prompt =
                    render_judge_prompt(template, &r.question, &r.answer).map_err(|e| {
                        BackendError::Spec {
                            spec: name.clone(),
                            message: e.to_string(),
                        }
                    })?;
                let body = ChatRequest {
                    model: self.judge.model().to_string(),
                    messages: vec![ChatMessage::user(prompt)],
                    max_tokens: LABEL_MAX_TOKENS,
                    temperature: 0.0,
                    top_p: None,
                    seed: Some(0),
                    logprobs: false,
                    top_logprobs: None,
                };
                let reply = self
                    .client
                    .chat(&body)
                    .await?
                    .choices
                    .into_iter()
                    .next()
                    .and_then(|c| c.message.content)
                    .unwrap_or_default();
                labels.insert(
                    name.clone(),
                    Label {
                        label: label_of(template, &reply),
                        reply,
                    },
                );
            }
            Ok::<_, BackendError>(LabelVerdict { labels })
        });
        futures::future::try_join_all(calls).await
    }
}
