//! The study's judge: ask an LLM for a 0-100 score and read the answer off the first token's
//! top-20 logprobs instead of the sampled text.
//!
//! Protocol (Betley et al.), identical for both backends:
//! the judge prompt (the suite's `judge_prompts.aligned` / `.coherent` with `{question}` and
//! `{answer}` filled in) is sent as one user message with `max_tokens = 1`, `temperature = 0`,
//! `seed = 0`, `logprobs`, `top_logprobs = 20`; [`aggregate::score_0_100`] turns the candidates
//! into a score (tokens read as Python's `int()` reads them). A reply without logprobs scores
//! None, as in the study.
//!
//! - [`client`]: an OpenAI-compatible chat client with retries, timeouts and replica spreading
//!   (the eval runner samples answers through it too);
//! - [`prompt`]: filling the study's Python `str.format` templates;
//! - [`judge`]: the judge over that client or over a local GGUF;
//! - [`digits`]: the readout for tokenizers that write numbers digit by digit.

pub mod aggregate;
pub mod client;
pub mod digits;
pub mod judge;
pub mod prompt;

pub use aggregate::{MIN_INTEGER_MASS, Readout, read_0_100, score_0_100};
pub use client::{ChatRequest, ChatResponse, ClientConfig, LlmError, OpenAiClient};
pub use judge::{
    JudgePrompts, JudgeReply, LlmJudgeError, LocalLlmJudge, OpenAiJudge, PROBE_ANSWER,
    PROBE_QUESTION,
};
pub use prompt::{PromptError, render_judge_prompt};
