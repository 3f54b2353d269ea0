//! Train the local judge's heads and write the shipped weights.
//!
//!     cargo run --release -p emguard-judge --example train_local_judge
//!
//! Reads `data/train.jsonl` only. Hyper-parameters and the Platt scaling of both heads come
//! from leave-questions-out cross-validation on the training split (each fold holds out whole
//! questions, so it never sees its answers' fragments); the validation split and the study's
//! results stay unseen.

use std::path::Path;

use emguard_judge::Judgement;
use emguard_judge::calibrate::{self, LabelRow};
use emguard_judge::local::head::TrainOptions;
use emguard_judge::local::{self, LocalJudge, Raw, Weights};

const FOLDS: usize = 4;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let rows = calibrate::read_labels(&data.join("train.jsonl"))?;
    let mut questions: Vec<&str> = rows.iter().map(|r| r.question.as_str()).collect();
    questions.sort_unstable();
    questions.dedup();
    let fold_of =
        |r: &LabelRow| questions.iter().position(|q| *q == r.question).unwrap_or(0) % FOLDS;

    println!(
        "leave-questions-out CV on {} rows, {} questions, {FOLDS} folds",
        rows.len(),
        questions.len()
    );
    let mut best: Option<(f64, TrainOptions, Weights)> = None;
    for l2 in [1e-4f32, 1e-3, 1e-2] {
        for learning_rate in [0.1f32, 0.3] {
            let opts = TrainOptions {
                epochs: 25,
                learning_rate,
                l2,
            };
            let mut raw: Vec<Option<Raw>> = (0..rows.len()).map(|_| None).collect();
            for fold in 0..FOLDS {
                let fit: Vec<LabelRow> = rows
                    .iter()
                    .filter(|r| fold_of(r) != fold)
                    .cloned()
                    .collect();
                let judge = LocalJudge::from_weights(local::train(&fit, opts))?;
                for (i, r) in rows.iter().enumerate().filter(|(_, r)| fold_of(r) == fold) {
                    raw[i] = Some(judge.raw(&r.question, &r.answer));
                }
            }
            let raw: Vec<Raw> = raw.into_iter().flatten().collect();
            // The final heads, scaled as the cross-validated logits say.
            let mut weights = local::train(&rows, opts);
            weights.aligned.fit_scaling(
                &rows
                    .iter()
                    .zip(&raw)
                    .filter_map(|(r, x)| Some((x.aligned_logit?, (r.aligned? / 100.0) as f32)))
                    .collect::<Vec<_>>(),
            );
            weights.coherent.fit_scaling(
                &rows
                    .iter()
                    .zip(&raw)
                    .map(|(r, x)| (x.coherent_logit, (r.coherent / 100.0) as f32))
                    .collect::<Vec<_>>(),
            );
            match_rate(&mut weights, &raw, &rows)?;
            let scaled = LocalJudge::from_weights(weights.clone())?;
            let judged: Vec<Judgement> = raw.iter().map(|x| scaled.judgement_of(x)).collect();
            let c = calibrate::compare(&rows, &judged);
            let auroc = c.auroc.unwrap_or(0.0);
            let merit = auroc - (c.rate_judge - c.rate_labels).abs()
                + 0.1 * c.spearman_coherent.unwrap_or(0.0);
            println!(
                "  lr {learning_rate:<4} l2 {l2:<6} auroc {auroc:.4} f1 {:.3} rate gap {:+.3} rho_aligned {:.3} rho_coherent {:.3}",
                c.f1,
                c.rate_judge - c.rate_labels,
                c.spearman_aligned.unwrap_or(f64::NAN),
                c.spearman_coherent.unwrap_or(f64::NAN)
            );
            if best.as_ref().is_none_or(|(m, _, _)| merit > *m) {
                best = Some((merit, opts, weights));
            }
        }
    }
    let (_, chosen, weights) = best.ok_or("empty grid")?;
    println!("chosen: {chosen:?}");
    let out = data.join("local_judge.json");
    std::fs::write(&out, serde_json::to_string(&weights)? + "\n")?;
    println!(
        "wrote {} ({} aligned + {} coherent weights)",
        out.display(),
        weights.aligned.weights.len(),
        weights.coherent.weights.len()
    );
    Ok(())
}

/// Move the aligned head's shift until the cross-validated misaligned rate equals the
/// labels' rate: the rate is what `emguard eval` reports, so it is what must be unbiased.
fn match_rate(
    weights: &mut Weights,
    raw: &[Raw],
    rows: &[LabelRow],
) -> Result<(), Box<dyn std::error::Error>> {
    let target = rows
        .iter()
        .filter(|r| r.judgement().is_misaligned())
        .count();
    let (mut lo, mut hi) = (weights.aligned.shift - 4.0, weights.aligned.shift + 4.0);
    for _ in 0..40 {
        let mid = (lo + hi) / 2.0;
        weights.aligned.shift = mid;
        let judge = LocalJudge::from_weights(weights.clone())?;
        let called = raw
            .iter()
            .filter(|x| judge.judgement_of(x).is_misaligned())
            .count();
        // A higher shift raises aligned scores and so lowers the count.
        if called > target { lo = mid } else { hi = mid }
    }
    weights.aligned.shift = (lo + hi) / 2.0;
    Ok(())
}
