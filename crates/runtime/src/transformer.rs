//! The decoder-only transformer (llama and Qwen2 families), adapted from candle-transformers'
//! `quantized_llama` / `quantized_qwen2`, rewritten for ragged batches: the tokens of every
//! sequence in a step (a whole prompt for a new sequence, one token for a running one) are packed
//! into one matrix, so each weight matmul runs once per step (Q8_0 weights on our own kernels,
//! `q8_0_matmul`, unless candle's is chosen; other types on candle's); attention runs per sequence on its own contiguous
//! KV cache, every (row, KV head) in parallel. No padding, no masks, and every row's result is
//! independent of what else is in the batch (batched output equals unbatched output) and of the
//! number of threads.
//! Hook points after each block: steering (add a vector) and capture (copy the residual stream).

use std::borrow::Cow;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor, gguf_file};
use candle_core::{Device, Module, Tensor};
use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::Steering;
use crate::gguf::Metadata;
use crate::model::{Result, RuntimeError};
use crate::parallel;
use crate::q8_0_matmul::{MatmulKernel, PackedQ8_0};

/// Hyper-parameters read from the GGUF.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub n_layer: usize,
    pub d_model: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub rms_eps: f32,
    /// NEOX rotary layout (pairs i, i+d/2: Qwen2); otherwise interleaved (pairs 2i, 2i+1: llama).
    pub rope_neox: bool,
    pub context_length: usize,
    pub vocab_size: usize,
}

impl Config {
    fn kv_dim(&self) -> usize {
        self.n_kv_head * self.head_dim
    }
}

/// Rotary tables are precomputed up to this many positions at most (memory bound).
const MAX_ROPE_POSITIONS: usize = 32_768;

/// A weight matrix `out x in` applied as `x @ W^T (+ bias)`.
struct Linear {
    weight: Weight,
    bias: Option<Vec<f32>>,
    out_dim: usize,
}

enum Weight {
    /// Q8_0 packed for our VNNI, AVX2 or scalar kernel (see `q8_0_matmul`).
    PackedQ8_0(PackedQ8_0),
    /// Any other type, or the candle kernel chosen: candle's quantized matmul.
    Candle(QMatMul),
}

impl Linear {
    /// `x` is `rows x in`, row-major; returns `rows x out`.
    fn forward(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        let mut y = match &self.weight {
            Weight::PackedQ8_0(w) => w.matmul(x, rows),
            Weight::Candle(w) => {
                let input_dim = x.len() / rows.max(1);
                let t = Tensor::from_slice(x, (rows, input_dim), &Device::Cpu)?;
                w.forward(&t)?.flatten_all()?.to_vec1::<f32>()?
            }
        };
        if let Some(bias) = &self.bias {
            for row in y.chunks_exact_mut(self.out_dim) {
                row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
            }
        }
        Ok(y)
    }
}

struct Block {
    attn_norm: Vec<f32>,
    /// Q, K and V stacked into one matrix: one matmul per step.
    qkv: Linear,
    attn_out: Linear,
    ffn_norm: Vec<f32>,
    /// Gate and up stacked.
    gate_up: Linear,
    down: Linear,
}

pub(crate) struct Transformer {
    pub cfg: Config,
    /// Chunks run from an empty cache (prompts prefilled), over the model's lifetime.
    prefills: AtomicUsize,
    embedding: Vec<f32>,
    blocks: Vec<Block>,
    final_norm: Vec<f32>,
    output: Linear,
    /// `[pos][head_dim/2]` rotary cos/sin.
    rope_cos: Vec<f32>,
    rope_sin: Vec<f32>,
}

/// Per-sequence key/value cache: for each layer, `[position][kv_head][head_dim]`, contiguous,
/// in half precision (as llama.cpp keeps its cache by default). Attention streams the whole
/// cache for every new token, so at large batches it is bound by reading it: f16 halves the
/// bytes read and the memory held. Keys and values are rounded once, when stored (round to
/// nearest even, the same bits on every CPU), and widened exactly to f32 when read, so every
/// kernel still computes with the same values.
pub(crate) struct KvCache {
    k: Vec<Vec<f16>>,
    v: Vec<Vec<f16>>,
    len: usize,
    kv_dim: usize,
}

