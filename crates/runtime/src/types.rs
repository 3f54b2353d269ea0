//! Request and result types shared by every caller of the runtime.

use serde::{Deserialize, Serialize};

/// One chat message, as in OpenAI's API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// How to sample one prompt's answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f64,
    pub top_p: f64,
    pub max_tokens: usize,
    /// Generation stops before the first occurrence of any of these strings.
    pub stop: Vec<String>,
    /// Same seed and inputs give the same text. Sample `i` of a prompt uses `seed + i`.
    pub seed: u64,
    /// Answers per prompt.
    pub n: usize,
    /// Return the chosen token's logprob per generated token.
    pub logprobs: bool,
    /// Also return this many most likely alternatives per generated token (0..=20).
    pub top_logprobs: usize,
    /// Add `vector * scale` to the residual stream after `layer` at every position.
    pub steering: Option<Steering>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            max_tokens: 256,
            stop: Vec::new(),
            seed: 0,
            n: 1,
            logprobs: false,
            top_logprobs: 0,
            steering: None,
        }
    }
}

/// A steering hook: `vector` (length = hidden size) times `scale`, added after `layer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Steering {
    pub layer: usize,
    pub vector: Vec<f32>,
    pub scale: f32,
}

/// A prompt to generate from: chat messages rendered with the model's template, or raw text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Prompt {
    Chat(Vec<ChatMessage>),
    /// Raw text, tokenized as is (special tokens in it are recognised).
    Text(String),
}

/// One prompt with its sampling parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    pub prompt: Prompt,
    pub params: SamplingParams,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// End-of-sequence token or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
}

/// A token and its logprob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    pub token_id: u32,
    /// The token's text (bytes decoded lossily).
    pub token: String,
    pub logprob: f32,
}

/// Logprob information for one generated position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionLogprobs {
    pub chosen: TokenLogprob,
    /// Most likely first, `top_logprobs` entries.
    pub top: Vec<TokenLogprob>,
}

/// One generated answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub text: String,
    /// Generated token ids (stop string tokens excluded where they can be).
    pub tokens: Vec<u32>,
    pub finish_reason: FinishReason,
    pub prompt_tokens: usize,
    /// Present when `logprobs` was asked for.
    pub logprobs: Option<Vec<PositionLogprobs>>,
}

/// Stops a running generation early: [`Model::generate_cancellable`](crate::Model::generate_cancellable)
/// and [`Engine::submit_cancellable`](crate::Engine::submit_cancellable) check it before every
/// decode step, so a batch stops within one step of [`CancelToken::cancel`]. Clones share one
/// flag: keep one, hand one to the generation, cancel from any thread.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl CancelToken {
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Ask every generation holding a clone of this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}
