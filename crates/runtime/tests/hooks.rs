//! White-box hooks on the real model: residual-stream capture and steering.

mod common;

use common::{chat, greedy, model};
use emguard_runtime::Steering;

#[test]
fn capture_has_one_vector_per_token_and_layer_and_the_answer_mean() {
    let model = model();
    let prompt = chat("Say something.");
    let answer = "The sky is blue today.";
    let layers = [0, 15, model.num_layers() - 1];
    let acts = model.capture(&prompt, answer, &layers).unwrap();
    let prompt_len = model.prompt_tokens(&prompt).unwrap().len();
    let answer_len = model.tokenizer().encode(answer, false).len();
    assert_eq!(acts.layers, layers);
    assert_eq!(acts.answer_start, prompt_len);
    assert_eq!(acts.per_token.len(), 3);
    assert_eq!(acts.answer_mean.len(), 3);
    for (rows, mean) in acts.per_token.iter().zip(&acts.answer_mean) {
        assert_eq!(rows.len(), prompt_len + answer_len);
        assert!(rows.iter().all(|r| r.len() == model.hidden_size()));
        for d in 0..model.hidden_size() {
            let expected = rows[prompt_len..].iter().map(|r| r[d]).sum::<f32>() / answer_len as f32;
            assert!((mean[d] - expected).abs() < 1e-4);
        }
    }
    assert_ne!(acts.per_token[0], acts.per_token[1], "layers differ");
    // The prompt part does not depend on the answer (causal).
    let other = model
        .capture(&prompt, "Completely different words.", &layers)
        .unwrap();
    assert_eq!(
        other.per_token[1][..prompt_len],
        acts.per_token[1][..prompt_len]
    );
    assert!(
        model
            .capture(&prompt, answer, &[model.num_layers()])
            .is_err()
    );
}

#[test]
fn steering_changes_output_only_with_a_non_zero_vector() {
    let model = model();
    let request = |scale: f32, vector: Vec<f32>| {
        let mut r = greedy(chat("What is your favourite food?"), 20);
        r.params.steering = Some(Steering {
            layer: 10,
            vector,
            scale,
        });
        r
    };
    let plain = model
        .generate(&[greedy(chat("What is your favourite food?"), 20)])
        .unwrap()
        .remove(0)
        .remove(0);
    let zero = model
        .generate(&[request(8.0, vec![0.0; model.hidden_size()])])
        .unwrap()
        .remove(0)
        .remove(0);
    assert_eq!(zero, plain);
    // Steer along the model's own direction for a topic (mean activation of a text about it).
    let direction = model
        .capture(
            &chat("Talk about the ocean."),
            "The ocean waves and the sea water.",
            &[10],
        )
        .unwrap();
    let steered = model
        .generate(&[request(4.0, direction.answer_mean[0].clone())])
        .unwrap()
        .remove(0)
        .remove(0);
    assert_ne!(steered.text, plain.text);
}
