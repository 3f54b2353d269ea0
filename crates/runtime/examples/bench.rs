//! Runtime benchmark (run by bench/runtime.sh next to llama.cpp on the same GGUF and workload):
//! prefill and decode tokens/s at batch 1, answers per minute at several batch sizes
//! (continuous batching through the Engine; answers of at most 100 tokens at T=1).
//! Prints one JSON object per measurement.
//!
//! cargo run --release -p emguard-runtime --example bench -- MODEL.gguf PROMPTS.json [8,16,32]

use std::sync::Arc;
use std::time::Instant;

use emguard_runtime::{
    ChatMessage, Engine, EngineEvent, GenerateRequest, LoadOptions, Model, Prompt, SamplingParams,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bench MODEL.gguf PROMPTS.json [BATCHES e.g. 8,16,32]";
    let model_path = args.next().ok_or(usage)?;
    let prompts: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(args.next().ok_or(usage)?)?)?;
    let batches: Vec<usize> = args
        .next()
        .unwrap_or_else(|| "8,16,32".into())
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let answer_tokens = 100;

    let model = Arc::new(Model::load(model_path.as_ref(), &LoadOptions::default())?);
    let chat = |q: &str| Prompt::Chat(vec![ChatMessage::user(q)]);
    let request = |prompt: Prompt, max_tokens: usize, seed: u64| GenerateRequest {
        prompt,
        params: SamplingParams {
            temperature: 1.0,
            max_tokens,
            seed,
            ..Default::default()
        },
    };
    let report = |metric: &str, batch: usize, extra: serde_json::Value, value: f64| {
        let mut line = serde_json::json!({"engine": "emguard", "metric": metric, "batch": batch, "value": value});
        line.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        println!("{line}");
    };

    // Prefill: all prompts in one long user message, batch 1, best of 3 (one sampled token).
    let long = chat(&prompts.join(" "));
    let long_tokens = model.prompt_tokens(&long)?.len();
    let mut best_prefill = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        model.generate(&[request(long.clone(), 1, 0)])?;
        best_prefill = best_prefill.min(t.elapsed().as_secs_f64());
    }
    report(
        "prefill_tok_s",
        1,
        serde_json::json!({"tokens": long_tokens}),
        long_tokens as f64 / best_prefill,
    );

    // Decode at batch 1: up to 128 tokens, the prompt's prefill time (best of 3) subtracted.
    let short = chat(&prompts[0]);
    let mut prefill = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        model.generate(&[request(short.clone(), 1, 0)])?;
        prefill = prefill.min(t.elapsed().as_secs_f64());
    }
    let t = Instant::now();
    let out = model.generate(&[request(short.clone(), 128, 0)])?;
    let n = out[0][0].tokens.len().saturating_sub(1);
    report(
        "decode_tok_s",
        1,
        serde_json::json!({"tokens": n}),
        n as f64 / (t.elapsed().as_secs_f64() - prefill),
    );

    // Answers per minute: 2 x batch answers through an Engine of that batch size.
    for &batch in &batches {
        let engine = Engine::spawn(model.clone(), batch);
        let t = Instant::now();
        let receivers: Vec<_> = (0..2 * batch)
            .map(|i| {
                engine.submit(request(
                    chat(&prompts[i % prompts.len()]),
                    answer_tokens,
                    i as u64,
                ))
            })
            .collect();
        let mut tokens = 0;
        for mut rx in receivers {
            while let Some(event) = rx.blocking_recv() {
                match event {
                    EngineEvent::Done { completion, .. } => {
                        tokens += completion.tokens.len();
                        break;
                    }
                    EngineEvent::Error(e) => return Err(e.into()),
                    EngineEvent::Delta { .. } => {}
                }
            }
        }
        let secs = t.elapsed().as_secs_f64();
        let extra = serde_json::json!({"answers": 2 * batch, "tokens": tokens, "seconds": secs});
        report(
            "answers_per_min",
            batch,
            extra,
            (2 * batch) as f64 / secs * 60.0,
        );
    }
    Ok(())
}