impl KvCache {
    /// A cache with room for `capacity` positions reserved up front.
    pub fn new(cfg: &Config, capacity: usize) -> KvCache {
        let per_layer = capacity * cfg.kv_dim();
        KvCache {
            k: (0..cfg.n_layer)
                .map(|_| Vec::with_capacity(per_layer))
                .collect(),
            v: (0..cfg.n_layer)
                .map(|_| Vec::with_capacity(per_layer))
                .collect(),
            len: 0,
            kv_dim: cfg.kv_dim(),
        }
    }
    /// Positions cached so far.
    pub fn len(&self) -> usize {
        self.len
    }
}

impl KvCache {
    /// A copy with room for `capacity` positions (at least its length): a copy that goes on
    /// generating reserves its whole answer, a copy kept to be copied again only what it holds.
    pub fn fork(&self, capacity: usize) -> KvCache {
        let per_layer = capacity.max(self.len) * self.kv_dim;
        let copy = |layers: &Vec<Vec<f16>>| {
            layers
                .iter()
                .map(|l| {
                    let mut c = Vec::with_capacity(per_layer);
                    c.extend_from_slice(l);
                    c
                })
                .collect()
        };
        KvCache {
            k: copy(&self.k),
            v: copy(&self.v),
            len: self.len,
            kv_dim: self.kv_dim,
        }
    }
}

/// One sequence's part of a forward step.
pub(crate) struct Chunk<'a> {
    /// New tokens, placed after what `cache` holds.
    pub tokens: &'a [u32],
    pub cache: &'a mut KvCache,
    pub steering: Option<&'a Steering>,
    /// Layers whose output (residual stream) to copy for every token of the chunk.
    pub capture: &'a [usize],
    /// Logits for this many of the chunk's last tokens: 1 to sample, the answer's length to
    /// score it, 0 for none.
    pub logit_rows: usize,
}

/// Results of a forward step, in chunk order.
pub(crate) struct StepOutput {
    /// Logit rows: per chunk, its last `logit_rows` rows, concatenated.
    pub logits: Vec<f32>,
    /// `captured[chunk][i]` = `rows x d_model` after layer `chunk.capture[i]`.
    pub captured: Vec<Vec<Vec<f32>>>,
}

/// Quantized types without a fast CPU kernel in candle; requantized to Q8_0 at load.
fn needs_requantize(dtype: GgmlDType) -> bool {
    matches!(dtype, GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1)
}

struct Loader<'a> {
    path: &'a Path,
    content: &'a gguf_file::Content,
    file: File,
    requantize: bool,
    kernel: MatmulKernel,
}

