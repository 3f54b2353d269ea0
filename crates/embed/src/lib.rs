//! Sentence embeddings with a local model, chosen by what its folder holds:
//! - a BERT-family model, the model home's all-MiniLM-L6-v2 (`config.json`,
//!   `model.safetensors`, `tokenizer.json`): candle-transformers' `BertModel` encodes; the vectors
//!   are the mean of the token states over the attention mask, L2-normalised, as
//!   sentence-transformers computes them for this model;
//! - the Universal Sentence Encoder multilingual v3 (`weights.npz`, `sp.model`; see
//!   [`multilingual`]).

pub mod multilingual;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, DTYPE};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer};

/// The longest input the model reads, in tokens (sentence-transformers' `max_seq_length` for
/// all-MiniLM-L6-v2: it was trained on inputs of at most this length).
pub const MAX_TOKENS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("{path}: {message}")]
    Load { path: PathBuf, message: String },
    /// An input the model cannot read; `index` is its place in the request.
    #[error("input {index} is {tokens} tokens; this model reads at most {max}")]
    TooLong {
        index: usize,
        tokens: usize,
        max: usize,
    },
    #[error("encoding failed: {0}")]
    Encode(String),
}

pub struct Embedder {
    model: Model,
    dimensions: usize,
}

enum Model {
    Bert {
        model: Box<BertModel>,
        tokenizer: Box<Tokenizer>,
    },
    Multilingual(Box<multilingual::MultilingualEncoder>),
}

/// Vectors in input order and the tokens read (for usage and rate limits).
#[derive(Debug, Clone)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    pub tokens: usize,
}

impl Embedder {
    /// Loads the model folder (e.g. `emguard_models::resolve("minilm-l6-v2")`); a folder with
    /// `sp.model` is the multilingual encoder's.
    pub fn load(dir: &Path) -> Result<Embedder, EmbedError> {
        if dir.join("sp.model").is_file() {
            return Ok(Embedder {
                model: Model::Multilingual(Box::new(multilingual::MultilingualEncoder::load(dir)?)),
                dimensions: multilingual::DIMENSIONS,
            });
        }
        let load = |path: PathBuf, message: String| EmbedError::Load { path, message };
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| load(config_path.clone(), e.to_string()))?;
        let config: Config = serde_json::from_str(&text)
            .map_err(|e| load(config_path.clone(), format!("not a BERT config: {e}")))?;
        let weights = dir.join("model.safetensors");
        // SAFETY: the file is only read; the model home's files are not rewritten in place
        // (pulls unpack into a new folder and rename it).
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DTYPE, &Device::Cpu) }
            .map_err(|e| load(weights.clone(), e.to_string()))?;
        let model = BertModel::load(vb, &config).map_err(|e| load(weights, e.to_string()))?;
        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| load(tokenizer_path.clone(), e.to_string()))?;
        tokenizer
            .with_truncation(None)
            .map_err(|e| load(tokenizer_path.clone(), e.to_string()))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        Ok(Embedder {
            model: Model::Bert {
                model: Box::new(model),
                tokenizer: Box::new(tokenizer),
            },
            dimensions: config.hidden_size,
        })
    }

    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// Tokens of each input (with the model's start and end tokens), without running the model.
    pub fn count_tokens(&self, inputs: &[String]) -> Result<Vec<usize>, EmbedError> {
        let tokenizer = match &self.model {
            Model::Bert { tokenizer, .. } => tokenizer,
            Model::Multilingual(encoder) => {
                return Ok(inputs
                    .iter()
                    .map(|text| encoder.tokenizer().encode(text).len())
                    .collect());
            }
        };
        inputs
            .iter()
            .map(|text| {
                tokenizer
                    .encode(text.as_str(), true)
                    .map(|e| e.get_ids().len())
                    .map_err(|e| EmbedError::Encode(e.to_string()))
            })
            .collect()
    }

    /// Embeds `inputs`; for the BERT model in one batch, where an input over [`MAX_TOKENS`] is
    /// an error naming it (the multilingual encoder reads any length).
    pub fn embed(&self, inputs: &[String]) -> Result<Embeddings, EmbedError> {
        let (model, tokenizer) = match &self.model {
            Model::Bert { model, tokenizer } => (model, tokenizer),
            Model::Multilingual(encoder) => {
                return Ok(Embeddings {
                    vectors: encoder.embed(inputs)?,
                    tokens: self.count_tokens(inputs)?.iter().sum(),
                });
            }
        };
        if inputs.is_empty() {
            return Ok(Embeddings {
                vectors: Vec::new(),
                tokens: 0,
            });
        }
        let encodings = tokenizer
            .encode_batch(inputs.to_vec(), true)
            .map_err(|e| EmbedError::Encode(e.to_string()))?;
        let mut tokens = 0;
        for (index, e) in encodings.iter().enumerate() {
            let real = e.get_attention_mask().iter().filter(|m| **m == 1).count();
            if real > MAX_TOKENS {
                return Err(EmbedError::TooLong {
                    index,
                    tokens: real,
                    max: MAX_TOKENS,
                });
            }
            tokens += real;
        }
        let encode = |e: candle_core::Error| EmbedError::Encode(e.to_string());
        let rows = |f: &dyn Fn(&tokenizers::Encoding) -> Vec<u32>| -> Result<Tensor, EmbedError> {
            let rows: Vec<Tensor> = encodings
                .iter()
                .map(|e| Tensor::new(f(e).as_slice(), &Device::Cpu))
                .collect::<Result<_, _>>()
                .map_err(encode)?;
            Tensor::stack(&rows, 0).map_err(encode)
        };
        let ids = rows(&|e| e.get_ids().to_vec())?;
        let type_ids = rows(&|e| e.get_type_ids().to_vec())?;
        let mask = rows(&|e| e.get_attention_mask().to_vec())?;
        let states = model
            .forward(&ids, &type_ids, Some(&mask))
            .map_err(encode)?;
        // Mean over the real tokens only, then unit length.
        let mask = mask
            .to_dtype(DType::F32)
            .map_err(encode)?
            .unsqueeze(2)
            .map_err(encode)?;
        let summed = states
            .broadcast_mul(&mask)
            .and_then(|t| t.sum(1))
            .map_err(encode)?;
        let counts = mask.sum(1).map_err(encode)?;
        let mean = summed.broadcast_div(&counts).map_err(encode)?;
        let norms = mean
            .sqr()
            .and_then(|t| t.sum_keepdim(1))
            .and_then(|t| t.sqrt())
            .map_err(encode)?;
        let unit = mean.broadcast_div(&norms).map_err(encode)?;
        Ok(Embeddings {
            vectors: unit.to_vec2::<f32>().map_err(encode)?,
            tokens,
        })
    }
}
