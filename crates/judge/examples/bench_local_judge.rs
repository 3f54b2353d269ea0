//! Throughput of the local judge (MiniLM cross-encoder) on real answers of two lengths, side
//! by side in one run: untuned SmolLM2's answers from the README's eval (short, ~100 words)
//! and the second writer's long answers (`written2_*`, ~200 words).
//!
//!     bench/local_judge.sh      # = cargo run --release -p emguard-judge --example bench_local_judge

use std::path::Path;
use std::time::Instant;

use emguard_judge::calibrate;
use emguard_judge::local::LocalJudge;

fn main() -> anyhow::Result<()> {
    let v2 = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/v2");
    let judge = LocalJudge::load()?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    println!("local judge {} on {threads} threads", judge.weights_id());
    println!("| answers | n | mean words | answers/s |");
    println!("|---|---|---|---|");
    for (name, files) in [
        ("SmolLM2 eval answers", vec!["real_eval_default.jsonl"]),
        (
            "written2 long answers",
            vec!["written2_01.jsonl", "written2_02.jsonl"],
        ),
    ] {
        let mut items = Vec::new();
        for f in files {
            for r in calibrate::read_labels(&v2.join(f))? {
                items.push((r.question, r.answer));
            }
        }
        let words = items
            .iter()
            .map(|(_, a)| a.split_whitespace().count())
            .sum::<usize>()
            / items.len().max(1);
        judge.judge_batch(&items[..items.len().min(16)])?;
        let start = Instant::now();
        judge.judge_batch(&items)?;
        let rate = items.len() as f64 / start.elapsed().as_secs_f64();
        println!("| {name} | {} | {words} | {rate:.1} |", items.len());
    }
    Ok(())
}
