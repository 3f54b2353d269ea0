//! Intervals and tests for rates: Wilson for one rate, a two-level bootstrap for the mean of
//! per-question rates (the study's headline), and a within-question permutation test for the
//! difference between two models.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;
pub const RESAMPLES: usize = 2000;

/// Wilson score interval for `k` successes in `n` trials; (0, 1) when `n == 0`.
pub fn wilson(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Mean over questions of each question's rate of `true`. Questions without answers are skipped.
pub fn mean_rate(questions: &[Vec<bool>]) -> f64 {
    let rates: Vec<f64> = questions
        .iter()
        .filter(|q| !q.is_empty())
        .map(|q| rate(q))
        .collect();
    if rates.is_empty() {
        0.0
    } else {
        rates.iter().sum::<f64>() / rates.len() as f64
    }
}

fn rate(answers: &[bool]) -> f64 {
    answers.iter().filter(|&&b| b).count() as f64 / answers.len() as f64
}

fn resample(answers: &[bool], rng: &mut StdRng) -> f64 {
    let hits = (0..answers.len())
        .filter(|_| answers[rng.random_range(0..answers.len())])
        .count();
    hits as f64 / answers.len() as f64
}

fn percentile_interval(mut values: Vec<f64>) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.025), at(0.975))
}

/// 95% bootstrap interval of [`mean_rate`]: a two-level bootstrap that resamples questions,
/// then answers within each drawn question (with one answer per question the spread comes from
/// the questions alone).
pub fn bootstrap_mean_rate(questions: &[Vec<bool>], seed: u64) -> (f64, f64) {
    let questions: Vec<&Vec<bool>> = questions.iter().filter(|q| !q.is_empty()).collect();
    if questions.is_empty() {
        return (0.0, 1.0);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let n = questions.len();
    let means = (0..RESAMPLES)
        .map(|_| {
            (0..n)
                .map(|_| resample(questions[rng.random_range(0..n)], &mut rng))
                .sum::<f64>()
                / n as f64
        })
        .collect();
    percentile_interval(means)
}

/// `mean_rate(b) - mean_rate(a)` over questions both answered, with a paired two-level
/// bootstrap interval (questions, then answers) and a two-sided permutation p-value (labels shuffled within questions).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Difference {
    pub diff: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub p_value: f64,
    pub questions: usize,
}

pub fn difference(a: &[Vec<bool>], b: &[Vec<bool>], seed: u64) -> Difference {
    let pairs: Vec<(&Vec<bool>, &Vec<bool>)> = a
        .iter()
        .zip(b)
        .filter(|(x, y)| !x.is_empty() && !y.is_empty())
        .collect();
    if pairs.is_empty() {
        return Difference {
            diff: 0.0,
            ci_low: -1.0,
            ci_high: 1.0,
            p_value: 1.0,
            questions: 0,
        };
    }
    let q = pairs.len() as f64;
    let observed = pairs.iter().map(|(x, y)| rate(y) - rate(x)).sum::<f64>() / q;
    let mut rng = StdRng::seed_from_u64(seed);
    let boots = (0..RESAMPLES)
        .map(|_| {
            (0..pairs.len())
                .map(|_| {
                    let (x, y) = pairs[rng.random_range(0..pairs.len())];
                    resample(y, &mut rng) - resample(x, &mut rng)
                })
                .sum::<f64>()
                / q
        })
        .collect();
    let (ci_low, ci_high) = percentile_interval(boots);
    let mut extreme = 0usize;
    let mut pooled: Vec<Vec<bool>> = pairs
        .iter()
        .map(|(x, y)| x.iter().chain(y.iter()).copied().collect())
        .collect();
    for _ in 0..RESAMPLES {
        let mut d = 0.0;
        for ((x, _), pool) in pairs.iter().zip(pooled.iter_mut()) {
            pool.shuffle(&mut rng);
            let (pa, pb) = pool.split_at(x.len());
            d += rate(pb) - rate(pa);
        }
        if (d / q).abs() >= observed.abs() - 1e-12 {
            extreme += 1;
        }
    }
    let p_value = (extreme + 1) as f64 / (RESAMPLES + 1) as f64;
    Difference {
        diff: observed,
        ci_low,
        ci_high,
        p_value,
        questions: pairs.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_the_textbook_values() {
        // 0/10: upper bound 0.2775; 5/10: (0.2366, 0.7634).
        let (lo, hi) = wilson(0, 10);
        assert!(lo == 0.0 && (hi - 0.277_533).abs() < 1e-5, "{hi}");
        let (lo, hi) = wilson(5, 10);
        assert!(
            (lo - 0.236_593).abs() < 1e-5 && (hi - 0.763_407).abs() < 1e-5,
            "{lo} {hi}"
        );
        assert_eq!(wilson(0, 0), (0.0, 1.0));
    }

    #[test]
    fn bootstrap_brackets_the_mean_and_collapses_without_variance() {
        let qs = vec![
            vec![true, false, false, false],
            vec![false; 6],
            vec![true, true, false],
        ];
        let m = mean_rate(&qs);
        let (lo, hi) = bootstrap_mean_rate(&qs, 1);
        assert!(lo < m && m < hi, "{lo} {m} {hi}");
        assert_eq!(bootstrap_mean_rate(&[vec![false; 5]], 1), (0.0, 0.0));
        let (lo, hi) = bootstrap_mean_rate(&[vec![true], vec![false], vec![false], vec![true]], 1);
        assert!(
            lo < 0.5 && hi > 0.5,
            "one answer per question still has question-level spread"
        );
    }

    #[test]
    fn difference_detects_a_real_gap_and_not_a_null_one() {
        let base: Vec<Vec<bool>> = (0..8).map(|_| vec![false; 40]).collect();
        let tuned: Vec<Vec<bool>> = (0..8)
            .map(|i| (0..40).map(|j| (i + j) % 4 == 0).collect())
            .collect();
        let d = difference(&base, &tuned, 3);
        assert!(
            (d.diff - 0.25).abs() < 1e-12 && d.ci_low > 0.15 && d.p_value < 0.01,
            "{d:?}"
        );
        let same = difference(&tuned, &tuned, 3);
        assert!(same.diff == 0.0 && same.p_value > 0.5, "{same:?}");
    }
}
