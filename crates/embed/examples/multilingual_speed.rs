//! How fast the multilingual encoder embeds answers one at a time, as the gateway's text filter
//! does: reads the assistant answers of chat JSONL files and prints answers per second and the
//! per-answer latency (p50, p99). Run by bench/embed/multilingual.sh beside the Python package
//! the model comes from.
//!
//! Usage: multilingual_speed ROUNDS FILE.jsonl...

use std::time::Instant;

use emguard_embed::multilingual::MultilingualEncoder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args
        .next()
        .ok_or("usage: multilingual_speed ROUNDS FILE...")?
        .parse()?;
    let mut answers = Vec::new();
    for path in args {
        for line in std::fs::read_to_string(&path)?
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            let row: serde_json::Value = serde_json::from_str(line)?;
            if let Some(answer) = row["messages"]
                .as_array()
                .and_then(|m| m.last())
                .and_then(|m| m["content"].as_str())
            {
                answers.push(answer.to_string());
            }
        }
    }
    let encoder = MultilingualEncoder::load(&emguard_models::resolve("use-multilingual-v3")?)?;
    encoder.embed(&answers[..1])?; // warm-up
    let mut latencies = Vec::new();
    let started = Instant::now();
    for _ in 0..rounds {
        for answer in &answers {
            let one = Instant::now();
            encoder.embed(std::slice::from_ref(answer))?;
            latencies.push(one.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let tokens: usize = answers
        .iter()
        .map(|a| encoder.tokenizer().encode(a).len())
        .sum();
    println!(
        "emguard (Rust, candle): {} answers x {rounds}, {:.1} tokens each on average: {:.0} answers/s, p50 {:.2} ms, p99 {:.2} ms",
        answers.len(),
        tokens as f64 / answers.len() as f64,
        latencies.len() as f64 / seconds,
        at(0.5),
        at(0.99)
    );
    Ok(())
}
