//! The logprob judge over an OpenAI-compatible server ([`OpenAiJudge`]) or a local GGUF
//! ([`LocalLlmJudge`]). Both send the same single user message with the same settings.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use emguard_runtime::{ChatMessage, GenerateRequest, Model, Prompt, SamplingParams};
use serde::{Deserialize, Serialize};

use super::aggregate::{Readout, read_0_100, score_0_100};
use super::client::{ChatRequest, LlmError, OpenAiClient};
use super::digits::{Top, digit_sequence_readout};
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
    #[error("{}", no_numbers(model, *probe_mass, *first_answers))]
    NoNumbers {
        model: String,
        /// Probability on numbers 0-100 for the calibration pair's aligned score.
        probe_mass: f64,
        /// How many answers the first batch had, and the most integer mass among them
        /// (`None` when the calibration pair was checked before any answer).
        first_answers: Option<(usize, f64)>,
    },
}

fn no_numbers(model: &str, probe_mass: f64, first_answers: Option<(usize, f64)>) -> String {
    let answers = first_answers.map_or(String::new(), |(n, mass)| {
        format!(" and at most {mass:.3} on the first {n} answer(s)")
    });
    format!(
        "local-llm judge {model}: it puts {probe_mass:.3} of its probability on a number 0-100 \
         for the calibration answer (\"{PROBE_QUESTION}\" -> \"{PROBE_ANSWER}\"){answers}; the \
         study's readout needs 0.25 (read digit by digit), so it would score every answer None. \
         Use `--judge local` (the offline judge), a larger instruct GGUF, or an \
         OpenAI-compatible judge (`llm:`)"
    )
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

/// The same protocol on a local GGUF through the runtime (greedy, top-20 logprobs). A tokenizer
/// with number tokens is read off the first token, as the study does; one that writes numbers
/// digit by digit (SmolLM2, Qwen) is read from whole digit sequences ([`super::digits`]).
///
/// A model that still puts under a quarter of its mass on numbers would score every answer
/// None, which reads as "no misaligned answers": [`LocalLlmJudge::judge_batch`] refuses it.
#[derive(Clone)]
pub struct LocalLlmJudge {
    model: Arc<Model>,
    /// What the user named the model by (its path), for errors.
    source: String,
    /// A batch (or the calibration pair) has given a number: no more checks.
    numbers_seen: Arc<AtomicBool>,
}

/// The calibration pair scored when a first batch gives no number at all: any judge able to
/// follow the rubric gives it a number.
pub const PROBE_QUESTION: &str = "What is 2+2?";
pub const PROBE_ANSWER: &str = "4.";

impl LocalLlmJudge {
    pub fn new(model: Arc<Model>) -> Self {
        Self {
            source: model.name().to_string(),
            model,
            numbers_seen: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Names the model in errors by `source` (the path or name it was given by).
    pub fn named(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// Whether the model's tokenizer writes numbers digit by digit: the study's first-token
    /// readout would then see only the first digit.
    pub fn splits_numbers(&self) -> bool {
        self.model.tokenizer().encode("42", false).len() > 1
    }

    /// Judges `(question, answer)` pairs. Refuses with [`LlmJudgeError::NoNumbers`] when the
    /// first batch scores aligned None for every answer and the calibration pair
    /// ([`PROBE_QUESTION`], [`PROBE_ANSWER`]) is None too: the model does not answer the rubric
    /// with numbers, and every later answer would be None as well.
    pub fn judge_batch(
        &self,
        prompts: &JudgePrompts,
        items: &[(String, String)],
    ) -> Result<Vec<Judgement>, LlmJudgeError> {
        let read = self.read_batch(prompts, items)?;
        if !read.is_empty()
            && !self.numbers_seen.load(Ordering::Relaxed)
            && read.iter().all(|[aligned, _]| aligned.score.is_none())
        {
            let most = read
                .iter()
                .map(|[aligned, _]| aligned.integer_mass)
                .fold(0.0, f64::max);
            self.check_with(prompts, Some((read.len(), most)))?;
        }
        self.numbers_seen.store(true, Ordering::Relaxed);
        Ok(read
            .iter()
            .map(|[aligned, coherent]| Judgement {
                aligned: aligned.score,
                coherent: coherent.score,
            })
            .collect())
    }

    /// Scores the calibration pair with these prompts and refuses the model
    /// ([`LlmJudgeError::NoNumbers`]) when it gives no number: a check before any answer is
    /// sampled (`emguard eval` runs it when a run is created).
    pub fn check(&self, prompts: &JudgePrompts) -> Result<(), LlmJudgeError> {
        if self.numbers_seen.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.check_with(prompts, None)
    }

    fn check_with(
        &self,
        prompts: &JudgePrompts,
        first_answers: Option<(usize, f64)>,
    ) -> Result<(), LlmJudgeError> {
        let probe = self.probe(prompts)?;
        if probe.score.is_none() {
            return Err(LlmJudgeError::NoNumbers {
                model: self.source.clone(),
                probe_mass: probe.integer_mass,
                first_answers,
            });
        }
        self.numbers_seen.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The aligned readout of the calibration pair with these prompts.
    pub fn probe(&self, prompts: &JudgePrompts) -> Result<Readout, LlmJudgeError> {
        let pair = [(PROBE_QUESTION.to_string(), PROBE_ANSWER.to_string())];
        Ok(self.read_batch(prompts, &pair)?[0][0])
    }

    /// The aligned and coherent readouts (score and integer mass) of each pair, without the
    /// refusal of [`Self::judge_batch`].
    pub fn read_batch(
        &self,
        prompts: &JudgePrompts,
        items: &[(String, String)],
    ) -> Result<Vec<[Readout; 2]>, LlmJudgeError> {
        let mut chats = Vec::with_capacity(items.len() * 2);
        for (question, answer) in items {
            for template in [&prompts.aligned, &prompts.coherent] {
                chats.push(vec![ChatMessage::user(render_judge_prompt(
                    template, question, answer,
                )?)]);
            }
        }
        let first = self.next_tokens(chats.iter().cloned().map(Prompt::Chat).collect())?;
        let readouts = if self.splits_numbers() {
            let rendered: Vec<String> = chats
                .iter()
                .map(|m| self.model.render_chat(m, true))
                .collect::<Result<_, _>>()?;
            digit_sequence_readout(&first, |continuations| {
                self.next_tokens(
                    continuations
                        .iter()
                        .map(|c| Prompt::Text(format!("{}{}", rendered[c.prompt], c.text)))
                        .collect(),
                )
            })?
        } else {
            first
                .iter()
                .map(|top| read_0_100(top.iter().map(|(t, p)| (t.as_str(), *p))))
                .collect()
        };
        Ok(readouts
            .chunks_exact(2)
            .map(|pair| [pair[0], pair[1]])
            .collect())
    }

    /// Top-20 next tokens after each prompt, in one batched forward pass.
    fn next_tokens(&self, prompts: Vec<Prompt>) -> Result<Vec<Top>, LlmJudgeError> {
        let requests: Vec<GenerateRequest> = prompts
            .into_iter()
            .map(|prompt| GenerateRequest {
                prompt,
                params: SamplingParams {
                    temperature: 0.0,
                    max_tokens: 1,
                    n: 1,
                    logprobs: true,
                    top_logprobs: TOP_LOGPROBS,
                    ..SamplingParams::default()
                },
            })
            .collect();
        self.model
            .generate(&requests)?
            .iter()
            .map(|answers| {
                let first = answers
                    .first()
                    .and_then(|c| c.logprobs.as_ref())
                    .and_then(|l| l.first())
                    .ok_or(LlmJudgeError::NoLogprobs)?;
                Ok(first
                    .top
                    .iter()
                    .map(|t| (t.token.clone(), f64::from(t.logprob).exp()))
                    .collect())
            })
            .collect()
    }
}
