//! SKELETON: signatures the other crates code against; the runtime work replaces the bodies.

use std::path::Path;
use std::sync::Arc;

use crate::{ChatMessage, Completion, GenerateRequest, Prompt};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{0}")]
    Message(String),
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// How to load a GGUF.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Keep the shipped quantization even where it has no fast kernel.
    pub no_requantize: bool,
}

/// Tokenizer built from GGUF metadata.
pub struct Tokenizer {}

impl Tokenizer {
    pub fn encode(&self, _text: &str, _parse_special: bool) -> Vec<u32> {
        unimplemented!("skeleton")
    }
    pub fn decode(&self, _ids: &[u32]) -> String {
        unimplemented!("skeleton")
    }
}

/// Residual-stream activations of one prompt+answer.
#[derive(Debug, Clone)]
pub struct Activations {
    /// The layers captured, in the order asked.
    pub layers: Vec<usize>,
    /// `per_token[l][t]` = hidden vector after layer `layers[l]` at token `t` (prompt and answer).
    pub per_token: Vec<Vec<Vec<f32>>>,
    /// `answer_mean[l]` = mean of the hidden vectors over the answer tokens.
    pub answer_mean: Vec<Vec<f32>>,
    /// Index of the first answer token in `per_token[l]`.
    pub answer_start: usize,
}

/// A loaded model. `Send + Sync`: share it behind an `Arc`.
pub struct Model {}

impl Model {
    pub fn load(_path: &Path, _opts: &LoadOptions) -> Result<Model> {
        Err(RuntimeError::Message("skeleton".into()))
    }
    /// Model name from GGUF metadata (`general.name`), else the file stem.
    pub fn name(&self) -> &str {
        unimplemented!("skeleton")
    }
    pub fn hidden_size(&self) -> usize {
        unimplemented!("skeleton")
    }
    pub fn num_layers(&self) -> usize {
        unimplemented!("skeleton")
    }
    pub fn context_length(&self) -> usize {
        unimplemented!("skeleton")
    }
    pub fn tokenizer(&self) -> &Tokenizer {
        unimplemented!("skeleton")
    }
    /// Render messages with the GGUF's chat template.
    pub fn render_chat(&self, _messages: &[ChatMessage], _add_generation_prompt: bool) -> Result<String> {
        unimplemented!("skeleton")
    }
    /// Generate for several prompts in one batch; `result[i]` has `requests[i].params.n` answers.
    pub fn generate(&self, _requests: &[GenerateRequest]) -> Result<Vec<Vec<Completion>>> {
        unimplemented!("skeleton")
    }
    /// Logprob of each token of `answer` after `prompt` (the answer as the assistant turn).
    pub fn score_continuation(&self, _prompt: &Prompt, _answer: &str) -> Result<Vec<f32>> {
        unimplemented!("skeleton")
    }
    /// Residual stream after `layers` for `prompt` followed by `answer`.
    pub fn capture(&self, _prompt: &Prompt, _answer: &str, _layers: &[usize]) -> Result<Activations> {
        unimplemented!("skeleton")
    }
}

/// Streaming events of one request submitted to an [`Engine`].
#[derive(Debug, Clone)]
pub enum EngineEvent {
    /// New text of answer `index` (0..n).
    Delta { index: usize, text: String, logprobs: Option<crate::PositionLogprobs> },
    /// Answer `index` finished.
    Done { index: usize, completion: Completion },
    /// The request failed.
    Error(String),
}

/// A background generation thread over one model that batches concurrent requests
/// (continuous batching: requests join and leave the running batch between decode steps).
#[derive(Clone)]
pub struct Engine {}

impl Engine {
    pub fn spawn(_model: Arc<Model>, _max_batch: usize) -> Engine {
        unimplemented!("skeleton")
    }
    pub fn model(&self) -> &Arc<Model> {
        unimplemented!("skeleton")
    }
    /// Submit one request; events arrive on the returned channel until every answer is `Done`.
    /// Sync callers use `blocking_recv`; dropping the receiver cancels the request.
    pub fn submit(&self, _request: GenerateRequest) -> tokio::sync::mpsc::UnboundedReceiver<EngineEvent> {
        unimplemented!("skeleton")
    }
}