impl Loader<'_> {
    fn qtensor(&mut self, name: &str) -> Result<QTensor> {
        let t = self
            .content
            .tensor(&mut self.file, name, &Device::Cpu)
            .map_err(|e| RuntimeError::Gguf {
                path: self.path.to_path_buf(),
                key: name.to_string(),
                message: e.to_string(),
            })?;
        if self.requantize
            && needs_requantize(t.dtype())
            && t.shape().dims().last().is_some_and(|k| k % 32 == 0)
        {
            let dense = t.dequantize(&Device::Cpu)?;
            return Ok(QTensor::quantize(&dense, GgmlDType::Q8_0)?);
        }
        Ok(t)
    }

    fn has(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    fn vector(&mut self, name: &str) -> Result<Vec<f32>> {
        let t = self.qtensor(name)?;
        Ok(t.dequantize(&Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    }

    fn opt_vector(&mut self, name: &str) -> Result<Option<Vec<f32>>> {
        if self.has(name) {
            self.vector(name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Several `out_i x in` weights of one block stacked into one `(sum out_i) x in` matrix
    /// (quantized rows are independent, so stacking is concatenating bytes).
    fn stacked(&mut self, names: &[String], biases: &[String]) -> Result<Linear> {
        let parts = names
            .iter()
            .map(|n| self.qtensor(n))
            .collect::<Result<Vec<_>>>()?;
        let dtype = parts[0].dtype();
        let input_dim = parts[0].shape().dims2()?.1;
        let out_dim: usize = parts.iter().map(|p| p.shape().dims()[0]).sum();
        let same_kind = parts
            .iter()
            .all(|p| p.dtype() == dtype && p.shape().dims2().is_ok_and(|(_, k)| k == input_dim));
        let weight = if parts.len() == 1 {
            parts.into_iter().next().expect("one part")
        } else if same_kind && !matches!(dtype, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16) {
            let mut bytes = Vec::new();
            for p in &parts {
                bytes.extend_from_slice(&p.data()?);
            }
            QTensor::new(
                QStorage::from_data(Cow::Owned(bytes), &Device::Cpu, dtype)?,
                (out_dim, input_dim),
            )?
        } else {
            let dense = parts
                .iter()
                .map(|p| p.dequantize(&Device::Cpu))
                .collect::<candle_core::Result<Vec<_>>>()?;
            QTensor::quantize(&Tensor::cat(&dense, 0)?, GgmlDType::Q8_0)?
        };
        let weight = match PackedQ8_0::new(&weight, self.kernel)? {
            Some(packed) => Weight::PackedQ8_0(packed),
            None => Weight::Candle(QMatMul::from_qtensor(weight)?),
        };
        let mut bias = Vec::new();
        let mut any_bias = false;
        for (name, part_out) in biases.iter().zip(names.iter()) {
            let rows = self.content.tensor_infos[part_out].shape.dims()[0];
            match self.opt_vector(name)? {
                Some(b) => {
                    any_bias = true;
                    bias.extend(b);
                }
                None => bias.extend(std::iter::repeat_n(0.0, rows)),
            }
        }
        Ok(Linear {
            weight,
            bias: any_bias.then_some(bias),
            out_dim,
        })
    }

    fn linear(&mut self, name: &str) -> Result<Linear> {
        self.stacked(&[name.to_string()], &[])
    }
}

impl Transformer {
    pub fn load(
        path: &Path,
        content: &gguf_file::Content,
        md: &Metadata,
        requantize: bool,
        kernel: MatmulKernel,
    ) -> Result<Transformer> {
        let arch = md.string("general.architecture")?;
        let rope_neox = match arch {
            "llama" => false,
            "qwen2" => true,
            other => {
                return Err(RuntimeError::Unsupported(format!(
                    "{}: general.architecture = {other:?} (supported: llama, qwen2)",
                    path.display()
                )));
            }
        };
        let key = |k: &str| format!("{arch}.{k}");
        let d_model = md.usize(&key("embedding_length"))?;
        let n_head = md.usize(&key("attention.head_count"))?;
        let n_kv_head = md.usize(&key("attention.head_count_kv")).unwrap_or(n_head);
        let n_layer = md.usize(&key("block_count"))?;
        let head_dim = d_model / n_head;
        let rope_dim = md.usize(&key("rope.dimension_count")).unwrap_or(head_dim);
        if rope_dim != head_dim || n_head % n_kv_head != 0 {
            return Err(md.bad(
                &key("rope.dimension_count"),
                "partial rotary or uneven GQA is not supported",
            ));
        }
        let rms_eps = md
            .opt_f32(&key("attention.layer_norm_rms_epsilon"))
            .unwrap_or(1e-5);
        let rope_base = md.opt_f32(&key("rope.freq_base")).unwrap_or(10_000.0);
        let context_length = md
            .usize(&key("context_length"))
            .unwrap_or(4096)
            .min(MAX_ROPE_POSITIONS);

        let file = File::open(path).map_err(|e| RuntimeError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let mut ld = Loader {
            path,
            content,
            file,
            requantize,
            kernel,
        };

        let embd = ld
            .content
            .tensor(&mut ld.file, "token_embd.weight", &Device::Cpu)?;
        let vocab_size = embd.shape().dims2()?.0;
        let embedding = embd
            .dequantize(&Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let output = if ld.has("output.weight") {
            ld.linear("output.weight")?
        } else {
            // Tied embeddings.
            ld.linear("token_embd.weight")?
        };
        let final_norm = ld.vector("output_norm.weight")?;
        let mut blocks = Vec::with_capacity(n_layer);
        for i in 0..n_layer {
            let n = |s: &str| format!("blk.{i}.{s}");
            blocks.push(Block {
                attn_norm: ld.vector(&n("attn_norm.weight"))?,
                qkv: ld.stacked(
                    &[n("attn_q.weight"), n("attn_k.weight"), n("attn_v.weight")],
                    &[n("attn_q.bias"), n("attn_k.bias"), n("attn_v.bias")],
                )?,
                attn_out: ld.linear(&n("attn_output.weight"))?,
                ffn_norm: ld.vector(&n("ffn_norm.weight"))?,
                gate_up: ld.stacked(&[n("ffn_gate.weight"), n("ffn_up.weight")], &[])?,
                down: ld.linear(&n("ffn_down.weight"))?,
            });
        }
        // Llama 3.1+ ships per-frequency scaling factors.
        let rope_factors = ld.opt_vector("rope_freqs.weight")?;
        let half = head_dim / 2;
        let mut rope_cos = Vec::with_capacity(context_length * half);
        let mut rope_sin = Vec::with_capacity(context_length * half);
        for pos in 0..context_length {
            for i in 0..half {
                let mut inv_freq = 1.0 / rope_base.powf((2 * i) as f32 / head_dim as f32);
                if let Some(f) = &rope_factors {
                    inv_freq /= f.get(i).copied().unwrap_or(1.0);
                }
                let angle = pos as f32 * inv_freq;
                rope_cos.push(angle.cos());
                rope_sin.push(angle.sin());
            }
        }
        let cfg = Config {
            n_layer,
            d_model,
            n_head,
            n_kv_head,
            head_dim,
            rms_eps,
            rope_neox,
            context_length,
            vocab_size,
        };
        Ok(Transformer {
            cfg,
            prefills: AtomicUsize::new(0),
            embedding,
            blocks,
            final_norm,
            output,
            rope_cos,
            rope_sin,
        })
    }

    /// Prompts prefilled so far: chunks that started from an empty cache.
    #[cfg(test)]
    pub fn prefills(&self) -> usize {
        self.prefills.load(Ordering::Relaxed)
    }

    /// Run every chunk's new tokens through the model, appending to their caches.
    pub fn forward(&self, chunks: &mut [Chunk<'_>]) -> Result<StepOutput> {
        let cfg = &self.cfg;
        let d = cfg.d_model;
        let kv_dim = cfg.kv_dim();
        let rows: usize = chunks.iter().map(|c| c.tokens.len()).sum();
        for c in chunks.iter() {
            if c.cache.len + c.tokens.len() > cfg.context_length {
                return Err(RuntimeError::ContextOverflow {
                    needed: c.cache.len + c.tokens.len(),
                    limit: cfg.context_length,
                });
            }
            if let Some(&bad) = c.tokens.iter().find(|&&t| t as usize >= cfg.vocab_size) {
                return Err(RuntimeError::Message(format!(
                    "token id {bad} is outside the vocabulary"
                )));
            }
        }
        let fresh = chunks.iter().filter(|c| c.cache.len == 0).count();
        self.prefills.fetch_add(fresh, Ordering::Relaxed);
        // Row offset and first position of each chunk.
        let mut starts = Vec::with_capacity(chunks.len());
        let mut row = 0;
        for c in chunks.iter() {
            starts.push((row, c.cache.len));
            row += c.tokens.len();
        }

        let mut x = Vec::with_capacity(rows * d);
        for c in chunks.iter() {
            for &t in c.tokens {
                x.extend_from_slice(&self.embedding[t as usize * d..(t as usize + 1) * d]);
            }
        }
        let mut captured: Vec<Vec<Vec<f32>>> = chunks
            .iter()
            .map(|c| vec![Vec::new(); c.capture.len()])
            .collect();
        // For each row: its chunk and how many positions it attends to (causal).
        let row_spans: Vec<(usize, usize)> = chunks
            .iter()
            .enumerate()
            .flat_map(|(ci, c)| (1..=c.tokens.len()).map(move |i| (ci, c.cache.len + i)))
            .collect();
        let mut h = vec![0f32; rows * d];
        let mut attn = vec![0f32; rows * d];
        for (layer, block) in self.blocks.iter().enumerate() {
            rms_norm(&x, &block.attn_norm, cfg.rms_eps, &mut h);
            let mut qkv = block.qkv.forward(&h, rows)?;
            let qkv_dim = d + 2 * kv_dim;
            for (ci, c) in chunks.iter_mut().enumerate() {
                let (row0, pos0) = starts[ci];
                for i in 0..c.tokens.len() {
                    let r = &mut qkv[(row0 + i) * qkv_dim..(row0 + i + 1) * qkv_dim];
                    let (q, kv) = r.split_at_mut(d);
                    self.rope(q, pos0 + i);
                    let (k, v) = kv.split_at_mut(kv_dim);
                    self.rope(k, pos0 + i);
                    append_f16(&mut c.cache.k[layer], k);
                    append_f16(&mut c.cache.v[layer], v);
                }
            }
            let caches: Vec<(&[f16], &[f16])> = chunks
                .iter()
                .map(|c| (&c.cache.k[layer][..], &c.cache.v[layer][..]))
                .collect();
            self.attention(&qkv, &caches, &row_spans, &mut attn);
            let o = block.attn_out.forward(&attn, rows)?;
            add_assign(&mut x, &o);

            rms_norm(&x, &block.ffn_norm, cfg.rms_eps, &mut h);
            let gu = block.gate_up.forward(&h, rows)?;
            let ffn = block.gate_up.out_dim / 2;
            let mut act = vec![0f32; rows * ffn];
            parallel::for_each_row(&mut act, ffn, |r, act| {
                let (g, u) = gu[r * 2 * ffn..(r + 1) * 2 * ffn].split_at(ffn);
                for ((a, &g), &u) in act.iter_mut().zip(g).zip(u) {
                    *a = g / (1.0 + (-g).exp()) * u;
                }
            });
            let down = block.down.forward(&act, rows)?;
            add_assign(&mut x, &down);

            for (ci, c) in chunks.iter().enumerate() {
                let (row0, _) = starts[ci];
                let span = row0 * d..(row0 + c.tokens.len()) * d;
                if let Some(s) = c.steering.filter(|s| s.layer == layer) {
                    for r in x[span.clone()].chunks_exact_mut(d) {
                        r.iter_mut()
                            .zip(&s.vector)
                            .for_each(|(v, s_v)| *v += s_v * s.scale);
                    }
                }
                for (slot, _) in c.capture.iter().enumerate().filter(|(_, l)| **l == layer) {
                    captured[ci][slot] = x[span.clone()].to_vec();
                }
            }
        }
        for c in chunks.iter_mut() {
            c.cache.len += c.tokens.len();
        }

        let mut last = Vec::new();
        for (ci, c) in chunks.iter().enumerate() {
            let (row0, _) = starts[ci];
            let end = row0 + c.tokens.len();
            let wanted = end - c.logit_rows.min(c.tokens.len())..end;
            last.extend_from_slice(&x[wanted.start * d..wanted.end * d]);
        }
        let out_rows = last.len() / d;
        let mut normed = vec![0f32; last.len()];
        rms_norm(&last, &self.final_norm, cfg.rms_eps, &mut normed);
        let logits = if out_rows == 0 {
            Vec::new()
        } else {
            self.output.forward(&normed, out_rows)?
        };
        Ok(StepOutput { logits, captured })
    }

    /// Rotate every head of `x` (`n x head_dim`) to position `pos`.
    fn rope(&self, x: &mut [f32], pos: usize) {
        let hd = self.cfg.head_dim;
        let half = hd / 2;
        let cos = &self.rope_cos[pos * half..(pos + 1) * half];
        let sin = &self.rope_sin[pos * half..(pos + 1) * half];
        for head in x.chunks_exact_mut(hd) {
            for i in 0..half {
                let (a, b) = if self.cfg.rope_neox {
                    (i, i + half)
                } else {
                    (2 * i, 2 * i + 1)
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * cos[i] - x1 * sin[i];
                head[b] = x0 * sin[i] + x1 * cos[i];
            }
        }
    }

    /// Causal attention of every row of `qkv` (`rows x (q|k|v)`, rotated) over its chunk's
    /// cache, into `out` (`rows x d_model`). One work item is one row and one KV head with the
    /// query heads that share it (grouped-query attention): each cached key and value is read
    /// once for the whole group. Items run in parallel; each is computed by one thread.
    fn attention(
        &self,
        qkv: &[f32],
        caches: &[(&[f16], &[f16])],
        row_spans: &[(usize, usize)],
        out: &mut [f32],
    ) {
        let cfg = &self.cfg;
        let hd = cfg.head_dim;
        let group = cfg.n_head / cfg.n_kv_head;
        let qkv_dim = cfg.d_model + 2 * cfg.kv_dim();
        // Item `i` = row `i / n_kv_head`, KV head `i % n_kv_head`; its query heads' outputs
        // are contiguous, so the items are `out`'s consecutive `group * hd` slices.
        parallel::for_each_row(out, group * hd, |item, out| {
            let (row, kv_head) = (item / cfg.n_kv_head, item % cfg.n_kv_head);
            let (chunk, n_pos) = row_spans[row];
            let q0 = row * qkv_dim + kv_head * group * hd;
            let (k, v) = caches[chunk];
            SCRATCH.with_borrow_mut(|scratch| {
                self.attend_group(
                    &qkv[q0..q0 + group * hd],
                    k,
                    v,
                    kv_head,
                    n_pos,
                    out,
                    scratch,
                )
            });
        });
    }

    /// Attention of the `group` query heads in `q` over the first `n_pos` cached positions of
    /// KV head `kv_head`.
    #[allow(clippy::too_many_arguments)]
    fn attend_group(
        &self,
        q: &[f32],
        k: &[f16],
        v: &[f16],
        kv_head: usize,
        n_pos: usize,
        out: &mut [f32],
        scratch: &mut Scratch,
    ) {
        let Scratch { scores, row } = scratch;
        row.resize(self.cfg.head_dim, 0.0);
        let cfg = &self.cfg;
        let hd = cfg.head_dim;
        let kv_dim = cfg.kv_dim();
        let kv_off = kv_head * hd;
        let scale = 1.0 / (hd as f32).sqrt();
        // scores[p * group + h]: position-major, so each key and value row is loaded once.
        scores.clear();
        for p in 0..n_pos {
            k[p * kv_dim + kv_off..p * kv_dim + kv_off + hd].convert_to_f32_slice(row);
            scores.extend(q.chunks_exact(hd).map(|qh| dot(qh, row) * scale));
        }
        let group = q.len() / hd;
        for h in 0..group {
            let max = scores[h..]
                .iter()
                .step_by(group)
                .copied()
                .fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for s in scores[h..].iter_mut().step_by(group) {
                *s = (*s - max).exp();
                sum += *s;
            }
            let inv = 1.0 / sum;
            scores[h..]
                .iter_mut()
                .step_by(group)
                .for_each(|s| *s *= inv);
        }
        out.fill(0.0);
        for (p, weights) in scores.chunks_exact(group).enumerate() {
            v[p * kv_dim + kv_off..p * kv_dim + kv_off + hd].convert_to_f32_slice(row);
            for (oh, &w) in out.chunks_exact_mut(hd).zip(weights) {
                oh.iter_mut()
                    .zip(row.iter())
                    .for_each(|(o, &x)| *o += w * x);
            }
        }
    }
}

/// Buffers of the attention work item a thread is on (reused: no allocation per item).
#[derive(Default)]
struct Scratch {
    /// `[position][query head]` scores, then weights.
    scores: Vec<f32>,
    /// One cached key or value row widened to f32.
    row: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Appends `values` to a cache layer, rounded to half precision.
fn append_f16(layer: &mut Vec<f16>, values: &[f32]) {
    let at = layer.len();
    layer.resize(at + values.len(), f16::ZERO);
    layer[at..].convert_from_f32_slice(values);
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Sixteen independent accumulators (two AVX registers) let the compiler vectorise without
    // reassociation and keep two multiply-add chains in flight.
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn add_assign(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// Row-wise RMS norm of `x` (rows of `weight.len()`) into `out`.
fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let d = weight.len();
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let mean_sq = xr.iter().map(|v| v * v).sum::<f32>() / d as f32;
        let inv = 1.0 / (mean_sq + eps).sqrt();
        or.iter_mut()
            .zip(xr)
            .zip(weight)
            .for_each(|((o, &v), &w)| *o = v * inv * w);
    }
}
