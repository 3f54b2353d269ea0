//! The loaded model and its public API.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::gguf_file;

use crate::batch;
use crate::chat::{self, ChatTemplate};
use crate::gguf::Metadata;
use crate::q8_0_matmul::MatmulKernel;
use crate::sampling::log_sum_exp;
use crate::transformer::{Chunk, KvCache, Transformer};
use crate::{CancelToken, ChatMessage, Completion, GenerateRequest, Prompt, SamplingParams};

pub use crate::engine::{Engine, EngineEvent};
pub use crate::tokenizer::Tokenizer;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{0}")]
    Message(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: GGUF `{key}`: {message}", path.display())]
    Gguf {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("unsupported model: {0}")]
    Unsupported(String),
    #[error("chat template: {0}")]
    Template(String),
    #[error("{needed} tokens exceed the context window of {limit}")]
    ContextOverflow { needed: usize, limit: usize },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("generation cancelled")]
    Cancelled,
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// How many sequences [`Model::generate`] runs at once; more wait for a free slot.
const GENERATE_MAX_BATCH: usize = 32;

/// How to load a GGUF.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Keep the shipped quantization even where it has no fast kernel.
    pub no_requantize: bool,
    /// The Q8_0 matmul kernel; `None`: the one `EMGUARD_KERNEL` names, else the fastest this
    /// CPU runs ([`MatmulKernel::fastest`]).
    pub kernel: Option<MatmulKernel>,
}

/// Residual-stream activations of one prompt+answer.
#[derive(Debug, Clone)]
pub struct Activations {
    /// The layers captured, in the order asked.
    pub layers: Vec<usize>,
    /// `per_token[l][t]` = hidden vector after layer `layers[l]` at token `t` (prompt and answer).
    pub per_token: Vec<Vec<Vec<f32>>>,
    /// `answer_mean[l]` = mean of the hidden vectors over the answer tokens (over the prompt
    /// tokens when the answer is empty).
    pub answer_mean: Vec<Vec<f32>>,
    /// Index of the first answer token in `per_token[l]`.
    pub answer_start: usize,
}

/// A loaded model. `Send + Sync`: share it behind an `Arc`. Every call keeps its own KV caches.
pub struct Model {
    name: String,
    kernel: MatmulKernel,
    transformer: Transformer,
    tokenizer: Tokenizer,
    template: ChatTemplate,
}

