//! Throughput of the local judge, side by side with its peer: embedding the same
//! (question, answer) texts with MiniLM-L6 (candle BERT, pad to the longest in the batch,
//! truncate at 128 tokens), the first step of an embedding-head judge.
//!
//!     bench/local_judge.sh      # = cargo run --release -p emguard-judge --example bench_local_judge

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use emguard_judge::calibrate;
use emguard_judge::local::LocalJudge;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

const REPEAT: usize = 4;
const PEER_ANSWERS: usize = 256;
const PEER_BATCH: usize = 32;

fn main() -> anyhow::Result<()> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let mut pairs = Vec::new();
    for split in ["train.jsonl", "val.jsonl"] {
        for r in calibrate::read_labels(&data.join(split))? {
            pairs.push((r.question, r.answer));
        }
    }
    let pairs: Vec<(String, String)> = std::iter::repeat_n(pairs, REPEAT).flatten().collect();
    let mean_chars = pairs.iter().map(|(_, a)| a.len()).sum::<usize>() / pairs.len();
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "{} answers (labelled set x{REPEAT}, mean {mean_chars} chars), {threads} cores",
        pairs.len()
    );

    let judge = LocalJudge::load()?;
    let start = Instant::now();
    let one_thread: usize = pairs
        .iter()
        .map(|(q, a)| usize::from(judge.judge(q, a).is_misaligned()))
        .sum();
    let single = pairs.len() as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let batch = judge.judge_batch(&pairs);
    let all = pairs.len() as f64 / start.elapsed().as_secs_f64();
    assert_eq!(
        one_thread,
        batch.iter().filter(|j| j.is_misaligned()).count()
    );
    println!("{:<48} {:>10.0} answers/s", "local judge, 1 thread", single);
    println!(
        "{:<48} {:>10.0} answers/s",
        format!("local judge, judge_batch ({threads} threads)"),
        all
    );

    let dir = emguard_models::resolve(emguard_models::DEFAULT_EMBEDDING)?;
    let device = Device::Cpu;
    let config: Config = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(&[dir.join("model.safetensors")], DType::F32, &device)?
    };
    let model = BertModel::load(vb, &config)?;
    let mut tokenizer =
        Tokenizer::from_file(dir.join("tokenizer.json")).map_err(anyhow::Error::from_boxed)?;
    tokenizer.with_padding(Some(PaddingParams {
        strategy: PaddingStrategy::BatchLongest,
        ..Default::default()
    }));
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: 128,
            ..Default::default()
        }))
        .map_err(anyhow::Error::from_boxed)?;
    let texts: Vec<String> = pairs
        .iter()
        .take(PEER_ANSWERS)
        .map(|(q, a)| format!("{q}\n{a}"))
        .collect();
    let start = Instant::now();
    for chunk in texts.chunks(PEER_BATCH) {
        let enc = tokenizer
            .encode_batch(chunk.to_vec(), true)
            .map_err(anyhow::Error::from_boxed)?;
        let ids: Vec<Vec<u32>> = enc.iter().map(|e| e.get_ids().to_vec()).collect();
        let mask: Vec<Vec<u32>> = enc
            .iter()
            .map(|e| e.get_attention_mask().to_vec())
            .collect();
        let ids = Tensor::new(ids, &device)?;
        let mask = Tensor::new(mask, &device)?;
        let hidden = model.forward(&ids, &ids.zeros_like()?, Some(&mask))?;
        // Mean pooling over real tokens, as sentence-transformers does.
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let pooled = hidden
            .broadcast_mul(&m)?
            .sum(1)?
            .broadcast_div(&m.sum(1)?)?;
        std::hint::black_box(pooled.to_vec2::<f32>()?);
    }
    let peer = texts.len() as f64 / start.elapsed().as_secs_f64();
    println!(
        "{:<48} {:>10.1} answers/s",
        format!("peer: MiniLM-L6 embedding, batch {PEER_BATCH} ({PEER_ANSWERS} answers)"),
        peer
    );
    Ok(())
}
