//! What the review policy check adds to an answer that is not held: `ReviewPolicy::check` on
//! a typical policy (code, text, tool-call and sample conditions) over a clean answer with no
//! findings and one harmless tool call, the way the gateway calls it after its filters.
//! Prints the median and p99 of per-check time over batches. Run:
//! `cargo bench -p emguard-gateway --bench review_policy`.

use std::time::Instant;

use emguard_review::policy::{AnswerFacts, FilterFindings, PolicyConfig, ReviewPolicy, ToolCall};

const POLICY: &str = "
timeout_secs: 300
conditions:
  - {name: money, when: {tool_call: {names: [transfer_funds, 'delete_*', 'drop_*'], arguments: ['*rm -rf*', '*DROP TABLE*']}}, action: hold, two_person: true}
  - {when: {code_severity: high}, action: hold}
  - {when: {text_harm_above: 0}, action: hold}
  - {when: {sample: 0.001}, action: flag}
";

fn main() {
    let config: PolicyConfig = serde_saphyr::from_str(POLICY).expect("bench policy parses");
    let policy = ReviewPolicy::build(&config).expect("bench policy builds");
    let answer = "Paris is the capital of France. ".repeat(20);
    let findings = [FilterFindings {
        filter: "code".into(),
        findings: vec!["py-weak-hash CWE-327 low line 3".into()],
    }];
    let calls = [ToolCall {
        name: "get_weather".into(),
        arguments: "{\"city\": \"Paris\", \"unit\": \"celsius\"}".into(),
    }];
    const BATCH: usize = 1000;
    const BATCHES: usize = 2000;
    let mut per_check = Vec::with_capacity(BATCHES);
    let mut fired = 0usize;
    for b in 0..BATCHES {
        let started = Instant::now();
        for i in 0..BATCH {
            let facts = AnswerFacts {
                question: "What is the capital of France?",
                answer: &answer,
                findings: &findings,
                tool_calls: &calls,
                aligned: None,
                draw: ((b * BATCH + i) as f64 * 0.618_033_988_7) % 1.0,
            };
            if !matches!(policy.check(&facts), emguard_review::Check::Pass) {
                fired += 1;
            }
        }
        per_check.push(started.elapsed().as_secs_f64() / BATCH as f64);
    }
    per_check.sort_by(f64::total_cmp);
    let at = |q: f64| per_check[((per_check.len() - 1) as f64 * q) as usize] * 1e6;
    println!(
        "review policy check, not held: median {:.3} µs, p99 {:.3} µs per answer ({} checks, {} sampled)",
        at(0.5),
        at(0.99),
        BATCH * BATCHES,
        fired
    );
}