impl Model {
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Model> {
        let io_err = |source| RuntimeError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(io_err)?;
        let content = gguf_file::Content::read(&mut file).map_err(|e| RuntimeError::Gguf {
            path: path.to_path_buf(),
            key: "header".into(),
            message: e.to_string(),
        })?;
        let md = Metadata::new(path, &content);
        let tokenizer = Tokenizer::from_gguf(&md)?;
        let special = |key: &str| {
            md.opt_u32(key)
                .map(|id| tokenizer.token_text(id))
                .unwrap_or_default()
        };
        let template = ChatTemplate::new(
            md.opt_string("tokenizer.chat_template")
                .unwrap_or(chat::CHATML),
            special("tokenizer.ggml.bos_token_id"),
            special("tokenizer.ggml.eos_token_id"),
        )?;
        let kernel = match opts.kernel {
            Some(k) => {
                k.check_supported().map_err(RuntimeError::Unsupported)?;
                k
            }
            None => MatmulKernel::from_env()
                .map_err(RuntimeError::Unsupported)?
                .unwrap_or_else(MatmulKernel::fastest),
        };
        tracing::debug!(%kernel, "Q8_0 matmul kernel");
        let transformer = Transformer::load(path, &content, &md, !opts.no_requantize, kernel)?;
        if transformer.cfg.vocab_size < tokenizer.vocab_size() {
            return Err(md.bad(
                "tokenizer.ggml.tokens",
                "more tokens than rows in token_embd.weight",
            ));
        }
        let name = md
            .opt_string("general.name")
            .map(str::to_string)
            .unwrap_or_else(|| {
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
        Ok(Model {
            name,
            kernel,
            transformer,
            tokenizer,
            template,
        })
    }

    /// Model name from GGUF metadata (`general.name`), else the file stem.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The kernel that runs its Q8_0 matmuls.
    pub fn kernel(&self) -> MatmulKernel {
        self.kernel
    }
    pub fn hidden_size(&self) -> usize {
        self.transformer.cfg.d_model
    }
    pub fn num_layers(&self) -> usize {
        self.transformer.cfg.n_layer
    }
    pub fn context_length(&self) -> usize {
        self.transformer.cfg.context_length
    }
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
    pub(crate) fn transformer(&self) -> &Transformer {
        &self.transformer
    }

    /// Render messages with the GGUF's chat template.
    pub fn render_chat(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        self.template.render(messages, add_generation_prompt)
    }

    /// Token ids of a prompt: chat messages rendered with the generation prompt, or raw text
    /// (with BOS where the model wants one); special tokens in either are recognised.
    pub fn prompt_tokens(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        let tokens = match prompt {
            Prompt::Chat(messages) => self
                .tokenizer
                .encode(&self.render_chat(messages, true)?, true),
            Prompt::Text(text) => {
                let mut tokens: Vec<u32> = self.tokenizer.bos_to_add().into_iter().collect();
                let body = self.tokenizer.encode(text, true);
                if tokens.first() == body.first() {
                    tokens.clear();
                }
                tokens.extend(body);
                tokens
            }
        };
        if tokens.is_empty() {
            return Err(RuntimeError::InvalidRequest("the prompt is empty".into()));
        }
        if tokens.len() >= self.context_length() {
            return Err(RuntimeError::ContextOverflow {
                needed: tokens.len() + 1,
                limit: self.context_length(),
            });
        }
        Ok(tokens)
    }

    /// Check a request's parameters and tokenize its prompt.
    pub(crate) fn prepare(
        &self,
        request: &GenerateRequest,
    ) -> Result<(Vec<u32>, Arc<SamplingParams>)> {
        let p = &request.params;
        let invalid = |m: String| Err(RuntimeError::InvalidRequest(m));
        if !(p.temperature.is_finite() && p.temperature >= 0.0) {
            return invalid(format!("temperature must be >= 0, got {}", p.temperature));
        }
        if !(p.top_p > 0.0 && p.top_p <= 1.0) {
            return invalid(format!("top_p must be in (0, 1], got {}", p.top_p));
        }
        if p.top_logprobs > 20 {
            return invalid(format!(
                "top_logprobs must be at most 20, got {}",
                p.top_logprobs
            ));
        }
        if let Some(s) = &p.steering {
            self.check_layer(s.layer)?;
            if s.vector.len() != self.hidden_size() {
                return invalid(format!(
                    "steering vector has {} values, the model's hidden size is {}",
                    s.vector.len(),
                    self.hidden_size()
                ));
            }
        }
        Ok((self.prompt_tokens(&request.prompt)?, Arc::new(p.clone())))
    }

    fn check_layer(&self, layer: usize) -> Result<()> {
        if layer >= self.num_layers() {
            return Err(RuntimeError::InvalidRequest(format!(
                "layer {layer} does not exist (the model has {} layers, 0..{})",
                self.num_layers(),
                self.num_layers()
            )));
        }
        Ok(())
    }

    /// Generate for several prompts in one batch; `result[i]` has `requests[i].params.n` answers.
    pub fn generate(&self, requests: &[GenerateRequest]) -> Result<Vec<Vec<Completion>>> {
        self.generate_cancellable(requests, &CancelToken::new())
    }

    /// [`Model::generate`] that stops with [`RuntimeError::Cancelled`] within one decode step
    /// of `cancel` being cancelled (already finished answers of the batch are dropped too).
    pub fn generate_cancellable(
        &self,
        requests: &[GenerateRequest],
        cancel: &CancelToken,
    ) -> Result<Vec<Vec<Completion>>> {
        let prepared = requests
            .iter()
            .map(|r| self.prepare(r))
            .collect::<Result<Vec<_>>>()?;
        batch::run_to_completion(self, prepared, GENERATE_MAX_BATCH, cancel)
    }

    /// Logprob of each token of `answer` after `prompt` (the answer as the assistant turn).
    pub fn score_continuation(&self, prompt: &Prompt, answer: &str) -> Result<Vec<f32>> {
        let prompt = self.prompt_tokens(prompt)?;
        let answer = self.tokenizer.encode(answer, false);
        if answer.is_empty() {
            return Ok(Vec::new());
        }
        let tokens: Vec<u32> = prompt.iter().chain(&answer).copied().collect();
        let mut cache = KvCache::new(&self.transformer.cfg, tokens.len());
        let mut chunks = [Chunk {
            tokens: &tokens,
            cache: &mut cache,
            steering: None,
            capture: &[],
            logit_rows: answer.len() + 1,
        }];
        let logits = self.transformer.forward(&mut chunks)?.logits;
        let vocab = self.transformer.cfg.vocab_size;
        // Row i predicts answer token i (row 0 is the prompt's last token).
        Ok(answer
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let row = &logits[i * vocab..(i + 1) * vocab];
                row[t as usize] - log_sum_exp(row)
            })
            .collect())
    }

    /// Residual stream after `layers` for `prompt` followed by `answer`.
    pub fn capture(&self, prompt: &Prompt, answer: &str, layers: &[usize]) -> Result<Activations> {
        for &l in layers {
            self.check_layer(l)?;
        }
        let prompt = self.prompt_tokens(prompt)?;
        let answer = self.tokenizer.encode(answer, false);
        let tokens: Vec<u32> = prompt.iter().chain(&answer).copied().collect();
        let mut cache = KvCache::new(&self.transformer.cfg, tokens.len());
        let mut chunks = [Chunk {
            tokens: &tokens,
            cache: &mut cache,
            steering: None,
            capture: layers,
            logit_rows: 0,
        }];
        let captured = self.transformer.forward(&mut chunks)?.captured.remove(0);
        let d = self.hidden_size();
        let answer_start = prompt.len();
        let mean_from = if answer.is_empty() { 0 } else { answer_start };
        let per_token: Vec<Vec<Vec<f32>>> = captured
            .iter()
            .map(|rows| rows.chunks_exact(d).map(<[f32]>::to_vec).collect())
            .collect();
        let answer_mean = per_token
            .iter()
            .map(|rows| {
                let span = &rows[mean_from..];
                let mut mean = vec![0f32; d];
                for r in span {
                    mean.iter_mut().zip(r).for_each(|(m, v)| *m += v);
                }
                mean.iter_mut().for_each(|m| *m /= span.len() as f32);
                mean
            })
            .collect();
        Ok(Activations {
            layers: layers.to_vec(),
            per_token,
            answer_mean,
            answer_start,
        })
    }
}
