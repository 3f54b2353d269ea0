//! A logistic head over sparse features, trained on soft targets (label / 100), so its
//! output is directly a 0-100 score on the label's scale.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::features::{DIM, Sparse};

/// Weights of one head. Stored sparse: hashed features never seen in training stay 0.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Head {
    pub bias: f32,
    /// Platt scaling of the logit, fitted on cross-validated predictions: regularisation
    /// pulls a head's logits toward 0, this stretches them back onto the label scale.
    #[serde(default = "one")]
    pub scale: f32,
    #[serde(default)]
    pub shift: f32,
    /// Feature index -> weight, zero weights left out.
    pub weights: BTreeMap<u32, f32>,
}

/// How to train a head.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    pub epochs: usize,
    pub learning_rate: f32,
    /// L2 penalty per example step.
    pub l2: f32,
}

impl Head {
    pub fn logit(&self, x: &Sparse) -> f32 {
        self.bias
            + x.iter()
                .map(|(i, v)| self.weights.get(i).map_or(0.0, |w| w * v))
                .sum::<f32>()
    }

    /// Score 0..=100 of a logit from [`Head::logit`].
    pub fn score_of(&self, logit: f32) -> f64 {
        100.0 * f64::from(sigmoid(self.scale * logit + self.shift))
    }

    pub fn score(&self, x: &Sparse) -> f64 {
        self.score_of(self.logit(x))
    }

    /// Fit `scale` and `shift` so that `score_of(logit)` matches soft targets in 0..=1
    /// (cross-entropy, plain gradient descent on two parameters).
    pub fn fit_scaling(&mut self, logits: &[(f32, f32)]) {
        let (mut a, mut b) = (1f32, 0f32);
        let n = logits.len().max(1) as f32;
        for _ in 0..2000 {
            let (mut ga, mut gb) = (0f32, 0f32);
            for &(z, y) in logits {
                let err = sigmoid(a * z + b) - y;
                ga += err * z;
                gb += err;
            }
            a -= 0.5 * ga / n;
            b -= 0.5 * gb / n;
        }
        self.scale = a;
        self.shift = b;
    }

    /// AdaGrad SGD on cross-entropy against soft targets in 0..=1, in a fixed example
    /// order per epoch (a seeded permutation), so the same data gives the same weights.
    pub fn train(examples: &[(Sparse, f32)], opts: TrainOptions) -> Head {
        let mut w = vec![0f32; DIM];
        let mut g2 = vec![1e-6f32; DIM];
        let (mut bias, mut bias_g2) = (0f32, 1e-6f32);
        let mut order: Vec<usize> = (0..examples.len()).collect();
        let mut state = 0x9E3779B97F4A7C15u64;
        for _ in 0..opts.epochs {
            for i in (1..order.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                order.swap(i, (state % (i as u64 + 1)) as usize);
            }
            for &e in &order {
                let (x, y) = &examples[e];
                let z = bias + x.iter().map(|&(i, v)| w[i as usize] * v).sum::<f32>();
                let err = sigmoid(z) - y;
                bias_g2 += err * err;
                bias -= opts.learning_rate * err / bias_g2.sqrt();
                for &(i, v) in x {
                    let i = i as usize;
                    let g = err * v + opts.l2 * w[i];
                    g2[i] += g * g;
                    w[i] -= opts.learning_rate * g / g2[i].sqrt();
                }
            }
        }
        let weights = w
            .into_iter()
            .enumerate()
            .filter(|(_, v)| v.abs() > 1e-6)
            .map(|(i, v)| (i as u32, (v * 1e5).round() / 1e5))
            .collect();
        Head {
            bias,
            scale: 1.0,
            shift: 0.0,
            weights,
        }
    }
}

fn one() -> f32 {
    1.0
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_separable_feature() {
        let examples: Vec<(Sparse, f32)> = (0..40)
            .map(|i| (vec![(i % 2, 1.0)], if i % 2 == 0 { 0.05 } else { 0.95 }))
            .collect();
        let head = Head::train(
            &examples,
            TrainOptions {
                epochs: 30,
                learning_rate: 0.5,
                l2: 1e-4,
            },
        );
        assert!(head.score(&vec![(0, 1.0)]) < 20.0);
        assert!(head.score(&vec![(1, 1.0)]) > 80.0);
    }
}
