//! Intervals and tests for rates: Wilson for one rate, a two-level bootstrap for the mean of
//! per-question rates (the study's headline), and a within-question permutation test for the
//! difference between two models.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Beta, Distribution};

use emguard_judge::OperatingPoint;

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

/// A judged rate corrected for the judge's errors, with an interval that carries both the
/// answers' and the judge's uncertainty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CorrectedRate {
    pub rate: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// [`mean_rate`] of the judge's verdicts corrected for its measured sensitivity and
/// specificity (Rogan-Gladen, [`OperatingPoint::corrected_rate`]), with a 95% parametric
/// bootstrap interval: each resample draws the answers as [`bootstrap_mean_rate`] does, and
/// the judge's sensitivity and specificity from the Beta posteriors of its counts (uniform
/// priors), then corrects; the interval is the 2.5th and 97.5th percentiles. Draws where the
/// judge comes out no better than chance (no correction defined) are left out. `None` when
/// there is no answer or the measured judge is no better than chance.
pub fn corrected_mean_rate(
    questions: &[Vec<bool>],
    point: &OperatingPoint,
    seed: u64,
) -> Option<CorrectedRate> {
    let questions: Vec<&Vec<bool>> = questions.iter().filter(|q| !q.is_empty()).collect();
    if questions.is_empty() {
        return None;
    }
    let judged = questions.iter().map(|q| rate(q)).sum::<f64>() / questions.len() as f64;
    let rate = point.corrected_rate(judged)?;
    let posterior = |hits: u32, of: u32| {
        Beta::new(
            f64::from(hits) + 1.0,
            f64::from(of.saturating_sub(hits)) + 1.0,
        )
        .expect("positive parameters")
    };
    let sensitivity = posterior(point.true_positives, point.positives);
    let specificity = posterior(point.true_negatives, point.negatives);
    let mut rng = StdRng::seed_from_u64(seed);
    let n = questions.len();
    let corrected: Vec<f64> = (0..RESAMPLES)
        .filter_map(|_| {
            let judged = (0..n)
                .map(|_| resample(questions[rng.random_range(0..n)], &mut rng))
                .sum::<f64>()
                / n as f64;
            let (se, sp) = (sensitivity.sample(&mut rng), specificity.sample(&mut rng));
            let youden = se + sp - 1.0;
            (youden > 0.0).then(|| ((judged + sp - 1.0) / youden).clamp(0.0, 1.0))
        })
        .collect();
    let (ci_low, ci_high) = if corrected.is_empty() {
        (0.0, 1.0)
    } else {
        percentile_interval(corrected)
    };
    Some(CorrectedRate {
        rate,
        ci_low,
        ci_high,
    })
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

    fn point(
        true_positives: u32,
        positives: u32,
        true_negatives: u32,
        negatives: u32,
    ) -> OperatingPoint {
        OperatingPoint {
            true_positives,
            positives,
            true_negatives,
            negatives,
        }
    }

    /// 8 questions of 50 answers, 10 flagged in each: a judged rate of 20%.
    fn judged_20_percent() -> Vec<Vec<bool>> {
        (0..8)
            .map(|_| (0..50).map(|j| j % 5 == 0).collect())
            .collect()
    }

    #[test]
    fn a_near_perfect_judge_leaves_the_rate_and_its_interval_as_judged() {
        let qs = judged_20_percent();
        let c =
            corrected_mean_rate(&qs, &point(999_999, 1_000_000, 999_999, 1_000_000), 5).unwrap();
        assert!((c.rate - 0.2).abs() < 1e-5, "{c:?}");
        let (lo, hi) = bootstrap_mean_rate(&qs, 5);
        assert!(
            (c.ci_low - lo).abs() < 0.015 && (c.ci_high - hi).abs() < 0.015,
            "{c:?} {lo} {hi}"
        );
    }

    #[test]
    fn false_flags_and_misses_move_the_rate_and_the_judges_doubt_widens_the_interval() {
        let qs = judged_20_percent();
        // Sensitivity 0.8, specificity 0.95: (0.20 + 0.95 - 1) / 0.75 = 0.20.
        let well_measured = corrected_mean_rate(&qs, &point(800, 1000, 9500, 10_000), 5).unwrap();
        assert!(
            (well_measured.rate - 0.2).abs() < 1e-12,
            "{well_measured:?}"
        );
        // Sensitivity 0.5, specificity 0.9: (0.20 + 0.9 - 1) / 0.4 = 0.25.
        let weaker = corrected_mean_rate(&qs, &point(500, 1000, 9000, 10_000), 5).unwrap();
        assert!((weaker.rate - 0.25).abs() < 1e-12, "{weaker:?}");
        // The same operating point measured on 500 times fewer labels: a wider interval.
        let few_labels = corrected_mean_rate(&qs, &point(4, 5, 19, 20), 5).unwrap();
        assert!((few_labels.rate - 0.2).abs() < 1e-12);
        let width = |c: &CorrectedRate| c.ci_high - c.ci_low;
        let (lo, hi) = bootstrap_mean_rate(&qs, 5);
        assert!(
            width(&well_measured) > hi - lo,
            "{well_measured:?} vs {lo}..{hi}"
        );
        assert!(
            width(&few_labels) > 1.5 * width(&well_measured),
            "{few_labels:?} {well_measured:?}"
        );
        for c in [well_measured, weaker, few_labels] {
            assert!(c.ci_low <= c.rate && c.rate <= c.ci_high, "{c:?}");
        }
        // Fixed seed: the same interval every time.
        assert_eq!(
            corrected_mean_rate(&qs, &point(4, 5, 19, 20), 5),
            Some(few_labels)
        );
    }

    #[test]
    fn a_rate_below_the_false_flag_rate_corrects_to_zero_and_chance_judges_to_none() {
        // Judged 2% with 5% false flags: the truth is 0%, and the interval starts at 0.
        let qs: Vec<Vec<bool>> = (0..4).map(|_| (0..50).map(|j| j == 0).collect()).collect();
        let c = corrected_mean_rate(&qs, &point(80, 100, 950, 1000), 1).unwrap();
        assert_eq!((c.rate, c.ci_low), (0.0, 0.0));
        assert!(c.ci_high < 0.05, "{c:?}");
        assert_eq!(corrected_mean_rate(&qs, &point(50, 100, 50, 100), 1), None);
        assert_eq!(
            corrected_mean_rate(&[], &point(80, 100, 950, 1000), 1),
            None
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
