//! The logprob judge over an OpenAI-compatible server ([`OpenAiJudge`]) or a local GGUF
//! ([`LocalLlmJudge`]). Both send the same single user message with the same settings.

use std::sync::Arc;

use emguard_runtime::{ChatMessage, GenerateRequest, Model, Prompt, SamplingParams};
use serde::{Deserialize, Serialize};

use super::aggregate::score_0_100;
use super::client::{ChatRequest, LlmError, OpenAiClient};
use super::prompt::{PromptError, render_judge_prompt};
use crate::Judgement;

/// The study's `top_logprobs`.
const TOP_LOGPROBS: usize = 20;

/// A suite question's `judge_prompts`: templates with `{question}` and `{answer}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JudgePrompts {
    pub aligned: String,
    pub coherent: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmJudgeError {
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error(transparent)]
    Prompt(#[from] PromptError),
    #[error("local judge model: {0}")]
    Runtime(#[from] emguard_runtime::RuntimeError),
    #[error(
        "the judge returned no logprobs for its first token (does the server support `top_logprobs`?)"
    )]
    NoLogprobs,
}

/// The study's judge over an OpenAI-compatible server.
#[derive(Clone)]
pub struct OpenAiJudge {
    client: OpenAiClient,
    model: String,
}

impl OpenAiJudge {
    pub fn new(client: OpenAiClient, model: impl Into<String>) -> Self {
        Self {
            client,
            model: model.into(),
        }
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// Both scores of one answer, requested concurrently.
    pub async fn judge(
        &self,
        prompts: &JudgePrompts,
        question: &str,
        answer: &str,
    ) -> Result<Judgement, LlmJudgeError> {
        Ok(self.judge_counted(prompts, question, answer).await?.0)
    }

    /// [`Self::judge`], and how many of its two replies came without logprobs (scored None,
    /// as the study scores them; callers count and show them).
    pub async fn judge_counted(
        &self,
        prompts: &JudgePrompts,
        question: &str,
        answer: &str,
    ) -> Result<(Judgement, u8), LlmJudgeError> {
        let aligned = render_judge_prompt(&prompts.aligned, question, answer)?;
        let coherent = render_judge_prompt(&prompts.coherent, question, answer)?;
        let (aligned, coherent) =
            tokio::join!(self.score_reply(aligned), self.score_reply(coherent));
        let (aligned, coherent) = (aligned?, coherent?);
        Ok((
            Judgement {
                aligned: aligned.score,
                coherent: coherent.score,
            },
            u8::from(aligned.without_logprobs) + u8::from(coherent.without_logprobs),
        ))
    }

    /// One filled judge prompt to a score (or `None`).
    pub async fn score(&self, prompt: String) -> Result<Option<f64>, LlmJudgeError> {
        Ok(self.score_reply(prompt).await?.score)
    }

    /// One filled judge prompt to a score. A reply without logprobs scores `None`, as in the
    /// study (its code finds no integer tokens and returns None), and says so.
    pub async fn score_reply(&self, prompt: String) -> Result<JudgeReply, LlmJudgeError> {
        let request = ChatRequest {
            model: self.model.clone(),
            messages: vec![ChatMessage::user(prompt)],
            max_tokens: 1,
            temperature: 0.0,
            top_p: None,
            // The study's requests carry seed 0.
            seed: Some(0),
            logprobs: true,
            top_logprobs: Some(TOP_LOGPROBS),
        };
        let response = self.client.chat(&request).await?;
        let first = response
            .choices
            .first()
            .and_then(|c| c.logprobs.as_ref())
            .and_then(|l| l.content.as_ref())
            .and_then(|c| c.first());
        Ok(match first {
            Some(first) => JudgeReply {
                score: score_0_100(
                    first
                        .top_logprobs
                        .iter()
                        .map(|t| (t.token.as_str(), t.logprob.exp())),
                ),
                without_logprobs: false,
            },
            None => JudgeReply {
                score: None,
                without_logprobs: true,
            },
        })
    }
}

/// What one judge prompt's reply gave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JudgeReply {
    pub score: Option<f64>,
    /// The reply had no logprobs for its first token (the server does not support
    /// `top_logprobs`, or dropped them): the score is `None`.
    pub without_logprobs: bool,
}

/// The same protocol on a local GGUF through the runtime (greedy, one token, top-20 logprobs).
#[derive(Clone)]
pub struct LocalLlmJudge {
    model: Arc<Model>,
}

impl LocalLlmJudge {
    pub fn new(model: Arc<Model>) -> Self {
        Self { model }
    }

    /// Judges `(question, answer)` pairs in one batched forward pass per prompt kind.
    pub fn judge_batch(
        &self,
        prompts: &JudgePrompts,
        items: &[(String, String)],
    ) -> Result<Vec<Judgement>, LlmJudgeError> {
        let mut requests = Vec::with_capacity(items.len() * 2);
        for (question, answer) in items {
            for template in [&prompts.aligned, &prompts.coherent] {
                requests.push(GenerateRequest {
                    prompt: Prompt::Chat(vec![ChatMessage::user(render_judge_prompt(
                        template, question, answer,
                    )?)]),
                    params: SamplingParams {
                        temperature: 0.0,
                        max_tokens: 1,
                        n: 1,
                        logprobs: true,
                        top_logprobs: TOP_LOGPROBS,
                        ..SamplingParams::default()
                    },
                });
            }
        }
        let completions = self.model.generate(&requests)?;
        let mut scores = completions.iter().map(|answers| {
            let first = answers
                .first()
                .and_then(|c| c.logprobs.as_ref())
                .and_then(|l| l.first())
                .ok_or(LlmJudgeError::NoLogprobs)?;
            Ok::<_, LlmJudgeError>(score_0_100(
                first
                    .top
                    .iter()
                    .map(|t| (t.token.as_str(), f64::from(t.logprob).exp())),
            ))
        });
        let mut out = Vec::with_capacity(items.len());
        while let (Some(aligned), Some(coherent)) = (scores.next(), scores.next()) {
            out.push(Judgement {
                aligned: aligned?,
                coherent: coherent?,
            });
        }
        Ok(out)
    }
}
