//! Choosing the next token from logits: greedy, temperature, nucleus (top-p), seeded; and the
//! logprobs reported to callers (of the model's own distribution: before temperature and top-p,
//! as OpenAI's API reports them).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{PositionLogprobs, SamplingParams, TokenLogprob, Tokenizer};

pub(crate) struct Sampler {
    rng: StdRng,
    temperature: f32,
    top_p: f32,
    probs: Vec<f32>,
}

impl Sampler {
    /// The sampler of answer `index` of a request: seeded with `seed + index`.
    pub fn new(params: &SamplingParams, index: usize) -> Sampler {
        Sampler {
            rng: StdRng::seed_from_u64(params.seed.wrapping_add(index as u64)),
            temperature: params.temperature as f32,
            top_p: params.top_p.clamp(0.0, 1.0) as f32,
            probs: Vec::new(),
        }
    }

    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.temperature <= 0.0 {
            return argmax(logits);
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        self.probs.clear();
        self.probs
            .extend(logits.iter().map(|&l| ((l - max) / self.temperature).exp()));
        let total: f32 = self.probs.iter().sum();
        let u: f32 = self.rng.random::<f32>();
        if self.top_p >= 1.0 {
            return pick(self.probs.iter().copied().enumerate(), u * total);
        }
        let nucleus = nucleus(&self.probs, total, self.top_p);
        let mass: f32 = nucleus.iter().map(|&(_, p)| p).sum();
        pick(nucleus.iter().copied(), u * mass)
    }
}

/// Walk the distribution until the cumulative weight passes `target` (the last token when
/// rounding leaves the sum just short).
fn pick(weights: impl Iterator<Item = (usize, f32)>, target: f32) -> u32 {
    let mut acc = 0.0;
    let mut last = 0;
    for (i, w) in weights {
        acc += w;
        last = i;
        if acc > target {
            return i as u32;
        }
    }
    last as u32
}

/// The smallest set of most likely tokens whose mass reaches `top_p` of `total`, most likely
/// first. Sorting 50k probabilities every step is slow, so only candidates above a threshold are
/// sorted, lowering it until they hold enough mass (the set is then exact).
fn nucleus(probs: &[f32], total: f32, top_p: f32) -> Vec<(usize, f32)> {
    let max = probs.iter().copied().fold(0.0, f32::max);
    let mut threshold = max * 1e-2;
    loop {
        let mut candidates: Vec<(usize, f32)> = probs
            .iter()
            .copied()
            .enumerate()
            .filter(|&(_, p)| p >= threshold)
            .collect();
        let mass: f32 = candidates.iter().map(|&(_, p)| p).sum();
        if mass >= top_p * total || threshold == 0.0 {
            candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let mut acc = 0.0;
            let keep = candidates
                .iter()
                .position(|&(_, p)| {
                    acc += p;
                    acc >= top_p * total
                })
                .map_or(candidates.len(), |i| i + 1);
            candidates.truncate(keep.max(1));
            return candidates;
        }
        threshold = if threshold < max * 1e-9 {
            0.0
        } else {
            threshold * 1e-2
        };
    }
}

pub(crate) fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// `log(sum(exp(logits)))`, stable.
pub(crate) fn log_sum_exp(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    max + logits.iter().map(|&l| (l - max).exp()).sum::<f32>().ln()
}

/// Logprob of `chosen` and the `top` most likely tokens at one position.
pub(crate) fn position_logprobs(
    logits: &[f32],
    chosen: u32,
    top: usize,
    tokenizer: &Tokenizer,
) -> PositionLogprobs {
    let lse = log_sum_exp(logits);
    let entry = |id: u32| TokenLogprob {
        token_id: id,
        token: String::from_utf8_lossy(tokenizer.piece(id)).into_owned(),
        logprob: logits[id as usize] - lse,
    };
    let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
    let top = top.min(ids.len());
    let by_logit = |a: &u32, b: &u32| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    };
    if top > 0 && top < ids.len() {
        ids.select_nth_unstable_by(top - 1, by_logit);
    }
    ids.truncate(top);
    ids.sort_by(by_logit);
    PositionLogprobs {
        chosen: entry(chosen),
        top: ids.into_iter().map(entry).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nucleus_keeps_the_smallest_set_reaching_top_p() {
        let probs = [0.05, 0.5, 0.3, 0.15];
        let set = nucleus(&probs, 1.0, 0.75);
        assert_eq!(set.iter().map(|&(i, _)| i).collect::<Vec<_>>(), [1, 2]);
        let all = nucleus(&probs, 1.0, 0.99);
        assert_eq!(
            all.iter().map(|&(i, _)| i).collect::<Vec<_>>(),
            [1, 2, 3, 0]
        );
    }

    #[test]
    fn same_seed_same_choices_and_greedy_is_argmax() {
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let params = SamplingParams {
            temperature: 1.0,
            seed: 5,
            ..Default::default()
        };
        let run = |index| {
            let mut s = Sampler::new(&params, index);
            (0..20).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(run(0), run(0));
        assert_ne!(run(0), run(1));
        let mut greedy = Sampler::new(
            &SamplingParams {
                temperature: 0.0,
                ..Default::default()
            },
            0,
        );
        assert_eq!(greedy.sample(&logits), argmax(&logits));
    }
}
