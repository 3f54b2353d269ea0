//! Local inference on GGUF models with candle.
//!
//! The public surface other crates rely on (evaluation, judging, the gateway):
//! - [`Model::load`] a GGUF file (llama family, Qwen2 family), requantizing slow tensor types,
//!   on the fastest [`MatmulKernel`] the CPU runs (`EMGUARD_KERNEL` forces one);
//! - [`Model::tokenizer`], [`Model::render_chat`] (the GGUF's own chat template);
//! - [`Model::generate`]: batched sampling of several prompts at once, `n` samples each,
//!   with logprobs, stop strings, seeds and an optional steering hook;
//! - [`Model::score_continuation`]: per-token logprobs of a given answer (coherence features);
//! - [`Model::capture`]: residual-stream activations after chosen layers;
//! - [`Engine`]: a generation thread that batches concurrent requests (continuous batching).

mod types;
pub use types::*;

mod batch;
mod chat;
mod engine;
mod gguf;
mod model;
mod parallel;
pub mod priority;
mod q8_0_matmul;
mod sampling;
mod tokenizer;
mod transformer;

pub use model::{
    Activations, Engine, EngineEvent, LoadOptions, Model, Result, RuntimeError, Tokenizer,
};
pub use q8_0_matmul::{KERNEL_ENV, MatmulKernel};
