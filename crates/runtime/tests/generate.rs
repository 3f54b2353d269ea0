//! Generation on the real SmolLM2-135M-Instruct: determinism, batching, stop strings, logprobs.

mod common;

use common::{chat, greedy, model};
use emguard_runtime::{FinishReason, GenerateRequest, SamplingParams};

#[test]
fn greedy_answer_is_on_topic() {
    let out = model().generate(&[greedy(chat("What is the capital of France?"), 30)]).unwrap();
    let answer = &out[0][0];
    println!("{answer:?}");
    assert!(answer.text.contains("Paris"), "{:?}", answer.text);
}
