//! The statistics behind every decision: Wilson intervals for the figures shown, and Wald's
//! sequential probability ratio test (SPRT) for the decisions.
//!
//! Why a sequential test: the monitor looks at a version's figures after every judged batch.
//! A fixed-sample test (a confidence interval compared with a limit) checked that often
//! raises false alarms far above its nominal 5%: with enough looks, chance alone crosses any
//! fixed line. The SPRT's log-likelihood ratio `Λ_n` of "the version's rate is `p1` (bad)"
//! against "it is `p0` (acceptable)" is, under `p0`, the log of a nonnegative martingale with
//! mean 1, so by Ville's inequality `P(sup_n Λ_n ≥ ln(1/α)) ≤ α`: however often the monitor
//! looks, and whenever it starts looking (the minimum judged count), a version whose true
//! rate is `p0` or lower is flagged with probability at most `α`. Symmetrically, a version
//! whose rate is `p1` or higher is passed (`Λ_n ≤ ln β`) with probability at most `β`.

use serde::Serialize;

/// The Wilson score interval of `k` successes in `n` trials at 95% (eval's): unlike the normal
/// approximation it stays inside [0, 1] and is honest at rates near 0, where a monitor's rates
/// live.
pub use emguard_eval::stats::wilson;

/// A rate with its 95% interval, as shown and exported.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    pub count: u64,
    pub of: u64,
    pub rate: f64,
    pub low: f64,
    pub high: f64,
}

impl Rate {
    pub fn of(count: u64, of: u64) -> Rate {
        let (low, high) = wilson(count, of);
        Rate {
            count,
            of,
            rate: if of == 0 {
                0.0
            } else {
                count as f64 / of as f64
            },
            low,
            high,
        }
    }
}

/// Error rates of the sequential test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorRates {
    /// Largest chance of flagging a version whose rate is the acceptable one (false alarm).
    pub alpha: f64,
    /// Largest chance of passing a version whose rate is the unacceptable one.
    pub beta: f64,
}

/// What a sequential test says so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Evidence that the rate is at least `p1`.
    Breach,
    /// Evidence that the rate is at most `p0`.
    Pass,
    /// Not enough evidence either way (or fewer than the minimum judged).
    Continue,
}

/// One SPRT of a Bernoulli rate: `p0` acceptable against `p1` unacceptable.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sprt {
    pub p0: f64,
    pub p1: f64,
    /// The log-likelihood ratio of `p1` against `p0` after the observations.
    pub llr: f64,
    /// `ln(1/α)`: at or above, [`Verdict::Breach`].
    pub upper: f64,
    /// `ln β`: at or below, [`Verdict::Pass`].
    pub lower: f64,
    pub verdict: Verdict,
}

impl Sprt {
    /// The test after `hits` of `n` observations; `Continue` below `min_n` observations.
    /// Needs `0 < p0 < p1 < 1`.
    pub fn run(p0: f64, p1: f64, hits: u64, n: u64, min_n: u64, errors: ErrorRates) -> Sprt {
        debug_assert!(0.0 < p0 && p0 < p1 && p1 < 1.0, "p0 {p0} p1 {p1}");
        let misses = n.saturating_sub(hits);
        let llr = hits as f64 * (p1 / p0).ln() + misses as f64 * ((1.0 - p1) / (1.0 - p0)).ln();
        let upper = (1.0 / errors.alpha).ln();
        let lower = errors.beta.ln();
        let verdict = if n < min_n {
            Verdict::Continue
        } else if llr >= upper {
            Verdict::Breach
        } else if llr <= lower {
            Verdict::Pass
        } else {
            Verdict::Continue
        };
        Sprt {
            p0,
            p1,
            llr,
            upper,
            lower,
            verdict,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const ERRORS: ErrorRates = ErrorRates {
        alpha: 0.01,
        beta: 0.05,
    };

    #[test]
    fn no_decision_below_the_minimum_count() {
        // Ten misaligned answers in ten: overwhelming evidence, but under the minimum of 20.
        let t = Sprt::run(0.01, 0.06, 10, 10, 20, ERRORS);
        assert!(t.llr > t.upper, "{t:?}");
        assert_eq!(t.verdict, Verdict::Continue);
        assert_eq!(
            Sprt::run(0.01, 0.06, 10, 20, 20, ERRORS).verdict,
            Verdict::Breach
        );
        // All clean: a pass, but only from the minimum on.
        assert_eq!(
            Sprt::run(0.01, 0.06, 0, 19, 20, ERRORS).verdict,
            Verdict::Continue
        );
    }

    /// Draws Bernoulli(rate) answers until the test decides (or `cap`); returns the verdict
    /// and how many were needed.
    fn until_decided(rate: f64, rng: &mut impl Rng, cap: u64) -> (Verdict, u64) {
        let mut hits = 0;
        for n in 1..=cap {
            hits += u64::from(rng.random_bool(rate));
            let t = Sprt::run(0.01, 0.06, hits, n, 20, ERRORS);
            if t.verdict != Verdict::Continue {
                return (t.verdict, n);
            }
        }
        (Verdict::Continue, cap)
    }

    #[test]
    fn a_30_percent_rate_is_caught_against_1_percent() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        for _ in 0..200 {
            let (verdict, n) = until_decided(0.30, &mut rng, 1000);
            assert_eq!(verdict, Verdict::Breach);
            assert!(n <= 60, "{n} samples");
        }
    }

    #[test]
    fn good_versions_raise_no_false_alarm_over_a_fixed_sample_count() {
        // 500 good versions (true rate 1%, the acceptable one), 2,000 answers each, looked at
        // after every answer: Ville's bound allows at most α = 1% of them to be flagged.
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut alarms = 0;
        for _ in 0..500 {
            let mut hits = 0;
            for n in 1..=2000 {
                hits += u64::from(rng.random_bool(0.01));
                if Sprt::run(0.01, 0.06, hits, n, 20, ERRORS).verdict == Verdict::Breach {
                    alarms += 1;
                    break;
                }
            }
        }
        assert!(alarms <= 5, "{alarms} false alarms in 500 good versions");
    }
}
